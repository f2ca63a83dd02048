//! The local storages on real services: `redis_storage` on the test Redis (through the server's
//! store, so under the test's key prefix), and the registry's fallback read and delete over a
//! `file` storage and a `redis_storage`, including one that fails.

use std::sync::Arc;

use conserver::config::{Config, Env};
use conserver::engine::Pipelines;
use conserver::modules::ModuleContext;
use conserver::server::store_settings;
use conserver::storages::{Saved, StorageError, Storages};
use conserver::store::Store;
use uuid::Uuid;

use crate::common::{self, Backend, OwnRedis, TestState};

/// The storages of `config`, built as the engine builds them, on `store`.
fn build(config: &Config, store: Arc<dyn Store>) -> Arc<Storages> {
    let context = ModuleContext::new(
        config.limits.clone(),
        Arc::new(conserver::metrics::Metrics::new()),
        store,
    );
    Pipelines::build(config, &context, None)
        .unwrap_or_else(|problems| panic!("storages build: {problems:?}"))
        .storages
}

fn storages_of(state: &TestState) -> Arc<Storages> {
    build(&state.state.config(), state.state.store.clone())
}

fn saved(text_marker: &str) -> Saved {
    let uuid = Uuid::new_v4();
    Saved::from_text(
        uuid,
        format!(
            r#"{{"uuid":"{uuid}","vcon":"0.4.0","created_at":"2024-05-01T12:00:00Z","marker":"{text_marker}"}}"#
        ),
    )
    .unwrap()
}

fn redis() -> redis::Connection {
    redis::Client::open(common::redis_url())
        .unwrap()
        .get_connection()
        .unwrap()
}

#[tokio::test]
async fn redis_storage_saves_reads_and_deletes_under_the_key_prefix() {
    let state = common::state(
        "storages:\n  copy:\n    module: redis_storage\n    options: {prefix: copies, expires: 100}\n",
        Backend::Redis,
    )
    .await;
    let storages = storages_of(&state);
    let copy = storages.get("copy").unwrap();
    let vcon = saved("one");
    copy.save(&vcon).await.unwrap();

    let key = format!("{}copies:{}", state.prefix, vcon.uuid);
    let mut con = redis();
    let stored: Option<String> = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
    assert_eq!(stored.as_deref(), Some(vcon.text.as_str()));
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut con).unwrap();
    assert!((90..=100).contains(&ttl), "TTL {ttl}");

    assert_eq!(copy.get(vcon.uuid).await.unwrap(), Some(vcon.text.clone()));
    assert!(copy.delete(vcon.uuid).await.unwrap());
    assert_eq!(copy.get(vcon.uuid).await.unwrap(), None);
    assert!(!copy.delete(vcon.uuid).await.unwrap());
}

#[tokio::test]
async fn redis_storage_defaults_and_no_expiry() {
    let state = common::state(
        "storages:\n  default:\n    module: storage.redis_storage\n  forever:\n    module: redis_storage\n    options: {prefix: kept, expires: 0, redis_url: 'redis://ignored:1'}\n",
        Backend::Redis,
    )
    .await;
    let storages = storages_of(&state);
    let vcon = saved("ttl");
    storages.get("default").unwrap().save(&vcon).await.unwrap();
    storages.get("forever").unwrap().save(&vcon).await.unwrap();

    let mut con = redis();
    let ttl = |key: String, con: &mut redis::Connection| -> i64 {
        redis::cmd("TTL").arg(key).query(con).unwrap()
    };
    let default_ttl = ttl(
        format!("{}vcon_storage:{}", state.prefix, vcon.uuid),
        &mut con,
    );
    assert!((604_790..=604_800).contains(&default_ttl), "{default_ttl}");
    assert_eq!(
        ttl(format!("{}kept:{}", state.prefix, vcon.uuid), &mut con),
        -1,
        "expires: 0 sets no expiry"
    );
}

/// A file storage and a redis_storage, in this `storages:` order.
async fn file_and_redis(dir: &std::path::Path) -> (TestState, Arc<Storages>) {
    let state = common::state(
        &format!(
            "storages:\n  files:\n    module: file\n    options: {{path: '{}'}}\n  copy:\n    module: redis_storage\n",
            dir.display()
        ),
        Backend::Redis,
    )
    .await;
    let storages = storages_of(&state);
    (state, storages)
}

#[tokio::test]
async fn read_back_follows_the_given_order_and_skips_a_failing_storage() {
    let dir = tempfile::tempdir().unwrap();
    let (state, storages) = file_and_redis(dir.path()).await;
    let (files, copy) = (
        storages.get("files").unwrap(),
        storages.get("copy").unwrap(),
    );

    // In both, with different texts: the order decides which is read.
    let in_file = saved("file");
    let mut in_redis = in_file.clone();
    in_redis.text = in_redis.text.replace("\"file\"", "\"redis\"");
    files.save(&in_file).await.unwrap();
    copy.save(&in_redis).await.unwrap();
    assert_eq!(
        storages.read_back(in_file.uuid, storages.names()).await,
        Some(("files".to_owned(), in_file.text.clone()))
    );
    assert_eq!(
        storages
            .read_back(in_file.uuid, ["copy", "files"].into_iter())
            .await,
        Some(("copy".to_owned(), in_redis.text.clone()))
    );

    // Only in Redis: the file storage misses and the next one is asked.
    let only_redis = saved("only redis");
    copy.save(&only_redis).await.unwrap();
    assert_eq!(
        storages.read_back(only_redis.uuid, storages.names()).await,
        Some(("copy".to_owned(), only_redis.text.clone()))
    );

    // redis_storage fails (its key holds a list: WRONGTYPE), so it is skipped.
    let only_file = saved("only file");
    files.save(&only_file).await.unwrap();
    let key = format!("{}vcon_storage:{}", state.prefix, only_file.uuid);
    let _: i64 = redis::cmd("RPUSH")
        .arg(&key)
        .arg("x")
        .query(&mut redis())
        .unwrap();
    let error = copy.get(only_file.uuid).await.unwrap_err();
    assert!(
        matches!(error, StorageError::Permanent { .. }),
        "a backend error is permanent: {error:?}"
    );
    assert_eq!(
        storages
            .read_back(only_file.uuid, ["copy", "files"].into_iter())
            .await,
        Some(("files".to_owned(), only_file.text.clone()))
    );

    assert_eq!(
        storages.read_back(Uuid::new_v4(), storages.names()).await,
        None
    );
}

#[tokio::test]
async fn delete_everywhere_removes_every_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (_state, storages) = file_and_redis(dir.path()).await;
    let vcon = saved("both");
    for name in ["files", "copy"] {
        storages.get(name).unwrap().save(&vcon).await.unwrap();
    }
    storages.delete_everywhere(vcon.uuid).await;
    for name in ["files", "copy"] {
        assert_eq!(
            storages.get(name).unwrap().get(vcon.uuid).await.unwrap(),
            None,
            "{name}"
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_redis_that_went_away_is_transient_and_skipped() {
    let mut redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "redis: {{url: '{}'}}\nstorages:\n  copy:\n    module: redis_storage\n  files:\n    module: file\n    options: {{path: '{}'}}\n",
        redis.url(),
        dir.path().display()
    );
    let config = Config::from_yaml(&yaml, None, &Env::default()).unwrap();
    let store = conserver::store::open(config.redis.url.as_deref(), store_settings(&config))
        .await
        .unwrap();
    let storages = build(&config, store);
    let vcon = saved("outage");
    storages.get("files").unwrap().save(&vcon).await.unwrap();

    redis.stop();
    let error = storages.get("copy").unwrap().save(&vcon).await.unwrap_err();
    assert!(matches!(error, StorageError::Transient { .. }), "{error:?}");
    assert_eq!(
        storages.read_back(vcon.uuid, storages.names()).await,
        Some(("files".to_owned(), vcon.text.clone()))
    );
    storages.delete_everywhere(vcon.uuid).await;
    assert_eq!(
        storages.get("files").unwrap().get(vcon.uuid).await.unwrap(),
        None,
        "the file storage is deleted from even though redis_storage failed first"
    );
}

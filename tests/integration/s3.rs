//! The `s3` storage on a real S3 object store (SeaweedFS, started by scripts/test; a test that
//! stops its store runs one of its own): save, get and delete through the lookup pointer;
//! what it wrote read back with a plain `object_store` client (not through conserver); objects
//! laid out as the Python server writes them read by conserver; refused credentials; the
//! credentials of the AWS environment; a chain writing to it through the engine; a cache miss
//! served from it; an outage that dead-letters and a reprocessing that writes every vCon once
//! the store is back.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use conserver::api::Role;
use conserver::config::{Config, Env};
use conserver::engine::Pipelines;
use conserver::modules::ModuleContext;
use conserver::storages::{Saved, StorageError, Storages};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{Attribute, ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{self, send, Backend, OwnServer, S3_ACCESS_KEY, S3_BUCKET, S3_SECRET_KEY};

/// A key prefix of the test's own in the test bucket of a store at `endpoint`.
struct Place {
    endpoint: String,
    prefix: String,
}

impl Place {
    fn new(endpoint: String) -> Place {
        Place {
            endpoint,
            prefix: format!("test-{}", Uuid::new_v4().simple()),
        }
    }

    fn shared() -> Place {
        Place::new(common::s3_endpoint())
    }

    /// The options of an s3 storage writing here (Python option names), as YAML flow.
    fn options(&self, s3_path: &str) -> String {
        format!(
            "{{aws_bucket: {S3_BUCKET}, aws_access_key_id: {S3_ACCESS_KEY}, aws_secret_access_key: {S3_SECRET_KEY}, endpoint_url: '{}', s3_path: '{s3_path}'}}",
            self.endpoint
        )
    }

    /// The `storages:` section of an s3 storage named `s3` writing under the test's prefix.
    fn storage_yaml(&self, retry: &str) -> String {
        format!(
            "storages:\n  s3:\n    module: s3\n    options: {}\n{retry}",
            self.options(&format!("{}/", self.prefix))
        )
    }

    /// A plain object_store client of the bucket (not conserver's).
    fn client(&self) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(S3_BUCKET)
            .with_region("us-east-1")
            .with_access_key_id(S3_ACCESS_KEY)
            .with_secret_access_key(S3_SECRET_KEY)
            .with_allow_http(true)
            .build()
            .expect("the test client")
    }

    fn key(&self, rest: &str) -> Path {
        Path::from(format!("{}/{rest}", self.prefix))
    }

    /// The text of the object at `[prefix/]rest`, or None.
    async fn read(&self, rest: &str) -> Option<String> {
        match self.client().get(&self.key(rest)).await {
            Ok(found) => Some(String::from_utf8(found.bytes().await.unwrap().to_vec()).unwrap()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("reading {rest}: {e}"),
        }
    }

    /// Every key under the prefix (without it), sorted.
    async fn keys(&self) -> Vec<String> {
        use futures_util::TryStreamExt;
        let prefix = Path::from(self.prefix.as_str());
        let mut keys: Vec<String> = self
            .client()
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.as_ref()[self.prefix.len() + 1..].to_owned())
            .try_collect()
            .await
            .expect("the listing");
        keys.sort();
        keys
    }

    /// Wait until the store takes writes (a store just started may still be assigning its
    /// first volume).
    async fn wait_writable(&self) {
        let client = self.client();
        let probe = self.key("probe");
        common::wait_until("the S3 store takes writes", || {
            let (client, probe) = (client.clone(), probe.clone());
            async move {
                client
                    .put(&probe, PutPayload::from_static(b"x"))
                    .await
                    .is_ok()
            }
        })
        .await;
        client.delete(&probe).await.unwrap();
    }
}

/// The storages of `yaml`, built as the engine builds them.
fn storages(yaml: &str) -> Arc<Storages> {
    let config = Config::from_yaml(yaml, None, &Env::default()).unwrap();
    let store = Arc::new(conserver::store::memory::MemoryStore::new(
        conserver::server::store_settings(&config),
    ));
    let context = ModuleContext::new(
        config.limits.clone(),
        Arc::new(conserver::metrics::Metrics::new()),
        store,
    );
    Pipelines::build(&config, &context, None)
        .unwrap_or_else(|problems| panic!("storages build: {problems:?}"))
        .storages
}

fn vcon(uuid: &str, created_at: &str) -> String {
    json!({
        "uuid": uuid,
        "vcon": "0.4.0",
        "created_at": created_at,
        "parties": [{"name": "Caller", "tel": "+15550100"}],
        "dialog": [{"type": "text", "start": created_at, "parties": [0], "body": "hello", "encoding": "none"}],
    })
    .to_string()
}

fn saved(text: &str) -> Saved {
    let uuid: Uuid = serde_json::from_str::<Value>(text).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    Saved::from_text(uuid, text.to_owned()).unwrap()
}

#[tokio::test]
async fn saves_reads_and_deletes_through_the_lookup_pointer() {
    let place = Place::shared();
    let storages = storages(&place.storage_yaml(""));
    let s3 = storages.get("s3").unwrap();
    let uuid = Uuid::new_v4();
    // 00:30 in UTC+2: filed under the date as written, not the UTC one.
    let text = vcon(&uuid.to_string(), "2024-05-02T00:30:00+02:00");
    s3.save(&saved(&text)).await.unwrap();

    // What a plain S3 client sees: the object, its content type, and the pointer.
    assert_eq!(
        place.keys().await,
        [
            format!("2024/05/02/{uuid}.vcon"),
            format!("lookup/{uuid}.txt")
        ]
    );
    let object = place
        .client()
        .get(&place.key(&format!("2024/05/02/{uuid}.vcon")))
        .await
        .unwrap();
    assert_eq!(
        object
            .attributes
            .get(&Attribute::ContentType)
            .map(|v| v.as_ref()),
        Some("application/json")
    );
    assert_eq!(
        String::from_utf8(object.bytes().await.unwrap().to_vec()).unwrap(),
        text
    );
    assert_eq!(
        place.read(&format!("lookup/{uuid}.txt")).await.as_deref(),
        Some("2024/05/02")
    );

    assert_eq!(s3.get(uuid).await.unwrap().as_deref(), Some(text.as_str()));
    // A later save replaces the object.
    let changed = text.replace("hello", "bye");
    s3.save(&saved(&changed)).await.unwrap();
    assert_eq!(
        s3.get(uuid).await.unwrap().as_deref(),
        Some(changed.as_str())
    );

    assert!(s3.delete(uuid).await.unwrap());
    assert!(place.keys().await.is_empty());
    assert_eq!(s3.get(uuid).await.unwrap(), None);
    assert!(
        !s3.delete(uuid).await.unwrap(),
        "no pointer: nothing deleted"
    );
    assert_eq!(s3.get(Uuid::new_v4()).await.unwrap(), None);
}

#[tokio::test]
async fn objects_the_python_server_wrote_are_read_and_deleted() {
    let place = Place::shared();
    let client = place.client();
    let uuid = Uuid::new_v4();
    // boto3's put_object: the JSON text, no content type; the pointer holds the date path.
    let text = json!({"uuid": uuid.to_string(), "vcon": "0.0.1", "created_at": "2023-12-31T23:59:00+00:00", "parties": [], "dialog": []}).to_string();
    client
        .put(
            &place.key(&format!("2023/12/31/{uuid}.vcon")),
            PutPayload::from(text.clone()),
        )
        .await
        .unwrap();
    client
        .put(
            &place.key(&format!("lookup/{uuid}.txt")),
            PutPayload::from_static(b"2023/12/31"),
        )
        .await
        .unwrap();
    let storages = storages(&place.storage_yaml(""));
    let s3 = storages.get("s3").unwrap();
    assert_eq!(s3.get(uuid).await.unwrap(), Some(text));
    assert!(s3.delete(uuid).await.unwrap());
    assert!(place.keys().await.is_empty());

    // A pointer whose object is gone: absent.
    client
        .put(
            &place.key(&format!("lookup/{uuid}.txt")),
            PutPayload::from_static(b"2023/12/31"),
        )
        .await
        .unwrap();
    assert_eq!(s3.get(uuid).await.unwrap(), None);
}

#[tokio::test]
async fn without_s3_path_keys_start_at_the_bucket_root() {
    let place = Place::shared();
    let yaml = format!(
        "storages:\n  s3:\n    module: storage.s3\n    options: {}\n",
        place.options("")
    );
    let storages = storages(&yaml);
    let uuid = Uuid::new_v4();
    storages
        .get("s3")
        .unwrap()
        .save(&saved(&vcon(&uuid.to_string(), "2024-02-29T10:00:00Z")))
        .await
        .unwrap();
    let client = place.client();
    for key in [
        format!("2024/02/29/{uuid}.vcon"),
        format!("lookup/{uuid}.txt"),
    ] {
        client.head(&Path::from(key.as_str())).await.unwrap();
    }
    assert!(storages.get("s3").unwrap().delete(uuid).await.unwrap());
}

#[tokio::test]
async fn refused_credentials_are_a_permanent_failure() {
    let place = Place::shared();
    let yaml = format!(
        "storages:\n  s3:\n    module: s3\n    options: {}\n",
        place
            .options(&place.prefix)
            .replace(S3_SECRET_KEY, "not-the-secret-key")
    );
    let storages = storages(&yaml);
    let uuid = Uuid::new_v4();
    let error = storages
        .get("s3")
        .unwrap()
        .save(&saved(&vcon(&uuid.to_string(), "2024-05-01T12:00:00Z")))
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::Permanent { .. }), "{error:?}");
    let shown = conserver::report(&error).to_string();
    assert!(shown.contains("403"), "{shown}");
    assert!(!shown.contains("not-the-secret-key"), "{shown}");
    assert!(place.keys().await.is_empty());
}

#[tokio::test]
async fn a_store_that_is_not_there_is_a_transient_failure() {
    let place = Place::new(format!("http://127.0.0.1:{}", common::free_port()));
    let storages = storages(&place.storage_yaml(""));
    let error = storages
        .get("s3")
        .unwrap()
        .save(&saved(&vcon(
            &Uuid::new_v4().to_string(),
            "2024-05-01T12:00:00Z",
        )))
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::Transient { .. }), "{error:?}");
}

#[tokio::test]
async fn credentials_come_from_the_aws_environment_when_the_options_give_none() {
    let place = Place::shared();
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let prefix = format!("test-{}:", Uuid::new_v4());
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "redis: {{url: '{}', key_prefix: '{prefix}'}}\napi: {{bind: '127.0.0.1:{port}'}}\n\
             storages:\n  s3:\n    module: s3\n    options: {{aws_bucket: {S3_BUCKET}, endpoint_url: '{}', s3_path: {}}}\n\
             chains:\n  main: {{links: [], storages: [s3], ingress_lists: [calls], egress_lists: [done]}}\n",
            common::redis_url(),
            place.endpoint,
            place.prefix
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_conserver"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("the conserver binary starts");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    common::wait_until("the server is ready", || {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.get(format!("{base}/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    let uuid = Uuid::new_v4().to_string();
    let reply = http
        .post(format!("{base}/vcon?ingress_lists=calls"))
        .body(vcon(&uuid, "2024-05-01T12:00:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    let done = format!("{prefix}done");
    common::wait_until("the vCon is on the egress list", || {
        let (done, uuid) = (done.clone(), uuid.clone());
        async move { common::redis_list(&done) == [uuid] }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    common::delete_prefix(&prefix);
    assert_eq!(
        place.read(&format!("lookup/{uuid}.txt")).await.as_deref(),
        Some("2024/05/01"),
        "written with the environment's credentials: {}",
        std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
    );
}

#[actix_web::test]
async fn a_chain_writes_to_s3_and_a_cache_miss_reads_it_back() {
    let place = Place::shared();
    let yaml = format!(
        "{}chains:\n  main: {{links: [], storages: [s3], ingress_lists: [calls], egress_lists: [done], workers: 4}}\n",
        place.storage_yaml("")
    );
    let state = common::state_for_role(&yaml, Backend::Redis, &[], Role::All).await;
    let app = common::service(&state).await;
    let _engine = common::start_engine(&state).await;
    let p = state.prefix.clone();
    let mut uuids = Vec::new();
    let mut texts = Vec::new();
    for day in 1..=8u32 {
        let uuid = Uuid::new_v4().to_string();
        let text = vcon(&uuid, &format!("2024-07-{day:02}T08:00:00Z"));
        let reply = send(
            &app,
            TestRequest::post()
                .uri("/vcon?ingress_lists=calls")
                .set_payload(text.clone()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        uuids.push(uuid);
        texts.push(text);
    }
    let done = format!("{p}done");
    common::wait_until("every vCon is on the egress list", || {
        let done = done.clone();
        async move { common::redis_list(&done).len() == 8 }
    })
    .await;
    for (day, (uuid, text)) in (1..).zip(uuids.iter().zip(&texts)) {
        assert_eq!(
            place
                .read(&format!("2024/07/{day:02}/{uuid}.vcon"))
                .await
                .as_ref(),
            Some(text)
        );
    }

    // The Redis copy is gone: the API reads the vCon back from S3, byte for byte.
    let id = &uuids[3];
    common::redis_del(&format!("{p}vcon:{id}"));
    let reply = send(&app, TestRequest::get().uri(&format!("/vcon/{id}"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), texts[3]);
    // DELETE /vcon removes the object and its pointer.
    let reply = send(&app, TestRequest::delete().uri(&format!("/vcon/{id}"))).await;
    assert!(reply.status.is_success(), "{}", reply.status);
    assert_eq!(place.read(&format!("2024/07/04/{id}.vcon")).await, None);
    assert_eq!(place.read(&format!("lookup/{id}.txt")).await, None);
}

#[actix_web::test]
async fn an_outage_dead_letters_holds_egress_and_reprocessing_writes_every_vcon() {
    let mut server = OwnServer::s3();
    let place = Place::new(server.http_url());
    place.wait_writable().await;
    let yaml = format!(
        "limits: {{http_timeout: 2}}\n{}chains:\n  main: {{links: [], storages: [s3], ingress_lists: [calls], egress_lists: [done], workers: 2}}\n",
        place.storage_yaml("    retry: {attempts: 2, initial_backoff: 0.05, max_backoff: 0.1}\n")
    );
    let state = common::state_for_role(&yaml, Backend::Redis, &[], Role::All).await;
    let app = common::service(&state).await;
    let _engine = common::start_engine(&state).await;
    let p = state.prefix.clone();
    let post = |uuid: &str| {
        TestRequest::post()
            .uri("/vcon?ingress_lists=calls")
            .set_payload(vcon(uuid, "2024-06-01T08:00:00Z"))
    };
    let before: Vec<String> = (0..3).map(|_| Uuid::new_v4().to_string()).collect();
    for uuid in &before {
        assert_eq!(send(&app, post(uuid)).await.status, StatusCode::CREATED);
    }
    let done = format!("{p}done");
    let dlq = format!("{p}DLQ:storage:s3");
    let lengths = |expected_done: usize, expected_dlq: usize| {
        let (done, dlq) = (done.clone(), dlq.clone());
        async move {
            common::redis_list(&done).len() == expected_done
                && common::redis_list(&dlq).len() == expected_dlq
        }
    };
    common::wait_until("the first vCons are written", || lengths(3, 0)).await;

    server.stop();
    let during: Vec<String> = (0..3).map(|_| Uuid::new_v4().to_string()).collect();
    for uuid in &during {
        assert_eq!(send(&app, post(uuid)).await.status, StatusCode::CREATED);
    }
    common::wait_until("the writes during the outage are dead-lettered", || {
        lengths(3, 3)
    })
    .await;
    let mut dead = common::redis_list(&dlq);
    dead.sort();
    let mut expected = during.clone();
    expected.sort();
    assert_eq!(dead, expected);
    assert_eq!(common::redis_list(&done).len(), 3, "egress is held back");

    server.resume();
    place.wait_writable().await;
    let reply = send(
        &app,
        TestRequest::post().uri("/dlq/storage/reprocess?storage_name=s3"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), json!(3));
    assert!(common::redis_list(&dlq).is_empty());
    let mut released = common::redis_list(&done);
    released.sort();
    let mut all: Vec<String> = before.iter().chain(&during).cloned().collect();
    all.sort();
    assert_eq!(released, all, "every vCon announced once");
    // Nothing lost: the store kept the first ones across its restart and has the others now.
    let mut expected_keys: Vec<String> = all
        .iter()
        .flat_map(|u| [format!("2024/06/01/{u}.vcon"), format!("lookup/{u}.txt")])
        .collect();
    expected_keys.sort();
    assert_eq!(place.keys().await, expected_keys);
}

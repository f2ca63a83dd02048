//! The `mongo` storage on a real MongoDB-protocol server (nx-27017, started by scripts/test;
//! a test that stops its server runs one of its own): save, get and delete; what it wrote read
//! back with the official driver, dates as BSON dates, and the two queries the README shows;
//! a document written as the Python server writes it read by conserver; a chain writing to it
//! through the engine; a cache miss served from it; refused vCons; an outage that
//! dead-letters and a reprocessing that writes every vCon once the server is back.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use conserver::api::Role;
use conserver::config::{Config, Env};
use conserver::engine::Pipelines;
use conserver::modules::ModuleContext;
use conserver::storages::{Saved, StorageError, Storages};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{self, send, Backend, OwnServer};

/// A database and collection of the test's own on `url`, dropped at the end.
struct Place {
    url: String,
    database: String,
    collection: String,
}

impl Place {
    fn new(url: String) -> Place {
        let id = Uuid::new_v4().simple().to_string();
        Place {
            url,
            database: format!("conserver_test_{}", &id[..12]),
            collection: "vcons".to_owned(),
        }
    }

    fn shared() -> Place {
        Place::new(common::mongo_url())
    }

    /// The `storages:` entry of a mongo storage named `mongo` writing here.
    fn storage_yaml(&self, retry: &str) -> String {
        format!(
            "storages:\n  mongo:\n    module: mongo\n    options: {{url: '{}', database: {}, collection: {}}}\n{retry}",
            self.url, self.database, self.collection
        )
    }

    /// The collection, through the driver (not through conserver).
    async fn collection(&self) -> mongodb::Collection<Document> {
        mongodb::Client::with_uri_str(&self.url)
            .await
            .expect("the driver reads the test URL")
            .database(&self.database)
            .collection(&self.collection)
    }

    async fn find(&self, filter: Document) -> Vec<Document> {
        let mut found: Vec<Document> = self
            .collection()
            .await
            .find(filter)
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("the cursor reads");
        found.sort_by(|a, b| a.get_str("_id").unwrap().cmp(b.get_str("_id").unwrap()));
        found
    }

    async fn ids(&self, filter: Document) -> Vec<String> {
        self.find(filter)
            .await
            .iter()
            .map(|d| d.get_str("_id").unwrap().to_owned())
            .collect()
    }

    async fn drop_database(&self) {
        if let Ok(client) = mongodb::Client::with_uri_str(&self.url).await {
            let _ = client.database(&self.database).drop().await;
        }
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

/// A vCon of `uuid` with a party reached at `mailto`/`tel`, created at `created_at`, and one
/// dialog that started then.
fn vcon(uuid: &str, created_at: &str, mailto: &str, tel: &str) -> String {
    json!({
        "uuid": uuid,
        "vcon": "0.4.0",
        "created_at": created_at,
        "subject": "billing",
        "parties": [{"name": "Agent", "tel": "+15550000"}, {"name": "Caller", "mailto": mailto, "tel": tel}],
        "dialog": [{"type": "text", "start": created_at, "parties": [1, 0], "body": "hello", "encoding": "none", "duration": 12.5}],
        "attachments": [],
        "analysis": [{"type": "summary", "vendor": "x", "body": "short"}],
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
async fn saves_replaces_reads_and_deletes_with_bson_dates() {
    let place = Place::shared();
    let storages = storages(&place.storage_yaml(""));
    let mongo = storages.get("mongo").unwrap();
    let uuid = Uuid::new_v4();
    let text = vcon(
        &uuid.to_string(),
        "2024-05-01T14:00:00.250+02:00",
        "ann@example.com",
        "+15550100",
    );
    mongo.save(&saved(&text)).await.unwrap();

    // What the driver sees: `_id` the uuid, dates as BSON dates in UTC, the rest as sent.
    let stored = place.find(doc! {"_id": uuid.to_string()}).await;
    assert_eq!(stored.len(), 1);
    let stored = &stored[0];
    assert_eq!(
        stored
            .get_datetime("created_at")
            .unwrap()
            .timestamp_millis(),
        1_714_564_800_250
    );
    let dialog = stored.get_array("dialog").unwrap()[0]
        .as_document()
        .unwrap();
    assert!(matches!(dialog.get("start"), Some(Bson::DateTime(_))));
    assert_eq!(dialog.get("duration"), Some(&Bson::Double(12.5)));
    assert_eq!(
        dialog.get_array("parties").unwrap(),
        &vec![Bson::Int32(1), Bson::Int32(0)]
    );
    assert_eq!(stored.get_str("subject").unwrap(), "billing");

    // Read back as the spec says: no `_id`, dates as RFC 3339 UTC with milliseconds.
    let mut expected: Value = serde_json::from_str(&text).unwrap();
    expected["created_at"] = json!("2024-05-01T12:00:00.250Z");
    expected["dialog"][0]["start"] = json!("2024-05-01T12:00:00.250Z");
    let read: Value = serde_json::from_str(&mongo.get(uuid).await.unwrap().unwrap()).unwrap();
    assert_eq!(read, expected);

    // A save replaces the whole document: a member the new version lacks is gone.
    let mut fewer: Value = serde_json::from_str(&text).unwrap();
    fewer.as_object_mut().unwrap().shift_remove("analysis");
    mongo.save(&saved(&fewer.to_string())).await.unwrap();
    let stored = place.find(doc! {"_id": uuid.to_string()}).await;
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains_key("analysis"), "{:?}", stored[0]);

    assert!(mongo.delete(uuid).await.unwrap());
    assert_eq!(mongo.get(uuid).await.unwrap(), None);
    assert!(!mongo.delete(uuid).await.unwrap());
    assert!(place.find(doc! {"_id": uuid.to_string()}).await.is_empty());
    place.drop_database().await;
}

#[tokio::test]
async fn a_document_the_python_server_wrote_is_read() {
    let place = Place::shared();
    let uuid = Uuid::new_v4().to_string();
    // pymongo's form: `_id` the uuid string, dates as BSON dates, `_id` last ($set upsert).
    let created = mongodb::bson::DateTime::from_millis(1_714_564_800_000);
    place
        .collection()
        .await
        .insert_one(doc! {
            "uuid": &uuid,
            "vcon": "0.0.1",
            "created_at": created,
            "parties": [{"tel": "+15550100", "meta": {"role": "customer"}}],
            "dialog": [{"type": "recording", "start": created, "duration": 30, "parties": [0]}],
            "_id": &uuid,
        })
        .await
        .unwrap();
    let storages = storages(&place.storage_yaml(""));
    let text = storages
        .get("mongo")
        .unwrap()
        .get(uuid.parse().unwrap())
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({
            "uuid": uuid,
            "vcon": "0.0.1",
            "created_at": "2024-05-01T12:00:00.000Z",
            "parties": [{"tel": "+15550100", "meta": {"role": "customer"}}],
            "dialog": [{"type": "recording", "start": "2024-05-01T12:00:00.000Z", "duration": 30, "parties": [0]}],
        })
    );
    place.drop_database().await;
}

#[tokio::test]
async fn refused_vcons_are_permanent_failures_with_the_reason() {
    let place = Place::shared();
    let storages = storages(&place.storage_yaml(""));
    let mongo = storages.get("mongo").unwrap();

    // A key BSON cannot hold (a NUL byte).
    let uuid = Uuid::new_v4();
    let bad_key = format!(
        r#"{{"uuid":"{uuid}","vcon":"0.4.0","created_at":"2024-05-01T12:00:00Z","parties":[{{"a\u0000b":1}}],"dialog":[]}}"#
    );
    let error = mongo.save(&saved(&bad_key)).await.unwrap_err();
    assert!(matches!(error, StorageError::Permanent { .. }), "{error:?}");
    let shown = conserver::report(&error).to_string();
    assert!(shown.contains(&uuid.to_string()), "{shown}");
    assert!(shown.to_lowercase().contains("null"), "{shown}");

    // A document over MongoDB's 16 MiB: refused before it is sent.
    let uuid = Uuid::new_v4();
    let big = format!(
        r#"{{"uuid":"{uuid}","vcon":"0.4.0","created_at":"2024-05-01T12:00:00Z","parties":[],"dialog":[],"attachments":[{{"body":"{}","encoding":"none"}}]}}"#,
        "x".repeat(17 * 1024 * 1024)
    );
    let error = mongo.save(&saved(&big)).await.unwrap_err();
    assert!(matches!(error, StorageError::Permanent { .. }), "{error:?}");
    assert!(
        error.to_string().contains("over MongoDB's document limit"),
        "{error}"
    );
    assert!(place.find(doc! {}).await.is_empty(), "nothing was written");
    place.drop_database().await;
}

#[actix_web::test]
async fn a_chain_writes_to_mongo_the_readme_queries_find_them_and_a_cache_miss_reads_them() {
    let place = Place::shared();
    let yaml = format!(
        "{}chains:\n  main: {{links: [], storages: [mongo], ingress_lists: [calls], egress_lists: [done], workers: 4}}\n",
        place.storage_yaml("")
    );
    let state = common::state_for_role(&yaml, Backend::Redis, &[], Role::All).await;
    let app = common::service(&state).await;
    let _engine = common::start_engine(&state).await;
    let p = state.prefix.clone();
    // Ten vCons, one a day from May 1st; every third from ann@, the others from bob@.
    let mut uuids = Vec::new();
    for day in 0..10u32 {
        let uuid = Uuid::new_v4().to_string();
        let mailto = if day % 3 == 0 {
            "ann@example.com"
        } else {
            "bob@example.com"
        };
        let body = vcon(
            &uuid,
            &format!("2024-05-{:02}T09:30:00Z", day + 1),
            mailto,
            &format!("+1555010{day}"),
        );
        let reply = send(
            &app,
            TestRequest::post()
                .uri("/vcon?ingress_lists=calls")
                .set_payload(body),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        uuids.push(uuid);
    }
    let done = format!("{p}done");
    common::wait_until("every vCon is on the egress list", || {
        let done = done.clone();
        async move { common::redis_list(&done).len() == 10 }
    })
    .await;

    // The README's first query: every vCon where a party's mailto (or tel) is X.
    let mut ann: Vec<String> = [0, 3, 6, 9].iter().map(|&d| uuids[d].clone()).collect();
    ann.sort();
    assert_eq!(
        place.ids(doc! {"parties.mailto": "ann@example.com"}).await,
        ann
    );
    assert_eq!(
        place.ids(doc! {"parties.tel": "+15550104"}).await,
        vec![uuids[4].clone()]
    );
    // The second: a created_at date range (May 3rd to 5th, both included).
    let from = mongodb::bson::DateTime::parse_rfc3339_str("2024-05-03T00:00:00Z").unwrap();
    let to = mongodb::bson::DateTime::parse_rfc3339_str("2024-05-06T00:00:00Z").unwrap();
    let mut in_range: Vec<String> = uuids[2..5].to_vec();
    in_range.sort();
    assert_eq!(
        place
            .ids(doc! {"created_at": {"$gte": from, "$lt": to}})
            .await,
        in_range
    );

    // A cache miss: the Redis copy is gone, the API reads it back from MongoDB and re-caches it.
    let id = &uuids[7];
    common::redis_del(&format!("{p}vcon:{id}"));
    let reply = send(&app, TestRequest::get().uri(&format!("/vcon/{id}"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let read = reply.json();
    assert_eq!(read["uuid"], json!(id));
    assert_eq!(read["created_at"], json!("2024-05-08T09:30:00.000Z"));
    assert_eq!(read["parties"][1]["mailto"], json!("bob@example.com"));
    let cached: Option<String> = redis::cmd("GET")
        .arg(format!("{p}vcon:{id}"))
        .query(
            &mut redis::Client::open(common::redis_url())
                .unwrap()
                .get_connection()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(
        cached.map(|t| serde_json::from_str::<Value>(&t).unwrap()),
        Some(read),
        "re-cached"
    );
    // DELETE /vcon removes it from MongoDB too.
    let reply = send(&app, TestRequest::delete().uri(&format!("/vcon/{id}"))).await;
    assert!(reply.status.is_success(), "{}", reply.status);
    assert!(place.ids(doc! {"_id": id}).await.is_empty());
    place.drop_database().await;
}

#[actix_web::test]
async fn an_outage_dead_letters_holds_egress_and_reprocessing_writes_every_vcon() {
    let mut server = OwnServer::mongo();
    let place = Place::new(server.mongo_url());
    let yaml = format!(
        "{}chains:\n  main: {{links: [], storages: [mongo], ingress_lists: [calls], egress_lists: [done], workers: 2}}\n",
        place.storage_yaml("    retry: {attempts: 2, initial_backoff: 0.05, max_backoff: 0.1}\n")
    );
    let state = common::state_for_role(&yaml, Backend::Redis, &[], Role::All).await;
    let app = common::service(&state).await;
    let _engine = common::start_engine(&state).await;
    let p = state.prefix.clone();
    let post = |uuid: &str| {
        TestRequest::post()
            .uri("/vcon?ingress_lists=calls")
            .set_payload(vcon(
                uuid,
                "2024-06-01T08:00:00Z",
                "ann@example.com",
                "+15550100",
            ))
    };
    let before: Vec<String> = (0..3).map(|_| Uuid::new_v4().to_string()).collect();
    for uuid in &before {
        assert_eq!(send(&app, post(uuid)).await.status, StatusCode::CREATED);
    }
    let done = format!("{p}done");
    let dlq = format!("{p}DLQ:storage:mongo");
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
    let reply = send(
        &app,
        TestRequest::post().uri("/dlq/storage/reprocess?storage_name=mongo"),
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
    // Nothing lost: the server kept the first ones across its restart and has the others now.
    assert_eq!(place.ids(doc! {}).await, all);
}

//! The `vcon_mcp` storage against an in-process peer that answers as vcon-mcp's REST API does
//! (its routes `POST /vcons`, `GET`/`DELETE /vcons/:uuid`, its bearer-key check and its JSON
//! envelopes): save, get, delete, the classification of its failures, a chain writing to it, a
//! cache miss served from it, and the server unavailable mid-run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use conserver::api::Role;
use conserver::config::{Config, Env};
use conserver::engine::Pipelines;
use conserver::modules::ModuleContext;
use conserver::storages::{Saved, Storage, StorageError};
use serde_json::{json, Value};
use uuid::Uuid;
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{self, send, Backend, TestState};

const KEY: &str = "k-test-123";

/// What the peer holds, and how it behaves.
#[derive(Clone, Default)]
struct Peer {
    vcons: Arc<Mutex<HashMap<String, Value>>>,
    /// Answers 503 to everything (the server restarting, its database away).
    down: Arc<AtomicBool>,
    /// Accepted `POST /vcons` per uuid.
    posts: Arc<Mutex<HashMap<String, usize>>>,
}

fn envelope_error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "success": false,
        "error": if status >= 500 { "Internal Server Error" } else { "Error" },
        "message": message,
    }))
}

impl Respond for Peer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.down.load(Ordering::SeqCst) {
            return ResponseTemplate::new(503).set_body_json(json!({
                "status": "unhealthy", "database": "error", "error": "Connection refused"
            }));
        }
        let bearer = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match bearer {
            None => {
                return ResponseTemplate::new(401).set_body_json(json!({
                    "error": "Unauthorized",
                    "message": "Missing Authorization: Bearer <token> header"
                }))
            }
            Some(key) if key != KEY => {
                return ResponseTemplate::new(401)
                    .set_body_json(json!({"error": "Unauthorized", "message": "Invalid API key"}))
            }
            Some(_) => {}
        }
        let path = request.url.path().trim_start_matches("/api/v1/vcons");
        match (request.method.as_str(), path) {
            ("POST", "") => {
                let Ok(vcon) = serde_json::from_slice::<Value>(&request.body) else {
                    return envelope_error(400, "Invalid JSON");
                };
                if !vcon["parties"].is_array() {
                    return envelope_error(400, "Missing required field: parties");
                }
                let uuid = vcon["uuid"].as_str().unwrap_or_default().to_owned();
                *self.posts.lock().unwrap().entry(uuid.clone()).or_default() += 1;
                self.vcons.lock().unwrap().insert(uuid.clone(), vcon);
                ResponseTemplate::new(201).set_body_json(json!({
                    "success": true, "uuid": uuid, "id": "42",
                    "message": "vCon created successfully", "duration_ms": 3
                }))
            }
            (method, one) if one.starts_with('/') => {
                let uuid = &one[1..];
                if Uuid::parse_str(uuid).is_err() {
                    return envelope_error(400, "Invalid UUID format");
                }
                let not_found = || envelope_error(404, &format!("vCon with UUID {uuid} not found"));
                match method {
                    "GET" => match self.vcons.lock().unwrap().get(uuid) {
                        Some(vcon) => ResponseTemplate::new(200)
                            .set_body_json(json!({"success": true, "vcon": vcon})),
                        None => not_found(),
                    },
                    "DELETE" => match self.vcons.lock().unwrap().remove(uuid) {
                        Some(_) => ResponseTemplate::new(200).set_body_json(json!({
                            "success": true, "message": format!("vCon {uuid} deleted successfully")
                        })),
                        None => not_found(),
                    },
                    _ => envelope_error(405, "Method Not Allowed"),
                }
            }
            _ => envelope_error(404, "Not Found"),
        }
    }
}

async fn peer() -> (MockServer, Peer) {
    let server = MockServer::start().await;
    let peer = Peer::default();
    Mock::given(path_regex("^/api/v1/vcons"))
        .respond_with(peer.clone())
        .mount(&server)
        .await;
    (server, peer)
}

fn storage(yaml_options: &str) -> Arc<dyn Storage> {
    let yaml = format!("storages:\n  mcp:\n    module: vcon_mcp\n    options: {yaml_options}\n");
    let config = Config::from_yaml(&yaml, None, &Env::default())
        .unwrap_or_else(|e| panic!("the test config is valid: {e}"));
    let context = ModuleContext::new(
        config.limits.clone(),
        Arc::new(conserver::metrics::Metrics::new()),
        Arc::new(conserver::store::memory::MemoryStore::new(
            conserver::server::store_settings(&config),
        )),
    );
    Pipelines::build(&config, &context, None)
        .unwrap_or_else(|problems| panic!("storages build: {problems:?}"))
        .storages
        .get("mcp")
        .expect("the storage mcp is configured")
        .clone()
}

fn options(server: &MockServer, key: &str) -> String {
    format!(
        "{{base_url: '{}/api/v1/', api_key: '{key}', timeout: 5}}",
        server.uri()
    )
}

fn vcon_text(uuid: Uuid, subject: &str) -> String {
    json!({
        "vcon": "0.4.0", "uuid": uuid.to_string(), "created_at": "2024-05-01T12:00:00Z",
        "subject": subject, "parties": [{"tel": "+15550100", "name": "Ann"}], "dialog": []
    })
    .to_string()
}

fn saved(uuid: Uuid, text: String) -> Saved {
    Saved::from_text(uuid, text).unwrap()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn save_get_and_delete_go_through_the_rest_api_with_the_bearer_key() {
    let (server, peer) = peer().await;
    let storage = storage(&options(&server, KEY));
    let uuid = Uuid::new_v4();
    let text = vcon_text(uuid, "Billing");
    storage.save(&saved(uuid, text.clone())).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    let post = &requests[0];
    assert_eq!(post.method.as_str(), "POST");
    assert_eq!(post.url.path(), "/api/v1/vcons", "no doubled slash");
    assert_eq!(post.headers["authorization"], format!("Bearer {KEY}"));
    assert_eq!(post.headers["content-type"], "application/json");
    assert!(post.headers["user-agent"]
        .to_str()
        .unwrap()
        .starts_with("conserver/"));
    assert_eq!(
        String::from_utf8_lossy(&post.body),
        text,
        "the vCon as stored"
    );
    assert_eq!(
        peer.vcons.lock().unwrap()[&uuid.to_string()],
        json_of(&text)
    );

    // A second save upserts.
    let changed = vcon_text(uuid, "Refund");
    storage.save(&saved(uuid, changed.clone())).await.unwrap();
    assert_eq!(peer.vcons.lock().unwrap().len(), 1);

    let read = storage.get(uuid).await.unwrap().expect("found");
    assert_eq!(json_of(&read), json_of(&changed));
    assert!(storage.delete(uuid).await.unwrap());
    assert_eq!(storage.get(uuid).await.unwrap(), None, "404 is absent");
    assert!(!storage.delete(uuid).await.unwrap(), "404 deletes nothing");
}

#[tokio::test]
async fn failures_are_classified_with_the_server_s_message() {
    let (server, peer) = peer().await;
    let uuid = Uuid::new_v4();
    let vcon = saved(uuid, vcon_text(uuid, "x"));

    let wrong_key = storage(&options(&server, "not-the-key"));
    let error = wrong_key.save(&vcon).await.unwrap_err();
    assert!(matches!(error, StorageError::Permanent { .. }), "{error:?}");
    assert!(error.to_string().ends_with(": Invalid API key"), "{error}");
    let shown = conserver::report(&error).to_string();
    assert!(shown.contains("401"), "{shown}");
    assert!(
        !shown.contains("not-the-key"),
        "the key is never shown: {shown}"
    );
    let no_key = storage(&format!("{{base_url: '{}/api/v1'}}", server.uri()));
    let error = no_key.get(uuid).await.unwrap_err();
    assert!(
        error.to_string().contains("Missing Authorization"),
        "{error}"
    );

    let right = storage(&options(&server, KEY));
    let without_parties = saved(uuid, format!(r#"{{"uuid":"{uuid}","vcon":"0.4.0"}}"#));
    let error = right.save(&without_parties).await.unwrap_err();
    assert!(matches!(error, StorageError::Permanent { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .ends_with(": Missing required field: parties"),
        "{error}"
    );

    peer.down.store(true, Ordering::SeqCst);
    for call in ["save", "get", "delete"] {
        let error = match call {
            "save" => right.save(&vcon).await.unwrap_err(),
            "get" => right.get(uuid).await.unwrap_err(),
            _ => right.delete(uuid).await.unwrap_err(),
        };
        assert!(
            matches!(error, StorageError::Transient { .. }),
            "{call}: {error:?}"
        );
    }
    peer.down.store(false, Ordering::SeqCst);

    // Throttled: transient. A GET answer that is not the documented envelope: permanent.
    let odd = MockServer::start().await;
    Mock::given(path_regex("^/api/v1/vcons$"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .mount(&odd)
        .await;
    Mock::given(path_regex("^/api/v1/vcons/"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>ok</html>"))
        .mount(&odd)
        .await;
    let odd_storage = storage(&options(&odd, KEY));
    let error = odd_storage.save(&vcon).await.unwrap_err();
    assert!(matches!(error, StorageError::Transient { .. }), "{error:?}");
    let error = odd_storage.get(uuid).await.unwrap_err();
    assert!(matches!(error, StorageError::Permanent { .. }), "{error:?}");

    // Nobody listening: transient.
    let nobody = storage(&format!(
        "{{base_url: 'http://127.0.0.1:{}/api/v1', timeout: 2}}",
        common::free_port()
    ));
    let error = nobody.save(&vcon).await.unwrap_err();
    assert!(matches!(error, StorageError::Transient { .. }), "{error:?}");
}

/// A chain writing to the storage `mcp` of `server`, with quick retries.
fn chain_yaml(server: &MockServer) -> String {
    format!(
        "storages:\n  mcp:\n    module: vcon_mcp\n    options: {}\n    \
         retry: {{attempts: 2, initial_backoff: 0.05, max_backoff: 0.1}}\n\
         chains:\n  main:\n    links: []\n    storages: [mcp]\n    ingress_lists: [calls]\n    \
         egress_lists: [done]\n    workers: 4\n",
        options(server, KEY)
    )
}

fn redis() -> redis::Connection {
    redis::Client::open(common::redis_url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn llen(key: &str) -> u64 {
    redis::cmd("LLEN").arg(key).query(&mut redis()).unwrap()
}

async fn post_vcons(state: &TestState, n: usize) -> Vec<Uuid> {
    let app = common::service(state).await;
    let mut uuids = Vec::new();
    for i in 0..n {
        let uuid = Uuid::new_v4();
        let reply = send(
            &app,
            TestRequest::post()
                .uri("/vcon?ingress_lists=calls")
                .set_payload(vcon_text(uuid, &format!("call {i}"))),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        uuids.push(uuid);
    }
    uuids
}

#[actix_web::test]
async fn a_chain_writes_to_vcon_mcp_and_a_cache_miss_is_served_from_it() {
    let (server, peer) = peer().await;
    let state = common::state_for_role(&chain_yaml(&server), Backend::Redis, &[], Role::All).await;
    let p = state.prefix.clone();
    let _engine = common::start_engine(&state).await;
    let uuids = post_vcons(&state, 10).await;
    common::eventually("every vCon is on the egress list", || {
        llen(&format!("{p}done")) == 10
    })
    .await;
    for (i, uuid) in uuids.iter().enumerate() {
        let held = peer.vcons.lock().unwrap()[&uuid.to_string()].clone();
        assert_eq!(held["subject"], format!("call {i}"));
    }

    let app = common::service(&state).await;
    let id = uuids[2];
    let cached = send(&app, TestRequest::get().uri(&format!("/vcon/{id}")))
        .await
        .json();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{p}vcon:{id}"))
        .query(&mut redis())
        .unwrap();
    let reply = send(&app, TestRequest::get().uri(&format!("/vcon/{id}"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), cached, "served from vcon-mcp");
    let recached: Option<String> = redis::cmd("GET")
        .arg(format!("{p}vcon:{id}"))
        .query(&mut redis())
        .unwrap();
    assert_eq!(json_of(&recached.expect("re-cached")), cached);

    let reply = send(&app, TestRequest::delete().uri(&format!("/vcon/{id}"))).await;
    assert!(reply.status.is_success(), "{}", reply.status);
    assert!(!peer.vcons.lock().unwrap().contains_key(&id.to_string()));

    let config = send(&app, TestRequest::get().uri("/config")).await;
    assert_eq!(config.status, StatusCode::OK, "{}", config.text());
    assert!(!config.text().contains(KEY), "{}", config.text());
    assert_eq!(
        config.json()["storages"]["mcp"]["options"]["api_key"],
        "***"
    );
}

#[actix_web::test]
async fn vcon_mcp_unavailable_mid_run_dead_letters_then_reprocessing_writes_each_once() {
    let (server, peer) = peer().await;
    let state = common::state_for_role(&chain_yaml(&server), Backend::Redis, &[], Role::All).await;
    let p = state.prefix.clone();
    let _engine = common::start_engine(&state).await;
    let before = post_vcons(&state, 5).await;
    common::eventually("the first vCons are on the egress list", || {
        llen(&format!("{p}done")) == 5
    })
    .await;

    peer.down.store(true, Ordering::SeqCst);
    let during = post_vcons(&state, 5).await;
    common::eventually(
        "the vCons written while vcon-mcp is down are dead-lettered",
        || llen(&format!("{p}DLQ:storage:mcp")) == 5,
    )
    .await;
    assert_eq!(llen(&format!("{p}done")), 5, "their egress is held back");

    peer.down.store(false, Ordering::SeqCst);
    let app = common::service(&state).await;
    let reply = send(
        &app,
        TestRequest::post().uri("/dlq/storage/reprocess?storage_name=mcp"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text().trim(), "5");
    assert_eq!(llen(&format!("{p}DLQ:storage:mcp")), 0);
    assert_eq!(llen(&format!("{p}done")), 10, "egress released");
    let posts = peer.posts.lock().unwrap().clone();
    for uuid in before.iter().chain(&during) {
        assert_eq!(
            posts.get(&uuid.to_string()),
            Some(&1),
            "{uuid} written once"
        );
    }
}

//! The network links (`webhook`, `http_link`) and the `webhook` storage against in-process
//! HTTP peers (wiremock): what is sent, how each answer is handled, and which failures are
//! retried.

use std::sync::Arc;
use std::time::Duration;

use conserver::config::{Config, Env, Module, Retry};
use conserver::links::{self, Link, LinkContext, LinkKind, LinkOutcome, RunEffects};
use conserver::metrics::Metrics;
use conserver::modules::{Kind, ModuleContext, Resolved};
use conserver::storages::{Saved, Storage, StorageError, StorageKind};
use conserver::vcon::Document;
use serde_json::{json, Value};
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const UUID: &str = "0191a3f4-5b6c-7d8e-9f00-00000000a001";
const OTHER_UUID: &str = "0191a3f4-5b6c-7d8e-9f00-00000000a002";

/// What the modules are built with: the default limits, a registry of their own, a store
/// (unused by these modules).
fn shared() -> ModuleContext {
    let config = Config::from_yaml("{}", None, &Env::default()).expect("the empty config compiles");
    let store = Arc::new(conserver::store::memory::MemoryStore::new(
        conserver::server::store_settings(&config),
    ));
    ModuleContext::new(config.limits, Arc::new(Metrics::new()), store)
}

/// An instance whose retries are fast: 3 tries, 10 ms apart at most.
fn module<K: Kind>(name: &str, kind: &str, options: Value) -> Module<K> {
    let Resolved::Built(kind) = K::resolve(kind) else {
        panic!("{kind} is not a module of this build");
    };
    Module {
        name: name.to_owned(),
        kind,
        options: options.as_object().cloned().unwrap_or_default(),
        retry: Retry {
            attempts: 3,
            initial_backoff: Duration::from_secs_f64(0.01),
            max_backoff: Duration::from_secs_f64(0.01),
            multiplier: 2.0,
        },
    }
}

/// The link `module`, built as the engine builds it.
fn build(module: Module<LinkKind>, ctx: &ModuleContext) -> Arc<dyn Link> {
    module.kind.build(&module, ctx).unwrap()
}

/// An error with its causes, as the log shows it.
fn shown(error: &links::LinkError) -> String {
    conserver::report(error).to_string()
}

fn vcon_text(uuid: &str) -> String {
    json!({"vcon": "0.3.0", "uuid": uuid, "created_at": "2024-05-01T10:00:00Z", "parties": [{"tel": "+15551230000"}]})
        .to_string()
}

fn document() -> Document {
    Document::from_stored(UUID.parse().unwrap(), vcon_text(UUID)).unwrap()
}

async fn run(link: &Arc<dyn Link>, vcon: &mut Document) -> Result<LinkOutcome, links::LinkError> {
    let mut effects = RunEffects::default();
    let mut ctx = LinkContext {
        chain: "main",
        link: "custom",
        ingress_list: "default",
        effects: &mut effects,
    };
    link.run(vcon, &mut ctx).await
}

fn retries(shared: &ModuleContext, component: &str, reason: &str) -> u64 {
    shared
        .metrics
        .retries
        .with_label_values(&[component, reason])
        .get()
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

// ---------------------------------------------------------------- webhook link

fn webhook(server: &MockServer, shared: &ModuleContext, extra: Value) -> Arc<dyn Link> {
    let mut options =
        json!({"webhook-urls": [format!("{}/hook", server.uri())], "headers": {"X-Token": "t"}});
    options
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    build(module("hook", "webhook", options), shared)
}

#[tokio::test]
async fn webhook_posts_the_stored_text_and_continues() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(header("content-type", "application/json"))
        .and(header("x-token", "t"))
        .and(body_string(vcon_text(UUID)))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let shared = shared();
    let link = webhook(&server, &shared, json!({}));
    let mut vcon = document();
    assert_eq!(run(&link, &mut vcon).await.unwrap(), LinkOutcome::Continue);
    assert!(!vcon.is_changed());
    let user_agent = requests(&server).await[0].headers["user-agent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(user_agent.starts_with("conserver/"), "{user_agent}");
}

#[tokio::test]
async fn webhook_retries_a_500_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let shared = shared();
    let link = webhook(&server, &shared, json!({}));
    assert_eq!(
        run(&link, &mut document()).await.unwrap(),
        LinkOutcome::Continue
    );
    assert_eq!(retries(&shared, "hook", "5xx"), 2);
}

#[tokio::test]
async fn webhook_fails_when_the_500s_outlast_the_retries() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("down for maintenance"))
        .expect(3)
        .mount(&server)
        .await;
    let shared = shared();
    let error = run(&webhook(&server, &shared, json!({})), &mut document())
        .await
        .unwrap_err();
    assert!(shown(&error).contains("503"), "{error}");
    assert!(shown(&error).contains("down for maintenance"), "{error}");
}

#[tokio::test]
async fn webhook_404_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let shared = shared();
    let error = run(&webhook(&server, &shared, json!({})), &mut document())
        .await
        .unwrap_err();
    assert!(shown(&error).contains("404"), "{error}");
    assert_eq!(retries(&shared, "hook", "other"), 0);
}

#[tokio::test]
async fn webhook_with_fail_on_non_2xx_false_ignores_the_status() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let shared = shared();
    let link = webhook(&server, &shared, json!({"fail_on_non_2xx": false}));
    assert_eq!(
        run(&link, &mut document()).await.unwrap(),
        LinkOutcome::Continue
    );
}

#[tokio::test]
async fn webhook_posts_to_each_url_in_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&server)
        .await;
    let shared = shared();
    let urls = json!([format!("{}/a", server.uri()), format!("{}/b", server.uri())]);
    let link = build(
        module("hook", "webhook", json!({"webhook-urls": urls})),
        &shared,
    );
    run(&link, &mut document()).await.unwrap();
    let paths: Vec<String> = requests(&server)
        .await
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(paths, ["/a", "/b"]);
}

#[tokio::test]
async fn webhook_connection_failures_are_retried_then_fail() {
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let shared = shared();
    let options = json!({"webhook-urls": [format!("http://127.0.0.1:{port}/hook")]});
    let link = build(module("hook", "webhook", options), &shared);
    assert!(run(&link, &mut document()).await.is_err());
    assert_eq!(retries(&shared, "hook", "connect"), 2);
}

// ---------------------------------------------------------------- http_link

fn http_link(server: &MockServer, shared: &ModuleContext, extra: Value) -> Arc<dyn Link> {
    let mut options = json!({"url": format!("{}/process", server.uri())});
    options
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    build(module("custom", "http_link", options), shared)
}

#[tokio::test]
async fn http_link_replaces_the_vcon_with_the_answer() {
    let server = MockServer::start().await;
    let answer = json!({"vcon": "0.3.0", "uuid": UUID, "created_at": "2024-05-01T10:00:00Z", "subject": "processed"});
    Mock::given(method("POST"))
        .and(path("/process"))
        .and(header("x-conserver-link-protocol", "1"))
        .and(header("x-conserver-chain", "main"))
        .and(header("x-conserver-link", "custom"))
        .and(header("x-vcon-uuid", UUID))
        .and(header("content-type", "application/json"))
        .and(header("x-extra", "yes"))
        .and(body_string(vcon_text(UUID)))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(serde_json::to_string_pretty(&answer).unwrap()),
        )
        .expect(1)
        .mount(&server)
        .await;
    let shared = shared();
    let link = http_link(&server, &shared, json!({"headers": {"X-Extra": "yes"}}));
    let mut vcon = document();
    assert_eq!(run(&link, &mut vcon).await.unwrap(), LinkOutcome::Continue);
    assert!(vcon.is_changed());
    assert_eq!(vcon.value()["subject"], "processed");
    assert_eq!(
        vcon.text(),
        answer.to_string(),
        "stored compact, as a POSTed vCon"
    );
}

#[tokio::test]
async fn http_link_answer_with_another_uuid_makes_a_new_vcon() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(201).set_body_string(vcon_text(OTHER_UUID)))
        .expect(1)
        .mount(&server)
        .await;
    let shared = shared();
    let link = http_link(&server, &shared, json!({"method": "PUT"}));
    let mut vcon = document();
    assert_eq!(run(&link, &mut vcon).await.unwrap(), LinkOutcome::Continue);
    assert_eq!(vcon.uuid().to_string(), OTHER_UUID);
}

#[tokio::test]
async fn http_link_204_and_empty_answers_leave_the_vcon_unchanged() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(" \n"))
        .mount(&server)
        .await;
    let shared = shared();
    let link = http_link(&server, &shared, json!({}));
    for _ in 0..2 {
        let mut vcon = document();
        assert_eq!(run(&link, &mut vcon).await.unwrap(), LinkOutcome::Continue);
        assert!(!vcon.is_changed());
    }
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn http_link_halt_status_halts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(409))
        .expect(1)
        .mount(&server)
        .await;
    let shared = shared();
    let link = http_link(&server, &shared, json!({"halt_status": 409}));
    let mut vcon = document();
    assert_eq!(run(&link, &mut vcon).await.unwrap(), LinkOutcome::Halt);
    assert!(!vcon.is_changed());
}

#[tokio::test]
async fn http_link_invalid_answers_fail_at_once() {
    for body in ["not json", r#"{"uuid": "nope"}"#, "[1, 2]"] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .expect(1)
            .mount(&server)
            .await;
        let shared = shared();
        let mut vcon = document();
        let error = run(&http_link(&server, &shared, json!({})), &mut vcon)
            .await
            .unwrap_err();
        assert!(
            shown(&error).contains("not a valid vCon"),
            "{body}: {error}"
        );
        assert!(!vcon.is_changed());
        assert_eq!(vcon.uuid().to_string(), UUID);
    }
}

#[tokio::test]
async fn http_link_other_statuses_fail_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string("bad input"))
        .expect(1)
        .mount(&server)
        .await;
    let shared = shared();
    let error = run(&http_link(&server, &shared, json!({})), &mut document())
        .await
        .unwrap_err();
    assert!(
        shown(&error).contains("400") && shown(&error).contains("bad input"),
        "{error}"
    );
}

#[tokio::test]
async fn http_link_retries_a_503_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "0"))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let shared = shared();
    let link = http_link(&server, &shared, json!({}));
    assert_eq!(
        run(&link, &mut document()).await.unwrap(),
        LinkOutcome::Continue
    );
    assert_eq!(retries(&shared, "custom", "5xx"), 2);
}

#[tokio::test]
async fn http_link_times_out_and_retries() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(500)))
        .expect(3)
        .mount(&server)
        .await;
    let shared = shared();
    let link = http_link(&server, &shared, json!({"timeout": 0.05}));
    assert!(run(&link, &mut document()).await.is_err());
    assert_eq!(retries(&shared, "custom", "timeout"), 2);
}

// ---------------------------------------------------------------- webhook storage

fn saved(text: String) -> Saved {
    Saved::from_text(UUID.parse().unwrap(), text).unwrap()
}

fn webhook_storage(server: &MockServer, shared: &ModuleContext) -> Arc<dyn Storage> {
    let options = json!({"webhook-urls": [format!("{}/store", server.uri())], "name": "legacy"});
    let module: Module<StorageKind> = module("hook_store", "webhook", options);
    module.kind.build(&module, shared).unwrap()
}

#[tokio::test]
async fn webhook_storage_posts_version_0_3_0_when_missing_or_legacy() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/store"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let shared = shared();
    let storage = webhook_storage(&server, &shared);
    let missing = format!(r#"{{"uuid":"{UUID}","created_at":"2024-05-01T10:00:00Z"}}"#);
    let legacy = format!(r#"{{"vcon":"0.0.1","uuid":"{UUID}"}}"#);
    let current = format!(r#"{{"vcon":"0.0.2","uuid":"{UUID}"}}"#);
    for text in [&missing, &legacy, &current] {
        storage.save(&saved(text.clone())).await.unwrap();
    }
    let bodies: Vec<String> = requests(&server)
        .await
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            format!(r#"{{"uuid":"{UUID}","created_at":"2024-05-01T10:00:00Z","vcon":"0.3.0"}}"#),
            format!(r#"{{"vcon":"0.3.0","uuid":"{UUID}"}}"#),
            current.clone(),
        ]
    );
}

#[tokio::test]
async fn webhook_storage_classifies_failures_for_the_sink() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403))
        .expect(1)
        .mount(&server)
        .await;
    let shared = shared();
    let storage = webhook_storage(&server, &shared);
    let transient = storage.save(&saved(vcon_text(UUID))).await.unwrap_err();
    assert!(
        matches!(transient, StorageError::Transient { .. }),
        "{transient}"
    );
    let permanent = storage.save(&saved(vcon_text(UUID))).await.unwrap_err();
    assert!(
        matches!(permanent, StorageError::Permanent { .. }),
        "{permanent}"
    );
}

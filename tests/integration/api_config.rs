//! `GET /config` redaction and `POST /config`: validated, written atomically, applied live.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::json;

use crate::common::{self, send};

const FILE: &str = r#"
api:
  tokens: [first-token]
storages:
  hook:
    module: storage.webhook
    options:
      webhook-urls: ["https://app:s3cret@hooks.example.com/vcons"]
      headers:
        Authorization: Bearer hunter2
        X-Api-Key: ${HOOK_KEY}
chains:
  main:
    links: []
    ingress_lists: [default_ingress]
ingress_auth:
  default_ingress: partner-key
"#;

fn as_token(req: TestRequest, token: &str) -> TestRequest {
    req.insert_header(("x-conserver-api-token", token))
}

#[actix_web::test]
async fn get_config_redacts_secrets_and_keeps_references() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, FILE).unwrap();
    let state = common::file_state(&path, &[("HOOK_KEY", "k-123")]).await;
    let app = common::service(&state).await;
    let reply = send(
        &app,
        as_token(TestRequest::get().uri("/api/config"), "first-token"),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::OK,
            json!({
                "api": {"tokens": ["***"]},
                "storages": {"hook": {"module": "storage.webhook", "options": {
                    "webhook-urls": ["https://app:***@hooks.example.com/vcons"],
                    "headers": {"Authorization": "***", "X-Api-Key": "${HOOK_KEY}"}
                }}},
                "chains": {"main": {"links": [], "ingress_lists": ["default_ingress"]}},
                "ingress_auth": {"default_ingress": "***"}
            })
        )
    );
}

#[actix_web::test]
async fn post_config_validates_writes_and_applies_live() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, FILE).unwrap();
    let state = common::file_state(&path, &[("HOOK_KEY", "k-123")]).await;
    let app = common::service(&state).await;

    // An invalid config: every problem, nothing written, nothing changed.
    let invalid = json!({
        "api": {"tokens": "***"},
        "chains": {"main": {"links": ["missing_link"], "ingress_lists": ["default_ingress"]}},
        "storage": {}
    });
    let reply = send(
        &app,
        as_token(
            TestRequest::post().uri("/config").set_json(&invalid),
            "first-token",
        ),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text()
    );
    let problems = reply.json()["detail"].as_array().unwrap().clone();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems
        .iter()
        .all(|p| p["type"] == "config" && p["loc"][0] == "body"));
    let paths: Vec<&str> = problems
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"$.chains.main.links[0]"), "{paths:?}");
    assert!(paths.contains(&"$.storage"), "{paths:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);

    // A valid one posted back with "***": kept secrets, new token, new chain, applied now.
    let mut next = send(
        &app,
        as_token(TestRequest::get().uri("/config"), "first-token"),
    )
    .await
    .json();
    next["api"]["tokens"] = json!(["***", "second-token"]);
    next["chains"]["extra"] = json!({"links": [], "ingress_lists": ["extra_in"]});
    let reply = send(
        &app,
        as_token(
            TestRequest::post().uri("/config").set_json(&next),
            "first-token",
        ),
    )
    .await;
    assert_eq!(
        (reply.status, reply.text()),
        (StatusCode::NO_CONTENT, String::new())
    );
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(
        written.contains("hunter2")
            && written.contains("second-token")
            && written.contains("extra_in"),
        "{written}"
    );
    assert!(!written.contains("***"));
    // Both tokens work; the new chain reads its list.
    for token in ["first-token", "second-token"] {
        let reply = send(&app, as_token(TestRequest::get().uri("/chains"), token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{token}");
        assert_eq!(reply.json().as_array().unwrap().len(), 2);
    }
    let reply = send(
        &app,
        as_token(
            TestRequest::post().uri("/dlq/reprocess?ingress_list=extra_in"),
            "second-token",
        ),
    )
    .await;
    assert_eq!((reply.status, reply.json()), (StatusCode::OK, json!(0)));
    let metrics = send(&app, TestRequest::get().uri("/metrics")).await.text();
    assert!(
        metrics.contains(r#"conserver_config_reloads_total{outcome="applied"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"conserver_config_reloads_total{outcome="rejected"} 1"#),
        "{metrics}"
    );
}

#[actix_web::test]
async fn a_kept_secret_needs_a_current_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, FILE).unwrap();
    let state = common::file_state(&path, &[("HOOK_KEY", "k-123")]).await;
    let app = common::service(&state).await;
    let body = json!({"api": {"tokens": ["first-token"]}, "storages": {"s3": {"module": "s3", "options": {"aws_secret_access_key": "***"}}}});
    let reply = send(
        &app,
        as_token(
            TestRequest::post().uri("/config").set_json(&body),
            "first-token",
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.json()["detail"][0]["path"],
        "$.storages.s3.options.aws_secret_access_key"
    );
    let reply = send(
        &app,
        as_token(
            TestRequest::post().uri("/config").set_payload("[1]"),
            "first-token",
        ),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"type": "dict_type", "loc": ["body"], "path": "$", "msg": "the configuration must be a JSON object"}]})
        )
    );
}

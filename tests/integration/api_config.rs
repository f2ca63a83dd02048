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

/// A server on a public address whose only token is in the file.
const PUBLIC: &str = r#"
api:
  bind: 0.0.0.0:8000
  tokens: [only-token]
chains:
  main:
    links: []
    ingress_lists: [default_ingress]
"#;

#[actix_web::test]
async fn post_config_cannot_drop_the_tokens_of_a_public_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, PUBLIC).unwrap();
    let state = common::file_state(&path, &[]).await;
    let app = common::service(&state).await;

    // `{}` would drop every token (and move the server back to its default address): refused
    // by both rules, nothing written or applied.
    let reply = send(
        &app,
        as_token(
            TestRequest::post().uri("/config").set_json(json!({})),
            "only-token",
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = reply.json()["detail"].clone();
    let found: Vec<(&str, &str)> = detail
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].as_str().unwrap(), p["msg"].as_str().unwrap()))
        .collect();
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[0].0, "$.api.tokens");
    assert!(
        found[0]
            .1
            .starts_with("no API token is configured and the server listens on 0.0.0.0:8000"),
        "{found:?}"
    );
    assert_eq!(found[1].0, "$.api.tokens");
    assert!(
        found[1].1.contains("api.allow_auth_change_by_api: false"),
        "{found:?}"
    );
    assert_eq!(found[2].0, "$.api.bind");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), PUBLIC);
    let reply = send(&app, TestRequest::get().uri("/chains")).await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "still behind its token"
    );

    // Opening it explicitly, or replacing the token, or moving the server: refused too.
    for (body, refused) in [
        (
            json!({"api": {"bind": "0.0.0.0:8000", "allow_unauthenticated": true, "allow_auth_change_by_api": true}}),
            vec!["$.api.tokens"],
        ),
        (
            json!({"api": {"bind": "0.0.0.0:8000", "tokens": ["attacker"]}}),
            vec!["$.api.tokens"],
        ),
        (
            json!({"api": {"bind": "0.0.0.0:9999", "tokens": ["***"]}, "redis": {"url": "redis://elsewhere:6379"}}),
            vec!["$.api.bind", "$.redis.url"],
        ),
    ] {
        let reply = send(
            &app,
            as_token(
                TestRequest::post().uri("/config").set_json(&body),
                "only-token",
            ),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let paths: Vec<String> = reply.json()["detail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["path"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(paths, refused, "{body}");
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), PUBLIC);

    // Keeping the token and adding one is fine.
    let reply = send(
        &app,
        as_token(
            TestRequest::post().uri("/config").set_json(json!({
                "api": {"bind": "0.0.0.0:8000", "tokens": ["***", "second"]},
                "chains": {"main": {"links": [], "ingress_lists": ["default_ingress"]}}
            })),
            "only-token",
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    let reply = send(&app, as_token(TestRequest::get().uri("/chains"), "second")).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_running_config_that_allows_it_lets_the_api_replace_the_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(
        &path,
        PUBLIC.replace(
            "tokens: [only-token]",
            "tokens: [only-token]\n  allow_auth_change_by_api: true",
        ),
    )
    .unwrap();
    let state = common::file_state(&path, &[]).await;
    let app = common::service(&state).await;
    let reply = send(
        &app,
        as_token(
            TestRequest::post().uri("/config").set_json(json!({
                "api": {"bind": "0.0.0.0:8000", "tokens": ["rotated"]}
            })),
            "only-token",
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    let old = send(
        &app,
        as_token(TestRequest::get().uri("/chains"), "only-token"),
    )
    .await;
    let new = send(&app, as_token(TestRequest::get().uri("/chains"), "rotated")).await;
    assert_eq!(
        (old.status, new.status),
        (StatusCode::FORBIDDEN, StatusCode::OK)
    );
}

#[actix_web::test]
async fn a_reloaded_file_that_opens_a_public_server_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, PUBLIC).unwrap();
    let state = common::file_state(&path, &[]).await;
    let app = common::service(&state).await;
    std::fs::write(&path, PUBLIC.replace("  tokens: [only-token]\n", "")).unwrap();
    conserver::server::reload(&state.state, "test").await;
    let reply = send(&app, TestRequest::get().uri("/chains")).await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "the running tokens stay"
    );
    let metrics = send(&app, TestRequest::get().uri("/metrics")).await.text();
    assert!(
        metrics.contains(r#"conserver_config_reloads_total{outcome="rejected"} 1"#),
        "{metrics}"
    );
    // The file may change the tokens (it is the operator's own): a reload applies it.
    std::fs::write(&path, PUBLIC.replace("only-token", "from-file")).unwrap();
    conserver::server::reload(&state.state, "test").await;
    let reply = send(
        &app,
        as_token(TestRequest::get().uri("/chains"), "from-file"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_posted_configuration_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, FILE).unwrap();
    let state = common::file_state(&path, &[("HOOK_KEY", "k-123")]).await;
    let app = common::service(&state).await;
    let mut next = send(
        &app,
        as_token(TestRequest::get().uri("/config"), "first-token"),
    )
    .await
    .json();
    next["chains"]["main"]["workers"] = json!(2);
    let reply = send(
        &app,
        as_token(
            TestRequest::post().uri("/config").set_json(&next),
            "first-token",
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    // The watcher then sees the file it wrote: the same configuration, not applied again.
    conserver::server::reload(&state.state, "the config file changed").await;
    let metrics = send(&app, TestRequest::get().uri("/metrics")).await.text();
    assert!(
        metrics.contains(r#"conserver_config_reloads_total{outcome="applied"} 1"#),
        "{metrics}"
    );
    assert_eq!(state.state.config().chains[0].workers, 2);
}

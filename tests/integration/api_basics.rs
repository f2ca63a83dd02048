//! Conventions every route shares: both base paths, trailing slashes, version headers, JSON
//! 404/405, authentication, public routes, CORS, health, version, OpenAPI and metrics.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::json;

use crate::common::{self, send, Backend};

pub const TOKEN: &str = "test-token-1";

/// A config with one enabled chain, one disabled chain, a storage and an API token.
pub const CONFIG: &str = r#"
api:
  tokens: [test-token-1]
storages:
  files:
    module: storage.file
    options: {path: /tmp/conserver-test-files}
chains:
  main:
    links: []
    storages: [files]
    ingress_lists: [default_ingress]
    egress_lists: [processed]
    workers: 2
  paused:
    links: []
    ingress_lists: [paused_list]
    enabled: false
ingress_auth:
  partner_calls: [partner-key-1, partner-key-2]
  default_ingress: default-key
"#;

pub fn get(path: &str) -> TestRequest {
    TestRequest::get()
        .uri(path)
        .insert_header(("x-conserver-api-token", TOKEN))
}

pub fn post(path: &str) -> TestRequest {
    TestRequest::post()
        .uri(path)
        .insert_header(("x-conserver-api-token", TOKEN))
}

#[actix_web::test]
async fn every_route_is_served_under_the_prefix_and_at_the_root() {
    let state = common::state(CONFIG, Backend::Memory).await;
    let app = common::service(&state).await;
    for path in ["/version", "/api/version", "/version/", "/api/version/"] {
        let reply = send(&app, TestRequest::get().uri(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(
            reply.json(),
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "git_commit": conserver::version::GIT_COMMIT,
                "build_time": conserver::version::BUILD_TIME,
            })
        );
    }
    for path in [
        "/vcon/count?egress_list=x",
        "/api/vcon/count?egress_list=x",
        "/api/vcon/count/?egress_list=x",
    ] {
        let reply = send(&app, get(path)).await;
        assert_eq!(
            (reply.status, reply.json()),
            (StatusCode::OK, json!(0)),
            "{path}"
        );
    }
}

#[actix_web::test]
async fn unknown_paths_and_methods_answer_json_with_version_headers() {
    let state = common::state(CONFIG, Backend::Memory).await;
    let app = common::service(&state).await;
    for path in ["/nope", "/api/nope", "/api", "/vcon/a/b"] {
        let reply = send(&app, get(path)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.json(), json!({"detail": "Not Found"}));
        assert_eq!(
            reply.header("x-vcon-server-version"),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(
            reply.header("x-vcon-server-commit"),
            conserver::version::GIT_COMMIT
        );
    }
    // A literal path with a method it does not have is a 405, never read as a uuid.
    // Its `Allow` says what the resource serves.
    for (req, path, allow) in [
        (TestRequest::post(), "/vcon/egress", "GET, HEAD"),
        (TestRequest::delete(), "/vcon/count", "GET, HEAD"),
        (TestRequest::put(), "/vcon", "GET, HEAD, POST"),
        (TestRequest::get(), "/vcon/ingress", "POST"),
        (
            TestRequest::patch(),
            "/api/vcon/0191a3f4-5b6c-7d8e-9f00-112233445566",
            "GET, HEAD, DELETE",
        ),
        (TestRequest::put(), "/api/health", "GET, HEAD"),
    ] {
        let reply = send(
            &app,
            req.uri(path)
                .insert_header(("x-conserver-api-token", TOKEN)),
        )
        .await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(reply.json(), json!({"detail": "Method Not Allowed"}));
        assert_eq!(reply.header("allow"), allow, "{path}");
        assert!(reply.headers.contains_key("x-vcon-server-version"));
    }
}

#[actix_web::test]
async fn head_is_answered_like_get_without_a_body() {
    let state = common::state(CONFIG, Backend::Memory).await;
    let app = common::service(&state).await;
    for path in [
        "/health",
        "/api/health",
        "/api/ready",
        "/version",
        "/metrics",
    ] {
        let got = send(&app, get(path)).await;
        let head = send(
            &app,
            TestRequest::default()
                .method(actix_web::http::Method::HEAD)
                .uri(path),
        )
        .await;
        assert_eq!(head.status, got.status, "{path}");
        assert_eq!(
            head.header("content-type"),
            got.header("content-type"),
            "{path}"
        );
        assert!(head.text().is_empty(), "{path}: {}", head.text());
        assert!(!got.text().is_empty(), "{path}");
    }
    // A token route still needs its token; an unknown vCon is still a 404.
    let head = |uri: &str| {
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri(uri)
    };
    assert_eq!(
        send(&app, head("/api/chains")).await.status,
        StatusCode::FORBIDDEN
    );
    let missing = head("/vcon/0191a3f4-5b6c-7d8e-9f00-112233445566")
        .insert_header(("x-conserver-api-token", TOKEN));
    let reply = send(&app, missing).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.text().is_empty());
}

#[actix_web::test]
async fn token_routes_need_a_valid_token_and_public_routes_do_not() {
    let state = common::state(CONFIG, Backend::Memory).await;
    let app = common::service(&state).await;
    for token in [None, Some("wrong"), Some(""), Some("test-token-1 ")] {
        let mut req = TestRequest::get().uri("/api/vcon");
        if let Some(token) = token {
            req = req.insert_header(("x-conserver-api-token", token));
        }
        let reply = send(&app, req).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{token:?}");
        assert_eq!(reply.json(), json!({"detail": "Invalid API Key"}));
    }
    // Header names are case-insensitive.
    let reply = send(
        &app,
        TestRequest::get()
            .uri("/vcon")
            .insert_header(("X-Conserver-Api-Token", TOKEN)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    for path in [
        "/health",
        "/ready",
        "/version",
        "/metrics",
        "/openapi.json",
        "/stats/queue?list_name=x",
    ] {
        let reply = send(&app, TestRequest::get().uri(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path} is public");
    }
}

#[actix_web::test]
async fn tokens_come_from_the_environment_and_a_custom_header() {
    let yaml = "api:\n  header_name: X-My-Key\n";
    let state = common::state_with_env(
        yaml,
        Backend::Memory,
        &[("CONSERVER_API_TOKEN", "from-env")],
    )
    .await;
    let app = common::service(&state).await;
    let reply = send(
        &app,
        TestRequest::get()
            .uri("/vcon")
            .insert_header(("x-my-key", "from-env")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(
        &app,
        TestRequest::get()
            .uri("/vcon")
            .insert_header(("x-conserver-api-token", "from-env")),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::FORBIDDEN, json!({"detail": "Invalid API Key"}))
    );
}

#[actix_web::test]
async fn without_tokens_token_routes_are_open() {
    let state = common::state("", Backend::Memory).await;
    let app = common::service(&state).await;
    let reply = send(&app, TestRequest::get().uri("/vcon")).await;
    assert_eq!((reply.status, reply.json()), (StatusCode::OK, json!([])));
}

#[actix_web::test]
async fn health_and_ready_report_the_store() {
    for backend in [Backend::Memory, Backend::Redis] {
        let state = common::state(CONFIG, backend).await;
        let app = common::service(&state).await;
        let reply = send(&app, TestRequest::get().uri("/health")).await;
        assert_eq!(
            reply.json(),
            json!({"status": "healthy", "version": serde_json::to_value(conserver::version::info()).unwrap()})
        );
        let reply = send(&app, TestRequest::get().uri("/api/ready")).await;
        let kind = if backend == Backend::Redis {
            "redis"
        } else {
            "memory"
        };
        assert_eq!(
            (reply.status, reply.json()),
            (
                StatusCode::OK,
                json!({"status": "ready", "store": {"ok": true, "kind": kind}, "chains": {}})
            )
        );
    }
}

#[actix_web::test]
async fn cors_preflight_is_permissive_and_carries_the_version() {
    let state = common::state(CONFIG, Backend::Memory).await;
    let app = common::service(&state).await;
    let reply = send(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/api/vcon")
            .insert_header(("Origin", "https://app.example.com"))
            .insert_header(("Access-Control-Request-Method", "POST"))
            .insert_header((
                "Access-Control-Request-Headers",
                "x-conserver-api-token, content-type",
            )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert_eq!(reply.header("access-control-allow-credentials"), "true");
    assert!(reply.headers.contains_key("x-vcon-server-version"));
}

#[actix_web::test]
async fn openapi_lists_every_route_once_with_both_servers() {
    let state = common::state(CONFIG, Backend::Memory).await;
    let app = common::service(&state).await;
    let doc = send(&app, TestRequest::get().uri("/openapi.json"))
        .await
        .json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["servers"], json!([{"url": "/api"}, {"url": "/"}]));
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for path in [
        "/version",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/stats/queue",
        "/vcon",
        "/vcon/egress",
        "/vcon/count",
        "/vcon/{vcon_uuid}",
        "/vcons",
        "/vcons/search",
        "/vcon/external-ingress",
        "/vcon/ingress",
        "/chains",
        "/dlq",
        "/dlq/reprocess",
        "/dlq/storage",
        "/dlq/storage/reprocess",
        "/config",
        "/index_vcons",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
    assert_eq!(paths.len(), 21);
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"],
        json!({"type": "apiKey", "in": "header", "name": "x-conserver-api-token"})
    );
}

#[actix_web::test]
async fn metrics_count_requests_by_route_template() {
    let state = common::state(CONFIG, Backend::Memory).await;
    let app = common::service(&state).await;
    send(&app, get("/api/vcon/0191a3f4-5b6c-7d8e-9f00-112233445566")).await;
    send(&app, get("/vcon/0191a3f4-5b6c-7d8e-9f00-112233445577")).await;
    let reply = send(&app, TestRequest::get().uri("/metrics")).await;
    assert_eq!(reply.header("content-type"), "text/plain; version=0.0.4");
    let text = reply.text();
    assert!(
        text.contains(r#"conserver_http_requests_total{method="GET",route="/vcon/{vcon_uuid}",status="404"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"conserver_queue_depth{list="default_ingress"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"conserver_build_info{{git_commit="{}",version="{}"}} 1"#,
            conserver::version::GIT_COMMIT,
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(!text.contains("0191a3f4"), "no uuid in a label");
}

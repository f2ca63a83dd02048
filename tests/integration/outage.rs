//! Redis going away and coming back: requests get a 503 with a clear detail meanwhile (never
//! a hang), and the server recovers by itself. Uses a redis-server of the test's own.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use actix_web::web;
use conserver::api::{AppState, Role};
use conserver::config::{Config, Env};
use conserver::server::store_settings;
use serde_json::json;

use crate::common::{send, vcon_json, OwnRedis};

#[actix_web::test]
async fn requests_get_503_while_redis_is_down_and_succeed_after() {
    let mut redis = OwnRedis::start();
    let yaml = format!(
        "redis: {{url: '{}'}}\nchains: {{main: {{links: [], ingress_lists: [in]}}}}\n",
        redis.url()
    );
    let config = Config::from_yaml(&yaml, None, &Env::default()).unwrap();
    let store = conserver::store::open(config.redis.url.as_deref(), store_settings(&config))
        .await
        .unwrap();
    let state = web::Data::new(
        AppState::new(store, config, Env::default(), Role::Api).expect("modules build"),
    );
    let app = actix_web::test::init_service(conserver::api::app(state)).await;
    let uuid = "0193a3f4-5b6c-7d8e-9f00-000000000001";
    let body = vcon_json(uuid, "2024-01-01T00:00:00Z", json!([]));
    let post = || {
        TestRequest::post()
            .uri("/vcon?ingress_lists=in")
            .set_payload(body.clone())
    };
    assert_eq!(send(&app, post()).await.status, StatusCode::CREATED);

    redis.stop();
    let started = Instant::now();
    let reply = send(&app, post()).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no hang while Redis is down"
    );
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": "Redis is unavailable; the request can be retried when it is back"})
        )
    );
    let reply = send(&app, TestRequest::get().uri(&format!("/vcon/{uuid}"))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let reply = send(&app, TestRequest::get().uri("/ready")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["status"], "unavailable");
    assert_eq!(reply.json()["store"]["ok"], false);
    assert!(
        send(&app, TestRequest::get().uri("/health"))
            .await
            .status
            .is_success(),
        "liveness does not depend on Redis"
    );

    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = send(&app, post()).await;
        if reply.status == StatusCode::CREATED {
            break;
        }
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.text()
        );
        assert!(
            Instant::now() < deadline,
            "the server did not recover after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The new Redis is empty (no persistence): what was written after recovery is there.
    let reply = send(&app, TestRequest::get().uri(&format!("/vcon/{uuid}"))).await;
    assert_eq!((reply.status, reply.text()), (StatusCode::OK, body));
    assert_eq!(
        send(&app, TestRequest::get().uri("/ready")).await.status,
        StatusCode::OK
    );
}

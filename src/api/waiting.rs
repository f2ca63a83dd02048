//! What an instance serves while it waits for Redis at start: liveness (`/health`, `/version`)
//! answers, `/ready` and every other route answer 503 naming what is awaited, so a compose stack
//! or an orchestrator sees the instance alive and not yet ready.

use actix_web::{web, App, HttpResponse};
use serde_json::json;

use super::error::STORE_UNAVAILABLE;
use super::health;

/// The app of an instance waiting for `store` (`Redis at host:port`), under `prefix` and at the
/// root.
pub fn app(
    prefix: &str,
    store: String,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let store = web::Data::new(store);
    let prefix = prefix.to_owned();
    App::new()
        .app_data(store)
        .configure(move |cfg| {
            if !prefix.is_empty() {
                cfg.service(web::scope(&prefix).configure(routes));
            }
            routes(cfg);
        })
        .default_service(web::to(unavailable))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/version", web::get().to(health::version))
        .route("/ready", web::get().to(not_ready));
}

async fn not_ready(store: web::Data<String>) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({
        "status": "unavailable",
        "detail": format!("waiting for {}", store.as_str()),
        "store": {"ok": false},
    }))
}

async fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({ "detail": STORE_UNAVAILABLE }))
}

//! Liveness, readiness and version (api.md §5.1–5.3).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::state::AppState;
use crate::version;

/// How long `/ready` waits for the store's answer.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /version`.
#[utoipa::path(get, path = "/version", tag = "health",
    responses((status = 200, description = "this build", body = version::VersionInfo)))]
pub async fn version() -> HttpResponse {
    HttpResponse::Ok().json(version::info())
}

/// `GET /health`: liveness only; does not contact the store.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "`{status: healthy, version}`")))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "healthy", "version": version::info() }))
}

/// `GET /ready`: the store answers a ping within 2 s. This instance runs no chain consumers
/// yet (the processing engine comes with the worker role), so `chains` is empty.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready, with the reason")))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let kind = state.store.kind();
    let outcome = match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 2 s".to_owned()),
    };
    match outcome {
        Ok(()) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "store": {"ok": true, "kind": kind},
            "chains": {},
        })),
        Err(error) => {
            tracing::warn!(store = kind, %error, "not ready: the store does not answer");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "unavailable",
                "detail": format!("{kind}: {error}"),
                "store": {"ok": false, "kind": kind, "error": error},
                "chains": {},
            }))
        }
    }
}

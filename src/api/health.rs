//! Liveness, readiness and version (api.md §5.1–5.3).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::state::{AppState, Role};
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

/// `GET /ready`: the store answers a ping within 2 s, and every enabled chain has its
/// consumers running on this instance (none are expected with the API role).
#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready, with the reason")))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let kind = state.store.kind();
    let store = match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(crate::report(&e).to_string()),
        Err(_) => Err("no answer within 2 s".to_owned()),
    };
    let chains = chain_readiness(&state, store.is_ok()).await;
    let chains_ok = chains.values().all(|c| c["ok"] == true);
    match store {
        Ok(()) if chains_ok => HttpResponse::Ok().json(json!({
            "status": "ready",
            "store": {"ok": true, "kind": kind},
            "chains": chains,
        })),
        Ok(()) => {
            tracing::warn!("not ready: chain consumers are not running");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "unavailable",
                "detail": "chain consumers are not running",
                "store": {"ok": true, "kind": kind},
                "chains": chains,
            }))
        }
        Err(error) => {
            tracing::warn!(store = kind, %error, "not ready: the store does not answer");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "unavailable",
                "detail": format!("{kind}: {error}"),
                "store": {"ok": false, "kind": kind, "error": error},
                "chains": chains,
            }))
        }
    }
}

/// `{chain: {ok, workers} | {ok: false, error}}` for the enabled chains this instance runs.
async fn chain_readiness(
    state: &AppState,
    store_ok: bool,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    if state.role == Role::Api {
        return out;
    }
    let config = state.config();
    let running = match state.engine() {
        Some(engine) => engine.chains().await,
        None => Vec::new(),
    };
    for chain in config
        .chains
        .iter()
        .filter(|c| c.enabled && !c.ingress_lists.is_empty())
    {
        let status = running.iter().find(|c| c.name == chain.name);
        let entry = match status {
            Some(s) if s.running && store_ok => json!({"ok": true, "workers": s.workers}),
            _ if !store_ok => json!({"ok": false, "error": "consumers stopped: store unavailable"}),
            Some(_) => json!({"ok": false, "error": "consumers restarting"}),
            None => json!({"ok": false, "error": "consumers not started"}),
        };
        out.insert(chain.name.clone(), entry);
    }
    out
}

//! The dead-letter routes (api.md §5.18–5.21).

use actix_web::{web, HttpRequest, HttpResponse};

use super::auth;
use super::error::ApiError;
use super::ingest::{self, Source};
use super::params::Query;
use super::state::AppState;
use crate::engine::storage_phase::{reprocess_dead_letters, DeadLetters};

/// `GET /dlq`: the uuids in `DLQ:<ingress_list>`, oldest first.
#[utoipa::path(get, path = "/dlq", tag = "dlq",
    params(("ingress_list" = String, Query, description = "the ingress list")),
    responses((status = 200, description = "uuids, oldest first", body = Vec<String>), (status = 403), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn list_dlq(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::authorized(&req, &state)?;
    let mut query = Query::of(&req);
    let list = query.required("ingress_list");
    query.finish()?;
    let uuids = state
        .store
        .dlq_items(&list)
        .await
        .map_err(ApiError::store("Failed to read DLQ"))?;
    Ok(HttpResponse::Ok().json(uuids))
}

/// `POST /dlq/reprocess`: move up to `count` uuids from `DLQ:<list>` back to the list.
#[utoipa::path(post, path = "/dlq/reprocess", tag = "dlq",
    params(
        ("ingress_list" = String, Query, description = "the ingress list"),
        ("count" = Option<i64>, Query, description = "at most this many, 1 … 100000 (default 1000)")),
    responses((status = 200, description = "the number moved; repeat until 0", body = u64), (status = 403), (status = 404), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn reprocess_dlq(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let config = auth::authorized(&req, &state)?;
    let mut query = Query::of(&req);
    let list = query.required("ingress_list");
    let count = query.integer("count", 1000, 1, 100_000);
    query.finish()?;
    let lists = [list];
    ingest::require_chain_reads(&config, &lists)?;
    let moved = state
        .store
        .dlq_reprocess(&lists[0], count as usize)
        .await
        .map_err(ApiError::store("Failed to reprocess DLQ"))?;
    ingest::count_enqueued(&state, &lists, Source::DlqReprocess, moved as u64);
    if moved > 0 {
        tracing::info!(list = %lists[0], moved, "DLQ items moved back to their ingress list");
    }
    Ok(HttpResponse::Ok().json(moved))
}

/// `GET /dlq/storage`: the uuids whose write to a storage failed, oldest first.
#[utoipa::path(get, path = "/dlq/storage", tag = "dlq",
    params(("storage_name" = String, Query, description = "the storage name")),
    responses((status = 200, description = "uuids, oldest first", body = Vec<String>), (status = 403), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn list_storage_dlq(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::authorized(&req, &state)?;
    let mut query = Query::of(&req);
    let storage = query.required("storage_name");
    query.finish()?;
    let uuids = state
        .store
        .storage_dlq_items(&storage)
        .await
        .map_err(ApiError::store("Failed to read storage DLQ"))?;
    Ok(HttpResponse::Ok().json(uuids))
}

/// `POST /dlq/storage/reprocess`: retry the failed writes of one storage, oldest first; stop
/// at the first that fails again (it stays at the head).
#[utoipa::path(post, path = "/dlq/storage/reprocess", tag = "dlq",
    params(
        ("storage_name" = String, Query, description = "a configured storage"),
        ("count" = Option<i64>, Query, description = "at most this many, 1 … 100000 (default 1000)")),
    responses((status = 200, description = "the number of successful writes", body = u64), (status = 403), (status = 404), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn reprocess_storage_dlq(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let live = auth::authorized(&req, &state)?;
    let mut query = Query::of(&req);
    let name = query.required("storage_name");
    let count = query.integer("count", 1000, 1, 100_000);
    query.finish()?;
    let Some(module) = live.storages.iter().find(|m| m.name == name) else {
        return Err(ApiError::NotFound(format!(
            "Unknown storage backend: {name}"
        )));
    };
    let enqueue_lists: Vec<String> = live
        .chains
        .iter()
        .filter(|c| c.enabled)
        .flat_map(|c| c.ingress_lists.iter().cloned())
        .collect();
    let dead = DeadLetters {
        store: state.store.as_ref(),
        storages: &live.pipelines.storages,
        name: &name,
        retry: crate::http::retry_policy(&module.retry),
        enqueue_lists: &enqueue_lists,
        storage_fallback: live.redis.storage_fallback,
    };
    let written = reprocess_dead_letters(dead, count as usize)
        .await
        .map_err(ApiError::store("Failed to reprocess storage DLQ"))?;
    Ok(HttpResponse::Ok().json(written))
}

//! The queue routes: depth of any list, egress pop and count, and re-ingress of stored vCons
//! (api.md §5.6, §5.8, §5.9, §5.16).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use uuid::Uuid;

use super::auth;
use super::error::ApiError;
use super::ingest::{self, Source};
use super::params::Query;
use super::read::{read_vcons, Recache};
use super::state::AppState;
use crate::problem::Problem;
use crate::vcon;

/// `GET /stats/queue`: the length of any list. Public, for producers' back-pressure.
#[utoipa::path(get, path = "/stats/queue", tag = "queues",
    params(("list_name" = String, Query, description = "a list name (without redis.key_prefix)")),
    responses((status = 200, description = "`{list_name, depth}`"), (status = 422), (status = 500), (status = 503)))]
pub async fn queue_stats(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut query = Query::of(&req);
    let list = query.required("list_name");
    query.finish()?;
    let depth = state
        .store
        .list_len(&list)
        .await
        .map_err(ApiError::store("Failed to get queue depth"))?;
    Ok(HttpResponse::Ok().json(json!({ "list_name": list, "depth": depth })))
}

/// `GET /vcon/egress`: pop up to `limit` uuids from the head of an egress list.
#[utoipa::path(get, path = "/vcon/egress", tag = "queues",
    params(
        ("egress_list" = String, Query, description = "the egress list"),
        ("limit" = Option<i64>, Query, description = "at most this many, >= 0 (default 1)")),
    responses((status = 200, description = "uuids, oldest first", body = Vec<String>), (status = 403), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn pop_egress(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::authorized(&req, &state)?;
    let mut query = Query::of(&req);
    let list = query.required("egress_list");
    let limit = query.integer("limit", 1, 0, i64::MAX);
    query.finish()?;
    if limit == 0 {
        return Ok(HttpResponse::Ok().json(Vec::<String>::new()));
    }
    let uuids = state
        .store
        .pop_front(&list, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(ApiError::store("Failed to pop from egress list"))?;
    Ok(HttpResponse::Ok().json(uuids))
}

/// `GET /vcon/count`: the length of an egress list, as a bare integer.
#[utoipa::path(get, path = "/vcon/count", tag = "queues",
    params(("egress_list" = String, Query, description = "the egress list")),
    responses((status = 200, description = "the length", body = u64), (status = 403), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn count_egress(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::authorized(&req, &state)?;
    let mut query = Query::of(&req);
    let list = query.required("egress_list");
    query.finish()?;
    let depth = state
        .store
        .list_len(&list)
        .await
        .map_err(ApiError::store("Failed to count egress list"))?;
    Ok(HttpResponse::Ok().json(depth))
}

/// `POST /vcon/ingress`: queue stored vCons (a JSON array of uuids) onto an ingress list.
#[utoipa::path(post, path = "/vcon/ingress", tag = "queues",
    params(("ingress_list" = String, Query, description = "the ingress list")),
    request_body(content = Vec<String>, description = "uuids of stored vCons", content_type = "application/json"),
    responses((status = 204, description = "queued (unknown uuids are skipped)"), (status = 400), (status = 403), (status = 404), (status = 413), (status = 415), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn reingress(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (config, body) = auth::authorized_with_body(&req, &state)?;
    let mut query = Query::of(&req);
    let list = query.required("ingress_list");
    query.finish()?;
    let body = body.read(payload).await?;
    let document = parse_json(&body)?;
    let lists = [list];
    ingest::require_chain_reads(&config, &lists)?;
    let uuids = uuid_array(&document)?;
    if uuids.is_empty() {
        return Ok(HttpResponse::NoContent().finish());
    }
    let found = read_vcons(&state, &config, &uuids, Recache::Yes)
        .await
        .map_err(ApiError::store("Failed to add to ingress list"))?;
    let mut queued = Vec::with_capacity(uuids.len());
    for (uuid, text) in uuids.iter().zip(&found) {
        match text {
            Some(_) => queued.push(*uuid),
            None => tracing::warn!(vcon_id = %uuid, list = %lists[0], "vCon not found; not queued"),
        }
    }
    if !queued.is_empty() {
        state
            .store
            .enqueue(&lists[0], &queued)
            .await
            .map_err(ApiError::store("Failed to add to ingress list"))?;
        ingest::count_enqueued(&state, &lists, Source::Reingress, queued.len() as u64);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Parse a small JSON body (not a vCon): malformed → 400 with line and column.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::problem(Problem::body(
            "missing",
            vec![],
            "a request body is required",
        )));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson {
        line: e.line(),
        column: e.column(),
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned(),
    })
}

/// A JSON array of uuid strings; every bad element is reported.
fn uuid_array(document: &Value) -> Result<Vec<Uuid>, ApiError> {
    let Some(items) = document.as_array() else {
        return Err(ApiError::problem(
            Problem::body(
                "list_type",
                vec![],
                "the body must be a JSON array of vCon uuids",
            )
            .with_input(document),
        ));
    };
    let mut uuids = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str().and_then(vcon::parse_uuid) {
            Some(uuid) => uuids.push(uuid),
            None => problems.push(
                Problem::body(
                    "uuid_parsing",
                    vec![i.into()],
                    "each element must be a vCon uuid string",
                )
                .with_input(item),
            ),
        }
    }
    if problems.is_empty() {
        Ok(uuids)
    } else {
        Err(ApiError::Unprocessable(problems))
    }
}

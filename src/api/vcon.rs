//! The vCon routes: store, read, list, search and delete (api.md §5.7, §5.10–5.15).

use actix_web::{web, HttpRequest, HttpResponse};

use super::auth;
use super::body::BodyHeaders;
use super::error::ApiError;
use super::ingest::{self, Source};
use super::params::{path_uuid, Query};
use super::read::{read_vcon, read_vcons, Recache};
use super::state::AppState;
use crate::store::{ListQuery, SearchTerms};
use crate::vcon;

/// `POST /vcon`: validate, store exactly as posted, index, and enqueue on `ingress_lists`.
#[utoipa::path(post, path = "/vcon", tag = "vcon",
    params(("ingress_lists" = Option<Vec<String>>, Query, description = "lists to queue the vCon on, in order (repeat the parameter)")),
    request_body(content = Object, description = "a vCon: unsigned, signed (JWS) or encrypted (JWE)", content_type = "application/json"),
    responses((status = 201, description = "the stored vCon, byte for byte"), (status = 400), (status = 403), (status = 404), (status = 413), (status = 415), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn post_vcon(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (config, body) = auth::authorized_with_body(&req, &state)?;
    let lists = Query::of(&req).all("ingress_lists");
    let body = body.read(payload).await?;
    let vcon = ingest::store_posted(&state, &config, body, &lists, Source::New).await?;
    Ok(HttpResponse::Created()
        .content_type("application/json")
        .body(vcon.text))
}

/// `POST /vcon/external-ingress`: as `POST /vcon` with one list, authenticated by the list's key.
#[utoipa::path(post, path = "/vcon/external-ingress", tag = "vcon",
    params(("ingress_list" = String, Query, description = "the ingress list, which has its own keys in ingress_auth")),
    request_body(content = Object, description = "a vCon", content_type = "application/json"),
    responses((status = 204, description = "stored and queued"), (status = 400), (status = 403), (status = 404), (status = 413), (status = 415), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn external_ingress(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let config = state.config();
    let limit = config.api.max_body_bytes;
    let body = BodyHeaders::check(&req, limit)?;
    let mut query = Query::of(&req);
    let list = query.required("ingress_list");
    query.finish()?;
    auth::require_ingress_key(&req, &config, &list)?;
    let body = body.read(payload).await?;
    ingest::store_posted(&state, &config, body, &[list], Source::External).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /vcon/{vcon_uuid}`: the stored vCon, exactly as stored.
#[utoipa::path(get, path = "/vcon/{vcon_uuid}", tag = "vcon",
    params(("vcon_uuid" = String, Path, description = "the vCon uuid, in any accepted form")),
    responses((status = 200, description = "the vCon"), (status = 403), (status = 404, description = "vCon not found"), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn get_vcon(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let live = auth::authorized(&req, &state)?;
    let uuid = path_uuid(&path)?;
    let text = read_vcon(&state, &live, uuid, Recache::Yes)
        .await
        .map_err(ApiError::store("Failed to read vCon"))?
        .ok_or_else(|| ApiError::NotFound("vCon not found".into()))?;
    Ok(json_text(text))
}

/// `GET /vcons`: several vCons at once, `null` where one is found nowhere.
#[utoipa::path(get, path = "/vcons", tag = "vcon",
    params(("vcon_uuids" = Option<Vec<String>>, Query, description = "uuids (repeat the parameter)")),
    responses((status = 200, description = "one entry per requested uuid, in order"), (status = 403), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn get_vcons(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let live = auth::authorized(&req, &state)?;
    let mut query = Query::of(&req);
    let uuids = query.uuids("vcon_uuids");
    query.finish()?;
    if uuids.is_empty() {
        return Ok(json_text("[]".to_owned()));
    }
    let found = read_vcons(&state, &live, &uuids, Recache::Yes)
        .await
        .map_err(ApiError::store("Failed to read vCons"))?;
    // The stored texts are JSON already: join them instead of parsing and re-serialising.
    let size = found
        .iter()
        .map(|t| t.as_ref().map_or(4, String::len) + 1)
        .sum::<usize>()
        + 1;
    let mut out = String::with_capacity(size);
    out.push('[');
    for (i, text) in found.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(text.as_deref().unwrap_or("null"));
    }
    out.push(']');
    Ok(json_text(out))
}

/// `GET /vcon`: uuids from the created-at index, newest first.
#[utoipa::path(get, path = "/vcon", tag = "vcon",
    params(
        ("page" = Option<i64>, Query, description = "page number, >= 1 (default 1)"),
        ("size" = Option<i64>, Query, description = "page size, >= 1 (default 50)"),
        ("since" = Option<String>, Query, description = "inclusive lower bound on created_at"),
        ("until" = Option<String>, Query, description = "inclusive upper bound on created_at")),
    responses((status = 200, description = "uuids, newest first", body = Vec<String>), (status = 403), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn list_vcons(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::authorized(&req, &state)?;
    let mut query = Query::of(&req);
    let page = query.integer("page", 1, 1, i64::MAX);
    let size = query.integer("size", 50, 1, i64::MAX);
    let since = query.datetime("since");
    let until = query.datetime("until");
    query.finish()?;
    let list = ListQuery {
        since,
        until,
        offset: (page as u64 - 1).saturating_mul(size as u64),
        count: size as u64,
    };
    let uuids = state
        .store
        .list_vcons(list)
        .await
        .map_err(ApiError::store("Failed to list vCons"))?;
    Ok(HttpResponse::Ok().json(uuids))
}

/// `GET /vcons/search`: uuids whose parties match every given term exactly.
#[utoipa::path(get, path = "/vcons/search", tag = "vcon",
    params(
        ("tel" = Option<String>, Query, description = "a party's tel, exactly"),
        ("mailto" = Option<String>, Query, description = "a party's mailto, exactly"),
        ("name" = Option<String>, Query, description = "a party's name, exactly")),
    responses((status = 200, description = "matching uuids, ascending", body = Vec<String>), (status = 400), (status = 403), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn search_vcons(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::authorized(&req, &state)?;
    let query = Query::of(&req);
    let terms = SearchTerms {
        tel: query.get("tel").map(str::to_owned),
        mailto: query.get("mailto").map(str::to_owned),
        name: query.get("name").map(str::to_owned),
    };
    if terms.tel.is_none() && terms.mailto.is_none() && terms.name.is_none() {
        return Err(ApiError::BadRequest(
            "At least one search parameter must be provided",
        ));
    }
    let uuids = state
        .store
        .search(&terms)
        .await
        .map_err(ApiError::store("An error occurred during the search"))?;
    Ok(HttpResponse::Ok().json(uuids))
}

/// `DELETE /vcon/{vcon_uuid}`: the vCon, its index entries and its sorted-set member.
#[utoipa::path(delete, path = "/vcon/{vcon_uuid}", tag = "vcon",
    params(("vcon_uuid" = String, Path, description = "the vCon uuid")),
    responses((status = 204, description = "deleted (also when nothing existed)"), (status = 403), (status = 422), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn delete_vcon(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let live = auth::authorized(&req, &state)?;
    let uuid = path_uuid(&path)?;
    let stored = read_vcon(&state, &live, uuid, Recache::No)
        .await
        .map_err(ApiError::store("Failed to delete vCon"))?;
    let parties = stored
        .as_deref()
        .and_then(vcon::describe)
        .map(|d| d.parties)
        .unwrap_or_default();
    state
        .store
        .delete_vcon(uuid, &parties)
        .await
        .map_err(ApiError::store("Failed to delete vCon"))?;
    live.pipelines.storages.delete_everywhere(uuid).await;
    tracing::debug!(vcon_id = %uuid, "vCon deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// A 200 whose body is JSON text we already have.
pub fn json_text(text: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(text)
}

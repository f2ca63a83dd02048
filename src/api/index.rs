//! `GET /index_vcons` (api.md §5.24): rebuild the created-at and party indexes.

use actix_web::{web, HttpRequest, HttpResponse};

use super::auth;
use super::error::ApiError;
use super::state::AppState;

/// `GET /index_vcons`: walk every `vcon:*` key with SCAN and re-index it.
#[utoipa::path(get, path = "/index_vcons", tag = "vcon",
    responses((status = 200, description = "the number of vCons indexed", body = u64), (status = 403), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn index_vcons(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::authorized(&req, &state)?;
    let indexed = state
        .store
        .index_all()
        .await
        .map_err(ApiError::store("Internal Server Error"))?;
    tracing::info!(indexed, "vCon indexes rebuilt");
    Ok(HttpResponse::Ok().json(indexed))
}

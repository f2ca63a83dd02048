//! `GET /chains` (api.md §5.17): each configured chain with its queue depths and counters.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::auth;
use super::error::ApiError;
use super::state::AppState;
use crate::store::ChainLists;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ChainView {
    name: String,
    enabled: bool,
    workers: usize,
    links: Vec<String>,
    storages: Vec<String>,
    ingress_lists: Vec<IngressView>,
    egress_lists: Vec<EgressView>,
    in_flight: u64,
    processed: u64,
    halted: u64,
    failed: u64,
    storage_dlq: Vec<StorageDlqView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct IngressView {
    name: String,
    depth: u64,
    dlq_depth: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EgressView {
    name: String,
    depth: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StorageDlqView {
    storage: String,
    depth: u64,
}

/// `GET /chains`.
#[utoipa::path(get, path = "/chains", tag = "chains",
    responses((status = 200, description = "one object per chain, in config order", body = Vec<ChainView>), (status = 403), (status = 500), (status = 503)),
    security(("api_key" = [])))]
pub async fn chains(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let config = auth::authorized(&req, &state)?;
    let mut views = Vec::with_capacity(config.chains.len());
    for chain in &config.chains {
        let status = state
            .store
            .chain_status(ChainLists {
                name: &chain.name,
                ingress_lists: &chain.ingress_lists,
                egress_lists: &chain.egress_lists,
                storages: &chain.storages,
            })
            .await
            .map_err(ApiError::store("Failed to read chain status"))?;
        views.push(ChainView {
            name: chain.name.clone(),
            enabled: chain.enabled,
            workers: chain.workers,
            links: chain.links.clone(),
            storages: chain.storages.clone(),
            ingress_lists: status
                .ingress
                .into_iter()
                .map(|(name, depth, dlq_depth)| IngressView {
                    name,
                    depth,
                    dlq_depth,
                })
                .collect(),
            egress_lists: status
                .egress
                .into_iter()
                .map(|(name, depth)| EgressView { name, depth })
                .collect(),
            in_flight: status.in_flight,
            processed: status.processed,
            halted: status.halted,
            failed: status.failed,
            storage_dlq: status
                .storage_dlq
                .into_iter()
                .map(|(storage, depth)| StorageDlqView { storage, depth })
                .collect(),
        });
    }
    Ok(HttpResponse::Ok().json(views))
}

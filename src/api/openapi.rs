//! `GET /openapi.json` (api.md §5.5): generated from the handlers' annotations, with the token
//! header as an `apiKey` scheme and two servers, the prefix and `/`.

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::{Modify, OpenApi};

use super::state::AppState;
use super::{chains, config, dlq, health, index, metrics, queues, vcon};

/// The OpenAPI document of every route, listed once without the prefix.
#[derive(OpenApi)]
#[openapi(
    info(title = "conserver", description = "vCon processing server: the REST API of spec/api.md"),
    paths(
        health::version, health::health, health::ready, metrics::metrics, openapi,
        queues::queue_stats, vcon::list_vcons, queues::pop_egress, queues::count_egress,
        vcon::get_vcon, vcon::get_vcons, vcon::search_vcons, vcon::post_vcon,
        vcon::external_ingress, vcon::delete_vcon, queues::reingress, chains::chains,
        dlq::list_dlq, dlq::reprocess_dlq, dlq::list_storage_dlq, dlq::reprocess_storage_dlq,
        config::get_config, config::post_config, index::index_vcons
    ),
    components(schemas(crate::version::VersionInfo, chains::ChainView)),
    modifiers(&TokenHeader)
)]
pub struct ApiDoc;

/// Adds the token header scheme, named after the configured header.
struct TokenHeader;

impl Modify for TokenHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-conserver-api-token"))),
        );
    }
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "this document")))]
pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    let config = state.config();
    let mut doc = ApiDoc::openapi();
    if let Some(components) = doc.components.as_mut() {
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                config.api.header_name.clone(),
            ))),
        );
    }
    let mut servers = Vec::new();
    if !config.api.prefix.is_empty() {
        servers.push(Server::new(config.api.prefix.clone()));
    }
    servers.push(Server::new("/"));
    doc.servers = Some(servers);
    HttpResponse::Ok().json(doc)
}

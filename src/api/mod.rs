//! The REST API (spec/api.md): one file per area, all routes served under the configured
//! prefix and at the root. [`app`] builds the actix-web `App`; `main` and the tests use the
//! same function, so what is tested is what is served.

mod auth;
mod body;
mod chains;
mod config;
mod dlq;
mod error;
mod health;
mod index;
mod ingest;
mod metrics;
mod openapi;
mod params;
mod queues;
mod read;
mod state;
mod vcon;
pub mod waiting;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{DefaultHeaders, NormalizePath};
use actix_web::{web, App, HttpResponse, Resource};

pub use error::ApiError;
pub use openapi::ApiDoc;
pub use state::{AppState, ConfigSource, Live, Role};

use crate::version;

/// The whole application for one state: routes, CORS, version headers, trailing-slash
/// normalisation and request metrics.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let config = state.config();
    let prefix = config.api.prefix.clone();
    let role = state.role;
    let cors = cors(&config.api.cors_allow_origins);
    let route_prefix = std::rc::Rc::new(prefix.clone());
    App::new()
        .app_data(state.clone())
        .configure(|cfg| configure(cfg, &prefix, role))
        .default_service(web::to(not_found))
        .wrap_fn(move |req, service| {
            let start = std::time::Instant::now();
            let response = service.call(req);
            let prefix = route_prefix.clone();
            async move {
                let response = response.await?;
                metrics::observe(&response, &prefix, start);
                Ok(response)
            }
        })
        .wrap(actix_web::middleware::from_fn(head_as_get))
        .wrap(NormalizePath::trim())
        .wrap(cors)
        .wrap(
            DefaultHeaders::new()
                .add(("X-Vcon-Server-Version", version::VERSION))
                .add(("X-Vcon-Server-Commit", version::GIT_COMMIT)),
        )
}

/// Register the routes of `role` under `prefix` (when not empty) and at the root.
pub fn configure(cfg: &mut web::ServiceConfig, prefix: &str, role: Role) {
    let routes = if role == Role::Worker {
        worker_routes
    } else {
        routes
    };
    if !prefix.is_empty() {
        cfg.service(
            web::scope(prefix)
                .configure(routes)
                .default_service(web::to(not_found)),
        );
    }
    routes(cfg);
}

/// What a worker serves: liveness, readiness and metrics.
fn worker_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health", "GET, HEAD").route(web::get().to(health::health)))
        .service(resource("/ready", "GET, HEAD").route(web::get().to(health::ready)))
        .service(resource("/metrics", "GET, HEAD").route(web::get().to(metrics::metrics)));
}

/// The route table. Literal paths come before `/vcon/{vcon_uuid}` so they are never read as
/// a uuid.
fn routes(cfg: &mut web::ServiceConfig) {
    worker_routes(cfg);
    cfg.service(resource("/version", "GET, HEAD").route(web::get().to(health::version)))
        .service(resource("/openapi.json", "GET, HEAD").route(web::get().to(openapi::openapi)))
        .service(resource("/stats/queue", "GET, HEAD").route(web::get().to(queues::queue_stats)))
        .service(
            resource("/vcon", "GET, HEAD, POST")
                .route(web::get().to(vcon::list_vcons))
                .route(web::post().to(vcon::post_vcon)),
        )
        .service(resource("/vcon/egress", "GET, HEAD").route(web::get().to(queues::pop_egress)))
        .service(resource("/vcon/count", "GET, HEAD").route(web::get().to(queues::count_egress)))
        .service(resource("/vcon/ingress", "POST").route(web::post().to(queues::reingress)))
        .service(
            resource("/vcon/external-ingress", "POST")
                .route(web::post().to(vcon::external_ingress)),
        )
        .service(
            resource("/vcon/{vcon_uuid}", "GET, HEAD, DELETE")
                .route(web::get().to(vcon::get_vcon))
                .route(web::delete().to(vcon::delete_vcon)),
        )
        .service(resource("/vcons", "GET, HEAD").route(web::get().to(vcon::get_vcons)))
        .service(resource("/vcons/search", "GET, HEAD").route(web::get().to(vcon::search_vcons)))
        .service(resource("/chains", "GET, HEAD").route(web::get().to(chains::chains)))
        .service(resource("/dlq", "GET, HEAD").route(web::get().to(dlq::list_dlq)))
        .service(resource("/dlq/reprocess", "POST").route(web::post().to(dlq::reprocess_dlq)))
        .service(resource("/dlq/storage", "GET, HEAD").route(web::get().to(dlq::list_storage_dlq)))
        .service(
            resource("/dlq/storage/reprocess", "POST")
                .route(web::post().to(dlq::reprocess_storage_dlq)),
        )
        .service(
            resource("/config", "GET, HEAD, POST")
                .route(web::get().to(config::get_config))
                .route(web::post().to(config::post_config)),
        )
        .service(resource("/index_vcons", "GET, HEAD").route(web::get().to(index::index_vcons)));
}

/// A resource whose other methods answer 405 with a JSON body and `Allow: <allow>` (what it
/// serves; `HEAD` is served wherever `GET` is, see [`head_as_get`]).
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || method_not_allowed(allow)))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("Not Found".into()))
}

async fn method_not_allowed(allow: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(allow))
}

/// `HEAD` is answered as `GET` is, without the body (what load balancers probe).
async fn head_as_get<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let head = req.method() == actix_web::http::Method::HEAD;
    if head {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    let response = next.call(req).await?;
    Ok(if head {
        response.map_body(|_, _| actix_web::body::BoxBody::new(()))
    } else {
        response.map_into_boxed_body()
    })
}

/// CORS as in the Python server: any method and header, credentials allowed; origins from
/// `api.cors_allow_origins` (`*` = any).
fn cors(origins: &[String]) -> Cors {
    let cors = Cors::default()
        .allow_any_method()
        .allow_any_header()
        .supports_credentials()
        .expose_any_header()
        .max_age(600);
    if origins.iter().any(|o| o == "*") {
        cors.allow_any_origin()
    } else {
        origins
            .iter()
            .fold(cors, |cors, origin| cors.allowed_origin(origin))
    }
}

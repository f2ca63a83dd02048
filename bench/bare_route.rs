//! The ceiling of the API benchmark: an actix-web server whose only route reads the request
//! body and answers 201, with the same runtime settings as conserver. What conserver adds on
//! top (validation, the Redis round trip) is the difference between the two.
//!
//! `cargo run --release --example bare_route -- 127.0.0.1:8090`

use actix_web::{web, App, HttpResponse, HttpServer};

async fn accept(body: web::Bytes) -> HttpResponse {
    HttpResponse::Created()
        .content_type("application/json")
        .body(body)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    HttpServer::new(|| {
        App::new()
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .route("/vcon", web::post().to(accept))
    })
    .bind(bind)?
    .run()
    .await
}

//! `GET /config` (redacted) and `POST /config` (validated, written atomically, applied live):
//! api.md §5.22–5.23.

use std::io::Write;
use std::path::{Path, PathBuf};

use actix_web::{web, HttpRequest, HttpResponse};

use super::auth;
use super::error::ApiError;
use super::queues::parse_json;
use super::state::{AppState, ConfigSource};
use crate::config::Config;
use crate::problem::Problem;

/// `GET /config`: the file as written, secrets redacted.
#[utoipa::path(get, path = "/config", tag = "config",
    responses((status = 200, description = "the configuration, secrets replaced by ***"), (status = 403), (status = 500)),
    security(("api_key" = [])))]
pub async fn get_config(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let config = auth::authorized(&req, &state)?;
    Ok(HttpResponse::Ok().json(config.redacted()))
}

/// `POST /config`: replace the whole configuration.
#[utoipa::path(post, path = "/config", tag = "config",
    request_body(content = Object, description = "a configuration in the format of config.md; \"***\" keeps the current value", content_type = "application/json"),
    responses((status = 204, description = "written and applied"), (status = 400), (status = 403), (status = 413), (status = 415), (status = 422), (status = 500)),
    security(("api_key" = [])))]
pub async fn post_config(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, body) = auth::authorized_with_body(&req, &state)?;
    let body = body.read(payload).await?;
    let document = parse_json(&body)?;
    if !document.is_object() {
        return Err(ApiError::problem(
            Problem::body(
                "dict_type",
                vec![],
                "the configuration must be a JSON object",
            )
            .with_input(&document),
        ));
    }
    // One update at a time: the file written is the configuration applied.
    let _guard = state.config_update.lock().await;
    let running = state.config();
    let (mut next, pipelines) = state
        .prepare(
            Config::from_posted(document, &running, &state.env),
            ConfigSource::Api,
        )
        .map_err(|problems| {
            ApiError::Unprocessable(problems.iter().map(|p| p.to_problem()).collect())
        })?;
    let path = running
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("config.yml"));
    let yaml = next.to_yaml();
    let written = web::block({
        let path = path.clone();
        move || write_atomically(&path, yaml.as_bytes())
    })
    .await;
    if let Err(e) = written.map_err(std::io::Error::other).and_then(|r| r) {
        tracing::error!(path = %path.display(), error = %e, "the new configuration could not be written; the running one is unchanged");
        return Err(ApiError::Internal("Failed to update configuration"));
    }
    next.path = Some(path);
    state.apply(next, pipelines).await;
    tracing::info!("configuration replaced by POST /config");
    Ok(HttpResponse::NoContent().finish())
}

/// Write to a temporary file in the same directory, flush it to disk, rename it over `path`.
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("config.yml");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

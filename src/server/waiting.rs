//! The store at start: the embedded one at once, or Redis once it answers. A Redis that is not
//! up yet (a compose stack where conserver starts first) is tried again with backoff for up to
//! `redis.connect_timeout`, each attempt logged with the host and port; meanwhile the listen
//! address is served by the waiting app (`/health` answers, `/ready` is 503).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::HttpServer;

use super::{store_settings, StartError};
use crate::config::Config;
use crate::store::{self, Store};

/// The first wait between attempts; it doubles up to [`LONGEST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(500);
const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// The store `config` names, once it can be used. `listener` is served meanwhile.
pub async fn open_store(
    config: &Config,
    listener: &TcpListener,
) -> Result<Arc<dyn Store>, StartError> {
    let Some(url) = config.redis.url.as_deref() else {
        return Ok(store::open(None, store_settings(config)).await?);
    };
    let address = redis_address(url);
    let mut waiting = None;
    let started = Instant::now();
    let mut wait = FIRST_WAIT;
    let mut attempt = 1u32;
    let opened = loop {
        match store::open(Some(url), store_settings(config)).await {
            Ok(store) => break Ok(store),
            Err(error) if error.is_unavailable() => {
                let limit = config.redis.connect_timeout;
                let waited = started.elapsed();
                if !limit.is_zero() && waited + wait > limit {
                    break Err(StartError::RedisNotReached {
                        address: address.clone(),
                        waited: limit,
                        source: error,
                    });
                }
                tracing::warn!(
                    redis = %address,
                    attempt,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %crate::report(&error),
                    "Redis at {address} is not reachable yet; trying again"
                );
                if waiting.is_none() {
                    waiting = serve_waiting(config, listener, &address);
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(LONGEST_WAIT);
                attempt += 1;
            }
            Err(error) => break Err(StartError::Store(error)),
        }
    };
    if let Some(server) = waiting {
        server.stop(false).await;
    }
    let store = opened?;
    if attempt > 1 {
        tracing::info!(redis = %address, attempt, "Redis at {address} answers");
    }
    Ok(store)
}

/// Serve the waiting app on `listener`; `None` (logged) when it cannot be served, which only
/// costs `/health` answers until Redis is up.
fn serve_waiting(
    config: &Config,
    listener: &TcpListener,
    address: &str,
) -> Option<actix_web::dev::ServerHandle> {
    let prefix = config.api.prefix.clone();
    let store = format!("Redis at {address}");
    let server = listener
        .try_clone()
        .and_then(|listener| {
            HttpServer::new(move || crate::api::waiting::app(&prefix, store.clone()))
                .disable_signals()
                .workers(1)
                .listen(listener)
        })
        .map_err(|error| tracing::warn!(%error, "the listen address is not served while Redis is awaited"))
        .ok()?
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Some(handle)
}

/// `host:port` (or the socket path) of a Redis URL, without its credentials.
fn redis_address(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) if parsed.scheme() == "unix" => format!("unix:{}", parsed.path()),
        Ok(parsed) => format!(
            "{}:{}",
            parsed.host_str().unwrap_or("localhost"),
            parsed.port().unwrap_or(6379)
        ),
        Err(_) => crate::config::redact::url_secrets(url),
    }
}

#[cfg(test)]
mod tests {
    use super::redis_address;

    #[test]
    fn the_address_names_host_and_port_never_the_password() {
        assert_eq!(
            redis_address("redis://:hunter2@cache.internal/0"),
            "cache.internal:6379"
        );
        assert_eq!(redis_address("rediss://u:p@h:6380"), "h:6380");
        assert_eq!(
            redis_address("unix:///run/redis.sock"),
            "unix:/run/redis.sock"
        );
    }
}

//! Starting and stopping the server: load the config, check the authentication rule, open the
//! store, serve the API until SIGTERM/SIGINT (actix-web drains in-flight requests first).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use actix_web::{web, HttpServer};

use crate::api::{self, AppState};
use crate::cli::ServeArgs;
use crate::config::{Config, Env};
use crate::store::{self, StoreSettings};

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error(
        "refusing to start: no API token is configured and api.bind ({0}) is not a loopback \
         address. Set CONSERVER_API_TOKEN, CONSERVER_API_TOKEN_FILE or api.tokens, or set \
         api.allow_unauthenticated: true to serve without authentication."
    )]
    Unauthenticated(String),
    #[error("api.bind {0:?} is not a valid listen address")]
    Bind(String),
    #[error("cannot open the store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Python settings that have no effect here; each is logged once when set (config.md §8).
const IGNORED_PYTHON_SETTINGS: &[&str] = &[
    "EGRESS_FORMAT_VERSION",
    "CONSERVER_START_METHOD",
    "VCON_CONTEXT_EXPIRY",
    "LOGGING_CONFIG_FILE",
    "SENTRY_DSN",
    "VCON_SERVER_VERSION",
    "VCON_SERVER_GIT_COMMIT",
    "VCON_SERVER_BUILD_TIME",
    "TICK_INTERVAL",
    "VCON_SORTED_FORCE_RESET",
    "VCON_STORAGE",
    "DEEPGRAM_KEY",
    "OPENAI_API_KEY",
];

/// `conserver serve`: run until stopped; the exit code.
pub fn run(args: ServeArgs) -> ExitCode {
    let env = Env::from_process();
    let started = actix_web::rt::System::new().block_on(serve(args, env));
    match started {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("conserver: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs, env: Env) -> Result<(), StartError> {
    let mut config = Config::load(args.config.as_deref(), &env)?;
    if let Some(bind) = args.bind {
        config.api.bind = bind;
    }
    for warning in &config.warnings {
        tracing::warn!("config: {warning}");
    }
    for name in IGNORED_PYTHON_SETTINGS
        .iter()
        .filter(|n| env.get(n).is_some())
    {
        tracing::warn!("{name} is set but has no effect in conserver (see config.md §8)");
    }
    let addr = listen_address(&config.api.bind)?;
    check_authentication(&config, addr)?;
    let store = store::open(config.redis.url.as_deref(), store_settings(&config)).await?;
    let state = web::Data::new(AppState::new(store, config, env));
    let server = HttpServer::new({
        let state = state.clone();
        move || api::app(state.clone())
    })
    .shutdown_timeout(30)
    .bind(addr)
    .map_err(|source| StartError::Listen {
        addr: addr.to_string(),
        source,
    })?;
    for bound in server.addrs() {
        tracing::info!(role = ?args.role, store = state.store.kind(), "conserver {} serving on http://{bound}", crate::version::VERSION);
    }
    server.run().await.map_err(|source| StartError::Listen {
        addr: addr.to_string(),
        source,
    })?;
    tracing::info!("conserver stopped");
    Ok(())
}

/// The store settings of the `redis` section.
pub fn store_settings(config: &Config) -> StoreSettings {
    StoreSettings {
        key_prefix: config.redis.key_prefix.clone(),
        sorted_set: config.redis.sorted_set.clone(),
        vcon_ttl: config.redis.vcon_ttl,
        dlq_ttl: config.redis.dlq_ttl,
        index_ttl: config.redis.index_ttl,
        json_module: config.redis.json_module,
    }
}

fn listen_address(bind: &str) -> Result<SocketAddr, StartError> {
    bind.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| StartError::Bind(bind.to_owned()))
}

/// api.md §2: without a token, serve only on loopback (or when explicitly allowed).
fn check_authentication(config: &Config, addr: SocketAddr) -> Result<(), StartError> {
    if !config.api.tokens.is_empty() {
        return Ok(());
    }
    if is_loopback(addr.ip()) {
        tracing::warn!("no API token is configured: token routes are served without authentication on the loopback address {addr}");
        Ok(())
    } else if config.api.allow_unauthenticated {
        tracing::warn!("no API token is configured and api.allow_unauthenticated is true: serving every route without authentication on {addr}");
        Ok(())
    } else {
        Err(StartError::Unauthenticated(config.api.bind.clone()))
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

//! Starting and stopping an instance: load and check the config, check the authentication
//! rule, open the store, start the engine (roles `all` and `worker`), serve HTTP until
//! SIGTERM/SIGINT, then drain the chains and hand back what is left (redis.md §3.6). SIGHUP and
//! a change of the config file reload the configuration live (config.md §10). [`waiting`]
//! opens the store, waiting for a Redis that is not up yet.

mod waiting;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpServer};

use crate::api::{self, AppState, ConfigSource, Role};
use crate::cli::ServeArgs;
use crate::config::{access, Config, ConfigError, ConfigProblem, Env};
use crate::engine::{Engine, Pipelines};
use crate::metrics::Metrics;
use crate::modules::ModuleContext;
use crate::store::{self, StoreSettings};

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Modules(Vec<ConfigProblem>),
    #[error("api.bind {0:?} is not a valid listen address")]
    Bind(String),
    #[error("cannot open the store")]
    Store(#[from] crate::store::StoreError),
    #[error("Redis at {address} could not be reached within {} s (redis.connect_timeout)", .waited.as_secs())]
    RedisNotReached {
        address: String,
        waited: Duration,
        source: crate::store::StoreError,
    },
    #[error("cannot listen on {addr}")]
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

/// How often the config file is checked for changes (config.md §10).
const FILE_CHECK_PERIOD: Duration = Duration::from_secs(5);

/// `conserver serve`: run until stopped; the exit code.
pub fn run(args: ServeArgs) -> ExitCode {
    let env = Env::from_process();
    match actix_web::rt::System::new().block_on(serve(args, env)) {
        Ok(()) => ExitCode::SUCCESS,
        // Once, on stderr, with its causes.
        Err(e) => {
            eprintln!("conserver: {}", crate::report(&e));
            ExitCode::FAILURE
        }
    }
}

/// `conserver check-config`: every problem (the modules' options included) and exit 1, or a
/// summary and exit 0.
pub fn check_config(path: Option<PathBuf>, role: Role) -> ExitCode {
    let outcome = actix_web::rt::System::new().block_on(async {
        let config = Config::load(path.as_deref(), &Env::from_process())?;
        refuse_open_access(&config, &config.api.bind, role)?;
        // The modules are built as at start; nothing is connected (a memory store stands in
        // for the server's Redis).
        let store: Arc<dyn store::Store> =
            Arc::new(store::memory::MemoryStore::new(store_settings(&config)));
        let context = ModuleContext::new(config.limits.clone(), Arc::new(Metrics::new()), store);
        Pipelines::build(&config, &context, None).map_err(StartError::Modules)?;
        Ok::<Config, StartError>(config)
    });
    match outcome {
        Ok(config) => {
            for warning in &config.warnings {
                println!("warning: {warning}");
            }
            println!("{}", config.summary());
            ExitCode::SUCCESS
        }
        Err(StartError::Config(ConfigError::Invalid(problems)) | StartError::Modules(problems)) => {
            eprintln!("{} problem(s) in the configuration:", problems.len());
            for problem in &problems {
                eprintln!("  {problem}");
            }
            ExitCode::FAILURE
        }
        Err(other) => {
            eprintln!("{other}");
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
    refuse_open_access(&config, &config.api.bind, args.role)?;
    warn_open_access(&config, addr, args.role);
    let grace = config.limits.shutdown_grace;
    let listener = std::net::TcpListener::bind(addr).map_err(|source| StartError::Listen {
        addr: addr.to_string(),
        source,
    })?;
    let store = waiting::open_store(&config, &listener).await?;
    let state = web::Data::new(
        AppState::new(store.clone(), config, env, args.role).map_err(StartError::Modules)?,
    );
    let engine = if args.role == Role::Api {
        None
    } else {
        let live = state.config();
        let engine = Arc::new(
            Engine::start(&live.config, &live.pipelines, store, state.metrics.clone()).await?,
        );
        state.set_engine(engine.clone());
        Some(engine)
    };
    // Signals are handled here, not by actix-server: its handler stops the whole actix
    // System, which would stop the threads the chains run on before they drain.
    let server = HttpServer::new({
        let state = state.clone();
        move || api::app(state.clone())
    })
    .disable_signals()
    .shutdown_timeout(30)
    .listen(listener)
    .map_err(|source| StartError::Listen {
        addr: addr.to_string(),
        source,
    })?;
    for bound in server.addrs() {
        tracing::info!(role = %args.role, store = state.store.kind(), "conserver {} serving on http://{bound}", crate::version::VERSION);
    }
    let server = server.run();
    let handle = server.handle();
    let tasks = [
        actix_web::rt::spawn(reload_on_sighup(state.clone())),
        actix_web::rt::spawn(reload_on_file_change(state.clone())),
        actix_web::rt::spawn(async move {
            let signal = termination().await;
            tracing::info!("{signal} received: stopping (in-flight requests finish first)");
            handle.stop(true).await;
        }),
    ];
    let served = server.await;
    for task in tasks {
        task.abort();
    }
    if let Some(engine) = engine {
        tracing::info!("draining the chains (up to {} s)", grace.as_secs());
        engine.shutdown(grace).await;
    }
    served.map_err(|source| StartError::Listen {
        addr: addr.to_string(),
        source,
    })?;
    tracing::info!("conserver stopped");
    Ok(())
}

/// Wait for SIGTERM or SIGINT; the name of the one received.
async fn termination() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            tracing::warn!(
                "SIGTERM/SIGINT cannot be handled here: the process stops without draining"
            );
            std::future::pending().await
        }
    }
}

/// Reload the config file on SIGHUP.
async fn reload_on_sighup(state: web::Data<AppState>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!(
            "SIGHUP cannot be handled here: reload with POST /config or by changing the file"
        );
        return;
    };
    while hangups.recv().await.is_some() {
        reload(&state, "SIGHUP").await;
    }
}

/// Reload the config file when its content changes (checked every 5 s).
async fn reload_on_file_change(state: web::Data<AppState>) {
    let Some(path) = state.config().path.clone() else {
        return;
    };
    let mut last = tokio::fs::read(&path).await.ok();
    loop {
        tokio::time::sleep(FILE_CHECK_PERIOD).await;
        let now = tokio::fs::read(&path).await.ok();
        if now.is_some() && now != last {
            last = now;
            reload(&state, "the config file changed").await;
        }
    }
}

/// Load the config file again and apply it; a file with problems is not applied.
pub async fn reload(state: &AppState, why: &str) {
    let _guard = state.config_update.lock().await;
    let Some(path) = state.config().path.clone() else {
        tracing::warn!("{why}: no config file to reload");
        return;
    };
    match state.prepare(Config::load(Some(&path), &state.env), ConfigSource::File) {
        // The server's own write of POST /config, a comment edited, a file touched.
        Ok((config, _)) if config == state.config().config => {
            tracing::debug!(path = %path.display(), "{why}: the configuration is unchanged; nothing to apply");
        }
        Ok((config, pipelines)) => {
            state.apply(config, pipelines).await;
            tracing::info!(path = %path.display(), "{why}: configuration reloaded");
        }
        Err(problems) => {
            let problems = StartError::Modules(problems);
            tracing::error!(path = %path.display(), "{why}: the new configuration is not applied, the running one stays. {problems}");
        }
    }
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
fn refuse_open_access(config: &Config, bind: &str, role: Role) -> Result<(), StartError> {
    match access::serving_problem(config, bind, role != Role::Worker) {
        Some(problem) => Err(StartError::Config(ConfigError::Invalid(vec![problem]))),
        None => Ok(()),
    }
}

/// Say so when token routes are served without authentication.
fn warn_open_access(config: &Config, addr: SocketAddr, role: Role) {
    if role == Role::Worker || !config.api.tokens.is_empty() {
        return;
    }
    if access::is_loopback(addr.ip()) {
        tracing::warn!("no API token is configured: token routes are served without authentication on the loopback address {addr}");
    } else {
        tracing::warn!("no API token is configured and api.allow_unauthenticated is true: serving every route without authentication on {addr}");
    }
}

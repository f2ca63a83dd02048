//! What every handler shares: the store, the live configuration with its built modules, the
//! engine of this instance (when it runs chains), the metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::config::{access, Config, ConfigError, ConfigProblem, Env};
use crate::engine::{Engine, Pipelines};
use crate::http::Deliveries;
use crate::metrics::Metrics;
use crate::modules::ModuleContext;
use crate::storages::registry::Storages;
use crate::store::Store;
use crate::vcon::Warning;

/// What an instance serves (`conserver serve --role`, `CONSERVER_ROLE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    #[default]
    /// The whole API and the chains.
    All,
    /// The whole API; no chains.
    Api,
    /// The chains; the API is only `/health`, `/ready`, `/metrics`.
    Worker,
}

/// Where a new configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// The config file, re-read on SIGHUP or when it changed.
    File,
    /// `POST /config`.
    Api,
}

impl std::fmt::Display for Role {
    /// As the command line writes it (`all`, `api`, `worker`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
}

/// The configuration in force and what was built from it.
pub struct Live {
    pub config: Config,
    pub pipelines: Pipelines,
}

/// The state of the API, behind `web::Data`.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// The environment the config was compiled with (a posted config is compiled with it too).
    pub env: Env,
    /// The process's one HTTP client, which every module uses.
    pub http: reqwest::Client,
    /// The per-target delivery actors over `http`, shared by every configuration's modules.
    deliveries: Deliveries,
    pub role: Role,
    live: RwLock<Arc<Live>>,
    engine: RwLock<Option<Arc<Engine>>>,
    /// Serialises configuration changes: validate, write the file and swap as one step.
    pub(crate) config_update: tokio::sync::Mutex<()>,
    warned: Mutex<HashMap<&'static str, Instant>>,
}

/// Validation warnings of one kind are logged at most once per this period (vcon.md §3.3).
const WARNING_LOG_PERIOD: Duration = Duration::from_secs(60);

impl AppState {
    /// The state for `config`, whose modules are built here (every problem returned).
    pub fn new(
        store: Arc<dyn Store>,
        config: Config,
        env: Env,
        role: Role,
    ) -> Result<AppState, Vec<ConfigProblem>> {
        let metrics = Arc::new(Metrics::new());
        let http = crate::http::http_client(&config.limits);
        let deliveries = Deliveries::new(http.clone(), metrics.clone());
        let context = ModuleContext {
            http: http.clone(),
            deliveries: deliveries.clone(),
            limits: config.limits.clone(),
            metrics: metrics.clone(),
            store: store.clone(),
        };
        let pipelines = Pipelines::build(&config, &context, None)?;
        Ok(AppState {
            store,
            metrics,
            env,
            http,
            deliveries,
            role,
            live: RwLock::new(Arc::new(Live { config, pipelines })),
            engine: RwLock::new(None),
            config_update: tokio::sync::Mutex::new(()),
            warned: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration in force and its modules (a cheap clone of an `Arc`).
    pub fn config(&self) -> Arc<Live> {
        match self.live.read() {
            Ok(live) => live.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The storages of the configuration in force.
    pub fn storages(&self) -> Arc<Storages> {
        self.config().pipelines.storages.clone()
    }

    /// The engine of this instance, once started (`None` for the API role).
    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.engine
            .read()
            .map(|e| e.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn set_engine(&self, engine: Arc<Engine>) {
        match self.engine.write() {
            Ok(mut slot) => *slot = Some(engine),
            Err(poisoned) => *poisoned.into_inner() = Some(engine),
        }
    }

    /// Check a new configuration completely — compile it, apply the access rules, then build
    /// its modules — without changing anything yet. `source` says where it comes from: a
    /// configuration posted to `POST /config` also may not change who can reach the server
    /// (`config::access`). A rejection is counted in `conserver_config_reloads_total`.
    pub fn prepare(
        &self,
        compiled: Result<Config, ConfigError>,
        source: ConfigSource,
    ) -> Result<(Config, Pipelines), Vec<ConfigProblem>> {
        let prepared = match compiled {
            Ok(config) => self.check_access(&config, source).and_then(|()| {
                let running = self.config();
                Pipelines::build(
                    &config,
                    &self.module_context(&config),
                    Some(&running.pipelines),
                )
                .map(|pipelines| (config, pipelines))
            }),
            Err(ConfigError::Invalid(problems)) => Err(problems),
            Err(other) => Err(vec![ConfigProblem::whole(other.to_string())]),
        };
        if prepared.is_err() {
            self.metrics
                .config_reloads
                .with_label_values(&["rejected"])
                .inc();
        }
        prepared
    }

    /// What the modules of `config` are built with: the process's client, its own limits.
    fn module_context(&self, config: &Config) -> ModuleContext {
        ModuleContext {
            http: self.http.clone(),
            deliveries: self.deliveries.clone(),
            limits: config.limits.clone(),
            metrics: self.metrics.clone(),
            store: self.store.clone(),
        }
    }

    /// The rules of `config::access` for a configuration replacing the running one. The
    /// address checked is the running one: `api.bind` changes only after a restart.
    fn check_access(&self, next: &Config, source: ConfigSource) -> Result<(), Vec<ConfigProblem>> {
        let running = self.config();
        let mut problems: Vec<ConfigProblem> =
            access::serving_problem(next, &running.api.bind, self.role != Role::Worker)
                .into_iter()
                .collect();
        if source == ConfigSource::Api {
            problems.extend(access::api_change_problems(next, &running));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Put a new configuration in force: for the requests that follow, and for the chains.
    /// Keys that need a restart keep their running values (logged).
    pub async fn apply(&self, mut config: Config, pipelines: Pipelines) {
        for key in keep_restart_only(&mut config, &self.config()) {
            tracing::warn!(key, "configuration key changed: takes effect after restart");
        }
        for warning in &config.warnings {
            tracing::warn!("config: {warning}");
        }
        let live = Arc::new(Live { config, pipelines });
        match self.live.write() {
            Ok(mut slot) => *slot = live.clone(),
            Err(poisoned) => *poisoned.into_inner() = live.clone(),
        }
        if let Some(engine) = self.engine() {
            engine.apply(&live.config, &live.pipelines).await;
        }
        self.metrics
            .config_reloads
            .with_label_values(&["applied"])
            .inc();
    }

    /// Count every warning; log each kind at most once per minute, with the latest occurrence.
    pub fn report_warnings(&self, uuid: &uuid::Uuid, warnings: &[Warning]) {
        if warnings.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        for warning in warnings {
            self.metrics
                .validation_warnings
                .with_label_values(&[warning.kind])
                .inc();
            let due = warned
                .get(warning.kind)
                .is_none_or(|last| now.duration_since(*last) >= WARNING_LOG_PERIOD);
            if due {
                warned.insert(warning.kind, now);
                tracing::warn!(
                    vcon_id = %uuid,
                    kind = warning.kind,
                    path = %warning.path,
                    "vCon accepted with a warning (logged at most once a minute per kind; all are counted in conserver_vcon_validation_warnings_total)"
                );
            }
        }
    }
}

/// Keys applied only after a restart (config.md §10) keep their running values; the names of
/// those that changed are returned for the log.
fn keep_restart_only(next: &mut Config, running: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($section:ident . $key:ident),*) => {$(
            if next.$section.$key != running.$section.$key {
                changed.push(concat!(stringify!($section), ".", stringify!($key)));
                next.$section.$key = running.$section.$key.clone();
            }
        )*};
    }
    keep!(
        api.bind,
        api.prefix,
        api.header_name,
        redis.url,
        redis.json_module,
        redis.key_prefix,
        redis.sorted_set,
        redis.instance_id,
        redis.heartbeat_ttl
    );
    changed
}

impl std::ops::Deref for Live {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.config
    }
}

//! What every handler shares: the store, the live configuration, the metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::config::{Config, Env};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::vcon::Warning;

/// The state of the API, behind `web::Data`.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    /// The environment the config was compiled with (a posted config is compiled with it too).
    pub env: Env,
    config: RwLock<Arc<Config>>,
    /// Serialises `POST /config`: validate, write the file and swap as one step.
    pub(crate) config_update: tokio::sync::Mutex<()>,
    warned: Mutex<HashMap<&'static str, Instant>>,
}

/// Validation warnings of one kind are logged at most once per this period (vcon.md §3.3).
const WARNING_LOG_PERIOD: Duration = Duration::from_secs(60);

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: Config, env: Env) -> AppState {
        AppState {
            store,
            metrics: Metrics::new(),
            env,
            config: RwLock::new(Arc::new(config)),
            config_update: tokio::sync::Mutex::new(()),
            warned: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration in force (a cheap clone of an `Arc`).
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(config) => config.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Put a new configuration in force for the requests that follow.
    pub fn replace_config(&self, config: Config) {
        let config = Arc::new(config);
        match self.config.write() {
            Ok(mut slot) => *slot = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
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

//! The configuration (spec/config.md): the YAML file as written (`raw`), `${VAR}` interpolation,
//! the compiled, typed form every other module reads, redaction for `GET /config`, and the
//! check that reports every problem at once with its YAML path.
//!
//! The pipeline: [`yaml`] parses the text → [`interpolate`] expands `${VAR}` → [`coerce`] and
//! [`raw`] type it leniently → [`compile`] checks everything (with [`settings`],
//! [`instances`], [`pipelines`]) through a [`checker::Checker`] that collects every problem.
//! [`redact`] and [`keep`] serve `GET`/`POST /config`.

mod checker;
pub mod coerce;
mod compile;
mod environment;
mod instances;
pub mod interpolate;
mod keep;
mod load;
mod locate;
pub mod modules;
mod names;
pub mod path;
mod pipelines;
pub mod raw;
pub mod redact;
mod settings;
mod suggest;
mod summary;
mod yaml;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::problem::{Loc, Problem};

use self::checker::Checker;
use self::path::YamlPath;

/// A snapshot of the environment variables the config reads, so tests never touch the process
/// environment. An empty value counts as unset (config.md §8).
#[derive(Debug, Clone, Default)]
pub struct Env(pub HashMap<String, String>);

impl Env {
    /// The process environment, read once at the edges (start, reload, `POST /config`).
    pub fn from_process() -> Self {
        Env(std::env::vars().collect())
    }

    /// The value of `name` when set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The compiled configuration: every default and environment override applied.
#[derive(Debug, Clone)]
pub struct Config {
    pub redis: RedisSettings,
    pub api: ApiSettings,
    pub limits: Limits,
    /// In file order.
    pub links: Vec<Module>,
    /// In file order: the order of storage fallback reads.
    pub storages: Vec<Module>,
    pub tracers: Vec<Module>,
    /// In file order.
    pub chains: Vec<Chain>,
    pub followers: Vec<Follower>,
    /// Ingress list → accepted keys.
    pub ingress_auth: Vec<(String, Vec<String>)>,
    /// The document as written in the file (before interpolation), for `GET /config` and the
    /// `"***"` rule of `POST /config`.
    pub document: Value,
    /// The file it was loaded from, if any (`POST /config` writes there).
    pub path: Option<PathBuf>,
    /// Warnings found while compiling (logged at start and reload).
    pub warnings: Vec<String>,
}

/// The `redis` section (config.md §7.1).
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `None` → the embedded in-memory store.
    pub url: Option<String>,
    pub cluster: bool,
    pub json_module: bool,
    pub key_prefix: String,
    pub sorted_set: String,
    /// Seconds; 0 = never expires.
    pub vcon_ttl: u64,
    pub dlq_ttl: u64,
    pub index_ttl: u64,
    pub storage_fallback: bool,
    pub instance_id: String,
    pub heartbeat_ttl: u64,
}

/// The `api` section (config.md §7.2).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `host:port` as configured (`127.0.0.1:8000`, `[::]:8000`, `localhost:8000`).
    pub bind: String,
    /// `/api`, or `""` for root only (a configured `/` becomes `""`).
    pub prefix: String,
    /// The union of `CONSERVER_API_TOKEN`, the token file's lines and `api.tokens`.
    pub tokens: Vec<String>,
    pub token_file: Option<PathBuf>,
    /// Lowercase.
    pub header_name: String,
    pub max_body_bytes: usize,
    pub allow_unauthenticated: bool,
    pub accept_signed: bool,
    pub cors_allow_origins: Vec<String>,
}

/// The `limits` section (config.md §7.3).
#[derive(Debug, Clone)]
pub struct Limits {
    pub default_workers: usize,
    pub http_timeout: Duration,
    pub retry: Retry,
    pub parallel_storage: bool,
    pub max_vcon_bytes: usize,
    pub max_media_bytes: usize,
    pub shutdown_grace: Duration,
}

/// The retry object of config.md §7.4.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub multiplier: f64,
}

/// A link, storage or tracer instance.
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    /// The built-in module's short name (`tag`, `file`, …), whatever form the file used.
    pub module: String,
    /// Interpolated options as written (module defaults are applied by the module).
    pub options: Map<String, Value>,
    /// The effective retry policy (`retry` of the module, else `limits.retry`).
    pub retry: Retry,
}

/// A chain (config.md §5).
#[derive(Debug, Clone)]
pub struct Chain {
    pub name: String,
    pub links: Vec<String>,
    pub storages: Vec<String>,
    pub ingress_lists: Vec<String>,
    pub egress_lists: Vec<String>,
    pub enabled: bool,
    pub timeout: Option<Duration>,
    pub workers: usize,
    /// `None` = every tracer.
    pub tracers: Option<Vec<String>>,
}

/// A follower (config.md §6).
#[derive(Debug, Clone)]
pub struct Follower {
    pub name: String,
    pub url: String,
    pub egress_list: String,
    pub follower_ingress_list: String,
    pub auth_token: Option<String>,
    pub header_name: String,
    pub fetch_vcon_limit: usize,
    pub pulling_interval: Duration,
}

/// One config problem: its YAML path (`chains.main.links[2]`), line when known, and message.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl ConfigProblem {
    /// As a 422 problem of `POST /config`: type `config`, `loc` = `body` + the config path.
    pub fn to_problem(&self) -> Problem {
        // The text path was written by `YamlPath`'s `Display`, so it reads back; anything
        // else is kept whole as one key rather than lost.
        let segments = match YamlPath::parse(&self.path) {
            Some(path) => path.segments().to_vec(),
            None => vec![Loc::Key(self.path.clone())],
        };
        Problem::body("config", segments, self.message.clone())
    }
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "(top level)"
        } else {
            &self.path
        };
        match self.line {
            Some(line) => write!(f, "{} (line {}): {}", path, line, self.message),
            None => write!(f, "{}: {}", path, self.message),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A YAML syntax error: the only one that stops the pass early.
    #[error("config file is not valid YAML: {0}")]
    Syntax(String),
    #[error("{} config problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigProblem>),
}

impl Config {
    /// Load from `--config PATH` / `CONSERVER_CONFIG_FILE` / `./config.yml` / `./config.yaml`
    /// (config.md §1); no file at all → the empty configuration (warning in `warnings`).
    pub fn load(explicit: Option<&Path>, env: &Env) -> Result<Config, ConfigError> {
        load::load(explicit, env, Path::new("."))
    }

    /// Compile YAML text.
    pub fn from_yaml(text: &str, path: Option<PathBuf>, env: &Env) -> Result<Config, ConfigError> {
        let document = yaml::parse(text).map_err(ConfigError::Syntax)?;
        compile::compile(Checker::new(Some(text)), document, path, env)
    }

    /// Compile a document posted to `POST /config`; a string `"***"` keeps the value at that
    /// path in `current` (a problem when there is none).
    /// The result's `document` is the merged document (write it with [`Config::to_yaml`]);
    /// its `path` is `current.path`.
    pub fn from_posted(
        document: Value,
        current: &Config,
        env: &Env,
    ) -> Result<Config, ConfigError> {
        let (merged, nothing_to_keep) = keep::keep_current(document, &current.document);
        let mut ck = Checker::new(None);
        for keep::NothingToKeep(path) in nothing_to_keep {
            ck.error(&path, "\"***\" keeps the current value, but the current configuration has none at this path");
        }
        compile::compile(ck, merged, current.path.clone(), env)
    }

    /// The document as YAML text, for writing the config file after `POST /config`.
    pub fn to_yaml(&self) -> String {
        yaml::write(&self.document)
    }

    /// The document with secrets redacted (api.md §5.22).
    pub fn redacted(&self) -> Value {
        redact::redact(&self.document)
    }

    /// The enabled chain that reads `list`, if any.
    pub fn chain_reading(&self, list: &str) -> Option<&Chain> {
        self.chains
            .iter()
            .find(|c| c.enabled && c.ingress_lists.iter().any(|l| l == list))
    }

    /// The human summary `check-config` prints on success.
    pub fn summary(&self) -> String {
        summary::summary(self)
    }
}

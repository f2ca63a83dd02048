//! The configuration (spec/config.md): the YAML file as written (`raw`), `${VAR}` interpolation,
//! the compiled, typed form every other module reads, redaction for `GET /config`, and the
//! check that reports every problem at once with its YAML path.
//!
//! The pipeline: [`yaml`] parses the text → [`interpolate`] expands `${VAR}` → [`coerce`] and
//! [`raw`] type it leniently → [`compile`] checks everything (with [`settings`],
//! [`instances`], [`pipelines`]) through a [`checker::Checker`] that collects every problem.
//! [`redact`] and [`keep`] serve `GET`/`POST /config`.

pub mod access;
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
    /// Store connection and key lifetimes.
    pub redis: RedisSettings,
    /// The HTTP server.
    pub api: ApiSettings,
    /// Concurrency, timeouts, retries and sizes.
    pub limits: Limits,
    /// In file order.
    pub links: Vec<Module>,
    /// In file order: the order of storage fallback reads.
    pub storages: Vec<Module>,
    /// In file order; each runs for every chain that does not restrict its tracers.
    pub tracers: Vec<Module>,
    /// In file order.
    pub chains: Vec<Chain>,
    /// In file order.
    pub followers: Vec<Follower>,
    /// Ingress list → accepted keys, in file order.
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
    /// `url` is a seed node of a Redis Cluster.
    pub cluster: bool,
    /// Store `vcon:{uuid}` as RedisJSON documents.
    pub json_module: bool,
    /// Prepended to every key (`""` to share Redis with Python servers).
    pub key_prefix: String,
    /// Name of the created-at index (`vcons`).
    pub sorted_set: String,
    /// Seconds a vCon lives once no chain holds it; 0 = never expires.
    pub vcon_ttl: u64,
    /// Seconds a vCon lives in a DLQ; 0 = never expires.
    pub dlq_ttl: u64,
    /// Seconds the party index sets live (≥ 1).
    pub index_ttl: u64,
    /// Read vCons missing from the store back from storages.
    pub storage_fallback: bool,
    /// This instance's name in processing lists and heartbeats.
    pub instance_id: String,
    /// Seconds the heartbeat lives (≥ 5).
    pub heartbeat_ttl: u64,
}

/// The `api` section (config.md §7.2).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `host:port` as configured (`127.0.0.1:8000`, `[::]:8000`, `localhost:8000`).
    pub bind: String,
    /// `/api`, or `""` for root only (a configured `/` becomes `""`); no trailing slash.
    pub prefix: String,
    /// The union of `CONSERVER_API_TOKEN`, the token file's lines and `api.tokens`, in that
    /// order, without duplicates.
    pub tokens: Vec<String>,
    /// The token file read (`CONSERVER_API_TOKEN_FILE`, else `api.token_file`).
    pub token_file: Option<PathBuf>,
    /// The auth header, lowercase.
    pub header_name: String,
    /// Request body limit (≥ 1024).
    pub max_body_bytes: usize,
    /// Serve without tokens on a non-loopback address.
    pub allow_unauthenticated: bool,
    /// `POST /config` may remove or replace every token, or change `api.bind`/`redis.url`.
    pub allow_auth_change_by_api: bool,
    /// Accept JWS/JWE vCons on POST.
    pub accept_signed: bool,
    /// CORS origins (`["*"]` by default).
    pub cors_allow_origins: Vec<String>,
}

/// The `limits` section (config.md §7.3).
#[derive(Debug, Clone)]
pub struct Limits {
    /// `workers` of chains that do not set it (environment product applied).
    pub default_workers: usize,
    /// Timeout of one outbound HTTP request of modules without their own `timeout`.
    pub http_timeout: Duration,
    /// Retry policy of links and storages without their own.
    pub retry: Retry,
    /// Write a chain's storages concurrently.
    pub parallel_storage: bool,
    /// Largest vCon a link may produce.
    pub max_vcon_bytes: usize,
    /// Largest recording a transcription link downloads or decodes.
    pub max_media_bytes: usize,
    /// Time in-flight vCons get to finish at shutdown.
    pub shutdown_grace: Duration,
}

/// The retry object of config.md §7.4.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    /// Tries in total, including the first (1 … 100).
    pub attempts: u32,
    /// Wait before the second try.
    pub initial_backoff: Duration,
    /// Upper bound of one wait (≥ `initial_backoff`).
    pub max_backoff: Duration,
    /// Growth of the wait between tries (≥ 1).
    pub multiplier: f64,
}

/// A link, storage or tracer instance.
#[derive(Debug, Clone)]
pub struct Module {
    /// The instance's name: its key under `links`, `storages` or `tracers`.
    pub name: String,
    /// The built-in module's short name (`tag`, `file`, …), whatever form the file used.
    /// Legacy transcription aliases (`deepgram_link`, …) are kept as written; the module
    /// layer presets their vendor (`modules::transcribe_alias_vendor`).
    pub module: String,
    /// Interpolated options as written (module defaults are applied by the module).
    pub options: Map<String, Value>,
    /// The effective retry policy: the module's `retry` keys over `limits.retry`.
    pub retry: Retry,
}

/// A chain (config.md §5).
#[derive(Debug, Clone)]
pub struct Chain {
    /// Its key under `chains`.
    pub name: String,
    /// Link names, run in this order.
    pub links: Vec<String>,
    /// Storage names, written after the links.
    pub storages: Vec<String>,
    /// Lists this chain consumes.
    pub ingress_lists: Vec<String>,
    /// Lists the uuid is appended to after the storages.
    pub egress_lists: Vec<String>,
    /// A disabled chain consumes nothing.
    pub enabled: bool,
    /// Limit on the link phase of one vCon; `None` = no limit.
    pub timeout: Option<Duration>,
    /// vCons processed concurrently per instance (the chain's own, else `limits.default_workers`).
    pub workers: usize,
    /// `None` = every tracer.
    pub tracers: Option<Vec<String>>,
}

/// A follower (config.md §6).
#[derive(Debug, Clone)]
pub struct Follower {
    /// Its key under `followers`.
    pub name: String,
    /// Base URL of the remote server.
    pub url: String,
    /// Remote egress list to pop from.
    pub egress_list: String,
    /// Local ingress list to push to (read by an enabled chain).
    pub follower_ingress_list: String,
    /// Token sent to the remote server.
    pub auth_token: Option<String>,
    /// Header the token is sent in, lowercase (default `api.header_name`).
    pub header_name: String,
    /// `limit` of each `GET /vcon/egress` call.
    pub fetch_vcon_limit: usize,
    /// Pause between polls.
    pub pulling_interval: Duration,
}

/// One config problem: its YAML path (`chains.main.links[2]`), line when known, and message.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    /// `chains.main.links[2]`; keys that are not plain words are quoted (`links["my.link"]`);
    /// `""` for the document itself.
    pub path: String,
    /// 1-based line in the file, when the problem comes from a file and the line was found.
    pub line: Option<usize>,
    /// A sentence an operator can act on.
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
    /// The file could not be read (a path given explicitly that does not exist, …).
    #[error("cannot read config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A YAML syntax error: the only one that stops the pass early.
    #[error("config file is not valid YAML: {0}")]
    Syntax(String),
    /// Every problem found, each with its path.
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

//! The configuration (spec/config.md): the YAML file as written, `${VAR}` interpolation, the
//! compiled, typed form every other module reads, redaction for `GET /config`, and the check
//! that reports every problem at once with its YAML path and line.
//!
//! The pipeline: [`yaml`] parses the text → [`interpolate`] expands `${VAR}` →
//! [`environment`] lays the overriding variables over it → [`read`] types every section and
//! every module's options, leniently and collecting every problem → [`compile`] checks what
//! spans sections ([`chains`], [`modules`]). Each setting is a field of its section's struct
//! ([`redis`], [`api`], [`limits`]): type, default and documentation in one place.
//! [`access`] holds the rules on who may reach the API; [`redact`] and [`keep`] serve
//! `GET`/`POST /config`.

pub mod access;
mod api;
mod chains;
mod compile;
mod environment;
mod interpolate;
mod keep;
mod limits;
mod load;
mod locate;
mod modules;
mod names;
pub mod path;
pub mod read;
pub mod redact;
mod redis;
mod suggest;
mod summary;
mod yaml;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::links::LinkKind;
use crate::problem::Problem;
use crate::storages::StorageKind;

use self::path::YamlPath;
use self::read::Problems;

pub use self::api::ApiSettings;
pub use self::limits::{Limits, Retry};
pub use self::redis::RedisSettings;

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
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Store connection and key lifetimes.
    pub redis: RedisSettings,
    /// The HTTP server.
    pub api: ApiSettings,
    /// Concurrency, timeouts, retries and sizes.
    pub limits: Limits,
    /// In file order.
    pub links: Vec<Module<LinkKind>>,
    /// In file order: the order of storage fallback reads.
    pub storages: Vec<Module<StorageKind>>,
    /// In file order; every link and storage they name is defined.
    pub chains: Vec<Chain>,
    /// Ingress list → accepted keys, in file order.
    pub ingress_auth: Vec<(String, Vec<String>)>,
    /// The document as written in the file (before interpolation): what `POST /config` writes.
    pub document: Value,
    /// The document in force: the file's, with the settings environment variables override
    /// set to their values (before interpolation, so references stay references). What
    /// `GET /config` shows, redacted, and what a `"***"` of `POST /config` keeps.
    pub effective: Value,
    /// The file it was loaded from, if any (`POST /config` writes there).
    pub path: Option<PathBuf>,
    /// Warnings found while compiling (logged at start and reload).
    pub warnings: Vec<String>,
}

/// A link or storage instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Module<K> {
    /// The instance's name: its key under `links` or `storages`.
    pub name: String,
    /// The built-in module, whatever name form the file used.
    pub kind: K,
    /// Interpolated options as written; the kind read and checked them, and its build reads
    /// them again (module defaults are the kind's).
    pub options: Map<String, Value>,
    /// The effective retry policy: the instance's `retry` keys over `limits.retry`.
    pub retry: Retry,
}

/// A chain (config.md §5).
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    /// Its key under `chains`.
    pub name: String,
    /// Link names (each defined under `links`), run in this order.
    pub links: Vec<String>,
    /// Storage names (each defined under `storages`), written after the links.
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
}

/// One config problem: its YAML path (`chains.main.links[2]`), line when known, and message.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    /// Where: segments, shown as `chains.main.links[2]` (a key that is not a plain word is
    /// quoted: `links["my.link"]`); the root for the document itself.
    pub path: YamlPath,
    /// 1-based line in the file, when the problem comes from a file and the line was found.
    pub line: Option<usize>,
    /// A sentence an operator can act on.
    pub message: String,
}

impl ConfigProblem {
    /// A problem of the configuration as a whole (no path, no line).
    pub fn whole(message: impl Into<String>) -> Self {
        ConfigProblem {
            path: YamlPath::root(),
            line: None,
            message: message.into(),
        }
    }

    /// As a 422 problem of `POST /config`: type `config`, `loc` = `body` + the config path.
    pub fn to_problem(&self) -> Problem {
        Problem::body(
            "config",
            self.path.segments().to_vec(),
            self.message.clone(),
        )
    }
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.to_string();
        let path = if path.is_empty() {
            "(top level)"
        } else {
            &path
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
        compile::compile(Problems::new(Some(text)), document, path, env)
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
        let (merged, nothing_to_keep) = keep::keep_current(document, &current.effective);
        let mut problems = Problems::new(None);
        for keep::NothingToKeep(path) in nothing_to_keep {
            problems.error(&path, "\"***\" keeps the current value, but the current configuration has none at this path");
        }
        compile::compile(problems, merged, current.path.clone(), env)
    }

    /// The document as YAML text, for writing the config file after `POST /config`.
    pub fn to_yaml(&self) -> String {
        yaml::write(&self.document)
    }

    /// The configuration in force with secrets redacted (api.md §5.22).
    pub fn redacted(&self) -> Value {
        redact::redact(&self.effective)
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

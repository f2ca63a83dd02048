//! From the document to the typed [`Config`]: interpolation, the environment laid over the
//! file, reading every section, and every check across them, with all problems collected
//! before deciding (config.md §9.2).

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::api::ApiSettings;
use super::chains::{self, ChainEntry, Defined};
use super::environment;
use super::interpolate::interpolate;
use super::limits::Limits;
use super::modules::{self, LinkEntry, StorageEntry, TracerEntry};
use super::names::instance_name_problem;
use super::path::YamlPath;
use super::read::{describe, Named, Problems};
use super::redis::RedisSettings;
use super::{Config, ConfigError, Env};

/// The file's top level (config.md §2). Any other key is a problem, with the nearest valid
/// key suggested.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Link instances (a module plus options) that chains name.
    #[serde(default)]
    links: Named<LinkEntry>,
    /// Storage instances; their order is the order of storage fallback reads.
    #[serde(default)]
    storages: Named<StorageEntry>,
    /// Processing pipelines.
    #[serde(default)]
    chains: Named<ChainEntry>,
    /// Audit hooks run around every link (none is available in this build).
    #[serde(default)]
    tracers: Named<TracerEntry>,
    /// Pollers of another server's egress list (not available in this build).
    #[serde(default)]
    followers: Named<Value>,
    /// Ingress list → key or keys accepted by `POST /vcon/external-ingress`.
    #[serde(default)]
    ingress_auth: Named<Value>,
    /// Python module imports: not supported; must be absent, `null` or `{}`.
    #[serde(default)]
    imports: Option<Value>,
    /// Store connection and key lifetimes (§7.1).
    #[serde(default = "defaults")]
    redis: RedisSettings,
    /// The HTTP server (§7.2).
    #[serde(default = "defaults")]
    api: ApiSettings,
    /// Concurrency, timeouts, retries and sizes (§7.3).
    #[serde(default)]
    limits: Limits,
}

/// A section with every setting at its default: the empty mapping read.
fn defaults<T: serde::de::DeserializeOwned>() -> T {
    // Every setting of a section has a default, so the empty mapping reads.
    serde_json::from_value(Value::Object(Map::new())).expect("every setting has a default")
}

/// Compile `document` (as written, before interpolation), adding to what `problems` holds.
/// `null` (an empty file) is the empty configuration.
pub fn compile(
    mut problems: Problems<'_>,
    document: Value,
    path: Option<PathBuf>,
    env: &Env,
) -> Result<Config, ConfigError> {
    let document = if document.is_null() {
        Value::Object(Map::new())
    } else {
        document
    };
    let (expanded, unresolved) = interpolate(&document, env);
    for failure in unresolved {
        problems.unresolved(&failure.path, failure.message);
    }
    let root = YamlPath::root();
    if !expanded.is_object() {
        problems.error(
            &root,
            format!(
                "the configuration must be a mapping of sections (links, chains, …), found {}",
                describe(&expanded)
            ),
        );
        return Err(ConfigError::Invalid(problems.into_parts().0));
    }
    let file = read_with_environment(&mut problems, &expanded, env);
    let Some(mut file) = file else {
        return Err(ConfigError::Invalid(problems.into_parts().0));
    };

    file.redis.check(&root.key("redis"), &mut problems);
    file.api.check(&root.key("api"), env, &mut problems);
    let written_limits = expanded.get("limits").cloned().unwrap_or(Value::Null);
    file.limits
        .check(&root.key("limits"), &written_limits, &mut problems);

    let names = |section: &str| -> Vec<String> {
        expanded
            .get(section)
            .and_then(Value::as_object)
            .map(|entries| entries.keys().cloned().collect())
            .unwrap_or_default()
    };
    for section in ["links", "storages", "tracers", "chains", "followers"] {
        for name in names(section) {
            if let Some(problem) = instance_name_problem(&name) {
                problems.error(&root.key(section).key(&name), problem);
            }
        }
    }

    let links = modules::links(
        &file.links,
        expanded.get("links"),
        &file.limits.retry,
        &mut problems,
    );
    let storages = modules::storages(
        &file.storages,
        expanded.get("storages"),
        &file.limits.retry,
        &mut problems,
    );
    modules::tracers(&file.tracers, &mut problems);
    let storage_prefixes = modules::redis_storage_prefixes(&storages);

    let (link_names, storage_names, tracer_names) =
        (names("links"), names("storages"), names("tracers"));
    let defined = Defined {
        links: &link_names,
        storages: &storage_names,
        tracers: &tracer_names,
        storage_prefixes: &storage_prefixes,
    };
    let chains = chains::chains(
        &file.chains,
        &defined,
        file.limits.default_workers,
        &mut problems,
    );
    chains::followers(&file.followers, &mut problems);
    let ingress_auth = chains::ingress_auth(
        &file.ingress_auth,
        &chains,
        &storage_prefixes,
        &mut problems,
    );
    chains::imports(file.imports.as_ref(), &mut problems);

    let (found, warnings) = problems.into_parts();
    if !found.is_empty() {
        return Err(ConfigError::Invalid(found));
    }
    let effective = environment::laid_over(&document, &environment::overrides(env));
    Ok(Config {
        redis: file.redis,
        api: file.api,
        limits: file.limits,
        links,
        storages,
        chains,
        ingress_auth,
        document,
        effective,
        path,
        warnings,
    })
}

/// The file read as written — it must be valid without the environment — then, when
/// environment variables override settings, read again with them laid over it; a problem of
/// an overriding value names its variable.
fn read_with_environment(problems: &mut Problems<'_>, expanded: &Value, env: &Env) -> Option<File> {
    let root = YamlPath::root();
    let from_file = problems.read::<File>(expanded, &root);
    let overrides = environment::overrides(env);
    if overrides.is_empty() {
        return from_file;
    }
    let mut layered = Problems::new(None);
    for o in &overrides {
        layered.from_env(&o.path, &o.variable);
        // The checks that follow the reading see the overriding values too.
        problems.from_env(&o.path, &o.variable);
    }
    let merged = environment::laid_over(expanded, &overrides);
    let read = layered.read::<File>(&merged, &root);
    problems.adopt(layered, |problem| {
        overrides.iter().any(|o| o.path == problem.path)
    });
    read.filter(|_| from_file.is_some())
}

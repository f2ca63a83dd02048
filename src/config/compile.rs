//! From the document to the typed [`Config`]: interpolation, typing and every check, with
//! all problems collected before deciding (config.md §9.2).

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::checker::{describe, Checker};
use super::coerce::{Coerce, Object};
use super::interpolate::interpolate;
use super::path::YamlPath;
use super::pipelines::{self, Defined};
use super::raw::RawConfig;
use super::{instances, settings, Config, ConfigError, Env};

/// Compile `document` (as written, before interpolation), adding to the problems `ck`
/// already holds. `null` (an empty file) is the empty configuration.
pub fn compile(
    mut ck: Checker<'_>,
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
        ck.unresolved(&failure.path, failure.message);
    }

    let root = YamlPath::root();
    let raw = match Object::<RawConfig>::coerce(&expanded) {
        Some(object) => ck.known(&root, &object).clone(),
        None => {
            ck.error(
                &root,
                format!(
                    "the configuration must be a mapping of sections (links, chains, …), found {}",
                    describe(&expanded)
                ),
            );
            RawConfig::default()
        }
    };

    let redis = settings::redis(&mut ck, &raw.redis, env);
    let api = settings::api(&mut ck, &raw.api, env);
    let limits = settings::limits(&mut ck, &raw.limits, env);

    let links = instances::links(&mut ck, &raw.links, &limits.retry);
    let storages = instances::storages(&mut ck, &raw.storages, &limits.retry);
    let tracers = instances::tracers(&mut ck, &raw.tracers, &limits.retry);
    let storage_prefixes = instances::redis_storage_prefixes(&storages.modules);

    let defined = Defined {
        links: &links.names,
        storages: &storages.names,
        tracers: &tracers.names,
        storage_prefixes: &storage_prefixes,
    };
    let chains = pipelines::chains(&mut ck, &raw.chains, &defined, limits.default_workers);
    let followers = pipelines::followers(
        &mut ck,
        &raw.followers,
        &chains,
        &api.header_name,
        &storage_prefixes,
    );
    let ingress_auth =
        pipelines::ingress_auth(&mut ck, &raw.ingress_auth, &chains, &storage_prefixes);
    pipelines::imports(&mut ck, raw.imports.as_ref());

    if !ck.problems.is_empty() {
        return Err(ConfigError::Invalid(ck.problems));
    }
    Ok(Config {
        redis,
        api,
        limits,
        links: links.modules,
        storages: storages.modules,
        tracers: tracers.modules,
        chains,
        followers,
        ingress_auth,
        document,
        path,
        warnings: ck.warnings,
    })
}

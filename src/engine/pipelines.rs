//! What a configuration is built into: every link and storage instance, and the plan of each
//! chain with its links and storages resolved. Building is the last step of putting a
//! configuration in force (`check-config`, start-up, `POST /config` and reloads all build
//! it); applying it then only starts plans. An instance whose definition did not change keeps
//! the one already built (its clients, pools and connections), so a reload that changes one
//! storage rebuilds that storage only.

use std::sync::Arc;

use crate::config::path::YamlPath;
use crate::config::{Chain, Config, ConfigProblem, Limits, Module, Retry};
use crate::links::{Link, LinkKind};
use crate::modules::ModuleContext;
use crate::storages::{Storage, StorageKind, Storages};

/// Links, storages and chain plans of one configuration.
pub struct Pipelines {
    /// Every link instance as configured, with what was built for it.
    links: Vec<(Module<LinkKind>, Arc<dyn Link>)>,
    /// Every storage instance as configured, with what was built for it.
    built_storages: Vec<(Module<StorageKind>, Arc<dyn Storage>)>,
    /// The limits the instances were built with (a change rebuilds them all).
    limits: Limits,
    /// In the order of the `storages:` section (the order of fallback reads).
    pub storages: Arc<Storages>,
    /// Each storage's name and retry policy, in the same order (what its sink delivers with).
    pub sinks: Vec<(String, Arc<dyn Storage>, Retry)>,
    /// One per chain of the configuration, in file order, enabled or not.
    pub plans: Vec<ChainPlan>,
}

/// A chain with what it runs.
pub struct ChainPlan {
    /// The chain as configured.
    pub chain: Chain,
    /// Its links, in order.
    pub links: Vec<ChainLink>,
}

/// A link of a chain, as it runs.
#[derive(Clone)]
pub struct ChainLink {
    /// Its name under `links`.
    pub name: String,
    /// The instance.
    pub link: Arc<dyn Link>,
    /// The link calls a network service: its changes are written back at once, so a crash
    /// does not make the next attempt pay for the call again (modules.md §1.1 step 4).
    pub calls_network: bool,
}

impl Pipelines {
    /// Build every link and storage of `config` and resolve each chain's names; every
    /// problem, each with its config path. Instances defined as in `previous` (the pipelines
    /// in force) are taken from it, not built again.
    pub fn build(
        config: &Config,
        ctx: &ModuleContext,
        previous: Option<&Pipelines>,
    ) -> Result<Pipelines, Vec<ConfigProblem>> {
        let previous = previous.filter(|p| p.limits == ctx.limits);
        let mut problems = Vec::new();
        let mut links = Vec::with_capacity(config.links.len());
        for module in &config.links {
            let kept = previous.and_then(|p| p.links.iter().find(|(own, _)| own == module));
            match kept.map_or_else(
                || module.kind.build(module, ctx),
                |(_, link)| Ok(link.clone()),
            ) {
                Ok(link) => links.push((module.clone(), link)),
                Err(error) => problems.extend(error.into_problems()),
            }
        }
        let mut built_storages = Vec::with_capacity(config.storages.len());
        for module in &config.storages {
            let kept =
                previous.and_then(|p| p.built_storages.iter().find(|(own, _)| own == module));
            match kept.map_or_else(
                || module.kind.build(module, ctx),
                |(_, storage)| Ok(storage.clone()),
            ) {
                Ok(storage) => built_storages.push((module.clone(), storage)),
                Err(error) => problems.extend(error.into_problems()),
            }
        }
        let sinks: Vec<(String, Arc<dyn Storage>, Retry)> = built_storages
            .iter()
            .map(|(module, storage)| (module.name.clone(), storage.clone(), module.retry.clone()))
            .collect();
        let storages = built_storages
            .iter()
            .map(|(module, storage)| (module.name.clone(), module.kind, storage.clone()));
        let mut plans = Vec::with_capacity(config.chains.len());
        for chain in &config.chains {
            let at = YamlPath::root().key("chains").key(&chain.name);
            let mut resolved = Vec::with_capacity(chain.links.len());
            for (i, name) in chain.links.iter().enumerate() {
                match links.iter().find(|(module, _)| &module.name == name) {
                    Some((module, link)) => resolved.push(ChainLink {
                        name: name.clone(),
                        link: link.clone(),
                        calls_network: module.kind.calls_network(),
                    }),
                    None => problems.push(unresolved(&at.key("links").index(i), "link", name)),
                }
            }
            for (i, name) in chain.storages.iter().enumerate() {
                if !sinks.iter().any(|(own, _, _)| own == name) {
                    problems.push(unresolved(&at.key("storages").index(i), "storage", name));
                }
            }
            plans.push(ChainPlan {
                chain: chain.clone(),
                links: resolved,
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Pipelines {
            storages: Arc::new(Storages::new(storages)),
            links,
            built_storages,
            limits: ctx.limits.clone(),
            sinks,
            plans,
        })
    }
}

/// A name a chain gives that no built instance has (a configuration that did not come
/// through the compiler, which refuses it).
fn unresolved(at: &YamlPath, noun: &str, name: &str) -> ConfigProblem {
    ConfigProblem {
        path: at.clone(),
        line: None,
        message: format!("no {noun} named {name:?} was built"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;
    use crate::metrics::Metrics;

    fn compiled(yaml: &str) -> Config {
        Config::from_yaml(yaml, None, &Env::default()).unwrap()
    }

    fn context(config: &Config) -> ModuleContext {
        let store = Arc::new(crate::store::memory::MemoryStore::new(
            crate::server::store_settings(config),
        ));
        ModuleContext::new(config.limits.clone(), Arc::new(Metrics::new()), store)
    }

    const FILE: &str = "
links:
  tag: {module: tag, options: {tags: [a]}}
  later: {module: expire_vcon}
storages:
  files: {module: file, options: {path: /tmp/conserver-plan-test}}
chains:
  main: {links: [tag, later], storages: [files], ingress_lists: [in]}
";

    #[test]
    fn unchanged_instances_are_kept_and_changed_ones_rebuilt() {
        let first = compiled(FILE);
        let ctx = context(&first);
        let running = Pipelines::build(&first, &ctx, None).unwrap();
        let next = compiled(&FILE.replace("tags: [a]", "tags: [b]"));
        let rebuilt = Pipelines::build(&next, &ctx, Some(&running)).unwrap();
        let link = |p: &Pipelines, name: &str| {
            p.links
                .iter()
                .find(|(m, _)| m.name == name)
                .unwrap()
                .1
                .clone()
        };
        assert!(
            !Arc::ptr_eq(&link(&running, "tag"), &link(&rebuilt, "tag")),
            "options changed"
        );
        assert!(Arc::ptr_eq(
            &link(&running, "later"),
            &link(&rebuilt, "later")
        ));
        assert!(Arc::ptr_eq(
            running.storages.get("files").unwrap(),
            rebuilt.storages.get("files").unwrap()
        ));
        assert!(Arc::ptr_eq(
            &rebuilt.plans[0].links[1].link,
            &link(&running, "later")
        ));

        // Other limits: everything is built again with them.
        let limited = compiled(&format!("limits: {{http_timeout: 5}}\n{FILE}"));
        let again = Pipelines::build(&limited, &context(&limited), Some(&running)).unwrap();
        assert!(!Arc::ptr_eq(
            running.storages.get("files").unwrap(),
            again.storages.get("files").unwrap()
        ));
    }
}

//! What a configuration is built into: every link and storage instance, and the plan of each
//! chain with its links and storages resolved. Building is the last step of putting a
//! configuration in force (`check-config`, start-up, `POST /config` and reloads all build
//! it); applying it then only starts plans.

use std::sync::Arc;

use crate::config::path::YamlPath;
use crate::config::{Chain, Config, ConfigProblem, Retry};
use crate::links::Link;
use crate::modules::ModuleContext;
use crate::storages::{Storage, Storages};

/// Links, storages and chain plans of one configuration.
pub struct Pipelines {
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
    /// problem, each with its config path.
    pub fn build(config: &Config, ctx: &ModuleContext) -> Result<Pipelines, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut links = Vec::with_capacity(config.links.len());
        for module in &config.links {
            match module.kind.build(module, ctx) {
                Ok(link) => links.push((module, link)),
                Err(error) => problems.extend(error.into_problems()),
            }
        }
        let mut sinks = Vec::with_capacity(config.storages.len());
        let mut storages = Vec::with_capacity(config.storages.len());
        for module in &config.storages {
            match module.kind.build(module, ctx) {
                Ok(storage) => {
                    sinks.push((module.name.clone(), storage.clone(), module.retry.clone()));
                    storages.push((module.name.clone(), module.kind, storage));
                }
                Err(error) => problems.extend(error.into_problems()),
            }
        }
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

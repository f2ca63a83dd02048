//! The built modules of a configuration: every link and storage instance, with their options
//! checked. Building is also the last step of validating a configuration (option schemas live
//! with the modules), so `check-config`, start-up, `POST /config` and reloads all go through
//! [`Pipelines::build`] and report every problem at once.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::path::YamlPath;
use crate::config::{Config, ConfigProblem};
use crate::links::{self, Link, Shared};
use crate::storages::registry::Storages;
use crate::store::Store;

/// Links and storages of one configuration, by name.
pub struct Pipelines {
    pub links: HashMap<String, Arc<dyn Link>>,
    /// In the order of the `storages:` section (the order of fallback reads).
    pub storages: Arc<Storages>,
}

impl Pipelines {
    /// Build every link and storage of `config`; every problem, each with its config path.
    pub fn build(
        config: &Config,
        shared: &Shared,
        store: &Arc<dyn Store>,
    ) -> Result<Pipelines, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut links = HashMap::new();
        for module in &config.links {
            match links::build(module, shared) {
                Ok(link) => {
                    links.insert(module.name.clone(), link);
                }
                Err(messages) => problems.extend(located("links", &module.name, messages)),
            }
        }
        let storages = Storages::build_all(config, shared, store).map_err(|mut found| {
            problems.append(&mut found);
        });
        match storages {
            Ok(storages) if problems.is_empty() => Ok(Pipelines {
                links,
                storages: Arc::new(storages),
            }),
            _ => Err(problems),
        }
    }
}

/// A module's messages (`"options.tags: expected a list"`) as problems at
/// `<section>.<name>.options.tags`.
fn located(
    section: &str,
    name: &str,
    messages: Vec<String>,
) -> impl Iterator<Item = ConfigProblem> {
    let base = YamlPath::root().key(section).key(name);
    messages.into_iter().map(move |message| {
        let (path, message) = match message.split_once(": ") {
            Some((head, rest)) if head.starts_with("options") || head.starts_with("retry") => {
                let path = head
                    .split('.')
                    .fold(base.clone(), |path, key| path.key(key));
                (path, rest.to_owned())
            }
            _ => (base.clone(), message),
        };
        ConfigProblem {
            path: path.to_string(),
            line: None,
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::located;

    #[test]
    fn module_messages_are_located_under_the_module() {
        let problems: Vec<_> = located(
            "links",
            "my.tag",
            vec![
                "options.tags: expected a list of strings".into(),
                "no key configured".into(),
            ],
        )
        .collect();
        assert_eq!(problems[0].path, "links[\"my.tag\"].options.tags");
        assert_eq!(problems[0].message, "expected a list of strings");
        assert_eq!(problems[1].path, "links[\"my.tag\"]");
        assert_eq!(problems[1].message, "no key configured");
    }
}

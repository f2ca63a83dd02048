//! The configured storages, by name and in the order of the `storages:` section: built all at
//! once (every problem reported), and the operations that go through several of them — the
//! fallback read of api.md §4 / redis.md §5 and the delete of api.md §5.15.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use super::{build, Storage};
use crate::config::path::YamlPath;
use crate::config::{Config, ConfigProblem};
use crate::links::Shared;
use crate::problem::Loc;
use crate::store::Store;

/// The storage instances of a config, in `storages:` order.
#[derive(Clone, Default)]
pub struct Storages {
    entries: Vec<(String, Arc<dyn Storage>)>,
}

impl fmt::Debug for Storages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Storages {
    /// Build every storage of `config`; the problems of all of them, each with its path
    /// (`storages.<name>.options.<key>`), when any is misconfigured.
    pub fn build_all(
        config: &Config,
        shared: &Shared,
        store: &Arc<dyn Store>,
    ) -> Result<Storages, Vec<ConfigProblem>> {
        let mut entries = Vec::with_capacity(config.storages.len());
        let mut problems = Vec::new();
        for module in &config.storages {
            match build(module, shared, store) {
                Ok(storage) => entries.push((module.name.clone(), storage)),
                Err(messages) => {
                    let at = YamlPath::root().key("storages").key(&module.name);
                    problems.extend(messages.iter().map(|message| located(&at, message)));
                }
            }
        }
        if problems.is_empty() {
            Ok(Storages { entries })
        } else {
            Err(problems)
        }
    }

    /// The storage configured under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Storage>> {
        self.entries
            .iter()
            .find(|(own, _)| own == name)
            .map(|(_, storage)| storage)
    }

    /// The storage names, in `storages:` order (the API's fallback read order).
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|(name, _)| name.as_str())
    }

    /// A worker's read order (redis.md §5): the chain's storages in chain order, then the
    /// other configured storages in `storages:` order.
    pub fn chain_order<'a>(
        &'a self,
        chain_storages: &'a [String],
    ) -> impl Iterator<Item = &'a str> + 'a {
        let others = self
            .names()
            .filter(move |name| !chain_storages.iter().any(|own| own == name));
        chain_storages.iter().map(String::as_str).chain(others)
    }

    /// The fallback read: the storages named by `order` that support `get`, one after the
    /// other, until one has the vCon; `(storage name, text)`. A storage that fails, or answers
    /// with something that is not a JSON object, is logged and skipped. The caller re-caches
    /// what was found.
    pub async fn read_back<'a>(
        &self,
        uuid: Uuid,
        order: impl Iterator<Item = &'a str>,
    ) -> Option<(String, String)> {
        for name in order {
            let Some(storage) = self.get(name).filter(|s| s.can_get()) else {
                continue;
            };
            match storage.get(uuid).await {
                Ok(Some(text)) if is_json_object(&text) => {
                    tracing::debug!(storage = name, %uuid, "vCon read back from a storage");
                    return Some((name.to_owned(), text));
                }
                Ok(Some(_)) => {
                    tracing::warn!(storage = name, %uuid, "storage returned something that is not a JSON object; skipped");
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(storage = name, %uuid, %error, "storage read failed; skipped");
                }
            }
        }
        None
    }

    /// Delete the vCon from every storage that supports it, in `storages:` order; a failure is
    /// logged and does not stop the others (api.md §5.15).
    pub async fn delete_everywhere(&self, uuid: Uuid) {
        for (name, storage) in self.entries.iter().filter(|(_, s)| s.can_delete()) {
            match storage.delete(uuid).await {
                Ok(deleted) => tracing::debug!(storage = %name, %uuid, deleted, "storage delete"),
                Err(error) => {
                    tracing::warn!(storage = %name, %uuid, %error, "storage delete failed")
                }
            }
        }
    }
}

/// A build message as a config problem under `at`: a message that starts with an option path
/// (`options.max_file_size: …`, `options["odd key"]: …`) gets that path appended.
fn located(at: &YamlPath, message: &str) -> ConfigProblem {
    let split = message.match_indices(": ").find_map(|(index, _)| {
        let relative = YamlPath::parse(&message[..index])?;
        let under_options =
            matches!(relative.segments().first(), Some(Loc::Key(k)) if k == "options");
        under_options.then(|| (relative, &message[index + 2..]))
    });
    let (path, message) = match split {
        Some((relative, rest)) => {
            let path = relative
                .segments()
                .iter()
                .fold(at.clone(), |path, segment| match segment {
                    Loc::Key(key) => path.key(key),
                    Loc::Index(index) => path.index(*index),
                });
            (path, rest)
        }
        None => (at.clone(), message),
    };
    ConfigProblem {
        path: path.to_string(),
        line: None,
        message: message.to_owned(),
    }
}

/// Whether `text` is a JSON object (what may be re-cached as a vCon).
fn is_json_object(text: &str) -> bool {
    text.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::config::Env;
    use crate::storages::{Saved, StorageError};

    /// A storage that answers from a script and records the calls it got.
    struct Scripted {
        answer: fn() -> Result<Option<String>, StorageError>,
        readable: bool,
        calls: Mutex<Vec<&'static str>>,
    }

    impl Scripted {
        fn new(answer: fn() -> Result<Option<String>, StorageError>) -> Arc<Scripted> {
            Arc::new(Scripted {
                answer,
                readable: true,
                calls: Mutex::new(Vec::new()),
            })
        }

        fn calls(&self) -> Vec<&'static str> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl Storage for Scripted {
        async fn save(&self, _: &Saved) -> Result<(), StorageError> {
            Ok(())
        }
        fn can_get(&self) -> bool {
            self.readable
        }
        async fn get(&self, _: Uuid) -> Result<Option<String>, StorageError> {
            self.calls.lock().unwrap().push("get");
            (self.answer)()
        }
        fn can_delete(&self) -> bool {
            self.readable
        }
        async fn delete(&self, _: Uuid) -> Result<bool, StorageError> {
            self.calls.lock().unwrap().push("delete");
            (self.answer)().map(|found| found.is_some())
        }
    }

    fn registry(entries: &[(&str, Arc<Scripted>)]) -> Storages {
        Storages {
            entries: entries
                .iter()
                .map(|(name, s)| (name.to_string(), Arc::clone(s) as Arc<dyn Storage>))
                .collect(),
        }
    }

    #[tokio::test]
    async fn read_back_follows_the_order_and_skips_failures_and_non_objects() {
        let failing = Scripted::new(|| Err(StorageError::Transient("down".into())));
        let garbage = Scripted::new(|| Ok(Some("not json".into())));
        let empty = Scripted::new(|| Ok(None));
        let holder = Scripted::new(|| Ok(Some(r#"{"uuid":"x"}"#.into())));
        let later = Scripted::new(|| Ok(Some(r#"{"uuid":"later"}"#.into())));
        let storages = registry(&[
            ("later", later.clone()),
            ("holder", holder.clone()),
            ("empty", empty.clone()),
            ("garbage", garbage.clone()),
            ("failing", failing.clone()),
        ]);
        let found = storages
            .read_back(
                Uuid::nil(),
                ["unknown", "failing", "garbage", "empty", "holder", "later"].into_iter(),
            )
            .await;
        assert_eq!(
            found,
            Some(("holder".to_owned(), r#"{"uuid":"x"}"#.to_owned()))
        );
        for tried in [&failing, &garbage, &empty, &holder] {
            assert_eq!(tried.calls(), ["get"]);
        }
        assert!(later.calls().is_empty(), "the first hit wins");

        let nothing = storages
            .read_back(Uuid::nil(), ["failing", "empty"].into_iter())
            .await;
        assert_eq!(nothing, None);
    }

    #[tokio::test]
    async fn read_back_asks_only_storages_that_support_get() {
        let write_only = Arc::new(Scripted {
            answer: || Ok(Some("{}".into())),
            readable: false,
            calls: Mutex::new(Vec::new()),
        });
        let storages = registry(&[("hook", write_only.clone())]);
        assert_eq!(
            storages.read_back(Uuid::nil(), storages.names()).await,
            None
        );
        assert!(write_only.calls().is_empty());
    }

    #[tokio::test]
    async fn delete_everywhere_goes_on_after_a_failure() {
        let failing = Scripted::new(|| Err(StorageError::Permanent("refused".into())));
        let holder = Scripted::new(|| Ok(Some("{}".into())));
        let storages = registry(&[("failing", failing.clone()), ("holder", holder.clone())]);
        storages.delete_everywhere(Uuid::nil()).await;
        assert_eq!(failing.calls(), ["delete"]);
        assert_eq!(holder.calls(), ["delete"]);
    }

    #[test]
    fn chain_order_puts_the_chain_first_then_the_section_order() {
        let any = || Scripted::new(|| Ok(None));
        let storages = registry(&[("a", any()), ("b", any()), ("c", any()), ("d", any())]);
        let chain = ["c".to_owned(), "a".to_owned()];
        assert_eq!(
            storages.chain_order(&chain).collect::<Vec<_>>(),
            ["c", "a", "b", "d"]
        );
        assert_eq!(storages.names().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    }

    fn build_from(yaml: &str) -> Result<Storages, Vec<ConfigProblem>> {
        let config = Config::from_yaml(yaml, None, &Env::default()).unwrap();
        let shared = Shared {
            http: reqwest::Client::new(),
            limits: config.limits.clone(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        };
        let store: Arc<dyn Store> = Arc::new(crate::store::memory::MemoryStore::new(
            crate::server::store_settings(&config),
        ));
        Storages::build_all(&config, &shared, &store)
    }

    #[test]
    fn build_all_keeps_the_section_order() {
        let storages = build_from(
            "storages:\n  b:\n    module: redis_storage\n  a:\n    module: storage.file\n    options:\n      path: /tmp/x\n",
        )
        .unwrap();
        assert_eq!(storages.names().collect::<Vec<_>>(), ["b", "a"]);
        assert!(storages.get("a").is_some_and(|s| s.can_get()));
        assert!(storages.get("c").is_none());
    }

    #[test]
    fn build_all_reports_every_problem_with_its_path() {
        let problems = build_from(
            "storages:\n  files:\n    module: file\n    options:\n      compression: maybe\n      \"odd: key\": 1\n  cache:\n    module: redis_storage\n    options:\n      expires: -1\n  bucket:\n    module: s3\n    options:\n      aws_bucket: b\n",
        )
        .unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 4, "{shown:?}");
        assert_eq!(problems[0].path, "storages.files.options.compression");
        assert!(problems[0].message.starts_with("expected a boolean"));
        assert_eq!(problems[1].path, "storages.files.options[\"odd: key\"]");
        assert!(problems[1]
            .message
            .starts_with("unknown option of the file module"));
        assert_eq!(problems[2].path, "storages.cache.options.expires");
        assert_eq!(problems[3].path, "storages.bucket");
        assert_eq!(
            problems[3].message,
            "module 's3' is not available in this build yet"
        );
    }
}

//! The configured storages, by name and in the order of the `storages:` section, and the
//! operations that go through several of them — the fallback read of api.md §4 / redis.md §5
//! and the delete of api.md §5.15.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use super::{Storage, StorageKind};

/// One configured storage.
#[derive(Clone)]
struct Entry {
    name: String,
    kind: StorageKind,
    storage: Arc<dyn Storage>,
}

/// The storage instances of a config, in `storages:` order.
#[derive(Clone, Default)]
pub struct Storages {
    entries: Vec<Entry>,
}

impl fmt::Debug for Storages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Storages {
    /// The built instances, in `storages:` order: `(name, kind, storage)`.
    pub fn new(entries: impl IntoIterator<Item = (String, StorageKind, Arc<dyn Storage>)>) -> Self {
        Storages {
            entries: entries
                .into_iter()
                .map(|(name, kind, storage)| Entry {
                    name,
                    kind,
                    storage,
                })
                .collect(),
        }
    }

    /// The storage configured under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Storage>> {
        self.entry(name).map(|entry| &entry.storage)
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.name == name)
    }

    /// The storage names, in `storages:` order (the API's fallback read order).
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|entry| entry.name.as_str())
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
            let Some(entry) = self.entry(name).filter(|e| e.kind.supports_get()) else {
                continue;
            };
            match entry.storage.get(uuid).await {
                Ok(Some(text)) if crate::vcon::is_json_object(&text) => {
                    tracing::debug!(storage = name, %uuid, "vCon read back from a storage");
                    return Some((name.to_owned(), text));
                }
                Ok(Some(_)) => {
                    tracing::warn!(storage = name, %uuid, "storage returned something that is not a JSON object; skipped");
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(storage = name, %uuid, error = %crate::report(&error), "storage read failed; skipped");
                }
            }
        }
        None
    }

    /// Delete the vCon from every storage that supports it, in `storages:` order; a failure is
    /// logged and does not stop the others (api.md §5.15).
    pub async fn delete_everywhere(&self, uuid: Uuid) {
        let deletable = self.entries.iter().filter(|e| e.kind.supports_delete());
        for Entry { name, storage, .. } in deletable {
            match storage.delete(uuid).await {
                Ok(deleted) => tracing::debug!(storage = %name, %uuid, deleted, "storage delete"),
                Err(error) => {
                    tracing::warn!(storage = %name, %uuid, error = %crate::report(&error), "storage delete failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::storages::{Saved, StorageError};

    /// A storage that answers from a script and records the calls it got.
    struct Scripted {
        answer: fn() -> Result<Option<String>, StorageError>,
        calls: Mutex<Vec<&'static str>>,
    }

    impl Scripted {
        fn new(answer: fn() -> Result<Option<String>, StorageError>) -> Arc<Scripted> {
            Arc::new(Scripted {
                answer,
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
        async fn get(&self, _: Uuid) -> Result<Option<String>, StorageError> {
            self.calls.lock().unwrap().push("get");
            (self.answer)()
        }
        async fn delete(&self, _: Uuid) -> Result<bool, StorageError> {
            self.calls.lock().unwrap().push("delete");
            (self.answer)().map(|found| found.is_some())
        }
    }

    /// Storages of a kind that supports get and delete.
    fn registry(entries: &[(&str, Arc<Scripted>)]) -> Storages {
        registry_of(StorageKind::File, entries)
    }

    fn registry_of(kind: StorageKind, entries: &[(&str, Arc<Scripted>)]) -> Storages {
        Storages::new(
            entries
                .iter()
                .map(|(name, s)| (name.to_string(), kind, Arc::clone(s) as Arc<dyn Storage>)),
        )
    }

    #[tokio::test]
    async fn read_back_follows_the_order_and_skips_failures_and_non_objects() {
        let failing = Scripted::new(|| {
            Err(StorageError::transient(
                "down",
                std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            ))
        });
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
        let write_only = Scripted::new(|| Ok(Some("{}".into())));
        let storages = registry_of(StorageKind::Webhook, &[("hook", write_only.clone())]);
        assert_eq!(
            storages.read_back(Uuid::nil(), storages.names()).await,
            None
        );
        storages.delete_everywhere(Uuid::nil()).await;
        assert!(write_only.calls().is_empty());
    }

    #[tokio::test]
    async fn delete_everywhere_goes_on_after_a_failure() {
        let failing = Scripted::new(|| Err(StorageError::refused("refused")));
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
}

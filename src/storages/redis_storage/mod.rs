//! The `redis_storage` storage (modules.md §4.5): a copy of each vCon as a plain string at
//! `<key_prefix><prefix>:<uuid>` in the server's own Redis, with its own expiry. It goes
//! through the server's [`Store`], so it shares its connection, key prefix and error classes.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use uuid::Uuid;

use super::options;
use super::{Saved, Storage, StorageError};
use crate::config::Module;
use crate::store::Store;

/// The options of the `redis_storage` storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStorageOptions {
    /// Keys are `<prefix>:<uuid>` (after the server's `redis.key_prefix`).
    #[serde(default = "default_prefix", deserialize_with = "options::string")]
    pub prefix: String,
    /// Seconds each copy lives; 0 = no expiry.
    #[serde(
        default = "default_expires",
        deserialize_with = "options::whole_seconds"
    )]
    pub expires: u64,
    /// Ignored, with a warning: the server's own Redis is used, as in the Python server.
    #[serde(default)]
    pub redis_url: Option<serde_json::Value>,
    /// Accepted for compatibility with the Python server's configs and ignored, with a
    /// warning: the storage's name is its key under `storages`.
    #[serde(default)]
    pub name: Option<serde_json::Value>,
}

fn default_prefix() -> String {
    "vcon_storage".to_owned()
}

fn default_expires() -> u64 {
    7 * 24 * 3600
}

/// Build a `redis_storage` storage from its config entry, on the server's store.
pub fn build(module: &Module, store: &Arc<dyn Store>) -> Result<Arc<dyn Storage>, Vec<String>> {
    let options: RedisStorageOptions = options::parse(module)?;
    options::warn_ignored(
        module,
        "redis_url",
        "redis_storage writes to the server's own Redis (redis.url)",
    );
    options::warn_ignored(
        module,
        "name",
        "a storage is named by its key under storages",
    );
    Ok(Arc::new(RedisStorage {
        store: Arc::clone(store),
        prefix: options.prefix,
        expires: options.expires,
    }))
}

/// A configured `redis_storage`.
pub struct RedisStorage {
    store: Arc<dyn Store>,
    prefix: String,
    expires: u64,
}

impl RedisStorage {
    /// The blob name of a vCon; the store prepends `redis.key_prefix`.
    fn name(&self, uuid: Uuid) -> String {
        format!("{}:{uuid}", self.prefix)
    }
}

#[async_trait]
impl Storage for RedisStorage {
    async fn save(&self, vcon: &Saved) -> Result<(), StorageError> {
        Ok(self
            .store
            .put_blob(&self.name(vcon.uuid), &vcon.text, self.expires)
            .await?)
    }

    fn can_get(&self) -> bool {
        true
    }

    async fn get(&self, uuid: Uuid) -> Result<Option<String>, StorageError> {
        Ok(self.store.get_blob(&self.name(uuid)).await?)
    }

    fn can_delete(&self) -> bool {
        true
    }

    async fn delete(&self, uuid: Uuid) -> Result<bool, StorageError> {
        Ok(self.store.delete_blob(&self.name(uuid)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Retry;
    use serde_json::{json, Value};

    fn module(options: Value) -> Module {
        Module {
            name: "copy".into(),
            module: "redis_storage".into(),
            options: options.as_object().cloned().unwrap_or_default(),
            retry: Retry {
                attempts: 1,
                initial_backoff: std::time::Duration::ZERO,
                max_backoff: std::time::Duration::ZERO,
                multiplier: 1.0,
            },
        }
    }

    fn parse(options: Value) -> Result<RedisStorageOptions, Vec<String>> {
        super::options::parse(&module(options))
    }

    #[test]
    fn defaults() {
        let defaults = parse(json!({})).unwrap();
        assert_eq!(defaults.prefix, "vcon_storage");
        assert_eq!(defaults.expires, 604_800);
    }

    #[test]
    fn given_values_and_ignored_keys() {
        let given = parse(json!({
            "prefix": "copies",
            "expires": "0",
            "redis_url": "redis://elsewhere:6379",
            "name": "redis_storage",
        }))
        .unwrap();
        assert_eq!(given.prefix, "copies");
        assert_eq!(given.expires, 0);
    }

    #[test]
    fn unknown_and_bad_options() {
        let problems = parse(json!({ "expires": "soon", "ttl": 5 })).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("options.expires: expected a number"));
        assert!(problems[1].starts_with("options.ttl: unknown option of the redis_storage module"));
    }
}

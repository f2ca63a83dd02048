//! The `redis_storage` storage (modules.md §4.5): a copy of each vCon as a plain string at
//! `<key_prefix><prefix>:<uuid>` in the server's own Redis, with its own expiry. It goes
//! through the server's [`Store`], so it shares its connection, key prefix and error classes.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use uuid::Uuid;

use super::{Saved, Storage, StorageError, StorageKind, StorageModule, NAME_OPTION};
use crate::config::Module;
use crate::modules::values::whole_seconds;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::store::Store;

/// The options of the `redis_storage` storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStorageOptions {
    /// Keys are `<prefix>:<uuid>` (after the server's `redis.key_prefix`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Seconds each copy lives; 0 = no expiry.
    #[serde(default = "default_expires", deserialize_with = "whole_seconds")]
    pub expires: u64,
}

impl ModuleOptions for RedisStorageOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[
        (
            "redis_url",
            "redis_storage writes to the server's own Redis (redis.url)",
        ),
        NAME_OPTION,
    ];
}

fn default_prefix() -> String {
    "vcon_storage".to_owned()
}

fn default_expires() -> u64 {
    7 * 24 * 3600
}

impl StorageModule for RedisStorage {
    type Options = RedisStorageOptions;

    fn build(
        options: RedisStorageOptions,
        _module: &Module<StorageKind>,
        ctx: &ModuleContext,
    ) -> Result<RedisStorage, BuildError> {
        Ok(RedisStorage {
            store: Arc::clone(&ctx.store),
            prefix: options.prefix,
            expires: options.expires,
        })
    }
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

    async fn get(&self, uuid: Uuid) -> Result<Option<String>, StorageError> {
        Ok(self.store.get_blob(&self.name(uuid)).await?)
    }

    async fn delete(&self, uuid: Uuid) -> Result<bool, StorageError> {
        Ok(self.store.delete_blob(&self.name(uuid)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::read_in_test;
    use serde_json::{json, Value};

    fn parse(options: Value) -> Result<RedisStorageOptions, Vec<String>> {
        read_in_test(options)
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
        assert_eq!(
            problems,
            [
                "options.expires: must be a number, found \"soon\"",
                "options.ttl: unknown key \"ttl\"; valid keys: prefix, expires"
            ]
        );
    }
}

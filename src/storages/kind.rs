//! The closed set of storages this build provides: one arm each.

use std::sync::Arc;

use super::{file, mongo, postgres, redis_storage, s3, vcon_mcp, webhook};
use super::{Storage, StorageModule};
use crate::config::Module;
use crate::modules::{build_options, module_kinds, BuildError, ModuleContext, OptionsOf, Section};

module_kinds! {
    /// A built-in storage.
    StorageKind in Section::Storage;
    /// `file` (modules.md §4.1).
    File => "file",
    /// `mongo` (§4.3).
    Mongo => "mongo",
    /// `postgres` (§4.4).
    Postgres => "postgres",
    /// `redis_storage` (§4.5).
    RedisStorage => "redis_storage",
    /// `s3` (§4.2).
    S3 => "s3",
    /// `vcon_mcp` (§4.8).
    VconMcp => "vcon_mcp",
    /// `webhook` (§4.7).
    Webhook => "webhook",
}

impl StorageKind {
    /// Whether the storage calls a network service: the local disk does not, nor the server's
    /// own Redis, whose failures the store handles rather than a module retry policy.
    pub fn calls_network(self) -> bool {
        match self {
            StorageKind::File | StorageKind::RedisStorage => false,
            StorageKind::Mongo
            | StorageKind::Postgres
            | StorageKind::S3
            | StorageKind::VconMcp
            | StorageKind::Webhook => true,
        }
    }

    /// Whether a vCon can be read back from the storage (fallback reads try only those).
    pub fn supports_get(self) -> bool {
        match self {
            StorageKind::File
            | StorageKind::Mongo
            | StorageKind::Postgres
            | StorageKind::RedisStorage
            | StorageKind::S3
            | StorageKind::VconMcp => true,
            StorageKind::Webhook => false,
        }
    }

    /// Whether a vCon can be deleted from the storage (`DELETE /vcon` asks only those).
    pub fn supports_delete(self) -> bool {
        match self {
            StorageKind::File
            | StorageKind::Mongo
            | StorageKind::Postgres
            | StorageKind::RedisStorage
            | StorageKind::S3
            | StorageKind::VconMcp => true,
            StorageKind::Webhook => false,
        }
    }

    /// The options type of the module.
    pub fn options(self) -> OptionsOf {
        match self {
            StorageKind::File => OptionsOf::of::<file::FileOptions>(),
            StorageKind::Mongo => OptionsOf::of::<mongo::MongoOptions>(),
            StorageKind::Postgres => OptionsOf::of::<postgres::PostgresOptions>(),
            StorageKind::RedisStorage => OptionsOf::of::<redis_storage::RedisStorageOptions>(),
            StorageKind::S3 => OptionsOf::of::<s3::S3Options>(),
            StorageKind::VconMcp => OptionsOf::of::<vcon_mcp::VconMcpOptions>(),
            StorageKind::Webhook => OptionsOf::of::<webhook::WebhookStorageOptions>(),
        }
    }

    /// Build the storage instance `module`.
    pub fn build(
        self,
        module: &Module<StorageKind>,
        ctx: &ModuleContext,
    ) -> Result<Arc<dyn Storage>, BuildError> {
        match self {
            StorageKind::File => built::<file::FileStorage>(module, ctx),
            StorageKind::Mongo => built::<mongo::MongoStorage>(module, ctx),
            StorageKind::Postgres => built::<postgres::PostgresStorage>(module, ctx),
            StorageKind::S3 => built::<s3::S3Storage>(module, ctx),
            StorageKind::RedisStorage => built::<redis_storage::RedisStorage>(module, ctx),
            StorageKind::Webhook => built::<webhook::WebhookStorage>(module, ctx),
            StorageKind::VconMcp => built::<vcon_mcp::VconMcpStorage>(module, ctx),
        }
    }
}

fn built<S: StorageModule>(
    module: &Module<StorageKind>,
    ctx: &ModuleContext,
) -> Result<Arc<dyn Storage>, BuildError> {
    let options = build_options::<S::Options>(&module.name, Section::Storage, &module.options)?;
    Ok(Arc::new(S::build(options, module, ctx)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::Kind;

    #[test]
    fn names_and_kinds_agree() {
        assert_eq!(StorageKind::NAMES.len(), StorageKind::ALL.len());
        for (kind, name) in StorageKind::ALL.iter().zip(StorageKind::NAMES) {
            assert_eq!(kind.name(), *name);
        }
        assert!(StorageKind::File.supports_get() && !StorageKind::Webhook.supports_get());
        assert!(StorageKind::Webhook.calls_network() && !StorageKind::File.calls_network());
        for remote in [
            StorageKind::Mongo,
            StorageKind::Postgres,
            StorageKind::S3,
            StorageKind::VconMcp,
        ] {
            assert!(remote.calls_network() && remote.supports_get() && remote.supports_delete());
        }
    }
}

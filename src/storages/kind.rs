//! The closed set of storages this build provides: one arm each.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{file, postgres, redis_storage, vcon_mcp, webhook};
use super::{Storage, StorageModule};
use crate::config::path::YamlPath;
use crate::config::read::Problems;
use crate::config::Module;
use crate::modules::{build_options, check_options, BuildError, Kind, ModuleContext, Section};

macro_rules! storage_kinds {
    ($($(#[$doc:meta])* $kind:ident => $name:literal),* $(,)?) => {
        /// A built-in storage.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum StorageKind {
            $($(#[$doc])* $kind,)*
        }

        impl StorageKind {
            /// The names of the storages of this build.
            pub const NAMES: &'static [&'static str] = &[$($name),*];
        }

        impl Kind for StorageKind {
            const SECTION: Section = Section::Storage;
            const ALL: &'static [StorageKind] = &[$(StorageKind::$kind),*];

            fn name(self) -> &'static str {
                match self {
                    $(StorageKind::$kind => $name,)*
                }
            }

            fn calls_network(self) -> bool {
                self.calls_network()
            }

            fn check_options(self, options: &Map<String, Value>, at: &YamlPath, problems: &mut Problems) {
                self.check(options, at, problems)
            }
        }
    };
}

storage_kinds! {
    /// `file` (modules.md §4.1).
    File => "file",
    /// `postgres` (§4.4).
    Postgres => "postgres",
    /// `redis_storage` (§4.5).
    RedisStorage => "redis_storage",
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
            StorageKind::Postgres | StorageKind::Webhook | StorageKind::VconMcp => true,
        }
    }

    /// Whether a vCon can be read back from the storage (fallback reads try only those).
    pub fn supports_get(self) -> bool {
        match self {
            StorageKind::File
            | StorageKind::Postgres
            | StorageKind::RedisStorage
            | StorageKind::VconMcp => true,
            StorageKind::Webhook => false,
        }
    }

    /// Whether a vCon can be deleted from the storage (`DELETE /vcon` asks only those).
    pub fn supports_delete(self) -> bool {
        match self {
            StorageKind::File
            | StorageKind::Postgres
            | StorageKind::RedisStorage
            | StorageKind::VconMcp => true,
            StorageKind::Webhook => false,
        }
    }

    fn check(self, options: &Map<String, Value>, at: &YamlPath, problems: &mut Problems) {
        match self {
            StorageKind::File => check_options::<file::FileOptions>(options, at, problems),
            StorageKind::Postgres => {
                check_options::<postgres::PostgresOptions>(options, at, problems)
            }
            StorageKind::RedisStorage => {
                check_options::<redis_storage::RedisStorageOptions>(options, at, problems)
            }
            StorageKind::Webhook => {
                check_options::<webhook::WebhookStorageOptions>(options, at, problems)
            }
            StorageKind::VconMcp => {
                check_options::<vcon_mcp::VconMcpOptions>(options, at, problems)
            }
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
            StorageKind::Postgres => built::<postgres::PostgresStorage>(module, ctx),
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

    #[test]
    fn names_and_kinds_agree() {
        assert_eq!(StorageKind::NAMES.len(), StorageKind::ALL.len());
        for (kind, name) in StorageKind::ALL.iter().zip(StorageKind::NAMES) {
            assert_eq!(kind.name(), *name);
        }
        assert!(StorageKind::File.supports_get() && !StorageKind::Webhook.supports_get());
        assert!(StorageKind::Webhook.calls_network() && !StorageKind::File.calls_network());
        for remote in [StorageKind::Postgres, StorageKind::VconMcp] {
            assert!(remote.calls_network() && remote.supports_get() && remote.supports_delete());
        }
    }
}

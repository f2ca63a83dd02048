//! The storages (modules.md §1.3, §4): one folder per storage, each with its options struct
//! (serde, unknown keys rejected, documented fields) and save/get/delete. A closed set:
//! [`build`] has one arm per built-in module; [`registry::Storages`] holds the configured
//! instances and does the fallback reads and deletes that go through all of them.

mod date_path;
pub mod file;
mod options;
pub mod redis_storage;
pub mod registry;
pub mod webhook;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::config::Module;
use crate::links::Shared;
use crate::store::{Store, StoreError};

pub use registry::Storages;

/// A vCon handed to a storage: its stored text and what paths and keys are made of.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The vCon's uuid (keys and paths use its lowercase hyphenated form).
    pub uuid: Uuid,
    /// The vCon's JSON text as it stands at the end of the link phase.
    pub text: String,
    /// The vCon's `created_at` text as written (for date paths, modules.md §4), if readable.
    pub created_at: Option<String>,
    /// The vCon's index instant, Unix seconds (the fallback for date paths).
    pub index_instant: i64,
}

/// Why a storage call failed; transient failures are retried (modules.md §1.4).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The same call may succeed later (backend unreachable, disk full…): retried.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (data the backend refuses, a configuration error): final at once.
    #[error("{0}")]
    Permanent(String),
}

impl conserver_actors::Retriable for StorageError {
    fn is_retriable(&self) -> bool {
        matches!(self, StorageError::Transient(_))
    }
}

impl From<StoreError> for StorageError {
    /// The server's own store: unreachable is worth retrying, an error answer is not.
    fn from(error: StoreError) -> Self {
        if error.is_unavailable() {
            StorageError::Transient(error.to_string())
        } else {
            StorageError::Permanent(error.to_string())
        }
    }
}

/// One storage instance.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Write the vCon (modules.md §1.3); a later save of the same uuid replaces it.
    async fn save(&self, vcon: &Saved) -> Result<(), StorageError>;

    /// Whether [`Storage::get`] is supported (fallback reads try only those).
    fn can_get(&self) -> bool {
        false
    }

    /// The stored vCon text, or `None` when absent.
    async fn get(&self, uuid: Uuid) -> Result<Option<String>, StorageError> {
        let _ = uuid;
        Ok(None)
    }

    /// Whether [`Storage::delete`] is supported.
    fn can_delete(&self) -> bool {
        false
    }

    /// Delete; whether something was deleted.
    async fn delete(&self, uuid: Uuid) -> Result<bool, StorageError> {
        let _ = uuid;
        Ok(false)
    }
}

/// Build the storage of `module` (options checked: every problem as a message naming its
/// option, `"options.max_file_size: …"`). `store` is the server's own Redis store (for
/// `redis_storage`).
pub fn build(
    module: &Module,
    shared: &Shared,
    store: &Arc<dyn Store>,
) -> Result<Arc<dyn Storage>, Vec<String>> {
    match module.module.as_str() {
        "file" => file::build(module),
        "redis_storage" => redis_storage::build(module, store),
        "webhook" => webhook::build(module, shared),
        other => Err(vec![format!(
            "module '{other}' is not available in this build yet"
        )]),
    }
}

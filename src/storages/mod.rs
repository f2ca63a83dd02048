//! The storages (modules.md §1.3, §4): one folder per storage, each with its options struct
//! (serde, unknown keys rejected, documented fields) and save/get/delete. A closed set:
//! [`build`] has one arm per built-in module.
//!
//! OWNER: storages helper. The items below are the interface the chain runner and the API are
//! being written against; signatures are fixed, bodies to be written.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::config::Module;
use crate::links::Shared;
use crate::store::Store;

/// A vCon handed to a storage: its stored text and what paths and keys are made of.
#[derive(Debug, Clone)]
pub struct Saved {
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
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

impl conserver_actors::Retriable for StorageError {
    fn is_retriable(&self) -> bool {
        matches!(self, StorageError::Transient(_))
    }
}

/// One storage instance.
#[async_trait]
pub trait Storage: Send + Sync {
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
/// option). `store` is the server's own Redis store (for `redis_storage`).
pub fn build(module: &Module, shared: &Shared, store: &Arc<dyn Store>) -> Result<Arc<dyn Storage>, Vec<String>> {
    let _ = (module, shared, store);
    todo!("storages helper")
}

//! The storages (modules.md §1.3, §4): one folder per storage, each with its options struct
//! (serde, unknown keys rejected, documented fields) and save/get/delete. A closed set:
//! [`StorageKind`] has one arm per built-in module; [`registry::Storages`] holds the
//! configured instances and does the fallback reads and deletes that go through all of them.

mod date_path;
pub mod file;
mod kind;
pub mod mongo;
pub mod postgres;
pub mod redis_storage;
pub mod registry;
pub mod s3;
pub mod vcon_mcp;
pub mod webhook;

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use crate::config::Module;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::store::StoreError;
use crate::vcon::{Document, Form, NotADocument};

pub use kind::StorageKind;
pub use registry::Storages;

/// A vCon handed to the storages: built from the run's document, so no storage parses it again.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The vCon's uuid (keys and paths use its lowercase hyphenated form).
    pub uuid: Uuid,
    /// The vCon's JSON text as it stands at the end of the link phase.
    pub text: String,
    /// The same vCon, parsed.
    pub vcon: Value,
    /// Unsigned, signed or encrypted.
    pub form: Form,
    /// The vCon's `created_at` text as written (for date paths, modules.md §4), if readable.
    pub created_at: Option<String>,
    /// The vCon's index instant, Unix seconds (the fallback for date paths).
    pub index_instant: i64,
}

impl Saved {
    /// What the storages receive for a stored text (a storage DLQ retry, a test).
    pub fn from_text(uuid: Uuid, text: String) -> Result<Saved, NotADocument> {
        Ok(Saved::from(Document::from_stored(uuid, text)?))
    }
}

impl From<Document> for Saved {
    /// The run's document as the storages receive it. Date paths come from `created_at` as
    /// written, else from the index instant (the time of the write when it has none).
    fn from(mut document: Document) -> Saved {
        let (index_instant, _) = document.indexed();
        let (uuid, form, vcon, text) = document.into_parts();
        let created_at = vcon
            .get("created_at")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Saved {
            uuid,
            text,
            vcon,
            form,
            created_at,
            index_instant: index_instant.unwrap_or_else(|| chrono::Utc::now().timestamp()),
        }
    }
}

/// Something that went wrong below a storage (a driver's, the filesystem's, a client's error).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a storage call failed; transient failures are retried (modules.md §1.4).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The same call may succeed later (backend unreachable, disk full…): retried.
    #[error("{what}")]
    Transient {
        /// What could not be done.
        what: String,
        #[source]
        source: Option<Cause>,
    },
    /// Retrying cannot help (data the backend refuses, a configuration error): final at once.
    #[error("{what}")]
    Permanent {
        /// What could not be done, and why when there is no cause below it.
        what: String,
        #[source]
        source: Option<Cause>,
    },
}

impl StorageError {
    /// A failure worth retrying, with its cause.
    pub fn transient(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        StorageError::Transient {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// A failure retrying cannot cure, with its cause.
    pub fn permanent(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        StorageError::Permanent {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// The storage refuses the vCon for a reason of its own (too large, …).
    pub fn refused(why: impl Into<String>) -> Self {
        StorageError::Permanent {
            what: why.into(),
            source: None,
        }
    }
}

impl conserver_actors::Retriable for StorageError {
    fn is_retriable(&self) -> bool {
        matches!(self, StorageError::Transient { .. })
    }
}

impl From<StoreError> for StorageError {
    /// The server's own store: unreachable is worth retrying, an error answer is not.
    fn from(error: StoreError) -> Self {
        if error.is_unavailable() {
            StorageError::transient("the server's Redis is unavailable", error)
        } else {
            StorageError::permanent("the server's Redis refused the command", error)
        }
    }
}

/// One storage instance. Whether it supports `get` and `delete` is its kind's
/// ([`StorageKind::supports_get`]); those that do not are never asked.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Write the vCon (modules.md §1.3); a later save of the same uuid replaces it.
    async fn save(&self, vcon: &Saved) -> Result<(), StorageError>;

    /// The stored vCon text, or `None` when absent.
    async fn get(&self, uuid: Uuid) -> Result<Option<String>, StorageError> {
        let _ = uuid;
        Ok(None)
    }

    /// Delete; whether something was deleted.
    async fn delete(&self, uuid: Uuid) -> Result<bool, StorageError> {
        let _ = uuid;
        Ok(false)
    }
}

/// A built-in storage: its options and how it is built from them.
pub trait StorageModule: Storage + Sized + 'static {
    /// The options struct: its fields and their doc comments are the storage's reference.
    type Options: ModuleOptions;

    /// Build the instance `module` (its options already read as `options`).
    fn build(
        options: Self::Options,
        module: &Module<StorageKind>,
        ctx: &ModuleContext,
    ) -> Result<Self, BuildError>;
}

/// The key the Python storages took and conserver ignores: a storage is named by its key.
const NAME_OPTION: (&str, &str) = ("name", "a storage is named by its key under storages");

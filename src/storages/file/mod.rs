//! The `file` storage (modules.md §4.1): one file per vCon under a directory, in date
//! directories `YYYY/MM/DD` or flat, optionally gzipped. Writes are atomic (temporary file in
//! the target directory, fsync, rename, fsync of the directory), so a crash never leaves a
//! truncated vCon behind.
//!
//! The filesystem work runs on tokio's blocking pool ([`disk`]); this module holds the options
//! and the [`Storage`] glue.

mod disk;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use uuid::Uuid;

use super::options;
use super::{Saved, Storage, StorageError};
use crate::config::Module;

/// The options of the `file` storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOptions {
    /// The directory vCons are written under; created (with `dir_permissions`) when missing.
    #[serde(
        default = "default_path",
        deserialize_with = "options::non_empty_string"
    )]
    pub path: String,
    /// File vCons under `YYYY/MM/DD/` (the date of their `created_at` as written); else flat.
    #[serde(default = "default_true", deserialize_with = "options::boolean")]
    pub organize_by_date: bool,
    /// Write gzip files, `{uuid}.json.gz`, instead of `{uuid}.json`.
    #[serde(default, deserialize_with = "options::boolean")]
    pub compression: bool,
    /// The largest vCon text written, in bytes before compression; a larger one is a
    /// permanent failure (it goes to the storage's DLQ).
    #[serde(default = "default_max_file_size", deserialize_with = "options::count")]
    pub max_file_size: u64,
    /// Mode of the files written (`0644`, `0o644` or `"644"`), applied whatever the umask.
    #[serde(
        default = "default_file_permissions",
        deserialize_with = "options::file_mode"
    )]
    pub file_permissions: u32,
    /// Mode of the directories this storage creates, applied whatever the umask.
    #[serde(
        default = "default_dir_permissions",
        deserialize_with = "options::file_mode"
    )]
    pub dir_permissions: u32,
    /// Accepted for compatibility with the Python server's configs and ignored, with a
    /// warning: the storage's name is its key under `storages`.
    #[serde(default)]
    pub name: Option<serde_json::Value>,
}

fn default_path() -> String {
    "/data/vcons".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_max_file_size() -> u64 {
    10 * 1024 * 1024
}

fn default_file_permissions() -> u32 {
    0o644
}

fn default_dir_permissions() -> u32 {
    0o755
}

/// Build a `file` storage from its config entry.
pub fn build(module: &Module) -> Result<Arc<dyn Storage>, Vec<String>> {
    let options: FileOptions = options::parse(module)?;
    options::warn_ignored(
        module,
        "name",
        "a storage is named by its key under storages",
    );
    Ok(Arc::new(FileStorage::new(options)))
}

/// A configured `file` storage.
#[derive(Debug, Clone)]
pub struct FileStorage {
    layout: disk::Layout,
    max_file_size: u64,
}

impl FileStorage {
    /// A storage writing as `options` say.
    pub fn new(options: FileOptions) -> Self {
        FileStorage {
            layout: disk::Layout {
                root: PathBuf::from(options.path),
                organize_by_date: options.organize_by_date,
                compression: options.compression,
                file_permissions: options.file_permissions,
                dir_permissions: options.dir_permissions,
            },
            max_file_size: options.max_file_size,
        }
    }
}

#[async_trait]
impl Storage for FileStorage {
    async fn save(&self, vcon: &Saved) -> Result<(), StorageError> {
        let size = vcon.text.len() as u64;
        if size > self.max_file_size {
            return Err(StorageError::Permanent(format!(
                "vCon {} is {size} bytes, over this file storage's max_file_size of {} bytes",
                vcon.uuid, self.max_file_size
            )));
        }
        let layout = self.layout.clone();
        let uuid = vcon.uuid;
        let date_dir = layout.organize_by_date.then(|| vcon.date_path());
        // The text is copied once for the blocking pool: a borrowed one cannot cross into it.
        let text = vcon.text.clone();
        blocking(move || layout.save(uuid, date_dir.as_deref(), &text)).await?
    }

    fn can_get(&self) -> bool {
        true
    }

    async fn get(&self, uuid: Uuid) -> Result<Option<String>, StorageError> {
        let layout = self.layout.clone();
        blocking(move || Ok(layout.read(uuid))).await?
    }

    fn can_delete(&self) -> bool {
        true
    }

    async fn delete(&self, uuid: Uuid) -> Result<bool, StorageError> {
        let layout = self.layout.clone();
        blocking(move || layout.delete(uuid)).await?
    }
}

/// Run filesystem work on the blocking pool, so that a slow disk never stalls an async thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        // Cancelled at shutdown, or a panic: nothing was acknowledged, so another try is sound.
        StorageError::Transient(format!("file storage task did not finish: {error}"))
    })
}

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

use async_trait::async_trait;
use serde::Deserialize;
use uuid::Uuid;

use super::{Saved, Storage, StorageError, StorageKind, StorageModule, NAME_OPTION};
use crate::config::Module;
use crate::modules::values::{non_empty, FileMode};
use crate::modules::{BuildError, ModuleContext, ModuleOptions};

/// The options of the `file` storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOptions {
    /// The directory vCons are written under; created (with `dir_permissions`) when missing.
    #[serde(default = "default_path", deserialize_with = "non_empty")]
    pub path: String,
    /// File vCons under `YYYY/MM/DD/` (the date of their `created_at` as written); else flat.
    #[serde(default = "default_true")]
    pub organize_by_date: bool,
    /// Write gzip files, `{uuid}.json.gz`, instead of `{uuid}.json`.
    #[serde(default)]
    pub compression: bool,
    /// The largest vCon text written, in bytes before compression; a larger one is a
    /// permanent failure (it goes to the storage's DLQ).
    #[serde(default = "default_max_file_size")]
    pub max_file_size: u64,
    /// Mode of the files written (`0644`, `0o644` or `"644"`), applied whatever the umask.
    #[serde(default = "default_file_permissions")]
    pub file_permissions: FileMode,
    /// Mode of the directories this storage creates, applied whatever the umask.
    #[serde(default = "default_dir_permissions")]
    pub dir_permissions: FileMode,
}

impl ModuleOptions for FileOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[NAME_OPTION];
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

fn default_file_permissions() -> FileMode {
    FileMode(0o644)
}

fn default_dir_permissions() -> FileMode {
    FileMode(0o755)
}

impl StorageModule for FileStorage {
    type Options = FileOptions;

    fn build(
        options: FileOptions,
        _module: &Module<StorageKind>,
        _ctx: &ModuleContext,
    ) -> Result<FileStorage, BuildError> {
        Ok(FileStorage::new(options))
    }
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
                file_permissions: options.file_permissions.0,
                dir_permissions: options.dir_permissions.0,
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
            return Err(StorageError::refused(format!(
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

    async fn get(&self, uuid: Uuid) -> Result<Option<String>, StorageError> {
        let layout = self.layout.clone();
        blocking(move || Ok(layout.read(uuid))).await?
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
        StorageError::transient("the file storage task did not finish", error)
    })
}

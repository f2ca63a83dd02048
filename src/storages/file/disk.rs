//! The blocking filesystem work of the `file` storage: atomic writes, the read search of
//! modules.md §4.1, and deletes that prune the directories they empty. Called on tokio's
//! blocking pool only.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use uuid::Uuid;

use crate::storages::StorageError;

const PLAIN: &str = "json";
const GZIP: &str = "json.gz";

/// Where and how one `file` storage writes.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The `path` option: every file and directory of the storage is under it.
    pub root: PathBuf,
    /// Write into `YYYY/MM/DD/` under the root.
    pub organize_by_date: bool,
    /// Write `.json.gz`.
    pub compression: bool,
    /// Mode of files written.
    pub file_permissions: u32,
    /// Mode of directories created.
    pub dir_permissions: u32,
}

impl Layout {
    /// Write `text` as the vCon `uuid`, in `date_dir` (`YYYY/MM/DD`) when given.
    pub fn save(&self, uuid: Uuid, date_dir: Option<&str>, text: &str) -> Result<(), StorageError> {
        let dir = match date_dir {
            Some(date) => self.root.join(date),
            None => self.root.clone(),
        };
        self.create_dirs(&dir)?;
        let target = dir.join(file_name(uuid, self.extensions()[0]));
        // A name of its own per write: two saves of one uuid never share a temporary file.
        let temporary = dir.join(format!(".{uuid}.{:016x}.tmp", fastrand::u64(..)));
        let written = self.write_file(&temporary, text).and_then(|()| {
            fs::rename(&temporary, &target).map_err(|e| failure("rename into", &target, e))
        });
        if written.is_err() {
            // Best effort: the error that matters is the one returned.
            let _ = fs::remove_file(&temporary);
        }
        written?;
        // The rename is durable only once the directory entry is on disk. Some filesystems
        // cannot sync a directory at all; the file is in place there, so that is no failure.
        match File::open(&dir).and_then(|handle| handle.sync_all()) {
            Err(error)
                if !matches!(
                    error.kind(),
                    ErrorKind::InvalidInput | ErrorKind::Unsupported
                ) =>
            {
                Err(failure("sync directory", &dir, error))
            }
            _ => Ok(()),
        }
    }

    /// The text of the vCon `uuid`: the flat file (configured extension first), then the date
    /// directories, newest first. A file that cannot be read or decoded counts as absent.
    pub fn read(&self, uuid: Uuid) -> Option<String> {
        self.candidates(uuid).find_map(|path| read_text(&path))
    }

    /// Remove every copy of the vCon `uuid` (a copy left behind would come back through a
    /// fallback read), then the date directories that became empty. Whether one was removed.
    pub fn delete(&self, uuid: Uuid) -> Result<bool, StorageError> {
        let mut removed = false;
        let mut first_error = None;
        for path in self.candidates(uuid) {
            match fs::remove_file(&path) {
                Ok(()) => {
                    removed = true;
                    self.prune_empty_parents(&path);
                }
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => {
                    first_error.get_or_insert(failure("remove", &path, error));
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(removed),
        }
    }

    /// The configured extension first, then the other.
    fn extensions(&self) -> [&'static str; 2] {
        if self.compression {
            [GZIP, PLAIN]
        } else {
            [PLAIN, GZIP]
        }
    }

    /// Every place the vCon `uuid` may be, in the order of modules.md §4.1.
    fn candidates(&self, uuid: Uuid) -> impl Iterator<Item = PathBuf> + '_ {
        let names = self
            .extensions()
            .map(|extension| file_name(uuid, extension));
        let flat = names.clone().map(|name| self.root.join(name));
        // Listed only when the flat paths missed: the search walks every day directory.
        let dated = std::iter::once_with(|| date_dirs(&self.root))
            .flatten()
            .flat_map(move |dir| names.clone().map(move |name| dir.join(name)));
        flat.into_iter().chain(dated)
    }

    /// Create `dir` and its missing ancestors with `dir_permissions` exactly (not masked by
    /// the umask, as the option promises).
    fn create_dirs(&self, dir: &Path) -> Result<(), StorageError> {
        // A relative `path` ends its ancestors with "", which is the working directory.
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .collect();
        for dir in missing.into_iter().rev() {
            match DirBuilder::new().mode(self.dir_permissions).create(dir) {
                Ok(()) => fs::set_permissions(dir, Permissions::from_mode(self.dir_permissions))
                    .map_err(|e| failure("set the mode of", dir, e))?,
                // Another save created it meanwhile.
                Err(error) if error.kind() == ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(error) => return Err(failure("create directory", dir, error)),
            }
        }
        Ok(())
    }

    /// Write, fsync and give the mode to a new file at `path`.
    fn write_file(&self, path: &Path, text: &str) -> Result<(), StorageError> {
        let fail = |e| failure("write", path, e);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(self.file_permissions)
            .open(path)
            .map_err(fail)?;
        if self.compression {
            let mut encoder = GzEncoder::new(&mut file, Compression::default());
            encoder.write_all(text.as_bytes()).map_err(fail)?;
            encoder.finish().map_err(fail)?;
        } else {
            file.write_all(text.as_bytes()).map_err(fail)?;
        }
        file.set_permissions(Permissions::from_mode(self.file_permissions))
            .map_err(fail)?;
        file.sync_all().map_err(fail)
    }

    /// Remove the directories between `file` and the root that are now empty, deepest first;
    /// stops at the first that is not empty (or cannot be removed), never removes the root.
    fn prune_empty_parents(&self, file: &Path) {
        for dir in file.ancestors().skip(1) {
            if dir == self.root || !dir.starts_with(&self.root) || fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

fn file_name(uuid: Uuid, extension: &str) -> String {
    format!("{uuid}.{extension}")
}

/// The text of the file at `path`, gunzipped when its name says so; `None` when it does not
/// exist, or (logged) when it cannot be read or is not gzip / UTF-8.
fn read_text(path: &Path) -> Option<String> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "file storage: cannot read a stored vCon; treated as absent");
            return None;
        }
    };
    let decoded = if path.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut text)
            .map(|_| text)
    } else {
        String::from_utf8(bytes).map_err(|e| io::Error::new(ErrorKind::InvalidData, e))
    };
    decoded
        .inspect_err(|error| {
            tracing::warn!(path = %path.display(), %error, "file storage: a stored vCon cannot be decoded; treated as absent");
        })
        .ok()
}

/// The day directories `YYYY/MM/DD` under `root`, newest first (a vCon read back is most often
/// a recent one). Other entries are not searched.
fn date_dirs(root: &Path) -> Vec<PathBuf> {
    let mut days = Vec::new();
    for year in numbered_subdirs(root, 4) {
        for month in numbered_subdirs(&year, 2) {
            days.extend(numbered_subdirs(&month, 2));
        }
    }
    days
}

/// Subdirectories of `dir` named by `digits` ASCII digits, in descending order; none when
/// `dir` cannot be listed.
fn numbered_subdirs(dir: &Path, digits: usize) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.len() == digits && name.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    names.into_iter().map(|name| dir.join(name)).collect()
}

/// A filesystem error as a storage failure. Transient: what can clear without anyone changing
/// the configuration — a full disk or quota (space is freed by rotation and clean-ups, and the
/// retries span minutes), a busy or timed-out (network) filesystem, and a directory that
/// vanished because a concurrent delete pruned it (the next try re-creates it). Permanent:
/// the rest, chiefly permission denied and a read-only filesystem, which retrying cannot
/// cure; those writes wait in the storage's DLQ until the operator fixes the directory.
fn failure(action: &str, path: &Path, error: io::Error) -> StorageError {
    let what = format!("file storage: cannot {action} {}", path.display());
    match error.kind() {
        ErrorKind::StorageFull
        | ErrorKind::QuotaExceeded
        | ErrorKind::ResourceBusy
        | ErrorKind::StaleNetworkFileHandle
        | ErrorKind::TimedOut
        | ErrorKind::Interrupted
        | ErrorKind::WouldBlock
        | ErrorKind::OutOfMemory
        | ErrorKind::NotFound => StorageError::transient(what, error),
        _ => StorageError::permanent(what, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(kind: ErrorKind) -> &'static str {
        match failure("write", Path::new("/x"), io::Error::from(kind)) {
            StorageError::Transient { .. } => "transient",
            StorageError::Permanent { .. } => "permanent",
        }
    }

    #[test]
    fn failure_classes() {
        for kind in [
            ErrorKind::StorageFull,
            ErrorKind::QuotaExceeded,
            ErrorKind::TimedOut,
            ErrorKind::NotFound,
        ] {
            assert_eq!(class(kind), "transient", "{kind:?}");
        }
        for kind in [
            ErrorKind::PermissionDenied,
            ErrorKind::ReadOnlyFilesystem,
            ErrorKind::NotADirectory,
            ErrorKind::InvalidFilename,
        ] {
            assert_eq!(class(kind), "permanent", "{kind:?}");
        }
    }
}

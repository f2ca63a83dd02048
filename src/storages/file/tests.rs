use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::modules::read_in_test;

fn options(options: Value) -> Result<FileOptions, Vec<String>> {
    read_in_test(options)
}

fn storage(dir: &Path, extra: Value) -> FileStorage {
    let mut given = json!({ "path": dir.to_str().unwrap() });
    given
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    FileStorage::new(options(given).unwrap())
}

fn vcon(created_at: &str) -> Saved {
    let uuid = Uuid::new_v4();
    let text = format!(r#"{{"uuid":"{uuid}","vcon":"0.4.0","created_at":"{created_at}"}}"#);
    Saved::from_text(uuid, text).unwrap()
}

/// Every entry under `dir`, as paths relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn defaults() {
    let defaults = options(json!({})).unwrap();
    assert_eq!(defaults.path, "/data/vcons");
    assert!(defaults.organize_by_date);
    assert!(!defaults.compression);
    assert_eq!(defaults.max_file_size, 10_485_760);
    assert_eq!(defaults.file_permissions.0, 0o644);
    assert_eq!(defaults.dir_permissions.0, 0o755);
}

#[test]
fn lenient_values_and_the_ignored_name() {
    let given = options(json!({
        "path": "/srv/vcons",
        "organize_by_date": "no",
        "compression": "yes",
        "max_file_size": "2048",
        "file_permissions": "0o600",
        "dir_permissions": 700,
        "name": "file",
    }))
    .unwrap();
    assert_eq!(given.path, "/srv/vcons");
    assert!(!given.organize_by_date);
    assert!(given.compression);
    assert_eq!(given.max_file_size, 2048);
    assert_eq!(given.file_permissions.0, 0o600);
    assert_eq!(given.dir_permissions.0, 0o700);
}

#[test]
fn every_bad_option_is_reported() {
    let problems = options(json!({
        "path": "",
        "compression": "sometimes",
        "file_permissions": "0o999",
        "dir_permissions": 10000,
        "max_file_size": -1,
        "bucket": "x",
    }))
    .unwrap_err();
    let paths: Vec<&str> = problems
        .iter()
        .map(|p| p.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "options.path",
            "options.compression",
            "options.file_permissions",
            "options.dir_permissions",
            "options.max_file_size",
            "options.bucket"
        ],
        "{problems:?}"
    );
}

#[tokio::test]
async fn save_writes_the_date_layout_atomically_with_the_modes_asked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vcons");
    let storage = storage(
        &root,
        json!({ "file_permissions": "0640", "dir_permissions": "0750" }),
    );
    // 00:30 at +02:00 is still May 1st in UTC; the path keeps the vCon's own date.
    let saved = vcon("2024-05-02T00:30:00+02:00");
    storage.save(&saved).await.unwrap();

    let file = format!("2024/05/02/{}.json", saved.uuid);
    assert_eq!(
        tree(&root),
        ["2024", "2024/05", "2024/05/02", file.as_str()]
    );
    assert_eq!(
        std::fs::read_to_string(root.join(&file)).unwrap(),
        saved.text
    );
    assert_eq!(mode(&root.join(&file)), 0o640);
    for created in ["", "2024", "2024/05", "2024/05/02"] {
        assert_eq!(mode(&root.join(created)), 0o750, "{created:?}");
    }
}

#[tokio::test]
async fn a_second_save_replaces_the_file_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage(dir.path(), json!({ "organize_by_date": false }));
    let mut saved = vcon("2024-05-01T12:00:00Z");
    storage.save(&saved).await.unwrap();
    saved.text = saved.text.replace("0.4.0", "0.3.0");
    storage.save(&saved).await.unwrap();
    let name = format!("{}.json", saved.uuid);
    assert_eq!(tree(dir.path()), [name.as_str()]);
    assert_eq!(storage.get(saved.uuid).await.unwrap(), Some(saved.text));
}

#[tokio::test]
async fn gzip_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage(dir.path(), json!({ "compression": true }));
    let saved = vcon("2023-11-30T08:00:00Z");
    storage.save(&saved).await.unwrap();

    let path = dir
        .path()
        .join(format!("2023/11/30/{}.json.gz", saved.uuid));
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, saved.text);
    assert_eq!(storage.get(saved.uuid).await.unwrap(), Some(saved.text));
}

#[tokio::test]
async fn over_max_file_size_is_permanent_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let saved = vcon("2024-05-01T12:00:00Z");
    let limit = saved.text.len() as u64 - 1;
    let storage = storage(dir.path(), json!({ "max_file_size": limit }));
    let error = storage.save(&saved).await.unwrap_err();
    assert!(matches!(error, StorageError::Permanent { .. }), "{error:?}");
    assert!(error.to_string().contains("max_file_size"), "{error}");
    assert!(tree(dir.path()).is_empty());

    // Exactly at the limit is fine.
    let storage = self::storage(dir.path(), json!({ "max_file_size": limit + 1 }));
    storage.save(&saved).await.unwrap();
}

#[tokio::test]
async fn a_path_that_is_a_file_is_a_permanent_failure() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let error = storage(&blocker, json!({}))
        .save(&vcon("2024-05-01T12:00:00Z"))
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::Permanent { .. }), "{error:?}");
}

#[tokio::test]
async fn get_tries_the_flat_paths_then_the_date_directories() {
    let dir = tempfile::tempdir().unwrap();
    let dated = storage(dir.path(), json!({ "compression": true }));
    let flat = storage(dir.path(), json!({ "organize_by_date": false }));

    // Written in a date directory, found by a storage configured flat and uncompressed.
    let saved = vcon("2022-01-15T10:00:00-08:00");
    dated.save(&saved).await.unwrap();
    assert_eq!(
        flat.get(saved.uuid).await.unwrap(),
        Some(saved.text.clone())
    );

    // Written flat uncompressed, found by the compressing storage (the other extension).
    let other = vcon("2022-01-15T10:00:00Z");
    flat.save(&other).await.unwrap();
    assert_eq!(dated.get(other.uuid).await.unwrap(), Some(other.text));

    assert_eq!(flat.get(Uuid::new_v4()).await.unwrap(), None);
}

#[tokio::test]
async fn get_prefers_the_configured_extension_and_skips_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let uuid = Uuid::new_v4();
    let plain = storage(dir.path(), json!({ "organize_by_date": false }));
    std::fs::write(dir.path().join(format!("{uuid}.json")), "plain").unwrap();
    std::fs::write(dir.path().join(format!("{uuid}.json.gz")), "not gzip").unwrap();
    assert_eq!(plain.get(uuid).await.unwrap().as_deref(), Some("plain"));

    // The configured `.json.gz` cannot be decoded: treated as absent, the next one is read.
    let gzip = storage(dir.path(), json!({ "compression": true }));
    assert_eq!(gzip.get(uuid).await.unwrap().as_deref(), Some("plain"));

    std::fs::remove_file(dir.path().join(format!("{uuid}.json"))).unwrap();
    assert_eq!(gzip.get(uuid).await.unwrap(), None);
    let invalid_utf8 = dir.path().join(format!("{uuid}.json"));
    std::fs::write(invalid_utf8, [0xff, 0xfe]).unwrap();
    assert_eq!(plain.get(uuid).await.unwrap(), None);
}

#[tokio::test]
async fn delete_removes_every_copy_and_prunes_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vcons");
    let storage = storage(&root, json!({}));
    let gone = vcon("2024-05-01T12:00:00Z");
    let neighbour = vcon("2024-05-02T12:00:00Z");
    storage.save(&gone).await.unwrap();
    storage.save(&neighbour).await.unwrap();
    // A stale flat copy, from when the storage was configured flat.
    std::fs::write(root.join(format!("{}.json.gz", gone.uuid)), "old").unwrap();

    assert!(storage.delete(gone.uuid).await.unwrap());
    let kept = format!("2024/05/02/{}.json", neighbour.uuid);
    assert_eq!(
        tree(&root),
        ["2024", "2024/05", "2024/05/02", kept.as_str()]
    );
    assert_eq!(storage.get(gone.uuid).await.unwrap(), None);
    assert!(!storage.delete(gone.uuid).await.unwrap());

    assert!(storage.delete(neighbour.uuid).await.unwrap());
    assert!(tree(&root).is_empty(), "{:?}", tree(&root));
    assert!(root.is_dir(), "the storage's own directory stays");
}

#[tokio::test]
async fn undated_vcons_use_the_utc_date_of_their_index_instant() {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage(dir.path(), json!({}));
    let mut saved = vcon("");
    saved.created_at = None;
    saved.index_instant = 1_714_607_999; // 2024-05-01T23:59:59Z
    storage.save(&saved).await.unwrap();
    assert!(dir
        .path()
        .join(format!("2024/05/01/{}.json", saved.uuid))
        .is_file());
}

//! The repository stands alone: no tracked file refers to a place outside it — a `../shared`
//! folder beside the checkout, or an absolute `/work/` path — which a clone elsewhere would
//! not have.

use std::path::Path;
use std::process::Command;

/// A folder beside the checkout.
const SIBLING: &[u8] = b"../shared";
/// An absolute path into a particular machine's tree.
const ABSOLUTE: &[u8] = b"/work/";
/// How much of an offending line the report shows.
const SHOWN: usize = 160;

/// The tracked files under `root` (relative to it), or why there is no such list.
fn tracked_files(root: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("git cannot be run ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "{} is not a git checkout ({})",
            root.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out
        .stdout
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect())
}

/// Where `needle` starts in `line`.
fn occurrences<'a>(line: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    line.windows(needle.len())
        .enumerate()
        .filter(move |(_, window)| *window == needle)
        .map(|(at, _)| at)
}

/// Whether `line` names `../shared` (not `../shared_x`) or an absolute `/work/` path (not
/// `net/work/`).
fn refers_outside(line: &[u8]) -> bool {
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-');
    let sibling = occurrences(line, SIBLING).any(|at| {
        line.get(at + SIBLING.len())
            .is_none_or(|&next| !name_byte(next))
    });
    let absolute = occurrences(line, ABSOLUTE)
        .any(|at| at == 0 || !(name_byte(line[at - 1]) || matches!(line[at - 1], b'.' | b'~')));
    sibling || absolute
}

#[test]
fn no_tracked_file_refers_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = match tracked_files(root) {
        Ok(files) => files,
        Err(why) => {
            println!("skipped: the tracked files cannot be listed: {why}");
            return;
        }
    };
    let mut offending = Vec::new();
    for name in files.iter().filter(|name| name.as_str() != file!()) {
        let path = root.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // Deleted in the working tree, or a submodule: no content of its own here.
            Err(_) if !path.is_file() => continue,
            Err(e) => panic!("{name} cannot be read: {e}"),
        };
        for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if refers_outside(line) {
                let text = String::from_utf8_lossy(line);
                let shown: String = text.trim().chars().take(SHOWN).collect();
                offending.push(format!("{name}:{}: {shown}", number + 1));
            }
        }
    }
    assert!(
        offending.is_empty(),
        "{} line(s) of tracked files refer to ../shared or to an absolute /work/ path, which a \
         clone does not have:\n{}",
        offending.len(),
        offending.join("\n")
    );
}

#[test]
fn what_counts_as_a_reference_outside() {
    for outside in [
        "see ../shared/spec/api.md",
        "[spec](../shared)",
        "`../../shared/corpus`",
        "/work/shared/corpus",
        "path = \"/work/main/x\"",
        "file:///work/x",
        "cd /work/",
    ] {
        assert!(refers_outside(outside.as_bytes()), "{outside}");
    }
    for inside in [
        "tests/corpus/SOURCES.md",
        "../shared_state.rs",
        "a shared folder",
        "net/work/x",
        "home-work/x",
        "framework/",
        "./work/x",
    ] {
        assert!(!refers_outside(inside.as_bytes()), "{inside}");
    }
}

//! Snapshots of a directory tree (every directory, file and symlink with its mode and
//! content), to show that a dry run left the tree it could touch as it was.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory and its permission bits.
    Dir(u32),
    /// A regular file, its permission bits and its content.
    File(u32, Vec<u8>),
    /// A symlink and its target.
    Symlink(PathBuf),
}

impl Entry {
    fn describe(&self) -> String {
        match self {
            Entry::Dir(mode) => format!("directory {mode:04o}"),
            Entry::File(mode, content) => format!("file {mode:04o}, {} bytes", content.len()),
            Entry::Symlink(to) => format!("symlink to {}", to.display()),
        }
    }
}

/// The tree under `root` (not `root` itself), by path relative to it. A missing `root`
/// is an empty tree.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if meta.file_type().is_symlink() {
                out.insert(rel, Entry::Symlink(std::fs::read_link(&p).unwrap()));
            } else if meta.is_dir() {
                out.insert(rel, Entry::Dir(mode));
                walk(root, &p, out);
            } else {
                out.insert(rel, Entry::File(mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The directories under `root` with their modes: for a tree whose files change on
/// their own (a running etcd's data dir), where only new directories can be checked.
pub fn directories(root: &Path) -> BTreeMap<PathBuf, Entry> {
    snapshot(root)
        .into_iter()
        .filter(|(_, e)| matches!(e, Entry::Dir(_)))
        .collect()
}

/// Fails, naming every entry that appeared, disappeared or changed (mode or content),
/// unless the tree under `root` is still `before`.
pub fn assert_unchanged(root: &Path, before: &BTreeMap<PathBuf, Entry>, what: &str) {
    assert_same(root, before, &snapshot(root), what);
}

/// Fails, naming every entry that appeared, disappeared or changed, unless `after`
/// (a snapshot of `root`, perhaps filtered) is `before`.
pub fn assert_same(
    root: &Path,
    before: &BTreeMap<PathBuf, Entry>,
    after: &BTreeMap<PathBuf, Entry>,
    what: &str,
) {
    let mut diffs = Vec::new();
    for (p, b) in before {
        match after.get(p) {
            None => diffs.push(format!("gone: {} ({})", p.display(), b.describe())),
            Some(a) if a != b => diffs.push(format!(
                "changed: {} ({} -> {}{})",
                p.display(),
                b.describe(),
                a.describe(),
                if a.describe() == b.describe() {
                    ", other content"
                } else {
                    ""
                }
            )),
            Some(_) => {}
        }
    }
    for (p, a) in after {
        if !before.contains_key(p) {
            diffs.push(format!("new: {} ({})", p.display(), a.describe()));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what} changed {}:\n{}",
        root.display(),
        diffs.join("\n")
    );
}

#[test]
fn cli_tree_snapshot_sees_new_dirs_modes_and_content() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir(root.join("d")).unwrap();
    std::fs::write(root.join("d/f"), "a").unwrap();
    std::fs::set_permissions(root.join("d/f"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = snapshot(root);
    assert_unchanged(root, &before, "nothing");
    let fails = |change: &dyn Fn(), needle: &str| {
        change();
        let err = std::panic::catch_unwind(|| assert_unchanged(root, &before, "the change"))
            .expect_err("a change is seen");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains(needle), "{needle:?} in {msg}");
    };
    fails(
        &|| std::fs::create_dir(root.join("e")).unwrap(),
        "new: e (directory",
    );
    std::fs::remove_dir(root.join("e")).unwrap();
    fails(
        &|| std::fs::write(root.join("d/f"), "b").unwrap(),
        "changed: d/f (file 0644, 1 bytes -> file 0644, 1 bytes, other content)",
    );
    std::fs::write(root.join("d/f"), "a").unwrap();
    fails(
        &|| {
            std::fs::set_permissions(root.join("d/f"), std::fs::Permissions::from_mode(0o600))
                .unwrap()
        },
        "changed: d/f (file 0644",
    );
    std::fs::set_permissions(root.join("d/f"), std::fs::Permissions::from_mode(0o644)).unwrap();
    fails(
        &|| std::fs::remove_file(root.join("d/f")).unwrap(),
        "gone: d/f",
    );
}

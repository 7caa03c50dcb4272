//! Files and directories being written, told apart from a dead run's leftovers.
//!
//! A `FILE.part` (or a staging directory) is held with an exclusive `flock` for as
//! long as its writer lives; the kernel drops the lock when the process dies, even by
//! SIGKILL. A later run that finds the name tries the lock: held means a live writer
//! ([`Error::Busy`]), free means a dead run's leftover, which is removed and reported
//! as a [`Leftover`].
//!
//! The name only ever appears already locked: the file is created and locked under a
//! unique temp name, then hard-linked to its `.part` name, and the temp name unlinked
//! (a directory is created and locked under a temp name and renamed). A leftover is
//! removed only while its remover holds its lock and after checking that the name
//! still points at the very inode it locked, so two runs cleaning up at once never
//! remove each other's live file.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result, parent_dir, sync_parent};

/// A dead run's leftover that was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The file or directory removed.
    pub path: PathBuf,
    /// Its size in bytes (a directory's: the files in it).
    pub size: u64,
}

/// A unique name beside `path`: `.<name>.kastellan-<pid>-<n>.new`.
fn unique_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent_dir(path).join(format!(".{name}.kastellan-{}-{n}.new", std::process::id()))
}

/// Tries the exclusive lock of `file`: `Ok(true)` taken, `Ok(false)` held by another.
fn try_lock(file: &File, path: &Path) -> Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(Error::io("locking", path)(e)),
    }
}

/// Whether `path` still names the inode `file` has open.
fn same_inode(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The bytes of the files under `path` (or of `path` itself).
fn size_of(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::read_dir(path)
            .map(|it| it.flatten().map(|e| size_of(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// Creates `path` (which must not exist) with exactly `mode`, and locks it.
fn open_new_locked(path: &Path, mode: u32) -> Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(Error::io("creating", path))?;
    let undo = |e: Error| {
        let _ = fs::remove_file(path);
        e
    };
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(Error::io("setting the mode of", path))
        .map_err(undo)?;
    if !try_lock(&file, path).map_err(undo)? {
        // Only a run cleaning up can hold a lock on a name this fresh; it removes it.
        return Err(Error::Busy {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

/// What a look at an existing name found.
enum Found {
    /// Nothing there (any more).
    Gone,
    /// A live writer holds it.
    Live,
    /// A dead run's leftover, now removed.
    Removed(Leftover),
}

/// Opens `path`, and when its lock is free and the name still points at the locked
/// inode, removes it (a directory with everything in it) while holding the lock.
fn remove_if_dead(path: &Path) -> Result<Found> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Gone),
        Err(e) => return Err(Error::io("opening", path)(e)),
    };
    if !try_lock(&file, path)? {
        return Ok(Found::Live);
    }
    if !same_inode(&file, path) {
        // Removed (and perhaps replaced) meanwhile by another run: look again.
        return Ok(Found::Gone);
    }
    let size = size_of(path);
    let is_dir = file.metadata().map(|m| m.is_dir()).unwrap_or(false);
    let removed = if is_dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    removed.map_err(Error::io("removing the leftover", path))?;
    sync_parent(path)?;
    Ok(Found::Removed(Leftover {
        path: path.to_path_buf(),
        size,
    }))
}

/// A `.part` file being written, locked for as long as it is open, and removed when
/// dropped unless [`PartFile::publish`]ed.
#[derive(Debug)]
pub struct PartFile {
    file: File,
    path: PathBuf,
    armed: bool,
}

impl PartFile {
    /// Creates `part` with exactly `mode`, locked. A `part` left by a dead run is
    /// removed first and returned; one held by a live writer is [`Error::Busy`].
    ///
    /// On a filesystem without hard links (some FUSE and network mounts, FAT) the
    /// `.part` is created under its own name and locked right after: for that instant
    /// another run could take it for a dead leftover.
    pub fn create(part: &Path, mode: u32) -> Result<(PartFile, Option<Leftover>)> {
        Self::create_with(part, mode, |from, to| fs::hard_link(from, to))
    }

    /// [`PartFile::create`] with the hard link made by `link` (tests make it fail).
    fn create_with(
        part: &Path,
        mode: u32,
        link: impl Fn(&Path, &Path) -> std::io::Result<()>,
    ) -> Result<(PartFile, Option<Leftover>)> {
        let tmp = unique_beside(part);
        let file = open_new_locked(&tmp, mode)?;
        let tmp_guard = crate::TempFile::new(tmp.clone());
        let mut leftover = None;
        let mut linkable = true;
        // A few rounds: each one either places our file or removes a dead leftover; a
        // name that keeps coming back between two looks means something is wrong.
        for _ in 0..8 {
            let placed = if linkable {
                match link(&tmp, part) {
                    Ok(()) => Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
                    Err(_) => {
                        // No hard links here: create the name itself.
                        linkable = false;
                        continue;
                    }
                }
            } else {
                match open_new_locked(part, mode) {
                    Ok(f) => Ok(Some(f)),
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        Err(source)
                    }
                    Err(e) => return Err(e),
                }
            };
            match placed {
                Ok(own) => {
                    drop(tmp_guard);
                    sync_parent(part)?;
                    return Ok((
                        PartFile {
                            file: own.unwrap_or(file),
                            path: part.to_path_buf(),
                            armed: true,
                        },
                        leftover,
                    ));
                }
                Err(_) => match remove_if_dead(part)? {
                    Found::Live => {
                        return Err(Error::Busy {
                            path: part.to_path_buf(),
                        });
                    }
                    Found::Gone => {}
                    Found::Removed(l) => leftover = Some(l),
                },
            }
        }
        Err(Error::io("creating", part)(std::io::Error::other(
            "the name kept reappearing",
        )))
    }

    /// The open file (a duplicate shares the lock: the lock lasts while any is open).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// A duplicate of the open file, for a writer on another thread.
    pub fn try_clone_file(&self) -> Result<File> {
        self.file
            .try_clone()
            .map_err(Error::io("duplicating the handle of", &self.path))
    }

    /// The `.part` path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the finished (fsynced) file its final name `dest` with
    /// [`crate::publish`], still holding the lock; the lock ends with this value.
    pub fn publish(mut self, dest: &Path, replace: bool) -> Result<()> {
        crate::publish(&self.path, dest, replace)?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        // Unlinked while still locked, so no other run can take it for a leftover.
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A private (0700) directory being filled, locked for as long as this value lives and
/// removed with everything in it when dropped.
#[derive(Debug)]
pub struct StagingDir {
    /// Held open for its lock.
    _lock: File,
    path: PathBuf,
}

impl StagingDir {
    /// Creates `<parent>/<prefix><pid>-<n>`, locked before it appears under that name.
    pub fn create(parent: &Path, prefix: &str) -> Result<StagingDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = parent.join(format!("{prefix}{}-{n}-{nanos:x}", std::process::id()));
        let tmp = parent.join(format!(
            ".kastellan-new-{}-{n}-{nanos:x}",
            std::process::id()
        ));
        fs::create_dir(&tmp).map_err(Error::io("creating", &tmp))?;
        let undo = |e: Error| {
            let _ = fs::remove_dir_all(&tmp);
            e
        };
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700))
            .map_err(Error::io("setting the mode of", &tmp))
            .map_err(undo)?;
        let lock = File::open(&tmp)
            .map_err(Error::io("opening", &tmp))
            .map_err(undo)?;
        if !try_lock(&lock, &tmp).map_err(undo)? {
            return Err(undo(Error::io("locking", &tmp)(std::io::Error::other(
                "a fresh directory's lock is held",
            ))));
        }
        fs::rename(&tmp, &path)
            .map_err(Error::io("renaming into", &path))
            .map_err(undo)?;
        Ok(StagingDir { _lock: lock, path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        // Removed while still locked (the lock is dropped after this body).
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Removes the dead runs' leftovers in `dir`: every `*.part` file and every directory
/// whose name starts with `staging_prefix` whose lock is free. Those held by a live
/// writer stay. Returns what was removed.
pub fn remove_dead_leftovers(dir: &Path, staging_prefix: &str) -> Result<Vec<Leftover>> {
    let mut removed = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(Error::io("reading", dir)(e)),
    };
    let mut candidates: Vec<PathBuf> = Vec::new();
    for e in entries {
        let e = e.map_err(Error::io("reading", dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(kind) = e.file_type() else { continue };
        let part = kind.is_file() && name.ends_with(".part");
        let staging = kind.is_dir() && name.starts_with(staging_prefix);
        if part || staging {
            candidates.push(e.path());
        }
    }
    candidates.sort();
    for path in candidates {
        if let Found::Removed(l) = remove_if_dead(&path)? {
            removed.push(l);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_part_is_created_locked_with_its_mode_and_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("s.db.part");
        let (p, leftover) = PartFile::create(&part, 0o600).unwrap();
        assert_eq!(leftover, None);
        assert_eq!(entries(dir.path()), ["s.db.part"], "no temp name left");
        assert_eq!(
            fs::metadata(&part).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Another open file description of it cannot take the lock.
        let other = File::open(&part).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        // So a second writer is refused, naming the file, and the first is untouched.
        let err = PartFile::create(&part, 0o600).unwrap_err();
        assert!(
            matches!(&err, Error::Busy { path } if path == &part),
            "{err}"
        );
        assert!(err.to_string().contains("s.db.part"), "{err}");
        assert!(part.exists());
        drop(p);
        assert_eq!(entries(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn an_unlocked_part_is_a_leftover_removed_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("s.db.part");
        fs::write(&part, vec![7u8; 1234]).unwrap();
        let (p, leftover) = PartFile::create(&part, 0o600).unwrap();
        assert_eq!(
            leftover,
            Some(Leftover {
                path: part.clone(),
                size: 1234
            })
        );
        use std::io::Write as _;
        let mut f = p.file();
        f.write_all(b"new").unwrap();
        assert_eq!(fs::read(&part).unwrap(), b"new");
        p.publish(&dir.path().join("s.db"), false).unwrap();
        assert_eq!(entries(dir.path()), ["s.db"]);
    }

    #[test]
    fn without_hard_links_the_part_is_created_under_its_name_locked() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("b.tar.part");
        fs::write(&part, b"dead run").unwrap();
        let no_links =
            |_: &Path, _: &Path| Err(std::io::Error::from(std::io::ErrorKind::Unsupported));
        let (p, leftover) = PartFile::create_with(&part, 0o600, no_links).unwrap();
        assert_eq!(leftover.map(|l| l.size), Some(8));
        assert_eq!(entries(dir.path()), ["b.tar.part"], "no temp name left");
        assert_eq!(
            fs::metadata(&part).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::metadata(&part).unwrap().len(), 0);
        let other = File::open(&part).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        let err = PartFile::create_with(&part, 0o600, no_links).unwrap_err();
        assert!(matches!(err, Error::Busy { .. }), "{err}");
        drop(p);
        assert_eq!(entries(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn leftovers_in_a_dir_are_removed_but_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("dead.tar.part"), b"12345").unwrap();
        fs::create_dir(d.join(".stage-dead")).unwrap();
        fs::write(d.join(".stage-dead/snapshot.db.part"), b"123").unwrap();
        fs::write(d.join("kept.tar"), b"bundle").unwrap();
        let (_live, _) = PartFile::create(&d.join("live.tar.part"), 0o600).unwrap();
        let stage = StagingDir::create(d, ".stage-").unwrap();
        let mut removed = remove_dead_leftovers(d, ".stage-").unwrap();
        removed.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            removed,
            [
                Leftover {
                    path: d.join(".stage-dead"),
                    size: 3
                },
                Leftover {
                    path: d.join("dead.tar.part"),
                    size: 5
                },
            ]
        );
        let stage_name = stage
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut want = vec![
            stage_name,
            "kept.tar".to_string(),
            "live.tar.part".to_string(),
        ];
        want.sort();
        assert_eq!(entries(d), want);
        drop(stage);
        assert_eq!(entries(d), ["kept.tar", "live.tar.part"]);
    }
}

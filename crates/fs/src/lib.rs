//! Durable files: the one module every kastellan crate writes through.
//!
//! Backups, restores and certificate renewals touch the only copy of a cluster's state,
//! so a write is either complete or absent: [`write_atomic`] writes a temp file beside
//! the target, fsyncs it, renames it over the target and fsyncs the directory, so a
//! reader (or a crash) sees the old or the new content, never a mix. Modes are exact
//! (the umask does not apply) and [`write_keeping`] keeps the mode and owner of the file
//! it replaces. [`publish`] never replaces a file that exists. A file being written
//! lives as a [`PartFile`] (or a [`StagingDir`]) held with an exclusive lock, so that a
//! later run tells a live writer from a dead run's leftover, which it removes
//! ([`remove_dead_leftovers`]).

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

mod part;

pub use part::{Leftover, PartFile, StagingDir, remove_dead_leftovers};

/// What went wrong, with the path and the operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`writing`, `renaming into`, ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A running process holds the file's lock: it is still being written.
    #[error(
        "{} is being written by a running process (it holds the file's lock); a dead run's leftover would have been removed",
        path.display()
    )]
    Busy {
        /// The file.
        path: PathBuf,
    },
    /// The destination exists and is never replaced.
    #[error("{} exists already; it is left as it is", path.display())]
    Exists {
        /// The destination.
        path: PathBuf,
    },
}

impl Error {
    /// A closure turning an `io::Error` into [`Error::Io`] for `path`.
    pub fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error + use<> {
        let path = path.to_path_buf();
        move |source| Error::Io { op, path, source }
    }

    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Error::Io { path, .. } | Error::Exists { path } | Error::Busy { path } => path,
        }
    }
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The permission bits and owner of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    /// Permission bits (`0o644`, `0o600`, ...).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

/// The mode and owner of `path`, or `None` when it does not exist.
pub fn ownership(path: &Path) -> Result<Option<Ownership>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(Ownership {
            mode: m.permissions().mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", path)(e)),
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// fsyncs the directory that holds `path`, so that a rename or a new entry in it is
/// durable. Filesystems that refuse fsync on directories are not an error.
pub fn sync_parent(path: &Path) -> Result<()> {
    sync_dir(parent_dir(path))
}

/// fsyncs the directory `dir`.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(Error::io("opening", dir))?;
    match d.sync_all() {
        Ok(()) => Ok(()),
        // Some filesystems (and some FUSE mounts) refuse fsync on a directory.
        Err(e) if e.raw_os_error() == Some(22) => Ok(()),
        Err(e) => Err(Error::io("syncing the directory", dir)(e)),
    }
}

/// The temp file beside `path` that a write goes through: `.<name>.kastellan-<pid>`.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    parent_dir(path).join(format!(".{name}.kastellan-{}", std::process::id()))
}

/// Removes a file when dropped, unless [`TempFile::keep`] was called: a temp or
/// `.part` file never outlives a failed write.
#[derive(Debug)]
pub struct TempFile(Option<PathBuf>);

impl TempFile {
    /// Guards `path`.
    pub fn new(path: PathBuf) -> TempFile {
        TempFile(Some(path))
    }

    /// The guarded path.
    pub fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    /// Stops guarding: the file stays.
    pub fn keep(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Creates `path` (which must not exist) with exactly `mode`, writes `data` and fsyncs.
fn create_synced(path: &Path, data: &[u8], mode: u32, owner: Option<Ownership>) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(Error::io("creating", path))?;
    // The umask may have removed bits: set exactly the mode asked for.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(Error::io("setting the mode of", path))?;
    if let Some(o) = owner {
        std::os::unix::fs::fchown(&f, Some(o.uid), Some(o.gid))
            .map_err(Error::io("setting the owner of", path))?;
    }
    f.write_all(data).map_err(Error::io("writing", path))?;
    f.sync_all().map_err(Error::io("syncing", path))
}

/// Replaces (or creates) `path` with `data` atomically, with exactly `mode`: a temp file
/// beside it, fsync, rename over `path`, fsync of the directory. The parent directory
/// must exist.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    write_owned(path, data, mode, None)
}

/// [`write_atomic`] with the temp file made in `temp_dir` (on the same filesystem as
/// `path`) instead of beside `path`: for directories whose every entry is read by
/// someone, such as the kubelet's manifest directory.
pub fn write_atomic_via(path: &Path, data: &[u8], mode: u32, temp_dir: &Path) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = temp_dir.join(format!(".{name}.kastellan-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let guard = TempFile::new(tmp.clone());
    create_synced(&tmp, data, mode, None)?;
    fs::rename(&tmp, path).map_err(Error::io("renaming into", path))?;
    guard.keep();
    sync_parent(path)
}

/// [`write_atomic`] giving the file `owner`'s uid and gid as well.
pub fn write_owned(path: &Path, data: &[u8], mode: u32, owner: Option<Ownership>) -> Result<()> {
    let tmp = temp_beside(path);
    let _ = fs::remove_file(&tmp); // a crashed run of this pid's number
    let guard = TempFile::new(tmp.clone());
    create_synced(&tmp, data, mode, owner)?;
    fs::rename(&tmp, path).map_err(Error::io("renaming into", path))?;
    guard.keep();
    sync_parent(path)
}

/// [`write_atomic`] with the content streamed from `reader` (never held in memory).
pub fn write_atomic_from(path: &Path, reader: &mut dyn std::io::Read, mode: u32) -> Result<()> {
    let tmp = temp_beside(path);
    let _ = fs::remove_file(&tmp);
    let guard = TempFile::new(tmp.clone());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(Error::io("creating", &tmp))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(Error::io("setting the mode of", &tmp))?;
    std::io::copy(reader, &mut f).map_err(Error::io("writing", &tmp))?;
    f.sync_all().map_err(Error::io("syncing", &tmp))?;
    fs::rename(&tmp, path).map_err(Error::io("renaming into", path))?;
    guard.keep();
    sync_parent(path)
}

/// Replaces `path` with `data` atomically, keeping the mode and owner of the file it
/// replaces; a new file gets `new_mode`.
pub fn write_keeping(path: &Path, data: &[u8], new_mode: u32) -> Result<()> {
    let own = ownership(path)?;
    write_owned(path, data, own.map_or(new_mode, |o| o.mode), own)
}

/// Writes a new file `path` with `data` and `mode`, refusing when it exists.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let tmp = temp_beside(path);
    let _ = fs::remove_file(&tmp);
    let guard = TempFile::new(tmp.clone());
    create_synced(&tmp, data, mode, None)?;
    publish(&tmp, path, false)?;
    guard.keep();
    Ok(())
}

/// Gives a finished (fsynced) file `from` its final name `to`, then fsyncs the
/// directory. Without `replace`, an existing `to` is never replaced, even one that
/// appears meanwhile (a hard link cannot replace a file): [`Error::Exists`].
pub fn publish(from: &Path, to: &Path, replace: bool) -> Result<()> {
    let rename = || fs::rename(from, to).map_err(Error::io("renaming into", to));
    if replace {
        rename()?;
    } else {
        match fs::hard_link(from, to) {
            Ok(()) => {
                let _ = fs::remove_file(from);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists {
                    path: to.to_path_buf(),
                });
            }
            // Filesystems without hard links: check, then rename.
            Err(_) if fs::symlink_metadata(to).is_err() => rename()?,
            Err(_) => {
                return Err(Error::Exists {
                    path: to.to_path_buf(),
                });
            }
        }
    }
    sync_parent(to)
}

/// Creates `dir` (and its parents) and gives the last component mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(Error::io("setting the mode of", dir))
}

/// Copies `from` to `to` (its parent made private when missing), keeping the mode and
/// owner, atomically.
pub fn backup_copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent()
        && !parent.as_os_str().is_empty()
        && !parent.is_dir()
    {
        create_private_dir(parent)?;
    }
    let data = fs::read(from).map_err(Error::io("reading", from))?;
    let own = ownership(from)?;
    write_owned(to, &data, own.map_or(0o600, |o| o.mode), own)
}

/// Copies the tree `from` into `to` (created with mode 0755 when missing): every file
/// with its permission bits, fsynced; symbolic links are copied as links.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if !to.is_dir() {
        fs::create_dir_all(to).map_err(Error::io("creating", to))?;
        fs::set_permissions(to, fs::Permissions::from_mode(0o755))
            .map_err(Error::io("setting the mode of", to))?;
    }
    for e in fs::read_dir(from).map_err(Error::io("reading", from))? {
        let e = e.map_err(Error::io("reading", from))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let meta = fs::symlink_metadata(&src).map_err(Error::io("reading", &src))?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).map_err(Error::io("reading", &src))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(Error::io("creating", &dst))?;
        } else if meta.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            let bytes = fs::read(&src).map_err(Error::io("reading", &src))?;
            let _ = fs::remove_file(&dst);
            create_synced(&dst, &bytes, meta.permissions().mode() & 0o7777, None)?;
        }
    }
    sync_dir(to)
}

/// Gives `path` and everything below it (links themselves, not their targets) to
/// `uid`:`gid`.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(Error::io("setting the owner of", path))?;
    if path.is_dir() && !path.is_symlink() {
        for e in fs::read_dir(path).map_err(Error::io("reading", path))? {
            let e = e.map_err(Error::io("reading", path))?;
            chown_tree(&e.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// A path that does not exist yet: `base`, else `base.1`, `base.2`, ...
pub fn unique_dir(base: PathBuf) -> PathBuf {
    if !base.exists() {
        return base;
    }
    (1..)
        .map(|i| PathBuf::from(format!("{}.{i}", base.display())))
        .find(|p| !p.exists())
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
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
    fn write_atomic_sets_exactly_the_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        fs::write(&p, b"old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&p, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(ownership(&p).unwrap().unwrap().mode, 0o600);
        assert_eq!(entries(dir.path()), ["k.key"]);
    }

    #[test]
    fn write_keeping_keeps_the_replaced_files_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.conf");
        fs::write(&p, b"old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        write_keeping(&p, b"new", 0o600).unwrap();
        assert_eq!(ownership(&p).unwrap().unwrap().mode, 0o640);
        let fresh = dir.path().join("b.conf");
        write_keeping(&fresh, b"x", 0o600).unwrap();
        assert_eq!(ownership(&fresh).unwrap().unwrap().mode, 0o600);
    }

    #[test]
    fn write_new_and_publish_never_replace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("snap.db");
        write_new(&p, b"one", 0o600).unwrap();
        let err = write_new(&p, b"two", 0o600).unwrap_err();
        assert!(matches!(err, Error::Exists { .. }), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(entries(dir.path()), ["snap.db"], "no temp file left");
        let part = dir.path().join("snap.db.part");
        fs::write(&part, b"three").unwrap();
        assert!(publish(&part, &p, false).is_err());
        assert!(part.exists(), "the .part stays when refused");
        publish(&part, &p, true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
    }

    #[test]
    fn write_via_leaves_nothing_in_the_target_dir_but_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (m, h) = (dir.path().join("manifests"), dir.path().join("held"));
        fs::create_dir(&m).unwrap();
        fs::create_dir(&h).unwrap();
        write_atomic_via(&m.join("etcd.yaml"), b"pod", 0o600, &h).unwrap();
        assert_eq!(entries(&m), ["etcd.yaml"]);
        assert_eq!(entries(&h), Vec::<String>::new());
    }

    #[test]
    fn a_streamed_write_is_atomic_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        write_atomic_from(&p, &mut &b"streamed"[..], 0o640).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"streamed");
        assert_eq!(ownership(&p).unwrap().unwrap().mode, 0o640);
        assert_eq!(entries(dir.path()), ["big"]);
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomic(&dir.path().join("missing/x"), b"x", 0o600).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        assert_eq!(entries(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn backups_and_tree_copies_keep_modes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("pki");
        fs::create_dir_all(src.join("etcd")).unwrap();
        fs::write(src.join("ca.crt"), b"cert").unwrap();
        fs::write(src.join("etcd/ca.key"), b"key").unwrap();
        fs::set_permissions(src.join("etcd/ca.key"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(src.join("ca.crt"), fs::Permissions::from_mode(0o644)).unwrap();
        let b = dir.path().join("backup/pki/ca.crt");
        backup_copy(&src.join("ca.crt"), &b).unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"cert");
        assert_eq!(ownership(&b).unwrap().unwrap().mode, 0o644);
        assert_eq!(
            ownership(&dir.path().join("backup/pki"))
                .unwrap()
                .unwrap()
                .mode,
            0o700
        );
        let copy = dir.path().join("copy");
        copy_tree(&src, &copy).unwrap();
        assert_eq!(fs::read(copy.join("etcd/ca.key")).unwrap(), b"key");
        assert_eq!(
            ownership(&copy.join("etcd/ca.key")).unwrap().unwrap().mode,
            0o600
        );
        assert_eq!(
            unique_dir(dir.path().join("backup")),
            dir.path().join("backup.1")
        );
    }
}

//! Careful file writes: temp file, fsync, rename, fsync the directory; modes and owners kept.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The permission bits and owner of an existing file, to give its replacement.
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
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces `path` with `data` atomically: a temp file beside it with `mode` (and the
/// owner of `owner` when given), fsync, rename over `path`, fsync the directory. A reader
/// sees the old or the new content, never a mix.
pub fn atomic_write(path: &Path, data: &[u8], mode: u32, owner: Option<Ownership>) -> Result<()> {
    let werr = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Write { path: p, source }
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.kastellan-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(werr(&tmp))?;
        // The umask may have removed bits; set exactly the mode asked for.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(werr(&tmp))?;
        if let Some(o) = owner {
            std::os::unix::fs::fchown(&f, Some(o.uid), Some(o.gid)).map_err(werr(&tmp))?;
        }
        f.write_all(data).map_err(werr(&tmp))?;
        f.sync_all().map_err(werr(&tmp))?;
        fs::rename(&tmp, path).map_err(werr(path))?;
        if let Ok(d) = fs::File::open(dir) {
            // Best effort: some filesystems refuse fsync on directories.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` (and parents) with mode 0700 for the last component.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Copies `from` to `to` (creating parents), keeping the mode, and fsyncs the copy.
pub fn backup_copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        create_private_dir(parent)?;
    }
    let data = fs::read(from).map_err(|source| Error::Read {
        path: from.to_path_buf(),
        source,
    })?;
    let own = ownership(from)?;
    let mode = own.map_or(0o600, |o| o.mode);
    atomic_write(to, &data, mode, own)
}

/// A directory name that does not exist yet: `base`, else `base.1`, `base.2`, ...
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

    #[test]
    fn atomic_write_keeps_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        fs::write(&p, b"old").unwrap();
        atomic_write(&p, b"new", 0o600, None).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(ownership(&p).unwrap().unwrap().mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn backups_keep_content_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.crt");
        fs::write(&p, b"cert").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        let b = dir.path().join("backup/pki/a.crt");
        backup_copy(&p, &b).unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"cert");
        assert_eq!(ownership(&b).unwrap().unwrap().mode, 0o640);
        assert_eq!(
            ownership(&dir.path().join("backup/pki"))
                .unwrap()
                .unwrap()
                .mode,
            0o700
        );
        assert_eq!(
            unique_dir(dir.path().join("backup")),
            dir.path().join("backup.1")
        );
    }
}

//! The only place that writes: a hidden staging directory, made durable, then renamed.
//!
//! The target data dir must not exist, or be an empty directory. Everything is written
//! under a hidden staging directory next to where it will live, every file and
//! directory is fsynced, and one `rename` puts the result under its final name, after
//! which the parent directory is fsynced too:
//!
//! - a new data dir `D` is staged as `<parent>/.<name>.kastellan-restore-<pid>` and
//!   renamed to `D`;
//! - in an existing empty `D` (a mount point, or a directory whose owner and mode were
//!   set up beforehand), the member is staged as `D/.kastellan-restore-<pid>/member`
//!   and renamed to `D/member`, which is where etcd looks.
//!
//! A crash before the rename leaves only the hidden staging directory, never a
//! half-written member under the final name. A failed or dropped [`Staging`] removes
//! its staging directory. Directories get mode 0700 and files 0600, as etcd makes them.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;

/// The name of a staging directory inside an existing data dir, followed by the pid.
const STAGING_PREFIX: &str = ".kastellan-restore-";

/// Mode of directories etcd creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of files etcd creates.
pub const FILE_MODE: u32 = 0o600;

/// Where the restore goes, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Target {
    /// The data dir does not exist yet.
    New {
        /// The data dir.
        path: PathBuf,
    },
    /// The data dir exists and is empty.
    Empty {
        /// The data dir.
        path: PathBuf,
    },
}

impl Target {
    /// Checks `path`: refuses an existing file, and a directory that is not empty.
    /// Reads only.
    pub fn check(path: &Path) -> Result<Target, Error> {
        let path = absolute(path)?;
        let is_dir = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Target::New { path });
            }
            Err(e) => return Err(Error::io("inspect", &path)(e)),
            // A symbolic link counts as what it points to (a dangling one as no dir).
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::metadata(&path).is_ok_and(|m| m.is_dir())
            }
            Ok(meta) => meta.is_dir(),
        };
        if !is_dir {
            return Err(Error::TargetNotDir { path });
        }
        let names = std::fs::read_dir(&path)
            .map_err(Error::io("read", &path))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::io("read", &path))?;
        if names.is_empty() {
            return Ok(Target::Empty { path });
        }
        if names.iter().all(|n| n.starts_with(STAGING_PREFIX)) {
            return Err(Error::TargetHasStaging {
                path,
                names: names.join(", "),
            });
        }
        Err(Error::TargetNotEmpty { path })
    }

    /// The data dir.
    pub fn path(&self) -> &Path {
        match self {
            Target::New { path } | Target::Empty { path } => path,
        }
    }

    /// Creates the staging directory (and the data dir's missing parents, 0700 as etcd
    /// creates them).
    pub fn stage(&self) -> Result<Staging, Error> {
        let pid = std::process::id();
        let root = match self {
            Target::New { path } => {
                let parent = parent(path);
                let name = path
                    .file_name()
                    .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned());
                DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(&parent)
                    .map_err(Error::io("create directory", &parent))?;
                parent.join(format!(".{name}.kastellan-restore-{pid}"))
            }
            Target::Empty { path } => path.join(format!("{STAGING_PREFIX}{pid}")),
        };
        // A leftover of a crashed run with the same pid: ours to remove.
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(Error::io("remove stale", &root))?;
        }
        DirBuilder::new()
            .mode(DIR_MODE)
            .create(&root)
            .map_err(Error::io("create directory", &root))?;
        let member = root.join("member");
        let staging = Staging {
            target: self.clone(),
            root,
            member,
            committed: false,
        };
        for dir in [
            staging.member.clone(),
            staging.member.join("snap"),
            staging.member.join("wal"),
        ] {
            DirBuilder::new()
                .mode(DIR_MODE)
                .create(&dir)
                .map_err(Error::io("create directory", &dir))?;
        }
        Ok(staging)
    }
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(path).map_err(Error::io("resolve", path))
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("/"),
    }
}

/// A staging directory being filled. Dropped without [`Staging::commit`], it removes
/// itself.
#[derive(Debug)]
pub struct Staging {
    target: Target,
    root: PathBuf,
    member: PathBuf,
    committed: bool,
}

impl Staging {
    /// `member/` inside the staging directory.
    pub fn member(&self) -> &Path {
        &self.member
    }

    /// Creates a new file (0600) under `member/`.
    pub fn create(&self, rel: &str) -> Result<(File, PathBuf), Error> {
        let path = self.member.join(rel);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(Error::io("create", &path))?;
        Ok((file, path))
    }

    /// Writes a whole new file under `member/` and fsyncs it.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<PathBuf, Error> {
        let (mut file, path) = self.create(rel)?;
        file.write_all(bytes).map_err(Error::io("write", &path))?;
        file.sync_all().map_err(Error::io("fsync", &path))?;
        Ok(path)
    }

    /// Makes the staged tree durable and moves it under its final name. Returns the
    /// data dir.
    pub fn commit(mut self) -> Result<PathBuf, Error> {
        for dir in [
            self.member.join("snap"),
            self.member.join("wal"),
            self.member.clone(),
            self.root.clone(),
        ] {
            fsync_dir(&dir)?;
        }
        let final_path = self.target.path().to_path_buf();
        match &self.target {
            Target::New { path } => {
                std::fs::rename(&self.root, path).map_err(Error::io("rename into place", path))?;
                self.committed = true;
                fsync_dir(&parent(path))?;
            }
            Target::Empty { path } => {
                let dest = path.join("member");
                std::fs::rename(&self.member, &dest)
                    .map_err(Error::io("rename into place", &dest))?;
                self.committed = true;
                std::fs::remove_dir(&self.root).map_err(Error::io("remove", &self.root))?;
                fsync_dir(path)?;
            }
        }
        Ok(final_path)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Flush to disk in the background after this many bytes have been written.
const WRITEBACK_EVERY: u64 = 64 << 20;

/// A file being written while a helper thread flushes what is written so far to disk
/// (`fdatasync` every [`WRITEBACK_EVERY`] bytes), so that the disk works while the copy
/// goes on and the final fsync has little left to do.
#[derive(Debug)]
pub struct Writeback {
    file: File,
    since: u64,
    kick: std::sync::mpsc::SyncSender<()>,
}

impl Writeback {
    /// The file (for positioned writes).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Write for Writeback {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since += n as u64;
        if self.since >= WRITEBACK_EVERY {
            self.since = 0;
            // Never wait: if the helper is still flushing, the next kick will do.
            let _ = self.kick.try_send(());
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Runs `write` on `file` with background writeback, then fsyncs the file. An error of
/// a background flush is reported too (it would otherwise be lost: the kernel reports
/// a writeback error once per open file).
pub fn write_durably<T>(
    file: File,
    path: &Path,
    write: impl FnOnce(&mut Writeback) -> Result<T, Error>,
) -> Result<T, Error> {
    let syncer = file.try_clone().map_err(Error::io("open", path))?;
    let (kick, kicks) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::scope(|s| {
        let helper = s.spawn(move || {
            let mut first_err = None;
            for () in kicks {
                if let Err(e) = syncer.sync_data()
                    && first_err.is_none()
                {
                    first_err = Some(e);
                }
            }
            first_err
        });
        let mut out = Writeback {
            file,
            since: 0,
            kick,
        };
        let result = write(&mut out);
        let Writeback { file, kick, .. } = out;
        drop(kick); // ends the helper's loop
        let background = match helper.join() {
            Ok(e) => e,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let value = result?;
        if let Some(e) = background {
            return Err(Error::io("fsync", path)(e));
        }
        file.sync_all().map_err(Error::io("fsync", path))?;
        Ok(value)
    })
}

/// fsyncs a directory, so that the entries created in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<(), Error> {
    kastellan_kubeadm::fs::sync_dir(dir).map_err(|e| match e {
        kastellan_kubeadm::fs::Error::Io { source, .. } => Error::io("fsync", dir)(source),
        other => Error::io("fsync", dir)(std::io::Error::other(other.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_empty_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("new");
        assert!(matches!(Target::check(&new), Ok(Target::New { .. })));
        std::fs::create_dir(&new).unwrap();
        assert!(matches!(Target::check(&new), Ok(Target::Empty { .. })));
        std::fs::write(new.join("x"), b"").unwrap();
        assert!(matches!(
            Target::check(&new),
            Err(Error::TargetNotEmpty { .. })
        ));
        assert!(matches!(
            Target::check(&new.join("x")),
            Err(Error::TargetNotDir { .. })
        ));
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), &link).unwrap();
        assert!(matches!(
            Target::check(&link),
            Err(Error::TargetNotDir { .. })
        ));
        std::fs::create_dir(tmp.path().join("elsewhere")).unwrap();
        assert!(matches!(Target::check(&link), Ok(Target::Empty { .. })));
        let crashed = tmp.path().join("crashed");
        std::fs::create_dir_all(crashed.join(".kastellan-restore-123/member")).unwrap();
        let err = Target::check(&crashed).unwrap_err();
        assert!(matches!(err, Error::TargetHasStaging { .. }), "{err}");
        assert!(err.to_string().contains("interrupted"), "{err}");
    }

    #[test]
    fn commit_renames_and_drop_cleans_up() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/data");
        let target = Target::check(&dir).unwrap();
        let staging = target.stage().unwrap();
        staging.write("snap/x", b"hello").unwrap();
        assert!(!dir.exists(), "nothing under the final name before commit");
        assert_eq!(staging.commit().unwrap(), dir);
        assert_eq!(std::fs::read(dir.join("member/snap/x")).unwrap(), b"hello");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("member/wal")), 0o700);
        assert_eq!(mode(&dir.join("member/snap/x")), 0o600);
        assert_eq!(
            std::fs::read_dir(tmp.path().join("a/b")).unwrap().count(),
            1
        );

        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let staging = Target::check(&empty).unwrap().stage().unwrap();
        staging.write("wal/w", b"").unwrap();
        drop(staging);
        assert_eq!(
            std::fs::read_dir(&empty).unwrap().count(),
            0,
            "dropped: removed"
        );
        let staging = Target::check(&empty).unwrap().stage().unwrap();
        staging.commit().unwrap();
        let names: Vec<_> = std::fs::read_dir(&empty)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["member"]);
    }
}

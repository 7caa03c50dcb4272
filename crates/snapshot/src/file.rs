//! The I/O layer: reads a snapshot file (opened read-only) and names it in errors.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, Inspection, Options, Status, inspect};

/// A snapshot file read into memory. The file is opened read-only and never written.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl SnapshotFile {
    /// Reads the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SnapshotFile, Error> {
        let path = path.as_ref().to_path_buf();
        let read_err = |source| Error::Read {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&path).map_err(read_err)?;
        let len = file.metadata().map_err(read_err)?.len();
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(read_err)?;
        Ok(SnapshotFile { path, bytes })
    }

    /// The path the file was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Runs every check and computes the figures; see [`inspect`]. Fails only when the
    /// file is not a bbolt database.
    pub fn inspect(&self, options: &Options) -> Result<Inspection, Error> {
        inspect(&self.bytes, options).map_err(|fault| Error::from_fault(self.path.clone(), fault))
    }

    /// The `snapshot status` figures, with etcd's strictness: any finding of the
    /// structural checks is an error, as it is for `etcdutl snapshot status` (the
    /// sha256 trailer is not hashed, as etcd does not hash it either).
    pub fn status(&self) -> Result<Status, Error> {
        let report = self.inspect(&Options::default())?;
        if let Some(fault) = report.faults.into_iter().next() {
            return Err(Error::from_fault(self.path.clone(), fault));
        }
        // Cannot fail: `inspect` records a fault whenever it leaves the figures out,
        // and a fault was ruled out just above.
        #[allow(clippy::expect_used)]
        Ok(report
            .status
            .expect("figures are computed when no fault was found"))
    }
}

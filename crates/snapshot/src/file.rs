//! The I/O layer: opens a snapshot file read-only, maps it into memory, and names it
//! in errors.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, Inspection, Options, Status, inspect};

/// Files below this size are read into memory rather than mapped.
const MAP_THRESHOLD: u64 = 1 << 20;

#[derive(Debug)]
enum Bytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

/// A snapshot file, opened read-only. Large files are memory-mapped (read-only, shared);
/// small ones are read into memory. The file is never written.
///
/// Like bbolt and `etcdutl`, mapping means the file should not change while it is
/// inspected: point this at a copy of a running member's `member/snap/db`, not at the
/// live file (whose content would be inconsistent anyway).
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    bytes: Bytes,
}

impl SnapshotFile {
    /// Opens the file at `path` read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<SnapshotFile, Error> {
        let path = path.as_ref().to_path_buf();
        let read_err = |source| Error::Read {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&path).map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        let bytes = if meta.is_file() && meta.len() >= MAP_THRESHOLD {
            Bytes::Mapped(map(&file).map_err(read_err)?)
        } else {
            let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
            file.read_to_end(&mut bytes).map_err(read_err)?;
            Bytes::Owned(bytes)
        };
        Ok(SnapshotFile { path, bytes })
    }

    /// The path the file was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Owned(v) => v,
            Bytes::Mapped(m) => m,
        }
    }

    /// Runs every check and computes the figures; see [`inspect`]. Fails only when the
    /// file is not a bbolt database.
    pub fn inspect(&self, options: &Options) -> Result<Inspection, Error> {
        inspect(self.bytes(), options).map_err(|fault| Error::from_fault(self.path.clone(), fault))
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

/// Maps `file` read-only. Not populated up front (`MAP_POPULATE` or parallel
/// `MADV_POPULATE_READ` measured no faster): pages fault in as the walk and the hashing
/// threads reach them, on all cores.
#[allow(unsafe_code)]
fn map(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: a read-only shared mapping of a file opened read-only; this process never
    // writes through it. The remaining hazard is another process changing or
    // truncating the file while it is mapped, which `SnapshotFile` documents (bbolt and
    // etcdutl map the file the same way). Every read of the slice is bounds-checked.
    unsafe { memmap2::MmapOptions::new().map(file) }
}

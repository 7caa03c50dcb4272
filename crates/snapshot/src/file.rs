//! The I/O layer: opens a snapshot file read-only, maps it into memory, and names it
//! in errors.
//!
//! A mapped file's pages count in the process's resident set as they are read, so a
//! walk of a 1 GiB snapshot would otherwise end near 1 GiB resident, which a CronJob's
//! memory limit counts against. So the mapping's pages are dropped from this process's
//! page tables (`MADV_DONTNEED`; the kernel's page cache keeps them, so reading one again
//! is a minor fault) in two ways:
//!
//! - synchronously, by the readers themselves: every bbolt page read and every block
//!   hashed counts its bytes ([`touched`]), and each [`TRIM_AFTER`] bytes read, across
//!   threads, the reader that crosses the mark drops every open mapping's pages before it
//!   goes on. This bounds the resident set however busy the machine is: a timer thread
//!   alone fell behind on two busy cores (a release restore of 1 GiB peaked at 176 MiB);
//! - and by a trimmer thread every millisecond, for reads that do not count (a slice
//!   read directly) and once reading stops.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::{Error, Inspection, Options, Status, inspect};

/// Files below this size are read into memory rather than mapped.
const MAP_THRESHOLD: u64 = 1 << 20;

/// Bytes read from mapped snapshots (by all threads) between two synchronous trims.
pub(crate) const TRIM_AFTER: u64 = 4 << 20;

/// Bytes counted by [`touched`] so far, across threads.
static TOUCHED: AtomicU64 = AtomicU64::new(0);

/// The mappings of the snapshot files open now, for [`touched`] to trim.
static MAPPINGS: Mutex<Vec<Weak<memmap2::Mmap>>> = Mutex::new(Vec::new());

/// Counts `bytes` just read from a snapshot's bytes (mapped or not). Each time the
/// count crosses a multiple of [`TRIM_AFTER`], this thread drops every open mapping's
/// pages from the process's page tables before it returns, so the resident set of the
/// mappings stays near [`TRIM_AFTER`] times the number of reading threads.
pub(crate) fn touched(bytes: usize) {
    let n = bytes as u64;
    let before = TOUCHED.fetch_add(n, Ordering::Relaxed);
    if before / TRIM_AFTER != before.wrapping_add(n) / TRIM_AFTER {
        trim_open_mappings();
    }
}

/// Drops the pages of every mapping still open, and forgets the closed ones.
fn trim_open_mappings() {
    let open: Vec<Arc<memmap2::Mmap>> = {
        let Ok(mut maps) = MAPPINGS.lock() else {
            return;
        };
        maps.retain(|w| w.strong_count() > 0);
        maps.iter().filter_map(Weak::upgrade).collect()
    };
    for map in open {
        drop_resident(&map);
    }
}

/// How often the trimmer drops the mapping's pages. At 5 ms a restore, whose two
/// threads read the mapping at once, still peaked near 90 MiB; at 1 ms, near 43 MiB.
const TRIM_EVERY: Duration = Duration::from_millis(1);

#[derive(Debug)]
enum Bytes {
    Owned(Vec<u8>),
    Mapped {
        map: Arc<memmap2::Mmap>,
        _trimmer: Option<Trimmer>,
    },
}

/// The thread that keeps a mapping's resident pages few; stopped and joined on drop.
#[derive(Debug)]
struct Trimmer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Trimmer {
    fn start(map: Arc<memmap2::Mmap>) -> Trimmer {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("snapshot-trim".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(TRIM_EVERY) {
                    drop_resident(&map);
                }
            })
            .ok();
        Trimmer {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Trimmer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Drops the mapping's pages from this process's page tables (they stay in the page
/// cache). A failure only means more stays resident, so it is ignored.
#[allow(unsafe_code)]
fn drop_resident(map: &memmap2::Mmap) {
    // SAFETY: the mapping is shared, read-only and backed by a file that this process
    // never writes: after MADV_DONTNEED, the next read of a page faults it in again from
    // the page cache with the same content, so every slice borrowed from the mapping
    // (in any thread) keeps reading the same bytes.
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
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
        SnapshotFile::open_with(path.as_ref(), true)
    }

    /// Opens the file at `path` read-only, with the trimmer thread or without it (the
    /// readers' own trims only).
    fn open_with(path: &Path, trimmer: bool) -> Result<SnapshotFile, Error> {
        let path = path.to_path_buf();
        let read_err = |source| Error::Read {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&path).map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        let bytes = if meta.is_file() && meta.len() >= MAP_THRESHOLD {
            let map = Arc::new(map(&file).map_err(read_err)?);
            if let Ok(mut maps) = MAPPINGS.lock() {
                maps.push(Arc::downgrade(&map));
            }
            Bytes::Mapped {
                _trimmer: trimmer.then(|| Trimmer::start(Arc::clone(&map))),
                map,
            }
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
            Bytes::Mapped { map, .. } => map,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The resident size, in KiB, of this process's mapping that starts at `addr`, read
    /// from `/proc/self/smaps`.
    fn resident_kib(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or_default();
            if !first.ends_with(':') {
                // A mapping's header: `start-end perms offset dev inode path`.
                let start = first.split('-').next().unwrap_or_default();
                inside = usize::from_str_radix(start, 16) == Ok(addr);
            } else if inside && first == "Rss:" {
                let kib = line.split_whitespace().nth(1).unwrap_or_default();
                return kib.parse().unwrap();
            }
        }
        panic!("no mapping at {addr:#x} in /proc/self/smaps");
    }

    /// Without the trimmer thread, the readers' own count trims: once a reader has
    /// counted `TRIM_AFTER` bytes, the mapping's pages are gone before `touched` returns.
    #[test]
    fn counted_reads_drop_the_mapping_synchronously() {
        const SIZE: usize = 32 << 20;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..SIZE >> 20 {
            std::io::Write::write_all(&mut f, &chunk).unwrap();
        }
        let file = SnapshotFile::open_with(f.path(), false).unwrap();
        let bytes = file.bytes();
        let addr = bytes.as_ptr() as usize;
        // Read and not counted: resident. (Other tests of this binary count their reads
        // too and may trim it meanwhile: then read it again.)
        let mut resident = false;
        for _ in 0..5 {
            let sum: u64 = bytes.iter().step_by(4096).map(|&b| u64::from(b)).sum();
            assert_eq!(sum, 7 * (SIZE as u64 / 4096));
            if resident_kib(addr) >= 16 << 10 {
                resident = true;
                break;
            }
        }
        assert!(
            resident,
            "{} KiB resident after reading",
            resident_kib(addr)
        );
        // Counted: dropped at once, and the content still reads the same.
        touched(TRIM_AFTER as usize);
        assert!(resident_kib(addr) <= 1024, "{} KiB", resident_kib(addr));
        assert_eq!(bytes[SIZE - 1], 7);
    }

    #[test]
    fn a_mapped_file_does_not_stay_resident_once_read() {
        const SIZE: usize = 32 << 20;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        for _ in 0..SIZE >> 20 {
            std::io::Write::write_all(&mut f, &chunk).unwrap();
        }
        let file = SnapshotFile::open(f.path()).unwrap();
        let bytes = file.bytes();
        assert_eq!(bytes.len(), SIZE);
        // Every page read, and the content is what was written.
        let sum: u64 = bytes.iter().step_by(4096).map(|&b| u64::from(b)).sum();
        let want: u64 = (0..SIZE)
            .step_by(4096)
            .map(|i| ((i % (1 << 20)) % 251) as u64)
            .sum();
        assert_eq!(sum, want);
        // Once reading stops, the trimmer drops the pages within a few periods.
        let addr = bytes.as_ptr() as usize;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut rss = resident_kib(addr);
        while rss > 1024 && std::time::Instant::now() < deadline {
            std::thread::sleep(TRIM_EVERY * 4);
            rss = resident_kib(addr);
        }
        assert!(
            rss <= 1024,
            "{rss} KiB of the 32 MiB mapping still resident"
        );
        // And the bytes read again are the same.
        let again: u64 = bytes.iter().step_by(4096).map(|&b| u64::from(b)).sum();
        assert_eq!(again, want);
    }
}

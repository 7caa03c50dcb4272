//! Streaming a snapshot from a member into a file that is complete and verified before
//! it gets its final name.
//!
//! etcd's `Maintenance.Snapshot` sends the backend database in chunks, each saying how
//! many bytes are still to come, then one last message holding the sha256 of everything
//! before it. [`save`] writes all of it to `FILE.part` (mode 0600) while hashing on a
//! separate thread, checks the length and the sha256, fsyncs, verifies the file's
//! structure with `kastellan-snapshot` (meta pages, page tree, freelist, key order; the
//! trailer was already checked on the streamed bytes), and only then links it to
//! `FILE` (refusing to replace an existing one unless `force`) and fsyncs the directory.
//! On any failure, or when the future is dropped, the `.part` is removed.
//!
//! The `.part` is a [`kastellan_kubeadm::fs::PartFile`]: locked with `flock` for as
//! long as the save lives. A `.part` whose lock is held belongs to a running save
//! ([`Error::Busy`]); one whose lock is free was left by a save that died (SIGKILL,
//! power loss) and is removed, and [`Saved::leftover`] names it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, rpc_error};

/// Length of the sha256 trailer etcd appends.
pub const TRAILER_LEN: usize = 32;

/// One piece of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The bytes.
    pub data: Vec<u8>,
    /// How many database bytes etcd says are still to come after this chunk.
    pub remaining: u64,
}

/// A source of snapshot chunks: a member's stream, or anything else in tests.
pub trait ChunkSource: Send {
    /// Where the chunks come from, for messages.
    fn endpoint(&self) -> &str;
    /// The next chunk; `None` at the end of the stream.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Chunk>>> + Send;
}

/// A member's snapshot stream with an idle timeout.
pub struct SnapshotStream {
    endpoint: String,
    inner: etcd_client::SnapshotStreaming,
    idle: Duration,
}

impl std::fmt::Debug for SnapshotStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStream")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl SnapshotStream {
    pub(crate) fn new(
        endpoint: String,
        inner: etcd_client::SnapshotStreaming,
        idle: Duration,
    ) -> Self {
        SnapshotStream {
            endpoint,
            inner,
            idle,
        }
    }
}

impl ChunkSource for SnapshotStream {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        match tokio::time::timeout(self.idle, self.inner.message()).await {
            Err(_) => Err(Error::SnapshotStalled {
                endpoint: self.endpoint.clone(),
                seconds: self.idle.as_secs(),
            }),
            Ok(Err(e)) => Err(rpc_error(&self.endpoint, "snapshot stream", &e)),
            Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(mut resp))) => Ok(Some(Chunk {
                // Taken, not copied (the `pub-response-field` feature exposes it).
                data: std::mem::take(&mut resp.0.blob),
                remaining: resp.0.remaining_bytes,
            })),
        }
    }
}

/// Progress of a save, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes received so far.
    pub received: u64,
    /// Bytes expected in all (database plus trailer), once the first chunk told.
    pub total: Option<u64>,
}

/// How to save.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveOptions {
    /// Replace an existing destination file.
    pub force: bool,
}

/// A saved, verified snapshot.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    /// The file written.
    pub path: PathBuf,
    /// The endpoint it came from.
    pub endpoint: String,
    /// Its size in bytes, trailer included.
    pub size: u64,
    /// The sha256 of the database (as etcd sent it, and as the bytes hash).
    pub sha256: String,
    /// How long streaming, writing and verifying took.
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    /// The figures of `etcdutl snapshot status` for the file.
    pub status: kastellan_snapshot::Status,
    /// A dead save's `.part` that was removed before this one started.
    #[serde(skip)]
    pub leftover: Option<kastellan_kubeadm::fs::Leftover>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// `FILE.part` next to `FILE`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Hashes everything but the last [`TRAILER_LEN`] bytes seen, which it keeps aside.
#[derive(Default)]
pub(crate) struct TrailerHasher {
    hasher: Sha256,
    tail: Vec<u8>,
}

impl TrailerHasher {
    pub(crate) fn update(&mut self, chunk: &[u8]) {
        if chunk.len() >= TRAILER_LEN {
            self.hasher.update(&self.tail);
            let cut = chunk.len() - TRAILER_LEN;
            self.hasher.update(&chunk[..cut]);
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[cut..]);
        } else {
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > TRAILER_LEN {
                let excess = self.tail.len() - TRAILER_LEN;
                self.hasher.update(&self.tail[..excess]);
                self.tail.drain(..excess);
            }
        }
    }

    /// (hash of the data, the trailer as sent).
    pub(crate) fn finish(self) -> (String, String) {
        (hex::encode(self.hasher.finalize()), hex::encode(&self.tail))
    }
}

struct Written {
    bytes: u64,
    computed: String,
    trailer: String,
}

/// The writer thread: hashes and writes what it is sent, then flushes and fsyncs.
fn write_part(
    mut file: std::fs::File,
    path: PathBuf,
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> Result<Written> {
    let werr = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write {
            action,
            path,
            source,
        }
    };
    let mut hasher = TrailerHasher::default();
    let mut bytes = 0u64;
    let mut buf = std::io::BufWriter::with_capacity(1 << 20, &mut file);
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        buf.write_all(&chunk).map_err(werr("writing", &path))?;
    }
    buf.flush().map_err(werr("writing", &path))?;
    drop(buf);
    file.sync_all().map_err(werr("syncing", &path))?;
    let (computed, trailer) = hasher.finish();
    Ok(Written {
        bytes,
        computed,
        trailer,
    })
}

/// Streams `src` into `dest` (see the module documentation). `progress` is called
/// after every chunk.
pub async fn save<S: ChunkSource>(
    mut src: S,
    dest: &Path,
    options: SaveOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Saved> {
    let started = Instant::now();
    let endpoint = src.endpoint().to_string();
    if !options.force && std::fs::symlink_metadata(dest).is_ok() {
        return Err(Error::Exists {
            path: dest.to_path_buf(),
        });
    }
    let part = part_path(dest);
    let (part_file, leftover) =
        kastellan_kubeadm::fs::PartFile::create(&part, 0o600).map_err(fs_error)?;
    let file = part_file.try_clone_file().map_err(fs_error)?;

    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let writer = {
        let part = part.clone();
        tokio::task::spawn_blocking(move || write_part(file, part, rx))
    };

    let streamed = stream_into(&mut src, &tx, progress).await;
    drop(tx);
    let written = match writer.await {
        Ok(r) => r,
        Err(e) => Err(Error::Write {
            action: "writing",
            path: part.clone(),
            source: std::io::Error::other(e.to_string()),
        }),
    };
    // A write error (disk full) is the cause when both failed: the stream only broke
    // because the writer stopped reading.
    let written = written?;
    let expected = streamed?;

    if written.bytes != expected {
        return Err(Error::SnapshotTruncated {
            endpoint,
            received: written.bytes,
            remaining: expected.saturating_sub(written.bytes),
        });
    }
    if written.computed != written.trailer {
        return Err(Error::SnapshotChecksum {
            endpoint,
            expected: written.trailer,
            actual: written.computed,
        });
    }

    let status = {
        let part = part.clone();
        tokio::task::spawn_blocking(move || verify(&part))
            .await
            .map_err(|e| Error::Verify {
                path: dest.to_path_buf(),
                source: Box::new(kastellan_snapshot::Error::Read {
                    path: dest.to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                }),
            })??
    };

    part_file.publish(dest, options.force).map_err(fs_error)?;
    Ok(Saved {
        path: dest.to_path_buf(),
        endpoint,
        size: written.bytes,
        sha256: written.computed,
        elapsed: started.elapsed(),
        status,
        leftover,
    })
}

/// Receives every chunk and hands it to the writer; returns the total announced.
async fn stream_into<S: ChunkSource>(
    src: &mut S,
    tx: &tokio::sync::mpsc::Sender<Vec<u8>>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<u64> {
    let mut received = 0u64;
    let mut total: Option<u64> = None;
    let mut last_remaining = None;
    while let Some(chunk) = src.next_chunk().await? {
        if chunk.data.is_empty() && chunk.remaining == 0 && total.is_none() {
            continue;
        }
        let len = chunk.data.len() as u64;
        if total.is_none() {
            total = Some(chunk.remaining + len + TRAILER_LEN as u64);
        }
        received += len;
        last_remaining = Some(chunk.remaining);
        if tx.send(chunk.data).await.is_err() {
            // The writer stopped (its error is reported by the caller).
            return Ok(total.unwrap_or(0));
        }
        progress(Progress { received, total });
        if let Some(t) = total
            && received * 2 >= t
        {
            pause_mid_stream().await;
        }
    }
    match (total, last_remaining) {
        (Some(t), Some(0)) => Ok(t),
        (Some(t), _) => Err(Error::SnapshotTruncated {
            endpoint: src.endpoint().to_string(),
            received,
            remaining: t.saturating_sub(received),
        }),
        (None, _) => Err(Error::SnapshotTruncated {
            endpoint: src.endpoint().to_string(),
            received: 0,
            remaining: 0,
        }),
    }
}

/// Debug builds only: with `KASTELLAN_SNAPSHOT_PAUSE_MID_STREAM` set, waits forever
/// once half the snapshot has streamed in (the `.part` open, locked and partly
/// written), so that a crash test can kill the process with SIGKILL mid-stream.
#[cfg(debug_assertions)]
async fn pause_mid_stream() {
    if std::env::var_os("KASTELLAN_SNAPSHOT_PAUSE_MID_STREAM").is_some() {
        tracing::warn!("paused in the middle of the snapshot stream for a crash test");
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

#[cfg(not(debug_assertions))]
async fn pause_mid_stream() {}

/// Checks the written file's structure with the snapshot reader (meta pages, page tree,
/// freelist, key order, etcd's layout). The sha256 trailer is not hashed again: it was
/// checked against the very bytes that were written, as they streamed in.
fn verify(path: &Path) -> Result<kastellan_snapshot::Status> {
    let verr = |source| Error::Verify {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let file = kastellan_snapshot::SnapshotFile::open(path).map_err(verr)?;
    let report = file
        .inspect(&kastellan_snapshot::Options {
            verify_trailer: false,
        })
        .map_err(verr)?;
    if !report.is_clean() {
        let faults: Vec<String> = report
            .faults
            .iter()
            .take(3)
            .map(|f| f.to_string())
            .collect();
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            faults: format!("{} finding(s): {}", report.fault_count, faults.join("; ")),
        });
    }
    report.status.ok_or_else(|| Error::Corrupt {
        path: path.to_path_buf(),
        faults: "no etcd key space in it".to_string(),
    })
}

/// A durable-file error as this crate's.
fn fs_error(e: kastellan_kubeadm::fs::Error) -> Error {
    match e {
        kastellan_kubeadm::fs::Error::Exists { path } => Error::Exists { path },
        kastellan_kubeadm::fs::Error::Busy { path } => Error::Busy { path },
        kastellan_kubeadm::fs::Error::Io { op, path, source } => Error::Write {
            action: op,
            path,
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn hasher_keeps_the_last_32_bytes_aside() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let digest = Sha256::digest(&data);
        let mut stream = data.clone();
        stream.extend_from_slice(&digest);
        for split in [1usize, 5, 31, 32, 33, 100, 999] {
            let mut h = TrailerHasher::default();
            for piece in stream.chunks(split) {
                h.update(piece);
            }
            let (computed, trailer) = h.finish();
            assert_eq!(computed, trailer, "chunks of {split}");
            assert_eq!(trailer, hex::encode(digest));
        }
    }

    #[test]
    fn part_is_next_to_the_file() {
        assert_eq!(part_path(Path::new("/b/s.db")), Path::new("/b/s.db.part"));
        assert_eq!(part_path(Path::new("s.db")), Path::new("s.db.part"));
    }
}

//! What etcd's `snapshot status` reports, computed the way etcd computes it.
//!
//! `etcdctl snapshot status` (3.4) and `etcdutl snapshot status` (3.5+) open the file
//! with bbolt, run `tx.Check()`, and then:
//!
//! - `hash`: CRC-32C (Castagnoli) over, for each top-level bucket in key order, the
//!   bucket's name followed by each of its keys and values in key order (a nested
//!   bucket contributes its name and an empty value);
//! - `revision`: the main revision of the last key of the `key` bucket (keys are
//!   8-byte big-endian main revision, `_`, 8-byte big-endian sub revision, and an
//!   optional tombstone mark);
//! - `totalKey`: the number of keys in all top-level buckets (not descending into
//!   nested buckets);
//! - `totalSize`: bbolt's `Tx.Size()`, the high-water mark times the page size (so
//!   neither the sha256 trailer nor preallocated space counts).

use serde::Serialize;

use crate::bbolt::check::{TreeCheck, Visitor, check_visiting};
use crate::bbolt::{Db, Entry, Tree};
use crate::fault::{Fault, FaultKind};

/// The name of etcd's bucket of revisions.
pub const KEY_BUCKET: &[u8] = b"key";
/// The name of etcd's bucket of cluster-wide settings.
pub const CLUSTER_BUCKET: &[u8] = b"cluster";
/// The name of etcd's bucket of backend metadata.
pub const META_BUCKET: &[u8] = b"meta";

/// The figures of `etcdutl snapshot status`, under the same JSON names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// CRC-32C of bucket names, keys and values.
    pub hash: u32,
    /// Highest main revision in the `key` bucket (0 if there is none).
    pub revision: i64,
    /// Keys in all top-level buckets.
    pub total_key: u64,
    /// High-water mark times page size, in bytes.
    pub total_size: u64,
}

/// Versions recorded in the database, when present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    /// `cluster/clusterVersion`: the cluster version when the snapshot was taken
    /// (written by etcd 3.4 and later, e.g. "3.5.0").
    pub cluster_version: Option<String>,
    /// `meta/storageVersion`: the storage schema version (written by etcd 3.6 and
    /// later; what `etcdutl snapshot status` 3.6 reports as `version`).
    pub storage_version: Option<String>,
}

/// Computes the `snapshot status` figures of a checked database. The CRC is spread
/// over the available cores (see [`crate::crc`]); the result is the same.
pub fn status<'a>(tree: &Tree<'_, 'a>) -> Result<Status, Fault> {
    let mut total_key = 0u64;
    let mut revision = 0i64;
    let hash = crate::crc::crc32c_of(tree.db().data().len(), |sink| {
        tree.for_each(tree.root(), &mut |name, entry| {
            let Entry::Bucket(bucket) = entry else {
                let key = String::from_utf8_lossy(name).into_owned();
                return Err(Fault::file(FaultKind::NotABucket { key }));
            };
            sink(name);
            let is_key_bucket = name == KEY_BUCKET;
            tree.for_each(bucket, &mut |key, value| {
                sink(key);
                // A nested bucket is hashed as its name and an empty value, as etcd's
                // `ForEach` hands it out with a nil value.
                if let Entry::Value(v) = value {
                    sink(v);
                }
                if is_key_bucket {
                    revision = main_revision(key)?;
                }
                total_key += 1;
                Ok(())
            })
        })
    })?;
    Ok(Status {
        hash,
        revision,
        total_key,
        total_size: tree.db().size(),
    })
}

/// Checks the tree and computes the figures in the same pass: the walk that checks
/// the pages hands the keys and values to the hashing threads as it goes, so the
/// (mostly value) bytes are hashed while the walk moves on. The figures are returned
/// only if the tree is sound; then they equal those of [`status`].
pub fn check_and_status<'d, 'a>(
    db: &'d Db<'a>,
) -> (TreeCheck<'d, 'a>, Option<Result<Status, Fault>>) {
    let mut checked = None;
    let mut figures = (0u64, 0i64, None);
    let hash = crate::crc::crc32c_of::<std::convert::Infallible>(db.data().len(), |sink| {
        let mut v = Figures {
            sink,
            in_key_bucket: false,
            total_key: 0,
            revision: 0,
            error: None,
        };
        checked = Some(check_visiting(db, &mut v));
        figures = (v.total_key, v.revision, v.error);
        Ok(())
    });
    // `crc32c_of` ran the closure (its error type has no values), so `checked` is set;
    // the fallback only keeps this free of `unwrap`.
    let checked = checked.unwrap_or_else(|| crate::bbolt::check(db));
    let status = match (checked.tree(), hash, figures) {
        (None, _, _) => None,
        (Some(_), _, (_, _, Some(fault))) => Some(Err(fault)),
        (Some(_), Ok(hash), (total_key, revision, None)) => Some(Ok(Status {
            hash,
            revision,
            total_key,
            total_size: db.size(),
        })),
        (Some(_), Err(never), _) => match never {},
    };
    (checked, status)
}

/// The visitor that computes the figures during the check walk.
struct Figures<'s, 'a> {
    sink: &'s mut dyn FnMut(&'a [u8]),
    in_key_bucket: bool,
    total_key: u64,
    revision: i64,
    /// The first departure from etcd's layout; etcd stops there, so do the figures.
    error: Option<Fault>,
}

impl<'a> Visitor<'a> for Figures<'_, 'a> {
    fn top(&mut self, name: &'a [u8], is_bucket: bool) {
        if self.error.is_some() {
            return;
        }
        if !is_bucket {
            let key = String::from_utf8_lossy(name).into_owned();
            self.error = Some(Fault::file(FaultKind::NotABucket { key }));
            return;
        }
        (self.sink)(name);
        self.in_key_bucket = name == KEY_BUCKET;
    }

    fn entry(&mut self, key: &'a [u8], value: Option<&'a [u8]>) {
        if self.error.is_some() {
            return;
        }
        (self.sink)(key);
        if let Some(v) = value {
            (self.sink)(v);
        }
        if self.in_key_bucket {
            match main_revision(key) {
                Ok(r) => self.revision = r,
                Err(fault) => self.error = Some(fault),
            }
        }
        self.total_key += 1;
    }
}

/// Reads the versions etcd records, if the buckets and keys are there.
pub fn versions(tree: &Tree<'_, '_>) -> Versions {
    let lookup = |bucket: &[u8], key: &[u8]| -> Option<String> {
        let Ok(Some(Entry::Bucket(b))) = tree.get(tree.root(), bucket) else {
            return None;
        };
        let Ok(Some(Entry::Value(v))) = tree.get(b, key) else {
            return None;
        };
        std::str::from_utf8(v).ok().map(str::to_owned)
    };
    Versions {
        cluster_version: lookup(CLUSTER_BUCKET, b"clusterVersion"),
        storage_version: lookup(META_BUCKET, b"storageVersion"),
    }
}

/// The main revision of a key of the `key` bucket: its first 8 bytes, big-endian, as
/// etcd's `bytesToRev` reads them (which needs at least 17 bytes).
pub fn main_revision(key: &[u8]) -> Result<i64, Fault> {
    match key.get(..8).filter(|_| key.len() >= 17) {
        Some(main) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(main);
            Ok(i64::from_be_bytes(b))
        }
        None => Err(Fault::file(FaultKind::BadRevisionKey {
            len: key.len() as u64,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_keys() {
        let mut k = Vec::new();
        k.extend_from_slice(&42u64.to_be_bytes());
        k.push(b'_');
        k.extend_from_slice(&3u64.to_be_bytes());
        assert_eq!(main_revision(&k).ok(), Some(42));
        k.push(b't'); // tombstone
        assert_eq!(main_revision(&k).ok(), Some(42));
        assert!(main_revision(&k[..16]).is_err());
    }
}

//! etcd's hash of the keyspace (`HashKV`, `etcdctl endpoint hashkv`), computed from a
//! snapshot: what a member restored from it must answer.
//!
//! etcd (3.4, 3.5: `mvcc.store.HashByRev`) computes, at revision `R` (0: the current
//! one), a CRC-32C (Castagnoli) of the name `key` followed by every key and value of the
//! `key` bucket, in key order, whose main revision is at most `R`, except revisions at
//! or below the compacted revision `C` that are not "kept at `R`": for each key, its
//! latest revision at or below `R`, unless that revision is the tombstone ending one of
//! the key's lives (the key index's `Keep(R)`). When nothing is kept, nothing is skipped
//! either (etcd's `len(keep) > 0` test).
//!
//! `C` is the compacted revision a member has once it has opened the backend: the
//! highest of `meta/finishedCompactRev` and `meta/scheduledCompactRev` (a member
//! finishes a scheduled compaction when it starts).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::bbolt::{Entry, Tree};
use crate::etcd::{KEY_BUCKET, META_BUCKET};
use crate::fault::Fault;
use crate::mvcc::{KeyValue, Revision};

/// What etcd's `HashKV` answers, as computed from a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HashKv {
    /// The CRC-32C.
    pub hash: u32,
    /// The revision hashed at.
    pub revision: i64,
    /// The compacted revision (`None`: never compacted).
    pub compact_revision: Option<i64>,
}

/// Why the hash could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashKvError {
    /// The snapshot has no `key` bucket.
    #[error("the snapshot has no `key` bucket (not an etcd v3 backend)")]
    NoKeyBucket,
    /// The page tree is damaged.
    #[error("reading the keyspace: {0}")]
    Fault(Fault),
    /// A revision key or its value cannot be parsed.
    #[error("malformed revision in the `key` bucket ({0} bytes)")]
    Malformed(usize),
    /// The revision is outside what the snapshot holds.
    #[error(
        "revision {requested} is not in the snapshot (compacted {compacted:?}, latest {latest})"
    )]
    OutOfRange {
        /// What was asked for.
        requested: i64,
        /// The compacted revision.
        compacted: Option<i64>,
        /// The latest revision.
        latest: i64,
    },
}

/// The main revision of a meta value holding a revision key (8 bytes big-endian first).
fn meta_revision(tree: &Tree<'_, '_>, name: &[u8]) -> Option<i64> {
    let Ok(Some(Entry::Bucket(meta))) = tree.get(tree.root(), META_BUCKET) else {
        return None;
    };
    let Ok(Some(Entry::Value(v))) = tree.get(meta, name) else {
        return None;
    };
    v.get(0..8)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes)
}

/// The compacted revision a member opening this backend has.
pub fn compacted_revision(tree: &Tree<'_, '_>) -> Option<i64> {
    let finished = meta_revision(tree, b"finishedCompactRev");
    let scheduled = meta_revision(tree, b"scheduledCompactRev");
    finished.max(scheduled)
}

/// etcd's `HashKV` at `at` (`None`: the latest revision), from a checked tree.
pub fn hash_kv(tree: &Tree<'_, '_>, at: Option<i64>) -> Result<HashKv, HashKvError> {
    let bucket = match tree
        .get(tree.root(), KEY_BUCKET)
        .map_err(HashKvError::Fault)?
    {
        Some(Entry::Bucket(b)) => b,
        _ => return Err(HashKvError::NoKeyBucket),
    };
    let compacted = compacted_revision(tree);
    let parse = |k: &[u8]| Revision::parse(k).ok_or(HashKvError::Malformed(k.len()));

    // Pass 1: the latest revision of all, and per key its latest revision at or below
    // the one hashed at (revisions come in order: the last one seen is the latest).
    let mut latest = 0i64;
    let mut newest: HashMap<Vec<u8>, Revision> = HashMap::new();
    let mut failed = None;
    tree.for_each(bucket, &mut |k, entry| {
        if failed.is_some() {
            return Ok(());
        }
        let (Ok(rev), Entry::Value(v)) = (parse(k), entry) else {
            failed = Some(HashKvError::Malformed(k.len()));
            return Ok(());
        };
        latest = latest.max(rev.main);
        if at.is_some_and(|at| rev.main > at) {
            return Ok(());
        }
        match <KeyValue as prost::Message>::decode(v) {
            Ok(kv) => {
                newest.insert(kv.key, rev);
            }
            Err(_) => failed = Some(HashKvError::Malformed(k.len())),
        }
        Ok(())
    })
    .map_err(HashKvError::Fault)?;
    if let Some(e) = failed {
        return Err(e);
    }
    // The member's current revision, as etcd's mvcc `restore` sets it: 1 for a store
    // nothing was ever written to, never below the compacted revision (a compaction
    // can remove the tombstone that was the latest revision).
    let latest = latest.max(1).max(compacted.unwrap_or(0));
    let revision = at.unwrap_or(latest);
    let compacted_away = at.is_some() && compacted.is_some_and(|c| revision <= c);
    if revision > latest || compacted_away {
        return Err(HashKvError::OutOfRange {
            requested: revision,
            compacted,
            latest,
        });
    }
    let keep: HashSet<(i64, i64)> = newest
        .into_values()
        .filter(|r| !r.tombstone)
        .map(|r| (r.main, r.sub))
        .collect();

    // Pass 2: the hash.
    let mut crc = crc32c::crc32c(KEY_BUCKET);
    tree.for_each(bucket, &mut |k, entry| {
        let (Ok(rev), Entry::Value(v)) = (parse(k), entry) else {
            return Ok(());
        };
        if rev.main > revision {
            return Ok(());
        }
        let below = compacted.is_some_and(|c| rev.main <= c);
        if below && !keep.is_empty() && !keep.contains(&(rev.main, rev.sub)) {
            return Ok(());
        }
        crc = crc32c::crc32c_append(crc, k);
        crc = crc32c::crc32c_append(crc, v);
        Ok(())
    })
    .map_err(HashKvError::Fault)?;
    Ok(HashKv {
        hash: crc,
        revision,
        compact_revision: compacted,
    })
}

/// Opens the snapshot given as bytes (trailer included), checks that its page tree can
/// be walked, and computes [`hash_kv`].
pub fn hash_kv_of_file(file: &[u8], at: Option<i64>) -> Result<HashKv, HashKvError> {
    crate::mvcc::with_tree(file, |tree| hash_kv(tree, at))
        .map_err(|(_, f)| HashKvError::Fault(f))?
}

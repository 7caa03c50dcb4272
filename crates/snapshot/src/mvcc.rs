//! etcd's multi-version keyspace as stored in the `key` bucket, and the latest live
//! view of it.
//!
//! Each key of the `key` bucket is a revision: the 8-byte big-endian main revision,
//! `_`, the 8-byte big-endian sub revision (17 bytes), followed by a `t` when the
//! revision deleted the key (a tombstone). Each value is an `mvccpb.KeyValue`
//! protobuf message. Revisions are stored in order, so the latest state of a key is the
//! last revision that mentions it, and a key whose last revision is a tombstone is
//! gone. Compaction removes older revisions (and tombstones) but always keeps the
//! latest revision of every live key, so the latest view is complete in any snapshot;
//! the view at an older revision is only complete from the compacted revision on.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bbolt::{Entry, Tree};
use crate::etcd::{KEY_BUCKET, META_BUCKET};
use crate::fault::Fault;

/// Length of a revision key without the tombstone mark.
pub const REVISION_LEN: usize = 17;

/// `mvccpb.KeyValue`, as etcd stores it for each revision (etcd's
/// `api/mvccpb/kv.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The revision that created the key (since its last deletion).
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    /// The revision that last modified the key.
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    /// How many times the key was written since it was created.
    #[prost(int64, tag = "4")]
    pub version: i64,
    /// The value.
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
    /// The lease the key is attached to, 0 for none.
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// A parsed revision key of the `key` bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Revision {
    /// The main revision (one per transaction).
    pub main: i64,
    /// The sub revision (one per change within the transaction).
    pub sub: i64,
    /// Whether the revision deleted the key.
    pub tombstone: bool,
}

impl Revision {
    /// Parses a key of the `key` bucket; `None` if it is not 17 bytes with `_` at 8, or
    /// 18 bytes ending in `t`.
    pub fn parse(bytes: &[u8]) -> Option<Revision> {
        let tombstone = match bytes.len() {
            REVISION_LEN => false,
            18 if bytes[REVISION_LEN] == b't' => true,
            _ => return None,
        };
        if bytes[8] != b'_' {
            return None;
        }
        let main = i64::from_be_bytes(bytes[0..8].try_into().ok()?);
        let sub = i64::from_be_bytes(bytes[9..17].try_into().ok()?);
        Some(Revision {
            main,
            sub,
            tombstone,
        })
    }
}

/// Which keys to keep in a [`View`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// Every key.
    All,
    /// Exactly this key.
    Key(Vec<u8>),
    /// Keys starting with this prefix.
    Prefix(Vec<u8>),
}

impl Select {
    /// Whether `key` is selected.
    pub fn matches(&self, key: &[u8]) -> bool {
        match self {
            Select::All => true,
            Select::Key(k) => key == k.as_slice(),
            Select::Prefix(p) => key.starts_with(p),
        }
    }
}

/// The live keys at one revision: for each key its latest [`KeyValue`] at or before
/// that revision, deleted keys left out.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// The revision the view is at.
    pub revision: i64,
    /// The highest main revision in the snapshot.
    pub latest_revision: i64,
    /// The revision the store was compacted to (`meta/finishedCompactRev`), if any.
    pub compact_revision: Option<i64>,
    /// Live keys, in key order.
    pub keys: BTreeMap<Vec<u8>, KeyValue>,
    /// Revisions read (all of them, also those not selected).
    pub revisions: u64,
    /// Revision keys or values that could not be parsed (skipped).
    pub malformed: u64,
}

/// Why a view could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// The snapshot has no `key` bucket.
    #[error("the snapshot has no `key` bucket (not an etcd v3 backend)")]
    NoKeyBucket,
    /// The bytes are not a bbolt database.
    #[error("not an etcd snapshot (bbolt database): {}", .0.kind)]
    NotBbolt(Fault),
    /// The page tree is damaged.
    #[error("reading the keyspace: {0}")]
    Fault(Fault),
    /// The requested revision was compacted away.
    #[error(
        "revision {requested} was compacted (the snapshot keeps revisions from {compacted} on)"
    )]
    Compacted {
        /// What was asked for.
        requested: i64,
        /// The compacted revision.
        compacted: i64,
    },
    /// The requested revision is beyond the snapshot's latest.
    #[error("revision {requested} is beyond the snapshot's latest revision {latest}")]
    Future {
        /// What was asked for.
        requested: i64,
        /// The latest revision.
        latest: i64,
    },
}

/// Opens the snapshot given as bytes (trailer included), checks that its page tree can
/// be walked, and builds the view; see [`view`].
pub fn view_of_file(file: &[u8], select: &Select, at: Option<i64>) -> Result<View, ViewError> {
    with_tree(file, |tree| view(tree, select, at)).map_err(|(opened, fault)| {
        if opened {
            ViewError::Fault(fault)
        } else {
            ViewError::NotBbolt(fault)
        }
    })?
}

/// Opens the snapshot given as bytes (trailer included), checks that its page tree can
/// be walked, and runs `f` on it. The error says whether the file opened as bbolt
/// (`true`: the tree is damaged) and the first fault.
pub(crate) fn with_tree<R>(
    file: &[u8],
    f: impl FnOnce(&Tree<'_, '_>) -> R,
) -> Result<R, (bool, Fault)> {
    let (data, _) = crate::trailer::split(file);
    let db = crate::bbolt::Db::open(data).map_err(|fault| (false, fault))?;
    let checked = crate::bbolt::check(&db);
    let Some(tree) = checked.tree() else {
        let fault = checked
            .faults
            .first()
            .cloned()
            .unwrap_or_else(|| Fault::file(crate::fault::FaultKind::TooDeep));
        return Err((true, fault));
    };
    Ok(f(&tree))
}

/// Builds the view at `at` (the latest revision when `None`) of the selected keys.
pub fn view(tree: &Tree<'_, '_>, select: &Select, at: Option<i64>) -> Result<View, ViewError> {
    let bucket = match tree
        .get(tree.root(), KEY_BUCKET)
        .map_err(ViewError::Fault)?
    {
        Some(Entry::Bucket(b)) => b,
        _ => return Err(ViewError::NoKeyBucket),
    };
    let compact_revision = compact_revision(tree);
    let mut v = View {
        compact_revision,
        ..View::default()
    };
    tree.for_each(bucket, &mut |rev_key, entry| {
        let Entry::Value(bytes) = entry else {
            v.malformed += 1;
            return Ok(());
        };
        let Some(rev) = Revision::parse(rev_key) else {
            v.malformed += 1;
            return Ok(());
        };
        v.revisions += 1;
        v.latest_revision = v.latest_revision.max(rev.main);
        if at.is_some_and(|at| rev.main > at) {
            return Ok(());
        }
        let kv = match <KeyValue as prost::Message>::decode(bytes) {
            Ok(kv) => kv,
            Err(_) => {
                v.malformed += 1;
                return Ok(());
            }
        };
        if !select.matches(&kv.key) {
            return Ok(());
        }
        if rev.tombstone {
            v.keys.remove(&kv.key);
        } else {
            v.keys.insert(kv.key.clone(), kv);
        }
        Ok(())
    })
    .map_err(ViewError::Fault)?;
    v.revision = v.latest_revision;
    if let Some(at) = at {
        if at > v.latest_revision {
            return Err(ViewError::Future {
                requested: at,
                latest: v.latest_revision,
            });
        }
        if let Some(compacted) = compact_revision
            && at < compacted
        {
            return Err(ViewError::Compacted {
                requested: at,
                compacted,
            });
        }
        v.revision = at;
    }
    Ok(v)
}

/// The live keys at the latest revision, counted, with an evenly spread sample of them:
/// what a member started on this snapshot must serve (see [`live_keys`]).
#[derive(Debug, Clone, Default)]
pub struct LiveKeys {
    /// The latest main revision.
    pub revision: i64,
    /// How many keys are live at it.
    pub count: u64,
    /// Up to the number asked for, spread evenly over the live keys in key order, each
    /// with its latest revision.
    pub sample: Vec<KeyValue>,
}

/// Counts the live keys at the latest revision and samples up to `sample` of them,
/// spread evenly in key order. Two passes over the `key` bucket; only the keys (not
/// their values) are held in memory, plus the sampled values.
pub fn live_keys(tree: &Tree<'_, '_>, sample: usize) -> Result<LiveKeys, ViewError> {
    let bucket = match tree
        .get(tree.root(), KEY_BUCKET)
        .map_err(ViewError::Fault)?
    {
        Some(Entry::Bucket(b)) => b,
        _ => return Err(ViewError::NoKeyBucket),
    };
    // Pass 1: per key, whether its latest revision is a tombstone.
    let mut alive: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
    let mut revision = 0i64;
    tree.for_each(bucket, &mut |rev_key, entry| {
        let (Some(rev), Entry::Value(bytes)) = (Revision::parse(rev_key), entry) else {
            return Ok(());
        };
        revision = revision.max(rev.main);
        if let Ok(kv) = <KeyValue as prost::Message>::decode(bytes) {
            alive.insert(kv.key, !rev.tombstone);
        }
        Ok(())
    })
    .map_err(ViewError::Fault)?;
    let live: Vec<Vec<u8>> = alive
        .into_iter()
        .filter_map(|(k, a)| a.then_some(k))
        .collect();
    let count = live.len() as u64;
    let n = sample.min(live.len());
    let wanted: std::collections::HashSet<&[u8]> = (0..n)
        .map(|i| live[i * live.len() / n].as_slice())
        .collect();
    // Pass 2: the sampled keys' latest values (the last revision seen wins).
    let mut found: BTreeMap<Vec<u8>, KeyValue> = BTreeMap::new();
    if !wanted.is_empty() {
        tree.for_each(bucket, &mut |rev_key, entry| {
            let (Some(rev), Entry::Value(bytes)) = (Revision::parse(rev_key), entry) else {
                return Ok(());
            };
            if rev.tombstone {
                return Ok(());
            }
            if let Ok(kv) = <KeyValue as prost::Message>::decode(bytes)
                && wanted.contains(kv.key.as_slice())
            {
                found.insert(kv.key.clone(), kv);
            }
            Ok(())
        })
        .map_err(ViewError::Fault)?;
    }
    Ok(LiveKeys {
        revision,
        count,
        sample: found.into_values().collect(),
    })
}

/// Opens the snapshot given as bytes (trailer included), checks that its page tree can
/// be walked, and runs [`live_keys`].
pub fn live_keys_of_file(file: &[u8], sample: usize) -> Result<LiveKeys, ViewError> {
    with_tree(file, |tree| live_keys(tree, sample)).map_err(|(opened, fault)| {
        if opened {
            ViewError::Fault(fault)
        } else {
            ViewError::NotBbolt(fault)
        }
    })?
}

/// `meta/finishedCompactRev`: a revision key whose main revision is the compacted one.
fn compact_revision(tree: &Tree<'_, '_>) -> Option<i64> {
    let Ok(Some(Entry::Bucket(meta))) = tree.get(tree.root(), META_BUCKET) else {
        return None;
    };
    let Ok(Some(Entry::Value(v))) = tree.get(meta, b"finishedCompactRev") else {
        return None;
    };
    v.get(0..8)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_parse() {
        let mut k = Vec::new();
        k.extend_from_slice(&5i64.to_be_bytes());
        k.push(b'_');
        k.extend_from_slice(&2i64.to_be_bytes());
        assert_eq!(
            Revision::parse(&k),
            Some(Revision {
                main: 5,
                sub: 2,
                tombstone: false
            })
        );
        k.push(b't');
        assert!(Revision::parse(&k).unwrap().tombstone);
        k.push(b't');
        assert_eq!(Revision::parse(&k), None);
        assert_eq!(Revision::parse(b"short"), None);
        let mut bad = [0u8; 17];
        bad[8] = b'-';
        assert_eq!(Revision::parse(&bad), None);
    }
}

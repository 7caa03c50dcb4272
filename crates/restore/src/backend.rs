//! The new backend: the old bbolt file copied key by key into a fresh one, with the
//! edits etcd's restore makes.
//!
//! `etcdutl snapshot restore` (3.5) copies the file, then opens it with bbolt and:
//!
//! 1. empties the `members` and `members_removed` buckets (`TrimMembershipFromBackend`);
//! 2. with `--bump-revision N --mark-compacted` (3.5.10+): puts an empty value under
//!    the revision `latest + N` (sub revision 0) in the `key` bucket, so that the store's
//!    revision starts there, and sets `meta/scheduledCompactRev` to it, so that etcd
//!    compacts up to it on start and watchers from before the restore are told their
//!    revision is compacted;
//! 3. creates the `members`, `members_removed` and `cluster` buckets if missing and puts
//!    each new member under its id in hex (`members/<id>` = the member's JSON);
//! 4. sets `meta/consistent_index` to the raft index of the restore (the number of
//!    members) and `meta/term` to 1, both 8 bytes big-endian.
//!
//! Everything else (keys with their create/mod revisions and versions, leases, auth,
//! alarms, the cluster version) is carried over unchanged. Here the same edits are
//! applied while the keys stream from the old file into the [`crate::bbolt`] writer.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};

use kastellan_snapshot::bbolt::{
    BRANCH_PAGE, BUCKET_LEAF, Bucket, Db, LEAF_PAGE, MAX_DEPTH, branch_element, leaf_element,
};
use serde::Serialize;

use crate::bbolt::{BucketBuilder, Elem, PageSink};
use crate::cluster::Membership;

/// etcd's bucket of revisions.
pub const KEY: &[u8] = b"key";
/// etcd's bucket of backend metadata.
pub const META: &[u8] = b"meta";
/// etcd's bucket of members.
pub const MEMBERS: &[u8] = b"members";
/// etcd's bucket of removed members.
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
/// etcd's bucket of cluster-wide settings.
pub const CLUSTER: &[u8] = b"cluster";
/// `meta/consistent_index`.
pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// `meta/term` (etcd 3.5+).
pub const TERM: &[u8] = b"term";
/// `meta/scheduledCompactRev`.
pub const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";

/// A revision as etcd orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Revision {
    /// The main revision (one per transaction).
    pub main: i64,
    /// The sub revision (one per change within the transaction).
    pub sub: i64,
}

impl Revision {
    /// The 17-byte key etcd uses: main, `_`, sub, big-endian.
    pub fn to_bytes(self) -> [u8; 17] {
        let mut b = [0u8; 17];
        b[..8].copy_from_slice(&self.main.to_be_bytes());
        b[8] = b'_';
        b[9..].copy_from_slice(&self.sub.to_be_bytes());
        b
    }

    /// Reads a key of the `key` bucket (at least 17 bytes; a tombstone adds a `t`).
    pub fn from_key(key: &[u8]) -> Option<Revision> {
        let main: [u8; 8] = key.get(..8)?.try_into().ok()?;
        let sub: [u8; 8] = key.get(9..17)?.try_into().ok()?;
        Some(Revision {
            main: i64::from_be_bytes(main),
            sub: i64::from_be_bytes(sub),
        })
    }
}

/// What happens to one top-level bucket.
#[derive(Debug, Clone)]
enum BucketEdit {
    /// Its content is replaced by these keys (sorted).
    Replace(Vec<(Vec<u8>, Vec<u8>)>),
    /// These keys are set; the others are copied.
    Set(BTreeMap<Vec<u8>, Vec<u8>>),
}

/// The edits of a restore, by top-level bucket. A bucket named here is created if the
/// old file lacks it.
#[derive(Debug, Clone)]
pub struct Edits {
    buckets: BTreeMap<Vec<u8>, BucketEdit>,
}

impl Edits {
    /// etcd's edits for `membership`, starting raft at `index`/`term`, with the
    /// revision bump marker at `bumped` if any.
    pub fn etcd(membership: &Membership, index: u64, term: u64, bumped: Option<Revision>) -> Edits {
        let mut members: Vec<(Vec<u8>, Vec<u8>)> = membership
            .members()
            .iter()
            .map(|m| (m.id.to_string().into_bytes(), m.to_json().into_bytes()))
            .collect();
        members.sort();
        let mut meta = BTreeMap::new();
        meta.insert(CONSISTENT_INDEX.to_vec(), index.to_be_bytes().to_vec());
        meta.insert(TERM.to_vec(), term.to_be_bytes().to_vec());
        let mut key = BTreeMap::new();
        if let Some(rev) = bumped {
            meta.insert(SCHEDULED_COMPACT.to_vec(), rev.to_bytes().to_vec());
            key.insert(rev.to_bytes().to_vec(), Vec::new());
        }
        let mut buckets = BTreeMap::new();
        buckets.insert(MEMBERS.to_vec(), BucketEdit::Replace(members));
        buckets.insert(MEMBERS_REMOVED.to_vec(), BucketEdit::Replace(Vec::new()));
        buckets.insert(CLUSTER.to_vec(), BucketEdit::Set(BTreeMap::new()));
        buckets.insert(META.to_vec(), BucketEdit::Set(meta));
        buckets.insert(KEY.to_vec(), BucketEdit::Set(key));
        Edits { buckets }
    }
}

/// Why the old file could not be copied.
#[derive(Debug)]
pub enum CopyError {
    /// Writing failed.
    Io(io::Error),
    /// The old file's tree is damaged where the copy went (the structural check runs
    /// before, so this is not expected).
    Corrupt(String),
}

impl From<io::Error> for CopyError {
    fn from(e: io::Error) -> Self {
        CopyError::Io(e)
    }
}

/// Figures of the copy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyStats {
    /// Keys in the `key` bucket of the new file (revisions, tombstones included).
    pub revisions: u64,
    /// Keys in all top-level buckets.
    pub total_keys: u64,
    /// Pages of the new file.
    pub pages: u64,
    /// Bytes of the new file.
    pub size: u64,
}

/// A raw leaf element of the old file.
type Raw<'a> = (u32, &'a [u8], &'a [u8]);

/// Calls `f` with every element of `bucket` in key order.
fn walk<'a>(
    db: &Db<'a>,
    bucket: Bucket<'a>,
    f: &mut dyn FnMut(Raw<'a>) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    match bucket {
        Bucket::Inline { page } => walk_leaf(page, f),
        Bucket::Paged { root } => walk_page(db, root, 0, f),
    }
}

fn walk_page<'a>(
    db: &Db<'a>,
    id: u64,
    depth: usize,
    f: &mut dyn FnMut(Raw<'a>) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    if depth > MAX_DEPTH {
        return Err(CopyError::Corrupt(format!("page {id}: tree too deep")));
    }
    let page = db
        .page(id)
        .map_err(|k| CopyError::Corrupt(format!("page {id}: {k}")))?;
    match page.header.flags {
        BRANCH_PAGE => {
            for i in 0..usize::from(page.header.count) {
                let (_, child) = branch_element(page.bytes, i).ok_or_else(|| {
                    CopyError::Corrupt(format!("page {id}: element {i} out of bounds"))
                })?;
                walk_page(db, child, depth + 1, f)?;
            }
            Ok(())
        }
        LEAF_PAGE => walk_leaf(page.bytes, f),
        flags => Err(CopyError::Corrupt(format!(
            "page {id}: type {flags:#x} where a branch or leaf belongs"
        ))),
    }
}

fn walk_leaf<'a>(
    bytes: &'a [u8],
    f: &mut dyn FnMut(Raw<'a>) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    let count = bytes
        .get(10..12)
        .map_or(0, |c| u16::from_le_bytes([c[0], c[1]]));
    for i in 0..usize::from(count) {
        let el = leaf_element(bytes, i)
            .ok_or_else(|| CopyError::Corrupt(format!("leaf element {i} out of bounds")))?;
        f((el.flags, el.key, el.value))?;
    }
    Ok(())
}

/// The bucket and sequence of a bucket value.
fn open_bucket(value: &[u8]) -> Result<(Bucket<'_>, u64), CopyError> {
    let bucket = Bucket::from_value(value)
        .ok_or_else(|| CopyError::Corrupt("bucket value too short".into()))?;
    let seq = value
        .get(8..16)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map_or(0, u64::from_le_bytes);
    Ok((bucket, seq))
}

/// A top-level bucket of the old file: name, bucket, sequence.
pub type TopLevel<'a> = (&'a [u8], Bucket<'a>, u64);

/// The top-level buckets of the old file.
pub fn top_level<'a>(db: &Db<'a>) -> Result<Vec<TopLevel<'a>>, CopyError> {
    let mut out = Vec::new();
    walk(
        db,
        Bucket::Paged {
            root: db.meta().root,
        },
        &mut |(flags, name, value)| {
            if flags & BUCKET_LEAF == 0 {
                return Err(CopyError::Corrupt(format!(
                    "the root bucket holds a plain value under {:?}",
                    String::from_utf8_lossy(name)
                )));
            }
            let (b, seq) = open_bucket(value)?;
            out.push((name, b, seq));
            Ok(())
        },
    )?;
    Ok(out)
}

/// The last key of `bucket` (the greatest), found along the rightmost path.
pub fn last_key<'a>(db: &Db<'a>, bucket: Bucket<'a>) -> Result<Option<&'a [u8]>, CopyError> {
    let mut page_bytes = match bucket {
        Bucket::Inline { page } => page,
        Bucket::Paged { root } => {
            db.page(root)
                .map_err(|k| CopyError::Corrupt(format!("page {root}: {k}")))?
                .bytes
        }
    };
    for _ in 0..=MAX_DEPTH {
        let flags = page_bytes
            .get(8..10)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
        let count = page_bytes
            .get(10..12)
            .map_or(0, |c| usize::from(u16::from_le_bytes([c[0], c[1]])));
        if count == 0 {
            return Ok(None);
        }
        match flags {
            BRANCH_PAGE => {
                let (_, child) = branch_element(page_bytes, count - 1)
                    .ok_or_else(|| CopyError::Corrupt("branch element out of bounds".into()))?;
                page_bytes = db
                    .page(child)
                    .map_err(|k| CopyError::Corrupt(format!("page {child}: {k}")))?
                    .bytes;
            }
            LEAF_PAGE => {
                let el = leaf_element(page_bytes, count - 1)
                    .ok_or_else(|| CopyError::Corrupt("leaf element out of bounds".into()))?;
                return Ok(Some(el.key));
            }
            flags => {
                return Err(CopyError::Corrupt(format!(
                    "page type {flags:#x} where a branch or leaf belongs"
                )));
            }
        }
    }
    Err(CopyError::Corrupt("tree too deep".into()))
}

/// Copies `db` into `out` (a new file with the same page size) with `edits`. `out`
/// gets every page but the two meta pages, which are returned for the caller to write
/// at offsets 0 and one page (see [`crate::bbolt::meta_page`]).
pub fn copy<W: Write>(
    db: &Db<'_>,
    edits: &Edits,
    out: W,
) -> Result<(W, [Vec<u8>; 2], CopyStats), CopyError> {
    let page_size = db.page_size() as usize;
    let mut sink = PageSink::new(out, page_size)?;
    let mut root = BucketBuilder::new(page_size);
    let mut stats = CopyStats::default();

    // The old top-level buckets merged with the ones the edits name.
    let old = top_level(db)?;
    let mut names: Vec<&[u8]> = old.iter().map(|(n, _, _)| *n).collect();
    for name in edits.buckets.keys() {
        if !names.contains(&name.as_slice()) {
            names.push(name);
        }
    }
    names.sort();

    for name in names {
        let src = old
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, b, s)| (*b, *s));
        let seq = src.map_or(0, |(_, s)| s);
        let mut b = BucketBuilder::new(page_size);
        match (edits.buckets.get(name), src) {
            (Some(BucketEdit::Replace(keys)), _) => {
                for (k, v) in keys {
                    b.push(&mut sink, owned(k, v))?;
                }
            }
            (Some(BucketEdit::Set(set)), Some((bucket, _))) => {
                copy_merged(db, bucket, set, &mut b, &mut sink)?;
            }
            (Some(BucketEdit::Set(set)), None) => {
                for (k, v) in set {
                    b.push(&mut sink, owned(k, v))?;
                }
            }
            (None, Some((bucket, _))) => {
                copy_merged(db, bucket, &BTreeMap::new(), &mut b, &mut sink)?;
            }
            (None, None) => unreachable!("every name comes from the file or the edits"),
        }
        if name == KEY {
            stats.revisions = b.keys();
        }
        stats.total_keys += b.keys();
        let value = b.finish(&mut sink, seq)?;
        root.push(
            &mut sink,
            Elem {
                flags: BUCKET_LEAF,
                key: Cow::Borrowed(name),
                value: Cow::Owned(value),
            },
        )?;
    }
    let root_id = root.finish_paged(&mut sink)?;
    let fields = crate::bbolt::MetaFields {
        page_size: db.page_size(),
        root: root_id,
        sequence: db.meta().sequence,
        high_water: sink.high_water(),
    };
    stats.pages = sink.high_water();
    stats.size = stats.pages * page_size as u64;
    let metas = [
        crate::bbolt::meta_page(0, fields),
        crate::bbolt::meta_page(1, fields),
    ];
    Ok((sink.into_inner(), metas, stats))
}

fn owned<'a>(k: &[u8], v: &[u8]) -> Elem<'a> {
    Elem {
        flags: 0,
        key: Cow::Owned(k.to_vec()),
        value: Cow::Owned(v.to_vec()),
    }
}

/// Copies the keys of `bucket` into `b`, with the keys of `set` put in their place.
/// Nested buckets are copied recursively.
fn copy_merged<'a, W: Write>(
    db: &Db<'a>,
    bucket: Bucket<'a>,
    set: &BTreeMap<Vec<u8>, Vec<u8>>,
    b: &mut BucketBuilder<'a>,
    sink: &mut PageSink<W>,
) -> Result<(), CopyError> {
    let mut pending = set.iter().peekable();
    walk(db, bucket, &mut |(flags, key, value)| {
        while let Some((k, v)) = pending.next_if(|(k, _)| k.as_slice() < key) {
            b.push(sink, owned(k, v))?;
        }
        if let Some((k, v)) = pending.next_if(|(k, _)| k.as_slice() == key) {
            b.push(sink, owned(k, v))?;
            return Ok(());
        }
        if flags & BUCKET_LEAF != 0 {
            let (nested, seq) = open_bucket(value)?;
            let mut nb = BucketBuilder::new(sink.page_size());
            copy_merged(db, nested, &BTreeMap::new(), &mut nb, sink)?;
            let value = nb.finish(sink, seq)?;
            b.push(
                sink,
                Elem {
                    flags,
                    key: Cow::Borrowed(key),
                    value: Cow::Owned(value),
                },
            )?;
        } else {
            b.push(
                sink,
                Elem {
                    flags,
                    key: Cow::Borrowed(key),
                    value: Cow::Borrowed(value),
                },
            )?;
        }
        Ok(())
    })?;
    for (k, v) in pending {
        b.push(sink, owned(k, v))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_keys() {
        let r = Revision { main: 42, sub: 3 };
        let b = r.to_bytes();
        assert_eq!(&b[..8], &42i64.to_be_bytes());
        assert_eq!(b[8], b'_');
        assert_eq!(Revision::from_key(&b), Some(r));
        let mut tomb = b.to_vec();
        tomb.push(b't');
        assert_eq!(Revision::from_key(&tomb), Some(r));
        assert_eq!(Revision::from_key(&b[..16]), None);
    }
}

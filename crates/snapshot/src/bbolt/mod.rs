//! A read-only reader for bbolt database files, the storage format of etcd's backend.
//!
//! The file is a sequence of pages of one size (taken from the meta page). Every page
//! starts with a 16-byte header (little-endian):
//!
//! | offset | size | field                                              |
//! |-------:|-----:|----------------------------------------------------|
//! |      0 |    8 | page id (its position in the file)                 |
//! |      8 |    2 | flags: branch 0x01, leaf 0x02, meta 0x04, free 0x10|
//! |     10 |    2 | element count                                      |
//! |     12 |    4 | overflow: further pages this page spans            |
//!
//! Pages 0 and 1 are the [meta pages](meta). Branch and leaf pages hold an array of
//! 16-byte elements after the header, each pointing (relative to the element itself)
//! at its key and, for leaves, value:
//!
//! - branch element: `pos u32, ksize u32, child page id u64`;
//! - leaf element: `flags u32, pos u32, ksize u32, vsize u32`; flag 0x01 marks a
//!   nested bucket, whose value is a 16-byte bucket header (`root u64, sequence u64`)
//!   followed, when `root` is 0, by the bucket's own leaf page inline.
//!
//! This module only interprets bytes; it never writes and never does I/O. Every read is
//! bounds-checked, so damaged or hostile input yields [`Fault`]s, never a panic.
//! Iteration is only offered on a [`Tree`], which [`check`] hands out when the page
//! tree passed its structural checks, so iteration always terminates.

pub mod check;
pub mod meta;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use self::check::{PageStats, TreeCheck, check};
pub use self::meta::{Meta, fnv64a};
use crate::fault::{Fault, FaultKind, MetaProblem, MetaSlot};

/// Size of a page header.
pub const PAGE_HEADER_SIZE: usize = 16;
/// Size of a branch or leaf element.
pub const ELEMENT_SIZE: usize = 16;
/// Size of the header of a nested bucket's value.
pub const BUCKET_HEADER_SIZE: usize = 16;
/// Page flag: branch page.
pub const BRANCH_PAGE: u16 = 0x01;
/// Page flag: leaf page.
pub const LEAF_PAGE: u16 = 0x02;
/// Page flag: meta page.
pub const META_PAGE: u16 = 0x04;
/// Page flag: freelist page.
pub const FREELIST_PAGE: u16 = 0x10;
/// Leaf element flag: the value is a nested bucket.
pub const BUCKET_LEAF: u32 = 0x01;
/// Deepest nesting of pages and buckets the reader follows.
pub const MAX_DEPTH: usize = 64;

/// Page sizes tried for meta page 1 when meta page 0 is unusable (bbolt falls back to
/// the OS page size in that case; these cover every common one).
const FALLBACK_PAGE_SIZES: [u32; 8] = [4096, 8192, 16384, 32768, 65536, 2048, 1024, 512];

pub(crate) fn read_u16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

pub(crate) fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(s))
}

pub(crate) fn read_u64(b: &[u8], off: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(off..off.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(s))
}

/// The verdict on one meta page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaInfo {
    /// Which meta page.
    pub slot: MetaSlot,
    /// The transaction id it carries, if it is valid.
    pub txid: Option<u64>,
    /// Why it is not valid, if it is not.
    pub problem: Option<MetaProblem>,
}

impl MetaInfo {
    /// Whether the page passed validation.
    pub fn is_valid(&self) -> bool {
        self.problem.is_none()
    }
}

/// A page header, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// The id written in the header.
    pub id: u64,
    /// The type flags.
    pub flags: u16,
    /// The number of elements.
    pub count: u16,
    /// How many further pages this page spans.
    pub overflow: u32,
}

impl PageHeader {
    /// Parses the 16-byte header at the start of `b`.
    pub fn parse(b: &[u8]) -> Option<PageHeader> {
        Some(PageHeader {
            id: read_u64(b, 0)?,
            flags: read_u16(b, 8)?,
            count: read_u16(b, 10)?,
            overflow: read_u32(b, 12)?,
        })
    }
}

/// A page, located in the file: its header and all the bytes it spans.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// The header.
    pub header: PageHeader,
    /// The page's bytes, header included, overflow pages included.
    pub bytes: &'a [u8],
    /// Byte offset of the page in the file.
    pub offset: u64,
}

/// A leaf element, resolved.
#[derive(Debug, Clone, Copy)]
pub struct LeafElement<'a> {
    /// The element flags ([`BUCKET_LEAF`] for nested buckets).
    pub flags: u32,
    /// The key.
    pub key: &'a [u8],
    /// The value (for a bucket: its header, and inline page if any).
    pub value: &'a [u8],
    /// Offset of the value within the page bytes.
    pub value_pos: usize,
}

/// Reads leaf element `i` of the page (or inline page) `bytes`.
pub fn leaf_element(bytes: &[u8], i: usize) -> Option<LeafElement<'_>> {
    let e = PAGE_HEADER_SIZE.checked_add(i.checked_mul(ELEMENT_SIZE)?)?;
    let flags = read_u32(bytes, e)?;
    let pos = read_u32(bytes, e + 4)? as usize;
    let ksize = read_u32(bytes, e + 8)? as usize;
    let vsize = read_u32(bytes, e + 12)? as usize;
    let k = e.checked_add(pos)?;
    let v = k.checked_add(ksize)?;
    let end = v.checked_add(vsize)?;
    Some(LeafElement {
        flags,
        key: bytes.get(k..v)?,
        value: bytes.get(v..end)?,
        value_pos: v,
    })
}

/// Reads branch element `i` of the page `bytes`: the key and the child page id.
pub fn branch_element(bytes: &[u8], i: usize) -> Option<(&[u8], u64)> {
    let e = PAGE_HEADER_SIZE.checked_add(i.checked_mul(ELEMENT_SIZE)?)?;
    let pos = read_u32(bytes, e)? as usize;
    let ksize = read_u32(bytes, e + 4)? as usize;
    let child = read_u64(bytes, e + 8)?;
    let k = e.checked_add(pos)?;
    Some((bytes.get(k..k.checked_add(ksize)?)?, child))
}

/// An opened bbolt database: the bytes, the page size, and the meta page in force.
#[derive(Debug, Clone)]
pub struct Db<'a> {
    data: &'a [u8],
    page_size: u32,
    metas: [MetaInfo; 2],
    active: MetaSlot,
    meta: Meta,
}

impl<'a> Db<'a> {
    /// Opens the database in `data` (the file without any trailer).
    ///
    /// Like bbolt, this takes the page size from meta page 0 when it is valid (and
    /// otherwise looks for a valid meta page 1 at the common page sizes), and uses the
    /// valid meta page with the higher transaction id. It fails only when neither meta
    /// page is valid; one invalid meta page is reported by [`Db::meta_faults`].
    pub fn open(data: &'a [u8]) -> Result<Db<'a>, Fault> {
        if data.len() < PAGE_HEADER_SIZE + meta::META_SIZE {
            return Err(Fault::file(FaultKind::TooSmall {
                len: data.len() as u64,
            }));
        }
        let meta0 = Meta::check(data);
        let page_size = page_size(data, &meta0);
        let meta1 = match data.get(page_size as usize..) {
            Some(p) => Meta::check(p).and_then(|m| {
                if m.page_size == page_size {
                    Ok(m)
                } else {
                    Err(MetaProblem::BadPageSize { found: m.page_size })
                }
            }),
            None => Err(MetaProblem::Missing),
        };
        let info = |slot, r: &Result<Meta, MetaProblem>| MetaInfo {
            slot,
            txid: r.as_ref().ok().map(|m| m.txid),
            problem: r.as_ref().err().cloned(),
        };
        let metas = [info(MetaSlot::Zero, &meta0), info(MetaSlot::One, &meta1)];
        let (active, meta) = match (meta0, meta1) {
            (Ok(a), Ok(b)) if b.txid > a.txid => (MetaSlot::One, b),
            (Ok(a), _) => (MetaSlot::Zero, a),
            (Err(_), Ok(b)) => (MetaSlot::One, b),
            (Err(p0), Err(p1)) => {
                return Err(Fault::file(FaultKind::NoValidMeta {
                    meta0: p0,
                    meta1: p1,
                }));
            }
        };
        Ok(Db {
            data,
            page_size,
            metas,
            active,
            meta,
        })
    }

    /// The raw bytes of the database.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The page size in bytes.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The meta page in force (the valid one with the higher transaction id).
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Which meta page is in force.
    pub fn active_meta(&self) -> MetaSlot {
        self.active
    }

    /// The verdict on both meta pages.
    pub fn metas(&self) -> &[MetaInfo; 2] {
        &self.metas
    }

    /// Faults for meta pages that are not valid (at most one: with none valid the
    /// database does not open).
    pub fn meta_faults(&self) -> Vec<Fault> {
        self.metas
            .iter()
            .filter_map(|m| {
                let problem = m.problem.clone()?;
                let page = m.slot.page();
                Some(Fault::at(
                    page,
                    page * u64::from(self.page_size),
                    FaultKind::InvalidMeta {
                        slot: m.slot,
                        problem,
                    },
                ))
            })
            .collect()
    }

    /// Whole pages present in the data.
    pub fn pages_in_file(&self) -> u64 {
        self.data.len() as u64 / u64::from(self.page_size)
    }

    /// The size etcd reports as `totalSize`: high-water mark times page size (bbolt's
    /// `Tx.Size`), which leaves out any trailer and any preallocated space.
    pub fn size(&self) -> u64 {
        self.meta
            .high_water
            .saturating_mul(u64::from(self.page_size))
    }

    /// Locates page `id` with all the pages it spans.
    pub fn page(&self, id: u64) -> Result<Page<'a>, FaultKind> {
        let beyond = FaultKind::BeyondEndOfFile {
            pages_in_file: self.pages_in_file(),
        };
        let ps = u64::from(self.page_size);
        let offset = id.checked_mul(ps).ok_or_else(|| beyond.clone())?;
        let start = usize::try_from(offset).map_err(|_| beyond.clone())?;
        let header = self
            .data
            .get(start..)
            .and_then(PageHeader::parse)
            .ok_or_else(|| beyond.clone())?;
        let span = (u64::from(header.overflow) + 1)
            .checked_mul(ps)
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| beyond.clone())?;
        let end = start.checked_add(span).ok_or_else(|| beyond.clone())?;
        let bytes = self.data.get(start..end).ok_or(beyond)?;
        crate::file::touched(bytes.len());
        Ok(Page {
            header,
            bytes,
            offset,
        })
    }
}

/// The page size, found as bbolt finds it: from meta page 0 if it is valid. Otherwise,
/// from meta page 0 if only its checksum or flags are damaged; else the first common
/// page size at which a valid meta page 1 says that very size; else the first at which
/// page 1 at least has the magic number; else 4096.
fn page_size(data: &[u8], meta0: &Result<Meta, MetaProblem>) -> u32 {
    if let Ok(m) = meta0 {
        return m.page_size;
    }
    if let Some(m) = Meta::parse(data)
        && m.magic == meta::MAGIC
        && meta::plausible_page_size(m.page_size)
    {
        return m.page_size;
    }
    let at = |ps: u32| data.get(ps as usize..).and_then(Meta::parse);
    let valid = |ps: u32| {
        data.get(ps as usize..)
            .and_then(|p| Meta::check(p).ok())
            .is_some_and(|m| m.page_size == ps)
    };
    FALLBACK_PAGE_SIZES
        .into_iter()
        .find(|&ps| valid(ps))
        .or_else(|| {
            FALLBACK_PAGE_SIZES
                .into_iter()
                .find(|&ps| at(ps).is_some_and(|m| m.magic == meta::MAGIC))
        })
        .unwrap_or(4096)
}

/// A bucket: either rooted at a page, or inline in its parent's leaf.
#[derive(Debug, Clone, Copy)]
pub enum Bucket<'a> {
    /// A bucket whose root is page `root`.
    Paged {
        /// The root page id.
        root: u64,
    },
    /// A small bucket stored inside its parent's value: the bytes of its leaf page.
    Inline {
        /// The inline page, header included.
        page: &'a [u8],
    },
}

impl<'a> Bucket<'a> {
    /// Parses a bucket value (header, then the inline page when `root` is 0).
    pub fn from_value(value: &'a [u8]) -> Option<Bucket<'a>> {
        let root = read_u64(value, 0)?;
        if root == 0 {
            Some(Bucket::Inline {
                page: value.get(BUCKET_HEADER_SIZE..)?,
            })
        } else {
            Some(Bucket::Paged { root })
        }
    }
}

/// What a key maps to.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// A plain value.
    Value(&'a [u8]),
    /// A nested bucket.
    Bucket(Bucket<'a>),
}

/// A database whose page tree passed the structural checks, so that it can be
/// iterated: every page is in bounds, referenced once, of the right type, and nested no
/// deeper than [`MAX_DEPTH`]. Obtained from [`TreeCheck::tree`].
#[derive(Debug, Clone, Copy)]
pub struct Tree<'d, 'a> {
    db: &'d Db<'a>,
}

impl<'d, 'a> Tree<'d, 'a> {
    /// The database.
    pub fn db(&self) -> &'d Db<'a> {
        self.db
    }

    /// The root bucket, whose keys are the top-level buckets.
    pub fn root(&self) -> Bucket<'a> {
        Bucket::Paged {
            root: self.db.meta.root,
        }
    }

    /// Calls `f` for every key of `bucket` in key order, like bbolt's `Bucket.ForEach`
    /// (nested buckets are reported, not descended into). Stops at the first error `f`
    /// returns.
    pub fn for_each<F>(&self, bucket: Bucket<'a>, f: &mut F) -> Result<(), Fault>
    where
        F: FnMut(&'a [u8], Entry<'a>) -> Result<(), Fault>,
    {
        match bucket {
            Bucket::Paged { root } => self.walk_page(root, 0, f),
            Bucket::Inline { page } => walk_leaf(page, 0, 0, f),
        }
    }

    /// Looks up `key` in `bucket`.
    pub fn get(&self, bucket: Bucket<'a>, key: &[u8]) -> Result<Option<Entry<'a>>, Fault> {
        let mut found = None;
        self.for_each(bucket, &mut |k, e| {
            if k == key {
                found = Some(e);
            }
            Ok(())
        })?;
        Ok(found)
    }

    fn walk_page<F>(&self, id: u64, depth: usize, f: &mut F) -> Result<(), Fault>
    where
        F: FnMut(&'a [u8], Entry<'a>) -> Result<(), Fault>,
    {
        let offset = id.saturating_mul(u64::from(self.db.page_size));
        if depth > MAX_DEPTH {
            return Err(Fault::at(id, offset, FaultKind::TooDeep));
        }
        let page = self.db.page(id).map_err(|k| Fault::at(id, offset, k))?;
        match page.header.flags {
            BRANCH_PAGE => {
                for i in 0..usize::from(page.header.count) {
                    let (_, child) = branch_element(page.bytes, i).ok_or_else(|| {
                        Fault::at(
                            id,
                            offset,
                            FaultKind::ElementOutOfBounds { index: i as u16 },
                        )
                    })?;
                    self.walk_page(child, depth + 1, f)?;
                }
                Ok(())
            }
            LEAF_PAGE => walk_leaf(page.bytes, id, offset, f),
            flags => Err(Fault::at(
                id,
                offset,
                FaultKind::BadPageType {
                    flags,
                    expected: "branch or leaf",
                },
            )),
        }
    }
}

fn walk_leaf<'a, F>(bytes: &'a [u8], id: u64, offset: u64, f: &mut F) -> Result<(), Fault>
where
    F: FnMut(&'a [u8], Entry<'a>) -> Result<(), Fault>,
{
    let count = read_u16(bytes, 10).unwrap_or(0);
    for i in 0..usize::from(count) {
        let bad = || {
            Fault::at(
                id,
                offset,
                FaultKind::ElementOutOfBounds { index: i as u16 },
            )
        };
        let el = leaf_element(bytes, i).ok_or_else(bad)?;
        let entry = if el.flags & BUCKET_LEAF != 0 {
            Entry::Bucket(Bucket::from_value(el.value).ok_or_else(bad)?)
        } else {
            Entry::Value(el.value)
        };
        f(el.key, entry)?;
    }
    Ok(())
}

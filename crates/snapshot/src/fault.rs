//! Findings about a damaged or unexpected file, as plain data.
//!
//! A [`Fault`] is what the checks report: where (page id and byte offset, when they are
//! known) and what ([`FaultKind`]). Faults are collected into an
//! [`Inspection`](crate::Inspection) rather than thrown, so that `verify` can list all of
//! them; the crate's [`Error`](crate::Error) wraps one with the file's path when an
//! operation cannot go on.

use std::fmt;

use serde::Serialize;

/// One finding: what is wrong, and where.
///
/// Serialised as `{"page", "offset", "check", "message", "kind", ...the kind's fields}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The page the finding is about, if it is about one page.
    pub page: Option<u64>,
    /// Byte offset in the file where the problem was seen, if known.
    pub offset: Option<u64>,
    /// What is wrong.
    pub kind: FaultKind,
}

impl Fault {
    /// A finding about no particular page.
    pub(crate) fn file(kind: FaultKind) -> Self {
        Fault {
            page: None,
            offset: None,
            kind,
        }
    }

    /// A finding about `page`, seen at byte `offset`.
    pub(crate) fn at(page: u64, offset: u64, kind: FaultKind) -> Self {
        Fault {
            page: Some(page),
            offset: Some(offset),
            kind,
        }
    }

    /// The check this finding belongs to.
    pub fn check(&self) -> Check {
        self.kind.check()
    }
}

impl Serialize for Fault {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Repr<'a> {
            page: Option<u64>,
            offset: Option<u64>,
            check: Check,
            message: String,
            #[serde(flatten)]
            kind: &'a FaultKind,
        }
        Repr {
            page: self.page,
            offset: self.offset,
            check: self.check(),
            message: self.kind.to_string(),
            kind: &self.kind,
        }
        .serialize(serializer)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.page, self.offset) {
            (Some(p), Some(o)) => write!(f, "page {p} (offset {o}): {}", self.kind),
            (Some(p), None) => write!(f, "page {p}: {}", self.kind),
            (None, Some(o)) => write!(f, "offset {o}: {}", self.kind),
            (None, None) => write!(f, "{}", self.kind),
        }
    }
}

/// Which of the two meta pages a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MetaSlot {
    /// Page 0.
    #[serde(rename = "meta0")]
    Zero,
    /// Page 1.
    #[serde(rename = "meta1")]
    One,
}

impl MetaSlot {
    /// The page id of this meta page (0 or 1).
    pub fn page(self) -> u64 {
        match self {
            MetaSlot::Zero => 0,
            MetaSlot::One => 1,
        }
    }
}

/// Why a meta page is not usable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum MetaProblem {
    /// The file ends before the meta page does.
    Missing,
    /// The magic number is not 0xED0CDAED.
    BadMagic {
        /// The value found.
        found: u32,
    },
    /// The format version is not 2.
    BadVersion {
        /// The value found.
        found: u32,
    },
    /// The stored FNV-64a checksum does not match the meta fields.
    BadChecksum {
        /// The checksum stored in the page (JSON: a hex string).
        #[serde(serialize_with = "hex64")]
        stored: u64,
        /// The checksum computed over the meta fields (JSON: a hex string).
        #[serde(serialize_with = "hex64")]
        computed: u64,
    },
    /// The page header does not carry the meta flag.
    NotMetaPage {
        /// The flags found.
        flags: u16,
    },
    /// The page size is not a power of two between 512 bytes and 16 MiB, or differs
    /// from the other meta page's.
    BadPageSize {
        /// The value found.
        found: u32,
    },
}

/// 64-bit checksums as `0x`-prefixed hex strings: JSON numbers lose precision above
/// 2^53 in many readers.
fn hex64<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#018x}"))
}

impl fmt::Display for MetaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaProblem::Missing => write!(f, "the file ends before it"),
            MetaProblem::BadMagic { found } => {
                write!(f, "magic is {found:#010x}, expected 0xed0cdaed")
            }
            MetaProblem::BadVersion { found } => write!(f, "format version is {found}, expected 2"),
            MetaProblem::BadChecksum { stored, computed } => {
                write!(
                    f,
                    "checksum {stored:#018x} stored, {computed:#018x} computed"
                )
            }
            MetaProblem::NotMetaPage { flags } => {
                write!(
                    f,
                    "page flags are {flags:#06x}, expected the meta flag 0x0004"
                )
            }
            MetaProblem::BadPageSize { found } => write!(f, "implausible page size {found}"),
        }
    }
}

/// The check a finding belongs to; `verify` reports one line per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// Both meta pages have the right magic, version and FNV-64a checksum.
    MetaPages,
    /// The file holds every page below the high-water mark, and no reference points at
    /// or beyond it.
    Bounds,
    /// Every page is referenced at most once, has the right type and well-formed
    /// elements; nested and inline buckets are well-formed.
    PageTree,
    /// The freelist is well-formed, and every page below the high-water mark is either
    /// reachable or free, never both.
    Freelist,
    /// Keys are in strictly ascending order within every bucket.
    KeyOrder,
    /// The sha256 trailer written by `etcdctl snapshot save` matches the content.
    Sha256Trailer,
    /// The content is what etcd expects (only buckets at the top level, revision keys).
    EtcdLayout,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 7] = [
        Check::MetaPages,
        Check::Bounds,
        Check::PageTree,
        Check::Freelist,
        Check::KeyOrder,
        Check::Sha256Trailer,
        Check::EtcdLayout,
    ];

    /// The stable name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::MetaPages => "meta-pages",
            Check::Bounds => "bounds",
            Check::PageTree => "page-tree",
            Check::Freelist => "freelist",
            Check::KeyOrder => "key-order",
            Check::Sha256Trailer => "sha256-trailer",
            Check::EtcdLayout => "etcd-layout",
        }
    }

    /// One line saying what the check establishes.
    pub fn description(self) -> &'static str {
        match self {
            Check::MetaPages => "both meta pages: magic, version 2, FNV-64a checksum",
            Check::Bounds => {
                "all pages below the high-water mark are in the file; no reference beyond it"
            }
            Check::PageTree => {
                "every page referenced once, right type, well-formed elements and buckets"
            }
            Check::Freelist => "freelist well-formed; every page reachable or free, never both",
            Check::KeyOrder => "keys strictly ascending in every bucket",
            Check::Sha256Trailer => "sha256 trailer of `etcdctl snapshot save` matches",
            Check::EtcdLayout => "only buckets at the top level; revision keys well-formed",
        }
    }
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum FaultKind {
    /// The file is too short to hold the two meta pages.
    TooSmall {
        /// Length of the file in bytes.
        len: u64,
    },
    /// Neither meta page is valid: this is not a bbolt database.
    NoValidMeta {
        /// Why page 0 is not usable.
        meta0: MetaProblem,
        /// Why page 1 is not usable.
        meta1: MetaProblem,
    },
    /// One meta page is not valid (the other one is used).
    InvalidMeta {
        /// Which meta page.
        slot: MetaSlot,
        /// Why it is not valid.
        problem: MetaProblem,
    },
    /// The file ends before the high-water mark of the active meta page.
    Truncated {
        /// Pages the meta page says the database has.
        high_water: u64,
        /// Whole pages present in the file (without trailer).
        pages_in_file: u64,
    },
    /// A reference points at or beyond the high-water mark.
    BeyondHighWater {
        /// The high-water mark.
        high_water: u64,
    },
    /// A page reaches past the end of the file.
    BeyondEndOfFile {
        /// Whole pages present in the file (without trailer).
        pages_in_file: u64,
    },
    /// The id in the page header is not the page's position.
    PageIdMismatch {
        /// The id written in the header.
        found: u64,
    },
    /// The page type is not the one expected here.
    BadPageType {
        /// The flags found.
        flags: u16,
        /// What was expected ("branch or leaf", "freelist", "leaf (inline bucket)").
        expected: &'static str,
    },
    /// A branch page has no elements.
    EmptyBranch,
    /// A page's element array or an element's key/value reaches past the page.
    ElementOutOfBounds {
        /// The element's index.
        index: u16,
    },
    /// A bucket value is shorter than the 16-byte bucket header.
    BadBucketValue {
        /// The element's index.
        index: u16,
        /// The value's length.
        len: u64,
    },
    /// The page (or inline bucket) is referenced more than once.
    MultipleReferences,
    /// The page is both reachable and in the freelist.
    ReachableFreed,
    /// The page is listed in the freelist more than once.
    DoubleFree,
    /// The freelist claims more ids than its pages hold.
    BadFreelist {
        /// The count it claims.
        count: u64,
    },
    /// The freelist lists a meta page or a page at or beyond the high-water mark.
    BadFreeId {
        /// The id listed.
        id: u64,
    },
    /// The page is neither reachable nor free.
    UnreachableUnfreed,
    /// Keys are not in strictly ascending order.
    KeyOrder {
        /// Index of the first out-of-order element in its page.
        index: u16,
    },
    /// Buckets are nested deeper than the reader follows (64 levels).
    TooDeep,
    /// Bytes at the end that are neither whole pages nor a sha256 trailer.
    StrayBytes {
        /// How many follow the last whole 512-byte unit.
        bytes: u64,
    },
    /// The sha256 trailer does not match the content before it.
    TrailerMismatch {
        /// The hex digest stored in the trailer.
        stored: String,
        /// The hex digest of the content.
        computed: String,
    },
    /// The top level holds a plain key where etcd expects only buckets.
    NotABucket {
        /// The key, lossily decoded.
        key: String,
    },
    /// A key in etcd's `key` bucket is too short to be a revision (8 + 1 + 8 bytes).
    BadRevisionKey {
        /// The key's length.
        len: u64,
    },
}

impl FaultKind {
    /// The check this kind of finding belongs to.
    pub fn check(&self) -> Check {
        match self {
            FaultKind::TooSmall { .. }
            | FaultKind::NoValidMeta { .. }
            | FaultKind::InvalidMeta { .. } => Check::MetaPages,
            FaultKind::Truncated { .. }
            | FaultKind::BeyondHighWater { .. }
            | FaultKind::BeyondEndOfFile { .. } => Check::Bounds,
            FaultKind::PageIdMismatch { .. }
            | FaultKind::BadPageType { .. }
            | FaultKind::EmptyBranch
            | FaultKind::ElementOutOfBounds { .. }
            | FaultKind::BadBucketValue { .. }
            | FaultKind::MultipleReferences
            | FaultKind::TooDeep => Check::PageTree,
            FaultKind::ReachableFreed
            | FaultKind::DoubleFree
            | FaultKind::BadFreeId { .. }
            | FaultKind::BadFreelist { .. }
            | FaultKind::UnreachableUnfreed => Check::Freelist,
            FaultKind::KeyOrder { .. } => Check::KeyOrder,
            FaultKind::TrailerMismatch { .. } | FaultKind::StrayBytes { .. } => {
                Check::Sha256Trailer
            }
            FaultKind::NotABucket { .. } | FaultKind::BadRevisionKey { .. } => Check::EtcdLayout,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::TooSmall { len } => {
                write!(
                    f,
                    "the file is {len} bytes, too short for the two bbolt meta pages"
                )
            }
            FaultKind::NoValidMeta { meta0, meta1 } => {
                write!(
                    f,
                    "no valid bbolt meta page (page 0: {meta0}; page 1: {meta1})"
                )
            }
            FaultKind::InvalidMeta { slot, problem } => {
                write!(f, "meta page {} is invalid: {problem}", slot.page())
            }
            FaultKind::Truncated {
                high_water,
                pages_in_file,
            } => write!(
                f,
                "the file is truncated: the meta page counts {high_water} pages, the file holds {pages_in_file}"
            ),
            FaultKind::BeyondHighWater { high_water } => {
                write!(
                    f,
                    "referenced, but at or beyond the high-water mark {high_water}"
                )
            }
            FaultKind::BeyondEndOfFile { pages_in_file } => {
                write!(
                    f,
                    "reaches past the end of the file ({pages_in_file} pages)"
                )
            }
            FaultKind::PageIdMismatch { found } => {
                write!(f, "the page header says it is page {found}")
            }
            FaultKind::BadPageType { flags, expected } => {
                write!(f, "page flags {flags:#06x}, expected a {expected} page")
            }
            FaultKind::EmptyBranch => write!(f, "branch page without elements"),
            FaultKind::ElementOutOfBounds { index } => {
                write!(f, "element {index} reaches past the end of its page")
            }
            FaultKind::BadBucketValue { index, len } => {
                write!(
                    f,
                    "element {index} is a bucket but its value is {len} bytes (< 16)"
                )
            }
            FaultKind::MultipleReferences => write!(f, "referenced more than once"),
            FaultKind::ReachableFreed => write!(f, "reachable, but listed as free"),
            FaultKind::DoubleFree => write!(f, "listed as free more than once"),
            FaultKind::BadFreeId { id } => {
                write!(f, "the freelist lists page {id}, which cannot be free")
            }
            FaultKind::UnreachableUnfreed => write!(f, "neither reachable nor free"),
            FaultKind::BadFreelist { count } => {
                write!(
                    f,
                    "the freelist claims {count} ids, more than its pages hold"
                )
            }
            FaultKind::KeyOrder { index } => write!(f, "key of element {index} is out of order"),
            FaultKind::TooDeep => write!(f, "buckets nested deeper than 64 levels"),
            FaultKind::StrayBytes { bytes } => write!(
                f,
                "{bytes} stray bytes at the end: neither a raw member/snap/db copy (whole pages) nor a saved snapshot (pages and a 32-byte sha256 trailer); an interrupted copy?"
            ),
            FaultKind::TrailerMismatch { stored, computed } => write!(
                f,
                "sha256 trailer mismatch: stored {stored}, content hashes to {computed}"
            ),
            FaultKind::NotABucket { key } => write!(f, "top-level key {key:?} is not a bucket"),
            FaultKind::BadRevisionKey { len } => {
                write!(
                    f,
                    "a key of the `key` bucket is {len} bytes, too short for a revision"
                )
            }
        }
    }
}

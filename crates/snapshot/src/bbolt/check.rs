//! The structural checks of `bbolt check`, and a few more.
//!
//! Starting from the meta page in force, every page of the root bucket's tree (and of
//! every nested bucket's tree) and the freelist is visited once. The checks:
//!
//! - the file holds every page below the high-water mark, and nothing references a
//!   page at or beyond it;
//! - every page is referenced at most once, has the type expected where it is
//!   referenced and the id of its position, and its elements lie within the page;
//! - keys ascend strictly within each bucket;
//! - the freelist lists no page twice, no meta page, nothing beyond the high-water
//!   mark, and no reachable page; when the freelist is stored, every page below the
//!   high-water mark is reachable or free. (etcd runs bbolt with `NoFreelistSync`, so
//!   its files usually carry no freelist: then the pages not reached are the free ones,
//!   as bbolt itself computes on open.)
//!
//! The walk keeps one state byte per page and visits each page and each inline bucket
//! at most once, so its cost is linear in the file size whatever the input.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::{
    BRANCH_PAGE, BUCKET_HEADER_SIZE, BUCKET_LEAF, Db, ELEMENT_SIZE, FREELIST_PAGE, LEAF_PAGE,
    MAX_DEPTH, PAGE_HEADER_SIZE, PageHeader, Tree, branch_element, leaf_element, read_u64,
};
use crate::fault::{Check, Fault, FaultKind};

/// Findings kept in full; beyond this only the count grows.
pub const MAX_KEPT_FAULTS: usize = 1000;

const REACHED: u8 = 1;
const FREE: u8 = 2;

/// Page counts gathered by the check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageStats {
    /// The page size in bytes.
    pub page_size: u32,
    /// The high-water mark: pages in use according to the meta page.
    pub high_water: u64,
    /// Whole pages present in the file (trailer excluded).
    pub in_file: u64,
    /// Meta pages (always 2).
    pub meta: u64,
    /// Branch pages reached.
    pub branch: u64,
    /// Leaf pages reached.
    pub leaf: u64,
    /// Overflow pages reached (continuations of large branch or leaf pages).
    pub overflow: u64,
    /// Pages holding the freelist (0 when it is not stored).
    pub freelist: u64,
    /// Free pages: listed in the freelist, or, when none is stored, not reached.
    pub free: u64,
    /// Whether the freelist is stored in the file.
    pub freelist_stored: bool,
    /// Buckets, the root bucket not counted.
    pub buckets: u64,
    /// Of these, buckets stored inline in their parent's leaf.
    pub inline_buckets: u64,
    /// Keys in all buckets at all depths (nested bucket names included).
    pub keys: u64,
    /// Deepest page or bucket nesting met.
    pub max_depth: u64,
}

/// The outcome of [`check`].
#[derive(Debug, Clone)]
pub struct TreeCheck<'d, 'a> {
    db: &'d Db<'a>,
    /// The first [`MAX_KEPT_FAULTS`] findings, in the order found.
    pub faults: Vec<Fault>,
    /// How many findings there were in all.
    pub fault_count: u64,
    /// How many findings each check made.
    pub per_check: BTreeMap<Check, u64>,
    /// Page counts.
    pub stats: PageStats,
    tree_sound: bool,
}

impl<'d, 'a> TreeCheck<'d, 'a> {
    /// The page tree, if it is sound enough to iterate (no fault in bounds or page
    /// structure; key order and freelist findings do not keep it from iteration).
    pub fn tree(&self) -> Option<Tree<'d, 'a>> {
        self.tree_sound.then_some(Tree { db: self.db })
    }
}

/// Sees the keys of the root bucket and of the top-level buckets, in key order, while
/// [`check_visiting`] walks the tree, so that etcd's figures can be computed in the
/// same pass. What it is shown counts only if the tree turns out sound
/// ([`TreeCheck::tree`]).
pub trait Visitor<'a> {
    /// A key of the root bucket (etcd's bucket names); `is_bucket` is false for a
    /// plain value.
    fn top(&mut self, name: &'a [u8], is_bucket: bool);
    /// A key of the top-level bucket last announced by [`Visitor::top`]; `value` is
    /// `None` for a nested bucket.
    fn entry(&mut self, key: &'a [u8], value: Option<&'a [u8]>);
}

/// The visitor that looks away.
impl<'a> Visitor<'a> for () {
    fn top(&mut self, _: &'a [u8], _: bool) {}
    fn entry(&mut self, _: &'a [u8], _: Option<&'a [u8]>) {}
}

/// Where the walk is: how deep in pages and buckets (for the depth limit), and in
/// which level of buckets (0: the root bucket, 1: etcd's buckets, 2+: nested ones).
#[derive(Debug, Clone, Copy)]
struct Nesting {
    depth: usize,
    level: usize,
}

impl Nesting {
    /// One page further down in the same bucket.
    fn deeper(self) -> Nesting {
        Nesting {
            depth: self.depth + 1,
            ..self
        }
    }
    /// Into a nested bucket.
    fn nested(self) -> Nesting {
        Nesting {
            depth: self.depth + 1,
            level: self.level + 1,
        }
    }
}

/// Runs the structural checks on `db` (meta pages are judged when it is opened; see
/// [`Db::meta_faults`]).
pub fn check<'d, 'a>(db: &'d Db<'a>) -> TreeCheck<'d, 'a> {
    check_visiting(db, &mut ())
}

/// [`check`], showing `visitor` the keys of the root and top-level buckets on the way.
pub fn check_visiting<'d, 'a>(db: &'d Db<'a>, visitor: &mut dyn Visitor<'a>) -> TreeCheck<'d, 'a> {
    let meta = *db.meta();
    let in_file = db.pages_in_file();
    let tracked = meta.high_water.min(in_file);
    let mut c = Checker {
        db,
        visitor,
        ps: u64::from(db.page_size()),
        high_water: meta.high_water,
        // `tracked` is at most the number of pages in the file, which is in memory.
        state: vec![0; tracked as usize],
        inline_seen: HashSet::new(),
        faults: Vec::new(),
        fault_count: 0,
        per_check: BTreeMap::new(),
        tree_sound: true,
        stats: PageStats {
            page_size: db.page_size(),
            high_water: meta.high_water,
            in_file,
            meta: 2,
            freelist_stored: meta.has_freelist(),
            ..PageStats::default()
        },
    };
    if meta.high_water > in_file {
        c.fault(Fault {
            page: None,
            offset: Some(db.data().len() as u64),
            kind: FaultKind::Truncated {
                high_water: meta.high_water,
                pages_in_file: in_file,
            },
        });
    }
    for id in 0..2u64.min(tracked) {
        c.state[id as usize] |= REACHED;
    }
    if meta.has_freelist() {
        c.freelist(meta.freelist);
    }
    let mut last_key = None;
    c.tree_page(meta.root, Nesting { depth: 0, level: 0 }, &mut last_key);
    let freelist_stored = meta.has_freelist();
    for id in 0..tracked {
        if c.state[id as usize] == 0 {
            if freelist_stored {
                c.fault(Fault::at(id, id * c.ps, FaultKind::UnreachableUnfreed));
            } else {
                c.stats.free += 1;
            }
        }
    }
    TreeCheck {
        db,
        faults: c.faults,
        fault_count: c.fault_count,
        per_check: c.per_check,
        stats: c.stats,
        tree_sound: c.tree_sound,
    }
}

struct Checker<'d, 'a, 'v> {
    db: &'d Db<'a>,
    visitor: &'v mut dyn Visitor<'a>,
    ps: u64,
    high_water: u64,
    state: Vec<u8>,
    inline_seen: HashSet<u64>,
    faults: Vec<Fault>,
    fault_count: u64,
    per_check: BTreeMap<Check, u64>,
    tree_sound: bool,
    stats: PageStats,
}

impl<'a> Checker<'_, 'a, '_> {
    fn fault(&mut self, fault: Fault) {
        self.fault_count += 1;
        *self.per_check.entry(fault.check()).or_default() += 1;
        if self.faults.len() < MAX_KEPT_FAULTS {
            self.faults.push(fault);
        }
    }

    /// A fault in the page tree: recorded, and iteration is no longer safe unless it
    /// is only about key order or the freelist.
    fn tree_fault(&mut self, fault: Fault) {
        if !matches!(fault.check(), Check::KeyOrder | Check::Freelist) {
            self.tree_sound = false;
        }
        self.fault(fault);
    }

    /// Marks the pages `id ..= id + overflow` as reached. Returns false if page `id`
    /// was reached before (then the caller must not descend into it again). Stops at
    /// the first page of the span reached before, so that the total work stays linear
    /// in the number of pages whatever the overflow counts claim.
    fn mark(&mut self, id: u64, overflow: u32) -> bool {
        let last = id.saturating_add(u64::from(overflow));
        for pid in id..=last {
            let hw = self.high_water;
            let at = pid.saturating_mul(self.ps);
            let Some(st) = self.state.get_mut(pid as usize).filter(|_| pid < hw) else {
                self.tree_fault(Fault::at(
                    pid,
                    at,
                    FaultKind::BeyondHighWater { high_water: hw },
                ));
                return true;
            };
            let before = *st;
            *st |= REACHED;
            if before & FREE != 0 {
                self.fault(Fault::at(pid, at, FaultKind::ReachableFreed));
            }
            if before & REACHED != 0 {
                self.tree_fault(Fault::at(pid, at, FaultKind::MultipleReferences));
                return pid != id;
            }
        }
        true
    }

    fn freelist(&mut self, id: u64) {
        let offset = id.saturating_mul(self.ps);
        if id < 2 || id >= self.high_water {
            let hw = self.high_water;
            self.fault(Fault::at(
                id,
                offset,
                FaultKind::BeyondHighWater { high_water: hw },
            ));
            return;
        }
        let page = match self.db.page(id) {
            Ok(p) => p,
            Err(kind) => return self.fault(Fault::at(id, offset, kind)),
        };
        if page.header.flags != FREELIST_PAGE {
            let flags = page.header.flags;
            return self.fault(Fault::at(
                id,
                offset,
                FaultKind::BadPageType {
                    flags,
                    expected: "freelist",
                },
            ));
        }
        if page.header.id != id {
            let found = page.header.id;
            self.fault(Fault::at(id, offset, FaultKind::PageIdMismatch { found }));
        }
        // The freelist pages are reachable; a clash here is a freelist problem.
        for pid in id..=id.saturating_add(u64::from(page.header.overflow)) {
            match self
                .state
                .get_mut(pid as usize)
                .filter(|_| pid < self.high_water)
            {
                Some(st) => *st |= REACHED,
                None => {
                    let hw = self.high_water;
                    self.fault(Fault::at(
                        pid,
                        pid.saturating_mul(self.ps),
                        FaultKind::BeyondHighWater { high_water: hw },
                    ));
                    break;
                }
            }
            self.stats.freelist += 1;
        }
        let (count, start) = match page.header.count {
            0xFFFF => (
                read_u64(page.bytes, PAGE_HEADER_SIZE).unwrap_or(u64::MAX),
                PAGE_HEADER_SIZE + 8,
            ),
            n => (u64::from(n), PAGE_HEADER_SIZE),
        };
        let room = (page.bytes.len().saturating_sub(start) / 8) as u64;
        if count > room {
            return self.fault(Fault::at(id, offset, FaultKind::BadFreelist { count }));
        }
        for i in 0..count as usize {
            let Some(free) = read_u64(page.bytes, start + i * 8) else {
                break;
            };
            let at = offset + (start + i * 8) as u64;
            if (self.state.len() as u64..self.high_water).contains(&free) {
                continue; // in a truncated file: the truncation is reported already
            }
            match self
                .state
                .get_mut(free as usize)
                .filter(|_| free >= 2 && free < self.high_water)
            {
                None => self.fault(Fault::at(id, at, FaultKind::BadFreeId { id: free })),
                Some(st) if *st & FREE != 0 => {
                    self.fault(Fault::at(free, free * self.ps, FaultKind::DoubleFree));
                }
                Some(st) => {
                    let reached = *st & REACHED != 0;
                    *st |= FREE;
                    self.stats.free += 1;
                    if reached {
                        self.fault(Fault::at(free, free * self.ps, FaultKind::ReachableFreed));
                    }
                }
            }
        }
    }

    /// Checks the page `id` of a bucket's tree and everything below it. `last_key` is
    /// the previous key met in this bucket, for the order check.
    fn tree_page(&mut self, id: u64, at: Nesting, last_key: &mut Option<&'a [u8]>) {
        let offset = id.saturating_mul(self.ps);
        if at.depth > MAX_DEPTH {
            return self.tree_fault(Fault::at(id, offset, FaultKind::TooDeep));
        }
        self.stats.max_depth = self.stats.max_depth.max(at.depth as u64);
        if id >= self.high_water {
            let hw = self.high_water;
            return self.tree_fault(Fault::at(
                id,
                offset,
                FaultKind::BeyondHighWater { high_water: hw },
            ));
        }
        let page = match self.db.page(id) {
            Ok(p) => p,
            Err(kind) => return self.tree_fault(Fault::at(id, offset, kind)),
        };
        if !self.mark(id, page.header.overflow) {
            return;
        }
        if page.header.id != id {
            let found = page.header.id;
            return self.tree_fault(Fault::at(id, offset, FaultKind::PageIdMismatch { found }));
        }
        self.stats.overflow += u64::from(page.header.overflow);
        match page.header.flags {
            BRANCH_PAGE => {
                self.stats.branch += 1;
                self.branch(page.bytes, page.header, id, offset, at, last_key);
            }
            LEAF_PAGE => {
                self.stats.leaf += 1;
                self.leaf(page.bytes, page.header.count, id, offset, at, last_key);
            }
            flags => self.tree_fault(Fault::at(
                id,
                offset,
                FaultKind::BadPageType {
                    flags,
                    expected: "branch or leaf",
                },
            )),
        }
    }

    fn branch(
        &mut self,
        bytes: &'a [u8],
        header: PageHeader,
        id: u64,
        offset: u64,
        at: Nesting,
        last_key: &mut Option<&'a [u8]>,
    ) {
        if header.count == 0 {
            return self.tree_fault(Fault::at(id, offset, FaultKind::EmptyBranch));
        }
        let mut prev: Option<&[u8]> = None;
        for i in 0..header.count {
            let Some((key, child)) = branch_element(bytes, usize::from(i)) else {
                let pos = offset + element_offset(i);
                return self.tree_fault(Fault::at(
                    id,
                    pos,
                    FaultKind::ElementOutOfBounds { index: i },
                ));
            };
            if prev.is_some_and(|p| p >= key) {
                let pos = offset + element_offset(i);
                self.fault(Fault::at(id, pos, FaultKind::KeyOrder { index: i }));
            }
            prev = Some(key);
            self.tree_page(child, at.deeper(), last_key);
        }
    }

    /// Checks a leaf page or an inline bucket page (`bytes` starts at its header and
    /// lies at byte `offset` of the file).
    fn leaf(
        &mut self,
        bytes: &'a [u8],
        count: u16,
        id: u64,
        offset: u64,
        at: Nesting,
        last_key: &mut Option<&'a [u8]>,
    ) {
        for i in 0..count {
            let Some(el) = leaf_element(bytes, usize::from(i)) else {
                let pos = offset + element_offset(i);
                return self.tree_fault(Fault::at(
                    id,
                    pos,
                    FaultKind::ElementOutOfBounds { index: i },
                ));
            };
            self.stats.keys += 1;
            if last_key.is_some_and(|p| p >= el.key) {
                let pos = offset + element_offset(i);
                self.fault(Fault::at(id, pos, FaultKind::KeyOrder { index: i }));
            }
            *last_key = Some(el.key);
            let is_bucket = el.flags & BUCKET_LEAF != 0;
            match at.level {
                0 => self.visitor.top(el.key, is_bucket),
                1 => self.visitor.entry(el.key, (!is_bucket).then_some(el.value)),
                _ => {}
            }
            if !is_bucket {
                continue;
            }
            let value_at = offset + el.value_pos as u64;
            let Some(root) = read_u64(el.value, 0) else {
                let len = el.value.len() as u64;
                return self.tree_fault(Fault::at(
                    id,
                    value_at,
                    FaultKind::BadBucketValue { index: i, len },
                ));
            };
            self.stats.buckets += 1;
            let mut nested_last = None;
            if root != 0 {
                self.tree_page(root, at.nested(), &mut nested_last);
                continue;
            }
            // An inline bucket: its leaf page follows the bucket header in the value.
            self.stats.inline_buckets += 1;
            let page_at = value_at + BUCKET_HEADER_SIZE as u64;
            if at.depth + 1 > MAX_DEPTH {
                return self.tree_fault(Fault::at(id, page_at, FaultKind::TooDeep));
            }
            if !self.inline_seen.insert(page_at) {
                return self.tree_fault(Fault::at(id, page_at, FaultKind::MultipleReferences));
            }
            let inline = el.value.get(BUCKET_HEADER_SIZE..).unwrap_or_default();
            let Some(h) = PageHeader::parse(inline) else {
                let len = el.value.len() as u64;
                return self.tree_fault(Fault::at(
                    id,
                    value_at,
                    FaultKind::BadBucketValue { index: i, len },
                ));
            };
            if h.flags != LEAF_PAGE {
                let flags = h.flags;
                return self.tree_fault(Fault::at(
                    id,
                    page_at,
                    FaultKind::BadPageType {
                        flags,
                        expected: "leaf (inline bucket)",
                    },
                ));
            }
            self.stats.max_depth = self.stats.max_depth.max(at.depth as u64 + 1);
            self.leaf(inline, h.count, id, page_at, at.nested(), &mut nested_last);
        }
    }
}

fn element_offset(i: u16) -> u64 {
    (PAGE_HEADER_SIZE + usize::from(i) * ELEMENT_SIZE) as u64
}

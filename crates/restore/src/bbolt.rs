//! A writer of fresh bbolt files, bulk-loaded in key order.
//!
//! A restore writes a new backend rather than editing a copy of the old one in place:
//! keys arrive sorted (they are read from the old file in order), so each bucket's
//! B+tree can be built bottom-up in one pass. Leaves are filled up to a page and written
//! as soon as they are full; a value larger than a page gets a leaf of its own with
//! overflow pages, as bbolt does. When a bucket ends, the branch levels above its leaves
//! are written, so every page is written once, in page-id order, and children always
//! before the page that points at them. A small bucket (one leaf of at most a quarter
//! page, no nested bucket) is stored inline in its parent's value, by bbolt's rule.
//!
//! The result is what `bbolt compact` would produce: no free pages, no freelist (as etcd
//! runs bbolt with `NoFreelistSync`, the meta pages say "not synced" and bbolt rebuilds
//! the free list on open), two valid meta pages (txid 0 and 1, as in a new database).
//! The page layout is the one described in [`kastellan_snapshot::bbolt`], which reads
//! these files back in the tests.

use std::borrow::Cow;
use std::io::{self, Write};

use kastellan_snapshot::bbolt::fnv64a;
use kastellan_snapshot::bbolt::meta::{MAGIC, NO_FREELIST, VERSION};

/// Size of a page header.
pub const PAGE_HEADER: usize = 16;
/// Size of a branch or leaf element.
pub const ELEMENT: usize = 16;
/// Size of a bucket header (root page id, sequence).
pub const BUCKET_HEADER: usize = 16;
/// Leaf element flag of a nested bucket.
pub const BUCKET_LEAF: u32 = 0x01;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;

/// Where pages go: a sequential stream, page ids assigned in write order. Pages 0 and
/// 1 (the meta pages) are reserved as zeros and written by the caller at the end, from
/// [`meta_page`], once the root and the page count are known.
#[derive(Debug)]
pub struct PageSink<W> {
    out: W,
    page_size: usize,
    next: u64,
    zeros: Vec<u8>,
}

impl<W: Write> PageSink<W> {
    /// Starts a file with `page_size` pages: writes the two reserved meta pages.
    pub fn new(mut out: W, page_size: usize) -> io::Result<PageSink<W>> {
        let zeros = vec![0u8; page_size];
        out.write_all(&zeros)?;
        out.write_all(&zeros)?;
        Ok(PageSink {
            out,
            page_size,
            next: 2,
            zeros,
        })
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The next page id, which is also the number of pages written: the high-water
    /// mark once the last page is out.
    pub fn high_water(&self) -> u64 {
        self.next
    }

    /// Writes one page (with overflow pages if `parts` do not fit in one) and returns
    /// its id.
    fn write_page(&mut self, flags: u16, count: u16, parts: &[&[u8]]) -> io::Result<u64> {
        let len = PAGE_HEADER + parts.iter().map(|p| p.len()).sum::<usize>();
        let pages = len.div_ceil(self.page_size);
        let overflow = u32::try_from(pages - 1)
            .map_err(|_| io::Error::other("a bbolt page cannot span more than 2^32 pages"))?;
        let id = self.next;
        let mut header = [0u8; PAGE_HEADER];
        header[0..8].copy_from_slice(&id.to_le_bytes());
        header[8..10].copy_from_slice(&flags.to_le_bytes());
        header[10..12].copy_from_slice(&count.to_le_bytes());
        header[12..16].copy_from_slice(&overflow.to_le_bytes());
        self.out.write_all(&header)?;
        for p in parts {
            self.out.write_all(p)?;
        }
        let mut pad = pages * self.page_size - len;
        while pad > 0 {
            let n = pad.min(self.zeros.len());
            self.out.write_all(&self.zeros[..n])?;
            pad -= n;
        }
        self.next += pages as u64;
        Ok(id)
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// One key of a bucket: a value, or (with [`BUCKET_LEAF`]) a nested bucket's value.
#[derive(Debug, Clone)]
pub struct Elem<'a> {
    /// Leaf element flags.
    pub flags: u32,
    /// The key.
    pub key: Cow<'a, [u8]>,
    /// The value.
    pub value: Cow<'a, [u8]>,
}

/// Builds one bucket's tree from keys given in strictly ascending order.
#[derive(Debug)]
pub struct BucketBuilder<'a> {
    page_size: usize,
    leaf: Vec<Elem<'a>>,
    leaf_bytes: usize,
    nested: bool,
    /// The leaves written so far: first key and page id.
    children: Vec<(Vec<u8>, u64)>,
    keys: u64,
}

impl<'a> BucketBuilder<'a> {
    /// An empty bucket of a file with `page_size` pages.
    pub fn new(page_size: usize) -> BucketBuilder<'a> {
        BucketBuilder {
            page_size,
            leaf: Vec::new(),
            leaf_bytes: PAGE_HEADER,
            nested: false,
            children: Vec::new(),
            keys: 0,
        }
    }

    /// Keys added so far.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// Adds the next key (greater than every key before it).
    pub fn push<W: Write>(&mut self, sink: &mut PageSink<W>, e: Elem<'a>) -> io::Result<()> {
        let size = ELEMENT + e.key.len() + e.value.len();
        if !self.leaf.is_empty()
            && (self.leaf_bytes + size > self.page_size || self.leaf.len() == usize::from(u16::MAX))
        {
            self.flush_leaf(sink)?;
        }
        self.nested |= e.flags & BUCKET_LEAF != 0;
        self.leaf_bytes += size;
        self.leaf.push(e);
        self.keys += 1;
        Ok(())
    }

    /// The element table of the current leaf (offsets relative to each element).
    fn element_table(&self) -> Vec<u8> {
        let n = self.leaf.len();
        let mut table = Vec::with_capacity(n * ELEMENT);
        let mut data = n * ELEMENT; // where the next key starts, from the table's start
        for (i, e) in self.leaf.iter().enumerate() {
            let pos = (data - i * ELEMENT) as u32;
            table.extend_from_slice(&e.flags.to_le_bytes());
            table.extend_from_slice(&pos.to_le_bytes());
            table.extend_from_slice(&(e.key.len() as u32).to_le_bytes());
            table.extend_from_slice(&(e.value.len() as u32).to_le_bytes());
            data += e.key.len() + e.value.len();
        }
        table
    }

    fn flush_leaf<W: Write>(&mut self, sink: &mut PageSink<W>) -> io::Result<()> {
        let table = self.element_table();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + 2 * self.leaf.len());
        parts.push(&table);
        for e in &self.leaf {
            parts.push(&e.key);
            parts.push(&e.value);
        }
        // At most u16::MAX elements: `push` flushes before that.
        let count = self.leaf.len() as u16;
        let id = sink.write_page(LEAF_PAGE, count, &parts)?;
        let first = self
            .leaf
            .first()
            .map(|e| e.key.to_vec())
            .unwrap_or_default();
        self.children.push((first, id));
        self.leaf.clear();
        self.leaf_bytes = PAGE_HEADER;
        self.nested = false;
        Ok(())
    }

    /// Ends the bucket and returns its value in the parent: the bucket header (root
    /// page id, `sequence`) followed, for an inline bucket, by its leaf page.
    pub fn finish<W: Write>(self, sink: &mut PageSink<W>, sequence: u64) -> io::Result<Vec<u8>> {
        let mut value = Vec::with_capacity(BUCKET_HEADER);
        if self.children.is_empty() && !self.nested && self.leaf_bytes <= self.page_size / 4 {
            value.extend_from_slice(&0u64.to_le_bytes());
            value.extend_from_slice(&sequence.to_le_bytes());
            let mut header = [0u8; PAGE_HEADER];
            header[8..10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
            header[10..12].copy_from_slice(&(self.leaf.len() as u16).to_le_bytes());
            value.extend_from_slice(&header);
            value.extend_from_slice(&self.element_table());
            for e in &self.leaf {
                value.extend_from_slice(&e.key);
                value.extend_from_slice(&e.value);
            }
            return Ok(value);
        }
        let root = self.finish_paged(sink)?;
        value.extend_from_slice(&root.to_le_bytes());
        value.extend_from_slice(&sequence.to_le_bytes());
        Ok(value)
    }

    /// Ends the bucket as pages (never inline, as the root bucket must be) and returns
    /// the id of its root page.
    pub fn finish_paged<W: Write>(mut self, sink: &mut PageSink<W>) -> io::Result<u64> {
        if !self.leaf.is_empty() || self.children.is_empty() {
            self.flush_leaf(sink)?;
        }
        let mut level = std::mem::take(&mut self.children);
        while level.len() > 1 {
            let mut next = Vec::new();
            let mut start = 0;
            let mut size = PAGE_HEADER;
            for (i, (key, _)) in level.iter().enumerate() {
                let es = ELEMENT + key.len();
                if i > start && (size + es > self.page_size || i - start == usize::from(u16::MAX)) {
                    next.push(write_branch(sink, &level[start..i])?);
                    start = i;
                    size = PAGE_HEADER;
                }
                size += es;
            }
            next.push(write_branch(sink, &level[start..])?);
            level = next;
        }
        // `level` has exactly one entry: a leaf was flushed above if there was none.
        Ok(level.first().map_or(0, |(_, id)| *id))
    }
}

fn write_branch<W: Write>(
    sink: &mut PageSink<W>,
    children: &[(Vec<u8>, u64)],
) -> io::Result<(Vec<u8>, u64)> {
    let n = children.len();
    let mut table = Vec::with_capacity(n * ELEMENT);
    let mut data = n * ELEMENT;
    for (i, (key, id)) in children.iter().enumerate() {
        table.extend_from_slice(&((data - i * ELEMENT) as u32).to_le_bytes());
        table.extend_from_slice(&(key.len() as u32).to_le_bytes());
        table.extend_from_slice(&id.to_le_bytes());
        data += key.len();
    }
    let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + n);
    parts.push(&table);
    parts.extend(children.iter().map(|(k, _)| k.as_slice()));
    // At most u16::MAX children per branch: the caller splits before that.
    let id = sink.write_page(BRANCH_PAGE, n as u16, &parts)?;
    let first = children.first().map(|(k, _)| k.clone()).unwrap_or_default();
    Ok((first, id))
}

/// What the meta pages say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaFields {
    /// The page size.
    pub page_size: u32,
    /// Root page of the root bucket.
    pub root: u64,
    /// The root bucket's sequence.
    pub sequence: u64,
    /// The number of pages.
    pub high_water: u64,
}

/// Meta page `id` (0 or 1, with transaction id `id` as in a new bbolt file), a whole
/// page of bytes.
pub fn meta_page(id: u64, m: MetaFields) -> Vec<u8> {
    let mut page = vec![0u8; m.page_size as usize];
    page[0..8].copy_from_slice(&id.to_le_bytes());
    page[8..10].copy_from_slice(&META_PAGE.to_le_bytes());
    let mut meta = Vec::with_capacity(64);
    meta.extend_from_slice(&MAGIC.to_le_bytes());
    meta.extend_from_slice(&VERSION.to_le_bytes());
    meta.extend_from_slice(&m.page_size.to_le_bytes());
    meta.extend_from_slice(&0u32.to_le_bytes()); // flags
    meta.extend_from_slice(&m.root.to_le_bytes());
    meta.extend_from_slice(&m.sequence.to_le_bytes());
    meta.extend_from_slice(&NO_FREELIST.to_le_bytes());
    meta.extend_from_slice(&m.high_water.to_le_bytes());
    meta.extend_from_slice(&id.to_le_bytes()); // txid
    let checksum = fnv64a(&meta);
    meta.extend_from_slice(&checksum.to_le_bytes());
    page[PAGE_HEADER..PAGE_HEADER + meta.len()].copy_from_slice(&meta);
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use kastellan_snapshot::bbolt::{Bucket, Db, Entry, check};

    type Keys = Vec<(Vec<u8>, Vec<u8>)>;

    fn elem(k: Vec<u8>, v: Vec<u8>) -> Elem<'static> {
        Elem {
            flags: 0,
            key: Cow::Owned(k),
            value: Cow::Owned(v),
        }
    }

    /// Builds a file with the given buckets (name, keys) and returns it.
    fn build(page_size: usize, buckets: &[(&str, Keys)]) -> Vec<u8> {
        let mut sink = PageSink::new(Vec::new(), page_size).unwrap();
        let mut root = BucketBuilder::new(page_size);
        for (name, keys) in buckets {
            let mut b = BucketBuilder::new(page_size);
            for (k, v) in keys {
                b.push(&mut sink, elem(k.clone(), v.clone())).unwrap();
            }
            let value = b.finish(&mut sink, 7).unwrap();
            root.push(
                &mut sink,
                Elem {
                    flags: BUCKET_LEAF,
                    key: Cow::Owned(name.as_bytes().to_vec()),
                    value: Cow::Owned(value),
                },
            )
            .unwrap();
        }
        let root_id = root.finish_paged(&mut sink).unwrap();
        let fields = MetaFields {
            page_size: page_size as u32,
            root: root_id,
            sequence: 0,
            high_water: sink.high_water(),
        };
        let mut file = sink.into_inner();
        file[..page_size].copy_from_slice(&meta_page(0, fields));
        file[page_size..2 * page_size].copy_from_slice(&meta_page(1, fields));
        file
    }

    fn read_back(file: &[u8]) -> Vec<(Vec<u8>, Keys)> {
        let db = Db::open(file).unwrap();
        assert!(db.meta_faults().is_empty());
        let checked = check(&db);
        assert!(checked.faults.is_empty(), "{:?}", checked.faults);
        assert_eq!(checked.stats.free, 0, "a compact file has no free page");
        let tree = checked.tree().unwrap();
        let mut out = Vec::new();
        tree.for_each(tree.root(), &mut |name, e| {
            let Entry::Bucket(b) = e else {
                panic!("not a bucket")
            };
            let mut keys = Vec::new();
            tree.for_each(b, &mut |k, v| {
                let Entry::Value(v) = v else { panic!("nested") };
                keys.push((k.to_vec(), v.to_vec()));
                Ok(())
            })
            .unwrap();
            out.push((name.to_vec(), keys));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn round_trips_through_the_reader() {
        let small: Vec<_> = (0..3u8).map(|i| (vec![b'a', i], vec![i; 5])).collect();
        let many: Vec<_> = (0..20_000u32)
            .map(|i| {
                (
                    format!("key/{i:08}").into_bytes(),
                    vec![b'v'; (i % 300) as usize],
                )
            })
            .collect();
        let huge: Vec<_> = (0..5u32)
            .map(|i| {
                (
                    i.to_be_bytes().to_vec(),
                    vec![i as u8; 10_000 + i as usize * 4096],
                )
            })
            .collect();
        let buckets = vec![
            ("a-empty", Vec::new()),
            ("b-small", small),
            ("c-many", many),
            ("d-huge", huge),
        ];
        let file = build(4096, &buckets);
        let back = read_back(&file);
        assert_eq!(back.len(), buckets.len());
        for ((name, keys), (bn, bk)) in buckets.iter().zip(&back) {
            assert_eq!(name.as_bytes(), bn.as_slice());
            assert_eq!(keys, bk, "bucket {name}");
        }
    }

    #[test]
    fn small_buckets_are_inline_and_large_ones_paged() {
        let file = build(4096, &[("s", vec![(b"k".to_vec(), b"v".to_vec())])]);
        let db = Db::open(&file).unwrap();
        let tree = check(&db).tree().unwrap();
        let mut kinds = Vec::new();
        tree.for_each(tree.root(), &mut |_, e| {
            kinds.push(matches!(e, Entry::Bucket(Bucket::Inline { .. })));
            Ok(())
        })
        .unwrap();
        assert_eq!(kinds, [true]);
        assert_eq!(file.len(), 3 * 4096, "two meta pages and the root leaf");

        let big = vec![(b"k".to_vec(), vec![0u8; 2000])];
        let file = build(4096, &[("s", big)]);
        let db = Db::open(&file).unwrap();
        let tree = check(&db).tree().unwrap();
        tree.for_each(tree.root(), &mut |_, e| {
            assert!(matches!(e, Entry::Bucket(Bucket::Paged { .. })));
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn meta_pages_validate() {
        let f = MetaFields {
            page_size: 4096,
            root: 3,
            sequence: 0,
            high_water: 4,
        };
        let p0 = meta_page(0, f);
        let m = kastellan_snapshot::bbolt::Meta::check(&p0).unwrap();
        assert_eq!((m.root, m.high_water, m.txid), (3, 4, 0));
        assert!(!m.has_freelist());
    }
}

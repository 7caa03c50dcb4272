//! Unit tests on small bbolt files built byte by byte.

use super::meta::{MAGIC, NO_FREELIST, VERSION, fnv64a};
use super::*;
use crate::fault::{Check, FaultKind, MetaProblem, MetaSlot};
use crate::{Options, inspect};

const PS: usize = 1024;

/// A value in a leaf under construction.
enum V<'a> {
    Plain(&'a [u8]),
    /// A bucket rooted at a page.
    Paged(u64),
    /// An inline bucket: header plus leaf page bytes.
    Inline(Vec<u8>),
}

fn header(id: u64, flags: u16, count: u16, overflow: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(PAGE_HEADER_SIZE);
    h.extend_from_slice(&id.to_le_bytes());
    h.extend_from_slice(&flags.to_le_bytes());
    h.extend_from_slice(&count.to_le_bytes());
    h.extend_from_slice(&overflow.to_le_bytes());
    h
}

/// Pads a page to whole pages and sets its overflow count.
fn pad(mut p: Vec<u8>) -> Vec<u8> {
    let pages = p.len().div_ceil(PS).max(1);
    p[12..16].copy_from_slice(&(pages as u32 - 1).to_le_bytes());
    p.resize(pages * PS, 0);
    p
}

/// Leaf page bytes (unpadded): header, elements, then keys and values.
fn leaf_bytes(id: u64, entries: &[(&[u8], V<'_>)]) -> Vec<u8> {
    let mut p = header(id, LEAF_PAGE, entries.len() as u16, 0);
    let mut data = Vec::new();
    let data_start = PAGE_HEADER_SIZE + entries.len() * ELEMENT_SIZE;
    for (i, (k, v)) in entries.iter().enumerate() {
        let elem = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        let (flags, value): (u32, Vec<u8>) = match v {
            V::Plain(v) => (0, v.to_vec()),
            V::Paged(root) => (
                BUCKET_LEAF,
                [root.to_le_bytes(), 0u64.to_le_bytes()].concat(),
            ),
            V::Inline(b) => (BUCKET_LEAF, b.clone()),
        };
        let pos = data_start + data.len() - elem;
        p.extend_from_slice(&flags.to_le_bytes());
        p.extend_from_slice(&(pos as u32).to_le_bytes());
        p.extend_from_slice(&(k.len() as u32).to_le_bytes());
        p.extend_from_slice(&(value.len() as u32).to_le_bytes());
        data.extend_from_slice(k);
        data.extend_from_slice(&value);
    }
    p.extend_from_slice(&data);
    p
}

fn leaf(id: u64, entries: &[(&[u8], V<'_>)]) -> Vec<u8> {
    pad(leaf_bytes(id, entries))
}

fn inline(entries: &[(&[u8], V<'_>)]) -> Vec<u8> {
    [vec![0u8; BUCKET_HEADER_SIZE], leaf_bytes(0, entries)].concat()
}

fn branch(id: u64, children: &[(&[u8], u64)]) -> Vec<u8> {
    let mut p = header(id, BRANCH_PAGE, children.len() as u16, 0);
    let mut data = Vec::new();
    let data_start = PAGE_HEADER_SIZE + children.len() * ELEMENT_SIZE;
    for (i, (k, child)) in children.iter().enumerate() {
        let pos = data_start + data.len() - (PAGE_HEADER_SIZE + i * ELEMENT_SIZE);
        p.extend_from_slice(&(pos as u32).to_le_bytes());
        p.extend_from_slice(&(k.len() as u32).to_le_bytes());
        p.extend_from_slice(&child.to_le_bytes());
        data.extend_from_slice(k);
    }
    p.extend_from_slice(&data);
    pad(p)
}

fn freelist(id: u64, ids: &[u64], long_form: bool) -> Vec<u8> {
    let mut p = if long_form {
        let mut p = header(id, FREELIST_PAGE, 0xFFFF, 0);
        p.extend_from_slice(&(ids.len() as u64).to_le_bytes());
        p
    } else {
        header(id, FREELIST_PAGE, ids.len() as u16, 0)
    };
    for i in ids {
        p.extend_from_slice(&i.to_le_bytes());
    }
    pad(p)
}

fn meta(id: u64, root: u64, freelist: u64, high_water: u64, txid: u64) -> Vec<u8> {
    let mut p = header(id, META_PAGE, 0, 0);
    let mut m = Vec::new();
    m.extend_from_slice(&MAGIC.to_le_bytes());
    m.extend_from_slice(&VERSION.to_le_bytes());
    m.extend_from_slice(&(PS as u32).to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&root.to_le_bytes());
    m.extend_from_slice(&0u64.to_le_bytes());
    m.extend_from_slice(&freelist.to_le_bytes());
    m.extend_from_slice(&high_water.to_le_bytes());
    m.extend_from_slice(&txid.to_le_bytes());
    let sum = fnv64a(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    p.extend_from_slice(&m);
    pad(p)
}

fn rev(main: u64, sub: u64) -> Vec<u8> {
    [
        main.to_be_bytes().as_slice(),
        b"_",
        sub.to_be_bytes().as_slice(),
    ]
    .concat()
}

/// A small database with the shape of etcd's: a paged `key` bucket (a branch over two
/// leaves, one holding a value that spans two pages), an inline `meta` bucket, and a
/// `lease` bucket holding a nested bucket. Pages: 0-1 meta, 2 freelist (listing 9),
/// 3 root, 4 branch, 5 and 6-7 leaves, 8 nested bucket's leaf, 9 free.
struct Sample {
    pages: Vec<Vec<u8>>,
    big: Vec<u8>,
}

impl Sample {
    fn new() -> Sample {
        let big = vec![b'z'; 1500];
        let (r1, r2, r3) = (rev(1, 0), rev(2, 0), rev(3, 0));
        let pages = vec![
            meta(0, 3, 2, 10, 4),
            meta(1, 3, 2, 10, 3),
            freelist(2, &[9], false),
            leaf(
                3,
                &[
                    (b"key", V::Paged(4)),
                    (b"lease", V::Inline(inline(&[(b"nested", V::Paged(8))]))),
                    (
                        b"meta",
                        V::Inline(inline(&[(
                            b"consistent_index",
                            V::Plain(&7u64.to_be_bytes()),
                        )])),
                    ),
                ],
            ),
            branch(4, &[(&r1, 5), (&r3, 6)]),
            leaf(5, &[(&r1, V::Plain(b"one")), (&r2, V::Plain(b"two"))]),
            leaf(6, &[(&r3, V::Plain(&big))]), // spans pages 6 and 7
            leaf(8, &[(b"x", V::Plain(b"y"))]),
            header(9, FREELIST_PAGE, 0, 0), // free: content irrelevant
        ];
        Sample { pages, big }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.pages {
            out.extend_from_slice(p);
            let pad = out.len().div_ceil(PS) * PS;
            out.resize(pad, 0);
        }
        out
    }

    /// Replaces the page starting at `id` (index in `pages` is found by offset).
    fn set(&mut self, id: u64, page: Vec<u8>) {
        let mut off = 0;
        for p in self.pages.iter_mut() {
            if off == id as usize * PS {
                *p = page;
                return;
            }
            off += p.len().div_ceil(PS) * PS;
        }
        panic!("no page {id}");
    }

    fn metas(&mut self, root: u64, freelist: u64, high_water: u64) {
        self.set(0, meta(0, root, freelist, high_water, 4));
        self.set(1, meta(1, root, freelist, high_water, 3));
    }
}

fn kinds(bytes: &[u8]) -> Vec<FaultKind> {
    inspect(bytes, &Options::default())
        .unwrap()
        .faults
        .into_iter()
        .map(|f| f.kind)
        .collect()
}

#[test]
fn sample_is_clean_and_counted() {
    let s = Sample::new();
    let bytes = s.bytes();
    assert_eq!(bytes.len(), 10 * PS);
    let r = inspect(
        &bytes,
        &Options {
            verify_trailer: true,
        },
    )
    .unwrap();
    assert!(r.is_clean(), "{:#?}", r.faults);
    assert_eq!(r.page_size, PS as u32);
    assert_eq!(r.active_meta, MetaSlot::Zero);
    assert_eq!(r.txid, 4);
    let p = &r.pages;
    assert_eq!(
        (p.branch, p.leaf, p.overflow, p.freelist, p.free),
        (1, 4, 1, 1, 1),
        "{p:?}"
    );
    assert_eq!(
        (p.buckets, p.inline_buckets, p.keys, p.max_depth),
        (4, 2, 9, 2),
        "{p:?}"
    );
    assert!(p.freelist_stored);
}

#[test]
fn status_hashes_names_keys_and_values_in_order() {
    let s = Sample::new();
    let status = inspect(&s.bytes(), &Options::default())
        .unwrap()
        .status
        .unwrap();
    // What etcd feeds its CRC-32C: per top-level bucket its name, then keys and values;
    // a nested bucket contributes only its name.
    let (r1, r2, r3) = (rev(1, 0), rev(2, 0), rev(3, 0));
    let mut stream = Vec::new();
    for part in [
        b"key".as_slice(),
        &r1,
        b"one",
        &r2,
        b"two",
        &r3,
        &s.big,
        b"lease",
        b"nested",
    ] {
        stream.extend_from_slice(part);
    }
    stream.extend_from_slice(b"metaconsistent_index");
    stream.extend_from_slice(&7u64.to_be_bytes());
    assert_eq!(status.hash, crc32c::crc32c(&stream));
    assert_eq!(status.revision, 3);
    assert_eq!(
        status.total_key, 5,
        "keys of top-level buckets, nested bucket names included"
    );
    assert_eq!(status.total_size, 10 * PS as u64);
}

#[test]
fn meta_with_higher_txid_wins_and_bad_checksum_falls_back() {
    let mut s = Sample::new();
    s.set(1, meta(1, 3, 2, 10, 9));
    let r = inspect(&s.bytes(), &Options::default()).unwrap();
    assert_eq!((r.active_meta, r.txid), (MetaSlot::One, 9));

    let mut bytes = Sample::new().bytes();
    bytes[16 + 20] ^= 0x40; // meta 0's root page id, under its checksum
    let r = inspect(&bytes, &Options::default()).unwrap();
    assert_eq!((r.active_meta, r.txid), (MetaSlot::One, 3));
    assert_eq!(r.faults_of(Check::MetaPages), 1);
    assert!(matches!(
        &r.faults[0].kind,
        FaultKind::InvalidMeta {
            slot: MetaSlot::Zero,
            problem: MetaProblem::BadChecksum { .. }
        }
    ));
    assert!(r.status.is_some(), "meta 1 still opens the database");
}

#[test]
fn no_valid_meta_is_not_bbolt() {
    let mut bytes = Sample::new().bytes();
    bytes[16] = 0;
    bytes[PS + 16 + 4] = 3; // version 3
    let fault = inspect(&bytes, &Options::default()).unwrap_err();
    let FaultKind::NoValidMeta { meta0, meta1 } = &fault.kind else {
        panic!("{fault}")
    };
    assert!(matches!(meta0, MetaProblem::BadMagic { .. }));
    assert!(matches!(meta1, MetaProblem::BadVersion { found: 3 }));
    assert!(matches!(
        inspect(&bytes[..40], &Options::default()).unwrap_err().kind,
        FaultKind::TooSmall { len: 40 }
    ));
}

#[test]
fn reachable_page_in_freelist() {
    let mut s = Sample::new();
    s.set(2, freelist(2, &[5, 9], false));
    assert_eq!(kinds(&s.bytes()), vec![FaultKind::ReachableFreed]);
}

#[test]
fn double_free_and_bad_free_ids() {
    let mut s = Sample::new();
    s.set(2, freelist(2, &[9, 9, 1, 10], true));
    assert_eq!(
        kinds(&s.bytes()),
        vec![
            FaultKind::DoubleFree,
            FaultKind::BadFreeId { id: 1 },
            FaultKind::BadFreeId { id: 10 }
        ]
    );
}

#[test]
fn unreachable_page_with_and_without_stored_freelist() {
    let mut s = Sample::new();
    s.set(2, freelist(2, &[], false));
    let r = inspect(&s.bytes(), &Options::default()).unwrap();
    assert_eq!(
        r.faults
            .iter()
            .map(|f| (f.page, &f.kind))
            .collect::<Vec<_>>(),
        vec![(Some(9), &FaultKind::UnreachableUnfreed)]
    );
    assert!(
        r.status.is_some(),
        "a freelist problem does not keep the figures"
    );

    // etcd's NoFreelistSync: no freelist page; unreached pages are the free ones.
    s.metas(3, NO_FREELIST, 10);
    let r = inspect(&s.bytes(), &Options::default()).unwrap();
    assert!(r.is_clean(), "{:#?}", r.faults);
    assert_eq!(
        (r.pages.free, r.pages.freelist_stored),
        (2, false),
        "pages 2 and 9"
    );
}

#[test]
fn reference_beyond_high_water_mark() {
    let mut s = Sample::new();
    s.set(4, branch(4, &[(&rev(1, 0), 5), (&rev(3, 0), 12)]));
    let r = inspect(&s.bytes(), &Options::default()).unwrap();
    assert!(
        r.faults
            .iter()
            .any(|f| f.page == Some(12) && f.kind == FaultKind::BeyondHighWater { high_water: 10 })
    );
    assert!(r.status.is_none());
}

#[test]
fn truncated_file() {
    let bytes = Sample::new().bytes();
    let r = inspect(&bytes[..7 * PS + 100], &Options::default()).unwrap();
    assert_eq!(
        r.faults[0].kind,
        FaultKind::Truncated {
            high_water: 10,
            pages_in_file: 7
        }
    );
    assert!(
        r.faults
            .iter()
            .any(|f| f.page == Some(6) && matches!(f.kind, FaultKind::BeyondEndOfFile { .. }))
    );
    assert!(r.status.is_none());
}

#[test]
fn page_id_mismatch_and_bad_type() {
    let mut s = Sample::new();
    s.set(5, leaf(6, &[(&rev(1, 0), V::Plain(b"one"))]));
    assert!(kinds(&s.bytes()).contains(&FaultKind::PageIdMismatch { found: 6 }));

    let mut s = Sample::new();
    s.set(5, freelist(5, &[], false));
    assert!(kinds(&s.bytes()).contains(&FaultKind::BadPageType {
        flags: FREELIST_PAGE,
        expected: "branch or leaf"
    }));
}

#[test]
fn cycle_is_a_multiple_reference_and_terminates() {
    let mut s = Sample::new();
    s.set(4, branch(4, &[(&rev(1, 0), 5), (&rev(2, 0), 4)]));
    let k = kinds(&s.bytes());
    assert!(k.contains(&FaultKind::MultipleReferences), "{k:?}");
}

#[test]
fn shared_inline_bucket_is_a_multiple_reference() {
    // Two leaf elements whose values are the same inline bucket bytes.
    let mut page = leaf_bytes(8, &[(b"a", V::Inline(inline(&[]))), (b"b", V::Plain(b""))]);
    let e0 = PAGE_HEADER_SIZE;
    let e1 = e0 + ELEMENT_SIZE;
    let value0 = e0 + read_u32(&page, e0 + 4).unwrap() as usize + 1; // after key "a"
    let vsize0 = read_u32(&page, e0 + 12).unwrap();
    // Element 1: key "b" is the byte before value 0? Use an empty key at value 0.
    page[e1..e1 + 4].copy_from_slice(&BUCKET_LEAF.to_le_bytes());
    page[e1 + 4..e1 + 8].copy_from_slice(&((value0 - e1) as u32).to_le_bytes());
    page[e1 + 8..e1 + 12].copy_from_slice(&0u32.to_le_bytes());
    page[e1 + 12..e1 + 16].copy_from_slice(&vsize0.to_le_bytes());
    let mut s = Sample::new();
    s.set(8, pad(page));
    let k = kinds(&s.bytes());
    assert!(k.contains(&FaultKind::MultipleReferences), "{k:?}");
}

#[test]
fn key_order_is_checked_across_leaves() {
    let mut s = Sample::new();
    s.set(
        5,
        leaf(
            5,
            &[
                (&rev(2, 0), V::Plain(b"two")),
                (&rev(1, 0), V::Plain(b"one")),
            ],
        ),
    );
    let r = inspect(&s.bytes(), &Options::default()).unwrap();
    assert_eq!(
        r.faults.iter().map(|f| &f.kind).collect::<Vec<_>>(),
        vec![&FaultKind::KeyOrder { index: 1 }]
    );
    assert!(
        r.status.is_some(),
        "etcd still computes figures for out-of-order keys"
    );
}

#[test]
fn element_out_of_bounds() {
    let mut page = leaf_bytes(5, &[(&rev(1, 0), V::Plain(b"one"))]);
    page[PAGE_HEADER_SIZE + 12..PAGE_HEADER_SIZE + 16].copy_from_slice(&5000u32.to_le_bytes());
    let mut s = Sample::new();
    s.set(5, pad(page));
    let r = inspect(&s.bytes(), &Options::default()).unwrap();
    assert!(
        r.faults
            .iter()
            .any(|f| f.page == Some(5) && f.kind == FaultKind::ElementOutOfBounds { index: 0 })
    );
    assert!(r.status.is_none());
}

#[test]
fn deep_inline_nesting_is_bounded() {
    let mut b = inline(&[(b"leaf", V::Plain(b"v"))]);
    for _ in 0..MAX_DEPTH + 2 {
        b = inline(&[(b"n", V::Inline(b))]);
    }
    let mut s = Sample::new();
    let page = leaf(8, &[(b"x", V::Inline(b))]);
    assert_eq!(page.len(), 4 * PS, "pages 8 to 11");
    s.pages.pop(); // page 9
    s.set(8, page);
    s.set(2, freelist(2, &[], false));
    s.metas(3, 2, 12);
    let k = kinds(&s.bytes());
    assert!(k.contains(&FaultKind::TooDeep), "{k:?}");
}

#[test]
fn plain_key_at_top_level_is_not_etcd() {
    let mut s = Sample::new();
    s.set(
        3,
        leaf(
            3,
            &[
                (b"key", V::Paged(4)),
                (b"loose", V::Plain(b"value")),
                (b"zz", V::Inline(inline(&[(b"x", V::Paged(8))]))),
            ],
        ),
    );
    let r = inspect(&s.bytes(), &Options::default()).unwrap();
    assert_eq!(
        r.faults.iter().map(|f| &f.kind).collect::<Vec<_>>(),
        vec![&FaultKind::NotABucket {
            key: "loose".into()
        }]
    );
    assert!(r.status.is_none());
}

#[test]
fn meta_page_size_found_when_meta0_is_gone() {
    let mut bytes = Sample::new().bytes();
    bytes[..PS].fill(0);
    let db = Db::open(&bytes).unwrap();
    assert_eq!(
        (db.page_size(), db.active_meta()),
        (PS as u32, MetaSlot::One)
    );
    assert_eq!(db.meta_faults().len(), 1);
}

#[test]
fn no_panic_on_every_single_byte_change_of_the_sample() {
    let bytes = Sample::new().bytes();
    for i in (0..bytes.len()).step_by(3) {
        for v in [0u8, 0xff, bytes[i] ^ 0x80] {
            let mut b = bytes.clone();
            b[i] = v;
            let _ = inspect(
                &b,
                &Options {
                    verify_trailer: true,
                },
            );
        }
    }
}

#[test]
fn one_pass_figures_equal_the_tree_walk() {
    let mut out_of_order = Sample::new();
    out_of_order.set(
        5,
        leaf(
            5,
            &[
                (&rev(2, 0), V::Plain(b"two")),
                (&rev(1, 0), V::Plain(b"one")),
            ],
        ),
    );
    for s in [Sample::new(), out_of_order] {
        let bytes = s.bytes();
        let db = Db::open(&bytes).unwrap();
        let (checked, one_pass) = crate::etcd::check_and_status(&db);
        let tree = checked.tree().unwrap();
        assert_eq!(
            one_pass.unwrap().unwrap(),
            crate::etcd::status(&tree).unwrap()
        );
    }
    let mut bad = Sample::new();
    bad.set(5, leaf(5, &[(b"short", V::Plain(b"one"))]));
    let bytes = bad.bytes();
    let db = Db::open(&bytes).unwrap();
    let (checked, one_pass) = crate::etcd::check_and_status(&db);
    let tree = checked.tree().unwrap();
    assert_eq!(
        one_pass.unwrap().unwrap_err(),
        crate::etcd::status(&tree).unwrap_err()
    );
}

//! Arbitrary pages behind two valid meta pages: exercises the page-tree walk, the
//! freelist and the etcd figures rather than the meta checksum.
#![no_main]

use kastellan_snapshot::bbolt::meta::{MAGIC, VERSION, fnv64a};
use kastellan_snapshot::{Options, inspect};
use libfuzzer_sys::fuzz_target;

const PS: usize = 512;

fn meta_page(id: u64, root: u64, freelist: u64, high_water: u64, txid: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(PS);
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&0x04u16.to_le_bytes()); // meta page
    p.extend_from_slice(&[0; 6]);
    let mut m = Vec::with_capacity(64);
    for v in [MAGIC, VERSION, PS as u32, 0] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    for v in [root, 0, freelist, high_water, txid] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    let sum = fnv64a(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    p.extend_from_slice(&m);
    p.resize(PS, 0);
    p
}

fuzz_target!(|data: &[u8]| {
    // First bytes choose root, freelist and high-water mark; the rest are the pages.
    let Some((head, pages)) = data.split_first_chunk::<3>() else { return };
    let root = u64::from(head[0] % 16);
    let freelist = if head[1] == 0xff { u64::MAX } else { u64::from(head[1] % 16) };
    let high_water = u64::from(head[2] % 32);
    let mut file = meta_page(0, root, freelist, high_water, 2);
    file.extend_from_slice(&meta_page(1, root, freelist, high_water, 1));
    file.extend_from_slice(pages);
    let _ = inspect(&file, &Options::default());
});

//! Meta pages: the two fixed pages at the start of a bbolt file that say where the
//! root bucket and the freelist are, how many pages the database has, and which
//! transaction wrote them.
//!
//! Layout after the 16-byte page header (all little-endian):
//!
//! | offset | size | field                              |
//! |-------:|-----:|------------------------------------|
//! |      0 |    4 | magic `0xED0CDAED`                 |
//! |      4 |    4 | version (2)                        |
//! |      8 |    4 | page size                          |
//! |     12 |    4 | flags                              |
//! |     16 |    8 | root bucket: root page id          |
//! |     24 |    8 | root bucket: sequence              |
//! |     32 |    8 | freelist page id (`u64::MAX`: none)|
//! |     40 |    8 | high-water mark (pages in use)     |
//! |     48 |    8 | transaction id                     |
//! |     56 |    8 | FNV-64a checksum of bytes 0..56    |

use serde::Serialize;

use super::{PAGE_HEADER_SIZE, read_u16, read_u32, read_u64};
use crate::fault::MetaProblem;

/// The bbolt magic number.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only bbolt data format version there is.
pub const VERSION: u32 = 2;
/// Size of the meta fields, checksum included.
pub const META_SIZE: usize = 64;
/// Bytes covered by the checksum (everything before it).
const CHECKSUMMED: usize = 56;
/// The page-type flag of meta pages.
pub const META_PAGE_FLAG: u16 = 0x04;
/// The freelist page id bbolt writes when the freelist is not synced to disk
/// (`NoFreelistSync`, which etcd uses).
pub const NO_FREELIST: u64 = u64::MAX;

/// The fields of one meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Magic number (0xED0CDAED in a bbolt file).
    pub magic: u32,
    /// Format version (2).
    pub version: u32,
    /// Page size in bytes.
    pub page_size: u32,
    /// Database flags (unused by bbolt today).
    pub flags: u32,
    /// Page id of the root bucket's root page.
    pub root: u64,
    /// The root bucket's sequence number.
    pub sequence: u64,
    /// Page id of the freelist, or `u64::MAX` when it is not synced.
    pub freelist: u64,
    /// High-water mark: the number of pages in use; every page id is below it.
    pub high_water: u64,
    /// Id of the transaction that wrote this meta page.
    pub txid: u64,
    /// The stored FNV-64a checksum.
    pub checksum: u64,
}

impl Meta {
    /// Parses the meta fields of a page (`page` starts at the page header). Returns
    /// `None` if the slice is too short.
    pub fn parse(page: &[u8]) -> Option<Meta> {
        let m = page.get(PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_SIZE)?;
        Some(Meta {
            magic: read_u32(m, 0)?,
            version: read_u32(m, 4)?,
            page_size: read_u32(m, 8)?,
            flags: read_u32(m, 12)?,
            root: read_u64(m, 16)?,
            sequence: read_u64(m, 24)?,
            freelist: read_u64(m, 32)?,
            high_water: read_u64(m, 40)?,
            txid: read_u64(m, 48)?,
            checksum: read_u64(m, 56)?,
        })
    }

    /// Validates a meta page the way bbolt does (magic, then version, then checksum),
    /// and additionally that it is marked as a meta page and has a plausible page size.
    pub fn check(page: &[u8]) -> Result<Meta, MetaProblem> {
        let (Some(meta), Some(flags)) = (Meta::parse(page), read_u16(page, 8)) else {
            return Err(MetaProblem::Missing);
        };
        if meta.magic != MAGIC {
            return Err(MetaProblem::BadMagic { found: meta.magic });
        }
        if meta.version != VERSION {
            return Err(MetaProblem::BadVersion {
                found: meta.version,
            });
        }
        let computed = page
            .get(PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + CHECKSUMMED)
            .map(fnv64a)
            .ok_or(MetaProblem::Missing)?;
        if computed != meta.checksum {
            return Err(MetaProblem::BadChecksum {
                stored: meta.checksum,
                computed,
            });
        }
        if flags & META_PAGE_FLAG == 0 {
            return Err(MetaProblem::NotMetaPage { flags });
        }
        if !plausible_page_size(meta.page_size) {
            return Err(MetaProblem::BadPageSize {
                found: meta.page_size,
            });
        }
        Ok(meta)
    }

    /// Whether the freelist is stored in the file.
    pub fn has_freelist(&self) -> bool {
        self.freelist != NO_FREELIST
    }
}

/// Page sizes the reader accepts: powers of two from 512 bytes to 16 MiB.
pub fn plausible_page_size(size: u32) -> bool {
    size.is_power_of_two() && (512..=1 << 24).contains(&size)
}

/// 64-bit FNV-1a, the checksum bbolt stores in meta pages.
pub fn fnv64a(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET_BASIS, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv64a_matches_reference_vectors() {
        // Vectors from the FNV reference test suite.
        assert_eq!(fnv64a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv64a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn page_sizes() {
        assert!(plausible_page_size(4096));
        assert!(plausible_page_size(65536));
        assert!(!plausible_page_size(0));
        assert!(!plausible_page_size(4000));
        assert!(!plausible_page_size(256));
    }
}

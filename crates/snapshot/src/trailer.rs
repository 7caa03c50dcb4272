//! The sha256 trailer of `etcdctl snapshot save`.
//!
//! etcd streams the database followed by the sha256 of everything before it, and
//! `etcdctl snapshot save` keeps both. A copy of a member's `member/snap/db` has no
//! trailer. etcd tells the two apart by size alone: a file carries a trailer when its
//! length modulo 512 is 32 (bbolt files are whole pages, and pages are multiples of
//! 512 bytes). This module applies the same rule.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Length of the trailer.
pub const TRAILER_LEN: usize = 32;

/// Splits a file into the database and the trailer, if the file has one by etcd's rule.
pub fn split(file: &[u8]) -> (&[u8], Option<&[u8; TRAILER_LEN]>) {
    if file.len() % 512 == TRAILER_LEN {
        let (db, t) = file.split_at(file.len() - TRAILER_LEN);
        (db, t.try_into().ok())
    } else {
        (file, None)
    }
}

/// Bytes past the last whole 512-byte unit that are not a trailer: a file whose length
/// modulo 512 is neither 0 (a raw `member/snap/db` copy, whole pages) nor 32 (a saved
/// snapshot with its sha256) is neither, e.g. a copy cut short inside its trailer.
pub fn stray_bytes(len: usize) -> Option<u64> {
    match len % 512 {
        0 | TRAILER_LEN => None,
        r => Some(r as u64),
    }
}

/// What the file says about its trailer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Trailer {
    /// No trailer: a raw copy of `member/snap/db` (or a file cut short).
    Absent,
    /// Neither whole pages nor whole pages and a trailer: `bytes` stray bytes at the
    /// end (an interrupted copy). Always a fault.
    Stray {
        /// How many bytes follow the last whole 512-byte unit.
        bytes: u64,
    },
    /// A trailer is present.
    Present {
        /// The digest stored in the trailer, hex.
        stored: String,
        /// The digest of the content, hex, when it was computed.
        computed: Option<String>,
    },
}

impl Trailer {
    /// Inspects the trailer of `file`; hashes the content when `verify` is set.
    pub fn inspect(file: &[u8], verify: bool) -> Trailer {
        match split(file) {
            (_, None) => match stray_bytes(file.len()) {
                Some(bytes) => Trailer::Stray { bytes },
                None => Trailer::Absent,
            },
            (db, Some(stored)) => Trailer::Present {
                stored: hex::encode(stored),
                computed: verify.then(|| hex::encode(digest(db))),
            },
        }
    }

    /// Whether the trailer is present.
    pub fn is_present(&self) -> bool {
        matches!(self, Trailer::Present { .. })
    }

    /// `Some(true)` if present and matching, `Some(false)` if present and not
    /// matching, `None` if absent or not checked.
    pub fn matches(&self) -> Option<bool> {
        match self {
            Trailer::Present {
                stored,
                computed: Some(c),
            } => Some(stored == c),
            _ => None,
        }
    }
}

/// The sha256 of `bytes`, hashed in blocks that each count as read ([`touched`]), so
/// that hashing a mapped snapshot keeps few of its pages resident.
///
/// [`touched`]: crate::file::touched
fn digest(bytes: &[u8]) -> sha2::digest::Output<Sha256> {
    let mut h = Sha256::new();
    for block in bytes.chunks(1 << 20) {
        h.update(block);
        crate::file::touched(block.len());
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stray_bytes_are_neither_a_copy_nor_a_snapshot() {
        // A saved snapshot cut by 1 to 64 bytes: only the cut of exactly the trailer
        // leaves something that looks like a raw copy.
        let saved = 8 * 4096 + TRAILER_LEN;
        for cut in 1..=64 {
            let t = Trailer::inspect(&vec![0u8; saved - cut], false);
            if cut == TRAILER_LEN {
                assert_eq!(t, Trailer::Absent, "cut {cut}");
            } else {
                assert!(matches!(t, Trailer::Stray { .. }), "cut {cut}: {t:?}");
            }
        }
        assert_eq!(stray_bytes(4096), None);
        assert_eq!(stray_bytes(4096 + 31), Some(31));
        assert_eq!(stray_bytes(4096 + 33), Some(33));
    }

    #[test]
    fn detects_trailer_by_size_like_etcd() {
        let mut file = vec![7u8; 1024];
        assert_eq!(split(&file).1, None);
        assert_eq!(Trailer::inspect(&file, true), Trailer::Absent);
        let digest = Sha256::digest(&file);
        file.extend_from_slice(&digest);
        let (db, t) = split(&file);
        assert_eq!(db.len(), 1024);
        assert_eq!(t.map(|t| t.as_slice()), Some(digest.as_slice()));
        assert_eq!(Trailer::inspect(&file, true).matches(), Some(true));
        assert_eq!(Trailer::inspect(&file, false).matches(), None);
        file[3] ^= 1;
        assert_eq!(Trailer::inspect(&file, true).matches(), Some(false));
    }
}

//! etcd's write-ahead log: the first segment of a restored member.
//!
//! A WAL segment is a sequence of frames. Each frame is a little-endian `u64` length
//! followed by a marshalled [`Record`] padded with zeros to a multiple of 8 bytes; when
//! there is padding, the length's top byte is `0x80 | padding` (so a torn write of the
//! length can be told from data). Every record carries the CRC-32C (Castagnoli) of all
//! record data so far, chained from the previous record: `crc = crc32c_append(prev,
//! data)`, starting from 0 in the first segment. A segment starts with a CRC record
//! carrying the previous segment's CRC (0 for the first), then the metadata record.
//!
//! etcd preallocates each segment to 64 MB (64,000,000 bytes) of zeros; a zero length
//! marks the end of the records.
//!
//! What `etcdutl snapshot restore` writes into the first segment, and [`initial_wal`]
//! too: the CRC record, the metadata (node id and cluster id), an empty snapshot
//! record, one `ConfChangeAddNode` entry per member (term 1, index 1..n, members sorted
//! by id, the member's JSON as context), the hard state (term 1, vote for the first
//! member, commit n), and the snapshot record for the raft snapshot at index n, term 1.

use crate::cluster::Membership;
use crate::proto::{
    self, CONF_CHANGE_ADD_NODE, ConfChange, ConfState, ENTRY_CONF_CHANGE, Entry, HardState, Record,
    WalMetadata, WalSnapshot,
};

/// The size etcd preallocates for a WAL segment.
pub const SEGMENT_SIZE: u64 = 64 * 1000 * 1000;

/// The name of the first segment.
pub const FIRST_SEGMENT: &str = "0000000000000000-0000000000000000.wal";

/// The record types of etcd's WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub enum RecordType {
    /// `etcdserverpb.Metadata`: node and cluster id.
    Metadata = 1,
    /// A raft log entry.
    Entry = 2,
    /// A raft hard state.
    State = 3,
    /// The CRC carried over from the previous segment.
    Crc = 4,
    /// A `walpb.Snapshot`.
    Snapshot = 5,
}

/// The frame length field and padding for `len` bytes of record.
pub fn frame_size(len: usize) -> (u64, usize) {
    let pad = (8 - len % 8) % 8;
    let mut field = len as u64;
    if pad != 0 {
        field |= (0x80 | pad as u64) << 56;
    }
    (field, pad)
}

/// Writes records as frames with the chained CRC.
#[derive(Debug, Clone, Default)]
pub struct Encoder {
    out: Vec<u8>,
    crc: u32,
}

impl Encoder {
    /// An encoder continuing the CRC chain from `prev_crc`.
    pub fn new(prev_crc: u32) -> Encoder {
        Encoder {
            out: Vec::new(),
            crc: prev_crc,
        }
    }

    /// Appends one record.
    pub fn record(&mut self, ty: RecordType, data: Option<Vec<u8>>) {
        if let Some(d) = &data {
            self.crc = crc32c::crc32c_append(self.crc, d);
        }
        let rec = proto::encode(&Record {
            r#type: ty as i64,
            crc: self.crc,
            data,
        });
        let (field, pad) = frame_size(rec.len());
        self.out.extend_from_slice(&field.to_le_bytes());
        self.out.extend_from_slice(&rec);
        self.out.resize(self.out.len() + pad, 0);
    }

    /// The CRC so far.
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// The frames written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// The raft state a restore starts the new cluster from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftStart {
    /// The term (1).
    pub term: u64,
    /// The commit index: the number of members, one ConfChange entry each.
    pub index: u64,
}

impl RaftStart {
    /// The start for `membership`.
    pub fn of(membership: &Membership) -> RaftStart {
        RaftStart {
            term: 1,
            index: membership.members().len() as u64,
        }
    }
}

/// The configuration of the new cluster: every member a voter, sorted by id.
pub fn conf_state(membership: &Membership) -> ConfState {
    ConfState {
        voters: membership.members().iter().map(|m| m.id.0).collect(),
        ..ConfState::default()
    }
}

/// The records of the first WAL segment of the member `membership.local()` (without
/// the preallocated zeros).
pub fn initial_wal(membership: &Membership) -> Vec<u8> {
    let start = RaftStart::of(membership);
    let mut enc = Encoder::new(0);
    enc.record(RecordType::Crc, None);
    let metadata = WalMetadata {
        node_id: membership.local().id.0,
        cluster_id: membership.cluster_id().0,
    };
    enc.record(RecordType::Metadata, Some(proto::encode(&metadata)));
    enc.record(
        RecordType::Snapshot,
        Some(proto::encode(&WalSnapshot::default())),
    );
    for (i, m) in membership.members().iter().enumerate() {
        let cc = ConfChange {
            id: 0,
            r#type: CONF_CHANGE_ADD_NODE,
            node_id: m.id.0,
            context: Some(m.to_json().into_bytes()),
        };
        let entry = Entry {
            r#type: ENTRY_CONF_CHANGE,
            term: start.term,
            index: i as u64 + 1,
            data: Some(proto::encode(&cc)),
        };
        enc.record(RecordType::Entry, Some(proto::encode(&entry)));
    }
    let first = membership.members().first().map_or(0, |m| m.id.0);
    let hard_state = HardState {
        term: start.term,
        vote: first,
        commit: start.index,
    };
    enc.record(RecordType::State, Some(proto::encode(&hard_state)));
    let snapshot = WalSnapshot {
        index: start.index,
        term: start.term,
        conf_state: Some(conf_state(membership)),
    };
    enc.record(RecordType::Snapshot, Some(proto::encode(&snapshot)));
    enc.into_bytes()
}

/// Reads the frames of a WAL segment back (for tests and checks): each record, and
/// whether its CRC matches the chain.
pub fn decode(mut bytes: &[u8]) -> Result<Vec<(Record, bool)>, String> {
    use prost::Message;
    let mut out = Vec::new();
    let mut crc = 0u32;
    while bytes.len() >= 8 {
        let mut lb = [0u8; 8];
        lb.copy_from_slice(&bytes[..8]);
        let field = u64::from_le_bytes(lb);
        if field == 0 {
            break;
        }
        let (len, pad) = if field >> 63 == 1 {
            (field & !(0xff << 56), ((field >> 56) & 0x7) as usize)
        } else {
            (field, 0)
        };
        let len = usize::try_from(len).map_err(|_| "frame too long".to_string())?;
        let body = bytes
            .get(8..8 + len)
            .ok_or_else(|| format!("frame of {len} bytes runs past the end"))?;
        let rec = Record::decode(body).map_err(|e| e.to_string())?;
        let ok = if rec.r#type == RecordType::Crc as i64 {
            let ok = crc == 0 || rec.crc == crc;
            crc = rec.crc;
            ok
        } else {
            if let Some(d) = &rec.data {
                crc = crc32c::crc32c_append(crc, d);
            }
            rec.crc == crc
        };
        out.push((rec, ok));
        bytes = bytes.get(8 + len + pad..).unwrap_or_default();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_padded_to_8_bytes() {
        assert_eq!(frame_size(8), (8, 0));
        assert_eq!(frame_size(4), (4 | (0x84 << 56), 4));
        assert_eq!(frame_size(31), (31 | (0x81 << 56), 1));
        assert_eq!(frame_size(0), (0, 0));
    }

    #[test]
    fn crc_chains_over_record_data() {
        let mut enc = Encoder::new(0);
        enc.record(RecordType::Crc, None);
        assert_eq!(enc.crc(), 0);
        enc.record(RecordType::Metadata, Some(b"abc".to_vec()));
        let after_first = crc32c::crc32c(b"abc");
        assert_eq!(enc.crc(), after_first);
        enc.record(RecordType::Entry, Some(b"defg".to_vec()));
        assert_eq!(
            enc.crc(),
            crc32c::crc32c(b"abcdefg"),
            "chained = CRC of the concatenation"
        );
        let decoded = decode(&enc.into_bytes()).unwrap();
        assert_eq!(decoded.len(), 3);
        assert!(decoded.iter().all(|(_, ok)| *ok));
    }

    /// The first 280 bytes (all records) of the WAL that `etcdutl snapshot restore` 3.5.1 wrote for
    /// `--name m1 --initial-cluster m1=http://127.0.0.1:2380
    /// --initial-advertise-peer-urls http://127.0.0.1:2380` (token `etcd-cluster`).
    const ETCDUTL_WAL: &str = "\
        040000000000008408041000000000001f00000000000081080110efb5fcea071a1508ecd481eea0\
        a6dd8fb7011096af879d9f8de8a21c000e00000000000082080510bbe89af00a1a04080010000000\
        6f00000000000081080210b4f9d8ac0a1a65080110011801225d0800100018ecd481eea0a6dd8fb7\
        01224c7b226964223a31333139353339343239313035383337313138302c227065657255524c7322\
        3a5b22687474703a2f2f3132372e302e302e313a32333830225d2c226e616d65223a226d31227d00\
        1900000000000087080310abe28884091a0f080110ecd481eea0a6dd8fb701180100000000000000\
        1d000000000000830805109386dee0071a13080110011a0d08ecd481eea0a6dd8fb7012800000000";

    #[test]
    fn initial_wal_is_byte_for_byte_etcdutls() {
        let m = Membership::new(
            "m1",
            "m1=http://127.0.0.1:2380",
            "etcd-cluster",
            "http://127.0.0.1:2380",
            false,
        )
        .unwrap();
        let hex: String = ETCDUTL_WAL.chars().filter(|c| !c.is_whitespace()).collect();
        let expected: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(initial_wal(&m), expected);
    }
}

//! The raft snapshot file, `member/snap/<term>-<index>.snap`.
//!
//! A `snappb.snapshot` envelope: the CRC-32C of the data and the data, a marshalled
//! `raftpb.Snapshot` whose data is the v2 store (see [`crate::v2store`]) and whose
//! metadata says index n, term 1 and every member a voter. The name is the term and
//! the index as 16 hex digits each.

use crate::cluster::Membership;
use crate::proto::{self, RaftSnapshot, SnapFile, SnapshotMetadata};
use crate::v2store;
use crate::wal::{RaftStart, conf_state};

/// The file name etcd gives the snapshot at `start`.
pub fn file_name(start: RaftStart) -> String {
    format!("{:016x}-{:016x}.snap", start.term, start.index)
}

/// The bytes of the `.snap` file for `membership`.
pub fn snap_file(membership: &Membership) -> Vec<u8> {
    let start = RaftStart::of(membership);
    let raft = RaftSnapshot {
        data: Some(v2store::store_json(membership)),
        metadata: SnapshotMetadata {
            conf_state: conf_state(membership),
            index: start.index,
            term: start.term,
        },
    };
    let data = proto::encode(&raft);
    proto::encode(&SnapFile {
        crc: crc32c::crc32c(&data),
        data: Some(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn envelope_and_name() {
        let m = Membership::new(
            "m1",
            "m1=http://127.0.0.1:2380",
            "etcd-cluster",
            "http://127.0.0.1:2380",
            false,
        )
        .unwrap();
        assert_eq!(
            file_name(RaftStart::of(&m)),
            "0000000000000001-0000000000000001.snap"
        );
        let bytes = snap_file(&m);
        // etcdutl 3.5.1 wrote a 6490-byte file for these flags, starting so and
        // ending with the metadata (conf state, index 1, term 1).
        assert_eq!(bytes.len(), 6490);
        assert_eq!(&bytes[..6], b"\x08\xab\xe9\x84\xa2\x07");
        assert!(bytes.ends_with(
            b"\x12\x13\n\r\x08\xec\xd4\x81\xee\xa0\xa6\xdd\x8f\xb7\x01(\x00\x10\x01\x18\x01"
        ));
        let env = SnapFile::decode(bytes.as_slice()).unwrap();
        let data = env.data.unwrap();
        assert_eq!(env.crc, crc32c::crc32c(&data));
        let raft = RaftSnapshot::decode(data.as_slice()).unwrap();
        assert_eq!(raft.metadata.index, 1);
        assert_eq!(raft.metadata.conf_state.voters, vec![m.local().id.0]);
    }
}

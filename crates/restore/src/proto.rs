//! The few protobuf messages a restore writes, declared by hand for prost.
//!
//! They follow etcd's `.proto` files (`raft/raftpb/raft.proto`,
//! `server/wal/walpb/record.proto`, `server/etcdserver/api/snap/snappb/snap.proto`,
//! `api/etcdserverpb/etcdserver.proto`), which are proto2 compiled with gogoproto. Two
//! details matter for writing the same bytes as etcd:
//!
//! - fields marked `(gogoproto.nullable) = false` are always written, even when zero:
//!   they are `required` here, which makes prost write them unconditionally;
//! - repeated integers are not packed (proto2's default).

use prost::Message;

/// `walpb.Record`: one WAL record.
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    /// The record type (see [`crate::wal::RecordType`]).
    #[prost(int64, required, tag = "1")]
    pub r#type: i64,
    /// The rolling CRC-32C up to and including this record's data.
    #[prost(uint32, required, tag = "2")]
    pub crc: u32,
    /// The payload, absent for CRC records.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub data: Option<Vec<u8>>,
}

/// `walpb.Snapshot`: the WAL's note of a raft snapshot.
#[derive(Clone, PartialEq, Message)]
pub struct WalSnapshot {
    /// Raft index of the snapshot.
    #[prost(uint64, required, tag = "1")]
    pub index: u64,
    /// Raft term of the snapshot.
    #[prost(uint64, required, tag = "2")]
    pub term: u64,
    /// The configuration at the snapshot (written since etcd 3.5).
    #[prost(message, optional, tag = "3")]
    pub conf_state: Option<ConfState>,
}

/// `raftpb.ConfState`.
#[derive(Clone, PartialEq, Message)]
pub struct ConfState {
    /// The voting members.
    #[prost(uint64, repeated, packed = "false", tag = "1")]
    pub voters: Vec<u64>,
    /// The learners.
    #[prost(uint64, repeated, packed = "false", tag = "2")]
    pub learners: Vec<u64>,
    /// Voters of the outgoing configuration (joint consensus).
    #[prost(uint64, repeated, packed = "false", tag = "3")]
    pub voters_outgoing: Vec<u64>,
    /// Learners of the next configuration (joint consensus).
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    pub learners_next: Vec<u64>,
    /// Whether a joint configuration is left automatically.
    #[prost(bool, required, tag = "5")]
    pub auto_leave: bool,
}

/// `raftpb.EntryType::EntryConfChange`.
pub const ENTRY_CONF_CHANGE: i32 = 1;
/// `raftpb.ConfChangeType::ConfChangeAddNode`.
pub const CONF_CHANGE_ADD_NODE: i32 = 0;

/// `raftpb.Entry`: one raft log entry.
#[derive(Clone, PartialEq, Message)]
pub struct Entry {
    /// The entry type.
    #[prost(int32, required, tag = "1")]
    pub r#type: i32,
    /// Its term.
    #[prost(uint64, required, tag = "2")]
    pub term: u64,
    /// Its index.
    #[prost(uint64, required, tag = "3")]
    pub index: u64,
    /// The payload (a marshalled [`ConfChange`] for configuration entries).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub data: Option<Vec<u8>>,
}

/// `raftpb.ConfChange`.
#[derive(Clone, PartialEq, Message)]
pub struct ConfChange {
    /// Unused by etcd (0).
    #[prost(uint64, required, tag = "1")]
    pub id: u64,
    /// The change type.
    #[prost(int32, required, tag = "2")]
    pub r#type: i32,
    /// The member added.
    #[prost(uint64, required, tag = "3")]
    pub node_id: u64,
    /// The member as JSON (etcd's `membership.Member`).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub context: Option<Vec<u8>>,
}

/// `raftpb.HardState`.
#[derive(Clone, PartialEq, Message)]
pub struct HardState {
    /// The current term.
    #[prost(uint64, required, tag = "1")]
    pub term: u64,
    /// Whom this member voted for.
    #[prost(uint64, required, tag = "2")]
    pub vote: u64,
    /// The highest committed index.
    #[prost(uint64, required, tag = "3")]
    pub commit: u64,
}

/// `raftpb.SnapshotMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct SnapshotMetadata {
    /// The configuration at the snapshot.
    #[prost(message, required, tag = "1")]
    pub conf_state: ConfState,
    /// Raft index of the snapshot.
    #[prost(uint64, required, tag = "2")]
    pub index: u64,
    /// Raft term of the snapshot.
    #[prost(uint64, required, tag = "3")]
    pub term: u64,
}

/// `raftpb.Snapshot`: the raft snapshot, whose data is etcd's v2 store as JSON.
#[derive(Clone, PartialEq, Message)]
pub struct RaftSnapshot {
    /// The v2 store.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub data: Option<Vec<u8>>,
    /// Index, term and configuration.
    #[prost(message, required, tag = "2")]
    pub metadata: SnapshotMetadata,
}

/// `snappb.snapshot`: the envelope of a `.snap` file.
#[derive(Clone, PartialEq, Message)]
pub struct SnapFile {
    /// CRC-32C of `data`.
    #[prost(uint32, required, tag = "1")]
    pub crc: u32,
    /// A marshalled [`RaftSnapshot`].
    #[prost(bytes = "vec", optional, tag = "2")]
    pub data: Option<Vec<u8>>,
}

/// `etcdserverpb.Metadata`: the WAL's metadata record.
#[derive(Clone, PartialEq, Message)]
pub struct WalMetadata {
    /// The member id of this node.
    #[prost(uint64, required, tag = "1")]
    pub node_id: u64,
    /// The cluster id.
    #[prost(uint64, required, tag = "2")]
    pub cluster_id: u64,
}

/// Marshals a message.
pub fn encode<M: Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes taken from a WAL written by `etcdutl snapshot restore` 3.5.1.
    #[test]
    fn encodes_like_gogoproto() {
        assert_eq!(
            encode(&WalSnapshot {
                index: 0,
                term: 0,
                conf_state: None
            }),
            [0x08, 0x00, 0x10, 0x00]
        );
        assert_eq!(
            encode(&Record {
                r#type: 4,
                crc: 0,
                data: None
            }),
            [0x08, 0x04, 0x10, 0x00]
        );
        let hs = encode(&HardState {
            term: 1,
            vote: 0xb71f_7532_0dc0_6a6c,
            commit: 1,
        });
        assert_eq!(
            hs,
            [
                0x08, 0x01, 0x10, 0xec, 0xd4, 0x81, 0xee, 0xa0, 0xa6, 0xdd, 0x8f, 0xb7, 0x01, 0x18,
                0x01
            ]
        );
        let cs = encode(&ConfState {
            voters: vec![0xb71f_7532_0dc0_6a6c],
            auto_leave: false,
            ..ConfState::default()
        });
        assert_eq!(
            cs,
            [
                0x08, 0xec, 0xd4, 0x81, 0xee, 0xa0, 0xa6, 0xdd, 0x8f, 0xb7, 0x01, 0x28, 0x00
            ]
        );
    }
}

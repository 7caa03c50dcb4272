//! The crate's errors: every variant names the file, directory or flag it is about.

use std::path::PathBuf;

/// Why the restore flags do not describe a valid new cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// `--initial-cluster` names no member.
    #[error("--initial-cluster is empty: give name=peer-url pairs, e.g. m1=https://10.0.0.1:2380")]
    EmptyCluster,
    /// A URL is not a valid peer URL.
    #[error("{flag}: invalid peer URL {url:?}: {reason}")]
    InvalidUrl {
        /// The flag it came from.
        flag: &'static str,
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `--name` is not a member of `--initial-cluster`.
    #[error("--name {name:?} is not in --initial-cluster ({initial_cluster})")]
    NameNotInCluster {
        /// The member name.
        name: String,
        /// The initial cluster, normalised.
        initial_cluster: String,
    },
    /// The advertised peer URLs differ from the member's URLs in the initial cluster.
    #[error(
        "--initial-cluster has {name}={in_cluster} but --initial-advertise-peer-urls is {advertised}; they must name the same URLs"
    )]
    AdvertiseMismatch {
        /// The member name.
        name: String,
        /// Its URLs in `--initial-cluster`.
        in_cluster: String,
        /// The URLs of `--initial-advertise-peer-urls`.
        advertised: String,
    },
    /// Two members share a peer URL.
    #[error("--initial-cluster has the peer URL {url} more than once")]
    DuplicateUrl {
        /// The URL.
        url: String,
    },
    /// Two members would get the same id.
    #[error("two members of --initial-cluster would get the same member id {id}")]
    DuplicateId {
        /// The id, hex.
        id: String,
    },
    /// A member id came out as 0, which raft reserves.
    #[error(
        "member {name:?} would get the member id 0, which raft reserves; change its peer URLs or the cluster token"
    )]
    ZeroId {
        /// The member name.
        name: String,
    },
}

/// Why a restore was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The flags do not describe a valid cluster.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// `--bump-revision` and `--mark-compacted` must be given together.
    #[error(
        "--bump-revision N needs --mark-compacted and --mark-compacted needs --bump-revision N > 0 (as with etcdutl: the skipped revisions are marked compacted so that watchers from before the restore get a compaction error)"
    )]
    BumpNeedsMarkCompacted,
    /// The snapshot file could not be read, or is not a bbolt database.
    #[error(transparent)]
    Snapshot(#[from] kastellan_snapshot::Error),
    /// The file has no sha256 trailer and `--skip-hash-check` was not given.
    #[error(
        "{} has no sha256 trailer, so its integrity cannot be checked (a copy of member/snap/db rather than a file from `etcdctl snapshot save`?); pass --skip-hash-check to restore it anyway",
        path.display()
    )]
    HashMissing {
        /// The snapshot file.
        path: PathBuf,
    },
    /// The sha256 trailer does not match the content.
    #[error(
        "{}: sha256 mismatch: the trailer says {stored} but the content hashes to {computed}; the file is damaged or was changed after it was saved",
        path.display()
    )]
    HashMismatch {
        /// The snapshot file.
        path: PathBuf,
        /// The digest in the trailer, hex.
        stored: String,
        /// The digest of the content, hex.
        computed: String,
    },
    /// The file is shorter than the database it holds.
    #[error(
        "{} is truncated: its database needs {needed} bytes but the file holds only {held} (an interrupted copy or download?)",
        path.display()
    )]
    Truncated {
        /// The snapshot file.
        path: PathBuf,
        /// Bytes the database needs (high-water mark times page size).
        needed: u64,
        /// Bytes of database in the file.
        held: u64,
    },
    /// The bbolt structure is damaged.
    #[error("{} is corrupt: {detail} (`kastellan etcd snapshot verify` lists every problem)", path.display())]
    Corrupt {
        /// The snapshot file.
        path: PathBuf,
        /// The first problem found.
        detail: String,
    },
    /// A bbolt database, but not etcd's layout.
    #[error("{} is not an etcd snapshot: {detail}", path.display())]
    NotEtcd {
        /// The snapshot file.
        path: PathBuf,
        /// What is missing or wrong.
        detail: String,
    },
    /// The target data dir exists and has something in it.
    #[error(
        "data dir {} exists and is not empty; restore into a new or empty directory (kastellan never writes over an existing member)",
        path.display()
    )]
    TargetNotEmpty {
        /// The data dir.
        path: PathBuf,
    },
    /// The target holds nothing but the staging directory of an interrupted restore.
    #[error(
        "data dir {} holds only {names}, left by an interrupted restore; remove it and restore again",
        path.display()
    )]
    TargetHasStaging {
        /// The data dir.
        path: PathBuf,
        /// What is in it.
        names: String,
    },
    /// The target exists and is not a directory.
    #[error("data dir {} exists and is not a directory", path.display())]
    TargetNotDir {
        /// The path given as data dir.
        path: PathBuf,
    },
    /// The bumped revision would not fit in etcd's revision type.
    #[error(
        "--bump-revision {bump}: the latest revision {revision} plus {bump} does not fit in a 64-bit signed revision"
    )]
    BumpOverflow {
        /// The latest revision in the snapshot.
        revision: i64,
        /// The requested bump.
        bump: u64,
    },
    /// A file system operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done ("write", "rename", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

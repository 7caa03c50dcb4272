//! Native etcd snapshot restore.
//!
//! From a snapshot file (`etcdctl snapshot save`, or a copy of `member/snap/db` with
//! `skip_hash_check`), [`restore`] writes a new member data dir on which etcd 3.4 and
//! 3.5 start as a new cluster, with the same content `etcdutl snapshot restore` writes:
//!
//! ```text
//! <data-dir>/member/snap/db                                 the backend (see `backend`)
//! <data-dir>/member/snap/0000000000000001-<n, 16 hex>.snap  the raft snapshot (`snap`)
//! <data-dir>/member/wal/0000000000000000-0000000000000000.wal  the WAL (`wal`)
//! ```
//!
//! The work moves through types that only go forward ("parse, don't validate"):
//! [`Request`] (the flags) → [`Membership`] and [`Target`] (checked, nothing read yet)
//! → [`Source`] (the file opened, its sha256 trailer verified, its structure checked)
//! → [`Plan`] (serialisable: everything that will be written, for `--dry-run`) →
//! [`apply`] → [`Restored`]. Only [`apply`] writes, through [`stage`].
//!
//! ```no_run
//! use kastellan_restore::{Request, restore};
//! let mut req = Request::new("snapshot.db", "/var/lib/etcd-restored");
//! req.name = "cp1".into();
//! req.initial_cluster = "cp1=https://10.0.0.11:2380".into();
//! req.initial_advertise_peer_urls = "https://10.0.0.11:2380".into();
//! let restored = restore(&req)?;
//! println!("member {} of cluster {}", restored.plan.member.id, restored.plan.cluster_id);
//! # Ok::<(), kastellan_restore::Error>(())
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backend;
pub mod bbolt;
pub mod cluster;
mod error;
pub mod gojson;
pub mod proto;
pub mod snap;
pub mod stage;
pub mod v2store;
pub mod wal;

use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use kastellan_snapshot::bbolt::{Db, check};
use kastellan_snapshot::{SnapshotFile, Trailer, trailer};
use serde::Serialize;

pub use crate::backend::{CopyStats, Revision};
pub use crate::cluster::{Id, Member, Membership};
pub use crate::error::{ClusterError, Error};
pub use crate::stage::Target;
use crate::wal::RaftStart;

/// The restore flags, as `etcdutl snapshot restore` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// The new data dir (must not exist, or be empty).
    pub data_dir: PathBuf,
    /// `--name`: the member being restored.
    pub name: String,
    /// `--initial-cluster`: every member of the new cluster, `name=peer-url,...`.
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls`: this member's peer URLs, comma-separated.
    pub initial_advertise_peer_urls: String,
    /// Restore a file without a sha256 trailer (or without checking it).
    pub skip_hash_check: bool,
    /// `--bump-revision`: how far the revision moves forward (0: not at all).
    pub bump_revision: u64,
    /// `--mark-compacted`: mark the bumped revision compacted (required with a bump).
    pub mark_compacted: bool,
}

impl Request {
    /// A request with etcd's defaults (member `default` at `http://localhost:2380`,
    /// token `etcd-cluster`).
    pub fn new(snapshot: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Request {
        Request {
            snapshot: snapshot.into(),
            data_dir: data_dir.into(),
            name: cluster::DEFAULT_NAME.into(),
            initial_cluster: cluster::DEFAULT_INITIAL_CLUSTER.into(),
            initial_cluster_token: cluster::DEFAULT_TOKEN.into(),
            initial_advertise_peer_urls: cluster::DEFAULT_PEER_URLS.into(),
            skip_hash_check: false,
            bump_revision: 0,
            mark_compacted: false,
        }
    }

    /// The membership the flags describe (validated as etcd validates them).
    pub fn membership(&self) -> Result<Membership, Error> {
        Ok(Membership::new(
            &self.name,
            &self.initial_cluster,
            &self.initial_cluster_token,
            &self.initial_advertise_peer_urls,
            true,
        )?)
    }

    /// The revision bump, checked: both flags or neither.
    pub fn bump(&self) -> Result<Option<u64>, Error> {
        match (self.bump_revision, self.mark_compacted) {
            (0, false) => Ok(None),
            (n, true) if n > 0 => Ok(Some(n)),
            _ => Err(Error::BumpNeedsMarkCompacted),
        }
    }
}

/// What was checked about the snapshot's integrity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum HashCheck {
    /// The sha256 trailer matched the content.
    Verified {
        /// The digest, hex.
        sha256: String,
    },
    /// Not checked (`--skip-hash-check`); `trailer` says whether there was one.
    Skipped {
        /// Whether the file has a trailer.
        trailer: bool,
    },
    /// Present, not checked yet: [`apply`] checks it alongside the copy, before the
    /// result gets its final name; [`verify`] checks it at once.
    Pending,
}

/// The snapshot file, opened read-only and checked: trailer, bbolt structure, etcd
/// layout.
#[derive(Debug)]
pub struct Source {
    file: SnapshotFile,
    hash: HashCheck,
    page_size: u32,
    latest: Revision,
    cluster_version: Option<String>,
}

impl Source {
    /// Opens and checks the snapshot: that it is a whole bbolt file (not cut short),
    /// that it has a sha256 trailer unless `skip_hash_check`, its structure (every
    /// fault refuses the file, but a damaged file with a trailer is reported as a
    /// sha256 mismatch, which explains the damage), and that it has etcd's `key` and
    /// `meta` buckets. The trailer itself is checked by [`Source::verify_hash`], or by
    /// [`apply`] alongside the copy.
    pub fn open(path: &Path, skip_hash_check: bool) -> Result<Source, Error> {
        let file = SnapshotFile::open(path)?;
        let bytes = file.bytes();
        let (data, stored) = trailer::split(bytes);
        let has_trailer = stored.is_some();
        let path = path.to_path_buf();
        let db = Db::open(data).map_err(|fault| kastellan_snapshot::Error::NotBbolt {
            path: path.clone(),
            kind: fault.kind,
        })?;
        let needed = db.size();
        if needed > data.len() as u64 {
            return Err(Error::Truncated {
                path,
                needed,
                held: data.len() as u64,
            });
        }
        if !has_trailer && !skip_hash_check {
            return Err(Error::HashMissing { path });
        }
        let checked = check(&db);
        if let Some(fault) = checked.faults.first() {
            if has_trailer && !skip_hash_check {
                hash_check(bytes, &path)?; // a mismatch is the better explanation
            }
            return Err(Error::Corrupt {
                path,
                detail: fault.to_string(),
            });
        }
        let versions = checked
            .tree()
            .map(|t| kastellan_snapshot::etcd::versions(&t))
            .unwrap_or_default();
        let page_size = db.page_size();
        let hash = match (has_trailer, skip_hash_check) {
            (true, false) => HashCheck::Pending,
            (trailer, _) => HashCheck::Skipped { trailer },
        };
        let db = Db::open(data).map_err(|f| Error::Corrupt {
            path: path.clone(),
            detail: f.to_string(),
        })?;
        let not_etcd = |detail: String| Error::NotEtcd {
            path: path.clone(),
            detail,
        };
        let tops = backend::top_level(&db).map_err(|e| copy_error(e, &path))?;
        for needed in [backend::KEY, backend::META] {
            if !tops.iter().any(|(n, _, _)| *n == needed) {
                return Err(not_etcd(format!(
                    "it has no {:?} bucket",
                    String::from_utf8_lossy(needed)
                )));
            }
        }
        let latest = match tops.iter().find(|(n, _, _)| *n == backend::KEY) {
            Some((_, bucket, _)) => {
                match backend::last_key(&db, *bucket).map_err(|e| copy_error(e, &path))? {
                    None => Revision { main: 0, sub: 0 },
                    Some(k) => Revision::from_key(k).ok_or_else(|| {
                        not_etcd(format!(
                            "a key of the key bucket has {} bytes, not 17 or 18",
                            k.len()
                        ))
                    })?,
                }
            }
            None => Revision { main: 0, sub: 0 },
        };
        Ok(Source {
            file,
            hash,
            page_size,
            latest,
            cluster_version: versions.cluster_version,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Checks the sha256 trailer now, if it is to be checked at all.
    pub fn verify_hash(&self) -> Result<HashCheck, Error> {
        match &self.hash {
            HashCheck::Pending => hash_check(self.file.bytes(), self.path()),
            done => Ok(done.clone()),
        }
    }

    /// The latest revision in the snapshot.
    pub fn latest(&self) -> Revision {
        self.latest
    }
}

/// Hashes the content of `bytes` and compares it with its sha256 trailer.
fn hash_check(bytes: &[u8], path: &Path) -> Result<HashCheck, Error> {
    match Trailer::inspect(bytes, true) {
        Trailer::Present {
            stored,
            computed: Some(computed),
        } => {
            if stored == computed {
                Ok(HashCheck::Verified { sha256: stored })
            } else {
                Err(Error::HashMismatch {
                    path: path.to_path_buf(),
                    stored,
                    computed,
                })
            }
        }
        _ => Ok(HashCheck::Skipped { trailer: false }),
    }
}

fn copy_error(e: backend::CopyError, path: &Path) -> Error {
    match e {
        backend::CopyError::Io(source) => Error::Io {
            op: "write",
            path: path.to_path_buf(),
            source,
        },
        backend::CopyError::Corrupt(detail) => Error::Corrupt {
            path: path.to_path_buf(),
            detail,
        },
    }
}

/// A file the restore writes, relative to the data dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedFile {
    /// Path relative to the data dir.
    pub path: String,
    /// What it holds.
    pub content: String,
}

/// Everything a restore will do, decided before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// The data dir, and whether it exists (empty) or will be created.
    pub target: Target,
    /// The integrity check of the file.
    pub hash: HashCheck,
    /// The member being restored.
    pub member: Member,
    /// The cluster id.
    pub cluster_id: Id,
    /// Every member of the new cluster, sorted by id.
    pub members: Vec<Member>,
    /// The initial cluster, normalised.
    pub initial_cluster: String,
    /// The cluster token.
    pub initial_cluster_token: String,
    /// The cluster version recorded in the snapshot (etcd 3.4+).
    pub cluster_version: Option<String>,
    /// The latest revision in the snapshot.
    pub revision: i64,
    /// With `--bump-revision`: the revision etcd starts from, marked compacted.
    pub bumped_revision: Option<i64>,
    /// The raft index the new cluster starts at (one ConfChange per member).
    pub raft_index: u64,
    /// The raft term it starts at.
    pub raft_term: u64,
    /// The files written.
    pub files: Vec<PlannedFile>,
    #[serde(skip)]
    membership: Membership,
    #[serde(skip)]
    bumped: Option<Revision>,
    #[serde(skip)]
    page_size: u32,
}

impl Plan {
    /// Plans the restore of `source` for `membership` into `target`.
    pub fn new(
        source: &Source,
        membership: Membership,
        target: Target,
        bump: Option<u64>,
    ) -> Result<Plan, Error> {
        let start = RaftStart::of(&membership);
        let bumped = match bump {
            None => None,
            Some(n) => {
                let main = i64::try_from(n)
                    .ok()
                    .and_then(|n| source.latest.main.checked_add(n))
                    .ok_or(Error::BumpOverflow {
                        revision: source.latest.main,
                        bump: n,
                    })?;
                Some(Revision { main, sub: 0 })
            }
        };
        let snap_name = snap::file_name(start);
        let mut db_content = format!(
            "the backend: the snapshot's keyspace, members {}, consistent index {} term {}",
            membership
                .members()
                .iter()
                .map(|m| m.id.to_string())
                .collect::<Vec<_>>()
                .join(","),
            start.index,
            start.term
        );
        if let Some(b) = bumped {
            db_content.push_str(&format!(
                ", revision bumped to {} and marked compacted",
                b.main
            ));
        }
        let files = vec![
            PlannedFile {
                path: "member/snap/db".into(),
                content: db_content,
            },
            PlannedFile {
                path: format!("member/snap/{snap_name}"),
                content: format!(
                    "raft snapshot at index {} term {}: the v2 store with the members",
                    start.index, start.term
                ),
            },
            PlannedFile {
                path: format!("member/wal/{}", wal::FIRST_SEGMENT),
                content: format!(
                    "WAL for member {} of cluster {}: {} ConfChange entries, hard state, snapshot record",
                    membership.local().id,
                    membership.cluster_id(),
                    membership.members().len()
                ),
            },
        ];
        Ok(Plan {
            snapshot: source.path().to_path_buf(),
            target,
            hash: source.hash.clone(),
            member: membership.local().clone(),
            cluster_id: membership.cluster_id(),
            members: membership.members().to_vec(),
            initial_cluster: membership.initial_cluster(),
            initial_cluster_token: membership.token().to_string(),
            cluster_version: source.cluster_version.clone(),
            revision: source.latest.main,
            bumped_revision: bumped.map(|b| b.main),
            raft_index: start.index,
            raft_term: start.term,
            files,
            membership,
            bumped,
            page_size: source.page_size,
        })
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        self.target.path()
    }
}

/// A finished restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    /// What was done.
    #[serde(flatten)]
    pub plan: Plan,
    /// Figures of the new backend.
    pub backend: CopyStats,
}

/// Checks everything a restore needs and returns the plan, writing nothing. The sha256
/// trailer is left [`HashCheck::Pending`]: [`verify`] checks it at once, [`apply`]
/// alongside the copy.
pub fn plan(req: &Request) -> Result<(Plan, Source), Error> {
    let membership = req.membership()?;
    let bump = req.bump()?;
    let target = Target::check(&req.data_dir)?;
    let source = Source::open(&req.snapshot, req.skip_hash_check)?;
    let plan = Plan::new(&source, membership, target, bump)?;
    Ok((plan, source))
}

/// Checks the sha256 trailer of a planned restore now (for a dry run).
pub fn verify(mut plan: Plan, source: &Source) -> Result<Plan, Error> {
    plan.hash = source.verify_hash()?;
    Ok(plan)
}

/// Restores: [`plan`], then [`apply`].
pub fn restore(req: &Request) -> Result<Restored, Error> {
    let (plan, source) = plan(req)?;
    apply(plan, &source)
}

/// Size of the write buffer of the backend copy.
const WRITE_BUFFER: usize = 8 << 20;

/// Writes the planned data dir: stages it, makes it durable, renames it into place.
///
/// A pending sha256 check runs on another core while the files are written into the
/// hidden staging directory; the result is renamed into place only once the digest
/// matches, and on a mismatch the staging directory is removed (so a damaged file
/// leaves nothing behind, as when the check runs first).
pub fn apply(mut plan: Plan, source: &Source) -> Result<Restored, Error> {
    let staging = plan.target.stage()?;
    let (hash, written) = std::thread::scope(|s| {
        let hash = s.spawn(|| source.verify_hash());
        let written = write_member(&plan, source, &staging);
        let hash = match hash.join() {
            Ok(h) => h,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (hash, written)
    });
    plan.hash = hash?; // a mismatch drops `staging`, which removes it
    let stats = written?;
    staging.commit()?;
    Ok(Restored {
        plan,
        backend: stats,
    })
}

/// Writes the member's files into the staging directory, each one fsynced.
fn write_member(
    plan: &Plan,
    source: &Source,
    staging: &stage::Staging,
) -> Result<CopyStats, Error> {
    let start = RaftStart::of(&plan.membership);

    // The backend.
    let (file, db_path) = staging.create("snap/db")?;
    let data = trailer::split(source.file.bytes()).0;
    let db = Db::open(data).map_err(|f| Error::Corrupt {
        path: plan.snapshot.clone(),
        detail: f.to_string(),
    })?;
    debug_assert_eq!(db.page_size(), plan.page_size);
    let edits = backend::Edits::etcd(&plan.membership, start.index, start.term, plan.bumped);
    let stats = stage::write_durably(file, &db_path, |out| {
        let out = BufWriter::with_capacity(WRITE_BUFFER, out);
        let (mut out, metas, stats) = backend::copy(&db, &edits, out).map_err(|e| match e {
            backend::CopyError::Io(source) => Error::Io {
                op: "write",
                path: db_path.clone(),
                source,
            },
            backend::CopyError::Corrupt(detail) => Error::Corrupt {
                path: plan.snapshot.clone(),
                detail,
            },
        })?;
        out.flush().map_err(Error::io("write", &db_path))?;
        let file = out.get_ref().file();
        for (i, meta) in metas.iter().enumerate() {
            file.write_all_at(meta, i as u64 * meta.len() as u64)
                .map_err(Error::io("write", &db_path))?;
        }
        Ok(stats)
    })?;

    // The raft snapshot.
    staging.write(
        &format!("snap/{}", snap::file_name(start)),
        &snap::snap_file(&plan.membership),
    )?;
    pause_mid_write();

    // The WAL, preallocated as etcd preallocates it.
    let (mut wal_file, wal_path) = staging.create(&format!("wal/{}", wal::FIRST_SEGMENT))?;
    wal_file
        .write_all(&wal::initial_wal(&plan.membership))
        .map_err(Error::io("write", &wal_path))?;
    preallocate(&wal_file, wal::SEGMENT_SIZE).map_err(Error::io("preallocate", &wal_path))?;
    wal_file.sync_all().map_err(Error::io("fsync", &wal_path))?;
    Ok(stats)
}

/// Debug builds only: with `KASTELLAN_RESTORE_PAUSE_MID_WRITE` set, waits forever once
/// the backend is written and before the WAL is, so that a crash test can kill the
/// process with SIGKILL in the middle of the data-dir write.
#[cfg(debug_assertions)]
fn pause_mid_write() {
    if std::env::var_os("KASTELLAN_RESTORE_PAUSE_MID_WRITE").is_some() {
        tracing::warn!("paused in the middle of the data-dir write for a crash test");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[cfg(not(debug_assertions))]
fn pause_mid_write() {}

/// Extends `file` to `len` bytes with allocated zeros (`fallocate`), or with a hole
/// where the file system cannot allocate (as etcd's `fileutil.Preallocate` falls back
/// to `ftruncate`).
fn preallocate(file: &std::fs::File, len: u64) -> std::io::Result<()> {
    use nix::fcntl::{FallocateFlags, fallocate};
    let len_i = i64::try_from(len).map_err(std::io::Error::other)?;
    match fallocate(file, FallocateFlags::empty(), 0, len_i) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::ENOSYS) => file.set_len(len),
        Err(e) => Err(e.into()),
    }
}

/// The restore command of one member of a multi-member restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberCommand {
    /// The member.
    pub member: Member,
    /// The command's arguments, program first.
    pub argv: Vec<String>,
    /// The same as one shell command line.
    pub command: String,
}

/// For each member of the initial cluster (by name), the command that restores it from
/// the same snapshot with the same initial cluster and token (run each on its member's
/// host).
/// `program` is how the binary is invoked, e.g. `["kastellan"]`.
pub fn member_commands(req: &Request, program: &[&str]) -> Result<Vec<MemberCommand>, Error> {
    let membership = req.membership()?;
    req.bump()?;
    let mut members: Vec<&Member> = membership.members().iter().collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(members
        .into_iter()
        .map(|m| {
            let mut argv: Vec<String> = program.iter().map(|s| s.to_string()).collect();
            argv.extend([
                "etcd".to_string(),
                "snapshot".into(),
                "restore".into(),
                req.snapshot.display().to_string(),
                "--data-dir".into(),
                req.data_dir.display().to_string(),
                "--name".into(),
                m.name.clone(),
                "--initial-cluster".into(),
                membership.initial_cluster(),
                "--initial-cluster-token".into(),
                membership.token().to_string(),
                "--initial-advertise-peer-urls".into(),
                m.peer_urls.join(","),
            ]);
            if req.skip_hash_check {
                argv.push("--skip-hash-check".into());
            }
            if req.bump_revision > 0 {
                argv.push("--bump-revision".into());
                argv.push(req.bump_revision.to_string());
                argv.push("--mark-compacted".into());
            }
            // An argument cannot hold a NUL byte (execve would refuse it too).
            let command =
                shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "));
            MemberCommand {
                member: m.clone(),
                argv,
                command,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_needs_both_flags() {
        let mut r = Request::new("s", "d");
        assert_eq!(r.bump().unwrap(), None);
        r.bump_revision = 5;
        assert!(matches!(r.bump(), Err(Error::BumpNeedsMarkCompacted)));
        r.mark_compacted = true;
        assert_eq!(r.bump().unwrap(), Some(5));
        r.bump_revision = 0;
        assert!(matches!(r.bump(), Err(Error::BumpNeedsMarkCompacted)));
    }

    #[test]
    fn member_commands_share_the_cluster() {
        let mut r = Request::new("/backup/snap 1.db", "/var/lib/etcd");
        r.name = "b".into();
        r.initial_cluster = "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380".into();
        r.initial_advertise_peer_urls = "http://10.0.0.2:2380".into();
        r.initial_cluster_token = "tok".into();
        let cmds = member_commands(&r, &["kastellan"]).unwrap();
        let names: Vec<_> = cmds.iter().map(|c| c.member.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        for c in &cmds {
            assert!(c.command.starts_with("kastellan etcd snapshot restore '/backup/snap 1.db' --data-dir /var/lib/etcd --name "));
            assert!(c.command.contains(
                "--initial-cluster 'a=http://10.0.0.1:2380,b=http://10.0.0.2:2380' --initial-cluster-token tok"
            ));
            assert!(c.command.ends_with(&format!(
                "--initial-advertise-peer-urls {}",
                c.member.peer_urls[0]
            )));
        }
    }
}

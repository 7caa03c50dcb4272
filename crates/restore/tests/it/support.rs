//! Test support: snapshots with known content, restore requests, and etcdutl's restore.
//! etcd releases and servers on 127.0.0.1 killed by pid when dropped come from
//! kastellan-etcd's `testing` feature, shared with the other crates' tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use kastellan_etcd::testing::{EtcdProcess, EtcdRelease, MemberUrls, initial_cluster, scratch_dir};
use serde_json::Value;

/// A scratch directory (tmpfs when there is one: etcd's fsyncs are then free).
pub fn scratch() -> tempfile::TempDir {
    scratch_dir("kastellan-restore-it-")
}

/// The keys of a `get -w json` answer, without the header: key, value, create and mod
/// revision, version, lease.
pub fn kvs(v: &Value) -> Value {
    v.get("kvs").cloned().unwrap_or(Value::Array(Vec::new()))
}

/// The header revision of a `get -w json` answer.
pub fn revision(v: &Value) -> i64 {
    v["header"]["revision"].as_i64().unwrap()
}

/// A snapshot with known content, taken from a real server of `release`.
pub struct Snapshot {
    /// The snapshot file.
    pub path: PathBuf,
    /// `get --prefix "" -w json` right before it was taken.
    pub content: Value,
    /// The lease id in hex, as `lease list` prints it.
    pub lease_hex: String,
    _dir: tempfile::TempDir,
}

/// Starts a one-member cluster of `release`, writes puts, overwrites, deletes, a lease
/// with two keys attached and a compaction, saves a snapshot, and stops the server.
pub fn make_snapshot(release: &EtcdRelease) -> Snapshot {
    let dir = scratch();
    let m = MemberUrls::new("source");
    let mut e = EtcdProcess::start(
        release,
        &m,
        std::slice::from_ref(&m),
        &dir.path().join("source"),
        "source-token",
    );
    for i in 0..40 {
        e.etcdctl(&[
            "put",
            &format!("/registry/pods/ns/p{i:03}"),
            &format!("v{i}-a"),
        ]);
    }
    for i in (0..40).step_by(3) {
        e.etcdctl(&[
            "put",
            &format!("/registry/pods/ns/p{i:03}"),
            &format!("v{i}-b"),
        ]);
    }
    let big = "x".repeat(10_000); // a value larger than a page
    e.etcdctl(&["put", "/registry/big", &big]);
    let mid: Value =
        serde_json::from_str(&e.etcdctl(&["get", "/registry/big", "-w", "json"])).unwrap();
    e.etcdctl(&["compact", &revision(&mid).to_string()]);
    for i in (0..40).step_by(7) {
        e.etcdctl(&["del", &format!("/registry/pods/ns/p{i:03}")]);
    }
    let grant = e.etcdctl(&["lease", "grant", "600"]);
    let lease_hex = grant.split_whitespace().nth(1).unwrap().to_string();
    e.etcdctl(&["put", "--lease", &lease_hex, "/registry/leases/a", "la"]);
    e.etcdctl(&["put", "--lease", &lease_hex, "/registry/leases/b", "lb"]);
    e.etcdctl(&["put", "/registry/last", "1"]);
    let content = e.get_all();
    assert!(
        kvs(&content)
            .as_array()
            .unwrap()
            .iter()
            .any(|kv| kv.get("lease").is_some()),
        "keys with a lease"
    );
    let path = dir.path().join("snapshot.db");
    e.snapshot_save(&path);
    e.stop();
    Snapshot {
        path,
        content,
        lease_hex,
        _dir: dir,
    }
}

/// A restore request for `member` of `cluster` with token `token`.
pub fn request(
    snapshot: &Path,
    data_dir: &Path,
    member: &MemberUrls,
    cluster: &[MemberUrls],
    token: &str,
) -> kastellan_restore::Request {
    let mut r = kastellan_restore::Request::new(snapshot, data_dir);
    r.name = member.name.clone();
    r.initial_cluster = initial_cluster(cluster);
    r.initial_cluster_token = token.to_string();
    r.initial_advertise_peer_urls = member.peer.clone();
    r
}

/// Runs `etcdutl snapshot restore` with the same flags as `req`.
pub fn etcdutl_restore(release: &EtcdRelease, req: &kastellan_restore::Request) {
    let etcdutl = release.etcdutl.as_ref().expect("a release with etcdutl");
    let out = Command::new(etcdutl)
        .args(["snapshot", "restore"])
        .arg(&req.snapshot)
        .arg(format!("--data-dir={}", req.data_dir.display()))
        .arg(format!("--name={}", req.name))
        .arg(format!("--initial-cluster={}", req.initial_cluster))
        .arg(format!(
            "--initial-cluster-token={}",
            req.initial_cluster_token
        ))
        .arg(format!(
            "--initial-advertise-peer-urls={}",
            req.initial_advertise_peer_urls
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "etcdutl snapshot restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

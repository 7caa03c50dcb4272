//! Restores checked by real etcd servers (3.4.23 and 3.5.1) on 127.0.0.1: data written
//! to a server, snapshot saved with etcdctl, restored natively, and etcd started on the
//! result. Named `real_etcd_34_*` / `real_etcd_35_*` by the etcd release they run.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kastellan_etcd::testing::{EtcdProcess, EtcdRelease, MemberUrls, etcd34, etcd35};
use kastellan_restore::{Error, restore, wal};
use serde_json::Value;

use crate::support::{etcdutl_restore, kvs, make_snapshot, request, revision, scratch};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every directory 0700, every file 0600, as etcd makes them.
fn assert_private(data: &Path) {
    assert_eq!(mode(data), 0o700, "{}", data.display());
    for rel in ["member", "member/snap", "member/wal"] {
        assert_eq!(mode(&data.join(rel)), 0o700, "{rel}");
    }
    for dir in ["member/snap", "member/wal"] {
        for entry in std::fs::read_dir(data.join(dir)).unwrap() {
            let p = entry.unwrap().path();
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

fn member_list(e: &EtcdProcess) -> Vec<(String, Vec<String>)> {
    let v: Value = serde_json::from_str(&e.etcdctl(&["member", "list", "-w", "json"])).unwrap();
    let mut out: Vec<(String, Vec<String>)> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let urls = m["peerURLs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u.as_str().unwrap().to_string())
                .collect();
            (m["name"].as_str().unwrap_or_default().to_string(), urls)
        })
        .collect();
    out.sort();
    out
}

fn restore_keeps_the_keyspace(release: EtcdRelease) {
    let snap = make_snapshot(&release);
    let dir = scratch();
    let m = MemberUrls::new("restored");
    let data = dir.path().join("data");
    let req = request(&snap.path, &data, &m, std::slice::from_ref(&m), "new-token");
    let restored = restore(&req).unwrap();
    assert_eq!(restored.plan.revision, revision(&snap.content));
    assert_private(&data);
    assert_eq!(
        std::fs::metadata(data.join("member/wal").join(wal::FIRST_SEGMENT))
            .unwrap()
            .len(),
        wal::SEGMENT_SIZE
    );

    let e = EtcdProcess::start(&release, &m, std::slice::from_ref(&m), &data, "new-token");
    let now = e.get_all();
    assert_eq!(
        kvs(&now),
        kvs(&snap.content),
        "keys, values, revisions, versions, leases"
    );
    assert!(kvs(&now).as_array().unwrap().len() > 30);
    assert_eq!(revision(&now), revision(&snap.content));
    assert_eq!(
        now["header"]["member_id"].as_u64(),
        Some(restored.plan.member.id.0)
    );
    assert_eq!(
        now["header"]["cluster_id"].as_u64(),
        Some(restored.plan.cluster_id.0)
    );

    assert!(e.etcdctl(&["lease", "list"]).contains(&snap.lease_hex));
    let ttl = e.etcdctl(&["lease", "timetolive", &snap.lease_hex, "--keys"]);
    assert!(
        ttl.contains("/registry/leases/a") && ttl.contains("/registry/leases/b"),
        "{ttl}"
    );
    assert_eq!(
        member_list(&e),
        [("restored".to_string(), vec![m.peer.clone()])]
    );

    // The restored cluster takes writes where the old one stopped.
    let put: Value =
        serde_json::from_str(&e.etcdctl(&["put", "/after", "1", "-w", "json"])).unwrap();
    assert_eq!(revision(&put), revision(&snap.content) + 1);
}

#[test]
fn real_etcd_34_restore_keeps_the_keyspace() {
    restore_keeps_the_keyspace(etcd34());
}

#[test]
fn real_etcd_35_restore_keeps_the_keyspace() {
    restore_keeps_the_keyspace(etcd35());
}

fn bump_revision(release: EtcdRelease) {
    const BUMP: u64 = 1_000_000;
    let snap = make_snapshot(&release);
    let old = revision(&snap.content);
    let dir = scratch();
    let m = MemberUrls::new("bumped");
    let data = dir.path().join("data");
    let mut req = request(&snap.path, &data, &m, std::slice::from_ref(&m), "t");
    req.bump_revision = BUMP;
    req.mark_compacted = true;
    let restored = restore(&req).unwrap();
    assert_eq!(restored.plan.bumped_revision, Some(old + BUMP as i64));

    let e = EtcdProcess::start(&release, &m, std::slice::from_ref(&m), &data, "t");
    let now = e.get_all();
    assert_eq!(
        revision(&now),
        old + BUMP as i64,
        "the revision moved forward by N"
    );
    assert_eq!(
        kvs(&now),
        kvs(&snap.content),
        "the keys keep their revisions"
    );
    // Reads and watches from before the restore are told the revision is compacted.
    let err = e
        .try_etcdctl(&["get", "/registry/last", "--rev", &old.to_string()])
        .unwrap_err();
    assert!(err.contains("compacted"), "{err}");
    let put: Value =
        serde_json::from_str(&e.etcdctl(&["put", "/after", "1", "-w", "json"])).unwrap();
    assert_eq!(revision(&put), old + BUMP as i64 + 1);
}

#[test]
fn real_etcd_34_bump_revision_moves_forward() {
    bump_revision(etcd34());
}

#[test]
fn real_etcd_35_bump_revision_moves_forward() {
    bump_revision(etcd35());
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts two files have the same bytes (without printing megabytes when they differ).
fn assert_same_file(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(x.len(), y.len(), "{} and {}", a.display(), b.display());
    if let Some(at) = x.iter().zip(&y).position(|(p, q)| p != q) {
        panic!("{} and {} differ at byte {at}", a.display(), b.display());
    }
}

/// Restores the same file with kastellan and with `etcdutl snapshot restore` (3.5.1)
/// for member `local` of `members`, and checks that the WAL and the raft snapshot are
/// the same byte for byte and the backends hold the same content (etcd's hash).
fn compare_with_etcdutl(
    etcd: &EtcdRelease,
    snapshot: &Path,
    dir: &Path,
    members: &[MemberUrls],
    local: usize,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let ours = dir.join(format!("kastellan-{}-{local}", members.len()));
    let theirs = dir.join(format!("etcdutl-{}-{local}", members.len()));
    let req = request(snapshot, &ours, &members[local], members, "cmp-token");
    restore(&req).unwrap();
    let mut req_theirs = req.clone();
    req_theirs.data_dir = theirs.clone();
    etcdutl_restore(etcd, &req_theirs);

    let snap_dir = |d: &Path| d.join("member/snap");
    assert_eq!(files_in(&snap_dir(&ours)), files_in(&snap_dir(&theirs)));
    for name in files_in(&snap_dir(&ours)) {
        if name.ends_with(".snap") {
            assert_same_file(&snap_dir(&ours).join(&name), &snap_dir(&theirs).join(&name));
        }
    }
    assert_eq!(files_in(&ours.join("member/wal")), [wal::FIRST_SEGMENT]);
    let wal_path = |d: &Path| d.join("member/wal").join(wal::FIRST_SEGMENT);
    assert_same_file(&wal_path(&ours), &wal_path(&theirs));
    let records = wal::decode(&std::fs::read(wal_path(&ours)).unwrap()).unwrap();
    assert!(records.iter().all(|(_, crc_ok)| *crc_ok));
    assert_eq!(records.len(), 3 + members.len() + 2);
    let figures = |d: &Path| {
        let s = etcd.snapshot_status(&snap_dir(d).join("db"));
        (s.hash, s.revision, s.total_key)
    };
    assert_eq!(
        figures(&ours),
        figures(&theirs),
        "etcd's hash of the backends"
    );
    (ours, theirs)
}

/// kastellan and `etcdutl snapshot restore` (3.5.1) on the same file with the same
/// flags: the same WAL and raft snapshot byte for byte and the same backend content,
/// for a one- and a three-member cluster; and both data dirs serve the same keyspace as
/// the same member of the same cluster.
fn same_as_etcdutl(snapshot_release: EtcdRelease) {
    let etcd = etcd35();
    let snap = make_snapshot(&snapshot_release);
    let dir = scratch();
    let three = [
        MemberUrls::new("x1"),
        MemberUrls::new("x2"),
        MemberUrls::new("x3"),
    ];
    for local in 0..3 {
        compare_with_etcdutl(&etcd, &snap.path, dir.path(), &three, local);
    }
    let one = [MemberUrls::new("solo")];
    let (ours, theirs) = compare_with_etcdutl(&etcd, &snap.path, dir.path(), &one, 0);

    let mut served = Vec::new();
    for data in [&ours, &theirs] {
        let mut e = EtcdProcess::start(&etcd, &one[0], &one, data, "cmp-token");
        served.push(e.get_all());
        e.stop();
    }
    assert_eq!(kvs(&served[0]), kvs(&snap.content));
    assert_eq!(kvs(&served[0]), kvs(&served[1]));
    for field in ["cluster_id", "member_id", "revision"] {
        assert_eq!(
            served[0]["header"][field], served[1]["header"][field],
            "{field}"
        );
    }
}

#[test]
fn real_etcd_35_same_as_etcdutl() {
    same_as_etcdutl(etcd35());
}

#[test]
fn real_etcd_34_snapshot_same_as_etcdutl() {
    same_as_etcdutl(etcd34());
}

/// Three members restored from one file with the same initial cluster form a healthy
/// cluster with the new names and URLs and the old keyspace.
fn three_members(release: EtcdRelease) {
    let snap = make_snapshot(&release);
    let dir = scratch();
    let members = [
        MemberUrls::new("m1"),
        MemberUrls::new("m2"),
        MemberUrls::new("m3"),
    ];
    let mut servers = Vec::new();
    for m in &members {
        let data = dir.path().join(&m.name);
        let req = request(&snap.path, &data, m, &members, "three");
        restore(&req).unwrap();
        servers.push(EtcdProcess::spawn(&release, m, &members, &data, "three"));
    }
    for s in &mut servers {
        s.wait_healthy();
    }
    let expected: Vec<(String, Vec<String>)> = members
        .iter()
        .map(|m| (m.name.clone(), vec![m.peer.clone()]))
        .collect();
    for s in &servers {
        s.etcdctl(&["endpoint", "health"]); // fails unless healthy
        assert_eq!(member_list(s), expected);
        assert_eq!(
            kvs(&s.get_all()),
            kvs(&snap.content),
            "on {}",
            s.member.name
        );
    }
    servers[0].etcdctl(&["put", "/written/on/m1", "yes"]);
    let got = servers[2].etcdctl(&["get", "/written/on/m1", "--print-value-only"]);
    assert_eq!(got.trim(), "yes");
}

#[test]
fn real_etcd_34_three_members_form_a_cluster() {
    three_members(etcd34());
}

#[test]
fn real_etcd_35_three_members_form_a_cluster() {
    three_members(etcd35());
}

/// Lists what is in `dir`, to show that a refused restore created nothing.
fn listing(dir: &Path) -> Vec<String> {
    files_in(dir)
}

#[test]
fn real_etcd_35_refuses_bad_input_and_creates_nothing() {
    let release = etcd35();
    let snap = make_snapshot(&release);
    let dir = scratch();
    let m = MemberUrls::new("m");
    let cluster = std::slice::from_ref(&m);
    let original = std::fs::read(&snap.path).unwrap();
    let parent = dir.path().join("restores");
    std::fs::create_dir(&parent).unwrap();
    let target = parent.join("data");

    // A flipped byte: the sha256 trailer does not match.
    let damaged = dir.path().join("damaged.db");
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&damaged, &bytes).unwrap();
    let err = restore(&request(&damaged, &target, &m, cluster, "t")).unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains(damaged.to_str().unwrap()), "{err}");
    assert!(err.to_string().contains("sha256"), "{err}");
    assert_eq!(listing(&parent), Vec::<String>::new(), "nothing created");

    // Cut short: refused, with or without --skip-hash-check.
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &original[..original.len() / 2 + 100]).unwrap();
    for skip in [false, true] {
        let mut req = request(&truncated, &target, &m, cluster, "t");
        req.skip_hash_check = skip;
        let err = restore(&req).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
        assert!(
            err.to_string().contains(truncated.to_str().unwrap()),
            "{err}"
        );
        assert!(err.to_string().contains("truncated"), "{err}");
        assert_eq!(listing(&parent), Vec::<String>::new(), "nothing created");
    }

    // A target that is not empty: refused, left as it was.
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"precious").unwrap();
    let err = restore(&request(&snap.path, &target, &m, cluster, "t")).unwrap_err();
    assert!(matches!(err, Error::TargetNotEmpty { .. }), "{err}");
    assert!(err.to_string().contains(target.to_str().unwrap()), "{err}");
    assert_eq!(listing(&target), ["keep"]);
    assert_eq!(std::fs::read(target.join("keep")).unwrap(), b"precious");
    assert_eq!(listing(&parent), ["data"], "no staging directory left");
    std::fs::remove_file(target.join("keep")).unwrap();

    // A raw copy of member/snap/db (no trailer) needs --skip-hash-check...
    let raw = dir.path().join("raw.db");
    std::fs::write(&raw, &original[..original.len() - 32]).unwrap();
    let err = restore(&request(&raw, &target, &m, cluster, "t")).unwrap_err();
    assert!(matches!(err, Error::HashMissing { .. }), "{err}");
    assert!(err.to_string().contains("--skip-hash-check"), "{err}");
    assert_eq!(listing(&target), Vec::<String>::new());

    // ...with which it restores, here into the existing empty directory.
    let mut req = request(&raw, &target, &m, cluster, "t");
    req.skip_hash_check = true;
    restore(&req).unwrap();
    assert_eq!(listing(&target), ["member"]);
    let e = EtcdProcess::start(&release, &m, cluster, &target, "t");
    assert_eq!(kvs(&e.get_all()), kvs(&snap.content));
}

//! Tier `cli`: exit codes of `etcd snapshot status|verify` (0 clean, 1 corrupt, 2 not a
//! snapshot) on files made by real etcd 3.5 (`crates/snapshot/tests/fixtures`, see its
//! `make.sh`), and damaged copies of them.

use std::path::{Path, PathBuf};

use crate::kastellan;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../snapshot/tests/fixtures")
        .join(name)
}

/// Exit codes of `status` and `verify`, and verify's stderr.
fn codes(file: &Path) -> (i32, i32, String) {
    let run = |verb: &str| {
        kastellan()
            .args(["etcd", "snapshot", verb])
            .arg(file)
            .output()
            .unwrap()
    };
    let s = run("status");
    let v = run("verify");
    (
        s.status.code().unwrap(),
        v.status.code().unwrap(),
        String::from_utf8_lossy(&v.stderr).into_owned(),
    )
}

fn copy(dir: &Path, bytes: Vec<u8>) -> PathBuf {
    let p = dir.join("snapshot.db");
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn cli_snapshot_status_verify_clean_is_0_0() {
    let (s, v, err) = codes(&fixture("etcd35.snapshot.db"));
    assert_eq!((s, v), (0, 0), "{err}");
}

#[test]
fn cli_snapshot_status_verify_truncated_is_1_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("etcd35.snapshot.db")).unwrap();
    bytes.truncate(bytes.len() / 2);
    let (s, v, err) = codes(&copy(dir.path(), bytes));
    assert_eq!((s, v), (1, 1), "{err}");
}

/// A saved snapshot cut by 1 to 64 bytes (an interrupted copy): `verify` fails every
/// cut that leaves stray bytes, naming them; the cut of exactly the 32-byte trailer
/// leaves whole pages, which pass as a raw copy whose integrity cannot be proven.
#[test]
fn cli_snapshot_verify_fails_stray_bytes_at_every_cut() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(fixture("etcd35.snapshot.db")).unwrap();
    for cut in 1..=64 {
        let file = copy(dir.path(), whole[..whole.len() - cut].to_vec());
        let out = kastellan()
            .args(["etcd", "snapshot", "verify"])
            .arg(&file)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        if cut == 32 {
            assert_eq!(out.status.code(), Some(0), "cut {cut}: {said}");
            assert!(
                said.contains("raw member/snap/db copy"),
                "cut {cut}: {said}"
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "cut {cut}: {said}");
            assert!(said.contains("stray bytes"), "cut {cut}: {said}");
        }
    }
}

#[test]
fn cli_snapshot_status_verify_bit_flipped_value_is_0_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("etcd35.snapshot.db")).unwrap();
    // A byte inside a value (the fixture's big values are runs of one letter): the
    // structure stays sound, so `status` (like etcd's) passes; the sha256 trailer
    // catches it.
    let at = bytes
        .windows(64)
        .position(|w| w.iter().all(|&b| b == b'x'))
        .expect("the fixture holds a run of 'x'")
        + 32;
    bytes[at] ^= 0x01;
    let (s, v, err) = codes(&copy(dir.path(), bytes));
    assert_eq!((s, v), (0, 1), "{err}");
}

#[test]
fn cli_snapshot_status_verify_not_a_snapshot_is_2_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, "this is not an etcd snapshot\n".repeat(400)).unwrap();
    let (s, v, err) = codes(&p);
    assert_eq!((s, v), (2, 2), "{err}");
    assert!(err.contains(&p.display().to_string()), "{err}");
    assert!(err.contains("not an etcd snapshot"), "{err}");
}

#[test]
fn cli_snapshot_inspect_fixture_counts_and_missing_key() {
    let file = fixture("etcd35.snapshot.db");
    let out = kastellan()
        .args(["etcd", "snapshot", "inspect", "-o", "json"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["keys"].as_u64().unwrap() > 0, "{doc}");
    let missing = kastellan()
        .args(["etcd", "snapshot", "inspect", "--key", "/registry/nope/x"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let not = kastellan()
        .args(["etcd", "snapshot", "inspect"])
        .arg(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(not.status.code(), Some(2));
}

//! Checked-in real snapshots and damaged copies of them.

use kastellan_etcd::testing::EtcdSnapshotStatus;
use kastellan_snapshot::{
    Check, Error, FaultKind, Options, SnapshotFile, Trailer, Verdict, inspect,
};

use crate::support::{fixture, write_temp};

fn expected(name: &str) -> EtcdSnapshotStatus {
    let json = std::fs::read_to_string(fixture(&format!("{name}.status.json"))).unwrap();
    serde_json::from_str(&json).unwrap()
}

fn assert_matches_etcd(name: &str) {
    let file = SnapshotFile::open(fixture(&format!("{name}.db"))).unwrap();
    let status = file.status().unwrap();
    let want = expected(name);
    assert_eq!(
        EtcdSnapshotStatus::from(status),
        want,
        "{name}: figures differ from etcd's"
    );
    let report = file
        .inspect(&Options {
            verify_trailer: true,
        })
        .unwrap();
    assert!(report.is_clean(), "{name}: {:#?}", report.faults);
}

#[test]
fn fixture_etcd34_snapshot_matches_etcdctl() {
    assert_matches_etcd("etcd34.snapshot");
}

#[test]
fn fixture_etcd34_raw_copy_matches_etcdctl() {
    assert_matches_etcd("etcd34.raw");
}

#[test]
fn fixture_etcd35_snapshot_matches_etcdutl() {
    assert_matches_etcd("etcd35.snapshot");
}

#[test]
fn fixture_etcd35_raw_copy_matches_etcdutl() {
    assert_matches_etcd("etcd35.raw");
}

#[test]
fn fixture_trailer_presence_is_detected() {
    for v in ["etcd34", "etcd35"] {
        let snap = SnapshotFile::open(fixture(&format!("{v}.snapshot.db"))).unwrap();
        let report = snap
            .inspect(&Options {
                verify_trailer: true,
            })
            .unwrap();
        assert_eq!(report.trailer.matches(), Some(true), "{v}");
        let raw = SnapshotFile::open(fixture(&format!("{v}.raw.db"))).unwrap();
        let report = raw
            .inspect(&Options {
                verify_trailer: true,
            })
            .unwrap();
        assert_eq!(report.trailer, Trailer::Absent, "{v}");
        let sha = report
            .checks()
            .into_iter()
            .find(|c| c.check == Check::Sha256Trailer)
            .unwrap();
        assert_eq!(sha.verdict, Verdict::Skipped);
    }
}

#[test]
fn fixture_versions_are_read() {
    let r = SnapshotFile::open(fixture("etcd34.snapshot.db"))
        .unwrap()
        .inspect(&Options::default())
        .unwrap();
    assert_eq!(r.versions.cluster_version.as_deref(), Some("3.4.0"));
    assert_eq!(r.versions.storage_version, None);
    let r = SnapshotFile::open(fixture("etcd35.snapshot.db"))
        .unwrap()
        .inspect(&Options::default())
        .unwrap();
    assert_eq!(r.versions.cluster_version.as_deref(), Some("3.5.0"));
}

#[test]
fn fixture_truncated_file_is_reported() {
    let bytes = std::fs::read(fixture("etcd35.snapshot.db")).unwrap();
    let cut = &bytes[..bytes.len() / 2];
    let (_dir, path) = write_temp("truncated.db", cut);
    let file = SnapshotFile::open(&path).unwrap();
    let report = file
        .inspect(&Options {
            verify_trailer: true,
        })
        .unwrap();
    assert!(!report.is_clean());
    assert!(
        report
            .faults
            .iter()
            .any(|f| matches!(f.kind, FaultKind::Truncated { .. })),
        "{:#?}",
        report.faults
    );
    let err = file.status().unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn fixture_bit_flip_in_data_is_caught_by_the_trailer() {
    let mut bytes = std::fs::read(fixture("etcd35.snapshot.db")).unwrap();
    // A byte inside a value: the structure stays valid, only the trailer can tell.
    let at = bytes.windows(4).position(|w| w == b"xxxx").unwrap();
    bytes[at] ^= 0x01;
    let (_dir, path) = write_temp("flipped.db", &bytes);
    let report = SnapshotFile::open(&path)
        .unwrap()
        .inspect(&Options {
            verify_trailer: true,
        })
        .unwrap();
    assert_eq!(report.trailer.matches(), Some(false));
    assert_eq!(
        report.faults_of(Check::Sha256Trailer),
        1,
        "{:#?}",
        report.faults
    );
    assert!(
        report
            .faults
            .iter()
            .any(|f| matches!(f.kind, FaultKind::TrailerMismatch { .. }))
    );
    // The figures are still computed, and differ from etcd's for the pristine file.
    let status = report.status.unwrap();
    assert_ne!(status.hash, expected("etcd35.snapshot").hash);
}

#[test]
fn fixture_flipped_meta_page_is_reported() {
    for (page, slot) in [(0usize, "meta page 0"), (1, "meta page 1")] {
        let mut bytes = std::fs::read(fixture("etcd34.snapshot.db")).unwrap();
        bytes[page * 4096 + 16 + 40] ^= 0x04; // a bit of the high-water mark
        let (_dir, path) = write_temp("meta.db", &bytes);
        let report = SnapshotFile::open(&path)
            .unwrap()
            .inspect(&Options {
                verify_trailer: true,
            })
            .unwrap();
        let meta = report
            .faults
            .iter()
            .find(|f| matches!(f.kind, FaultKind::InvalidMeta { .. }))
            .unwrap();
        assert_eq!(meta.page, Some(page as u64));
        assert!(meta.to_string().contains(slot), "{meta}");
        assert!(meta.to_string().contains("checksum"), "{meta}");
        assert_eq!(report.trailer.matches(), Some(false));
        // The other meta page still opens the database, with the same figures.
        assert_eq!(
            EtcdSnapshotStatus::from(report.status.unwrap()),
            expected("etcd34.snapshot")
        );
    }
}

#[test]
fn fixture_both_meta_pages_flipped_is_not_bbolt() {
    let mut bytes = std::fs::read(fixture("etcd34.raw.db")).unwrap();
    bytes[16] ^= 0xff;
    bytes[4096 + 16] ^= 0xff;
    let (_dir, path) = write_temp("nometa.db", &bytes);
    let err = SnapshotFile::open(&path)
        .unwrap()
        .inspect(&Options::default())
        .unwrap_err();
    assert!(matches!(err, Error::NotBbolt { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("not an etcd snapshot"),
        "{msg}"
    );
}

#[test]
fn fixture_file_that_is_not_a_snapshot() {
    let text = b"apiVersion: v1\nkind: Config\n".repeat(400);
    let (_dir, path) = write_temp("kubeconfig.yaml", &text);
    let err = SnapshotFile::open(&path).unwrap().status().unwrap_err();
    assert!(matches!(err, Error::NotBbolt { .. }), "{err}");
    assert!(err.to_string().contains("kubeconfig.yaml"), "{err}");
    assert!(err.to_string().contains("magic"), "{err}");

    let (_dir, path) = write_temp("tiny", b"hello");
    let err = SnapshotFile::open(&path).unwrap().status().unwrap_err();
    assert!(err.to_string().contains("too short"), "{err}");

    let missing = std::path::Path::new("/nonexistent/kastellan/snapshot.db");
    let err = SnapshotFile::open(missing).unwrap_err();
    assert!(matches!(err, Error::Read { .. }));
    assert!(
        err.to_string()
            .contains("/nonexistent/kastellan/snapshot.db"),
        "{err}"
    );
}

#[test]
fn fixture_reachable_page_listed_twice_is_reported() {
    // Point the last branch element of the `key` bucket at the same child as the
    // first: one page referenced twice, another unreached.
    let bytes = std::fs::read(fixture("etcd35.raw.db")).unwrap();
    let report = inspect(&bytes, &Options::default()).unwrap();
    assert!(report.is_clean());
    let ps = report.page_size as usize;
    let mut damaged = bytes.clone();
    let branch = (2..bytes.len() / ps)
        .find(|&id| {
            let p = &bytes[id * ps..];
            u16::from_le_bytes([p[8], p[9]]) == 0x01 && u16::from_le_bytes([p[10], p[11]]) >= 2
        })
        .expect("the fixture has a branch page");
    let p = branch * ps;
    let count = u16::from_le_bytes([bytes[p + 10], bytes[p + 11]]) as usize;
    let first_child = bytes[p + 16 + 8..p + 16 + 16].to_vec();
    let last = p + 16 + (count - 1) * 16;
    damaged[last + 8..last + 16].copy_from_slice(&first_child);
    let report = inspect(&damaged, &Options::default()).unwrap();
    assert!(
        report
            .faults
            .iter()
            .any(|f| f.kind == FaultKind::MultipleReferences),
        "{:#?}",
        report.faults
    );
    assert!(report.status.is_none(), "no figures from a damaged tree");
}

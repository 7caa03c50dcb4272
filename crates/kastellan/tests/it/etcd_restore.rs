//! Tier `real_etcd`: `kastellan etcd snapshot restore` through the binary, on a snapshot
//! saved from a real etcd 3.5 on 127.0.0.1. (Starting etcd on restored data dirs, the
//! comparison with etcdutl and multi-member clusters are tested in kastellan-restore.)

use std::path::{Path, PathBuf};
use std::process::Output;

use kastellan_etcd::testing::{EtcdCluster, etcd35};

use crate::kastellan;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn restore(file: &Path, data_dir: &Path, extra: &[&str]) -> Output {
    kastellan()
        .args(["etcd", "snapshot", "restore"])
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--name=b",
            "--initial-cluster=a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3",
            "--initial-advertise-peer-urls=http://127.0.0.1:2",
            "--initial-cluster-token=cli",
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn real_etcd_35_cli_snapshot_restore() {
    let etcd = EtcdCluster::start(&etcd35(), 1);
    let revision = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(etcd.put_known_data(200, 100));
    let file = etcd.scratch().join("cli.db");
    etcd.etcdctl_snapshot(&etcd.endpoints()[0], &file);
    let out_dir: PathBuf = etcd.scratch().join("restores");
    std::fs::create_dir(&out_dir).unwrap();
    let data = out_dir.join("data");

    // --dry-run: everything checked, nothing written.
    let out = restore(&file, &data, &["--dry-run", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["dryRun"], true);
    assert_eq!(plan["hash"]["state"], "verified", "{plan}");
    assert_eq!(plan["revision"], revision);
    assert_eq!(plan["member"]["name"], "b");
    assert_eq!(plan["members"].as_array().unwrap().len(), 3);
    assert_eq!(plan["raftIndex"], 3);
    assert!(entries(&out_dir).is_empty(), "dry run wrote nothing");

    // The restore itself.
    let out = restore(&file, &data, &["-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["dryRun"], false);
    assert_eq!(done["clusterId"], plan["clusterId"]);
    assert!(
        done["backend"]["revisions"].as_u64().unwrap() >= 200,
        "{done}"
    );
    assert_eq!(entries(&out_dir), ["data"], "no staging directory left");
    assert_eq!(entries(&data.join("member")), ["snap", "wal"]);

    // Refused, exit 2, naming the directory: it is not empty now.
    let out = restore(&file, &data, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(data.to_str().unwrap()),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );

    // Usage: --bump-revision needs --mark-compacted.
    let out = restore(&file, &out_dir.join("other"), &["--bump-revision=10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--mark-compacted"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(entries(&out_dir), ["data"]);

    // One command per member, same file, cluster and token.
    let out = restore(&file, &data, &["--print-member-commands"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let commands: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("kastellan "))
        .map(str::to_string)
        .collect();
    assert_eq!(commands.len(), 3);
    for (c, name) in commands.iter().zip(["a", "b", "c"]) {
        assert!(c.contains(&format!("--name {name} ")), "{c}");
        assert!(c.contains("--initial-cluster-token cli"), "{c}");
        assert!(c.contains(file.to_str().unwrap()), "{c}");
    }
}

/// Issue 18, "Dry runs change nothing": `etcd snapshot restore --dry-run` into a new
/// data dir and into an existing empty one (mode 0700) checks and prints the plan and
/// leaves the snapshot's and the data dir's parents as they were: no new file or
/// directory (no staging dir), no changed content or mode. On a fixture made by etcd
/// 3.5 (`crates/snapshot/tests/fixtures`).
#[test]
fn cli_snapshot_restore_dry_run_leaves_the_tree_as_it_was_18() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = root.join("fixture.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshot/tests/fixtures/etcd35.snapshot.db"),
        &file,
    )
    .unwrap();
    let empty = root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o700)).unwrap();
    let before = crate::tree::snapshot(root);
    for (data, kind) in [(root.join("new/data"), "new"), (empty, "empty")] {
        let out = restore(&file, &data, &["--dry-run", "-o", "json"]);
        assert!(out.status.success(), "{kind}: {}", text(&out.stderr));
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(plan["dryRun"], true, "{plan}");
        assert_eq!(plan["target"]["kind"], kind, "{plan}");
        assert_eq!(plan["hash"]["state"], "verified", "{plan}");
        assert_eq!(plan["revision"], 144, "{plan}");
        crate::tree::assert_unchanged(
            root,
            &before,
            &format!("etcd snapshot restore --dry-run into a {kind} data dir"),
        );
    }
}

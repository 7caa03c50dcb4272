//! Tier `real_etcd`: `kastellan etcd snapshot save` against real etcd clusters on
//! 127.0.0.1 with mutual TLS (certificates made in the test).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use kastellan_etcd::testing::{EtcdCluster, etcd34, etcd35};

use crate::kastellan;

fn tls_args(etcd: &EtcdCluster) -> Vec<String> {
    let p = |f: &str| etcd.pki.path(f).display().to_string();
    vec![
        format!("--cacert={}", p("ca.crt")),
        format!("--cert={}", p("healthcheck-client.crt")),
        format!("--key={}", p("healthcheck-client.key")),
    ]
}

fn save(file: &Path, args: &[String]) -> Output {
    kastellan()
        .args(["etcd", "snapshot", "save"])
        .arg(file)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn put(etcd: &EtcdCluster, n: usize) -> i64 {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(etcd.put_known_data(n, 300))
}

#[test]
fn real_etcd_35_cli_snapshot_save_three_members() {
    let etcd = EtcdCluster::start(&etcd35(), 3);
    let rev = put(&etcd, 2000);
    let file = etcd.scratch().join("cli.db");
    let mut args = vec![format!("--endpoints={}", etcd.endpoints().join(","))];
    args.extend(tls_args(&etcd));
    args.push("-o=json".into());
    let out = save(&file, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["member"]["role"], "follower", "{doc}");
    assert_eq!(doc["revision"], rev);
    assert!(
        text(&out.stderr).contains("snapshot from member m"),
        "{}",
        text(&out.stderr)
    );
    let theirs = etcd.release.snapshot_status(&file);
    assert_eq!(theirs.revision, rev);
    assert_eq!(doc["totalKey"], theirs.total_key);
    assert_eq!(doc["hash"], theirs.hash);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Compare with etcdctl on the same member.
    let endpoint = doc["endpoint"].as_str().unwrap().to_string();
    let other = etcd.scratch().join("etcdctl.db");
    etcd.etcdctl_snapshot(&endpoint, &other);
    let b = etcd.release.snapshot_status(&other);
    assert_eq!(
        (b.revision, b.total_key),
        (theirs.revision, theirs.total_key)
    );

    // An existing file is kept without --force, replaced with it.
    let before = std::fs::read(&file).unwrap();
    put(&etcd, 10);
    let out = save(&file, &args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
    args.push("--force".into());
    let out = save(&file, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(std::fs::read(&file).unwrap(), before);

    // The human form names the member and prints etcd's figures.
    let out = save(
        &file,
        &args[..args.len() - 2]
            .iter()
            .cloned()
            .chain(["--force".to_string()])
            .collect::<Vec<_>>(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("from member m"), "{stdout}");
    assert!(stdout.contains("REVISION"), "{stdout}");
}

#[test]
fn real_etcd_34_cli_snapshot_save_discovery_and_faults() {
    let mut etcd = EtcdCluster::start(&etcd34(), 1);
    put(&etcd, 100);
    let endpoint = etcd.endpoints()[0].clone();
    let scratch = etcd.scratch().to_path_buf();
    let file = scratch.join("s.db");
    let nothing_left = |f: &Path| {
        assert!(!f.exists());
        assert!(!scratch.join("s.db.part").exists());
    };

    // Discovery: a kubeadm-like /etc/kubernetes elsewhere.
    let etc = scratch.join("etc-kubernetes");
    std::fs::create_dir_all(etc.join("pki/etcd")).unwrap();
    std::fs::create_dir_all(etc.join("manifests")).unwrap();
    for f in ["ca.crt", "healthcheck-client.crt", "healthcheck-client.key"] {
        std::fs::copy(etcd.pki.path(f), etc.join("pki/etcd").join(f)).unwrap();
    }
    std::fs::write(
        etc.join("manifests/etcd.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\nspec:\n  containers:\n  - name: etcd\n    command:\n    - etcd\n    - --advertise-client-urls={endpoint}\n    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n"
        ),
    )
    .unwrap();
    let manifests = format!("--manifests-dir={}", etc.join("manifests").display());
    let out = save(&file, std::slice::from_ref(&manifests));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("the leader") || text(&out.stdout).contains("leader"));
    std::fs::remove_file(&file).unwrap();

    // Wrong endpoint.
    let nowhere = format!("https://127.0.0.1:{}", kastellan_etcd::testing::free_port());
    let mut args = vec![format!("--endpoints={nowhere}"), "--etcd-timeout=2".into()];
    args.extend(tls_args(&etcd));
    let out = save(&file, &args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&nowhere) && err.contains("cannot connect"),
        "{err}"
    );
    nothing_left(&file);

    // A CA that did not sign etcd's certificate.
    let mut args = vec![format!("--endpoints={endpoint}")];
    args.extend(tls_args(&etcd));
    args[1] = format!("--cacert={}", etcd.pki.path("other-ca.crt").display());
    let out = save(&file, &args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not trusted"), "{err}");
    nothing_left(&file);

    // A missing key file, named.
    let mut args = vec![format!("--endpoints={endpoint}")];
    args.extend(tls_args(&etcd));
    args[3] = format!("--key={}", scratch.join("nope.key").display());
    let out = save(&file, &args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nope.key"), "{err}");

    // Incomplete TLS flags.
    let out = save(
        &file,
        &[
            format!("--endpoints={endpoint}"),
            format!("--cacert={}", etcd.pki.path("ca.crt").display()),
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--cert, --key missing"), "{err}");

    // etcd down.
    etcd.kill(0);
    let out = save(&file, &[manifests, "--etcd-timeout=2".into()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no healthy etcd member") && err.contains(&endpoint),
        "{err}"
    );
    nothing_left(&file);
}

//! `kastellan certs check|renew` exit codes and files, on a PKI made by the real kubeadm.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use predicates::prelude::*;

const CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta2
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.77.0.11
nodeRegistration:
  name: cp1
---
apiVersion: kubeadm.k8s.io/v1beta2
kind: ClusterConfiguration
kubernetesVersion: v1.20.2
certificatesDir: /etc/kubernetes/pki
";

/// A node root with kubeadm's PKI and kubeconfigs under etc/kubernetes.
struct Node {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Node {
    fn init() -> Node {
        let cache = std::env::var_os("KASTELLAN_CACHE")
            .map_or_else(|| PathBuf::from("/var/cache/kastellan"), PathBuf::from);
        let kubeadm = cache.join("kubernetes/v1.20.2/bin/kubeadm");
        assert!(
            kubeadm.is_file(),
            "{} is missing: run scripts/build-kubernetes.sh",
            kubeadm.display()
        );
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc/kubernetes/manifests")).unwrap();
        std::fs::write(root.join("kubeadm.yaml"), CONFIG).unwrap();
        for phase in [
            &["certs", "all"][..],
            &["kubeconfig", "all", "--kubeconfig-dir", "/etc/kubernetes"][..],
        ] {
            let out = StdCommand::new(&kubeadm)
                .args(["init", "phase"])
                .args(phase)
                .args(["--config", "/kubeadm.yaml", "--rootfs"])
                .arg(&root)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "kubeadm {phase:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Node { _tmp: tmp, root }
    }

    fn etc(&self) -> PathBuf {
        self.root.join("etc/kubernetes")
    }

    fn dirs(&self) -> Vec<String> {
        vec![
            "--cert-dir".into(),
            self.etc().join("pki").display().to_string(),
            "--kubeconfig-dir".into(),
            self.etc().display().to_string(),
            "--kubelet-pki-dir".into(),
            self.root.join("var/lib/kubelet/pki").display().to_string(),
        ]
    }

    fn kastellan<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("kastellan"));
        cmd.env("NO_COLOR", "1").args(args).args(self.dirs());
        cmd
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn kubeadm_real_certs_check_exit_codes() {
    let node = Node::init();
    node.kastellan(&["certs", "check"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("apiserver").and(predicate::str::contains("364d")));
    let out = node
        .kastellan(&["certs", "check", "-o", "json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["summary"]["ok"], 14);
    assert_eq!(json["summary"]["absent"], 3);
    // Everything expires within 400 days: exit 1.
    node.kastellan(&["certs", "check", "--warn-days", "400"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("EXPIRING"));
    // An unreadable certificate: exit 2, and the message names the file.
    let crt = node.etc().join("pki/apiserver.crt");
    std::fs::write(
        &crt,
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    node.kastellan(&["certs", "check"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(crt.display().to_string()));
}

#[test]
fn kubeadm_real_certs_renew_with_restart() {
    let node = Node::init();
    let manifests = node.etc().join("manifests");
    for c in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        std::fs::write(manifests.join(format!("{c}.yaml")), format!("# {c}\n")).unwrap();
    }
    let md = format!("--manifests-dir={}", manifests.display());
    let crt = node.etc().join("pki/apiserver.crt");
    let before = read(&crt);

    // Dry run: the plan, no change.
    let out = node
        .kastellan(&["certs", "renew", "all", "--dry-run", "-o", "json", &md])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["plan"]["renew"].as_array().unwrap().len(), 10);
    assert_eq!(read(&crt), before);

    // The real thing, with a restart that keeps the manifests out for 0 s.
    node.kastellan(&[
        "certs",
        "renew",
        "all",
        "--restart",
        "--restart-wait",
        "0",
        &md,
    ])
    .assert()
    .code(0)
    .stdout(
        predicate::str::contains("Old files backed up in")
            .and(predicate::str::contains("Restarted static pods"))
            .and(predicate::str::contains("kube-apiserver")),
    );
    assert_ne!(read(&crt), before);
    for c in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert_eq!(
            std::fs::read_to_string(manifests.join(format!("{c}.yaml"))).unwrap(),
            format!("# {c}\n")
        );
    }
    let backups: Vec<_> = std::fs::read_dir(node.etc().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let backup = backups
        .iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kastellan-certs-")
        })
        .unwrap();
    assert_eq!(read(&backup.join("pki/apiserver.crt")), before);
    node.kastellan(&["certs", "check"]).assert().code(0);

    // Refusals: exit 2 with the reason.
    node.kastellan(&["certs", "renew", "ca"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not renewed"));
    node.kastellan(&["certs", "renew", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown certificate 'nope'"));
    std::fs::remove_file(node.etc().join("pki/etcd/ca.key")).unwrap();
    let snapshot = read(&node.etc().join("pki/etcd/server.crt"));
    node.kastellan(&["certs", "renew", "all"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "CA 'etcd-ca' is externally managed",
        ));
    assert_eq!(read(&node.etc().join("pki/etcd/server.crt")), snapshot);
}

/// Renewal on the lab's real control plane: every certificate re-signed, the static
/// pods restarted by moving their manifests out and back, and the control plane serves
/// with the new certificates.
#[test]
fn lab_certs_renew_all_restart_control_plane() {
    let _lock = crate::lab_lock();
    let pre = crate::kastellan().args(["lab", "status"]).output().unwrap();
    assert!(
        !pre.status.success(),
        "a lab is already up; run `kastellan lab down` first"
    );
    struct Down;
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = crate::kastellan().args(["lab", "down"]).status();
        }
    }
    let _down = Down;
    let up = crate::kastellan()
        .args(["lab", "up", "--timeout", "180"])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let pki = Path::new("/var/lib/kastellan/lab/nodes/cp1/etc-kubernetes/pki");
    let before = read(&pki.join("apiserver.crt"));
    let node_exec = |args: &[&str]| {
        let mut c = crate::kastellan();
        c.args(["lab", "exec", "cp1", "--"]).args(args);
        c.output().unwrap()
    };
    let exe = assert_cmd::cargo::cargo_bin!("kastellan")
        .to_string_lossy()
        .into_owned();
    // Sleep a second so that the renewed certificates start later than kubeadm's.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let out = node_exec(&[
        &exe,
        "certs",
        "renew",
        "all",
        "--restart",
        "--restart-wait",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let after = read(&pki.join("apiserver.crt"));
    assert_ne!(before, after, "apiserver.crt was re-signed");
    // kubeadm reads the new dates, and openssl verifies the new leaf against the CA.
    let kubeadm = crate::cache_dir().join("kubernetes/v1.20.2/bin/kubeadm");
    let out = node_exec(&[
        &kubeadm.to_string_lossy(),
        "certs",
        "check-expiration",
        "--config",
        "/etc/kubernetes/kubeadm.yaml",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(pki.join("ca.crt"))
        .arg(pki.join("apiserver.crt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The restarted control plane is healthy with the new certificates.
    let start = std::time::Instant::now();
    loop {
        let out = crate::kastellan()
            .args([
                "status",
                "-o",
                "json",
                "--kubeconfig",
                "/var/lib/kastellan/lab/admin.conf",
            ])
            .output()
            .unwrap();
        if out.status.code() == Some(0) {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(90),
            "control plane not healthy after renewal: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    // The apiserver now serves the renewed certificate.
    let served = node_exec(&[
        "sh",
        "-c",
        "openssl s_client -connect 127.0.0.1:6443 </dev/null 2>/dev/null | openssl x509 -noout -serial",
    ]);
    let on_disk = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(pki.join("apiserver.crt"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&served.stdout),
        String::from_utf8_lossy(&on_disk.stdout)
    );
}

/// The human table of `certs check` and the dry-run plan of `certs renew all`, as the
/// binary prints them, with dates and paths filtered out.
#[test]
fn kubeadm_real_rendered_check_and_plan() {
    let node = Node::init();
    let text = |args: &[&str]| {
        let out = node.kastellan(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = text(&["certs", "check"]);
    let rendered = text(&["certs", "renew", "all", "--dry-run"]);
    let root = node.root.display().to_string();
    insta::with_settings!({filters => vec![
        (root.as_str(), "[ROOT]"),
        (r"[A-Z][a-z]{2} \d{2}, \d{4} \d{2}:\d{2} UTC", "[DATE]"),
        (r"kastellan-certs-\d{8}T\d{6}Z", "kastellan-certs-[STAMP]"),
    ]}, {
        insta::assert_snapshot!("check_table", table);
        insta::assert_snapshot!("renew_dry_run", rendered);
    });
}

/// Issue 18, "Dry runs change nothing": `certs renew all --dry-run` (also with
/// `--restart`) lists what it would renew and leaves the node's tree (PKI, kubeconfigs,
/// manifests, kubelet PKI) as it was: no new file or directory (no backup dir under
/// `tmp/`), no changed content or mode.
#[test]
fn kubeadm_real_certs_renew_dry_run_leaves_the_tree_as_it_was_18() {
    let node = Node::init();
    let manifests = node.etc().join("manifests");
    for c in ["etcd", "kube-apiserver"] {
        std::fs::write(manifests.join(format!("{c}.yaml")), format!("# {c}\n")).unwrap();
    }
    let md = format!("--manifests-dir={}", manifests.display());
    let before = crate::tree::snapshot(&node.root);
    for extra in [&[][..], &["--restart", "--restart-wait", "0"][..]] {
        let out = node
            .kastellan(&["certs", "renew", "all", "--dry-run", "-o", "json", &md])
            .args(extra)
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["dry_run"], true, "{json}");
        assert_eq!(
            json["plan"]["renew"].as_array().unwrap().len(),
            10,
            "{json}"
        );
        crate::tree::assert_unchanged(
            &node.root,
            &before,
            &format!("certs renew all --dry-run {extra:?}"),
        );
    }
}

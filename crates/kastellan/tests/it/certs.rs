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
    let sd = format!("--state-dir={}", node.root.join("state").display());
    node.kastellan(&[
        "certs",
        "renew",
        "all",
        "--restart",
        "--restart-wait",
        "0",
        &md,
        &sd,
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
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]"),
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

/// The certificate files `certs renew all` replaces (the PEM of each, from its file or
/// its kubeconfig) with the key beside it, and every file with its mode.
struct Renewed {
    /// name -> (certificate PEM, key PEM)
    certs: std::collections::BTreeMap<String, (Vec<u8>, Vec<u8>)>,
    /// file -> mode
    modes: std::collections::BTreeMap<PathBuf, u32>,
}

const LEAVES: [(&str, &str, &str); 7] = [
    ("apiserver", "pki/apiserver", "pki/ca.crt"),
    (
        "apiserver-kubelet-client",
        "pki/apiserver-kubelet-client",
        "pki/ca.crt",
    ),
    (
        "apiserver-etcd-client",
        "pki/apiserver-etcd-client",
        "pki/etcd/ca.crt",
    ),
    (
        "front-proxy-client",
        "pki/front-proxy-client",
        "pki/front-proxy-ca.crt",
    ),
    ("etcd-server", "pki/etcd/server", "pki/etcd/ca.crt"),
    ("etcd-peer", "pki/etcd/peer", "pki/etcd/ca.crt"),
    (
        "etcd-healthcheck-client",
        "pki/etcd/healthcheck-client",
        "pki/etcd/ca.crt",
    ),
];
const CONFS: [&str; 3] = ["admin.conf", "controller-manager.conf", "scheduler.conf"];

fn renewed(node: &Node) -> Renewed {
    use std::os::unix::fs::PermissionsExt as _;
    let etc = node.etc();
    let mut certs = std::collections::BTreeMap::new();
    let mut modes = std::collections::BTreeMap::new();
    let mut mode = |p: &Path| {
        modes.insert(
            p.to_path_buf(),
            std::fs::metadata(p).unwrap().permissions().mode() & 0o7777,
        );
    };
    for (name, base, _) in LEAVES {
        let (crt, key) = (
            etc.join(format!("{base}.crt")),
            etc.join(format!("{base}.key")),
        );
        mode(&crt);
        mode(&key);
        certs.insert(name.to_string(), (read(&crt), read(&key)));
    }
    for conf in CONFS {
        let p = etc.join(conf);
        mode(&p);
        let creds = kastellan_pki::kubeconfig::client_credentials(
            &p,
            &std::fs::read_to_string(&p).unwrap(),
        )
        .unwrap();
        let pem = |c: Option<kastellan_pki::kubeconfig::Credential>| match c {
            Some(kastellan_pki::kubeconfig::Credential::Embedded { pem, .. }) => pem,
            other => panic!("{conf}: not embedded: {other:?}"),
        };
        certs.insert(
            conf.to_string(),
            (pem(Some(creds.certificate)), pem(creds.key)),
        );
    }
    Renewed { certs, modes }
}

/// `openssl verify` of `cert_pem` against `ca`, and whether `key_pem` is its key.
fn verify_pair(dir: &Path, name: &str, cert_pem: &[u8], key_pem: &[u8], ca: &Path) {
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert_pem).unwrap();
    std::fs::write(&k, key_pem).unwrap();
    let run = |args: &[&str]| {
        let out = StdCommand::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let verified = run(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        c.to_str().unwrap(),
    ]);
    assert!(verified.contains(": OK"), "{name}: {verified}");
    assert_eq!(
        run(&["x509", "-noout", "-pubkey", "-in", c.to_str().unwrap()]),
        run(&["pkey", "-pubout", "-in", k.to_str().unwrap()]),
        "{name}: the key is the certificate's"
    );
}

/// Waits until the journal records `done` steps done, while `child` lives.
fn wait_for_done(child: &mut std::process::Child, journal: &Path, done: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Ok(b) = std::fs::read(journal)
            && let Ok(j) = serde_json::from_slice::<serde_json::Value>(&b)
            && j["done"].as_u64() == Some(done)
        {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before step {done} was done");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "step {done} was not done within 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Issue 10: `certs renew all --new-key` killed with SIGKILL at a step boundary (the
/// executor's debug pause point, then `kill -9` of the process the test started), then
/// `--resume` finishes: every certificate renewed exactly once (one `done` per step in
/// the journal), each verifies against its CA with its key, modes kept, the old files
/// in the backup directory, and no key material in the journal nor in
/// `--dry-run -o json`.
#[test]
fn kubeadm_real_certs_renew_resumes_after_sigkill() {
    use std::os::unix::fs::PermissionsExt as _;
    let node = Node::init();
    let state = node.root.join("state");
    let sd = format!("--state-dir={}", state.display());
    let before = renewed(&node);

    // The dry run: the executor's steps, no key material, nothing written.
    let out = node
        .kastellan(&[
            "certs",
            "renew",
            "all",
            "--new-key",
            "--dry-run",
            "-o",
            "json",
            &sd,
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 11, "a backup and 10 renewals: {json}");
    assert_eq!(json["exec_plan"]["kind"], "certs-renew");
    assert!(!state.exists(), "a dry run writes no journal");

    // The run, paused after step 4 (the backup and three renewals), killed there.
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin!("kastellan"));
    cmd.env("NO_COLOR", "1")
        .env("KASTELLAN_EXEC_PAUSE_AFTER", "4")
        .args(["certs", "renew", "all", "--new-key", &sd])
        .args(node.dirs())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let journal = state.join("journal.json");
    wait_for_done(&mut child, &journal, 4);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let mode = std::fs::metadata(&journal).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the journal is private");
    assert!(
        !String::from_utf8(read(&journal))
            .unwrap()
            .contains("PRIVATE KEY")
    );
    let half = renewed(&node);
    let changed = |r: &Renewed| {
        r.certs
            .iter()
            .filter(|(n, v)| before.certs[*n] != **v)
            .count()
    };
    assert_eq!(
        changed(&half),
        3,
        "three certificates renewed before the kill"
    );

    // A new run is refused while the journal is there.
    node.kastellan(&["certs", "renew", "all", &sd])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--resume"));

    // The resume finishes at step 5.
    node.kastellan(&["certs", "renew", "--resume", &sd])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("at step 5 of 11"))
        .stdout(predicate::str::contains("Old files backed up in"));
    assert!(!journal.exists(), "the journal is archived");
    let archived: Vec<PathBuf> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(archived.len(), 1, "{archived:?}");
    let text = String::from_utf8(read(&archived[0])).unwrap();
    assert!(!text.contains("PRIVATE KEY"));
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    for step in 1..=11u64 {
        let done = j["log"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["step"] == step && e["event"] == "done")
            .count();
        assert_eq!(done, 1, "step {step} done exactly once: {}", j["log"]);
    }

    // Every certificate renewed once more than before: the three done before the kill
    // kept, the rest new; each verifies with its CA and its (new) key; modes kept.
    let after = renewed(&node);
    assert_eq!(after.modes, before.modes, "modes kept");
    let scratch = tempfile::tempdir().unwrap();
    let etc = node.etc();
    for (name, (crt, key)) in &after.certs {
        assert_ne!(crt, &before.certs[name].0, "{name} renewed");
        assert_ne!(key, &before.certs[name].1, "{name} has a new key");
        if half.certs[name] != before.certs[name] {
            assert_eq!(
                &half.certs[name],
                &(crt.clone(), key.clone()),
                "{name} once"
            );
        }
        let ca = LEAVES
            .iter()
            .find(|(n, ..)| n == name)
            .map_or(etc.join("pki/ca.crt"), |(_, _, ca)| etc.join(ca));
        verify_pair(scratch.path(), name, crt, key, &ca);
    }
    // The old files are in the backup directory.
    let backup = std::fs::read_dir(etc.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kastellan-certs-")
        })
        .unwrap();
    assert_eq!(
        read(&backup.join("pki/apiserver.crt")),
        before.certs["apiserver"].0
    );
    assert_eq!(
        read(&backup.join("pki/apiserver.key")),
        before.certs["apiserver"].1
    );
    node.kastellan(&["certs", "check"]).assert().code(0);
}

/// Issue 10: a plan saved from `--dry-run -o json` applies with `--plan` while the
/// node's certificates are as they were, and is refused once they changed, with the
/// difference named.
#[test]
fn kubeadm_real_certs_renew_saved_plan_is_checked_against_the_node() {
    let node = Node::init();
    let state = node.root.join("state");
    let sd = format!("--state-dir={}", state.display());
    let out = node
        .kastellan(&[
            "certs",
            "renew",
            "apiserver",
            "admin.conf",
            "--dry-run",
            "-o",
            "json",
            &sd,
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let plan = node.root.join("plan.json");
    std::fs::write(&plan, &out).unwrap();
    let pf = format!("--plan={}", plan.display());
    let crt = node.etc().join("pki/apiserver.crt");
    let old = read(&crt);
    // --plan --dry-run checks and shows, changes nothing.
    node.kastellan(&["certs", "renew", &pf, "--dry-run", &sd])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("renew apiserver: re-sign"));
    assert_eq!(read(&crt), old);
    node.kastellan(&["certs", "renew", &pf, &sd])
        .assert()
        .code(0);
    assert_ne!(read(&crt), old);
    // Applied again: the serials changed since, and the refusal names them.
    node.kastellan(&["certs", "renew", &pf, &sd])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("refused").and(predicate::str::contains(
                "certificates.apiserver.serial: was",
            )),
        );
    // A plan edited by hand is refused.
    let out = node
        .kastellan(&[
            "certs",
            "renew",
            "apiserver",
            "--dry-run",
            "-o",
            "json",
            &sd,
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let mut json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    json["exec_plan"]["steps"][1]["action"]["renewal"]["writes"][0] = "/etc/hostname".into();
    std::fs::write(&plan, serde_json::to_vec(&json).unwrap()).unwrap();
    node.kastellan(&["certs", "renew", &pf, &sd])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("edited by hand"));
}

/// Issue 10: `certs renew apiserver --restart` killed while the static pod manifests
/// are held out (after the hold step) resumes and puts them back; a resumed hold keeps
/// those already out.
#[test]
fn kubeadm_real_certs_renew_killed_while_the_manifests_are_out_resumes() {
    let node = Node::init();
    let manifests = node.etc().join("manifests");
    std::fs::write(manifests.join("kube-apiserver.yaml"), "# kube-apiserver\n").unwrap();
    let md = format!("--manifests-dir={}", manifests.display());
    let state = node.root.join("state");
    let sd = format!("--state-dir={}", state.display());
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin!("kastellan"));
    // Steps: 1 backup, 2 renew apiserver, 3 hold, 4 release.
    cmd.env("NO_COLOR", "1")
        .env("KASTELLAN_EXEC_PAUSE_AFTER", "3")
        .args([
            "certs",
            "renew",
            "apiserver",
            "--restart",
            "--restart-wait",
            "0",
            &md,
            &sd,
        ])
        .args(node.dirs())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let journal = state.join("journal.json");
    wait_for_done(&mut child, &journal, 3);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    assert!(
        !manifests.join("kube-apiserver.yaml").exists(),
        "held out at the kill"
    );
    node.kastellan(&["certs", "renew", "--resume", &sd])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("at step 4 of 4"));
    assert_eq!(
        std::fs::read_to_string(manifests.join("kube-apiserver.yaml")).unwrap(),
        "# kube-apiserver\n"
    );
    let staging: Vec<_> = std::fs::read_dir(node.etc().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kastellan-restart-"))
        .collect();
    assert!(staging.is_empty(), "staging removed: {staging:?}");
}

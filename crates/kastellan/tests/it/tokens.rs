//! Tier `lab`: bootstrap tokens and join commands against the real kubeadm v1.20.2 and
//! the lab's apiserver: kubeadm lists kastellan's tokens and kastellan kubeadm's, both
//! print the same join command for one token, kubeadm's own `join phase
//! control-plane-prepare download-certs` accepts kastellan's certificate upload, and
//! kastellan opens kubeadm's.

use std::path::Path;
use std::process::{Command, Output};

use kastellan_bootstrap::certs::{self, CertificateKey};

use crate::LabGuard;
use crate::{cache_dir, kastellan, kubectl, kubectl_stdin, lab_lock};
use crate::{output_text as text, stdout_ok as ok};

const ADMIN: &str = "/var/lib/kastellan/lab/admin.conf";
const PKI: &str = "/var/lib/kastellan/lab/nodes/cp1/etc-kubernetes/pki";

fn ours(args: &[&str]) -> Output {
    kastellan()
        .env("KUBECONFIG", ADMIN)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap()
}

fn kubeadm() -> Command {
    let bin = cache_dir().join("kubernetes/v1.20.2/bin/kubeadm");
    assert!(bin.is_file(), "{} missing", bin.display());
    Command::new(bin)
}

/// `kubeadm token list`, as JSON objects keyed by token ID.
fn kubeadm_tokens() -> serde_json::Map<String, serde_json::Value> {
    let out = ok(kubeadm()
        .args(["token", "list", "--kubeconfig", ADMIN, "-o", "json"])
        .output()
        .unwrap());
    serde_json::Deserializer::from_str(&out)
        .into_iter::<serde_json::Value>()
        .map(|v| {
            let v = v.unwrap();
            let id = v["token"].as_str().unwrap()[..6].to_string();
            (id, v)
        })
        .collect()
}

fn ours_listed() -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&ok(ours(&["token", "list", "-o", "json"]))).unwrap();
    v["tokens"].as_array().unwrap().clone()
}

fn secret_exists(name: &str) -> bool {
    kubectl()
        .args(["-n", "kube-system", "get", "secret", name])
        .output()
        .unwrap()
        .status
        .success()
}

fn bootstrap_secrets() -> usize {
    let out = ok(kubectl()
        .args([
            "-n",
            "kube-system",
            "get",
            "secrets",
            "--field-selector",
            "type=bootstrap.kubernetes.io/token",
            "-o",
            "name",
        ])
        .output()
        .unwrap());
    out.lines().count()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn flag(words: &[String], name: &str) -> String {
    let i = words.iter().position(|w| w == name).unwrap();
    words[i + 1].clone()
}

/// Every file kubeadm uploads, compared with cp1's.
fn same_as_cp1(root: &Path) {
    for f in kastellan_bootstrap::certs::files(Path::new(PKI), None) {
        let rel = f.path.strip_prefix(PKI).unwrap();
        let got = root.join("etc/kubernetes/pki").join(rel);
        assert_eq!(
            std::fs::read(&got).unwrap_or_else(|e| panic!("{}: {e}", got.display())),
            std::fs::read(&f.path).unwrap(),
            "{}",
            rel.display()
        );
    }
}

/// Tokens and join commands, both ways against the real kubeadm (see the module).
#[test]
fn lab_tokens_agree_with_kubeadm() {
    let _lock = lab_lock();
    let _guard = LabGuard;
    let started = std::time::Instant::now();
    let up = kastellan().args(["lab", "up"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    eprintln!("lab up in {:?}", started.elapsed());

    // A dry run creates nothing: no token, no certificates.
    let before = bootstrap_secrets();
    let dry = ok(ours(&[
        "token",
        "create",
        "--token",
        "dry000.0123456789abcdef",
        "--dry-run",
    ]));
    assert!(
        dry.contains("would create Secret kube-system/bootstrap-token-dry000"),
        "{dry}"
    );
    let dry = ok(ours(&[
        "join-command",
        "--control-plane",
        "--cert-dir",
        PKI,
        "--dry-run",
    ]));
    assert!(
        dry.contains("would create Secret kube-system/kubeadm-certs"),
        "{dry}"
    );
    assert!(dry.contains("--certificate-key <new key>"), "{dry}");
    assert!(!secret_exists("bootstrap-token-dry000"));
    assert!(!secret_exists("kubeadm-certs"));
    assert_eq!(bootstrap_secrets(), before, "a dry run created a token");

    // kastellan's token, as kubeadm lists it.
    let token = ok(ours(&[
        "token",
        "create",
        "--ttl",
        "2h",
        "--description",
        "made by kastellan",
        "--usages",
        "signing,authentication",
        "--groups",
        "system:bootstrappers:kubeadm:default-node-token,system:bootstrappers:lab",
    ]));
    let token = token.trim().to_string();
    assert_eq!(token.len(), 23, "{token}");
    let id = token[..6].to_string();
    let theirs = kubeadm_tokens();
    let t = &theirs[&id];
    assert_eq!(t["token"], token.as_str(), "kubeadm reads the same secret");
    assert_eq!(t["description"], "made by kastellan");
    assert_eq!(
        t["usages"],
        serde_json::json!(["authentication", "signing"])
    );
    assert_eq!(
        t["groups"],
        serde_json::json!([
            "system:bootstrappers:kubeadm:default-node-token",
            "system:bootstrappers:lab"
        ])
    );
    let expires: jiff::Timestamp = t["expires"].as_str().unwrap().parse().unwrap();
    let left = expires.as_second() - jiff::Timestamp::now().as_second();
    assert!((7000..=7200).contains(&left), "TTL 2h, {left}s left");

    // kubeadm's token, as kastellan lists it (without its secret).
    let made = ok(kubeadm()
        .args([
            "token",
            "create",
            "--kubeconfig",
            ADMIN,
            "--description",
            "by kubeadm",
        ])
        .output()
        .unwrap());
    let kubeadm_token = made.trim().to_string();
    let kubeadm_id = &kubeadm_token[..6];
    let listed = ours_listed();
    let row = listed
        .iter()
        .find(|r| r["id"] == kubeadm_id)
        .unwrap_or_else(|| panic!("{kubeadm_id} not listed: {listed:?}"));
    assert_eq!(row["description"], "by kubeadm");
    assert_eq!(row["life"]["state"], "valid");
    let table = ok(ours(&["token", "list"]));
    assert!(table.contains(kubeadm_id) && table.contains(&id), "{table}");
    assert!(
        !table.contains(&kubeadm_token[7..]) && !table.contains(&token[7..]),
        "a secret in the list:\n{table}"
    );

    // One token, one join command: kubeadm's and ours agree word for word.
    let theirs = ok(kubeadm()
        .args([
            "token",
            "create",
            "--kubeconfig",
            ADMIN,
            "--print-join-command",
        ])
        .output()
        .unwrap());
    let theirs = words(&theirs);
    let join_token = flag(&theirs, "--token");
    let ours_line = ok(ours(&["join-command", "--token", &join_token]));
    assert_eq!(words(&ours_line), theirs);
    let printed = ok(ours(&["token", "create", "--print-join-command"]));
    assert_eq!(
        flag(&words(&printed), "--discovery-token-ca-cert-hash"),
        flag(&theirs, "--discovery-token-ca-cert-hash")
    );

    // Delete: a dry run keeps them, then both are gone from kubeadm's list.
    let dry = ok(ours(&["token", "delete", &id, kubeadm_id, "--dry-run"]));
    assert!(dry.contains("would delete"), "{dry}");
    let list = kubeadm_tokens();
    assert!(list.contains_key(&id) && list.contains_key(kubeadm_id));
    let unknown = ours(&["token", "delete", &id, "zzzzzz"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(
        kubeadm_tokens().contains_key(&id),
        "an unknown ID deleted something"
    );
    ok(ours(&["token", "delete", &id, &kubeadm_token]));
    let list = kubeadm_tokens();
    assert!(!list.contains_key(&id) && !list.contains_key(kubeadm_id));

    // An expired token is flagged. The controller-manager's token cleaner deletes one
    // at once, so it is held (SIGSTOP) for the moment of the listing.
    let cm = crate::lab::pod_process("cp1", "kube-controller-manager")
        .proc
        .pid;
    let cm = nix::unistd::Pid::from_raw(cm as i32);
    struct Resume(nix::unistd::Pid);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
        }
    }
    nix::sys::signal::kill(cm, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let resume = Resume(cm);
    let made = kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bootstrap-token-old001, namespace: kube-system}\n\
         type: bootstrap.kubernetes.io/token\nstringData: {token-id: old001, token-secret: 0123456789abcdef, \
         expiration: \"2020-01-01T00:00:00Z\", usage-bootstrap-authentication: \"true\", usage-bootstrap-signing: \"true\"}\n",
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let table = ok(ours(&["token", "list"]));
    let listed = ours_listed();
    drop(resume);
    let row = table
        .lines()
        .find(|l| l.contains("old001"))
        .unwrap_or_default();
    assert!(
        row.contains("expired") && row.contains("2020-01-01T00:00:00Z"),
        "{table}"
    );
    let row = listed.iter().find(|r| r["id"] == "old001").unwrap();
    assert_eq!(row["life"]["state"], "expired");

    // --control-plane: kubeadm's own download-certs takes kastellan's upload, with the
    // token's group and the key printed; the files it writes are cp1's.
    let out = ok(ours(&[
        "join-command",
        "--control-plane",
        "--cert-dir",
        PKI,
    ]));
    let line = words(&out);
    assert_eq!(line[..2], ["kubeadm", "join"]);
    let key = flag(&line, "--certificate-key");
    let owner: serde_json::Value = serde_json::from_str(&ok(kubectl()
        .args([
            "-n",
            "kube-system",
            "get",
            "secret",
            "kubeadm-certs",
            "-o",
            "json",
        ])
        .output()
        .unwrap()))
    .unwrap();
    let owner = owner["metadata"]["ownerReferences"][0]["name"]
        .as_str()
        .unwrap()
        .strip_prefix("bootstrap-token-")
        .unwrap()
        .to_string();
    let t = &kubeadm_tokens()[&owner];
    assert_eq!(
        t["description"],
        "Proxy for managing TTL for the kubeadm-certs secret"
    );
    assert!(
        t.get("usages")
            .is_none_or(|u| u.as_array().is_none_or(Vec::is_empty)),
        "{t}"
    );
    let root = tempfile::tempdir().unwrap();
    let dl = kubeadm()
        .args(["join", "phase", "control-plane-prepare", "download-certs"])
        .arg(&line[2])
        .args(["--token", &flag(&line, "--token")])
        .args([
            "--discovery-token-ca-cert-hash",
            &flag(&line, "--discovery-token-ca-cert-hash"),
        ])
        .args(["--control-plane", "--certificate-key", &key, "--rootfs"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(dl.status.success(), "{}", text(&dl));
    same_as_cp1(root.path());

    // And the other way: kubeadm's upload, opened with kastellan's code.
    let key = CertificateKey::generate().unwrap();
    let config = root.path().join("upload.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\ncertificateKey: {key}\n\
             nodeRegistration: {{name: cp1, criSocket: /run/containerd/containerd.sock}}\n---\n\
             apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n\
             kubernetesVersion: v1.20.2\ncertificatesDir: {PKI}\n"
        ),
    )
    .unwrap();
    ok(kubeadm()
        .args([
            "init",
            "phase",
            "upload-certs",
            "--upload-certs",
            "--kubeconfig",
            ADMIN,
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap());
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_str(&ok(kubectl()
        .args([
            "-n",
            "kube-system",
            "get",
            "secret",
            "kubeadm-certs",
            "-o",
            "json",
        ])
        .output()
        .unwrap()))
    .unwrap();
    let opened = certs::open_secret(&secret, &key).unwrap();
    for f in certs::files(Path::new(PKI), None) {
        assert_eq!(opened[&f.key], std::fs::read(&f.path).unwrap(), "{}", f.key);
    }
    eprintln!("lab_tokens done in {:?}", started.elapsed());
}

/// Malformed tokens, groups, usages and IDs are refused at the command line (exit 2),
/// and a mistyped token's secret part is not echoed back.
#[test]
fn cli_tokens_bad_input_exits_2_without_echoing_a_secret() {
    for args in [
        &["token", "create", "--token", "abcdef.0123456789ABCDEF"][..],
        &["token", "create", "--groups", "system:masters"],
        &["token", "create", "--usages", "signing,everything"],
        &["token", "create", "--ttl", "soon"],
        &["token", "delete", "NOPE"],
        &["join-command", "--token", "abcdef.0123456789abcde"],
    ] {
        let out = kastellan()
            .env("KUBECONFIG", "/nonexistent")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            !err.contains("0123456789"),
            "{args:?} echoed the secret: {err}"
        );
    }
    let help = kastellan().args(["--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("token") && help.contains("join-command"),
        "{help}"
    );
}

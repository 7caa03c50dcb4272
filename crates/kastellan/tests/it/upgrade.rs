//! Tier `lab`: real kubeadm upgrades on the lab (v1.20.2 to v1.21.0, both built from
//! Debian's source), with real dpkg/apt in every node.

use std::process::{Command, Output};

use crate::{cache_dir, kastellan, kubectl, lab_lock};

/// Tears the lab down when the test ends, also on failure.
struct LabGuard;

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = kastellan().args(["lab", "down"]).status();
    }
}

/// Debug builds pause here for crash tests (`kastellan_exec::PAUSE_ENV`).
const PAUSE: &str = "KASTELLAN_EXEC_PAUSE_AFTER";
const STATE: &str = "/var/lib/kastellan/upgrade-test";
/// Where cp1 writes the bundle made before the first change (the lab's nodes see the
/// host's /var/lib/kastellan).
const BACKUPS: &str = "/var/lib/kastellan/upgrade-test/backups";

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a shell line in a lab node, as an operator at its console would.
fn on(node: &str, line: &str) -> Output {
    kastellan()
        .args(["lab", "exec", node, "--", "sh", "-c", line])
        .output()
        .unwrap()
}

fn json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    serde_json::from_str(&ok(out, &format!("{cmd:?}"))).unwrap()
}

/// Each Node's kubelet version, by name.
fn kubelet_versions() -> Vec<(String, String)> {
    let v = json(kubectl().args(["get", "nodes", "-o", "json"]));
    let mut out: Vec<(String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                n["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Per node and package, as `kastellan versions --packages` reads them over ssh:
/// (node, package, installed, held, repository minor).
fn packages() -> Vec<(String, String, String, bool, String)> {
    let v = json(
        kastellan()
            .env("KUBECONFIG", "/var/lib/kastellan/lab/admin.conf")
            // A date inside both minors' support windows: exit 0 means no finding.
            .args([
                "versions",
                "--packages",
                "--date",
                "2021-06-01",
                "-o",
                "json",
            ]),
    );
    let mut out = Vec::new();
    for n in v["nodes"].as_array().unwrap() {
        let node = n["node"].as_str().unwrap();
        assert!(n["error"].is_null(), "{n}");
        let repo = &n["repositories"][0];
        assert_eq!(repo["kind"], "perMinor", "{n}");
        for p in n["packages"].as_array().unwrap() {
            out.push((
                node.to_string(),
                p["name"].as_str().unwrap().to_string(),
                p["installed"].as_str().unwrap_or("-").to_string(),
                p["held"].as_bool().unwrap(),
                repo["minor"].as_str().unwrap().to_string(),
            ));
        }
    }
    out.sort();
    out
}

fn expected(version: &str, minor: &str) -> Vec<(String, String, String, bool, String)> {
    let mut out = Vec::new();
    for node in ["cp1", "w1"] {
        for p in ["kubeadm", "kubectl", "kubelet"] {
            out.push((node.into(), p.into(), version.into(), true, minor.into()));
        }
    }
    out
}

/// Each node's package state files (dpkg database, apt sources), as bytes.
fn package_files() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for node in ["cp1", "w1"] {
        for f in [
            "var-lib-dpkg/status",
            "etc-apt/sources.list.d/kubernetes.list",
        ] {
            let path = format!("/var/lib/kastellan/lab/nodes/{node}/root/{f}");
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

/// `kastellan upgrade apply` (a fresh run, or `--resume`) with a debug build's pause
/// point after `step`: waits until it says it paused, then kills it with SIGKILL.
fn apply_killed_after(step: usize, fresh: bool) {
    use std::io::BufRead as _;
    let mut child = kastellan()
        .env("KUBECONFIG", "/var/lib/kastellan/lab/admin.conf")
        .env(PAUSE, step.to_string())
        .args(["upgrade", "apply", "--state-dir", STATE])
        .args(if fresh {
            vec![
                "--to",
                "v1.21.0",
                "--yes",
                "--backup-dir",
                BACKUPS,
                "--backup-allow-unencrypted-secrets",
            ]
        } else {
            vec!["--resume"]
        })
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = Vec::new();
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let paused = line.contains("paused after step");
        said.push(line);
        if paused {
            break;
        }
    }
    assert!(
        said.iter().any(|l| l.contains("paused after step")),
        "never paused after step {step}: {}",
        said.join("\n")
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

fn apply(args: &[&str]) -> Output {
    kastellan()
        .env("KUBECONFIG", "/var/lib/kastellan/lab/admin.conf")
        .args(["upgrade", "apply", "--state-dir", STATE])
        .args(args)
        .output()
        .unwrap()
}

/// A process in a lab node that holds dpkg's locks (`lock-frontend` and `lock`, fcntl
/// locks as apt and dpkg take them) until dropped; killed by its pid, which it wrote.
struct DpkgLockHolder {
    child: std::process::Child,
    pid: u32,
}

impl DpkgLockHolder {
    fn start(node: &str) -> DpkgLockHolder {
        let pidfile = format!("{STATE}/dpkg-lock-holder.pid");
        let _ = std::fs::remove_file(&pidfile);
        let script = format!(
            "echo $$ > {pidfile}; exec python3 -c 'import fcntl, time; \
             fs = [open(\"/var/lib/dpkg/\" + n, \"w\") for n in (\"lock-frontend\", \"lock\")]; \
             [fcntl.lockf(f, fcntl.LOCK_EX) for f in fs]; \
             print(\"locked\", flush=True); time.sleep(600)'"
        );
        let mut child = kastellan()
            .args(["lab", "exec", node, "--", "sh", "-c", &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        let pid = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        DpkgLockHolder { child, pid }
    }
}

impl Drop for DpkgLockHolder {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

/// The whole upgrade of a 1+1 lab with real packages, v1.20.2 to v1.21.0, by
/// `kastellan upgrade apply` over the lab's sshd: a dry run that changes nothing, a
/// stale saved plan refused, a backup bundle made and verified on cp1 first, a run
/// killed with SIGKILL twice (after `kubeadm upgrade apply` on cp1, between the nodes)
/// and resumed, the cluster-wide lock refusing a second run, a drain that stops the run on w1 (CoreDNS's last ready replicas) and a
/// resume that goes past it, a package step that fails on w1 while another process
/// holds its dpkg lock and a resume once it is gone; every step done exactly once.
/// Then what an operator checks: the API's versions, the new binaries running, each node's packages held at
/// the new version, the data still there, and the host's own packages untouched.
#[test]
fn lab_upgrade_apply_resumes_after_sigkill_and_a_failed_drain() {
    let _lock = lab_lock();
    for v in ["v1.20.2", "v1.21.0"] {
        assert!(
            cache_dir()
                .join(format!("kubernetes/{v}/bin/kubeadm"))
                .is_file(),
            "Kubernetes {v} is not built: run scripts/build-kubernetes.sh {v}"
        );
    }
    let _ = std::fs::remove_dir_all(STATE);
    let host_dpkg_before = std::fs::read("/var/lib/dpkg/status").unwrap();
    let _guard = LabGuard;
    ok(
        kastellan()
            .args(["lab", "up", "--workers", "1", "--ssh", "--packages"])
            .output()
            .unwrap(),
        "lab up --packages",
    );
    ok(
        kubectl()
            .args([
                "create",
                "configmap",
                "before-upgrade",
                "--from-literal=k=v",
            ])
            .output()
            .unwrap(),
        "kubectl create configmap",
    );
    // Each node: its own dpkg database, the v1.20 repository, the three packages held,
    // as kastellan reads them over ssh.
    let madison = ok(on("cp1", "apt-cache madison kubeadm"), "madison");
    assert!(
        madison.contains("1.20.2-1.1") && !madison.contains("1.21.0"),
        "{madison}"
    );
    assert_eq!(packages(), expected("1.20.2-1.1", "1.20"));

    // The dry run prints every command per node and changes nothing.
    let before = package_files();
    let dry = ok(
        apply(&[
            "--to",
            "v1.21.0",
            "--dry-run",
            "--backup-dir",
            BACKUPS,
            "--backup-allow-unencrypted-secrets",
        ]),
        "--dry-run",
    );
    for line in [
        "backup create --dir /var/lib/kastellan/upgrade-test/backups --allow-unencrypted-secrets; ",
        "1.21 cp1",
        "kubeadm upgrade apply v1.21.0 --yes",
        "1.21 w1",
        "kubeadm upgrade node",
        "apt-get install -y --allow-change-held-packages kubelet='1.21.0-*' kubectl='1.21.0-*'",
        "kastellan node drain w1 --ignore-daemonsets",
    ] {
        assert!(dry.contains(line), "{line} missing from\n{dry}");
    }
    assert_eq!(package_files(), before, "the dry run changed a node");
    assert!(
        !std::path::Path::new(STATE)
            .join("upgrade-journal.json")
            .exists()
    );
    // A saved plan is applied only while the cluster matches it.
    let saved = ok(
        kastellan()
            .env("KUBECONFIG", "/var/lib/kastellan/lab/admin.conf")
            .args(["upgrade", "plan", "--to", "v1.21.0", "-o", "json"])
            .output()
            .unwrap(),
        "upgrade plan",
    );
    let mut stale: serde_json::Value = serde_json::from_str(&saved).unwrap();
    stale["facts"]["nodes"][1]["kubelet"] = "v1.20.1".into();
    let stale_file = std::env::temp_dir().join("kastellan-stale-upgrade-plan.json");
    std::fs::write(&stale_file, stale.to_string()).unwrap();
    let refused = apply(&[
        "--plan",
        stale_file.to_str().unwrap(),
        "--to",
        "v1.21.0",
        "--yes",
    ]);
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("v1.20.1") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(package_files(), before, "a refused plan changed a node");
    let _ = std::fs::remove_file(&stale_file);
    let refused = apply(&["--to", "v1.21.0"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a missing --yes is a usage error"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("add --yes"));

    // Killed right after `kubeadm upgrade apply` (step 8), and after cp1's gate (16).
    apply_killed_after(8, true);
    let again = apply(&["--to", "v1.21.0", "--yes"]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--resume"),
        "a second run while one is interrupted must point at --resume"
    );
    // The cluster-wide lock names the killed run; a run from elsewhere is refused.
    let lease = json(kubectl().args([
        "-n",
        "kube-system",
        "get",
        "lease",
        "kastellan-upgrade",
        "-o",
        "json",
    ]));
    let progress = lease["metadata"]["annotations"]["kastellan.dev/upgrade-progress"].clone();
    assert_eq!(progress, "step 8/30: 1.21 cp1", "{lease}");
    let elsewhere = kastellan()
        .env("KUBECONFIG", "/var/lib/kastellan/lab/admin.conf")
        .args([
            "upgrade",
            "apply",
            "--to",
            "v1.21.0",
            "--yes",
            "--state-dir",
            "/var/lib/kastellan/upgrade-test-2",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&elsewhere.stderr).into_owned();
    assert_eq!(elsewhere.status.code(), Some(2), "{err}");
    assert!(
        err.contains("another upgrade run holds the lock: Lease kube-system/kastellan-upgrade"),
        "{err}"
    );
    assert!(err.contains("only --break-lock takes it over"), "{err}");
    assert!(
        !std::path::Path::new("/var/lib/kastellan/upgrade-test-2/upgrade-journal.json").exists()
    );
    let _ = std::fs::remove_dir_all("/var/lib/kastellan/upgrade-test-2");
    apply_killed_after(16, false);

    // The resume stops on w1's drain: CoreDNS's two ready pods are all on w1.
    let failed = apply(&["--resume"]);
    let err = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert_eq!(failed.status.code(), Some(2), "{err}");
    assert!(err.contains("resuming upgrade-v1.21.0-"), "{err}");
    assert!(err.contains("failed on w1"), "{err}");
    assert!(
        err.contains("last ready replica: Deployment/coredns"),
        "{err}"
    );
    assert!(
        err.contains("w1 now: kubeadm upgraded the node, the kubelet not yet"),
        "{err}"
    );
    assert!(
        err.contains("kastellan upgrade apply --resume --state-dir"),
        "{err}"
    );

    // The operator accepts it, but something else holds w1's dpkg lock (as
    // unattended-upgrades does): the package step after the drain fails on w1.
    let holder = DpkgLockHolder::start("w1");
    let failed = apply(&["--resume", "--allow-drain-hazards"]);
    let err = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert_eq!(failed.status.code(), Some(2), "{err}");
    assert!(
        err.contains("step 24 of 30 (1.21 w1) failed on w1"),
        "{err}"
    );
    assert!(err.contains("apt-mark unhold kubelet kubectl"), "{err}");
    assert!(err.contains("w1 now: cordoned;"), "{err}");
    let cordoned = json(kubectl().args(["get", "node", "w1", "-o", "json"]));
    assert_eq!(cordoned["spec"]["unschedulable"], true, "{cordoned}");
    drop(holder);

    // The cause removed, the run ends.
    let done = apply(&["--resume", "--allow-drain-hazards"]);
    let out = ok(done, "--resume --allow-drain-hazards");
    assert!(
        out.contains("upgraded v1.20.2 -> v1.21.0: 30 steps"),
        "{out}"
    );

    // Every step ran to completion exactly once, across four processes.
    let archived: Vec<_> = std::fs::read_dir(STATE)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("upgrade-v1.21.0-")
        })
        .collect();
    assert_eq!(archived.len(), 1, "{archived:?}");
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&archived[0]).unwrap()).unwrap();
    let mut done_per_step = vec![0; 30];
    for e in journal["log"].as_array().unwrap() {
        if e["event"] == "done" {
            done_per_step[e["step"].as_u64().unwrap() as usize - 1] += 1;
        }
    }
    assert_eq!(done_per_step, vec![1; 30], "{}", journal["log"]);
    // The bundle made (and verified) before the first change is there.
    let bundles: Vec<_> = std::fs::read_dir(BACKUPS)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    ok(
        kastellan()
            .args(["backup", "verify"])
            .arg(&bundles[0])
            .output()
            .unwrap(),
        "backup verify",
    );

    // The lock is released.
    let gone = kubectl()
        .args(["-n", "kube-system", "get", "lease", "kastellan-upgrade"])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "the lock outlived the run");

    // What the API says now.
    let version = json(kubectl().args(["version", "-o", "json"]));
    assert_eq!(
        version["serverVersion"]["gitVersion"], "v1.21.0",
        "{version}"
    );
    assert_eq!(
        kubelet_versions(),
        [
            ("cp1".to_string(), "v1.21.0".to_string()),
            ("w1".to_string(), "v1.21.0".to_string())
        ]
    );
    let nodes = json(kubectl().args(["get", "nodes", "-o", "json"]));
    for n in nodes["items"].as_array().unwrap() {
        assert!(n["spec"]["unschedulable"].is_null(), "left cordoned: {n}");
    }
    let status = std::fs::read_to_string("/var/lib/kastellan/lab/nodes/cp1/agent/status.json")
        .unwrap_or_default();
    assert!(
        status.contains("kubernetes/v1.21.0/bin/kube-apiserver"),
        "{status}"
    );
    assert_eq!(packages(), expected("1.21.0-1.1", "1.21"));
    ok(
        kubectl()
            .args(["get", "configmap", "before-upgrade"])
            .output()
            .unwrap(),
        "the ConfigMap made before the upgrade",
    );
    ok(
        kastellan()
            .env("KUBECONFIG", "/var/lib/kastellan/lab/admin.conf")
            .arg("status")
            .output()
            .unwrap(),
        "status after the upgrade",
    );
    // Nothing reached the host's packages or binaries.
    assert_eq!(
        std::fs::read("/var/lib/dpkg/status").unwrap(),
        host_dpkg_before
    );
    assert!(!std::path::Path::new("/usr/bin/kubeadm").exists());
    let _ = std::fs::remove_dir_all(STATE);
}

//! Tier `lab`: real kubeadm upgrades on the lab (v1.20.2 to v1.21.0, both built from
//! Debian's source), with real dpkg/apt in every node.

use std::process::{Command, Output};

use crate::LabGuard;
use crate::{cache_dir, kastellan, kubectl, kubectl_stdin, lab_lock};

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

/// The lab of this test: 3 control planes, 2 workers.
const NODES: [&str; 5] = ["cp1", "cp2", "cp3", "w1", "w2"];

fn expected(version: &str, minor: &str) -> Vec<(String, String, String, bool, String)> {
    let mut out = Vec::new();
    for node in NODES {
        for p in ["kubeadm", "kubectl", "kubelet"] {
            out.push((node.into(), p.into(), version.into(), true, minor.into()));
        }
    }
    out
}

/// Each node's package state files (dpkg database, apt sources), as bytes.
fn package_files() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for node in NODES {
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

/// The runs of `command` in `node`'s log of upgrade steps
/// (`/var/log/kastellan/upgrade.log` there), each with its header and output.
fn node_log_runs(node: &str, command: &str) -> Vec<String> {
    let path = format!("/var/lib/kastellan/lab/nodes/{node}/root/var-log/kastellan/upgrade.log");
    let log = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut runs: Vec<String> = Vec::new();
    for line in log.lines() {
        if line.starts_with("== ") {
            runs.push(String::new());
        }
        if let Some(run) = runs.last_mut() {
            run.push_str(line);
            run.push('\n');
        }
    }
    runs.retain(|r| r.lines().next().is_some_and(|h| h.ends_with(command)));
    runs
}

/// How often dpkg's own log on `node` says `package` went from 1.20.2 to 1.21.0.
fn dpkg_upgrades(node: &str, package: &str) -> usize {
    let log = format!("/var/lib/kastellan/lab/nodes/{node}/root/var-log/dpkg.log");
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.contains(&format!(" upgrade {package}:")) && l.ends_with(" 1.20.2-1.1 1.21.0-1.1")
        })
        .count()
}

/// The journal of the run under way, if one can be read.
fn journal() -> Option<serde_json::Value> {
    let bytes = std::fs::read(format!("{STATE}/upgrade-journal.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether the journal says `step` started (and did not end).
fn running(j: &serde_json::Value, step: usize) -> bool {
    j["log"]
        .as_array()
        .and_then(|l| l.last())
        .is_some_and(|e| e["step"] == step && e["event"] == "started")
}

/// `kastellan upgrade apply ARGS` killed with SIGKILL once `when` holds for the
/// journal and the stderr lines so far (looked at every 100 ms, for at most 10
/// minutes). Returns its stderr up to then.
fn apply_killed_when(
    args: &[&str],
    pause_after: Option<usize>,
    when: impl Fn(&serde_json::Value, &[String]) -> bool,
) -> Vec<String> {
    use std::io::BufRead as _;
    let mut cmd = kastellan();
    cmd.env("KUBECONFIG", "/var/lib/kastellan/lab/admin.conf")
        .args(["upgrade", "apply", "--state-dir", STATE])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(step) = pause_after {
        cmd.env(PAUSE, step.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut said: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        said.extend(rx.try_iter());
        if journal().is_some_and(|j| when(&j, &said)) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{args:?} ended ({status}) before the kill point:\n{}",
                said.join("\n")
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{args:?}: no kill point in 10 minutes:\n{}",
            said.join("\n")
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    said.extend(rx.try_iter());
    said
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

/// A Deployment with one replica pinned to w1, and a budget that allows it no
/// disruption: w1's drain stays blocked by it until the budget goes.
const PINNED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubernetes.io/hostname: w1}
      containers: [{name: web, image: registry.k8s.io/pause:3.9}]
"#;
const BUDGET: &str = r#"
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: web-pdb, namespace: default}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"#;

fn kubectl_apply(yaml: &str) {
    ok(kubectl_stdin(&["apply", "-f", "-"], yaml), "kubectl apply");
}

/// The step of the dry run's plan on `node` whose command contains `text`.
fn step_of(plan: &serde_json::Value, node: &str, text: &str) -> usize {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["node"] == node && s["does"].as_str().unwrap().contains(text))
        .unwrap_or_else(|| panic!("no step on {node} with {text}: {plan}"))["step"]
        .as_u64()
        .unwrap() as usize
}

/// The whole upgrade of a 3+2 lab with real packages, v1.20.2 to v1.21.0, by
/// `kastellan upgrade apply` over the lab's sshd. A dry run that changes nothing, a
/// stale saved plan refused, a backup bundle made and verified on cp1 first; the run
/// killed with SIGKILL at three points (during `kubeadm upgrade node` on cp2, between
/// cp3 and the workers, during w1's drain while a budget blocks it) and resumed each
/// time; the cluster-wide lock refusing a second run; a drain refused for a hazard and
/// a package step that fails on w2 while another process holds its dpkg lock, both
/// stopping the run with the node's state named. Every step completes exactly once
/// (the journal, and dpkg's own log on each node). Then what an operator checks: the
/// API's versions, the new binaries running, each node's packages held at the new
/// version, the data still there, the host's own packages untouched. The last resume
/// runs under a pseudo-terminal and shows the live progress line.
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
    // Where the time goes, for keeping the lab tier lean.
    let t0 = std::time::Instant::now();
    let phase = |name: &str| eprintln!("upgrade test: {:>4}s {name}", t0.elapsed().as_secs());
    ok(
        kastellan()
            .args([
                "lab",
                "up",
                "--control-planes",
                "3",
                "--workers",
                "2",
                "--ssh",
                "--packages",
            ])
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
    kubectl_apply(PINNED);
    phase("lab up");
    // Each node: its own dpkg database, the v1.20 repository, the three packages held,
    // as kastellan reads them over ssh.
    let madison = ok(on("cp1", "apt-cache madison kubeadm"), "madison");
    assert!(
        madison.contains("1.20.2-1.1") && !madison.contains("1.21.0"),
        "{madison}"
    );
    assert_eq!(packages(), expected("1.20.2-1.1", "1.20"));

    phase("packages read");
    // The dry run prints every command per node and changes nothing.
    let before = package_files();
    let dry_args = [
        "--to",
        "v1.21.0",
        "--dry-run",
        "--backup-dir",
        BACKUPS,
        "--backup-allow-unencrypted-secrets",
    ];
    let dry = ok(apply(&dry_args), "--dry-run");
    for line in [
        "backup create --dir /var/lib/kastellan/upgrade-test/backups --allow-unencrypted-secrets; ",
        "each command runs on its node under flock /run/lock/kastellan-upgrade.lock (waiting up to 1200s), its output also appended to /var/log/kastellan/upgrade.log; it runs to its end even if kastellan is cut off",
        "1.21 cp1",
        "kubeadm upgrade apply v1.21.0 --yes",
        "1.21 cp2",
        "1.21 cp3",
        "kubeadm upgrade node",
        "1.21 w2",
        "apt-get install -y --allow-change-held-packages kubelet='1.21.0-*' kubectl='1.21.0-*'",
        "kastellan node drain w1 --ignore-daemonsets",
        "every etcd member healthy",
    ] {
        assert!(dry.contains(line), "{line} missing from\n{dry}");
    }
    let plan: serde_json::Value = serde_json::from_str(&ok(
        apply(&[&dry_args[..], &["-o", "json"]].concat()),
        "--dry-run -o json",
    ))
    .unwrap();
    let total = plan["steps"].as_array().unwrap().len();
    let upgrade_cp2 = step_of(&plan, "cp2", "kubeadm upgrade node");
    let last_cp3 = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["node"] == "cp3")
        .map(|s| s["step"].as_u64().unwrap() as usize)
        .max()
        .unwrap();
    let drain_w1 = step_of(&plan, "w1", "kastellan node drain w1");
    let unhold_w2 = step_of(&plan, "w2", "apt-mark unhold kubeadm");
    assert_eq!(package_files(), before, "the dry run changed a node");
    // No journal, not even the state dir or the backup dir in it (a run makes them),
    // and the cluster-wide lock not taken (issue 18).
    assert!(
        !std::path::Path::new(STATE).exists(),
        "the dry run made {STATE}"
    );
    let lease = kubectl()
        .args(["get", "lease", "-n", "kube-system", "kastellan-upgrade"])
        .output()
        .unwrap();
    assert!(
        !lease.status.success() && String::from_utf8_lossy(&lease.stderr).contains("NotFound"),
        "the dry run took the upgrade lock: {}{}",
        String::from_utf8_lossy(&lease.stdout),
        String::from_utf8_lossy(&lease.stderr)
    );
    phase("dry runs");
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

    phase("saved plan refused");
    // Killed during a control-plane step: `kubeadm upgrade node` on cp2 has started
    // and written output.
    let said = apply_killed_when(
        &[
            "--to",
            "v1.21.0",
            "--yes",
            "--backup-dir",
            BACKUPS,
            "--backup-allow-unencrypted-secrets",
        ],
        None,
        |j, said| {
            running(j, upgrade_cp2)
                && said
                    .iter()
                    .skip_while(|l| !l.starts_with(&format!("[{upgrade_cp2}/")))
                    .any(|l| l.starts_with("  cp2"))
        },
    );
    assert!(
        said.iter()
            .any(|l| l.contains("verified /var/lib/kastellan/upgrade-test/backups/")),
        "{said:?}"
    );
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
    assert_eq!(
        progress,
        format!("step {upgrade_cp2}/{total}: 1.21 cp2"),
        "{lease}"
    );
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

    phase("killed during kubeadm upgrade node");
    // Resumed: it says what it found, runs cp2's interrupted step again, and is killed
    // between the nodes (after cp3's last step).
    let said = apply_killed_when(&["--resume"], Some(last_cp3), |_, said| {
        said.iter().any(|l| l.contains("paused after step"))
    });
    let said = said.join("\n");
    assert!(
        said.contains(&format!(
            "step {upgrade_cp2} was running when the run stopped: it runs again, once \
             the command left running on cp2 (if any) has ended; its output is in \
             /var/log/kastellan/upgrade.log there"
        )),
        "{said}"
    );
    // The killed run's kubeadm was not cut off with kastellan: cp2's log shows it ran
    // to its end before the resumed run's kubeadm started.
    let runs = node_log_runs("cp2", "kubeadm upgrade node");
    assert!(runs.len() >= 2, "{runs:#?}");
    assert!(
        runs[0].contains("[upgrade] The configuration for this node was successfully updated!"),
        "the killed run's kubeadm did not finish:\n{}",
        runs[0]
    );

    phase("killed between nodes");
    // The resume stops before w1's drain changes anything: `web`'s only ready pod is on w1.
    let failed = apply(&["--resume"]);
    let err = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert_eq!(failed.status.code(), Some(2), "{err}");
    assert!(err.contains("resuming upgrade-v1.21.0-"), "{err}");
    assert!(
        err.contains(&format!(
            "step {drain_w1} of {total} (1.21 w1) failed on w1"
        )),
        "{err}"
    );
    assert!(err.contains("last ready replica: Deployment/web"), "{err}");
    assert!(
        err.contains("w1 now: kubeadm upgraded the node, the kubelet not yet"),
        "{err}"
    );
    assert!(
        err.contains("kastellan upgrade apply --resume --state-dir"),
        "{err}"
    );
    assert!(
        err.contains("w1 cannot be rolled back: kubeadm upgraded it"),
        "{err}"
    );
    // Giving the run up is one flag away; its dry run says what it would leave.
    let abandon = ok(apply(&["--abandon", "--dry-run"]), "--abandon --dry-run");
    assert!(
        abandon.contains("dry run: would abandon upgrade-v1.21.0-")
            && abandon.contains("  w1: kubeadm upgraded the node, the kubelet not yet"),
        "{abandon}"
    );
    assert!(journal().is_some(), "a dry run abandoned the run");

    phase("drain hazard");
    // The operator accepts it, but a budget allows `web` no disruption: the drain says
    // so, and the run is killed while it waits.
    kubectl_apply(BUDGET);
    let said = apply_killed_when(&["--resume", "--allow-drain-hazards"], None, |j, said| {
        running(j, drain_w1) && said.iter().any(|l| l.starts_with("  w1! default/web-"))
    });
    let blocked = said
        .iter()
        .find(|l| l.starts_with("  w1! default/web-"))
        .unwrap();
    assert!(blocked.contains("blocked for"), "{blocked}");
    let cordoned = json(kubectl().args(["get", "node", "w1", "-o", "json"]));
    assert_eq!(cordoned["spec"]["unschedulable"], true, "{cordoned}");
    ok(
        kubectl()
            .args(["delete", "pdb", "web-pdb"])
            .output()
            .unwrap(),
        "kubectl delete pdb",
    );

    phase("killed during the blocked drain");
    // Something else holds w2's dpkg lock (as unattended-upgrades does): w2's first
    // package step fails, after its repository moved to v1.21; the failure says how
    // to take w2 back instead, since kubeadm has not touched it.
    let holder = DpkgLockHolder::start("w2");
    let failed = apply(&["--resume", "--allow-drain-hazards"]);
    let err = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert_eq!(failed.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "step {unhold_w2} of {total} (1.21 w2) failed on w2"
        )),
        "{err}"
    );
    assert!(
        err.contains("dpkg frontend lock was locked by another process"),
        "{err}"
    );
    assert!(err.contains("w2 now: not upgraded by kubeadm yet"), "{err}");
    assert!(
        err.contains(
            "or roll w2 back instead (kubeadm has not upgraded it yet), on w2:\n    \
             sed -i -E 's|core:/stable:/v[0-9]+\\.[0-9]+/|core:/stable:/v1.20/|g' \
             /etc/apt/sources.list.d/kubernetes.list\n    apt-get update\n  \
             then: kastellan upgrade apply --abandon --state-dir /var/lib/kastellan/upgrade-test"
        ),
        "{err}"
    );
    drop(holder);

    phase("dpkg lock failure");
    // The cause removed, the run ends; on a terminal the live line shows the step.
    let done = Command::new("script")
        .args(["-qefc"])
        .arg(format!(
            "{} upgrade apply --state-dir {STATE} --resume --allow-drain-hazards",
            assert_cmd::cargo::cargo_bin!("kastellan").display()
        ))
        .arg("/dev/null")
        .env("KUBECONFIG", "/var/lib/kastellan/lab/admin.conf")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    let out = ok(done, "--resume --allow-drain-hazards under a terminal");
    assert!(
        out.contains(&format!("upgraded v1.20.2 -> v1.21.0: {total} steps")),
        "{out}"
    );
    assert!(
        out.contains("1.21 w2 · ") && out.contains("(total "),
        "{out}"
    );

    phase("finished");
    // Every step ran to completion exactly once, across six processes; the two that
    // were killed while running started twice.
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
    let mut done_per_step = vec![0; total];
    let mut started_per_step = vec![0; total];
    for e in journal["log"].as_array().unwrap() {
        let i = e["step"].as_u64().unwrap() as usize - 1;
        match e["event"].as_str().unwrap() {
            "done" => done_per_step[i] += 1,
            "started" => started_per_step[i] += 1,
            _ => {}
        }
    }
    assert_eq!(done_per_step, vec![1; total], "{}", journal["log"]);
    for (step, times) in [(upgrade_cp2, 2), (drain_w1, 3), (unhold_w2, 2)] {
        assert_eq!(
            started_per_step[step - 1],
            times,
            "step {step}: {}",
            journal["log"]
        );
    }
    // dpkg's own log: each package upgraded once on each node.
    for node in NODES {
        for p in ["kubeadm", "kubelet", "kubectl"] {
            assert_eq!(dpkg_upgrades(node, p), 1, "{p} on {node}");
        }
    }
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
        NODES
            .iter()
            .map(|n| (n.to_string(), "v1.21.0".to_string()))
            .collect::<Vec<_>>()
    );
    let nodes = json(kubectl().args(["get", "nodes", "-o", "json"]));
    for n in nodes["items"].as_array().unwrap() {
        assert!(n["spec"]["unschedulable"].is_null(), "left cordoned: {n}");
    }
    for cp in ["cp1", "cp2", "cp3"] {
        let status = std::fs::read_to_string(format!(
            "/var/lib/kastellan/lab/nodes/{cp}/agent/status.json"
        ))
        .unwrap_or_default();
        assert!(
            status.contains("kubernetes/v1.21.0/bin/kube-apiserver"),
            "{cp}: {status}"
        );
    }
    assert_eq!(packages(), expected("1.21.0-1.1", "1.21"));
    for object in [["configmap", "before-upgrade"], ["deployment", "web"]] {
        ok(
            kubectl().args(["get"]).args(object).output().unwrap(),
            "an object made before the upgrade",
        );
    }
    ok(
        kastellan()
            .env("KUBECONFIG", "/var/lib/kastellan/lab/admin.conf")
            .arg("status")
            .output()
            .unwrap(),
        "status after the upgrade",
    );
    phase("checked");
    // Nothing reached the host's packages or binaries.
    assert_eq!(
        std::fs::read("/var/lib/dpkg/status").unwrap(),
        host_dpkg_before
    );
    assert!(!std::path::Path::new("/usr/bin/kubeadm").exists());
    let _ = std::fs::remove_dir_all(STATE);
}

//! `kastellan restore`: tier `lab_` restores the real lab's control plane (one control
//! plane with etcd 3.4 and 3.5, three control planes with one file), tier `cli_` the
//! refusals and the dry run on temp dirs without a lab.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::LabGuard;
use crate::{kastellan, kubectl, lab_lock};

const NODES: &str = "/var/lib/kastellan/lab/nodes";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn exe() -> PathBuf {
    PathBuf::from(assert_cmd::cargo::cargo_bin!("kastellan"))
}

fn lab_exec(node: &str, args: &[&str]) -> Output {
    kastellan()
        .args(["lab", "exec", node, "--"])
        .arg(exe())
        .args(args)
        .output()
        .unwrap()
}

/// Runs `kastellan ARGS` in `node` with `var=value` (a debug build's pause point), waits
/// until it says it has paused, and kills that kastellan process (not the `lab exec`
/// around it) with SIGKILL.
fn kill_when_paused(node: &str, args: &[&str], var: &str, value: &str) {
    use std::io::BufRead as _;
    let mut child = kastellan()
        .args(["lab", "exec", node, "--"])
        .arg(exe())
        .args(args)
        .env(var, value)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut said = Vec::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let paused = line.contains("paused");
        said.push(line);
        if paused {
            break;
        }
    }
    assert!(
        said.iter().any(|l| l.contains("paused")),
        "{args:?} with {var}={value} never paused: {said:?}"
    );
    // `lab exec` -> (ip netns exec, __enter: both exec) -> kastellan restore.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap();
    let pids: Vec<i32> = children
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 1, "one process under lab exec: {pids:?}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("restore"),
        "{}",
        String::from_utf8_lossy(&cmdline)
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed: {status:?}");
}

fn kubectl_ok(args: &[&str]) -> String {
    ok(
        &format!("kubectl {args:?}"),
        kubectl().args(args).output().unwrap(),
    )
}

/// Retries `kubectl` until it succeeds (the apiserver comes back after a restore).
fn kubectl_eventually(args: &[&str], limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let out = kubectl().args(args).output().unwrap();
        if out.status.success() {
            return text(&out.stdout);
        }
        assert!(
            start.elapsed() < limit,
            "kubectl {args:?}: {}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn lab_up(control_planes: &str, etcd: &str, extra: &[&str]) -> LabGuard {
    let pre = kastellan().args(["lab", "status"]).output().unwrap();
    assert!(
        !pre.status.success() && text(&pre.stderr).contains("no lab is up"),
        "a lab is already up on this machine; run `kastellan lab down` before the lab tests"
    );
    let guard = LabGuard;
    ok(
        "lab up",
        kastellan()
            .args([
                "lab",
                "up",
                "--control-planes",
                control_planes,
                "--etcd",
                etcd,
                "--timeout",
                "300",
            ])
            .args(extra)
            .output()
            .unwrap(),
    );
    guard
}

fn create_objects() {
    kubectl_ok(&["create", "namespace", "restore-a"]);
    kubectl_ok(&["create", "namespace", "restore-b"]);
    kubectl_ok(&[
        "-n",
        "restore-a",
        "create",
        "deployment",
        "web",
        "--image=nginx",
    ]);
    kubectl_ok(&[
        "-n",
        "restore-a",
        "create",
        "configmap",
        "cfg",
        "--from-literal=k=v1",
    ]);
    kubectl_ok(&[
        "-n",
        "restore-a",
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=pw=s3cret",
    ]);
}

fn assert_objects_back() {
    let limit = Duration::from_secs(120);
    kubectl_eventually(&["get", "namespace", "restore-a"], limit);
    let cm = kubectl_eventually(
        &[
            "-n",
            "restore-a",
            "get",
            "configmap",
            "cfg",
            "-o",
            "jsonpath={.data.k}",
        ],
        limit,
    );
    assert_eq!(cm, "v1");
    let pw = kubectl_eventually(
        &[
            "-n",
            "restore-a",
            "get",
            "secret",
            "sec",
            "-o",
            "jsonpath={.data.pw}",
        ],
        limit,
    );
    assert_eq!(pw, "czNjcmV0"); // base64 of s3cret
    kubectl_eventually(&["-n", "restore-a", "get", "deployment", "web"], limit);
    // Created after the snapshot: gone.
    let out = kubectl()
        .args(["get", "namespace", "after-snap"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "after-snap should not exist after the restore"
    );
}

fn save_snapshot(node: &str, file: &Path) {
    let _ = std::fs::remove_file(file);
    ok(
        "etcd snapshot save",
        lab_exec(
            node,
            &["etcd", "snapshot", "save", &file.display().to_string()],
        ),
    );
}

fn status_healthy(limit: Duration) {
    let start = Instant::now();
    loop {
        let out = kastellan()
            .args([
                "status",
                "--kubeconfig",
                "/var/lib/kastellan/lab/admin.conf",
            ])
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "kastellan status after the restore: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// The namespace of the watch scenario (issue 19).
const WATCH_NS: &str = "watch-cm";

/// Creates ConfigMaps `names` in [`WATCH_NS`] with one kubectl call; the resourceVersion
/// of the last one (the newest a watcher has seen).
fn create_configmaps(names: &[String]) -> i64 {
    let items: Vec<serde_json::Value> = names
        .iter()
        .map(|n| {
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": n, "namespace": WATCH_NS}, "data": {"k": n}})
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), list.to_string()).unwrap();
    kubectl_ok(&["create", "-f", &file.path().display().to_string()]);
    // kubectl creates them in order: the last one is the newest.
    let last = names.last().unwrap();
    kubectl_ok(&[
        "-n",
        WATCH_NS,
        "get",
        "configmap",
        last,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])
    .trim()
    .parse()
    .unwrap()
}

/// The names of the ConfigMaps in [`WATCH_NS`] (the root CA's, which a controller adds
/// on its own, left out), retried while the API comes back.
fn configmaps() -> std::collections::BTreeSet<String> {
    kubectl_eventually(
        &["-n", WATCH_NS, "get", "configmaps", "-o", "name"],
        Duration::from_secs(120),
    )
    .lines()
    .filter(|l| !l.ends_with("/kube-root-ca.crt"))
    .map(str::to_string)
    .collect()
}

/// The store's revision now (a list's resourceVersion, read from etcd).
fn revision_now() -> i64 {
    let list = kubectl_eventually(
        &[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/{WATCH_NS}/configmaps?limit=1"),
        ],
        Duration::from_secs(120),
    );
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A watch of [`WATCH_NS`]'s ConfigMaps resumed from `rv` for 3 s: what it said.
fn watch_configmaps_from(rv: i64) -> String {
    let watch = kubectl()
        .args([
            "get",
            "--raw",
            &format!(
                "/api/v1/namespaces/{WATCH_NS}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=3"
            ),
        ])
        .output()
        .unwrap();
    format!("{}{}", text(&watch.stdout), text(&watch.stderr))
}

/// Whether a watch was told its resourceVersion is compacted (410 Gone).
fn gone(said: &str) -> bool {
    said.contains("\"code\":410") || said.contains("too old resource version")
}

/// `prefix0`..: ConfigMap names.
fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// The side of issue 19 without the bump (`--no-bump-revision`): snapshot, 30
/// ConfigMaps, restore; once the store has passed the revision a watcher saw again, its
/// watch resumes from there without an error, and never hears that the 30 are gone.
fn watchers_resume_silently_without_the_bump(dir: &Path) {
    kubectl_ok(&["create", "namespace", WATCH_NS]);
    create_configmaps(&names("w", 3));
    let snap = dir.join("no-bump.db");
    let at_snapshot = configmaps();
    save_snapshot("cp1", &snap);
    let seen = create_configmaps(&names("late", 30));
    let t0 = Instant::now();
    let out = ok(
        "restore --no-bump-revision",
        lab_exec(
            "cp1",
            &[
                "restore",
                "--snapshot",
                &snap.display().to_string(),
                "--no-bump-revision",
                "--yes",
                "-o",
                "json",
            ],
        ),
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    eprintln!(
        "restore --no-bump-revision took {:?}, of which {} s watching the Leases",
        t0.elapsed(),
        report["agents"]["waitedSecs"]
    );
    let revision = &report["plan"]["facts"]["summary"]["revision"];
    assert_eq!(revision["bump"], 0, "{revision}");
    assert_eq!(revision["basis"]["kind"], "off", "{revision}");
    assert_eq!(revision["bumpedRevision"], revision["snapshotRevision"]);
    assert!(
        revision["snapshotRevision"].as_i64().unwrap() < seen,
        "{revision} seen {seen}"
    );
    assert_ne!(
        report["agents"]["probe"]["kind"], "gone",
        "{}",
        report["agents"]
    );
    assert_eq!(configmaps(), at_snapshot, "the 30 late ones are gone");
    // The cluster writes on (leases, pod status); a new object lands after `seen`.
    let start = Instant::now();
    while revision_now() <= seen {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the store stays below {seen}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    create_configmaps(&["after".to_string()]);
    let said = watch_configmaps_from(seen);
    assert!(!gone(&said), "without the bump, no 410: {said}");
    assert!(
        said.contains("\"type\":\"ADDED\"") && said.contains("\"name\":\"after\""),
        "the watch resumes silently, with what came after {seen}: {said}"
    );
    assert!(
        !said.contains("\"type\":\"DELETED\""),
        "no DELETE for the 30 that the restore undid: {said}"
    );
}

/// Waits until Lease `kube-system/name` has a resourceVersion above `above` (the
/// leader took it again through the restored API).
fn leader_lease_renewed(name: &str, above: i64) {
    let start = Instant::now();
    loop {
        let rv = kubectl()
            .args([
                "-n",
                "kube-system",
                "get",
                "lease",
                name,
                "-o",
                "jsonpath={.metadata.resourceVersion}",
            ])
            .output()
            .unwrap();
        let rv: i64 = text(&rv.stdout).trim().parse().unwrap_or(0);
        if rv > above {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "Lease kube-system/{name} at resourceVersion {rv}, not above {above}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// A restore of the 1-control-plane lab. With `crash`, the run is killed with SIGKILL
/// at every phase boundary and once in the middle of the data-dir write, and resumed
/// each time; without, the plan is saved with `--dry-run -o json` and applied with
/// `--plan FILE`.
fn one_control_plane(etcd: &str, crash: bool) {
    let t0 = Instant::now();
    let _guard = lab_up("1", etcd, &[]);
    eprintln!("etcd {etcd}: lab up after {:?}", t0.elapsed());
    let dir = tempfile::tempdir().unwrap();
    // First without the bump, to show the difference (issue 19).
    watchers_resume_silently_without_the_bump(dir.path());
    eprintln!(
        "etcd {etcd}: the restore without the bump done after {:?}",
        t0.elapsed()
    );
    create_objects();
    let snap = dir.path().join("snap.db");
    let cms_at_snapshot = configmaps();
    save_snapshot("cp1", &snap);
    let cm_seen = create_configmaps(&names("lateb", 30));
    kubectl_ok(&["delete", "namespace", "restore-a", "--wait=false"]);
    kubectl_ok(&["create", "namespace", "after-snap"]);
    // What a watcher has seen last before the restore.
    let seen = text(
        &kubectl()
            .args([
                "get",
                "namespace",
                "after-snap",
                "-o",
                "jsonpath={.metadata.resourceVersion}",
            ])
            .output()
            .unwrap()
            .stdout,
    );

    let snap_s = snap.display().to_string();
    let report = if crash {
        killed_and_resumed(&snap_s)
    } else {
        let plan = dir.path().join("plan.json");
        let json = ok(
            "restore --dry-run -o json",
            lab_exec(
                "cp1",
                &["restore", "--snapshot", &snap_s, "--dry-run", "-o", "json"],
            ),
        );
        let planned: serde_json::Value = serde_json::from_str(&json).unwrap();
        // The dry run shows the bump and where it came from: the live revision.
        let revision = &planned["plan"]["facts"]["summary"]["revision"];
        assert_eq!(revision["basis"]["kind"], "live", "{revision}");
        assert!(
            revision["basis"]["liveRevision"].as_i64().unwrap() >= cm_seen,
            "{revision} seen {cm_seen}"
        );
        std::fs::write(&plan, json).unwrap();
        let applied = ok(
            "restore --plan",
            lab_exec(
                "cp1",
                &[
                    "restore",
                    "--plan",
                    &plan.display().to_string(),
                    "--yes",
                    "-o",
                    "json",
                ],
            ),
        );
        serde_json::from_str(&applied).unwrap()
    };
    eprintln!(
        "etcd {etcd}: the restore with the bump done after {:?}",
        t0.elapsed()
    );
    assert_eq!(report["done"].as_array().unwrap().len(), 7, "{report}");
    let revision = &report["plan"]["facts"]["summary"]["revision"];
    let bumped = revision["bumpedRevision"].as_i64().unwrap();
    assert_eq!(revision["basis"]["kind"], "live", "{revision}");
    let written = revision["basis"]["writtenSinceSnapshot"].as_i64().unwrap();
    assert!(
        written >= 30,
        "30 ConfigMaps and more since the snapshot: {revision}"
    );
    assert!(
        bumped > cm_seen && bumped > seen.parse::<i64>().unwrap(),
        "past every revision a watcher saw: {revision}"
    );
    // What the report saw after the restart: the probe refused, every Lease back.
    let agents = &report["agents"];
    eprintln!("watching the Leases took {} s", agents["waitedSecs"]);
    assert_eq!(agents["probe"]["kind"], "gone", "{agents}");
    for r in agents["kubelets"]
        .as_array()
        .unwrap()
        .iter()
        .chain(agents["leaders"].as_array().unwrap())
    {
        assert_eq!(r["renewed"], true, "{agents}");
    }
    assert_eq!(agents["kubelets"][0]["who"], "cp1", "{agents}");
    assert_eq!(agents["leaders"].as_array().unwrap().len(), 2, "{agents}");

    assert_objects_back();
    // A watcher of ConfigMaps from after the snapshot: 410 Gone; a list then shows
    // exactly the snapshot's; the leaders take their Leases again (issue 19).
    let said = watch_configmaps_from(cm_seen);
    assert!(
        gone(&said),
        "a watch from resourceVersion {cm_seen}: {said}"
    );
    assert_eq!(
        configmaps(),
        cms_at_snapshot,
        "exactly the snapshot's ConfigMaps"
    );
    for leader in ["kube-controller-manager", "kube-scheduler"] {
        leader_lease_renewed(leader, bumped);
    }
    // The revision was bumped and the skipped ones compacted: a watcher resuming from
    // what it saw before the restore is told to relist (410 Gone), not left behind.
    let watch = kubectl()
        .args([
            "get",
            "--raw",
            &format!("/api/v1/namespaces?watch=true&resourceVersion={seen}&timeoutSeconds=5"),
        ])
        .output()
        .unwrap();
    let said = format!("{}{}", text(&watch.stdout), text(&watch.stderr));
    assert!(gone(&said), "a watch from resourceVersion {seen}: {said}");
    status_healthy(Duration::from_secs(120));
    let node = Path::new(NODES).join("cp1");
    // The old data dir is untouched, the new one is the node's own.
    assert!(node.join("var-lib-etcd/member/snap/db").is_file());
    let mut restored: Vec<_> = std::fs::read_dir(node.join("var-lib-kastellan-restore"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    restored.sort();
    // The restore without the bump, then this one.
    assert_eq!(restored.len(), 2, "{restored:?}");
    assert!(restored.iter().all(|r| r.starts_with("etcd-restore-")));
    let last = &restored[1];
    let manifest =
        std::fs::read_to_string(node.join("etc-kubernetes/manifests/etcd.yaml")).unwrap();
    assert!(manifest.contains(&format!("--data-dir=/var/lib/kastellan-restore/{last}")));
    // The holding dir keeps the original etcd.yaml and the finished state.
    let held = node
        .join("etc-kubernetes/kastellan-held")
        .join(last.trim_start_matches("etcd-restore-"));
    assert!(held.join("etcd.yaml").is_file(), "{}", held.display());
    // The journal: every step done exactly once; only the data-dir write, killed in
    // its middle, started twice.
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(held.join("restore-state.json")).unwrap()).unwrap();
    let steps = journal["plan"]["steps"].as_array().unwrap().len();
    let count = |step: usize, event: &str| {
        journal["log"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["step"] == step && e["event"] == event)
            .count()
    };
    for n in 1..=steps {
        assert_eq!(count(n, "done"), 1, "step {n} done once: {journal}");
        let phase = &journal["plan"]["steps"][n - 1]["phase"];
        let started = if crash && phase == "restore" { 2 } else { 1 };
        assert_eq!(
            count(n, "started"),
            started,
            "step {n} ({phase}) started: {journal}"
        );
    }
    drop(_guard);
}

/// Kills the restore with SIGKILL at every phase boundary and once in the middle of the
/// data-dir write; each time `--resume` carries on from where it was.
fn killed_and_resumed(snap_s: &str) -> serde_json::Value {
    let kills: [(&str, &str); 7] = [
        ("KASTELLAN_EXEC_PAUSE_AFTER", "stop-control-plane"),
        ("KASTELLAN_EXEC_PAUSE_AFTER", "stop-etcd"),
        ("KASTELLAN_RESTORE_PAUSE_MID_WRITE", "1"),
        ("KASTELLAN_EXEC_PAUSE_AFTER", "restore"),
        ("KASTELLAN_EXEC_PAUSE_AFTER", "start-etcd"),
        ("KASTELLAN_EXEC_PAUSE_AFTER", "wait-etcd"),
        ("KASTELLAN_EXEC_PAUSE_AFTER", "start-control-plane"),
    ];
    for (i, (var, value)) in kills.iter().enumerate() {
        let args: Vec<&str> = if i == 0 {
            vec!["restore", "--snapshot", &snap_s, "--yes"]
        } else {
            vec!["restore", "--resume"]
        };
        kill_when_paused("cp1", &args, var, value);
        if i == 0 {
            // A second restore while one is in progress is refused.
            let again = lab_exec("cp1", &["restore", "--snapshot", snap_s, "--yes"]);
            assert_eq!(again.status.code(), Some(2));
            assert!(
                text(&again.stderr).contains("a restore is in progress"),
                "{}",
                text(&again.stderr)
            );
        }
    }
    let resumed = ok(
        "restore --resume",
        lab_exec("cp1", &["restore", "--resume", "-o", "json"]),
    );
    serde_json::from_str(&resumed).unwrap()
}

#[test]
fn lab_restore_one_control_plane_etcd_35_killed_at_every_phase() {
    let _lock = lab_lock();
    one_control_plane("3.5", true);
}

#[test]
fn lab_restore_one_control_plane_etcd_34_from_a_saved_plan() {
    let _lock = lab_lock();
    one_control_plane("3.4", false);
}

/// Makes a backup bundle of the lab from cp1's /etc/kubernetes; returns its path.
fn bundle_of_cp1(dir: &Path) -> PathBuf {
    let etc = Path::new(NODES).join("cp1/etc-kubernetes");
    ok(
        "backup create",
        kastellan()
            .args(["backup", "create", "--allow-unencrypted-secrets", "--dir"])
            .arg(dir)
            .arg("--etc-kubernetes")
            .arg(&etc)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap(),
    );
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.to_string_lossy().ends_with(".json"))
        .expect("a bundle file")
}

/// Three control planes restored from one bundle taken on cp1: every node checks it
/// first (a node whose service-account key differs stops the run before any change,
/// while each node's own certificates differ by design), then all members come back
/// from the same file as one healthy cluster. Then once more from a snapshot, with the
/// nodes reached over ssh (the lab's sshd, `lab up --ssh`) instead of lab exec.
#[test]
fn lab_restore_three_control_planes_from_one_bundle() {
    let _lock = lab_lock();
    let _guard = lab_up("3", "3.5", &["--ssh"]);
    create_objects();
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle_of_cp1(dir.path());
    kubectl_ok(&["delete", "namespace", "restore-a", "--wait=false"]);
    kubectl_ok(&["create", "namespace", "after-snap"]);
    let all_nodes = || {
        let mut c = kastellan();
        c.args(["restore", "--bundle"])
            .arg(&bundle)
            .args(["--all-nodes", "--node-access", "lab"]);
        c
    };

    // The dry run: every node's plan, one initial cluster. It changes nothing on any
    // node (issue 18): each node's kubeadm dir (manifests, PKI, no holding dir) and
    // parent of restored data dirs as they were, no new directory in its etcd data dir
    // (whose files a running member keeps writing), and the bundle's dir as it was (no
    // verification recorded in its sidecar).
    let node_trees = || {
        ["cp1", "cp2", "cp3"].map(|n| {
            let d = Path::new(NODES).join(n);
            [
                crate::tree::snapshot(&d.join("etc-kubernetes")),
                crate::tree::snapshot(&d.join("var-lib-kastellan-restore")),
                crate::tree::directories(&d.join("var-lib-etcd")),
            ]
        })
    };
    let trees_before = node_trees();
    let bundle_dir_before = crate::tree::snapshot(dir.path());
    assert!(
        !trees_before[1][0].is_empty() && !trees_before[1][2].is_empty(),
        "cp2's trees are read"
    );
    let plan = ok(
        "restore --all-nodes --dry-run",
        all_nodes()
            .args(["--dry-run", "-o", "json"])
            .output()
            .unwrap(),
    );
    ok(
        "restore --all-nodes --dry-run (human)",
        all_nodes().arg("--dry-run").output().unwrap(),
    );
    for (n, (before, after)) in ["cp1", "cp2", "cp3"]
        .iter()
        .zip(trees_before.iter().zip(node_trees().iter()))
    {
        let d = Path::new(NODES).join(n);
        crate::tree::assert_unchanged(
            &d.join("etc-kubernetes"),
            &before[0],
            "restore --all-nodes --dry-run",
        );
        crate::tree::assert_unchanged(
            &d.join("var-lib-kastellan-restore"),
            &before[1],
            "restore --all-nodes --dry-run",
        );
        assert_eq!(
            after[2], before[2],
            "restore --all-nodes --dry-run made or removed a directory in {n}'s etcd data dir"
        );
    }
    crate::tree::assert_unchanged(
        dir.path(),
        &bundle_dir_before,
        "restore --all-nodes --dry-run",
    );
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let nodes = plan["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{plan}");
    for (n, name) in nodes.iter().zip(["cp1", "cp2", "cp3"]) {
        assert_eq!(n["node"], name);
        let summary = &n["plan"]["facts"]["summary"];
        assert_eq!(summary["name"], name);
        assert_eq!(summary["initialCluster"], plan["initialCluster"]);
        assert!(
            n["plan"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["node"] == name),
            "every step on the node itself: {n}"
        );
        assert!(
            summary["snapshot"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{}/snapshot.db", plan["runId"].as_str().unwrap())),
            "a bundle's snapshot is kept in the run's holding dir: {n}"
        );
        assert!(
            summary["newDataDir"]
                .as_str()
                .unwrap()
                .contains("/etcd-restore-"),
            "{n}"
        );
    }
    assert_eq!(
        plan["initialCluster"].as_str().unwrap().split(',').count(),
        3
    );

    // cp2's service-account key differs from the bundle's: refused, nothing changed.
    let sa = Path::new(NODES).join("cp2/etc-kubernetes/pki/sa.pub");
    let sa_original = std::fs::read(&sa).unwrap();
    std::fs::write(&sa, b"not the key of the backup\n").unwrap();
    let manifests = |n: &str| tree(&Path::new(NODES).join(n).join("etc-kubernetes/manifests"));
    let before: Vec<_> = ["cp1", "cp2", "cp3"].map(manifests).into();
    let refused = all_nodes().arg("--yes").output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let err = text(&refused.stderr);
    assert!(
        err.contains("cp2")
            && err.contains("sa.pub differs")
            && err.contains("Nothing was changed"),
        "{err}"
    );
    assert!(
        !err.contains("apiserver.crt"),
        "leaf certificates are each node's own: {err}"
    );
    let after: Vec<_> = ["cp1", "cp2", "cp3"].map(manifests).into();
    assert_eq!(before, after, "no manifest moved on refusal");
    std::fs::write(&sa, sa_original).unwrap();

    ok(
        "restore --all-nodes --bundle",
        all_nodes().arg("--yes").output().unwrap(),
    );
    assert_objects_back();
    let etcdctl = |node: &str, args: &[&str]| -> Output {
        let mut all = vec!["sh", "-c"];
        let line = format!(
            "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key {}",
            args.join(" ")
        );
        all.push(&line);
        kastellan()
            .args(["lab", "exec", node, "--"])
            .args(&all)
            .output()
            .unwrap()
    };
    let three_healthy_members = || {
        let members = ok("member list", etcdctl("cp1", &["member", "list"]));
        assert_eq!(members.lines().count(), 3, "{members}");
        assert_eq!(members.matches("started").count(), 3, "{members}");
        for n in ["cp1", "cp2", "cp3"] {
            let h = etcdctl(n, &["endpoint", "health"]);
            assert!(
                text(&h.stdout).contains("is healthy") || text(&h.stderr).contains("is healthy"),
                "{n}: {} {}",
                text(&h.stdout),
                text(&h.stderr)
            );
        }
    };
    three_healthy_members();
    status_healthy(Duration::from_secs(180));

    // Over ssh: a snapshot of the restored cluster, then the same changes, then a
    // restore of all three members through the lab's sshd (its inventory is used
    // because no nodes and no inventory are given while the lab runs with --ssh).
    let snap = dir.path().join("after-bundle.db");
    save_snapshot("cp1", &snap);
    kubectl_ok(&["delete", "namespace", "restore-a", "--wait=false"]);
    kubectl_ok(&["create", "namespace", "after-snap"]);
    let out = kastellan()
        .args(["restore", "--snapshot"])
        .arg(&snap)
        .args(["--all-nodes", "--node-access", "ssh", "--yes"])
        .env_remove("KASTELLAN_INVENTORY")
        .env_remove("KASTELLAN_SSH_CONFIG")
        .output()
        .unwrap();
    let note = text(&out.stderr);
    let over_ssh = ok("restore --all-nodes --node-access ssh --snapshot", out);
    assert!(over_ssh.contains("restored 3 members"), "{over_ssh}");
    assert!(note.contains("the lab's inventory"), "{note}");
    // Every node's sshd let the host in with the lab's key (nothing else used ssh here).
    for n in ["cp1", "cp2", "cp3"] {
        let log = std::fs::read_to_string(Path::new(NODES).join(n).join("logs/sshd.log")).unwrap();
        assert!(
            log.contains("Accepted publickey for root from 10.77.0.1 "),
            "{n}: {log}"
        );
    }
    assert_objects_back();
    three_healthy_members();
    // Each member runs on its second restored data dir, its own.
    for n in ["cp1", "cp2", "cp3"] {
        let dirs = std::fs::read_dir(Path::new(NODES).join(n).join("var-lib-kastellan-restore"))
            .unwrap()
            .count();
        assert_eq!(dirs, 2, "{n}: one data dir per restore");
    }
    status_healthy(Duration::from_secs(180));
}

// --- tier cli_: refusals and the dry run, on temp dirs ---

/// A manifests dir like kubeadm's, with the given apiserver port.
pub(crate) fn node_dir(root: &Path, apiserver_port: u16) -> PathBuf {
    let m = root.join("kubernetes/manifests");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(
        m.join("etcd.yaml"),
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - command:\n    - etcd\n    - --data-dir=/var/lib/etcd\n    - --initial-advertise-peer-urls=https://10.0.0.1:2380\n    - --initial-cluster=cp1=https://10.0.0.1:2380\n    - --listen-client-urls=https://127.0.0.1:1\n    - --listen-metrics-urls=http://127.0.0.1:1\n    - --name=cp1\n    volumeMounts:\n    - mountPath: /var/lib/etcd\n      name: etcd-data\n  volumes:\n  - hostPath:\n      path: /var/lib/etcd\n      type: DirectoryOrCreate\n    name: etcd-data\n",
    )
    .unwrap();
    std::fs::write(
        m.join("kube-apiserver.yaml"),
        format!("spec:\n  containers:\n  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    - --secure-port={apiserver_port}\n"),
    )
    .unwrap();
    for n in ["kube-controller-manager", "kube-scheduler"] {
        std::fs::write(
            m.join(format!("{n}.yaml")),
            format!("spec:\n  containers:\n  - name: {n}\n    command: [{n}]\n"),
        )
        .unwrap();
    }
    m
}

fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(tree(&p));
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A real snapshot (etcd 3.5 on 127.0.0.1, saved with etcdctl) and the etcd scratch dir.
fn real_snapshot() -> (kastellan_etcd::testing::EtcdCluster, PathBuf) {
    use kastellan_etcd::testing::{EtcdCluster, etcd35};
    let etcd = EtcdCluster::start(&etcd35(), 1);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(etcd.put_known_data(50, 10));
    let file = etcd.scratch().join("procedure.db");
    etcd.etcdctl_snapshot(&etcd.endpoints()[0], &file);
    (etcd, file)
}

fn restore_in(root: &Path, snapshot: &Path, extra: &[&str]) -> Output {
    kastellan()
        .arg("restore")
        .arg("--snapshot")
        .arg(snapshot)
        .arg("--manifests-dir")
        .arg(root.join("kubernetes/manifests"))
        .arg("--restore-dir-parent")
        .arg(root.join("var-lib"))
        .args(["--timeout", "2"])
        .args(extra)
        .env_remove("KASTELLAN_RESTORE_DIR_PARENT")
        .output()
        .unwrap()
}

fn restore_plan(root: &Path, extra: &[&str]) -> Output {
    kastellan()
        .arg("restore")
        .arg("--manifests-dir")
        .arg(root.join("kubernetes/manifests"))
        .arg("--restore-dir-parent")
        .arg(root.join("var-lib"))
        .args(["--timeout", "2", "--plan"])
        .args(extra)
        .env_remove("KASTELLAN_RESTORE_DIR_PARENT")
        .output()
        .unwrap()
}

fn refused(out: &Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains(needle),
        "expected {needle:?} in: {}",
        text(&out.stderr)
    );
}

#[test]
fn real_etcd_cli_restore_refusals_change_nothing() {
    let (_etcd, snap) = real_snapshot();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("var-lib")).unwrap();
    // An apiserver that will not stop: something else listens on its port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let manifests = node_dir(root, port);
    let before = tree(root);

    // Hash mismatch: one byte of the content changed.
    let bad = root.join("bad.db");
    let mut bytes = std::fs::read(&snap).unwrap();
    bytes[5000] ^= 0xff;
    std::fs::write(&bad, &bytes).unwrap();
    let before_bad = tree(root);
    refused(&restore_in(root, &bad, &["--yes"]), "sha256 mismatch");
    assert_eq!(tree(root), before_bad);

    // Truncated file.
    let cut = root.join("cut.db");
    std::fs::write(&cut, &std::fs::read(&snap).unwrap()[..8192]).unwrap();
    let before_cut = tree(root);
    refused(&restore_in(root, &cut, &["--yes"]), "truncated");
    assert_eq!(tree(root), before_cut);
    std::fs::remove_file(&bad).unwrap();
    std::fs::remove_file(&cut).unwrap();

    // The apiserver still answers: manifests put back, nothing restored.
    let out = restore_in(root, &snap, &["--yes"]);
    refused(&out, "still answers on 127.0.0.1");
    assert!(text(&out.stderr).contains(&port.to_string()));
    let after: Vec<_> = tree(root)
        .into_keys()
        .filter(|p| !p.to_string_lossy().contains("kastellan-held"))
        .collect();
    assert_eq!(after, before.keys().cloned().collect::<Vec<_>>());
    for (p, content) in &before {
        assert_eq!(&std::fs::read(p).unwrap(), content, "{}", p.display());
    }
    assert!(
        std::fs::read_dir(root.join("var-lib"))
            .unwrap()
            .next()
            .is_none()
    );
    drop(listener);

    // Without --yes: refused.
    refused(&restore_in(root, &snap, &[]), "pass --yes");

    // Missing manifest.
    std::fs::remove_file(manifests.join("etcd.yaml")).unwrap();
    let before = tree(root);
    refused(&restore_in(root, &snap, &["--yes"]), "etcd.yaml is missing");
    assert_eq!(tree(root), before);
}

#[test]
fn real_etcd_cli_restore_non_empty_target_and_in_progress() {
    let (_etcd, snap) = real_snapshot();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("var-lib/etcd-restore-20260101T000000Z/x")).unwrap();
    node_dir(root, free_port());
    let before = tree(root);
    // One node of an --all-nodes run, asked through the node protocol to run the first
    // phase of run 20260101T000000Z, whose data dir exists: refused, in the response.
    let request = serde_json::json!({
        "protocol": 2,
        "manifestsDir": root.join("kubernetes/manifests"),
        "etcdUnit": null,
        "ask": {
            "kind": "run",
            "source": {"kind": "snapshot", "path": snap},
            "runId": "20260101T000000Z",
            "initialCluster": "cp1=https://10.0.0.1:2380",
            "timeoutSecs": 2,
            "until": "stop-control-plane",
            "bump": {"kind": "off"},
        },
    });
    let answer = |request: &serde_json::Value| -> (Option<i32>, serde_json::Value) {
        let mut child = kastellan()
            .args(["restore", "--quiet", "--node-request", "-"])
            .arg("--restore-dir-parent")
            .arg(root.join("var-lib"))
            .env_remove("KASTELLAN_RESTORE_DIR_PARENT")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            &serde_json::to_vec(request).unwrap(),
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout))),
        )
    };
    let (code, response) = answer(&request);
    assert_eq!(code, Some(1), "{response}");
    assert_eq!(response["kind"], "failed", "{response}");
    assert!(
        response["error"]
            .as_str()
            .unwrap()
            .contains("exists already"),
        "{response}"
    );
    assert_eq!(tree(root), before);
    // Its member, read from etcd's manifest; and a request of another protocol refused.
    let member = serde_json::json!({
        "protocol": 2,
        "manifestsDir": root.join("kubernetes/manifests"),
        "etcdUnit": null,
        "ask": {"kind": "member"},
    });
    let (code, response) = answer(&member);
    assert_eq!(code, Some(0), "{response}");
    assert_eq!(
        (&response["kind"], &response["name"], &response["peerUrls"]),
        (
            &"member".into(),
            &"cp1".into(),
            &"https://10.0.0.1:2380".into()
        ),
        "{response}"
    );
    // No etcd (nor its certificates) there: the live revision is unread, and says why.
    assert_eq!(response["live"]["kind"], "unread", "{response}");
    assert!(
        response["live"]["reason"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{response}"
    );
    let mut future = member.clone();
    future["protocol"] = 3.into();
    let (code, response) = answer(&future);
    assert_eq!(code, Some(1), "{response}");
    assert!(
        response["error"].as_str().unwrap().contains("protocol 3"),
        "{response}"
    );
    assert_eq!(tree(root), before);

    // A state file from an unfinished run: a new restore refuses.
    let state = root.join("kubernetes/kastellan-held/restore-state.json");
    let plan = restore_in(root, &snap, &["--dry-run", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    std::fs::write(
        &state,
        serde_json::to_vec(&serde_json::json!({"plan": v["plan"], "done": 1, "log": []})).unwrap(),
    )
    .unwrap();
    refused(
        &restore_in(root, &snap, &["--yes"]),
        "a restore is in progress",
    );
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn real_etcd_cli_restore_dry_run_snapshot() {
    let (_etcd, snap) = real_snapshot();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    node_dir(root, 6443);
    let before = tree(root);
    let out = restore_in(root, &snap, &["--dry-run"]);
    let printed = ok("dry run", out);
    assert_eq!(tree(root), before, "the dry run changed nothing");
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&root.display().to_string()), "[ROOT]");
    settings.add_filter(&regex_escape(&snap.display().to_string()), "[SNAPSHOT]");
    settings.add_filter(r"\d{8}T\d{6}Z", "[TS]");
    settings.bind(|| insta::assert_snapshot!("restore_dry_run", printed));
}

/// `--dry-run -o json` saved to a file is a plan that `--plan FILE` accepts while the
/// node is as it was, and refuses, naming what changed, once it is not.
#[test]
fn real_etcd_cli_restore_saved_plan_is_checked_against_the_node() {
    let (_etcd, snap) = real_snapshot();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    node_dir(root, 6443);
    let json = ok(
        "dry run",
        restore_in(root, &snap, &["--dry-run", "-o", "json"]),
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["plan"]["kind"], "restore");
    let actions: Vec<&str> = v["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "hold",
            "hold",
            "restore-data-dir",
            "write-file",
            "wait-etcd",
            "release",
            "wait-apiserver"
        ]
    );
    let plan = root.join("plan.json");
    std::fs::write(&plan, &json).unwrap();
    let before = tree(root);
    let plan_s = plan.display().to_string();
    let again = ok("plan dry run", restore_plan(root, &[&plan_s, "--dry-run"]));
    assert!(again.contains("would restore"), "{again}");
    assert_eq!(
        tree(root),
        before,
        "a dry run of a saved plan changes nothing"
    );
    // The apiserver's port changed since: refused with the difference named.
    let api = root.join("kubernetes/manifests/kube-apiserver.yaml");
    let text = std::fs::read_to_string(&api).unwrap();
    std::fs::write(
        &api,
        text.replace("--secure-port=6443", "--secure-port=7443"),
    )
    .unwrap();
    let before = tree(root);
    let out = restore_plan(root, &[&plan_s, "--yes"]);
    refused(&out, "facts.apiserverPort: was 6443, now 7443");
    assert_eq!(tree(root), before, "a refused plan changes nothing");
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// A bundle (not a bare snapshot): its PKI is compared with the node's; a difference is
/// refused with the files named and nothing changed, and `--restore-pki` puts the
/// bundle's PKI back in place, keeping the node's in the holding dir.
#[test]
fn lab_restore_from_bundle_checks_the_pki() {
    let _lock = crate::lab_lock();
    let _guard = lab_up("1", "3.4", &[]);
    create_objects();
    let dir = tempfile::tempdir().unwrap();
    let etc = Path::new(NODES).join("cp1/etc-kubernetes");
    let bundle = bundle_of_cp1(dir.path());
    let bundle_s = bundle.display().to_string();
    kubectl_ok(&["delete", "namespace", "restore-a", "--wait=false"]);

    // The node's PKI changed since the backup.
    let pki = etc.join("pki");
    let original = std::fs::read(pki.join("front-proxy-client.crt")).unwrap();
    std::fs::write(
        pki.join("front-proxy-client.crt"),
        b"changed since the backup\n",
    )
    .unwrap();
    let manifests_before = tree(&etc.join("manifests"));
    let refused = lab_exec("cp1", &["restore", "--bundle", &bundle_s, "--yes"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let err = text(&refused.stderr);
    assert!(
        err.contains("front-proxy-client.crt differs") && err.contains("--restore-pki"),
        "{err}"
    );
    assert_eq!(
        tree(&etc.join("manifests")),
        manifests_before,
        "nothing changed on refusal"
    );

    let out = ok(
        "restore --bundle --restore-pki",
        lab_exec(
            "cp1",
            &["restore", "--bundle", &bundle_s, "--restore-pki", "--yes"],
        ),
    );
    assert!(
        out.contains("pki-before"),
        "the plan names where the node's PKI went: {out}"
    );
    assert_eq!(
        std::fs::read(pki.join("front-proxy-client.crt")).unwrap(),
        original
    );
    let kept: Vec<PathBuf> = std::fs::read_dir(etc.join("kastellan-held"))
        .unwrap()
        .map(|e| e.unwrap().path().join("pki-before/front-proxy-client.crt"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(kept.len(), 1, "the node's PKI is kept in the holding dir");
    assert_eq!(
        std::fs::read(&kept[0]).unwrap(),
        b"changed since the backup\n"
    );
    assert_objects_back();
    status_healthy(Duration::from_secs(120));
}

/// A bundle written the way `backup create` writes one (manifest.json first, then the
/// members it lists), with `snapshot` and the given `pki/` files, no sidecar.
fn hand_bundle(dir: &Path, snapshot: &Path, pki: &[(&str, &[u8])]) -> PathBuf {
    hand_bundle_with(dir, snapshot, pki, None)
}

/// [`hand_bundle`] with the member's keyspace hash recorded as `backup create` records it.
fn hand_bundle_with(
    dir: &Path,
    snapshot: &Path,
    pki: &[(&str, &[u8])],
    hash_kv: Option<kastellan_bundle::manifest::HashKvRecord>,
) -> PathBuf {
    use kastellan_bundle::manifest::{self, FileEntry, Manifest, Sensitive, SnapshotInfo};
    use sha2::{Digest, Sha256};
    let snap = std::fs::read(snapshot).unwrap();
    let file = kastellan_snapshot::SnapshotFile::open(snapshot).unwrap();
    let status = file.status().unwrap();
    // The etcd that wrote it, as its own keyspace says (3.4.0, 3.5.0).
    let etcd_version = file
        .inspect(&kastellan_snapshot::Options::default())
        .unwrap()
        .versions
        .cluster_version
        .unwrap_or_else(|| "3.5.0".into());
    let mut members: Vec<(String, &[u8])> = pki
        .iter()
        .map(|(name, bytes)| (format!("pki/{name}"), *bytes))
        .collect();
    members.push((manifest::SNAPSHOT_PATH.to_string(), &snap));
    members.sort();
    let created_at = "2026-01-01T00:00:00Z";
    let m = Manifest {
        format: manifest::FORMAT.into(),
        kastellan_version: "test".into(),
        kubernetes_version: Some("v1.20.2".into()),
        etcd_version,
        cluster_name: "kubernetes".into(),
        created_at: created_at.into(),
        snapshot: SnapshotInfo {
            endpoint: "https://127.0.0.1:2379".into(),
            member_id: "1".into(),
            member_name: None,
            revision: status.revision,
            total_key: status.total_key,
            hash: status.hash,
            hash_kv,
        },
        sensitive: Sensitive::default(),
        resources: 0,
        files: members
            .iter()
            .map(|(path, bytes)| FileEntry {
                path: path.clone(),
                size: bytes.len() as u64,
                sha256: hex::encode(Sha256::digest(bytes)),
            })
            .collect(),
        volume_snapshots: None,
    };
    std::fs::create_dir_all(dir).unwrap();
    let name = manifest::bundle_name("kubernetes", created_at.parse().unwrap(), false);
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut tar = tar::Builder::new(zstd::Encoder::new(file, 3).unwrap());
    let json = serde_json::to_vec(&m).unwrap();
    let mut append = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes).unwrap();
    };
    append(manifest::MANIFEST_PATH, &json);
    for (name, bytes) in &members {
        append(name, bytes);
    }
    tar.into_inner().unwrap().finish().unwrap();
    path
}

/// Issue 16, tier `real_etcd`: a bundle records etcd's own hash of the keyspace at the
/// snapshot's revision (`etcdctl endpoint hashkv`, as `backup create` asks the member),
/// and `backup verify` computes the same hash from the snapshot inside. A snapshot whose
/// content was changed after it was taken (one value rewritten in place, the sha256
/// trailer and every sha256 of the bundle recomputed: the file is structurally valid
/// and every checksum agrees) fails verification with the reason.
#[test]
fn real_etcd_cli_backup_verify_catches_a_snapshot_changed_after_it_was_taken_16() {
    use kastellan_etcd::testing::{EtcdCluster, etcd35};
    use sha2::{Digest, Sha256};
    let etcd = EtcdCluster::start(&etcd35(), 1);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(etcd.put_known_data(50, 10));
    let ep = etcd.endpoints()[0].clone();
    let put = etcd
        .etcdctl_on(&ep)
        .args([
            "put",
            "/registry/kastellan/it/marker",
            "value-before-alteration",
        ])
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let tmp = tempfile::tempdir().unwrap();
    // A bundle as taken, the keyspace hash included.
    let (good, record, _) = proven_bundle_fixture(&etcd, tmp.path());
    let snapshot = tmp.path().join("taken.db");
    let ca = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n";
    let verify = |bundle: &Path| {
        kastellan()
            .args(["backup", "verify"])
            .arg(bundle)
            .env("COLUMNS", "80")
            .output()
            .unwrap()
    };
    // As taken: verified, every line within 80 columns.
    let out = verify(&good);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!(
            "keyspace hash {}: the one etcd gave when the snapshot was taken",
            record.hash
        )),
        "{said}"
    );
    assert!(
        said.lines()
            .all(|l| kastellan_printer::display_width(l) <= 80),
        "wider than 80 columns:\n{said}"
    );

    // One value rewritten in place, the trailer recomputed: every structural check and
    // every sha256 passes; only etcd's hash disagrees.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let at = bytes
        .windows(23)
        .position(|w| w == b"value-before-alteration")
        .expect("the marker's value is in the snapshot");
    bytes[at..at + 23].copy_from_slice(b"VALUE-AFTER-ALTERATION!");
    let data = bytes.len() - 32;
    let trailer = Sha256::digest(&bytes[..data]);
    bytes[data..].copy_from_slice(&trailer);
    let altered = tmp.path().join("altered.db");
    std::fs::write(&altered, &bytes).unwrap();
    let report = kastellan_snapshot::SnapshotFile::open(&altered)
        .unwrap()
        .inspect(&kastellan_snapshot::Options {
            verify_trailer: true,
        })
        .unwrap();
    assert!(
        report.is_clean(),
        "still a valid snapshot: {:?}",
        report.faults
    );
    let bad = hand_bundle_with(
        &tmp.path().join("bad"),
        &altered,
        &[("ca.crt", ca)],
        Some(record),
    );
    let out = verify(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "damaged: {stderr}");
    assert!(
        stderr.contains(&format!(
            "but etcd answered {} when the snapshot was taken",
            record.hash
        )),
        "{stderr}"
    );
}

/// A bundle of a real etcd's snapshot with etcd's own HashKV recorded, and the live
/// key count that etcd served when the snapshot was taken.
fn proven_bundle_fixture(
    etcd: &kastellan_etcd::testing::EtcdCluster,
    dir: &Path,
) -> (PathBuf, kastellan_bundle::manifest::HashKvRecord, u64) {
    let ep = etcd.endpoints()[0].clone();
    let snapshot = dir.join("taken.db");
    etcd.etcdctl_snapshot(&ep, &snapshot);
    let revision = kastellan_snapshot::SnapshotFile::open(&snapshot)
        .unwrap()
        .status()
        .unwrap()
        .revision;
    let out = etcd
        .etcdctl_on(&ep)
        .args(kastellan_etcd::testing::hashkv_args(revision))
        .output()
        .unwrap();
    let (hash, _, compact_revision) = kastellan_etcd::testing::parse_hashkv(&out.stdout, revision);
    let out = etcd
        .etcdctl_on(&ep)
        // etcd's range count is every matching key, whatever the limit (3.4's etcdctl
        // has no --count-only).
        .args(["get", "", "--prefix", "--limit", "1", "-w", "json"])
        .output()
        .unwrap();
    let counted: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let keys = counted["count"].as_u64().unwrap();
    let record = kastellan_bundle::manifest::HashKvRecord {
        hash,
        revision,
        compact_revision,
    };
    let ca = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n";
    let bundle = hand_bundle_with(
        &dir.join("backups"),
        &snapshot,
        &[("ca.crt", ca)],
        Some(record),
    );
    (bundle, record, keys)
}

/// The pids of the etcd members a restore test said it started ("... (pid N)").
fn started_pids(stderr: &str) -> Vec<i32> {
    stderr
        .match_indices("(pid ")
        .filter_map(|(i, m)| {
            let rest = &stderr[i + m.len()..];
            rest[..rest.find(')')?].parse().ok()
        })
        .collect()
}

/// Issue 16, "backups proven by restoring them", for one etcd release: the bundle's
/// snapshot is restored, served by that release's etcd on loopback and compared; the
/// figures are etcd's own (revision, live keys, HashKV as recorded when the snapshot
/// was taken); the verdict lands in the sidecar and `backup list`; the member is gone
/// and nothing is left beside the bundle.
fn restore_test_proves_a_bundle(release: &kastellan_etcd::testing::EtcdRelease) {
    use kastellan_etcd::testing::EtcdCluster;
    let etcd = EtcdCluster::start(release, 1);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(etcd.put_known_data(300, 200));
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, record, keys) = proven_bundle_fixture(&etcd, tmp.path());
    let backups = bundle.parent().unwrap().to_path_buf();

    let out = kastellan()
        .args(["backup", "verify", "--restore-test", "--etcd-binary"])
        .arg(&release.etcd)
        .arg(&bundle)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{}: {stderr}", release.name);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &v["restoreTest"];
    assert_eq!(t["passed"], true, "{v:#}");
    assert_eq!(t["revision"], record.revision, "{v:#}");
    assert_eq!(t["keys"], keys, "etcd's own count: {v:#}");
    assert_eq!(t["hashKv"], record.hash, "etcd's own HashKV: {v:#}");
    assert_eq!(t["sampled"], 32, "{v:#}");
    assert!(t["etcd"].as_str().unwrap().contains(release.name), "{v:#}");
    let pids = started_pids(&stderr);
    assert_eq!(pids.len(), 1, "{stderr}");
    assert!(
        !Path::new(&format!("/proc/{}", pids[0])).exists(),
        "the restored member was stopped"
    );
    let mut left: Vec<String> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    left.sort();
    let name = bundle.file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(
        left,
        [name.clone(), format!("{name}.json")],
        "no scratch left"
    );

    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backups.join(format!("{name}.json"))).unwrap())
            .unwrap();
    assert_eq!(&sidecar["restoreTest"], t, "recorded in the sidecar");
    let out = kastellan()
        .args(["backup", "list", "--dir"])
        .arg(&backups)
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    let at = t["at"].as_str().unwrap();
    assert!(
        listed.lines().next().unwrap().contains("PROVEN")
            && listed.lines().nth(1).unwrap().ends_with(at),
        "{listed}"
    );
}

#[test]
fn real_etcd_cli_backup_verify_restore_test_proves_an_etcd_34_bundle_16() {
    restore_test_proves_a_bundle(&kastellan_etcd::testing::etcd34());
}

/// The same on etcd 3.5; then what fails: a bundle whose snapshot was altered after
/// its sha256s were recomputed (refused before any restore, naming etcd's hash), an
/// etcd too old for the bundle (exit 2, naming the flag), an etcd that does not start
/// (the real etcd given a flag it refuses: exit 1, recorded as FAILED with its log),
/// and the exporter's age of the newest proven bundle.
#[test]
fn real_etcd_cli_backup_verify_restore_test_proves_an_etcd_35_bundle_and_fails_with_the_reason_16()
{
    use kastellan_etcd::testing::{etcd34, etcd35};
    let release = etcd35();
    restore_test_proves_a_bundle(&release);

    let etcd = kastellan_etcd::testing::EtcdCluster::start(&release, 1);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(etcd.put_known_data(50, 10));
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, record, _) = proven_bundle_fixture(&etcd, tmp.path());
    let backups = bundle.parent().unwrap().to_path_buf();
    let verify = |bundle: &Path, etcd: &Path| {
        kastellan()
            .args(["backup", "verify", "--restore-test", "--etcd-binary"])
            .arg(etcd)
            .arg(bundle)
            .output()
            .unwrap()
    };

    // etcd 3.4 cannot open a 3.5 member's data.
    let out = verify(&bundle, &etcd34().etcd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--etcd-binary") && stderr.contains("cannot open the data"),
        "{stderr}"
    );

    // A real etcd that refuses to start.
    let wrapper = tmp.path().join("etcd-refusing");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && exec '{0}' --version\nexec '{0}' \"$@\" --kastellan-test-unknown-flag\n",
            release.etcd.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = verify(&bundle, &wrapper);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("restore test FAILED") && stdout.contains("kastellan-test-unknown-flag"),
        "the reason, from etcd's log: {stdout}"
    );
    let out = kastellan()
        .args(["backup", "list", "--dir"])
        .arg(&backups)
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("FAILED"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Proven again, then the exporter's figures.
    let out = verify(&bundle, &release.etcd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("restore test") || l.starts_with("served revision"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("restore test passed in "), "{stdout}");
    assert!(
        lines.iter().all(|l| l.chars().count() <= 80),
        "80 columns: {stdout}"
    );
    let port = kastellan_etcd::testing::free_port();
    let mut exporter = kastellan()
        .args([
            "exporter",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--backup-dir",
        ])
        .arg(&backups)
        .args(["--kubeconfig", "/nonexistent/admin.conf"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let metrics = (0..100)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let out = std::process::Command::new("curl")
                .args(["-sf", "--max-time", "30"])
                .arg(format!("http://127.0.0.1:{port}/metrics"))
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).to_string())
        })
        .expect("the exporter serves /metrics");
    let _ = exporter.kill();
    let _ = exporter.wait();
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert_eq!(gauge("kastellan_backup_bundles"), 1.0);
    // The bundle says it was made on 2026-01-01: its age is that of the backup.
    let made = jiff::Timestamp::from_second(1_767_225_600).unwrap();
    let age = (jiff::Timestamp::now().as_second() - made.as_second()) as f64;
    let proven = gauge("kastellan_backup_newest_proven_age_seconds");
    assert!((proven - age).abs() < 120.0, "{proven} vs {age}");
    assert_eq!(
        proven,
        gauge("kastellan_backup_newest_verified_age_seconds")
    );

    // Altered after its sha256s were recomputed: refused before any restore.
    let mut bytes = std::fs::read(tmp.path().join("taken.db")).unwrap();
    // put_known_data's value of key 3 (10 bytes), right after its key.
    let value: Vec<u8> = (0..10).map(|j| b'a' + ((3 * 31 + j) % 26) as u8).collect();
    let key_at = bytes
        .windows(28)
        .position(|w| w == b"/registry/kastellan/it/00003")
        .expect("key 3 in the snapshot");
    let at = key_at
        + bytes[key_at..]
            .windows(10)
            .position(|w| w == value.as_slice())
            .expect("its value");
    bytes[at] = bytes[at].to_ascii_uppercase();
    let data = bytes.len() - 32;
    let trailer = {
        use sha2::{Digest, Sha256};
        Sha256::digest(&bytes[..data])
    };
    bytes[data..].copy_from_slice(&trailer);
    let altered = tmp.path().join("altered.db");
    std::fs::write(&altered, &bytes).unwrap();
    let ca = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n";
    let bad = hand_bundle_with(
        &tmp.path().join("bad"),
        &altered,
        &[("ca.crt", ca)],
        Some(record),
    );
    let out = verify(&bad, &release.etcd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("but etcd answered {}", record.hash)),
        "{stderr}"
    );
    assert!(
        started_pids(&stderr).is_empty(),
        "no member started: {stderr}"
    );
}

/// Issue 18, "Dry runs change nothing": `restore --dry-run` from a snapshot, from a
/// bundle and from a saved plan leaves the node's kubeadm dir, the data-dir parent, the
/// snapshot and the bundle's dir as they were: no new file or directory (no holding
/// dir), no changed content or mode.
#[test]
fn real_etcd_cli_restore_dry_run_leaves_the_tree_as_it_was_18() {
    let (_etcd, snap) = real_snapshot();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    node_dir(root, 6443);
    std::fs::create_dir_all(root.join("var-lib")).unwrap();
    let ca = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n";
    std::fs::create_dir_all(root.join("kubernetes/pki")).unwrap();
    std::fs::write(root.join("kubernetes/pki/ca.crt"), ca).unwrap();
    let snapshot = root.join("snapshot.db");
    std::fs::copy(&snap, &snapshot).unwrap();
    let bundle = hand_bundle(&root.join("backups"), &snapshot, &[("ca.crt", ca)]);
    let before = crate::tree::snapshot(root);

    let printed = ok(
        "dry run of a snapshot",
        restore_in(root, &snapshot, &["--dry-run"]),
    );
    assert!(printed.contains("would restore"), "{printed}");
    crate::tree::assert_unchanged(root, &before, "restore --snapshot --dry-run");

    let out = kastellan()
        .arg("restore")
        .arg("--bundle")
        .arg(&bundle)
        .arg("--manifests-dir")
        .arg(root.join("kubernetes/manifests"))
        .arg("--restore-dir-parent")
        .arg(root.join("var-lib"))
        .args(["--timeout", "2", "--dry-run", "-o", "json"])
        .env_remove("KASTELLAN_RESTORE_DIR_PARENT")
        .output()
        .unwrap();
    let json = ok("dry run of a bundle", out);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["plan"]["kind"], "restore", "{v}");
    crate::tree::assert_unchanged(root, &before, "restore --bundle --dry-run");
    // With a state file whose dir and its parent do not exist yet: neither is left.
    let out = kastellan()
        .arg("restore")
        .arg("--bundle")
        .arg(&bundle)
        .arg("--manifests-dir")
        .arg(root.join("kubernetes/manifests"))
        .arg("--restore-dir-parent")
        .arg(root.join("var-lib"))
        .arg("--state-file")
        .arg(root.join("state/held/restore-state.json"))
        .args(["--timeout", "2", "--dry-run"])
        .env_remove("KASTELLAN_RESTORE_DIR_PARENT")
        .output()
        .unwrap();
    ok("dry run of a bundle with a new state dir", out);
    crate::tree::assert_unchanged(
        root,
        &before,
        "restore --bundle --state-file NEW/DIR/FILE --dry-run",
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let plan = elsewhere.path().join("plan.json");
    let json = ok(
        "dry run to save",
        restore_in(root, &snapshot, &["--dry-run", "-o", "json"]),
    );
    std::fs::write(&plan, json).unwrap();
    let again = ok(
        "dry run of a saved plan",
        restore_plan(root, &[plan.to_str().unwrap(), "--dry-run"]),
    );
    assert!(again.contains("would restore"), "{again}");
    crate::tree::assert_unchanged(root, &before, "restore --plan FILE --dry-run");
}

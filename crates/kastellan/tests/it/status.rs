//! `kastellan status`: tier `lab_` on the real control plane with faults made the way
//! they happen to a process (the process the lab's kubelet stand-in runs for a component
//! is stopped with SIGSTOP, a hang: its ports accept and nothing answers; or killed with
//! SIGKILL, a crash the agent restarts), and tier `cli_` for bad input without a lab.

use std::io::{BufRead, Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use nix::sys::signal::Signal;

use crate::LabGuard;
use crate::lab::{PodProc, pod_process};
use crate::{kastellan, lab_lock};

const LAB: &str = "/var/lib/kastellan/lab";

fn status() -> (i32, Value) {
    let out = kastellan()
        .args([
            "status",
            "-o",
            "json",
            "--probe-timeout",
            "2",
            "--kubeconfig",
        ])
        .arg(format!("{LAB}/admin.conf"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// One `status` run and how long it took.
fn timed_status() -> (i32, Value, Duration) {
    let start = Instant::now();
    let (code, v) = status();
    (code, v, start.elapsed())
}

fn rows<'a>(v: &'a Value, node: &str, component: &str) -> Vec<&'a Value> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["node"] == node && c["component"] == component)
        .collect()
}

fn all_up(v: &Value, node: &str, component: &str) -> bool {
    let r = rows(v, node, component);
    !r.is_empty() && r.iter().all(|c| c["state"] == "up")
}

fn any_down(v: &Value, node: &str, component: &str) -> bool {
    rows(v, node, component)
        .iter()
        .any(|c| c["state"] == "down")
}

/// Polls status until `pred` holds; returns the report and how long it took.
fn wait_for(
    what: &str,
    limit: Duration,
    pred: impl Fn(i32, &Value) -> bool,
) -> (i32, Value, Duration) {
    let start = Instant::now();
    loop {
        let (code, v) = status();
        if pred(code, &v) {
            return (code, v, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not seen within {limit:?}; last report: {}",
            serde_json::to_string_pretty(&v).unwrap()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Processes of the lab stopped with SIGSTOP: hung, their listening sockets still
/// accept connections, nothing answers. SIGCONT when resumed or dropped, so a failed
/// assertion never leaves a stopped process behind.
struct Stopped(Vec<PodProc>);

/// Stops each process (found beforehand with [`pod_process`]) and checks that the kernel
/// has it stopped (state `T`).
fn sigstop(procs: Vec<PodProc>) -> Stopped {
    let mut stopped = Stopped(Vec::new());
    for p in procs {
        stopped.0.push(p.clone());
        p.proc.signal(Signal::SIGSTOP);
        let deadline = Instant::now() + Duration::from_secs(2);
        while p.proc.state() != Some('T') {
            assert!(
                Instant::now() < deadline,
                "{} on {} not stopped after SIGSTOP: {:?}",
                p.pod,
                p.node,
                p.proc.state()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    stopped
}

impl Stopped {
    /// SIGCONT to each; the very same processes run on (the agent did not replace them).
    fn resume(mut self) {
        for p in std::mem::take(&mut self.0) {
            p.proc.signal(Signal::SIGCONT);
            let deadline = Instant::now() + Duration::from_secs(2);
            while p.proc.state() == Some('T') {
                assert!(
                    Instant::now() < deadline,
                    "{p:?} still stopped after SIGCONT"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.proc.pid as i32),
                Signal::SIGCONT,
            );
        }
    }
}

/// One refresh of `status --watch` in table form: its lines from the `refresh N` header
/// to the verdict line.
fn next_refresh(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Vec<String> {
    let mut doc = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let verdict = ["healthy:", "degraded:", "nothing could", "no check could"]
            .iter()
            .any(|v| line.starts_with(v));
        if line.contains("refresh ") || !doc.is_empty() {
            doc.push(line);
        }
        if verdict && !doc.is_empty() {
            return doc;
        }
    }
    panic!("status --watch ended in the middle of a refresh: {doc:#?}");
}

/// The probes a refresh lists as changed (`  NODE COMPONENT now (was before)`):
/// (node, component, "now (was before)").
fn marked(doc: &[String]) -> Vec<(String, String, String)> {
    doc.iter()
        .filter(|l| l.contains("(was "))
        .map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            (t[0].to_string(), t[1].to_string(), t[2..5].join(" "))
        })
        .collect()
}

fn validate_schema(v: &Value) {
    let schema: Value =
        serde_json::from_str(include_str!("../../../../docs/status.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "status JSON does not match docs/status.schema.json: {errors:#?}"
    );
}

const COMPONENTS: [&str; 6] = [
    "kube-apiserver",
    "etcd",
    "kubelet",
    "kube-proxy",
    "kube-controller-manager",
    "kube-scheduler",
];

#[test]
fn lab_status_healthy_faults_and_healing() {
    let _lock = lab_lock();
    let pre = kastellan().args(["lab", "status"]).output().unwrap();
    assert!(
        !pre.status.success() && String::from_utf8_lossy(&pre.stderr).contains("no lab is up"),
        "a lab is already up on this machine; run `kastellan lab down` before the lab tests"
    );
    let _guard = LabGuard;
    let up = kastellan()
        .args([
            "lab",
            "up",
            "--control-planes",
            "3",
            "--workers",
            "1",
            // Not a test of joins (the 3+2 lab test's): cp1's copied credentials.
            "--join",
            "copy",
            "--timeout",
            "240",
        ])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "lab up: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    // Healthy: every endpoint of every control plane up, quorum figures right, schema ok.
    let (code, v, _) = wait_for("healthy lab", Duration::from_secs(60), |c, _| c == 0);
    assert_eq!(code, 0);
    assert_eq!(v["verdict"], "healthy");
    validate_schema(&v);
    for node in ["cp1", "cp2", "cp3"] {
        for comp in COMPONENTS {
            assert!(all_up(&v, node, comp), "{comp} on {node} not up");
            assert!(
                rows(&v, node, comp)
                    .iter()
                    .all(|c| c["source"] == "local-probe")
            );
        }
        assert!(all_up(&v, node, "node") && all_up(&v, node, "pod/etcd"));
    }
    assert_eq!(
        rows(&v, "cp1", "kube-apiserver").len(),
        2,
        "livez and readyz"
    );
    assert_eq!(rows(&v, "cp1", "kube-proxy").len(), 2, ":10249 and :10256");
    assert!(all_up(&v, "w1", "kubelet") && all_up(&v, "w1", "kube-proxy"));
    assert!(
        rows(&v, "w1", "kube-apiserver").is_empty(),
        "a worker runs no apiserver"
    );
    assert!(
        all_up(&v, "cluster", "lease/kube-scheduler")
            && all_up(&v, "cluster", "lease/kube-controller-manager")
    );
    // The etcd v3 API, over mTLS with the node's healthcheck-client certificate.
    for node in ["cp1", "cp2", "cp3"] {
        let m = rows(&v, node, "etcd-member");
        assert_eq!(m.len(), 1, "one member row per member: {m:?}");
        assert_eq!(m[0]["source"], "etcd-api");
        assert_eq!(m[0]["state"], "up");
        let detail = m[0]["detail"].as_str().unwrap();
        assert!(
            detail.contains("term") && detail.contains("index") && detail.contains("v3.4"),
            "{detail}"
        );
    }
    let q = &v["etcd"];
    assert!(
        q["member_list"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"].as_str().is_some())
    );
    assert_eq!(
        (
            q["members"].as_u64(),
            q["healthy"].as_u64(),
            q["quorum"].as_u64()
        ),
        (Some(3), Some(3), Some(2))
    );
    assert_eq!(q["failures_tolerated"], 1);
    assert!(q["leader"].as_str().is_some_and(|l| l.starts_with("cp")));

    // The human view says the same at a glance: one line per node, one state per
    // component (slow: a probe took a second or more), then etcd, then one verdict line.
    let table = kastellan()
        .args(["status", "--kubeconfig"])
        .arg(format!("{LAB}/admin.conf"))
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    let grid_row = |node: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(node))
            .unwrap_or_else(|| panic!("no line for {node}: {text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let up = |cell: &String| cell == "ok" || cell == "slow";
    for node in ["cp1", "cp2", "cp3"] {
        let row = grid_row(node);
        assert!(row.len() == 8 && row[1..].iter().all(up), "{node}: {text}");
    }
    let w1 = grid_row("w1");
    assert_eq!(
        w1[1..5],
        ["-", "-", "-", "-"],
        "a worker runs no control plane: {text}"
    );
    assert!(
        up(&w1[5]) && up(&w1[6]),
        "kubelet and kube-proxy on w1: {text}"
    );
    assert!(
        text.contains("etcd: 3 members, 3 healthy, quorum 2, 1 failure tolerated"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("healthy:"),
        "{text}"
    );

    // kube-proxy hung on cp2 (SIGSTOP), under `status --watch`: the refresh right after
    // the fault lists both of its probes as changed to down and as problems, timed out
    // (the ports accept, nothing answers), and cp2's line shows kube-proxy down; after
    // SIGCONT the next refresh lists them as changed to up again, and the watch exits 0,
    // the last refresh's verdict. The agent did not replace the process.
    let proxy = pod_process("cp2", "kube-proxy");
    let mut watch = kastellan()
        .args([
            "status",
            "--watch",
            "--interval",
            "1",
            "--count",
            "3",
            "--probe-timeout",
            "2",
            "--kubeconfig",
        ])
        .arg(format!("{LAB}/admin.conf"))
        .env_remove("COLUMNS")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let before = next_refresh(&mut lines);
    let stopped = sigstop(vec![proxy.clone()]);
    let during = next_refresh(&mut lines);
    stopped.resume();
    let after = next_refresh(&mut lines);
    let code = watch.wait().unwrap().code();
    let rows_marked = |state: &str| {
        vec![
            (
                "cp2".to_string(),
                "kube-proxy".to_string(),
                state.to_string()
            );
            2
        ]
    };
    assert!(
        before.last().unwrap().starts_with("healthy:"),
        "{before:#?}"
    );
    assert_eq!(marked(&during), rows_marked("down (was up)"), "{during:#?}");
    let proxy_problems: Vec<&String> = during
        .iter()
        .filter(|l| l.starts_with("  cp2 kube-proxy down:"))
        .collect();
    assert!(
        proxy_problems.len() == 2 && proxy_problems.iter().all(|l| l.contains("timed out")),
        "a hung process times out: {during:#?}"
    );
    let cp2: Vec<&str> = during
        .iter()
        .find(|l| l.split_whitespace().next() == Some("cp2"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(cp2.get(6), Some(&"down"), "the PROXY column: {during:#?}");
    let verdict = during.last().unwrap();
    assert!(
        verdict.starts_with("degraded:") && verdict.contains("kube-proxy on cp2"),
        "{verdict}"
    );
    assert_eq!(marked(&after), rows_marked("up (was down)"), "{after:#?}");
    assert!(after.last().unwrap().starts_with("healthy:"), "{after:#?}");
    assert_eq!(code, Some(0));
    assert_eq!(pod_process("cp2", "kube-proxy").proc, proxy.proc);

    // The apiserver on cp3 killed (SIGKILL, a crash): the first status after it shows it
    // down while the others stay up; the agent restarts it (a new process, one more
    // start, the kill as its last exit) and status is healthy again.
    let api = pod_process("cp3", "kube-apiserver");
    api.proc.signal(Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.proc.runs() {
        assert!(Instant::now() < deadline, "{api:?} survived SIGKILL");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (code, v, took) = timed_status();
    eprintln!("apiserver crash seen by one status run of {took:?}");
    assert_eq!(code, 1);
    assert!(any_down(&v, "cp3", "kube-apiserver"), "{v:#}");
    assert!(
        all_up(&v, "cp1", "kube-apiserver") && all_up(&v, "cp2", "kube-apiserver"),
        "the other apiservers stay up"
    );
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .contains("kube-apiserver on cp3"),
        "{}",
        v["summary"]
    );
    let (_, _, took) = wait_for("apiserver healed", Duration::from_secs(60), |c, _| c == 0);
    eprintln!("apiserver restarted and healthy after {took:?}");
    let restarted = pod_process("cp3", "kube-apiserver");
    assert_ne!(restarted.proc, api.proc, "a new process");
    assert!(restarted.starts > api.starts, "{restarted:?} after {api:?}");
    assert!(
        restarted
            .last_exit
            .as_deref()
            .is_some_and(|e| e.contains("signal: 9")),
        "the agent saw the kill: {restarted:?}"
    );

    // The scheduler hung everywhere (SIGSTOP): endpoints down at once, then its Lease goes
    // stale (nobody renews it); SIGCONT heals.
    let stopped = sigstop(
        ["cp1", "cp2", "cp3"]
            .iter()
            .map(|n| pod_process(n, "kube-scheduler"))
            .collect(),
    );
    let (code, v, _) = timed_status();
    assert_eq!(code, 1);
    for n in ["cp1", "cp2", "cp3"] {
        let r = rows(&v, n, "kube-scheduler");
        assert!(
            !r.is_empty()
                && r.iter()
                    .all(|c| c["state"] == "down"
                        && c["detail"].as_str().unwrap().contains("timed out")),
            "kube-scheduler on {n}: {r:?}"
        );
    }
    let (_, v, took) = wait_for("scheduler lease stale", Duration::from_secs(40), |_, v| {
        any_down(v, "cluster", "lease/kube-scheduler")
    });
    eprintln!("stale scheduler lease seen after {took:?} more");
    let lease = rows(&v, "cluster", "lease/kube-scheduler")[0];
    assert!(
        lease["detail"].as_str().unwrap().contains("STALE"),
        "{lease}"
    );
    assert!(all_up(&v, "cluster", "lease/kube-controller-manager"));
    stopped.resume();
    let (_, v, _) = wait_for("scheduler healed", Duration::from_secs(60), |c, _| c == 0);

    // One etcd member hung (SIGSTOP of a follower, so that no election runs while we
    // look): degraded at once, quorum kept, no failure tolerated any more.
    let leader = v["etcd"]["leader"].as_str().unwrap().to_string();
    let followers: Vec<&str> = ["cp1", "cp2", "cp3"]
        .into_iter()
        .filter(|n| *n != leader)
        .collect();
    assert_eq!(followers.len(), 2, "leader {leader}");
    let first = sigstop(vec![pod_process(followers[0], "etcd")]);
    let (code, v, took) = timed_status();
    eprintln!(
        "etcd member {} hung, seen by one status run of {took:?}",
        followers[0]
    );
    assert_eq!(code, 1);
    assert_eq!(v["etcd"]["healthy"], 2, "{}", v["etcd"]);
    assert_eq!(v["etcd"]["has_quorum"], true);
    assert_eq!(v["etcd"]["failures_tolerated"], 0);
    assert!(any_down(&v, followers[0], "etcd"));
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("1 of 3 members down")),
        "{}",
        v["warnings"]
    );

    // The other follower hung too: quorum lost, exit 1, and the report still comes in
    // bounded time (hung members do not hang status).
    let second = sigstop(vec![pod_process(followers[1], "etcd")]);
    let (code, v, took) = timed_status();
    eprintln!("etcd quorum loss seen by one status run of {took:?}");
    assert_eq!(code, 1);
    assert_eq!(v["etcd"]["has_quorum"], false, "{}", v["etcd"]);
    assert!(v["etcd"]["healthy"].as_u64().unwrap() <= 1, "{}", v["etcd"]);
    assert!(
        v["summary"].as_str().unwrap().contains("etcd quorum lost"),
        "{}",
        v["summary"]
    );
    assert!(took < Duration::from_secs(30), "status took {took:?}");
    second.resume();
    first.resume();
    let (_, v, took) = wait_for("etcd healed", Duration::from_secs(120), |c, _| c == 0);
    eprintln!("healthy again after {took:?}");
    assert_eq!(v["etcd"]["healthy"], 3);

    // The exporter serves the same picture as metrics.
    let port = free_port();
    let mut exporter = kastellan()
        .args([
            "exporter",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--kubeconfig",
        ])
        .arg(format!("{LAB}/admin.conf"))
        .spawn()
        .unwrap();
    let body = http_get_retry(port, "/metrics", Duration::from_secs(20));
    let _ = exporter.kill();
    let _ = exporter.wait();
    assert!(body.contains("kastellan_healthy 1"), "{body}");
    assert!(body.contains("kastellan_etcd_members 3"), "{body}");
    assert!(body.contains("kastellan_etcd_quorum_margin 1"), "{body}");
    // The healed scheduler (hung a minute ago) probes up again: a value, not only a name.
    assert!(
        body.lines().any(|l| l
            .starts_with(r#"kastellan_probe_up{node="cp2",component="kube-scheduler""#)
            && l.rsplit_once(' ').and_then(|(_, n)| n.parse::<f64>().ok()) == Some(1.0)),
        "{body}"
    );
    assert!(
        body.contains("kastellan_lease_renew_age_seconds{lease=\"kube-scheduler\""),
        "{body}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get_retry(port: u16, path: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            return out;
        }
        assert!(start.elapsed() < limit, "exporter did not listen on {port}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kastellan status --local` as node `n1` with 1 s probes and `dir` as the manifests
/// directory, plus `extra` arguments.
fn local_status(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    kastellan()
        .args([
            "status",
            "--local",
            "--node",
            "n1",
            "--probe-timeout",
            "1",
            "--manifests-dir",
        ])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

/// The `cli_status_*` tests probe the host's own control-plane ports; one at a time.
static HOST_PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A manifests directory that says this node runs every control-plane component.
fn manifests_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in [
        "etcd.yaml",
        "kube-apiserver.yaml",
        "kube-controller-manager.yaml",
        "kube-scheduler.yaml",
    ] {
        std::fs::write(d.path().join(f), "spec: {}\n").unwrap();
    }
    d
}

#[test]
fn cli_status_local_reports_unreachable_endpoints_per_row_fast() {
    let _ports = HOST_PORTS.lock().unwrap_or_else(|p| p.into_inner());
    // Nothing listens on the host's control-plane ports (the lab's are inside its
    // namespaces), so every row is down with the reason, and the command is quick.
    let d = manifests_dir();
    let start = Instant::now();
    let out = local_status(d.path(), &["-o", "json"]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "no hang past the timeout"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    validate_schema(&v);
    for comp in COMPONENTS {
        let r = rows(&v, "n1", comp);
        assert!(
            !r.is_empty() && r.iter().all(|c| c["state"] == "down"),
            "{comp}: {r:?}"
        );
    }
    let kubelet = rows(&v, "n1", "kubelet")[0];
    assert!(
        kubelet["detail"].as_str().unwrap().contains("connection"),
        "{kubelet}"
    );
}

#[test]
fn cli_status_port_answering_something_else_or_hanging() {
    let _ports = HOST_PORTS.lock().unwrap_or_else(|p| p.into_inner());
    // A port that answers HTML instead of `ok`, and one that accepts and never answers.
    let wrong =
        std::net::TcpListener::bind("127.0.0.1:10248").expect("port 10248 free on the host");
    let hang = std::net::TcpListener::bind("127.0.0.1:10249").expect("port 10249 free on the host");
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = wrong.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\nConnection: close\r\n\r\n<html>nginx</html>");
        }
        let held = hang.accept();
        std::thread::sleep(Duration::from_secs(4));
        drop(held);
    });
    let d = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let out = local_status(d.path(), &["-o", "json"]);
    let took = start.elapsed();
    server.join().unwrap();
    assert!(
        took < Duration::from_secs(4),
        "the hanging port must not hold status past its timeout: {took:?}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kubelet = rows(&v, "n1", "kubelet")[0];
    assert_eq!(kubelet["state"], "down");
    assert!(
        kubelet["detail"]
            .as_str()
            .unwrap()
            .contains("unexpected answer"),
        "{kubelet}"
    );
    let proxy = rows(&v, "n1", "kube-proxy")
        .into_iter()
        .find(|c| c["endpoint"].as_str().unwrap().contains("10249"))
        .unwrap();
    assert_eq!(proxy["state"], "down");
    assert!(
        proxy["detail"].as_str().unwrap().contains("timed out"),
        "{proxy}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn cli_status_without_a_reachable_cluster_exits_2_or_1_with_the_reason() {
    // A kubeconfig whose server is a closed loopback port: the apiserver rows say so.
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let kc = d.path().join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: x\n"
        ),
    )
    .unwrap();
    let start = Instant::now();
    let out = kastellan()
        .args([
            "status",
            "-o",
            "json",
            "--probe-timeout",
            "1",
            "--node-access",
            "none",
            "--kubeconfig",
        ])
        .arg(&kc)
        .output()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(15));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    validate_schema(&v);
    assert_ne!(out.status.code(), Some(0));
    assert!(any_down(&v, "cluster", "kube-apiserver"), "{v}");

    // A kubeconfig file that does not exist: exit 2 naming the file.
    let out = kastellan()
        .args(["status", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("/nonexistent/kubeconfig"), "{all}");
}

#[test]
fn cli_status_watch_prints_one_document_per_refresh() {
    let _ports = HOST_PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let d = tempfile::tempdir().unwrap();
    let out = local_status(
        d.path(),
        &["--watch", "--interval", "1", "--count", "2", "-o", "json"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 2, "{text}");
    assert_ne!(
        docs[0]["checked_at"], docs[1]["checked_at"],
        "each refresh checks again"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the exit code is the last refresh's verdict"
    );

    // Human form: a header per refresh; nothing changed, so no row is marked.
    let out = local_status(d.path(), &["--watch", "--interval", "1", "--count", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("refresh 1 at") && text.contains("refresh 2 at"),
        "{text}"
    );
    assert!(!text.contains("(was "), "{text}");
}

/// `kastellan status --local` as node `n1` on `dir`'s manifests, under a real
/// pseudo-terminal `cols` columns wide (util-linux `script`; `stty` sets the size that
/// the binary reads back), without `COLUMNS`, plus `extra` arguments and `env`.
fn status_in_terminal(
    dir: &std::path::Path,
    cols: usize,
    extra: &[&str],
    env: &[(&str, &str)],
) -> String {
    let bin = assert_cmd::cargo::cargo_bin!("kastellan");
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut cmd = format!(
        "stty cols {cols} rows 50 && exec {} status --local --node n1 --probe-timeout 1 --manifests-dir {}",
        quote(&bin.display().to_string()),
        quote(&dir.display().to_string())
    );
    for a in extra {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("util-linux `script` (scripts/install-deps.sh installs util-linux)");
    assert_eq!(
        out.status.code(),
        Some(1),
        "every endpoint down: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The terminal turned each newline into CR LF.
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

/// The columns a line takes on a terminal: colour escapes take none.
fn columns(line: &str) -> usize {
    let mut n = 0;
    let mut escape = false;
    for c in line.chars() {
        match (escape, c) {
            (_, '\x1b') => escape = true,
            (true, c) => escape = !c.is_ascii_alphabetic(),
            (false, _) => n += 1,
        }
    }
    n
}

fn widest(text: &str) -> usize {
    text.lines().map(columns).max().unwrap_or(0)
}

#[test]
fn cli_status_in_a_real_terminal_fits_its_width() {
    let _ports = HOST_PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let d = manifests_dir();

    // The default view: colour on a terminal, every line within 80 columns; the grid
    // has this node's line with its components down.
    let glance = status_in_terminal(d.path(), 80, &[], &[]);
    assert!(widest(&glance) <= 80, "{glance}");
    assert!(glance.contains('\x1b'), "colour on a terminal: {glance:?}");
    assert!(glance.contains("problems:"), "{glance}");

    // `-o wide`: one row per probe, cut with an ellipsis to the terminal's width (80,
    // then 120), never wrapped.
    let wide80 = status_in_terminal(d.path(), 80, &["-o", "wide"], &[]);
    let wide120 = status_in_terminal(d.path(), 120, &["-o", "wide"], &[]);
    assert!(widest(&wide80) <= 80 && wide80.contains('…'), "{wide80}");
    assert!(
        widest(&wide120) <= 120 && widest(&wide120) > 80 && wide120.contains('…'),
        "{wide120}"
    );
    let rows = |t: &str| t.lines().take_while(|l| !l.is_empty()).count();
    assert_eq!(
        rows(&wide80),
        rows(&wide120),
        "one line per row at any width"
    );

    // NO_COLOR: no escape code at all, the same width. This node's line: every
    // component it runs down, no certificates found.
    let plain = status_in_terminal(d.path(), 80, &[], &[("NO_COLOR", "1")]);
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert!(widest(&plain) <= 80, "{plain}");
    let node: Vec<&str> = plain
        .lines()
        .find(|l| l.starts_with(" n1 "))
        .unwrap_or_else(|| panic!("no line for n1: {plain}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        node,
        ["n1", "down", "down", "down", "down", "down", "down", "-"],
        "{plain}"
    );

    // JSON is never cut, even on a narrow terminal.
    let json = status_in_terminal(d.path(), 40, &["-o", "json"], &[]);
    let v: Value = serde_json::from_str(&json).unwrap();
    let details: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["detail"].as_str().unwrap())
        .collect();
    assert!(
        details.iter().any(|d| d.len() > 40) && !json.contains('…'),
        "{json}"
    );
}

#[test]
fn cli_status_outside_a_terminal_is_whole_unless_columns_is_set() {
    let _ports = HOST_PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let d = manifests_dir();
    let out = local_status(d.path(), &["-o", "wide"]);
    let whole = String::from_utf8_lossy(&out.stdout);
    assert!(
        !whole.contains('…') && !whole.contains('\x1b') && widest(&whole) > 120,
        "a pipe gets whole lines and no colour: {whole}"
    );
    let out = kastellan()
        .args([
            "status",
            "--local",
            "--node",
            "n1",
            "--probe-timeout",
            "1",
            "-o",
            "wide",
            "--manifests-dir",
        ])
        .arg(d.path())
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    let cut = String::from_utf8_lossy(&out.stdout);
    assert!(
        widest(&cut) <= 100 && cut.contains('…'),
        "COLUMNS=100 is a width: {cut}"
    );
}

//! `kastellan ha` and etcd membership on the 3+2 lab (called from the lab's 3+2 test,
//! which brings the lab up once): the kubelets' single apiserver named as a single
//! point of failure, a controller-manager started with `--leader-elect=false`, a
//! control plane untainted with a pod placed there, and etcd's members on the control
//! planes: defragmented followers first, an unsafe removal refused with one member
//! stopped (SIGSTOP), a member removed and added back as a learner, then promoted,
//! while writes through the API keep succeeding.

use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::on_node as on;
use crate::{kastellan, kubectl};

const ADMIN: &str = "/var/lib/kastellan/lab/admin.conf";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ha_json() -> (i32, Value) {
    let out = kastellan()
        .args(["ha", "-o", "json", "--kubeconfig", ADMIN])
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ha -o json: {e}: {}", text(&out.stderr)));
    (out.status.code().unwrap_or(-1), doc)
}

fn findings(doc: &Value, area: &str) -> Vec<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["area"] == area)
        .map(|f| {
            format!(
                "{}: {}",
                f["severity"].as_str().unwrap(),
                f["text"].as_str().unwrap()
            )
        })
        .collect()
}

fn component<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == name)
        .unwrap_or_else(|| panic!("no {name} row: {doc}"))
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A shell line inside a lab node.
fn sh(node: &str, line: &str) -> String {
    ok(
        kastellan()
            .args(["lab", "exec", node, "--", "sh", "-c", line])
            .output()
            .unwrap(),
        &format!("{node}: {line}"),
    )
}

const ETCDCTL: &str = "ETCDCTL_API=3 /usr/bin/etcdctl --endpoints=https://127.0.0.1:2379 \
    --cacert=/etc/kubernetes/pki/etcd/ca.crt \
    --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
    --key=/etc/kubernetes/pki/etcd/healthcheck-client.key";

/// Member names as etcdctl lists them through cp1.
fn etcdctl_members() -> Vec<String> {
    let mut names: Vec<String> = sh("cp1", &format!("{ETCDCTL} member list"))
        .lines()
        .filter_map(|l| l.split(", ").nth(2).map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The JSON document a command printed (the test fails with its stderr otherwise).
fn parsed(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}), exit {:?}: {}{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

fn members_json() -> Value {
    parsed(&on("cp1", &["etcd", "members", "-o", "json"]))
}

/// The pid of `name`'s etcd, read from the agent's report of its pods.
fn etcd_pid(node: &str) -> u32 {
    crate::lab::pod_process(node, "etcd").proc.pid
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Writes a ConfigMap through the API every 300 ms until stopped, retrying a failed
/// write once as clients do; counts the writes that failed twice.
struct Writer {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<usize>,
}

impl Writer {
    fn start() -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicUsize::new(0));
        let (s, f) = (stop.clone(), failed.clone());
        // Unique names: a rerun on the same lab writes new objects.
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !s.load(Ordering::SeqCst) {
                let write = || {
                    kubectl()
                        .args(["create", "configmap", &format!("ha-writer-{run}-{n}")])
                        .args(["--from-literal", "n=1", "--request-timeout", "20s"])
                        .output()
                        .unwrap()
                };
                let out = write();
                if !out.status.success() {
                    // A request that meets an etcd leader election can time out
                    // ("request timed out, possibly due to previous leader failure");
                    // clients retry, and so does this one, once. A write that fails
                    // twice (or "already exists": the first one landed) counts.
                    eprintln!("write {n} failed, retried: {}", text(&out.stderr));
                    std::thread::sleep(Duration::from_secs(1));
                    let again = write();
                    let landed = text(&again.stderr).contains("already exists");
                    if !again.status.success() && !landed {
                        eprintln!("write {n} failed again: {}", text(&again.stderr));
                        f.fetch_add(1, Ordering::SeqCst);
                    }
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(300));
            }
            n
        });
        Writer {
            stop,
            failed,
            thread,
        }
    }

    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        let n = self.thread.join().unwrap();
        (n, self.failed.load(Ordering::SeqCst))
    }
}

/// The HA report, taints and etcd membership on the running 3+2 lab.
pub fn ha_and_etcd_membership_on_the_3_2_lab() {
    let started = Instant::now();

    // As the lab is: every kubelet but cp1's, and kube-proxy, reach the API through
    // cp1's own address (kubeadm's controlPlaneEndpoint is cp1): exit 1, said in 80
    // columns.
    let out = kastellan()
        .args(["ha", "--kubeconfig", ADMIN])
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    let human = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{human}{}", text(&out.stderr));
    for l in human.lines() {
        assert!(l.chars().count() <= 80, "longer than 80: {l:?}\n{human}");
    }
    let flat = human.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(
            "kube-proxy (all nodes), kubelet on cp2, kubelet on cp3, kubelet on w1, kubelet \
             on w2 reach the API only through cp1's own address https://10.77.0.11:6443"
        ),
        "{human}"
    );
    assert!(
        flat.contains("a single failure loses the API for some clients or etcd quorum"),
        "{human}"
    );
    let (code, doc) = ha_json();
    assert_eq!(code, 1);
    assert_eq!(doc["verdict"], "single-point-of-failure");
    assert_eq!(component(&doc, "kube-apiserver")["instances"], 3);
    let etcd = component(&doc, "etcd");
    assert_eq!(
        (etcd["instances"].as_u64(), etcd["tolerates"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(findings(&doc, "etcd"), Vec::<String>::new());
    assert_eq!(findings(&doc, "taints"), Vec::<String>::new(), "{doc}");
    assert_eq!(
        findings(&doc, "kube-controller-manager"),
        Vec::<String>::new()
    );

    // One controller-manager started with --leader-elect=false: an error naming it.
    let kcm = "/etc/kubernetes/manifests/kube-controller-manager.yaml";
    let flip = |from: &str, to: &str| {
        sh(
            "cp2",
            &format!("sed -i 's/--leader-elect={from}/--leader-elect={to}/' {kcm}"),
        );
        wait_until(
            "cp2's controller-manager mirror pod",
            Duration::from_secs(60),
            || {
                let cmd = kubectl()
                    .args([
                        "-n",
                        "kube-system",
                        "get",
                        "pod",
                        "kube-controller-manager-cp2",
                    ])
                    .args(["-o", "jsonpath={.spec.containers[0].command}"])
                    .output()
                    .unwrap();
                text(&cmd.stdout).contains(&format!("--leader-elect={to}"))
            },
        );
    };
    flip("true", "false");
    let (code, doc) = ha_json();
    assert_eq!(code, 1);
    assert_eq!(
        findings(&doc, "kube-controller-manager"),
        [
            "error: 3 instances, and cp2 runs with --leader-elect=false: it acts beside the \
          elected leader on the same objects"
        ]
    );
    flip("false", "true");
    assert_eq!(
        findings(&ha_json().1, "kube-controller-manager"),
        Vec::<String>::new()
    );

    // cp2 untainted, a pod placed there (kube-proxy's DaemonSet pod and the mirror pods
    // are not workloads); tainted again, the pod gone: nothing to say.
    ok(
        kubectl()
            .args([
                "taint",
                "nodes",
                "cp2",
                "node-role.kubernetes.io/master:NoSchedule-",
            ])
            .output()
            .unwrap(),
        "untaint cp2",
    );
    ok(
        kubectl()
            .args(["run", "ha-pinned", "--image=nginx", "--restart=Never"])
            .args(["--overrides", r#"{"spec":{"nodeName":"cp2"}}"#])
            .output()
            .unwrap(),
        "a pod on cp2",
    );
    let (code, doc) = ha_json();
    assert_eq!(code, 1);
    assert_eq!(
        findings(&doc, "taints"),
        [
            "warning: control plane cp2 has no node-role.kubernetes.io/control-plane (or \
             legacy master) NoSchedule taint: workloads can be scheduled there",
            "warning: 1 workload pod on control plane cp2: default/ha-pinned"
        ]
    );
    let fix = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["area"] == "taints")
        .unwrap()["fix"]
        .clone();
    assert_eq!(
        fix,
        "kubectl taint nodes cp2 node-role.kubernetes.io/master:NoSchedule"
    );
    ok(
        kubectl()
            .args([
                "taint",
                "nodes",
                "cp2",
                "node-role.kubernetes.io/master:NoSchedule",
            ])
            .output()
            .unwrap(),
        "taint cp2",
    );
    ok(
        kubectl()
            .args(["delete", "pod", "ha-pinned", "--wait=true", "--timeout=60s"])
            .output()
            .unwrap(),
        "delete the pod",
    );
    assert_eq!(findings(&ha_json().1, "taints"), Vec::<String>::new());

    // etcd: every member matched to its control plane.
    let doc = members_json();
    let mut matched: Vec<(String, String)> = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["node"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    matched.sort();
    assert_eq!(
        matched,
        [("cp1", "cp1"), ("cp2", "cp2"), ("cp3", "cp3")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    // Defragmentation, followers first and the leader last: 3 MB written, deleted and
    // compacted first, so each member's database shrinks by about that much.
    sh(
        "cp1",
        &format!(
            "for i in 1 2 3; do head -c 1000000 /dev/zero | tr '\\0' x | {ETCDCTL} put \
             /kastellan-defrag-test/$i >/dev/null; done; {ETCDCTL} del --prefix \
             /kastellan-defrag-test/ >/dev/null; rev=$({ETCDCTL} endpoint status -w json \
             | sed -E 's/.*\"revision\":([0-9]+).*/\\1/'); {ETCDCTL} compact $rev"
        ),
    );
    let before = members_json();
    let out = on("cp1", &["etcd", "defrag", "-o", "json"]);
    let defrag = parsed(&out);
    assert_eq!(out.status.code(), Some(0), "{defrag}{}", text(&out.stderr));
    let roles: Vec<&str> = defrag["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["follower", "follower", "leader"], "{defrag}");
    let leader = before["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["leader"] == true)
        .map(|m| m["name"].clone());
    assert_eq!(
        Some(defrag["members"][2]["name"].clone()),
        leader,
        "{before}"
    );
    let after = members_json();
    for m in defrag["members"].as_array().unwrap() {
        let (b, a) = (
            m["dbSizeBefore"].as_u64().unwrap(),
            m["dbSizeAfter"].as_u64().unwrap(),
        );
        assert!(a + 2_500_000 < b, "{}: {b} -> {a}", m["name"]);
        let now = after["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == m["name"])
            .unwrap()["status"]["dbSize"]
            .as_u64()
            .unwrap_or_else(|| panic!("{after}"));
        assert!(now + 2_000_000 < b, "{}: {now} now, {b} before", m["name"]);
    }

    // Healthy again after the leader's defragmentation before anything else starts.
    let healthy = |n: usize| {
        move || {
            members_json()["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["health"] == "healthy")
                .count()
                == n
        }
    };
    wait_until("every member healthy", Duration::from_secs(30), healthy(3));
    let writer = Writer::start();
    // A follower's etcd stopped for real (SIGSTOP; never the leader, whose loss would
    // leave no leader until an election): removing another member would leave 2
    // members of which 1 is healthy: refused, nothing changed; the HA report says the
    // next failure loses quorum.
    let now = members_json();
    // The commands go through cp1, so cp1 stays up: the member stopped is a follower
    // other than cp1, the one whose removal is refused is the third.
    let down = now["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["leader"] != true && m["name"] != "cp1")
        .map(|m| m["name"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("{now}"));
    let victim = ["cp2", "cp3"]
        .into_iter()
        .find(|n| *n != down)
        .unwrap()
        .to_string();
    let pid = etcd_pid(&down);
    let stop = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    };
    stop("-STOP");
    wait_until(
        "the stopped member seen down",
        Duration::from_secs(30),
        healthy(2),
    );
    let out = on("cp1", &["etcd", "member", "remove", &victim]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}{}", text(&out.stderr));
    assert!(said.contains("refused, nothing changed"), "{said}");
    assert!(said.contains("quorum would be lost"), "{said}");
    assert!(said.contains("quorum LOST"), "{said}");
    assert_eq!(etcdctl_members(), ["cp1", "cp2", "cp3"]);
    let (code, doc) = ha_json();
    assert_eq!(code, 1);
    assert_eq!(
        findings(&doc, "etcd"),
        ["error: 2 of 3 etcd members healthy: the next failure loses quorum"]
    );
    stop("-CONT");
    wait_until(
        "the stopped member healthy again",
        Duration::from_secs(30),
        || {
            members_json()["members"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["health"] == "healthy")
        },
    );

    // cp3 removed (an even count: --force), then added back as a learner, started on
    // an empty data dir with the printed flags, and promoted once caught up.
    std::thread::sleep(Duration::from_secs(6)); // etcd's strict reconfiguration check
    let out = on(
        "cp1",
        &["etcd", "member", "remove", "cp3", "--force", "-o", "json"],
    );
    let doc = parsed(&out);
    assert_eq!(doc["outcome"], "done", "{doc}{}", text(&out.stderr));
    assert_eq!(etcdctl_members(), ["cp1", "cp2"]);
    // The node's part, as `next` says: stop it for good, empty its data dir.
    sh(
        "cp3",
        "mv /etc/kubernetes/manifests/etcd.yaml /etc/kubernetes/etcd.yaml.held && \
         rm -rf /var/lib/etcd/member",
    );
    let (_, doc) = ha_json();
    assert_eq!(
        findings(&doc, "etcd"),
        [
            "error: 2 etcd members: a single failure loses quorum",
            "warning: 2 etcd members: an even count tolerates no more failures than 1",
            "warning: control plane cp3 runs no etcd member of this cluster (3 control \
             planes, 2 members)"
        ]
    );
    let out = on(
        "cp1",
        &[
            "etcd",
            "member",
            "add",
            "cp3",
            "--peer-urls",
            "https://10.77.0.13:2380",
            "-o",
            "json",
        ],
    );
    let doc = parsed(&out);
    assert_eq!(doc["outcome"], "done", "{doc}{}", text(&out.stderr));
    assert_eq!(doc["plan"]["change"]["learner"], true, "{doc}");
    let initial = doc["join"]["initialCluster"].as_str().unwrap().to_string();
    assert_eq!(doc["join"]["initialClusterState"], "existing");
    sh(
        "cp3",
        &format!(
            "f=/etc/kubernetes/etcd.yaml.held; sed -i -e '/--initial-cluster-state=/d' \
             -e 's|- --initial-cluster=.*|- --initial-cluster={initial}\\n    - \
             --initial-cluster-state=existing|' $f && mv $f /etc/kubernetes/manifests/etcd.yaml"
        ),
    );
    let out = on(
        "cp1",
        &[
            "etcd", "member", "promote", "cp3", "--wait", "60", "-o", "json",
        ],
    );
    let doc = parsed(&out);
    assert_eq!(doc["outcome"], "done", "{doc}{}", text(&out.stderr));
    assert_eq!(doc["plan"]["after"]["voting"], 3, "{doc}");
    let doc = members_json();
    assert_eq!(doc["tolerance"]["voting"], 3, "{doc}");
    assert_eq!(doc["tolerance"]["healthy"], 3, "{doc}");
    let (writes, failed) = writer.finish();
    assert!(writes > 5, "{writes} writes");
    assert_eq!(
        failed, 0,
        "writes through the API failed during the membership changes"
    );
    let (_, doc) = ha_json();
    assert_eq!(findings(&doc, "etcd"), Vec::<String>::new(), "{doc}");
    let etcd = component(&doc, "etcd");
    assert_eq!(
        (etcd["instances"].as_u64(), etcd["tolerates"].as_u64()),
        (Some(3), Some(1))
    );
    eprintln!(
        "ha and etcd membership on the 3+2 lab: {:.0}s ({writes} writes)",
        started.elapsed().as_secs_f64()
    );
}

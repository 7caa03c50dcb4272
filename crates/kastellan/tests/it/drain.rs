//! `kastellan node cordon|uncordon|drain` on the lab (tier `lab_`): one control plane
//! and two workers running Deployments (one with emptyDir), a DaemonSet, a bare pod, a
//! finished pod and two PodDisruptionBudgets (one allows one disruption, one none).
//! Every rule is checked against `kubectl drain` v1.20.2 on the same setup: the same
//! pods refused and evicted in dry runs, the same pods left after a drain blocked by
//! the budget; kastellan names the budget and stops at its timeout, kubectl keeps
//! retrying in silence until its own.

use std::collections::BTreeSet;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::LabGuard;
use crate::{kastellan, kubectl, lab_lock};

const ADMIN: &str = "/var/lib/kastellan/lab/admin.conf";
const NS: &str = "drain-test";

const SETUP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: drain-test}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: web}}}
      containers: [{name: web, image: nginx}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: drain-test}
spec:
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: db}}}
      containers: [{name: db, image: postgres}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cache, namespace: drain-test}
spec:
  replicas: 2
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: cache}}}
      containers: [{name: cache, image: redis, volumeMounts: [{name: scratch, mountPath: /data}]}]
      volumes: [{name: scratch, emptyDir: {}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: solo, namespace: drain-test}
spec:
  replicas: 1
  selector: {matchLabels: {app: solo}}
  template:
    metadata: {labels: {app: solo}}
    spec:
      nodeSelector: {kubernetes.io/hostname: w2}
      containers: [{name: solo, image: busybox}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: drain-test}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: bare, namespace: drain-test, labels: {app: bare}}
spec:
  nodeName: w1
  containers: [{name: bare, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: drain-test, labels: {app: done}}
spec:
  nodeName: w1
  restartPolicy: Never
  containers: [{name: done, image: busybox}]
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: web-pdb, namespace: drain-test}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: db-pdb, namespace: drain-test}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: db}}
"#;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The directory kastellan runs in here, also its `HOME` and `TMPDIR`: the local
/// files a drain could write without being told a path (it is given the kubeconfig).
fn scratch() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn k(args: &[&str]) -> Output {
    kastellan()
        .args(["--kubeconfig", ADMIN])
        .args(args)
        .current_dir(scratch())
        .env("HOME", scratch())
        .env("TMPDIR", scratch())
        .output()
        .unwrap()
}

/// What a drain changes in the cluster: every Node's spec (the cordon is
/// `unschedulable`), every pod by namespace/name with its UID, node and deletion mark
/// (an eviction deletes; a re-created pod has a new UID), and each budget's status
/// (`disruptedPods` records every eviction the API server admits; `disruptionsAllowed`
/// drops with it).
fn cluster_state() -> Value {
    let nodes: serde_json::Map<String, Value> = kc_json(&["get", "nodes"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                n["spec"].clone(),
            )
        })
        .collect();
    let pods: serde_json::Map<String, Value> = kc_json(&["get", "pods", "-A"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let m = &p["metadata"];
            (
                format!(
                    "{}/{}",
                    m["namespace"].as_str().unwrap(),
                    m["name"].as_str().unwrap()
                ),
                json!({
                    "uid": m["uid"],
                    "node": p["spec"]["nodeName"],
                    "deletionTimestamp": m["deletionTimestamp"],
                }),
            )
        })
        .collect();
    let budgets: serde_json::Map<String, Value> = kc_json(&["get", "pdb", "-n", NS])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["metadata"]["name"].as_str().unwrap().to_string(),
                json!({
                    "disruptedPods": b["status"]["disruptedPods"],
                    "disruptionsAllowed": b["status"]["disruptionsAllowed"],
                }),
            )
        })
        .collect();
    json!({"nodes": nodes, "pods": pods, "budgets": budgets})
}

/// Fails naming what differs between two [`cluster_state`]s.
fn assert_same_cluster(before: &Value, after: &Value, what: &str) {
    let mut diffs = Vec::new();
    for part in ["nodes", "pods", "budgets"] {
        let (b, a) = (
            before[part].as_object().unwrap(),
            after[part].as_object().unwrap(),
        );
        for (name, was) in b {
            match a.get(name) {
                None => diffs.push(format!("{part}: {name} gone")),
                Some(now) if now != was => diffs.push(format!("{part}: {name}: {was} -> {now}")),
                Some(_) => {}
            }
        }
        diffs.extend(
            a.keys()
                .filter(|n| !b.contains_key(*n))
                .map(|n| format!("{part}: {n} new")),
        );
    }
    assert!(
        diffs.is_empty(),
        "{what} changed the cluster:\n{}",
        diffs.join("\n")
    );
}

fn kc(args: &[&str]) -> Output {
    kubectl().args(args).output().unwrap()
}

fn kc_json(args: &[&str]) -> Value {
    let out = kc(&[args, &["-o", "json"]].concat());
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// `ns/name` of the pods bound to `node`, with the DaemonSet and mirror pods left out
/// when `movable`.
fn pods_on(node: &str, movable: bool) -> BTreeSet<String> {
    let v = kc_json(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        &format!("spec.nodeName={node}"),
    ]);
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            let kind = &p["metadata"]["ownerReferences"][0]["kind"];
            !movable || (kind != "DaemonSet" && kind != "Node")
        })
        .map(|p| {
            format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap(),
                p["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn pod_on(node: &str, app: &str) -> String {
    pods_on(node, true)
        .into_iter()
        .find(|p| p.starts_with(&format!("{NS}/{app}-")))
        .unwrap_or_else(|| panic!("no {app} pod on {node}"))
}

fn cordoned(node: &str) -> bool {
    kc_json(&["get", "node", node])["spec"]["unschedulable"] == json!(true)
}

/// Every Deployment ready with all replicas, nothing Pending, both budgets up to date.
fn settled() -> bool {
    let deploys = kc_json(&["get", "deploy", "-A"]);
    let ready = deploys["items"].as_array().unwrap().iter().all(|d| {
        d["status"]["readyReplicas"] == d["spec"]["replicas"]
            && d["status"]["updatedReplicas"] == d["spec"]["replicas"]
            && d["status"]["replicas"] == d["spec"]["replicas"]
    });
    let pods = kc_json(&["get", "pods", "-A"]);
    let pending = pods["items"].as_array().unwrap().iter().any(|p| {
        p["status"]["phase"] == "Pending" || !p["metadata"]["deletionTimestamp"].is_null()
    });
    let pdbs = kc_json(&["get", "pdb", "-n", NS]);
    let budgets = pdbs["items"].as_array().unwrap().iter().all(|p| {
        p["status"]["observedGeneration"] == p["metadata"]["generation"]
            && p["status"]["currentHealthy"] == json!(2)
            && p["status"]["expectedPods"] == json!(2)
    });
    ready && !pending && budgets
}

fn settle() {
    wait_until("the workloads to settle", Duration::from_secs(60), settled);
}

/// kubectl's refused pods: the `ns/name` lists after "cannot delete ...: ".
fn kubectl_refused(stderr: &str) -> BTreeSet<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("cannot delete"))
        .filter_map(|l| l.split("): ").nth(1))
        .flat_map(|list| list.split(", ").map(str::to_string))
        .collect()
}

/// kubectl's evicted pods: "evicting pod ns/name[ (dry run)]".
fn kubectl_evicting(stdout: &str) -> BTreeSet<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("evicting pod "))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn names(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["namespace"].as_str().unwrap(),
                p["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn plan_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no plan ({e}): {}{}", text(&out.stdout), text(&out.stderr)))
}

fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The finished pod: the stand-in kubelet marks it Running; it "completes" here, as
/// a kubelet would report a container that exited 0 (restartPolicy Never).
fn mark_succeeded(name: &str) {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, Patch, PatchParams};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(ADMIN).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let pods: Api<Pod> = Api::namespaced(kube::Client::try_from(config).unwrap(), NS);
        let status = json!({"status": {
            "phase": "Succeeded",
            "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
        }});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
    });
}

#[test]
fn lab_drain_rules_budgets_hazards_against_kubectl() {
    let _lock = lab_lock();
    let pre = kastellan().args(["lab", "status"]).output().unwrap();
    assert!(
        !pre.status.success() && text(&pre.stderr).contains("no lab is up"),
        "a lab is already up on this machine; run `kastellan lab down` before the lab tests"
    );
    let _guard = LabGuard;
    let up = kastellan()
        .args([
            "lab",
            "up",
            "--control-planes",
            "1",
            "--workers",
            "2",
            "--join",
            "copy",
        ])
        .output()
        .unwrap();
    assert!(up.status.success(), "lab up: {}", text(&up.stderr));
    let t0 = Instant::now();

    // Setup: the namespace, then the objects once its service account exists.
    assert!(kc(&["create", "namespace", NS]).status.success());
    let dir = tempfile::tempdir().unwrap();
    let setup = dir.path().join("setup.yaml");
    std::fs::write(&setup, SETUP).unwrap();
    wait_until(
        "the namespace's service account",
        Duration::from_secs(60),
        || {
            kc(&["get", "serviceaccount", "default", "-n", NS])
                .status
                .success()
        },
    );
    let apply = kc(&["apply", "-f", setup.to_str().unwrap()]);
    assert!(apply.status.success(), "{}", text(&apply.stderr));
    wait_until("the done pod to run", Duration::from_secs(60), || {
        kc_json(&["get", "pod", "done", "-n", NS])["status"]["phase"] == "Running"
    });
    mark_succeeded("done");
    settle();
    let db_w1 = pod_on("w1", "db");
    let db_w2 = pod_on("w2", "db");
    assert!(
        kc(&[
            "label",
            "pod",
            "-n",
            NS,
            db_w2.split('/').nth(1).unwrap(),
            "role=primary"
        ])
        .status
        .success()
    );

    // Issue 18, "Dry runs change nothing": the cluster and the local files as they
    // are before the dry runs of 1 to 3, compared after them.
    let cluster_before = cluster_state();
    assert_eq!(
        cluster_before["budgets"]["web-pdb"]["disruptionsAllowed"],
        json!(1),
        "{cluster_before:#}"
    );
    let files_before = crate::tree::snapshot(scratch());

    // 1. No flags, dry run: the same pods refused as kubectl's, nothing changed (not
    //    even the cordon); the finished bare pod is not refused.
    let ours = k(&["node", "drain", "w1", "--dry-run", "-o", "json"]);
    assert_eq!(code(&ours), 1, "{}", text(&ours.stderr));
    let plan = plan_of(&ours);
    let refused = names(&plan["nodes"][0]["refuse"]);
    let theirs = kc(&["drain", "w1", "--dry-run=client"]);
    assert!(!theirs.status.success());
    assert_eq!(refused, kubectl_refused(&text(&theirs.stderr)));
    assert!(refused.contains(&format!("{NS}/bare")) && !refused.contains(&format!("{NS}/done")));
    assert!(refused.contains(&pod_on("w1", "cache")));
    let reasons: BTreeSet<&str> = plan["nodes"][0]["refuse"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reasons"][0].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["daemon-set", "local-storage", "unmanaged"].into());
    assert!(!cordoned("w1"), "a dry run cordons nothing");
    let human = k(&["node", "drain", "w1", "--dry-run"]);
    assert_eq!(code(&human), 1);
    let human_out = text(&human.stdout);
    assert!(human_out.contains("--ignore-daemonsets") && human_out.contains("--force"));
    assert!(
        human_out.lines().all(|l| l.chars().count() <= 80),
        "{human_out}"
    );

    // 2. With the flags, dry run: the same pods evicted as kubectl's; db-pdb blocks
    //    (allows 0), web-pdb allows its one.
    let flags = ["--ignore-daemonsets", "--delete-emptydir-data", "--force"];
    let ours = k(&[
        &["node", "drain", "w1", "--dry-run", "-o", "json"][..],
        &flags,
    ]
    .concat());
    assert_eq!(code(&ours), 1, "blocked by db-pdb: {}", text(&ours.stderr));
    let plan = plan_of(&ours);
    let evict_w1 = names(&plan["nodes"][0]["evict"]);
    let theirs = kc(&[&["drain", "w1", "--dry-run=client"][..], &flags].concat());
    assert!(theirs.status.success(), "{}", text(&theirs.stderr));
    assert_eq!(evict_w1, kubectl_evicting(&text(&theirs.stdout)));
    assert!(evict_w1.contains(&format!("{NS}/done")) && evict_w1.contains(&db_w1));
    assert_eq!(plan["removal"], "policy/v1beta1");
    let budgets = plan["nodes"][0]["budgets"].as_array().unwrap();
    let db = budgets.iter().find(|b| b["name"] == "db-pdb").unwrap();
    assert_eq!(
        (db["blocks"].clone(), db["disruptionsAllowed"].clone()),
        (json!(true), json!(0))
    );
    assert_eq!(names(&db["pods"]), [db_w1.clone(), db_w2.clone()].into());
    let web = budgets.iter().find(|b| b["name"] == "web-pdb").unwrap();
    assert_eq!(
        (web["blocks"].clone(), web["disruptionsAllowed"].clone()),
        (json!(false), json!(1))
    );
    assert!(!cordoned("w1"));
    // Both workers at once: web-pdb allows one of the two web evictions.
    let ours = k(&[
        &[
            "node",
            "drain",
            "w1",
            "w2",
            "--max-unavailable",
            "2",
            "--dry-run",
            "-o",
            "json",
        ][..],
        &flags,
    ]
    .concat());
    assert_eq!(code(&ours), 1);
    let plan = plan_of(&ours);
    assert_eq!(plan["batches"], json!([["w1", "w2"]]));
    let web = plan["nodes"][0]["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "web-pdb")
        .unwrap()
        .clone();
    assert_eq!(
        (web["evictions"].clone(), web["blocks"].clone()),
        (json!(2), json!(true))
    );

    // 3. Hazards refuse without --force: the last ready replica (solo, only on w2), a
    //    marked primary, and the only etcd member (cp1).
    let ours = k(&[
        "node",
        "drain",
        "w2",
        "--dry-run",
        "-o",
        "json",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--primary-label",
        "role=primary",
    ]);
    assert_eq!(code(&ours), 1);
    let plan = plan_of(&ours);
    assert!(plan["nodes"][0]["refuse"].as_array().unwrap().is_empty());
    let hazards = plan["nodes"][0]["hazards"].as_array().unwrap();
    assert!(
        hazards
            .iter()
            .any(|h| h["kind"] == "last-ready-replica" && h["workload"]["name"] == "solo"),
        "{hazards:?}"
    );
    assert!(hazards.iter().any(|h| h["kind"] == "primary"
        && format!("{NS}/{}", h["pod"]["name"].as_str().unwrap()) == db_w2));
    let ours = k(&[
        "node",
        "drain",
        "cp1",
        "--dry-run",
        "-o",
        "json",
        "--ignore-daemonsets",
    ]);
    assert_eq!(code(&ours), 1);
    let plan = plan_of(&ours);
    let h = &plan["nodes"][0]["hazards"][0];
    assert_eq!(
        (
            h["kind"].as_str(),
            h["members"].as_u64(),
            h["healthyAfter"].as_u64()
        ),
        (Some("etcd-quorum"), Some(1), Some(0))
    );
    assert!(
        plan["nodes"][0]["skip"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "etcd-cp1" && p["reasons"][0] == "mirror")
    );

    // None of the dry runs above (every node, with and without the flags that allow
    // evictions, budgets that allow one) cordoned, evicted or deleted anything, nor
    // wrote a local file.
    assert_same_cluster(&cluster_before, &cluster_state(), "node drain --dry-run");
    crate::tree::assert_unchanged(scratch(), &files_before, "node drain --dry-run");

    // 4. kubectl drain w1, for real: it evicts what kastellan planned, retries the db
    //    pod every 5 s without naming the budget, and gives up only at its --timeout.
    let start = Instant::now();
    let theirs = kc(&[&["drain", "w1", "--timeout=6s"][..], &flags].concat());
    let kubectl_secs = start.elapsed();
    let their_err = text(&theirs.stderr);
    assert!(!theirs.status.success());
    assert!(kubectl_secs >= Duration::from_secs(6), "{kubectl_secs:?}");
    assert!(
        their_err.matches("will retry after 5s").count() >= 1,
        "{their_err}"
    );
    assert!(their_err.contains("disruption budget") && !their_err.contains("db-pdb"));
    assert_eq!(kubectl_evicting(&text(&theirs.stdout)), evict_w1);
    wait_until("kubectl's evictions", Duration::from_secs(30), || {
        pods_on("w1", true) == [db_w1.clone()].into()
    });
    let out = k(&["node", "uncordon", "w1"]);
    assert_eq!(code(&out), 0);
    assert!(text(&out.stdout).contains("node/w1 uncordoned") && !cordoned("w1"));
    settle();
    // The state the dry runs were checked with sees a real drain: the evicted pods
    // came back under new UIDs.
    assert_ne!(
        cluster_state()["pods"],
        cluster_before["pods"],
        "a real drain changes the pods"
    );

    // 5. kastellan drain w2: the same outcome (everything but the db pod evicted), the
    //    budget named with its pods and owners, exit 1 at its own --timeout, w2 left
    //    cordoned.
    let planned_w2 = names(
        &plan_of(&k(&[
            &["node", "drain", "w2", "--dry-run", "-o", "json"][..],
            &flags,
        ]
        .concat()))["nodes"][0]["evict"],
    );
    let start = Instant::now();
    let ours = k(&[
        &["node", "drain", "w2", "--timeout", "4s", "-o", "json"][..],
        &flags,
    ]
    .concat());
    let ours_secs = start.elapsed();
    assert_eq!(code(&ours), 1, "{}", text(&ours.stderr));
    assert!(ours_secs < Duration::from_secs(12), "{ours_secs:?}");
    let events = json_lines(&ours);
    let blocked = events
        .iter()
        .find(|e| e["event"] == "blocked")
        .expect("a blocked event");
    assert_eq!(blocked["budget"]["name"], "db-pdb");
    assert_eq!(blocked["budget"]["disruptionsAllowed"], 0);
    assert_eq!(blocked["budget"]["desiredHealthy"], 2);
    let covered = &blocked["budget"]["pods"];
    assert_eq!(names(covered), [db_w1.clone(), db_w2.clone()].into());
    assert!(
        covered
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["owner"]["kind"] == "Deployment" && p["owner"]["name"] == "db")
    );
    let result = events.last().unwrap();
    assert_eq!(result["event"], "result");
    let node = &result["nodes"][0];
    assert_eq!(node["state"], "timed-out");
    assert_eq!(node["cordoned"], true);
    assert_eq!(node["blockers"][0]["name"], "db-pdb");
    assert_eq!(names(&node["remaining"]), [db_w2.clone()].into());
    let mut removed = names(&node["removed"]);
    removed.insert(db_w2.clone());
    assert_eq!(removed, planned_w2);
    assert!(cordoned("w2"), "a failed drain leaves the node cordoned");
    wait_until("kastellan's evictions", Duration::from_secs(30), || {
        pods_on("w2", true) == [db_w2.clone()].into()
    });
    assert_eq!(code(&k(&["node", "uncordon", "w2"])), 0);
    settle();

    // 6. The same for humans, with --uncordon-on-failure: named, then uncordoned.
    let ours = k(&[
        &[
            "node",
            "drain",
            "w2",
            "--timeout",
            "3s",
            "--uncordon-on-failure",
        ][..],
        &flags,
    ]
    .concat());
    assert_eq!(code(&ours), 1);
    let out = text(&ours.stdout);
    assert!(
        out.contains("timed out") && out.contains("PDB drain-test/db-pdb"),
        "{out}"
    );
    assert!(out.contains("node/w2 uncordoned"), "{out}");
    let err = text(&ours.stderr);
    assert!(err.contains("refused"), "{err}");
    assert!(
        err.contains("last ready replica") && err.contains("--force"),
        "{err}"
    );
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
    assert!(!cordoned("w2"));
    settle();

    // 7. --disable-eviction deletes past the budget and says which it overrode.
    let ours = k(&[
        &[
            "node",
            "drain",
            "w2",
            "--timeout",
            "60s",
            "--disable-eviction",
            "-o",
            "json",
        ][..],
        &flags,
    ]
    .concat());
    assert_eq!(code(&ours), 0, "{}", text(&ours.stdout));
    let events = json_lines(&ours);
    let deleted = events
        .iter()
        .find(|e| {
            e["event"] == "deleted"
                && format!("{NS}/{}", e["pod"]["name"].as_str().unwrap()) == db_w2
        })
        .expect("the db pod deleted");
    assert_eq!(deleted["overrode"][0]["name"], "db-pdb");
    let node = &events.last().unwrap()["nodes"][0];
    assert_eq!(
        (node["state"].as_str(), node["cordoned"].as_bool()),
        (Some("drained"), Some(true))
    );
    assert_eq!(node["overridden"][0]["budgets"][0]["name"], "db-pdb");
    assert!(pods_on("w2", true).is_empty(), "only DaemonSet pods stay");
    assert_eq!(code(&k(&["node", "uncordon", "w2"])), 0);
    settle();

    // 8. A drain that ends well through the Eviction API: only the web pod of w1
    //    (--pod-selector), which web-pdb allows; exit 0.
    let web_w1 = pod_on("w1", "web");
    let ours = k(&[
        "node",
        "drain",
        "w1",
        "--pod-selector",
        "app=web",
        "--timeout",
        "60s",
    ]);
    assert_eq!(
        code(&ours),
        0,
        "{}{}",
        text(&ours.stdout),
        text(&ours.stderr)
    );
    assert!(text(&ours.stdout).contains("w1: drained"));
    assert!(!pods_on("w1", true).contains(&web_w1) && pods_on("w1", true).contains(&db_w1));
    assert!(cordoned("w1"));
    assert_eq!(
        code(&k(&["node", "cordon", "w1"])),
        0,
        "cordon is idempotent"
    );
    assert_eq!(code(&k(&["node", "uncordon", "w1"])), 0);

    // 9. Several nodes, one after another, each planned just before it starts: w1
    //    (no solo pod there) is drained, then w2's plan refuses (solo's last ready
    //    replica) with w1's result kept; exit 1, w2 untouched.
    let ours = k(&[
        "node",
        "drain",
        "w1",
        "w2",
        "--pod-selector",
        "app=solo",
        "-o",
        "json",
    ]);
    assert_eq!(code(&ours), 1, "{}", text(&ours.stderr));
    let events = json_lines(&ours);
    let result = events.last().unwrap();
    assert_eq!(
        (
            result["nodes"][0]["node"].as_str(),
            result["nodes"][0]["state"].as_str()
        ),
        (Some("w1"), Some("drained"))
    );
    let refused = &result["refused"]["plan"]["nodes"][0];
    assert_eq!(
        (
            refused["node"].as_str(),
            refused["hazards"][0]["kind"].as_str()
        ),
        (Some("w2"), Some("last-ready-replica"))
    );
    assert!(cordoned("w1") && !cordoned("w2"));
    assert_eq!(code(&k(&["node", "uncordon", "w1"])), 0);

    // 10. Both workers at once: their cache pods go together (both replicas: a hazard
    //     that --force allows, reported in the batch's plan); exit 0.
    let ours = k(&[
        "node",
        "drain",
        "w1",
        "w2",
        "--max-unavailable",
        "2",
        "--pod-selector",
        "app=cache",
        "--delete-emptydir-data",
        "--force",
        "--timeout",
        "60s",
        "-o",
        "json",
    ]);
    assert_eq!(
        code(&ours),
        0,
        "{}{}",
        text(&ours.stdout),
        text(&ours.stderr)
    );
    let events = json_lines(&ours);
    let batch = events.iter().find(|e| e["event"] == "batch").unwrap();
    assert_eq!(batch["nodes"], json!(["w1", "w2"]));
    assert!(
        batch["plans"][0]["hazards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "last-ready-replica" && h["workload"]["name"] == "cache")
    );
    let result = events.last().unwrap();
    assert!(
        result["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "drained")
    );
    assert!(cordoned("w1") && cordoned("w2"));
    assert_eq!(code(&k(&["node", "uncordon", "w1", "w2"])), 0);

    // 11. Bad input: exit 2.
    assert_eq!(code(&k(&["node", "drain", "nosuch", "--dry-run"])), 2);
    assert_eq!(code(&k(&["node", "cordon", "nosuch"])), 2);
    assert_eq!(
        code(&k(&[
            "node",
            "drain",
            "w1",
            "--dry-run",
            "--pod-selector",
            "a b c"
        ])),
        2
    );
    assert_eq!(code(&k(&["node", "drain", "w1", "--timeout", "5x"])), 2);
    println!(
        "lab_drain: kubectl blocked {:.1}s (timeout 6s), kastellan {:.1}s (timeout 4s); \
         {:.0}s after lab up",
        kubectl_secs.as_secs_f64(),
        ours_secs.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

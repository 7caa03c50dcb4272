//! `versions` and `upgrade check` on the lab (run inside the 3+2 lab test of `lab.rs`,
//! so that they cost no lab of their own), compared with what kubectl shows.

use std::process::Output;

use crate::kubectl;

/// kastellan with the lab's kubeconfig.
fn kastellan() -> std::process::Command {
    let mut c = crate::kastellan();
    c.env("KUBECONFIG", "/var/lib/kastellan/lab/admin.conf");
    c
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn kubectl_json(args: &[&str]) -> serde_json::Value {
    let out = kubectl().args(args).args(["-o", "json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out)
}

/// The rows of one component: (where, reported, source, installed as).
fn rows(v: &serde_json::Value, component: &str) -> Vec<(String, String, String, String)> {
    let s = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_string();
    v["found"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["component"] == component)
        .map(|f| {
            (
                s(&f["instance"]),
                s(&f["reported"]),
                s(&f["source"]),
                s(&f["installed"]),
            )
        })
        .collect()
}

/// The lab runs v1.20.2 with 3 control planes (cp1-3) and 2 workers (w1, w2).
pub fn versions_and_skew_on_the_3_2_lab() {
    let on = |date: &str| {
        kastellan()
            .args(["versions", "-o", "json", "--date", date])
            .args([
                "--etc-kubernetes",
                "/var/lib/kastellan/lab/nodes/cp1/etc-kubernetes",
            ])
            .output()
            .unwrap()
    };
    // Supported on 2021-06-01 (1.20 ended on 2022-02-28): exit 0.
    let out = on("2021-06-01");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);

    // Each apiserver answered for itself, with the version kubectl sees.
    let server = kubectl().args(["version", "-o", "json"]).output().unwrap();
    let server = json(&server)["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(server, "v1.20.2");
    let api = rows(&v, "kube-apiserver");
    assert_eq!(api.len(), 3, "{api:?}");
    for (i, (node, reported, source, installed)) in api.iter().enumerate() {
        assert_eq!(node, &format!("cp{}", i + 1));
        assert_eq!(reported, &server);
        assert_eq!(
            source,
            &format!("GET https://10.77.0.1{}:6443/version", i + 1)
        );
        assert_eq!(installed, "static-pod");
    }
    // Controller-manager, scheduler and etcd from their static pods' images, as the
    // mirror pods show them.
    let pods = kubectl_json(&["get", "pods", "-n", "kube-system"]);
    // Each etcd member, asked itself (the v3 status call), and its static pod.
    let members: Vec<_> = rows(&v, "etcd")
        .into_iter()
        .filter(|r| r.2.starts_with("etcd status https://10.77.0.1"))
        .collect();
    assert_eq!(
        members.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["cp1", "cp2", "cp3"],
        "{members:?}"
    );
    for m in &members {
        assert!(m.1.starts_with("3."), "an etcd version: {m:?}");
    }
    for component in ["kube-controller-manager", "kube-scheduler", "etcd"] {
        let found: Vec<_> = rows(&v, component)
            .into_iter()
            .filter(|r| r.2.starts_with("pod "))
            .collect();
        assert_eq!(found.len(), 3, "{component}: {found:?}");
        for (node, reported, source, installed) in &found {
            let pod = format!("{component}-{node}");
            let image = pods["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["metadata"]["name"] == pod.as_str())
                .map(|p| {
                    p["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .unwrap_or_else(|| panic!("no pod {pod}"));
            assert_eq!(source, &format!("pod kube-system/{pod} image {image}"));
            assert!(
                image.ends_with(&format!(":{reported}")),
                "{image} {reported}"
            );
            assert_eq!(installed, "static-pod");
        }
    }
    // Every kubelet as its Node reports it; kube-proxy per node and its DaemonSet.
    let nodes = kubectl_json(&["get", "nodes"]);
    let kubelets = rows(&v, "kubelet");
    assert_eq!(kubelets.len(), 5, "{kubelets:?}");
    for n in nodes["items"].as_array().unwrap() {
        let name = n["metadata"]["name"].as_str().unwrap();
        let version = n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap();
        assert!(
            kubelets.iter().any(|(w, r, s, _)| w == name
                && r == version
                && s == &format!("Node {name} status.nodeInfo.kubeletVersion")),
            "{name}: {kubelets:?}"
        );
    }
    let proxies = rows(&v, "kube-proxy");
    assert!(
        proxies
            .iter()
            .any(|(w, r, s, i)| w == "daemonset/kube-proxy"
                && r == "v1.20.2"
                && s.starts_with("DaemonSet kube-system/kube-proxy image ")
                && i == "daemon-set"),
        "{proxies:?}"
    );
    let coredns = rows(&v, "coredns");
    let dns = kubectl_json(&["get", "deployment", "-n", "kube-system", "coredns"]);
    let image = dns["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert_eq!(coredns.len(), 1, "{coredns:?}");
    assert!(
        image.ends_with(&format!(":{}", coredns[0].1)),
        "{image} {coredns:?}"
    );
    assert_eq!(v["support"][0]["minor"], "1.20", "{}", v["support"]);
    assert_eq!(v["support"][0]["support"]["status"], "supported");

    // Today 1.20 is long past its end of life: exit 1, said in the table.
    let out = kastellan().args(["versions"]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(
        table.contains("1.20 past end of life since 2022-02-28"),
        "{table}"
    );

    // The skew check: clean as the lab stands.
    let out = kastellan().args(["upgrade", "check"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("no version-skew violation among"), "{text}");

    // Two Node objects whose kubelets are out of policy: one newer than every
    // apiserver, one three minors older (pre-1.28 kubelets may lag two).
    ghost_node("ghost-new", "v1.21.0");
    ghost_node("ghost-old", "v1.17.0");
    let out = kastellan()
        .args(["upgrade", "check", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = json(&out);
    let violations = report["violations"].as_array().unwrap();
    let broken = |rule: &str, node: &str| {
        violations.iter().any(|x| {
            x["rule"] == rule
                && x["components"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["node"] == node && c["kind"] == "kubelet")
        })
    };
    assert!(
        broken("kubelet-not-newer-than-apiserver", "ghost-new"),
        "{report}"
    );
    assert!(broken("kubelet-max-two-older", "ghost-old"), "{report}");
    assert_eq!(violations.len(), 2, "one per ghost, nothing else: {report}");
    let table = kastellan().args(["upgrade", "check"]).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("kubelet v1.21.0 on ghost-new")
            && table.contains("kubelet v1.17.0 on ghost-old"),
        "{table}"
    );
    // A plan cannot move the control plane past a kubelet three minors behind.
    let out = kastellan()
        .args(["upgrade", "plan", "--to", "v1.21.0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no plan to v1.21.0") && err.contains("kubelet v1.17.0 on ghost-old"),
        "{err}"
    );
    let del = kubectl()
        .args(["delete", "node", "ghost-new", "ghost-old"])
        .output()
        .unwrap();
    assert!(del.status.success());
    upgrade_plans();
}

fn kubectl_apply(yaml: &str) {
    let mut child = kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), yaml.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `upgrade plan` on the 3+2 lab: the node order and steps, refusals, a budget that
/// blocks a drain, and an API that 1.22 removes still being called.
fn upgrade_plans() {
    let plan = |to: &str| {
        kastellan()
            .args(["upgrade", "plan", "--to", to, "-o", "json"])
            .output()
            .unwrap()
    };
    let out = plan("v1.21.0");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = json(&out);
    assert_eq!(p["from"], "v1.20.2");
    assert_eq!(p["hops"].as_array().unwrap().len(), 1);
    // Each control plane's room for the copy of etcd's data that kubeadm makes before it
    // upgrades etcd, read on the node; plenty here, so nothing blocks (exit 0 above).
    let room = p["facts"]["etcdBackupRoom"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let nodes: Vec<&str> = room.iter().filter_map(|r| r["node"].as_str()).collect();
    assert_eq!(nodes, ["cp1", "cp2", "cp3"], "{room:?}");
    for r in &room {
        let data = r["dataBytes"].as_u64().unwrap();
        assert_eq!(r["dataDir"], "/var/lib/etcd", "{r}");
        assert!(data > 0 && r["freeBytes"].as_u64().unwrap() > data, "{r}");
        assert_eq!(r["sameFilesystem"], true, "{r}");
        assert_eq!(r["oldBackups"], 0, "{r}");
    }
    // The size agrees with du run on cp1 (etcd keeps writing: within 16 MiB).
    let du = kastellan()
        .args(["lab", "exec", "cp1", "--", "du", "-sxB1", "/var/lib/etcd"])
        .output()
        .unwrap();
    let theirs: u64 = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("du: {}", String::from_utf8_lossy(&du.stderr)));
    let ours = room[0]["dataBytes"].as_u64().unwrap();
    assert!(ours.abs_diff(theirs) < 16 << 20, "ours {ours}, du {theirs}");
    let order: Vec<(String, String)> = p["hops"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().into(),
                n["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("cp1", "first-control-plane"),
        ("cp2", "control-plane"),
        ("cp3", "control-plane"),
        ("w1", "worker"),
        ("w2", "worker"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .into();
    assert_eq!(order, want);
    let cp1 = &p["hops"][0]["nodes"][0]["steps"];
    let commands: Vec<&str> = cp1
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["command"].as_str())
        .collect();
    assert!(
        commands.contains(&"kubeadm upgrade apply v1.21.0 --yes"),
        "{commands:?}"
    );
    let w1 = &p["hops"][0]["nodes"][3]["steps"];
    assert!(w1.to_string().contains("kubeadm upgrade node"), "{w1}");

    // Three minors: three hops; a downgrade and an unknown version are refused.
    let p = json(&plan("v1.23.0"));
    let minors: Vec<&str> = p["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["minor"].as_str().unwrap())
        .collect();
    assert_eq!(minors, ["1.21", "1.22", "1.23"]);
    for (to, why) in [
        ("v1.19.0", "downgrades are not supported"),
        ("v1.99.0", "unknown"),
    ] {
        let out = plan(to);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{to}: {err}");
        assert!(err.contains(why), "{to}: {err}");
    }

    // A budget that allows no disruption, and an Ingress written through
    // extensions/v1beta1 (removed in 1.22).
    kubectl_apply(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: plan-test
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: db
  namespace: plan-test
spec:
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      nodeSelector: {kubernetes.io/hostname: w2}
      containers:
      - {name: db, image: db:1}
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata:
  name: db
  namespace: plan-test
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: db}
"#,
    );
    kubectl_apply(
        r#"apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: old
  namespace: plan-test
spec:
  backend:
    serviceName: web
    servicePort: 80
"#,
    );
    // An object that merely mentions the removed API in its last-applied annotation
    // (kubectl create keeps the annotation as written): stored as v1, never reported.
    let made = crate::kubectl_stdin(
        &["create", "-f", "-"],
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: mentions-old
  namespace: plan-test
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"apiVersion":"extensions/v1beta1","kind":"Ingress","metadata":{"name":"x","namespace":"plan-test"}}'
data: {note: "extensions/v1beta1"}
"#,
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // A pod without a controller on w1: the upgrade's drain of w1 would refuse it.
    kubectl_apply(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: bare
  namespace: plan-test
spec:
  nodeName: w1
  containers:
  - {name: bare, image: bare:1}
"#,
    );
    // The pod is scheduled on w2 and the budget's status counts it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pdb = kubectl_json(&["get", "pdb", "-n", "plan-test", "db"]);
        if pdb["status"]["expectedPods"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "budget never counted its pod: {pdb}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let finding = |p: &serde_json::Value, id: &str| -> Option<serde_json::Value> {
        p["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .cloned()
    };
    let out = plan("v1.21.0");
    assert_eq!(out.status.code(), Some(1), "a blocker: exit 1");
    let p = json(&out);
    let pdb = finding(&p, "pdb-blocks-drain").unwrap_or_else(|| panic!("{p}"));
    assert_eq!(pdb["severity"], "blocker");
    assert_eq!(pdb["nodes"], serde_json::json!(["w2"]));
    assert!(
        pdb["message"].as_str().unwrap().contains("plan-test/db"),
        "{pdb}"
    );
    let bare = finding(&p, "drain-refused").unwrap_or_else(|| panic!("{p}"));
    assert_eq!(bare["severity"], "blocker");
    assert_eq!(bare["nodes"], serde_json::json!(["w1"]));
    assert_eq!(
        bare["evidence"],
        serde_json::json!(["plan-test/bare (no controller recreates it)"])
    );
    assert!(
        finding(&p, "removed-api-called").is_none(),
        "1.21 removes nothing: {p}"
    );
    assert!(
        finding(&p, "removed-api-stored").is_none(),
        "1.21 removes nothing: {p}"
    );
    let p = json(&plan("v1.22.0"));
    // Stored: every Ingress is kept in etcd as networking.k8s.io/v1beta1 on 1.20
    // (read on cp1 with `kastellan etcd storage` over the lab's sshd); the ConfigMap
    // that mentions extensions/v1beta1 is not reported.
    let stored: Vec<&str> = p["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "removed-api-stored")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    let ingresses: Vec<&&str> = stored
        .iter()
        .filter(|m| m.starts_with("ingresses:"))
        .collect();
    assert_eq!(ingresses.len(), 1, "{stored:?}");
    assert!(
        ingresses[0].starts_with(
            "ingresses: 1 object stored in etcd as networking.k8s.io/v1beta1, which 1.22 \
             stops serving: the apiserver converts them when it reads them"
        ),
        "{}",
        ingresses[0]
    );
    assert!(
        stored.iter().all(|m| !m.starts_with("configmaps")),
        "{stored:?}"
    );
    let ingress_finding = p["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["id"] == "removed-api-stored"
                && f["message"].as_str().unwrap().starts_with("ingresses:")
        })
        .unwrap();
    assert_eq!(
        ingress_finding["evidence"][0],
        "etcd /registry/: 1 ingresses encoded as networking.k8s.io/v1beta1 Ingress"
    );
    assert!(
        p["facts"]["stored"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resource"] == "configmaps" && r["apiVersion"] == "v1")
    );
    let removed = finding(&p, "removed-api-called").unwrap_or_else(|| panic!("{p}"));
    let message = removed["message"].as_str().unwrap();
    assert!(
        message.contains("extensions/v1beta1 ingresses is removed in 1.22"),
        "{removed}"
    );
    assert!(
        removed["evidence"][0]
            .as_str()
            .unwrap()
            .starts_with("apiserver_requested_deprecated_apis on cp"),
        "{removed}"
    );
    // The table names the blockers first.
    let table = kastellan()
        .args(["upgrade", "plan", "--to", "v1.22.0"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    let blocker = table.find("BLOCKER").unwrap_or_else(|| panic!("{table}"));
    assert!(blocker < table.find("== hop to 1.21").unwrap(), "{table}");
    let del = kubectl()
        .args(["delete", "namespace", "plan-test", "--wait=false"])
        .output()
        .unwrap();
    assert!(del.status.success());
}

/// Creates a Node `name` whose status reports kubelet `version` (no agent runs it).
fn ghost_node(name: &str, version: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use k8s_openapi::api::core::v1::Node;
        use kube::api::{Api, Patch, PatchParams, PostParams};
        let kc = kube::config::Kubeconfig::read_from("/var/lib/kastellan/lab/admin.conf").unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let nodes: Api<Node> = Api::all(kube::Client::try_from(config).unwrap());
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let status = serde_json::json!({"status": {"nodeInfo": {
            "kubeletVersion": version, "kubeProxyVersion": "",
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
            "osImage": "", "containerRuntimeVersion": "", "operatingSystem": "linux",
            "architecture": "amd64",
        }}});
        nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    });
}

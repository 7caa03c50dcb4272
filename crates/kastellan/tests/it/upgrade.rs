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

/// The seeds' upgrade procedure, typed by hand on each node of a 1+1 lab with
/// packages: the lab must upgrade for real before kastellan can automate it. Checks
/// what an operator would: the package state of each node (and that the host's is
/// untouched), kubeadm's own verdict, the versions the API reports afterwards, the
/// control plane running the new binaries, and the data still there.
#[test]
fn lab_kubeadm_upgrade_by_hand_with_real_packages() {
    let _lock = lab_lock();
    for v in ["v1.20.2", "v1.21.0"] {
        assert!(
            cache_dir()
                .join(format!("kubernetes/{v}/bin/kubeadm"))
                .is_file(),
            "Kubernetes {v} is not built: run scripts/build-kubernetes.sh {v}"
        );
    }
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

    // Each node: its own dpkg database, the v1.20 repository, the three packages held.
    for node in ["cp1", "w1"] {
        let held = ok(on(node, "apt-mark showhold"), "apt-mark showhold");
        assert_eq!(
            held.split_whitespace().collect::<Vec<_>>(),
            ["kubeadm", "kubectl", "kubelet"]
        );
        let madison = ok(on(node, "apt-cache madison kubeadm"), "madison");
        assert!(
            madison.contains("1.20.2-1.1") && !madison.contains("1.21.0"),
            "{madison}"
        );
        let installed = ok(
            on(node, "dpkg-query -W -f '${Package} ${Version}\\n'"),
            "dpkg-query",
        );
        assert_eq!(
            installed.lines().collect::<Vec<_>>(),
            [
                "kubeadm 1.20.2-1.1",
                "kubectl 1.20.2-1.1",
                "kubelet 1.20.2-1.1"
            ]
        );
    }
    // kastellan reads them over ssh like any node's.
    assert_eq!(packages(), expected("1.20.2-1.1", "1.20"));

    // cp1: switch the repository to v1.21, upgrade kubeadm, `kubeadm upgrade apply`.
    let switch = "set -e; sed -i 's|/v1.20/|/v1.21/|' /etc/apt/sources.list.d/kubernetes.list; \
                  apt-get update -qq; apt-mark unhold kubeadm; \
                  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubeadm=1.21.0-1.1; \
                  apt-mark hold kubeadm; kubeadm version -o short";
    let cp1 = ok(on("cp1", switch), "cp1: kubeadm 1.21.0");
    assert!(cp1.trim_end().ends_with("v1.21.0"), "{cp1}");
    let apply = ok(
        on("cp1", "kubeadm upgrade apply v1.21.0 -y 2>&1"),
        "kubeadm upgrade apply",
    );
    assert!(
        apply.contains("SUCCESS! Your cluster was upgraded to \"v1.21.0\""),
        "{apply}"
    );
    let kubelet = "set -e; apt-mark unhold kubelet kubectl; \
                   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubelet=1.21.0-1.1 kubectl=1.21.0-1.1; \
                   apt-mark hold kubelet kubectl; systemctl daemon-reload; systemctl restart kubelet";
    ok(on("cp1", kubelet), "cp1: kubelet 1.21.0");

    // w1: the same packages, `kubeadm upgrade node`.
    ok(on("w1", switch), "w1: kubeadm 1.21.0");
    let node = ok(
        on("w1", "kubeadm upgrade node 2>&1"),
        "kubeadm upgrade node",
    );
    assert!(
        node.contains("The configuration for this node was successfully updated"),
        "{node}"
    );
    ok(on("w1", kubelet), "w1: kubelet 1.21.0");

    // What the API says now.
    let version = json(kubectl().args(["version", "-o", "json"]));
    assert_eq!(
        version["serverVersion"]["gitVersion"], "v1.21.0",
        "{version}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let kv = kubelet_versions();
        if kv.iter().all(|(_, v)| v == "v1.21.0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "kubelets: {kv:?}");
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let pods = json(kubectl().args(["-n", "kube-system", "get", "pods", "-o", "json"]));
    for component in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let image = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["metadata"]["name"] == format!("{component}-cp1"))
            .map(|p| p["spec"]["containers"][0]["image"].clone())
            .unwrap();
        assert!(
            image.as_str().unwrap().ends_with(":v1.21.0"),
            "{component}: {image}"
        );
    }
    let status = std::fs::read_to_string("/var/lib/kastellan/lab/nodes/cp1/agent/status.json")
        .unwrap_or_default();
    assert!(
        status.contains("kubernetes/v1.21.0/bin/kube-apiserver"),
        "{status}"
    );
    for node in ["cp1", "w1"] {
        let installed = ok(
            on(
                node,
                "dpkg-query -W -f '${Package} ${Version}\\n'; apt-mark showhold",
            ),
            "dpkg-query",
        );
        assert_eq!(
            installed.lines().collect::<Vec<_>>(),
            [
                "kubeadm 1.21.0-1.1",
                "kubectl 1.21.0-1.1",
                "kubelet 1.21.0-1.1",
                "kubeadm",
                "kubectl",
                "kubelet"
            ],
            "{node}"
        );
    }
    assert_eq!(packages(), expected("1.21.0-1.1", "1.21"));
    ok(
        kubectl()
            .args(["get", "configmap", "before-upgrade"])
            .output()
            .unwrap(),
        "the ConfigMap made before the upgrade",
    );
    // Nothing reached the host's packages or binaries.
    assert_eq!(
        std::fs::read("/var/lib/dpkg/status").unwrap(),
        host_dpkg_before
    );
    assert!(!std::path::Path::new("/usr/bin/kubeadm").exists());
}

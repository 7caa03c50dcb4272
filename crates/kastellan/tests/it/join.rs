//! Tier `lab`: `lab up` (its default `--join kubeadm`) joins cp2, cp3 and the workers
//! with real kubeadm v1.20.2 `kubeadm join`, using the line kastellan's `join-command`
//! prints (issue 14); checked by the 3+2 lab test (`lab.rs`) on its own lab.
//! What a user sees afterwards: the nodes' CSRs approved and issued in `kubectl get
//! csr`, requested by kastellan's join token; every Node Ready, the control planes
//! labelled and tainted by kubeadm; kubelet client certificates where the kubelet keeps
//! them; etcd grown to three members by kubeadm; `kastellan status` healthy.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{kastellan, kubectl};
use crate::{on_node as on, output_text as text, stdout_ok as ok};

const LAB: &str = "/var/lib/kastellan/lab";

fn json(o: Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap()
}

/// The subject CN of the first certificate in a PEM text.
fn common_name(pem: &str) -> String {
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = der.parse_x509().unwrap();
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// What `lab up` of three control planes and `workers` (joined with kubeadm, the
/// default) must show, asserted by the 3+2 lab test (`lab.rs`) right after its `lab up`
/// so that no lab is brought up for this alone; `said` is `lab up`'s stderr.
pub(crate) fn assert_joined_with_kubeadm(said: &str, workers: &[&str]) {
    for line in [
        "cp1: kastellan join-command --control-plane",
        "cp2: kubeadm join --control-plane --certificate-key",
        "cp3: kubeadm join --control-plane --certificate-key",
        "cp1: kastellan join-command\n",
    ] {
        assert!(said.contains(line), "{line:?} not said:\n{said}");
    }
    for w in workers {
        let line = format!("{w}: kubeadm join (log:");
        assert!(said.contains(&line), "{line:?} not said:\n{said}");
    }
    assert!(
        !said.contains("init phase kubeconfig kubelet"),
        "no kubelet.conf made by copy:\n{said}"
    );

    // kubeadm itself did the joins: its own words in each node's log.
    let worker_words = [
        "This node has joined the cluster",
        "[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap...",
    ];
    let mut logs: Vec<(&str, &[&str])> = vec![
        (
            "cp2",
            &[
                "This node has joined the cluster and a new control plane instance was created",
                "[etcd] Announced new etcd member joining to the existing etcd cluster",
                "[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap...",
                "[download-certs] Downloading the certificates in Secret \"kubeadm-certs\"",
            ][..],
        ),
        (
            "cp3",
            &["[etcd] Announced new etcd member joining to the existing etcd cluster"][..],
        ),
    ];
    logs.extend(workers.iter().map(|w| (*w, &worker_words[..])));
    for (node, words) in logs {
        let log =
            std::fs::read_to_string(format!("{LAB}/nodes/{node}/logs/kubeadm-join.log")).unwrap();
        for w in words {
            assert!(
                log.contains(w),
                "{node}: {w:?} not in kubeadm's output:\n{log}"
            );
        }
        assert!(
            !log.contains("--token ") || log.contains("--token <redacted>"),
            "{node}: a token in the log"
        );
        // The node's name resolves from its own /etc/hosts: no lookup leaves the lab.
        assert!(!log.contains("[WARNING Hostname]"), "{node}:\n{log}");
        // Every preflight check ran: none was told to be ignored, none was ignored.
        assert!(
            !log.contains("--ignore-preflight-errors")
                && !log.contains("[WARNING FileExisting-conntrack]"),
            "{node}:\n{log}"
        );
    }

    // kubectl get csr: one client CSR per joined node, requested with kastellan's join
    // token, approved by the controller-manager and issued.
    let tokens = json(
        kastellan()
            .args(["token", "list", "-o", "json", "--kubeconfig"])
            .arg(format!("{LAB}/admin.conf"))
            .output()
            .unwrap(),
    );
    let joins: Vec<String> = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("kastellan join-command"))
        })
        .map(|t| format!("system:bootstrap:{}", t["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        joins.len(),
        2,
        "a worker and a control-plane token: {tokens}"
    );
    let csrs = json(
        kubectl()
            .args(["get", "csr", "-o", "json"])
            .output()
            .unwrap(),
    );
    let mut seen = Vec::new();
    for c in csrs["items"].as_array().unwrap() {
        if c["spec"]["signerName"] != "kubernetes.io/kube-apiserver-client-kubelet" {
            continue;
        }
        let user = c["spec"]["username"].as_str().unwrap();
        assert!(joins.iter().any(|j| j == user), "requested by {user}: {c}");
        let approved = c["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["type"] == "Approved" && k["reason"] == "AutoApproved");
        assert!(approved, "not auto-approved: {c}");
        let cert = c["status"]["certificate"].as_str().unwrap();
        let pem = String::from_utf8(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, cert).unwrap(),
        )
        .unwrap();
        seen.push(common_name(&pem));
    }
    seen.sort();
    let mut expected: Vec<String> = ["cp2", "cp3"]
        .iter()
        .chain(workers)
        .map(|n| format!("system:node:{n}"))
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "{csrs}");
    let table = ok(kubectl().args(["get", "csr"]).output().unwrap());
    eprintln!("{table}");
    assert_eq!(
        table
            .lines()
            .filter(
                |l| l.contains("kubernetes.io/kube-apiserver-client-kubelet")
                    && l.contains("system:bootstrap:")
                    && l.trim_end().ends_with("Approved,Issued")
            )
            .count(),
        2 + workers.len(),
        "{table}"
    );

    // The kubelet's files on a worker: the dated certificate and its link, and a
    // kubelet.conf naming it; kubeadm removed the bootstrap kubeconfig.
    let w = workers[0];
    let kubelet = Path::new(LAB).join(format!("nodes/{w}/var-lib-kubelet/pki"));
    let link = std::fs::read_link(kubelet.join("kubelet-client-current.pem")).unwrap();
    let dated = link.to_string_lossy().to_string();
    assert!(
        dated.starts_with("kubelet-client-2") && dated.ends_with(".pem"),
        "{dated}"
    );
    let pem = std::fs::read_to_string(kubelet.join(&dated)).unwrap();
    assert_eq!(common_name(&pem), format!("system:node:{w}"));
    assert!(
        pem.contains("PRIVATE KEY-----"),
        "certificate and key in one file"
    );
    let etc = Path::new(LAB).join(format!("nodes/{w}/etc-kubernetes"));
    let conf = std::fs::read_to_string(etc.join("kubelet.conf")).unwrap();
    assert!(
        conf.contains("client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem"),
        "{conf}"
    );
    assert!(!etc.join("bootstrap-kubelet.conf").exists());

    // Every Node Ready; kubeadm's marks on the joined control planes and its CRI socket
    // annotation on every joined node.
    let nodes = json(
        kubectl()
            .args(["get", "nodes", "-o", "json"])
            .output()
            .unwrap(),
    );
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 3 + workers.len(), "{nodes}");
    for n in items {
        let name = n["metadata"]["name"].as_str().unwrap();
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(ready, "{name} not Ready");
        assert_eq!(
            n["metadata"]["annotations"]["kubeadm.alpha.kubernetes.io/cri-socket"],
            "/run/containerd/containerd.sock",
            "{name}"
        );
        let labels = &n["metadata"]["labels"];
        let cp = name.starts_with("cp");
        assert_eq!(
            labels
                .get("node-role.kubernetes.io/control-plane")
                .is_some(),
            cp,
            "{name}: {labels}"
        );
    }

    // etcd: three members, cp2 and cp3 added by kubeadm (their manifests say they
    // joined an existing cluster), every one matched to its control plane.
    for node in ["cp2", "cp3"] {
        let manifest = std::fs::read_to_string(format!(
            "{LAB}/nodes/{node}/etc-kubernetes/manifests/etcd.yaml"
        ))
        .unwrap();
        assert!(
            manifest.contains("- --initial-cluster-state=existing"),
            "{node}: {manifest}"
        );
    }
    let members = json(on("cp1", &["etcd", "members", "-o", "json"]));
    let mut matched: Vec<(String, String, String)> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("-").to_string(),
                m["node"].as_str().unwrap_or("-").to_string(),
                m["health"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    matched.sort();
    assert_eq!(
        matched,
        [
            ("cp1".into(), "cp1".into(), "healthy".into()),
            ("cp2".into(), "cp2".into(), "healthy".into()),
            ("cp3".into(), "cp3".into(), "healthy".into())
        ],
        "{members}"
    );

    // And the cluster as kastellan status sees it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = kastellan()
            .args(["status", "-o", "json", "--kubeconfig"])
            .arg(format!("{LAB}/admin.conf"))
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if out.status.code() == Some(0) && v["verdict"] == "healthy" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status not healthy within 60s: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `--join` takes `kubeadm` (the default) or `copy`: anything else is refused at the
/// command line (exit 2) naming both, before anything is created.
#[test]
fn cli_lab_up_join_mode_is_kubeadm_or_copy_14() {
    let out = kastellan()
        .args(["lab", "up", "--join", "ssh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kubeadm, copy"),
        "{}",
        text(&out)
    );
}

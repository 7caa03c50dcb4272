//! Tier `lab`: kubelet serving CSRs approved only for the node's own names and
//! addresses, against the lab's real apiserver and controller-manager (whose signer
//! issues the certificate once approved).

use std::process::Output;

use base64::Engine as _;

use crate::LabGuard;
use crate::output_text as text;
use crate::{kastellan, kubectl, kubectl_stdin, lab_lock};

/// A PEM certificate request as a kubelet makes it: CN=system:node:NODE,
/// O=system:nodes, with these names.
fn request(node: &str, dns: &[&str], ips: &[&str]) -> String {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    for d in dns {
        p.subject_alt_names
            .push(rcgen::SanType::DnsName((*d).try_into().unwrap()));
    }
    for i in ips {
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress(i.parse().unwrap()));
    }
    let key = rcgen::KeyPair::generate().unwrap();
    p.serialize_request(&key).unwrap().pem().unwrap()
}

/// Creates a kubelet-serving CSR as the node itself would (impersonated by the
/// admin: the API records system:node:NODE in system:nodes as its requester).
fn create_as_node(name: &str, node: &str, pem: &str) {
    let yaml = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\n\
         metadata: {{name: {name}}}\nspec:\n  signerName: kubernetes.io/kubelet-serving\n  \
         usages: [digital signature, key encipherment, server auth]\n  request: {}\n",
        base64::engine::general_purpose::STANDARD.encode(pem)
    );
    let as_node = format!("--as=system:node:{node}");
    let out = kubectl_stdin(
        &[
            "create",
            "-f",
            "-",
            &as_node,
            "--as-group=system:nodes",
            "--as-group=system:authenticated",
        ],
        &yaml,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn csr(name: &str) -> serde_json::Value {
    let out = kubectl()
        .args(["get", "csr", name, "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ours(args: &[&str]) -> Output {
    kastellan()
        .env("KUBECONFIG", "/var/lib/kastellan/lab/admin.conf")
        .args(args)
        .output()
        .unwrap()
}

/// w1 asks for a serving certificate for its own name and address, and for one with
/// cp1's address: the first is approved and then issued by the controller-manager's
/// signer, the second refused with the foreign address named and left pending; a dry
/// run changes neither; an admin's request for the signer is refused too. Then w1's
/// kubelet stand-in is stopped, and status explains the NotReady node.
#[test]
fn lab_csr_approves_only_a_nodes_own_addresses() {
    let _lock = lab_lock();
    let _guard = LabGuard;
    let up = kastellan()
        .args(["lab", "up", "--workers", "1", "--join", "copy"])
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", text(&up));
    create_as_node("w1-own", "w1", &request("w1", &["w1"], &["10.77.0.21"]));
    create_as_node(
        "w1-foreign",
        "w1",
        &request("w1", &["w1"], &["10.77.0.21", "10.77.0.11"]),
    );

    let list = ours(&["csr", "list"]);
    let shown = text(&list);
    assert!(list.status.success(), "{shown}");
    for l in ["w1-own", "w1-foreign"] {
        let row = shown
            .lines()
            .find(|r| r.trim_start().starts_with(l))
            .unwrap_or_default();
        assert!(
            row.contains("kubelet-serving")
                && row.contains("system:node:w1")
                && row.contains("Pending"),
            "{shown}"
        );
    }

    let dry = ours(&["csr", "approve", "--kubelet-serving", "--dry-run"]);
    let shown = text(&dry);
    assert_eq!(dry.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("would approve w1-own from system:node:w1 for w1, 10.77.0.21"),
        "{shown}"
    );
    assert!(
        shown.contains("IP address 10.77.0.11 is not an address of Node w1"),
        "{shown}"
    );
    assert!(
        csr("w1-own")["status"]["conditions"].is_null(),
        "a dry run approved"
    );

    let done = ours(&["csr", "approve", "--kubelet-serving"]);
    let shown = text(&done);
    assert_eq!(done.status.code(), Some(1), "{shown}");
    assert!(shown.contains("approved w1-own"), "{shown}");
    assert!(
        shown.contains("refused w1-foreign from system:node:w1"),
        "{shown}"
    );
    assert!(
        csr("w1-foreign")["status"]["conditions"].is_null(),
        "the foreign one moved"
    );
    // The controller-manager's signer issues the approved one.
    let mut issued = serde_json::Value::Null;
    for _ in 0..60 {
        issued = csr("w1-own");
        if issued["status"]["certificate"].is_string() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(
        issued["status"]["conditions"][0]["type"], "Approved",
        "{issued}"
    );
    assert!(
        issued["status"]["certificate"].is_string(),
        "never issued: {issued}"
    );

    // A request by someone who is not the node.
    let pem = request("w1", &["w1"], &["10.77.0.21"]);
    let yaml = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\n\
         metadata: {{name: admin-asks}}\nspec:\n  signerName: kubernetes.io/kubelet-serving\n  \
         usages: [digital signature, key encipherment, server auth]\n  request: {}\n",
        base64::engine::general_purpose::STANDARD.encode(pem)
    );
    let path = std::env::temp_dir().join("kastellan-admin-csr.yaml");
    std::fs::write(&path, yaml).unwrap();
    let made = kubectl()
        .arg("create")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let _ = std::fs::remove_file(&path);
    let refused = ours(&["csr", "approve", "--kubelet-serving", "admin-asks"]);
    let shown = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("not by a node (system:node:NAME)"),
        "{shown}"
    );
    let missing = ours(&["csr", "approve", "--kubelet-serving", "nope"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));

    // w1's kubelet stand-in stopped for real (SIGSTOP of its pid): once the node
    // controller's grace period is over, status says why w1 is NotReady.
    let lab: serde_json::Value =
        serde_json::from_slice(&std::fs::read("/var/lib/kastellan/lab/lab.json").unwrap()).unwrap();
    let pid = lab["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"]["name"] == "w1")
        .and_then(|n| n["agent_pid"].as_i64())
        .unwrap();
    let agent = nix::unistd::Pid::from_raw(pid as i32);
    struct Resume(nix::unistd::Pid);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
        }
    }
    nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let _resume = Resume(agent);
    let start = std::time::Instant::now();
    let detail = loop {
        let out = ours(&["status", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let row = v["checks"].as_array().and_then(|c| {
            c.iter()
                .find(|c| c["node"] == "w1" && c["component"] == "node")
                .cloned()
        });
        if let Some(row) = row
            && row["state"] == "down"
        {
            break row["detail"].as_str().unwrap_or_default().to_string();
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "w1 never NotReady: {v}"
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    assert!(
        detail.starts_with("NotReady: the kubelet has not posted its status since ")
            && detail.ends_with("it is stopped, hung, or cut off from the API"),
        "{detail}"
    );
}

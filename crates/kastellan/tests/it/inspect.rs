//! Tier `lab`: `kastellan etcd snapshot inspect` on a snapshot of the real lab, saved
//! from the host (`etcd snapshot save --manifests-dir` on the node's directory, which
//! points at https://10.77.0.11:2379 over the lab bridge). Counts must match what
//! `kubectl get` lists; a ConfigMap prints its data; a custom resource (JSON in etcd)
//! prints as YAML.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::LabGuard;
use crate::{kastellan, kubectl, lab_lock};

const MANIFESTS: &str = "/var/lib/kastellan/lab/nodes/cp1/etc-kubernetes/manifests";
const NS: &str = "inspect-it";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn apply(yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("obj.yaml");
    std::fs::write(&f, yaml).unwrap();
    ok(kubectl().args(["apply", "-f", f.to_str().unwrap()]));
}

/// Names `kubectl get RESOURCE -n NS` lists.
fn kubectl_names(resource: &str) -> Vec<String> {
    let out = ok(kubectl().args(["get", resource, "-n", NS, "-o", "name"]));
    let mut v: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    v.sort();
    v
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              replicas: {type: integer}
"#;

#[test]
fn lab_etcd_snapshot_inspect_matches_kubectl() {
    let _lock = lab_lock();
    let status = kastellan().args(["lab", "status"]).output().unwrap();
    assert!(
        !status.status.success(),
        "a lab is already up on this machine; run `kastellan lab down` before the lab tests"
    );
    let _guard = LabGuard;
    ok(kastellan().args(["lab", "up", "--timeout", "240"]));

    ok(kubectl().args(["create", "namespace", NS]));
    ok(kubectl().args([
        "create",
        "configmap",
        "settings",
        "-n",
        NS,
        "--from-literal=colour=blue",
        "--from-literal=size=large",
    ]));
    ok(kubectl().args([
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        NS,
        "--from-literal=password=hunter2",
    ]));
    ok(kubectl().args([
        "create",
        "deployment",
        "web",
        "-n",
        NS,
        "--image=registry.invalid/web:1",
        "--replicas=2",
    ]));
    apply(CRD);
    // The CRD must be established before its resources are accepted.
    ok(kubectl().args([
        "wait",
        "--for=condition=established",
        "--timeout=60s",
        "crd/crontabs.stable.example.com",
    ]));
    let deadline = Instant::now() + Duration::from_secs(60);
    let cr = format!(
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: nightly\n  namespace: {NS}\nspec:\n  cronSpec: \"0 3 * * *\"\n  replicas: 1\n"
    );
    loop {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cr.yaml");
        std::fs::write(&f, &cr).unwrap();
        let out = kubectl()
            .args(["apply", "-f", f.to_str().unwrap()])
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", text(&out.stderr));
        std::thread::sleep(Duration::from_secs(1));
    }
    // Wait for what controllers add asynchronously (the service account token Secret,
    // the root CA ConfigMap) so that the counts are stable around the snapshot.
    let resources = ["configmaps", "secrets", "deployments", "crontabs"];
    let deadline = Instant::now() + Duration::from_secs(60);
    while kubectl_names("secrets").len() < 2 || kubectl_names("configmaps").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "token secret or root CA not created"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let before: Vec<Vec<String>> = resources.iter().map(|r| kubectl_names(r)).collect();

    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("lab.db");
    ok(kastellan()
        .args(["etcd", "snapshot", "save", "--manifests-dir", MANIFESTS])
        .arg(&snap));
    let after: Vec<Vec<String>> = resources.iter().map(|r| kubectl_names(r)).collect();
    assert_eq!(
        before, after,
        "objects changed while the snapshot was saved"
    );

    // Counts by resource and namespace.
    let out = ok(kastellan()
        .args(["etcd", "snapshot", "inspect", "-o", "json"])
        .arg(&snap));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let count = |resource: &str| -> usize {
        doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == resource && r["namespace"] == NS)
            .map(|r| r["count"].as_u64().unwrap() as usize)
            .unwrap_or(0)
    };
    for (resource, names) in [
        "configmaps",
        "secrets",
        "deployments",
        "crontabs.stable.example.com",
    ]
    .iter()
    .zip(&before)
    {
        assert_eq!(
            count(resource),
            names.len(),
            "{resource}: kubectl {names:?}"
        );
    }
    assert!(
        doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resource"] == "namespaces" && r["namespace"].is_null())
    );
    // The human table too.
    let table = ok(kastellan().args(["etcd", "snapshot", "inspect"]).arg(&snap));
    let table = text(&table.stdout);
    assert!(table.contains("RESOURCE") && table.contains(NS), "{table}");

    // The ConfigMap, decoded from protobuf.
    let key = format!("/registry/configmaps/{NS}/settings");
    let out = ok(kastellan()
        .args(["etcd", "snapshot", "inspect", "--key", &key])
        .arg(&snap));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("kind: ConfigMap"), "{yaml}");
    assert!(
        yaml.contains("colour: blue") && yaml.contains("size: large"),
        "{yaml}"
    );
    assert!(yaml.contains("protobuf"), "{yaml}");
    let out = ok(kastellan()
        .args(["etcd", "snapshot", "inspect", "-o", "json", "--key", &key])
        .arg(&snap));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let o = &doc["objects"][0];
    assert_eq!(o["encoding"], "protobuf");
    assert_eq!(o["complete"], true);
    assert_eq!(o["object"]["data"]["colour"], "blue");
    assert_eq!(o["object"]["metadata"]["namespace"], NS);

    // The Secret: base64 and flagged.
    let out = ok(kastellan()
        .args(["etcd", "snapshot", "inspect", "--key"])
        .arg(format!("/registry/secrets/{NS}/creds"))
        .arg(&snap));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("password: aHVudGVyMg=="), "{yaml}");
    assert!(yaml.contains("secrets"), "{yaml}");

    // The Deployment.
    let out = ok(kastellan()
        .args(["etcd", "snapshot", "inspect", "-o", "json", "--key"])
        .arg(format!("/registry/deployments/{NS}/web"))
        .arg(&snap));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["objects"][0]["object"]["spec"]["replicas"], 2, "{doc}");

    // The custom resource: JSON in etcd, printed as YAML.
    let out = ok(kastellan()
        .args(["etcd", "snapshot", "inspect", "--prefix"])
        .arg(format!("/registry/stable.example.com/crontabs/{NS}/"))
        .arg(&snap));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("kind: CronTab"), "{yaml}");
    assert!(
        yaml.contains("cronSpec: 0 3 * * *") || yaml.contains("cronSpec: '0 3 * * *'"),
        "{yaml}"
    );
    assert!(yaml.contains(", json)"), "{yaml}");

    // Every key of the lab decodes to something printable (no garbage, no panic).
    let out = ok(kastellan()
        .args(["etcd", "snapshot", "inspect", "-o", "json", "--prefix", "/"])
        .arg(&snap));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects = doc["objects"].as_array().unwrap();
    assert!(objects.len() > 50, "{}", objects.len());
    for o in objects {
        assert!(
            o["object"].is_object() || o["text"].is_string() || o["hexPreview"].is_string(),
            "{o}"
        );
    }
}

//! Issue 16, "encrypted values stay named unless the operator gives the key": the lab's
//! apiserver is restarted three times with an EncryptionConfiguration whose first
//! provider is aescbc, then aesgcm, then secretbox, and writes one Secret under each.
//! In a snapshot of its etcd, `etcd snapshot inspect` names each Secret as encrypted
//! (provider and key), and with `--encryption-config` decodes each to the data the
//! apiserver itself serves. Called from the 1+1 lab of the `restore objects` test, so
//! it costs no `lab up` of its own.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{kastellan, kubectl};

const NODE: &str = "/var/lib/kastellan/lab/nodes/cp1/etc-kubernetes";
const PROVIDERS: [(&str, &str, &str); 3] = [
    (
        "aescbc",
        "c1",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    ),
    (
        "aesgcm",
        "g1",
        "Z2NtLWtleS1vZi10aGlydHktdHdvLWJ5dGVzLS0tLS0=",
    ),
    (
        "secretbox",
        "s1",
        "c2VjcmV0Ym94LWtleS1vZi0zMi1ieXRlcy0tLS0tLS0=",
    ),
];

/// An EncryptionConfiguration for Secrets with `first` writing and every key readable.
fn config(first: &str) -> String {
    let mut order: Vec<&(&str, &str, &str)> = PROVIDERS.iter().collect();
    order.sort_by_key(|(p, _, _)| *p != first);
    let mut s = String::from(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n",
    );
    for (p, name, secret) in order {
        s.push_str(&format!(
            "      - {p}:\n          keys:\n            - name: {name}\n              secret: {secret}\n"
        ));
    }
    s.push_str("      - identity: {}\n");
    s
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Points cp1's apiserver at `file` (a manifest change: the lab agent restarts it),
/// then waits until the restarted apiserver serves.
fn restart_apiserver_with(file: &str) {
    let manifest = format!("{NODE}/manifests/kube-apiserver.yaml");
    let before = std::fs::read_to_string(&manifest).unwrap();
    let flag = format!("    - --encryption-provider-config=/etc/kubernetes/{file}\n");
    let mut lines: Vec<String> = before
        .lines()
        .filter(|l| !l.contains("--encryption-provider-config="))
        .map(|l| format!("{l}\n"))
        .collect();
    let at = lines
        .iter()
        .position(|l| l.contains("- --etcd-servers="))
        .expect("the apiserver manifest has --etcd-servers");
    lines.insert(at, flag);
    // Written beside the manifests dir and renamed in: the agent never reads a half file.
    let tmp = format!("{NODE}/kube-apiserver.yaml.new");
    std::fs::write(&tmp, lines.concat()).unwrap();
    std::fs::rename(&tmp, &manifest).unwrap();
    wait_for(&format!("the apiserver restarted with {file}"), 120, || {
        let out = kubectl()
            .args(["-n", "kube-system", "get", "pod", "kube-apiserver-cp1"])
            .args(["-o", "jsonpath={.spec.containers[0].command}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(file)
            && kubectl()
                .args(["get", "--raw", "/readyz"])
                .output()
                .unwrap()
                .status
                .success()
    });
}

/// A raw snapshot of the lab's etcd (etcdctl on cp1), copied to `dir/name`.
pub fn raw_snapshot_of_cp1(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let out = kastellan()
        .args(["lab", "exec", "cp1", "--", "sh", "-c"])
        .arg(format!(
            "ETCDCTL_API=3 /usr/bin/etcdctl --endpoints=https://127.0.0.1:2379 \
             --cacert=/etc/kubernetes/pki/etcd/ca.crt \
             --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
             --key=/etc/kubernetes/pki/etcd/healthcheck-client.key \
             snapshot save /etc/kubernetes/{name}"
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let on_node = format!("{NODE}/{name}");
    let copy = dir.join(name);
    std::fs::copy(&on_node, &copy).unwrap();
    std::fs::remove_file(&on_node).unwrap();
    copy
}

/// The scenario (see the module's documentation).
pub fn secrets_encrypted_at_rest_on_the_lab(dir: &std::path::Path) {
    for (provider, _, _) in PROVIDERS {
        let file = format!("enc-{provider}.yaml");
        std::fs::write(format!("{NODE}/{file}"), config(provider)).unwrap();
        restart_apiserver_with(&file);
        // The first writes after a restart may meet a apiserver still warming up.
        wait_for(&format!("Secret enc-{provider} created"), 60, || {
            kubectl()
                .args(["-n", "default", "create", "secret", "generic"])
                .arg(format!("enc-{provider}"))
                .arg(format!("--from-literal=value=written-under-{provider}"))
                .output()
                .unwrap()
                .status
                .success()
        });
    }
    // What the apiserver itself serves, decrypting with the same configuration.
    let served: Vec<String> = PROVIDERS
        .iter()
        .map(|(p, _, _)| {
            let out = kubectl()
                .args(["-n", "default", "get", "secret"])
                .arg(format!("enc-{p}"))
                .args(["-o", "jsonpath={.data.value}"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
            String::from_utf8_lossy(&out.stdout).to_string()
        })
        .collect();

    let copy = raw_snapshot_of_cp1(dir, "enc-snapshot.db");
    let inspect = |extra: &[&str]| {
        kastellan()
            .args(["etcd", "snapshot", "inspect"])
            .arg(&copy)
            .args(["--prefix", "/registry/secrets/default/enc-"])
            .args(extra)
            .output()
            .unwrap()
    };

    // Without the key: named, never decoded.
    let out = inspect(&[]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    for ((p, name, _), value) in PROVIDERS.iter().zip(&served) {
        assert!(
            printed.contains(&format!(
                "# encrypted with {p} key {name} (v1); not decoded (give --encryption-config)"
            )),
            "{printed}"
        );
        assert!(!printed.contains(value.as_str()), "{printed}");
    }

    // With it: each Secret as the apiserver serves it, and how it was stored.
    let config = dir.join("encryption-config.yaml");
    std::fs::write(&config, self::config("aescbc")).unwrap();
    let out = inspect(&[
        "--encryption-config",
        config.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    for ((p, name, _), value) in PROVIDERS.iter().zip(&served) {
        let o = doc["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == format!("enc-{p}"))
            .unwrap_or_else(|| panic!("enc-{p} in {doc:#}"));
        assert_eq!(o["encryption"]["provider"], *p, "{o:#}");
        assert_eq!(o["encryption"]["keyName"], *name, "{o:#}");
        assert_eq!(o["kind"], "Secret", "{o:#}");
        assert_eq!(o["object"]["data"]["value"], value.as_str(), "{o:#}");
    }

    // A wrong key is named as such, and decodes nothing (aesgcm: authenticated, so a
    // wrong key always fails).
    let wrong = dir.join("wrong-config.yaml");
    std::fs::write(
        &wrong,
        self::config("aescbc").replace(PROVIDERS[1].2, PROVIDERS[0].2),
    )
    .unwrap();
    let out = inspect(&["--encryption-config", wrong.to_str().unwrap()]);
    let printed = text(&out);
    assert!(
        printed.contains(
            "# encrypted with aesgcm key g1 (v1); not decoded: aesgcm key \"g1\" does not decrypt it"
        ),
        "{printed}"
    );
    assert!(!printed.contains(served[1].as_str()), "{printed}");
    assert!(
        printed.contains(served[0].as_str()),
        "the right keys still work: {printed}"
    );
}

//! Tier `lab` (issue 17): `backup create --volume-snapshots` and `restore objects
//! --pvc-from-snapshot` against the lab's real apiserver v1.20.2 and its
//! kube-controller-manager (the PV binder binds the test's PVCs).
//!
//! The lab has no CSI driver, no external-snapshotter and cannot run containers. The
//! test installs the snapshot API's v1 CRDs (`fixtures/snapshot-crds-v1.yaml`, cut down
//! from kubernetes-csi/external-snapshotter), a StorageClass and a statically bound
//! CSI PersistentVolume of the made-up driver `test.csi.kastellan.dev`, and a thread of
//! the test plays the CSI driver's and the snapshot controller's part
//! ([`FakeSnapshotter`]): for each new VolumeSnapshot it creates a
//! VolumeSnapshotContent with a snapshotHandle and sets both objects' status
//! (bound content, `readyToUse`, `restoreSize`) through the status subresource, as the
//! real controller would. No volume data is copied: what is tested is kastellan's side
//! of the API. For a PVC named `broken` the stand-in reports a driver error instead. A
//! re-created PVC stays Pending (no provisioner): the test checks what
//! the API accepted.
//!
//! Runs inside `lab_restore_objects_brings_back_a_deleted_namespace_16` (in `objects`),
//! on its lab, to save a lab start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use crate::objects::{ETC, get, json_of, ours, text, wait_for};
use crate::{kastellan, kubectl, kubectl_stdin};

const CRDS: &str = include_str!("fixtures/snapshot-crds-v1.yaml");
const DRIVER: &str = "test.csi.kastellan.dev";

/// A namespace with a PVC that can be snapshotted (`data`) and one whose driver has no
/// VolumeSnapshotClass (`scratch`), each bound to a PV made for it.
const VAULT: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: vault}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: test-csi}
provisioner: test.csi.kastellan.dev
reclaimPolicy: Retain
volumeBindingMode: Immediate
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: other-csi}
provisioner: other.csi.kastellan.dev
reclaimPolicy: Retain
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: vault-data}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: test-csi
  csi: {driver: test.csi.kastellan.dev, volumeHandle: vol-vault-data-1}
  claimRef: {namespace: vault, name: data}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: vault-scratch}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: other-csi
  csi: {driver: other.csi.kastellan.dev, volumeHandle: vol-vault-scratch-1}
  claimRef: {namespace: vault, name: scratch}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: vault}
spec:
  storageClassName: test-csi
  volumeName: vault-data
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: scratch, namespace: vault}
spec:
  storageClassName: other-csi
  volumeName: vault-scratch
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#;

/// A PVC whose snapshot the test's driver fails.
const BROKEN: &str = r#"
apiVersion: v1
kind: PersistentVolume
metadata: {name: vault-broken}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: test-csi
  csi: {driver: test.csi.kastellan.dev, volumeHandle: vol-vault-broken-1}
  claimRef: {namespace: vault, name: broken}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: broken, namespace: vault}
spec:
  storageClassName: test-csi
  volumeName: vault-broken
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#;

const SNAPSHOT_CLASS: &str = r#"
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: test-snap
  annotations: {snapshot.storage.kubernetes.io/is-default-class: "true"}
driver: test.csi.kastellan.dev
deletionPolicy: Delete
"#;

/// PUTs `obj` (with its resourceVersion) to its status subresource at `path`.
fn put_status(path: &str, obj: &Value) -> bool {
    let out = kubectl_stdin(&["replace", "--raw", path, "-f", "-"], &obj.to_string());
    if !out.status.success() {
        eprintln!("fake snapshotter: PUT {path}: {}", text(&out));
    }
    out.status.success()
}

/// The test's stand-in for the CSI driver and the snapshot controller: a thread that
/// makes each new VolumeSnapshot ready (content with a handle, status set).
struct FakeSnapshotter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeSnapshotter {
    fn start() -> FakeSnapshotter {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if let Some(list) = get(&["volumesnapshots", "-A"]) {
                    for vs in list["items"].as_array().into_iter().flatten() {
                        if vs.pointer("/status/readyToUse") != Some(&json!(true)) {
                            Self::play_driver(vs);
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        });
        FakeSnapshotter {
            stop,
            thread: Some(thread),
        }
    }

    /// What the external-snapshotter and the CSI driver do for one VolumeSnapshot.
    fn play_driver(vs: &Value) {
        let ns = vs["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = vs["metadata"]["name"].as_str().unwrap_or_default();
        if vs.pointer("/spec/source/persistentVolumeClaimName") == Some(&json!("broken")) {
            // The storage refuses: the controller reports the driver's error.
            if vs.pointer("/status/error").is_none() {
                let mut vs = vs.clone();
                vs["status"] = json!({"readyToUse": false, "error": {
                    "message": "fake driver: the storage refused the snapshot",
                    "time": "2026-12-02T08:00:00Z"}});
                put_status(
                    &format!(
                        "/apis/snapshot.storage.k8s.io/v1/namespaces/{ns}/volumesnapshots/{name}/status"
                    ),
                    &vs,
                );
            }
            return;
        }
        let uid = vs["metadata"]["uid"].as_str().unwrap_or_default();
        let content = format!("snapcontent-{uid}");
        let handle = format!("snap-handle-{name}");
        if get(&["volumesnapshotcontent", &content]).is_none() {
            let c = json!({
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotContent",
                "metadata": {"name": content},
                "spec": {
                    "deletionPolicy": "Delete",
                    "driver": DRIVER,
                    "volumeSnapshotClassName": vs["spec"]["volumeSnapshotClassName"],
                    "source": {"volumeHandle": "vol-vault-data-1"},
                    "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1",
                        "kind": "VolumeSnapshot", "namespace": ns, "name": name, "uid": uid},
                },
            });
            let out = kubectl_stdin(&["create", "-f", "-"], &c.to_string());
            if !out.status.success() {
                eprintln!("fake snapshotter: create {content}: {}", text(&out));
                return;
            }
        }
        let Some(mut c) = get(&["volumesnapshotcontent", &content]) else {
            return;
        };
        c["status"] = json!({"snapshotHandle": handle, "readyToUse": true,
            "restoreSize": 1073741824_i64, "creationTime": 1_700_000_000_000_000_000_i64});
        if !put_status(
            &format!("/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/{content}/status"),
            &c,
        ) {
            return;
        }
        let mut vs = vs.clone();
        vs["status"] = json!({"boundVolumeSnapshotContentName": content, "readyToUse": true,
            "restoreSize": "1Gi", "creationTime": "2026-12-02T08:00:00Z"});
        put_status(
            &format!(
                "/apis/snapshot.storage.k8s.io/v1/namespaces/{ns}/volumesnapshots/{name}/status"
            ),
            &vs,
        );
    }
}

impl Drop for FakeSnapshotter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn create_with_snapshots(dir: &str) -> std::process::Output {
    kastellan()
        .env_remove("KUBECONFIG")
        .args(["backup", "create", "--dir", dir, "--etc-kubernetes", ETC])
        .args(["--allow-unencrypted-secrets", "--volume-snapshots"])
        .args(["--volume-snapshot-timeout", "60s", "-o", "json"])
        .output()
        .unwrap()
}

/// The volume snapshot part of issue 17 on an up lab; bundles go to `dir`.
pub(crate) fn volume_snapshots_on_the_lab(dir: &str) {
    let started = Instant::now();
    let bundles_before = std::fs::read_dir(dir).unwrap().count();

    // Without the snapshot API: a clear refusal naming the flag, and no bundle.
    let out = create_with_snapshots(dir);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--volume-snapshots")
            && err.contains("does not serve snapshot.storage.k8s.io/v1"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        bundles_before,
        "no bundle without the snapshots"
    );

    // The snapshot API, the volumes, a class for one driver.
    let out = kubectl_stdin(&["apply", "-f", "-"], CRDS);
    assert!(out.status.success(), "{}", text(&out));
    let out = kubectl_stdin(&["apply", "-f", "-"], VAULT);
    assert!(out.status.success(), "{}", text(&out));
    wait_for("the snapshot CRDs to be served", 30, || {
        kubectl_stdin(&["apply", "-f", "-"], SNAPSHOT_CLASS)
            .status
            .success()
    });
    wait_for("the PV binder to bind vault's PVCs", 90, || {
        ["data", "scratch"].iter().all(|p| {
            get(&["pvc", "-n", "vault", p])
                .is_some_and(|v| v.pointer("/status/phase") == Some(&json!("Bound")))
        })
    });
    eprintln!("volumes bound after {:?}", started.elapsed());

    let snapshotter = FakeSnapshotter::start();
    let t = Instant::now();
    let out = create_with_snapshots(dir);
    eprintln!("backup create --volume-snapshots took {:?}", t.elapsed());
    drop(snapshotter);
    assert!(out.status.success(), "{}", text(&out));
    let doc = json_of(&out);
    let bundle = doc["path"].as_str().unwrap().to_string();
    let taken = doc["volumeSnapshots"]["taken"].as_array().unwrap();
    assert_eq!(taken.len(), 1, "{doc:#}");
    let rec = &taken[0];
    assert_eq!(rec["namespace"], "vault");
    assert_eq!(rec["pvc"], "data");
    assert_eq!(rec["class"], "test-snap");
    assert_eq!(rec["driver"], DRIVER);
    assert_eq!(rec["restoreSize"], "1Gi");
    let vs_name = rec["volumeSnapshot"].as_str().unwrap().to_string();
    assert!(vs_name.starts_with("kastellan-data-"), "{vs_name}");
    assert_eq!(
        rec["snapshotHandle"].as_str().unwrap(),
        format!("snap-handle-{vs_name}")
    );
    let skipped = doc["volumeSnapshots"]["skipped"].as_array().unwrap();
    assert!(
        skipped.iter().any(|s| s["pvc"] == "scratch"
            && s["reason"] == "no VolumeSnapshotClass for driver other.csi.kastellan.dev"),
        "{doc:#}"
    );

    // The manifest inside the bundle records the same.
    let manifest = read_manifest(&bundle);
    assert_eq!(
        manifest["volumeSnapshots"]["taken"][0], *rec,
        "{manifest:#}"
    );
    let content = rec["content"].as_str().unwrap();
    assert!(content.starts_with("snapcontent-"), "{rec}");

    // The VolumeSnapshot carries kastellan's labels and its bundle.
    let vs = get(&["volumesnapshot", "-n", "vault", &vs_name]).unwrap();
    assert_eq!(
        vs["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "kastellan"
    );
    assert_eq!(
        vs["metadata"]["annotations"]["kastellan.dev/bundle"].as_str(),
        std::path::Path::new(&bundle)
            .file_name()
            .and_then(|n| n.to_str())
    );
    assert_eq!(vs["spec"]["source"]["persistentVolumeClaimName"], "data");

    // The PVC is lost; restore objects brings it back from the snapshot.
    let out = kubectl()
        .args(["delete", "pvc", "data", "-n", "vault"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    wait_for("PVC vault/data to be gone", 60, || {
        get(&["pvc", "-n", "vault", "data"]).is_none()
    });
    let out = ours(&[
        "restore",
        "objects",
        "--from",
        &bundle,
        "-n",
        "vault",
        "--kind",
        "persistentvolumeclaims",
        "--name",
        "data",
        "--pvc-from-snapshot",
        "--yes",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let doc = json_of(&out);
    let row = pvc_row(&doc);
    assert_eq!(row["result"], "created", "{doc:#}");
    assert_eq!(row["fromVolumeSnapshot"], vs_name.as_str(), "{doc:#}");
    assert!(
        row["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("from VolumeSnapshot vault/{vs_name}")),
        "{doc:#}"
    );
    let pvc = get(&["pvc", "-n", "vault", "data"]).unwrap();
    assert_eq!(
        pvc["spec"]["dataSource"],
        json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": vs_name}),
        "{pvc:#}"
    );
    assert!(pvc["spec"].get("volumeName").is_none(), "{pvc:#}");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1Gi");

    // A snapshot that is gone cannot be restored from: the PVC fails with the reason.
    let out = kubectl()
        .args(["delete", "pvc", "data", "-n", "vault", "--wait=true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = kubectl()
        .args(["delete", "volumesnapshot", &vs_name, "-n", "vault"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    wait_for("PVC vault/data to be gone again", 60, || {
        get(&["pvc", "-n", "vault", "data"]).is_none()
    });
    let out = ours(&[
        "restore",
        "objects",
        "--from",
        &bundle,
        "-n",
        "vault",
        "--kind",
        "pvc",
        "--name",
        "data",
        "--pvc-from-snapshot",
        "--yes",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc = json_of(&out);
    let row = pvc_row(&doc);
    assert_eq!(row["result"], "failed", "{doc:#}");
    assert!(
        row["reason"].as_str().unwrap().contains("no longer exists"),
        "{doc:#}"
    );
    assert!(get(&["pvc", "-n", "vault", "data"]).is_none());

    // A snapshot that the driver fails: the run fails with its message, deletes the
    // VolumeSnapshots it made and writes no bundle.
    let out = kubectl_stdin(&["apply", "-f", "-"], BROKEN);
    assert!(out.status.success(), "{}", text(&out));
    wait_for("the PV binder to bind vault/broken", 90, || {
        get(&["pvc", "-n", "vault", "broken"])
            .is_some_and(|v| v.pointer("/status/phase") == Some(&json!("Bound")))
    });
    let bundles = std::fs::read_dir(dir).unwrap().count();
    let snapshotter = FakeSnapshotter::start();
    let out = create_with_snapshots(dir);
    drop(snapshotter);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(of PVC broken) failed: fake driver: the storage refused the snapshot"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        bundles,
        "no bundle"
    );
    let left = get(&["volumesnapshots", "-n", "vault"]).unwrap();
    assert_eq!(
        left["items"],
        json!([]),
        "the run's VolumeSnapshots deleted: {left:#}"
    );
    eprintln!("volume snapshots done in {:?}", started.elapsed());
}

/// `manifest.json` of an unencrypted bundle (the archive's first member).
fn read_manifest(bundle: &str) -> Value {
    let f = std::fs::File::open(bundle).unwrap();
    let mut ar = tar::Archive::new(zstd::Decoder::new(f).unwrap());
    let mut entry = ar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str(), Some("manifest.json"));
    serde_json::from_reader(&mut entry).unwrap()
}

/// The row of PVC vault/data in a restore report (`-n` brings the Namespace too).
fn pvc_row(doc: &Value) -> &Value {
    doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "PersistentVolumeClaim" && o["name"] == "data")
        .unwrap_or_else(|| panic!("{doc:#}"))
}

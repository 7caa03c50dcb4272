//! CSI volume snapshots of the cluster's bound PVCs, taken with a bundle
//! (`snapshot.storage.k8s.io/v1`, the external-snapshotter's API).
//!
//! [`select`] is pure: which PVC gets which VolumeSnapshotClass, and why the others
//! are skipped. [`take`] asks the API: discovery, the facts, one VolumeSnapshot per
//! selected PVC, the wait for `status.readyToUse`, and the records kept in the
//! bundle's manifest. The API calls use kube's dynamic objects: the snapshot API is a
//! set of CRDs that `k8s-openapi` does not know.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// The API group of volume snapshots.
pub const GROUP: &str = "snapshot.storage.k8s.io";
/// The version used.
pub const VERSION: &str = "v1";
/// The annotation that marks a VolumeSnapshotClass as its driver's default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "snapshot.storage.kubernetes.io/is-default-class";
/// The label every VolumeSnapshot kastellan makes carries (`kastellan`).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The label with the bundle's time (`20261202T080000Z`), a valid label value.
pub const BUNDLE_TIME_LABEL: &str = "kastellan.dev/bundle-time";
/// The annotation with the bundle's file name.
pub const BUNDLE_ANNOTATION: &str = "kastellan.dev/bundle";

/// What the bundle's manifest records about volume snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshots {
    /// One per VolumeSnapshot taken, ready to use.
    pub taken: Vec<Recorded>,
    /// The bound PVCs that got none, with the reason.
    pub skipped: Vec<Skipped>,
}

/// A VolumeSnapshot taken with the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    /// The namespace of the PVC and the VolumeSnapshot.
    pub namespace: String,
    /// The PVC.
    pub pvc: String,
    /// The VolumeSnapshot's name.
    pub volume_snapshot: String,
    /// Its VolumeSnapshotClass.
    pub class: String,
    /// The CSI driver.
    pub driver: String,
    /// The VolumeSnapshotContent it is bound to.
    pub content: Option<String>,
    /// The storage system's id of the snapshot (`status.snapshotHandle` of the content).
    pub snapshot_handle: Option<String>,
    /// `status.restoreSize` (a quantity, e.g. `1Gi`).
    pub restore_size: Option<String>,
    /// When it was seen ready to use (RFC 3339, UTC).
    pub ready_at: String,
}

/// A bound PVC without a VolumeSnapshot, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// Its namespace.
    pub namespace: String,
    /// The PVC.
    pub pvc: String,
    /// Why.
    pub reason: String,
}

/// How to take the snapshots.
#[derive(Debug, Clone)]
pub struct Options {
    /// The VolumeSnapshotClass to use (else each driver's default, else its only one).
    pub class: Option<String>,
    /// How long to wait for every snapshot to be ready to use.
    pub timeout: Duration,
}

/// The facts about one PVC that the selection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `status.phase`.
    pub phase: String,
    /// `spec.storageClassName`.
    pub storage_class: Option<String>,
    /// `spec.volumeName`.
    pub volume: Option<String>,
    /// The bound PV's `spec.csi.driver`; `Some(None)`: the PV is known and not CSI.
    pub volume_driver: Option<Option<String>>,
}

/// A VolumeSnapshotClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotClass {
    /// Name.
    pub name: String,
    /// Its CSI driver.
    pub driver: String,
    /// Annotated as its driver's default.
    pub default: bool,
}

/// A PVC to snapshot, with its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Namespace.
    pub namespace: String,
    /// The PVC.
    pub pvc: String,
    /// The VolumeSnapshotClass.
    pub class: String,
    /// The CSI driver.
    pub driver: String,
}

/// Which bound PVC gets which VolumeSnapshotClass. `provisioners` maps each
/// StorageClass to its provisioner; `given` is the class asked for (its existence is
/// checked by the caller). The driver is the StorageClass's provisioner, else (no
/// class) the PV's CSI driver; a PV known not to be CSI is skipped.
pub fn select(
    claims: &[Claim],
    provisioners: &BTreeMap<String, String>,
    classes: &[SnapshotClass],
    given: Option<&str>,
) -> (Vec<Planned>, Vec<Skipped>) {
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    for c in claims {
        let skip = |reason: String| Skipped {
            namespace: c.namespace.clone(),
            pvc: c.name.clone(),
            reason,
        };
        if c.phase != "Bound" {
            skipped.push(skip(format!("not bound (phase {})", c.phase)));
            continue;
        }
        if let (Some(pv), Some(None)) = (&c.volume, &c.volume_driver) {
            skipped.push(skip(format!("PersistentVolume {pv} is not a CSI volume")));
            continue;
        }
        let from_class = c
            .storage_class
            .as_ref()
            .filter(|s| !s.is_empty())
            .and_then(|s| provisioners.get(s));
        let driver = match (from_class, &c.volume_driver) {
            (Some(p), _) => p.clone(),
            (None, Some(Some(d))) => d.clone(),
            (None, _) => {
                skipped.push(skip(match &c.storage_class {
                    Some(s) if !s.is_empty() => {
                        format!("StorageClass {s} not found, and no CSI volume bound")
                    }
                    _ => "no StorageClass and no CSI volume bound".into(),
                }));
                continue;
            }
        };
        let for_driver: Vec<&SnapshotClass> =
            classes.iter().filter(|k| k.driver == driver).collect();
        let chosen = match given {
            Some(g) => match classes.iter().find(|k| k.name == g) {
                Some(k) if k.driver == driver => Ok(k),
                Some(k) => Err(format!(
                    "VolumeSnapshotClass {g} is for driver {}, the volume's is {driver}",
                    k.driver
                )),
                None => Err(format!("no VolumeSnapshotClass {g}")),
            },
            None => {
                let defaults: Vec<&&SnapshotClass> =
                    for_driver.iter().filter(|k| k.default).collect();
                match (defaults.as_slice(), for_driver.as_slice()) {
                    ([one], _) => Ok(**one),
                    ([], [only]) => Ok(*only),
                    ([], []) => Err(format!("no VolumeSnapshotClass for driver {driver}")),
                    ([], several) => Err(format!(
                        "{} VolumeSnapshotClasses for driver {driver} ({}) and none marked default; name one",
                        several.len(),
                        names(several)
                    )),
                    (several, _) => Err(format!(
                        "{} VolumeSnapshotClasses marked default for driver {driver} ({}); name one",
                        several.len(),
                        several
                            .iter()
                            .map(|k| k.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
        };
        match chosen {
            Ok(k) => planned.push(Planned {
                namespace: c.namespace.clone(),
                pvc: c.name.clone(),
                class: k.name.clone(),
                driver,
            }),
            Err(reason) => skipped.push(skip(reason)),
        }
    }
    (planned, skipped)
}

fn names(classes: &[&SnapshotClass]) -> String {
    classes
        .iter()
        .map(|k| k.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The VolumeSnapshot's name: `kastellan-<pvc>-<yyyymmdd-hhmmss>`, the PVC's part cut
/// so that the whole fits 253 characters.
pub fn snapshot_name(pvc: &str, at: jiff::Timestamp) -> String {
    let stamp = at.strftime("%Y%m%d-%H%M%S").to_string();
    let room = 253 - "kastellan--".len() - stamp.len();
    let mut p: String = pvc.chars().take(room).collect();
    while p.ends_with(['-', '.']) {
        p.pop();
    }
    format!("kastellan-{p}-{stamp}")
}

/// The dynamic resource of `kind` (`VolumeSnapshot`, ...) with its plural.
pub fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, kind), plural)
}

fn kerr(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

/// Whether the cluster serves `snapshot.storage.k8s.io/v1` with VolumeSnapshots and
/// VolumeSnapshotClasses.
pub async fn served(client: &kube::Client) -> Result<bool> {
    match client
        .list_api_group_resources(&format!("{GROUP}/{VERSION}"))
        .await
    {
        Ok(list) => Ok(["volumesnapshots", "volumesnapshotclasses"]
            .iter()
            .all(|r| list.resources.iter().any(|x| x.name == *r))),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(Error::Kube {
            what: format!("discovery of {GROUP}/{VERSION}"),
            source: e,
        }),
    }
}

/// The plan of a run: found before anything is made.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The snapshots to take.
    pub planned: Vec<Planned>,
    /// The PVCs left out.
    pub skipped: Vec<Skipped>,
}

/// Discovery and facts: fails with [`Error::SnapshotApiMissing`] when the API is not
/// served and [`Error::UnknownSnapshotClass`] when the class asked for is missing.
pub async fn plan(client: &kube::Client, opts: &Options) -> Result<Plan> {
    if !served(client).await? {
        return Err(Error::SnapshotApiMissing {
            group_version: format!("{GROUP}/{VERSION}"),
        });
    }
    let lp = ListParams::default();
    let classes: Vec<SnapshotClass> = Api::<DynamicObject>::all_with(
        client.clone(),
        &resource("VolumeSnapshotClass", "volumesnapshotclasses"),
    )
    .list(&lp)
    .await
    .map_err(kerr("list volumesnapshotclasses"))?
    .items
    .into_iter()
    .map(|o| SnapshotClass {
        default: o
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
            .is_some_and(|v| v == "true"),
        name: o.metadata.name.unwrap_or_default(),
        driver: o
            .data
            .get("driver")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
    .collect();
    if let Some(g) = &opts.class
        && !classes.iter().any(|k| &k.name == g)
    {
        return Err(Error::UnknownSnapshotClass {
            name: g.clone(),
            have: classes.iter().map(|k| k.name.clone()).collect(),
        });
    }
    let provisioners: BTreeMap<String, String> = Api::<StorageClass>::all(client.clone())
        .list(&lp)
        .await
        .map_err(kerr("list storageclasses"))?
        .items
        .into_iter()
        .filter_map(|s| Some((s.metadata.name?, s.provisioner)))
        .collect();
    let pvs: BTreeMap<String, Option<String>> = Api::<PersistentVolume>::all(client.clone())
        .list(&lp)
        .await
        .map_err(kerr("list persistentvolumes"))?
        .items
        .into_iter()
        .filter_map(|pv| {
            let driver = pv.spec.and_then(|s| s.csi).map(|c| c.driver);
            Some((pv.metadata.name?, driver))
        })
        .collect();
    let claims: Vec<Claim> = Api::<PersistentVolumeClaim>::all(client.clone())
        .list(&lp)
        .await
        .map_err(kerr("list persistentvolumeclaims"))?
        .items
        .into_iter()
        .map(|c| {
            let spec = c.spec.unwrap_or_default();
            Claim {
                namespace: c.metadata.namespace.unwrap_or_default(),
                name: c.metadata.name.unwrap_or_default(),
                phase: c
                    .status
                    .and_then(|s| s.phase)
                    .unwrap_or_else(|| "Pending".into()),
                storage_class: spec.storage_class_name,
                volume_driver: spec.volume_name.as_ref().and_then(|v| pvs.get(v).cloned()),
                volume: spec.volume_name,
            }
        })
        .collect();
    let (planned, skipped) = select(&claims, &provisioners, &classes, opts.class.as_deref());
    Ok(Plan { planned, skipped })
}

/// The VolumeSnapshot object for `p`.
pub fn snapshot_object(p: &Planned, name: &str, bundle: &str, at: jiff::Timestamp) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": name,
            "namespace": p.namespace,
            "labels": {
                MANAGED_BY_LABEL: "kastellan",
                BUNDLE_TIME_LABEL: at.strftime("%Y%m%dT%H%M%SZ").to_string(),
            },
            "annotations": {BUNDLE_ANNOTATION: bundle},
        },
        "spec": {
            "volumeSnapshotClassName": p.class,
            "source": {"persistentVolumeClaimName": p.pvc},
        },
    })
}

/// Takes the planned snapshots: creates them, waits at most `timeout` for all to be
/// ready to use, and records each. On a failure or the timeout, the snapshots this run
/// made are deleted (best effort) and the error returned: a bundle never records some
/// of the volumes in silence.
pub async fn take(
    client: &kube::Client,
    plan: &Plan,
    timeout: Duration,
    bundle: &str,
    at: jiff::Timestamp,
    note: &(dyn Fn(String) + Send + Sync),
) -> Result<VolumeSnapshots> {
    let ar = resource("VolumeSnapshot", "volumesnapshots");
    let mut made: Vec<(Planned, String)> = Vec::new();
    let result = async {
        for p in &plan.planned {
            let name = snapshot_name(&p.pvc, at);
            let obj: DynamicObject = serde_json::from_value(snapshot_object(p, &name, bundle, at))
                .map_err(|e| Error::Encode {
                    what: format!("VolumeSnapshot {}/{name}", p.namespace),
                    message: e.to_string(),
                })?;
            Api::<DynamicObject>::namespaced_with(client.clone(), &p.namespace, &ar)
                .create(&PostParams::default(), &obj)
                .await
                .map_err(kerr(format!(
                    "create VolumeSnapshot {}/{name}",
                    p.namespace
                )))?;
            note(format!(
                "VolumeSnapshot {}/{name} of PVC {} ({})",
                p.namespace, p.pvc, p.class
            ));
            made.push((p.clone(), name));
        }
        wait_ready(client, &made, timeout).await
    }
    .await;
    match result {
        Ok(taken) => Ok(VolumeSnapshots {
            taken,
            skipped: plan.skipped.clone(),
        }),
        Err(e) => {
            for (p, name) in &made {
                let _ = Api::<DynamicObject>::namespaced_with(client.clone(), &p.namespace, &ar)
                    .delete(name, &DeleteParams::default())
                    .await;
            }
            Err(e)
        }
    }
}

async fn wait_ready(
    client: &kube::Client,
    made: &[(Planned, String)],
    timeout: Duration,
) -> Result<Vec<Recorded>> {
    let ar = resource("VolumeSnapshot", "volumesnapshots");
    let contents = Api::<DynamicObject>::all_with(
        client.clone(),
        &resource("VolumeSnapshotContent", "volumesnapshotcontents"),
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let mut done: BTreeMap<usize, Recorded> = BTreeMap::new();
    loop {
        for (i, (p, name)) in made.iter().enumerate() {
            if done.contains_key(&i) {
                continue;
            }
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), &p.namespace, &ar);
            let vs = api
                .get(name)
                .await
                .map_err(kerr(format!("get VolumeSnapshot {}/{name}", p.namespace)))?;
            let status = vs.data.get("status").cloned().unwrap_or(Value::Null);
            if let Some(msg) = status.pointer("/error/message").and_then(Value::as_str) {
                return Err(Error::VolumeSnapshotFailed {
                    namespace: p.namespace.clone(),
                    name: name.clone(),
                    pvc: p.pvc.clone(),
                    message: msg.to_string(),
                });
            }
            if status.get("readyToUse").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let ready_at = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let content = status
                .get("boundVolumeSnapshotContentName")
                .and_then(Value::as_str)
                .map(str::to_string);
            let snapshot_handle = match &content {
                Some(c) => contents
                    .get(c)
                    .await
                    .map_err(kerr(format!("get VolumeSnapshotContent {c}")))?
                    .data
                    .pointer("/status/snapshotHandle")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                None => None,
            };
            let restore_size = status.get("restoreSize").and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            done.insert(
                i,
                Recorded {
                    namespace: p.namespace.clone(),
                    pvc: p.pvc.clone(),
                    volume_snapshot: name.clone(),
                    class: p.class.clone(),
                    driver: p.driver.clone(),
                    content,
                    snapshot_handle,
                    restore_size,
                    ready_at,
                },
            );
        }
        if done.len() == made.len() {
            return Ok(done.into_values().collect());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::VolumeSnapshotTimeout {
                waited: timeout,
                pending: made
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !done.contains_key(i))
                    .map(|(_, (p, n))| format!("{}/{n}", p.namespace))
                    .collect(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(name: &str, class: Option<&str>, driver: Option<Option<&str>>) -> Claim {
        Claim {
            namespace: "shop".into(),
            name: name.into(),
            phase: "Bound".into(),
            storage_class: class.map(str::to_string),
            volume: Some(format!("pv-{name}")),
            volume_driver: driver.map(|d| d.map(str::to_string)),
        }
    }

    fn class(name: &str, driver: &str, default: bool) -> SnapshotClass {
        SnapshotClass {
            name: name.into(),
            driver: driver.into(),
            default,
        }
    }

    fn provisioners() -> BTreeMap<String, String> {
        [
            ("fast", "a.csi"),
            ("slow", "b.csi"),
            ("local", "kubernetes.io/no-provisioner"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn chosen(planned: &[Planned]) -> Vec<(&str, &str)> {
        planned
            .iter()
            .map(|p| (p.pvc.as_str(), p.class.as_str()))
            .collect()
    }

    #[test]
    fn the_only_class_of_a_driver_is_taken() {
        let claims = [claim("data", Some("fast"), Some(Some("a.csi")))];
        let classes = [
            class("a-snap", "a.csi", false),
            class("b-snap", "b.csi", true),
        ];
        let (p, s) = select(&claims, &provisioners(), &classes, None);
        assert_eq!(chosen(&p), [("data", "a-snap")]);
        assert_eq!(p[0].driver, "a.csi");
        assert!(s.is_empty());
    }

    #[test]
    fn the_default_class_wins_over_the_others() {
        let claims = [claim("data", Some("fast"), Some(Some("a.csi")))];
        let classes = [
            class("a-1", "a.csi", false),
            class("a-2", "a.csi", true),
            class("a-3", "a.csi", false),
        ];
        let (p, _) = select(&claims, &provisioners(), &classes, None);
        assert_eq!(chosen(&p), [("data", "a-2")]);
    }

    #[test]
    fn a_given_class_is_used_when_its_driver_matches() {
        let claims = [
            claim("data", Some("fast"), Some(Some("a.csi"))),
            claim("logs", Some("slow"), Some(Some("b.csi"))),
        ];
        let classes = [class("a-1", "a.csi", false), class("a-2", "a.csi", true)];
        let (p, s) = select(&claims, &provisioners(), &classes, Some("a-1"));
        assert_eq!(chosen(&p), [("data", "a-1")]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].pvc, "logs");
        assert_eq!(
            s[0].reason,
            "VolumeSnapshotClass a-1 is for driver a.csi, the volume's is b.csi"
        );
    }

    #[test]
    fn pvcs_without_a_class_for_their_driver_are_skipped_with_the_reason() {
        let mut pending = claim("new", Some("fast"), None);
        pending.phase = "Pending".into();
        let claims = [
            claim("none", Some("slow"), Some(Some("b.csi"))),
            claim("hostpath", Some("local"), Some(None)),
            pending,
            claim("gone", Some("nosuch"), None),
            claim("static", None, Some(Some("a.csi"))),
        ];
        let classes = [class("a-1", "a.csi", false)];
        let (p, s) = select(&claims, &provisioners(), &classes, None);
        assert_eq!(chosen(&p), [("static", "a-1")], "no class: the PV's driver");
        let reasons: Vec<(&str, &str)> = s
            .iter()
            .map(|k| (k.pvc.as_str(), k.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("none", "no VolumeSnapshotClass for driver b.csi"),
                (
                    "hostpath",
                    "PersistentVolume pv-hostpath is not a CSI volume"
                ),
                ("new", "not bound (phase Pending)"),
                (
                    "gone",
                    "StorageClass nosuch not found, and no CSI volume bound"
                ),
            ]
        );
    }

    #[test]
    fn several_classes_without_one_default_are_not_guessed() {
        let claims = [claim("data", Some("fast"), Some(Some("a.csi")))];
        let (p, s) = select(
            &claims,
            &provisioners(),
            &[class("a-1", "a.csi", false), class("a-2", "a.csi", false)],
            None,
        );
        assert!(p.is_empty());
        assert_eq!(
            s[0].reason,
            "2 VolumeSnapshotClasses for driver a.csi (a-1, a-2) and none marked default; name one"
        );
        let (p, s) = select(
            &claims,
            &provisioners(),
            &[class("a-1", "a.csi", true), class("a-2", "a.csi", true)],
            None,
        );
        assert!(p.is_empty());
        assert!(s[0].reason.contains("marked default"), "{}", s[0].reason);
    }

    #[test]
    fn names_are_valid_and_bounded() {
        let at: jiff::Timestamp = "2026-12-02T08:00:00Z".parse().unwrap();
        assert_eq!(snapshot_name("data", at), "kastellan-data-20261202-080000");
        let long = "x".repeat(300);
        let n = snapshot_name(&long, at);
        assert_eq!(n.len(), 253);
        assert!(n.ends_with("-20261202-080000"));
        let p = Planned {
            namespace: "shop".into(),
            pvc: "data".into(),
            class: "a-1".into(),
            driver: "a.csi".into(),
        };
        let o = snapshot_object(&p, &n, "kastellan-backup-k-20261202T080000Z.tar.zst", at);
        assert_eq!(
            o["metadata"]["labels"][BUNDLE_TIME_LABEL],
            "20261202T080000Z"
        );
        assert_eq!(o["spec"]["source"]["persistentVolumeClaimName"], "data");
        assert_eq!(o["spec"]["volumeSnapshotClassName"], "a-1");
    }
}

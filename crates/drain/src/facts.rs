//! What the plan is made from: pods, their owners and PodDisruptionBudgets, reduced
//! to the fields the rules read. Built from API objects by the API part
//! ([`PodInfo::from_pod`], [`PdbInfo::from_json`]) and by hand in tests.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

use crate::selector;

/// The annotation the kubelet puts on mirror pods of static pods.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// A namespaced name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodRef {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// An owner: a kind and a name (in the pod's namespace).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// The kind, e.g. `ReplicaSet`, `DaemonSet`, `Deployment`.
    pub kind: String,
    /// The name.
    pub name: String,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// The phase of a pod, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Pending, Running or Unknown.
    Active,
    /// Succeeded.
    Succeeded,
    /// Failed.
    Failed,
}

impl Phase {
    /// Whether the pod has finished (Succeeded or Failed): always removable.
    pub fn finished(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// One pod, reduced to what the rules read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
    /// Namespace and name.
    #[serde(flatten)]
    pub pod: PodRef,
    /// The pod's UID (a pod replaced under the same name has another one).
    pub uid: String,
    /// The node it is bound to.
    pub node: Option<String>,
    /// Active or finished.
    pub phase: Phase,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// Its controller (the owner reference with `controller: true`).
    pub controller: Option<Owner>,
    /// The workload above the controller: the Deployment of a ReplicaSet, otherwise
    /// the controller itself.
    pub workload: Option<Owner>,
    /// Whether its Ready condition is True.
    pub ready: bool,
    /// Whether it is already being deleted.
    pub terminating: bool,
    /// Whether it has an emptyDir volume (local data lost on eviction).
    pub empty_dir: bool,
}

impl PodInfo {
    /// Whether this is the mirror pod of a static pod.
    pub fn is_mirror(&self) -> bool {
        self.annotations.contains_key(MIRROR_ANNOTATION)
    }

    /// Reads a pod from the API; `workload_of` maps a ReplicaSet (namespace, name) to
    /// its own controller (a Deployment), when it has one.
    pub fn from_pod(pod: &Pod, workload_of: &BTreeMap<(String, String), Owner>) -> PodInfo {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| Owner {
                kind: o.kind.clone(),
                name: o.name.clone(),
            });
        let workload = controller.as_ref().map(|c| {
            if c.kind == "ReplicaSet" {
                workload_of
                    .get(&(namespace.clone(), c.name.clone()))
                    .cloned()
                    .unwrap_or_else(|| c.clone())
            } else {
                c.clone()
            }
        });
        let status = pod.status.as_ref();
        let phase = match status.and_then(|s| s.phase.as_deref()) {
            Some("Succeeded") => Phase::Succeeded,
            Some("Failed") => Phase::Failed,
            _ => Phase::Active,
        };
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let spec = pod.spec.as_ref();
        let empty_dir = spec
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
            .any(|v| v.empty_dir.is_some());
        PodInfo {
            pod: PodRef {
                namespace,
                name: meta.name.clone().unwrap_or_default(),
            },
            uid: meta.uid.clone().unwrap_or_default(),
            node: spec.and_then(|s| s.node_name.clone()),
            phase,
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            controller,
            workload,
            ready,
            terminating: meta.deletion_timestamp.is_some(),
            empty_dir,
        }
    }
}

/// How a PodDisruptionBudget's empty selector reads: `policy/v1beta1` selects no pods
/// with it, `policy/v1` every pod of the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmptySelector {
    /// `policy/v1beta1`: an empty selector matches nothing.
    MatchesNothing,
    /// `policy/v1`: an empty selector matches every pod of the namespace.
    MatchesAll,
}

/// One PodDisruptionBudget and its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PdbInfo {
    /// Namespace and name.
    #[serde(flatten)]
    pub pdb: PodRef,
    /// Its pod selector.
    #[serde(skip)]
    pub selector: Option<LabelSelector>,
    /// How an empty selector reads (by the API version it was read with).
    #[serde(skip)]
    pub empty_selector: Option<EmptySelector>,
    /// `spec.minAvailable` or `spec.maxUnavailable`, as written (e.g. `minAvailable: 2`).
    pub rule: String,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i32,
    /// `status.currentHealthy`.
    pub current_healthy: i32,
    /// `status.desiredHealthy`.
    pub desired_healthy: i32,
    /// `status.expectedPods`.
    pub expected_pods: i32,
}

impl PdbInfo {
    /// The pods it expects that are not healthy now.
    pub fn unhealthy(&self) -> i32 {
        (self.expected_pods - self.current_healthy).max(0)
    }

    /// Whether it covers `pod` (same namespace, selector matches).
    pub fn covers(&self, pod: &PodInfo) -> bool {
        if pod.pod.namespace != self.pdb.namespace {
            return false;
        }
        match &self.selector {
            None => false,
            Some(sel) if selector::is_empty(sel) => {
                self.empty_selector == Some(EmptySelector::MatchesAll)
            }
            Some(sel) => selector::matches(sel, &pod.labels),
        }
    }

    /// Reads a PodDisruptionBudget as `policy/v1` or `policy/v1beta1` serve it (the
    /// fields read are the same in both).
    pub fn from_json(v: &serde_json::Value, empty: EmptySelector) -> PdbInfo {
        let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).unwrap_or_default();
        let i = |p: &str| {
            v.pointer(p)
                .and_then(serde_json::Value::as_i64)
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(0)
        };
        let rule = ["minAvailable", "maxUnavailable"]
            .iter()
            .find_map(|k| {
                v.pointer(&format!("/spec/{k}")).map(|x| match x {
                    serde_json::Value::String(s) => format!("{k}: {s}"),
                    other => format!("{k}: {other}"),
                })
            })
            .unwrap_or_default();
        PdbInfo {
            pdb: PodRef {
                namespace: s("/metadata/namespace").to_string(),
                name: s("/metadata/name").to_string(),
            },
            selector: v
                .pointer("/spec/selector")
                .and_then(|x| serde_json::from_value(x.clone()).ok()),
            empty_selector: Some(empty),
            rule,
            disruptions_allowed: i("/status/disruptionsAllowed"),
            current_healthy: i("/status/currentHealthy"),
            desired_healthy: i("/status/desiredHealthy"),
            expected_pods: i("/status/expectedPods"),
        }
    }
}

/// Everything the plan of one drain reads.
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts {
    /// The nodes asked for, with whether each is already cordoned.
    pub nodes: BTreeMap<String, bool>,
    /// The pods on those nodes that the pod selector picks (all of them without one).
    pub node_pods: Vec<PodInfo>,
    /// Every pod of the cluster (for replicas elsewhere and etcd members).
    pub all_pods: Vec<PodInfo>,
    /// Every PodDisruptionBudget.
    pub pdbs: Vec<PdbInfo>,
    /// The DaemonSets that exist, as (namespace, name).
    pub daemonsets: BTreeSet<(String, String)>,
}

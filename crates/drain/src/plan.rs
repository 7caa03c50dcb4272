//! The plan of a drain, made from facts alone: per node, the pods to evict, skip and
//! refuse with reasons, the PodDisruptionBudgets the evictions need (and whether they
//! allow them now), and the hazards of taking the node down (an etcd member whose loss
//! costs quorum, the last ready replica of a workload, a primary). Serialisable: it is
//! what `--dry-run -o json` prints, and what the executor carries out.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::classify::{self, Decision, Reason, Rules};
use crate::facts::{ClusterFacts, Owner, PdbInfo, PodInfo, PodRef};

/// A pod marked as the primary of its workload: a label or annotation `key`, with
/// `value` when one is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryMarker {
    /// The label or annotation key.
    pub key: String,
    /// The value it must have (any value when `None`).
    pub value: Option<String>,
}

impl PrimaryMarker {
    /// Whether `pod` carries the marker, as a label or as an annotation.
    pub fn marks(&self, pod: &PodInfo) -> bool {
        [&pod.labels, &pod.annotations].iter().any(|m| {
            m.get(&self.key)
                .is_some_and(|v| self.value.as_ref().is_none_or(|want| want == v))
        })
    }
}

impl std::fmt::Display for PrimaryMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

/// What is asked of the drain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The nodes, in the order given.
    pub nodes: Vec<String>,
    /// kubectl's rules.
    pub rules: Rules,
    /// How many nodes are drained at once (at least 1).
    pub max_unavailable: usize,
    /// The primary marker, if any.
    pub primary: Option<PrimaryMarker>,
    /// Delete pods instead of evicting them (PodDisruptionBudgets are not consulted).
    pub disable_eviction: bool,
    /// The nodes keep running their static pods after the drain (an upgrade's drain,
    /// not a shutdown): the etcd-quorum hazard does not apply, since the etcd member
    /// is not stopped by it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nodes_stay_up: bool,
    /// Hazards are reported and gone past, not refused (without touching the rules:
    /// `rules.force` also allows them, but evicts unmanaged pods too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_hazards: bool,
}

/// One pod in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedPod {
    /// Namespace and name.
    #[serde(flatten)]
    pub pod: PodRef,
    /// Its UID: the pod counts as gone once no pod of this name has it.
    pub uid: String,
    /// The workload that owns it (the Deployment of a ReplicaSet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// Why it is skipped or refused, or what its eviction loses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
}

impl PlannedPod {
    fn new(p: &PodInfo, reasons: Vec<Reason>) -> PlannedPod {
        PlannedPod {
            pod: p.pod.clone(),
            uid: p.uid.clone(),
            owner: p.workload.clone(),
            reasons,
        }
    }
}

/// A PodDisruptionBudget that covers pods the drain evicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetCheck {
    /// The budget and its status when the facts were read.
    #[serde(flatten)]
    pub pdb: PdbInfo,
    /// The pods it covers: first the ones this node's batch evicts, then the rest.
    pub pods: Vec<CoveredPod>,
    /// How many of them the batch evicts.
    pub evictions: i32,
    /// Whether it allows fewer disruptions now than the batch needs.
    pub blocks: bool,
}

/// A pod a budget covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoveredPod {
    /// Namespace and name.
    #[serde(flatten)]
    pub pod: PodRef,
    /// Its workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// Its node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Whether it is Ready.
    pub ready: bool,
    /// Whether the drain evicts it.
    pub to_evict: bool,
}

/// What cannot be moved safely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Hazard {
    /// The node runs an etcd member (stacked control plane), and the members left
    /// healthy without it (and the rest of its batch) are fewer than a quorum.
    #[serde(rename_all = "camelCase")]
    EtcdQuorum {
        /// etcd static pods in the cluster.
        members: usize,
        /// Of them, Ready now.
        healthy: usize,
        /// Ready once this batch of nodes is down.
        healthy_after: usize,
        /// The quorum of `members`.
        quorum: usize,
    },
    /// Every ready replica of a Deployment or StatefulSet runs on the nodes of this
    /// batch: evicting them leaves it with none until new ones are ready.
    #[serde(rename_all = "camelCase")]
    LastReadyReplica {
        /// The workload's namespace.
        namespace: String,
        /// The workload.
        workload: Owner,
        /// Its ready pods on this node.
        ready_here: usize,
    },
    /// A pod marked as its workload's primary.
    #[serde(rename_all = "camelCase")]
    Primary {
        /// The pod.
        pod: PodRef,
        /// Its workload.
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<Owner>,
        /// The marker it carries.
        marker: String,
    },
}

impl Hazard {
    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            Hazard::EtcdQuorum {
                members,
                healthy,
                healthy_after,
                quorum,
            } => format!(
                "etcd member: {healthy} of {members} members healthy, {healthy_after} \
                 without this node, quorum needs {quorum}"
            ),
            Hazard::LastReadyReplica {
                namespace,
                workload,
                ready_here,
            } => format!(
                "last ready replica: {workload} in {namespace} has all its ready pods \
                 ({ready_here}) here"
            ),
            Hazard::Primary { pod, owner, marker } => format!(
                "primary: {pod}{} is marked {marker}",
                owner
                    .as_ref()
                    .map(|o| format!(" ({o})"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// The plan for one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePlan {
    /// The node.
    pub node: String,
    /// Whether it was already cordoned.
    pub cordoned: bool,
    /// Pods to evict (or delete), with notes on what is lost.
    pub evict: Vec<PlannedPod>,
    /// Pods left on the node, and why.
    pub skip: Vec<PlannedPod>,
    /// Pods the rules do not allow to remove: the drain refuses while there are any.
    pub refuse: Vec<PlannedPod>,
    /// The PodDisruptionBudgets the evictions need.
    pub budgets: Vec<BudgetCheck>,
    /// What cannot be moved safely.
    pub hazards: Vec<Hazard>,
}

impl NodePlan {
    /// The budgets that do not allow the evictions now.
    pub fn blockers(&self) -> impl Iterator<Item = &BudgetCheck> {
        self.budgets.iter().filter(|b| b.blocks)
    }
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// How pods are removed: `policy/v1` or `policy/v1beta1` eviction, or `delete`.
    pub removal: String,
    /// What was asked.
    pub request: Request,
    /// The nodes drained together, batch after batch.
    pub batches: Vec<Vec<String>>,
    /// One plan per node, in the order given.
    pub nodes: Vec<NodePlan>,
}

impl Plan {
    /// Whether any node has pods the rules refuse.
    pub fn refused(&self) -> bool {
        self.nodes.iter().any(|n| !n.refuse.is_empty())
    }
    /// Whether any node has a hazard.
    pub fn hazardous(&self) -> bool {
        self.nodes.iter().any(|n| !n.hazards.is_empty())
    }
    /// Whether any budget does not allow its evictions now (never when pods are
    /// deleted without the Eviction API: budgets are then gone past, not waited for).
    pub fn blocked(&self) -> bool {
        !self.request.disable_eviction && self.nodes.iter().any(|n| n.blockers().next().is_some())
    }
}

/// The batches of `nodes`: `max_unavailable` at a time, in order.
pub fn batches(nodes: &[String], max_unavailable: usize) -> Vec<Vec<String>> {
    nodes
        .chunks(max_unavailable.max(1))
        .map(<[String]>::to_vec)
        .collect()
}

/// Whether `pod` is an etcd member of a stacked control plane (kubeadm's static pod).
fn is_etcd(pod: &PodInfo) -> bool {
    pod.pod.namespace == "kube-system"
        && pod.labels.get("component").map(String::as_str) == Some("etcd")
}

/// Makes the plan: every node of every batch, against the same facts.
pub fn plan(facts: &ClusterFacts, request: &Request, removal: &str) -> Plan {
    let batches = batches(&request.nodes, request.max_unavailable);
    let mut nodes = Vec::new();
    for batch in &batches {
        for node in batch {
            nodes.push(plan_node(facts, request, node, batch));
        }
    }
    Plan {
        removal: removal.to_string(),
        request: request.clone(),
        batches,
        nodes,
    }
}

/// The plan of `node`, drained together with the nodes of `batch`.
pub fn plan_node(
    facts: &ClusterFacts,
    request: &Request,
    node: &str,
    batch: &[String],
) -> NodePlan {
    let on = |p: &PodInfo, n: &str| p.node.as_deref() == Some(n);
    let in_batch = |p: &PodInfo| p.node.as_ref().is_some_and(|n| batch.contains(n));
    let decide = |p: &PodInfo| {
        let ns = p.pod.namespace.clone();
        classify::classify(p, request.rules, |name: &str| {
            facts.daemonsets.contains(&(ns.clone(), name.to_string()))
        })
    };

    let mut plan = NodePlan {
        node: node.to_string(),
        cordoned: facts.nodes.get(node).copied().unwrap_or(false),
        evict: Vec::new(),
        skip: Vec::new(),
        refuse: Vec::new(),
        budgets: Vec::new(),
        hazards: Vec::new(),
    };
    let mut evicted_here: Vec<&PodInfo> = Vec::new();
    for p in facts.node_pods.iter().filter(|p| on(p, node)) {
        match decide(p) {
            Decision::Evict(notes) => {
                plan.evict.push(PlannedPod::new(p, notes));
                evicted_here.push(p);
            }
            Decision::Skip(r) => plan.skip.push(PlannedPod::new(p, vec![r])),
            Decision::Refuse(r) => plan.refuse.push(PlannedPod::new(p, vec![r])),
        }
    }
    // Evictions of the whole batch (what the budgets must allow at once).
    let evicted_batch: Vec<&PodInfo> = facts
        .node_pods
        .iter()
        .filter(|p| in_batch(p) && matches!(decide(p), Decision::Evict(_)))
        .collect();
    let counts = |p: &PodInfo| !p.phase.finished() && !p.terminating;

    for pdb in &facts.pdbs {
        if !evicted_here.iter().any(|p| counts(p) && pdb.covers(p)) {
            continue;
        }
        let evicted: BTreeSet<&PodRef> = evicted_batch
            .iter()
            .filter(|p| counts(p) && pdb.covers(p))
            .map(|p| &p.pod)
            .collect();
        let evictions = i32::try_from(evicted.len()).unwrap_or(i32::MAX);
        let mut pods: Vec<CoveredPod> = facts
            .all_pods
            .iter()
            .filter(|p| pdb.covers(p))
            .map(|p| CoveredPod {
                pod: p.pod.clone(),
                owner: p.workload.clone(),
                node: p.node.clone(),
                ready: p.ready,
                to_evict: evicted.contains(&p.pod),
            })
            .collect();
        pods.sort_by(|a, b| b.to_evict.cmp(&a.to_evict).then(a.pod.cmp(&b.pod)));
        plan.budgets.push(BudgetCheck {
            pdb: pdb.clone(),
            pods,
            evictions,
            blocks: evictions > pdb.disruptions_allowed,
        });
    }

    // etcd: this node holds a member, and the batch takes quorum away.
    let etcd: Vec<&PodInfo> = facts.all_pods.iter().filter(|p| is_etcd(p)).collect();
    if !request.nodes_stay_up && etcd.iter().any(|p| on(p, node)) {
        let members = etcd.len();
        let healthy = etcd.iter().filter(|p| p.ready).count();
        let healthy_after = etcd.iter().filter(|p| p.ready && !in_batch(p)).count();
        let quorum = members / 2 + 1;
        if healthy_after < quorum {
            plan.hazards.push(Hazard::EtcdQuorum {
                members,
                healthy,
                healthy_after,
                quorum,
            });
        }
    }

    // The last ready replica of a Deployment or StatefulSet.
    let mut workloads: BTreeMap<(String, Owner), usize> = BTreeMap::new();
    for p in evicted_here.iter().filter(|p| counts(p) && p.ready) {
        if let Some(w) = p
            .workload
            .as_ref()
            .filter(|w| w.kind == "Deployment" || w.kind == "StatefulSet")
        {
            *workloads
                .entry((p.pod.namespace.clone(), w.clone()))
                .or_default() += 1;
        }
    }
    for ((namespace, workload), ready_here) in workloads {
        let ready_elsewhere = facts.all_pods.iter().any(|p| {
            p.pod.namespace == namespace
                && p.workload.as_ref() == Some(&workload)
                && p.ready
                && !p.terminating
                && !in_batch(p)
        });
        if !ready_elsewhere {
            plan.hazards.push(Hazard::LastReadyReplica {
                namespace,
                workload,
                ready_here,
            });
        }
    }

    // Primaries.
    if let Some(marker) = &request.primary {
        for p in evicted_here.iter().filter(|p| counts(p) && marker.marks(p)) {
            plan.hazards.push(Hazard::Primary {
                pod: p.pod.clone(),
                owner: p.workload.clone(),
                marker: marker.to_string(),
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{EmptySelector, Phase};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn pod(name: &str, node: &str, app: &str, kind: &str) -> PodInfo {
        PodInfo {
            pod: PodRef {
                namespace: "default".into(),
                name: name.into(),
            },
            uid: format!("uid-{name}"),
            node: Some(node.into()),
            phase: Phase::Active,
            labels: [("app".to_string(), app.to_string())].into(),
            annotations: Default::default(),
            controller: Some(Owner {
                kind: if kind == "Deployment" {
                    "ReplicaSet".into()
                } else {
                    kind.into()
                },
                name: format!("{app}-rs"),
            }),
            workload: Some(Owner {
                kind: kind.into(),
                name: app.into(),
            }),
            ready: true,
            terminating: false,
            empty_dir: false,
        }
    }

    fn etcd(node: &str, ready: bool) -> PodInfo {
        let mut p = pod(&format!("etcd-{node}"), node, "etcd", "Node");
        p.pod.namespace = "kube-system".into();
        p.labels = [("component".to_string(), "etcd".to_string())].into();
        p.annotations = [(crate::facts::MIRROR_ANNOTATION.to_string(), "x".into())].into();
        p.ready = ready;
        p
    }

    fn pdb(
        name: &str,
        app: &str,
        allowed: i32,
        healthy: i32,
        desired: i32,
        expected: i32,
    ) -> PdbInfo {
        PdbInfo {
            pdb: PodRef {
                namespace: "default".into(),
                name: name.into(),
            },
            selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            }),
            empty_selector: Some(EmptySelector::MatchesNothing),
            rule: "minAvailable: 2".into(),
            disruptions_allowed: allowed,
            current_healthy: healthy,
            desired_healthy: desired,
            expected_pods: expected,
        }
    }

    fn facts(pods: Vec<PodInfo>, pdbs: Vec<PdbInfo>, nodes: &[&str]) -> ClusterFacts {
        ClusterFacts {
            nodes: nodes.iter().map(|n| (n.to_string(), false)).collect(),
            node_pods: pods
                .iter()
                .filter(|p| p.node.as_ref().is_some_and(|n| nodes.contains(&n.as_str())))
                .cloned()
                .collect(),
            all_pods: pods,
            pdbs,
            daemonsets: Default::default(),
        }
    }

    fn request(nodes: &[&str]) -> Request {
        Request {
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            max_unavailable: 1,
            ..Default::default()
        }
    }

    #[test]
    fn budgets_block_when_they_allow_fewer_than_the_batch_evicts() {
        let pods = vec![
            pod("web-a", "w1", "web", "Deployment"),
            pod("web-b", "w2", "web", "Deployment"),
            pod("db-a", "w1", "db", "Deployment"),
            pod("db-b", "w2", "db", "Deployment"),
        ];
        let pdbs = vec![
            pdb("web-pdb", "web", 1, 2, 1, 2),
            pdb("db-pdb", "db", 0, 1, 2, 2),
            pdb("other", "other", 0, 0, 0, 0),
        ];
        let f = facts(pods, pdbs, &["w1", "w2"]);
        // One node at a time: web allows its one eviction, db blocks.
        let p = plan(&f, &request(&["w1", "w2"]), "policy/v1beta1");
        assert_eq!(
            p.batches,
            vec![vec!["w1".to_string()], vec!["w2".to_string()]]
        );
        let w1 = &p.nodes[0];
        assert_eq!(w1.evict.len(), 2);
        let names: Vec<_> = w1
            .budgets
            .iter()
            .map(|b| (b.pdb.pdb.name.as_str(), b.blocks))
            .collect();
        assert_eq!(names, vec![("web-pdb", false), ("db-pdb", true)]);
        let db = w1.blockers().next().unwrap();
        assert_eq!(db.pdb.unhealthy(), 1);
        assert_eq!(db.pods.len(), 2);
        assert!(db.pods[0].to_evict && db.pods[0].pod.name == "db-a");
        assert!(p.blocked());
        // Both at once: web needs two disruptions and allows one.
        let mut r = request(&["w1", "w2"]);
        r.max_unavailable = 2;
        let p = plan(&f, &r, "policy/v1");
        assert_eq!(p.batches.len(), 1);
        let web = &p.nodes[0].budgets[0];
        assert_eq!((web.evictions, web.blocks), (2, true));
    }

    #[test]
    fn finished_pods_do_not_count_against_budgets() {
        let mut done = pod("db-job", "w1", "db", "Job");
        done.phase = Phase::Succeeded;
        done.ready = false;
        let f = facts(vec![done], vec![pdb("db-pdb", "db", 0, 0, 0, 0)], &["w1"]);
        let p = plan(&f, &request(&["w1"]), "policy/v1");
        assert_eq!(p.nodes[0].evict.len(), 1);
        assert!(p.nodes[0].budgets.is_empty());
    }

    #[test]
    fn etcd_quorum() {
        let cases = [
            // (ready per control plane, nodes drained at once, hazard on cp1)
            (vec![true], vec!["cp1"], true),
            (vec![true, true, true], vec!["cp1"], false),
            (vec![true, true, false], vec!["cp1"], true),
            (vec![true, true, true], vec!["cp1", "cp2"], true),
            (
                vec![true, true, true, true, true],
                vec!["cp1", "cp2"],
                false,
            ),
        ];
        for (ready, drained, want) in cases {
            let pods: Vec<PodInfo> = ready
                .iter()
                .enumerate()
                .map(|(i, r)| etcd(&format!("cp{}", i + 1), *r))
                .collect();
            let f = facts(pods, vec![], &drained);
            let mut r = request(&drained);
            r.max_unavailable = drained.len();
            let p = plan(&f, &r, "policy/v1");
            let hazard = p.nodes[0]
                .hazards
                .iter()
                .any(|h| matches!(h, Hazard::EtcdQuorum { .. }));
            assert_eq!(hazard, want, "{ready:?} draining {drained:?}");
            // The mirror pod itself is skipped, never evicted.
            assert!(p.nodes[0].evict.is_empty());
            // An upgrade's drain leaves the etcd member running: no hazard.
            r.nodes_stay_up = true;
            let p = plan(&f, &r, "policy/v1");
            assert!(
                p.nodes[0].hazards.is_empty(),
                "{ready:?} draining {drained:?}"
            );
        }
    }

    #[test]
    fn last_ready_replica_and_primary() {
        let mut unready = pod("api-b", "w2", "api", "Deployment");
        unready.ready = false;
        let mut primary = pod("db-0", "w1", "db", "StatefulSet");
        primary.labels.insert("role".into(), "primary".into());
        let pods = vec![
            pod("web-a", "w1", "web", "Deployment"),
            pod("web-b", "w2", "web", "Deployment"),
            pod("api-a", "w1", "api", "Deployment"),
            unready,
            primary,
            pod("db-1", "w2", "db", "StatefulSet"),
            pod("solo", "w1", "solo", "ReplicationController"),
        ];
        let f = facts(pods, vec![], &["w1"]);
        let mut r = request(&["w1"]);
        r.primary = Some(PrimaryMarker {
            key: "role".into(),
            value: Some("primary".into()),
        });
        let p = plan(&f, &r, "policy/v1");
        let hazards = &p.nodes[0].hazards;
        assert_eq!(hazards.len(), 2, "{hazards:#?}");
        assert!(
            matches!(&hazards[0], Hazard::LastReadyReplica { workload, .. } if workload.name == "api")
        );
        assert!(matches!(&hazards[1], Hazard::Primary { pod, .. } if pod.name == "db-0"));
        // Without a marker, no primary; a wrong value marks nothing.
        r.primary = Some(PrimaryMarker {
            key: "role".into(),
            value: Some("replica".into()),
        });
        assert_eq!(plan(&f, &r, "policy/v1").nodes[0].hazards.len(), 1);
    }

    #[test]
    fn refusals_and_skips_carry_reasons_and_the_plan_serialises() {
        let mut bare = pod("bare", "w1", "bare", "Deployment");
        bare.controller = None;
        bare.workload = None;
        let ds = pod("agent-x", "w1", "agent", "DaemonSet");
        let mut f = facts(vec![bare, ds], vec![], &["w1"]);
        f.daemonsets.insert(("default".into(), "agent-rs".into()));
        let p = plan(&f, &request(&["w1"]), "policy/v1beta1");
        assert!(p.refused());
        assert_eq!(p.nodes[0].refuse.len(), 2);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["nodes"][0]["refuse"][0]["name"], "bare");
        assert_eq!(v["nodes"][0]["refuse"][0]["reasons"][0], "unmanaged");
        assert_eq!(v["nodes"][0]["refuse"][1]["reasons"][0], "daemon-set");
        assert_eq!(v["removal"], "policy/v1beta1");
        let mut r = request(&["w1"]);
        r.rules.ignore_daemonsets = true;
        r.rules.force = true;
        let p = plan(&f, &r, "policy/v1beta1");
        assert!(!p.refused());
        assert_eq!(p.nodes[0].skip[0].reasons, vec![Reason::DaemonSet]);
        assert_eq!(p.nodes[0].evict[0].reasons, vec![Reason::Unmanaged]);
    }
}

//! The API part: discovery of the Eviction and PodDisruptionBudget versions, the facts
//! a plan reads, cordon and uncordon, eviction and deletion of one pod, and the pods
//! still on a node.
//!
//! The client should be built with kube's default retry off (`Config::default_retry =
//! false`): that retry repeats a 429 inside the client for minutes, which is exactly
//! the silent wait on a PodDisruptionBudget that this crate reports instead.

use std::collections::{BTreeMap, BTreeSet};

use http::Request;
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::facts::{ClusterFacts, EmptySelector, Owner, PdbInfo, PodInfo, PodRef};

/// The `policy` version of the Eviction objects the server takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyVersion {
    /// `policy/v1` (Kubernetes 1.21 and later for PDBs, 1.22 for evictions).
    #[serde(rename = "policy/v1")]
    V1,
    /// `policy/v1beta1` (1.20 and earlier; removed in 1.25).
    #[serde(rename = "policy/v1beta1")]
    V1beta1,
}

impl PolicyVersion {
    /// `policy/v1` or `policy/v1beta1`.
    pub fn api_version(self) -> &'static str {
        match self {
            PolicyVersion::V1 => "policy/v1",
            PolicyVersion::V1beta1 => "policy/v1beta1",
        }
    }
    fn parse(v: &str) -> Option<PolicyVersion> {
        match v {
            "v1" => Some(PolicyVersion::V1),
            "v1beta1" => Some(PolicyVersion::V1beta1),
            _ => None,
        }
    }
}

/// What API discovery says about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discovery {
    /// The version of Eviction that `pods/eviction` takes, if the server serves it.
    pub eviction: Option<PolicyVersion>,
    /// The version PodDisruptionBudgets are read with, if the server serves them.
    pub pdb: Option<PolicyVersion>,
}

/// Asks the server which `policy` versions it serves, as kubectl does: the group/version
/// that `/api/v1` declares for the `pods/eviction` subresource, and the versions of the
/// `policy` group (v1 preferred) for PodDisruptionBudgets.
pub async fn discover(client: &kube::Client) -> Result<Discovery> {
    let groups = client
        .list_api_groups()
        .await
        .map_err(Error::api("API discovery (/apis)"))?;
    let policy: Vec<PolicyVersion> = groups
        .groups
        .iter()
        .filter(|g| g.name == "policy")
        .flat_map(|g| g.versions.iter())
        .filter_map(|v| PolicyVersion::parse(&v.version))
        .collect();
    let pdb = [PolicyVersion::V1, PolicyVersion::V1beta1]
        .into_iter()
        .find(|v| policy.contains(v));
    let core = client
        .list_core_api_resources("v1")
        .await
        .map_err(Error::api("API discovery (/api/v1)"))?;
    let eviction = core
        .resources
        .iter()
        .find(|r| r.name == "pods/eviction")
        .map(|r| {
            match (r.group.as_deref(), r.version.as_deref()) {
                (Some("policy"), Some(v)) => PolicyVersion::parse(v),
                _ => None,
            }
            // Servers that do not say: the policy group's preferred version.
            .or(pdb)
            .unwrap_or(PolicyVersion::V1beta1)
        });
    Ok(Discovery { eviction, pdb })
}

/// Whether each node exists and is cordoned (`spec.unschedulable`).
pub async fn nodes(client: &kube::Client, names: &[String]) -> Result<BTreeMap<String, bool>> {
    let api: Api<Node> = Api::all(client.clone());
    let mut out = BTreeMap::new();
    for name in names {
        let node = api
            .get_opt(name)
            .await
            .map_err(Error::api(format!("reading node {name}")))?
            .ok_or_else(|| Error::NodeNotFound { node: name.clone() })?;
        let cordoned = node.spec.and_then(|s| s.unschedulable).unwrap_or(false);
        out.insert(name.clone(), cordoned);
    }
    Ok(out)
}

/// Reads every fact the plan of draining `nodes` needs.
pub async fn gather(
    client: &kube::Client,
    discovery: &Discovery,
    nodes: &[String],
    pod_selector: Option<&str>,
) -> Result<ClusterFacts> {
    let node_state = self::nodes(client, nodes).await?;
    let rs: Api<ReplicaSet> = Api::all(client.clone());
    let workload_of: BTreeMap<(String, String), Owner> = rs
        .list(&ListParams::default())
        .await
        .map_err(Error::api("listing ReplicaSets"))?
        .items
        .iter()
        .filter_map(|r| {
            let owner = r
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))?;
            Some((
                (
                    r.metadata.namespace.clone().unwrap_or_default(),
                    r.metadata.name.clone().unwrap_or_default(),
                ),
                Owner {
                    kind: owner.kind.clone(),
                    name: owner.name.clone(),
                },
            ))
        })
        .collect();
    let pods: Api<Pod> = Api::all(client.clone());
    let all_pods: Vec<PodInfo> = pods
        .list(&ListParams::default())
        .await
        .map_err(Error::api("listing pods"))?
        .items
        .iter()
        .map(|p| PodInfo::from_pod(p, &workload_of))
        .collect();
    let node_pods = match pod_selector {
        None => all_pods
            .iter()
            .filter(|p| p.node.as_ref().is_some_and(|n| node_state.contains_key(n)))
            .cloned()
            .collect(),
        Some(selector) => {
            let mut out = Vec::new();
            for node in nodes {
                let lp = ListParams::default()
                    .fields(&format!("spec.nodeName={node}"))
                    .labels(selector);
                let list = pods.list(&lp).await.map_err(|e| match e {
                    kube::Error::Api(s) if s.code == 400 => Error::BadSelector {
                        selector: selector.to_string(),
                        message: s.message,
                    },
                    e => Error::Api {
                        action: format!("listing pods on {node}"),
                        source: e,
                    },
                })?;
                out.extend(
                    list.items
                        .iter()
                        .map(|p| PodInfo::from_pod(p, &workload_of)),
                );
            }
            out
        }
    };
    let pdbs = match discovery.pdb {
        Some(v) => list_pdbs(client, v).await?,
        None => Vec::new(),
    };
    let ds: Api<DaemonSet> = Api::all(client.clone());
    let daemonsets: BTreeSet<(String, String)> = ds
        .list_metadata(&ListParams::default())
        .await
        .map_err(Error::api("listing DaemonSets"))?
        .items
        .iter()
        .map(|d| {
            (
                d.metadata.namespace.clone().unwrap_or_default(),
                d.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    Ok(ClusterFacts {
        nodes: node_state,
        node_pods,
        all_pods,
        pdbs,
        daemonsets,
    })
}

fn empty_selector(v: PolicyVersion) -> EmptySelector {
    match v {
        PolicyVersion::V1 => EmptySelector::MatchesAll,
        PolicyVersion::V1beta1 => EmptySelector::MatchesNothing,
    }
}

/// Every PodDisruptionBudget, read with `version`.
pub async fn list_pdbs(client: &kube::Client, version: PolicyVersion) -> Result<Vec<PdbInfo>> {
    let url = format!("/apis/{}/poddisruptionbudgets", version.api_version());
    let req = Request::get(url).body(Vec::new()).map_err(|e| Error::Api {
        action: "listing PodDisruptionBudgets".into(),
        source: kube::Error::HttpError(e),
    })?;
    let list: serde_json::Value = client
        .request(req)
        .await
        .map_err(Error::api("listing PodDisruptionBudgets"))?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| PdbInfo::from_json(p, empty_selector(version)))
        .collect())
}

/// One PodDisruptionBudget as it is now (`None` if it is gone).
pub async fn get_pdb(
    client: &kube::Client,
    version: PolicyVersion,
    pdb: &PodRef,
) -> Result<Option<PdbInfo>> {
    let url = format!(
        "/apis/{}/namespaces/{}/poddisruptionbudgets/{}",
        version.api_version(),
        pdb.namespace,
        pdb.name
    );
    let action = format!("reading PodDisruptionBudget {pdb}");
    let req = Request::get(url).body(Vec::new()).map_err(|e| Error::Api {
        action: action.clone(),
        source: kube::Error::HttpError(e),
    })?;
    match client.request::<serde_json::Value>(req).await {
        Ok(v) => Ok(Some(PdbInfo::from_json(&v, empty_selector(version)))),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(Error::Api { action, source: e }),
    }
}

/// Sets `spec.unschedulable` of `node`; returns whether it changed.
pub async fn set_unschedulable(client: &kube::Client, node: &str, on: bool) -> Result<bool> {
    let api: Api<Node> = Api::all(client.clone());
    let verb = if on { "cordoning" } else { "uncordoning" };
    let current = api
        .get_opt(node)
        .await
        .map_err(Error::api(format!("{verb} {node}")))?
        .ok_or_else(|| Error::NodeNotFound {
            node: node.to_string(),
        })?;
    if current.spec.and_then(|s| s.unschedulable).unwrap_or(false) == on {
        return Ok(false);
    }
    // `null` removes the field, as `kubectl uncordon` leaves it.
    let value = if on { json!(true) } else { json!(null) };
    api.patch(
        node,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"unschedulable": value}})),
    )
    .await
    .map_err(Error::api(format!("{verb} {node}")))?;
    Ok(true)
}

/// What the server said to one eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evicted {
    /// Accepted: the pod is being deleted.
    Accepted,
    /// The pod is already gone (404).
    Gone,
    /// 429: not now. `budget` is the PodDisruptionBudget the server named, if any.
    TooManyRequests {
        /// The budget named in the answer.
        budget: Option<String>,
        /// The server's message.
        message: String,
    },
}

/// The name of the budget in a 429's causes or message ("The disruption budget NAME
/// needs ...").
fn budget_in(status: &kube::core::Status) -> Option<String> {
    let from = |text: &str| {
        text.split("disruption budget ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|n| n.trim_end_matches(['.', ',']).to_string())
            .filter(|n| !n.is_empty())
    };
    status
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .find_map(|c| from(&c.message))
        .or_else(|| from(&status.message).filter(|n| n != "and" && n != "or"))
}

/// POSTs an Eviction of `version` for `pod` (with its UID as a precondition where the
/// version has them, and `grace_period` seconds if given).
pub async fn evict(
    client: &kube::Client,
    version: PolicyVersion,
    pod: &PodRef,
    grace_period: Option<i64>,
) -> Result<Evicted> {
    let mut delete_options = serde_json::Map::new();
    if let Some(g) = grace_period {
        delete_options.insert("gracePeriodSeconds".into(), json!(g));
    }
    let body = json!({
        "apiVersion": version.api_version(),
        "kind": "Eviction",
        "metadata": {"name": pod.name, "namespace": pod.namespace},
        "deleteOptions": delete_options,
    });
    let url = format!(
        "/api/v1/namespaces/{}/pods/{}/eviction",
        pod.namespace, pod.name
    );
    let req = Request::post(url)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .map_err(|e| Error::Remove {
            pod: pod.clone(),
            source: kube::Error::HttpError(e),
        })?;
    match client.request_text(req).await {
        Ok(_) => Ok(Evicted::Accepted),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Evicted::Gone),
        Err(kube::Error::Api(s)) if s.code == 429 => Ok(Evicted::TooManyRequests {
            budget: budget_in(&s),
            message: s.message.clone(),
        }),
        Err(e) => Err(Error::Remove {
            pod: pod.clone(),
            source: e,
        }),
    }
}

/// Deletes `pod` outright (no budget consulted); `Ok(false)` if it was already gone.
pub async fn delete(
    client: &kube::Client,
    pod: &PodRef,
    grace_period: Option<i64>,
) -> Result<bool> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let dp = DeleteParams {
        grace_period_seconds: grace_period.and_then(|g| u32::try_from(g).ok()),
        ..Default::default()
    };
    match api.delete(&pod.name, &dp).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(Error::Remove {
            pod: pod.clone(),
            source: e,
        }),
    }
}

/// The (pod, UID) pairs bound to `node` now: one LIST, whatever the number of pods.
pub async fn pods_on(client: &kube::Client, node: &str) -> Result<BTreeSet<(PodRef, String)>> {
    let api: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    Ok(api
        .list_metadata(&lp)
        .await
        .map_err(Error::api(format!("listing pods on {node}")))?
        .items
        .into_iter()
        .map(|p| {
            (
                PodRef {
                    namespace: p.metadata.namespace.unwrap_or_default(),
                    name: p.metadata.name.unwrap_or_default(),
                },
                p.metadata.uid.unwrap_or_default(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_named_in_a_429() {
        let s: kube::core::Status = serde_json::from_value(json!({
            "kind": "Status", "status": "Failure", "code": 429, "reason": "TooManyRequests",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget db-pdb needs 2 healthy pods and has 2 currently"}]},
        }))
        .unwrap();
        assert_eq!(budget_in(&s).as_deref(), Some("db-pdb"));
        let s: kube::core::Status = serde_json::from_value(json!({
            "kind": "Status", "code": 429,
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        }))
        .unwrap();
        assert_eq!(budget_in(&s), None);
    }
}

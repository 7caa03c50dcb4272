//! The facts of an upgrade plan, read from the API: nodes and their roles, the control
//! plane's versions (from [`Versions`]), and the deprecated APIs each apiserver has
//! served (its `apiserver_requested_deprecated_apis` metric).

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;

use crate::plan::{
    Budget, DeprecatedCall, DrainHazard, DrainRefusal, Instance, NodeFacts, PlanFacts, PodRef,
};
use crate::versions::{Component, Versions, apiserver_urls, instance_client, node_of_ip};

/// The labels that mark a control-plane node (`master` before 1.24).
pub const CONTROL_PLANE_LABELS: [&str; 2] = [
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

/// Reads the plan's facts; `v` gives the versions (and the nodes' packages when read).
pub async fn gather(config: &kube::Config, v: &Versions) -> Result<PlanFacts, crate::Error> {
    let client = kube::Client::try_from(config.clone())?;
    let listed = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let node_of_ip = node_of_ip(&listed);
    let mut nodes = Vec::new();
    for n in listed {
        let name = n.metadata.name.clone().unwrap_or_default();
        let labels = n.metadata.labels.clone().unwrap_or_default();
        let status = n.status.clone().unwrap_or_default();
        let Some(kubelet) = status
            .node_info
            .as_ref()
            .and_then(|i| kastellan_policy::Version::parse(&i.kubelet_version).ok())
        else {
            continue;
        };
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let packages = v.nodes.iter().find(|p| p.node == name && p.error.is_none());
        nodes.push(NodeFacts {
            control_plane: CONTROL_PLANE_LABELS.iter().any(|l| labels.contains_key(*l)),
            kubelet,
            ready,
            unschedulable: n.spec.and_then(|s| s.unschedulable).unwrap_or(false),
            manager: packages.and_then(|p| p.manager.clone()),
            repository: packages.and_then(|p| p.repositories.first().cloned()),
            name,
        });
    }
    // Control planes first, each group by name.
    nodes.sort_by(|a, b| (!a.control_plane, &a.name).cmp(&(!b.control_plane, &b.name)));

    let instance = |c: Component| -> Vec<Instance> {
        v.found
            .iter()
            .filter(|f| f.component == c)
            .filter_map(|f| {
                Some(Instance {
                    component: c.name().to_string(),
                    node: f.instance.clone(),
                    version: f.version.clone()?,
                })
            })
            .collect()
    };
    let apiservers = instance(Component::KubeApiserver);
    let mut control_plane = instance(Component::KubeControllerManager);
    control_plane.extend(instance(Component::KubeScheduler));

    // What each apiserver has served of the deprecated APIs since it started.
    let mut deprecated_calls = Vec::new();
    for (ip, url) in apiserver_urls(&client, config).await? {
        let apiserver = node_of_ip.get(&ip).cloned().unwrap_or_else(|| url.clone());
        let body = match instance_client(config, &url) {
            Ok(c) => {
                let req = http::Request::get("/metrics").body(Vec::new());
                match req {
                    Ok(r) => c.request_text(r).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e),
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("{url}/metrics: {e}");
                continue;
            }
        };
        deprecated_calls.extend(deprecated(&apiserver, &body));
    }
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let (drain_refusals, drain_hazards) = drain_judgements(&client, &names).await?;
    Ok(PlanFacts {
        nodes,
        apiservers,
        control_plane,
        drain_refusals,
        drain_hazards,
        budgets: budgets(&client).await?,
        deprecated_calls,
        stored: None,
        stored_unread: None,
        health: None,
        etcd_backup_room: Vec::new(),
    })
}

/// The pods that kubectl's rules refuse to evict, node by node, as the upgrade's own
/// drain judges them (DaemonSet pods left in place, emptyDir data not deleted, no
/// force), and the hazards each drain meets alone (a workload's last ready replicas,
/// a primary): each stops `upgrade apply` at that node's drain.
pub async fn drain_judgements(
    client: &kube::Client,
    nodes: &[String],
) -> Result<(Vec<DrainRefusal>, Vec<DrainHazard>), crate::Error> {
    use kastellan_drain::classify::Rules;
    let discovery = kastellan_drain::api::discover(client).await?;
    let facts = kastellan_drain::api::gather(client, &discovery, nodes, None).await?;
    let request = kastellan_drain::plan::Request {
        nodes: nodes.to_vec(),
        rules: Rules {
            ignore_daemonsets: true,
            delete_emptydir_data: false,
            force: false,
        },
        max_unavailable: 1,
        nodes_stay_up: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut hazards = Vec::new();
    for node in nodes {
        let plan =
            kastellan_drain::plan::plan_node(&facts, &request, node, std::slice::from_ref(node));
        hazards.extend(plan.hazards.iter().map(|h| DrainHazard {
            node: node.clone(),
            hazard: h.describe(),
        }));
        for p in plan.refuse {
            out.push(DrainRefusal {
                node: node.clone(),
                pod: p.pod.to_string(),
                reason: p
                    .reasons
                    .first()
                    .map(|r| r.describe())
                    .unwrap_or("refused")
                    .into(),
                local_storage: p
                    .reasons
                    .contains(&kastellan_drain::classify::Reason::LocalStorage),
            });
        }
    }
    Ok((out, hazards))
}

/// Every PodDisruptionBudget with the pods it covers and their nodes (read with the
/// `policy` version the server serves, as the drain reads them).
pub async fn budgets(client: &kube::Client) -> Result<Vec<Budget>, crate::Error> {
    let discovery = kastellan_drain::api::discover(client).await?;
    let facts = kastellan_drain::api::gather(client, &discovery, &[], None).await?;
    Ok(facts
        .pdbs
        .iter()
        .map(|b| Budget {
            name: b.pdb.to_string(),
            allowed: b.disruptions_allowed,
            healthy: b.current_healthy,
            desired: b.desired_healthy,
            pods: facts
                .all_pods
                .iter()
                .filter(|p| b.covers(p))
                .filter_map(|p| {
                    Some(PodRef {
                        name: p.pod.to_string(),
                        node: p.node.clone()?,
                    })
                })
                .collect(),
        })
        .collect())
}

/// The deprecated APIs an apiserver's metrics show it has served.
pub fn deprecated(apiserver: &str, metrics: &str) -> Vec<DeprecatedCall> {
    kastellan_health::parse::prometheus_text(metrics)
        .into_iter()
        .filter(|s| s.name == "apiserver_requested_deprecated_apis" && s.value > 0.0)
        .map(|s| {
            let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            DeprecatedCall {
                apiserver: apiserver.to_string(),
                group: l("group"),
                version: l("version"),
                resource: l("resource"),
                removed_release: l("removed_release"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deprecated_calls_from_the_metric() {
        let body = "# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested, broken out by API group, version, resource, subresource, and removed_release.\n\
# TYPE apiserver_requested_deprecated_apis gauge\n\
apiserver_requested_deprecated_apis{group=\"extensions\",removed_release=\"1.22\",resource=\"ingresses\",subresource=\"\",version=\"v1beta1\"} 1\n\
apiserver_requested_deprecated_apis{group=\"policy\",removed_release=\"1.25\",resource=\"podsecuritypolicies\",subresource=\"\",version=\"v1beta1\"} 0\n\
apiserver_request_total{code=\"200\"} 5\n";
        let calls = deprecated("cp1", body);
        assert_eq!(
            calls,
            [DeprecatedCall {
                apiserver: "cp1".into(),
                group: "extensions".into(),
                version: "v1beta1".into(),
                resource: "ingresses".into(),
                removed_release: "1.22".into(),
            }]
        );
    }
}

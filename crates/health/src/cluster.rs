//! Cluster-wide status: what the API shows, merged with each node's local report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kastellan_access::{NodeAccess, NodeCommand};
use kube::api::{Api, ListParams};

use crate::quorum::{self, EtcdMember};
use crate::{Check, Error, Result, Source, State, StatusReport};

/// How per-node reports are gathered: `kastellan status --local -o json` runs on each
/// node through node access (the lab's namespaces, ssh, ...), and its JSON is read back.
#[derive(Debug, Clone)]
pub struct NodeReports {
    /// How the nodes are reached.
    pub access: Arc<dyn NodeAccess>,
    /// The kastellan binary on the nodes (a path or a name the node's PATH finds).
    pub kastellan: String,
}

impl NodeReports {
    /// A label for reports: `lab`, `ssh` or `local`.
    pub fn label(&self) -> &'static str {
        self.access.kind().label()
    }

    /// The command that prints `node`'s local report (pure).
    pub fn command(&self, node: &str, timeout: Duration) -> NodeCommand {
        NodeCommand::new([
            self.kastellan.clone(),
            "status".into(),
            "--local".into(),
            "--node".into(),
            node.to_string(),
            "--probe-timeout".into(),
            format!("{}", timeout.as_secs().max(1)),
            "-o".into(),
            "json".into(),
        ])
        // Every probe of the node has `timeout`; the connection has its own.
        .timeout(timeout * 3 + Duration::from_secs(5))
    }

    /// Gathers one node's local report (the command runs on a blocking thread).
    pub async fn gather(&self, node: &str, timeout: Duration) -> Result<StatusReport> {
        let cmd = self.command(node, timeout);
        let access = Arc::clone(&self.access);
        let name = node.to_string();
        let out = tokio::task::spawn_blocking(move || access.run(&name, &cmd))
            .await
            .map_err(|e| Error::Node {
                node: node.into(),
                message: format!("running {}: {e}", self.label()),
            })?
            .map_err(|e| Error::Node {
                node: node.into(),
                message: e.to_string(),
            })?;
        serde_json::from_slice::<StatusReport>(&out.stdout).map_err(|e| Error::Node {
            node: node.into(),
            message: format!(
                "no report ({}): {}",
                e,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
            ),
        })
    }
}

/// Why a Node is not Ready, in plain words, from its conditions: the kubelet gone
/// silent (and since when), no network plugin yet, resource pressure, its network not
/// set up; else the kubelet's own reason and message.
pub fn not_ready(
    conds: &[k8s_openapi::api::core::v1::NodeCondition],
    now: jiff::Timestamp,
) -> String {
    let Some(ready) = conds.iter().find(|c| c.type_ == "Ready") else {
        return "no Ready condition: the kubelet never reported".into();
    };
    let reason = ready.reason.clone().unwrap_or_default();
    let message = ready.message.clone().unwrap_or_default();
    let mut why: Vec<String> = Vec::new();
    if ready.status == "Unknown" || reason == "NodeStatusUnknown" {
        let since = ready
            .last_heartbeat_time
            .as_ref()
            .map(|t| {
                let secs = now.as_second() - t.0.as_second();
                format!(" since {} ({secs}s ago)", t.0)
            })
            .unwrap_or_default();
        why.push(format!(
            "the kubelet has not posted its status{since}: it is stopped, hung, or cut off \
             from the API"
        ));
    }
    let lower = message.to_lowercase();
    if lower.contains("network plugin") || lower.contains("cni") {
        why.push(
            "no network plugin (CNI) is ready: nodes stay NotReady until one is installed".into(),
        );
    }
    for c in conds.iter().filter(|c| c.status == "True") {
        let plain = match c.type_.as_str() {
            "MemoryPressure" => "memory pressure",
            "DiskPressure" => "disk pressure",
            "PIDPressure" => "PID pressure (too many processes)",
            "NetworkUnavailable" => "its network is not set up (NetworkUnavailable)",
            _ => continue,
        };
        why.push(plain.to_string());
    }
    if why.is_empty() {
        why.push(format!("Ready={} {reason}: {message}", ready.status));
    }
    format!("NotReady: {}", why.join("; "))
}

/// A node as the API lists it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Name.
    pub name: String,
    /// Whether it carries a control-plane role label.
    pub control_plane: bool,
}

/// The API's view: apiserver health through the kubeconfig, Nodes, control-plane static
/// pods, leader Leases. Every call has `timeout`; a call that fails becomes a `down`
/// check instead of an error, so a control plane without etcd quorum is still reported.
/// Returns the checks and the nodes (`None` when they could not be listed).
pub async fn api_checks(
    client: &kube::Client,
    now: jiff::Timestamp,
    timeout: Duration,
) -> (Vec<Check>, Option<Vec<NodeInfo>>) {
    let mut checks = api_health(client, timeout).await;
    match tokio::time::timeout(timeout * 2, api_objects(client, now)).await {
        Ok(Ok((c, nodes))) => {
            checks.extend(c);
            (checks, Some(nodes))
        }
        Ok(Err(e)) => {
            checks.push(api_failure(&e.to_string()));
            (checks, None)
        }
        Err(_) => {
            checks.push(api_failure(&format!("no answer within {:?}", timeout * 2)));
            (checks, None)
        }
    }
}

fn api_failure(detail: &str) -> Check {
    Check {
        node: "cluster".into(),
        component: "kube-apiserver".into(),
        endpoint: "kubeconfig: list Nodes, Pods, Leases".into(),
        source: Source::Api,
        state: State::Down,
        latency_ms: None,
        detail: detail.to_string(),
        failing: Vec::new(),
    }
}

async fn api_health(client: &kube::Client, timeout: Duration) -> Vec<Check> {
    let mut checks = Vec::new();
    for path in ["/livez?verbose", "/readyz?verbose"] {
        let start = std::time::Instant::now();
        let req = http_get(path);
        let r = tokio::time::timeout(timeout, client.request_text(req)).await;
        let latency = Some(start.elapsed().as_millis() as u64);
        let (state, detail, failing) = match r {
            Err(_) => (
                State::Down,
                format!("no answer within {timeout:?}"),
                Vec::new(),
            ),
            Ok(r) => match r {
                Ok(body) => {
                    let failing = crate::parse::failing_checks(&body);
                    if failing.is_empty() {
                        (
                            State::Up,
                            body.lines().last().unwrap_or("ok").trim().to_string(),
                            failing,
                        )
                    } else {
                        (
                            State::Down,
                            format!("failing: {}", failing.join(", ")),
                            failing,
                        )
                    }
                }
                Err(kube::Error::Api(s)) => {
                    let failing = crate::parse::failing_checks(&s.message);
                    (
                        State::Down,
                        format!(
                            "HTTP {}: {}",
                            s.code,
                            s.message.lines().last().unwrap_or("").trim()
                        ),
                        failing,
                    )
                }
                Err(e) => (State::Down, e.to_string(), Vec::new()),
            },
        };
        checks.push(Check {
            node: "cluster".into(),
            component: "kube-apiserver".into(),
            endpoint: format!("kubeconfig {path}"),
            source: Source::Api,
            state,
            latency_ms: latency,
            detail,
            failing,
        });
    }
    checks
}

async fn api_objects(
    client: &kube::Client,
    now: jiff::Timestamp,
) -> Result<(Vec<Check>, Vec<NodeInfo>)> {
    let mut checks = Vec::new();

    let nodes_api: Api<Node> = Api::all(client.clone());
    let nodes = nodes_api.list(&ListParams::default()).await?;
    let mut infos = Vec::new();
    for n in &nodes.items {
        let name = n.metadata.name.clone().unwrap_or_default();
        let labels = n.metadata.labels.clone().unwrap_or_default();
        let control_plane = labels.contains_key("node-role.kubernetes.io/control-plane")
            || labels.contains_key("node-role.kubernetes.io/master");
        infos.push(NodeInfo {
            name: name.clone(),
            control_plane,
        });
        let status = n.status.clone().unwrap_or_default();
        let conds = status.conditions.unwrap_or_default();
        let ready = conds.iter().find(|c| c.type_ == "Ready");
        let pressure: Vec<String> = conds
            .iter()
            .filter(|c| c.type_ != "Ready" && c.status == "True")
            .map(|c| c.type_.clone())
            .collect();
        let version = status
            .node_info
            .map(|i| i.kubelet_version)
            .unwrap_or_default();
        let (state, detail) = match ready {
            Some(c) if c.status == "True" && pressure.is_empty() => {
                (State::Up, format!("Ready, kubelet {version}"))
            }
            Some(c) if c.status == "True" => (
                State::Degraded,
                format!("Ready but {}", pressure.join(", ")),
            ),
            Some(_) => (State::Down, not_ready(&conds, now)),
            None => (State::Unknown, "no Ready condition".into()),
        };
        checks.push(Check {
            node: name.clone(),
            component: "node".into(),
            endpoint: format!("Node/{name}"),
            source: Source::Api,
            state,
            latency_ms: None,
            detail,
            failing: Vec::new(),
        });
    }

    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let list = pods
        .list(&ListParams::default().labels("tier=control-plane"))
        .await?;
    for p in list.items {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        let component = labels
            .get("component")
            .cloned()
            .unwrap_or_else(|| "static-pod".into());
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let status = p.status.clone().unwrap_or_default();
        let phase = status.phase.unwrap_or_default();
        let ready = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let restarts: i32 = status
            .container_statuses
            .unwrap_or_default()
            .iter()
            .map(|c| c.restart_count)
            .sum();
        let state = if ready { State::Up } else { State::Down };
        checks.push(Check {
            node,
            component: format!("pod/{component}"),
            endpoint: format!("Pod/kube-system/{}", p.metadata.name.unwrap_or_default()),
            source: Source::Api,
            state,
            latency_ms: None,
            detail: format!(
                "{phase}, {}ready, {restarts} restarts",
                if ready { "" } else { "not " }
            ),
            failing: Vec::new(),
        });
    }

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    for name in ["kube-controller-manager", "kube-scheduler"] {
        let check = match leases.get_opt(name).await? {
            Some(l) => lease_check(name, &l, now),
            None => Check {
                node: "cluster".into(),
                component: format!("lease/{name}"),
                endpoint: format!("Lease/kube-system/{name}"),
                source: Source::Api,
                state: State::Down,
                latency_ms: None,
                detail: "no leader Lease: no leader was ever elected".into(),
                failing: Vec::new(),
            },
        };
        checks.push(check);
    }
    Ok((checks, infos))
}

fn http_get(path: &str) -> http::Request<Vec<u8>> {
    let mut req = http::Request::new(Vec::new());
    *req.uri_mut() = path.parse().unwrap_or_default();
    req
}

/// Judges a leader-election Lease: stale when not renewed within its duration.
pub fn lease_check(name: &str, l: &Lease, now: jiff::Timestamp) -> Check {
    let spec = l.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let holder_node = holder.split('_').next().unwrap_or("").to_string();
    let duration = spec.lease_duration_seconds.unwrap_or(15) as i64;
    let renewed = spec.renew_time.as_ref().map(|t| t.0);
    let transitions = spec.lease_transitions.unwrap_or(0);
    let (state, detail) = match renewed {
        Some(t) => {
            let age = now.duration_since(t).as_secs();
            if age > duration {
                (
                    State::Down,
                    format!("STALE: held by {holder}, last renewed {age}s ago (lease {duration}s)"),
                )
            } else {
                (
                    State::Up,
                    format!(
                        "held by {holder}, renewed {age}s ago (lease {duration}s, {transitions} transitions)"
                    ),
                )
            }
        }
        None => (State::Down, format!("held by {holder}, never renewed")),
    };
    Check {
        node: "cluster".into(),
        component: format!("lease/{name}"),
        endpoint: format!("Lease/kube-system/{name} holder={holder_node}"),
        source: Source::Api,
        state,
        latency_ms: None,
        detail,
        failing: Vec::new(),
    }
}

/// The node holding a leader Lease, as [`lease_check`] names it in the check's
/// endpoint (`None` for other checks, or a Lease nobody holds).
pub fn lease_holder(check: &Check) -> Option<&str> {
    if !check.component.starts_with("lease/") {
        return None;
    }
    check
        .endpoint
        .rsplit_once(" holder=")
        .map(|(_, h)| h)
        .filter(|h| !h.is_empty())
}

/// Merges the API's view with per-node local reports (gathered through `access`, or
/// none) into one report.
pub fn merge(
    api: Vec<Check>,
    nodes: &[NodeInfo],
    local: BTreeMap<String, std::result::Result<StatusReport, String>>,
    access: Option<&NodeReports>,
) -> StatusReport {
    let mut checks = api;
    let mut warnings = Vec::new();
    // Every control-plane node should show its static pods in the API (mirror pods).
    let stacked = checks.iter().any(|c| c.component == "pod/etcd");
    let mut expected = vec![
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ];
    if stacked {
        expected.push("etcd");
    }
    let api_listed = checks
        .iter()
        .any(|c| c.source == Source::Api && c.component == "node");
    for n in nodes.iter().filter(|n| n.control_plane && api_listed) {
        for comp in &expected {
            let component = format!("pod/{comp}");
            if !checks
                .iter()
                .any(|c| c.node == n.name && c.component == component)
            {
                checks.push(Check {
                    node: n.name.clone(),
                    component,
                    endpoint: format!("Pod/kube-system/{comp}-{}", n.name),
                    source: Source::Api,
                    state: State::Down,
                    latency_ms: None,
                    detail: "no such static pod on this control-plane node".into(),
                    failing: Vec::new(),
                });
            }
        }
    }
    let mut members: Vec<EtcdMember> = Vec::new();
    let mut certificates = Vec::new();
    let etcd_nodes: Vec<String> = checks
        .iter()
        .filter(|c| c.component == "pod/etcd")
        .map(|c| c.node.clone())
        .collect();
    // The etcd v3 view: from the node whose survey saw the most healthy members.
    let best = local
        .iter()
        .filter_map(|(n, r)| {
            r.as_ref()
                .ok()
                .and_then(|rep| rep.etcd.as_ref())
                .map(|q| (n.clone(), q.clone()))
        })
        .max_by_key(|(_, q)| (q.healthy, q.members));
    for (node, r) in local {
        match r {
            Ok(rep) => {
                for mut c in rep.checks {
                    if c.source == Source::EtcdApi {
                        // Member rows name their member; one node's view is enough.
                        if best.as_ref().is_some_and(|(b, _)| *b == node) {
                            checks.push(c);
                        }
                        continue;
                    }
                    c.node = node.clone();
                    checks.push(c);
                }
                certificates.extend(rep.certificates.into_iter().map(|c| crate::CertExpiry {
                    node: node.clone(),
                    ..c
                }));
                if let Some(m) = rep.etcd_member {
                    members.push(EtcdMember {
                        name: node.clone(),
                        ..m
                    });
                }
            }
            Err(e) => {
                checks.push(Check {
                    node: node.clone(),
                    component: "node-access".into(),
                    endpoint: access.map_or("none", NodeReports::label).into(),
                    source: Source::Derived,
                    state: State::Unknown,
                    latency_ms: None,
                    detail: e,
                    failing: Vec::new(),
                });
                if etcd_nodes.contains(&node) {
                    members.push(EtcdMember {
                        name: node.clone(),
                        healthy: false,
                        ..Default::default()
                    });
                }
            }
        }
    }
    if access.is_none() {
        warnings.push("local endpoints not probed (no node access): use --node-access lab|ssh or the exporter".into());
    }
    let control_planes = nodes.iter().filter(|n| n.control_plane).count();
    let etcd = match best {
        Some((_, q)) if q.members > 0 => {
            // Figures only the metrics endpoints carry (quota, leader changes).
            let merged: Vec<EtcdMember> = q
                .member_list
                .iter()
                .map(|m| {
                    let local = members.iter().find(|x| x.name == m.name);
                    EtcdMember {
                        quota_bytes: m.quota_bytes.or(local.and_then(|l| l.quota_bytes)),
                        leader_changes: m.leader_changes.or(local.and_then(|l| l.leader_changes)),
                        ..m.clone()
                    }
                })
                .collect();
            Some(quorum::assess(&merged, Some(control_planes)))
        }
        _ if members.is_empty() => None,
        _ => Some(quorum::assess(&members, Some(control_planes))),
    };
    let mut report = StatusReport::new(checks, etcd, warnings);
    report.certificates = certificates;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_reports_run_status_local_on_the_node() {
        let r = NodeReports {
            access: Arc::new(kastellan_access::Lab::new("/usr/local/bin/kastellan")),
            kastellan: "/usr/local/bin/kastellan".into(),
        };
        let cmd = r.command("cp2", Duration::from_secs(2));
        assert_eq!(
            cmd.argv,
            [
                "/usr/local/bin/kastellan",
                "status",
                "--local",
                "--node",
                "cp2",
                "--probe-timeout",
                "2",
                "-o",
                "json"
            ]
        );
        assert_eq!(cmd.timeout, Duration::from_secs(11));
        assert_eq!(r.label(), "lab");
    }

    fn lease(renew: &str, duration: i32) -> Lease {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
            "spec": {"holderIdentity": "cp2_abc", "leaseDurationSeconds": duration, "renewTime": renew, "leaseTransitions": 1}
        }))
        .unwrap()
    }

    #[test]
    fn leases_go_stale_after_their_duration() {
        let now: jiff::Timestamp = "2026-11-21T10:00:20Z".parse().unwrap();
        let fresh = lease_check(
            "kube-scheduler",
            &lease("2026-11-21T10:00:18.000000Z", 15),
            now,
        );
        assert_eq!(fresh.state, State::Up);
        assert!(fresh.endpoint.ends_with("holder=cp2"));
        assert_eq!(lease_holder(&fresh), Some("cp2"));
        let stale = lease_check(
            "kube-scheduler",
            &lease("2026-11-21T10:00:00.000000Z", 15),
            now,
        );
        assert_eq!(stale.state, State::Down);
        assert!(stale.detail.contains("STALE"), "{}", stale.detail);
    }

    fn cond(
        type_: &str,
        status: &str,
        reason: &str,
        message: &str,
    ) -> k8s_openapi::api::core::v1::NodeCondition {
        k8s_openapi::api::core::v1::NodeCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_heartbeat_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-12-01T10:00:00Z".parse().unwrap(),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn not_ready_is_said_in_plain_words() {
        let now: jiff::Timestamp = "2026-12-01T10:01:30Z".parse().unwrap();
        let silent = [cond(
            "Ready",
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        )];
        assert_eq!(
            not_ready(&silent, now),
            "NotReady: the kubelet has not posted its status since 2026-12-01T10:00:00Z (90s \
             ago): it is stopped, hung, or cut off from the API"
        );
        let no_cni = [cond(
            "Ready",
            "False",
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady \
             message:docker: network plugin is not ready: cni config uninitialized",
        )];
        assert_eq!(
            not_ready(&no_cni, now),
            "NotReady: no network plugin (CNI) is ready: nodes stay NotReady until one is installed"
        );
        let full = [
            cond("Ready", "False", "KubeletNotReady", "evicting"),
            cond("DiskPressure", "True", "KubeletHasDiskPressure", ""),
            cond("MemoryPressure", "False", "", ""),
        ];
        assert_eq!(not_ready(&full, now), "NotReady: disk pressure");
        let other = [cond(
            "Ready",
            "False",
            "KubeletNotReady",
            "PLEG is not healthy",
        )];
        assert_eq!(
            not_ready(&other, now),
            "NotReady: Ready=False KubeletNotReady: PLEG is not healthy"
        );
    }
}

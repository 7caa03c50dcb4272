//! What a single failure would hurt: the HA report (`kastellan ha`), computed from facts
//! read from the cluster as it is. Pure: [`assess`] takes [`HaFacts`] and returns the
//! report, so every rule is table-tested without a cluster.
//!
//! The rules, each a [`Finding`]:
//! - **API**: one apiserver instance loses the API with its node. Clients (kubelets,
//!   kube-proxy) whose kubeconfig names one apiserver's own address depend on that node
//!   even when there are several apiservers; an address that is no apiserver's (a load
//!   balancer, a VIP, a DNS name) is reported as such and not checked further.
//! - **etcd**: the failures the members tolerate now and when all are healthy; an even
//!   count; in a stacked cluster, control planes without a member and members without
//!   a control plane.
//! - **controller-manager and scheduler**: several instances of which one runs with
//!   `--leader-elect=false` act at once on the same objects (an error); a single
//!   instance stops its loops with its node (a warning). The leader Lease's holder and
//!   its transitions are shown.
//! - **Hygiene**: a control plane without the control-plane (or legacy master)
//!   `NoSchedule` taint, and workload pods running on control planes (mirror and
//!   DaemonSet pods excluded).

use serde::{Deserialize, Serialize};

use crate::Quorum;

/// The taint kubeadm puts on control planes (1.24 and later).
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";
/// The taint kubeadm put on control planes before 1.24.
pub const LEGACY_MASTER_TAINT: &str = "node-role.kubernetes.io/master";

/// Everything the report is computed from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HaFacts {
    /// The control-plane nodes.
    pub control_planes: Vec<ControlPlane>,
    /// kube-apiserver instances (their mirror pods).
    pub apiservers: Vec<Instance>,
    /// kube-controller-manager instances.
    pub controller_managers: Vec<Instance>,
    /// kube-scheduler instances.
    pub schedulers: Vec<Instance>,
    /// The leader Leases of the controller-manager and the scheduler.
    pub leases: Vec<LeaseFact>,
    /// etcd's quorum, when etcd could be asked.
    pub etcd: Option<Quorum>,
    /// Why etcd could not be asked, when it could not.
    pub etcd_unknown: Option<String>,
    /// The API servers that clients are configured to use.
    pub clients: Vec<ClientFact>,
    /// Nodes whose kubelet kubeconfig could not be read (node access failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubelets_unread: Vec<String>,
    /// Pods that are neither mirror pods nor DaemonSet pods, on control-plane nodes.
    pub workloads_on_control_planes: Vec<PodRef>,
}

/// A control-plane node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ControlPlane {
    /// Node name.
    pub name: String,
    /// Its addresses (InternalIP, ExternalIP, Hostname).
    pub addresses: Vec<String>,
    /// Its taints as `key:effect`.
    pub taints: Vec<String>,
}

/// One instance of a control-plane component (a mirror pod).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Instance {
    /// The node it runs on.
    pub node: String,
    /// Whether its pod is Ready.
    pub ready: bool,
    /// Its `--leader-elect` flag (`None` for components without one; true by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_elect: Option<bool>,
    /// The address it advertises (`--advertise-address` of an apiserver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A leader-election Lease.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaseFact {
    /// `kube-controller-manager` or `kube-scheduler`.
    pub component: String,
    /// The holder's identity (`None`: no Lease).
    pub holder: Option<String>,
    /// Leader changes the Lease recorded.
    pub transitions: Option<i32>,
}

/// The API server a client is configured with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientFact {
    /// The client: `kubelet` or `kube-proxy`.
    pub client: String,
    /// The node whose kubelet this is (`None` for a cluster-wide setting such as
    /// kube-proxy's ConfigMap).
    pub node: Option<String>,
    /// The `server:` URL.
    pub server: String,
    /// Where the URL was read, e.g. `/etc/kubernetes/kubelet.conf on w1`.
    pub source: String,
}

/// A pod, named.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PodRef {
    /// Its node.
    pub node: String,
    /// `namespace/name`.
    pub pod: String,
    /// Its owner as `Kind/name`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Weakens the cluster, no single failure loses the API or quorum because of it.
    Warning,
    /// A single failure loses the API (for some clients) or etcd quorum (exit 1).
    Error,
}

/// One thing the report says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// What it is about: `api`, `etcd`, `kube-controller-manager`, `kube-scheduler`,
    /// `taints`.
    pub area: String,
    /// The finding in plain words.
    pub text: String,
    /// What to do, when there is something to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// One row of the summary: a component, its instances and what it tolerates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The component.
    pub component: String,
    /// Instances found.
    pub instances: usize,
    /// Instances healthy (ready, or healthy members).
    pub healthy: usize,
    /// Failures it survives now (`None`: not known).
    pub tolerates: Option<usize>,
    /// Short detail: nodes, leader, endpoints.
    pub detail: String,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HaVerdict {
    /// No single failure loses the API or quorum, and nothing to warn about.
    Tolerant,
    /// No single failure loses the API or quorum, with warnings.
    TolerantWithWarnings,
    /// A single failure loses the API for some clients or etcd quorum.
    SinglePointOfFailure,
}

/// The HA report (`kastellan ha -o json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HaReport {
    /// The verdict.
    pub verdict: HaVerdict,
    /// One row per component.
    pub components: Vec<Row>,
    /// Findings, worst first.
    pub findings: Vec<Finding>,
    /// The facts the report was computed from.
    pub facts: HaFacts,
}

/// Computes the report.
pub fn assess(facts: HaFacts) -> HaReport {
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    api(&facts, &mut rows, &mut findings);
    etcd(&facts, &mut rows, &mut findings);
    for (component, instances) in [
        ("kube-controller-manager", &facts.controller_managers),
        ("kube-scheduler", &facts.schedulers),
    ] {
        elected(
            component,
            instances,
            &facts.leases,
            &mut rows,
            &mut findings,
        );
    }
    hygiene(&facts, &mut findings);
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let verdict = match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => HaVerdict::SinglePointOfFailure,
        Some(Severity::Warning) => HaVerdict::TolerantWithWarnings,
        _ => HaVerdict::Tolerant,
    };
    HaReport {
        verdict,
        components: rows,
        findings,
        facts,
    }
}

fn finding(severity: Severity, area: &str, text: String, fix: Option<&str>) -> Finding {
    Finding {
        severity,
        area: area.into(),
        text,
        fix: fix.map(str::to_string),
    }
}

/// The host of a `server:` URL (`https://10.0.0.1:6443` → `10.0.0.1`, `[::1]` → `::1`).
pub fn server_host(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.starts_with("127.") || host == "::1"
}

/// The node whose apiserver a host names: its advertise address or one of its node's
/// addresses.
fn apiserver_node<'a>(facts: &'a HaFacts, host: &str) -> Option<&'a str> {
    facts
        .apiservers
        .iter()
        .find(|a| a.address.as_deref() == Some(host))
        .map(|a| a.node.as_str())
        .or_else(|| {
            facts
                .control_planes
                .iter()
                .find(|c| c.addresses.iter().any(|a| a == host))
                .filter(|c| facts.apiservers.iter().any(|a| a.node == c.name))
                .map(|c| c.name.as_str())
        })
}

fn api(facts: &HaFacts, rows: &mut Vec<Row>, findings: &mut Vec<Finding>) {
    let n = facts.apiservers.len();
    let ready = facts.apiservers.iter().filter(|a| a.ready).count();
    rows.push(Row {
        component: "kube-apiserver".into(),
        instances: n,
        healthy: ready,
        tolerates: Some(ready.saturating_sub(1)),
        detail: nodes(facts.apiservers.iter().map(|a| a.node.as_str())),
    });
    match ready {
        0 => findings.push(finding(
            Severity::Error,
            "api",
            format!("no ready apiserver instance among {n}: the API is down or unseen"),
            Some("see `kastellan status` for each apiserver's endpoints"),
        )),
        1 => findings.push(finding(
            Severity::Error,
            "api",
            format!(
                "one ready apiserver ({}): losing its node loses the API",
                facts
                    .apiservers
                    .iter()
                    .find(|a| a.ready)
                    .map_or("?", |a| a.node.as_str())
            ),
            Some("join more control planes (3 for stacked etcd) behind a load balancer"),
        )),
        _ => {}
    }

    // Clients that depend on one apiserver of another node, grouped by that node.
    let mut through: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    let mut elsewhere: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for c in &facts.clients {
        let host = server_host(&c.server);
        let who = match &c.node {
            Some(node) => format!("{} on {node}", c.client),
            None => format!("{} (all nodes)", c.client),
        };
        if is_loopback(host) {
            continue;
        }
        match apiserver_node(facts, host) {
            Some(target) if c.node.as_deref() == Some(target) => {}
            Some(target) => through
                .entry((target.to_string(), c.server.clone()))
                .or_default()
                .push(who),
            None => elsewhere.entry(c.server.clone()).or_default().push(who),
        }
    }
    for ((target, server), who) in through {
        let severity = if n > 1 {
            Severity::Error
        } else {
            Severity::Warning
        };
        findings.push(finding(
            severity,
            "api",
            format!(
                "{} reach the API only through {target}'s own address {server}: \
                 losing {target} cuts them off even with {n} apiservers",
                list(&who)
            ),
            Some(
                "put a load balancer or VIP in front of every apiserver, set \
                 controlPlaneEndpoint to it and point kubelet.conf and kube-proxy's \
                 kubeconfig at it",
            ),
        ));
    }
    if !facts.kubelets_unread.is_empty() {
        findings.push(finding(
            Severity::Warning,
            "api",
            format!(
                "the kubelet's kubeconfig could not be read on {}: which apiserver it \
                 reaches is not judged",
                list(&facts.kubelets_unread)
            ),
            Some("check node access (`kastellan status` names what failed)"),
        ));
    }
    for (server, who) in elsewhere {
        findings.push(finding(
            Severity::Info,
            "api",
            format!(
                "{} reach the API at {server}, which is no apiserver's own address \
                 (a load balancer, VIP or DNS name: not checked here)",
                list(&who)
            ),
            None,
        ));
    }
}

/// Node names, sorted, comma-separated without blanks (table cells stay short).
fn nodes<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    names.join(",")
}

fn list(items: &[String]) -> String {
    const SHOWN: usize = 6;
    if items.len() <= SHOWN {
        return items.join(", ");
    }
    format!(
        "{} and {} more",
        items[..SHOWN].join(", "),
        items.len() - SHOWN
    )
}

fn etcd(facts: &HaFacts, rows: &mut Vec<Row>, findings: &mut Vec<Finding>) {
    let Some(q) = &facts.etcd else {
        rows.push(Row {
            component: "etcd".into(),
            instances: 0,
            healthy: 0,
            tolerates: None,
            detail: "not asked".into(),
        });
        findings.push(finding(
            Severity::Warning,
            "etcd",
            format!(
                "etcd's members could not be asked: {}",
                facts
                    .etcd_unknown
                    .as_deref()
                    .unwrap_or("no node access to the control planes")
            ),
            Some("run on a control plane, or give --node-access ssh with an inventory"),
        ));
        return;
    };
    let mut detail = nodes(
        q.member_list
            .iter()
            .filter(|m| !m.learner)
            .map(|m| m.name.as_str()),
    );
    if let Some(l) = &q.leader {
        detail.push_str(&format!("; leader {l}"));
    }
    if q.learners > 0 {
        detail.push_str(&format!("; {} learner(s)", q.learners));
    }
    rows.push(Row {
        component: "etcd".into(),
        instances: q.members,
        healthy: q.healthy,
        tolerates: Some(q.failures_tolerated),
        detail,
    });
    if !q.has_quorum {
        findings.push(finding(
            Severity::Error,
            "etcd",
            format!(
                "etcd has lost quorum: {} of {} members healthy, {} needed",
                q.healthy, q.members, q.quorum
            ),
            Some("bring members back, or restore from a backup (`kastellan restore`)"),
        ));
    } else if q.failures_tolerated_when_healthy == 0 {
        findings.push(finding(
            Severity::Error,
            "etcd",
            format!(
                "{} etcd member{}: a single failure loses quorum",
                q.members,
                if q.members == 1 { "" } else { "s" }
            ),
            Some("run 3 (or 5) members: `kastellan etcd member add` on new control planes"),
        ));
    } else if q.failures_tolerated == 0 {
        findings.push(finding(
            Severity::Error,
            "etcd",
            format!(
                "{} of {} etcd members healthy: the next failure loses quorum",
                q.healthy, q.members
            ),
            Some("bring the unhealthy member back first (`kastellan etcd members`)"),
        ));
    }
    if q.members > 0 && q.members.is_multiple_of(2) {
        findings.push(finding(
            Severity::Warning,
            "etcd",
            format!(
                "{} etcd members: an even count tolerates no more failures than {}",
                q.members,
                q.members - 1
            ),
            Some("run an odd number of members (3 or 5)"),
        ));
    }
    // Stacked etcd: one member per control plane, named after it.
    if !facts.control_planes.is_empty() {
        let cps: Vec<&str> = facts
            .control_planes
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let names: Vec<&str> = q.member_list.iter().map(|m| m.name.as_str()).collect();
        let without: Vec<String> = cps
            .iter()
            .filter(|c| !names.contains(c))
            .map(|c| c.to_string())
            .collect();
        let orphans: Vec<String> = names
            .iter()
            .filter(|m| !cps.contains(m))
            .map(|m| m.to_string())
            .collect();
        if !without.is_empty() {
            findings.push(finding(
                Severity::Warning,
                "etcd",
                format!(
                    "control plane{} {} run{} no etcd member of this cluster \
                     ({} control planes, {} members)",
                    if without.len() == 1 { "" } else { "s" },
                    list(&without),
                    if without.len() == 1 { "s" } else { "" },
                    cps.len(),
                    q.member_list.len()
                ),
                None,
            ));
        }
        if !orphans.is_empty() {
            findings.push(finding(
                Severity::Warning,
                "etcd",
                format!(
                    "etcd member{} {} match{} no control-plane node (external etcd, \
                     or a node removed without `etcd member remove`)",
                    if orphans.len() == 1 { "" } else { "s" },
                    list(&orphans),
                    if orphans.len() == 1 { "es" } else { "" }
                ),
                Some("`kastellan etcd members` shows each member's URLs"),
            ));
        }
    }
}

fn elected(
    component: &str,
    instances: &[Instance],
    leases: &[LeaseFact],
    rows: &mut Vec<Row>,
    findings: &mut Vec<Finding>,
) {
    let n = instances.len();
    let ready = instances.iter().filter(|i| i.ready).count();
    let lease = leases.iter().find(|l| l.component == component);
    let mut detail = nodes(instances.iter().map(|i| i.node.as_str()));
    if let Some(holder) = lease.and_then(|l| l.holder.as_deref()) {
        // kube-controller-manager's identity is `HOSTNAME_UUID`.
        let holder = holder.split('_').next().unwrap_or(holder);
        detail.push_str(&format!("; leader {holder}"));
        match lease.and_then(|l| l.transitions) {
            Some(1) => detail.push_str(" (1 change)"),
            Some(t) if t > 1 => detail.push_str(&format!(" ({t} changes)")),
            _ => {}
        }
    }
    rows.push(Row {
        component: component.into(),
        instances: n,
        healthy: ready,
        tolerates: Some(ready.saturating_sub(1)),
        detail,
    });
    let unelected: Vec<String> = instances
        .iter()
        .filter(|i| i.leader_elect == Some(false))
        .map(|i| i.node.clone())
        .collect();
    if n > 1 && !unelected.is_empty() {
        findings.push(finding(
            Severity::Error,
            component,
            format!(
                "{n} instances, and {} run{} with --leader-elect=false: it acts beside the \
                 elected leader on the same objects",
                list(&unelected),
                if unelected.len() == 1 { "s" } else { "" }
            ),
            Some("remove --leader-elect=false from its static pod manifest"),
        ));
    }
    match n {
        0 => findings.push(finding(
            Severity::Error,
            component,
            format!("no {component} instance found"),
            Some("check the static pod manifests on the control planes"),
        )),
        1 => findings.push(finding(
            Severity::Warning,
            component,
            format!(
                "one instance ({}): its loops stop with its node until it is restarted",
                instances[0].node
            ),
            None,
        )),
        _ => {}
    }
}

/// The control-plane taint key of `key[=value]:effect` when it keeps workloads off.
fn control_plane_taint(taint: &str) -> Option<&'static str> {
    let (key, effect) = taint.rsplit_once(':').unwrap_or((taint, ""));
    let key = key.split('=').next().unwrap_or(key);
    if effect != "NoSchedule" && effect != "NoExecute" {
        return None;
    }
    [CONTROL_PLANE_TAINT, LEGACY_MASTER_TAINT]
        .into_iter()
        .find(|k| *k == key)
}

fn hygiene(facts: &HaFacts, findings: &mut Vec<Finding>) {
    // Suggest the key the other control planes use, else the current one.
    let key = facts
        .control_planes
        .iter()
        .flat_map(|c| c.taints.iter())
        .find_map(|t| control_plane_taint(t))
        .unwrap_or(CONTROL_PLANE_TAINT);
    for cp in &facts.control_planes {
        if !cp.taints.iter().any(|t| control_plane_taint(t).is_some()) {
            findings.push(finding(
                Severity::Warning,
                "taints",
                format!(
                    "control plane {} has no {CONTROL_PLANE_TAINT} (or legacy master) \
                     NoSchedule taint: workloads can be scheduled there",
                    cp.name
                ),
                Some(&format!("kubectl taint nodes {} {key}:NoSchedule", cp.name)),
            ));
        }
    }
    let mut by_node: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for p in &facts.workloads_on_control_planes {
        by_node.entry(&p.node).or_default().push(p.pod.clone());
    }
    for (node, pods) in by_node {
        findings.push(finding(
            Severity::Warning,
            "taints",
            format!(
                "{} workload pod{} on control plane {node}: {}",
                pods.len(),
                if pods.len() == 1 { "" } else { "s" },
                list(&pods)
            ),
            Some(
                "taint the node; NoSchedule does not evict running pods: delete them so \
                 their controllers place them elsewhere",
            ),
        ));
    }
}

#[cfg(test)]
mod tests;

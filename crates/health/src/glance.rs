//! The status at a glance: one state per node and component, folded from the checks.
//! Pure: the command line draws it (`kastellan status` without `-o wide`).
//!
//! Every check of a node counts for one component's cell: the local probes, the
//! static pod the API shows (`pod/kube-apiserver` for the apiserver), the etcd member
//! as etcd's v3 API sees it (`etcd-member`, for etcd), the Node's `Ready` condition
//! (for the kubelet, which reports it). The worst state wins.

use crate::{Check, Source, State, StatusReport};

/// A probe that answered well but took this long or longer is shown as slow.
pub const SLOW_MS: u64 = 1000;

/// The components of the view, one column each, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    /// kube-apiserver.
    Apiserver,
    /// etcd (its member in etcd's own view too).
    Etcd,
    /// kube-controller-manager.
    ControllerManager,
    /// kube-scheduler.
    Scheduler,
    /// The kubelet (and the Node's `Ready` condition it reports).
    Kubelet,
    /// kube-proxy.
    KubeProxy,
    /// The node's kubeadm certificates (expiry).
    Certificates,
}

impl Component {
    /// Every component, in column order.
    pub const ALL: [Component; 7] = [
        Component::Apiserver,
        Component::Etcd,
        Component::ControllerManager,
        Component::Scheduler,
        Component::Kubelet,
        Component::KubeProxy,
        Component::Certificates,
    ];

    /// The component a check's `component` belongs to (`None`: no column, such as
    /// `node-access` or a Lease).
    pub fn of(component: &str) -> Option<Component> {
        Some(match component {
            "kube-apiserver" | "pod/kube-apiserver" => Component::Apiserver,
            "etcd" | "pod/etcd" | "etcd-member" => Component::Etcd,
            "kube-controller-manager" | "pod/kube-controller-manager" => {
                Component::ControllerManager
            }
            "kube-scheduler" | "pod/kube-scheduler" => Component::Scheduler,
            "kubelet" | "node" => Component::Kubelet,
            "kube-proxy" => Component::KubeProxy,
            "certificates" => Component::Certificates,
            _ => return None,
        })
    }

    /// Whether the API's static pods say if a node runs it (so that without the
    /// node's own report, no check still means "not on this node").
    fn static_pod(self) -> bool {
        matches!(
            self,
            Component::Apiserver
                | Component::Etcd
                | Component::ControllerManager
                | Component::Scheduler
        )
    }
}

/// The state of one component on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cell {
    /// No check: the node does not run it.
    Absent,
    /// Every check up.
    Ok,
    /// Every check up, one probe at or over [`SLOW_MS`].
    Slow,
    /// A check degraded (answers, but something is off: pressure, certificates
    /// expiring soon).
    Warn,
    /// Could not be checked (a check unknown, or the node's own report missing).
    Unknown,
    /// A check down.
    Down,
}

/// One node's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// The node (or etcd member) name.
    pub node: String,
    /// One cell per [`Component::ALL`], in that order.
    pub cells: [Cell; 7],
}

/// Whether `c` answered well but slowly.
pub fn is_slow(c: &Check) -> bool {
    c.state == State::Up && c.latency_ms.is_some_and(|l| l >= SLOW_MS)
}

/// Whether `c` is worth a line of its own under the grid: not up, or slow.
pub fn is_problem(c: &Check) -> bool {
    c.state != State::Up || is_slow(c)
}

fn cell_of(c: &Check) -> Cell {
    match c.state {
        State::Up if is_slow(c) => Cell::Slow,
        State::Up => Cell::Ok,
        State::Degraded => Cell::Warn,
        State::Unknown => Cell::Unknown,
        State::Down => Cell::Down,
    }
}

/// One row per node, in the report's order (cluster-wide rows have none). A node
/// whose own report is missing (no node access, or it failed) shows components only
/// its report would name (kube-proxy, certificates, ...) as [`Cell::Unknown`], not as
/// absent.
pub fn grid(report: &StatusReport) -> Vec<NodeRow> {
    let mut nodes: Vec<&str> = Vec::new();
    for c in &report.checks {
        if c.node != "cluster" && !nodes.contains(&c.node.as_str()) {
            nodes.push(&c.node);
        }
    }
    nodes
        .into_iter()
        .map(|node| {
            let checks: Vec<&Check> = report.checks.iter().filter(|c| c.node == node).collect();
            let own_report = checks.iter().any(|c| c.source == Source::LocalProbe);
            let cells = Component::ALL.map(|comp| {
                checks
                    .iter()
                    .filter(|c| Component::of(&c.component) == Some(comp))
                    .map(|c| cell_of(c))
                    .max()
                    .unwrap_or(if own_report || comp.static_pod() {
                        Cell::Absent
                    } else {
                        Cell::Unknown
                    })
            });
            NodeRow {
                node: node.to_string(),
                cells,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(node: &str, component: &str, source: Source, state: State) -> Check {
        Check {
            node: node.into(),
            component: component.into(),
            endpoint: String::new(),
            source,
            state,
            latency_ms: Some(3),
            detail: String::new(),
            failing: vec![],
        }
    }

    #[test]
    fn the_worst_check_of_a_component_wins() {
        let mut slow = check("cp1", "kubelet", Source::LocalProbe, State::Up);
        slow.latency_ms = Some(SLOW_MS);
        let report = StatusReport::new(
            vec![
                check("cluster", "lease/kube-scheduler", Source::Api, State::Up),
                check("cp1", "kube-apiserver", Source::LocalProbe, State::Up),
                check("cp1", "kube-apiserver", Source::LocalProbe, State::Down),
                check("cp1", "pod/kube-apiserver", Source::Api, State::Up),
                check("cp1", "etcd-member", Source::EtcdApi, State::Unknown),
                check("cp1", "etcd", Source::LocalProbe, State::Up),
                check("cp1", "node", Source::Api, State::Up),
                slow,
                check("cp1", "certificates", Source::LocalProbe, State::Degraded),
                check("w1", "node", Source::Api, State::Up),
            ],
            None,
            vec![],
        );
        let g = grid(&report);
        assert_eq!(g.len(), 2, "no row for cluster-wide checks");
        assert_eq!(g[0].node, "cp1");
        use Cell::*;
        assert_eq!(
            g[0].cells,
            [Down, Unknown, Absent, Absent, Slow, Absent, Warn]
        );
        // w1's own report is missing: what only it would show is unknown, what the
        // API's static pods show is absent.
        assert_eq!(
            g[1].cells,
            [Absent, Absent, Absent, Absent, Ok, Unknown, Unknown]
        );
        assert!(report.checks.iter().filter(|c| is_problem(c)).count() == 4);
    }

    #[test]
    fn every_column_has_its_checks() {
        for (name, comp) in [
            ("pod/etcd", Component::Etcd),
            ("kube-controller-manager", Component::ControllerManager),
            ("pod/kube-scheduler", Component::Scheduler),
            ("kube-proxy", Component::KubeProxy),
        ] {
            assert_eq!(Component::of(name), Some(comp), "{name}");
        }
        assert_eq!(Component::of("node-access"), None);
        assert_eq!(Component::of("lease/kube-scheduler"), None);
    }
}

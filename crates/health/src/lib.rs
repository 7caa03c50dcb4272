//! Supervision of a kubeadm control plane.
//!
//! Many control-plane endpoints bind to 127.0.0.1 on each node, so status is gathered
//! in two layers:
//! - [`local::probe_node`] probes every endpoint of the node it runs on (`kastellan
//!   status --local`), deciding from the static pod manifests which components the node
//!   is meant to run;
//! - [`cluster`] reads what the API shows (Nodes, control-plane static pods, leader
//!   Leases, apiserver health through the kubeconfig) and merges the per-node reports
//!   that were gathered on each node (over SSH, inside lab nodes, or by the exporter).
//!
//! Every [`Check`] names its [`Source`], so a reader knows where a row came from.
//! [`quorum`] holds the etcd quorum arithmetic, [`parse`] the response parsers and
//! [`glance`] the one-state-per-component summary of a report; all three are pure.

pub mod cluster;
pub mod glance;
pub mod ha;
pub mod local;
pub mod parse;
pub mod probe;
pub mod quorum;

use serde::{Deserialize, Serialize};

pub use quorum::{EtcdMember, Quorum};

/// Errors of the health crate (probe failures are not errors: they are [`Check`]s).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be loaded.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A node's report could not be gathered or read.
    #[error("node {node}: {message}")]
    Node {
        /// The node.
        node: String,
        /// What went wrong.
        message: String,
    },
}

/// Result type of the health crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a check's data came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// An HTTP probe of a local endpoint on the node itself.
    LocalProbe,
    /// The Kubernetes API (through the kubeconfig).
    Api,
    /// The etcd v3 API over mTLS.
    EtcdApi,
    /// Derived from other checks (quorum, verdict).
    Derived,
}

/// The state of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Healthy.
    Up,
    /// Answers, but something is off (a warning).
    Degraded,
    /// Not healthy or not answering.
    Down,
    /// Could not be checked.
    Unknown,
}

impl State {
    /// The label shown in tables.
    pub fn label(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Degraded => "degraded",
            State::Down => "down",
            State::Unknown => "unknown",
        }
    }
}

/// One row of the status: a component on a node, checked one way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The node (or `cluster` for cluster-wide rows).
    pub node: String,
    /// The component, e.g. `kube-apiserver`, `etcd`, `lease/kube-scheduler`.
    pub component: String,
    /// What was checked, e.g. the URL or the API object.
    pub endpoint: String,
    /// Where the data came from.
    pub source: Source,
    /// The result.
    pub state: State,
    /// Round-trip time in milliseconds, for probes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// A short human explanation (body, error, age).
    pub detail: String,
    /// Named failing sub-checks (e.g. apiserver `readyz` checks such as `etcd`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<String>,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every check is up.
    Healthy,
    /// Something is down or degraded (exit code 1).
    Degraded,
    /// Nothing could be checked (exit code 2).
    Unknown,
}

/// The whole status: what `kastellan status -o json` prints (schema:
/// `docs/status.schema.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// Schema version of this document.
    pub schema: String,
    /// When the checks ran (RFC 3339).
    pub checked_at: String,
    /// The verdict.
    pub verdict: Verdict,
    /// One line saying why.
    pub summary: String,
    /// Every check, grouped by node then component.
    pub checks: Vec<Check>,
    /// etcd quorum, when etcd could be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<Quorum>,
    /// Plain warnings (HA layout, quorum, leases).
    pub warnings: Vec<String>,
    /// In `--local` reports: this node's etcd member as its own endpoints describe it
    /// (cluster-wide status merges these into [`StatusReport::etcd`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_member: Option<EtcdMember>,
    /// Certificate expiry per node (from `--local` reports on each node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertExpiry>,
}

/// When one certificate expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertExpiry {
    /// The node holding it.
    pub node: String,
    /// kubeadm's name for it (`apiserver`, `admin.conf`, `etcd-ca`, ...).
    pub name: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Days left (negative once expired).
    pub days_left: f64,
}

/// The schema identifier of [`StatusReport`].
pub const SCHEMA: &str = "kastellan.status/v1";

impl StatusReport {
    /// Builds a report and its verdict from checks, quorum and warnings.
    pub fn new(
        mut checks: Vec<Check>,
        etcd: Option<Quorum>,
        mut warnings: Vec<String>,
    ) -> StatusReport {
        checks.sort_by(|a, b| {
            node_order(&a.node)
                .cmp(&node_order(&b.node))
                .then_with(|| a.node.cmp(&b.node))
                .then_with(|| a.component.cmp(&b.component))
                .then_with(|| a.endpoint.cmp(&b.endpoint))
        });
        if let Some(q) = &etcd {
            warnings.extend(q.warnings.iter().cloned());
        }
        warnings.dedup();
        let bad: Vec<&Check> = checks.iter().filter(|c| c.state != State::Up).collect();
        let quorum_lost = etcd.as_ref().is_some_and(|q| !q.has_quorum);
        let (verdict, summary) = if checks.is_empty() {
            (Verdict::Unknown, "nothing could be checked".to_string())
        } else if checks.iter().all(|c| c.state == State::Unknown) {
            (
                Verdict::Unknown,
                "no check could reach its target".to_string(),
            )
        } else if bad.is_empty() && !quorum_lost {
            (
                Verdict::Healthy,
                format!("healthy: {} checks up", checks.len()),
            )
        } else {
            let mut parts: Vec<String> = Vec::new();
            if quorum_lost {
                parts.push("etcd quorum lost".into());
            }
            let mut names: Vec<String> = bad
                .iter()
                .map(|c| format!("{} on {}", c.component, c.node))
                .collect();
            names.dedup();
            let shown: Vec<String> = names.iter().take(4).cloned().collect();
            let more = names.len().saturating_sub(shown.len());
            parts.push(format!(
                "{} of {} checks not up: {}{}",
                bad.len(),
                checks.len(),
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
            (Verdict::Degraded, format!("degraded: {}", parts.join("; ")))
        };
        StatusReport {
            schema: SCHEMA.to_string(),
            checked_at: jiff::Timestamp::now().to_string(),
            verdict,
            summary,
            checks,
            etcd,
            warnings,
            etcd_member: None,
            certificates: Vec::new(),
        }
    }
}

fn node_order(node: &str) -> u8 {
    if node == "cluster" { 0 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(node: &str, component: &str, state: State) -> Check {
        Check {
            node: node.into(),
            component: component.into(),
            endpoint: String::new(),
            source: Source::LocalProbe,
            state,
            latency_ms: None,
            detail: String::new(),
            failing: vec![],
        }
    }

    #[test]
    fn verdict_names_what_is_down() {
        let r = StatusReport::new(
            vec![
                check("cp1", "etcd", State::Up),
                check("cp2", "kube-scheduler", State::Down),
            ],
            None,
            vec![],
        );
        assert_eq!(r.verdict, Verdict::Degraded);
        assert!(r.summary.contains("kube-scheduler on cp2"), "{}", r.summary);
        let ok = StatusReport::new(vec![check("cp1", "etcd", State::Up)], None, vec![]);
        assert_eq!(ok.verdict, Verdict::Healthy);
        let none = StatusReport::new(vec![check("cp1", "etcd", State::Unknown)], None, vec![]);
        assert_eq!(none.verdict, Verdict::Unknown);
    }

    #[test]
    fn cluster_rows_come_first() {
        let r = StatusReport::new(
            vec![
                check("cp1", "etcd", State::Up),
                check("cluster", "lease", State::Up),
            ],
            None,
            vec![],
        );
        assert_eq!(r.checks[0].node, "cluster");
    }
}

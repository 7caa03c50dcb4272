//! Upgrade planning facts.
//!
//! - [`versions`]: every component's version with where the figure came from (each
//!   apiserver's `/version`, static pod images, `status.nodeInfo`, the kube-proxy
//!   pods and DaemonSet, CoreDNS) and how it is installed; the support window of each
//!   minor in use.
//! - [`packages`]: the nodes' kubeadm/kubelet/kubectl packages (installed, candidate,
//!   held), their Kubernetes repository and OS, read through node access.
//!
//! - [`facts`]: the plan's facts from the API (nodes, roles, deprecated APIs served).
//! - [`plan`]: the upgrade plan, one minor at a time, steps per node with the exact
//!   commands, pre-flight findings first.
//! - [`apply`]: the plan as executor actions (commands over node access, drains,
//!   health gates), journalled and resumable.
//! - [`lock`]: the cluster-wide lock (a Lease in `kube-system`) that keeps two runs
//!   from overlapping.
//!
//! The rules themselves (skew, support windows, removed APIs) are in `kastellan-policy`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod apply;
pub mod facts;
pub mod lock;
pub mod packages;
pub mod plan;
pub mod versions;

pub use versions::{Component, Found, Installed, Versions};

/// Why the facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused or failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Reading the PodDisruptionBudgets and their pods failed.
    #[error(transparent)]
    Drain(#[from] kastellan_drain::Error),
}

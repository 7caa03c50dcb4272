//! Node maintenance for kubeadm clusters: cordon, drain and uncordon with the rules of
//! `kubectl drain` (v1.20 and current), that say why they are stuck.
//!
//! - [`classify`] and [`plan`] are pure: from [`facts`] (pods, owners,
//!   PodDisruptionBudgets) and a [`plan::Request`] they make a serialisable
//!   [`plan::Plan`]: per node the pods to evict, skip and refuse with reasons, the
//!   budgets the evictions need, and hazards (etcd quorum, last ready replica, primary).
//! - [`api`] talks to the API server with kube-rs: discovery of `policy/v1` or
//!   `policy/v1beta1`, the facts, cordon, eviction, deletion, the pods left on a node.
//! - [`run`] carries a plan out, node by node as typed states, reporting [`run::Event`]s
//!   (which budget blocks, since when, the pods it covers) to an observer.
//!
//! Nothing here prints: the binary renders plans, events and results.

pub mod api;
pub mod classify;
mod error;
pub mod facts;
pub mod plan;
pub mod run;
pub mod selector;

pub use error::{Error, Result};

//! The control-plane restore procedure of a kubeadm node.
//!
//! - [`procedure`]: facts, the plan of typed actions, the actions themselves.
//! - [`bump`]: how far the revision moves forward, and why that far.
//! - [`agents`]: who came back after the restart (Lease renewals, the probe watch).
//! - [`systemd`]: etcd run by a systemd unit, read as systemd reads it.
//! - [`remote`]: the typed request and response between the node that coordinates a
//!   multi-member restore and each control-plane node.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod agents;
pub mod bump;
pub mod procedure;
pub mod remote;
pub mod systemd;

pub use procedure::{
    Action, Basis, Context, Facts, Phase, Plan, Probe, ProcedureError, ProcedureRequest, gather,
    gather_systemd, plan,
};

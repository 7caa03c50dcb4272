//! The certificates of a kubeadm node.
//!
//! - [`layout`]: where they are and which is which (kubeadm's names), no I/O.
//! - [`inventory`]: reading them from disk into an [`Inventory`] (the I/O boundary).
//! - [`check`]: expiry, residual time, CA, "externally managed", as `kubeadm certs
//!   check-expiration` computes them; a [`CheckReport`] (data; the command line renders it).
//! - [`renew`]: a serialisable [`RenewPlan`], in-memory signing with the existing CA
//!   (subject, extensions and, by default, key kept), then backup and atomic writes.
//! - [`steps`]: the renewal as typed steps of the executor (`kastellan-exec`): backup,
//!   one re-signing step per certificate (keys made only while it runs), restart;
//!   journalled, resumable, a saved plan checked against the node's facts.
//! - [`restart`]: restarting static pods by holding their manifests out until they
//!   stop, then putting them back.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod check;
pub mod csr;
pub mod error;
pub mod inventory;
pub mod kubeconfig;
pub mod pem;
pub mod renew;
pub mod restart;
pub mod steps;
pub mod x509;

pub use check::{CheckReport, Verdict, check};
pub use error::{Error, Result};
pub use inventory::Inventory;
pub use kastellan_kubeadm::Component;
/// The catalogue of a kubeadm node's certificates (from `kastellan-kubeadm`).
pub use kastellan_kubeadm::pki as layout;
pub use layout::{CaId, Layout};
pub use renew::{RenewPlan, RenewReport, RenewRequest, Targets};

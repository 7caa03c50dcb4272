//! kubeadm's bootstrap tokens and what joining a node takes, as kubeadm makes them.
//! Pure: no I/O, no clock (the caller passes `now`); the randomness comes from the
//! operating system's CSPRNG through aws-lc-rs.
//!
//! - [`token`]: `ID.SECRET` tokens (generated, parsed, checked), usages, extra groups.
//! - [`secret`]: a token as its `bootstrap-token-<id>` Secret, and back (without the
//!   secret), with what is left of its life.
//! - [`discovery`]: the CA pin (`sha256:` of the SubjectPublicKeyInfo), the
//!   `cluster-info` kubeconfig, the ClusterConfiguration's endpoint and directories.
//! - [`certs`]: the encrypted `kubeadm-certs` upload for joining control planes.
//! - [`join`]: the `kubeadm join` line.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod certs;
pub mod discovery;
mod error;
pub mod join;
pub mod secret;
pub mod token;

pub use error::{Error, Result};

//! What the published Kubernetes policies say, as data and pure functions.
//!
//! Upgrade planning needs the rules Kubernetes publishes, not what a cluster happens to
//! tolerate. This crate holds them as tables in the code, each naming the page it was
//! taken from, and answers questions about them without any I/O:
//!
//! - [`version`]: Kubernetes versions ([`Version`], `v1.20.2`), minors ([`Minor`],
//!   `1.20`), and the distro package versions that carry them (`1.21.0-00`,
//!   `1.28.3-1.1`, `1.28.3-150500.1.1`).
//! - [`support`]: each minor's release and end-of-life date (1.16 to 1.36), the support
//!   status of a minor on a date, the newest minor released on a date.
//! - [`skew`]: the version-skew policy as it stood in each era, checked against a
//!   [`skew::Cluster`] of facts ([`skew::check`]), what must move before the control
//!   plane can go to the next minor ([`skew::blockers_for_hop`]), and one-minor-at-a-time
//!   upgrade paths ([`skew::path`]).
//! - [`removed`]: the API group/versions that stopped being served, by minor.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod removed;
pub mod skew;
pub mod support;
pub mod version;

pub use version::{Minor, Version};

/// What went wrong: an input that does not parse, or a question the policy refuses.
/// Every variant names the value it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A Kubernetes version does not parse.
    #[error("{input:?} is not a Kubernetes version: {reason}")]
    Version {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A minor (`1.20`) does not parse.
    #[error("{input:?} is not a Kubernetes minor version: {reason}")]
    Minor {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A distro package version does not carry a Kubernetes version.
    #[error("{input:?} is not a Kubernetes package version: {reason}")]
    PackageVersion {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A minor outside the tables of this crate.
    #[error("Kubernetes {minor} is unknown: the policy tables cover {oldest} to {newest}")]
    UnknownMinor {
        /// The minor asked about.
        minor: Minor,
        /// The oldest minor the tables know.
        oldest: Minor,
        /// The newest minor the tables know.
        newest: Minor,
    },
    /// The target is older than what runs now.
    #[error("{to} is older than {from}: downgrades are not supported")]
    Downgrade {
        /// What runs now.
        from: String,
        /// The target asked for.
        to: String,
    },
    /// An upgrade hop that would skip a minor.
    #[error(
        "kube-apiserver {from} cannot go to {to} in one hop: upgrades move one minor at a time"
    )]
    SkipsMinor {
        /// The oldest kube-apiserver minor of the cluster.
        from: Minor,
        /// The target asked for.
        to: Minor,
    },
    /// A question about the control plane of a cluster whose facts name no kube-apiserver.
    #[error("the cluster facts name no kube-apiserver")]
    NoApiServer,
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

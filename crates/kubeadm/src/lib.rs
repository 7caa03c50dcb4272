//! One kubeadm node as kastellan knows it.
//!
//! - [`manifest`]: the static pod manifests parsed as Pods, each component's [`Flags`]
//!   read as its flag parser reads them, the line-exact rewrite of etcd's data dir.
//! - [`pki`]: the catalogue of certificates and kubeconfigs, and the files that every
//!   control plane shares ([`pki::SHARED`]); no I/O.
//! - [`hold`]: moving static pod manifests out of the kubelet's directory and back, as
//!   a guard ([`Hold`]) or as a record that outlives the process ([`Held`]).
//! - [`fs`]: durable writes (the `kastellan-fs` crate).
//!
//! Restore, certificate renewal, status and etcd discovery read nodes through this
//! crate, so that a manifest is understood the same way everywhere.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod hold;
pub mod manifest;
pub mod pki;

pub use hold::{Held, Hold};
pub use kastellan_fs as fs;
pub use manifest::{Component, Flags, Manifests, StaticPod};

use std::path::PathBuf;

/// What went wrong reading or changing a node. Every variant names its file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest is not what kubeadm writes.
    #[error("{}: {detail}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A manifest to hold is neither in the manifest directory nor held already.
    #[error("{} is missing (and not held either)", path.display())]
    MissingManifest {
        /// Where it should be.
        path: PathBuf,
    },
    /// Moving a manifest out failed.
    #[error("moving {} to {}: {source}", from.display(), to.display())]
    Move {
        /// From.
        from: PathBuf,
        /// To.
        to: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Moving a manifest back failed: it is still held.
    #[error("putting {} back: {source}; the manifest is still at {}, move it back by hand", manifest.display(), held_at.display())]
    MoveBack {
        /// Where it belongs.
        manifest: PathBuf,
        /// Where it is.
        held_at: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A durable write failed.
    #[error(transparent)]
    Fs(#[from] kastellan_fs::Error),
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Pre-flight checks of a node before `kubeadm init` or `kubeadm join`.
//!
//! - [`facts`]: what a node is like, as plain serialisable data, and the pure parsers
//!   of its files (`/proc/swaps`, `/proc/net/tcp`, containerd's and CRI-O's TOML, the
//!   kubelet's config, dpkg's status) and of `ip -j` output.
//! - [`read`]: reading those facts under a root directory (`/` on the node itself),
//!   the current network namespace's interfaces and routes, and the binaries'
//!   versions: the crate's only I/O.
//! - [`check`]: the verdicts, pure functions of facts and a [`Request`]: pass, warn or
//!   fail, each with its evidence and a one-line fix.
//! - [`cidr`]: network prefixes.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod check;
pub mod cidr;
pub mod error;
pub mod facts;
pub mod read;

pub use check::{Check, Report, Request, Role, Verdict, check};
pub use cidr::Cidr;
pub use error::{Error, Result};
pub use facts::{Facts, Identity};

/// The binaries kubeadm needs on a node, in the order they are reported.
pub const BINARIES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];

/// Reads other nodes' identities from a file of facts (`kastellan preflight --facts -o
/// json` or `-o yaml` of each node): one facts document, or a list of them.
pub fn parse_peers(what: &str, text: &str) -> Result<Vec<Identity>> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Doc {
        Many(Vec<Facts>),
        One(Box<Facts>),
    }
    let doc: Doc = match serde_json::from_str(text) {
        Ok(d) => d,
        Err(json) => serde_saphyr::from_str(text).map_err(|yaml| Error::Parse {
            what: what.to_string(),
            reason: format!("neither JSON ({json}) nor YAML ({yaml}) facts"),
        })?,
    };
    Ok(match doc {
        Doc::Many(v) => v.into_iter().map(|f| f.identity).collect(),
        Doc::One(f) => vec![f.identity],
    })
}

//! The built-in lab: a real kubeadm-generated Kubernetes control plane on one machine.
//!
//! Each lab node is a network namespace (`kl-<node>`) attached by a veth pair to a
//! bridge (`kl-br0`) that holds the lab's private /24, plus a private mount layout in
//! which the node's own directories are bind-mounted over `/etc/kubernetes`,
//! `/var/lib/etcd`, `/var/lib/kubelet` and `/var/lib/kube-proxy`. Real `kubeadm init
//! phase ...` commands write the PKI, kubeconfigs and static pod manifests; a node
//! agent ([`agent`]) stands in for the kubelet, which cannot run here because there is
//! no container runtime: it runs each static pod's container command as a process.
//!
//! With `--ssh` ([`LabSpec::ssh`]), every node also runs Debian's OpenSSH sshd on its
//! address, with keys, a client config and an inventory the lab writes ([`ssh_files`]).
//!
//! Host-side operations ([`up`], [`down`], [`status`]) need root.

pub mod agent;
mod binaries;
mod host;
mod kubeadm;
mod net;
pub mod packages;
mod spec;
mod ssh;

use std::path::{Path, PathBuf};

pub use binaries::{Binaries, build_kubernetes};
pub use host::{
    LabStatus, NodeReport, down, enter, exec_in_node, kubeconfig_path, status, up, wait_ready,
};
pub use spec::{
    EtcdVersion, JoinMode, LabSpec, LabState, NodeRole, NodeSpec, NodeStatusFile, PodProcess,
    ProbeResult,
};
pub use ssh::{SshFiles, ssh_files};

/// The Kubernetes version the lab builds from Debian's source package.
pub const DEFAULT_K8S_VERSION: &str = "v1.20.2";

/// Errors of the lab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lab needs root (network namespaces, bind mounts).
    #[error("the lab needs root (network namespaces and bind mounts); run it as root")]
    NotRoot,
    /// A prerequisite program or file is missing; names the Debian/PyPI package.
    #[error("{what} not found: {hint}")]
    Missing {
        /// What is missing.
        what: String,
        /// How to get it (package name or script).
        hint: String,
    },
    /// An external command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its standard error.
        stderr: String,
    },
    /// A file could not be read or written.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file held something unexpected.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// No lab has been brought up (or it was torn down).
    #[error("no lab is up (state file {0} missing); run `kastellan lab up`")]
    NotUp(PathBuf),
    /// The requested node is not part of the lab.
    #[error("node '{node}' is not part of the lab (nodes: {known})")]
    UnknownNode {
        /// The node asked for.
        node: String,
        /// The lab's nodes.
        known: String,
    },
    /// A lab with a different shape already runs.
    #[error(
        "a lab is already up with a different shape ({running}); run `kastellan lab down` first"
    )]
    Conflict {
        /// What runs now.
        running: String,
    },
    /// Waiting for the control plane timed out.
    #[error("timed out after {seconds}s waiting for: {waiting_for}")]
    Timeout {
        /// How long was waited.
        seconds: u64,
        /// What was not ready.
        waiting_for: String,
    },
    /// A CertificateSigningRequest was denied or failed.
    #[error("CertificateSigningRequest {name} {condition}: {message}")]
    CsrRefused {
        /// The request.
        name: String,
        /// `Denied` or `Failed`.
        condition: String,
        /// The condition's message.
        message: String,
    },
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A kubeconfig could not be loaded.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

/// Result type of the lab crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the lab keeps its state: `$KASTELLAN_LAB_DIR`, or `/var/lib/kastellan/lab`.
pub fn lab_dir() -> PathBuf {
    std::env::var_os("KASTELLAN_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/kastellan/lab"))
}

/// Where built binaries and sources are cached: `$KASTELLAN_CACHE`, or
/// `/var/cache/kastellan`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KASTELLAN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/kastellan"))
}

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a file atomically (parents created): temp file in the same directory, fsync,
/// rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = kastellan_kubeadm::fs::parent_dir(path);
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    kastellan_kubeadm::fs::write_atomic(path, data, mode).map_err(|e| {
        let path = e.path().to_path_buf();
        match e {
            kastellan_kubeadm::fs::Error::Io { op, source, .. } => io_err(op, &path)(source),
            other => io_err("writing", &path)(std::io::Error::other(other.to_string())),
        }
    })
}

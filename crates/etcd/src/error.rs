//! The one error type of this crate.

use std::path::PathBuf;

/// Why a call to an etcd member failed, classified from the gRPC/transport error so that
/// the message names the likely cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcCause {
    /// Nothing listens there (connection refused), or the host is unreachable.
    Unreachable,
    /// No answer within the timeout.
    Timeout,
    /// The member's certificate is not signed by the CA we trust, or does not name the
    /// address we dialled.
    ServerCertificate,
    /// The member refused our client certificate (not signed by its trusted CA, or missing).
    ClientCertificate,
    /// TLS failed otherwise (plain-text server, wrong protocol, ...).
    Tls,
    /// The member answered with a gRPC error (no leader, permission denied, ...).
    Status,
    /// The connection broke (the member went away while we were talking to it).
    ConnectionLost,
    /// Anything else.
    Other,
}

impl std::fmt::Display for RpcCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RpcCause::Unreachable => "cannot connect (is etcd running and listening there?)",
            RpcCause::Timeout => "no answer in time",
            RpcCause::ServerCertificate => {
                "the member's TLS certificate is not trusted (wrong --cacert, or the certificate does not name this address)"
            }
            RpcCause::ClientCertificate => {
                "the member rejected our client certificate (wrong --cert/--key, or not signed by the CA etcd trusts)"
            }
            RpcCause::Tls => "TLS handshake failed",
            RpcCause::Status => "etcd returned an error",
            RpcCause::ConnectionLost => "the connection to the member was lost",
            RpcCause::Other => "request failed",
        })
    }
}

/// Everything that can go wrong in this crate. Each variant names the endpoint, member or
/// file involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No endpoint was given or discovered.
    #[error(
        "no etcd endpoint: pass --endpoints, or --manifests-dir pointing at kubeadm's static pod manifests"
    )]
    NoEndpoints,

    /// An endpoint is not an `http://` or `https://` URL.
    #[error("invalid etcd endpoint '{endpoint}': {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Some but not all of CA, certificate and key were given.
    #[error("incomplete TLS flags: {0}")]
    IncompleteTls(String),

    /// A certificate or key file cannot be read.
    #[error("cannot read {what} {}", path.display())]
    ReadTlsFile {
        /// "CA certificate", "client certificate" or "client key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A certificate or key file does not hold what it should.
    #[error("{}: not a usable {what}: {reason}", path.display())]
    BadTlsFile {
        /// "CA certificate", "client certificate" or "client key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A static pod manifest cannot be read.
    #[error("cannot read manifest {}", path.display())]
    ReadManifest {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A static pod manifest does not have the expected shape.
    #[error("manifest {}: {message}", path.display())]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// Discovery found neither an etcd nor a kube-apiserver manifest.
    #[error(
        "no etcd endpoints or certificates found: neither {} nor {} exists; pass --endpoints, --cacert, --cert and --key",
        etcd.display(),
        apiserver.display()
    )]
    NothingDiscovered {
        /// Where the etcd manifest was looked for.
        etcd: PathBuf,
        /// Where the kube-apiserver manifest was looked for.
        apiserver: PathBuf,
    },

    /// The client could not be set up for an endpoint (bad URL or TLS material).
    #[error("etcd {endpoint}: cannot set up the client: {message}")]
    Setup {
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        message: String,
    },

    /// A call to a member failed.
    #[error("etcd {endpoint}: {operation}: {cause}: {detail}")]
    Rpc {
        /// The endpoint dialled.
        endpoint: String,
        /// The operation ("status", "member list", "snapshot", ...).
        operation: &'static str,
        /// The classified cause.
        cause: RpcCause,
        /// The underlying message, flattened.
        detail: String,
    },

    /// No member could be used for the operation.
    #[error("no healthy etcd member to take the snapshot from: {}", tried.join("; "))]
    NoHealthyMember {
        /// One line per member or endpoint tried, with the reason it was not used.
        tried: Vec<String>,
    },

    /// No member has the name or id given.
    #[error(
        "no etcd member '{given}'; the members are: {}{}",
        known.join(", "),
        if unstarted.is_empty() {
            String::new()
        } else {
            format!(
                " (a member that never started has no name yet: give its id, {})",
                unstarted.join(", ")
            )
        }
    )]
    UnknownMember {
        /// What was given.
        given: String,
        /// Every member as `name (id)`.
        known: Vec<String>,
        /// The ids of members that never started (etcd learns a name at the start).
        unstarted: Vec<String>,
    },

    /// Several members have the name given.
    #[error("several etcd members are named '{given}' ({}); give the id", ids.join(", "))]
    AmbiguousMember {
        /// What was given.
        given: String,
        /// Their ids in hex.
        ids: Vec<String>,
    },

    /// The snapshot stream ended before the size etcd announced.
    #[error(
        "etcd {endpoint}: snapshot stream ended early after {received} bytes ({remaining} announced as still to come)"
    )]
    SnapshotTruncated {
        /// The endpoint.
        endpoint: String,
        /// Bytes received.
        received: u64,
        /// Bytes the last message said were still to come.
        remaining: u64,
    },

    /// The sha256 etcd appended does not match the bytes received.
    #[error(
        "etcd {endpoint}: snapshot checksum mismatch: etcd sent sha256 {expected}, the received data hashes to {actual}"
    )]
    SnapshotChecksum {
        /// The endpoint.
        endpoint: String,
        /// The trailer etcd sent.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },

    /// The snapshot stream stalled.
    #[error("etcd {endpoint}: snapshot stream stalled: no data for {seconds}s")]
    SnapshotStalled {
        /// The endpoint.
        endpoint: String,
        /// The idle timeout.
        seconds: u64,
    },

    /// The destination exists and `--force` was not given.
    #[error("{} already exists; pass --force to overwrite it", path.display())]
    Exists {
        /// The destination.
        path: PathBuf,
    },

    /// Another save is writing the `.part` file: a running process holds its lock.
    #[error(
        "{} is being written by another save that is still running (it holds the file's lock); wait for it to finish",
        path.display()
    )]
    Busy {
        /// The `.part` file.
        path: PathBuf,
    },

    /// Writing the snapshot file failed (disk full, permissions, ...).
    #[error("{action} {}: {source}", path.display())]
    Write {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The written file cannot be read back as a snapshot.
    #[error("verifying {}", path.display())]
    Verify {
        /// The file.
        path: PathBuf,
        /// The reader's error (boxed: it is large).
        #[source]
        source: Box<kastellan_snapshot::Error>,
    },

    /// The written file is not a clean snapshot.
    #[error("{} is not a clean snapshot: {faults}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The first findings, joined.
        faults: String,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Classifies an etcd-client error and flattens its chain into one line.
pub(crate) fn rpc_error(
    endpoint: &str,
    operation: &'static str,
    err: &etcd_client::Error,
) -> Error {
    let detail = flatten(err);
    let cause = classify(err, &detail);
    Error::Rpc {
        endpoint: endpoint.to_string(),
        operation,
        cause,
        detail,
    }
}

fn flatten(err: &etcd_client::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |s: String| {
        let s = s.trim().to_string();
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    };
    match err {
        etcd_client::Error::GRpcStatus(status) => {
            push(format!("{:?}: {}", status.code(), status.message()));
            let mut src = std::error::Error::source(status);
            while let Some(e) = src {
                push(e.to_string());
                src = e.source();
            }
        }
        etcd_client::Error::TransportError(t) => {
            push(t.to_string());
            let mut src = std::error::Error::source(t);
            while let Some(e) = src {
                push(e.to_string());
                src = e.source();
            }
        }
        other => push(other.to_string()),
    }
    parts.join(": ")
}

/// Pure classification from the error kind and its flattened text.
pub(crate) fn classify(err: &etcd_client::Error, detail: &str) -> RpcCause {
    // etcd-client does not re-export tonic's `Code`; its Debug names are stable.
    let code = match err {
        etcd_client::Error::GRpcStatus(s) => Some(format!("{:?}", s.code())),
        _ => None,
    };
    let deadline = code.as_deref() == Some("DeadlineExceeded");
    let server_status = code
        .as_deref()
        .is_some_and(|c| !matches!(c, "Unavailable" | "Unknown" | "Cancelled"));
    classify_text(deadline, server_status, detail)
}

pub(crate) fn classify_text(deadline: bool, server_status: bool, detail: &str) -> RpcCause {
    let d = detail.to_ascii_lowercase();
    if deadline || d.contains("timed out") || d.contains("timeout") || d.contains("deadline") {
        return RpcCause::Timeout;
    }
    if d.contains("unknownissuer")
        || d.contains("unknown issuer")
        || d.contains("notvalidforname")
        || d.contains("not valid for name")
        || d.contains("invalid peer certificate")
        || d.contains("badsignature")
    {
        return RpcCause::ServerCertificate;
    }
    if d.contains("certificate required")
        || d.contains("bad certificate")
        || d.contains("badcertificate")
        || d.contains("certificaterequired")
        || d.contains("unknown ca")
        || d.contains("unknownca")
        || d.contains("decrypt error")
    {
        return RpcCause::ClientCertificate;
    }
    if d.contains("connection refused")
        || d.contains("no route to host")
        || d.contains("network is unreachable")
        || d.contains("tcp connect error")
        || d.contains("dns error")
    {
        return RpcCause::Unreachable;
    }
    if d.contains("connection reset")
        || d.contains("broken pipe")
        || d.contains("connection closed")
        || d.contains("stream closed")
        || d.contains("h2 protocol error")
        || d.contains("error reading a body")
        || d.contains("unexpected eof")
        || d.contains("goaway")
        || d.contains("close_notify")
    {
        return RpcCause::ConnectionLost;
    }
    if d.contains("tls") || d.contains("handshake") || d.contains("corrupt message") {
        return RpcCause::Tls;
    }
    if server_status {
        return RpcCause::Status;
    }
    RpcCause::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_common_failures() {
        let c = |s| classify_text(false, false, s);
        assert_eq!(
            c("transport error: tcp connect error: Connection refused (os error 111)"),
            RpcCause::Unreachable
        );
        assert_eq!(
            c("invalid peer certificate: UnknownIssuer"),
            RpcCause::ServerCertificate
        );
        assert_eq!(
            c("received fatal alert: CertificateRequired"),
            RpcCause::ClientCertificate
        );
        assert_eq!(
            c("received fatal alert: BadCertificate"),
            RpcCause::ClientCertificate
        );
        assert_eq!(c("connection reset by peer"), RpcCause::ConnectionLost);
        assert_eq!(
            c(
                "h2 protocol error: error reading a body from connection: peer closed connection without sending TLS close_notify"
            ),
            RpcCause::ConnectionLost
        );
        assert_eq!(c("operation timed out"), RpcCause::Timeout);
        assert_eq!(classify_text(true, true, "x"), RpcCause::Timeout);
        assert_eq!(
            classify_text(false, true, "etcdserver: no leader"),
            RpcCause::Status
        );
    }
}

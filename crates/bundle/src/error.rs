//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong with bundles; each variant names the file, member or
/// resource involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle would hold private keys or Secrets in the clear.
    #[error(
        "the bundle would hold {what} unencrypted: pass --recipient or --passphrase-file, or --allow-unencrypted-secrets to accept that"
    )]
    UnencryptedSecrets {
        /// "CA private keys and Secrets", ...
        what: String,
    },

    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A running process holds the lock of a file this run would write.
    #[error(
        "{} is being written by another run that is still going (it holds the file's lock); wait for it to finish",
        path.display()
    )]
    Busy {
        /// The file.
        path: PathBuf,
    },

    /// The etcd snapshot could not be taken.
    #[error("etcd snapshot")]
    Etcd(#[from] kastellan_etcd::Error),

    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {what}")]
    Kube {
        /// What was asked.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },

    /// An age recipient, identity or passphrase is unusable.
    #[error("encryption: {0}")]
    Crypto(String),

    /// The bundle could not be decrypted.
    #[error("{}: cannot decrypt: {message}", path.display())]
    Decrypt {
        /// The bundle.
        path: PathBuf,
        /// Why.
        message: String,
    },

    /// The bundle is damaged or incomplete.
    #[error("{}: {message}", path.display())]
    Corrupt {
        /// The bundle.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// The snapshot inside the bundle is not a clean etcd snapshot.
    #[error("{}: the etcd snapshot inside is damaged: {message}", path.display())]
    BadSnapshot {
        /// The bundle.
        path: PathBuf,
        /// The reader's findings.
        message: String,
    },

    /// A `resources/` member of a verified bundle is not the YAML kastellan writes.
    #[error("{member}: {message}")]
    BadResource {
        /// The member.
        member: String,
        /// What is wrong.
        message: String,
    },

    /// A value could not be encoded.
    #[error("encoding {what}: {message}")]
    Encode {
        /// What.
        what: String,
        /// Why.
        message: String,
    },

    /// A request to the object store failed.
    #[error("s3://{bucket}/{key}: {action}: {}", summary(cause))]
    Remote {
        /// What was being done (`uploading`, `listing`, ...).
        action: &'static str,
        /// The bucket.
        bucket: String,
        /// The object's key (or the prefix listed).
        key: String,
        /// The store's error (boxed: it is large). Not a `#[source]`: its chain repeats
        /// the server's answer at every level, so the message carries its summary.
        cause: Box<object_store::Error>,
    },

    /// A remote copy is not what it should be (no sidecar, another sha256, ...).
    #[error("s3://{bucket}/{key}: {message}")]
    RemoteState {
        /// The bucket.
        bucket: String,
        /// The object's key.
        key: String,
        /// What is wrong.
        message: String,
    },

    /// The cluster does not serve the volume snapshot API.
    #[error(
        "the cluster does not serve {group_version} (VolumeSnapshot, VolumeSnapshotClass): the external-snapshotter's CRDs and snapshot controller are not installed"
    )]
    SnapshotApiMissing {
        /// `snapshot.storage.k8s.io/v1`.
        group_version: String,
    },

    /// The VolumeSnapshotClass asked for does not exist.
    #[error("no VolumeSnapshotClass {name} in the cluster (it has: {})", if have.is_empty() { "none".to_string() } else { have.join(", ") })]
    UnknownSnapshotClass {
        /// The class asked for.
        name: String,
        /// The classes the cluster has.
        have: Vec<String>,
    },

    /// A VolumeSnapshot reported an error.
    #[error("VolumeSnapshot {namespace}/{name} (of PVC {pvc}) failed: {message}")]
    VolumeSnapshotFailed {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The PVC it snapshots.
        pvc: String,
        /// `status.error.message`.
        message: String,
    },

    /// VolumeSnapshots did not become ready in time.
    #[error("VolumeSnapshots not ready to use after {}s: {}", waited.as_secs(), pending.join(", "))]
    VolumeSnapshotTimeout {
        /// How long was waited.
        waited: std::time::Duration,
        /// `namespace/name` of each one not ready.
        pending: Vec<String>,
    },

    /// Invalid request (flags).
    #[error("{0}")]
    Usage(String),
}

/// The store's error in one line: the server's error code and message when it sent
/// one (`NoSuchBucket: The specified bucket does not exist`), else the innermost cause
/// (`Connection refused`).
fn summary(e: &object_store::Error) -> String {
    let mut chain = vec![e.to_string()];
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cur {
        chain.push(c.to_string());
        cur = c.source();
    }
    let all = chain.join(" ");
    let tag = |t: &str| {
        let open = format!("<{t}>");
        let from = all.find(&open)? + open.len();
        let len = all[from..].find(&format!("</{t}>"))?;
        Some(all[from..from + len].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => chain.pop().unwrap_or_default(),
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_are_summarised() {
        let e = object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::other(
                "Server returned 404: <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>",
            )),
        };
        assert_eq!(
            summary(&e),
            "NoSuchBucket: The specified bucket does not exist"
        );
        let e = object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::other("Connection refused")),
        };
        assert_eq!(summary(&e), "Connection refused");
    }
}

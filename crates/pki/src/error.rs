//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading, checking or renewing certificates.
///
/// Every variant names the file and, where one is involved, the certificate, so that a
/// message alone tells an operator where to look.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A durable write failed.
    #[error(transparent)]
    Fs(#[from] kastellan_kubeadm::fs::Error),
    /// Holding static pods out or putting them back failed.
    #[error(transparent)]
    Node(#[from] kastellan_kubeadm::Error),
    /// A file or directory could not be written, renamed or created.
    #[error("writing {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file is malformed (bad armour or base64).
    #[error("{path}: corrupted PEM: {detail}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        detail: String,
    },
    /// A file holds no block of the expected kind.
    #[error("{path}: no {what} found")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What was looked for, e.g. "CERTIFICATE block" or "private key".
        what: &'static str,
    },
    /// A certificate's DER does not parse as X.509.
    #[error("{path}: not a valid X.509 certificate: {detail}")]
    Certificate {
        /// The file the certificate came from.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// A private key could not be loaded.
    #[error("{path}: cannot load private key: {detail}")]
    Key {
        /// The file the key came from.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// A kubeconfig file is malformed or lacks the client credentials.
    #[error("{path}: {detail}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A private key does not belong to the certificate it sits beside.
    #[error("{name}: the private key in {key_path} does not match the certificate in {cert_path}")]
    KeyMismatch {
        /// The certificate's name, e.g. `apiserver`.
        name: String,
        /// Where the certificate is.
        cert_path: PathBuf,
        /// Where the key is.
        key_path: PathBuf,
    },
    /// A certificate cannot be renewed because its CA's private key is absent.
    #[error(
        "cannot renew {names}: CA '{ca}' is externally managed (no key at {key_path}); \
         have that CA re-sign them, or name the other certificates explicitly"
    )]
    ExternalCa {
        /// The certificates that would need the key, comma separated.
        names: String,
        /// The CA's name, e.g. `ca`.
        ca: String,
        /// Where the key was looked for.
        key_path: PathBuf,
    },
    /// A certificate cannot be renewed because it (or its CA certificate) is absent.
    #[error("cannot renew {name}: {path} does not exist")]
    Absent {
        /// The certificate's name.
        name: String,
        /// The missing file.
        path: PathBuf,
    },
    /// A name given on the command line is not a certificate kastellan knows.
    #[error("unknown certificate '{name}'; known: {known}")]
    UnknownName {
        /// The name given.
        name: String,
        /// The names that can be renewed, comma separated.
        known: String,
    },
    /// A certificate is known but is not renewed by kastellan (CAs, kubelet-managed ones).
    #[error("{name} is not renewed by kastellan: {reason}")]
    NotRenewable {
        /// The certificate's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The certificate has a shape the renewal cannot reproduce faithfully.
    #[error("{name}: cannot reproduce {path} faithfully: {detail}")]
    Unsupported {
        /// The certificate's name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// What cannot be reproduced.
        detail: String,
    },
    /// Signing or key generation failed.
    #[error("{name}: signing failed: {detail}")]
    Sign {
        /// The certificate's name.
        name: String,
        /// The signer's message.
        detail: String,
    },
    /// The freshly signed certificate did not pass the checks made before writing it.
    #[error("{name}: the renewed certificate failed verification ({detail}); nothing was written")]
    Verify {
        /// The certificate's name.
        name: String,
        /// Which check failed.
        detail: String,
    },
    /// Writing the renewed files failed part-way; the files already replaced were restored.
    #[error(
        "writing renewed files failed at {path}: {source}; restored from the backup in {backup_dir}"
    )]
    Apply {
        /// The file whose write failed.
        path: PathBuf,
        /// The backup directory holding the old files.
        backup_dir: PathBuf,
        /// The cause.
        #[source]
        source: Box<Error>,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The one error type of this crate.

/// Everything that can go wrong while making, reading or checking tokens, hashes and
/// encrypted certificates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A token is not `[a-z0-9]{6}.[a-z0-9]{16}`.
    #[error("'{0}' is not a bootstrap token (expected [a-z0-9]{{6}}.[a-z0-9]{{16}})")]
    Token(String),
    /// A token ID is not `[a-z0-9]{6}`.
    #[error("'{0}' is not a bootstrap token ID (expected [a-z0-9]{{6}}, or ID.SECRET)")]
    TokenId(String),
    /// A usage is neither `signing` nor `authentication`.
    #[error("unknown token usage '{0}' (known: signing, authentication)")]
    Usage(String),
    /// An extra group does not match `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`.
    #[error(
        "'{0}' is not a bootstrap group (it must match system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9])"
    )]
    Group(String),
    /// The operating system's random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// A bootstrap token Secret lacks a field or holds a bad one.
    #[error("Secret {secret}: {detail}")]
    Secret {
        /// The Secret's name.
        secret: String,
        /// What is wrong.
        detail: String,
    },
    /// A certificate could not be read.
    #[error("{what}: {detail}")]
    Certificate {
        /// Which certificate (file name or object).
        what: String,
        /// What the parser said.
        detail: String,
    },
    /// A kubeconfig (the `cluster-info` ConfigMap's) could not be read.
    #[error("kubeconfig in {what}: {detail}")]
    Kubeconfig {
        /// Where it came from.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// A certificate key is not 64 hex digits (32 bytes).
    #[error("a certificate key is 64 hex digits (32 bytes for AES-256)")]
    CertificateKey,
    /// AES-GCM sealing or opening failed (wrong key, or a corrupted blob).
    #[error("{0}: wrong certificate key or corrupted data (AES-GCM authentication failed)")]
    Decrypt(String),
    /// Encryption failed.
    #[error("AES-GCM encryption failed")]
    Encrypt,
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

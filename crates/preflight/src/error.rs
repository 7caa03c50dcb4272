//! The one error type of this crate.

/// What went wrong while parsing input or reading facts. Every variant names the
/// value or file it is about; none names a command-line flag (the binary adds that).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CIDR does not parse.
    #[error("{input:?} is not a CIDR: {reason}")]
    Cidr {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file (or a command's output) does not hold what it should.
    #[error("{what}: {reason}")]
    Parse {
        /// The file or command.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The crate's one error type: every variant names the node (or the inventory file).

use std::path::PathBuf;
use std::time::Duration;

/// Errors of node access.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local program that reaches the node could not be started.
    #[error("{node}: could not start `{program}`")]
    Start {
        /// The node.
        node: String,
        /// The local program (`ssh`, `kastellan`, or the command itself).
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command did not finish in time; it was killed.
    #[error("{node}: `{command}` did not finish within {}s; it was stopped", timeout.as_secs())]
    Timeout {
        /// The node.
        node: String,
        /// The command line on the node.
        command: String,
        /// How long it had.
        timeout: Duration,
    },
    /// The command ran and failed.
    #[error("{node}: `{command}` failed ({status}): {stderr}")]
    Failed {
        /// The node.
        node: String,
        /// The command line on the node.
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its standard error.
        stderr: String,
    },
    /// ssh itself failed (exit status 255): no connection, authentication or host key
    /// refused.
    #[error("{node}: ssh to {destination} failed: {stderr}")]
    Unreachable {
        /// The node.
        node: String,
        /// The ssh destination (`user@address` or a host name from the ssh config).
        destination: String,
        /// What ssh said.
        stderr: String,
    },
    /// A local file could not be read or written.
    #[error("{node}: {action} {}", path.display())]
    Io {
        /// The node the file was for.
        node: String,
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A remote path must be absolute.
    #[error("{node}: remote path {} is not absolute", path.display())]
    RelativePath {
        /// The node.
        node: String,
        /// The path given.
        path: PathBuf,
    },
    /// The inventory file could not be read or parsed.
    #[error("inventory {}: {message}", path.display())]
    Inventory {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// One node of the inventory is wrong.
    #[error("inventory {}: node {node}: {message}", path.display())]
    InventoryNode {
        /// The file.
        path: PathBuf,
        /// The node (its name, or its position when it has none).
        node: String,
        /// What was wrong.
        message: String,
    },
    /// The node is not in the inventory.
    #[error("{node}: not in the inventory {} (nodes: {known})", path.display())]
    UnknownNode {
        /// The node asked for.
        node: String,
        /// The inventory file.
        path: PathBuf,
        /// The nodes it lists.
        known: String,
    },
}

/// Result type of node access.
pub type Result<T, E = Error> = std::result::Result<T, E>;

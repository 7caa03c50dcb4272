//! The errors of the drain library.

use crate::facts::PodRef;

/// What can go wrong while reading facts, cordoning, evicting or waiting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A node asked for does not exist.
    #[error("node {node:?} not found")]
    NodeNotFound {
        /// The node.
        node: String,
    },
    /// The API server rejected the pod label selector.
    #[error("the API server rejects the pod selector {selector:?}: {message}")]
    BadSelector {
        /// The selector as given.
        selector: String,
        /// The server's message.
        message: String,
    },
    /// The API server serves no `pods/eviction` subresource.
    #[error("the API server serves no pods/eviction subresource")]
    NoEvictionApi,
    /// A request to the API server failed.
    #[error("{action}: {source}")]
    Api {
        /// What was being done, e.g. `listing pods`.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// Evicting or deleting a pod failed for another reason than a budget.
    #[error("removing pod {pod}: {source}")]
    Remove {
        /// The pod.
        pod: PodRef,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A node's drain task ended abnormally (panicked or was cancelled).
    #[error("a drain task ended abnormally: {reason}")]
    Task {
        /// What the runtime said.
        reason: String,
    },
}

impl Error {
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Api { action, source }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

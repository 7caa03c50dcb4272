//! The crate's one error type.

use std::path::PathBuf;

use crate::fault::{Fault, FaultKind};

/// Why a snapshot file could not be inspected or its figures not computed.
///
/// Every variant names the file. Damage that `verify` can describe is not an error:
/// it is listed as [`Fault`]s in the [`Inspection`](crate::Inspection).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a bbolt database (no valid meta page), so not an etcd snapshot.
    #[error("{} is not an etcd snapshot (bbolt database): {kind}", path.display())]
    NotBbolt {
        /// The file.
        path: PathBuf,
        /// Why: too small, or neither meta page valid.
        kind: FaultKind,
    },
    /// The file is damaged in a way that keeps the figures from being computed.
    #[error("{} is corrupt: {}", path.display(), Fault { page: *page, offset: *offset, kind: kind.clone() })]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The page where the damage was found, if it is about one page.
        page: Option<u64>,
        /// The byte offset where the damage was found, if known.
        offset: Option<u64>,
        /// What is wrong.
        kind: FaultKind,
    },
}

impl Error {
    /// Attaches a path to a fault found by the pure reader.
    pub(crate) fn from_fault(path: PathBuf, fault: Fault) -> Self {
        match fault.kind {
            FaultKind::TooSmall { .. } | FaultKind::NoValidMeta { .. } => Error::NotBbolt {
                path,
                kind: fault.kind,
            },
            kind => Error::Corrupt {
                path,
                page: fault.page,
                offset: fault.offset,
                kind,
            },
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Error::Read { path, .. }
            | Error::NotBbolt { path, .. }
            | Error::Corrupt { path, .. } => path,
        }
    }
}

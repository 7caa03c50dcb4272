//! The typed exchange between the node that coordinates a multi-member restore and
//! each control-plane node: one [`NodeRequest`] in (JSON on the node's stdin), one
//! [`NodeResponse`] out (JSON on its stdout), whatever the node access (lab, ssh).
//!
//! The coordinator first asks every node for its etcd [`Ask::Member`] (to build the new
//! `--initial-cluster`), then for its [`Ask::Plan`] (each node verifies the source and
//! plans; one refusal stops everything before any change), then, phase by phase, asks
//! each node to [`Ask::Run`] its steps up to that phase. A node that already holds the
//! journal of the same run resumes it, so a repeated request never runs a step twice.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bump::{BumpAsk, LiveRevision};
use crate::procedure::{self, ETCD_MANIFEST, Phase, Plan, ProcedureError};

/// The version of this exchange; a node that speaks another one refuses the request.
pub const PROTOCOL: u32 = 2;

/// What the coordinator asks a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeRequest {
    /// [`PROTOCOL`] of the coordinator.
    pub protocol: u32,
    /// The node's static pod manifests directory.
    pub manifests_dir: PathBuf,
    /// etcd runs as this systemd unit, not as a static pod.
    pub etcd_unit: Option<String>,
    /// What to do.
    pub ask: Ask,
}

/// The question of a [`NodeRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Ask {
    /// This node's etcd member: its name and peer URLs, and its live revision.
    Member,
    /// Verify the source and plan this node's part; change nothing.
    Plan(NodeRun),
    /// Run this node's steps up to and including `until` (resuming the run's journal
    /// when the node has it).
    Run(NodeRun),
}

/// One node's part of a multi-member restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeRun {
    /// What is restored (the same file, at the same path, on every node).
    pub source: Source,
    /// The run id shared by every node.
    pub run_id: String,
    /// The new cluster's `--initial-cluster` (every member's `name=peer-urls`).
    pub initial_cluster: String,
    /// How long each wait may take, in seconds.
    pub timeout_secs: u64,
    /// The last phase to run.
    pub until: Phase,
    /// The revision bump asked for, with the live revision the coordinator read from
    /// the members (every node decides the same bump from it and the same snapshot).
    pub bump: BumpAsk,
}

/// The snapshot a node restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Source {
    /// An etcd snapshot file.
    Snapshot {
        /// Its absolute path.
        path: PathBuf,
    },
    /// A backup bundle (verified on the node; its cluster-wide PKI compared).
    #[serde(rename_all = "camelCase")]
    Bundle {
        /// Its absolute path.
        path: PathBuf,
        /// An age identity file, for a bundle encrypted to a recipient.
        identity: Option<PathBuf>,
        /// A passphrase file, for a passphrase-encrypted bundle.
        passphrase_file: Option<PathBuf>,
    },
}

/// What a node answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum NodeResponse {
    /// Its etcd member.
    #[serde(rename_all = "camelCase")]
    Member {
        /// etcd's `--name`.
        name: String,
        /// etcd's `--initial-advertise-peer-urls`.
        peer_urls: String,
        /// The revision of the node's etcd, read before anything is stopped.
        live: LiveRevision,
    },
    /// Its plan (nothing was changed).
    Planned {
        /// The plan, as `restore --dry-run -o json` shows it.
        plan: Box<Plan>,
    },
    /// The phases of the run that are done now.
    Ran {
        /// The run id.
        run: String,
        /// Every phase done entirely, in order.
        done: Vec<Phase>,
    },
    /// The request failed or was refused; `error` says why, naming the node's files.
    Failed {
        /// The message.
        error: String,
    },
}

impl NodeResponse {
    /// The `name=peer-urls` entry of `--initial-cluster`.
    pub fn member_entry(&self) -> Option<String> {
        match self {
            NodeResponse::Member {
                name, peer_urls, ..
            } => Some(format!("{name}={peer_urls}")),
            _ => None,
        }
    }
}

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not a request.
    #[error("not a restore node request: {0}")]
    Json(#[from] serde_json::Error),
    /// Another protocol version.
    #[error(
        "the coordinator speaks restore node protocol {got}, this kastellan speaks {PROTOCOL}; run the same kastellan version on every node"
    )]
    Protocol {
        /// The coordinator's version.
        got: u32,
    },
}

impl NodeRequest {
    /// Reads a request, refusing another protocol version.
    pub fn from_json(bytes: &[u8]) -> Result<NodeRequest, RequestError> {
        let req: NodeRequest = serde_json::from_slice(bytes)?;
        if req.protocol != PROTOCOL {
            return Err(RequestError::Protocol { got: req.protocol });
        }
        Ok(req)
    }
}

/// This node's etcd member (`name`, peer URLs), from etcd's manifest in
/// `manifests_dir` or from its systemd `unit`, with the `live` revision the caller read.
pub fn member(
    manifests_dir: &Path,
    unit: Option<&str>,
    live: LiveRevision,
) -> Result<NodeResponse, ProcedureError> {
    let (name, peer_urls) = match unit {
        Some(unit) => {
            let facts = crate::gather_systemd(unit, manifests_dir, Path::new("/"), Path::new("/"))?;
            let Some(sd) = facts.systemd else {
                return Err(ProcedureError::BadManifest {
                    path: PathBuf::from(unit),
                    detail: "no unit facts".into(),
                });
            };
            let (_, e) = crate::systemd::etcd_settings(&sd.files)?;
            (e.name, e.peer_urls)
        }
        None => {
            let path = manifests_dir.join(ETCD_MANIFEST);
            let text = std::fs::read_to_string(&path).map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    ProcedureError::MissingManifest { path: path.clone() }
                } else {
                    ProcedureError::Io {
                        op: "reading",
                        path: path.clone(),
                        source,
                    }
                }
            })?;
            let flags = procedure::etcd_flags(&path, &text)?;
            let need = |f: &str| {
                flags
                    .get(f)
                    .map(str::to_string)
                    .ok_or_else(|| ProcedureError::BadManifest {
                        path: path.clone(),
                        detail: format!("no --{f}"),
                    })
            };
            (need("name")?, need("initial-advertise-peer-urls")?)
        }
    };
    Ok(NodeResponse::Member {
        name,
        peer_urls,
        live,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_refuse_other_protocols() {
        let req = NodeRequest {
            protocol: PROTOCOL,
            manifests_dir: "/etc/kubernetes/manifests".into(),
            etcd_unit: None,
            ask: Ask::Run(NodeRun {
                source: Source::Bundle {
                    path: "/b/x.kbundle".into(),
                    identity: None,
                    passphrase_file: Some("/b/pass".into()),
                },
                run_id: "20261201T000000Z".into(),
                initial_cluster: "cp1=https://10.0.0.1:2380".into(),
                timeout_secs: 180,
                until: Phase::StopEtcd,
                bump: BumpAsk::Past {
                    live: LiveRevision::Read {
                        revision: 860,
                        endpoint: "https://127.0.0.1:2379".into(),
                    },
                },
            }),
        };
        let json = serde_json::to_vec(&req).unwrap();
        let text = String::from_utf8_lossy(&json);
        assert!(text.contains(r#""kind":"run""#), "{text}");
        assert!(text.contains(r#""until":"stop-etcd""#), "{text}");
        assert_eq!(NodeRequest::from_json(&json).unwrap(), req);

        let other = text.replace(r#""protocol":2"#, r#""protocol":1"#);
        let err = NodeRequest::from_json(other.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("protocol 1"), "{err}");
        let unknown = text.replace(r#""etcdUnit":null"#, r#""etcdUnit":null,"x":1"#);
        assert!(NodeRequest::from_json(unknown.as_bytes()).is_err());
    }

    #[test]
    fn member_reads_name_and_peer_urls_from_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let unread = || LiveRevision::Unread {
            reason: "etcd down".into(),
        };
        let missing = member(dir.path(), None, unread()).unwrap_err();
        assert!(
            matches!(missing, ProcedureError::MissingManifest { .. }),
            "{missing}"
        );
        std::fs::write(
            dir.path().join(ETCD_MANIFEST),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\nspec:\n  containers:\n  - name: etcd\n    command:\n    - etcd\n    - --name=cp1\n    - --initial-advertise-peer-urls=https://10.0.0.1:2380\n",
        )
        .unwrap();
        let m = member(dir.path(), None, unread()).unwrap();
        assert_eq!(
            m.member_entry().as_deref(),
            Some("cp1=https://10.0.0.1:2380")
        );
    }
}

//! `--restart`: restart static pods the way kubeadm's documentation says, by moving their
//! manifests out of the kubelet's manifest directory and, after the kubelet has stopped
//! the pods, back in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::layout::Component;

/// What a restart did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestartOutcome {
    /// Where the manifests waited while out.
    pub staging_dir: PathBuf,
    /// Components whose manifests were moved out and back.
    pub moved: Vec<Component>,
    /// Components without a manifest in the directory (e.g. external etcd), as messages.
    pub skipped: Vec<String>,
    /// How long the manifests stayed out.
    pub waited_seconds: u64,
}

/// The default staging directory for a manifests directory: `<parent>/tmp/kastellan-restart-<stamp>`,
/// on the same filesystem so that moves are renames.
pub fn staging_dir(manifests_dir: &Path, stamp: &str) -> PathBuf {
    let parent = manifests_dir.parent().unwrap_or(Path::new("/"));
    fsutil::unique_dir(
        parent
            .join("tmp")
            .join(format!("kastellan-restart-{stamp}")),
    )
}

/// Moves the manifests of `components` from `manifests_dir` into `staging`, calls `wait`
/// with `out_for` (the kubelet notices within its file-check period, 20 s by default),
/// then moves them back. If moving back fails the error says where the manifest is.
pub fn restart_static_pods(
    manifests_dir: &Path,
    staging: &Path,
    components: &[Component],
    out_for: Duration,
    wait: impl FnOnce(Duration),
) -> Result<RestartOutcome> {
    let mut moved = Vec::new();
    let mut skipped = Vec::new();
    let present: Vec<Component> = components
        .iter()
        .copied()
        .filter(|c| {
            let there = manifests_dir.join(c.manifest()).is_file();
            if !there {
                skipped.push(format!(
                    "{}: no {} in {}",
                    c.name(),
                    c.manifest(),
                    manifests_dir.display()
                ));
            }
            there
        })
        .collect();
    if !present.is_empty() {
        fsutil::create_private_dir(staging)?;
    }
    let mut failure = None;
    for c in &present {
        let from = manifests_dir.join(c.manifest());
        let to = staging.join(c.manifest());
        match std::fs::rename(&from, &to) {
            Ok(()) => moved.push(*c),
            Err(source) => {
                failure = Some(Error::Write { path: from, source });
                break;
            }
        }
    }
    if failure.is_none() && !moved.is_empty() {
        wait(out_for);
    }
    // Always move back whatever was moved out, even after a failure.
    for c in &moved {
        let from = staging.join(c.manifest());
        let to = manifests_dir.join(c.manifest());
        std::fs::rename(&from, &to).map_err(|source| Error::Write {
            path: PathBuf::from(format!(
                "{} (the manifest is still at {}; move it back by hand)",
                to.display(),
                from.display()
            )),
            source,
        })?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let _ = std::fs::remove_dir(staging);
    Ok(RestartOutcome {
        staging_dir: staging.to_path_buf(),
        moved,
        skipped,
        waited_seconds: out_for.as_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_out_waits_and_moves_back() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifests");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("kube-apiserver.yaml"), "a").unwrap();
        std::fs::write(m.join("etcd.yaml"), "e").unwrap();
        let staging = staging_dir(&m, "T");
        let mut seen = Vec::new();
        let out = restart_static_pods(
            &m,
            &staging,
            &[
                Component::Etcd,
                Component::KubeApiserver,
                Component::KubeScheduler,
            ],
            Duration::from_secs(0),
            |_| {
                seen = std::fs::read_dir(&m)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert!(staging.join("etcd.yaml").exists());
            },
        )
        .unwrap();
        assert!(
            seen.is_empty(),
            "manifests were out during the wait: {seen:?}"
        );
        assert_eq!(out.moved, vec![Component::Etcd, Component::KubeApiserver]);
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(
            std::fs::read_to_string(m.join("kube-apiserver.yaml")).unwrap(),
            "a"
        );
        assert!(!staging.exists(), "staging removed");
    }
}

//! `--restart`: restart static pods the way kubeadm's documentation says, by holding
//! their manifests out of the kubelet's manifest directory until the pods have stopped,
//! then putting them back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kastellan_kubeadm::{Component, Hold};
use serde::Serialize;

use crate::error::Result;

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
    /// Components whose port still answered when the manifests went back (not seen to
    /// stop within the wait: the kubelet may not have restarted them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_stopped: Vec<Component>,
}

/// The default staging directory for a manifests directory: `<parent>/tmp/kastellan-restart-<stamp>`,
/// on the same filesystem so that moves are renames.
pub fn staging_dir(manifests_dir: &Path, stamp: &str) -> PathBuf {
    let parent = manifests_dir.parent().unwrap_or(Path::new("/"));
    kastellan_kubeadm::fs::unique_dir(
        parent
            .join("tmp")
            .join(format!("kastellan-restart-{stamp}")),
    )
}

/// The port `c` serves, from its manifest in `dir`; `None` when it has no manifest. A
/// manifest that is there but does not parse is still moved (the kubelet reads it as it
/// is), and the component's default port is watched.
pub fn port_of(dir: &Path, c: Component) -> Option<u16> {
    let path = dir.join(c.manifest());
    if !path.is_file() {
        return None;
    }
    let flags = kastellan_kubeadm::StaticPod::read(&path)
        .ok()
        .flatten()
        .and_then(|pod| pod.flags(c.name()).ok())
        .unwrap_or_default();
    Some(kastellan_kubeadm::manifest::component_port(c, &flags))
}

/// Holds the manifests of `components` out of `manifests_dir` (in `staging`) until each
/// component's port on 127.0.0.1 has closed, at most `out_for` (a component whose port
/// did not answer before is given the whole `out_for`: the kubelet notices a manifest
/// change within its file-check period, 20 s by default), then puts them back. If
/// putting one back fails the error says where the manifest is.
pub fn restart_static_pods(
    manifests_dir: &Path,
    staging: &Path,
    components: &[Component],
    out_for: Duration,
    closed: impl Fn(u16) -> bool,
) -> Result<RestartOutcome> {
    let mut skipped = Vec::new();
    let mut present = Vec::new();
    for c in components {
        match port_of(manifests_dir, *c) {
            Some(port) => present.push((*c, port, !closed(port))),
            None => skipped.push(format!(
                "{}: no {} in {}",
                c.name(),
                c.manifest(),
                manifests_dir.display()
            )),
        }
    }
    let files: Vec<String> = present
        .iter()
        .map(|(c, ..)| c.manifest().to_string())
        .collect();
    let start = Instant::now();
    let mut not_stopped = Vec::new();
    if !files.is_empty() {
        let hold = Hold::take(manifests_dir, staging, &files)?;
        for (c, port, answered) in &present {
            let stopped = if *answered {
                kastellan_kubeadm::hold::wait_until(out_for.saturating_sub(start.elapsed()), || {
                    closed(*port)
                })
            } else {
                std::thread::sleep(out_for.saturating_sub(start.elapsed()));
                true
            };
            if !stopped {
                not_stopped.push(*c);
            }
        }
        hold.release()?;
        let _ = std::fs::remove_dir(staging);
    }
    Ok(RestartOutcome {
        staging_dir: staging.to_path_buf(),
        moved: present.iter().map(|(c, ..)| *c).collect(),
        skipped,
        waited_seconds: start.elapsed().as_secs(),
        not_stopped,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn manifest(name: &str, port: u16) -> String {
        format!(
            "spec:\n  containers:\n  - name: {name}\n    command: [{name}, --secure-port={port}]\n"
        )
    }

    #[test]
    fn holds_until_the_ports_close_then_moves_back() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifests");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(
            m.join("kube-apiserver.yaml"),
            manifest("kube-apiserver", 16443),
        )
        .unwrap();
        std::fs::write(
            m.join("kube-controller-manager.yaml"),
            manifest("kube-controller-manager", 20257),
        )
        .unwrap();
        let staging = staging_dir(&m, "T");
        // The apiserver's port closes on the third look, after its manifest left; the
        // controller-manager's never does.
        let looks = RefCell::new(0);
        let out = restart_static_pods(
            &m,
            &staging,
            &[
                Component::KubeApiserver,
                Component::KubeControllerManager,
                Component::KubeScheduler,
            ],
            Duration::from_millis(600),
            |port| {
                if port == 20257 {
                    return false;
                }
                *looks.borrow_mut() += 1;
                let n = *looks.borrow();
                if n > 1 {
                    assert!(
                        !m.join("kube-apiserver.yaml").exists(),
                        "held while waiting"
                    );
                    assert!(staging.join("kube-apiserver.yaml").exists());
                }
                n > 3
            },
        )
        .unwrap();
        assert_eq!(
            out.moved,
            vec![Component::KubeApiserver, Component::KubeControllerManager]
        );
        assert_eq!(out.not_stopped, vec![Component::KubeControllerManager]);
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(
            std::fs::read_to_string(m.join("kube-apiserver.yaml")).unwrap(),
            manifest("kube-apiserver", 16443)
        );
        assert!(!staging.exists(), "staging removed");
    }
}

//! Holding static pods out of the kubelet's manifest directory, and putting them back.
//!
//! The kubelet stops a static pod when its manifest leaves the directory and starts it
//! again when the manifest returns; kubeadm's documentation restarts control-plane
//! components this way, and a restore stops the whole control plane this way.
//! [`Hold::take`] moves manifests into a holding directory on the same filesystem
//! (renames, never copies); the [`Hold`] guard moves them back when dropped, unless
//! [`Hold::keep`] hands the manifests over to a record ([`Held`]) that outlives the
//! process (a restore's state file), whose [`Held::release`] puts them back later.
//! Both sides are idempotent, so a crashed run resumes.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Manifests held out: where from, where to, which files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    /// The kubelet's manifest directory.
    pub manifests_dir: PathBuf,
    /// Where the manifests wait.
    pub holding_dir: PathBuf,
    /// The file names held (`kube-apiserver.yaml`, ...).
    pub files: Vec<String>,
}

impl Held {
    /// Moves every held manifest back; those back already are skipped. A manifest that
    /// cannot go back is named with the place where it still is.
    pub fn release(&self) -> Result<()> {
        for n in &self.files {
            let (from, to) = (self.holding_dir.join(n), self.manifests_dir.join(n));
            if from.exists() && !to.exists() {
                std::fs::rename(&from, &to).map_err(|source| Error::MoveBack {
                    manifest: to.clone(),
                    held_at: from.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Whether every held manifest is out of the manifest directory.
    pub fn is_out(&self) -> bool {
        self.files
            .iter()
            .all(|n| !self.manifests_dir.join(n).exists() && self.holding_dir.join(n).exists())
    }
}

/// Manifests held out for as long as the guard lives: dropping it moves them back.
#[derive(Debug)]
#[must_use = "dropping a Hold puts the manifests back at once"]
pub struct Hold {
    held: Held,
    armed: bool,
}

impl Hold {
    /// Moves `files` from `manifests_dir` into `holding_dir` (created private). Those
    /// already held are kept there (a resumed run); one found in neither place is
    /// [`Error::MissingManifest`]. If a move fails, those moved already go back.
    pub fn take(manifests_dir: &Path, holding_dir: &Path, files: &[String]) -> Result<Hold> {
        if !holding_dir.is_dir() {
            kastellan_fs::create_private_dir(holding_dir)?;
        }
        let mut hold = Hold {
            held: Held {
                manifests_dir: manifests_dir.to_path_buf(),
                holding_dir: holding_dir.to_path_buf(),
                files: Vec::new(),
            },
            armed: true,
        };
        for n in files {
            let (from, to) = (manifests_dir.join(n), holding_dir.join(n));
            if from.exists() && !to.exists() {
                std::fs::rename(&from, &to).map_err(|source| Error::Move {
                    from: from.clone(),
                    to: to.clone(),
                    source,
                })?; // dropping `hold` moves back those moved so far
            } else if !to.exists() {
                return Err(Error::MissingManifest { path: from });
            }
            hold.held.files.push(n.clone());
        }
        Ok(hold)
    }

    /// What is held.
    pub fn held(&self) -> &Held {
        &self.held
    }

    /// Waits until nothing accepts connections on 127.0.0.1:`port` (the component has
    /// stopped), polling; false after `timeout`.
    pub fn wait_until_closed(&self, port: u16, timeout: Duration) -> bool {
        wait_until(timeout, || !answers(port))
    }

    /// Puts the manifests back now.
    pub fn release(mut self) -> Result<()> {
        self.armed = false;
        self.held.release()
    }

    /// Leaves the manifests out beyond this guard: the caller records the returned
    /// [`Held`] and releases it later (another phase, another process).
    pub fn keep(mut self) -> Held {
        self.armed = false;
        std::mem::replace(
            &mut self.held,
            Held {
                manifests_dir: PathBuf::new(),
                holding_dir: PathBuf::new(),
                files: Vec::new(),
            },
        )
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.armed {
            // Best effort on an error path; the error that led here is the one reported.
            let _ = self.held.release();
        }
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Polls `ok` every 250 ms until it says true (then true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ok() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifests");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("kube-apiserver.yaml"), "a").unwrap();
        std::fs::write(m.join("etcd.yaml"), "e").unwrap();
        let h = dir.path().join("held/run1");
        (dir, m, h)
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_dropped_hold_puts_the_manifests_back() {
        let (_d, m, h) = setup();
        {
            let hold = Hold::take(&m, &h, &names(&["etcd.yaml", "kube-apiserver.yaml"])).unwrap();
            assert!(hold.held().is_out());
            assert!(!m.join("etcd.yaml").exists());
        }
        assert_eq!(std::fs::read_to_string(m.join("etcd.yaml")).unwrap(), "e");
        assert!(m.join("kube-apiserver.yaml").exists());
    }

    #[test]
    fn a_kept_hold_stays_out_until_released_and_resumes() {
        let (_d, m, h) = setup();
        let held = Hold::take(&m, &h, &names(&["kube-apiserver.yaml"]))
            .unwrap()
            .keep();
        assert!(!m.join("kube-apiserver.yaml").exists());
        // A resumed run takes the same hold again: already held is fine.
        let again = Hold::take(&m, &h, &names(&["kube-apiserver.yaml"])).unwrap();
        assert_eq!(again.keep(), held);
        held.release().unwrap();
        held.release().unwrap();
        assert!(m.join("kube-apiserver.yaml").exists());
    }

    #[test]
    fn a_manifest_in_neither_place_is_refused_and_nothing_stays_out() {
        let (_d, m, h) = setup();
        let err = Hold::take(&m, &h, &names(&["etcd.yaml", "kube-scheduler.yaml"])).unwrap_err();
        assert!(err.to_string().contains("kube-scheduler.yaml"), "{err}");
        assert!(m.join("etcd.yaml").exists(), "moved back on failure");
    }

    #[test]
    fn closed_ports_are_seen() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(answers(port));
        drop(l);
        assert!(wait_until(Duration::from_secs(2), || !answers(port)));
    }
}

//! `certs renew` on the executor (`kastellan-exec`): a [`RenewPlan`] becomes typed steps
//! that one executor describes (dry run) or performs (run), journalled so that a killed
//! run resumes at its step.
//!
//! - phase `backup`: every file that will be replaced is copied into the plan's backup
//!   directory (0700), mode and owner kept;
//! - phase `renew`: one step per certificate, which re-signs it with its CA *when it
//!   runs* (a new key, if asked for, is made there too), so that neither the plan, nor
//!   its description, nor the journal ever holds key material. Each step's clean-up
//!   puts the backed-up files back; the last one is the point of no return;
//! - phase `restart` (with `--restart`): the affected static pods' manifests are held out
//!   of the kubelet's directory until their ports close, then put back.
//!
//! A renewal step is safe to perform again after a crash in its middle: it first puts
//! back any file of its certificate that differs from the backup, then signs from the
//! original files again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kastellan_kubeadm::{Component, Held, Hold};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inventory::{self, Inventory, State};
use crate::layout::{self, Kind, Layout};
use crate::renew::{self, PlannedRenewal, RenewPlan};
use crate::restart::RestartOutcome;

/// The executor plan's kind: a saved plan of another kind is refused.
pub const KIND: &str = "certs-renew";

/// The executor's plan of a renewal.
pub type ExecPlan = kastellan_exec::Plan<Action, Basis>;

/// A file that a renewal replaces, and its copy in the backup directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupFile {
    /// The file replaced.
    pub file: PathBuf,
    /// Its copy.
    pub backup: PathBuf,
}

/// A static pod's port, watched to see the pod stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Watch {
    /// The component.
    pub component: Component,
    /// The port it serves on 127.0.0.1.
    pub port: u16,
}

/// One change of a renewal. No variant holds key material: keys are read and made
/// while a step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Copies every file into `dir` (created 0700), keeping modes and owners.
    Backup {
        /// The backup directory.
        dir: PathBuf,
        /// The files and their copies.
        files: Vec<BackupFile>,
    },
    /// Re-signs one certificate with its CA (same key unless the renewal says
    /// otherwise) and replaces its files atomically, modes and owners kept.
    Renew {
        /// What to renew.
        renewal: PlannedRenewal,
        /// Its files' backups (put back first if a crashed run left them half done).
        backups: Vec<BackupFile>,
    },
    /// Puts a certificate's backed-up files back (the clean-up of [`Action::Renew`]).
    PutBack {
        /// The certificate.
        name: String,
        /// The files and their copies.
        files: Vec<BackupFile>,
    },
    /// Moves static pod manifests out of the kubelet's directory and waits until the
    /// pods' ports close (at most `wait_secs`; a port that did not answer before gets
    /// the whole wait, the kubelet's file check period).
    #[serde(rename_all = "camelCase")]
    HoldUntilStopped {
        /// What is held where.
        held: Held,
        /// The ports watched.
        watch: Vec<Watch>,
        /// The longest wait.
        wait_secs: u64,
    },
    /// Moves held manifests back.
    Release {
        /// What is held where.
        held: Held,
    },
}

/// A CA as the plan found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaFact {
    /// Its certificate file.
    pub file: PathBuf,
    /// SHA-256 of its certificate's DER, hex.
    pub sha256: String,
    /// Whether its key file is there.
    pub key_present: bool,
}

/// A certificate as the plan found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertFact {
    /// Its file (the `.crt`, or the kubeconfig).
    pub file: PathBuf,
    /// Its serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Its end of validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
    /// Why it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The node's certificates as they were when the plan was made: a saved plan is
/// applied only while these are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    /// The directories read.
    pub layout: Layout,
    /// Every CA present, by name.
    pub authorities: BTreeMap<String, CaFact>,
    /// Every other certificate present, by name.
    pub certificates: BTreeMap<String, CertFact>,
}

impl NodeFacts {
    /// The facts of an inventory.
    pub fn of(inv: &Inventory) -> NodeFacts {
        let mut authorities = BTreeMap::new();
        for e in &inv.authorities {
            if let State::Present(f) = &e.state {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &f.cert.der);
                let sha256 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                let key_present = layout::CaId::ALL
                    .into_iter()
                    .find(|ca| ca.name() == e.spec.name)
                    .is_some_and(|ca| inv.ca_key_present(ca));
                authorities.insert(
                    e.spec.name.to_string(),
                    CaFact {
                        file: f.cert_file.clone(),
                        sha256,
                        key_present,
                    },
                );
            }
        }
        let mut certificates = BTreeMap::new();
        for e in &inv.certificates {
            let fact = match &e.state {
                State::Absent { .. } => continue,
                State::Present(f) => CertFact {
                    file: f.cert_file.clone(),
                    serial: Some(f.cert.facts.serial.clone()),
                    not_after: Some(f.cert.facts.not_after),
                    error: None,
                },
                State::Broken(err) => CertFact {
                    file: inventory::primary_path(&inv.layout, e.spec),
                    serial: None,
                    not_after: None,
                    error: Some(err.to_string()),
                },
            };
            certificates.insert(e.spec.name.to_string(), fact);
        }
        NodeFacts {
            layout: inv.layout.clone(),
            authorities,
            certificates,
        }
    }
}

/// What a renewal run is built from: the node's facts (checked again before a saved
/// plan runs) and the renewal itself (for the report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Basis {
    /// The node as it was read.
    pub node: NodeFacts,
    /// The renewal the steps carry out.
    pub renewal: RenewPlan,
    /// Static pods that need a restart but have no manifest to move, as messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_skipped: Vec<String>,
}

/// The restart asked for: where the manifests are and wait, which ports to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartSteps {
    /// The kubelet's manifest directory.
    pub manifests_dir: PathBuf,
    /// Where the manifests wait (on the same filesystem).
    pub staging: PathBuf,
    /// The components with a manifest, and their ports.
    pub watch: Vec<Watch>,
    /// Those without one, as messages.
    pub skipped: Vec<String>,
    /// The longest wait.
    pub wait: Duration,
}

/// The ports of the components with a manifest in `manifests_dir` and messages for
/// those without one.
pub fn watches(manifests_dir: &Path, components: &[Component]) -> (Vec<Watch>, Vec<String>) {
    let mut watch = Vec::new();
    let mut skipped = Vec::new();
    for c in components {
        match crate::restart::port_of(manifests_dir, *c) {
            Some(port) => watch.push(Watch {
                component: *c,
                port,
            }),
            None => skipped.push(format!(
                "{}: no {} in {}",
                c.name(),
                c.manifest(),
                manifests_dir.display()
            )),
        }
    }
    (watch, skipped)
}

/// The files of `r` and their place in the backup directory.
fn backups_of(layout: &Layout, backup_dir: &Path, r: &PlannedRenewal) -> Vec<BackupFile> {
    r.writes
        .iter()
        .map(|w| BackupFile {
            file: w.clone(),
            backup: backup_dir.join(layout::backup_relative(layout, w)),
        })
        .collect()
}

/// Turns a renewal into the executor's plan: back up, renew each certificate (the last
/// one is the point of no return), and with `restart` hold and release the static
/// pods. Pure.
pub fn exec_plan(
    id: &str,
    node_name: &str,
    node: NodeFacts,
    renewal: RenewPlan,
    restart: Option<&RestartSteps>,
) -> ExecPlan {
    let mut steps = Vec::new();
    let all: Vec<BackupFile> = renewal
        .renew
        .iter()
        .flat_map(|r| backups_of(&node.layout, &renewal.backup_dir, r))
        .collect();
    if !all.is_empty() {
        steps.push(kastellan_exec::Step::new(
            node_name,
            "backup",
            Action::Backup {
                dir: renewal.backup_dir.clone(),
                files: all,
            },
        ));
    }
    let n = renewal.renew.len();
    for (i, r) in renewal.renew.iter().enumerate() {
        let backups = backups_of(&node.layout, &renewal.backup_dir, r);
        let step = kastellan_exec::Step::new(
            node_name,
            "renew",
            Action::Renew {
                renewal: r.clone(),
                backups: backups.clone(),
            },
        );
        // The last renewal is the point of no return: its clean-up would never run.
        steps.push(if i + 1 == n {
            step.commit()
        } else {
            step.undo(Action::PutBack {
                name: r.name.clone(),
                files: backups,
            })
        });
    }
    let mut restart_skipped = Vec::new();
    if let Some(rs) = restart
        && !renewal.restart.is_empty()
    {
        restart_skipped = rs.skipped.clone();
        if !rs.watch.is_empty() {
            let held = Held {
                manifests_dir: rs.manifests_dir.clone(),
                holding_dir: rs.staging.clone(),
                files: rs
                    .watch
                    .iter()
                    .map(|w| w.component.manifest().to_string())
                    .collect(),
            };
            steps.push(
                kastellan_exec::Step::new(
                    node_name,
                    "restart",
                    Action::HoldUntilStopped {
                        held: held.clone(),
                        watch: rs.watch.clone(),
                        wait_secs: rs.wait.as_secs(),
                    },
                )
                .undo(Action::Release { held: held.clone() }),
            );
            steps.push(kastellan_exec::Step::new(
                node_name,
                "restart",
                Action::Release { held },
            ));
        }
    }
    kastellan_exec::Plan {
        kind: KIND.into(),
        id: id.into(),
        facts: Basis {
            node,
            renewal,
            restart_skipped,
        },
        steps,
    }
}

/// Whether `saved`'s steps are exactly those [`exec_plan`] makes from its own facts and
/// restart (a plan edited by hand is not).
pub fn steps_match(saved: &ExecPlan) -> bool {
    let held = saved.steps.iter().find_map(|s| match &s.action {
        Action::HoldUntilStopped {
            held,
            watch,
            wait_secs,
        } => Some(RestartSteps {
            manifests_dir: held.manifests_dir.clone(),
            staging: held.holding_dir.clone(),
            watch: watch.clone(),
            skipped: saved.facts.restart_skipped.clone(),
            wait: Duration::from_secs(*wait_secs),
        }),
        _ => None,
    });
    // --restart with no manifest to move: no restart step, only the messages.
    let held = held.or_else(|| {
        (!saved.facts.restart_skipped.is_empty()).then(|| RestartSteps {
            manifests_dir: PathBuf::new(),
            staging: PathBuf::new(),
            watch: Vec::new(),
            skipped: saved.facts.restart_skipped.clone(),
            wait: Duration::ZERO,
        })
    });
    let node_name = saved.steps.first().map_or("", |s| s.node.as_str());
    let again = exec_plan(
        &saved.id,
        node_name,
        saved.facts.node.clone(),
        saved.facts.renewal.clone(),
        held.as_ref(),
    );
    again == *saved
}

/// What performing the steps needs, and what they found out.
pub struct Context {
    /// The node's certificate directories.
    pub layout: Layout,
    /// Whether nothing answers on 127.0.0.1:port any more.
    pub port_closed: Box<dyn Fn(u16) -> bool + Send + Sync>,
    /// What the steps did, for the report.
    pub outcome: Mutex<StepsOutcome>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for the certificates under `layout`, watching ports with `port_closed`.
    pub fn new(layout: Layout, port_closed: Box<dyn Fn(u16) -> bool + Send + Sync>) -> Context {
        Context {
            layout,
            port_closed,
            outcome: Mutex::new(StepsOutcome::default()),
        }
    }

    fn record(&self, f: impl FnOnce(&mut StepsOutcome)) {
        // A poisoned lock only means another step panicked; its record is still usable.
        let mut g = self
            .outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g);
    }

    /// What the steps of this process did.
    pub fn take_outcome(&self) -> StepsOutcome {
        std::mem::take(
            &mut *self
                .outcome
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// What the steps performed by this process did (a resumed run knows only its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepsOutcome {
    /// New serial numbers by certificate name.
    pub serials: BTreeMap<String, String>,
    /// Files replaced.
    pub written: Vec<PathBuf>,
    /// The restart.
    pub restarted: Option<RestartOutcome>,
}

fn stamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn manifests_moved(held: &Held, from: &Path, to: &Path) -> String {
    format!(
        "move {} from {} to {}",
        held.files.join(", "),
        from.display(),
        to.display()
    )
}

impl kastellan_exec::Action for Action {
    type Context = Context;
    type Error = Error;

    fn describe(&self) -> String {
        match self {
            Action::Backup { dir, files } => {
                let mut s = format!(
                    "back up {} {} into {} (mode 0700), modes and owners kept",
                    files.len(),
                    if files.len() == 1 { "file" } else { "files" },
                    dir.display()
                );
                for f in files {
                    s.push_str(&format!(
                        "\n  {} -> {}",
                        f.file.display(),
                        f.backup.display()
                    ));
                }
                s
            }
            Action::Renew { renewal: r, .. } => {
                let what = match r.kind {
                    Kind::Kubeconfig => format!(
                        "the client certificate embedded in {}",
                        r.cert_file.display()
                    ),
                    _ => r.cert_file.display().to_string(),
                };
                let key = match (r.new_key, r.kind) {
                    (true, Kind::Kubeconfig) => "a new key, embedded".to_string(),
                    (true, _) => format!("a new key written to {} (0600)", r.key_file.display()),
                    (false, Kind::Kubeconfig) => "same key, embedded".to_string(),
                    (false, _) => format!("same key {}", r.key_file.display()),
                };
                format!(
                    "renew {}: re-sign {what} with CA '{}' ({key}), valid {} to {}, mode kept",
                    r.name,
                    r.ca.name(),
                    stamp(r.new_not_before),
                    stamp(r.new_not_after)
                )
            }
            Action::PutBack { name, files } => {
                let list: Vec<String> = files
                    .iter()
                    .map(|f| format!("{} from {}", f.file.display(), f.backup.display()))
                    .collect();
                format!("put back {name}'s old files: {}", list.join(", "))
            }
            Action::HoldUntilStopped {
                held,
                watch,
                wait_secs,
            } => {
                let ports: Vec<String> = watch
                    .iter()
                    .map(|w| format!("{} {}", w.component.name(), w.port))
                    .collect();
                format!(
                    "{}; wait until 127.0.0.1 ports {} close (at most {wait_secs}s)",
                    manifests_moved(held, &held.manifests_dir, &held.holding_dir),
                    ports.join(", ")
                )
            }
            Action::Release { held } => {
                manifests_moved(held, &held.holding_dir, &held.manifests_dir)
            }
        }
    }

    fn apply(&self, ctx: &Context) -> Result<()> {
        match self {
            Action::Backup { dir, files } => {
                kastellan_kubeadm::fs::create_private_dir(dir)?;
                for f in files {
                    // Through a symlink, the file it points to.
                    let real = std::fs::canonicalize(&f.file).map_err(|source| Error::Read {
                        path: f.file.clone(),
                        source,
                    })?;
                    kastellan_kubeadm::fs::backup_copy(&real, &f.backup)?;
                }
                Ok(())
            }
            Action::Renew { renewal, backups } => {
                // A run killed in the middle of this step may have replaced some of the
                // files: start again from the originals.
                for b in backups {
                    put_back(b, false)?;
                }
                let inv = Inventory::load(&ctx.layout);
                let (writes, serial) = renew::sign_item(&inv, renewal, true)?;
                let mut written = Vec::new();
                for w in &writes {
                    match renew::write_keeping_mode(&w.path, &w.data, w.mode) {
                        Ok(real) => written.push(real),
                        Err(e) => {
                            // The executor undoes the steps before this one: this one's
                            // own files (a new certificate without its new key) go back
                            // here. The error that stopped it is the one reported.
                            for b in backups {
                                let _ = put_back(b, false);
                            }
                            return Err(e);
                        }
                    }
                }
                ctx.record(|o| {
                    o.serials.insert(renewal.name.clone(), serial);
                    o.written.extend(written);
                });
                Ok(())
            }
            Action::PutBack { files, .. } => {
                for b in files {
                    put_back(b, true)?;
                }
                Ok(())
            }
            Action::HoldUntilStopped {
                held,
                watch,
                wait_secs,
            } => {
                let closed = &ctx.port_closed;
                let answered: Vec<bool> = watch.iter().map(|w| !closed(w.port)).collect();
                let start = Instant::now();
                let out_for = Duration::from_secs(*wait_secs);
                // Kept out beyond this step: the next one puts them back.
                let _held = Hold::take(&held.manifests_dir, &held.holding_dir, &held.files)?.keep();
                let mut not_stopped = Vec::new();
                for (w, answered) in watch.iter().zip(answered) {
                    let stopped = if answered {
                        kastellan_kubeadm::hold::wait_until(
                            out_for.saturating_sub(start.elapsed()),
                            || closed(w.port),
                        )
                    } else {
                        std::thread::sleep(out_for.saturating_sub(start.elapsed()));
                        true
                    };
                    if !stopped {
                        not_stopped.push(w.component);
                    }
                }
                ctx.record(|o| {
                    o.restarted = Some(RestartOutcome {
                        staging_dir: held.holding_dir.clone(),
                        moved: watch.iter().map(|w| w.component).collect(),
                        skipped: Vec::new(),
                        waited_seconds: start.elapsed().as_secs(),
                        not_stopped,
                    });
                });
                Ok(())
            }
            Action::Release { held } => {
                held.release()?;
                let _ = std::fs::remove_dir(&held.holding_dir);
                Ok(())
            }
        }
    }
}

/// Writes `b`'s backup over its file (through a symlink, the file it points to) with
/// the backup's mode and owner; unless `always`, only when the contents differ.
fn put_back(b: &BackupFile, always: bool) -> Result<()> {
    let data = std::fs::read(&b.backup).map_err(|source| Error::Read {
        path: b.backup.clone(),
        source,
    })?;
    if !always && std::fs::read(&b.file).is_ok_and(|now| now == data) {
        return Ok(());
    }
    let real = std::fs::canonicalize(&b.file).unwrap_or_else(|_| b.file.clone());
    let own = kastellan_kubeadm::fs::ownership(&b.backup)?;
    kastellan_kubeadm::fs::write_owned(&real, &data, own.map_or(0o600, |o| o.mode), own)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::CaId;

    fn renewal(dir: &Path) -> RenewPlan {
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        let item = |name: &str, file: &str| PlannedRenewal {
            name: name.into(),
            kind: Kind::Leaf,
            ca: CaId::Ca,
            cert_file: dir.join("pki").join(format!("{file}.crt")),
            key_file: dir.join("pki").join(format!("{file}.key")),
            writes: vec![dir.join("pki").join(format!("{file}.crt"))],
            current_not_after: t,
            new_not_before: t,
            new_not_after: t,
            new_key: false,
            restart: Some(Component::KubeApiserver),
        };
        RenewPlan {
            created_at: t,
            backup_dir: dir.join("tmp/backup"),
            new_key: false,
            renew: vec![
                item("apiserver", "apiserver"),
                item("front-proxy-client", "front-proxy-client"),
            ],
            skipped: Vec::new(),
            restart: vec![Component::KubeApiserver],
            notes: Vec::new(),
        }
    }

    fn facts(dir: &Path) -> NodeFacts {
        NodeFacts {
            layout: Layout {
                cert_dir: dir.join("pki"),
                kubeconfig_dir: dir.to_path_buf(),
                kubelet_pki_dir: dir.join("kubelet"),
            },
            authorities: BTreeMap::new(),
            certificates: BTreeMap::new(),
        }
    }

    #[test]
    fn steps_back_up_renew_with_put_back_then_restart() {
        let dir = Path::new("/n");
        let rs = RestartSteps {
            manifests_dir: dir.join("manifests"),
            staging: dir.join("tmp/restart"),
            watch: vec![Watch {
                component: Component::KubeApiserver,
                port: 6443,
            }],
            skipped: vec!["etcd: no etcd.yaml".into()],
            wait: Duration::from_secs(20),
        };
        let p = exec_plan("r1", "cp1", facts(dir), renewal(dir), Some(&rs));
        assert_eq!(p.phases(), ["backup", "renew", "restart"]);
        assert_eq!(p.steps.len(), 5);
        assert!(!p.steps[1].commit && p.steps[2].commit);
        assert!(matches!(p.steps[1].undo, Some(Action::PutBack { .. })));
        let d = p.describe();
        assert!(
            d[0].does
                .contains("/n/pki/apiserver.crt -> /n/tmp/backup/pki/apiserver.crt"),
            "{}",
            d[0].does
        );
        assert_eq!(
            d[1].does,
            "renew apiserver: re-sign /n/pki/apiserver.crt with CA 'ca' (same key /n/pki/apiserver.key), valid 2027-01-15T08:00:00Z to 2027-01-15T08:00:00Z, mode kept"
        );
        assert!(
            d[3].does.contains("ports kube-apiserver 6443"),
            "{}",
            d[3].does
        );
        assert_eq!(p.facts.restart_skipped, ["etcd: no etcd.yaml"]);
        // Round trip through JSON, as --plan reads it.
        let json = serde_json::to_vec(&p).unwrap();
        let back = ExecPlan::from_json(KIND, Path::new("p"), &json).unwrap();
        assert_eq!(back, p);
        assert!(steps_match(&back));
        let mut edited = back.clone();
        if let Action::Renew { renewal, .. } = &mut edited.steps[1].action {
            renewal.cert_file = "/etc/shadow".into();
        }
        assert!(!steps_match(&edited));
        // Without --restart, no restart phase.
        let p = exec_plan("r1", "cp1", facts(dir), renewal(dir), None);
        assert_eq!(p.phases(), ["backup", "renew"]);
    }

    #[test]
    fn put_back_restores_content_and_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (file, backup) = (dir.path().join("a.crt"), dir.path().join("b/a.crt"));
        std::fs::write(&file, b"old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        kastellan_kubeadm::fs::backup_copy(&file, &backup).unwrap();
        std::fs::write(&file, b"new").unwrap();
        let b = BackupFile {
            file: file.clone(),
            backup,
        };
        put_back(&b, false).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"old");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
}

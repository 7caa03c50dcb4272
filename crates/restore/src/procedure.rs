//! The control-plane restore procedure of a kubeadm node (`kastellan restore`).
//!
//! [`gather`] reads the node's facts (the static pod manifests, the free space where
//! the new data dir goes); [`plan`] is pure and decides everything: the holding dir for
//! the manifests, the fresh data dir, the rewritten `etcd.yaml`, the steps. The
//! [`Plan`] is serialisable and is stored in a state file together with the phases done
//! ([`State`]); [`Run`] applies the phases strictly in the order of [`Phase`], recording
//! each one atomically, so that a crashed run resumes where it stopped.
//!
//! Phases (one node):
//! 1. `stop-control-plane`: move kube-apiserver, kube-controller-manager and
//!    kube-scheduler manifests into `<holding>/`; wait until the apiserver port no
//!    longer answers (else put them back and refuse).
//! 2. `stop-etcd`: move `etcd.yaml` there too; wait until etcd's client port is closed.
//! 3. `restore`: the native restore into the new data dir (never an existing one).
//! 4. `start-etcd`: write the rewritten `etcd.yaml` into the manifests dir (the original
//!    stays in the holding dir).
//! 5. `wait-etcd`: wait for etcd's `/health`.
//! 6. `start-control-plane`: move the other manifests back.
//! 7. `wait-apiserver`: wait for the apiserver's `/readyz`.
//!
//! A multi-member restore runs each phase on every node before the next phase.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The control-plane manifests held while etcd is restored (besides `etcd.yaml`).
pub const CONTROL_PLANE: [&str; 3] = [
    "kube-apiserver.yaml",
    "kube-controller-manager.yaml",
    "kube-scheduler.yaml",
];
/// etcd's static pod manifest.
pub const ETCD_MANIFEST: &str = "etcd.yaml";
/// Room kept free beyond the snapshot: the WAL's first segment plus a margin.
pub const DISK_MARGIN: u64 = 128 << 20;

/// Why the procedure refused or failed. Every variant names the file or path.
#[derive(Debug, thiserror::Error)]
pub enum ProcedureError {
    /// A manifest the procedure needs is missing.
    #[error("{} is missing: kastellan restore needs etcd's static pod manifest (is this a kubeadm control-plane node? --manifests-dir)", path.display())]
    MissingManifest {
        /// The path.
        path: PathBuf,
    },
    /// The etcd manifest lacks something.
    #[error("{}: {detail}", path.display())]
    BadManifest {
        /// The manifest.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// The new data dir exists already.
    #[error("{} exists already; kastellan restores only into a fresh directory (wait a second for a new timestamp, or move it away)", path.display())]
    TargetExists {
        /// The path.
        path: PathBuf,
    },
    /// Not enough room.
    #[error("{} has {free} bytes free but the restore needs about {needed} (snapshot plus {DISK_MARGIN} bytes for the WAL)", path.display())]
    NoSpace {
        /// The parent dir.
        path: PathBuf,
        /// Free bytes.
        free: u64,
        /// Needed bytes.
        needed: u64,
    },
    /// A multi-member cluster restored on one node only.
    #[error("{}: etcd's --initial-cluster names {members} members; restore every control-plane node with the same snapshot: kastellan restore --all-nodes --node-access lab|ssh", path.display())]
    MultiMember {
        /// The manifest.
        path: PathBuf,
        /// How many members.
        members: usize,
    },
    /// Something still answers after its manifest left.
    #[error("{what} still answers on 127.0.0.1:{port} {secs} s after its manifest was moved out of {}; it is not run from that directory (another kubelet? a process outside the static pods?). Put the manifests back; nothing was restored", manifests_dir.display())]
    StillAnswers {
        /// The component.
        what: &'static str,
        /// The port.
        port: u16,
        /// The timeout.
        secs: u64,
        /// The manifests dir.
        manifests_dir: PathBuf,
    },
    /// A component did not come up.
    #[error("{what} is not healthy at {url} after {secs} s (the restore state is in {}; fix the cause and run kastellan restore --resume)", state.display())]
    NotHealthy {
        /// The component.
        what: &'static str,
        /// The URL probed.
        url: String,
        /// The timeout.
        secs: u64,
        /// The state file.
        state: PathBuf,
    },
    /// A restore is in progress (its state file exists).
    #[error("a restore is in progress: {} records run {run_id} at phase {next}; resume it with kastellan restore --resume (or remove that file once you have put things right by hand)", path.display())]
    InProgress {
        /// The state file.
        path: PathBuf,
        /// Its run.
        run_id: String,
        /// The next phase.
        next: String,
    },
    /// Another process holds the lock.
    #[error("another kastellan restore is running (it holds {})", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// `--resume` without a state file.
    #[error("nothing to resume: {} does not exist", path.display())]
    NothingToResume {
        /// The state file.
        path: PathBuf,
    },
    /// The state file is unreadable.
    #[error("{}: not a kastellan restore state file: {detail}", path.display())]
    BadState {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        detail: String,
    },
    /// The native restore failed.
    #[error(transparent)]
    Restore(#[from] crate::Error),
    /// A file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Injected crash (debug builds, `KASTELLAN_RESTORE_CRASH_AFTER`).
    #[error("crash injected after phase {0}")]
    Crash(String),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ProcedureError {
    let path = path.to_path_buf();
    move |source| ProcedureError::Io { op, path, source }
}

/// The phases, in the only order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Move the apiserver, controller-manager and scheduler manifests out; wait.
    StopControlPlane,
    /// Move etcd's manifest out; wait until its client port is closed.
    StopEtcd,
    /// Restore the snapshot into the fresh data dir.
    Restore,
    /// Put the rewritten `etcd.yaml` in place.
    StartEtcd,
    /// Wait for etcd's `/health`.
    WaitEtcd,
    /// Put the other manifests back.
    StartControlPlane,
    /// Wait for the apiserver's `/readyz`.
    WaitApiserver,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 7] = [
        Phase::StopControlPlane,
        Phase::StopEtcd,
        Phase::Restore,
        Phase::StartEtcd,
        Phase::WaitEtcd,
        Phase::StartControlPlane,
        Phase::WaitApiserver,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::StopControlPlane => "stop-control-plane",
            Phase::StopEtcd => "stop-etcd",
            Phase::Restore => "restore",
            Phase::StartEtcd => "start-etcd",
            Phase::WaitEtcd => "wait-etcd",
            Phase::StartControlPlane => "start-control-plane",
            Phase::WaitApiserver => "wait-apiserver",
        }
    }

    /// Parses a kebab-case name.
    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What [`gather`] read on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    /// The static pod manifests dir.
    pub manifests_dir: PathBuf,
    /// `etcd.yaml` as it is.
    pub etcd_manifest: String,
    /// Which of [`CONTROL_PLANE`] are in the manifests dir.
    pub control_plane: Vec<String>,
    /// The apiserver's `--secure-port` (6443 when not set).
    pub apiserver_port: u16,
    /// Free bytes in the new data dir's parent (None: it does not exist yet).
    pub free_bytes: Option<u64>,
    /// The snapshot's size.
    pub snapshot_bytes: u64,
}

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcedureRequest {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// The run's id: a UTC timestamp `YYYYMMDDTHHMMSSZ`, in the holding and data dir names.
    pub run_id: String,
    /// Where the new data dir is made (`<parent>/etcd-restore-<run id>`).
    pub restore_dir_parent: PathBuf,
    /// Where manifests are held (`<holding root>/<run id>/`).
    pub holding_root: PathBuf,
    /// The new cluster's `--initial-cluster` (multi-member: the same on every node);
    /// None: this node's from `etcd.yaml`.
    pub initial_cluster: Option<String>,
    /// Part of a multi-member restore.
    pub all_nodes: bool,
    /// Put a bundle's PKI in place too (`--restore-pki`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki: Option<PkiRestore>,
}

/// Replacing the node's PKI with a bundle's, during the restore phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PkiRestore {
    /// The bundle's PKI, extracted and verified (kept in the holding dir for a resume).
    pub from: PathBuf,
    /// The node's PKI dir (`/etc/kubernetes/pki`).
    pub to: PathBuf,
}

/// One step as the dry run prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Its phase.
    pub phase: Phase,
    /// What is done, with the exact paths.
    pub actions: Vec<String>,
}

/// Everything the procedure will do on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The run id.
    pub run_id: String,
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// The manifests dir.
    pub manifests_dir: PathBuf,
    /// The holding dir of this run.
    pub holding_dir: PathBuf,
    /// The control-plane manifests held (file names).
    pub held: Vec<String>,
    /// The member name.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: String,
    /// The new cluster.
    pub initial_cluster: String,
    /// The cluster token.
    pub initial_cluster_token: String,
    /// The data dir etcd uses now (left untouched).
    pub old_data_dir: PathBuf,
    /// The fresh data dir.
    pub new_data_dir: PathBuf,
    /// The apiserver's port on 127.0.0.1.
    pub apiserver_port: u16,
    /// etcd's client port on 127.0.0.1.
    pub etcd_client_port: u16,
    /// etcd's health URL (`--listen-metrics-urls` + `/health`).
    pub etcd_health_url: String,
    /// The rewritten `etcd.yaml`.
    pub etcd_manifest: String,
    /// The lines changed in it (old → new).
    pub manifest_changes: Vec<String>,
    /// The steps.
    pub steps: Vec<Step>,
    /// The bundle's PKI to put in place during the restore phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki: Option<PkiRestore>,
}

/// Reads the node's facts. Fails if `etcd.yaml` is missing.
pub fn gather(
    manifests_dir: &Path,
    restore_dir_parent: &Path,
    snapshot: &Path,
) -> Result<Facts, ProcedureError> {
    let etcd = manifests_dir.join(ETCD_MANIFEST);
    let etcd_manifest = match std::fs::read_to_string(&etcd) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ProcedureError::MissingManifest { path: etcd });
        }
        Err(e) => return Err(io("reading", &etcd)(e)),
    };
    let mut control_plane = Vec::new();
    let mut apiserver_port = 6443;
    for name in CONTROL_PLANE {
        let p = manifests_dir.join(name);
        if let Ok(text) = std::fs::read_to_string(&p) {
            if name == "kube-apiserver.yaml"
                && let Some(port) = manifest_flag(&text, "secure-port").and_then(|v| v.parse().ok())
            {
                apiserver_port = port;
            }
            control_plane.push(name.to_string());
        }
    }
    let free_bytes = nix::sys::statvfs::statvfs(restore_dir_parent)
        .ok()
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()));
    let snapshot_bytes = std::fs::metadata(snapshot)
        .map_err(io("reading", snapshot))?
        .len();
    Ok(Facts {
        manifests_dir: manifests_dir.to_path_buf(),
        etcd_manifest,
        control_plane,
        apiserver_port,
        free_bytes,
        snapshot_bytes,
    })
}

/// The value of `- --name=value` in a manifest's command list.
pub fn manifest_flag(text: &str, name: &str) -> Option<String> {
    let prefix = format!("--{name}=");
    text.lines().find_map(|l| {
        let l = l.trim_start();
        let l = l.strip_prefix("- ")?.trim_start();
        let l = l.trim_matches('"').trim_matches('\'');
        l.strip_prefix(&prefix).map(str::to_string)
    })
}

/// The port of the first URL in a comma-separated list that is on 127.0.0.1 or
/// localhost (else the first URL's port).
fn local_port(urls: &str) -> Option<u16> {
    let ports: Vec<(bool, u16)> = urls
        .split(',')
        .filter_map(|u| {
            let rest = u.split("://").nth(1)?;
            let hostport = rest.split('/').next()?;
            let (host, port) = hostport.rsplit_once(':')?;
            Some((
                host == "127.0.0.1" || host == "localhost",
                port.parse().ok()?,
            ))
        })
        .collect();
    ports
        .iter()
        .find(|(local, _)| *local)
        .or(ports.first())
        .map(|(_, p)| *p)
}

/// Rewrites `etcd.yaml` for `new`: the `--data-dir` flag, the `etcd-data` hostPath and
/// its mountPath (a line `path: <old>` / `mountPath: <old>`), every other byte as it was.
/// Returns the new text and the changed lines.
pub fn rewrite_etcd_manifest(
    text: &str,
    old: &Path,
    new: &Path,
) -> Result<(String, Vec<String>), String> {
    let old = old.display().to_string();
    let new = new.display().to_string();
    let mut out = String::with_capacity(text.len() + 64);
    let mut changes = Vec::new();
    let (mut flag, mut host_path) = (0, 0);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let indent_len = body.len() - body.trim_start().len();
        let (indent, rest) = body.split_at(indent_len);
        let replaced = if let Some(v) = rest.strip_prefix("- --data-dir=") {
            (v == old).then(|| {
                flag += 1;
                format!("{indent}- --data-dir={new}")
            })
        } else if let Some(v) = rest.strip_prefix("path: ") {
            (v.trim_end() == old).then(|| {
                host_path += 1;
                format!("{indent}path: {new}")
            })
        } else if let Some(v) = rest.strip_prefix("- mountPath: ") {
            (v.trim_end() == old).then(|| format!("{indent}- mountPath: {new}"))
        } else if let Some(v) = rest.strip_prefix("mountPath: ") {
            (v.trim_end() == old).then(|| format!("{indent}mountPath: {new}"))
        } else {
            None
        };
        match replaced {
            Some(r) => {
                changes.push(format!("{} -> {}", body.trim(), r.trim()));
                out.push_str(&r);
                out.push_str(ending);
            }
            None => out.push_str(line),
        }
    }
    if flag != 1 {
        return Err(format!(
            "expected exactly one `- --data-dir={old}` line, found {flag}"
        ));
    }
    if host_path != 1 {
        return Err(format!(
            "expected exactly one hostPath `path: {old}` (the etcd-data volume), found {host_path}"
        ));
    }
    Ok((out, changes))
}

/// A systemd drop-in that points the etcd unit at `new`: the unit's `ExecStart` with
/// `--data-dir` replaced when it has one, else `ETCD_DATA_DIR` in the environment.
pub fn systemd_dropin(unit: &str, new: &Path) -> String {
    let new = new.display().to_string();
    let mut exec = String::new();
    let mut continued = false;
    for line in unit.lines() {
        let t = line.trim();
        if continued || t.starts_with("ExecStart=") {
            exec.push_str(t.trim_end_matches('\\').trim_end());
            exec.push(' ');
            continued = t.ends_with('\\');
        }
    }
    let mut out = String::from(
        "# Written by kastellan restore: etcd's data dir after a snapshot restore.\n[Service]\n",
    );
    let exec = exec.trim();
    if exec.contains("--data-dir") {
        let words: Vec<String> = exec
            .trim_start_matches("ExecStart=")
            .split_whitespace()
            .scan(false, |next_is_dir, w| {
                Some(if *next_is_dir {
                    *next_is_dir = false;
                    new.clone()
                } else if w.starts_with("--data-dir=") {
                    format!("--data-dir={new}")
                } else if w == "--data-dir" {
                    *next_is_dir = true;
                    w.to_string()
                } else {
                    w.to_string()
                })
            })
            .collect();
        let _ = writeln!(out, "ExecStart=\nExecStart={}", words.join(" "));
    } else {
        let _ = writeln!(out, "Environment=ETCD_DATA_DIR={new}");
    }
    out
}

/// Writes `<unit dir>/<unit>.service.d/50-kastellan-restore.conf` and gives `data_dir`
/// (recursively) to `owner` (uid, gid).
pub fn apply_systemd(
    unit_dir: &Path,
    unit: &str,
    data_dir: &Path,
    owner: Option<(u32, u32)>,
) -> Result<PathBuf, ProcedureError> {
    let unit_file = unit_dir.join(format!("{unit}.service"));
    let text = std::fs::read_to_string(&unit_file).map_err(io("reading", &unit_file))?;
    let dir = unit_dir.join(format!("{unit}.service.d"));
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    let dropin = dir.join("50-kastellan-restore.conf");
    write_atomically(&dropin, systemd_dropin(&text, data_dir).as_bytes())?;
    if let Some((uid, gid)) = owner {
        chown_tree(data_dir, uid, gid)?;
    }
    Ok(dropin)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), ProcedureError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io("chown", path))?;
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path).map_err(io("reading", path))? {
            let e = e.map_err(io("reading", path))?;
            chown_tree(&e.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Plans the procedure on this node from its facts. Pure.
pub fn plan(facts: &Facts, req: &ProcedureRequest) -> Result<Plan, ProcedureError> {
    let etcd_path = facts.manifests_dir.join(ETCD_MANIFEST);
    let bad = |detail: String| ProcedureError::BadManifest {
        path: etcd_path.clone(),
        detail,
    };
    let text = &facts.etcd_manifest;
    let need = |flag: &str| {
        manifest_flag(text, flag).ok_or_else(|| bad(format!("no --{flag} flag in etcd's command")))
    };
    let name = need("name")?;
    let old_data_dir = PathBuf::from(need("data-dir")?);
    let peer_urls = need("initial-advertise-peer-urls")?;
    let own_cluster = need("initial-cluster")?;
    let token =
        manifest_flag(text, "initial-cluster-token").unwrap_or_else(|| "etcd-cluster".into());
    let initial_cluster = req.initial_cluster.clone().unwrap_or(own_cluster);
    let members = initial_cluster.split(',').filter(|s| !s.is_empty()).count();
    if members > 1 && !req.all_nodes {
        return Err(ProcedureError::MultiMember {
            path: etcd_path,
            members,
        });
    }
    crate::cluster::Membership::new(&name, &initial_cluster, &token, &peer_urls, true)
        .map_err(crate::Error::from)?;
    let etcd_client_port = manifest_flag(text, "listen-client-urls")
        .as_deref()
        .and_then(local_port)
        .unwrap_or(2379);
    let etcd_health_url = match manifest_flag(text, "listen-metrics-urls").and_then(|u| {
        u.split(',')
            .find(|u| u.starts_with("http://"))
            .map(str::to_string)
    }) {
        Some(u) => format!("{}/health", u.trim_end_matches('/')),
        None => format!("https://127.0.0.1:{etcd_client_port}/health"),
    };
    let new_data_dir = req
        .restore_dir_parent
        .join(format!("etcd-restore-{}", req.run_id));
    if new_data_dir.starts_with(&old_data_dir) {
        return Err(bad(format!(
            "the new data dir {} would be inside the current one {}",
            new_data_dir.display(),
            old_data_dir.display()
        )));
    }
    let needed = facts.snapshot_bytes + DISK_MARGIN;
    if let Some(free) = facts.free_bytes
        && free < needed
    {
        return Err(ProcedureError::NoSpace {
            path: req.restore_dir_parent.clone(),
            free,
            needed,
        });
    }
    let (etcd_manifest, manifest_changes) =
        rewrite_etcd_manifest(text, &old_data_dir, &new_data_dir).map_err(bad)?;
    let holding_dir = req.holding_root.join(&req.run_id);
    let md = &facts.manifests_dir;
    let held = facts.control_plane.clone();
    let moves = |names: &[String], back: bool| -> Vec<String> {
        names
            .iter()
            .map(|n| {
                let (a, b) = (md.join(n), holding_dir.join(n));
                let (from, to) = if back { (b, a) } else { (a, b) };
                format!("move {} -> {}", from.display(), to.display())
            })
            .collect()
    };
    let etcd_name = [ETCD_MANIFEST.to_string()];
    let mut steps = vec![
        Step {
            phase: Phase::StopControlPlane,
            actions: {
                let mut a = vec![format!("create {}", holding_dir.display())];
                a.extend(moves(&held, false));
                a.push(format!(
                    "wait until 127.0.0.1:{} no longer answers (else move them back and stop)",
                    facts.apiserver_port
                ));
                a
            },
        },
        Step {
            phase: Phase::StopEtcd,
            actions: {
                let mut a = moves(&etcd_name, false);
                a.push(format!("wait until 127.0.0.1:{etcd_client_port} is closed"));
                a
            },
        },
        Step {
            phase: Phase::Restore,
            actions: vec![format!(
                "restore {} into {} as member {name} ({peer_urls}) of {initial_cluster}, token {token}; {} stays untouched",
                req.snapshot.display(),
                new_data_dir.display(),
                old_data_dir.display()
            )],
        },
        Step {
            phase: Phase::StartEtcd,
            actions: vec![format!(
                "write {} (the original stays as {}): {}",
                md.join(ETCD_MANIFEST).display(),
                holding_dir.join(ETCD_MANIFEST).display(),
                manifest_changes.join("; ")
            )],
        },
        Step {
            phase: Phase::WaitEtcd,
            actions: vec![format!("wait for {etcd_health_url} to say healthy")],
        },
        Step {
            phase: Phase::StartControlPlane,
            actions: moves(&held, true),
        },
    ];
    if held.iter().any(|n| n == "kube-apiserver.yaml") {
        steps.push(Step {
            phase: Phase::WaitApiserver,
            actions: vec![format!(
                "wait for https://127.0.0.1:{}/readyz",
                facts.apiserver_port
            )],
        });
    }
    if let Some(pki) = &req.pki
        && let Some(step) = steps.iter_mut().find(|s| s.phase == Phase::Restore)
    {
        step.actions.push(format!(
            "replace {} with the bundle's PKI from {} (the node's PKI is kept as {})",
            pki.to.display(),
            pki.from.display(),
            holding_dir.join("pki-before").display()
        ));
    }
    Ok(Plan {
        run_id: req.run_id.clone(),
        snapshot: req.snapshot.clone(),
        manifests_dir: md.clone(),
        holding_dir,
        held,
        name,
        peer_urls,
        initial_cluster,
        initial_cluster_token: token,
        old_data_dir,
        new_data_dir,
        apiserver_port: facts.apiserver_port,
        etcd_client_port,
        etcd_health_url,
        etcd_manifest,
        manifest_changes,
        steps,
        pki: req.pki.clone(),
    })
}

/// Puts the bundle's PKI in place: a full copy next to the node's PKI, then the
/// node's PKI renamed into the holding dir and the copy renamed into place. Safe to
/// run again after a crash (done once `pki-before` exists and the PKI dir is back).
pub fn replace_pki(pki: &PkiRestore, holding_dir: &Path) -> Result<(), ProcedureError> {
    let before = holding_dir.join("pki-before");
    if before.is_dir() && pki.to.is_dir() {
        return Ok(());
    }
    let staged = pki.to.with_file_name(".pki-from-bundle");
    if !before.is_dir() {
        let _ = std::fs::remove_dir_all(&staged);
        copy_tree(&pki.from, &staged)?;
        std::fs::rename(&pki.to, &before).map_err(|e| ProcedureError::Io {
            op: "moving the node's PKI aside",
            path: pki.to.clone(),
            source: e,
        })?;
    }
    std::fs::rename(&staged, &pki.to).map_err(|e| ProcedureError::Io {
        op: "putting the bundle's PKI in place",
        path: pki.to.clone(),
        source: e,
    })
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), ProcedureError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).map_err(io("creating", to))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))
        .map_err(io("chmod", to))?;
    for e in std::fs::read_dir(from).map_err(io("reading", from))? {
        let e = e.map_err(io("reading", from))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            let bytes = std::fs::read(&src).map_err(io("reading", &src))?;
            let mode = std::fs::metadata(&src)
                .map_err(io("reading", &src))?
                .permissions()
                .mode();
            std::fs::write(&dst, bytes).map_err(io("writing", &dst))?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(io("chmod", &dst))?;
            std::fs::File::open(&dst)
                .and_then(|f| f.sync_all())
                .map_err(io("fsync", &dst))?;
        }
    }
    Ok(())
}

/// The state file: the plan and the phases done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The plan being applied.
    pub plan: Plan,
    /// Phases done, in order.
    pub done: Vec<Phase>,
}

impl State {
    /// The next phase to run, if any.
    pub fn next(&self) -> Option<Phase> {
        self.plan
            .steps
            .iter()
            .map(|s| s.phase)
            .find(|p| !self.done.contains(p))
    }

    /// Reads a state file (None: it does not exist).
    pub fn load(path: &Path) -> Result<Option<State>, ProcedureError> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| ProcedureError::BadState {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", path)(e)),
        }
    }

    fn save(&self, path: &Path) -> Result<(), ProcedureError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| ProcedureError::BadState {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        write_atomically(path, &json)
    }
}

/// Writes `path` through a temporary sibling, fsync, rename, fsync of the dir.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ProcedureError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(bytes).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("renaming into place", path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Probes the procedure waits on (HTTP(S) lives in the binary).
pub trait Probe {
    /// Whether etcd's health URL says healthy.
    fn etcd_healthy(&self, url: &str) -> bool;
    /// Whether `https://127.0.0.1:<port>/readyz` answers 200.
    fn apiserver_ready(&self, port: u16) -> bool;
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn wait_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
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

/// A lock on the state file: a second run refuses while it is held.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

impl Lock {
    /// Takes `<state>.lock`, refusing if another process holds it.
    pub fn take(state: &Path) -> Result<Lock, ProcedureError> {
        let path = state.with_extension("lock");
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        match file.try_lock() {
            Ok(()) => Ok(Lock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(ProcedureError::Locked { path }),
            Err(std::fs::TryLockError::Error(e)) => Err(io("locking", &path)(e)),
        }
    }
}

/// A run of the procedure: the state, its file and the lock. Only [`Run::phase`]
/// changes anything, and only the next phase in order.
#[derive(Debug)]
pub struct Run {
    state: State,
    path: PathBuf,
    _lock: Lock,
    timeout: Duration,
}

impl Run {
    /// Starts a new run: refuses while a state file exists.
    pub fn start(
        plan: Plan,
        path: &Path,
        lock: Lock,
        timeout: Duration,
    ) -> Result<Run, ProcedureError> {
        if let Some(s) = State::load(path)? {
            return Err(ProcedureError::InProgress {
                path: path.to_path_buf(),
                run_id: s.plan.run_id.clone(),
                next: s.next().map(|p| p.to_string()).unwrap_or("none".into()),
            });
        }
        if plan.new_data_dir.exists() {
            return Err(ProcedureError::TargetExists {
                path: plan.new_data_dir.clone(),
            });
        }
        let state = State {
            plan,
            done: Vec::new(),
        };
        state.save(path)?;
        Ok(Run {
            state,
            path: path.to_path_buf(),
            _lock: lock,
            timeout,
        })
    }

    /// Resumes the run recorded in `path`.
    pub fn resume(path: &Path, lock: Lock, timeout: Duration) -> Result<Run, ProcedureError> {
        let state = State::load(path)?.ok_or_else(|| ProcedureError::NothingToResume {
            path: path.to_path_buf(),
        })?;
        Ok(Run {
            state,
            path: path.to_path_buf(),
            _lock: lock,
            timeout,
        })
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The next phase, if any.
    pub fn next(&self) -> Option<Phase> {
        self.state.next()
    }

    /// Runs the next phase and records it; returns it (None: all done, and the state
    /// file is moved into the holding dir as `restore-state.json`).
    pub fn phase(&mut self, probe: &dyn Probe) -> Result<Option<Phase>, ProcedureError> {
        let Some(phase) = self.next() else {
            self.finish()?;
            return Ok(None);
        };
        self.run_phase(phase, probe)?;
        self.state.done.push(phase);
        self.state.save(&self.path)?;
        crash_point(phase)?;
        Ok(Some(phase))
    }

    /// Moves the finished state file into the holding dir, so that a new restore may run.
    pub fn finish(&self) -> Result<PathBuf, ProcedureError> {
        let to = self.state.plan.holding_dir.join("restore-state.json");
        if self.path.exists() {
            std::fs::rename(&self.path, &to).map_err(io("moving the state file to", &to))?;
        }
        Ok(to)
    }

    fn run_phase(&self, phase: Phase, probe: &dyn Probe) -> Result<(), ProcedureError> {
        let p = &self.state.plan;
        let secs = self.timeout.as_secs();
        match phase {
            Phase::StopControlPlane => {
                std::fs::create_dir_all(&p.holding_dir).map_err(io("creating", &p.holding_dir))?;
                hold(p, &p.held)?;
                if !wait_until(self.timeout, || !answers(p.apiserver_port)) {
                    release(p, &p.held)?;
                    let _ = std::fs::remove_file(&self.path);
                    let _ = std::fs::remove_dir(&p.holding_dir);
                    return Err(ProcedureError::StillAnswers {
                        what: "the kube-apiserver",
                        port: p.apiserver_port,
                        secs,
                        manifests_dir: p.manifests_dir.clone(),
                    });
                }
            }
            Phase::StopEtcd => {
                let etcd = [ETCD_MANIFEST.to_string()];
                hold(p, &etcd)?;
                if !wait_until(self.timeout, || !answers(p.etcd_client_port)) {
                    release(p, &etcd)?;
                    return Err(ProcedureError::StillAnswers {
                        what: "etcd",
                        port: p.etcd_client_port,
                        secs,
                        manifests_dir: p.manifests_dir.clone(),
                    });
                }
            }
            Phase::Restore => {
                if let Some(pki) = &p.pki {
                    replace_pki(pki, &p.holding_dir)?;
                }
                if p.new_data_dir.join("member").is_dir() {
                    return Ok(()); // renamed into place: the restore finished before a crash
                }
                let mut req = crate::Request::new(&p.snapshot, &p.new_data_dir);
                req.name = p.name.clone();
                req.initial_cluster = p.initial_cluster.clone();
                req.initial_cluster_token = p.initial_cluster_token.clone();
                req.initial_advertise_peer_urls = p.peer_urls.clone();
                crate::restore(&req)?;
            }
            Phase::StartEtcd => {
                let staged = p.holding_dir.join("etcd.yaml.restored");
                write_atomically(&staged, p.etcd_manifest.as_bytes())?;
                let to = p.manifests_dir.join(ETCD_MANIFEST);
                std::fs::copy(&staged, p.holding_dir.join(".etcd.yaml.tmp"))
                    .map_err(io("copying", &staged))?;
                std::fs::rename(p.holding_dir.join(".etcd.yaml.tmp"), &to)
                    .map_err(io("writing", &to))?;
            }
            Phase::WaitEtcd => {
                if !wait_until(self.timeout, || probe.etcd_healthy(&p.etcd_health_url)) {
                    return Err(ProcedureError::NotHealthy {
                        what: "etcd",
                        url: p.etcd_health_url.clone(),
                        secs,
                        state: self.path.clone(),
                    });
                }
            }
            Phase::StartControlPlane => release(p, &p.held)?,
            Phase::WaitApiserver => {
                if !wait_until(self.timeout, || probe.apiserver_ready(p.apiserver_port)) {
                    return Err(ProcedureError::NotHealthy {
                        what: "the kube-apiserver",
                        url: format!("https://127.0.0.1:{}/readyz", p.apiserver_port),
                        secs,
                        state: self.path.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Moves manifests into the holding dir (those already there are skipped: resume).
fn hold(p: &Plan, names: &[String]) -> Result<(), ProcedureError> {
    for n in names {
        let (from, to) = (p.manifests_dir.join(n), p.holding_dir.join(n));
        if from.exists() && !to.exists() {
            std::fs::rename(&from, &to).map_err(io("moving into the holding dir", &from))?;
        } else if !to.exists() {
            return Err(ProcedureError::MissingManifest { path: from });
        }
    }
    Ok(())
}

/// Moves held manifests back (those already back are skipped: resume).
fn release(p: &Plan, names: &[String]) -> Result<(), ProcedureError> {
    for n in names {
        let (from, to) = (p.holding_dir.join(n), p.manifests_dir.join(n));
        if from.exists() && !to.exists() {
            std::fs::rename(&from, &to).map_err(io("moving back", &from))?;
        }
    }
    Ok(())
}

#[cfg(debug_assertions)]
fn crash_point(phase: Phase) -> Result<(), ProcedureError> {
    if std::env::var("KASTELLAN_RESTORE_CRASH_AFTER")
        .ok()
        .as_deref()
        == Some(phase.name())
    {
        return Err(ProcedureError::Crash(phase.name().into()));
    }
    Ok(())
}

#[cfg(not(debug_assertions))]
fn crash_point(_: Phase) -> Result<(), ProcedureError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETCD: &str = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - command:\n    - etcd\n    - --data-dir=/var/lib/etcd\n    - --initial-advertise-peer-urls=https://10.0.0.1:2380\n    - --initial-cluster=cp1=https://10.0.0.1:2380\n    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.1:2379\n    - --listen-metrics-urls=http://127.0.0.1:2381\n    - --name=cp1\n    volumeMounts:\n    - mountPath: /var/lib/etcd\n      name: etcd-data\n  volumes:\n  - hostPath:\n      path: /var/lib/etcd\n      type: DirectoryOrCreate\n    name: etcd-data\n  - hostPath:\n      path: /etc/kubernetes/pki/etcd\n    name: etcd-certs\n";

    fn facts() -> Facts {
        Facts {
            manifests_dir: "/etc/kubernetes/manifests".into(),
            etcd_manifest: ETCD.into(),
            control_plane: CONTROL_PLANE.iter().map(|s| s.to_string()).collect(),
            apiserver_port: 6443,
            free_bytes: Some(10 << 30),
            snapshot_bytes: 1 << 20,
        }
    }

    fn req() -> ProcedureRequest {
        ProcedureRequest {
            pki: None,
            snapshot: "/backup/snap.db".into(),
            run_id: "20260101T000000Z".into(),
            restore_dir_parent: "/var/lib".into(),
            holding_root: "/etc/kubernetes/kastellan-held".into(),
            initial_cluster: None,
            all_nodes: false,
        }
    }

    #[test]
    fn rewrite_changes_only_the_data_dir_lines() {
        let (new, changes) = rewrite_etcd_manifest(
            ETCD,
            Path::new("/var/lib/etcd"),
            Path::new("/var/lib/etcd-restore-1"),
        )
        .unwrap();
        assert_eq!(changes.len(), 3);
        let old_lines: Vec<_> = ETCD.lines().collect();
        let new_lines: Vec<_> = new.lines().collect();
        assert_eq!(old_lines.len(), new_lines.len());
        let differ: Vec<_> = old_lines
            .iter()
            .zip(&new_lines)
            .filter(|(a, b)| a != b)
            .map(|(_, b)| b.to_string())
            .collect();
        assert_eq!(
            differ,
            [
                "    - --data-dir=/var/lib/etcd-restore-1",
                "    - mountPath: /var/lib/etcd-restore-1",
                "      path: /var/lib/etcd-restore-1",
            ]
        );
        assert!(new.ends_with("name: etcd-certs\n"));
    }

    #[test]
    fn rewrite_keeps_crlf() {
        let crlf = ETCD.replace('\n', "\r\n");
        let (new, _) =
            rewrite_etcd_manifest(&crlf, Path::new("/var/lib/etcd"), Path::new("/x")).unwrap();
        assert_eq!(new.matches("\r\n").count(), crlf.matches("\r\n").count());
    }

    #[test]
    fn rewrite_refuses_without_host_path() {
        let text = ETCD.replace("      path: /var/lib/etcd\n", "      path: /data\n");
        let e =
            rewrite_etcd_manifest(&text, Path::new("/var/lib/etcd"), Path::new("/x")).unwrap_err();
        assert!(e.contains("hostPath"), "{e}");
    }

    #[test]
    fn plan_one_node() {
        let p = plan(&facts(), &req()).unwrap();
        assert_eq!(
            p.new_data_dir,
            Path::new("/var/lib/etcd-restore-20260101T000000Z")
        );
        assert_eq!(
            p.holding_dir,
            Path::new("/etc/kubernetes/kastellan-held/20260101T000000Z")
        );
        assert_eq!(p.etcd_health_url, "http://127.0.0.1:2381/health");
        assert_eq!(p.etcd_client_port, 2379);
        let phases: Vec<_> = p.steps.iter().map(|s| s.phase).collect();
        assert_eq!(phases, Phase::ALL);
        assert_eq!(p.initial_cluster_token, "etcd-cluster");
    }

    #[test]
    fn plan_refuses_multi_member_on_one_node_and_no_space() {
        let mut r = req();
        r.initial_cluster = Some("cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380".into());
        assert!(matches!(
            plan(&facts(), &r),
            Err(ProcedureError::MultiMember { members: 2, .. })
        ));
        r.all_nodes = true;
        assert_eq!(
            plan(&facts(), &r)
                .unwrap()
                .initial_cluster
                .matches('=')
                .count(),
            2
        );
        let mut f = facts();
        f.free_bytes = Some(1000);
        assert!(matches!(
            plan(&f, &req()),
            Err(ProcedureError::NoSpace { .. })
        ));
    }

    #[test]
    fn plan_refuses_missing_flags() {
        let mut f = facts();
        f.etcd_manifest = ETCD.replace("    - --name=cp1\n", "");
        let e = plan(&f, &req()).unwrap_err().to_string();
        assert!(e.contains("--name"), "{e}");
    }

    #[test]
    fn dropin_replaces_the_exec_data_dir_or_sets_the_environment() {
        let unit = "[Unit]\nDescription=etcd\n[Service]\nUser=etcd\nExecStart=/usr/bin/etcd --name m1 \\\n  --data-dir /var/lib/etcd --listen-client-urls http://127.0.0.1:2379\n";
        let d = systemd_dropin(unit, Path::new("/var/lib/etcd-restore-1"));
        assert!(d.contains("ExecStart=\nExecStart=/usr/bin/etcd --name m1 --data-dir /var/lib/etcd-restore-1 --listen-client-urls http://127.0.0.1:2379\n"), "{d}");
        let d = systemd_dropin(
            "[Service]\nExecStart=/usr/bin/etcd\nEnvironmentFile=/etc/default/etcd\n",
            Path::new("/d"),
        );
        assert!(d.ends_with("Environment=ETCD_DATA_DIR=/d\n"), "{d}");
    }

    #[test]
    fn systemd_on_a_temp_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let units = tmp.path().join("system");
        std::fs::create_dir_all(&units).unwrap();
        std::fs::write(
            units.join("etcd.service"),
            "[Service]\nExecStart=/usr/bin/etcd --data-dir=/var/lib/etcd\n",
        )
        .unwrap();
        let data = tmp.path().join("etcd-restore-1");
        std::fs::create_dir_all(data.join("member/snap")).unwrap();
        std::fs::write(data.join("member/snap/db"), b"x").unwrap();
        let me = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        let dropin = apply_systemd(&units, "etcd", &data, Some(me)).unwrap();
        assert_eq!(
            dropin,
            units.join("etcd.service.d/50-kastellan-restore.conf")
        );
        let text = std::fs::read_to_string(&dropin).unwrap();
        assert!(
            text.contains(&format!("--data-dir={}", data.display())),
            "{text}"
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(data.join("member/snap/db"))
                .unwrap()
                .uid(),
            me.0
        );
    }

    #[test]
    fn state_next_and_phase_names() {
        let p = plan(&facts(), &req()).unwrap();
        let mut s = State {
            plan: p,
            done: vec![],
        };
        assert_eq!(s.next(), Some(Phase::StopControlPlane));
        s.done = Phase::ALL[..3].to_vec();
        assert_eq!(s.next(), Some(Phase::StartEtcd));
        for ph in Phase::ALL {
            assert_eq!(Phase::parse(ph.name()), Some(ph));
        }
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<State>(&json).unwrap(), s);
    }
}

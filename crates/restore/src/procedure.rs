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

use std::path::{Path, PathBuf};
use std::time::Duration;

use kastellan_kubeadm::hold::{answers, wait_until};
use kastellan_kubeadm::manifest::{local_port, rewrite_etcd_data_dir};
use kastellan_kubeadm::{Component, Flags, Held, Hold, StaticPod, fs};
use serde::{Deserialize, Serialize};

/// The control-plane manifests held while etcd is restored (besides `etcd.yaml`).
pub const CONTROL_PLANE: [&str; 3] = [
    Component::KubeApiserver.manifest(),
    Component::KubeControllerManager.manifest(),
    Component::KubeScheduler.manifest(),
];
/// etcd's static pod manifest.
pub const ETCD_MANIFEST: &str = Component::Etcd.manifest();
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
    /// No `ExecStart=`.
    #[error("{unit}: no ExecStart= in {files}")]
    NoExecStart {
        /// The unit.
        unit: String,
        /// The files read.
        files: String,
    },
    /// `ExecStart=` does not run etcd itself.
    #[error(
        "{unit}: ExecStart= runs `{program}`, not etcd itself, so kastellan cannot tell etcd's flags; make ExecStart= run etcd directly"
    )]
    NotEtcd {
        /// The unit.
        unit: String,
        /// The program it runs.
        program: String,
    },
    /// A required environment file is missing.
    #[error("{unit}: EnvironmentFile={} does not exist (and is not marked optional with -)", path.display())]
    MissingEnvironmentFile {
        /// The unit.
        unit: String,
        /// The file.
        path: PathBuf,
    },
    /// etcd reads a configuration file.
    #[error(
        "{unit}: etcd reads its configuration from {path} (--config-file); kastellan restores only units configured by flags and ETCD_* variables"
    )]
    ConfigFile {
        /// The unit.
        unit: String,
        /// The file.
        path: String,
    },
    /// The drop-in would not take effect.
    #[error(
        "{unit}: with 99-kastellan-restore.conf etcd would still use {effective}, not {wanted}; another setting wins over the drop-in"
    )]
    DropinIneffective {
        /// The unit.
        unit: String,
        /// The data dir etcd would use.
        effective: String,
        /// The data dir wanted.
        wanted: String,
    },
    /// A flag also set by its `ETCD_*` variable (etcd refuses to start).
    #[error(
        "{unit}: {var} is set and so is {flag}; etcd refuses to start with both (unset the variable or drop the flag)"
    )]
    EnvShadowed {
        /// The unit.
        unit: String,
        /// The variable.
        var: String,
        /// The flag.
        flag: String,
    },
    /// `systemctl` failed.
    #[error("systemctl {args}: {detail}")]
    Systemctl {
        /// Its arguments.
        args: String,
        /// What it said.
        detail: String,
    },
    /// etcd still answers after its unit was stopped.
    #[error(
        "etcd still answers on 127.0.0.1:{port} {secs} s after systemctl stop {unit}; it is not run by that unit (another etcd on this host?). {unit} was started again; nothing was restored"
    )]
    UnitStillAnswers {
        /// The unit.
        unit: String,
        /// The port.
        port: u16,
        /// The timeout.
        secs: u64,
    },
    /// Reading a manifest or holding static pods failed.
    #[error(transparent)]
    Node(#[from] kastellan_kubeadm::Error),
    /// A durable write failed.
    #[error(transparent)]
    Fs(#[from] kastellan_kubeadm::fs::Error),
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
    /// etcd runs as this systemd unit (`etcd_manifest` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<SystemdFacts>,
}

/// An etcd unit as [`gather_systemd`] read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemdFacts {
    /// The unit's files and environment files.
    pub files: crate::systemd::UnitFiles,
    /// Its `User=`/`Group=`, resolved.
    pub owner: Option<Owner>,
}

/// The user (and group) that owns etcd's data dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// The user name.
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// The gid (the unit's `Group=`, else the user's group).
    pub gid: u32,
}

/// etcd run by systemd, as the plan changes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemdPlan {
    /// The unit (`etcd.service`).
    pub unit: String,
    /// The drop-in written ([`crate::systemd::DROPIN_NAME`] in the unit's `.d` dir).
    pub dropin: PathBuf,
    /// Its text.
    pub dropin_text: String,
    /// Who gets the new data dir.
    pub owner: Option<Owner>,
}

/// Where kastellan writes a unit's drop-in.
pub const SYSTEMD_DIR: &str = "/etc/systemd/system";

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
    /// etcd runs as a systemd unit: the drop-in instead of `etcd_manifest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<SystemdPlan>,
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
    let mut facts = gather_common(manifests_dir, restore_dir_parent, snapshot)?;
    facts.etcd_manifest = etcd_manifest;
    Ok(facts)
}

/// Reads the node's facts when etcd runs as the systemd unit `unit`: its files (through
/// `systemctl show`), the environment files they name, the owner; the control-plane
/// manifests as [`gather`] does (a dedicated etcd host has none).
pub fn gather_systemd(
    unit: &str,
    manifests_dir: &Path,
    restore_dir_parent: &Path,
    snapshot: &Path,
) -> Result<Facts, ProcedureError> {
    let unit = crate::systemd::unit_name(unit);
    let show = |prop: &str| systemctl(&["show", &format!("--property={prop}"), "--value", &unit]);
    let fragment = show("FragmentPath")?;
    if fragment.trim().is_empty() {
        return Err(ProcedureError::Systemctl {
            args: format!("show {unit}"),
            detail: format!(
                "systemd knows no unit file for {unit} (is etcd run by another unit? --etcd-unit)"
            ),
        });
    }
    let mut paths = vec![PathBuf::from(fragment.trim())];
    paths.extend(show("DropInPaths")?.split_whitespace().map(PathBuf::from));
    let mut files = crate::systemd::UnitFiles {
        unit: unit.clone(),
        files: Vec::new(),
        env_files: Default::default(),
        hostname: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(io("reading", &p))?;
        files.files.push((p, text));
    }
    let service = crate::systemd::service(&files);
    for (p, _) in &service.environment_files {
        files
            .env_files
            .insert(p.clone(), std::fs::read_to_string(p).ok());
    }
    let owner = match &service.user {
        None => None,
        Some(name) => {
            let user = user_by_name(name)?;
            let gid = match &service.group {
                Some(g) => nix::unistd::Group::from_name(g)
                    .ok()
                    .flatten()
                    .map(|g| g.gid.as_raw())
                    .ok_or_else(|| ProcedureError::Systemctl {
                        args: format!("show {unit}"),
                        detail: format!("Group={g}: no such group on this host"),
                    })?,
                None => user.gid.as_raw(),
            };
            Some(Owner {
                user: name.clone(),
                uid: user.uid.as_raw(),
                gid,
            })
        }
    };
    let mut facts = gather_common(manifests_dir, restore_dir_parent, snapshot)?;
    facts.systemd = Some(SystemdFacts { files, owner });
    Ok(facts)
}

fn user_by_name(name: &str) -> Result<nix::unistd::User, ProcedureError> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| ProcedureError::Systemctl {
            args: "show".into(),
            detail: format!("User={name}: no such user on this host"),
        })
}

/// Runs `systemctl ARGS`; its stdout, or an error with what it said.
pub fn systemctl(args: &[&str]) -> Result<String, ProcedureError> {
    let out = std::process::Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| ProcedureError::Systemctl {
            args: args.join(" "),
            detail: format!("cannot run systemctl: {e}"),
        })?;
    if !out.status.success() {
        return Err(ProcedureError::Systemctl {
            args: args.join(" "),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The control-plane manifests, the apiserver port, the room on disk.
fn gather_common(
    manifests_dir: &Path,
    restore_dir_parent: &Path,
    snapshot: &Path,
) -> Result<Facts, ProcedureError> {
    let mut control_plane = Vec::new();
    let mut apiserver_port = 6443;
    for c in Component::CONTROL_PLANE {
        let p = manifests_dir.join(c.manifest());
        if let Some(pod) = StaticPod::read(&p)? {
            if c == Component::KubeApiserver
                && let Some(port) = pod.flags(c.name())?.port("secure-port")
            {
                apiserver_port = port;
            }
            control_plane.push(c.manifest().to_string());
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
        etcd_manifest: String::new(),
        control_plane,
        apiserver_port,
        free_bytes,
        snapshot_bytes,
        systemd: None,
    })
}

/// etcd's flags in its manifest `text`, read from `path`.
pub fn etcd_flags(path: &Path, text: &str) -> Result<Flags, ProcedureError> {
    Ok(StaticPod::parse(path, text.to_string())?.flags(Component::Etcd.name())?)
}

/// Plans the procedure on this node from its facts. Pure.
pub fn plan(facts: &Facts, req: &ProcedureRequest) -> Result<Plan, ProcedureError> {
    let etcd_path = facts.manifests_dir.join(ETCD_MANIFEST);
    let bad = |detail: String| ProcedureError::BadManifest {
        path: etcd_path.clone(),
        detail,
    };
    // What etcd runs with now: the manifest's flags, or the unit's settings.
    let (name, old_data_dir, peer_urls, own_cluster, token, client_urls, metrics_urls) =
        match &facts.systemd {
            Some(sd) => {
                let (_, e) = crate::systemd::etcd_settings(&sd.files)?;
                (
                    e.name,
                    e.data_dir,
                    e.peer_urls,
                    e.initial_cluster,
                    e.initial_cluster_token,
                    Some(e.listen_client_urls),
                    e.listen_metrics_urls,
                )
            }
            None => {
                let flags = etcd_flags(&etcd_path, &facts.etcd_manifest)?;
                let need = |flag: &str| {
                    flags
                        .get(flag)
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("no --{flag} flag in etcd's command")))
                };
                (
                    need("name")?,
                    PathBuf::from(need("data-dir")?),
                    need("initial-advertise-peer-urls")?,
                    need("initial-cluster")?,
                    flags
                        .get("initial-cluster-token")
                        .unwrap_or("etcd-cluster")
                        .to_string(),
                    flags.get("listen-client-urls").map(str::to_string),
                    flags.get("listen-metrics-urls").map(str::to_string),
                )
            }
        };
    let initial_cluster = req.initial_cluster.clone().unwrap_or(own_cluster);
    let members = initial_cluster.split(',').filter(|s| !s.is_empty()).count();
    if members > 1 && !req.all_nodes {
        return Err(ProcedureError::MultiMember {
            path: match &facts.systemd {
                Some(sd) => sd.files.files[0].0.clone(),
                None => etcd_path,
            },
            members,
        });
    }
    crate::cluster::Membership::new(&name, &initial_cluster, &token, &peer_urls, true)
        .map_err(crate::Error::from)?;
    let etcd_client_port = client_urls
        .as_deref()
        .and_then(|u| local_port(&u.split(',').collect::<Vec<_>>()))
        .unwrap_or(Component::Etcd.default_port());
    let http_client = client_urls
        .as_deref()
        .is_some_and(|u| u.split(',').any(|u| u.starts_with("http://")));
    let etcd_health_url = match metrics_urls.and_then(|u| {
        u.split(',')
            .find(|u| u.starts_with("http://"))
            .map(str::to_string)
    }) {
        Some(u) => format!("{}/health", u.trim_end_matches('/')),
        None if http_client => format!("http://127.0.0.1:{etcd_client_port}/health"),
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
    let holding_dir = req.holding_root.join(&req.run_id);
    let (etcd_manifest, manifest_changes, systemd) = match &facts.systemd {
        None => {
            let (m, c) = rewrite_etcd_data_dir(&facts.etcd_manifest, &old_data_dir, &new_data_dir)
                .map_err(bad)?;
            (m, c, None)
        }
        Some(sd) => {
            let dropin_text = crate::systemd::dropin(&sd.files, &new_data_dir)?;
            let unit = sd.files.unit.clone();
            let dropin = Path::new(SYSTEMD_DIR)
                .join(format!("{unit}.d"))
                .join(crate::systemd::DROPIN_NAME);
            let change = format!(
                "{}: etcd's data dir {} -> {}",
                dropin.display(),
                old_data_dir.display(),
                new_data_dir.display()
            );
            (
                String::new(),
                vec![change],
                Some(SystemdPlan {
                    unit,
                    dropin,
                    dropin_text,
                    owner: sd.owner.clone(),
                }),
            )
        }
    };
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
                let mut a = match &systemd {
                    None => moves(&etcd_name, false),
                    Some(sd) => vec![format!("systemctl stop {}", sd.unit)],
                };
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
            actions: match &systemd {
                None => vec![format!(
                    "write {} (the original stays as {}): {}",
                    md.join(ETCD_MANIFEST).display(),
                    holding_dir.join(ETCD_MANIFEST).display(),
                    manifest_changes.join("; ")
                )],
                Some(sd) => vec![
                    format!(
                        "write {} (one there before is kept as {}): {}",
                        sd.dropin.display(),
                        holding_dir.join(crate::systemd::DROPIN_NAME).display(),
                        sd.dropin_text
                            .lines()
                            .filter(|l| l.starts_with("ExecStart=") && l.len() > 10)
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    "systemctl daemon-reload".to_string(),
                    format!("systemctl start --no-block {}", sd.unit),
                ],
            },
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
    if let Some(Owner { user, uid, gid }) = systemd.as_ref().and_then(|s| s.owner.as_ref())
        && let Some(step) = steps.iter_mut().find(|s| s.phase == Phase::Restore)
    {
        step.actions.push(format!(
            "give {} to {user} (uid {uid}, gid {gid}), the unit's User=",
            new_data_dir.display()
        ));
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
        systemd,
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
        fs::copy_tree(&pki.from, &staged)?;
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
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
        Ok(fs::write_atomic(path, &json, 0o600)?)
    }
}

/// Probes the procedure waits on (HTTP(S) lives in the binary).
pub trait Probe {
    /// Whether etcd's health URL says healthy.
    fn etcd_healthy(&self, url: &str) -> bool;
    /// Whether `https://127.0.0.1:<port>/readyz` answers 200.
    fn apiserver_ready(&self, port: u16) -> bool;
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
                let hold = Hold::take(&p.manifests_dir, &p.holding_dir, &p.held)?;
                if !hold.wait_until_closed(p.apiserver_port, self.timeout) {
                    hold.release()?;
                    let _ = std::fs::remove_file(&self.path);
                    let _ = std::fs::remove_dir(&p.holding_dir);
                    return Err(ProcedureError::StillAnswers {
                        what: "the kube-apiserver",
                        port: p.apiserver_port,
                        secs,
                        manifests_dir: p.manifests_dir.clone(),
                    });
                }
                hold.keep(); // recorded by the plan; released by start-control-plane
            }
            Phase::StopEtcd if p.systemd.is_some() => {
                let unit = p.systemd.as_ref().map(|s| s.unit.as_str()).unwrap_or("");
                systemctl(&["stop", unit])?;
                if !wait_until(self.timeout, || !answers(p.etcd_client_port)) {
                    let _ = systemctl(&["start", "--no-block", unit]);
                    return Err(ProcedureError::UnitStillAnswers {
                        unit: unit.to_string(),
                        port: p.etcd_client_port,
                        secs,
                    });
                }
            }
            Phase::StopEtcd => {
                let etcd = [ETCD_MANIFEST.to_string()];
                let hold = Hold::take(&p.manifests_dir, &p.holding_dir, &etcd)?;
                if !hold.wait_until_closed(p.etcd_client_port, self.timeout) {
                    hold.release()?;
                    return Err(ProcedureError::StillAnswers {
                        what: "etcd",
                        port: p.etcd_client_port,
                        secs,
                        manifests_dir: p.manifests_dir.clone(),
                    });
                }
                // etcd.yaml stays held: start-etcd writes the rewritten one.
                hold.keep();
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
                if let Some(o) = p.systemd.as_ref().and_then(|s| s.owner.as_ref()) {
                    fs::chown_tree(&p.new_data_dir, o.uid, o.gid)?;
                }
            }
            Phase::StartEtcd if p.systemd.is_some() => {
                let Some(sd) = &p.systemd else {
                    return Ok(());
                };
                let kept = p.holding_dir.join(crate::systemd::DROPIN_NAME);
                if let Ok(before) = std::fs::read(&sd.dropin)
                    && before != sd.dropin_text.as_bytes()
                    && !kept.exists()
                {
                    fs::write_atomic(&kept, &before, 0o644)?;
                }
                if let Some(dir) = sd.dropin.parent() {
                    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
                }
                fs::write_atomic(&sd.dropin, sd.dropin_text.as_bytes(), 0o644)?;
                systemctl(&["daemon-reload"])?;
                systemctl(&["start", "--no-block", &sd.unit])?;
            }
            Phase::StartEtcd => {
                // A copy stays in the holding dir; the temp file of the write into the
                // manifests dir is made in the holding dir too, so that the kubelet never
                // sees a half-written or temporary manifest.
                let mode =
                    fs::ownership(&p.holding_dir.join(ETCD_MANIFEST))?.map_or(0o600, |o| o.mode);
                let staged = p.holding_dir.join("etcd.yaml.restored");
                fs::write_atomic(&staged, p.etcd_manifest.as_bytes(), mode)?;
                let to = p.manifests_dir.join(ETCD_MANIFEST);
                fs::write_atomic_via(&to, p.etcd_manifest.as_bytes(), mode, &p.holding_dir)?;
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
            Phase::StartControlPlane => Held {
                manifests_dir: p.manifests_dir.clone(),
                holding_dir: p.holding_dir.clone(),
                files: p.held.clone(),
            }
            .release()?,
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
            systemd: None,
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
    fn plan_systemd_unit() {
        let unit = "[Service]\nUser=etcd\nEnvironment=ETCD_DATA_DIR=/var/lib/etcd/default ETCD_NAME=%H\nExecStart=/usr/bin/etcd $DAEMON_ARGS\n";
        let mut f = facts();
        f.etcd_manifest = String::new();
        f.control_plane.clear();
        f.systemd = Some(SystemdFacts {
            files: crate::systemd::UnitFiles {
                unit: "etcd.service".into(),
                files: vec![("/lib/systemd/system/etcd.service".into(), unit.into())],
                env_files: Default::default(),
                hostname: "e1".into(),
            },
            owner: Some(Owner {
                user: "etcd".into(),
                uid: 102,
                gid: 105,
            }),
        });
        let p = plan(&f, &req()).unwrap();
        assert_eq!(p.name, "e1");
        assert_eq!(p.old_data_dir, Path::new("/var/lib/etcd/default"));
        assert_eq!(p.etcd_health_url, "http://127.0.0.1:2379/health");
        let sd = p.systemd.as_ref().unwrap();
        assert_eq!(
            sd.dropin,
            Path::new("/etc/systemd/system/etcd.service.d/99-kastellan-restore.conf")
        );
        let text = serde_json::to_string(&p.steps).unwrap();
        for needle in [
            "systemctl stop etcd.service",
            "systemctl daemon-reload",
            "systemctl start --no-block etcd.service",
            "ExecStart=/usr/bin/etcd $DAEMON_ARGS --data-dir=/var/lib/etcd-restore-20260101T000000Z",
            "give /var/lib/etcd-restore-20260101T000000Z to etcd (uid 102, gid 105)",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        assert!(!text.contains("etcd.yaml"), "{text}");
        // Two members in the unit's --initial-cluster: one node alone is refused.
        let two = unit.replace("$DAEMON_ARGS", "--initial-cluster=e1=http://a:2380,e2=http://b:2380 --initial-advertise-peer-urls=http://a:2380");
        f.systemd.as_mut().unwrap().files.files[0].1 = two;
        let e = plan(&f, &req()).unwrap_err().to_string();
        assert!(
            e.contains("/lib/systemd/system/etcd.service") && e.contains("2 members"),
            "{e}"
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

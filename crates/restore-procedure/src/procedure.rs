//! The control-plane restore procedure of a kubeadm node (`kastellan restore`).
//!
//! [`gather`] reads the node's facts (the static pod manifests, or etcd's systemd unit,
//! the free space where the new data dir goes); [`plan`] is pure and decides
//! everything: a [`Plan`] of typed [`Action`]s per phase, run by the shared executor
//! (`kastellan-exec`), which describes exactly these actions for `--dry-run`, journals
//! each step so that a killed run resumes at the step it was on, and undoes the steps
//! before a failure up to the point of no return (etcd started on the restored data).
//!
//! Phases (one node):
//! 1. `stop-control-plane`: hold kube-apiserver, kube-controller-manager and
//!    kube-scheduler manifests in `<holding>/`; wait until the apiserver port no
//!    longer answers (else put them back and refuse).
//! 2. `stop-etcd`: hold `etcd.yaml` too (or `systemctl stop` the unit); wait until
//!    etcd's client port is closed.
//! 3. `restore`: the native restore into the new data dir (never an existing one);
//!    a bundle's PKI put in place when asked.
//! 4. `start-etcd` (the point of no return): write the rewritten `etcd.yaml` into the
//!    manifests dir (the original stays held), or the unit's drop-in.
//! 5. `wait-etcd`: wait for etcd's `/health`.
//! 6. `start-control-plane`: put the other manifests back.
//! 7. `wait-apiserver`: wait for the apiserver's `/readyz`.
//!
//! A multi-member restore runs each phase on every node before the next phase.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kastellan_kubeadm::hold::{answers, wait_until};
use kastellan_kubeadm::manifest::{local_port, rewrite_etcd_data_dir};
use kastellan_kubeadm::{Component, Flags, Held, Hold, StaticPod, fs};
use serde::{Deserialize, Serialize};

use crate::bump::RevisionBump;

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
    #[error("{} is missing: the restore needs etcd's static pod manifest (is this a kubeadm control-plane node?)", path.display())]
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
    #[error("{} exists already; the restore writes only into a fresh directory (wait a second for a new timestamp, or move it away)", path.display())]
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
    #[error("{}: etcd's --initial-cluster names {members} members; every control-plane node must be restored with the same snapshot, together", path.display())]
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
        what: String,
        /// The port.
        port: u16,
        /// The timeout.
        secs: u64,
        /// The manifests dir.
        manifests_dir: PathBuf,
    },
    /// A component did not come up.
    #[error("{what} is not healthy at {url} after {secs} s")]
    NotHealthy {
        /// The component.
        what: &'static str,
        /// The URL probed.
        url: String,
        /// The timeout.
        secs: u64,
    },
    /// The native restore failed.
    #[error(transparent)]
    Restore(#[from] kastellan_restore::Error),
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
    /// The bump would take the revision past the largest etcd can hold.
    #[error(
        "a snapshot at revision {snapshot_revision} cannot be bumped by {bump}: past the largest revision etcd can hold"
    )]
    BumpOverflow {
        /// The snapshot's revision.
        snapshot_revision: i64,
        /// The bump.
        bump: u64,
    },
    /// A saved plan's bump no longer covers the live revision.
    #[error(
        "the plan restores at revision {bumped_revision}, but the live cluster is at revision {live_revision} now (less than {headroom} below it): watchers that saw the newer revisions would not be told to relist. Make the plan again"
    )]
    BumpTooSmall {
        /// The revision the plan's etcd starts from.
        bumped_revision: i64,
        /// The live revision now.
        live_revision: i64,
        /// The headroom required.
        headroom: u64,
    },
    /// Reading a manifest or holding static pods failed.
    #[error(transparent)]
    Node(#[from] kastellan_kubeadm::Error),
    /// A durable write failed.
    #[error(transparent)]
    Fs(#[from] kastellan_kubeadm::fs::Error),
    /// The executor refused or could not record the run.
    #[error(transparent)]
    Exec(#[from] kastellan_exec::Error),
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
    /// The node's name, for the steps (its hostname by default).
    #[serde(default)]
    pub node: String,
    /// Put a bundle's PKI in place too (`--restore-pki`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki: Option<PkiRestore>,
    /// The revision bump, decided once for every member (see [`crate::bump`]).
    pub revision: RevisionBump,
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

/// What the plan decided, for reports (the steps hold the same values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
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
    /// etcd's health URL.
    pub etcd_health_url: String,
    /// The lines changed in `etcd.yaml` (or the drop-in's change), old -> new.
    pub manifest_changes: Vec<String>,
    /// etcd runs as this systemd unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<SystemdPlan>,
    /// The snapshot's revision, the one etcd starts from, and where the bump came from.
    pub revision: RevisionBump,
}

/// What a restore plan was built from, and what it decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Basis {
    /// The node's facts when the plan was made.
    pub facts: Facts,
    /// What the operator asked for.
    pub request: ProcedureRequest,
    /// What the plan decided.
    pub summary: Summary,
}

/// A restore plan: typed actions run by the shared executor.
pub type Plan = kastellan_exec::Plan<Action, Basis>;
/// The kind of a restore plan (a saved plan of another kind is refused).
pub const PLAN_KIND: &str = "restore";

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
    kastellan_restore::Membership::new(&name, &initial_cluster, &token, &peer_urls, true)
        .map_err(kastellan_restore::Error::from)?;
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
    let md = facts.manifests_dir.clone();
    let held = facts.control_plane.clone();
    let node = req.node.clone();
    let step =
        |phase: Phase, action: Action| kastellan_exec::Step::new(&node, phase.name(), action);
    let mut steps = Vec::new();
    let release = |files: Vec<String>| Action::Release {
        manifests_dir: md.clone(),
        holding_dir: holding_dir.clone(),
        files,
    };
    if !held.is_empty() {
        steps.push(
            step(
                Phase::StopControlPlane,
                Action::Hold {
                    manifests_dir: md.clone(),
                    holding_dir: holding_dir.clone(),
                    files: held.clone(),
                    closed_port: facts.apiserver_port,
                    what: "the kube-apiserver".into(),
                },
            )
            .undo(release(held.clone())),
        );
    }
    let etcd_name = vec![ETCD_MANIFEST.to_string()];
    steps.push(match &systemd {
        None => step(
            Phase::StopEtcd,
            Action::Hold {
                manifests_dir: md.clone(),
                holding_dir: holding_dir.clone(),
                files: etcd_name.clone(),
                closed_port: etcd_client_port,
                what: "etcd".into(),
            },
        )
        .undo(release(etcd_name.clone())),
        Some(sd) => step(
            Phase::StopEtcd,
            Action::StopUnit {
                unit: sd.unit.clone(),
                closed_port: etcd_client_port,
            },
        )
        .undo(Action::StartUnit {
            unit: sd.unit.clone(),
        }),
    });
    if let Some(pki) = &req.pki {
        let kept = holding_dir.join("pki-before");
        steps.push(
            step(
                Phase::Restore,
                Action::ReplacePki {
                    from: pki.from.clone(),
                    to: pki.to.clone(),
                    keep_as: kept.clone(),
                },
            )
            .undo(Action::RevertPki {
                to: pki.to.clone(),
                kept_at: kept,
                set_aside: holding_dir.join("pki-from-bundle-reverted"),
            }),
        );
    }
    steps.push(step(
        Phase::Restore,
        Action::RestoreDataDir {
            snapshot: req.snapshot.clone(),
            data_dir: new_data_dir.clone(),
            name: name.clone(),
            peer_urls: peer_urls.clone(),
            initial_cluster: initial_cluster.clone(),
            token: token.clone(),
            old_data_dir: old_data_dir.clone(),
            owner: systemd.as_ref().and_then(|s| s.owner.clone()),
            bump_revision: req.revision.bump,
        },
    ));
    match &systemd {
        None => steps.push(
            step(
                Phase::StartEtcd,
                Action::WriteFile {
                    path: md.join(ETCD_MANIFEST),
                    content: etcd_manifest.clone(),
                    mode: None,
                    mode_of: Some(holding_dir.join(ETCD_MANIFEST)),
                    keep_as: None,
                    temp_dir: Some(holding_dir.clone()),
                    changes: manifest_changes.clone(),
                },
            )
            .commit(),
        ),
        Some(sd) => {
            steps.push(
                step(
                    Phase::StartEtcd,
                    Action::WriteFile {
                        path: sd.dropin.clone(),
                        content: sd.dropin_text.clone(),
                        mode: Some(0o644),
                        mode_of: None,
                        keep_as: Some(holding_dir.join(crate::systemd::DROPIN_NAME)),
                        temp_dir: None,
                        changes: sd
                            .dropin_text
                            .lines()
                            .filter(|l| l.starts_with("ExecStart=") && l.len() > 10)
                            .map(str::to_string)
                            .collect(),
                    },
                )
                .commit(),
            );
            steps.push(step(
                Phase::StartEtcd,
                Action::Systemctl {
                    args: vec!["daemon-reload".into()],
                },
            ));
            steps.push(step(
                Phase::StartEtcd,
                Action::StartUnit {
                    unit: sd.unit.clone(),
                },
            ));
        }
    }
    steps.push(step(
        Phase::WaitEtcd,
        Action::WaitEtcd {
            url: etcd_health_url.clone(),
        },
    ));
    if !held.is_empty() {
        steps.push(step(Phase::StartControlPlane, release(held.clone())));
    }
    if held
        .iter()
        .any(|n| n == Component::KubeApiserver.manifest())
    {
        steps.push(step(
            Phase::WaitApiserver,
            Action::WaitApiserver {
                port: facts.apiserver_port,
            },
        ));
    }
    Ok(Plan {
        kind: PLAN_KIND.into(),
        id: req.run_id.clone(),
        facts: Basis {
            facts: facts.clone(),
            request: req.clone(),
            summary: Summary {
                snapshot: req.snapshot.clone(),
                manifests_dir: md,
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
                manifest_changes,
                systemd,
                revision: req.revision.clone(),
            },
        },
        steps,
    })
}

/// The phase a plan's step belongs to.
pub fn phase_of(step: &kastellan_exec::Step<Action>) -> Option<Phase> {
    Phase::parse(&step.phase)
}

/// Probes the procedure waits on (HTTP(S) lives in the binary).
pub trait Probe {
    /// Whether etcd's health URL says healthy.
    fn etcd_healthy(&self, url: &str) -> bool;
    /// Whether `https://127.0.0.1:<port>/readyz` answers 200.
    fn apiserver_ready(&self, port: u16) -> bool;
}

/// What performing an [`Action`] needs.
pub struct Context {
    /// The health probes.
    pub probe: Box<dyn Probe>,
    /// How long each wait may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One change the restore makes on a node. Each describes itself for the dry run and
/// performs itself for the run; each is safe to perform again after a crash in its
/// middle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Action {
    /// Hold static pod manifests out of the manifests dir, then wait until the port
    /// closes; if it does not, put them back and fail.
    Hold {
        /// The kubelet's manifests dir.
        manifests_dir: PathBuf,
        /// Where they wait.
        holding_dir: PathBuf,
        /// The manifests.
        files: Vec<String>,
        /// The port on 127.0.0.1 that must close.
        closed_port: u16,
        /// What serves that port, for messages.
        what: String,
    },
    /// Put held manifests back.
    Release {
        /// The kubelet's manifests dir.
        manifests_dir: PathBuf,
        /// Where they wait.
        holding_dir: PathBuf,
        /// The manifests.
        files: Vec<String>,
    },
    /// `systemctl stop UNIT`, then wait until the port closes; if it does not, start
    /// the unit again and fail.
    StopUnit {
        /// The unit.
        unit: String,
        /// etcd's client port.
        closed_port: u16,
    },
    /// `systemctl start --no-block UNIT`.
    StartUnit {
        /// The unit.
        unit: String,
    },
    /// `systemctl ARGS`.
    Systemctl {
        /// The arguments.
        args: Vec<String>,
    },
    /// Put a bundle's PKI in place, the node's kept aside.
    ReplacePki {
        /// The bundle's PKI (extracted, verified).
        from: PathBuf,
        /// The node's PKI dir.
        to: PathBuf,
        /// Where the node's PKI is kept.
        keep_as: PathBuf,
    },
    /// Put the node's PKI back (the clean-up of [`Action::ReplacePki`]).
    RevertPki {
        /// The node's PKI dir.
        to: PathBuf,
        /// Where the node's PKI was kept.
        kept_at: PathBuf,
        /// Where the bundle's PKI goes.
        set_aside: PathBuf,
    },
    /// Restore the snapshot into a fresh data dir (native, no etcdutl).
    RestoreDataDir {
        /// The snapshot.
        snapshot: PathBuf,
        /// The fresh data dir.
        data_dir: PathBuf,
        /// The member name.
        name: String,
        /// Its peer URLs.
        peer_urls: String,
        /// The new cluster.
        initial_cluster: String,
        /// The cluster token.
        token: String,
        /// The data dir left untouched (for the description).
        old_data_dir: PathBuf,
        /// Who gets the new data dir (the unit's `User=`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<Owner>,
        /// Revisions added to the snapshot's, the skipped ones marked compacted (0: none).
        #[serde(default)]
        bump_revision: u64,
    },
    /// Write a file atomically.
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Its new content.
        content: String,
        /// Its mode.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
        /// Take the mode of this file (the held original), else 0600.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode_of: Option<PathBuf>,
        /// Keep a different file that is there as this (the first time only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep_as: Option<PathBuf>,
        /// Make the temp file here, not beside the file (the kubelet reads every file
        /// in its manifests dir).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        temp_dir: Option<PathBuf>,
        /// What changes, for the description.
        changes: Vec<String>,
    },
    /// Wait for etcd's health URL to say healthy.
    WaitEtcd {
        /// The URL.
        url: String,
    },
    /// Wait for the apiserver's `/readyz`.
    WaitApiserver {
        /// Its port on 127.0.0.1.
        port: u16,
    },
}

fn arrows(files: &[String], from: &Path, to: &Path) -> String {
    files
        .iter()
        .map(|n| {
            format!(
                "move {} -> {}",
                from.join(n).display(),
                to.join(n).display()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl kastellan_exec::Action for Action {
    type Context = Context;
    type Error = ProcedureError;

    fn describe(&self) -> String {
        match self {
            Action::Hold {
                manifests_dir,
                holding_dir,
                files,
                closed_port,
                ..
            } => format!(
                "{}\nwait until 127.0.0.1:{closed_port} no longer answers (else move them back and stop)",
                arrows(files, manifests_dir, holding_dir)
            ),
            Action::Release {
                manifests_dir,
                holding_dir,
                files,
            } => arrows(files, holding_dir, manifests_dir),
            Action::StopUnit { unit, closed_port } => format!(
                "systemctl stop {unit}; wait until 127.0.0.1:{closed_port} is closed (else start it again and stop)"
            ),
            Action::StartUnit { unit } => format!("systemctl start --no-block {unit}"),
            Action::Systemctl { args } => format!("systemctl {}", args.join(" ")),
            Action::ReplacePki { from, to, keep_as } => format!(
                "replace {} with the bundle's PKI from {} (the node's PKI is kept as {})",
                to.display(),
                from.display(),
                keep_as.display()
            ),
            Action::RevertPki { to, kept_at, .. } => format!(
                "put the node's PKI {} back in {}",
                kept_at.display(),
                to.display()
            ),
            Action::RestoreDataDir {
                snapshot,
                data_dir,
                name,
                peer_urls,
                initial_cluster,
                token,
                old_data_dir,
                owner,
                bump_revision,
            } => {
                let mut s = format!(
                    "restore {} into {}\nas member {name} ({peer_urls}) of {initial_cluster}, token {token}\n{}\n{} stays untouched",
                    snapshot.display(),
                    data_dir.display(),
                    if *bump_revision > 0 {
                        format!(
                            "revision bumped by {bump_revision}, skipped ones compacted (watchers relist)"
                        )
                    } else {
                        "at the snapshot's own revision (no bump: watchers are not told to relist)"
                            .to_string()
                    },
                    old_data_dir.display()
                );
                if let Some(Owner { user, uid, gid }) = owner {
                    s.push_str(&format!(
                        "; give {} to {user} (uid {uid}, gid {gid}), the unit's User=",
                        data_dir.display()
                    ));
                }
                s
            }
            Action::WriteFile {
                path,
                keep_as,
                mode_of,
                changes,
                ..
            } => {
                let kept = match (keep_as, mode_of) {
                    (Some(k), _) => format!(" (one there before is kept as {})", k.display()),
                    (None, Some(o)) => format!(" (the original stays as {})", o.display()),
                    _ => String::new(),
                };
                let mut s = format!("write {}{kept}", path.display());
                for c in changes {
                    s.push_str(&format!("\n  {c}"));
                }
                s
            }
            Action::WaitEtcd { url } => format!("wait for {url} to say healthy"),
            Action::WaitApiserver { port } => {
                format!("wait for https://127.0.0.1:{port}/readyz")
            }
        }
    }

    fn apply(&self, ctx: &Context) -> Result<(), ProcedureError> {
        let secs = ctx.timeout.as_secs();
        match self {
            Action::Hold {
                manifests_dir,
                holding_dir,
                files,
                closed_port,
                what,
            } => {
                let hold = Hold::take(manifests_dir, holding_dir, files)?;
                if !hold.wait_until_closed(*closed_port, ctx.timeout) {
                    hold.release()?;
                    return Err(ProcedureError::StillAnswers {
                        what: what.clone(),
                        port: *closed_port,
                        secs,
                        manifests_dir: manifests_dir.clone(),
                    });
                }
                hold.keep(); // released by a later step, or by this step's clean-up
            }
            Action::Release {
                manifests_dir,
                holding_dir,
                files,
            } => Held {
                manifests_dir: manifests_dir.clone(),
                holding_dir: holding_dir.clone(),
                files: files.clone(),
            }
            .release()?,
            Action::StopUnit { unit, closed_port } => {
                systemctl(&["stop", unit])?;
                if !wait_until(ctx.timeout, || !answers(*closed_port)) {
                    let _ = systemctl(&["start", "--no-block", unit]);
                    return Err(ProcedureError::UnitStillAnswers {
                        unit: unit.clone(),
                        port: *closed_port,
                        secs,
                    });
                }
            }
            Action::StartUnit { unit } => {
                systemctl(&["start", "--no-block", unit])?;
            }
            Action::Systemctl { args } => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                systemctl(&args)?;
            }
            Action::ReplacePki { from, to, keep_as } => replace_pki(from, to, keep_as)?,
            Action::RevertPki {
                to,
                kept_at,
                set_aside,
            } => {
                if kept_at.is_dir() {
                    if to.exists() {
                        std::fs::rename(to, fs::unique_dir(set_aside.clone()))
                            .map_err(io("setting the bundle's PKI aside", to))?;
                    }
                    std::fs::rename(kept_at, to).map_err(io("putting the node's PKI back", to))?;
                }
            }
            Action::RestoreDataDir {
                snapshot,
                data_dir,
                name,
                peer_urls,
                initial_cluster,
                token,
                owner,
                bump_revision,
                ..
            } => {
                if !data_dir.join("member").is_dir() {
                    remove_dead_staging(data_dir);
                    let mut req = kastellan_restore::Request::new(snapshot, data_dir);
                    req.name = name.clone();
                    req.initial_cluster = initial_cluster.clone();
                    req.initial_cluster_token = token.clone();
                    req.initial_advertise_peer_urls = peer_urls.clone();
                    if *bump_revision > 0 {
                        req.bump_revision = *bump_revision;
                        req.mark_compacted = true;
                    }
                    kastellan_restore::restore(&req)?;
                }
                // Done again after a crash between the rename and the chown.
                if let Some(o) = owner {
                    fs::chown_tree(data_dir, o.uid, o.gid)?;
                }
            }
            Action::WriteFile {
                path,
                content,
                mode,
                mode_of,
                keep_as,
                temp_dir,
                ..
            } => {
                if let Some(kept) = keep_as
                    && let Ok(before) = std::fs::read(path)
                    && before != content.as_bytes()
                    && !kept.exists()
                {
                    let dir = fs::parent_dir(kept);
                    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
                    fs::write_atomic(kept, &before, 0o644)?;
                }
                let mode = match (mode, mode_of) {
                    (Some(m), _) => *m,
                    (None, Some(of)) => fs::ownership(of)?.map_or(0o600, |o| o.mode),
                    (None, None) => 0o600,
                };
                let dir = fs::parent_dir(path);
                std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
                match temp_dir {
                    Some(t) => fs::write_atomic_via(path, content.as_bytes(), mode, t)?,
                    None => fs::write_atomic(path, content.as_bytes(), mode)?,
                }
            }
            Action::WaitEtcd { url } => {
                if !wait_until(ctx.timeout, || ctx.probe.etcd_healthy(url)) {
                    return Err(ProcedureError::NotHealthy {
                        what: "etcd",
                        url: url.clone(),
                        secs,
                    });
                }
            }
            Action::WaitApiserver { port } => {
                if !wait_until(ctx.timeout, || ctx.probe.apiserver_ready(*port)) {
                    return Err(ProcedureError::NotHealthy {
                        what: "the kube-apiserver",
                        url: format!("https://127.0.0.1:{port}/readyz"),
                        secs,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Removes what an interrupted native restore of `data_dir` left beside it (its hidden
/// staging dirs, `.<name>.kastellan-restore-<pid>`, of processes no longer alive): a
/// resumed run writes the data dir again from the start.
fn remove_dead_staging(data_dir: &Path) {
    let (Some(parent), Some(name)) = (data_dir.parent(), data_dir.file_name()) else {
        return;
    };
    let prefix = format!(".{}.kastellan-restore-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = n.strip_prefix(&prefix).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Puts the bundle's PKI in place: a full copy next to the node's PKI, then the
/// node's PKI renamed to `keep_as` and the copy renamed into place. Safe to run again
/// after a crash (done once `keep_as` exists and the PKI dir is back).
pub fn replace_pki(from: &Path, to: &Path, keep_as: &Path) -> Result<(), ProcedureError> {
    if keep_as.is_dir() && to.is_dir() {
        return Ok(());
    }
    let staged = to.with_file_name(".pki-from-bundle");
    if !keep_as.is_dir() {
        let _ = std::fs::remove_dir_all(&staged);
        fs::copy_tree(from, &staged)?;
        std::fs::rename(to, keep_as).map_err(io("moving the node's PKI aside", to))?;
    }
    std::fs::rename(&staged, to).map_err(io("putting the bundle's PKI in place", to))
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
            node: "cp1".into(),
            revision: crate::bump::decide(
                700,
                &crate::bump::BumpAsk::Past {
                    live: crate::bump::LiveRevision::Read {
                        revision: 860,
                        endpoint: "https://127.0.0.1:2379".into(),
                    },
                },
            )
            .unwrap(),
        }
    }

    #[test]
    fn plan_one_node() {
        let p = plan(&facts(), &req()).unwrap();
        assert_eq!(
            p.facts.summary.new_data_dir,
            Path::new("/var/lib/etcd-restore-20260101T000000Z")
        );
        assert_eq!(
            p.facts.summary.holding_dir,
            Path::new("/etc/kubernetes/kastellan-held/20260101T000000Z")
        );
        assert_eq!(
            p.facts.summary.etcd_health_url,
            "http://127.0.0.1:2381/health"
        );
        assert_eq!(p.facts.summary.etcd_client_port, 2379);
        let phases: Vec<_> = p
            .phases()
            .into_iter()
            .map(|n| Phase::parse(n).unwrap())
            .collect();
        assert_eq!(phases, Phase::ALL);
        assert!(
            p.steps.iter().filter(|s| s.commit).count() == 1
                && p.steps.iter().find(|s| s.commit).unwrap().phase == "start-etcd",
            "start-etcd is the point of no return"
        );
        let undo: Vec<&str> = p
            .steps
            .iter()
            .filter(|s| s.undo.is_some())
            .map(|s| s.phase.as_str())
            .collect();
        assert_eq!(undo, ["stop-control-plane", "stop-etcd"]);
        assert_eq!(p.facts.summary.initial_cluster_token, "etcd-cluster");
        // The bump decided from the live revision: in the summary and in the step.
        let bump = 160 + crate::bump::LIVE_MARGIN;
        assert_eq!(p.facts.summary.revision.snapshot_revision, 700);
        assert_eq!(p.facts.summary.revision.bumped_revision, 700 + bump as i64);
        let restore = p.steps.iter().find(|s| s.phase == "restore").unwrap();
        assert!(
            matches!(&restore.action, Action::RestoreDataDir { bump_revision, .. } if *bump_revision == bump),
            "{restore:?}"
        );
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
                .facts
                .summary
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
        assert_eq!(p.facts.summary.name, "e1");
        assert_eq!(
            p.facts.summary.old_data_dir,
            Path::new("/var/lib/etcd/default")
        );
        assert_eq!(
            p.facts.summary.etcd_health_url,
            "http://127.0.0.1:2379/health"
        );
        let sd = p.facts.summary.systemd.as_ref().unwrap();
        assert_eq!(
            sd.dropin,
            Path::new("/etc/systemd/system/etcd.service.d/99-kastellan-restore.conf")
        );
        let text: String = p
            .describe()
            .iter()
            .map(|d| d.does.clone())
            .collect::<Vec<_>>()
            .join("\n");
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
    fn phase_names_and_the_plan_round_trip() {
        for ph in Phase::ALL {
            assert_eq!(Phase::parse(ph.name()), Some(ph));
        }
        let p = plan(&facts(), &req()).unwrap();
        let json = serde_json::to_vec(&p).unwrap();
        let back = Plan::from_json(PLAN_KIND, Path::new("plan.json"), &json).unwrap();
        assert_eq!(back, p);
        assert!(back.check_facts(&p.facts).is_ok());
        let mut moved = p.facts.clone();
        moved.facts.apiserver_port = 7443;
        let err = back.check_facts(&moved).unwrap_err().to_string();
        assert!(
            err.contains("facts.apiserverPort: was 6443, now 7443"),
            "{err}"
        );
    }
}

//! Applying an upgrade plan through the executor (`kastellan-exec`).
//!
//! Every step of the plan becomes one [`Action`] of an executor plan: a command run on
//! the node through node access, a file written there, a drain or an uncordon through
//! the API, or a health gate. The executor journals each step before and after it
//! runs, so a run killed at any point resumes at the step it was on and never repeats
//! one that completed. Every step is a point of no return: a failure stops the run
//! with the journal kept, and `--resume` continues once the cause is removed (an
//! upgrade is never rolled back behind the operator's back).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kastellan_access::{NodeAccess, NodeCommand};
use kastellan_policy::{Minor, Version};
use kube::Api;
use serde::{Deserialize, Serialize};

use crate::plan::{NodeRole, Step, UpgradePlan};

/// The executor plan's kind: a saved plan of another kind is refused.
pub const KIND: &str = "upgrade";

/// One change of an upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// A command line, run on the node by `sh -c`.
    #[serde(rename_all = "camelCase")]
    Run {
        /// The node.
        node: String,
        /// The command line.
        command: String,
        /// How long it may take.
        timeout_secs: u64,
    },
    /// A file written on the node (atomically, mode 0644).
    #[serde(rename_all = "camelCase")]
    Write {
        /// The node.
        node: String,
        /// The file.
        file: String,
        /// Its content.
        content: String,
    },
    /// The node drained (kubectl's rules, DaemonSet pods left in place).
    #[serde(rename_all = "camelCase")]
    Drain {
        /// The node.
        node: String,
        /// How long the drain may take.
        timeout_secs: u64,
    },
    /// A backup bundle made on the node with kastellan and verified, or a given one
    /// verified (`bundle`), before the first change.
    #[serde(rename_all = "camelCase")]
    Backup {
        /// The node (the first control plane).
        node: String,
        /// kastellan's path on the node.
        kastellan: String,
        /// Where the bundle is written (ignored with `bundle`).
        dir: String,
        /// Extra `backup create` arguments (encryption).
        create: Vec<String>,
        /// Extra `backup verify` arguments (the identity or passphrase).
        verify: Vec<String>,
        /// A fresh bundle to verify instead of making one.
        bundle: Option<String>,
    },
    /// The node uncordoned.
    Uncordon {
        /// The node.
        node: String,
    },
    /// Waits until the node is healthy at the hop's version.
    #[serde(rename_all = "camelCase")]
    Gate {
        /// The node.
        node: String,
        /// The hop's minor.
        minor: Minor,
        /// The exact version, when the hop has one.
        version: Option<Version>,
        /// Whether the node's control-plane pods are checked too.
        control_plane: bool,
        /// How long to wait.
        timeout_secs: u64,
        /// kastellan on the node: its local report (`status --local`) must show the
        /// node's components up and, on a control plane, every etcd member healthy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kastellan: Option<String>,
    },
}

impl Action {
    /// The node the action concerns.
    pub fn node(&self) -> &str {
        match self {
            Action::Run { node, .. }
            | Action::Write { node, .. }
            | Action::Drain { node, .. }
            | Action::Uncordon { node }
            | Action::Backup { node, .. }
            | Action::Gate { node, .. } => node,
        }
    }

    /// Whether the version `v` is what the gate waits for.
    fn at_target(minor: Minor, version: Option<&Version>, v: &Version) -> bool {
        match version {
            Some(t) => v == t,
            None => v.minor() == minor,
        }
    }
}

/// What an upgrade run is checked against: the versions and nodes it was planned from.
/// A saved plan is applied only while these are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Basis {
    /// The cluster's version when planned.
    pub from: Version,
    /// The target.
    pub to: Version,
    /// Every node with its kubelet version and role.
    pub nodes: Vec<BasisNode>,
    /// Every apiserver instance with its version.
    pub apiservers: Vec<String>,
}

/// One node of the [`Basis`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasisNode {
    /// The node.
    pub name: String,
    /// Its kubelet.
    pub kubelet: Version,
    /// Whether it is a control plane.
    pub control_plane: bool,
}

impl Basis {
    /// The basis of an upgrade plan.
    pub fn of(plan: &UpgradePlan) -> Basis {
        let mut apiservers: Vec<String> = plan
            .facts
            .apiservers
            .iter()
            .map(|a| format!("{} {}", a.node, a.version))
            .collect();
        apiservers.sort();
        Basis {
            from: plan.from.clone(),
            to: plan.to.clone(),
            nodes: plan
                .facts
                .nodes
                .iter()
                .map(|n| BasisNode {
                    name: n.name.clone(),
                    kubelet: n.kubelet.clone(),
                    control_plane: n.control_plane,
                })
                .collect(),
            apiservers,
        }
    }
}

/// The executor's plan of an upgrade.
pub type ExecPlan = kastellan_exec::Plan<Action, Basis>;

/// Timeouts of the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A command on a node (kubeadm waits up to 5 minutes per static pod).
    pub command: Duration,
    /// A drain.
    pub drain: Duration,
    /// A health gate.
    pub gate: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            command: Duration::from_secs(20 * 60),
            drain: Duration::from_secs(5 * 60),
            gate: Duration::from_secs(5 * 60),
        }
    }
}

/// Turns an upgrade plan into the executor's plan: the backup first (phase `backup`),
/// then one phase per hop and node (`1.21 cp1`), every step a point of no return.
/// Workers go one at a time. With `kastellan` (its path on the nodes), every gate also
/// reads the node's own health report.
pub fn exec_plan(
    plan: &UpgradePlan,
    id: &str,
    t: Timeouts,
    backup: Option<Action>,
    kastellan: Option<&str>,
) -> ExecPlan {
    let mut steps = Vec::new();
    if let Some(b) = backup {
        steps.push(kastellan_exec::Step::new(b.node(), "backup", b.clone()).commit());
    }
    for hop in &plan.hops {
        for np in &hop.nodes {
            let phase = format!("{} {}", hop.minor, np.node);
            let node = np.node.clone();
            for step in &np.steps {
                let action = match step {
                    Step::Repository { file, content } => Action::Write {
                        node: node.clone(),
                        file: file.clone(),
                        content: content.clone(),
                    },
                    Step::Run { command } => Action::Run {
                        node: node.clone(),
                        command: command.clone(),
                        timeout_secs: t.command.as_secs(),
                    },
                    Step::Drain => Action::Drain {
                        node: node.clone(),
                        timeout_secs: t.drain.as_secs(),
                    },
                    Step::Uncordon => Action::Uncordon { node: node.clone() },
                    Step::Gate { .. } => Action::Gate {
                        node: node.clone(),
                        minor: hop.minor,
                        version: hop.version.clone(),
                        control_plane: np.role != NodeRole::Worker,
                        timeout_secs: t.gate.as_secs(),
                        kastellan: kastellan.map(str::to_string),
                    },
                };
                steps.push(kastellan_exec::Step::new(&node, &phase, action).commit());
            }
        }
    }
    kastellan_exec::Plan {
        kind: KIND.into(),
        id: id.into(),
        facts: Basis::of(plan),
        steps,
    }
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A command could not be run on the node, or did not finish in time.
    #[error("{node}: {source}")]
    Access {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: kastellan_access::Error,
    },
    /// A command ran and failed.
    #[error("{node}: `{command}` exited with {status}{}", if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) })]
    Failed {
        /// The node.
        node: String,
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// The drain did not complete.
    #[error("{node}: drain: {message}")]
    Drain {
        /// The node.
        node: String,
        /// What stopped it.
        message: String,
    },
    /// The API refused or failed.
    #[error("{node}: Kubernetes API: {source}")]
    Kube {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The health gate did not pass in time.
    #[error("{node}: not healthy at {target} after {waited}s: {last}")]
    Gate {
        /// The node.
        node: String,
        /// What was waited for.
        target: String,
        /// How long.
        waited: u64,
        /// What was last seen.
        last: String,
    },
}

/// Receives each line of a command's output as it is written: (node, line, from
/// stderr).
pub type OutputSink = Arc<dyn Fn(&str, &str, bool) + Send + Sync>;

/// Drains a node within a time limit; `Err` says what stopped it.
pub type Drain = Box<dyn Fn(&str, Duration) -> Result<(), String> + Send + Sync>;

/// What performing the actions needs. The drain and uncordon go through `drain`, so
/// the CLI decides how drains report.
pub struct Context {
    /// How nodes are reached.
    pub access: Arc<dyn NodeAccess>,
    /// The API.
    pub client: kube::Client,
    /// Where async calls run (the executor is synchronous).
    pub runtime: tokio::runtime::Handle,
    /// Each line of a command's output, with its node (`stderr` true for stderr).
    pub output: OutputSink,
    /// Drains a node (returns a description of what stopped it on failure).
    pub drain: Drain,
    /// How often the gate looks.
    pub poll: Duration,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl kastellan_exec::Action for Action {
    type Context = Context;
    type Error = ApplyError;

    fn describe(&self) -> String {
        match self {
            Action::Run { command, .. } => command.clone(),
            Action::Write { file, content, .. } => {
                format!("write {file}: {}", content.trim())
            }
            Action::Drain { node, .. } => {
                format!("kastellan node drain {node} --ignore-daemonsets")
            }
            Action::Uncordon { node } => format!("kastellan node uncordon {node}"),
            Action::Backup {
                kastellan,
                dir,
                create,
                verify,
                bundle,
                ..
            } => {
                let verify = shlex::try_join(
                    std::iter::once(kastellan.as_str())
                        .chain(["backup", "verify"])
                        .chain(verify.iter().map(String::as_str)),
                )
                .unwrap_or_default();
                match bundle {
                    Some(b) => format!("{verify} {b}"),
                    None => {
                        let create = shlex::try_join(
                            std::iter::once(kastellan.as_str())
                                .chain(["backup", "create", "--dir", dir])
                                .chain(create.iter().map(String::as_str)),
                        )
                        .unwrap_or_default();
                        format!("{create}; {verify} THE-NEW-BUNDLE")
                    }
                }
            }
            Action::Gate {
                node,
                minor,
                version,
                control_plane,
                kastellan,
                ..
            } => {
                let target = version
                    .as_ref()
                    .map_or_else(|| format!("{minor}.x"), Version::to_string);
                let mut d = if *control_plane {
                    format!(
                        "wait: Node {node} Ready with kubelet {target}; its kube-apiserver, \
                         kube-controller-manager and kube-scheduler pods Ready at {target}"
                    )
                } else {
                    format!("wait: Node {node} Ready with kubelet {target}")
                };
                if kastellan.is_some() {
                    d.push_str(&format!(
                        "; {} up in its own report",
                        node_components(*control_plane).join(", ")
                    ));
                    if *control_plane {
                        d.push_str("; every etcd member healthy");
                    }
                }
                d
            }
        }
    }

    fn apply(&self, ctx: &Context) -> Result<(), ApplyError> {
        match self {
            Action::Run {
                node,
                command,
                timeout_secs,
            } => run(ctx, node, command, Duration::from_secs(*timeout_secs)),
            Action::Write {
                node,
                file,
                content,
            } => ctx
                .access
                .put(
                    node,
                    kastellan_access::Payload::Bytes(content.as_bytes().to_vec()),
                    std::path::Path::new(file),
                    0o644,
                    Duration::from_secs(60),
                )
                .map_err(|source| ApplyError::Access {
                    node: node.clone(),
                    source,
                }),
            Action::Drain { node, timeout_secs } => {
                (ctx.drain)(node, Duration::from_secs(*timeout_secs)).map_err(|message| {
                    ApplyError::Drain {
                        node: node.clone(),
                        message,
                    }
                })
            }
            Action::Backup {
                node,
                kastellan,
                dir,
                create,
                verify,
                bundle,
            } => backup(ctx, node, kastellan, dir, create, verify, bundle.as_deref()),
            Action::Uncordon { node } => ctx
                .runtime
                .block_on(kastellan_drain::api::set_unschedulable(
                    &ctx.client,
                    node,
                    false,
                ))
                .map(|_| ())
                .map_err(|e| ApplyError::Drain {
                    node: node.clone(),
                    message: e.to_string(),
                }),
            Action::Gate {
                node,
                minor,
                version,
                control_plane,
                timeout_secs,
                kastellan,
            } => gate(
                ctx,
                node,
                &Target {
                    minor: *minor,
                    version: version.as_ref(),
                    control_plane: *control_plane,
                    kastellan: kastellan.as_deref(),
                },
                Duration::from_secs(*timeout_secs),
            ),
        }
    }
}

/// The lock every step's command holds on its node while it runs (`flock(1)`): a run
/// killed in the middle of a step can leave that step's command running on the node
/// (kubeadm, apt), and the resumed run must wait for it to end before it runs the step
/// again, never beside it.
pub const NODE_LOCK: &str = "/run/lock/kastellan-upgrade.lock";

/// The log on each node that keeps every step's command line and output (0600,
/// appended); its exit status goes to `NODE_LOG.status` while the step runs.
pub const NODE_LOG: &str = "/var/log/kastellan/upgrade.log";

/// flock's exit status when the lock stayed taken (`-E`).
const LOCK_CONFLICT: i32 = 75;

/// The script that runs a step's command (`$1`) on the node: its stdout and stderr each
/// pass through `tee -p`, to kastellan as before and appended to the log (`$2`). `-p`
/// makes tee go on when kastellan's end is gone (killed, or the connection lost), so
/// the command never dies of a broken pipe at its next line of output (as kubeadm
/// would, halfway through a node's upgrade): it runs to its end, its output kept in
/// the log, and the lock tells the resumed run when it has ended. The script exits
/// with the command's status.
const STEP_SCRIPT: &str = r#"umask 077
log=$2
mkdir -p "${log%/*}" || exit 125
printf '== %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" >>"$log"
rm -f "$log.status"
{ { sh -c "$1" 3>&-; echo $? >"$log.status"; } 2>&1 1>&3 3>&- | tee -p -a "$log" >&2 3>&-; } 3>&1 | tee -p -a "$log"
s=$(cat "$log.status" 2>/dev/null)
exit "${s:-125}""#;

/// The command line that runs a step's `command` on its node: under [`NODE_LOCK`]
/// (waiting for it as long as the step may take), with apt's frontend never asking,
/// through [`STEP_SCRIPT`] (its output also kept in [`NODE_LOG`]).
///
/// `kubeadm upgrade apply|node` first waits one second once the lock is taken. kubeadm
/// names its backup directories (`/etc/kubernetes/tmp/kubeadm-backup-manifests-<time>`)
/// to the second and fails when that directory exists. An earlier kubeadm that ended
/// (or was killed) just before the lock came free may have made its directory in that
/// same second.
pub fn node_command_line(command: &str, timeout: Duration) -> Vec<String> {
    let wait = timeout.as_secs().max(1).to_string();
    let conflict = LOCK_CONFLICT.to_string();
    let settled;
    let command = if makes_timestamped_backups(command) {
        settled = format!("sleep 1 && {command}");
        settled.as_str()
    } else {
        command
    };
    [
        "flock",
        "-o",
        "-E",
        &conflict,
        "-w",
        &wait,
        NODE_LOCK,
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "sh",
        "-c",
        STEP_SCRIPT,
        "kastellan-step",
        command,
        NODE_LOG,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Whether `command` is a kubeadm upgrade that backs up manifests and etcd's data into
/// directories named to the second.
fn makes_timestamped_backups(command: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    matches!(
        words.as_slice(),
        ["kubeadm", "upgrade", "apply" | "node", ..]
    )
}

/// [`node_command_line`] as a shell line, `COMMAND` standing for the step's command.
pub fn node_command_shown(timeout: Duration) -> String {
    let argv = node_command_line("COMMAND", timeout);
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_default()
}

/// How a step's command runs on its node, in a sentence for people.
pub fn node_command_summary(timeout: Duration) -> String {
    format!(
        "under flock {NODE_LOCK} (waiting up to {}s), its output also appended to \
         {NODE_LOG}; it runs to its end even if kastellan is cut off",
        timeout.as_secs().max(1)
    )
}

/// Runs a command line on a node ([`node_command_line`]), its output passed on line by
/// line as it is written.
fn run(ctx: &Context, node: &str, command: &str, timeout: Duration) -> Result<(), ApplyError> {
    let cmd = NodeCommand::new(node_command_line(command, timeout))
        .timeout(timeout + Duration::from_secs(30))
        .lines(sink(ctx, node, true));
    match checked(ctx, node, cmd, command) {
        Err(ApplyError::Failed { status, .. })
            if status.ends_with(&format!(" {LOCK_CONFLICT}")) =>
        {
            Err(ApplyError::Failed {
                node: node.to_string(),
                command: command.to_string(),
                status,
                stderr: format!(
                    "an earlier command of this upgrade still runs on {node} (it holds \
                     {NODE_LOCK}) after {}s",
                    timeout.as_secs()
                ),
            })
        }
        other => other.map(|_| ()),
    }
}

/// Makes a bundle on the node (`backup create -o json` names it) unless one is given,
/// then verifies it there.
fn backup(
    ctx: &Context,
    node: &str,
    kastellan: &str,
    dir: &str,
    create: &[String],
    verify: &[String],
    bundle: Option<&str>,
) -> Result<(), ApplyError> {
    // stderr as it comes; stdout is kastellan's report.
    let kastellan_run = |argv: Vec<String>| {
        let line = shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_default();
        let cmd = NodeCommand::new(argv)
            .timeout(Duration::from_secs(30 * 60))
            .lines(sink(ctx, node, false));
        checked(ctx, node, cmd, &line)
    };
    let path = match bundle {
        Some(b) => b.to_string(),
        None => {
            let mut argv: Vec<String> = [kastellan, "backup", "create", "--dir", dir]
                .iter()
                .map(|s| s.to_string())
                .collect();
            argv.extend(create.iter().cloned());
            argv.extend(["-o".into(), "json".into()]);
            let out = kastellan_run(argv)?;
            let report: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
            let Some(path) = report["path"].as_str() else {
                return Err(ApplyError::Failed {
                    node: node.to_string(),
                    command: format!("{kastellan} backup create"),
                    status: "exit 0".into(),
                    stderr: "its report names no bundle".into(),
                });
            };
            (ctx.output)(node, &format!("wrote {path}"), false);
            path.to_string()
        }
    };
    let mut argv: Vec<String> = [kastellan, "backup", "verify"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend(verify.iter().cloned());
    argv.push(path.clone());
    kastellan_run(argv)?;
    (ctx.output)(node, &format!("verified {path}"), false);
    Ok(())
}

/// Runs `cmd` on the node (`shown` names it in errors); its stdout returned.
fn checked(
    ctx: &Context,
    node: &str,
    cmd: NodeCommand,
    shown: &str,
) -> Result<Vec<u8>, ApplyError> {
    let out = ctx
        .access
        .run(node, &cmd)
        .map_err(|source| ApplyError::Access {
            node: node.to_string(),
            source,
        })?;
    if !out.success() {
        return Err(ApplyError::Failed {
            node: node.to_string(),
            command: shown.to_string(),
            status: out.status.to_string(),
            stderr: out.stderr_tail(5),
        });
    }
    Ok(out.stdout)
}

/// Passes a node's output lines on to the context's sink as they come (stdout too
/// only with `stdout`: otherwise it is a report the caller reads).
fn sink(ctx: &Context, node: &str, stdout: bool) -> kastellan_access::LineSink {
    let out = ctx.output.clone();
    let node = node.to_string();
    kastellan_access::LineSink::new(move |stderr, line| {
        if stderr || stdout {
            out(&node, line, stderr);
        }
    })
}

/// What a gate waits for.
struct Target<'a> {
    minor: Minor,
    version: Option<&'a Version>,
    control_plane: bool,
    kastellan: Option<&'a str>,
}

/// The components a node's own report must show up: the control plane's and the
/// node agents'.
fn node_components(control_plane: bool) -> Vec<&'static str> {
    let mut v = Vec::new();
    if control_plane {
        v.extend([
            "kube-apiserver",
            "etcd",
            "kube-controller-manager",
            "kube-scheduler",
        ]);
    }
    v.extend(["kubelet", "kube-proxy"]);
    v
}

/// Waits until the Node is Ready with its kubelet at the target and, on a control
/// plane, its control-plane mirror pods are Ready with the target image tag; with
/// kastellan on the node, until its own report shows its components up and (control
/// planes) every etcd member healthy.
fn gate(ctx: &Context, node: &str, t: &Target, timeout: Duration) -> Result<(), ApplyError> {
    let start = Instant::now();
    let target = t
        .version
        .map_or_else(|| format!("{}.x", t.minor), Version::to_string);
    loop {
        let mut last = ctx.runtime.block_on(gate_once(ctx, node, t));
        if let (Ok(None), Some(kastellan)) = (&last, t.kastellan) {
            last = Ok(node_report(ctx, node, kastellan, t.control_plane));
        }
        match last {
            Ok(None) => return Ok(()),
            Ok(Some(why)) | Err(why) => {
                if start.elapsed() >= timeout {
                    return Err(ApplyError::Gate {
                        node: node.to_string(),
                        target,
                        waited: start.elapsed().as_secs(),
                        last: why,
                    });
                }
            }
        }
        std::thread::sleep(ctx.poll);
    }
}

/// The node's own health report (`kastellan status --local` run there): `None` when
/// its components are up and, on a control plane, etcd has every member healthy.
fn node_report(ctx: &Context, node: &str, kastellan: &str, control_plane: bool) -> Option<String> {
    let reports = kastellan_health::cluster::NodeReports {
        access: ctx.access.clone(),
        kastellan: kastellan.to_string(),
    };
    let cmd = reports.command(node, Duration::from_secs(5));
    let out = match ctx.access.run(node, &cmd) {
        Ok(out) => out,
        Err(e) => return Some(format!("its own report: {e}")),
    };
    match serde_json::from_slice::<kastellan_health::StatusReport>(&out.stdout) {
        Ok(report) => unhealthy(&report, node, control_plane),
        Err(_) => Some(format!(
            "no report from `{kastellan} status --local` ({}): {}",
            out.status,
            out.stderr_tail(2)
        )),
    }
}

/// What a node's own report shows wrong, if anything: one of its components not up,
/// or (control planes) an etcd member not healthy or the quorum lost.
fn unhealthy(
    report: &kastellan_health::StatusReport,
    node: &str,
    control_plane: bool,
) -> Option<String> {
    let wanted = node_components(control_plane);
    let mut bad: Vec<String> = Vec::new();
    for component in &wanted {
        let rows: Vec<&kastellan_health::Check> = report
            .checks
            .iter()
            .filter(|c| c.node == node && c.component == *component)
            .collect();
        if rows.is_empty() {
            bad.push(format!("{component} not found"));
        } else if let Some(c) = rows.iter().find(|c| c.state != kastellan_health::State::Up) {
            bad.push(format!("{component} {}: {}", c.state.label(), c.detail));
        }
    }
    if control_plane {
        match &report.etcd {
            None => bad.push("etcd members could not be listed".into()),
            Some(q) if !q.has_quorum => bad.push(format!(
                "etcd quorum lost ({} of {} members healthy)",
                q.healthy, q.members
            )),
            Some(q) if q.healthy < q.members => {
                let down: Vec<&str> = q
                    .member_list
                    .iter()
                    .filter(|m| !m.learner && !m.healthy)
                    .map(|m| m.name.as_str())
                    .collect();
                bad.push(format!(
                    "etcd member {} not healthy ({} of {} healthy)",
                    down.join(", "),
                    q.healthy,
                    q.members
                ));
            }
            Some(_) => {}
        }
    }
    (!bad.is_empty()).then(|| format!("its own report: {}", bad.join("; ")))
}

/// One look: `None` when healthy, else what is missing.
async fn gate_once(ctx: &Context, node: &str, t: &Target<'_>) -> Result<Option<String>, String> {
    let (minor, version) = (t.minor, t.version);
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let n = nodes.get(node).await.map_err(|e| e.to_string())?;
    let status = n.status.unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return Ok(Some(format!("Node {node} is not Ready")));
    }
    let kubelet = status
        .node_info
        .map(|i| i.kubelet_version)
        .unwrap_or_default();
    match Version::parse(&kubelet) {
        Ok(v) if Action::at_target(minor, version, &v) => {}
        _ => return Ok(Some(format!("Node {node} reports kubelet {kubelet}"))),
    }
    if !t.control_plane {
        return Ok(None);
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), "kube-system");
    for component in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let name = format!("{component}-{node}");
        let Some(pod) = pods.get_opt(&name).await.map_err(|e| e.to_string())? else {
            return Ok(Some(format!("no pod kube-system/{name}")));
        };
        let image = pod
            .spec
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.image)
            .unwrap_or_default();
        let (tag, _) = crate::versions::image_tag(&image);
        if !tag.is_some_and(|v| Action::at_target(minor, version, &v)) {
            return Ok(Some(format!("pod kube-system/{name} runs {image}")));
        }
        let ready = pod
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            return Ok(Some(format!("pod kube-system/{name} is not Ready")));
        }
    }
    Ok(None)
}

/// What a node's completed steps say about its state, for a failure report: e.g.
/// `cordoned; packages unheld; kubeadm upgraded, kubelet not`.
pub fn node_state(done: &[&Action], node: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cordoned = false;
    let mut unheld: Vec<String> = Vec::new();
    let mut kubeadm_upgraded = false;
    let mut kubelet_restarted = false;
    for a in done.iter().filter(|a| a.node() == node) {
        match a {
            Action::Drain { .. } => cordoned = true,
            Action::Uncordon { .. } => cordoned = false,
            Action::Run { command, .. } => {
                let words: Vec<&str> = command.split_whitespace().collect();
                if let Some(rest) = command
                    .strip_prefix("apt-mark unhold ")
                    .or_else(|| command.strip_prefix("dnf versionlock delete "))
                {
                    unheld.extend(rest.split_whitespace().map(str::to_string));
                } else if let Some(rest) = command
                    .strip_prefix("apt-mark hold ")
                    .or_else(|| command.strip_prefix("dnf versionlock add "))
                {
                    let held: Vec<&str> = rest.split_whitespace().collect();
                    unheld.retain(|p| !held.contains(&p.as_str()));
                } else if words.starts_with(&["kubeadm", "upgrade", "apply"])
                    || words.starts_with(&["kubeadm", "upgrade", "node"])
                {
                    kubeadm_upgraded = true;
                } else if command == "systemctl restart kubelet" {
                    kubelet_restarted = true;
                }
            }
            _ => {}
        }
    }
    if cordoned {
        out.push("cordoned".to_string());
    }
    if !unheld.is_empty() {
        out.push(format!("packages unheld: {}", unheld.join(" ")));
    }
    match (kubeadm_upgraded, kubelet_restarted) {
        (true, false) => out.push("kubeadm upgraded the node, the kubelet not yet".into()),
        (true, true) => out.push("kubeadm and the kubelet upgraded".into()),
        _ => out.push("not upgraded by kubeadm yet".into()),
    }
    out
}

/// How a node that a failed run left half-way can be taken back to where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// Nothing of the run changed it.
    Unchanged,
    /// kubeadm upgraded it already: kubeadm does not take a node back a minor, so
    /// the only way is forward.
    ForwardOnly,
    /// Put back as it was by these commands, run on the node in order (then
    /// uncordoned when `uncordon`).
    Commands {
        /// Shell lines for the node.
        commands: Vec<String>,
        /// Whether the node was left cordoned.
        uncordon: bool,
    },
}

/// How to take `node` back to the version it ran before this run (`from`, or the
/// last hop it completed), from the steps done: its repository switched back, its
/// packages downgraded and held again, uncordoned. Only while kubeadm has not
/// upgraded it: after that, [`Rollback::ForwardOnly`].
pub fn rollback(done: &[&Action], node: &str, from: &Version) -> Rollback {
    let mut previous: (Minor, Option<Version>) = (from.minor(), Some(from.clone()));
    let mut repository: Option<String> = None;
    let mut rewritten: Option<String> = None;
    let mut installed: Vec<String> = Vec::new();
    let mut unheld: Vec<String> = Vec::new();
    let mut cordoned = false;
    let mut rpm = false;
    for a in done.iter().filter(|a| a.node() == node) {
        match a {
            Action::Gate { minor, version, .. } => {
                // A hop finished on this node: it is the point to go back to.
                previous = (*minor, version.clone());
                repository = None;
                rewritten = None;
                installed.clear();
                unheld.clear();
            }
            Action::Drain { .. } => cordoned = true,
            Action::Uncordon { .. } => cordoned = false,
            Action::Write { file, .. } => rewritten = Some(file.clone()),
            Action::Run { command, .. } => {
                let words: Vec<&str> = command.split_whitespace().collect();
                if words.starts_with(&["kubeadm", "upgrade", "apply"])
                    || words.starts_with(&["kubeadm", "upgrade", "node"])
                {
                    return Rollback::ForwardOnly;
                }
                if command.starts_with("sed -i -E 's|core:/stable:/") {
                    repository = Some(command.clone());
                } else if let Some(rest) = command.strip_prefix("apt-mark unhold ") {
                    unheld.extend(rest.split_whitespace().map(str::to_string));
                } else if let Some(rest) = command.strip_prefix("dnf versionlock delete ") {
                    rpm = true;
                    unheld.extend(rest.split_whitespace().map(str::to_string));
                } else if command.starts_with("apt-get install ")
                    || command.starts_with("dnf install ")
                {
                    installed.extend(
                        words
                            .iter()
                            .filter_map(|w| w.split(['=', '-']).next())
                            .map(|p| p.trim_matches('\'').to_string())
                            .filter(|p| ["kubeadm", "kubelet", "kubectl"].contains(&p.as_str())),
                    );
                }
            }
            _ => {}
        }
    }
    let (minor, version) = previous;
    let mut commands = Vec::new();
    if let Some(sed) = &repository {
        // The same rewrite, to the minor the node came from.
        let back = sed.replacen(
            "|core:/stable:/v[0-9]+\\.[0-9]+/|core:/stable:/",
            "|core:/stable:/v[0-9]+\\.[0-9]+/|core:/stable:/@@",
            1,
        );
        if let Some((head, tail)) = back.split_once("@@")
            && let Some((_, rest)) = tail.split_once('/')
        {
            commands.push(format!("{head}v{minor}/{rest}"));
        }
    }
    if let Some(file) = &rewritten {
        commands.push(format!(
            "# put {file} back as it was before the run (it names the {minor} repository)"
        ));
    }
    if !rpm && (repository.is_some() || rewritten.is_some() || !installed.is_empty()) {
        commands.push("apt-get update".into());
    }
    if !installed.is_empty() {
        let exact = version.as_ref().map(|v| v.to_string());
        let plain = exact
            .as_deref()
            .map(|v| v.trim_start_matches('v').to_string());
        if rpm {
            let list: Vec<String> = installed
                .iter()
                .map(|p| match &plain {
                    Some(v) => format!("'{p}-{v}'"),
                    None => format!("'{p}-{minor}.*'"),
                })
                .collect();
            commands.push(format!(
                "dnf downgrade -y {} --disableexcludes=kubernetes",
                list.join(" ")
            ));
        } else {
            let list: Vec<String> = installed
                .iter()
                .map(|p| match &plain {
                    Some(v) => format!("{p}='{v}-*'"),
                    None => format!("{p}='{minor}.*'"),
                })
                .collect();
            commands.push(format!(
                "apt-get install -y --allow-downgrades --allow-change-held-packages {}",
                list.join(" ")
            ));
        }
    }
    if !unheld.is_empty() {
        commands.push(if rpm {
            format!("dnf versionlock add {}", unheld.join(" "))
        } else {
            format!("apt-mark hold {}", unheld.join(" "))
        });
    }
    if commands.is_empty() && !cordoned {
        Rollback::Unchanged
    } else {
        Rollback::Commands {
            commands,
            uncordon: cordoned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(node: &str, c: &str) -> Action {
        Action::Run {
            node: node.into(),
            command: c.into(),
            timeout_secs: 1,
        }
    }

    #[test]
    fn kubeadm_upgrades_wait_a_second_under_the_node_lock() {
        let line = |c: &str| node_command_line(c, Duration::from_secs(60));
        for c in [
            "kubeadm upgrade node",
            "kubeadm upgrade apply v1.21.0 --yes",
        ] {
            let argv = line(c);
            assert_eq!(argv[argv.len() - 2], format!("sleep 1 && {c}"));
            // The wait comes after flock has the lock, inside the locked command.
            assert_eq!(
                argv[..7],
                ["flock", "-o", "-E", "75", "-w", "60", NODE_LOCK]
            );
        }
        for c in [
            "kubeadm upgrade plan v1.21.0",
            "apt-get update",
            "apt-mark hold kubeadm",
        ] {
            let argv = line(c);
            assert_eq!(argv[argv.len() - 2], c);
        }
    }

    /// `STEP_SCRIPT` run by the real `sh` and `tee`, with the log in a temp dir.
    fn step(command: &str, log: &std::path::Path) -> std::process::Command {
        let argv = node_command_line(command, Duration::from_secs(60));
        let sh = argv.iter().position(|a| a == "sh").unwrap();
        let mut c = std::process::Command::new("sh");
        c.args(&argv[sh + 1..argv.len() - 1]).arg(log);
        c
    }

    #[test]
    fn a_step_keeps_both_streams_and_its_status_and_logs_them() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log/upgrade.log");
        let out = step("echo to-out; echo to-err >&2; exit 3", &log)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "to-out\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "to-err\n");
        let text = std::fs::read_to_string(&log).unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with("== ") && first.ends_with(" echo to-out; echo to-err >&2; exit 3"),
            "{text}"
        );
        assert!(
            text.contains("to-out\n") && text.contains("to-err\n"),
            "{text}"
        );
        let mode = std::fs::metadata(&log).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_step_runs_to_its_end_when_kastellans_end_is_gone() {
        use std::io::Read as _;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("upgrade.log");
        let done = dir.path().join("done");
        let command = format!(
            "echo first; sleep 0.5; for i in 1 2 3; do echo out$i; echo err$i >&2; done; \
             touch {}; exit 4",
            done.display()
        );
        let mut child = step(&command, &log)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 6];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        assert_eq!(&first, b"first\n");
        // Both pipes closed, as when kastellan is killed or its connection lost.
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(4), "the command's own status");
        assert!(done.exists(), "the command stopped halfway");
        let text = std::fs::read_to_string(&log).unwrap();
        for l in ["out3", "err3"] {
            assert!(text.contains(l), "{l} missing from the log:\n{text}");
        }
        // The first line was written before the pipes closed; all of it still logged.
        assert_eq!(text.lines().filter(|l| *l == "first").count(), 1, "{text}");
    }

    #[test]
    fn node_state_names_what_is_half_done() {
        let steps = [
            run("cp1", "apt-mark unhold kubeadm"),
            run("cp1", "apt-get install -y kubeadm='1.21.0-*'"),
            run("cp1", "apt-mark hold kubeadm"),
            run("cp1", "kubeadm upgrade apply v1.21.0 --yes"),
            Action::Drain {
                node: "cp1".into(),
                timeout_secs: 1,
            },
            run("cp1", "apt-mark unhold kubelet kubectl"),
            run("w1", "apt-mark unhold kubeadm"),
        ];
        let done: Vec<&Action> = steps.iter().collect();
        assert_eq!(
            node_state(&done, "cp1"),
            [
                "cordoned",
                "packages unheld: kubelet kubectl",
                "kubeadm upgraded the node, the kubelet not yet"
            ]
        );
        assert_eq!(
            node_state(&done, "w1"),
            ["packages unheld: kubeadm", "not upgraded by kubeadm yet"]
        );
    }

    fn check(
        node: &str,
        component: &str,
        state: kastellan_health::State,
    ) -> kastellan_health::Check {
        kastellan_health::Check {
            node: node.into(),
            component: component.into(),
            endpoint: "https://10.0.0.1".into(),
            source: kastellan_health::Source::LocalProbe,
            state,
            latency_ms: None,
            detail: "said so".into(),
            failing: Vec::new(),
        }
    }

    fn member(name: &str, healthy: bool) -> kastellan_health::quorum::EtcdMember {
        kastellan_health::quorum::EtcdMember {
            name: name.into(),
            healthy,
            ..Default::default()
        }
    }

    #[test]
    fn a_node_report_passes_only_with_its_components_up_and_every_member_healthy() {
        use kastellan_health::State::{Down, Up};
        let all = |state| {
            node_components(true)
                .into_iter()
                .map(|c| check("cp2", c, state))
                .collect::<Vec<_>>()
        };
        let members = |h: [bool; 3]| {
            Some(kastellan_health::quorum::assess(
                &[
                    member("cp1", h[0]),
                    member("cp2", h[1]),
                    member("cp3", h[2]),
                ],
                None,
            ))
        };
        let report = |checks, etcd| kastellan_health::StatusReport::new(checks, etcd, Vec::new());
        assert_eq!(
            unhealthy(&report(all(Up), members([true; 3])), "cp2", true),
            None
        );
        // Another node's rows do not count for this one.
        let mut checks = all(Up);
        checks.push(check("cp3", "kube-apiserver", Down));
        assert_eq!(
            unhealthy(&report(checks, members([true; 3])), "cp2", true),
            None
        );
        let mut checks = all(Up);
        checks[0].state = Down;
        assert_eq!(
            unhealthy(&report(checks, members([true; 3])), "cp2", true).as_deref(),
            Some("its own report: kube-apiserver down: said so")
        );
        assert_eq!(
            unhealthy(&report(all(Up), members([true, true, false])), "cp2", true).as_deref(),
            Some("its own report: etcd member cp3 not healthy (2 of 3 healthy)")
        );
        assert_eq!(
            unhealthy(&report(all(Up), members([true, false, false])), "cp2", true).as_deref(),
            Some("its own report: etcd quorum lost (1 of 3 members healthy)")
        );
        assert_eq!(
            unhealthy(&report(all(Up), None), "cp2", true).as_deref(),
            Some("its own report: etcd members could not be listed")
        );
        // A worker needs only its agents, and no etcd.
        let agents = vec![check("w1", "kubelet", Up), check("w1", "kube-proxy", Up)];
        assert_eq!(unhealthy(&report(agents, None), "w1", false), None);
        assert_eq!(
            unhealthy(&report(vec![check("w1", "kubelet", Up)], None), "w1", false).as_deref(),
            Some("its own report: kube-proxy not found")
        );
    }

    #[test]
    fn gates_match_the_exact_version_or_the_minor() {
        let v = |s: &str| Version::parse(s).unwrap();
        let m: Minor = "1.21".parse().unwrap();
        assert!(Action::at_target(m, Some(&v("v1.21.0")), &v("v1.21.0")));
        assert!(!Action::at_target(m, Some(&v("v1.21.1")), &v("v1.21.0")));
        assert!(Action::at_target(m, None, &v("v1.21.7")));
        assert!(!Action::at_target(m, None, &v("v1.20.7")));
    }

    #[test]
    fn a_node_rolls_back_until_kubeadm_upgraded_it() {
        let from = Version::parse("v1.20.2").unwrap();
        let sed = "sed -i -E 's|core:/stable:/v[0-9]+\\.[0-9]+/|core:/stable:/v1.21/|g' \
                   /etc/apt/sources.list.d/kubernetes.list";
        let mut steps = vec![
            run("w1", sed),
            run("w1", "apt-get update"),
            run("w1", "apt-mark unhold kubeadm"),
            run(
                "w1",
                "apt-get install -y --allow-change-held-packages kubeadm='1.21.0-*'",
            ),
        ];
        let done: Vec<&Action> = steps.iter().collect();
        assert_eq!(rollback(&done[..0], "w1", &from), Rollback::Unchanged);
        assert_eq!(
            rollback(&done, "w1", &from),
            Rollback::Commands {
                commands: vec![
                    "sed -i -E 's|core:/stable:/v[0-9]+\\.[0-9]+/|core:/stable:/v1.20/|g' \
                     /etc/apt/sources.list.d/kubernetes.list"
                        .to_string(),
                    "apt-get update".into(),
                    "apt-get install -y --allow-downgrades --allow-change-held-packages \
                     kubeadm='1.20.2-*'"
                        .into(),
                    "apt-mark hold kubeadm".into(),
                ],
                uncordon: false,
            }
        );
        // Another node's steps are not this one's.
        assert_eq!(rollback(&done, "w2", &from), Rollback::Unchanged);
        steps.push(run("w1", "kubeadm upgrade node"));
        let done: Vec<&Action> = steps.iter().collect();
        assert_eq!(rollback(&done, "w1", &from), Rollback::ForwardOnly);
        // A drained node that kubeadm has not touched goes back to service too.
        let drained = [Action::Drain {
            node: "w1".into(),
            timeout_secs: 1,
        }];
        let done: Vec<&Action> = drained.iter().collect();
        assert_eq!(
            rollback(&done, "w1", &from),
            Rollback::Commands {
                commands: vec![],
                uncordon: true
            }
        );
    }
}

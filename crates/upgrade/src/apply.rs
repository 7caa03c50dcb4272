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
/// Workers go one at a time.
pub fn exec_plan(plan: &UpgradePlan, id: &str, t: Timeouts, backup: Option<Action>) -> ExecPlan {
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
                ..
            } => {
                let target = version
                    .as_ref()
                    .map_or_else(|| format!("{minor}.x"), Version::to_string);
                if *control_plane {
                    format!(
                        "wait: Node {node} Ready with kubelet {target}; its kube-apiserver, \
                         kube-controller-manager and kube-scheduler pods Ready at {target}"
                    )
                } else {
                    format!("wait: Node {node} Ready with kubelet {target}")
                }
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
            } => gate(
                ctx,
                node,
                *minor,
                version.as_ref(),
                *control_plane,
                Duration::from_secs(*timeout_secs),
            ),
        }
    }
}

/// Runs a command line on a node (`env DEBIAN_FRONTEND=noninteractive sh -c LINE`),
/// its output passed on line by line as it is written.
fn run(ctx: &Context, node: &str, command: &str, timeout: Duration) -> Result<(), ApplyError> {
    // apt's frontend must never wait for an answer on a node without a terminal.
    let cmd = NodeCommand::new(["env", "DEBIAN_FRONTEND=noninteractive", "sh", "-c", command])
        .timeout(timeout)
        .lines(sink(ctx, node, true));
    checked(ctx, node, cmd, command).map(|_| ())
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

/// Waits until the Node is Ready with its kubelet at the target and, on a control
/// plane, its control-plane mirror pods are Ready with the target image tag.
fn gate(
    ctx: &Context,
    node: &str,
    minor: Minor,
    version: Option<&Version>,
    control_plane: bool,
    timeout: Duration,
) -> Result<(), ApplyError> {
    let start = Instant::now();
    let target = version.map_or_else(|| format!("{minor}.x"), Version::to_string);
    loop {
        let last = ctx
            .runtime
            .block_on(gate_once(ctx, node, minor, version, control_plane));
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

/// One look: `None` when healthy, else what is missing.
async fn gate_once(
    ctx: &Context,
    node: &str,
    minor: Minor,
    version: Option<&Version>,
    control_plane: bool,
) -> Result<Option<String>, String> {
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
    if !control_plane {
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

    #[test]
    fn gates_match_the_exact_version_or_the_minor() {
        let v = |s: &str| Version::parse(s).unwrap();
        let m: Minor = "1.21".parse().unwrap();
        assert!(Action::at_target(m, Some(&v("v1.21.0")), &v("v1.21.0")));
        assert!(!Action::at_target(m, Some(&v("v1.21.1")), &v("v1.21.0")));
        assert!(Action::at_target(m, None, &v("v1.21.7")));
        assert!(!Action::at_target(m, None, &v("v1.20.7")));
    }
}

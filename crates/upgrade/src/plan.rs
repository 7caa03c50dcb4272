//! The upgrade plan: one minor at a time, each hop a list of steps per node with the
//! exact commands, pre-flight findings first. Pure: built from [`PlanFacts`], which the
//! CLI gathers (API, node packages) and which travel inside the plan, so that a saved
//! plan can be checked against the cluster as it is later.
//!
//! The order of each hop is kubeadm's own procedure: on the first control plane the
//! kubeadm package, `kubeadm upgrade plan`, `kubeadm upgrade apply`; then on every other
//! control plane and then on the workers (`--max-unavailable` at a time) the kubeadm
//! package and `kubeadm upgrade node`; on each node the drain, kubelet and kubectl
//! packages, kubelet restart, uncordon and a health gate.

use kastellan_policy::skew::{self, Cluster, Component as PolicyComponent, ComponentKind};
use kastellan_policy::{Minor, Version};
use serde::{Deserialize, Serialize};

use crate::packages::Repository;

/// What the plan is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanFacts {
    /// Every node, control planes first.
    pub nodes: Vec<NodeFacts>,
    /// Each kube-apiserver instance and its version.
    pub apiservers: Vec<Instance>,
    /// kube-controller-manager and kube-scheduler instances.
    pub control_plane: Vec<Instance>,
    /// PodDisruptionBudgets and where their pods run.
    pub budgets: Vec<Budget>,
    /// Pods the upgrade's drains would refuse (kubectl's rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drain_refusals: Vec<DrainRefusal>,
    /// Hazards the upgrade's drains would stop at (a workload's last ready replicas on
    /// the node, a primary).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drain_hazards: Vec<DrainHazard>,
    /// Calls to deprecated APIs that each apiserver counted since it started.
    pub deprecated_calls: Vec<DeprecatedCall>,
    /// Objects in etcd by the apiVersion they are stored as (`None`: not read; see
    /// `stored_unread`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<Vec<StoredObjects>>,
    /// Why etcd's objects were not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_unread: Option<String>,
    /// The cluster's health as `kastellan status` saw it (`None`: not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Each control plane's room for the copy of etcd's data that kubeadm makes before
    /// it upgrades etcd (empty: not read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub etcd_backup_room: Vec<EtcdBackupRoom>,
}

/// The room on a control plane for kubeadm's copy of etcd's data: in its etcd phase,
/// `kubeadm upgrade apply|node` copies the whole data dir to
/// `/etc/kubernetes/tmp/kubeadm-backup-etcd-<time>` (with `cp -r`, before it compares
/// etcd's versions, so even when etcd stays), and leaves it there. A copy that fails
/// stops kubeadm; one that fills the filesystem etcd writes to stops etcd too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdBackupRoom {
    /// The control plane.
    pub node: String,
    /// etcd's data dir there (`--data-dir` of its manifest).
    pub data_dir: String,
    /// Its size in bytes.
    pub data_bytes: u64,
    /// Bytes available on the filesystem of `/etc/kubernetes` (`df`'s Available).
    pub free_bytes: u64,
    /// Whether the data dir is on that same filesystem (the copy then also takes the
    /// room etcd itself writes into).
    pub same_filesystem: bool,
    /// kubeadm's backups (`kubeadm-backup-*`) that earlier upgrades left there.
    pub old_backups: u64,
    /// Their bytes.
    pub old_backup_bytes: u64,
}

/// Room kept beyond the copy itself: etcd goes on writing while kubeadm copies.
pub const ETCD_BACKUP_SLACK: u64 = 256 << 20;

/// `bytes` as people read sizes: `3.4 GiB`, `512.0 MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if unit == "B" {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// The cluster's health before the upgrade (from `kastellan status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Whether every check was up and etcd had quorum.
    pub healthy: bool,
    /// The status's one-line summary.
    pub summary: String,
    /// The checks that were not up, as `node component: detail`.
    pub problems: Vec<String>,
    /// Failures etcd tolerates now (`None`: etcd not asked).
    pub etcd_tolerated: Option<usize>,
    /// Certificates and their days left (only those within 30 days, or expired).
    pub expiring: Vec<ExpiringCert>,
}

/// A certificate close to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiringCert {
    /// Its node.
    pub node: String,
    /// kubeadm's name for it.
    pub name: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Whole days left when the plan was made (negative: expired).
    pub days_left: i64,
}

/// Certificates that `kubeadm upgrade` renews itself (its certificateRenewal default):
/// every leaf of the control plane's PKI and its kubeconfigs, not the CAs, not the
/// kubelet's own.
fn renewed_by_kubeadm(name: &str) -> bool {
    !name.ends_with("-ca") && name != "ca" && !name.starts_with("kubelet")
}

/// A pod that a node's drain would refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainRefusal {
    /// The node.
    pub node: String,
    /// `namespace/name`.
    pub pod: String,
    /// Why (kubectl's rule, in words).
    pub reason: String,
    /// Whether it is refused for its emptyDir data (`upgrade apply
    /// --delete-emptydir-data` goes past it; nothing goes past the other reasons).
    pub local_storage: bool,
}

/// A hazard that a node's drain would stop at unless told to go past it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainHazard {
    /// The node.
    pub node: String,
    /// The hazard, in words (the drain's own description).
    pub hazard: String,
}

/// Objects of one resource stored in etcd with one apiVersion (`kastellan etcd
/// storage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredObjects {
    /// The resource (`ingresses`).
    pub resource: String,
    /// The apiVersion they are encoded with (`networking.k8s.io/v1beta1`).
    pub api_version: String,
    /// Their kind, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// How many.
    pub count: u64,
}

/// A component instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// The component (`kube-apiserver`, `kube-controller-manager`, `kube-scheduler`).
    pub component: String,
    /// Its node.
    pub node: String,
    /// Its version.
    pub version: Version,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    /// Its name.
    pub name: String,
    /// Whether it runs the control plane.
    pub control_plane: bool,
    /// Its kubelet's version.
    pub kubelet: Version,
    /// Whether the Node is Ready.
    pub ready: bool,
    /// Whether it is cordoned already.
    pub unschedulable: bool,
    /// Its package manager (`dpkg`, `rpm`), when the node was asked.
    pub manager: Option<String>,
    /// Its Kubernetes package repository, when the node was asked.
    pub repository: Option<Repository>,
}

/// A PodDisruptionBudget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// `namespace/name`.
    pub name: String,
    /// `status.disruptionsAllowed`.
    pub allowed: i32,
    /// `status.currentHealthy`.
    pub healthy: i32,
    /// `status.desiredHealthy`.
    pub desired: i32,
    /// The pods it covers, with their nodes.
    pub pods: Vec<PodRef>,
}

/// A pod and its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    /// `namespace/name`.
    pub name: String,
    /// Its node.
    pub node: String,
}

/// A deprecated API an apiserver has served (`apiserver_requested_deprecated_apis`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeprecatedCall {
    /// The apiserver that counted it.
    pub apiserver: String,
    /// API group (empty: core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource.
    pub resource: String,
    /// The release that removes it, as the apiserver says (`1.22`).
    pub removed_release: String,
}

/// How important a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The plan cannot run until it is dealt with.
    Blocker,
    /// The run may stall or lose something.
    Warning,
    /// Worth knowing.
    Info,
}

/// A pre-flight finding, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// How important.
    pub severity: Severity,
    /// A stable id (`pdb-blocks-drain`, `removed-api-called`, ...).
    pub id: String,
    /// What it is, in one sentence.
    pub message: String,
    /// The nodes it concerns (empty: the cluster).
    pub nodes: Vec<String>,
    /// What shows it.
    pub evidence: Vec<String>,
}

/// What a node does in a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// The control plane that runs `kubeadm upgrade apply`.
    FirstControlPlane,
    /// Another control plane (`kubeadm upgrade node`).
    ControlPlane,
    /// A worker (`kubeadm upgrade node`).
    Worker,
}

/// One step on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Step {
    /// Point the package manager at the hop's repository.
    #[serde(rename_all = "camelCase")]
    Repository {
        /// The file written.
        file: String,
        /// Its content.
        content: String,
    },
    /// A command run on the node.
    Run {
        /// The command line.
        command: String,
    },
    /// `kastellan node drain` of the node.
    Drain,
    /// `kastellan node uncordon` of the node.
    Uncordon,
    /// Wait until the node is healthy at the hop's version.
    #[serde(rename_all = "camelCase")]
    Gate {
        /// What is waited for.
        until: String,
    },
}

impl Step {
    /// The step in one line.
    pub fn line(&self, node: &str) -> String {
        match self {
            Step::Repository { file, content } => format!("write {file}: {}", content.trim()),
            Step::Run { command } => command.clone(),
            Step::Drain => format!("kastellan node drain {node} --ignore-daemonsets"),
            Step::Uncordon => format!("kastellan node uncordon {node}"),
            Step::Gate { until } => format!("wait: {until}"),
        }
    }
}

/// A node's part of a hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePlan {
    /// The node.
    pub node: String,
    /// What it does.
    pub role: NodeRole,
    /// Workers move in batches of `--max-unavailable`: its batch (0 for control planes).
    pub batch: usize,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// One minor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hop {
    /// The minor the cluster moves to.
    pub minor: Minor,
    /// The exact version, or none: the newest patch of the minor that the repository
    /// offers (resolved on the node with `apt-cache madison` / `dnf list`).
    pub version: Option<Version>,
    /// The package version pattern installed (`1.21.0-*`, `1.22.*`).
    pub package: String,
    /// Per node, in order.
    pub nodes: Vec<NodePlan>,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePlan {
    /// The cluster's version now (its oldest apiserver).
    pub from: Version,
    /// The target.
    pub to: Version,
    /// Workers drained at once.
    pub max_unavailable: usize,
    /// Pre-flight findings, blockers first.
    pub findings: Vec<Finding>,
    /// The hops, one minor each.
    pub hops: Vec<Hop>,
    /// The facts it was built from.
    pub facts: PlanFacts,
}

impl UpgradePlan {
    /// Whether a finding blocks the plan.
    pub fn blocked(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Blocker)
    }
}

/// Why no plan can be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The policy refuses the path (downgrade, unknown minor).
    #[error(transparent)]
    Policy(#[from] kastellan_policy::Error),
    /// No apiserver was seen.
    #[error("no kube-apiserver answered: the cluster's version is unknown")]
    NoApiServer,
    /// The cluster is at the target already.
    #[error("every kube-apiserver is at {0} already")]
    AtTarget(Version),
    /// Kubelets (or other components) must move first.
    #[error("{} must move before the control plane can go to {target}: {}", if .blockers.len() == 1 { "one component" } else { "some components" }, .blockers.join("; "))]
    CatchUp {
        /// The hop's minor.
        target: Minor,
        /// Each blocker in one line (component, version, node, allowed minors).
        blockers: Vec<String>,
    },
    /// `--max-unavailable 0`.
    #[error("max-unavailable must be at least 1")]
    MaxUnavailable,
}

/// Plans the upgrade to `to`, workers `max_unavailable` at a time.
pub fn plan(
    facts: &PlanFacts,
    to: &Version,
    max_unavailable: usize,
) -> Result<UpgradePlan, PlanError> {
    if max_unavailable == 0 {
        return Err(PlanError::MaxUnavailable);
    }
    let from = facts
        .apiservers
        .iter()
        .map(|a| a.version.clone())
        .min()
        .ok_or(PlanError::NoApiServer)?;
    let newest = facts
        .apiservers
        .iter()
        .map(|a| a.version.clone())
        .max()
        .ok_or(PlanError::NoApiServer)?;
    if &newest == to && &from == to {
        return Err(PlanError::AtTarget(to.clone()));
    }
    let mut minors = skew::path(from.clone(), to.clone())?;
    if minors.is_empty() {
        // A patch upgrade within the minor.
        minors.push(to.minor());
    }

    // What must move before the first hop: kubelets and kube-proxies that the new
    // control plane would leave out of policy (kubeadm moves within the hop itself).
    let cluster = cluster_of(facts);
    if to.minor() != from.minor() {
        let blockers: Vec<String> = skew::blockers_for_hop(&cluster, minors[0])?
            .into_iter()
            .filter(|b| {
                !b.component.kind.is_control_plane() && b.component.kind != ComponentKind::Kubeadm
            })
            .map(|b| match b.allowed {
                Some(r) => format!("{} (to {r} first)", b.component),
                None => format!("{}", b.component),
            })
            .collect();
        if !blockers.is_empty() {
            return Err(PlanError::CatchUp {
                target: minors[0],
                blockers,
            });
        }
    }

    let mut hops = Vec::new();
    for (i, minor) in minors.iter().enumerate() {
        let last = i + 1 == minors.len();
        let version = last.then(|| to.clone());
        let package = match &version {
            Some(v) => format!("{}.{}-*", v.minor(), v.patch()),
            None => format!("{minor}.*"),
        };
        hops.push(hop(facts, *minor, version, &package, max_unavailable));
    }
    let mut findings = findings(facts, to.minor());
    findings.sort_by(|a, b| (a.severity, &a.id).cmp(&(b.severity, &b.id)));
    Ok(UpgradePlan {
        from,
        to: to.clone(),
        max_unavailable,
        findings,
        hops,
        facts: facts.clone(),
    })
}

/// The policy's view of the facts.
fn cluster_of(facts: &PlanFacts) -> Cluster {
    let mut c = Cluster::default();
    for a in &facts.apiservers {
        c.components.push(PolicyComponent::new(
            ComponentKind::ApiServer,
            a.node.clone(),
            a.version.clone(),
        ));
    }
    for i in &facts.control_plane {
        let kind = match i.component.as_str() {
            "kube-controller-manager" => ComponentKind::ControllerManager,
            "kube-scheduler" => ComponentKind::Scheduler,
            _ => continue,
        };
        c.components.push(PolicyComponent::new(
            kind,
            i.node.clone(),
            i.version.clone(),
        ));
    }
    for n in &facts.nodes {
        c.components.push(PolicyComponent::new(
            ComponentKind::Kubelet,
            n.name.clone(),
            n.kubelet.clone(),
        ));
    }
    c
}

/// One hop's steps per node.
fn hop(
    facts: &PlanFacts,
    minor: Minor,
    version: Option<Version>,
    package: &str,
    max_unavailable: usize,
) -> Hop {
    let target = version
        .as_ref()
        .map_or_else(|| format!("the newest {minor} patch"), Version::to_string);
    let kubeadm_target = version.as_ref().map_or_else(
        || "\"$(kubeadm version -o short)\"".to_string(),
        Version::to_string,
    );
    let mut nodes = Vec::new();
    let mut workers = 0usize;
    let mut first = true;
    for n in facts.nodes.iter().filter(|n| n.control_plane) {
        let role = if first {
            NodeRole::FirstControlPlane
        } else {
            NodeRole::ControlPlane
        };
        first = false;
        nodes.push(node_plan(
            n,
            role,
            0,
            minor,
            package,
            &target,
            &kubeadm_target,
        ));
    }
    for n in facts.nodes.iter().filter(|n| !n.control_plane) {
        let batch = 1 + workers / max_unavailable;
        workers += 1;
        nodes.push(node_plan(
            n,
            NodeRole::Worker,
            batch,
            minor,
            package,
            &target,
            &kubeadm_target,
        ));
    }
    Hop {
        minor,
        version,
        package: package.to_string(),
        nodes,
    }
}

/// One node's steps.
fn node_plan(
    n: &NodeFacts,
    role: NodeRole,
    batch: usize,
    minor: Minor,
    package: &str,
    target: &str,
    kubeadm_target: &str,
) -> NodePlan {
    let rpm = n.manager.as_deref() == Some("rpm");
    let run = |c: String| Step::Run { command: c };
    let mut steps = Vec::new();
    match &n.repository {
        // The node's own repository line, moved to the hop's minor: its mirror, proxy
        // and key stay as the operator set them (a no-op when run again).
        // Whatever minor it names now (a hop after the first finds the one before).
        Some(Repository::PerMinor { file, .. }) => steps.push(run(format!(
            "sed -i -E 's|core:/stable:/v[0-9]+\\.[0-9]+/|core:/stable:/v{minor}/|g' {}",
            shlex::try_quote(file).unwrap_or_else(|_| file.into())
        ))),
        None if !rpm => steps.push(Step::Repository {
            file: "/etc/apt/sources.list.d/kubernetes.list".into(),
            content: format!(
                "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /\n"
            ),
        }),
        None => steps.push(Step::Repository {
            file: "/etc/yum.repos.d/kubernetes.repo".into(),
            content: format!(
                "[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/\nenabled=1\ngpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/repodata/repomd.xml.key\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"
            ),
        }),
        // A legacy or local repository is left as it is (the finding says so).
        Some(_) => {}
    }
    let install = |pkgs: &[&str]| -> Vec<Step> {
        if rpm {
            let list: Vec<String> = pkgs.iter().map(|p| format!("'{p}-{package}'")).collect();
            vec![
                run(format!("dnf versionlock delete {}", pkgs.join(" "))),
                run(format!(
                    "dnf install -y {} --disableexcludes=kubernetes",
                    list.join(" ")
                )),
                run(format!("dnf versionlock add {}", pkgs.join(" "))),
            ]
        } else {
            let list: Vec<String> = pkgs.iter().map(|p| format!("{p}='{package}'")).collect();
            vec![
                run(format!("apt-mark unhold {}", pkgs.join(" "))),
                run(format!(
                    "apt-get install -y --allow-change-held-packages {}",
                    list.join(" ")
                )),
                run(format!("apt-mark hold {}", pkgs.join(" "))),
            ]
        }
    };
    if !rpm {
        steps.push(run("apt-get update".into()));
    }
    steps.extend(install(&["kubeadm"]));
    match role {
        NodeRole::FirstControlPlane => {
            steps.push(run(format!("kubeadm upgrade plan {kubeadm_target}")));
            steps.push(run(format!("kubeadm upgrade apply {kubeadm_target} --yes")));
        }
        NodeRole::ControlPlane | NodeRole::Worker => {
            steps.push(run("kubeadm upgrade node".into()));
        }
    }
    steps.push(Step::Drain);
    steps.extend(install(&["kubelet", "kubectl"]));
    steps.push(run("systemctl daemon-reload".into()));
    steps.push(run("systemctl restart kubelet".into()));
    steps.push(Step::Uncordon);
    steps.push(Step::Gate {
        until: match role {
            NodeRole::Worker => format!("Node {} Ready with kubelet {target}", n.name),
            _ => format!(
                "Node {} Ready with kubelet {target}, its apiserver at {target}, etcd quorum",
                n.name
            ),
        },
    });
    NodePlan {
        node: n.name.clone(),
        role,
        batch,
        steps,
    }
}

/// The pre-flight findings.
fn findings(facts: &PlanFacts, target: Minor) -> Vec<Finding> {
    let mut out = Vec::new();
    for b in &facts.budgets {
        if b.allowed > 0 || b.pods.is_empty() {
            continue;
        }
        let mut nodes: Vec<String> = b.pods.iter().map(|p| p.node.clone()).collect();
        nodes.sort();
        nodes.dedup();
        out.push(Finding {
            severity: Severity::Blocker,
            id: "pdb-blocks-drain".into(),
            message: format!(
                "PodDisruptionBudget {} allows no disruption now ({} of {} desired pods healthy): draining {} would wait on it",
                b.name,
                b.healthy,
                b.desired,
                nodes.join(", ")
            ),
            nodes,
            evidence: b
                .pods
                .iter()
                .map(|p| format!("pod {} on {}", p.name, p.node))
                .collect(),
        });
    }
    let mut calls: Vec<&DeprecatedCall> = facts
        .deprecated_calls
        .iter()
        .filter(|c| {
            c.removed_release
                .parse::<Minor>()
                .is_ok_and(|removed| removed <= target)
        })
        .collect();
    calls.sort_by(|a, b| {
        (&a.group, &a.version, &a.resource, &a.apiserver).cmp(&(
            &b.group,
            &b.version,
            &b.resource,
            &b.apiserver,
        ))
    });
    let mut apis: Vec<(String, String)> = Vec::new();
    for c in &calls {
        let gv = if c.group.is_empty() {
            c.version.clone()
        } else {
            format!("{}/{}", c.group, c.version)
        };
        let key = (format!("{gv} {}", c.resource), c.removed_release.clone());
        if !apis.contains(&key) {
            apis.push(key);
        }
    }
    for (api, removed) in apis {
        let evidence: Vec<String> = calls
            .iter()
            .filter(|c| {
                let gv = if c.group.is_empty() {
                    c.version.clone()
                } else {
                    format!("{}/{}", c.group, c.version)
                };
                format!("{gv} {}", c.resource) == api
            })
            .map(|c| {
                format!(
                    "apiserver_requested_deprecated_apis on {}: {api} (removed in {})",
                    c.apiserver, c.removed_release
                )
            })
            .collect();
        let replacement = api
            .split_once(' ')
            .and_then(|(gv, resource)| {
                let (group, version) = gv.split_once('/').unwrap_or(("", gv));
                kastellan_policy::removed::lookup(group, version, resource)
            })
            .and_then(|r| r.replacement)
            .map(|r| format!("; use {r}"))
            .unwrap_or_default();
        out.push(Finding {
            severity: Severity::Blocker,
            id: "removed-api-called".into(),
            message: format!(
                "{api} is removed in {removed} and clients still call it{replacement}"
            ),
            nodes: Vec::new(),
            evidence,
        });
    }
    let mut refused: std::collections::BTreeMap<(&str, bool), Vec<String>> = Default::default();
    for r in &facts.drain_refusals {
        refused
            .entry((r.node.as_str(), r.local_storage))
            .or_default()
            .push(format!("{} ({})", r.pod, r.reason));
    }
    for ((node, local), pods) in refused {
        let (severity, then) = if local {
            (
                Severity::Warning,
                "`upgrade apply` stops there unless given --delete-emptydir-data (their \
                 emptyDir data is lost)",
            )
        } else {
            (
                Severity::Blocker,
                "`upgrade apply` stops there: delete them or give them a controller first",
            )
        };
        out.push(Finding {
            severity,
            id: if local {
                "drain-local-storage".into()
            } else {
                "drain-refused".into()
            },
            message: format!(
                "draining {node} would refuse {} pod{}: {then}",
                pods.len(),
                if pods.len() == 1 { "" } else { "s" }
            ),
            nodes: vec![node.to_string()],
            evidence: pods,
        });
    }
    let mut hazards: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for h in &facts.drain_hazards {
        hazards
            .entry(h.node.as_str())
            .or_default()
            .push(h.hazard.clone());
    }
    for (node, list) in hazards {
        out.push(Finding {
            severity: Severity::Warning,
            id: "drain-hazard".into(),
            message: format!(
                "draining {node} meets {} hazard{}: `upgrade apply` stops there unless \
                 given --allow-drain-hazards (or spread the workload first)",
                list.len(),
                if list.len() == 1 { "" } else { "s" }
            ),
            nodes: vec![node.to_string()],
            evidence: list,
        });
    }
    for r in &facts.etcd_backup_room {
        let needed = r.data_bytes + ETCD_BACKUP_SLACK;
        if r.free_bytes < needed {
            out.push(Finding {
                severity: Severity::Blocker,
                id: "etcd-backup-room".into(),
                message: format!(
                    "{}: kubeadm copies etcd's data ({}) to /etc/kubernetes/tmp before it \
                     upgrades etcd, and only {} is free there{}: free at least {} first",
                    r.node,
                    size(r.data_bytes),
                    size(r.free_bytes),
                    if r.same_filesystem {
                        ", on the filesystem etcd writes to"
                    } else {
                        ""
                    },
                    size(needed - r.free_bytes),
                ),
                nodes: vec![r.node.clone()],
                evidence: vec![format!(
                    "{} holds {}; {} free on /etc/kubernetes; {} kept beyond the copy",
                    r.data_dir,
                    size(r.data_bytes),
                    size(r.free_bytes),
                    size(ETCD_BACKUP_SLACK)
                )],
            });
        }
        if r.old_backups > 0 {
            out.push(Finding {
                severity: Severity::Info,
                id: "old-kubeadm-backups".into(),
                message: format!(
                    "{}: /etc/kubernetes/tmp keeps {} kubeadm backup{} of earlier upgrades \
                     ({}); remove those no longer needed",
                    r.node,
                    r.old_backups,
                    if r.old_backups == 1 { "" } else { "s" },
                    size(r.old_backup_bytes)
                ),
                nodes: vec![r.node.clone()],
                evidence: Vec::new(),
            });
        }
    }
    if let Some(h) = &facts.health {
        if !h.healthy {
            out.push(Finding {
                severity: Severity::Blocker,
                id: "cluster-unhealthy".into(),
                message: format!(
                    "the cluster is not healthy ({}): an upgrade starts only from a \
                     healthy control plane",
                    h.summary
                ),
                nodes: Vec::new(),
                evidence: h.problems.clone(),
            });
        }
        if h.etcd_tolerated == Some(0) {
            out.push(Finding {
                severity: Severity::Blocker,
                id: "etcd-no-tolerance".into(),
                message: "etcd tolerates no failure now: each control plane's upgrade \
                          restarts its etcd member, which would lose quorum"
                    .into(),
                nodes: Vec::new(),
                evidence: vec!["kastellan status: etcd failures tolerated 0".into()],
            });
        }
        for c in &h.expiring {
            let (severity, message) = if c.days_left < 0 {
                (
                    Severity::Blocker,
                    format!(
                        "certificate {} on {} expired on {}: renew it first (`kastellan \
                         certs renew {}`)",
                        c.name, c.node, c.not_after, c.name
                    ),
                )
            } else if renewed_by_kubeadm(&c.name) {
                (
                    Severity::Info,
                    format!(
                        "certificate {} on {} expires in {} days: `kubeadm upgrade` \
                         renews it on that node",
                        c.name, c.node, c.days_left
                    ),
                )
            } else {
                (
                    Severity::Warning,
                    format!(
                        "certificate {} on {} expires in {} days and `kubeadm upgrade` \
                         does not renew it: plan its renewal",
                        c.name, c.node, c.days_left
                    ),
                )
            };
            out.push(Finding {
                severity,
                id: "certificate-expiry".into(),
                message,
                nodes: vec![c.node.clone()],
                evidence: vec![format!(
                    "{} on {}: notAfter {}",
                    c.name, c.node, c.not_after
                )],
            });
        }
    }
    match (&facts.stored, &facts.stored_unread) {
        (Some(stored), _) => {
            for st in stored {
                let (group, version) = st
                    .api_version
                    .split_once('/')
                    .unwrap_or(("", &st.api_version));
                let kind = st.kind.as_deref().unwrap_or(&st.resource);
                let Some(r) = kastellan_policy::removed::lookup(group, version, kind)
                    .filter(|r| r.removed_in <= target)
                else {
                    continue;
                };
                let then = match r.replacement {
                    Some(to) => format!(
                        "the apiserver converts them when it reads them, so the upgrade \
                         goes on; once the control plane stores {to}, rewrite them \
                         (kubectl get {res} -A -o json | kubectl replace -f -) so etcd no \
                         longer depends on the old encoding",
                        res = st.resource,
                    ),
                    None => format!(
                        "{} has no successor: they stop working; remove them or replace \
                         what they do before the upgrade",
                        st.api_version
                    ),
                };
                out.push(Finding {
                    severity: Severity::Warning,
                    id: "removed-api-stored".into(),
                    message: format!(
                        "{}: {} stored in etcd as {}, which {} stops serving: {then}",
                        st.resource,
                        if st.count == 1 {
                            "1 object".to_string()
                        } else {
                            format!("{} objects", st.count)
                        },
                        st.api_version,
                        r.removed_in
                    ),
                    nodes: Vec::new(),
                    evidence: vec![format!(
                        "etcd /registry/: {} {} encoded as {} {}",
                        st.count, st.resource, st.api_version, kind
                    )],
                });
            }
        }
        (None, Some(why)) => out.push(Finding {
            severity: Severity::Info,
            id: "stored-not-read".into(),
            message: format!(
                "objects stored in etcd were not read ({why}): run `kastellan etcd storage` \
                 on a control plane to see which are stored as versions the target removes"
            ),
            nodes: Vec::new(),
            evidence: Vec::new(),
        }),
        (None, None) => {}
    }
    for n in &facts.nodes {
        if !n.ready {
            out.push(Finding {
                severity: Severity::Warning,
                id: "node-not-ready".into(),
                message: format!("Node {} is not Ready: its health gate cannot pass", n.name),
                nodes: vec![n.name.clone()],
                evidence: vec![format!("Node {} status.conditions Ready", n.name)],
            });
        }
        if n.unschedulable {
            out.push(Finding {
                severity: Severity::Info,
                id: "node-cordoned".into(),
                message: format!(
                    "Node {} is cordoned already: the run uncordons it after its upgrade",
                    n.name
                ),
                nodes: vec![n.name.clone()],
                evidence: vec![format!("Node {} spec.unschedulable", n.name)],
            });
        }
        match &n.repository {
            Some(Repository::Legacy { file }) => out.push(Finding {
                severity: Severity::Blocker,
                id: "legacy-repository".into(),
                message: format!(
                    "{} uses the frozen legacy repository (apt.kubernetes.io), which has no newer packages: move it to pkgs.k8s.io",
                    n.name
                ),
                nodes: vec![n.name.clone()],
                evidence: vec![file.clone()],
            }),
            Some(Repository::Other { file, line }) => out.push(Finding {
                severity: Severity::Info,
                id: "own-repository".into(),
                message: format!(
                    "{} uses its own Kubernetes repository, left as it is: it must offer the hop's packages",
                    n.name
                ),
                nodes: vec![n.name.clone()],
                evidence: vec![format!("{file}: {line}")],
            }),
            _ => {}
        }
        if n.manager.is_none() {
            out.push(Finding {
                severity: Severity::Info,
                id: "packages-not-read".into(),
                message: format!(
                    "{}: packages not read (give --packages): the plan assumes dpkg and the pkgs.k8s.io repository",
                    n.name
                ),
                nodes: vec![n.name.clone()],
                evidence: Vec::new(),
            });
        }
    }
    out.push(Finding {
        severity: Severity::Info,
        id: "backup-first".into(),
        message:
            "a verified backup bundle is made before the first change (kastellan backup create)"
                .into(),
        nodes: Vec::new(),
        evidence: Vec::new(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn node(name: &str, cp: bool, kubelet: &str) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            control_plane: cp,
            kubelet: v(kubelet),
            ready: true,
            unschedulable: false,
            manager: Some("dpkg".into()),
            repository: Some(Repository::PerMinor {
                minor: "1.20".parse().unwrap(),
                file: "/etc/apt/sources.list.d/kubernetes.list".into(),
            }),
        }
    }

    fn facts(cps: usize, workers: usize) -> PlanFacts {
        let mut nodes = Vec::new();
        let mut apiservers = Vec::new();
        let mut control_plane = Vec::new();
        for i in 1..=cps {
            let name = format!("cp{i}");
            nodes.push(node(&name, true, "v1.20.2"));
            apiservers.push(Instance {
                component: "kube-apiserver".into(),
                node: name.clone(),
                version: v("v1.20.2"),
            });
            for c in ["kube-controller-manager", "kube-scheduler"] {
                control_plane.push(Instance {
                    component: c.into(),
                    node: name.clone(),
                    version: v("v1.20.2"),
                });
            }
        }
        for i in 1..=workers {
            nodes.push(node(&format!("w{i}"), false, "v1.20.2"));
        }
        PlanFacts {
            nodes,
            apiservers,
            control_plane,
            budgets: Vec::new(),
            drain_refusals: Vec::new(),
            drain_hazards: Vec::new(),
            deprecated_calls: Vec::new(),
            stored: None,
            stored_unread: None,
            health: None,
            etcd_backup_room: Vec::new(),
        }
    }

    #[test]
    fn etcd_needs_room_for_kubeadms_copy() {
        let mut f = facts(3, 0);
        let room = |node: &str, data: u64, free: u64, old: u64| EtcdBackupRoom {
            node: node.into(),
            data_dir: "/var/lib/etcd".into(),
            data_bytes: data,
            free_bytes: free,
            same_filesystem: true,
            old_backups: old,
            old_backup_bytes: old * data,
        };
        f.etcd_backup_room = vec![
            room("cp1", 3 << 30, 2 << 30, 0),
            room("cp2", 3 << 30, (3 << 30) + ETCD_BACKUP_SLACK, 2),
        ];
        let p = plan(&f, &v("v1.21.0"), 1).unwrap();
        let short: Vec<&Finding> = p
            .findings
            .iter()
            .filter(|x| x.id == "etcd-backup-room")
            .collect();
        assert_eq!(short.len(), 1, "{:#?}", p.findings);
        assert_eq!(short[0].severity, Severity::Blocker);
        assert_eq!(short[0].nodes, ["cp1"]);
        assert_eq!(
            short[0].message,
            "cp1: kubeadm copies etcd's data (3.0 GiB) to /etc/kubernetes/tmp before it \
             upgrades etcd, and only 2.0 GiB is free there, on the filesystem etcd writes \
             to: free at least 1.2 GiB first"
        );
        assert_eq!(
            short[0].evidence,
            [
                "/var/lib/etcd holds 3.0 GiB; 2.0 GiB free on /etc/kubernetes; 256.0 MiB kept \
              beyond the copy"
            ]
        );
        assert!(p.blocked());
        let old: Vec<&Finding> = p
            .findings
            .iter()
            .filter(|x| x.id == "old-kubeadm-backups")
            .collect();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].severity, Severity::Info);
        assert_eq!(
            old[0].message,
            "cp2: /etc/kubernetes/tmp keeps 2 kubeadm backups of earlier upgrades (6.0 GiB); \
             remove those no longer needed"
        );
        f.etcd_backup_room.remove(0);
        assert!(!plan(&f, &v("v1.21.0"), 1).unwrap().blocked());
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1536), "1.5 KiB");
    }

    /// The plan as `upgrade plan` shows each node: one line per step.
    fn lines(p: &UpgradePlan) -> String {
        let mut out = format!("{} -> {}\n", p.from, p.to);
        for f in &p.findings {
            out.push_str(&format!("[{:?}] {}: {}\n", f.severity, f.id, f.message));
        }
        for h in &p.hops {
            out.push_str(&format!("hop {} ({})\n", h.minor, h.package));
            for n in &h.nodes {
                out.push_str(&format!("  {} {:?} batch {}\n", n.node, n.role, n.batch));
                for s in &n.steps {
                    out.push_str(&format!("    {}\n", s.line(&n.node)));
                }
            }
        }
        out
    }

    #[test]
    fn one_control_plane_one_minor() {
        let p = plan(&facts(1, 1), &v("v1.21.0"), 1).unwrap();
        insta::assert_snapshot!("one_cp_one_worker_to_1_21", lines(&p));
    }

    #[test]
    fn three_control_planes_three_minors_workers_two_at_a_time() {
        let p = plan(&facts(3, 3), &v("v1.23.0"), 2).unwrap();
        assert_eq!(
            p.hops
                .iter()
                .map(|h| h.minor.to_string())
                .collect::<Vec<_>>(),
            ["1.21", "1.22", "1.23"]
        );
        assert_eq!(
            p.hops[0].version, None,
            "an intermediate hop takes the newest patch"
        );
        assert_eq!(p.hops[2].version, Some(v("v1.23.0")));
        let batches: Vec<usize> = p.hops[0].nodes.iter().map(|n| n.batch).collect();
        assert_eq!(batches, [0, 0, 0, 1, 1, 2]);
        insta::assert_snapshot!("three_cp_three_workers_to_1_23", lines(&p));
        // The plan survives a round trip through YAML unchanged.
        let yaml = serde_saphyr::to_string(&p).unwrap();
        let back: UpgradePlan = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn refusals() {
        let f = facts(1, 1);
        let down = plan(&f, &v("v1.19.0"), 1).unwrap_err().to_string();
        assert!(
            down.contains("downgrade") || down.contains("older"),
            "{down}"
        );
        let unknown = plan(&f, &v("v1.99.0"), 1).unwrap_err().to_string();
        assert!(unknown.contains("unknown"), "{unknown}");
        let same = plan(&f, &v("v1.20.2"), 1).unwrap_err().to_string();
        assert!(same.contains("at v1.20.2 already"), "{same}");
        // A kubelet two minors behind: the control plane cannot go to 1.21 first.
        let mut lagging = facts(1, 2);
        lagging.nodes[2].kubelet = v("v1.18.20");
        let e = plan(&lagging, &v("v1.21.0"), 1).unwrap_err().to_string();
        assert!(
            e.contains("kubelet v1.18.20 on w2") && e.contains("to 1.19 to 1.20 first"),
            "{e}"
        );
        assert!(matches!(
            plan(&f, &v("v1.21.0"), 0),
            Err(PlanError::MaxUnavailable)
        ));
    }

    #[test]
    fn findings_of_budgets_removed_apis_and_repositories() {
        let mut f = facts(1, 2);
        f.budgets.push(Budget {
            name: "shop/db".into(),
            allowed: 0,
            healthy: 1,
            desired: 1,
            pods: vec![PodRef {
                name: "shop/db-0".into(),
                node: "w2".into(),
            }],
        });
        f.budgets.push(Budget {
            name: "shop/web".into(),
            allowed: 1,
            healthy: 3,
            desired: 2,
            pods: vec![PodRef {
                name: "shop/web-1".into(),
                node: "w1".into(),
            }],
        });
        f.deprecated_calls.push(DeprecatedCall {
            apiserver: "cp1".into(),
            group: "extensions".into(),
            version: "v1beta1".into(),
            resource: "ingresses".into(),
            removed_release: "1.22".into(),
        });
        f.nodes[1].repository = Some(Repository::Legacy {
            file: "/etc/apt/sources.list.d/k.list".into(),
        });
        f.nodes[1].repository = Some(Repository::Legacy {
            file: "/etc/apt/sources.list.d/k.list".into(),
        });
        let to_21 = plan(&f, &v("v1.21.0"), 1).unwrap();
        let ids = |p: &UpgradePlan| p.findings.iter().map(|x| x.id.clone()).collect::<Vec<_>>();
        assert!(!ids(&to_21).contains(&"removed-api-called".to_string()));
        let pdb = to_21
            .findings
            .iter()
            .find(|x| x.id == "pdb-blocks-drain")
            .unwrap();
        assert_eq!(pdb.nodes, ["w2"]);
        assert!(pdb.message.contains("shop/db"), "{}", pdb.message);
        assert!(to_21.blocked());
        assert_eq!(to_21.findings[0].severity, Severity::Blocker);
        let to_22 = plan(&f, &v("v1.22.0"), 1).unwrap();
        let removed = to_22
            .findings
            .iter()
            .find(|x| x.id == "removed-api-called")
            .unwrap();
        assert!(
            removed
                .message
                .contains("extensions/v1beta1 ingresses is removed in 1.22")
                && removed.message.contains("networking.k8s.io/v1"),
            "{}",
            removed.message
        );
        assert!(ids(&to_22).contains(&"legacy-repository".to_string()));
        // Objects stored as a version the target removes: a warning from 1.22 on (not
        // for 1.21); objects stored in a served version say nothing.
        f.stored = Some(vec![
            StoredObjects {
                resource: "ingresses".into(),
                api_version: "networking.k8s.io/v1beta1".into(),
                kind: Some("Ingress".into()),
                count: 2,
            },
            StoredObjects {
                resource: "configmaps".into(),
                api_version: "v1".into(),
                kind: Some("ConfigMap".into()),
                count: 9,
            },
        ]);
        assert!(
            !ids(&plan(&f, &v("v1.21.0"), 1).unwrap()).contains(&"removed-api-stored".to_string())
        );
        let to_22 = plan(&f, &v("v1.22.0"), 1).unwrap();
        let stored: Vec<&Finding> = to_22
            .findings
            .iter()
            .filter(|x| x.id == "removed-api-stored")
            .collect();
        assert_eq!(stored.len(), 1);
        assert!(
            stored[0].message.starts_with(
                "ingresses: 2 objects stored in etcd as networking.k8s.io/v1beta1, which 1.22 \
                 stops serving: the apiserver converts them when it reads them"
            ),
            "{}",
            stored[0].message
        );
        // Health: an unhealthy cluster and an expired certificate block; a leaf that
        // kubeadm renews is only noted, a CA close to its end is a warning.
        f.health = Some(Health {
            healthy: false,
            summary: "degraded: 1 of 30 checks not up".into(),
            problems: vec!["cp2 kube-scheduler: connection refused".into()],
            etcd_tolerated: Some(0),
            expiring: vec![
                ExpiringCert {
                    node: "cp1".into(),
                    name: "apiserver".into(),
                    not_after: "2027-01-01T00:00:00Z".into(),
                    days_left: 12,
                },
                ExpiringCert {
                    node: "cp1".into(),
                    name: "front-proxy-ca".into(),
                    not_after: "2027-01-01T00:00:00Z".into(),
                    days_left: 12,
                },
                ExpiringCert {
                    node: "cp2".into(),
                    name: "admin.conf".into(),
                    not_after: "2026-11-01T00:00:00Z".into(),
                    days_left: -3,
                },
            ],
        });
        let p = plan(&f, &v("v1.21.0"), 1).unwrap();
        let health: Vec<(Severity, &str)> = p
            .findings
            .iter()
            .filter(|x| {
                [
                    "certificate-expiry",
                    "cluster-unhealthy",
                    "etcd-no-tolerance",
                ]
                .contains(&x.id.as_str())
            })
            .map(|x| (x.severity, x.message.as_str()))
            .collect();
        assert_eq!(
            health,
            [
                (
                    Severity::Blocker,
                    "certificate admin.conf on cp2 expired on 2026-11-01T00:00:00Z: renew it \
                     first (`kastellan certs renew admin.conf`)"
                ),
                (
                    Severity::Blocker,
                    "the cluster is not healthy (degraded: 1 of 30 checks not up): an \
                     upgrade starts only from a healthy control plane"
                ),
                (
                    Severity::Blocker,
                    "etcd tolerates no failure now: each control plane's upgrade restarts \
                     its etcd member, which would lose quorum"
                ),
                (
                    Severity::Warning,
                    "certificate front-proxy-ca on cp1 expires in 12 days and `kubeadm \
                     upgrade` does not renew it: plan its renewal"
                ),
                (
                    Severity::Info,
                    "certificate apiserver on cp1 expires in 12 days: `kubeadm upgrade` \
                     renews it on that node"
                ),
            ]
        );
        f.health = None;
        // Pods the drains would refuse: a bare pod blocks, emptyDir data warns.
        f.drain_refusals = vec![
            DrainRefusal {
                node: "w1".into(),
                pod: "default/bare".into(),
                reason: "no controller recreates it".into(),
                local_storage: false,
            },
            DrainRefusal {
                node: "w1".into(),
                pod: "shop/cache-1".into(),
                reason: "emptyDir data is lost".into(),
                local_storage: true,
            },
        ];
        let p = plan(&f, &v("v1.21.0"), 1).unwrap();
        let refused = p.findings.iter().find(|x| x.id == "drain-refused").unwrap();
        assert_eq!(refused.severity, Severity::Blocker);
        assert_eq!(
            refused.message,
            "draining w1 would refuse 1 pod: `upgrade apply` stops there: delete them or \
             give them a controller first"
        );
        assert_eq!(
            refused.evidence,
            ["default/bare (no controller recreates it)"]
        );
        let local = p
            .findings
            .iter()
            .find(|x| x.id == "drain-local-storage")
            .unwrap();
        assert_eq!(local.severity, Severity::Warning);
        assert_eq!(local.nodes, ["w1"]);
        f.drain_refusals.clear();
        // A drain that would take a workload's last ready replicas: a warning naming
        // the flag that goes past it.
        f.drain_hazards = vec![DrainHazard {
            node: "cp1".into(),
            hazard: "last ready replica: Deployment/coredns in kube-system has all its ready \
                     pods (2) here"
                .into(),
        }];
        let p = plan(&f, &v("v1.21.0"), 1).unwrap();
        let hazard = p.findings.iter().find(|x| x.id == "drain-hazard").unwrap();
        assert_eq!(hazard.severity, Severity::Warning);
        assert_eq!(hazard.nodes, ["cp1"]);
        assert_eq!(
            hazard.message,
            "draining cp1 meets 1 hazard: `upgrade apply` stops there unless given \
             --allow-drain-hazards (or spread the workload first)"
        );
        assert_eq!(
            hazard.evidence,
            [
                "last ready replica: Deployment/coredns in kube-system has all its ready pods \
              (2) here"
            ]
        );
        f.drain_hazards.clear();
        f.stored = None;
        f.stored_unread = Some("no node access".into());
        assert!(ids(&plan(&f, &v("v1.22.0"), 1).unwrap()).contains(&"stored-not-read".to_string()));
        // The legacy node keeps its repository file; the others are switched.
        let w1 = &to_22.hops[0].nodes[1];
        assert!(
            !w1.steps
                .iter()
                .any(|s| matches!(s, Step::Repository { .. }))
        );
    }
}

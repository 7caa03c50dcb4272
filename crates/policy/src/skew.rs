//! The version-skew policy as it stood in each era, checked against cluster facts.
//!
//! Sources:
//!
//! - <https://kubernetes.io/releases/version-skew-policy/> (kubernetes/website
//!   `content/en/releases/version-skew-policy.md`; before 1.19 it lived at
//!   `/docs/setup/release/version-skew-policy/`), and its history:
//!   - kubernetes/website#22034 (July 2020) added the first kube-proxy section: the
//!     same minor as the node's kubelet, not newer than kube-apiserver, at most two
//!     minors older. The pages of 1.16 to 1.18 had no kube-proxy rule; this crate applies
//!     the 2020 wording to them too.
//!   - kubernetes/website#40672 and #40932 (April/May 2023, the 1.27 pages) dropped
//!     "same minor as the kubelet" for "up to two minor versions older or newer than the
//!     kubelet instance it runs alongside".
//!   - kubernetes/website#42218 (the 1.28 pages, KEP-3935): kubelet and kube-proxy may
//!     be up to three minors older than kube-apiserver, and kube-proxy up to three
//!     older or newer than its kubelet, "(`kubelet` < 1.25 may only be up to two minor
//!     versions older)". A kubelet of 1.25 or later is three older only against a 1.28
//!     or later kube-apiserver, so "kubelet < 1.25: two" and "kube-apiserver < 1.28: two"
//!     give the same verdict for every pair; this crate picks the limit by the newest
//!     kube-apiserver, whose release's page is the policy in force.
//! - kubeadm's own skew policy,
//!   <https://kubernetes.io/docs/setup/production-environment/tools/kubeadm/create-cluster-kubeadm/#version-skew-policy>:
//!   kubeadm works with control plane components of its own minor or one older; with a
//!   kubelet of its own minor or one older before kubeadm 1.29, up to three older from
//!   1.29 (kubernetes/kubernetes#120825, kubernetes/website#43769).
//! - <https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/>:
//!   "Skipping MINOR versions when upgrading is unsupported."
//!
//! The policy in force for a cluster is the one of its newest kube-apiserver's minor.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::support;
use crate::version::{Minor, Version};
use crate::{Error, Result};

const SKEW_POLICY: &str = "https://kubernetes.io/releases/version-skew-policy/";
const KUBEADM_SKEW: &str = "https://kubernetes.io/docs/setup/production-environment/tools/kubeadm/create-cluster-kubeadm/#version-skew-policy";
const KUBEADM_UPGRADE: &str =
    "https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/";

/// A Kubernetes component whose version the policy constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    /// kube-apiserver.
    ApiServer,
    /// kube-controller-manager.
    ControllerManager,
    /// kube-scheduler.
    Scheduler,
    /// cloud-controller-manager.
    CloudControllerManager,
    /// kubelet.
    Kubelet,
    /// kube-proxy.
    KubeProxy,
    /// kubectl.
    Kubectl,
    /// kubeadm.
    Kubeadm,
}

impl ComponentKind {
    /// The binary's name (`kube-apiserver`).
    pub const fn name(self) -> &'static str {
        match self {
            ComponentKind::ApiServer => "kube-apiserver",
            ComponentKind::ControllerManager => "kube-controller-manager",
            ComponentKind::Scheduler => "kube-scheduler",
            ComponentKind::CloudControllerManager => "cloud-controller-manager",
            ComponentKind::Kubelet => "kubelet",
            ComponentKind::KubeProxy => "kube-proxy",
            ComponentKind::Kubectl => "kubectl",
            ComponentKind::Kubeadm => "kubeadm",
        }
    }

    /// Whether the control plane hop itself moves it: kube-apiserver,
    /// kube-controller-manager, kube-scheduler, cloud-controller-manager.
    pub const fn is_control_plane(self) -> bool {
        matches!(
            self,
            ComponentKind::ApiServer
                | ComponentKind::ControllerManager
                | ComponentKind::Scheduler
                | ComponentKind::CloudControllerManager
        )
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One component instance: what it is, where it runs, which version it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// What it is.
    pub kind: ComponentKind,
    /// The node it runs on, or for kubectl the instance (a workstation, a CI runner).
    /// kube-proxy and kubeadm are paired with the kubelet of the same node.
    pub node: String,
    /// Its version.
    pub version: Version,
}

impl Component {
    /// A component of `kind` on `node` at `version`.
    pub fn new(kind: ComponentKind, node: impl Into<String>, version: Version) -> Component {
        Component {
            kind,
            node: node.into(),
            version,
        }
    }

    /// Its minor.
    pub fn minor(&self) -> Minor {
        self.version.minor()
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} on {}", self.kind, self.version, self.node)
    }
}

/// The facts about a cluster the policy is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Every component known, in any order.
    pub components: Vec<Component>,
}

impl Cluster {
    /// A cluster without components.
    pub fn new() -> Cluster {
        Cluster::default()
    }

    /// This cluster with one more component.
    pub fn with(
        mut self,
        kind: ComponentKind,
        node: impl Into<String>,
        version: Version,
    ) -> Cluster {
        self.components.push(Component::new(kind, node, version));
        self
    }

    /// The components of `kind`.
    pub fn of_kind(&self, kind: ComponentKind) -> impl Iterator<Item = &Component> {
        self.components.iter().filter(move |c| c.kind == kind)
    }

    /// The newest kube-apiserver minor, the one whose policy is in force.
    pub fn newest_apiserver(&self) -> Option<Minor> {
        self.of_kind(ComponentKind::ApiServer)
            .map(Component::minor)
            .max()
    }

    /// The oldest kube-apiserver minor.
    pub fn oldest_apiserver(&self) -> Option<Minor> {
        self.of_kind(ComponentKind::ApiServer)
            .map(Component::minor)
            .min()
    }
}

/// The minors of kube-apiserver (or, for kubeadm rules, of kubeadm) for which a rule was
/// the published policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Era {
    /// The first minor.
    pub from: Minor,
    /// The last minor, `None` while it is still the policy.
    pub until: Option<Minor>,
}

impl Era {
    const fn new(from: u32, until: Option<u32>) -> Era {
        Era {
            from: Minor::new(from),
            until: match until {
                Some(m) => Some(Minor::new(m)),
                None => None,
            },
        }
    }

    /// Whether `minor` falls in the era.
    pub fn contains(&self, minor: Minor) -> bool {
        self.from <= minor && self.until.is_none_or(|u| minor <= u)
    }
}

impl fmt::Display for Era {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.until {
            Some(u) => write!(f, "{} to {}", self.from, u),
            None => write!(f, "{} and later", self.from),
        }
    }
}

/// One rule of the policy, as it stood in one era. Serialised as its [`Rule::id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// HA kube-apiservers within one minor of each other.
    ApiServerHaSkew,
    /// kubelet not newer than any kube-apiserver.
    KubeletNewerThanApiServer,
    /// kubelet at most two minors older than kube-apiserver (before 1.28).
    KubeletTwoOlder,
    /// kubelet at most three minors older than kube-apiserver (from 1.28).
    KubeletThreeOlder,
    /// kube-proxy not newer than any kube-apiserver.
    KubeProxyNewerThanApiServer,
    /// kube-proxy at most two minors older than kube-apiserver (before 1.28).
    KubeProxyTwoOlder,
    /// kube-proxy at most three minors older than kube-apiserver (from 1.28).
    KubeProxyThreeOlder,
    /// kube-proxy at the minor of its node's kubelet (before 1.27).
    KubeProxyMatchesKubelet,
    /// kube-proxy within two minors of its node's kubelet (1.27; from 1.28 for
    /// kube-proxy older than 1.25).
    KubeProxyKubeletTwo,
    /// kube-proxy within three minors of its node's kubelet (from 1.28, kube-proxy 1.25
    /// or later).
    KubeProxyKubeletThree,
    /// kube-controller-manager, kube-scheduler, cloud-controller-manager not newer than
    /// any kube-apiserver.
    ControlPlaneNewerThanApiServer,
    /// kube-controller-manager, kube-scheduler, cloud-controller-manager at most one
    /// minor older than kube-apiserver.
    ControlPlaneOneOlder,
    /// kubectl within one minor of every kube-apiserver.
    KubectlWithinOne,
    /// kubeadm not older than the control plane it manages.
    KubeadmOlderThanControlPlane,
    /// kubeadm at most one minor newer than the control plane it manages.
    KubeadmTooNewForControlPlane,
    /// the node's kubelet at kubeadm's minor or one older (kubeadm before 1.29).
    KubeadmKubeletOneOlder,
    /// the node's kubelet at kubeadm's minor or up to three older (kubeadm 1.29 on).
    KubeadmKubeletThreeOlder,
    /// Upgrades move one minor at a time.
    UpgradeOneMinorAtATime,
    /// The kubeadm that applies an upgrade cannot target a version newer than itself.
    KubeadmTargetNotNewerThanItself,
}

impl Rule {
    /// Every rule.
    pub const ALL: &'static [Rule] = &[
        Rule::ApiServerHaSkew,
        Rule::KubeletNewerThanApiServer,
        Rule::KubeletTwoOlder,
        Rule::KubeletThreeOlder,
        Rule::KubeProxyNewerThanApiServer,
        Rule::KubeProxyTwoOlder,
        Rule::KubeProxyThreeOlder,
        Rule::KubeProxyMatchesKubelet,
        Rule::KubeProxyKubeletTwo,
        Rule::KubeProxyKubeletThree,
        Rule::ControlPlaneNewerThanApiServer,
        Rule::ControlPlaneOneOlder,
        Rule::KubectlWithinOne,
        Rule::KubeadmOlderThanControlPlane,
        Rule::KubeadmTooNewForControlPlane,
        Rule::KubeadmKubeletOneOlder,
        Rule::KubeadmKubeletThreeOlder,
        Rule::UpgradeOneMinorAtATime,
        Rule::KubeadmTargetNotNewerThanItself,
    ];

    /// A stable identifier (`kubelet-max-three-older`), for machine output.
    pub const fn id(self) -> &'static str {
        match self {
            Rule::ApiServerHaSkew => "apiserver-ha-within-one",
            Rule::KubeletNewerThanApiServer => "kubelet-not-newer-than-apiserver",
            Rule::KubeletTwoOlder => "kubelet-max-two-older",
            Rule::KubeletThreeOlder => "kubelet-max-three-older",
            Rule::KubeProxyNewerThanApiServer => "kube-proxy-not-newer-than-apiserver",
            Rule::KubeProxyTwoOlder => "kube-proxy-max-two-older",
            Rule::KubeProxyThreeOlder => "kube-proxy-max-three-older",
            Rule::KubeProxyMatchesKubelet => "kube-proxy-matches-kubelet",
            Rule::KubeProxyKubeletTwo => "kube-proxy-kubelet-within-two",
            Rule::KubeProxyKubeletThree => "kube-proxy-kubelet-within-three",
            Rule::ControlPlaneNewerThanApiServer => "control-plane-not-newer-than-apiserver",
            Rule::ControlPlaneOneOlder => "control-plane-max-one-older",
            Rule::KubectlWithinOne => "kubectl-within-one",
            Rule::KubeadmOlderThanControlPlane => "kubeadm-not-older-than-control-plane",
            Rule::KubeadmTooNewForControlPlane => "kubeadm-max-one-newer-than-control-plane",
            Rule::KubeadmKubeletOneOlder => "kubeadm-kubelet-max-one-older",
            Rule::KubeadmKubeletThreeOlder => "kubeadm-kubelet-max-three-older",
            Rule::UpgradeOneMinorAtATime => "upgrade-one-minor-at-a-time",
            Rule::KubeadmTargetNotNewerThanItself => "kubeadm-target-not-newer-than-itself",
        }
    }

    /// The rule whose [`Rule::id`] is `id`.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.id() == id)
    }

    /// The rule in one line, in the words of its source where they fit.
    pub const fn statement(self) -> &'static str {
        match self {
            Rule::ApiServerHaSkew => {
                "the newest and oldest kube-apiserver instances must be within one minor version"
            }
            Rule::KubeletNewerThanApiServer => "kubelet must not be newer than kube-apiserver",
            Rule::KubeletTwoOlder => {
                "kubelet may be up to two minor versions older than kube-apiserver"
            }
            Rule::KubeletThreeOlder => {
                "kubelet may be up to three minor versions older than kube-apiserver \
                 (kubelet < 1.25 only two)"
            }
            Rule::KubeProxyNewerThanApiServer => "kube-proxy must not be newer than kube-apiserver",
            Rule::KubeProxyTwoOlder => {
                "kube-proxy may be up to two minor versions older than kube-apiserver"
            }
            Rule::KubeProxyThreeOlder => {
                "kube-proxy may be up to three minor versions older than kube-apiserver \
                 (kube-proxy < 1.25 only two)"
            }
            Rule::KubeProxyMatchesKubelet => {
                "kube-proxy must be the same minor version as kubelet on the node"
            }
            Rule::KubeProxyKubeletTwo => {
                "kube-proxy may be up to two minor versions older or newer than the kubelet \
                 instance it runs alongside"
            }
            Rule::KubeProxyKubeletThree => {
                "kube-proxy may be up to three minor versions older or newer than the \
                 kubelet instance it runs alongside"
            }
            Rule::ControlPlaneNewerThanApiServer => {
                "kube-controller-manager, kube-scheduler and cloud-controller-manager must \
                 not be newer than the kube-apiserver instances they communicate with"
            }
            Rule::ControlPlaneOneOlder => {
                "kube-controller-manager, kube-scheduler and cloud-controller-manager are \
                 expected to match kube-apiserver and may be up to one minor version older \
                 (to allow live upgrades)"
            }
            Rule::KubectlWithinOne => {
                "kubectl is supported within one minor version (older or newer) of \
                 kube-apiserver"
            }
            Rule::KubeadmOlderThanControlPlane => {
                "kubeadm can be used with Kubernetes components of its own version or one \
                 older, never newer"
            }
            Rule::KubeadmTooNewForControlPlane => {
                "kubeadm can be used with Kubernetes components of its own version or one \
                 older, not two"
            }
            Rule::KubeadmKubeletOneOlder => {
                "kubeadm can be used with a kubelet of the same version as kubeadm or one \
                 version older"
            }
            Rule::KubeadmKubeletThreeOlder => {
                "kubeadm can be used with a kubelet of the same version as kubeadm or up to \
                 three versions older"
            }
            Rule::UpgradeOneMinorAtATime => "skipping minor versions when upgrading is unsupported",
            Rule::KubeadmTargetNotNewerThanItself => {
                "the kubeadm that upgrades the control plane cannot target a version newer \
                 than itself: upgrade kubeadm first"
            }
        }
    }

    /// The minors for which the rule was the published policy (kube-apiserver minors;
    /// kubeadm minors for the kubeadm rules).
    pub const fn era(self) -> Era {
        match self {
            Rule::KubeletTwoOlder | Rule::KubeProxyTwoOlder => Era::new(16, Some(27)),
            Rule::KubeletThreeOlder | Rule::KubeProxyThreeOlder => Era::new(28, None),
            // Written in July 2020 (kubernetes/website#22034); applied to 1.16 to 1.18,
            // whose pages had no kube-proxy rule.
            Rule::KubeProxyMatchesKubelet => Era::new(16, Some(26)),
            // 1.27 for every kube-proxy; from 1.28 still for kube-proxy < 1.25.
            Rule::KubeProxyKubeletTwo => Era::new(27, None),
            Rule::KubeProxyKubeletThree => Era::new(28, None),
            Rule::KubeadmKubeletOneOlder => Era::new(16, Some(28)),
            Rule::KubeadmKubeletThreeOlder => Era::new(29, None),
            Rule::KubeProxyNewerThanApiServer
            | Rule::ApiServerHaSkew
            | Rule::KubeletNewerThanApiServer
            | Rule::ControlPlaneNewerThanApiServer
            | Rule::ControlPlaneOneOlder
            | Rule::KubectlWithinOne
            | Rule::KubeadmOlderThanControlPlane
            | Rule::KubeadmTooNewForControlPlane
            | Rule::UpgradeOneMinorAtATime
            | Rule::KubeadmTargetNotNewerThanItself => Era::new(16, None),
        }
    }

    /// The page the rule comes from.
    pub const fn source(self) -> &'static str {
        match self {
            Rule::KubeadmOlderThanControlPlane
            | Rule::KubeadmTooNewForControlPlane
            | Rule::KubeadmKubeletOneOlder
            | Rule::KubeadmKubeletThreeOlder => KUBEADM_SKEW,
            Rule::UpgradeOneMinorAtATime | Rule::KubeadmTargetNotNewerThanItself => KUBEADM_UPGRADE,
            _ => SKEW_POLICY,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        let s = String::deserialize(d)?;
        Rule::from_id(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown rule {s:?}")))
    }
}

/// A rule the cluster breaks, and the components that break it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// The components involved: the one out of policy first, then the one it is measured
    /// against.
    pub components: Vec<Component>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.rule.statement())?;
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// The kube-apiserver's allowed lag of kubelet and kube-proxy in the era of `apiserver`:
/// two minors before 1.28, three from 1.28.
pub const fn max_node_skew(apiserver: Minor) -> u32 {
    if apiserver.number() >= 28 { 3 } else { 2 }
}

/// Every rule `cluster` breaks, in the policy of its newest kube-apiserver.
///
/// Each component is measured against the oldest kube-apiserver for "not newer than"
/// rules and against the newest for "not older than" rules, which is how the policy
/// page narrows the allowed versions in an HA cluster with skewed kube-apiservers.
/// kube-controller-manager and kube-scheduler on a node that runs a kube-apiserver are
/// measured against that one only: kubeadm points them at their node's kube-apiserver
/// (kubernetes/kubernetes#94398, kubeadm 1.19.1), which is the page's "the
/// kube-apiserver instances they communicate with". cloud-controller-manager, and the
/// others elsewhere, are measured against every kube-apiserver. kubelets are measured
/// against every kube-apiserver, as the page's HA example does, even though an HA
/// upgrade by kubeadm's procedure passes through a kubelet newer than the kube-apiserver
/// of another control-plane node.
///
/// Without a kube-apiserver in the facts, only the rules between node components apply.
pub fn check(cluster: &Cluster) -> Vec<Violation> {
    violations(&cluster.components)
        .into_iter()
        .map(|(rule, idx)| Violation {
            rule,
            components: idx.iter().map(|&i| cluster.components[i].clone()).collect(),
        })
        .collect()
}

/// The rules broken by `cs`, with the indices of the components involved.
fn violations(cs: &[Component]) -> Vec<(Rule, Vec<usize>)> {
    let minor = |i: usize| cs[i].minor();
    let apis: Vec<usize> = (0..cs.len())
        .filter(|&i| cs[i].kind == ComponentKind::ApiServer)
        .collect();
    let newest = apis
        .iter()
        .copied()
        .max_by_key(|&i| (minor(i), std::cmp::Reverse(i)));
    let oldest = apis.iter().copied().min_by_key(|&i| (minor(i), i));
    let kubelets_on = |node: &str| -> Vec<usize> {
        (0..cs.len())
            .filter(|&k| cs[k].kind == ComponentKind::Kubelet && cs[k].node == node)
            .collect()
    };
    let mut out = Vec::new();
    if let (Some(n), Some(o)) = (newest, oldest)
        && minor(n).since(minor(o)) > 1
    {
        out.push((Rule::ApiServerHaSkew, vec![n, o]));
    }
    for (i, c) in cs.iter().enumerate() {
        let m = c.minor();
        // "Not newer than any kube-apiserver": measured against the oldest.
        let newer_than_oldest = oldest.filter(|&o| m > minor(o));
        // How far behind the newest kube-apiserver.
        let behind_newest = newest.map(|n| (n, minor(n).since(m)));
        match c.kind {
            ComponentKind::ApiServer => {}
            ComponentKind::Kubelet | ComponentKind::KubeProxy => {
                let proxy = c.kind == ComponentKind::KubeProxy;
                if let Some(o) = newer_than_oldest {
                    let rule = if proxy {
                        Rule::KubeProxyNewerThanApiServer
                    } else {
                        Rule::KubeletNewerThanApiServer
                    };
                    out.push((rule, vec![i, o]));
                }
                if let Some((n, behind)) = behind_newest {
                    let limit = max_node_skew(minor(n));
                    let rule = match (proxy, limit) {
                        (false, 2) => Rule::KubeletTwoOlder,
                        (false, _) => Rule::KubeletThreeOlder,
                        (true, 2) => Rule::KubeProxyTwoOlder,
                        (true, _) => Rule::KubeProxyThreeOlder,
                    };
                    if behind > i64::from(limit) {
                        out.push((rule, vec![i, n]));
                    }
                }
                if proxy {
                    for k in kubelets_on(&c.node) {
                        let policy = newest.map(minor).unwrap_or(m.max(minor(k)));
                        let (rule, limit) = if policy < Minor::new(27) {
                            (Rule::KubeProxyMatchesKubelet, 0)
                        } else if policy == Minor::new(27) || m < Minor::new(25) {
                            (Rule::KubeProxyKubeletTwo, 2)
                        } else {
                            (Rule::KubeProxyKubeletThree, 3)
                        };
                        if m.since(minor(k)).abs() > limit {
                            out.push((rule, vec![i, k]));
                        }
                    }
                }
            }
            ComponentKind::ControllerManager
            | ComponentKind::Scheduler
            | ComponentKind::CloudControllerManager => {
                // kubeadm points kube-controller-manager and kube-scheduler at the
                // kube-apiserver of their own node (the LocalAPIEndpoint, since kubeadm
                // 1.19.1: kubernetes/kubernetes#94398), so those are measured against it
                // alone; anything else may reach any kube-apiserver.
                let local = (c.kind != ComponentKind::CloudControllerManager)
                    .then(|| apis.iter().copied().find(|&a| cs[a].node == c.node))
                    .flatten();
                let (newer, behind) = match local {
                    Some(a) => (
                        Some(a).filter(|&a| m > minor(a)),
                        Some((a, minor(a).since(m))),
                    ),
                    None => (newer_than_oldest, behind_newest),
                };
                if let Some(o) = newer {
                    out.push((Rule::ControlPlaneNewerThanApiServer, vec![i, o]));
                }
                if let Some((n, behind)) = behind
                    && behind > 1
                {
                    out.push((Rule::ControlPlaneOneOlder, vec![i, n]));
                }
            }
            ComponentKind::Kubectl => {
                if let Some(o) = oldest
                    && m.since(minor(o)) > 1
                {
                    out.push((Rule::KubectlWithinOne, vec![i, o]));
                }
                if let Some((n, behind)) = behind_newest
                    && behind > 1
                {
                    out.push((Rule::KubectlWithinOne, vec![i, n]));
                }
            }
            ComponentKind::Kubeadm => {
                if let Some((n, behind)) = behind_newest
                    && behind > 0
                {
                    out.push((Rule::KubeadmOlderThanControlPlane, vec![i, n]));
                }
                if let Some(o) = oldest
                    && m.since(minor(o)) > 1
                {
                    out.push((Rule::KubeadmTooNewForControlPlane, vec![i, o]));
                }
                for k in kubelets_on(&c.node) {
                    let (rule, limit) = if m >= Minor::new(29) {
                        (Rule::KubeadmKubeletThreeOlder, 3)
                    } else {
                        (Rule::KubeadmKubeletOneOlder, 1)
                    };
                    let older = m.since(minor(k));
                    if !(0..=limit).contains(&older) {
                        out.push((rule, vec![i, k]));
                    }
                }
            }
        }
    }
    out
}

/// An inclusive range of minors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MinorRange {
    /// The lowest minor allowed.
    pub lowest: Minor,
    /// The highest minor allowed.
    pub highest: Minor,
}

impl fmt::Display for MinorRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lowest == self.highest {
            write!(f, "{}", self.lowest)
        } else {
            write!(f, "{} to {}", self.lowest, self.highest)
        }
    }
}

/// A component that must move before the control plane can go to the target minor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    /// The component, as it is now.
    pub component: Component,
    /// The rules it would break (or breaks already) once the control plane is at the
    /// target.
    pub rules: Vec<Rule>,
    /// The minors it may move to first: allowed by the policy both now and after the
    /// hop, the other components as they are (but a kubelet's range ignores the kubeadm
    /// of its node, which is upgraded with it). `None` when no single minor satisfies
    /// both; then other components must move too.
    pub allowed: Option<MinorRange>,
}

/// What must move before the control plane goes to `target`, the next minor.
///
/// The hop moves every kube-apiserver, kube-controller-manager, kube-scheduler and
/// cloud-controller-manager to `target`. Everything else stays where it is and blocks
/// the hop when it would then break a rule: kubelets and kube-proxies older than
/// `target` minus the skew of `target`'s era, kubectl more than one minor behind, and
/// kubeadm older than `target` on the nodes that run the control plane (the kubeadm
/// that applies the upgrade cannot target a version newer than itself). kubeadm on other
/// nodes moves with its node, after the control plane, and does not block. kube-proxy
/// is taken as a node component here, although `kubeadm upgrade apply` also moves the
/// kube-proxy DaemonSet.
///
/// Refuses a target that is unknown, older than a kube-apiserver (a downgrade), or more
/// than one minor past the oldest kube-apiserver (a skipped minor). A cluster already
/// at `target` has no blockers for it.
pub fn blockers_for_hop(cluster: &Cluster, target: Minor) -> Result<Vec<Blocker>> {
    known(target)?;
    let (Some(oldest), Some(newest)) = (cluster.oldest_apiserver(), cluster.newest_apiserver())
    else {
        return Err(Error::NoApiServer);
    };
    if newest > target {
        return Err(Error::Downgrade {
            from: newest.to_string(),
            to: target.to_string(),
        });
    }
    if target.since(oldest) > 1 {
        return Err(Error::SkipsMinor {
            from: oldest,
            to: target,
        });
    }
    let cs = &cluster.components;
    let control_plane_nodes: BTreeSet<&str> = cs
        .iter()
        .filter(|c| c.kind.is_control_plane())
        .map(|c| c.node.as_str())
        .collect();
    let mut after = cs.clone();
    let mut rules: BTreeMap<usize, Vec<Rule>> = BTreeMap::new();
    for (i, c) in after.iter_mut().enumerate() {
        if c.minor() >= target {
            continue;
        }
        if c.kind.is_control_plane() {
            c.version = target.first_release();
        } else if c.kind == ComponentKind::Kubeadm && control_plane_nodes.contains(c.node.as_str())
        {
            c.version = target.first_release();
            rules
                .entry(i)
                .or_default()
                .push(Rule::KubeadmTargetNotNewerThanItself);
        }
    }
    let relevant = |cs: &[Component]| -> Vec<(Rule, Vec<usize>)> {
        violations(cs)
            .into_iter()
            .filter(|(rule, idx)| {
                // kubeadm on a node without control plane moves with its node, later.
                *rule != Rule::KubeadmOlderThanControlPlane
                    || control_plane_nodes.contains(cs[idx[0]].node.as_str())
            })
            .collect()
    };
    for (rule, idx) in relevant(&after) {
        for i in idx {
            if cs[i].kind.is_control_plane() {
                continue;
            }
            let list = rules.entry(i).or_default();
            if !list.contains(&rule) {
                list.push(rule);
            }
        }
    }
    // A kubelet's range ignores the kubeadm of its node, which moves with it.
    let fine_at = |base: &[Component], i: usize, m: Minor| {
        let mut trial = base.to_vec();
        trial[i].version = m.first_release();
        !relevant(&trial).iter().any(|(rule, idx)| {
            idx.contains(&i)
                && !(base[i].kind == ComponentKind::Kubelet
                    && matches!(
                        rule,
                        Rule::KubeadmKubeletOneOlder | Rule::KubeadmKubeletThreeOlder
                    ))
        })
    };
    Ok(rules
        .into_iter()
        .map(|(i, rules)| {
            let candidates = (target.minus(6).number()..=target.plus(1).number())
                .map(Minor::new)
                .filter(|&m| fine_at(cs, i, m) && fine_at(&after, i, m));
            let mut allowed: Option<MinorRange> = None;
            for m in candidates {
                allowed = Some(match allowed {
                    None => MinorRange {
                        lowest: m,
                        highest: m,
                    },
                    Some(r) => MinorRange {
                        lowest: r.lowest,
                        highest: m,
                    },
                });
            }
            Blocker {
                component: cs[i].clone(),
                rules,
                allowed,
            }
        })
        .collect())
}

/// The minors an upgrade from `from` to `to` passes through, one at a time:
/// 1.20 to 1.23 gives 1.21, 1.22, 1.23; a patch upgrade within a minor gives none.
///
/// Refuses a downgrade, and versions outside the tables of this crate (1.16 to
/// [`support::NEWEST_KNOWN`]).
pub fn path(from: Version, to: Version) -> Result<Vec<Minor>> {
    known(from.minor())?;
    known(to.minor())?;
    if to < from {
        return Err(Error::Downgrade {
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    Ok((from.minor().number() + 1..=to.minor().number())
        .map(Minor::new)
        .collect())
}

fn known(minor: Minor) -> Result<()> {
    if support::is_known(minor) {
        Ok(())
    } else {
        Err(Error::UnknownMinor {
            minor,
            oldest: support::OLDEST_KNOWN,
            newest: support::NEWEST_KNOWN,
        })
    }
}

#[cfg(test)]
mod tests;

//! Every component's version, each with where the figure came from and how the
//! component is installed (it must be upgraded with the same tool).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod};
use kastellan_policy::skew::{Cluster, Component as PolicyComponent, ComponentKind};
use kastellan_policy::support::{self, Support};
use kastellan_policy::{Minor, Version};
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use crate::packages::NodePackages;

/// A component of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// kube-apiserver (one row per instance).
    KubeApiserver,
    /// kube-controller-manager.
    KubeControllerManager,
    /// kube-scheduler.
    KubeScheduler,
    /// etcd (its own versions, not Kubernetes').
    Etcd,
    /// The kubelet of a node.
    Kubelet,
    /// kube-proxy (per node, and its DaemonSet).
    KubeProxy,
    /// CoreDNS (its own versions).
    Coredns,
    /// kubeadm on a node.
    Kubeadm,
    /// kubectl on a node.
    Kubectl,
}

impl Component {
    /// Its name as operators write it.
    pub const fn name(self) -> &'static str {
        match self {
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
            Component::Etcd => "etcd",
            Component::Kubelet => "kubelet",
            Component::KubeProxy => "kube-proxy",
            Component::Coredns => "coredns",
            Component::Kubeadm => "kubeadm",
            Component::Kubectl => "kubectl",
        }
    }

    /// The kind the skew policy knows it as (etcd and CoreDNS are outside it).
    pub const fn policy_kind(self) -> Option<ComponentKind> {
        Some(match self {
            Component::KubeApiserver => ComponentKind::ApiServer,
            Component::KubeControllerManager => ComponentKind::ControllerManager,
            Component::KubeScheduler => ComponentKind::Scheduler,
            Component::Kubelet => ComponentKind::Kubelet,
            Component::KubeProxy => ComponentKind::KubeProxy,
            Component::Kubeadm => ComponentKind::Kubeadm,
            Component::Kubectl => ComponentKind::Kubectl,
            Component::Etcd | Component::Coredns => return None,
        })
    }
}

/// How a component is installed, so how it is upgraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Installed {
    /// A static pod of the kubelet (kubeadm upgrade rewrites its manifest).
    StaticPod,
    /// A DaemonSet (kubeadm upgrade apply updates it).
    DaemonSet,
    /// A Deployment (kubeadm upgrade apply updates CoreDNS).
    Deployment,
    /// A distro package (dpkg, rpm): the package manager upgrades it.
    Package,
    /// A binary that no package manager owns.
    Binary,
    /// Not known (the node was not asked).
    Unknown,
}

/// One figure: a component instance's version and where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    /// The component.
    pub component: Component,
    /// Where it runs: the node, or the object for cluster-wide ones.
    pub instance: String,
    /// The Kubernetes version, for Kubernetes components.
    pub version: Option<Version>,
    /// What the source said (`v1.20.2`, an image tag, a package version).
    pub reported: String,
    /// Where the figure came from.
    pub source: String,
    /// How the component is installed.
    pub installed: Installed,
}

/// A minor in use and its support window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MinorSupport {
    /// The minor.
    pub minor: Minor,
    /// The components at that minor (names).
    pub components: Vec<String>,
    /// Its support status on the day of the report.
    pub support: Support,
    /// Its end-of-life date, when known.
    pub end_of_life: Option<jiff::civil::Date>,
}

/// The versions report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    /// Every figure, control plane first.
    pub found: Vec<Found>,
    /// The package facts of the nodes asked (none without node access).
    pub nodes: Vec<NodePackages>,
    /// Each minor in use with its support window.
    pub support: Vec<MinorSupport>,
    /// What could not be read.
    pub problems: Vec<String>,
    /// The newest minor released on the day of the report.
    pub newest_released: Option<Minor>,
}

impl Versions {
    /// The minors in use that are past their end of life.
    pub fn past_end_of_life(&self) -> Vec<Minor> {
        self.support
            .iter()
            .filter(|s| matches!(s.support, Support::PastEndOfLife { .. }))
            .map(|s| s.minor)
            .collect()
    }

    /// The facts the skew policy checks: every Kubernetes component with a version.
    pub fn cluster(&self) -> Cluster {
        let mut c = Cluster::default();
        let mut seen = BTreeSet::new();
        for f in &self.found {
            let (Some(kind), Some(v)) = (f.component.policy_kind(), &f.version) else {
                continue;
            };
            // The kube-proxy DaemonSet's image is not a running instance.
            if f.installed == Installed::DaemonSet {
                continue;
            }
            if seen.insert((kind, f.instance.clone())) {
                c.components
                    .push(PolicyComponent::new(kind, f.instance.clone(), v.clone()));
            }
        }
        c
    }

    /// Adds the support windows of the minors in use, on `today`.
    pub fn add_support(&mut self, today: jiff::civil::Date) {
        let mut by_minor: BTreeMap<Minor, BTreeSet<String>> = BTreeMap::new();
        for f in &self.found {
            if let Some(v) = &f.version {
                by_minor
                    .entry(v.minor())
                    .or_default()
                    .insert(f.component.name().to_string());
            }
        }
        self.support = by_minor
            .into_iter()
            .map(|(minor, names)| MinorSupport {
                minor,
                components: names.into_iter().collect(),
                support: support::status(minor, today),
                end_of_life: support::release(minor).map(|r| r.end_of_life),
            })
            .collect();
        self.newest_released = support::newest_released(today);
    }

    /// Adds the package facts of the nodes: kubeadm and kubectl rows, and how each
    /// kubelet is installed.
    pub fn add_packages(&mut self, nodes: Vec<NodePackages>) {
        for n in &nodes {
            if n.error.is_some() {
                continue;
            }
            for p in &n.packages {
                let component =
                    match p.name.as_str() {
                        "kubeadm" => Component::Kubeadm,
                        "kubectl" => Component::Kubectl,
                        "kubelet" => {
                            for f in self.found.iter_mut().filter(|f| {
                                f.component == Component::Kubelet && f.instance == n.node
                            }) {
                                f.installed = if p.installed.is_some() {
                                    Installed::Package
                                } else {
                                    Installed::Binary
                                };
                            }
                            continue;
                        }
                        _ => continue,
                    };
                if let Some(installed) = &p.installed {
                    self.found.push(Found {
                        component,
                        instance: n.node.clone(),
                        version: p.version.clone(),
                        reported: installed.clone(),
                        source: format!(
                            "{} package on {}",
                            n.manager.as_deref().unwrap_or("?"),
                            n.node
                        ),
                        installed: Installed::Package,
                    });
                }
            }
        }
        self.nodes = nodes;
        self.found.sort_by(|a, b| {
            (a.component, &a.instance, &a.source).cmp(&(b.component, &b.instance, &b.source))
        });
    }
}

/// The version an image's tag carries (`registry.k8s.io/kube-proxy:v1.20.2`), and the
/// tag itself.
pub fn image_tag(image: &str) -> (Option<Version>, String) {
    let tag = image
        .rsplit_once('@')
        .map_or(image, |(name, _)| name)
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map(|(_, t)| t.to_string())
        .unwrap_or_default();
    (Version::parse(&tag).ok(), tag)
}

/// Reads every version the API shows: each apiserver instance (`/version` at every
/// address of the `default/kubernetes` Endpoints), the static pods of the control
/// plane, each node's kubelet and kube-proxy, the kube-proxy DaemonSet and CoreDNS.
pub async fn discover(config: kube::Config) -> Result<Versions, crate::Error> {
    let client = kube::Client::try_from(config.clone())?;
    let mut found = Vec::new();
    let mut problems = Vec::new();

    let nodes: Vec<Node> = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let node_of_ip = node_of_ip(&nodes);

    // Every apiserver instance, each asked itself.
    let urls = apiserver_urls(&client, &config).await?;
    for (ip, url) in urls {
        let instance = node_of_ip.get(&ip).cloned().unwrap_or_else(|| url.clone());
        let answer = match instance_client(&config, &url) {
            Ok(client) => client.apiserver_version().await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match answer {
            Ok(info) => found.push(Found {
                component: Component::KubeApiserver,
                instance,
                version: Version::parse(&info.git_version).ok(),
                reported: info.git_version,
                source: format!("GET {url}/version"),
                installed: Installed::StaticPod,
            }),
            Err(e) => problems.push(format!("kube-apiserver at {url}: {e}")),
        }
    }

    // The control plane's static pods (mirror pods) and the kube-proxy pods.
    let pods = Api::<Pod>::namespaced(client.clone(), "kube-system");
    for (selector, component) in [
        (
            "component=kube-controller-manager",
            Component::KubeControllerManager,
        ),
        ("component=kube-scheduler", Component::KubeScheduler),
        ("component=etcd", Component::Etcd),
        ("k8s-app=kube-proxy", Component::KubeProxy),
    ] {
        for p in pods
            .list(&ListParams::default().labels(selector))
            .await?
            .items
        {
            let name = p.metadata.name.clone().unwrap_or_default();
            let Some(spec) = &p.spec else { continue };
            let Some(c) = spec.containers.first() else {
                continue;
            };
            let image = c.image.clone().unwrap_or_default();
            let (version, tag) = image_tag(&image);
            found.push(Found {
                component,
                instance: spec.node_name.clone().unwrap_or_else(|| name.clone()),
                version: if component == Component::Etcd {
                    None
                } else {
                    version
                },
                reported: tag,
                source: format!("pod kube-system/{name} image {image}"),
                installed: if component == Component::KubeProxy {
                    Installed::DaemonSet
                } else {
                    Installed::StaticPod
                },
            });
        }
    }

    // Each node's kubelet (and kube-proxy where no pod shows it).
    for n in &nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        let Some(info) = n.status.as_ref().and_then(|s| s.node_info.as_ref()) else {
            problems.push(format!("Node {name}: no status.nodeInfo"));
            continue;
        };
        found.push(Found {
            component: Component::Kubelet,
            instance: name.clone(),
            version: Version::parse(&info.kubelet_version).ok(),
            reported: info.kubelet_version.clone(),
            source: format!("Node {name} status.nodeInfo.kubeletVersion"),
            installed: Installed::Unknown,
        });
        let has_pod = found
            .iter()
            .any(|f| f.component == Component::KubeProxy && f.instance == name);
        #[allow(deprecated)]
        let proxy = info.kube_proxy_version.clone();
        if !has_pod && !proxy.is_empty() {
            found.push(Found {
                component: Component::KubeProxy,
                instance: name.clone(),
                version: Version::parse(&proxy).ok(),
                reported: proxy,
                source: format!("Node {name} status.nodeInfo.kubeProxyVersion"),
                installed: Installed::Unknown,
            });
        }
    }

    // The objects kubeadm upgrade apply updates.
    if let Some(ds) = Api::<DaemonSet>::namespaced(client.clone(), "kube-system")
        .get_opt("kube-proxy")
        .await?
    {
        let image = first_image(ds.spec.and_then(|s| s.template.spec));
        let (version, tag) = image_tag(&image);
        found.push(Found {
            component: Component::KubeProxy,
            instance: "daemonset/kube-proxy".into(),
            version,
            reported: tag,
            source: format!("DaemonSet kube-system/kube-proxy image {image}"),
            installed: Installed::DaemonSet,
        });
    }
    if let Some(d) = Api::<Deployment>::namespaced(client.clone(), "kube-system")
        .get_opt("coredns")
        .await?
    {
        let image = first_image(d.spec.and_then(|s| s.template.spec));
        let (_, tag) = image_tag(&image);
        found.push(Found {
            component: Component::Coredns,
            instance: "deployment/coredns".into(),
            version: None,
            reported: tag,
            source: format!("Deployment kube-system/coredns image {image}"),
            installed: Installed::Deployment,
        });
    }
    found.sort_by(|a, b| {
        (a.component, &a.instance, &a.source).cmp(&(b.component, &b.instance, &b.source))
    });
    Ok(Versions {
        found,
        nodes: Vec::new(),
        support: Vec::new(),
        problems,
        newest_released: None,
    })
}

/// Adds what each etcd member says of itself (the v3 status call, every member of the
/// cluster that etcd's manifest in `etc_kubernetes/manifests` names, with the
/// certificates it names). Nothing is added when there is no such manifest (not a
/// control-plane node); a member that does not answer is a problem.
pub async fn add_etcd_status(v: &mut Versions, etc_kubernetes: &std::path::Path) {
    use kastellan_etcd::discovery::{Discovery, from_manifests};
    let at = Discovery::in_etc_kubernetes(etc_kubernetes);
    if !at.manifests_dir.join("etcd.yaml").exists() {
        return;
    }
    let survey = match from_manifests(&at)
        .and_then(|d| kastellan_etcd::Cluster::new(d.target, kastellan_etcd::Timeouts::default()))
    {
        Ok(cluster) => cluster.survey(true).await,
        Err(e) => {
            v.problems.push(format!("etcd members: {e}"));
            return;
        }
    };
    for e in &survey.endpoints {
        match &e.status {
            Some(st) => v.found.push(Found {
                component: Component::Etcd,
                instance: survey
                    .member(st.member_id)
                    .map(|m| m.name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| e.endpoint.clone()),
                version: None,
                reported: st.version.clone(),
                source: format!("etcd status {}", e.endpoint),
                installed: Installed::StaticPod,
            }),
            None => v.problems.push(format!(
                "etcd at {}: {}",
                e.endpoint,
                e.error.as_deref().unwrap_or("no answer")
            )),
        }
    }
    v.found.sort_by(|a, b| {
        (a.component, &a.instance, &a.source).cmp(&(b.component, &b.instance, &b.source))
    });
}

/// Each address of the Nodes (`status.addresses`) and the Node's name.
pub fn node_of_ip(nodes: &[Node]) -> BTreeMap<String, String> {
    nodes
        .iter()
        .flat_map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            n.status
                .iter()
                .flat_map(|s| s.addresses.iter().flatten())
                .map(move |a| (a.address.clone(), name.clone()))
        })
        .collect()
}

/// Every apiserver instance's URL (each address of the `default/kubernetes`
/// Endpoints), with its IP; the kubeconfig's URL when there is none.
pub async fn apiserver_urls(
    client: &kube::Client,
    config: &kube::Config,
) -> Result<Vec<(String, String)>, crate::Error> {
    let endpoints = Api::<Endpoints>::namespaced(client.clone(), "default")
        .get_opt("kubernetes")
        .await?;
    let mut urls = Vec::new();
    for subset in endpoints.iter().flat_map(|e| e.subsets.iter().flatten()) {
        let port = subset
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("https"))
            .map_or(6443, |p| p.port);
        for a in subset.addresses.iter().flatten() {
            urls.push((a.ip.clone(), format!("https://{}:{port}", host(&a.ip))));
        }
    }
    if urls.is_empty() {
        urls.push((String::new(), config.cluster_url.to_string()));
    }
    Ok(urls)
}

/// A client of the apiserver instance at `url`, with the credentials of `config`.
pub fn instance_client(config: &kube::Config, url: &str) -> Result<kube::Client, String> {
    let mut c = config.clone();
    c.cluster_url = url.parse().map_err(|e| format!("{url}: {e}"))?;
    kube::Client::try_from(c).map_err(|e| e.to_string())
}

/// The first container's image of a pod template.
fn first_image(spec: Option<k8s_openapi::api::core::v1::PodSpec>) -> String {
    spec.and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image)
        .unwrap_or_default()
}

/// An IP as a URL host (`[v6]`).
fn host(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags() {
        let (v, t) = image_tag("k8s.gcr.io/kube-proxy:v1.20.2");
        assert_eq!(
            (v.unwrap().to_string(), t.as_str()),
            ("v1.20.2".into(), "v1.20.2")
        );
        let (v, t) = image_tag("registry.local:5000/etcd:3.4.13-0");
        assert!(v.is_none());
        assert_eq!(t, "3.4.13-0");
        let (v, t) = image_tag("registry.local:5000/kube-proxy");
        assert!(v.is_none());
        assert_eq!(t, "");
        let (v, _) = image_tag("registry.k8s.io/kube-proxy:v1.30.1@sha256:abc");
        assert_eq!(v.unwrap().to_string(), "v1.30.1");
    }

    fn found(c: Component, instance: &str, v: &str, installed: Installed) -> Found {
        Found {
            component: c,
            instance: instance.into(),
            version: Version::parse(v).ok(),
            reported: v.into(),
            source: "test".into(),
            installed,
        }
    }

    #[test]
    fn support_and_skew_facts() {
        let mut v = Versions {
            found: vec![
                found(
                    Component::KubeApiserver,
                    "cp1",
                    "v1.20.2",
                    Installed::StaticPod,
                ),
                found(Component::Kubelet, "w1", "v1.21.0", Installed::Unknown),
                found(
                    Component::KubeProxy,
                    "daemonset/kube-proxy",
                    "v1.20.2",
                    Installed::DaemonSet,
                ),
                found(Component::Etcd, "cp1", "3.4.13-0", Installed::StaticPod),
            ],
            nodes: Vec::new(),
            support: Vec::new(),
            problems: Vec::new(),
            newest_released: None,
        };
        v.add_support(jiff::civil::date(2026, 12, 1));
        assert_eq!(
            v.support
                .iter()
                .map(|s| s.minor.to_string())
                .collect::<Vec<_>>(),
            ["1.20", "1.21"]
        );
        assert_eq!(v.past_end_of_life().len(), 2);
        let c = v.cluster();
        assert_eq!(c.components.len(), 2, "no etcd, no DaemonSet row: {c:?}");
        let violations = kastellan_policy::skew::check(&c);
        assert!(
            violations.iter().any(|x| x.rule.id().contains("kubelet")),
            "{violations:?}"
        );
    }
}

//! `kastellan status --local`: every endpoint of the node this runs on.
//!
//! Which components the node is meant to run is read from its static pod manifests
//! (`etcd.yaml`, `kube-apiserver.yaml`, ...): a component without a manifest is not
//! expected (a worker has no apiserver), so it is not reported as down. The kubelet and
//! kube-proxy run on every node.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::probe::{self, Expect};
use crate::quorum::EtcdMember;
use crate::{Check, State};

/// What to probe on this node.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The node's name (defaults to the hostname).
    pub node: String,
    /// The static pod manifest directory.
    pub manifests_dir: PathBuf,
    /// Per-probe timeout.
    pub timeout: Duration,
    /// The address the node's local endpoints listen on.
    pub host: String,
}

impl LocalOptions {
    /// Defaults of a kubeadm node.
    pub fn kubeadm(node: String) -> LocalOptions {
        LocalOptions {
            node,
            manifests_dir: PathBuf::from("/etc/kubernetes/manifests"),
            timeout: Duration::from_secs(3),
            host: "127.0.0.1".into(),
        }
    }
}

/// Certificate expiry of a kubeadm node: one summary check (down when one expired,
/// degraded within `warn_days`) and the per-certificate figures.
pub fn certificates(
    node: &str,
    layout: &kastellan_pki::Layout,
    warn_days: u32,
) -> (Option<Check>, Vec<crate::CertExpiry>) {
    let inv = kastellan_pki::Inventory::load(layout);
    let now = jiff::Timestamp::now();
    let report = kastellan_pki::check(&inv, now, warn_days);
    let mut list = Vec::new();
    for row in report.rows() {
        if let (Some(after), Some(secs)) = (row.not_after, row.residual_seconds) {
            list.push(crate::CertExpiry {
                node: node.to_string(),
                name: row.name.clone(),
                not_after: after.to_string(),
                days_left: (secs as f64 / 86_400.0 * 10.0).round() / 10.0,
            });
        }
    }
    if list.is_empty() {
        return (None, list);
    }
    let soonest = list
        .iter()
        .min_by(|a, b| a.days_left.total_cmp(&b.days_left))
        .cloned();
    let expired: Vec<&str> = list
        .iter()
        .filter(|c| c.days_left < 0.0)
        .map(|c| c.name.as_str())
        .collect();
    let soon: Vec<&str> = list
        .iter()
        .filter(|c| c.days_left >= 0.0 && c.days_left < f64::from(warn_days))
        .map(|c| c.name.as_str())
        .collect();
    let (state, detail) = if !expired.is_empty() {
        (State::Down, format!("EXPIRED: {}", expired.join(", ")))
    } else if !soon.is_empty() {
        (
            State::Degraded,
            format!("expiring within {warn_days} days: {}", soon.join(", ")),
        )
    } else {
        let s = soonest
            .map(|c| format!("; soonest {} in {:.0} days", c.name, c.days_left))
            .unwrap_or_default();
        (State::Up, format!("{} certificates valid{s}", list.len()))
    };
    let check = Check {
        node: node.to_string(),
        component: "certificates".into(),
        endpoint: layout.cert_dir.display().to_string(),
        source: crate::Source::LocalProbe,
        state,
        latency_ms: None,
        detail,
        failing: expired
            .iter()
            .chain(soon.iter())
            .map(|s| s.to_string())
            .collect(),
    };
    (Some(check), list)
}

/// Asks etcd's v3 API over mTLS (endpoints and the `healthcheck-client` certificate
/// found from the node's etcd manifest): member list, every member's status and the
/// alarms. Returns one row per member (node = member name, source `etcd-api`) and the
/// members for the quorum; `None` when this node runs no etcd.
pub async fn etcd_survey(
    manifests_dir: &Path,
    timeout: Duration,
) -> Option<(Vec<Check>, Vec<EtcdMember>)> {
    if !manifests_dir.join("etcd.yaml").is_file() {
        return None;
    }
    let at = kastellan_etcd::discovery::Discovery::new(manifests_dir);
    let found =
        match kastellan_etcd::discovery::discover(kastellan_etcd::discovery::Flags::default(), &at)
        {
            Ok(f) => f,
            Err(e) => return Some((vec![etcd_api_failure(&e.to_string())], Vec::new())),
        };
    let timeouts = kastellan_etcd::Timeouts {
        connect: timeout,
        request: timeout,
        ..Default::default()
    };
    let cluster = match kastellan_etcd::Cluster::new(found.target.clone(), timeouts) {
        Ok(c) => c,
        Err(e) => return Some((vec![etcd_api_failure(&e.to_string())], Vec::new())),
    };
    let survey = cluster.survey(found.endpoints_discovered()).await;
    if survey.members.is_empty() {
        let why = survey
            .member_list_error
            .clone()
            .unwrap_or_else(|| "no member answered".into());
        return Some((vec![etcd_api_failure(&why)], Vec::new()));
    }
    let mut checks = Vec::new();
    let mut members = Vec::new();
    for m in &survey.members {
        let status = survey
            .statuses()
            .filter(|s| s.member_id == m.id)
            .max_by_key(|s| s.raft_index);
        let alarms: Vec<String> = survey
            .alarms
            .iter()
            .filter(|a| a.member_id == m.id)
            .map(|a| a.kind.to_string())
            .collect();
        let name = if m.name.is_empty() {
            format!("unstarted-{}", m.id_hex())
        } else {
            m.name.clone()
        };
        let healthy = status.is_some_and(|s| s.leader != 0);
        let error = m.client_urls.iter().find_map(|u| {
            survey
                .endpoints
                .iter()
                .find(|e| &e.endpoint == u)
                .and_then(|e| e.error.clone())
        });
        let (state, detail) = match status {
            Some(s) => {
                let role = if s.is_leader() {
                    "leader"
                } else if s.is_learner {
                    "learner"
                } else {
                    "follower"
                };
                let mut d = format!(
                    "{role}, v{}, term {}, index {} (applied {}), db {} ({} in use)",
                    s.version,
                    s.raft_term,
                    s.raft_index,
                    s.raft_applied_index,
                    crate::parse::human_bytes(s.db_size.max(0) as u64),
                    crate::parse::human_bytes(s.db_size_in_use.max(0) as u64)
                );
                if !alarms.is_empty() {
                    d.push_str(&format!("; ALARM {}", alarms.join(", ")));
                }
                let state = if s.leader == 0 || !alarms.is_empty() {
                    State::Down
                } else {
                    State::Up
                };
                if s.leader == 0 {
                    d.push_str("; no leader");
                }
                (state, d)
            }
            None => (
                State::Down,
                error.unwrap_or_else(|| "did not answer".into()),
            ),
        };
        checks.push(Check {
            node: name.clone(),
            component: "etcd-member".into(),
            endpoint: m
                .client_urls
                .first()
                .cloned()
                .unwrap_or_else(|| m.peer_urls.join(",")),
            source: crate::Source::EtcdApi,
            state,
            latency_ms: None,
            detail,
            failing: alarms.clone(),
        });
        members.push(EtcdMember {
            name,
            id: Some(m.id_hex()),
            healthy,
            learner: m.is_learner,
            leader: status.is_some_and(|s| s.is_leader()),
            has_leader: status.map(|s| s.leader != 0),
            leader_changes: None,
            db_size_bytes: status.map(|s| s.db_size.max(0) as u64),
            db_in_use_bytes: status.map(|s| s.db_size_in_use.max(0) as u64),
            quota_bytes: None,
            version: status.map(|s| s.version.clone()),
            alarms,
        });
    }
    Some((checks, members))
}

fn etcd_api_failure(detail: &str) -> Check {
    Check {
        node: hostname(),
        component: "etcd-member".into(),
        endpoint: "etcd v3 API".into(),
        source: crate::Source::EtcdApi,
        state: State::Unknown,
        latency_ms: None,
        detail: detail.to_string(),
        failing: Vec::new(),
    }
}

/// The node's hostname (what kubeadm uses as the node name by default).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The components the manifests say this node runs, with the secure port each serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// kube-apiserver's `--secure-port`, if it has a manifest.
    pub apiserver: Option<u16>,
    /// etcd's metrics URL (`--listen-metrics-urls`), if it has a manifest.
    pub etcd_metrics: Option<String>,
    /// kube-controller-manager's `--secure-port`, if it has a manifest.
    pub controller_manager: Option<u16>,
    /// kube-scheduler's `--secure-port`, if it has a manifest.
    pub scheduler: Option<u16>,
    /// Whether this is a control-plane node.
    pub control_plane: bool,
    /// Whether its apiserver uses an external etcd (no local member expected).
    pub external_etcd: bool,
}

/// Reads the layout from a manifests directory. A control-plane node (one with any
/// kubeadm control-plane manifest, or with `admin.conf` beside the manifests
/// directory) is expected to run the apiserver, controller-manager and scheduler, and
/// a local etcd unless its apiserver talks to an external one: a missing manifest there
/// is a fault, reported by [`missing_manifests`].
pub fn layout(dir: &Path) -> Layout {
    use kastellan_kubeadm::{Component, Flags, StaticPod};
    // A manifest that is there but does not parse counts as present with no flags (the
    // defaults): its component is probed, and found down, rather than called missing.
    let read = |c: Component| {
        let path = dir.join(c.manifest());
        match StaticPod::read(&path) {
            Ok(Some(m)) => Some(m.flags(c.name()).unwrap_or_default()),
            Ok(None) => None,
            Err(_) => path.is_file().then(Flags::default),
        }
    };
    let port = |c: Component| read(c).map(|f| f.port("secure-port").unwrap_or(c.default_port()));
    let external_etcd = read(Component::KubeApiserver).is_some_and(|f| {
        f.get("etcd-servers").is_some_and(|s| {
            !s.split(',')
                .any(|u| u.contains("127.0.0.1") || u.contains("localhost") || u.contains("[::1]"))
        })
    });
    let mut l = Layout {
        apiserver: port(Component::KubeApiserver),
        etcd_metrics: read(Component::Etcd).map(|f| {
            f.urls("listen-metrics-urls")
                .into_iter()
                .find(|u| u.starts_with("http://"))
                .map(str::to_string)
                .unwrap_or_else(|| "http://127.0.0.1:2381".into())
        }),
        controller_manager: port(Component::KubeControllerManager),
        scheduler: port(Component::KubeScheduler),
        control_plane: false,
        external_etcd,
    };
    let admin = dir
        .parent()
        .map(|p| p.join("admin.conf"))
        .is_some_and(|p| p.is_file());
    l.control_plane = admin
        || l.apiserver.is_some()
        || l.etcd_metrics.is_some()
        || l.controller_manager.is_some()
        || l.scheduler.is_some();
    l
}

/// Components a control-plane node should run but has no manifest for.
pub fn missing_manifests(l: &Layout) -> Vec<&'static str> {
    if !l.control_plane {
        return Vec::new();
    }
    let mut v = Vec::new();
    if l.apiserver.is_none() {
        v.push("kube-apiserver");
    }
    if l.etcd_metrics.is_none() && !l.external_etcd {
        v.push("etcd");
    }
    if l.controller_manager.is_none() {
        v.push("kube-controller-manager");
    }
    if l.scheduler.is_none() {
        v.push("kube-scheduler");
    }
    v
}

/// Probes every endpoint of this node concurrently. Returns the checks and, on a node
/// with etcd, this node's etcd member as its metrics describe it.
pub async fn probe_node(opts: &LocalOptions) -> (Vec<Check>, Option<EtcdMember>) {
    let l = layout(&opts.manifests_dir);
    let client = probe::client(opts.timeout);
    let h = &opts.host;
    let mut targets: Vec<(&'static str, String, Expect)> = Vec::new();
    if let Some(p) = l.apiserver {
        targets.push((
            "kube-apiserver",
            format!("https://{h}:{p}/livez?verbose"),
            Expect::Verbose,
        ));
        targets.push((
            "kube-apiserver",
            format!("https://{h}:{p}/readyz?verbose"),
            Expect::Verbose,
        ));
    }
    if let Some(m) = &l.etcd_metrics {
        let m = if h == "127.0.0.1" {
            m.clone()
        } else {
            m.replace("127.0.0.1", h)
        };
        targets.push(("etcd", format!("{m}/health"), Expect::EtcdHealth));
    }
    if let Some(p) = l.controller_manager {
        targets.push((
            "kube-controller-manager",
            format!("https://{h}:{p}/healthz"),
            Expect::Ok,
        ));
    }
    if let Some(p) = l.scheduler {
        targets.push((
            "kube-scheduler",
            format!("https://{h}:{p}/healthz"),
            Expect::Ok,
        ));
    }
    targets.push(("kubelet", format!("http://{h}:10248/healthz"), Expect::Ok));
    targets.push((
        "kube-proxy",
        format!("http://{h}:10249/healthz"),
        Expect::Ok,
    ));
    targets.push((
        "kube-proxy",
        format!("http://{h}:10256/healthz"),
        Expect::ProxyHealth,
    ));

    let mut set = tokio::task::JoinSet::new();
    for (i, (component, url, expect)) in targets.into_iter().enumerate() {
        let client = client.clone();
        let node = opts.node.clone();
        set.spawn(async move {
            (
                i,
                probe::probe(&client, &node, component, &url, expect).await,
            )
        });
    }
    let metrics = l.etcd_metrics.as_ref().map(|m| {
        let url = format!(
            "{}/metrics",
            if h == "127.0.0.1" {
                m.clone()
            } else {
                m.replace("127.0.0.1", h)
            }
        );
        let client = client.clone();
        tokio::spawn(async move { probe::get(&client, &url).await })
    });
    let mut checks: Vec<(usize, Check)> = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(x) = r {
            checks.push(x);
        }
    }
    checks.sort_by_key(|(i, _)| *i);
    let mut checks: Vec<Check> = checks.into_iter().map(|(_, c)| c).collect();
    for component in missing_manifests(&l) {
        checks.push(Check {
            node: opts.node.clone(),
            component: component.to_string(),
            endpoint: opts.manifests_dir.join(format!("{component}.yaml")).display().to_string(),
            source: crate::Source::LocalProbe,
            state: State::Down,
            latency_ms: None,
            detail: "static pod manifest missing on this control-plane node: the kubelet does not run it".into(),
            failing: Vec::new(),
        });
    }
    let l_etcd_missing = missing_manifests(&l).contains(&"etcd");

    let member = match metrics {
        Some(task) => {
            let answer = task.await.ok();
            let healthy = checks
                .iter()
                .any(|c| c.component == "etcd" && c.state == State::Up);
            let m = answer
                .filter(|a| a.status == Some(200))
                .map(|a| crate::parse::etcd_metrics(&a.body))
                .unwrap_or_default();
            if let (Some(size), Some(quota)) = (m.db_size_bytes, m.quota_bytes) {
                let c = checks.iter_mut().find(|c| c.component == "etcd");
                if let Some(c) = c
                    && c.state == State::Up
                {
                    c.detail = format!(
                        "{}; db {} of {} quota{}",
                        c.detail,
                        crate::parse::human_bytes(size),
                        crate::parse::human_bytes(quota),
                        if m.is_leader == Some(true) {
                            "; leader"
                        } else {
                            ""
                        }
                    );
                }
            }
            Some(EtcdMember {
                name: opts.node.clone(),
                id: None,
                healthy,
                learner: m.is_learner.unwrap_or(false),
                leader: m.is_leader.unwrap_or(false),
                has_leader: m.has_leader,
                leader_changes: m.leader_changes,
                db_size_bytes: m.db_size_bytes,
                db_in_use_bytes: m.db_in_use_bytes,
                quota_bytes: m.quota_bytes,
                version: m.version,
                alarms: Vec::new(),
            })
        }
        None if l_etcd_missing => Some(EtcdMember {
            name: opts.node.clone(),
            healthy: false,
            ..Default::default()
        }),
        None => None,
    };
    (checks, member)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, flags: &[&str]) -> String {
        let mut m = format!("spec:\n  containers:\n  - name: {name}\n    command:\n    - {name}\n");
        for f in flags {
            m.push_str(&format!("    - {f}\n"));
        }
        m
    }

    #[test]
    fn external_etcd_is_read_from_the_apiserver() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("kube-apiserver.yaml"),
            pod("kube-apiserver", &["--etcd-servers=https://10.0.0.9:2379"]),
        )
        .unwrap();
        let l = layout(dir.path());
        assert!(l.external_etcd);
        assert_eq!(l.apiserver, Some(6443), "the default port");
        assert!(!missing_manifests(&l).contains(&"etcd"));
    }

    #[test]
    fn layout_follows_the_manifests() {
        let dir =
            std::env::temp_dir().join(format!("kastellan-health-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("etcd.yaml"),
            pod("etcd", &["--listen-metrics-urls=http://127.0.0.1:2381"]),
        )
        .unwrap();
        std::fs::write(
            dir.join("kube-scheduler.yaml"),
            pod("kube-scheduler", &["--secure-port=12345"]),
        )
        .unwrap();
        let l = layout(&dir);
        assert_eq!(l.etcd_metrics.as_deref(), Some("http://127.0.0.1:2381"));
        assert_eq!(l.scheduler, Some(12345));
        assert_eq!(l.apiserver, None);
        assert!(l.control_plane);
        assert_eq!(
            missing_manifests(&l),
            ["kube-apiserver", "kube-controller-manager"]
        );
        let worker =
            std::env::temp_dir().join(format!("kastellan-health-worker-{}", std::process::id()));
        std::fs::create_dir_all(&worker).unwrap();
        assert!(
            missing_manifests(&layout(&worker)).is_empty(),
            "a worker expects no control-plane pods"
        );
        std::fs::remove_dir_all(&worker).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `kastellan ha`: what a single failure would hurt, from the cluster as it is. The
//! facts come from the API (control-plane nodes and their taints, the control-plane
//! mirror pods and their flags, leader Leases, kube-proxy's kubeconfig, pods on control
//! planes), from etcd through the nodes (as `status` asks it), and from each node's
//! kubelet.conf over node access; the rules are in [`kastellan_health::ha`].

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Toleration};
use kastellan_access::NodeCommand;
use kastellan_health::ha::{
    self, CONTROL_PLANE_TAINT, ClientFact, ControlPlane, HaFacts, HaReport, HaVerdict, Instance,
    LEGACY_MASTER_TAINT, LeaseFact, PodRef, Severity,
};
use kastellan_printer::{Printer, Report, Style, Table, wrap};
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use crate::Outcome;
use crate::cli::{GlobalArgs, HaArgs};

/// Runs `ha`.
pub fn run(args: HaArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let rt = super::runtime()?;
    let report = rt.block_on(gather(&args, global))?;
    let out = match report.verdict {
        HaVerdict::SinglePointOfFailure => Outcome::Unhealthy,
        _ => Outcome::Ok,
    };
    printer.report(&View(report))?;
    Ok(out)
}

async fn gather(args: &HaArgs, global: &GlobalArgs) -> Result<HaReport> {
    let kube = super::kube::client(global, None, super::kube::READ_TIMEOUT).await?;
    let client = kube.client;
    let mut facts = api_facts(&client).await?;

    // etcd as `status` asks it: each control plane's own report, merged.
    let reach = super::status::node_access(&args.probe, kube.path.as_deref())?;
    let status = super::status::gather(&args.probe, global).await?;
    facts.etcd = status.etcd.clone();
    if facts.etcd.is_none() {
        facts.etcd_unknown = Some(match &reach {
            None => "no node access (no lab, no inventory or ssh options given, or \
                     --node-access none)"
                .into(),
            Some(_) => status
                .warnings
                .iter()
                .find(|w| w.contains("etcd"))
                .cloned()
                .unwrap_or_else(|| "no control plane reported its etcd member".into()),
        });
    }

    // Each kubelet's server, read on its node; without node access, the address
    // kubeadm gives joining nodes.
    let nodes: Vec<String> = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("listing Nodes")?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    match reach {
        Some(reach) => {
            let timeout = Duration::from_secs(args.probe.probe_timeout.max(1) + 5);
            let access = reach.access.clone();
            let kubelets = tokio::task::spawn_blocking(move || {
                nodes
                    .into_iter()
                    .map(|node| {
                        let cmd = NodeCommand::new([
                            "sed",
                            "-n",
                            "s/^ *server: *//p",
                            "/etc/kubernetes/kubelet.conf",
                        ])
                        .timeout(timeout);
                        let server = access
                            .run(&node, &cmd)
                            .ok()
                            .filter(|o| o.success())
                            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                            .filter(|s| !s.is_empty());
                        (node, server)
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
            for (node, server) in kubelets {
                match server {
                    Some(server) => facts.clients.push(ClientFact {
                        client: "kubelet".into(),
                        source: format!("/etc/kubernetes/kubelet.conf on {node}"),
                        node: Some(node),
                        server,
                    }),
                    None => facts.kubelets_unread.push(node),
                }
            }
        }
        None => {
            if let Some(server) = cluster_info_server(&client).await {
                facts.clients.push(ClientFact {
                    client: "kubelet (as kubeadm joins them)".into(),
                    node: None,
                    server,
                    source: "ConfigMap kube-public/cluster-info".into(),
                });
            }
        }
    }
    Ok(ha::assess(facts))
}

/// The value of `--NAME=VALUE` (or `--NAME` alone: `"true"`) in a container's command.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let long = format!("--{name}");
    args.iter().rev().find_map(|a| {
        if *a == long {
            Some("true")
        } else {
            a.strip_prefix(&long).and_then(|r| r.strip_prefix('='))
        }
    })
}

async fn api_facts(client: &kube::Client) -> Result<HaFacts> {
    let mut facts = HaFacts::default();
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("listing Nodes")?;
    for n in &nodes.items {
        let labels = n.metadata.labels.clone().unwrap_or_default();
        if !(labels.contains_key(ha::CONTROL_PLANE_TAINT)
            || labels.contains_key(ha::LEGACY_MASTER_TAINT))
        {
            continue;
        }
        let spec = n.spec.clone().unwrap_or_default();
        facts.control_planes.push(ControlPlane {
            name: n.metadata.name.clone().unwrap_or_default(),
            addresses: n
                .status
                .as_ref()
                .and_then(|s| s.addresses.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.address)
                .collect(),
            taints: spec
                .taints
                .unwrap_or_default()
                .into_iter()
                .map(|t| match t.value {
                    Some(v) if !v.is_empty() => format!("{}={v}:{}", t.key, t.effect),
                    _ => format!("{}:{}", t.key, t.effect),
                })
                .collect(),
        });
    }

    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let statics = pods
        .list(&ListParams::default().labels("tier=control-plane"))
        .await
        .context("listing the control-plane pods in kube-system")?;
    for p in statics.items {
        let component = p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("component").cloned())
            .unwrap_or_default();
        let spec = p.spec.clone().unwrap_or_default();
        let args: Vec<String> = spec
            .containers
            .first()
            .map(|c| {
                let mut a = c.command.clone().unwrap_or_default();
                a.extend(c.args.clone().unwrap_or_default());
                a
            })
            .unwrap_or_default();
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let mut instance = Instance {
            node: spec.node_name.clone().unwrap_or_default(),
            ready,
            leader_elect: None,
            address: None,
        };
        match component.as_str() {
            "kube-apiserver" => {
                instance.address = flag(&args, "advertise-address").map(str::to_string);
                facts.apiservers.push(instance);
            }
            "kube-controller-manager" | "kube-scheduler" => {
                instance.leader_elect =
                    Some(flag(&args, "leader-elect").is_none_or(|v| v != "false"));
                if component == "kube-scheduler" {
                    facts.schedulers.push(instance);
                } else {
                    facts.controller_managers.push(instance);
                }
            }
            _ => {}
        }
    }

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    for name in ["kube-controller-manager", "kube-scheduler"] {
        let lease = leases
            .get_opt(name)
            .await
            .with_context(|| format!("reading Lease kube-system/{name}"))?;
        let spec = lease.and_then(|l| l.spec).unwrap_or_default();
        facts.leases.push(LeaseFact {
            component: name.into(),
            holder: spec.holder_identity,
            transitions: spec.lease_transitions,
        });
    }

    // kube-proxy's kubeconfig, shared by every kube-proxy (kubeadm's ConfigMap).
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    if let Some(cm) = cms.get_opt("kube-proxy").await.ok().flatten()
        && let Some(server) = cm
            .data
            .as_ref()
            .and_then(|d| d.get("kubeconfig.conf"))
            .and_then(|k| server_of(k))
    {
        facts.clients.push(ClientFact {
            client: "kube-proxy".into(),
            node: None,
            server,
            source: "ConfigMap kube-system/kube-proxy".into(),
        });
    }

    // Workloads on control planes: what is neither a mirror pod nor a DaemonSet's, nor
    // placed there on purpose by tolerating the control-plane taint (kubeadm's CoreDNS).
    let all: Api<Pod> = Api::all(client.clone());
    for cp in &facts.control_planes {
        let list = all
            .list(&ListParams::default().fields(&format!("spec.nodeName={}", cp.name)))
            .await
            .with_context(|| format!("listing the pods on {}", cp.name))?;
        for p in list.items {
            let mirror = p
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
            let owner = p
                .metadata
                .owner_references
                .as_ref()
                .and_then(|o| o.iter().find(|o| o.controller == Some(true)).cloned());
            let daemon = owner.as_ref().is_some_and(|o| o.kind == "DaemonSet");
            let finished = p
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|ph| ph == "Succeeded" || ph == "Failed");
            let tolerated = p
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.as_deref())
                .is_some_and(tolerates_control_plane_taint);
            if mirror || daemon || finished || tolerated {
                continue;
            }
            facts.workloads_on_control_planes.push(PodRef {
                node: cp.name.clone(),
                pod: format!(
                    "{}/{}",
                    p.metadata.namespace.unwrap_or_default(),
                    p.metadata.name.unwrap_or_default()
                ),
                owner: owner.map(|o| format!("{}/{}", o.kind, o.name)),
            });
        }
    }
    Ok(facts)
}

/// Whether these tolerations let a pod onto a control plane tainted as kubeadm taints
/// it (`node-role.kubernetes.io/control-plane` or the legacy `master`, NoSchedule): such
/// a pod was put there on purpose, as kubeadm's CoreDNS is, and is no finding.
fn tolerates_control_plane_taint(tolerations: &[Toleration]) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == "NoSchedule");
        let key_ok = match t.key.as_deref() {
            None | Some("") => t.operator.as_deref() == Some("Exists"),
            Some(k) => k == CONTROL_PLANE_TAINT || k == LEGACY_MASTER_TAINT,
        };
        effect_ok && key_ok
    })
}

/// The first `server:` of a kubeconfig's text.
fn server_of(kubeconfig: &str) -> Option<String> {
    kubeconfig.lines().find_map(|l| {
        l.trim()
            .strip_prefix("server:")
            .map(|s| s.trim().trim_matches('"').to_string())
    })
}

async fn cluster_info_server(client: &kube::Client) -> Option<String> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "kube-public")
        .get_opt("cluster-info")
        .await
        .ok()??;
    server_of(cm.data?.get("kubeconfig")?)
}

/// The human view of the report.
#[derive(Serialize)]
#[serde(transparent)]
struct View(HaReport);

impl Report for View {
    fn render(&self, out: &mut String, style: &Style) {
        let r = &self.0;
        let mut t = Table::new(["COMPONENT", "INSTANCES", "TOLERATES", "DETAIL"]);
        for c in &r.components {
            let tolerates = match c.tolerates {
                None => "?".to_string(),
                Some(0) => style.bad("0"),
                Some(n) => n.to_string(),
            };
            t.row([
                c.component.clone(),
                format!("{} ({} ok)", c.instances, c.healthy),
                tolerates,
                c.detail.clone(),
            ]);
        }
        t.render_into(out, style);
        if !r.findings.is_empty() {
            out.push('\n');
        }
        for f in &r.findings {
            let label = match f.severity {
                Severity::Error => style.bad("error"),
                Severity::Warning => style.warn("warn"),
                Severity::Info => "info".to_string(),
            };
            // Pad by the plain label's width (colour codes take no columns).
            let plain = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warn",
                Severity::Info => "info",
            };
            let head = format!("{label}{} {}: ", " ".repeat(6 - plain.len()), f.area);
            wrap(out, &head, 7, &f.text, style.width);
            if let Some(fix) = &f.fix {
                wrap(out, "       fix: ", 12, fix, style.width);
            }
        }
        out.push('\n');
        let verdict = match r.verdict {
            HaVerdict::Tolerant => style.good("no single failure loses the API or etcd quorum"),
            HaVerdict::TolerantWithWarnings => {
                style.warn("no single failure loses the API or etcd quorum (with warnings)")
            }
            HaVerdict::SinglePointOfFailure => {
                style.bad("a single failure loses the API for some clients or etcd quorum")
            }
        };
        out.push_str(&verdict);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_as_the_components_read_them() {
        let args: Vec<String> = [
            "kube-controller-manager",
            "--leader-elect=true",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ]
        .map(String::from)
        .to_vec();
        // The last occurrence wins, as with Go's flag parsing.
        assert_eq!(flag(&args, "leader-elect"), Some("false"));
        assert_eq!(flag(&args, "bind-address"), Some("127.0.0.1"));
        assert_eq!(
            flag(&["--leader-elect".to_string()], "leader-elect"),
            Some("true")
        );
        assert_eq!(flag(&args, "leader"), None);
        assert_eq!(
            server_of("apiVersion: v1\nclusters:\n- cluster:\n    server: https://10.0.0.1:6443\n"),
            Some("https://10.0.0.1:6443".into())
        );
    }

    fn tol(key: Option<&str>, op: Option<&str>, effect: Option<&str>) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            effect: effect.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn a_pod_tolerating_the_control_plane_taint_is_there_on_purpose() {
        // kubeadm's CoreDNS (v1.20): CriticalAddonsOnly, then the master taint.
        let coredns = [
            tol(Some("CriticalAddonsOnly"), Some("Exists"), None),
            tol(Some(LEGACY_MASTER_TAINT), None, Some("NoSchedule")),
        ];
        assert!(tolerates_control_plane_taint(&coredns));
        assert!(tolerates_control_plane_taint(&[tol(
            Some(CONTROL_PLANE_TAINT),
            Some("Exists"),
            None
        )]));
        // Tolerates every taint.
        assert!(tolerates_control_plane_taint(&[tol(
            None,
            Some("Exists"),
            None
        )]));
        // Not the control-plane taint, or only its NoExecute: a workload that landed
        // there some other way (before the taint, or pinned by nodeName).
        assert!(!tolerates_control_plane_taint(&[]));
        assert!(!tolerates_control_plane_taint(&[tol(
            Some("CriticalAddonsOnly"),
            Some("Exists"),
            None
        )]));
        assert!(!tolerates_control_plane_taint(&[tol(
            Some(CONTROL_PLANE_TAINT),
            Some("Exists"),
            Some("NoExecute")
        )]));
        assert!(!tolerates_control_plane_taint(&[tol(
            Some("node.kubernetes.io/not-ready"),
            Some("Exists"),
            Some("NoExecute")
        )]));
    }
}

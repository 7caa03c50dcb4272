//! `kastellan status`: one verdict on the control plane, with every check named (the
//! views are in `status_view`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use kastellan_health::cluster::{self, NodeReports};
use kastellan_health::local::{self, LocalOptions};
use kastellan_health::{StatusReport, Verdict};
use kastellan_printer::Printer;

use crate::Outcome;
use crate::cli::{GlobalArgs, NodeAccessMode, ProbeArgs, StatusArgs};
use crate::commands::node_access::{self, Reach};
use crate::commands::status_view::{StatusView, changes};

/// Runs `status`.
pub fn run(args: StatusArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let rt = super::runtime()?;
    if !args.watch {
        let report = rt.block_on(gather(&args.probe, global))?;
        printer.report(&StatusView {
            report: &report,
            changed: None,
        })?;
        return Ok(outcome(&report));
    }
    let mut previous: Option<StatusReport> = None;
    let mut n = 0u64;
    loop {
        let report = rt.block_on(gather(&args.probe, global))?;
        let changed = previous.as_ref().map(|p| changes(p, &report));
        printer.frame(
            &format!(
                "every {}s, refresh {} at {}",
                args.interval,
                n + 1,
                report.checked_at
            ),
            &StatusView {
                report: &report,
                changed: changed.as_ref(),
            },
        )?;
        n += 1;
        let done = args.count > 0 && n >= args.count;
        let out = outcome(&report);
        previous = Some(report);
        if done {
            return Ok(out);
        }
        let stop = rt.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(args.interval.max(1))) => false,
                _ = tokio::signal::ctrl_c() => true,
            }
        });
        if stop {
            return Ok(out);
        }
    }
}

/// The exit code of a report: 0 healthy, 1 degraded, 2 could not check.
pub fn outcome(r: &StatusReport) -> Outcome {
    match r.verdict {
        Verdict::Healthy => Outcome::Ok,
        Verdict::Degraded => Outcome::Unhealthy,
        Verdict::Unknown => Outcome::CouldNotCheck,
    }
}

/// Gathers the status as the options say: local probes, or the cluster view.
pub async fn gather(p: &ProbeArgs, global: &GlobalArgs) -> Result<StatusReport> {
    let timeout = Duration::from_secs(p.probe_timeout.max(1));
    if p.local {
        let mut opts = LocalOptions::kubeadm(p.node.clone().unwrap_or_else(local::hostname));
        opts.manifests_dir = p.manifests_dir.clone();
        opts.timeout = timeout;
        let ((mut checks, member), survey) = tokio::join!(
            local::probe_node(&opts),
            local::etcd_survey(&p.manifests_dir, timeout)
        );
        let mut etcd = None;
        if let Some((rows, members)) = survey {
            checks.extend(rows);
            if !members.is_empty() {
                etcd = Some(kastellan_health::quorum::assess(&members, None));
            }
        }
        let kubeconfig_dir = p
            .manifests_dir
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let layout = kastellan_pki::Layout {
            cert_dir: p
                .cert_dir
                .clone()
                .unwrap_or_else(|| kubeconfig_dir.join("pki")),
            kubeconfig_dir,
            kubelet_pki_dir: PathBuf::from("/var/lib/kubelet/pki"),
        };
        let (cert_check, certificates) = local::certificates(&opts.node, &layout, p.warn_days);
        checks.extend(cert_check);
        let mut report = StatusReport::new(checks, etcd, Vec::new());
        report.etcd_member = member;
        report.certificates = certificates;
        return Ok(report);
    }

    // Short reads: a hung apiserver is a finding, not a reason to wait.
    let kube = super::kube::client(global, None, Duration::from_secs(10)).await;
    let (kubeconfig, client) = match kube.map(|k| (k.path, k.client)) {
        Ok(x) => x,
        Err(e) => {
            let mut r = StatusReport::new(Vec::new(), None, Vec::new());
            r.summary = format!("could not check: {e:#}");
            return Ok(r);
        }
    };
    let reach = node_access(p, kubeconfig.as_deref())?;
    let now = jiff::Timestamp::now();
    let (checks, nodes) = cluster::api_checks(&client, now, timeout).await;
    // Without the API's node list (no quorum, apiserver down), fall back to --nodes,
    // the inventory or the lab's nodes, so the local endpoints are still probed.
    let nodes = match nodes {
        Some(n) => n,
        None => fallback_nodes(p, reach.as_ref()),
    };
    let access = reach.map(|r| NodeReports {
        access: r.access,
        kastellan: r.kastellan,
    });
    let mut local = BTreeMap::new();
    if let Some(access) = &access {
        let mut set = tokio::task::JoinSet::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(p.node_concurrency as usize));
        for n in &nodes {
            let access = access.clone();
            let name = n.name.clone();
            let slots = slots.clone();
            set.spawn(async move {
                let _slot = slots.acquire_owned().await;
                let r = access
                    .gather(&name, timeout)
                    .await
                    .map_err(|e| e.to_string());
                (name, r)
            });
        }
        while let Some(Ok((name, r))) = set.join_next().await {
            local.insert(name, r);
        }
    }
    Ok(cluster::merge(checks, &nodes, local, access.as_ref()))
}

fn fallback_nodes(p: &ProbeArgs, reach: Option<&Reach>) -> Vec<cluster::NodeInfo> {
    if !p.nodes.is_empty() {
        return p
            .nodes
            .iter()
            .map(|n| cluster::NodeInfo {
                name: n.clone(),
                control_plane: true,
            })
            .collect();
    }
    if let Some(inv) = reach.and_then(|r| r.inventory.as_ref()) {
        return inv
            .nodes
            .iter()
            .map(|n| cluster::NodeInfo {
                name: n.name.clone(),
                control_plane: n.role == kastellan_access::Role::ControlPlane,
            })
            .collect();
    }
    if reach.is_some_and(|r| r.access.kind() == kastellan_access::AccessKind::Lab)
        && let Ok(Some(state)) = kastellan_lab::LabState::load()
    {
        return state
            .nodes
            .iter()
            .map(|n| cluster::NodeInfo {
                name: n.node.name.clone(),
                control_plane: n.node.role == kastellan_lab::NodeRole::ControlPlane,
            })
            .collect();
    }
    Vec::new()
}

/// How the nodes are reached, as `--node-access` says (`None`: API view only).
pub(crate) fn node_access(
    p: &ProbeArgs,
    kubeconfig: Option<&std::path::Path>,
) -> Result<Option<Reach>> {
    let is_lab = || {
        kubeconfig.is_some_and(|k| k == kastellan_lab::kubeconfig_path())
            && kastellan_lab::LabState::load().ok().flatten().is_some()
    };
    Ok(match p.node_access {
        NodeAccessMode::None => None,
        NodeAccessMode::Lab => Some(node_access::lab()?),
        NodeAccessMode::LabSsh => Some(node_access::ssh(&p.ssh, true)?),
        NodeAccessMode::Ssh => {
            // The lab's own inventory when nothing else is said and the lab is meant.
            let lab = node_access::unconfigured(&p.ssh) && is_lab() && node_access::lab_ssh_up();
            Some(node_access::ssh(&p.ssh, lab)?)
        }
        NodeAccessMode::Auto => {
            if is_lab() {
                Some(node_access::lab()?)
            } else if !node_access::unconfigured(&p.ssh) {
                Some(node_access::ssh(&p.ssh, false)?)
            } else {
                None
            }
        }
    })
}

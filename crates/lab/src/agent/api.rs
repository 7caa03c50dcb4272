//! The API side of the kubelet stand-in: Node, Lease, mirror pods, pod status and
//! deletion, all with the node's own credentials (`/etc/kubernetes/kubelet.conf`, made
//! by the TLS bootstrap on a node `kubeadm join` prepared), so the Node authorizer and
//! NodeRestriction apply as they do to a real kubelet.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio::sync::Mutex;

use super::AgentConfig;
use super::pods::PodFile;

/// The kubelet's credentials inside a node.
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";

/// State shared between the process supervisor and the API loop.
#[derive(Default)]
pub struct Shared {
    /// Whether the Node exists and the Lease was renewed.
    pub registered: bool,
    /// Static pods and whether their process runs, with restart counts.
    pub static_pods: Vec<(PodFile, bool, u32)>,
    /// The kubelet version the Node reports (changes when the kubelet is restarted
    /// after a package upgrade).
    pub kubelet_version: String,
}

/// Loops forever: registers, heartbeats, reconciles pods. Errors are logged and
/// retried; a control plane that is still starting is normal.
pub async fn run(cfg: AgentConfig, shared: Arc<Mutex<Shared>>) {
    let mut client = None;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut beats = 0u64;
    let mut ips = PodIps::default();
    let mut node_uid = String::new();
    let mut last_err: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut report = |what: &'static str, r: Result<(), kube::Error>| {
        let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
        if last_err.get(what) != Some(&msg) {
            if !msg.is_empty() {
                tracing::warn!("{what}: {msg}");
            }
            last_err.insert(what, msg);
        }
    };
    loop {
        tick.tick().await;
        if client.is_none() {
            let (kubelet, boot) = (
                std::path::Path::new(KUBELET_CONF),
                std::path::Path::new(super::bootstrap::BOOTSTRAP_KUBELET_CONF),
            );
            if super::bootstrap::needed(kubelet, boot)
                && let Err(e) = super::bootstrap::run(&cfg.node, kubelet, boot).await
            {
                tracing::warn!("TLS bootstrap: {e}");
                continue;
            }
            client = connect().await;
        }
        let Some(c) = client.clone() else { continue };
        let (registered, version) = {
            let s = shared.lock().await;
            (s.registered, s.kubelet_version.clone())
        };
        // Heartbeat every 10 s (every tick until registered).
        if !registered || beats.is_multiple_of(5) {
            let r = heartbeat(&c, &cfg, &version).await;
            shared.lock().await.registered = r.is_ok();
            if let Ok(uid) = &r {
                node_uid = uid.clone();
            }
            report("heartbeat", r.map(|_| ()));
        }
        beats += 1;
        let statics = shared.lock().await.static_pods.clone();
        if !node_uid.is_empty() {
            report(
                "mirror pods",
                mirror_pods(&c, &cfg, &node_uid, &statics).await,
            );
        }
        let mirrors: Vec<String> = statics
            .iter()
            .map(|(f, _, _)| format!("{}-{}", f.name(), cfg.node))
            .collect();
        report("pods", node_pods(&c, &cfg, &mut ips, &mirrors).await);
    }
}

async fn connect() -> Option<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(KUBELET_CONF).ok()?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .ok()?;
    kube::Client::try_from(config).ok()
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Registers or refreshes the Node and renews its Lease; returns the Node's uid.
async fn heartbeat(
    c: &kube::Client,
    cfg: &AgentConfig,
    kubelet_version: &str,
) -> Result<String, kube::Error> {
    let nodes: Api<Node> = Api::all(c.clone());
    let stamp = now();
    let node_uid = match nodes.get_opt(&cfg.node).await? {
        Some(n) => n.metadata.uid,
        None => {
            // Role labels are kubeadm's to set (mark-control-plane); NodeRestriction
            // forbids a node from setting them itself.
            let labels = json!({
                "kubernetes.io/hostname": cfg.node,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
            });
            let node: Node = serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": cfg.node,
                    "labels": labels,
                    "annotations": {
                        "kastellan.dev/kubelet": "stand-in: kastellan lab agent, no container runtime",
                        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                    },
                },
            }))
            .map_err(kube::Error::SerdeError)?;
            nodes
                .create(&PostParams::default(), &node)
                .await?
                .metadata
                .uid
        }
    };
    let status = json!({
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": cfg.ip},
                {"type": "Hostname", "address": cfg.node},
            ],
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "20Gi"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "20Gi"},
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": kubelet_version,
                "osImage": "kastellan lab node (kubelet stand-in)",
                "containerRuntimeVersion": "kastellan-lab://none",
                "kernelVersion": kernel_version(),
                "operatingSystem": "linux",
                "architecture": "amd64",
                "machineID": "", "systemUUID": "", "bootID": "",
            },
            "conditions": [
                cond("Ready", "True", "KubeletReady", "kastellan lab agent (kubelet stand-in) is posting ready status", &stamp),
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "stand-in", &stamp),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "stand-in", &stamp),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "stand-in", &stamp),
            ],
        }
    });
    nodes
        .patch_status(
            &cfg.node,
            &PatchParams::default(),
            &Patch::Strategic(status),
        )
        .await?;

    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
    let spec = json!({
        "holderIdentity": cfg.node,
        "leaseDurationSeconds": 40,
        "renewTime": now_micro(),
    });
    match leases.get_opt(&cfg.node).await? {
        Some(_) => {
            leases
                .patch(
                    &cfg.node,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": spec})),
                )
                .await?;
        }
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": cfg.node,
                    "namespace": "kube-node-lease",
                    "ownerReferences": [{
                        "apiVersion": "v1", "kind": "Node", "name": cfg.node,
                        "uid": node_uid.clone().unwrap_or_default(),
                    }],
                },
                "spec": spec,
            }))
            .map_err(kube::Error::SerdeError)?;
            leases.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(node_uid.unwrap_or_default())
}

fn cond(t: &str, status: &str, reason: &str, message: &str, stamp: &str) -> serde_json::Value {
    json!({"type": t, "status": status, "reason": reason, "message": message,
           "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Mirror pods: the API's view of static pods, as the kubelet maintains them.
async fn mirror_pods(
    c: &kube::Client,
    cfg: &AgentConfig,
    node_uid: &str,
    statics: &[(PodFile, bool, u32)],
) -> Result<(), kube::Error> {
    for (file, running, restarts) in statics {
        let ns = file
            .pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "kube-system".into());
        let name = format!("{}-{}", file.name(), cfg.node);
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let hash = &file.hash[..32];
        let existing = pods.get_opt(&name).await?;
        let stale = existing.as_ref().is_some_and(|p| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/config.mirror"))
                .map(String::as_str)
                != Some(hash)
        });
        if stale {
            pods.delete(
                &name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                },
            )
            .await?;
            continue;
        }
        if existing.is_none() {
            let mut pod = file.pod.clone();
            pod.metadata.name = Some(name.clone());
            pod.metadata.namespace = Some(ns.clone());
            let ann = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
            ann.insert("kubernetes.io/config.mirror".into(), hash.to_string());
            ann.insert("kubernetes.io/config.hash".into(), hash.to_string());
            ann.insert("kubernetes.io/config.source".into(), "file".into());
            ann.insert("kubernetes.io/config.seen".into(), now());
            // NodeRestriction: a node may create only mirror pods owned by itself.
            pod.metadata.owner_references = Some(vec![serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Node", "name": cfg.node, "uid": node_uid, "controller": true,
            }))
            .map_err(kube::Error::SerdeError)?]);
            if let Some(spec) = pod.spec.as_mut() {
                spec.node_name = Some(cfg.node.clone());
            }
            pod.status = None;
            pods.create(&PostParams::default(), &pod).await?;
        }
        let container = file.pod.spec.as_ref().and_then(|s| s.containers.first());
        let phase = if *running { "Running" } else { "Pending" };
        let state = if *running {
            json!({"running": {"startedAt": now()}})
        } else {
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "process not running (kastellan lab agent)"}})
        };
        let ready = if *running { "True" } else { "False" };
        let status = json!({"status": {
            "phase": phase,
            "hostIP": cfg.ip,
            "podIP": cfg.ip,
            "podIPs": [{"ip": cfg.ip}],
            "conditions": [
                {"type": "Ready", "status": ready}, {"type": "ContainersReady", "status": ready},
                {"type": "Initialized", "status": "True"}, {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": [{
                "name": container.map(|c| c.name.clone()).unwrap_or_default(),
                "image": container.and_then(|c| c.image.clone()).unwrap_or_default(),
                "imageID": "",
                "ready": *running,
                "started": *running,
                "restartCount": restarts,
                "state": state,
            }],
        }});
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await?;
    }
    Ok(())
}

/// Pod IPs handed out from the node's podCIDR for pods without host networking.
#[derive(Default)]
struct PodIps {
    next: u32,
    given: BTreeMap<String, String>,
}

impl PodIps {
    fn ip_for(&mut self, uid: &str, pod_cidr: Option<&str>, node_ip: &str) -> String {
        if let Some(ip) = self.given.get(uid) {
            return ip.clone();
        }
        let ip = match pod_cidr
            .and_then(|c| c.split('/').next())
            .map(|b| b.rsplitn(2, '.').collect::<Vec<_>>())
        {
            Some(parts) if parts.len() == 2 => {
                self.next = self.next % 250 + 1;
                format!("{}.{}", parts[1], self.next + 1)
            }
            _ => node_ip.to_string(),
        };
        self.given.insert(uid.to_string(), ip.clone());
        ip
    }
}

/// Pods bound to this node through the API: marked Running (nothing runs them but
/// kube-proxy, which the agent runs from the lab's own pod file), or Succeeded for a
/// Job's pods, and deleted for good once the API marked them for deletion.
async fn node_pods(
    c: &kube::Client,
    cfg: &AgentConfig,
    ips: &mut PodIps,
    mirrors: &[String],
) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::all(c.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={}", cfg.node));
    let list = pods.list(&lp).await?;
    let node_cidr = {
        let nodes: Api<Node> = Api::all(c.clone());
        nodes
            .get_opt(&cfg.node)
            .await?
            .and_then(|n| n.spec.and_then(|s| s.pod_cidr))
    };
    for pod in list.items {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let mirror = pod
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
        if pod.metadata.deletion_timestamp.is_some() {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            if let Err(e) = api.delete(&name, &dp).await {
                tracing::debug!("completing deletion of {ns}/{name}: {e}");
            }
            ips.given.remove(&uid);
            continue;
        }
        if mirror {
            // The static pod's manifest left the directory: its mirror pod goes too.
            if !mirrors.contains(&name) {
                let _ = api
                    .delete(
                        &name,
                        &DeleteParams {
                            grace_period_seconds: Some(0),
                            ..Default::default()
                        },
                    )
                    .await;
            }
            continue;
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Running" || phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let ip = if spec.host_network.unwrap_or(false) {
            cfg.ip.clone()
        } else {
            ips.ip_for(&uid, node_cidr.as_deref(), &cfg.ip)
        };
        let stamp = now();
        // A Job's pod runs to completion: nothing runs it here, so it is reported as
        // having exited 0 (kubeadm's upgrade-health-check Job needs that).
        let job = pod
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|r| r.kind == "Job"));
        let state = if job {
            json!({"terminated": {"exitCode": 0, "reason": "Completed",
                   "startedAt": stamp, "finishedAt": stamp}})
        } else {
            json!({"running": {"startedAt": stamp}})
        };
        let statuses: Vec<serde_json::Value> = spec
            .containers
            .iter()
            .map(|ct| {
                json!({
                    "name": ct.name, "image": ct.image.clone().unwrap_or_default(), "imageID": "",
                    "ready": !job, "started": !job, "restartCount": 0,
                    "state": state,
                })
            })
            .collect();
        let (phase, ready) = if job {
            ("Succeeded", "False")
        } else {
            ("Running", "True")
        };
        let status = json!({"status": {
            "phase": phase,
            "hostIP": cfg.ip,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": stamp,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
                {"type": "Ready", "status": ready, "lastTransitionTime": stamp},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": stamp},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            ],
            "containerStatuses": statuses,
        }});
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await
        {
            tracing::debug!("marking {ns}/{name} {phase}: {e}");
        }
    }
    Ok(())
}

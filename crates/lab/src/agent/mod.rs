//! The node agent: the lab's stand-in for the kubelet.
//!
//! There is no container runtime on the lab machine, so the kubelet cannot run. The
//! agent does the parts of the kubelet's job that a control plane needs, and says so
//! wherever it reports itself:
//! - runs each static pod in `/etc/kubernetes/manifests` as a process (the first
//!   container's `command` + `args`, with the binary chosen by image), restarts it when
//!   its manifest changes or it exits, stops it when the manifest leaves the directory;
//! - runs the lab's node pods (kube-proxy) the same way;
//! - on a node `kubeadm join` prepared (`bootstrap-kubelet.conf`, no `kubelet.conf`),
//!   performs the kubelet's TLS bootstrap ([`bootstrap`]): CSR, approval by the
//!   controller-manager, signed certificate in `/var/lib/kubelet/pki`, `kubelet.conf`;
//! - registers the Node (with `kubeletVersion`), renews its Lease in
//!   `kube-node-lease`, creates mirror pods for static pods;
//! - marks pods scheduled to it Running (a Job's pods Succeeded) and completes their
//!   deletion;
//! - on SIGHUP (`systemctl restart kubelet` in a node with packages) reports the
//!   installed kubelet's version, leaving the static pods running;
//! - serves `127.0.0.1:10248/healthz`, and probes the node's local endpoints.

mod api;
pub mod bootstrap;
mod pods;

use std::path::PathBuf;
use std::time::Duration;

use crate::binaries::etcd_binaries;
use crate::spec::{LabState, NodeRole, NodeStatusFile, ProbeResult};
use crate::{Error, Result};

/// Where static pod manifests live inside a node.
pub const MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";
/// Where the lab puts the node pods the agent runs (kube-proxy).
pub const NODE_PODS_DIR: &str = "/var/lib/kubelet/kastellan-pods";

/// What the agent needs to know about its node.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Node name.
    pub node: String,
    /// Node address on the lab network.
    pub ip: String,
    /// Whether it is a control plane.
    pub control_plane: bool,
    /// The Kubernetes version it reports as its kubelet version.
    pub kubelet_version: String,
    /// The etcd binary static pods with an etcd image run.
    pub etcd: PathBuf,
    /// Where process logs go.
    pub log_dir: PathBuf,
}

/// Runs the agent for `node` until SIGTERM or SIGINT; then stops every process it
/// started and returns.
pub async fn run(node: &str) -> Result<()> {
    let state = LabState::load()?.ok_or_else(|| Error::NotUp(LabState::path()))?;
    let ns = state.node(node)?.node.clone();
    let (etcd, _) = etcd_binaries(state.spec.etcd)?;
    let cfg = AgentConfig {
        node: ns.name.clone(),
        ip: ns.ip.clone(),
        control_plane: ns.role == NodeRole::ControlPlane,
        kubelet_version: installed_kubelet_version()
            .unwrap_or_else(|| state.spec.kubernetes_version.clone()),
        etcd,
        log_dir: ns.dir().join("logs"),
    };
    tracing::info!(node, "kastellan lab agent (kubelet stand-in) starting");

    let healthz = tokio::net::TcpListener::bind("127.0.0.1:10248")
        .await
        .map_err(|e| Error::Io {
            action: "binding",
            path: PathBuf::from("127.0.0.1:10248"),
            source: e,
        })?;
    let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move {
        let _ = axum::serve(healthz, app).await;
    });

    let shared = std::sync::Arc::new(tokio::sync::Mutex::new(api::Shared {
        kubelet_version: cfg.kubelet_version.clone(),
        ..Default::default()
    }));
    let api_task = tokio::spawn(api::run(cfg.clone(), shared.clone()));

    let mut sup = pods::Supervisor::new(cfg.clone());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Io {
            action: "installing a signal handler",
            path: PathBuf::from("SIGTERM"),
            source: e,
        })?;
    let mut hup =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(|e| {
            Error::Io {
                action: "installing a signal handler",
                path: PathBuf::from("SIGHUP"),
                source: e,
            }
        })?;
    let http = probe_client();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hup.recv() => {
                // `systemctl restart kubelet` in a lab node: a restarted kubelet runs the
                // installed version and leaves the static pods running.
                let version = installed_kubelet_version()
                    .unwrap_or_else(|| cfg.kubelet_version.clone());
                tracing::info!("restart requested: kubelet version {version}");
                let mut s = shared.lock().await;
                s.kubelet_version = version;
                s.registered = false;
            }
        }
        sup.reconcile().await;
        let probes = probe_all(&http, &cfg).await;
        let registered = {
            let mut s = shared.lock().await;
            s.static_pods = sup.static_pods();
            s.registered
        };
        let status = NodeStatusFile {
            node: cfg.node.clone(),
            agent_pid: std::process::id(),
            updated: jiff::Timestamp::now().to_string(),
            registered,
            pods: sup.report(),
            probes,
        };
        if let Err(e) = status.save() {
            tracing::warn!("writing status: {e}");
        }
    }
    tracing::info!("stopping: terminating every process this agent started");
    api_task.abort();
    sup.stop_all().await;
    let _ = std::fs::remove_file(NodeStatusFile::path(&cfg.node));
    Ok(())
}

/// The version of the node's installed kubelet (`/usr/bin/kubelet --version`, which
/// the lab's kubelet package provides), if one is installed.
fn installed_kubelet_version() -> Option<String> {
    let out = std::process::Command::new("/usr/bin/kubelet")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.trim().strip_prefix("Kubernetes ")?;
    (out.status.success() && v.starts_with('v')).then(|| v.to_string())
}

fn probe_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap_or_default()
}

/// The local endpoints of a node: (component, URL).
pub fn endpoints(control_plane: bool) -> Vec<(&'static str, &'static str)> {
    let mut v = Vec::new();
    if control_plane {
        v.push(("kube-apiserver", "https://127.0.0.1:6443/readyz"));
        v.push(("etcd", "http://127.0.0.1:2381/health"));
        v.push(("kube-controller-manager", "https://127.0.0.1:10257/healthz"));
        v.push(("kube-scheduler", "https://127.0.0.1:10259/healthz"));
    }
    v.push(("kubelet", "http://127.0.0.1:10248/healthz"));
    v.push(("kube-proxy", "http://127.0.0.1:10249/healthz"));
    v.push(("kube-proxy", "http://127.0.0.1:10256/healthz"));
    v
}

async fn probe_all(http: &reqwest::Client, cfg: &AgentConfig) -> Vec<ProbeResult> {
    let futs = endpoints(cfg.control_plane)
        .into_iter()
        .map(|(component, url)| {
            let http = http.clone();
            async move {
                let (ok, detail) = match http.get(url).send().await {
                    Ok(r) => {
                        let code = r.status();
                        let body = r.text().await.unwrap_or_default();
                        let body: String = body.chars().take(200).collect();
                        (
                            code.is_success(),
                            format!("{} {}", code.as_u16(), body.trim()),
                        )
                    }
                    Err(e) => (false, e.to_string()),
                };
                ProbeResult {
                    component: component.to_string(),
                    url: url.to_string(),
                    ok,
                    detail,
                }
            }
        });
    let mut out = Vec::new();
    for f in futs {
        out.push(f.await);
    }
    out
}

//! Running pods as processes: the part of the kubelet that watches the static pod
//! directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use sha2::{Digest, Sha256};

use super::{AgentConfig, MANIFESTS_DIR, NODE_PODS_DIR};
use crate::binaries::binary_for_image;
use crate::spec::PodProcess;

/// A pod definition read from a file.
#[derive(Debug, Clone)]
pub struct PodFile {
    /// Where it came from: `static` or `node`.
    pub source: &'static str,
    /// Its file.
    pub path: PathBuf,
    /// sha256 of the file (changes restart the process).
    pub hash: String,
    /// The parsed pod.
    pub pod: Pod,
}

impl PodFile {
    /// Pod name from metadata (file stem when absent).
    pub fn name(&self) -> String {
        self.pod.metadata.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
    }
}

struct Running {
    file: PodFile,
    binary: PathBuf,
    child: Option<tokio::process::Child>,
    pid: Option<u32>,
    starts: u32,
    last_exit: Option<String>,
    next_start: Instant,
    error: Option<String>,
}

/// Keeps the processes in line with the pod files.
pub struct Supervisor {
    cfg: AgentConfig,
    running: BTreeMap<PathBuf, Running>,
}

/// Reads every `*.yaml`/`*.yml`/`*.json` pod file of a directory. Files that do not
/// parse are logged and skipped, as the kubelet does.
pub fn read_dir(dir: &Path, source: &'static str) -> Vec<PodFile> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.')
            || !(name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json"))
        {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        match serde_saphyr::from_str::<Pod>(&text) {
            Ok(pod) => out.push(PodFile {
                source,
                path,
                hash: hex::encode(Sha256::digest(&bytes)),
                pod,
            }),
            Err(e) => tracing::warn!("{}: not a pod manifest: {e}", path.display()),
        }
    }
    out
}

impl Supervisor {
    /// A supervisor with nothing running yet.
    pub fn new(cfg: AgentConfig) -> Self {
        Supervisor {
            cfg,
            running: BTreeMap::new(),
        }
    }

    /// One pass: start what is new or changed, restart what exited, stop what left.
    pub async fn reconcile(&mut self) {
        let mut desired = read_dir(Path::new(MANIFESTS_DIR), "static");
        desired.extend(read_dir(Path::new(NODE_PODS_DIR), "node"));
        let wanted: BTreeMap<PathBuf, PodFile> =
            desired.into_iter().map(|f| (f.path.clone(), f)).collect();

        let gone: Vec<PathBuf> = self
            .running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(mut r) = self.running.remove(&k) {
                tracing::info!("{}: manifest removed, stopping", r.file.name());
                stop(&mut r).await;
            }
        }
        for (path, file) in wanted {
            let changed = self
                .running
                .get(&path)
                .is_some_and(|r| r.file.hash != file.hash);
            if changed && let Some(mut r) = self.running.remove(&path) {
                tracing::info!("{}: manifest changed, restarting", r.file.name());
                stop(&mut r).await;
            }
            let entry = self.running.entry(path).or_insert_with(|| Running {
                binary: PathBuf::new(),
                file,
                child: None,
                pid: None,
                starts: 0,
                last_exit: None,
                next_start: Instant::now(),
                error: None,
            });
            if let Some(child) = entry.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                {
                    tracing::warn!("{} exited: {status}", entry.file.name());
                    entry.last_exit = Some(status.to_string());
                    entry.child = None;
                    entry.pid = None;
                    let backoff = Duration::from_secs(1u64 << entry.starts.min(3));
                    entry.next_start = Instant::now() + backoff;
                }
            }
            if entry.child.is_none() && Instant::now() >= entry.next_start {
                start(&self.cfg, entry);
            }
        }
    }

    /// The static pods, for mirror pods: (pod file, running?).
    pub fn static_pods(&self) -> Vec<(PodFile, bool, u32)> {
        self.running
            .values()
            .filter(|r| r.file.source == "static")
            .map(|r| {
                (
                    r.file.clone(),
                    r.child.is_some(),
                    r.starts.saturating_sub(1),
                )
            })
            .collect()
    }

    /// What runs, for the status file.
    pub fn report(&self) -> Vec<PodProcess> {
        self.running
            .values()
            .map(|r| PodProcess {
                name: r.file.name(),
                source: r.file.source.to_string(),
                binary: r.binary.to_string_lossy().into_owned(),
                pid: r.pid,
                starts: r.starts,
                last_exit: r.error.clone().or_else(|| r.last_exit.clone()),
            })
            .collect()
    }

    /// Stops every process (SIGTERM, then SIGKILL after a grace period).
    pub async fn stop_all(&mut self) {
        let all: Vec<Running> = std::mem::take(&mut self.running).into_values().collect();
        let stops = all
            .into_iter()
            .map(|mut r| async move { stop(&mut r).await });
        futures_join_all(stops).await;
    }
}

fn start(cfg: &AgentConfig, r: &mut Running) {
    let name = r.file.name();
    let Some(container) = r.file.pod.spec.as_ref().and_then(|s| s.containers.first()) else {
        r.error = Some("pod has no container".into());
        return;
    };
    let image = container.image.clone().unwrap_or_default();
    let binary = match binary_for_image(&image, &cfg.etcd) {
        Ok(b) => b,
        Err(e) => {
            r.error = Some(e.to_string());
            r.next_start = Instant::now() + Duration::from_secs(5);
            return;
        }
    };
    let mut argv: Vec<String> = container.command.clone().unwrap_or_default();
    argv.extend(container.args.clone().unwrap_or_default());
    if argv.is_empty() {
        r.error = Some(format!("container of {name} has no command"));
        return;
    }
    let log = cfg.log_dir.join(format!("{name}.log"));
    let (out, err) = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
    {
        Ok(f) => match f.try_clone() {
            Ok(g) => (Stdio::from(f), Stdio::from(g)),
            Err(_) => (Stdio::null(), Stdio::null()),
        },
        Err(_) => (Stdio::null(), Stdio::null()),
    };
    let mut cmd = tokio::process::Command::new(&binary);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    for e in container.env.clone().unwrap_or_default() {
        if let Some(v) = e.value {
            cmd.env(e.name, v);
        }
    }
    r.starts += 1;
    r.binary = binary.clone();
    match cmd.spawn() {
        Ok(child) => {
            r.pid = child.id();
            r.child = Some(child);
            r.error = None;
            tracing::info!("{name}: started {} (pid {:?})", binary.display(), r.pid);
        }
        Err(e) => {
            r.error = Some(format!("starting {}: {e}", binary.display()));
            r.next_start = Instant::now() + Duration::from_secs(5);
        }
    }
}

async fn stop(r: &mut Running) {
    let Some(mut child) = r.child.take() else {
        return;
    };
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            r.pid = None;
            return;
        }
    }
    let _ = child.kill().await;
    r.pid = None;
}

/// Runs futures concurrently and waits for all of them.
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futs: impl IntoIterator<Item = F>,
) {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}

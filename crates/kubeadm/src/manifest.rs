//! The static pod manifests of a kubeadm node, read as Pods.
//!
//! kubeadm writes one manifest per control-plane component into
//! `/etc/kubernetes/manifests`; the kubelet runs what is there. [`StaticPod`] parses a
//! manifest with the Kubernetes `Pod` type (not by scanning lines), [`Flags`] reads a
//! container's command line with the rules of the components' flag parsers, and
//! [`Manifests`] reads the whole directory once.
//!
//! Rewriting stays line-exact ([`rewrite_etcd_data_dir`]): an operator's manifest keeps
//! every byte but the lines that must change.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// kubeadm's directory of static pod manifests.
pub const DEFAULT_MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";

/// A control-plane component that kubeadm runs as a static pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// etcd (static pod `etcd.yaml`).
    Etcd,
    /// kube-apiserver.
    KubeApiserver,
    /// kube-controller-manager.
    KubeControllerManager,
    /// kube-scheduler.
    KubeScheduler,
}

impl Component {
    /// Every component, etcd first.
    pub const ALL: [Component; 4] = [
        Component::Etcd,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
    ];

    /// The control plane without etcd, in the order kubeadm starts them.
    pub const CONTROL_PLANE: [Component; 3] = [
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
    ];

    /// The component's name, which is also its container's and its manifest's base name.
    pub const fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
        }
    }

    /// The static pod manifest's file name, e.g. `kube-apiserver.yaml`.
    pub const fn manifest(self) -> &'static str {
        match self {
            Component::Etcd => "etcd.yaml",
            Component::KubeApiserver => "kube-apiserver.yaml",
            Component::KubeControllerManager => "kube-controller-manager.yaml",
            Component::KubeScheduler => "kube-scheduler.yaml",
        }
    }

    /// The component whose manifest is called `file` (`etcd.yaml`, ...).
    pub fn from_manifest(file: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.manifest() == file)
    }

    /// The secure port it serves when its manifest does not set `--secure-port`
    /// (etcd: its client port).
    pub const fn default_port(self) -> u16 {
        match self {
            Component::Etcd => 2379,
            Component::KubeApiserver => 6443,
            Component::KubeControllerManager => 10257,
            Component::KubeScheduler => 10259,
        }
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A command line read with the rules of Go's `flag` and `pflag` packages, which every
/// control-plane component uses: `--name=value`, `-name=value`, `--name value`; the
/// last occurrence wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags(pub Vec<String>);

impl Flags {
    /// The value of flag `name` (without dashes): the last occurrence's.
    pub fn get(&self, name: &str) -> Option<&str> {
        let mut found = None;
        let mut it = self.0.iter().peekable();
        while let Some(a) = it.next() {
            let Some(body) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
                continue;
            };
            if let Some(v) = body.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                found = Some(v);
            } else if body == name {
                match it.peek() {
                    Some(v) if !v.starts_with('-') => {
                        found = it.next().map(String::as_str);
                    }
                    // A boolean flag given without a value.
                    _ => found = Some("true"),
                }
            }
        }
        found
    }

    /// Whether flag `name` is given at all.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The value of `name` parsed as a port.
    pub fn port(&self, name: &str) -> Option<u16> {
        self.get(name).and_then(|v| v.trim().parse().ok())
    }

    /// The URLs of a comma-separated flag (`--listen-client-urls`), empty ones dropped.
    pub fn urls(&self, name: &str) -> Vec<&str> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The whole command line.
    pub fn args(&self) -> &[String] {
        &self.0
    }
}

/// The port of the first URL in `urls` on 127.0.0.1 or localhost (else of the first
/// URL at all).
pub fn local_port(urls: &[&str]) -> Option<u16> {
    let ports: Vec<(bool, u16)> = urls
        .iter()
        .filter_map(|u| {
            let rest = u.split("://").nth(1)?;
            let hostport = rest.split('/').next()?;
            let (host, port) = hostport.rsplit_once(':')?;
            Some((
                host == "127.0.0.1" || host == "localhost" || host == "[::1]",
                port.parse().ok()?,
            ))
        })
        .collect();
    ports
        .iter()
        .find(|(local, _)| *local)
        .or(ports.first())
        .map(|(_, p)| *p)
}

/// One static pod manifest: its file, its text, the Pod it declares.
#[derive(Debug, Clone)]
pub struct StaticPod {
    /// The file it was read from.
    pub path: PathBuf,
    /// The text as it is on disk (for line-exact rewrites).
    pub text: String,
    /// The parsed Pod.
    pub pod: Pod,
}

impl StaticPod {
    /// Parses `text`, read from `path`.
    pub fn parse(path: &Path, text: String) -> Result<StaticPod> {
        let pod: Pod = serde_saphyr::from_str(&text).map_err(|e| Error::Manifest {
            path: path.to_path_buf(),
            detail: format!("not a Pod: {e}"),
        })?;
        let sp = StaticPod {
            path: path.to_path_buf(),
            text,
            pod,
        };
        if sp.containers().is_empty() {
            return Err(sp.error("declares no container"));
        }
        Ok(sp)
    }

    /// Reads and parses `path`; `None` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<StaticPod>> {
        match std::fs::read_to_string(path) {
            Ok(text) => StaticPod::parse(path, text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    fn containers(&self) -> &[Container] {
        self.pod
            .spec
            .as_ref()
            .map_or(&[], |s| s.containers.as_slice())
    }

    fn error(&self, detail: impl Into<String>) -> Error {
        Error::Manifest {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    /// The container called `name`, or the only container whatever its name (some
    /// distributions rename it).
    pub fn container(&self, name: &str) -> Result<&Container> {
        let all = self.containers();
        all.iter()
            .find(|c| c.name == name)
            .or(if all.len() == 1 { all.first() } else { None })
            .ok_or_else(|| self.error(format!("no container named {name}")))
    }

    /// The command and arguments of container `name` as [`Flags`].
    pub fn flags(&self, name: &str) -> Result<Flags> {
        let c = self.container(name)?;
        let mut all = c.command.clone().unwrap_or_default();
        all.extend(c.args.clone().unwrap_or_default());
        Ok(Flags(all))
    }

    /// The image of container `name`.
    pub fn image(&self, name: &str) -> Option<&str> {
        self.container(name).ok()?.image.as_deref()
    }

    /// The host path of the volume called `volume`.
    pub fn host_path(&self, volume: &str) -> Option<&str> {
        self.pod
            .spec
            .as_ref()?
            .volumes
            .as_ref()?
            .iter()
            .find(|v| v.name == volume)?
            .host_path
            .as_ref()
            .map(|h| h.path.as_str())
    }

    /// The annotation `key` of the pod.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.pod
            .metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }
}

/// The manifests of one node, read once.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// The directory.
    pub dir: PathBuf,
    /// `etcd.yaml`.
    pub etcd: Option<StaticPod>,
    /// `kube-apiserver.yaml`.
    pub apiserver: Option<StaticPod>,
    /// `kube-controller-manager.yaml`.
    pub controller_manager: Option<StaticPod>,
    /// `kube-scheduler.yaml`.
    pub scheduler: Option<StaticPod>,
}

impl Manifests {
    /// Reads every component's manifest in `dir` (a missing one is `None`, an
    /// unreadable or malformed one an error naming the file).
    pub fn read(dir: &Path) -> Result<Manifests> {
        let read = |c: Component| StaticPod::read(&dir.join(c.manifest()));
        Ok(Manifests {
            dir: dir.to_path_buf(),
            etcd: read(Component::Etcd)?,
            apiserver: read(Component::KubeApiserver)?,
            controller_manager: read(Component::KubeControllerManager)?,
            scheduler: read(Component::KubeScheduler)?,
        })
    }

    /// The manifest of `c`.
    pub fn get(&self, c: Component) -> Option<&StaticPod> {
        match c {
            Component::Etcd => self.etcd.as_ref(),
            Component::KubeApiserver => self.apiserver.as_ref(),
            Component::KubeControllerManager => self.controller_manager.as_ref(),
            Component::KubeScheduler => self.scheduler.as_ref(),
        }
    }

    /// The flags of `c`'s container (`None`: no manifest).
    pub fn flags(&self, c: Component) -> Result<Option<Flags>> {
        self.get(c).map(|m| m.flags(c.name())).transpose()
    }

    /// The path of `c`'s manifest in this directory.
    pub fn path(&self, c: Component) -> PathBuf {
        self.dir.join(c.manifest())
    }

    /// The components that have a manifest here.
    pub fn present(&self) -> Vec<Component> {
        Component::ALL
            .into_iter()
            .filter(|c| self.get(*c).is_some())
            .collect()
    }

    /// The port `c` serves on this node: its `--secure-port` (etcd: the local
    /// `--listen-client-urls` port), else its default. `None` without a manifest.
    pub fn port(&self, c: Component) -> Result<Option<u16>> {
        Ok(self.flags(c)?.map(|flags| component_port(c, &flags)))
    }
}

/// The port `c` serves on its node given its flags: `--secure-port` (etcd: the local
/// `--listen-client-urls` port), else its default.
pub fn component_port(c: Component, flags: &Flags) -> u16 {
    match c {
        Component::Etcd => local_port(&flags.urls("listen-client-urls")),
        _ => flags.port("secure-port"),
    }
    .unwrap_or(c.default_port())
}

/// Rewrites etcd's manifest for a new data dir: the `--data-dir` flag, the `etcd-data`
/// hostPath and its mountPath (lines `path: <old>` / `mountPath: <old>`), every other
/// byte as it was. Returns the new text and the changed lines (`old -> new`).
pub fn rewrite_etcd_data_dir(
    text: &str,
    old: &Path,
    new: &Path,
) -> std::result::Result<(String, Vec<String>), String> {
    let old = old.display().to_string();
    let new = new.display().to_string();
    let mut out = String::with_capacity(text.len() + 64);
    let mut changes = Vec::new();
    let (mut flag, mut host_path) = (0, 0);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let indent_len = body.len() - body.trim_start().len();
        let (indent, rest) = body.split_at(indent_len);
        let replaced = if let Some(v) = rest.strip_prefix("- --data-dir=") {
            (v == old).then(|| {
                flag += 1;
                format!("{indent}- --data-dir={new}")
            })
        } else if let Some(v) = rest.strip_prefix("path: ") {
            (v.trim_end() == old).then(|| {
                host_path += 1;
                format!("{indent}path: {new}")
            })
        } else if let Some(v) = rest.strip_prefix("- mountPath: ") {
            (v.trim_end() == old).then(|| format!("{indent}- mountPath: {new}"))
        } else if let Some(v) = rest.strip_prefix("mountPath: ") {
            (v.trim_end() == old).then(|| format!("{indent}mountPath: {new}"))
        } else {
            None
        };
        match replaced {
            Some(r) => {
                changes.push(format!("{} -> {}", body.trim(), r.trim()));
                out.push_str(&r);
                out.push_str(ending);
            }
            None => out.push_str(line),
        }
    }
    if flag != 1 {
        return Err(format!(
            "expected exactly one `- --data-dir={old}` line, found {flag}"
        ));
    }
    if host_path != 1 {
        return Err(format!(
            "expected exactly one hostPath `path: {old}` (the etcd-data volume), found {host_path}"
        ));
    }
    Ok((out, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As kubeadm v1.20 writes it (with its `creationTimestamp: null` and `status: {}`).
    pub(crate) const ETCD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://10.77.0.11:2379
  creationTimestamp: null
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.77.0.11:2379
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --listen-client-urls=https://127.0.0.1:2379,https://10.77.0.11:2379
    - --listen-metrics-urls=http://127.0.0.1:2381
    - --name=cp1
    image: k8s.gcr.io/etcd:3.4.13-0
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: 127.0.0.1
        path: /health
        port: 2381
        scheme: HTTP
    name: etcd
    resources:
      requests:
        cpu: 100m
        memory: 100Mi
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
  hostNetwork: true
  priorityClassName: system-node-critical
  volumes:
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
status: {}
"#;

    #[test]
    fn a_kubeadm_manifest_parses_as_a_pod() {
        let m = StaticPod::parse(Path::new("/m/etcd.yaml"), ETCD.into()).unwrap();
        let f = m.flags("etcd").unwrap();
        assert_eq!(f.get("name"), Some("cp1"));
        assert_eq!(f.get("client-cert-auth"), Some("true"));
        assert_eq!(local_port(&f.urls("listen-client-urls")), Some(2379));
        assert_eq!(m.image("etcd"), Some("k8s.gcr.io/etcd:3.4.13-0"));
        assert_eq!(m.host_path("etcd-data"), Some("/var/lib/etcd"));
        assert_eq!(
            m.annotation("kubeadm.kubernetes.io/etcd.advertise-client-urls"),
            Some("https://10.77.0.11:2379")
        );
    }

    #[test]
    fn flags_follow_gos_rules() {
        let f = Flags(
            [
                "kube-apiserver",
                "--secure-port=6443",
                "-v=2",
                "--etcd-keyfile",
                "/k.key",
                "--allow-privileged",
                "--secure-port=7443",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(f.port("secure-port"), Some(7443), "the last one wins");
        assert_eq!(f.get("v"), Some("2"));
        assert_eq!(f.get("etcd-keyfile"), Some("/k.key"));
        assert_eq!(f.get("allow-privileged"), Some("true"));
        assert_eq!(f.get("etcd"), None, "a prefix is not a flag");
        assert!(!f.has("kube-apiserver"));
    }

    #[test]
    fn bad_manifests_name_the_file() {
        for text in ["kind: Pod\n", "spec:\n  containers: []\n", "- a\n- b\n"] {
            let err = StaticPod::parse(Path::new("/m/x.yaml"), text.into()).unwrap_err();
            assert!(err.to_string().starts_with("/m/x.yaml: "), "{err}");
        }
        let two = ETCD.replace(
            "  hostNetwork: true",
            "  - name: sidecar\n    image: x\n  hostNetwork: true",
        );
        let m = StaticPod::parse(Path::new("/m/etcd.yaml"), two).unwrap();
        assert!(m.container("etcd").is_ok());
        assert!(m.container("other").is_err());
    }

    #[test]
    fn the_directory_is_read_once_with_ports() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("etcd.yaml"), ETCD).unwrap();
        std::fs::write(
            dir.path().join("kube-scheduler.yaml"),
            "spec:\n  containers:\n  - name: kube-scheduler\n    command: [kube-scheduler, --secure-port=10269]\n",
        )
        .unwrap();
        let m = Manifests::read(dir.path()).unwrap();
        assert_eq!(m.present(), [Component::Etcd, Component::KubeScheduler]);
        assert_eq!(m.port(Component::KubeScheduler).unwrap(), Some(10269));
        assert_eq!(m.port(Component::Etcd).unwrap(), Some(2379));
        assert_eq!(m.port(Component::KubeApiserver).unwrap(), None);
        std::fs::write(dir.path().join("kube-apiserver.yaml"), "{").unwrap();
        let err = Manifests::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("kube-apiserver.yaml"), "{err}");
    }

    #[test]
    fn rewrite_changes_only_the_data_dir_lines() {
        let (out, changes) =
            rewrite_etcd_data_dir(ETCD, Path::new("/var/lib/etcd"), Path::new("/var/lib/new"))
                .unwrap();
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert_eq!(out.lines().count(), ETCD.lines().count());
        let diff: Vec<_> = ETCD
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(
            diff,
            [
                "    - --data-dir=/var/lib/new",
                "    - mountPath: /var/lib/new",
                "      path: /var/lib/new",
            ]
        );
        assert!(out.ends_with("status: {}\n"));
        let crlf = ETCD.replace('\n', "\r\n");
        let (out, _) =
            rewrite_etcd_data_dir(&crlf, Path::new("/var/lib/etcd"), Path::new("/n")).unwrap();
        assert!(out.contains("- --data-dir=/n\r\n"));
        let no_host = ETCD.replace("      path: /var/lib/etcd\n", "");
        assert!(
            rewrite_etcd_data_dir(&no_host, Path::new("/var/lib/etcd"), Path::new("/n")).is_err()
        );
    }
}

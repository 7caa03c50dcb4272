//! What a node is like, as the checks need it: plain, serialisable data (`kastellan
//! preflight --facts -o json` prints it; other nodes' facts come back as peers), and
//! the pure parsers that turn the node's files and `ip -j` output into it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;

/// Everything the checks look at, read from one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Facts {
    /// The node's hostname, product_uuid and MAC addresses.
    pub identity: Identity,
    /// The name of PID 1 (`/proc/1/comm`), e.g. `systemd`.
    pub init: Option<String>,
    /// Which cgroup hierarchy `/sys/fs/cgroup` holds.
    pub cgroup: CgroupVersion,
    /// containerd's configuration, when a file or socket says it is installed.
    pub containerd: Option<RuntimeConfig>,
    /// CRI-O's configuration, when a file or socket says it is installed.
    pub crio: Option<RuntimeConfig>,
    /// The kubelet's configuration file, when there is one.
    pub kubelet: Option<KubeletConfig>,
    /// Active swap areas (`/proc/swaps`).
    pub swaps: Vec<Swap>,
    /// Listening TCP sockets (`/proc/net/tcp` and `tcp6`).
    pub listeners: Vec<Listener>,
    /// Files every Linux node has that could not be read (`/proc/swaps`,
    /// `/proc/net/tcp`): what they would tell is unknown, not absent.
    pub unreadable: Vec<String>,
    /// Network interfaces with their addresses.
    pub interfaces: Vec<Interface>,
    /// Routes of the main table.
    pub routes: Vec<Route>,
    /// Whether the network could be read (`None`) or why not.
    pub network_error: Option<String>,
    /// The kernel modules asked about and whether each is loaded.
    pub modules: Vec<Module>,
    /// The sysctls asked about and their values (`None`: no such file).
    pub sysctls: Vec<Sysctl>,
    /// CRI sockets found (of the known paths).
    pub sockets: Vec<CriSocket>,
    /// kubeadm, kubelet and kubectl on the search path.
    pub binaries: Vec<Binary>,
    /// The Kubernetes packages in dpkg's status (`None`: no dpkg status file).
    pub packages: Option<Vec<Package>>,
    /// Time synchronisation.
    pub time_sync: TimeSync,
    /// Files kubeadm writes that already exist (a node that was set up before).
    pub kubeadm_files: Vec<String>,
}

/// What tells nodes apart: kubeadm requires each to be unique in a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Identity {
    /// The hostname (the kubelet's default node name).
    pub hostname: Option<String>,
    /// `/sys/class/dmi/id/product_uuid`, lowercased.
    pub product_uuid: Option<String>,
    /// MAC addresses of the non-loopback interfaces.
    pub macs: Vec<String>,
}

/// The cgroup hierarchy mounted at `/sys/fs/cgroup`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CgroupVersion {
    /// The unified hierarchy (`cgroup.controllers` exists).
    V2,
    /// The legacy (or hybrid) hierarchy.
    V1,
    /// No `/sys/fs/cgroup`.
    #[default]
    Unknown,
}

/// A cgroup driver: who creates the pods' cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CgroupDriver {
    /// systemd creates them (as slices and scopes).
    Systemd,
    /// The runtime or kubelet writes to the cgroup filesystem itself.
    Cgroupfs,
}

impl CgroupDriver {
    /// `systemd` or `cgroupfs`.
    pub fn name(self) -> &'static str {
        match self {
            CgroupDriver::Systemd => "systemd",
            CgroupDriver::Cgroupfs => "cgroupfs",
        }
    }

    fn parse(s: &str) -> Option<CgroupDriver> {
        match s.trim() {
            "systemd" => Some(CgroupDriver::Systemd),
            "cgroupfs" => Some(CgroupDriver::Cgroupfs),
            _ => None,
        }
    }
}

/// A container runtime's configured cgroup driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// The files read, in order (empty: none exists, the runtime's defaults apply).
    pub files: Vec<String>,
    /// The driver they configure (the runtime's default when none sets it).
    pub driver: CgroupDriver,
    /// The setting that says so (`SystemdCgroup = true` in FILE), or the default.
    pub setting: String,
    /// Why the configuration is unusable for Kubernetes (e.g. the CRI plugin disabled),
    /// or why it could not be read.
    pub problem: Option<String>,
}

/// The kubelet's configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletConfig {
    /// The file.
    pub file: String,
    /// `cgroupDriver` (`None`: not set; the kubelet's default is cgroupfs).
    pub cgroup_driver: Option<String>,
    /// `failSwapOn` (`None`: not set; the default is true).
    pub fail_swap_on: Option<bool>,
    /// `memorySwap.swapBehavior`.
    pub swap_behavior: Option<String>,
    /// Why the file could not be read.
    pub problem: Option<String>,
}

/// One active swap area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Swap {
    /// The file or partition.
    pub name: String,
    /// `file` or `partition`.
    pub kind: String,
    /// Its size in KiB.
    pub size_kib: u64,
}

/// A listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// The local address.
    pub addr: IpAddr,
    /// The port.
    pub port: u16,
    /// The socket's inode (to find its process).
    pub inode: u64,
    /// The process holding it, where it could be found.
    pub process: Option<Process>,
}

/// A process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// Its pid.
    pub pid: u32,
    /// Its name (`/proc/PID/comm`).
    pub name: String,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC address (when it has one).
    pub mac: Option<String>,
    /// Whether it is a loopback interface.
    pub loopback: bool,
    /// Its addresses, in the kernel's order (primary first).
    pub addrs: Vec<InterfaceAddr>,
}

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceAddr {
    /// The address with its prefix (`192.168.1.5/24`).
    pub cidr: Cidr,
    /// Its scope: `global`, `link`, `host`.
    pub scope: String,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Its destination (`None`: the default route).
    pub dst: Option<Cidr>,
    /// Its interface.
    pub dev: Option<String>,
    /// Its gateway.
    pub gateway: Option<IpAddr>,
    /// Its metric (0 when not given).
    pub metric: u32,
    /// Whether it is an IPv6 route.
    pub ipv6: bool,
}

/// A kernel module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Module {
    /// Its name.
    pub name: String,
    /// Whether it is loaded (or built in).
    pub loaded: bool,
}

/// A sysctl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sysctl {
    /// Its dotted name.
    pub name: String,
    /// Its value (`None`: no such file).
    pub value: Option<String>,
}

/// A CRI socket found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CriSocket {
    /// The runtime it belongs to.
    pub runtime: String,
    /// Its path.
    pub path: String,
    /// Whether it is a socket (not some other file).
    pub is_socket: bool,
}

/// A binary kubeadm needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binary {
    /// `kubeadm`, `kubelet` or `kubectl`.
    pub name: String,
    /// Where it was found (`None`: not on the search path).
    pub path: Option<String>,
    /// The version it reports.
    pub version: Option<String>,
    /// Why its version is unknown.
    pub problem: Option<String>,
}

/// A Kubernetes package in dpkg's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Whether it is held (`apt-mark hold`).
    pub held: bool,
}

/// Time synchronisation as far as it can be told.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TimeSync {
    /// `timedatectl`'s NTPSynchronized (`None`: not asked or no answer).
    pub synchronized: Option<bool>,
    /// Time daemons installed (chrony, systemd-timesyncd, ntpd).
    pub daemons: Vec<String>,
}

/// Parses `/proc/swaps`: every area after the header line.
pub fn parse_swaps(text: &str) -> Vec<Swap> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(Swap {
                name: f.first()?.replace("\\040", " "),
                kind: f.get(1)?.to_string(),
                size_kib: f.get(2)?.parse().ok()?,
            })
        })
        .collect()
}

/// Parses `/proc/net/tcp` or `/proc/net/tcp6`: the sockets in state LISTEN (`0A`).
pub fn parse_proc_net_tcp(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if *f.get(3)? != "0A" {
                return None;
            }
            let (addr, port) = f.get(1)?.split_once(':')?;
            Some(Listener {
                addr: hex_addr(addr)?,
                port: u16::from_str_radix(port, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
                process: None,
            })
        })
        .collect()
}

/// A `/proc/net/tcp` address: 8 hex digits (IPv4) or 32 (IPv6), each 32-bit word in
/// the host's byte order (little-endian on the machines kubeadm runs on).
fn hex_addr(s: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..s.len() / 8)
        .map(|i| u32::from_str_radix(s.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .collect::<Vec<u8>>();
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Reads containerd's `config.toml`: the runc runtime's `SystemdCgroup` (containerd 1.x
/// `io.containerd.grpc.v1.cri`, 2.x `io.containerd.cri.v1.runtime`) and whether the
/// CRI plugin is disabled. `file` names it in the evidence.
pub fn parse_containerd(file: &str, text: &str) -> RuntimeConfig {
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            return RuntimeConfig {
                files: vec![file.to_string()],
                driver: CgroupDriver::Cgroupfs,
                setting: "unreadable".into(),
                problem: Some(format!("{file} is not valid TOML: {}", first_line(&e))),
            };
        }
    };
    let disabled: Vec<String> = table
        .get("disabled_plugins")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .filter(|p| matches!(*p, "cri" | "io.containerd.grpc.v1.cri"))
        .map(str::to_string)
        .collect();
    let plugins = table.get("plugins").and_then(|p| p.as_table());
    let mut found = None;
    for plugin in ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime"] {
        let value = plugins
            .and_then(|p| p.get(plugin))
            .and_then(|v| v.get("containerd"))
            .and_then(|v| v.get("runtimes"))
            .and_then(|v| v.get("runc"))
            .and_then(|v| v.get("options"))
            .and_then(|v| v.get("SystemdCgroup"))
            .and_then(|v| v.as_bool());
        if let Some(v) = value {
            found = Some((plugin, v));
        }
    }
    let (driver, setting) = match found {
        Some((plugin, v)) => (
            if v {
                CgroupDriver::Systemd
            } else {
                CgroupDriver::Cgroupfs
            },
            format!("SystemdCgroup = {v} ([plugins.\"{plugin}\"...runc.options] in {file})"),
        ),
        None => (
            CgroupDriver::Cgroupfs,
            format!("SystemdCgroup not set in {file} (containerd's default: cgroupfs)"),
        ),
    };
    RuntimeConfig {
        files: vec![file.to_string()],
        driver,
        setting,
        problem: (!disabled.is_empty()).then(|| {
            format!(
                "{file} disables the CRI plugin (disabled_plugins = {disabled:?}): the kubelet cannot use containerd"
            )
        }),
    }
}

/// Reads CRI-O's `crio.conf` and its drop-ins in order (later ones win):
/// `[crio.runtime] cgroup_manager`. CRI-O's default is systemd.
pub fn parse_crio(files: &[(String, String)]) -> RuntimeConfig {
    let mut driver = CgroupDriver::Systemd;
    let mut setting = "cgroup_manager not set (CRI-O's default: systemd)".to_string();
    let mut problem = None;
    for (file, text) in files {
        match text.parse::<toml::Table>() {
            Ok(t) => {
                if let Some(m) = t
                    .get("crio")
                    .and_then(|v| v.get("runtime"))
                    .and_then(|v| v.get("cgroup_manager"))
                    .and_then(|v| v.as_str())
                {
                    match CgroupDriver::parse(m) {
                        Some(d) => {
                            driver = d;
                            setting = format!("cgroup_manager = \"{m}\" in {file}");
                        }
                        None => problem = Some(format!("{file}: unknown cgroup_manager {m:?}")),
                    }
                }
            }
            Err(e) => problem = Some(format!("{file} is not valid TOML: {}", first_line(&e))),
        }
    }
    RuntimeConfig {
        files: files.iter().map(|(f, _)| f.clone()).collect(),
        driver,
        setting,
        problem,
    }
}

fn first_line(e: &impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// Reads the kubelet's `config.yaml` (a KubeletConfiguration).
pub fn parse_kubelet_config(file: &str, text: &str) -> KubeletConfig {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Doc {
        cgroup_driver: Option<String>,
        fail_swap_on: Option<bool>,
        memory_swap: Option<MemorySwap>,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct MemorySwap {
        swap_behavior: Option<String>,
    }
    match serde_saphyr::from_str::<Doc>(text) {
        Ok(d) => KubeletConfig {
            file: file.to_string(),
            cgroup_driver: d.cgroup_driver,
            fail_swap_on: d.fail_swap_on,
            swap_behavior: d.memory_swap.and_then(|m| m.swap_behavior),
            problem: None,
        },
        Err(e) => KubeletConfig {
            file: file.to_string(),
            problem: Some(format!(
                "{file} is not a KubeletConfiguration: {}",
                first_line(&e)
            )),
            ..KubeletConfig::default()
        },
    }
}

/// The kubeadm, kubelet and kubectl packages in dpkg's `status` file that are
/// installed, with their hold state (`Status: hold ok installed`).
pub fn parse_dpkg_status(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let (Some(name), Some(status)) = (field("Package"), field("Status")) else {
            continue;
        };
        if !crate::BINARIES.contains(&name) {
            continue;
        }
        let words: Vec<&str> = status.split_whitespace().collect();
        if words.get(2) != Some(&"installed") {
            continue;
        }
        out.push(Package {
            name: name.to_string(),
            version: field("Version").unwrap_or_default().to_string(),
            held: words.first() == Some(&"hold"),
        });
    }
    out
}

/// Reads `ip -j addr`: interfaces, MACs and addresses.
pub fn parse_ip_addr(json: &str) -> Result<Vec<Interface>, String> {
    #[derive(Deserialize)]
    struct Link {
        ifname: String,
        #[serde(default)]
        link_type: Option<String>,
        #[serde(default)]
        address: Option<String>,
        #[serde(default)]
        flags: Vec<String>,
        #[serde(default)]
        addr_info: Vec<Addr>,
    }
    #[derive(Deserialize)]
    struct Addr {
        local: Option<String>,
        prefixlen: Option<u8>,
        #[serde(default)]
        scope: Option<String>,
    }
    let links: Vec<Link> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok(links
        .into_iter()
        .map(|l| {
            let loopback = l.flags.iter().any(|f| f == "LOOPBACK")
                || l.link_type.as_deref() == Some("loopback");
            Interface {
                mac: l
                    .address
                    .filter(|a| !loopback && a.len() == 17 && a != "00:00:00:00:00:00"),
                loopback,
                addrs: l
                    .addr_info
                    .into_iter()
                    .filter_map(|a| {
                        let ip: IpAddr = a.local?.parse().ok()?;
                        Some(InterfaceAddr {
                            cidr: Cidr::new(ip, a.prefixlen?)?,
                            scope: a.scope.unwrap_or_else(|| "global".into()),
                        })
                    })
                    .collect(),
                name: l.ifname,
            }
        })
        .collect())
}

/// Reads `ip -j route` (`ipv6`: the output of `ip -6 -j route`).
pub fn parse_ip_route(json: &str, ipv6: bool) -> Result<Vec<Route>, String> {
    #[derive(Deserialize)]
    struct R {
        dst: String,
        #[serde(default)]
        dev: Option<String>,
        #[serde(default)]
        gateway: Option<String>,
        #[serde(default)]
        metric: Option<u32>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
    }
    let routes: Vec<R> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok(routes
        .into_iter()
        .filter(|r| matches!(r.kind.as_deref(), None | Some("unicast")))
        .filter_map(|r| {
            let dst = match r.dst.as_str() {
                "default" => None,
                d if d.contains('/') => Some(d.parse().ok()?),
                d => Some(Cidr::host(d.parse().ok()?)),
            };
            Some(Route {
                dst,
                dev: r.dev,
                gateway: r.gateway.and_then(|g| g.parse().ok()),
                metric: r.metric.unwrap_or(0),
                ipv6,
            })
        })
        .collect())
}

/// The first Kubernetes version (`v1.30.1`) in a binary's version output
/// (`Kubernetes v1.30.1`, `kubeadm version -o short`, `kubectl version --client -o json`).
pub fn find_version(output: &str) -> Option<kastellan_policy::Version> {
    output.match_indices("v1.").find_map(|(i, _)| {
        let token: String = output[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
            .collect();
        kastellan_policy::Version::parse(&token).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_listeners_only() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0A1A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0
   1: 00000000:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0A1A 0100007F:D3C2 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 20 4 0 10 -1
";
        let l = parse_proc_net_tcp(v4);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l[0].addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(l[0].port, 2586);
        assert_eq!(l[0].inode, 31337);
        assert_eq!(l[1].port, 6443);
        assert_eq!(l[1].addr, "0.0.0.0".parse::<IpAddr>().unwrap());
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:2816 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
";
        let l = parse_proc_net_tcp(v6);
        assert_eq!(l[0].addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(l[0].port, 10262);
    }

    #[test]
    fn swaps() {
        let s = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t2097148\t\t0\t\t-2\n";
        assert_eq!(
            parse_swaps(s),
            vec![Swap {
                name: "/swapfile".into(),
                kind: "file".into(),
                size_kib: 2_097_148
            }]
        );
        assert!(parse_swaps("Filename\tType\tSize\tUsed\tPriority\n").is_empty());
    }

    #[test]
    fn versions_in_outputs() {
        for (out, want) in [
            ("Kubernetes v1.30.2\n", "v1.30.2"),
            ("v1.29.0-rc.1\n", "v1.29.0-rc.1"),
            (
                r#"{"clientVersion":{"major":"1","gitVersion":"v1.28.3","gitCommit":"x"}}"#,
                "v1.28.3",
            ),
        ] {
            assert_eq!(find_version(out).unwrap().to_string(), want, "{out}");
        }
        assert!(find_version("command not found").is_none());
    }

    #[test]
    fn ip_json() {
        let addr = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]},
            {"ifindex":2,"ifname":"eth0","flags":["UP"],"link_type":"ether","address":"52:54:00:12:34:56","addr_info":[{"family":"inet","local":"192.168.1.5","prefixlen":24,"scope":"global"},{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]}]"#;
        let i = parse_ip_addr(addr).unwrap();
        assert!(i[0].loopback && i[0].mac.is_none());
        assert_eq!(i[1].mac.as_deref(), Some("52:54:00:12:34:56"));
        assert_eq!(i[1].addrs[0].cidr.to_string(), "192.168.1.5/24");
        assert_eq!(i[1].addrs[1].scope, "link");
        let route = r#"[{"dst":"default","gateway":"192.168.1.1","dev":"eth0","metric":100,"flags":[]},
            {"dst":"10.244.0.0/16","dev":"cni0","flags":[]},{"dst":"10.1.2.3","dev":"eth0","flags":[]},
            {"type":"unreachable","dst":"10.9.0.0/16","flags":[]}]"#;
        let r = parse_ip_route(route, false).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].dst, None);
        assert_eq!(r[0].metric, 100);
        assert_eq!(r[1].dst.unwrap().to_string(), "10.244.0.0/16");
        assert_eq!(r[2].dst.unwrap().to_string(), "10.1.2.3/32");
    }

    #[test]
    fn dpkg_holds() {
        let s = "Package: kubeadm\nStatus: hold ok installed\nVersion: 1.30.2-1.1\n\n\
                 Package: kubelet\nStatus: install ok installed\nVersion: 1.30.2-1.1\n\n\
                 Package: kubectl\nStatus: deinstall ok config-files\nVersion: 1.29.0-1.1\n\n\
                 Package: bash\nStatus: install ok installed\nVersion: 5.2\n";
        let p = parse_dpkg_status(s);
        assert_eq!(p.len(), 2);
        assert!(p[0].held && p[0].name == "kubeadm" && p[0].version == "1.30.2-1.1");
        assert!(!p[1].held);
    }
}

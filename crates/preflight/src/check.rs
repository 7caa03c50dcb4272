//! The verdicts: pure functions of [`Facts`] and a [`Request`], each check giving
//! pass, warn or fail with its evidence and a one-line fix.

use std::net::IpAddr;

use kastellan_policy::Version;
use kastellan_policy::skew::{self, Cluster, ComponentKind};
use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;
use crate::facts::*;

/// Which kind of node is being prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// `kubeadm init` or `kubeadm join --control-plane`.
    ControlPlane,
    /// `kubeadm join`.
    Worker,
}

/// What the node is being prepared for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The node's role.
    pub role: Role,
    /// The pod network (kubeadm's `--pod-network-cidr`), if one is given.
    pub pod_cidr: Option<Cidr>,
    /// The Service network (kubeadm's `--service-cidr`).
    pub service_cidr: Cidr,
    /// The size of each node's pod subnet (default /24 for IPv4, /64 for IPv6).
    pub node_mask: Option<u8>,
    /// How many nodes the pod network must have room for (default 1).
    pub nodes: Option<u32>,
    /// The API server's advertise address, if one is given.
    pub advertise: Option<IpAddr>,
    /// The other nodes' identities, when they are known.
    pub peers: Option<Vec<Identity>>,
}

impl Request {
    /// A request for `role` with kubeadm's defaults (Service CIDR 10.96.0.0/12).
    pub fn new(role: Role) -> Request {
        Request {
            role,
            pod_cidr: None,
            service_cidr: Cidr::new(IpAddr::from([10, 96, 0, 0]), 12)
                .unwrap_or_else(|| Cidr::host(IpAddr::from([10, 96, 0, 0]))),
            node_mask: None,
            nodes: None,
            advertise: None,
            peers: None,
        }
    }
}

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fine.
    Pass,
    /// kubeadm proceeds, but something deserves attention.
    Warn,
    /// kubeadm (or the kubelet, or the cluster) would fail.
    Fail,
}

impl Verdict {
    /// `pass`, `warn` or `fail`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// One check's verdict, what it was based on, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// A stable name (`swap`, `ports`, ...).
    pub id: String,
    /// The verdict.
    pub verdict: Verdict,
    /// What was found.
    pub evidence: String,
    /// How to fix it, in one line (for warn and fail).
    pub fix: Option<String>,
}

fn pass(id: &str, evidence: impl Into<String>) -> Check {
    Check {
        id: id.to_string(),
        verdict: Verdict::Pass,
        evidence: evidence.into(),
        fix: None,
    }
}

fn warn(id: &str, evidence: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        id: id.to_string(),
        verdict: Verdict::Warn,
        evidence: evidence.into(),
        fix: Some(fix.into()),
    }
}

fn fail(id: &str, evidence: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        id: id.to_string(),
        verdict: Verdict::Fail,
        evidence: evidence.into(),
        fix: Some(fix.into()),
    }
}

/// Every check's verdict for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The role checked for.
    pub role: Role,
    /// The worst verdict.
    pub verdict: Verdict,
    /// Every check, in a fixed order.
    pub checks: Vec<Check>,
}

impl Report {
    /// The check named `id`.
    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// Judges `facts` for `req`.
pub fn check(facts: &Facts, req: &Request) -> Report {
    let checks = vec![
        hostname(facts),
        identity(facts, req),
        cgroups(facts),
        runtime_config(facts),
        runtime_socket(facts),
        kubelet_cgroup_driver(facts),
        swap(facts),
        ports(facts, req.role),
        kubeadm_state(facts),
        pod_network(facts, req),
        node_cidrs(req),
        service_network(facts, req),
        advertise_address(facts, req),
        kernel_modules(facts),
        sysctls(facts),
        binaries(facts),
        version_skew(facts, req.role),
        packages_held(facts),
        time_sync(facts),
    ];
    Report {
        role: req.role,
        verdict: checks
            .iter()
            .map(|c| c.verdict)
            .max()
            .unwrap_or(Verdict::Pass),
        checks,
    }
}

/// Why `name` is not a lowercase RFC 1123 subdomain (kubeadm's rule for node names).
pub fn invalid_node_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > 253 {
        return Some(format!("it has {} characters (at most 253)", name.len()));
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Some("it has uppercase letters".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("it has an empty label (two dots, or a dot at an end)".into());
        }
        if label.len() > 63 {
            return Some(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Some(format!("it contains {c:?}"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("label {label:?} starts or ends with '-'"));
        }
    }
    None
}

fn hostname(f: &Facts) -> Check {
    const ID: &str = "hostname";
    match &f.identity.hostname {
        None => fail(
            ID,
            "the hostname is unreadable (/proc/sys/kernel/hostname, /etc/hostname)",
            "set one: hostnamectl set-hostname NAME",
        ),
        Some(h) => match invalid_node_name(h) {
            None => pass(ID, format!("{h}: a valid node name (lowercase RFC 1123)")),
            Some(why) => fail(
                ID,
                format!("{h:?} is no valid node name: {why}; kubeadm refuses it"),
                format!(
                    "hostnamectl set-hostname {} (or give kubeadm --node-name)",
                    h.to_lowercase()
                ),
            ),
        },
    }
}

fn identity(f: &Facts, req: &Request) -> Check {
    const ID: &str = "node-identity";
    let me = &f.identity;
    let Some(peers) = &req.peers else {
        return match &me.product_uuid {
            Some(u) => pass(
                ID,
                format!("product_uuid {u}; no other nodes' facts given to compare"),
            ),
            None => warn(
                ID,
                "product_uuid unreadable (/sys/class/dmi/id/product_uuid): uniqueness cannot be shown",
                "run as root (the file is root-only), or compare the nodes' MACs and product_uuid by hand",
            ),
        };
    };
    let mut clash = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let name = p
            .hostname
            .clone()
            .unwrap_or_else(|| format!("peer #{}", i + 1));
        if p.hostname.is_some() && p.hostname == me.hostname {
            clash.push(format!("hostname {name} also on another node"));
        }
        let shared: Vec<&str> = me
            .macs
            .iter()
            .filter(|m| p.macs.contains(m))
            .map(String::as_str)
            .collect();
        match shared.as_slice() {
            [] => {}
            [m] => clash.push(format!("MAC {m} also on {name}")),
            many => clash.push(format!("MACs {} also on {name}", many.join(", "))),
        }
        if me.product_uuid.is_some() && p.product_uuid == me.product_uuid {
            clash.push(format!(
                "product_uuid {} also on {name}",
                me.product_uuid.as_deref().unwrap_or_default()
            ));
        }
    }
    if clash.is_empty() {
        pass(
            ID,
            format!(
                "hostname, {} MAC(s) and product_uuid unique among {} node(s)",
                me.macs.len(),
                peers.len() + 1
            ),
        )
    } else {
        fail(
            ID,
            clash.join("; "),
            "give every node its own hostname, and regenerate cloned VMs' MACs and product_uuid",
        )
    }
}

/// The cgroup driver that agrees with PID 1: systemd when PID 1 is systemd.
fn expected_driver(f: &Facts) -> CgroupDriver {
    if f.init.as_deref() == Some("systemd") {
        CgroupDriver::Systemd
    } else {
        CgroupDriver::Cgroupfs
    }
}

fn init_said(f: &Facts) -> String {
    match f.init.as_deref() {
        Some("systemd") => "PID 1 is systemd".to_string(),
        Some(other) => format!("PID 1 is {other}, not systemd"),
        None => "PID 1 unknown (/proc/1/comm unreadable)".to_string(),
    }
}

fn cgroups(f: &Facts) -> Check {
    const ID: &str = "cgroups";
    let init = init_said(f);
    let expected = expected_driver(f).name();
    match f.cgroup {
        CgroupVersion::V2 => pass(
            ID,
            format!("{init}: expected driver {expected}; cgroup v2 (unified)"),
        ),
        CgroupVersion::V1 => warn(
            ID,
            format!(
                "{init}: expected driver {expected}; cgroup v1 (no /sys/fs/cgroup/cgroup.controllers), in maintenance mode since Kubernetes 1.31"
            ),
            "boot with the unified hierarchy (systemd.unified_cgroup_hierarchy=1)",
        ),
        CgroupVersion::Unknown => warn(
            ID,
            format!("{init}; no /sys/fs/cgroup"),
            "mount the cgroup filesystem at /sys/fs/cgroup",
        ),
    }
}

fn runtime_config(f: &Facts) -> Check {
    const ID: &str = "runtime-cgroup-driver";
    let expected = expected_driver(f);
    let runtimes: Vec<(&str, &RuntimeConfig)> = [("containerd", &f.containerd), ("CRI-O", &f.crio)]
        .into_iter()
        .filter_map(|(n, c)| c.as_ref().map(|c| (n, c)))
        .collect();
    if runtimes.is_empty() {
        return fail(
            ID,
            "no container runtime found: no /etc/containerd/config.toml, /etc/crio/crio.conf or crio.conf.d, and no CRI socket",
            format!(
                "install containerd (or CRI-O) with the {} cgroup driver",
                expected.name()
            ),
        );
    }
    let mut bad = Vec::new();
    let mut fixes = Vec::new();
    let mut good = Vec::new();
    for (name, c) in &runtimes {
        if let Some(p) = &c.problem {
            bad.push(format!("{name}: {p}"));
            fixes.push(format!("fix {}", c.files.join(", ")));
        } else if c.driver != expected {
            bad.push(format!(
                "{name} uses {}: {}; {}, so {} is expected",
                c.driver.name(),
                c.setting,
                init_said(f),
                expected.name()
            ));
            fixes.push(if *name == "containerd" {
                format!(
                    "set SystemdCgroup = {} in containerd's runc options and restart containerd",
                    expected == CgroupDriver::Systemd
                )
            } else {
                format!(
                    "set cgroup_manager = \"{}\" in [crio.runtime] and restart crio",
                    expected.name()
                )
            });
        } else {
            good.push(format!("{name} uses {} ({})", c.driver.name(), c.setting));
        }
    }
    if bad.is_empty() {
        pass(ID, format!("{}; {}", good.join("; "), init_said(f)))
    } else {
        fail(ID, bad.join("; "), fixes.join("; "))
    }
}

fn runtime_socket(f: &Facts) -> Check {
    const ID: &str = "runtime-socket";
    let all = crate::read::CRI_SOCKETS
        .iter()
        .map(|(_, p)| *p)
        .collect::<Vec<_>>()
        .join(", ");
    if f.sockets.is_empty() {
        return fail(
            ID,
            format!("no container runtime found: none of {all} exists"),
            "install and start containerd or CRI-O (kubeadm needs a CRI socket)",
        );
    }
    if let Some(s) = f.sockets.iter().find(|s| !s.is_socket) {
        return fail(
            ID,
            format!("{} exists but is not a socket", s.path),
            format!("restart {} (or remove the stray file)", s.runtime),
        );
    }
    if f.sockets.len() > 1 {
        let found: Vec<&str> = f.sockets.iter().map(|s| s.path.as_str()).collect();
        return fail(
            ID,
            format!(
                "several CRI sockets: {}; kubeadm refuses to choose",
                found.join(", ")
            ),
            "give kubeadm --cri-socket unix://PATH (or nodeRegistration.criSocket)",
        );
    }
    let s = &f.sockets[0];
    pass(ID, format!("{} ({})", s.path, s.runtime))
}

fn kubelet_cgroup_driver(f: &Facts) -> Check {
    const ID: &str = "kubelet-cgroup-driver";
    let expected = expected_driver(f);
    let Some(k) = &f.kubelet else {
        return if expected == CgroupDriver::Systemd {
            pass(
                ID,
                "no /var/lib/kubelet/config.yaml yet: kubeadm writes it with cgroupDriver: systemd (its default since v1.22)",
            )
        } else {
            warn(
                ID,
                format!(
                    "no /var/lib/kubelet/config.yaml yet; kubeadm would write cgroupDriver: systemd, but {}",
                    init_said(f)
                ),
                "pass kubeadm a KubeletConfiguration with cgroupDriver: cgroupfs (--config)",
            )
        };
    };
    if let Some(p) = &k.problem {
        return fail(ID, p.clone(), format!("fix {}", k.file));
    }
    let (driver, said) = match &k.cgroup_driver {
        Some(d) => (d.as_str(), format!("cgroupDriver: {d} in {}", k.file)),
        None => (
            "cgroupfs",
            format!(
                "cgroupDriver not set in {} (the kubelet's default: cgroupfs)",
                k.file
            ),
        ),
    };
    if driver == expected.name() {
        pass(ID, format!("{said}; {}", init_said(f)))
    } else {
        fail(
            ID,
            format!(
                "{said}; {}, so {} is expected",
                init_said(f),
                expected.name()
            ),
            format!(
                "set cgroupDriver: {} in {} and restart the kubelet",
                expected.name(),
                k.file
            ),
        )
    }
}

fn swap(f: &Facts) -> Check {
    const ID: &str = "swap";
    if f.swaps.is_empty() {
        if f.unreadable.iter().any(|u| u == "/proc/swaps") {
            return warn(
                ID,
                "swap unknown: /proc/swaps is unreadable",
                "check with swapon --show",
            );
        }
        return pass(ID, "no active swap (/proc/swaps lists none)");
    }
    let areas: Vec<String> = f
        .swaps
        .iter()
        .map(|s| format!("{} ({}, {} KiB)", s.name, s.kind, s.size_kib))
        .collect();
    let tolerated = f
        .kubelet
        .as_ref()
        .is_some_and(|k| k.fail_swap_on == Some(false));
    if tolerated {
        let behavior = f
            .kubelet
            .as_ref()
            .and_then(|k| k.swap_behavior.clone())
            .unwrap_or_else(|| "NoSwap (default)".into());
        warn(
            ID,
            format!(
                "swap on: {}; the kubelet is configured for it (failSwapOn: false, swapBehavior: {behavior})",
                areas.join(", ")
            ),
            "make sure the kubelet's swap settings are intended (memorySwap.swapBehavior)",
        )
    } else {
        fail(
            ID,
            format!(
                "swap on: {}; the kubelet refuses to start with swap (failSwapOn defaults to true)",
                areas.join(", ")
            ),
            "swapoff -a and remove swap from /etc/fstab (or set failSwapOn: false in the kubelet config)",
        )
    }
}

/// The ports a role needs free, with who needs them.
pub fn required_ports(role: Role) -> &'static [(u16, &'static str)] {
    match role {
        Role::ControlPlane => &[
            (6443, "kube-apiserver"),
            (2379, "etcd client"),
            (2380, "etcd peer"),
            (10250, "kubelet"),
            (10257, "kube-controller-manager"),
            (10259, "kube-scheduler"),
        ],
        Role::Worker => &[(10250, "kubelet")],
    }
}

/// The NodePort range kube-proxy serves (the default `--service-node-port-range`).
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Process names (as `/proc/PID/comm` cuts them to 15 characters) of Kubernetes itself.
const KUBERNETES_PROCESSES: [&str; 6] = [
    "kube-apiserver",
    "etcd",
    "kubelet",
    "kube-controller",
    "kube-scheduler",
    "kube-proxy",
];

fn holder(l: &Listener) -> String {
    match &l.process {
        Some(p) => format!("{} (pid {}) on {}", p.name, p.pid, l.addr),
        None => format!("a process not found in /proc on {}", l.addr),
    }
}

/// Who holds one port: each process once, with every address it listens on
/// (`etcd (pid 5) on 10.0.0.1, 127.0.0.1`).
fn holders(listeners: &[&Listener]) -> String {
    let mut by: Vec<(Option<&Process>, Vec<IpAddr>)> = Vec::new();
    for l in listeners {
        match by.iter_mut().find(|(p, _)| *p == l.process.as_ref()) {
            Some((_, addrs)) => addrs.push(l.addr),
            None => by.push((l.process.as_ref(), vec![l.addr])),
        }
    }
    by.into_iter()
        .map(|(p, mut addrs)| {
            addrs.sort();
            addrs.dedup();
            let on: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
            match p {
                Some(p) => format!("{} (pid {}) on {}", p.name, p.pid, on.join(", ")),
                None => format!("a process not found in /proc on {}", on.join(", ")),
            }
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

fn ports(f: &Facts, role: Role) -> Check {
    const ID: &str = "ports";
    let mut held = Vec::new();
    let mut first = None;
    let mut kubernetes = false;
    for (port, who) in required_ports(role) {
        let holders: Vec<&Listener> = f.listeners.iter().filter(|l| l.port == *port).collect();
        if !holders.is_empty() {
            kubernetes |= holders.iter().any(|l| {
                l.process
                    .as_ref()
                    .is_some_and(|p| KUBERNETES_PROCESSES.contains(&p.name.as_str()))
            });
            first.get_or_insert(*port);
            held.push(format!(
                "{port} ({who}) is in use by {}",
                self::holders(&holders)
            ));
        }
    }
    let mut node_ports: Vec<&Listener> = f
        .listeners
        .iter()
        .filter(|l| NODE_PORTS.contains(&l.port))
        .collect();
    node_ports.sort_by_key(|l| l.port);
    node_ports.dedup_by_key(|l| l.port);
    let wanted: Vec<String> = required_ports(role)
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    let range = if role == Role::Worker {
        format!(
            " and the NodePort range {}-{}",
            NODE_PORTS.start(),
            NODE_PORTS.end()
        )
    } else {
        String::new()
    };
    if !held.is_empty() {
        let fix = if kubernetes || !f.kubeadm_files.is_empty() {
            format!(
                "Kubernetes already runs here: kubeadm would refuse ([ERROR Port-{}]); kubeadm reset first if the node is to be set up again",
                first.unwrap_or_default()
            )
        } else {
            "stop the process holding the port, or move it to another port".to_string()
        };
        return fail(ID, held.join("; "), fix);
    }
    if role == Role::Worker && !node_ports.is_empty() {
        let list: Vec<String> = node_ports
            .iter()
            .map(|l| format!("{} by {}", l.port, holder(l)))
            .collect();
        return warn(
            ID,
            format!(
                "{} free; in the NodePort range: {}",
                wanted.join(", "),
                list.join("; ")
            ),
            "move the listener out of 30000-32767, or keep Services' nodePorts off its port",
        );
    }
    if f.unreadable.iter().any(|u| u == "/proc/net/tcp") {
        return warn(
            ID,
            format!(
                "listening sockets unknown: /proc/net/tcp and tcp6 are unreadable ({} needed{range})",
                wanted.join(", ")
            ),
            "check with ss -ltnp",
        );
    }
    pass(ID, format!("{}{range} free", wanted.join(", ")))
}

fn kubeadm_state(f: &Facts) -> Check {
    const ID: &str = "kubeadm-state";
    if f.kubeadm_files.is_empty() {
        return pass(
            ID,
            "no kubeadm files yet (manifests, admin.conf, kubelet.conf, pki/ca.crt, etcd data)",
        );
    }
    fail(
        ID,
        format!(
            "this node was set up before: {} exist; kubeadm init or join would refuse (FileAvailable, DirAvailable)",
            f.kubeadm_files.join(", ")
        ),
        "kubeadm reset first if the node is to be set up again (it removes them)",
    )
}

/// What on the host a prefix overlaps: interface addresses and routes.
fn host_overlaps(f: &Facts, cidr: &Cidr) -> Vec<String> {
    let mut out = Vec::new();
    for i in &f.interfaces {
        for a in &i.addrs {
            if a.cidr.network().overlaps(cidr) {
                out.push(format!("address {} on {}", a.cidr, i.name));
            }
        }
    }
    for r in &f.routes {
        if let Some(dst) = r.dst
            && dst.overlaps(cidr)
        {
            let dev = r
                .dev
                .as_deref()
                .map(|d| format!(" dev {d}"))
                .unwrap_or_default();
            let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
            out.push(format!("route {dst}{via}{dev}"));
        }
    }
    out
}

/// A common private prefix of the same size and family that overlaps nothing given.
fn suggestion(f: &Facts, like: &Cidr, avoid: &[Cidr]) -> Option<Cidr> {
    let candidates: &[&str] = if like.is_ipv4() {
        &[
            "10.244.0.0",
            "10.32.0.0",
            "10.128.0.0",
            "172.16.0.0",
            "192.168.0.0",
            "100.64.0.0",
        ]
    } else {
        &["fd00:10:244::", "fd00:20::", "fd42::"]
    };
    candidates.iter().find_map(|c| {
        let cidr = Cidr::new(c.parse().ok()?, like.prefix())?.network();
        (host_overlaps(f, &cidr).is_empty() && !avoid.iter().any(|a| a.overlaps(&cidr)))
            .then_some(cidr)
    })
}

fn network_check(
    id: &str,
    kubeadm_flag: &str,
    f: &Facts,
    cidr: &Cidr,
    other: Option<(&str, &Cidr)>,
) -> Check {
    let mut clash = Vec::new();
    if let Some((name, o)) = other
        && o.overlaps(cidr)
    {
        clash.push(format!("the {name} {o}"));
    }
    clash.extend(host_overlaps(f, cidr));
    if !clash.is_empty() {
        let avoid: Vec<Cidr> = other.map(|(_, o)| *o).into_iter().collect();
        let fix = match suggestion(f, cidr, &avoid) {
            Some(s) => format!("pick a {kubeadm_flag} that overlaps none of them, e.g. {s}"),
            None => format!("pick a {kubeadm_flag} that overlaps none of them"),
        };
        return fail(id, format!("{cidr} overlaps {}", clash.join(", ")), fix);
    }
    if let Some(e) = &f.network_error {
        return warn(
            id,
            format!("{cidr}: the host's addresses and routes are unknown ({e})"),
            "check by hand with ip addr and ip route",
        );
    }
    let with = other
        .map(|(name, o)| format!("the {name} {o}, "))
        .unwrap_or_default();
    pass(
        id,
        format!("{cidr} overlaps neither {with}this host's addresses nor its routes"),
    )
}

fn pod_network(f: &Facts, req: &Request) -> Check {
    const ID: &str = "pod-network-cidr";
    match &req.pod_cidr {
        None => pass(
            ID,
            "none given: the controller-manager allocates no node CIDRs (the network plugin assigns pod addresses)",
        ),
        Some(p) => network_check(
            ID,
            "--pod-network-cidr",
            f,
            p,
            Some(("Service CIDR", &req.service_cidr)),
        ),
    }
}

fn service_network(f: &Facts, req: &Request) -> Check {
    const ID: &str = "service-cidr";
    let s = &req.service_cidr;
    if s.is_ipv4() && s.prefix() < 12 {
        return fail(
            ID,
            format!(
                "{s} is larger than /12: kube-apiserver refuses an IPv4 Service range of more than 20 bits"
            ),
            "use a --service-cidr of /12 or smaller (e.g. 10.96.0.0/12)",
        );
    }
    // The pod network's overlap with the Service network is reported once, by
    // pod-network-cidr.
    network_check(ID, "--service-cidr", f, s, None)
}

fn node_cidrs(req: &Request) -> Check {
    const ID: &str = "node-cidrs";
    let Some(p) = &req.pod_cidr else {
        return pass(ID, "no pod network CIDR: nothing to divide among nodes");
    };
    let bits = p.family_bits();
    let mask = req.node_mask.unwrap_or(if p.is_ipv4() { 24 } else { 64 });
    let nodes = req.nodes.unwrap_or(1);
    if mask < p.prefix() {
        return fail(
            ID,
            format!(
                "a node's /{mask} is larger than the whole pod network {p}: the controller-manager refuses it"
            ),
            format!("use a node CIDR mask size of at least /{}", p.prefix()),
        );
    }
    let subnet_bits = u32::from(mask - p.prefix());
    if subnet_bits > 16 {
        return fail(
            ID,
            format!(
                "{p} in /{mask} per node makes 2^{subnet_bits} node subnets; the controller-manager allows at most 16 bits of them"
            ),
            format!("use a node CIDR mask size of at most /{}", p.prefix() + 16),
        );
    }
    let room: u64 = 1 << subnet_bits;
    let host_bits = u32::from(bits - mask);
    let per_node: u128 = if host_bits >= 2 {
        (1u128 << host_bits.min(127)) - 2
    } else {
        1
    };
    let per_node_text = if host_bits > 20 {
        format!("2^{host_bits}")
    } else {
        per_node.to_string()
    };
    let said = format!(
        "{p} in /{mask} per node: room for {room} node(s), {nodes} wanted, {per_node_text} pod addresses each"
    );
    if room < u64::from(nodes) {
        let need = (u64::from(nodes)).next_power_of_two().trailing_zeros() as u8;
        let wider = mask.saturating_sub(need);
        return fail(
            ID,
            said,
            format!(
                "use a pod network of /{wider} or larger, or a longer node CIDR mask size (fewer pods per node)"
            ),
        );
    }
    if per_node < 110 {
        return warn(
            ID,
            format!("{said}, fewer than the kubelet's default maxPods of 110"),
            "use a shorter node CIDR mask size, or lower maxPods in the kubelet config",
        );
    }
    pass(ID, said)
}

/// The address a default `kubeadm init` advertises: the first global unicast address
/// of the interface of the default route with the lowest metric (IPv4 routes first,
/// then IPv6), as kubeadm's `ChooseHostInterface` picks it.
pub fn default_address(f: &Facts) -> Option<(IpAddr, String)> {
    for v6 in [false, true] {
        let mut defaults: Vec<&Route> = f
            .routes
            .iter()
            .filter(|r| r.dst.is_none() && r.ipv6 == v6)
            .collect();
        defaults.sort_by_key(|r| r.metric);
        for r in defaults {
            let Some(i) = f
                .interfaces
                .iter()
                .find(|i| Some(&i.name) == r.dev.as_ref())
            else {
                continue;
            };
            if let Some(a) = i.addrs.iter().find(|a| {
                a.cidr.is_ipv4() != v6 && a.scope == "global" && global_unicast(a.cidr.addr())
            }) {
                return Some((a.cidr.addr(), i.name.clone()));
            }
        }
    }
    None
}

fn global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_unspecified()
                || a.is_broadcast())
        }
        IpAddr::V6(a) => {
            !(a.is_loopback()
                || a.is_multicast()
                || a.is_unspecified()
                || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

fn advertise_address(f: &Facts, req: &Request) -> Check {
    const ID: &str = "advertise-address";
    if let Some(e) = &f.network_error {
        return warn(
            ID,
            format!("the host's addresses and routes are unknown ({e})"),
            "check by hand with ip addr and ip route",
        );
    }
    let default = default_address(f);
    let default_said = match &default {
        Some((ip, dev)) => {
            format!("a default kubeadm init would pick {ip} ({dev}, the default route's interface)")
        }
        None => {
            "with no default route, a kubeadm init without an advertise address could not pick one"
                .into()
        }
    };
    let Some(given) = req.advertise else {
        return match (&default, req.role) {
            (Some(_), _) => pass(ID, default_said),
            (None, Role::ControlPlane) => fail(
                ID,
                "no default route: kubeadm init would fail to pick an address to advertise (\"unable to select an IP from default routes\")",
                "give kubeadm --apiserver-advertise-address with this host's address, or add a default route",
            ),
            (None, Role::Worker) => warn(
                ID,
                "no default route: the kubelet may not find its node IP",
                "add a default route, or set the kubelet's --node-ip",
            ),
        };
    };
    if given.is_loopback() {
        return fail(
            ID,
            format!("{given} is a loopback address: no other node can reach it; {default_said}"),
            "advertise an address of an interface the other nodes reach",
        );
    }
    let on = f
        .interfaces
        .iter()
        .find(|i| i.addrs.iter().any(|a| a.cidr.addr() == given));
    match on {
        None => {
            let local: Vec<String> = f
                .interfaces
                .iter()
                .filter(|i| !i.loopback)
                .flat_map(|i| {
                    i.addrs
                        .iter()
                        .filter(|a| a.scope != "link")
                        .map(move |a| format!("{} ({})", a.cidr.addr(), i.name))
                })
                .collect();
            fail(
                ID,
                format!(
                    "{given} is not an address of this host (it has {}); {default_said}",
                    if local.is_empty() {
                        "none but loopback".to_string()
                    } else {
                        local.join(", ")
                    }
                ),
                "advertise one of this host's addresses",
            )
        }
        Some(i) if i.loopback => fail(
            ID,
            format!(
                "{given} is on the loopback interface {}: no other node can reach it",
                i.name
            ),
            "advertise an address of an interface the other nodes reach",
        ),
        Some(i) => {
            let relation = match &default {
                Some((ip, _)) if *ip == given => {
                    "the same as a default kubeadm init would pick".to_string()
                }
                _ => format!("differs from the default: {default_said}"),
            };
            pass(ID, format!("{given} is on {}; {relation}", i.name))
        }
    }
}

fn kernel_modules(f: &Facts) -> Check {
    const ID: &str = "kernel-modules";
    let missing: Vec<&str> = f
        .modules
        .iter()
        .filter(|m| !m.loaded)
        .map(|m| m.name.as_str())
        .collect();
    let all: Vec<&str> = f.modules.iter().map(|m| m.name.as_str()).collect();
    if missing.is_empty() {
        pass(ID, format!("{} loaded", all.join(", ")))
    } else {
        fail(
            ID,
            format!(
                "{} not loaded (not in /proc/modules or /sys/module)",
                missing.join(", ")
            ),
            format!(
                "modprobe {0} and list them in /etc/modules-load.d/k8s.conf",
                missing.join(" ")
            ),
        )
    }
}

fn sysctls(f: &Facts) -> Check {
    const ID: &str = "sysctls";
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for s in &f.sysctls {
        match s.value.as_deref() {
            Some("1") => good.push(format!("{} = 1", s.name)),
            Some(v) => bad.push(format!("{} = {v}", s.name)),
            None => bad.push(format!(
                "{} missing (/proc/sys/{}{})",
                s.name,
                s.name.replace('.', "/"),
                if s.name.starts_with("net.bridge") {
                    ": br_netfilter not loaded"
                } else {
                    ""
                }
            )),
        }
    }
    if bad.is_empty() {
        pass(ID, good.join(", "))
    } else {
        let names: Vec<String> = f
            .sysctls
            .iter()
            .filter(|s| s.value.as_deref() != Some("1"))
            .map(|s| format!("{}=1", s.name))
            .collect();
        fail(
            ID,
            format!("{}; kubeadm requires 1", bad.join(", ")),
            format!(
                "sysctl -w {} and put them in /etc/sysctl.d/k8s.conf",
                names.join(" ")
            ),
        )
    }
}

fn binaries(f: &Facts) -> Check {
    const ID: &str = "binaries";
    let mut missing = Vec::new();
    let mut found = Vec::new();
    let mut unknown = Vec::new();
    for b in &f.binaries {
        match (&b.path, &b.version) {
            (None, _) => missing.push(b.name.as_str()),
            (Some(p), Some(v)) => found.push(format!("{} {v} ({p})", b.name)),
            (Some(p), None) => {
                unknown.push(format!(
                    "{} at {p}: version unknown ({})",
                    b.name,
                    b.problem.as_deref().unwrap_or("no answer")
                ));
            }
        }
    }
    let mut said: Vec<String> = found.clone();
    said.extend(unknown.iter().cloned());
    if !missing.is_empty() {
        said.insert(0, format!("not on the search path: {}", missing.join(", ")));
    }
    let required_missing = missing.iter().any(|m| *m != "kubectl");
    if required_missing {
        fail(
            ID,
            said.join("; "),
            format!(
                "install {} (the same minor as the cluster)",
                missing.join(", ")
            ),
        )
    } else if !missing.is_empty() || !unknown.is_empty() {
        warn(
            ID,
            said.join("; "),
            "install the missing or broken binaries from the Kubernetes package repository",
        )
    } else {
        pass(ID, said.join("; "))
    }
}

fn version_skew(f: &Facts, role: Role) -> Check {
    const ID: &str = "version-skew";
    let version = |name: &str| {
        f.binaries
            .iter()
            .find(|b| b.name == name)
            .and_then(|b| b.version.as_deref())
            .and_then(|v| Version::parse(v).ok())
    };
    let node = f
        .identity
        .hostname
        .clone()
        .unwrap_or_else(|| "this node".into());
    let mut cluster = Cluster::new();
    let kubeadm = version("kubeadm");
    if let Some(v) = &kubeadm {
        cluster = cluster.with(ComponentKind::Kubeadm, node.clone(), v.clone());
        if role == Role::ControlPlane {
            // kubeadm init deploys the control plane of its own version.
            cluster = cluster.with(ComponentKind::ApiServer, node.clone(), v.clone());
        }
    }
    if let Some(v) = version("kubelet") {
        cluster = cluster.with(ComponentKind::Kubelet, node.clone(), v);
    }
    if let Some(v) = version("kubectl") {
        cluster = cluster.with(ComponentKind::Kubectl, node.clone(), v);
    }
    let known: Vec<String> = cluster
        .components
        .iter()
        .filter(|c| c.kind != ComponentKind::ApiServer)
        .map(|c| format!("{} {}", c.kind, c.version))
        .collect();
    if known.len() < 2 {
        return pass(
            ID,
            format!(
                "too few versions known to compare ({})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        );
    }
    let violations = skew::check(&cluster);
    let basis = if role == Role::ControlPlane && kubeadm.is_some() {
        format!(
            "{}; kubeadm init would run kube-apiserver {}",
            known.join(", "),
            kubeadm.as_ref().map(|v| v.to_string()).unwrap_or_default()
        )
    } else {
        known.join(", ")
    };
    if violations.is_empty() {
        pass(ID, format!("{basis}: within the skew policy"))
    } else {
        let v: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        fail(
            ID,
            format!("{basis}: {}", v.join("; ")),
            "install kubeadm, kubelet and kubectl of the same minor (the cluster's)",
        )
    }
}

fn packages_held(f: &Facts) -> Check {
    const ID: &str = "packages-held";
    let Some(pkgs) = &f.packages else {
        return pass(
            ID,
            "no dpkg status (/var/lib/dpkg/status): not a Debian-family system, holds not checked",
        );
    };
    if pkgs.is_empty() {
        return pass(
            ID,
            "kubeadm, kubelet and kubectl are not installed from dpkg packages",
        );
    }
    let loose: Vec<&Package> = pkgs.iter().filter(|p| !p.held).collect();
    let all: Vec<String> = pkgs
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p.name,
                p.version,
                if p.held { "held" } else { "not held" }
            )
        })
        .collect();
    if loose.is_empty() {
        pass(ID, all.join(", "))
    } else {
        let names: Vec<&str> = loose.iter().map(|p| p.name.as_str()).collect();
        warn(
            ID,
            format!(
                "{}; an apt upgrade could move them past the skew policy",
                all.join(", ")
            ),
            format!("apt-mark hold {}", names.join(" ")),
        )
    }
}

fn time_sync(f: &Facts) -> Check {
    const ID: &str = "time-sync";
    let t = &f.time_sync;
    let daemons = if t.daemons.is_empty() {
        "no time daemon found (chrony, systemd-timesyncd, ntpd)".to_string()
    } else {
        format!("installed: {}", t.daemons.join(", "))
    };
    match t.synchronized {
        Some(true) => pass(ID, format!("timedatectl: NTPSynchronized=yes; {daemons}")),
        Some(false) => warn(
            ID,
            format!("timedatectl: NTPSynchronized=no; {daemons}"),
            "enable time sync: systemctl enable --now chrony (or systemd-timesyncd)",
        ),
        None => warn(
            ID,
            format!("synchronisation unknown (timedatectl gave no answer); {daemons}"),
            "make sure a time daemon (chrony, systemd-timesyncd) runs and is synchronised",
        ),
    }
}

#[cfg(test)]
mod tests;

//! The facts reader on prepared root directories: real file contents (containerd and
//! CRI-O configs, the kubelet's config.yaml, /proc/swaps, /proc/net/tcp, dpkg's
//! status, a socket, stand-in binaries that print their versions), then the verdicts a
//! user would see. No network, no root needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use kastellan_preflight::read::{self, Options};
use kastellan_preflight::{Check, Request, Role, Verdict, check};

struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        Root {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) -> &Root {
        let p = self.path().join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        self
    }

    fn script(&self, rel: &str, out: &str) {
        self.write(rel, &format!("#!/bin/sh\necho '{out}'\n"));
        let p = self.path().join(rel.trim_start_matches('/'));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn opts(&self) -> Options {
        Options {
            root: self.path().to_path_buf(),
            search_path: vec![PathBuf::from("/usr/local/bin"), PathBuf::from("/usr/bin")],
            network: false,
            timedatectl: false,
        }
    }

    fn check(&self, id: &str) -> Check {
        self.check_as(Role::ControlPlane, id)
    }

    fn check_as(&self, role: Role, id: &str) -> Check {
        let facts = read::read(&self.opts());
        check(&facts, &Request::new(role)).get(id).cloned().unwrap()
    }
}

const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 81234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 81235 1 0000000000000000 100 0 0 10 0
";

#[test]
fn an_empty_root_names_what_is_missing() {
    let r = Root::new();
    let c = r.check("runtime-cgroup-driver");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence.starts_with("no container runtime found"),
        "{c:?}"
    );
    let c = r.check("runtime-socket");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .contains("none of /run/containerd/containerd.sock, /var/run/crio/crio.sock, /var/run/cri-dockerd.sock exists"),
        "{c:?}"
    );
    let c = r.check("binaries");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .contains("not on the search path: kubeadm, kubelet, kubectl")
    );
    // An empty root has no /proc: swap and ports are unknown, not fine.
    let c = r.check("swap");
    assert_eq!(c.verdict, Verdict::Warn);
    assert_eq!(c.evidence, "swap unknown: /proc/swaps is unreadable");
    let c = r.check("ports");
    assert_eq!(c.verdict, Verdict::Warn);
    assert!(c.evidence.starts_with("listening sockets unknown"), "{c:?}");
    r.write("/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n");
    assert_eq!(r.check("swap").verdict, Verdict::Pass);
    assert_eq!(r.check("hostname").verdict, Verdict::Fail);
    let c = r.check("kernel-modules");
    assert!(
        c.evidence.contains("br_netfilter, overlay not loaded"),
        "{c:?}"
    );
}

#[test]
fn containerd_config_and_socket() {
    let r = Root::new();
    r.write("/proc/1/comm", "systemd\n").write(
        "/etc/containerd/config.toml",
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = false\n",
    );
    let c = r.check("runtime-cgroup-driver");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .contains("containerd uses cgroupfs: SystemdCgroup = false"),
        "{c:?}"
    );
    assert!(
        c.evidence
            .contains("PID 1 is systemd, so systemd is expected"),
        "{c:?}"
    );
    r.write(
        "/etc/containerd/config.toml",
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n",
    );
    assert_eq!(r.check("runtime-cgroup-driver").verdict, Verdict::Pass);

    let sock = r.path().join("run/containerd/containerd.sock");
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let c = r.check("runtime-socket");
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert_eq!(c.evidence, "/run/containerd/containerd.sock (containerd)");
    // A stray regular file where CRI-O's socket goes: two runtimes, one not a socket.
    r.write("/var/run/crio/crio.sock", "");
    let c = r.check("runtime-socket");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .contains("/var/run/crio/crio.sock exists but is not a socket")
    );
}

#[test]
fn crio_config_with_drop_ins() {
    let r = Root::new();
    r.write("/proc/1/comm", "systemd\n")
        .write(
            "/etc/crio/crio.conf",
            "[crio.runtime]\ncgroup_manager = \"systemd\"\n",
        )
        .write(
            "/etc/crio/crio.conf.d/20-cgroupfs.conf",
            "[crio.runtime]\ncgroup_manager = \"cgroupfs\"\n",
        );
    let c = r.check("runtime-cgroup-driver");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .contains("CRI-O uses cgroupfs: cgroup_manager = \"cgroupfs\" in /etc/crio/crio.conf.d/20-cgroupfs.conf"),
        "{c:?}"
    );
}

#[test]
fn kubelet_config_and_swap() {
    let r = Root::new();
    r.write("/proc/1/comm", "systemd\n")
        .write(
            "/proc/swaps",
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t1048572\t\t0\t\t-2\n",
        )
        .write(
            "/var/lib/kubelet/config.yaml",
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: cgroupfs\n",
        );
    let c = r.check("swap");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .contains("swap on: /swapfile (file, 1048572 KiB)"),
        "{c:?}"
    );
    let c = r.check("kubelet-cgroup-driver");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .contains("cgroupDriver: cgroupfs in /var/lib/kubelet/config.yaml")
    );
    r.write(
        "/var/lib/kubelet/config.yaml",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nfailSwapOn: false\nmemorySwap:\n  swapBehavior: LimitedSwap\n",
    );
    assert_eq!(r.check("swap").verdict, Verdict::Warn);
    assert_eq!(r.check("kubelet-cgroup-driver").verdict, Verdict::Pass);
}

#[test]
fn proc_net_tcp_listeners() {
    let r = Root::new();
    r.write("/proc/net/tcp", TCP);
    r.write("/proc/net/tcp6", "  sl  local_address remote_address st\n");
    let c = r.check("ports");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence.starts_with(
            "6443 (kube-apiserver) is in use by a process not found in /proc on 0.0.0.0"
        ),
        "{c:?}"
    );
    // The holder is found through /proc/PID/fd (a symlink to socket:[INODE]).
    let fd = r.path().join("proc/777/fd");
    std::fs::create_dir_all(&fd).unwrap();
    std::os::unix::fs::symlink("socket:[81234]", fd.join("5")).unwrap();
    r.write("/proc/777/comm", "kube-apiserver\n");
    let c = r.check("ports");
    assert!(
        c.evidence.contains("in use by kube-apiserver (pid 777)"),
        "{c:?}"
    );
    assert!(
        c.fix
            .unwrap()
            .contains("kubeadm would refuse ([ERROR Port-6443])")
    );
    assert_eq!(r.check_as(Role::Worker, "ports").verdict, Verdict::Pass);
}

#[test]
fn binaries_versions_holds_and_kubeadm_files() {
    let r = Root::new();
    r.script("/usr/bin/kubeadm", "v1.30.2");
    r.script("/usr/bin/kubelet", "Kubernetes v1.26.4");
    r.script(
        "/usr/local/bin/kubectl",
        r#"{"clientVersion":{"gitVersion":"v1.30.0"}}"#,
    );
    r.write(
        "/var/lib/dpkg/status",
        "Package: kubeadm\nStatus: hold ok installed\nVersion: 1.30.2-1.1\n\n\
         Package: kubelet\nStatus: install ok installed\nVersion: 1.26.4-1.1\n",
    );
    let c = r.check("binaries");
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert_eq!(
        c.evidence,
        "kubeadm v1.30.2 (/usr/bin/kubeadm); kubelet v1.26.4 (/usr/bin/kubelet); kubectl v1.30.0 (/usr/local/bin/kubectl)"
    );
    let c = r.check("version-skew");
    assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
    assert!(c.evidence.contains("kubelet v1.26.4"), "{c:?}");
    let c = r.check("packages-held");
    assert_eq!(c.verdict, Verdict::Warn);
    assert_eq!(c.fix.as_deref(), Some("apt-mark hold kubelet"));

    r.write(
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "kind: Pod\n",
    );
    let c = r.check("kubeadm-state");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .contains("/etc/kubernetes/manifests/kube-apiserver.yaml")
    );
}

#[test]
fn kernel_sysctls_hostname_time() {
    let r = Root::new();
    r.write(
        "/proc/modules",
        "br_netfilter 32768 0 - Live 0x0000000000000000\n",
    )
    .write("/sys/module/overlay/refcnt", "0\n")
    .write("/proc/sys/net/ipv4/ip_forward", "1\n")
    .write("/proc/sys/net/bridge/bridge-nf-call-iptables", "0\n")
    .write("/proc/sys/kernel/hostname", "cp-1\n")
    .write(
        "/sys/class/dmi/id/product_uuid",
        "4C4C4544-0042-3510-8052-B4C04F4E3332\n",
    )
    .write("/usr/sbin/chronyd", "");
    assert_eq!(r.check("kernel-modules").verdict, Verdict::Pass);
    let c = r.check("sysctls");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .starts_with("net.bridge.bridge-nf-call-iptables = 0"),
        "{c:?}"
    );
    assert_eq!(
        c.fix.as_deref(),
        Some(
            "sysctl -w net.bridge.bridge-nf-call-iptables=1 and put them in /etc/sysctl.d/k8s.conf"
        )
    );
    assert_eq!(r.check("hostname").verdict, Verdict::Pass);
    let c = r.check("node-identity");
    assert!(
        c.evidence.contains("4c4c4544-0042-3510-8052-b4c04f4e3332"),
        "{c:?}"
    );
    let c = r.check("time-sync");
    assert_eq!(c.verdict, Verdict::Warn);
    assert!(c.evidence.contains("installed: chrony"), "{c:?}");
}

#[test]
fn peers_from_facts_files() {
    let r = Root::new();
    r.write("/proc/sys/kernel/hostname", "cp-1\n")
        .write("/sys/class/dmi/id/product_uuid", "aaaa\n");
    let mine = read::read(&r.opts());
    let json = serde_json::to_string(&vec![mine.clone()]).unwrap();
    let peers = kastellan_preflight::parse_peers("peers.json", &json).unwrap();
    let mut req = Request::new(Role::Worker);
    req.peers = Some(peers);
    let c = check(&mine, &req).get("node-identity").cloned().unwrap();
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(
        c.evidence,
        "hostname cp-1 also on another node; product_uuid aaaa also on cp-1"
    );
    let yaml = "identity:\n  hostname: w-9\n  productUuid: bbbb\n  macs: []\n";
    let peers = kastellan_preflight::parse_peers("peers.yaml", yaml).unwrap();
    assert_eq!(peers[0].hostname.as_deref(), Some("w-9"));
    assert!(kastellan_preflight::parse_peers("x", "[1, 2").is_err());
}

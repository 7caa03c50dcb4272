//! Table tests of every verdict on facts parsed from real file contents.

use super::*;
use crate::facts;

const CONTAINERD_SYSTEMD: &str = r#"version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.9"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = true
"#;

const CONTAINERD_CGROUPFS: &str = r#"version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
"#;

/// containerd 2.x layout.
const CONTAINERD_V3_SYSTEMD: &str = r#"version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
"#;

/// What the containerd.io package of Docker ships.
const CONTAINERD_DOCKER_PACKAGE: &str = r#"#   Copyright 2018-2022 Docker Inc.
disabled_plugins = ["cri"]
#root = "/var/lib/containerd"
"#;

const KUBELET_SYSTEMD: &str = "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
";

const KUBELET_SWAP: &str = "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
failSwapOn: false
memorySwap:
  swapBehavior: LimitedSwap
";

fn base() -> Facts {
    Facts {
        identity: Identity {
            hostname: Some("node-1".into()),
            product_uuid: Some("4c4c4544-0042-3510-8052-b4c04f4e3332".into()),
            macs: vec!["52:54:00:12:34:56".into()],
        },
        init: Some("systemd".into()),
        cgroup: CgroupVersion::V2,
        containerd: Some(facts::parse_containerd(
            "/etc/containerd/config.toml",
            CONTAINERD_SYSTEMD,
        )),
        sockets: vec![CriSocket {
            runtime: "containerd".into(),
            path: "/run/containerd/containerd.sock".into(),
            is_socket: true,
        }],
        interfaces: facts::parse_ip_addr(
            r#"[{"ifname":"lo","flags":["LOOPBACK","UP"],"link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[{"local":"127.0.0.1","prefixlen":8,"scope":"host"}]},
                {"ifname":"eth0","flags":["UP"],"link_type":"ether","address":"52:54:00:12:34:56","addr_info":[{"local":"192.168.1.5","prefixlen":24,"scope":"global"}]},
                {"ifname":"eth1","flags":["UP"],"link_type":"ether","address":"52:54:00:ab:cd:ef","addr_info":[{"local":"172.20.0.5","prefixlen":16,"scope":"global"}]}]"#,
        )
        .unwrap(),
        routes: facts::parse_ip_route(
            r#"[{"dst":"default","gateway":"192.168.1.1","dev":"eth0","metric":100},
                {"dst":"192.168.1.0/24","dev":"eth0"},{"dst":"172.20.0.0/16","dev":"eth1"}]"#,
            false,
        )
        .unwrap(),
        modules: ["br_netfilter", "overlay"]
            .iter()
            .map(|m| Module {
                name: m.to_string(),
                loaded: true,
            })
            .collect(),
        sysctls: crate::read::SYSCTLS
            .iter()
            .map(|s| Sysctl {
                name: s.to_string(),
                value: Some("1".into()),
            })
            .collect(),
        binaries: [
            ("kubeadm", "v1.30.2"),
            ("kubelet", "v1.30.2"),
            ("kubectl", "v1.30.1"),
        ]
        .iter()
        .map(|(n, v)| Binary {
            name: n.to_string(),
            path: Some(format!("/usr/bin/{n}")),
            version: Some(v.to_string()),
            problem: None,
        })
        .collect(),
        packages: Some(facts::parse_dpkg_status(
            "Package: kubeadm\nStatus: hold ok installed\nVersion: 1.30.2-1.1\n\n\
             Package: kubelet\nStatus: hold ok installed\nVersion: 1.30.2-1.1\n\n\
             Package: kubectl\nStatus: hold ok installed\nVersion: 1.30.1-1.1\n",
        )),
        time_sync: TimeSync {
            synchronized: Some(true),
            daemons: vec!["chrony".into()],
        },
        ..Facts::default()
    }
}

fn cp() -> Request {
    Request::new(Role::ControlPlane)
}

fn verdict(f: &Facts, req: &Request, id: &str) -> Check {
    check(f, req).get(id).cloned().unwrap()
}

#[test]
fn a_prepared_node_passes_everything() {
    let r = check(&base(), &cp());
    for c in &r.checks {
        assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    }
    assert_eq!(r.verdict, Verdict::Pass);
    assert_eq!(r.checks.len(), 19);
    let a = r.get("advertise-address").unwrap();
    assert!(a.evidence.contains("192.168.1.5 (eth0"), "{a:?}");
}

#[test]
fn runtime_cgroup_driver_against_pid_1() {
    let mut f = base();
    f.containerd = Some(facts::parse_containerd(
        "/etc/containerd/config.toml",
        CONTAINERD_CGROUPFS,
    ));
    let c = verdict(&f, &cp(), "runtime-cgroup-driver");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.evidence.contains("containerd uses cgroupfs"), "{c:?}");
    assert!(c.evidence.contains("SystemdCgroup = false"), "{c:?}");
    assert!(c.fix.unwrap().contains("SystemdCgroup = true"));

    // Without systemd as PID 1, cgroupfs is the one that agrees.
    f.init = Some("bash".into());
    f.kubelet = Some(facts::parse_kubelet_config(
        "/var/lib/kubelet/config.yaml",
        "kind: KubeletConfiguration\n",
    ));
    assert_eq!(
        verdict(&f, &cp(), "runtime-cgroup-driver").verdict,
        Verdict::Pass
    );
    assert_eq!(
        verdict(&f, &cp(), "kubelet-cgroup-driver").verdict,
        Verdict::Pass
    );

    let mut f = base();
    f.containerd = Some(facts::parse_containerd("/c.toml", CONTAINERD_V3_SYSTEMD));
    assert_eq!(
        verdict(&f, &cp(), "runtime-cgroup-driver").verdict,
        Verdict::Pass
    );

    f.containerd = Some(facts::parse_containerd(
        "/c.toml",
        CONTAINERD_DOCKER_PACKAGE,
    ));
    let c = verdict(&f, &cp(), "runtime-cgroup-driver");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.evidence.contains("disables the CRI plugin"), "{c:?}");

    f.containerd = None;
    let c = verdict(&f, &cp(), "runtime-cgroup-driver");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence.starts_with("no container runtime found"),
        "{c:?}"
    );
}

#[test]
fn crio_drop_ins_override_the_main_file() {
    let mut f = base();
    f.containerd = None;
    f.crio = Some(facts::parse_crio(&[
        (
            "/etc/crio/crio.conf".into(),
            "[crio.runtime]\ncgroup_manager = \"systemd\"\n".into(),
        ),
        (
            "/etc/crio/crio.conf.d/10-cgroupfs.conf".into(),
            "[crio.runtime]\ncgroup_manager = \"cgroupfs\"\nconmon_cgroup = \"pod\"\n".into(),
        ),
    ]));
    let c = verdict(&f, &cp(), "runtime-cgroup-driver");
    assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
    assert!(c.evidence.contains("CRI-O uses cgroupfs"), "{c:?}");
    assert!(c.evidence.contains("10-cgroupfs.conf"), "{c:?}");
    assert!(c.fix.unwrap().contains("cgroup_manager = \"systemd\""));
    // CRI-O's default is systemd.
    f.crio = Some(facts::parse_crio(&[(
        "/etc/crio/crio.conf".into(),
        "[crio]\n".into(),
    )]));
    assert_eq!(
        verdict(&f, &cp(), "runtime-cgroup-driver").verdict,
        Verdict::Pass
    );
}

#[test]
fn kubelet_cgroup_driver() {
    let mut f = base();
    f.kubelet = Some(facts::parse_kubelet_config(
        "/var/lib/kubelet/config.yaml",
        KUBELET_SYSTEMD,
    ));
    assert_eq!(
        verdict(&f, &cp(), "kubelet-cgroup-driver").verdict,
        Verdict::Pass
    );
    f.kubelet = Some(facts::parse_kubelet_config(
        "/var/lib/kubelet/config.yaml",
        "kind: KubeletConfiguration\ncgroupDriver: cgroupfs\n",
    ));
    let c = verdict(&f, &cp(), "kubelet-cgroup-driver");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .contains("cgroupDriver: cgroupfs in /var/lib/kubelet/config.yaml")
    );
    f.kubelet = Some(facts::parse_kubelet_config("/k.yaml", "a: [unclosed\n"));
    assert_eq!(
        verdict(&f, &cp(), "kubelet-cgroup-driver").verdict,
        Verdict::Fail
    );
    // No file yet, PID 1 not systemd: kubeadm's default would not agree.
    f.kubelet = None;
    f.init = Some("init".into());
    let c = verdict(&f, &cp(), "kubelet-cgroup-driver");
    assert_eq!(c.verdict, Verdict::Warn, "{c:?}");
}

#[test]
fn swap_fails_unless_the_kubelet_allows_it() {
    let mut f = base();
    f.swaps = facts::parse_swaps(
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swap.img                               file\t\t4194300\t\t0\t\t-2\n",
    );
    let c = verdict(&f, &cp(), "swap");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence.contains("/swap.img (file, 4194300 KiB)"),
        "{c:?}"
    );
    assert!(c.fix.unwrap().starts_with("swapoff -a"));
    f.kubelet = Some(facts::parse_kubelet_config(
        "/var/lib/kubelet/config.yaml",
        KUBELET_SWAP,
    ));
    let c = verdict(&f, &cp(), "swap");
    assert_eq!(c.verdict, Verdict::Warn);
    assert!(c.evidence.contains("swapBehavior: LimitedSwap"), "{c:?}");
}

fn listener(port: u16, name: Option<&str>) -> Listener {
    Listener {
        addr: "0.0.0.0".parse().unwrap(),
        port,
        inode: 1,
        process: name.map(|n| Process {
            pid: 4242,
            name: n.into(),
        }),
    }
}

#[test]
fn ports_name_the_port_and_the_holder() {
    let mut f = base();
    f.listeners = vec![listener(10259, Some("nginx")), listener(22, Some("sshd"))];
    let c = verdict(&f, &cp(), "ports");
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(
        c.evidence,
        "10259 (kube-scheduler) is in use by nginx (pid 4242) on 0.0.0.0"
    );
    assert!(c.fix.unwrap().starts_with("stop the process"));
    // A worker does not need 10259, but warns about the NodePort range.
    let w = Request::new(Role::Worker);
    assert_eq!(verdict(&f, &w, "ports").verdict, Verdict::Pass);
    f.listeners.push(listener(31000, None));
    let c = verdict(&f, &w, "ports");
    assert_eq!(c.verdict, Verdict::Warn);
    assert!(c.evidence.contains("31000 by a process not found"), "{c:?}");
    // One process on two addresses is named once; two processes each.
    f.listeners = vec![
        Listener {
            addr: "127.0.0.1".parse().unwrap(),
            ..listener(2379, Some("etcd"))
        },
        Listener {
            addr: "10.0.0.5".parse().unwrap(),
            ..listener(2379, Some("etcd"))
        },
        Listener {
            addr: "::1".parse().unwrap(),
            ..listener(2379, None)
        },
    ];
    assert_eq!(
        verdict(&f, &cp(), "ports").evidence,
        "2379 (etcd client) is in use by etcd (pid 4242) on 10.0.0.5, 127.0.0.1 and a process not found in /proc on ::1"
    );
    // A running control plane: kubeadm would refuse.
    f.listeners = vec![
        listener(6443, Some("kube-apiserver")),
        listener(2379, Some("etcd")),
    ];
    let c = verdict(&f, &cp(), "ports");
    assert!(
        c.evidence
            .contains("6443 (kube-apiserver) is in use by kube-apiserver")
    );
    assert!(c.fix.unwrap().contains("[ERROR Port-6443]"));
}

#[test]
fn cidrs_against_each_other_and_the_host() {
    let mut f = base();
    f.routes.extend(
        facts::parse_ip_route(r#"[{"dst":"10.244.0.0/16","dev":"flannel.1"}]"#, false).unwrap(),
    );
    let mut req = cp();
    req.pod_cidr = Some("10.244.0.0/16".parse().unwrap());
    let c = verdict(&f, &req, "pod-network-cidr");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence.contains("route 10.244.0.0/16 dev flannel.1"),
        "{c:?}"
    );
    assert!(c.fix.unwrap().contains("e.g. 10.32.0.0/16"));

    req.pod_cidr = Some("192.168.0.0/16".parse().unwrap());
    let c = verdict(&f, &req, "pod-network-cidr");
    assert!(
        c.evidence.contains("address 192.168.1.5/24 on eth0"),
        "{c:?}"
    );

    req.pod_cidr = Some("10.0.0.0/8".parse().unwrap());
    let c = verdict(&f, &req, "pod-network-cidr");
    assert!(
        c.evidence.contains("the Service CIDR 10.96.0.0/12"),
        "{c:?}"
    );

    req.pod_cidr = Some("10.32.0.0/16".parse().unwrap());
    req.service_cidr = "172.20.0.0/16".parse().unwrap();
    assert_eq!(verdict(&f, &req, "pod-network-cidr").verdict, Verdict::Pass);
    let c = verdict(&f, &req, "service-cidr");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.evidence.contains("eth1"), "{c:?}");
    req.service_cidr = "10.0.0.0/8".parse().unwrap();
    assert!(
        verdict(&f, &req, "service-cidr")
            .evidence
            .contains("larger than /12")
    );
}

#[test]
fn node_cidrs_fit_the_node_count() {
    let f = base();
    let mut req = cp();
    req.pod_cidr = Some("10.244.0.0/16".parse().unwrap());
    req.nodes = Some(200);
    let c = verdict(&f, &req, "node-cidrs");
    assert_eq!(c.verdict, Verdict::Pass);
    assert_eq!(
        c.evidence,
        "10.244.0.0/16 in /24 per node: room for 256 node(s), 200 wanted, 254 pod addresses each"
    );
    req.nodes = Some(300);
    let c = verdict(&f, &req, "node-cidrs");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.fix.unwrap().contains("/15"));
    req.node_mask = Some(26);
    req.nodes = Some(3);
    assert_eq!(verdict(&f, &req, "node-cidrs").verdict, Verdict::Warn);
    req.node_mask = Some(12);
    assert!(
        verdict(&f, &req, "node-cidrs")
            .evidence
            .contains("larger than the whole")
    );
    req.pod_cidr = Some("10.0.0.0/8".parse().unwrap());
    req.node_mask = Some(28);
    assert!(verdict(&f, &req, "node-cidrs").evidence.contains("16 bits"));
    req.pod_cidr = Some("fd00:10:244::/56".parse().unwrap());
    req.node_mask = None;
    let c = verdict(&f, &req, "node-cidrs");
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!(c.evidence.contains("/64 per node: room for 256"), "{c:?}");
}

#[test]
fn advertise_address() {
    let mut f = base();
    let mut req = cp();
    req.advertise = Some("172.20.0.5".parse().unwrap());
    let c = verdict(&f, &req, "advertise-address");
    assert_eq!(c.verdict, Verdict::Pass);
    assert!(c.evidence.contains("172.20.0.5 is on eth1; differs from the default: a default kubeadm init would pick 192.168.1.5 (eth0"), "{c:?}");
    req.advertise = Some("127.0.0.1".parse().unwrap());
    assert!(
        verdict(&f, &req, "advertise-address")
            .evidence
            .contains("loopback")
    );
    req.advertise = Some("10.1.1.1".parse().unwrap());
    let c = verdict(&f, &req, "advertise-address");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .contains("not an address of this host (it has 192.168.1.5 (eth0), 172.20.0.5 (eth1))"),
        "{c:?}"
    );
    // No default route: a default kubeadm init cannot pick one.
    f.routes.retain(|r| r.dst.is_some());
    req.advertise = None;
    let c = verdict(&f, &req, "advertise-address");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence.contains("kubeadm init would fail to pick"),
        "{c:?}"
    );
    req.advertise = Some("172.20.0.5".parse().unwrap());
    let c = verdict(&f, &req, "advertise-address");
    assert_eq!(c.verdict, Verdict::Pass);
    assert!(c.evidence.contains("could not pick one"), "{c:?}");
}

#[test]
fn kernel_sysctls_binaries_packages_time() {
    let mut f = base();
    f.modules[0].loaded = false;
    f.sysctls[0].value = Some("0".into());
    f.sysctls[1].value = None;
    let r = check(&f, &cp());
    let m = r.get("kernel-modules").unwrap();
    assert_eq!(m.verdict, Verdict::Fail);
    assert!(
        m.fix
            .as_deref()
            .unwrap()
            .starts_with("modprobe br_netfilter")
    );
    let s = r.get("sysctls").unwrap();
    assert_eq!(s.verdict, Verdict::Fail);
    assert!(s.evidence.contains("net.ipv4.ip_forward = 0"), "{s:?}");
    assert!(s.evidence.contains("br_netfilter not loaded"), "{s:?}");

    let mut f = base();
    f.binaries[1].path = None;
    f.binaries[1].version = None;
    let c = verdict(&f, &cp(), "binaries");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.evidence.contains("not on the search path: kubelet"));
    f.binaries[1] = Binary {
        name: "kubelet".into(),
        path: Some("/usr/bin/kubelet".into()),
        version: Some("v1.28.0".into()),
        problem: None,
    };
    let c = verdict(&f, &cp(), "version-skew");
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    f.binaries[1].version = Some("v1.26.0".into());
    let c = verdict(&f, &cp(), "version-skew");
    assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
    assert!(c.evidence.contains("kubelet v1.26.0"), "{c:?}");
    f.binaries[2].version = Some("v1.32.0".into());
    assert!(
        verdict(&f, &cp(), "version-skew")
            .evidence
            .contains("kubectl")
    );

    let mut f = base();
    f.packages = Some(facts::parse_dpkg_status(
        "Package: kubelet\nStatus: install ok installed\nVersion: 1.30.2-1.1\n",
    ));
    let c = verdict(&f, &cp(), "packages-held");
    assert_eq!(c.verdict, Verdict::Warn);
    assert_eq!(c.fix.as_deref(), Some("apt-mark hold kubelet"));
    f.time_sync.synchronized = None;
    let c = verdict(&f, &cp(), "time-sync");
    assert_eq!(c.verdict, Verdict::Warn);
    assert!(c.evidence.contains("installed: chrony"));
}

#[test]
fn hostnames_and_peers() {
    for (name, ok) in [
        ("node-1", true),
        ("cp1.example.com", true),
        ("Node-1", false),
        ("node_1", false),
        ("-node", false),
        ("a..b", false),
    ] {
        assert_eq!(invalid_node_name(name).is_none(), ok, "{name}");
    }
    let mut f = base();
    f.identity.hostname = Some("Worker_1".into());
    let c = verdict(&f, &cp(), "hostname");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.evidence.contains("uppercase"), "{c:?}");

    let f = base();
    let mut req = cp();
    req.peers = Some(vec![
        Identity {
            hostname: Some("node-2".into()),
            product_uuid: Some("4c4c4544-0042-3510-8052-b4c04f4e3332".into()),
            macs: vec!["52:54:00:ab:cd:ef".into()],
        },
        Identity {
            hostname: Some("node-1".into()),
            product_uuid: None,
            macs: vec!["52:54:00:12:34:56".into()],
        },
    ]);
    let c = verdict(&f, &req, "node-identity");
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(
        c.evidence,
        "product_uuid 4c4c4544-0042-3510-8052-b4c04f4e3332 also on node-2; \
         hostname node-1 also on another node; MAC 52:54:00:12:34:56 also on node-1"
    );
}

#[test]
fn a_node_set_up_before() {
    let mut f = base();
    f.kubeadm_files = vec!["/etc/kubernetes/manifests/kube-apiserver.yaml".into()];
    let c = verdict(&f, &cp(), "kubeadm-state");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.evidence.contains("kubeadm init or join would refuse"));
}

#[test]
fn the_report_serialises() {
    let r = check(&base(), &cp());
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["role"], "control-plane");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["checks"][0]["id"], "hostname");
    let back: Report = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
}

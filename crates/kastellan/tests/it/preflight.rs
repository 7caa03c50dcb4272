//! `kastellan preflight`: tier `netns` builds hosts in network namespaces of the test's
//! own (`kst-pf-*`: veth interfaces, addresses, routes, a listener) and runs the
//! binary inside them with `ip netns exec` (root); tier `cli` runs it on prepared root
//! directories only. No traffic leaves loopback or the test's namespaces.

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use crate::LabGuard;
use crate::kastellan;
use crate::output_text as text;

/// The kastellan binary under test.
fn bin() -> PathBuf {
    PathBuf::from(assert_cmd::cargo::cargo_bin!("kastellan"))
}

/// A network namespace of this test, deleted when dropped (also on failure).
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("kst-pf-{tag}-{}", std::process::id());
        // A leftover of a killed run with this pid would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS...`, which must succeed.
    fn ip(&self, args: &[&str]) {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args));
    }

    /// An interface `name` with `addr` (CIDR), up: one end of a veth pair whose
    /// other end (`<name>p`) stays in the namespace too (this kernel may lack dummy
    /// interfaces).
    fn link(&self, name: &str, addr: &str) {
        let peer = format!("{name}p");
        self.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]);
        self.ip(&["addr", "add", addr, "dev", name]);
        self.ip(&["link", "set", name, "up"]);
        self.ip(&["link", "set", &peer, "up"]);
    }

    /// `kastellan preflight ARGS...` inside the namespace, with PATH limited to the
    /// system directories (where a test root keeps its stand-in binaries).
    fn preflight(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(bin())
            .arg("preflight")
            .args(args)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A process listening on a TCP port inside a namespace; killed by its pid when
/// dropped.
struct Listener {
    child: Child,
}

impl Listener {
    fn start(ns: &Netns, port: u16) -> Listener {
        let script = format!(
            "import socket, sys, time\n\
             s = socket.socket()\n\
             s.bind(('0.0.0.0', {port}))\n\
             s.listen()\n\
             print('ready', flush=True)\n\
             time.sleep(300)\n"
        );
        // `ip netns exec` replaces itself with the command: the child's pid is python's.
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "/usr/bin/python3", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the listener did not start");
        Listener { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON report of a `-o json` run.
fn report(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {}", text(o)))
}

/// One check of a report: (verdict, evidence, fix).
fn check(report: &Value, id: &str) -> (String, String, String) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {report}"));
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (s("verdict"), s("evidence"), s("fix"))
}

/// A root directory prepared as a node ready for `kubeadm init`: systemd as PID 1,
/// cgroup v2, containerd with SystemdCgroup and its socket (a real one, bound by the
/// test), the modules and sysctls, kubeadm/kubelet/kubectl v1.30.2 (stand-in scripts)
/// held in dpkg, a hostname and product_uuid. Its `proc/net` is the real one, so the
/// listening sockets are those of the namespace the command runs in.
struct ReadyRoot {
    dir: tempfile::TempDir,
    _socket: std::os::unix::net::UnixListener,
}

impl ReadyRoot {
    fn new() -> ReadyRoot {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let w = |rel: &str, text: &str| write(root, rel, text);
        w("proc/1/comm", "systemd\n");
        w(
            "proc/swaps",
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
        );
        w(
            "proc/modules",
            "br_netfilter 32768 0 - Live 0x0\noverlay 151552 0 - Live 0x0\n",
        );
        w("proc/sys/net/ipv4/ip_forward", "1\n");
        w("proc/sys/net/bridge/bridge-nf-call-iptables", "1\n");
        w("proc/sys/kernel/hostname", "node-a\n");
        std::os::unix::fs::symlink("/proc/net", root.join("proc/net")).unwrap();
        w(
            "sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory pids\n",
        );
        w(
            "sys/class/dmi/id/product_uuid",
            "0f1e2d3c-aaaa-bbbb-cccc-000000000001\n",
        );
        w(
            "etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n",
        );
        std::fs::create_dir_all(root.join("run/containerd")).unwrap();
        let socket =
            std::os::unix::net::UnixListener::bind(root.join("run/containerd/containerd.sock"))
                .unwrap();
        for (name, out) in [
            ("kubeadm", "v1.30.2"),
            ("kubelet", "Kubernetes v1.30.2"),
            ("kubectl", r#"{"clientVersion":{"gitVersion":"v1.30.2"}}"#),
        ] {
            let p = format!("usr/bin/{name}");
            w(&p, &format!("#!/bin/sh\necho '{out}'\n"));
            std::fs::set_permissions(root.join(&p), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let status: String = ["kubeadm", "kubelet", "kubectl"]
            .iter()
            .map(|p| format!("Package: {p}\nStatus: hold ok installed\nVersion: 1.30.2-1.1\n\n"))
            .collect();
        w("var/lib/dpkg/status", &status);
        w("usr/sbin/chronyd", "");
        ReadyRoot {
            dir,
            _socket: socket,
        }
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A host whose only route to 10.244.0.0/16 is its own: the pod CIDR overlaps it and
/// fails (exit 1, the route named, another CIDR suggested); the same host without that
/// route is ready (exit 0, only the unknowable time sync warned about).
#[test]
fn netns_preflight_pod_cidr_against_the_hosts_routes() {
    let root = ReadyRoot::new();
    let ns = Netns::new("route");
    ns.link("kst0", "192.168.77.10/24");
    ns.ip(&[
        "route",
        "add",
        "default",
        "via",
        "192.168.77.1",
        "dev",
        "kst0",
    ]);
    let args = [
        "--root",
        root.path(),
        "--pod-network-cidr",
        "10.244.0.0/16",
        "--nodes",
        "3",
        "--apiserver-advertise-address",
        "192.168.77.10",
        "-o",
        "json",
    ];

    let ready = ns.preflight(&args);
    let r = report(&ready);
    let not_pass: Vec<&Value> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] != "pass")
        .collect();
    assert_eq!(
        not_pass
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["time-sync"],
        "{}",
        text(&ready)
    );
    assert_eq!(ready.status.code(), Some(0), "{}", text(&ready));
    let (v, evidence, _) = check(&r, "pod-network-cidr");
    assert_eq!(v, "pass");
    assert_eq!(
        evidence,
        "10.244.0.0/16 overlaps neither the Service CIDR 10.96.0.0/12, this host's addresses nor its routes"
    );
    let (_, evidence, _) = check(&r, "advertise-address");
    assert_eq!(
        evidence,
        "192.168.77.10 is on kst0; the same as a default kubeadm init would pick"
    );
    let (_, evidence, _) = check(&r, "ports");
    assert_eq!(evidence, "6443, 2379, 2380, 10250, 10257, 10259 free");
    // What a user sees on an 80-column terminal.
    let mut table = Command::new("ip");
    table
        .args(["netns", "exec", &ns.name])
        .arg(bin())
        .arg("preflight")
        .args(&args[..args.len() - 2])
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("NO_COLOR", "1")
        .env("COLUMNS", "80");
    let table = table.output().unwrap();
    assert_eq!(table.status.code(), Some(0), "{}", text(&table));
    insta::assert_snapshot!(
        "preflight_ready_table",
        String::from_utf8_lossy(&table.stdout)
    );

    ns.ip(&[
        "route",
        "add",
        "10.244.0.0/16",
        "via",
        "192.168.77.1",
        "dev",
        "kst0",
    ]);
    let overlapping = ns.preflight(&args);
    assert_eq!(overlapping.status.code(), Some(1), "{}", text(&overlapping));
    let r = report(&overlapping);
    assert_eq!(r["verdict"], "fail");
    let (v, evidence, fix) = check(&r, "pod-network-cidr");
    assert_eq!(v, "fail");
    assert_eq!(
        evidence,
        "10.244.0.0/16 overlaps route 10.244.0.0/16 via 192.168.77.1 dev kst0"
    );
    assert_eq!(
        fix,
        "pick a --pod-network-cidr that overlaps none of them, e.g. 10.32.0.0/16"
    );

    // An address in the Service network fails that one too; the human view says so.
    ns.link("kst1", "10.96.0.5/24");
    let table = ns.preflight(&args[..args.len() - 2]);
    assert_eq!(table.status.code(), Some(1));
    let shown = String::from_utf8_lossy(&table.stdout);
    assert!(
        shown.contains(
            "FAIL service-cidr: 10.96.0.0/12 overlaps address 10.96.0.5/24 on kst1, route 10.96.0.0/24 dev kst1"
        ),
        "{shown}"
    );
    assert!(shown.contains("not ready as a control plane:"), "{shown}");
}

/// A port a control plane needs, held by a process the test started in the namespace:
/// failed with the port, the process and its pid named; a worker does not need 6443,
/// but a listener in the NodePort range is warned about.
#[test]
fn netns_preflight_names_an_occupied_port_and_its_process() {
    let ns = Netns::new("port");
    ns.link("kst0", "192.168.78.10/24");
    let apiserver = Listener::start(&ns, 6443);
    let out = ns.preflight(&["-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = report(&out);
    let (v, evidence, fix) = check(&r, "ports");
    assert_eq!(v, "fail");
    assert_eq!(
        evidence,
        format!(
            "6443 (kube-apiserver) is in use by python3 (pid {}) on 0.0.0.0",
            apiserver.pid()
        )
    );
    assert_eq!(
        fix,
        "stop the process holding the port, or move it to another port"
    );

    let node_port = Listener::start(&ns, 30080);
    let out = ns.preflight(&["--role", "worker", "-o", "json"]);
    let (v, evidence, _) = check(&report(&out), "ports");
    assert_eq!(v, "warn");
    assert_eq!(
        evidence,
        format!(
            "10250 free; in the NodePort range: 30080 by python3 (pid {}) on 0.0.0.0",
            node_port.pid()
        )
    );
}

/// Without a default route a default `kubeadm init` cannot pick an address: failed;
/// a loopback or foreign advertise address fails, the host's own passes.
#[test]
fn netns_preflight_advertise_address_without_a_default_route() {
    let ns = Netns::new("adv");
    ns.link("kst0", "192.168.79.10/24");
    let verdict = |extra: &[&str]| {
        let mut args = vec!["-o", "json"];
        args.extend_from_slice(extra);
        let out = ns.preflight(&args);
        check(&report(&out), "advertise-address")
    };
    let (v, evidence, fix) = verdict(&[]);
    assert_eq!(v, "fail");
    assert!(
        evidence.starts_with("no default route: kubeadm init would fail to pick an address"),
        "{evidence}"
    );
    assert!(fix.contains("--apiserver-advertise-address"), "{fix}");
    let (v, evidence, _) = verdict(&["--apiserver-advertise-address", "127.0.0.1"]);
    assert_eq!(v, "fail");
    assert!(
        evidence.starts_with("127.0.0.1 is a loopback address"),
        "{evidence}"
    );
    let (v, evidence, _) = verdict(&["--apiserver-advertise-address", "192.168.79.99"]);
    assert_eq!(v, "fail");
    assert!(
        evidence.starts_with(
            "192.168.79.99 is not an address of this host (it has 192.168.79.10 (kst0))"
        ),
        "{evidence}"
    );
    let (v, evidence, _) = verdict(&["--apiserver-advertise-address", "192.168.79.10"]);
    assert_eq!(v, "pass");
    assert!(evidence.contains("could not pick one"), "{evidence}");
}

/// A swap file in the test root's /proc/swaps: failed, named, exit 1; the table fits
/// 80 columns.
#[test]
fn cli_preflight_swap_in_a_test_root() {
    let root = tempfile::tempdir().unwrap();
    write(
        root.path(),
        "proc/swaps",
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t2097148\t\t0\t\t-2\n",
    );
    let out = kastellan()
        .args(["preflight", "--root"])
        .arg(root.path())
        .env("COLUMNS", "80")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    for line in shown.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}\n{shown}"
        );
    }
    assert!(
        shown.contains("FAIL swap: swap on: /swapfile (file, 2097148 KiB); the kubelet"),
        "{shown}"
    );
    assert!(
        shown.contains("  fix: swapoff -a and remove swap from"),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with(" swap ") && l.contains("FAIL")),
        "{shown}"
    );
}

/// Bad input exits 2 with the flag named; nothing is checked.
#[test]
fn cli_preflight_bad_input_exits_2_naming_the_flag() {
    for (args, said) in [
        (
            vec!["--pod-network-cidr", "10.244.0.0/33"],
            "--pod-network-cidr",
        ),
        (vec!["--service-cidr", "10.96.0.0"], "--service-cidr"),
        (
            vec![
                "--pod-network-cidr",
                "10.244.0.0/16",
                "--node-cidr-mask-size",
                "40",
            ],
            "--node-cidr-mask-size 40",
        ),
        (
            vec!["--apiserver-advertise-address", "10.1"],
            "--apiserver-advertise-address",
        ),
        (
            vec!["--peers", "/nonexistent/peers.json"],
            "--peers /nonexistent/peers.json",
        ),
        (vec!["--role", "etcd"], "--role"),
    ] {
        let out = kastellan().arg("preflight").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
    }
}

/// `--facts -o json` of one node is another's `--peers`: the same node twice clashes
/// on hostname and product_uuid.
#[test]
fn cli_preflight_facts_feed_peers() {
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "proc/sys/kernel/hostname", "node-b\n");
    write(root.path(), "sys/class/dmi/id/product_uuid", "ABCD-1\n");
    let facts = kastellan()
        .args(["preflight", "--facts", "-o", "json", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(facts.status.code(), Some(0), "{}", text(&facts));
    let v: Value = serde_json::from_slice(&facts.stdout).unwrap();
    assert_eq!(v["identity"]["hostname"], "node-b");
    assert_eq!(v["identity"]["productUuid"], "abcd-1");
    // The YAML form is read as well.
    let yaml = kastellan()
        .args(["preflight", "--facts", "-o", "yaml", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    for (name, doc) in [("peers.json", &facts.stdout), ("peers.yaml", &yaml.stdout)] {
        let peers = root.path().join(name);
        std::fs::write(&peers, doc).unwrap();
        let out = kastellan()
            .args(["preflight", "-o", "json", "--root"])
            .arg(root.path())
            .arg("--peers")
            .arg(&peers)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
        let (v, evidence, _) = check(&report(&out), "node-identity");
        assert_eq!(v, "fail", "{name}");
        // The MACs are this host's (read from its network), the same on both sides.
        assert!(
            evidence.starts_with("hostname node-b also on another node; ")
                && evidence.ends_with("; product_uuid abcd-1 also on node-b"),
            "{name}: {evidence}"
        );
    }
}

/// Whether this host has a container runtime a lab node would see (the nodes share the
/// host's /etc and /run).
fn host_has_a_runtime() -> bool {
    [
        "/etc/containerd/config.toml",
        "/etc/crio/crio.conf",
        "/etc/crio/crio.conf.d",
        "/run/containerd/containerd.sock",
        "/var/run/crio/crio.sock",
        "/var/run/cri-dockerd.sock",
    ]
    .iter()
    .any(|p| Path::new(p).exists())
}

/// `preflight` inside the lab's running control plane explains it: no container
/// runtime (the lab's agent runs static pods as processes), the control plane's
/// ports held by its own processes (the pids the agent reports), the kubeadm files
/// present, so kubeadm would refuse; the node's hostname and the address a default
/// kubeadm init would pick (its eth0, the default route's interface).
#[test]
fn lab_preflight_explains_the_lab_node() {
    let _lock = crate::lab_lock();
    let _guard = LabGuard;
    let started = std::time::Instant::now();
    let up = kastellan().args(["lab", "up"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    let apiserver = crate::lab::pod_process("cp1", "kube-apiserver").proc.pid;
    let etcd = crate::lab::pod_process("cp1", "etcd").proc.pid;

    let out = kastellan()
        .args(["lab", "exec", "cp1", "--"])
        .arg(bin())
        .args(["preflight", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = report(&out);
    assert_eq!(r["verdict"], "fail");

    let (v, evidence, fix) = check(&r, "ports");
    assert_eq!(v, "fail");
    assert!(
        evidence.starts_with(&format!(
            "6443 (kube-apiserver) is in use by kube-apiserver (pid {apiserver}) on "
        )),
        "{evidence}"
    );
    assert!(
        evidence.contains(&format!(
            "2379 (etcd client) is in use by etcd (pid {etcd}) on 10.77.0.11, 127.0.0.1;"
        )),
        "{evidence}"
    );
    assert!(
        fix.starts_with("Kubernetes already runs here: kubeadm would refuse ([ERROR Port-6443])"),
        "{fix}"
    );
    let (v, evidence, _) = check(&r, "kubeadm-state");
    assert_eq!(v, "fail");
    assert!(
        evidence.starts_with(
            "this node was set up before: /etc/kubernetes/manifests/kube-apiserver.yaml, "
        ) && evidence.contains("kubeadm init or join would refuse"),
        "{evidence}"
    );
    if host_has_a_runtime() {
        eprintln!("this host has a container runtime; the lab node sees it: not asserted");
    } else {
        for id in ["runtime-socket", "runtime-cgroup-driver"] {
            let (v, evidence, _) = check(&r, id);
            assert_eq!(v, "fail", "{id}");
            assert!(
                evidence.starts_with("no container runtime found"),
                "{id}: {evidence}"
            );
        }
    }
    let (v, evidence, _) = check(&r, "hostname");
    assert_eq!(v, "pass");
    assert!(evidence.starts_with("cp1: "), "{evidence}");
    let (v, evidence, _) = check(&r, "advertise-address");
    assert_eq!(v, "pass");
    assert_eq!(
        evidence,
        "a default kubeadm init would pick 10.77.0.11 (eth0, the default route's interface)"
    );
    eprintln!("lab up and preflight took {:?}", started.elapsed());
}

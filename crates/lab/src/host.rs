//! Host-side lab operations: `up`, `down`, `status`, and running commands in a node.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::binaries::Binaries;
use crate::kubeadm;
use crate::net;
use crate::spec::{
    JoinMode, LabSpec, LabState, NodeRole, NodeSpec, NodeState, NodeStatusFile, node_binds,
    node_dir, pid_alive,
};
use crate::ssh;
use crate::{Error, Result, io_err, lab_dir, write_atomic};

/// Runs a command, returning its stdout; a failure carries the command line and the
/// tail of its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    let line = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: line.clone(),
            status: "could not start".into(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        return Err(Error::Command {
            command: line,
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::NotRoot)
    }
}

fn self_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(io_err("locating", Path::new("/proc/self/exe")))?;
    // A rebuilt binary shows as "path (deleted)"; the new file at the path is ours too.
    let s = exe.to_string_lossy();
    Ok(match s.strip_suffix(" (deleted)") {
        Some(p) => PathBuf::from(p),
        None => exe,
    })
}

/// A command that runs `args` inside `node`: its network namespace (via `ip netns
/// exec`, which also gives it a private mount namespace) and its bind mounts.
pub(crate) fn node_command(node: &str, args: &[&str]) -> Result<Command> {
    let exe = self_exe()?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &format!("kl-{node}")])
        .arg(exe)
        .args(["lab", "__enter", "--node", node, "--"])
        .args(args)
        .env("KASTELLAN_LAB_DIR", lab_dir())
        .env("KASTELLAN_CACHE", crate::cache_dir())
        .env(
            "KASTELLAN_RESTORE_DIR_PARENT",
            crate::spec::RESTORE_DIR_PARENT,
        );
    Ok(cmd)
}

/// Runs a command inside a lab node with inherited stdio; returns its exit code.
pub fn exec_in_node(node: &str, args: &[String]) -> Result<i32> {
    require_root()?;
    let state = LabState::load()?.ok_or_else(|| Error::NotUp(LabState::path()))?;
    state.node(node)?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let status = node_command(node, &args)?
        .status()
        .map_err(|e| Error::Command {
            command: args.join(" "),
            status: "could not start".into(),
            stderr: e.to_string(),
        })?;
    Ok(status.code().unwrap_or(128))
}

/// Inside `ip netns exec` (a private mount namespace): bind-mounts the node's
/// directories and replaces this process with `args`. Returns only on failure.
pub fn enter(node: &str, args: &[String]) -> Error {
    // Its own hostname too (UTS namespace), so leader-election holders and logs name
    // the node as on a real cluster.
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS) {
        return Error::Command {
            command: "unshare(CLONE_NEWUTS)".into(),
            status: "failed".into(),
            stderr: e.to_string(),
        };
    }
    if let Err(e) = nix::unistd::sethostname(node) {
        return Error::Command {
            command: format!("sethostname({node})"),
            status: "failed".into(),
            stderr: e.to_string(),
        };
    }
    for (src, target) in node_binds(node)
        .into_iter()
        .chain(crate::packages::binds(node))
        .chain(crate::spec::hosts_bind(node))
    {
        if let Err(e) = run(Command::new("mount").arg("--bind").arg(&src).arg(&target)) {
            return e;
        }
    }
    let Some((program, rest)) = args.split_first() else {
        return Error::Parse {
            path: PathBuf::from("<command line>"),
            message: "no command given".into(),
        };
    };
    let err = Command::new(program).args(rest).exec();
    Error::Command {
        command: args.join(" "),
        status: "could not start".into(),
        stderr: err.to_string(),
    }
}

/// Path of the lab's admin kubeconfig on the host.
pub fn kubeconfig_path() -> PathBuf {
    lab_dir().join("admin.conf")
}

fn ensure_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(io_err("creating", path))
}

/// Brings the lab up as `spec` describes. Idempotent: a lab of the same shape that
/// already runs is only waited for. `say` receives one line per step.
pub fn up(spec: &LabSpec, timeout: Duration, say: &mut dyn FnMut(String)) -> Result<LabState> {
    require_root()?;
    let bins = Binaries::locate(&spec.kubernetes_version, spec.etcd)?;
    for tool in ["ip", "mount", "iptables"] {
        if which(tool).is_none() {
            return Err(Error::Missing {
                what: format!("`{tool}`"),
                hint: "apt-get install iproute2 util-linux iptables".into(),
            });
        }
    }
    if spec.ssh {
        ssh::check_prerequisites()?;
    }
    let kubeadm_join = spec.join == JoinMode::Kubeadm;
    if kubeadm_join && !spec.packages {
        return Err(Error::Missing {
            what: "the nodes' own kubeadm, systemctl and crictl for `kubeadm join`".into(),
            hint: "bring the lab up with its per-node packages".into(),
        });
    }

    if let Some(state) = LabState::load()? {
        let alive: Vec<&NodeState> = state
            .nodes
            .iter()
            .filter(|n| n.agent_pid.is_some_and(|p| pid_alive(p, "lab agent")))
            .collect();
        if state.spec == *spec && alive.len() == state.nodes.len() {
            say(format!(
                "lab already up ({}); agents running: {}",
                spec.describe(),
                names(&alive)
            ));
            let mut state = state;
            if spec.ssh {
                // An sshd that died is started again.
                for i in 0..state.nodes.len() {
                    if !state.nodes[i].sshd_pid.is_some_and(ssh::running) {
                        let pid = ssh::start(&state.nodes[i].node, Duration::from_secs(10))?;
                        say(format!(
                            "{}: sshd was not running; started, pid {pid}",
                            state.nodes[i].node.name
                        ));
                        state.nodes[i].sshd_pid = Some(pid);
                        state.save()?;
                    }
                }
            }
            wait_ready(&state, timeout, say)?;
            return Ok(state);
        }
        if !alive.is_empty() {
            return Err(Error::Conflict {
                running: state.spec.describe(),
            });
        }
        say("found a stopped lab; clearing it first".into());
        down(false, say)?;
    }

    let nodes = spec.nodes();
    say(format!("creating lab: {}", spec.describe()));
    let mut created = Vec::new();
    for (_, target) in node_binds("cp1") {
        if !target.exists() {
            ensure_dir(&target)?;
            created.push(target);
        }
    }
    for n in &nodes {
        for (src, _) in node_binds(&n.name) {
            ensure_dir(&src)?;
        }
        ensure_dir(&n.dir().join("logs"))?;
        ensure_dir(&n.dir().join("agent"))?;
        ensure_dir(&n.dir().join("var-lib-kubelet").join("kastellan-pods"))?;
        if kubeadm_join {
            write_atomic(
                &n.dir().join("etc-hosts"),
                crate::spec::hosts_file(spec).as_bytes(),
                0o644,
            )?;
        }
    }
    let mut state = LabState {
        spec: spec.clone(),
        nodes: nodes
            .iter()
            .map(|n| NodeState {
                node: n.clone(),
                agent_pid: None,
                sshd_pid: None,
            })
            .collect(),
        created_mountpoints: created,
        started: jiff::Timestamp::now().to_string(),
    };
    state.save()?;

    say(format!(
        "network: bridge {} {}/24",
        net::BRIDGE,
        spec.gateway()
    ));
    net::ensure_bridge(spec)?;
    for n in &nodes {
        net::ensure_node(spec, n)?;
    }
    if spec.packages {
        let versions = crate::packages::build_repo()?;
        say(format!(
            "packages: repository {} with kubeadm, kubelet, kubectl {}",
            lab_dir().join("repo").display(),
            versions.join(", ")
        ));
        if !versions.contains(&spec.kubernetes_version) {
            return Err(Error::Missing {
                what: format!("the binaries of {}", spec.kubernetes_version),
                hint: format!("kastellan lab build {}", spec.kubernetes_version),
            });
        }
        let exe = self_exe()?;
        let minor = crate::packages::minor_of(&spec.kubernetes_version);
        let script = crate::packages::install_script(&spec.kubernetes_version);
        for n in &nodes {
            crate::packages::prepare_node(n, &minor, &exe)?;
            run(&mut node_command(&n.name, &["sh", "-c", &script])?)?;
            say(format!(
                "{}: own dpkg/apt state; kubeadm, kubelet, kubectl {} installed and held",
                n.name,
                crate::packages::deb_version(&spec.kubernetes_version)
            ));
        }
    }
    if spec.ssh {
        say(format!(
            "ssh: keys, known_hosts, client config and inventory in {}",
            ssh::ssh_files().dir.display()
        ));
        if ssh::prepare(&nodes)? {
            state.created_mountpoints.push(PathBuf::from("/run/sshd"));
            state.save()?;
        }
        for i in 0..state.nodes.len() {
            let pid = ssh::start(&state.nodes[i].node, Duration::from_secs(10))?;
            say(format!(
                "{}: sshd on {}:22, pid {pid}",
                state.nodes[i].node.name, state.nodes[i].node.ip
            ));
            state.nodes[i].sshd_pid = Some(pid);
            state.save()?;
        }
    }

    // Control planes: kubeadm's init phases, with the CAs shared from cp1 (with
    // `kubeadm join`, on cp1 only: the others join once cp1's API answers).
    let cps: Vec<&NodeSpec> = nodes
        .iter()
        .filter(|n| n.role == NodeRole::ControlPlane)
        .collect();
    let initialised = if kubeadm_join { &cps[..1] } else { &cps[..] };
    for (i, n) in initialised.iter().enumerate() {
        let cfg = n.dir().join("etc-kubernetes").join("kubeadm.yaml");
        write_atomic(&cfg, kubeadm::config(spec, n).as_bytes(), 0o600)?;
        if i > 0 {
            copy_shared_pki(&cps[0].name, &n.name)?;
        }
        say(format!(
            "{}: kubeadm init phase certs/kubeconfig/etcd/control-plane",
            n.name
        ));
        let kubeadm = bins.kube("kubeadm");
        let kubeadm = kubeadm.to_string_lossy();
        for phase in [
            &["init", "phase", "certs", "all"][..],
            &["init", "phase", "kubeconfig", "all"],
            &["init", "phase", "etcd", "local"],
            &["init", "phase", "control-plane", "all"],
        ] {
            let mut args = vec![kubeadm.as_ref()];
            args.extend_from_slice(phase);
            args.extend_from_slice(&["--config", "/etc/kubernetes/kubeadm.yaml"]);
            run(&mut node_command(&n.name, &args)?)?;
        }
        if initialised.len() > 1 {
            let etcd_yaml = n.dir().join("etc-kubernetes/manifests/etcd.yaml");
            let text =
                std::fs::read_to_string(&etcd_yaml).map_err(io_err("reading", &etcd_yaml))?;
            let patched = kubeadm::patch_initial_cluster(&text, &kubeadm::initial_cluster(spec))
                .ok_or_else(|| Error::Parse {
                    path: etcd_yaml.clone(),
                    message: "no --initial-cluster flag".into(),
                })?;
            write_atomic(&etcd_yaml, patched.as_bytes(), 0o600)?;
        }
    }

    // Workers: a kubelet.conf signed by the cluster CA, as kubeadm writes it (with
    // `kubeadm join`, the TLS bootstrap makes it later).
    for n in nodes
        .iter()
        .filter(|n| n.role == NodeRole::Worker && !kubeadm_join)
    {
        let etc = n.dir().join("etc-kubernetes");
        ensure_dir(&etc.join("pki"))?;
        let cfg = cps[0]
            .dir()
            .join("etc-kubernetes")
            .join(format!("kubeadm-{}.yaml", n.name));
        write_atomic(&cfg, kubeadm::config(spec, n).as_bytes(), 0o600)?;
        say(format!("{}: kubeadm init phase kubeconfig kubelet", n.name));
        let kubeadm = bins.kube("kubeadm");
        run(&mut node_command(
            &cps[0].name,
            &[
                &kubeadm.to_string_lossy(),
                "init",
                "phase",
                "kubeconfig",
                "kubelet",
                "--config",
                &format!("/etc/kubernetes/kubeadm-{}.yaml", n.name),
                "--kubeconfig-dir",
                &etc.to_string_lossy(),
            ],
        )?)?;
        let ca = cps[0].dir().join("etc-kubernetes/pki/ca.crt");
        std::fs::copy(&ca, etc.join("pki/ca.crt")).map_err(io_err("copying", &ca))?;
    }

    // kube-proxy: credentials for system:kube-proxy (bound to system:node-proxier by
    // the default RBAC policy), its config and the pod the agent runs.
    let kubeadm = bins.kube("kubeadm");
    let proxy_kubeconfig = run(&mut node_command(
        &cps[0].name,
        &[
            &kubeadm.to_string_lossy(),
            "alpha",
            "kubeconfig",
            "user",
            "--client-name",
            "system:kube-proxy",
            "--config",
            "/etc/kubernetes/kubeadm.yaml",
        ],
    )?)?;
    for n in &nodes {
        let d = n.dir().join("var-lib-kube-proxy");
        write_atomic(
            &d.join("kubeconfig.conf"),
            proxy_kubeconfig.as_bytes(),
            0o600,
        )?;
        write_atomic(
            &d.join("config.conf"),
            kubeadm::kube_proxy_config(n).as_bytes(),
            0o644,
        )?;
        let pod = n
            .dir()
            .join("var-lib-kubelet/kastellan-pods/kube-proxy.yaml");
        write_atomic(&pod, kubeadm::kube_proxy_pod(spec).as_bytes(), 0o644)?;
    }

    // Agents: one per node, standing in for the kubelet.
    for i in 0..state.nodes.len() {
        let pid = start_agent(&state.nodes[i].node)?;
        say(format!(
            "{}: agent (kubelet stand-in) started, pid {pid}",
            state.nodes[i].node.name
        ));
        state.nodes[i].agent_pid = Some(pid);
        state.save()?;
    }

    let admin = cps[0].dir().join("etc-kubernetes/admin.conf");
    let admin_bytes = std::fs::read(&admin).map_err(io_err("reading", &admin))?;
    write_atomic(&kubeconfig_path(), &admin_bytes, 0o600)?;

    // Once the API answers: the rest of `kubeadm init`.
    let deadline = Instant::now() + timeout;
    wait_for(
        deadline,
        timeout,
        "kube-apiserver /readyz on cp1",
        say,
        || {
            status_of(&cps[0].name).is_some_and(|s| {
                s.probes
                    .iter()
                    .any(|p| p.component == "kube-apiserver" && p.ok)
            })
        },
    )?;
    say("cp1: kubeadm init phase upload-config kubeadm, bootstrap-token, addon".into());
    let kubeadm = kubeadm.to_string_lossy();
    let kubeadm_phase = |node: &str, phase: &[&str]| -> Result<String> {
        let mut args = vec![kubeadm.as_ref()];
        args.extend_from_slice(phase);
        args.extend_from_slice(&["--config", "/etc/kubernetes/kubeadm.yaml"]);
        run(&mut node_command(node, &args)?)
    };
    kubeadm_phase(&cps[0].name, &["init", "phase", "upload-config", "kubeadm"])?;
    kubeadm_phase(&cps[0].name, &["init", "phase", "bootstrap-token"])?;
    // CoreDNS tolerates the control-plane taint, so when the other nodes only join
    // later its two replicas would both land on cp1, and draining cp1 would take every
    // ready one (kastellan's drain refuses that). Joined labs add it once every node is
    // there: in a real cluster CoreDNS stays Pending until the network plugin makes the
    // nodes Ready, by which time the others have usually joined.
    if !kubeadm_join {
        kubeadm_phase(&cps[0].name, &["init", "phase", "addon", "coredns"])?;
    }
    kubeadm_phase(&cps[0].name, &["init", "phase", "addon", "kube-proxy"])?;
    for n in initialised {
        wait_for(
            deadline,
            timeout,
            &format!("Node {} registered", n.name),
            say,
            || status_of(&n.name).is_some_and(|s| s.registered),
        )?;
        if n.name != cps[0].name {
            kubeadm_phase(&n.name, &["init", "phase", "upload-config", "kubeadm"])?;
        }
        kubeadm_phase(&n.name, &["init", "phase", "upload-config", "kubelet"])?;
        kubeadm_phase(&n.name, &["init", "phase", "mark-control-plane"])?;
    }
    if kubeadm_join {
        join_nodes(&nodes, say)?;
        say("cp1: kubeadm init phase addon coredns".into());
        kubeadm_phase(&cps[0].name, &["init", "phase", "addon", "coredns"])?;
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    wait_ready(&state, remaining.max(Duration::from_secs(1)), say)?;
    Ok(state)
}

/// The container runtime socket the lab's nodes name (kubeadm records it on the Node;
/// nothing listens there: the `crictl` stand-in answers instead).
const CRI_SOCKET: &str = "/run/containerd/containerd.sock";

/// The PATH `kubeadm join` runs with in a node: the node's own `/usr/bin` (its
/// packages' kubeadm, the `systemctl` and `crictl` stand-ins) before anything else, so
/// that nothing of the host's `/usr/local` answers in their place.
const NODE_PATH: &str = "/usr/bin:/usr/sbin:/bin:/sbin";

/// The preflight checks `kubeadm join` is told to ignore in the lab, each with the
/// reason (named, never `all`). None today: `conntrack`, the one binary the lab host
/// lacked, is among the prerequisites (scripts/install-deps.sh), so every check runs.
pub(crate) const IGNORED_PREFLIGHT: &[(&str, &str)] = &[];

/// Joins every node after cp1 with real `kubeadm join`, using the lines kastellan's
/// `join-command` prints on cp1 (one for workers, one with `--control-plane`): control
/// planes one at a time (each adds its etcd member), the workers meanwhile, each in a
/// thread of its own (they need only the API). Each node's kubeadm output goes to its
/// `logs/kubeadm-join.log`.
fn join_nodes(nodes: &[NodeSpec], say: &mut dyn FnMut(String)) -> Result<()> {
    let cps: Vec<&NodeSpec> = nodes
        .iter()
        .filter(|n| n.role == NodeRole::ControlPlane)
        .collect();
    let workers: Vec<&NodeSpec> = nodes
        .iter()
        .filter(|n| n.role == NodeRole::Worker)
        .collect();
    let Some((first, other_cps)) = cps.split_first() else {
        return Ok(());
    };
    for n in other_cps.iter().chain(&workers) {
        // A node's own kernel prerequisite (its network namespace's sysctl): kubeadm's
        // preflight checks it, as an operator sets it on a new node.
        run(&mut node_command(
            &n.name,
            &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        )?)?;
    }
    for (check, why) in IGNORED_PREFLIGHT {
        say(format!(
            "kubeadm join: preflight check {check} ignored: {why}"
        ));
    }
    // Both lines first: the controller-manager signs cluster-info for each new token
    // while the first joins start.
    let mut line = |cp: bool| -> Result<Option<Vec<String>>> {
        let needed = if cp {
            !other_cps.is_empty()
        } else {
            !workers.is_empty()
        };
        if !needed {
            return Ok(None);
        }
        say(format!(
            "{}: kastellan join-command{}",
            first.name,
            if cp { " --control-plane" } else { "" }
        ));
        join_command(&first.name, cp).map(Some)
    };
    let cp_line = line(true)?;
    let worker_line = line(false)?;
    let joined = std::thread::scope(|scope| {
        let threads: Vec<_> = match &worker_line {
            Some(l) => workers
                .iter()
                .map(|n| {
                    say(format!(
                        "{}: kubeadm join (log: {})",
                        n.name,
                        n.dir().join("logs/kubeadm-join.log").display()
                    ));
                    scope.spawn(move || kubeadm_join(n, l.clone()))
                })
                .collect(),
            None => Vec::new(),
        };
        let mut result = Ok(());
        if let Some(l) = &cp_line {
            for n in other_cps {
                say(format!(
                    "{}: kubeadm join --control-plane --certificate-key (log: {})",
                    n.name,
                    n.dir().join("logs/kubeadm-join.log").display()
                ));
                result = kubeadm_join(n, l.clone());
                if result.is_err() {
                    break;
                }
            }
        }
        for t in threads {
            let r = t.join().unwrap_or_else(|_| {
                Err(Error::Command {
                    command: "kubeadm join".into(),
                    status: "the thread running it panicked".into(),
                    stderr: String::new(),
                })
            });
            if result.is_ok() {
                result = r;
            }
        }
        result
    });
    joined?;
    say("every node joined with kubeadm join".into());
    Ok(())
}

/// Runs `line` (kastellan's `kubeadm join ...`) on node `n` with the node's name, the
/// lab's CRI socket, the ignored preflight checks, and for a control plane its address.
fn kubeadm_join(n: &NodeSpec, line: Vec<String>) -> Result<()> {
    let cp = n.role == NodeRole::ControlPlane;
    let mut args = line;
    args.extend(["--node-name", &n.name, "--cri-socket", CRI_SOCKET, "--v=1"].map(str::to_string));
    if !IGNORED_PREFLIGHT.is_empty() {
        args.push("--ignore-preflight-errors".into());
        args.push(
            IGNORED_PREFLIGHT
                .iter()
                .map(|(check, _)| *check)
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    if cp {
        args.extend(
            [
                "--apiserver-advertise-address",
                &n.ip,
                "--apiserver-bind-port",
                "6443",
            ]
            .map(str::to_string),
        );
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = node_command(&n.name, &args)?;
    cmd.env("PATH", NODE_PATH);
    run_logged(&mut cmd, &n.dir().join("logs/kubeadm-join.log"))
}

/// Runs kastellan's own `join-command` (this binary) on `node` with its admin
/// kubeconfig, and returns the `kubeadm join ...` line it prints, word by word.
fn join_command(node: &str, control_plane: bool) -> Result<Vec<String>> {
    let exe = self_exe()?;
    let exe = exe.to_string_lossy();
    let mut args = vec![
        exe.as_ref(),
        "join-command",
        "--kubeconfig",
        "/etc/kubernetes/admin.conf",
        "-o",
        "json",
    ];
    if control_plane {
        args.push("--control-plane");
    }
    let out = run(&mut node_command(node, &args)?)?;
    let bad = |message: String| Error::Parse {
        path: PathBuf::from(format!("kastellan join-command on {node}")),
        message,
    };
    let report: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| bad(format!("not JSON: {e}")))?;
    let line = report
        .get("command")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| bad("no command in its report".into()))?;
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    if words.get(..2) != Some(&["kubeadm".to_string(), "join".to_string()][..]) {
        return Err(bad(format!("not a kubeadm join line: {line}")));
    }
    Ok(words)
}

/// A command line as it may be shown: the values of `--token` and
/// `--certificate-key` (secrets) replaced by `<redacted>`.
fn shown(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    let mut secret_next = false;
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        words.push(if secret_next {
            "<redacted>".into()
        } else {
            a.to_string()
        });
        secret_next = matches!(a.as_ref(), "--token" | "--certificate-key");
    }
    words.join(" ")
}

/// Runs a command with its standard output and error appended to `log`; a failure
/// carries the tail of both. Secrets on the command line are shown redacted.
fn run_logged(cmd: &mut Command, log: &Path) -> Result<()> {
    let line = shown(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: line.clone(),
            status: "could not start".into(),
            stderr: e.to_string(),
        })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let mut old = std::fs::read(log).unwrap_or_default();
    old.extend_from_slice(format!("$ {line}\n{text}\n").as_bytes());
    write_atomic(log, &old, 0o600)?;
    if !out.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(12).collect();
        return Err(Error::Command {
            command: line,
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(())
}

fn names(nodes: &[&NodeState]) -> String {
    nodes
        .iter()
        .map(|n| n.node.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|c| c.is_file())
    })
}

fn copy_shared_pki(from: &str, to: &str) -> Result<()> {
    let src = node_dir(from).join("etc-kubernetes/pki");
    let dst = node_dir(to).join("etc-kubernetes/pki");
    ensure_dir(&dst.join("etcd"))?;
    for f in kastellan_kubeadm::pki::SHARED {
        let data = std::fs::read(src.join(f)).map_err(io_err("reading", &src.join(f)))?;
        let mode = kastellan_kubeadm::pki::file_mode(Path::new(f));
        write_atomic(&dst.join(f), &data, mode)?;
    }
    Ok(())
}

fn start_agent(node: &NodeSpec) -> Result<u32> {
    let exe = self_exe()?;
    let exe = exe.to_string_lossy();
    let log = node.dir().join("logs").join("agent.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(io_err("opening", &log))?;
    let err = file.try_clone().map_err(io_err("opening", &log))?;
    let child = node_command(&node.name, &[&exe, "lab", "agent", "--node", &node.name])?
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::Command {
            command: "lab agent".into(),
            status: "could not start".into(),
            stderr: e.to_string(),
        })?;
    Ok(child.id())
}

fn status_of(node: &str) -> Option<NodeStatusFile> {
    NodeStatusFile::load(node)
}

fn wait_for(
    deadline: Instant,
    timeout: Duration,
    what: &str,
    say: &mut dyn FnMut(String),
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    say(format!("waiting for {what}"));
    loop {
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                seconds: timeout.as_secs(),
                waiting_for: what.to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until every node's agent reports its Node registered, all its processes
/// running and every local endpoint healthy.
pub fn wait_ready(state: &LabState, timeout: Duration, say: &mut dyn FnMut(String)) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let started = Instant::now();
    say("waiting for every node's endpoints".into());
    loop {
        let mut pending = Vec::new();
        for n in &state.nodes {
            match status_of(&n.node.name) {
                None => pending.push(format!("{}: agent has not reported", n.node.name)),
                Some(s) => {
                    if !s.registered {
                        pending.push(format!("{}: Node not registered", n.node.name));
                    }
                    for p in s.probes.iter().filter(|p| !p.ok) {
                        pending.push(format!("{}: {} {}", n.node.name, p.component, p.url));
                    }
                    if s.probes.is_empty() {
                        pending.push(format!("{}: no probes yet", n.node.name));
                    }
                }
            }
        }
        if pending.is_empty() {
            let leases = leader_leases(&state.spec);
            for l in ["kube-controller-manager", "kube-scheduler"] {
                if !leases.iter().any(|x| x == l) {
                    pending.push(format!("leader Lease kube-system/{l}"));
                }
            }
        }
        if pending.is_empty() {
            say(format!(
                "lab ready after {:.1}s",
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                seconds: timeout.as_secs(),
                waiting_for: pending.join("; "),
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Names of the Leases in kube-system, read with the lab's kubectl and admin
/// kubeconfig (empty when the API does not answer).
fn leader_leases(spec: &LabSpec) -> Vec<String> {
    let kubectl = crate::binaries::kube_bin_dir(&spec.kubernetes_version).join("kubectl");
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args([
            "get",
            "lease",
            "-n",
            "kube-system",
            "-o",
            "name",
            "--request-timeout=5s",
        ])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.rsplit('/').next().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Stops every process the lab started (agents, then any process they left, by pid),
/// removes the namespaces and the bridge, and (unless `keep_data`) the lab's data.
pub fn down(keep_data: bool, say: &mut dyn FnMut(String)) -> Result<()> {
    require_root()?;
    let state = LabState::load()?;
    let Some(state) = state else {
        say("no lab is up".into());
        return Ok(());
    };
    stop_sshd(&state, say)?;
    // Agents first: on SIGTERM an agent stops the processes it runs.
    for n in &state.nodes {
        if let Some(pid) = n.agent_pid.filter(|p| pid_alive(*p, "lab agent")) {
            say(format!("{}: stopping agent pid {pid}", n.node.name));
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && state
            .nodes
            .iter()
            .any(|n| n.agent_pid.is_some_and(|p| pid_alive(p, "lab agent")))
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Anything left (an agent killed hard, a child that ignored SIGTERM): by pid, only
    // when the pid still runs the binary the agent recorded for it.
    for n in &state.nodes {
        if let Some(pid) = n.agent_pid.filter(|p| pid_alive(*p, "lab agent")) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(s) = status_of(&n.node.name) {
            for p in s.pods {
                if let Some(pid) = p.pid.filter(|pid| pid_alive(*pid, &p.binary)) {
                    say(format!(
                        "{}: killing leftover {} pid {pid}",
                        n.node.name, p.name
                    ));
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && leftovers(&state).next().is_some() {
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some((node, name, pid)) = leftovers(&state).next() {
        return Err(Error::Command {
            command: "lab down".into(),
            status: "incomplete".into(),
            stderr: format!("{node}: {name} (pid {pid}) still runs after SIGKILL"),
        });
    }
    for n in &state.nodes {
        net::remove_node(&n.node)?;
    }
    net::remove_bridge()?;
    for m in &state.created_mountpoints {
        // Only if still empty: never remove anything an operator put there.
        let _ = std::fs::remove_dir(m);
    }
    if keep_data {
        let stopped = LabState {
            nodes: state
                .nodes
                .iter()
                .map(|n| NodeState {
                    agent_pid: None,
                    sshd_pid: None,
                    ..n.clone()
                })
                .collect(),
            ..state
        };
        stopped.save()?;
        say(format!("lab down; data kept in {}", lab_dir().display()));
    } else {
        let dir = lab_dir();
        std::fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))?;
        say("lab down; namespaces and data removed".into());
    }
    Ok(())
}

/// Stops the sshd processes the lab started (by pid, only while the pid still runs
/// sshd): SIGTERM, then SIGKILL after 5 s. Sessions still open are left to end.
fn stop_sshd(state: &LabState, say: &mut dyn FnMut(String)) -> Result<()> {
    let running = || {
        state
            .nodes
            .iter()
            .filter_map(|n| n.sshd_pid.filter(|p| ssh::running(*p)).map(|p| (n, p)))
            .collect::<Vec<_>>()
    };
    for (n, pid) in running() {
        say(format!("{}: stopping sshd pid {pid}", n.node.name));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !running().is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (_, pid) in running() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !running().is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some((n, pid)) = running().first() {
        return Err(Error::Command {
            command: "lab down".into(),
            status: "incomplete".into(),
            stderr: format!("{}: sshd (pid {pid}) still runs after SIGKILL", n.node.name),
        });
    }
    Ok(())
}

/// Processes an agent reported that still run: (node, pod, pid).
fn leftovers(state: &LabState) -> impl Iterator<Item = (String, String, u32)> + '_ {
    state.nodes.iter().flat_map(|n| {
        status_of(&n.node.name)
            .map(|s| s.pods)
            .unwrap_or_default()
            .into_iter()
            .filter_map(move |p| {
                p.pid
                    .filter(|pid| pid_alive(*pid, &p.binary))
                    .map(|pid| (n.node.name.clone(), p.name.clone(), pid))
            })
    })
}

/// The lab as it is now, for `lab status`.
#[derive(Debug, serde::Serialize)]
pub struct LabStatus {
    /// The lab's shape.
    pub spec: LabSpec,
    /// Admin kubeconfig on the host.
    pub kubeconfig: PathBuf,
    /// The kubelet is a stand-in: says so in every output.
    pub kubelet: &'static str,
    /// Per node.
    pub nodes: Vec<NodeReport>,
    /// With `--ssh`: the files clients use to reach the nodes' sshd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<ssh::SshFiles>,
}

/// One node in `lab status`.
#[derive(Debug, serde::Serialize)]
pub struct NodeReport {
    /// The node.
    pub node: NodeSpec,
    /// Agent pid, when it runs.
    pub agent_pid: Option<u32>,
    /// Whether the agent runs.
    pub agent_running: bool,
    /// What the agent last reported.
    pub reported: Option<NodeStatusFile>,
    /// sshd pid, when the lab runs one on the node (`--ssh`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sshd_pid: Option<u32>,
    /// Whether that sshd runs.
    pub sshd_running: bool,
}

/// Reads the lab's state and each agent's report.
pub fn status() -> Result<LabStatus> {
    let state = LabState::load()?.ok_or_else(|| Error::NotUp(LabState::path()))?;
    let nodes = state
        .nodes
        .iter()
        .map(|n| NodeReport {
            node: n.node.clone(),
            agent_pid: n.agent_pid,
            agent_running: n.agent_pid.is_some_and(|p| pid_alive(p, "lab agent")),
            reported: status_of(&n.node.name),
            sshd_pid: n.sshd_pid,
            sshd_running: n.sshd_pid.is_some_and(ssh::running),
        })
        .collect();
    Ok(LabStatus {
        ssh: state.spec.ssh.then(ssh::ssh_files),
        spec: state.spec,
        kubeconfig: kubeconfig_path(),
        kubelet: "stand-in: the kastellan lab agent runs static pods as processes (no container runtime)",
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_lines_are_shown_without_their_secrets() {
        let mut cmd = Command::new("kubeadm");
        cmd.args([
            "join",
            "10.77.0.11:6443",
            "--token",
            "abcdef.0123456789abcdef",
            "--discovery-token-ca-cert-hash",
            "sha256:00ff",
            "--control-plane",
            "--certificate-key",
            "0a1b",
            "--node-name",
            "cp2",
        ]);
        assert_eq!(
            shown(&cmd),
            "kubeadm join 10.77.0.11:6443 --token <redacted> --discovery-token-ca-cert-hash \
             sha256:00ff --control-plane --certificate-key <redacted> --node-name cp2"
        );
    }
}

//! `lab up --ssh`: Debian's OpenSSH sshd inside every node's namespaces, on the
//! node's address, port 22.
//!
//! Everything sshd and ssh read is the lab's own, under `<lab dir>/ssh/`: a host key and
//! an `sshd_config` per node (sshd runs with `-f`, never reading `/etc/ssh`), one
//! client key pair whose public half is the only authorized key, a known_hosts file
//! with every node's host key, an ssh client config (`ssh -F`) and an inventory file.
//! sshd runs in the foreground (`-D`) as a child of nothing the host's init knows about;
//! `lab down` stops it by pid.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kastellan_access::{Inventory, InventoryNode, Role};
use serde::Serialize;

use crate::host::{node_command, run};
use crate::spec::{NodeRole, NodeSpec, RESTORE_DIR_PARENT, pid_alive};
use crate::{Error, Result, io_err, lab_dir, write_atomic};

/// The sshd binary of Debian's `openssh-server` (sshd re-executes itself, so it must be
/// started by absolute path).
pub const SSHD: &str = "/usr/sbin/sshd";

/// sshd's privilege separation directory (compiled into Debian's sshd): it must exist,
/// owned by root and not writable by others, in the node's mount namespace, which
/// shares the host's `/run`.
const PRIVSEP_DIR: &str = "/run/sshd";

/// The files `lab up --ssh` writes for clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshFiles {
    /// Where they all are.
    pub dir: PathBuf,
    /// ssh client config with a `Host` per node (`ssh -F FILE cp1`).
    pub config: PathBuf,
    /// The inventory of the lab's nodes (kastellan's inventory format).
    pub inventory: PathBuf,
    /// Every node's host key, by name and address.
    pub known_hosts: PathBuf,
    /// The client's private key (its public half is every node's authorized key).
    pub identity: PathBuf,
}

/// Where the lab's ssh files are (they exist only while a lab with `--ssh` is up).
pub fn ssh_files() -> SshFiles {
    let dir = lab_dir().join("ssh");
    SshFiles {
        config: dir.join("config"),
        inventory: dir.join("inventory.yaml"),
        known_hosts: dir.join("known_hosts"),
        identity: dir.join("id_ed25519"),
        dir,
    }
}

fn node_ssh_dir(node: &str) -> PathBuf {
    ssh_files().dir.join("nodes").join(node)
}

fn sshd_config_path(node: &str) -> PathBuf {
    node_ssh_dir(node).join("sshd_config")
}

fn host_key_path(node: &str) -> PathBuf {
    node_ssh_dir(node).join("ssh_host_ed25519_key")
}

fn missing(what: &str) -> Error {
    Error::Missing {
        what: what.to_string(),
        hint: "apt-get install openssh-server openssh-client (scripts/install-deps.sh)".into(),
    }
}

/// Checks what sshd needs on this host before anything is started.
pub(crate) fn check_prerequisites() -> Result<()> {
    if !Path::new(SSHD).is_file() {
        return Err(missing(SSHD));
    }
    for tool in ["ssh", "ssh-keygen"] {
        if crate::host::which(tool).is_none() {
            return Err(missing(&format!("`{tool}`")));
        }
    }
    if !matches!(nix::unistd::User::from_name("sshd"), Ok(Some(_))) {
        return Err(missing("sshd's privilege separation user `sshd`"));
    }
    // Without PAM (the lab's sshd never uses the host's PAM stack), sshd refuses a
    // locked account: a password field starting with `!`.
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    if shadow_locked(&shadow, "root") {
        return Err(Error::Missing {
            what: "an unlocked root account".into(),
            hint: "the lab's sshd (UsePAM no) refuses root's locked account ('!' in /etc/shadow); `usermod -p '*' root` unlocks it without a password".into(),
        });
    }
    Ok(())
}

/// Whether `user`'s password field in shadow `text` marks a locked account.
fn shadow_locked(text: &str, user: &str) -> bool {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(u, _)| *u == user)
        .is_some_and(|(_, rest)| rest.starts_with('!'))
}

fn keygen(path: &Path, comment: &str) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path))?;
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(io_err("reading", path))
}

/// Makes the keys and writes every file the nodes' sshd and the clients read. Returns
/// whether it had to create sshd's privilege separation dir on the host (so `down`
/// removes it again).
pub(crate) fn prepare(nodes: &[NodeSpec]) -> Result<bool> {
    let f = ssh_files();
    std::fs::create_dir_all(f.dir.join("nodes")).map_err(io_err("creating", &f.dir))?;
    std::fs::set_permissions(&f.dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err("setting the mode of", &f.dir))?;
    keygen(&f.identity, "kastellan-lab-client")?;
    let client_pub = read(&f.identity.with_extension("pub"))?;
    let authorized = f.dir.join("authorized_keys");
    write_atomic(&authorized, client_pub.as_bytes(), 0o600)?;

    let mut known_hosts = String::new();
    for n in nodes {
        let d = node_ssh_dir(&n.name);
        std::fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
        keygen(
            &host_key_path(&n.name),
            &format!("kastellan-lab-{}", n.name),
        )?;
        let host_pub = read(&host_key_path(&n.name).with_extension("pub"))?;
        known_hosts.push_str(&known_hosts_line(n, &host_pub));
        write_atomic(
            &sshd_config_path(&n.name),
            sshd_config(n, &authorized).as_bytes(),
            0o600,
        )?;
    }
    write_atomic(&f.known_hosts, known_hosts.as_bytes(), 0o644)?;
    write_atomic(&f.config, client_config(nodes, &f).as_bytes(), 0o644)?;
    let inventory = inventory(nodes, &f).to_yaml().map_err(|e| Error::Parse {
        path: f.inventory.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&f.inventory, inventory.as_bytes(), 0o644)?;

    let privsep = Path::new(PRIVSEP_DIR);
    if privsep.is_dir() {
        return Ok(false);
    }
    std::fs::create_dir(privsep).map_err(io_err("creating", privsep))?;
    std::fs::set_permissions(privsep, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err("setting the mode of", privsep))?;
    Ok(true)
}

/// `cp1,10.77.0.11 ssh-ed25519 AAAA...` (the key's comment dropped).
fn known_hosts_line(node: &NodeSpec, host_pub: &str) -> String {
    let key: Vec<&str> = host_pub.split_whitespace().take(2).collect();
    format!("{},{} {}\n", node.name, node.ip, key.join(" "))
}

/// A value for sshd_config, double-quoted when it has blanks.
fn conf_value(s: &str) -> String {
    if s.contains(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

/// The node's sshd_config: its address only, its own host key, pid file and log, the
/// lab's authorized key, root by key only, no PAM (nothing of the host's login stack),
/// and the environment `lab exec` gives commands in a node.
fn sshd_config(node: &NodeSpec, authorized_keys: &Path) -> String {
    let d = node_ssh_dir(&node.name);
    let env = [
        ("KASTELLAN_LAB_DIR", lab_dir().display().to_string()),
        ("KASTELLAN_CACHE", crate::cache_dir().display().to_string()),
        (
            "KASTELLAN_RESTORE_DIR_PARENT",
            RESTORE_DIR_PARENT.to_string(),
        ),
    ]
    .iter()
    .map(|(k, v)| conf_value(&format!("{k}={v}")))
    .collect::<Vec<_>>()
    .join(" ");
    format!(
        "# kastellan lab: sshd of node {name}, started as `sshd -D -f` this file inside the
# node's namespaces; nothing here comes from /etc/ssh.
ListenAddress {ip}:22
HostKey {host_key}
PidFile {pid}
AuthorizedKeysFile {authorized}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
Subsystem sftp internal-sftp
SetEnv {env}
",
        name = node.name,
        ip = node.ip,
        host_key = conf_value(&host_key_path(&node.name).display().to_string()),
        pid = conf_value(&d.join("sshd.pid").display().to_string()),
        authorized = conf_value(&authorized_keys.display().to_string()),
    )
}

/// The client config: one `Host` per node, by name and by address.
fn client_config(nodes: &[NodeSpec], f: &SshFiles) -> String {
    let mut s = format!(
        "# kastellan lab: ssh -F {} cp1\n",
        conf_value(&f.config.display().to_string())
    );
    for n in nodes {
        s.push_str(&format!(
            "\nHost {name} {ip}\n  HostName {ip}\n  User root\n  Port 22\n  IdentityFile {id}\n  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n",
            name = n.name,
            ip = n.ip,
            id = conf_value(&f.identity.display().to_string()),
            kh = conf_value(&f.known_hosts.display().to_string()),
        ));
    }
    s
}

/// The lab's nodes as an inventory.
fn inventory(nodes: &[NodeSpec], f: &SshFiles) -> Inventory {
    Inventory {
        path: f.inventory.clone(),
        known_hosts_file: Some(f.known_hosts.clone()),
        nodes: nodes
            .iter()
            .map(|n| InventoryNode {
                name: n.name.clone(),
                address: n.ip.clone(),
                user: Some("root".into()),
                port: Some(22),
                identity_file: Some(f.identity.clone()),
                role: match n.role {
                    NodeRole::ControlPlane => Role::ControlPlane,
                    NodeRole::Worker => Role::Worker,
                },
            })
            .collect(),
    }
}

/// Starts the node's sshd in its namespaces (as `lab exec` enters them) and waits
/// until it greets on port 22. Returns its pid.
pub(crate) fn start(node: &NodeSpec, timeout: Duration) -> Result<u32> {
    let log = node.dir().join("logs").join("sshd.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(io_err("opening", &log))?;
    let err = file.try_clone().map_err(io_err("opening", &log))?;
    let config = sshd_config_path(&node.name);
    let log_s = log.display().to_string();
    let mut child = node_command(
        &node.name,
        &[
            SSHD,
            "-D",
            "-f",
            &config.display().to_string(),
            "-E",
            &log_s,
        ],
    )?
    .stdin(Stdio::null())
    .stdout(file)
    .stderr(err)
    .process_group(0)
    .spawn()
    .map_err(|e| Error::Command {
        command: format!("{SSHD} on {}", node.name),
        status: "could not start".into(),
        stderr: e.to_string(),
    })?;
    let pid = child.id();
    let addr: SocketAddr = format!("{}:22", node.ip)
        .parse()
        .map_err(|_| Error::Parse {
            path: PathBuf::from("<lab spec>"),
            message: format!("{}: address {} is no IP address", node.name, node.ip),
        })?;
    let deadline = Instant::now() + timeout;
    loop {
        if greets(addr) {
            // Not waited for: `down` stops it by pid; dropping `child` does not kill it.
            return Ok(pid);
        }
        // Whether it ended, from its exit status (its command line changes while `ip
        // netns exec` and `lab __enter` exec into sshd, so it is no test here).
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Command {
                command: format!("{SSHD} -D -f {} (node {})", config.display(), node.name),
                status: status.to_string(),
                stderr: tail(&log),
            });
        }
        if Instant::now() >= deadline {
            // It is not recorded anywhere yet: stop it here.
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Timeout {
                seconds: timeout.as_secs(),
                waiting_for: format!("sshd of {} on {addr}: {}", node.name, tail(&log)),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether an SSH server answers on `addr` with its identification string.
fn greets(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-2.0-")
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Whether the pid runs the lab's sshd.
pub(crate) fn running(pid: u32) -> bool {
    pid_alive(pid, "sshd")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str, role: NodeRole) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            role,
            ip: ip.into(),
        }
    }

    #[test]
    fn locked_accounts_are_recognised() {
        let shadow = "root:!:19000:0:99999:7:::\nops:*:1::::::\n";
        assert!(shadow_locked(shadow, "root"));
        assert!(!shadow_locked(shadow, "ops"));
        assert!(!shadow_locked("root:*:20228:0:99999:7:::\n", "root"));
        assert!(!shadow_locked("", "root"));
    }

    #[test]
    fn sshd_listens_on_the_node_only_with_the_labs_files() {
        let n = node("cp2", "10.77.0.12", NodeRole::ControlPlane);
        let c = sshd_config(&n, Path::new("/l/ssh/authorized_keys"));
        assert!(c.contains("\nListenAddress 10.77.0.12:22\n"), "{c}");
        assert!(c.contains("\nUsePAM no\n"), "{c}");
        assert!(
            c.contains("\nAuthorizedKeysFile /l/ssh/authorized_keys\n"),
            "{c}"
        );
        assert!(c.contains("KASTELLAN_RESTORE_DIR_PARENT=/var/lib/kastellan-restore"));
        assert!(c.contains("nodes/cp2/ssh_host_ed25519_key\n"), "{c}");
        assert!(!c.contains("/etc/ssh/ssh"), "{c}");
        assert!(!c.contains("/run/sshd.pid"), "{c}");
    }

    #[test]
    fn client_files_name_every_node() {
        let nodes = [
            node("cp1", "10.77.0.11", NodeRole::ControlPlane),
            node("w1", "10.77.0.21", NodeRole::Worker),
        ];
        let f = SshFiles {
            dir: "/l/ssh".into(),
            config: "/l/ssh/config".into(),
            inventory: "/l/ssh/inventory.yaml".into(),
            known_hosts: "/l/ssh/known_hosts".into(),
            identity: "/l/ssh/id_ed25519".into(),
        };
        let c = client_config(&nodes, &f);
        assert!(
            c.contains("Host cp1 10.77.0.11\n  HostName 10.77.0.11\n  User root\n"),
            "{c}"
        );
        assert!(c.contains("  IdentityFile /l/ssh/id_ed25519\n"), "{c}");
        assert!(
            c.contains("  UserKnownHostsFile /l/ssh/known_hosts\n  StrictHostKeyChecking yes\n"),
            "{c}"
        );
        assert!(c.contains("Host w1 10.77.0.21\n"), "{c}");
        let inv = inventory(&nodes, &f);
        let back = Inventory::parse(&inv.to_yaml().unwrap(), &f.inventory).unwrap();
        assert_eq!(back, inv);
        assert_eq!(back.names(Role::ControlPlane), ["cp1"]);
        assert_eq!(back.nodes[1].address, "10.77.0.21");
        assert_eq!(
            known_hosts_line(&nodes[0], "ssh-ed25519 AAAAC3Nz kastellan-lab-cp1\n"),
            "cp1,10.77.0.11 ssh-ed25519 AAAAC3Nz\n"
        );
    }
}

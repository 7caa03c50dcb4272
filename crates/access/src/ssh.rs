//! [`Ssh`]: the system `ssh` client.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::{AccessKind, Error, Inventory, NodeAccess, NodeCommand, Output, Result};

/// How `ssh` is called for every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// The ssh program.
    pub program: PathBuf,
    /// An ssh client config file (`ssh -F`), read instead of `~/.ssh/config` and
    /// `/etc/ssh/ssh_config`; none: ssh reads those as usual.
    pub config_file: Option<PathBuf>,
    /// A known_hosts file: `UserKnownHostsFile` with `StrictHostKeyChecking=yes`.
    pub known_hosts_file: Option<PathBuf>,
    /// How long ssh waits for the connection (`ConnectTimeout`, whole seconds, at
    /// least 1).
    pub connect_timeout: Duration,
    /// The login user of hosts that name none; none: ssh's own choice (the ssh config,
    /// else the local user name).
    pub user: Option<String>,
}

impl Default for SshOptions {
    fn default() -> SshOptions {
        SshOptions {
            program: PathBuf::from("ssh"),
            config_file: None,
            known_hosts_file: None,
            connect_timeout: Duration::from_secs(10),
            user: None,
        }
    }
}

/// Where one node is reached.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshHost {
    /// Address or host name as ssh gets it (a `Host` of the ssh config works too).
    pub address: String,
    /// Login user (`ssh -l`).
    pub user: Option<String>,
    /// Port (`ssh -p`).
    pub port: Option<u16>,
    /// Private key (`ssh -i`, with `IdentitiesOnly=yes`).
    pub identity_file: Option<PathBuf>,
}

impl SshHost {
    /// A host reached by this name or address, everything else from the ssh config.
    pub fn named(address: impl Into<String>) -> SshHost {
        SshHost {
            address: address.into(),
            ..SshHost::default()
        }
    }
}

/// Runs commands on nodes with the system `ssh`: `BatchMode=yes` (never a prompt),
/// a connect timeout, the command line quoted for the remote POSIX shell, and `sudo -n`
/// in front of it when the login user is not root. Exit status 255 is taken as ssh's
/// own failure ([`Error::Unreachable`]).
#[derive(Debug)]
pub struct Ssh {
    options: SshOptions,
    /// Hosts by node name; without an inventory, a node's name is its destination.
    hosts: BTreeMap<String, SshHost>,
    /// The inventory the hosts come from: only its nodes are reachable.
    inventory: Option<PathBuf>,
    /// Login users that ssh resolves for hosts that name none (`ssh -G`), by address.
    resolved: Mutex<HashMap<String, Option<String>>>,
}

impl Ssh {
    /// Reaches each node by its name as the ssh destination.
    pub fn new(options: SshOptions) -> Ssh {
        Ssh {
            options,
            hosts: BTreeMap::new(),
            inventory: None,
            resolved: Mutex::new(HashMap::new()),
        }
    }

    /// Reaches the nodes of `inventory` (and only those) at their addresses; the
    /// inventory's known_hosts file is used unless `options` names one.
    pub fn from_inventory(inventory: &Inventory, mut options: SshOptions) -> Ssh {
        if options.known_hosts_file.is_none() {
            options.known_hosts_file = inventory.known_hosts_file.clone();
        }
        let hosts = inventory
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    SshHost {
                        address: n.address.clone(),
                        user: n.user.clone(),
                        port: n.port,
                        identity_file: n.identity_file.clone(),
                    },
                )
            })
            .collect();
        Ssh {
            options,
            hosts,
            inventory: Some(inventory.path.clone()),
            resolved: Mutex::new(HashMap::new()),
        }
    }

    /// The options every call uses.
    pub fn options(&self) -> &SshOptions {
        &self.options
    }

    /// Where `node` is reached.
    pub fn host(&self, node: &str) -> Result<SshHost> {
        match (&self.inventory, self.hosts.get(node)) {
            (_, Some(h)) => Ok(h.clone()),
            (None, None) => Ok(SshHost::named(node)),
            (Some(path), None) => Err(Error::UnknownNode {
                node: node.to_string(),
                path: path.clone(),
                known: self.hosts.keys().cloned().collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// The user ssh logs in as on `host`: the host's, the options', else what ssh
    /// resolves from its config (`ssh -G`, asked once per host); `None` when unknown.
    pub fn login_user(&self, host: &SshHost) -> Option<String> {
        if let Some(u) = host.user.as_ref().or(self.options.user.as_ref()) {
            return Some(u.clone());
        }
        let key = format!("{}:{}", host.address, host.port.unwrap_or(0));
        if let Ok(cache) = self.resolved.lock()
            && let Some(u) = cache.get(&key)
        {
            return u.clone();
        }
        let argv = resolve_argv(&self.options, host);
        let cmd = NodeCommand::new(argv.clone()).timeout(Duration::from_secs(10));
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        let user = crate::process::run(&host.address, c, &cmd)
            .ok()
            .filter(Output::success)
            .and_then(|o| resolved_user(&String::from_utf8_lossy(&o.stdout)));
        if let Ok(mut cache) = self.resolved.lock() {
            cache.insert(key, user.clone());
        }
        user
    }
}

impl NodeAccess for Ssh {
    fn kind(&self) -> AccessKind {
        AccessKind::Ssh
    }

    fn run(&self, node: &str, cmd: &NodeCommand) -> Result<Output> {
        let host = self.host(node)?;
        let user = self.login_user(&host);
        let argv = ssh_argv(&self.options, &host, user.as_deref(), &cmd.argv);
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        let out = crate::process::run(node, c, cmd)?;
        if out.status.code() == Some(255) {
            return Err(Error::Unreachable {
                node: node.to_string(),
                destination: destination(&host, user.as_deref()),
                stderr: out.stderr_tail(4),
            });
        }
        Ok(out)
    }
}

/// `user@address:port` for messages.
fn destination(host: &SshHost, user: Option<&str>) -> String {
    let mut d = String::new();
    if let Some(u) = user {
        d.push_str(u);
        d.push('@');
    }
    d.push_str(&host.address);
    if let Some(p) = host.port {
        d.push_str(&format!(":{p}"));
    }
    d
}

/// A path for an `ssh -o Key=value` option (double quotes when it has blanks).
fn option_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    if s.contains(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s.into_owned()
    }
}

/// The options shared by a connection and by `ssh -G`.
fn common_args(options: &SshOptions, host: &SshHost) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(f) = &options.config_file {
        v.extend(["-F".into(), f.to_string_lossy().into_owned()]);
    }
    if let Some(p) = host.port {
        v.extend(["-p".into(), p.to_string()]);
    }
    if let Some(u) = host.user.as_ref().or(options.user.as_ref()) {
        v.extend(["-l".into(), u.clone()]);
    }
    v
}

/// The exact argv of `ssh` that runs `argv` on `host` (pure): `login_user` is who ssh
/// logs in as (`sudo -n` comes first unless that is root; unknown: no sudo).
pub fn ssh_argv(
    options: &SshOptions,
    host: &SshHost,
    login_user: Option<&str>,
    argv: &[String],
) -> Vec<String> {
    let mut v = vec![options.program.to_string_lossy().into_owned()];
    v.extend(common_args(options, host));
    v.extend([
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        format!(
            "ConnectTimeout={}",
            options.connect_timeout.as_secs().max(1)
        ),
    ]);
    if let Some(k) = &options.known_hosts_file {
        v.extend([
            "-o".into(),
            format!("UserKnownHostsFile={}", option_path(k)),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
        ]);
    }
    if let Some(i) = &host.identity_file {
        v.extend([
            "-i".into(),
            i.to_string_lossy().into_owned(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
        ]);
    }
    // `--`: nothing after it is an ssh option, neither the destination nor the command.
    v.extend(["--".into(), host.address.clone()]);
    let sudo = login_user.is_some_and(|u| u != "root");
    let mut remote: Vec<String> = Vec::new();
    if sudo {
        remote.extend(["sudo".into(), "-n".into(), "--".into()]);
    }
    remote.extend(argv.iter().cloned());
    v.push(remote_line(&remote));
    v
}

/// The argv of `ssh -G` that prints the configuration ssh would use for `host`.
fn resolve_argv(options: &SshOptions, host: &SshHost) -> Vec<String> {
    let mut v = vec![options.program.to_string_lossy().into_owned()];
    v.extend(common_args(options, host));
    v.extend(["-G".into(), "--".into(), host.address.clone()]);
    v
}

/// The `user` line of `ssh -G` output.
fn resolved_user(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("user "))
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
}

/// The command line the remote shell runs: every argument quoted as it needs (ssh
/// joins its arguments with spaces and hands the line to the login shell).
pub fn remote_line(argv: &[String]) -> String {
    // An argument cannot hold a NUL byte (execve refuses it on the node too).
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_host_name_from_the_ssh_config() {
        let argv = ssh_argv(
            &SshOptions::default(),
            &SshHost::named("cp1"),
            None,
            &args(&["kastellan", "status", "--local", "-o", "json"]),
        );
        assert_eq!(
            argv,
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "--",
                "cp1",
                "kastellan status --local -o json"
            ]
        );
    }

    #[test]
    fn inventory_host_as_root_every_option() {
        let options = SshOptions {
            config_file: Some("/var/lib/kastellan/lab/ssh/config".into()),
            known_hosts_file: Some("/var/lib/kastellan/lab/ssh/known_hosts".into()),
            connect_timeout: Duration::from_millis(2500),
            ..SshOptions::default()
        };
        let host = SshHost {
            address: "10.77.0.12".into(),
            user: Some("root".into()),
            port: Some(22),
            identity_file: Some("/var/lib/kastellan/lab/ssh/id_ed25519".into()),
        };
        let argv = ssh_argv(&options, &host, Some("root"), &args(&["hostname"]));
        assert_eq!(
            argv,
            [
                "ssh",
                "-F",
                "/var/lib/kastellan/lab/ssh/config",
                "-p",
                "22",
                "-l",
                "root",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=2",
                "-o",
                "UserKnownHostsFile=/var/lib/kastellan/lab/ssh/known_hosts",
                "-o",
                "StrictHostKeyChecking=yes",
                "-i",
                "/var/lib/kastellan/lab/ssh/id_ed25519",
                "-o",
                "IdentitiesOnly=yes",
                "--",
                "10.77.0.12",
                "hostname"
            ]
        );
    }

    #[test]
    fn a_user_that_is_not_root_gets_sudo_n() {
        let options = SshOptions {
            user: Some("ops".into()),
            connect_timeout: Duration::from_secs(0),
            ..SshOptions::default()
        };
        let argv = ssh_argv(
            &options,
            &SshHost::named("node-a.example"),
            Some("ops"),
            &args(&["cat", "--", "/etc/kubernetes/admin.conf"]),
        );
        assert_eq!(
            argv,
            [
                "ssh",
                "-l",
                "ops",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=1",
                "--",
                "node-a.example",
                "sudo -n -- cat -- /etc/kubernetes/admin.conf"
            ]
        );
        // The host's own user wins over the default, and decides about sudo.
        let host = SshHost {
            user: Some("root".into()),
            ..SshHost::named("n")
        };
        let argv = ssh_argv(&options, &host, Some("root"), &args(&["id"]));
        assert!(argv.contains(&"root".to_string()) && !argv.contains(&"ops".to_string()));
        assert_eq!(argv.last().unwrap(), "id");
    }

    #[test]
    fn arguments_survive_the_remote_shell() {
        let argv = ssh_argv(
            &SshOptions::default(),
            &SshHost::named("cp1"),
            Some("root"),
            &args(&[
                "/opt/my tools/kastellan",
                "restore",
                "--initial-cluster=cp1=https://10.77.0.11:2380",
                "it's",
                "$HOME",
                "a;b",
                "",
                "*",
                "~",
            ]),
        );
        assert_eq!(
            argv.last().unwrap(),
            r#"'/opt/my tools/kastellan' restore '--initial-cluster=cp1=https://10.77.0.11:2380' "it's" '$HOME' 'a;b' '' '*' '~'"#
        );
    }

    #[test]
    fn a_known_hosts_path_with_blanks_is_quoted_for_ssh() {
        let options = SshOptions {
            known_hosts_file: Some("/tmp/my dir/known_hosts".into()),
            ..SshOptions::default()
        };
        let argv = ssh_argv(&options, &SshHost::named("h"), None, &args(&["true"]));
        assert!(argv.contains(&"UserKnownHostsFile=\"/tmp/my dir/known_hosts\"".to_string()));
    }

    #[test]
    fn ssh_g_asks_for_the_same_host() {
        let options = SshOptions {
            config_file: Some("/c".into()),
            ..SshOptions::default()
        };
        let host = SshHost {
            port: Some(2222),
            ..SshHost::named("cp3")
        };
        assert_eq!(
            resolve_argv(&options, &host),
            ["ssh", "-F", "/c", "-p", "2222", "-G", "--", "cp3"]
        );
        assert_eq!(
            resolved_user("hostname 10.77.0.13\nuser root\nport 22\n").as_deref(),
            Some("root")
        );
        assert_eq!(resolved_user("port 22\n"), None);
    }

    #[test]
    fn destinations_name_user_and_port() {
        let host = SshHost {
            port: Some(2222),
            ..SshHost::named("10.0.0.1")
        };
        assert_eq!(destination(&host, Some("ops")), "ops@10.0.0.1:2222");
        assert_eq!(destination(&SshHost::named("cp1"), None), "cp1");
    }

    #[test]
    fn unknown_nodes_of_an_inventory_are_named() {
        let inv = Inventory::parse(
            "nodes:\n- name: cp1\n  address: 10.77.0.11\n  role: control-plane\n",
            Path::new("/inv.yaml"),
        )
        .unwrap();
        let ssh = Ssh::from_inventory(&inv, SshOptions::default());
        assert_eq!(ssh.host("cp1").unwrap().address, "10.77.0.11");
        let err = ssh.host("cp9").unwrap_err().to_string();
        assert!(
            err.contains("cp9") && err.contains("/inv.yaml") && err.contains("cp1"),
            "{err}"
        );
        // Without an inventory, the node's name is the destination.
        assert_eq!(
            Ssh::new(SshOptions::default()).host("cp9").unwrap(),
            SshHost::named("cp9")
        );
    }

    #[test]
    fn quoting() {
        let line = |v: &[&str]| remote_line(&args(v));
        assert_eq!(line(&["abc-1.2/x:y@h+_"]), "abc-1.2/x:y@h+_");
        assert_eq!(line(&["", "a b"]), "'' 'a b'");
        // `=` is quoted: a first word with one would be an assignment.
        assert_eq!(line(&["a=b"]), "'a=b'");
        // What the remote shell splits the line into is exactly the argv.
        let argv = ["it's", "line\nbreak", "$HOME", "`x`", "a\"b", "*"];
        assert_eq!(
            shlex::split(&line(&argv)).unwrap(),
            argv.map(String::from).to_vec()
        );
    }
}

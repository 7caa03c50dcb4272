//! One way to reach a node.
//!
//! [`NodeAccess`] runs a command on a named node (argv, optional stdin, a timeout;
//! exit status, stdout and stderr come back as bytes), puts a file on it (written to a
//! temporary file beside the target, then renamed) and gets a file from it. Three
//! implementations:
//!
//! - [`Local`]: this host.
//! - [`Lab`]: a node of the built-in lab, through `kastellan lab exec NODE -- ...` (its
//!   network, mount and UTS namespaces).
//! - [`Ssh`]: the system `ssh` client, so `~/.ssh/config` (or a given config file) is
//!   honoured; always `BatchMode=yes` and a connect timeout; `sudo -n` in front of the
//!   command when the login user is not root; arguments quoted for the remote shell.
//!
//! An [`Inventory`] file (YAML) lists nodes with their address, login user, port,
//! identity file and role, as an alternative to the API's node list.
//!
//! The API is synchronous (processes with a deadline); async callers use
//! `tokio::task::spawn_blocking`.

mod error;
mod inventory;
mod lab;
mod local;
mod process;
mod ssh;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

pub use error::{Error, Result};
pub use inventory::{Inventory, InventoryNode, Role};
pub use lab::Lab;
pub use local::Local;
pub use ssh::{Ssh, SshHost, SshOptions, remote_line, ssh_argv};

/// How long a command may run when its [`NodeCommand`] does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes for a command's standard input, or for a file put on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// These bytes.
    Bytes(Vec<u8>),
    /// The content of this local file (streamed, not read into memory first).
    File(PathBuf),
}

/// Receives each line a command writes while it runs: (`true` for stderr, the line
/// without its newline). The whole output is still collected in [`Output`].
#[derive(Clone)]
pub struct LineSink(pub std::sync::Arc<LineFn>);

/// What a [`LineSink`] calls: (from stderr, the line).
pub type LineFn = dyn Fn(bool, &str) + Send + Sync;

impl LineSink {
    /// A sink calling `f`.
    pub fn new(f: impl Fn(bool, &str) + Send + Sync + 'static) -> LineSink {
        LineSink(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for LineSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineSink")
    }
}

impl PartialEq for LineSink {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LineSink {}

/// A command to run on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCommand {
    /// The program and its arguments, as `execve` gets them on the node.
    pub argv: Vec<String>,
    /// What the command reads on its standard input (nothing: `/dev/null`).
    pub stdin: Option<Payload>,
    /// How long it may run, connection included; it is killed after that.
    pub timeout: Duration,
    /// Where each line of output goes as it is written, if anywhere.
    pub lines: Option<LineSink>,
}

impl NodeCommand {
    /// A command with no input and [`DEFAULT_TIMEOUT`].
    pub fn new<I, S>(argv: I) -> NodeCommand
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        NodeCommand {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
            lines: None,
        }
    }

    /// Passes each line of output to `sink` while the command runs.
    pub fn lines(mut self, sink: LineSink) -> NodeCommand {
        self.lines = Some(sink);
        self
    }

    /// Feeds `payload` to the command's standard input.
    pub fn stdin(mut self, payload: Payload) -> NodeCommand {
        self.stdin = Some(payload);
        self
    }

    /// Sets how long the command may run.
    pub fn timeout(mut self, timeout: Duration) -> NodeCommand {
        self.timeout = timeout;
        self
    }

    /// The command line for messages (arguments quoted as a shell would need them).
    pub fn display(&self) -> String {
        remote_line(&self.argv)
    }
}

/// What a command did on a node.
#[derive(Debug, Clone)]
pub struct Output {
    /// Its exit status (over ssh: the remote command's, or 255 when ssh itself failed).
    pub status: ExitStatus,
    /// Everything it wrote on standard output.
    pub stdout: Vec<u8>,
    /// Everything it wrote on standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The last `lines` lines of its standard error, trimmed.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let tail: Vec<&str> = text.trim_end().lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// `Ok(self)` when it succeeded, else [`Error::Failed`] naming the node and the
    /// command, with the tail of its standard error.
    pub fn check(self, node: &str, cmd: &NodeCommand) -> Result<Output> {
        if self.success() {
            Ok(self)
        } else {
            Err(Error::Failed {
                node: node.to_string(),
                command: cmd.display(),
                status: self.status.to_string(),
                stderr: self.stderr_tail(8),
            })
        }
    }
}

/// Which implementation reaches the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// This host.
    Local,
    /// The built-in lab's node namespaces.
    Lab,
    /// The system ssh client.
    Ssh,
}

impl AccessKind {
    /// A short label for reports: `local`, `lab` or `ssh`.
    pub fn label(self) -> &'static str {
        match self {
            AccessKind::Local => "local",
            AccessKind::Lab => "lab",
            AccessKind::Ssh => "ssh",
        }
    }
}

impl std::fmt::Display for AccessKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Runs commands on named nodes and moves files to and from them.
pub trait NodeAccess: std::fmt::Debug + Send + Sync {
    /// Which implementation this is.
    fn kind(&self) -> AccessKind;

    /// Runs `cmd` on `node`. A command that runs and fails is `Ok` with its status
    /// (see [`Output::check`]); `Err` means it could not be run or did not finish in
    /// time (it is then killed).
    fn run(&self, node: &str, cmd: &NodeCommand) -> Result<Output>;

    /// Writes `content` to the absolute path `remote` on `node` with permission bits
    /// `mode`: into a temporary file in the same directory (which must exist), synced,
    /// then renamed over `remote`, so readers see the old file or the new one.
    fn put(
        &self,
        node: &str,
        content: Payload,
        remote: &Path,
        mode: u32,
        timeout: Duration,
    ) -> Result<()> {
        let cmd = NodeCommand::new(put_argv(node, remote, mode)?)
            .stdin(content)
            .timeout(timeout);
        self.run(node, &cmd)?.check(node, &cmd)?;
        Ok(())
    }

    /// Reads the file at the absolute path `remote` on `node`.
    fn get(&self, node: &str, remote: &Path, timeout: Duration) -> Result<Vec<u8>> {
        let cmd = NodeCommand::new(["cat".to_string(), "--".into(), absolute(node, remote)?])
            .timeout(timeout);
        Ok(self.run(node, &cmd)?.check(node, &cmd)?.stdout)
    }
}

/// The remote path as a string, refused when it is not absolute (a relative path
/// would depend on the remote working directory).
fn absolute(node: &str, path: &Path) -> Result<String> {
    if !path.is_absolute() {
        return Err(Error::RelativePath {
            node: node.to_string(),
            path: path.to_path_buf(),
        });
    }
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::RelativePath {
            node: node.to_string(),
            path: path.to_path_buf(),
        })
}

/// The script that writes its standard input to `$1` with mode `$2` on a node: a
/// temporary file beside the target (removed on failure), synced, renamed, and the
/// directory synced.
const PUT_SCRIPT: &str = r#"set -e
f=$1
t=$f.kastellan-tmp.$$
trap 'rm -f "$t"' EXIT
umask 077
cat >"$t"
chmod "$2" "$t"
sync "$t" 2>/dev/null || sync
mv -f "$t" "$f"
trap - EXIT
sync "${f%/*}/" 2>/dev/null || sync
"#;

/// The argv that puts standard input at `remote` with `mode` on a node (pure).
pub fn put_argv(node: &str, remote: &Path, mode: u32) -> Result<Vec<String>> {
    Ok(vec![
        "sh".into(),
        "-c".into(),
        PUT_SCRIPT.into(),
        "kastellan-put".into(),
        absolute(node, remote)?,
        format!("{:o}", mode & 0o7777),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_argv_passes_path_and_mode_as_arguments_not_in_the_script() {
        let argv = put_argv("cp1", Path::new("/etc/kubernetes/a b.conf"), 0o600).unwrap();
        assert_eq!(argv[0..2], ["sh", "-c"]);
        assert!(!argv[2].contains("a b.conf"));
        assert_eq!(
            argv[3..],
            ["kastellan-put", "/etc/kubernetes/a b.conf", "600"]
        );
        assert_eq!(
            put_argv("cp1", Path::new("/x"), 0o100644).unwrap()[5],
            "644",
            "only the permission bits"
        );
    }

    #[test]
    fn relative_remote_paths_are_refused_naming_the_node() {
        let err = put_argv("cp2", Path::new("etc/x"), 0o600).unwrap_err();
        assert!(err.to_string().contains("cp2"), "{err}");
        assert!(err.to_string().contains("etc/x"), "{err}");
    }

    #[test]
    fn commands_display_quoted() {
        let c = NodeCommand::new(["echo", "a b", "it's"]);
        assert_eq!(c.display(), r#"echo 'a b' "it's""#);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(c.stdin.is_none());
    }
}

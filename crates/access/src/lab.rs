//! [`Lab`]: a node of the built-in lab.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{AccessKind, NodeAccess, NodeCommand, Output, Result};

/// Runs commands inside a lab node's namespaces (network, mount with the node's own
/// `/etc/kubernetes` and data dirs, hostname), through `KASTELLAN lab exec NODE -- ...`
/// on this host. Files move through the node's own view of the filesystem.
#[derive(Debug, Clone)]
pub struct Lab {
    exe: PathBuf,
}

impl Lab {
    /// Lab access through the kastellan binary at `exe` (normally this binary).
    pub fn new(exe: impl Into<PathBuf>) -> Lab {
        Lab { exe: exe.into() }
    }

    /// The kastellan binary that enters the nodes.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The local argv that runs `argv` in `node` (pure).
    pub fn argv(&self, node: &str, argv: &[String]) -> Vec<String> {
        let mut v = vec![
            self.exe.to_string_lossy().into_owned(),
            "lab".into(),
            "exec".into(),
            node.to_string(),
            "--".into(),
        ];
        v.extend(argv.iter().cloned());
        v
    }
}

impl NodeAccess for Lab {
    fn kind(&self) -> AccessKind {
        AccessKind::Lab
    }

    fn run(&self, node: &str, cmd: &NodeCommand) -> Result<Output> {
        let mut c = Command::new(&self.exe);
        c.args(&self.argv(node, &cmd.argv)[1..]);
        crate::process::run(node, c, cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_exec_argv() {
        let lab = Lab::new("/usr/local/bin/kastellan");
        assert_eq!(
            lab.argv("cp2", &["hostname".into(), "-f".into()]),
            [
                "/usr/local/bin/kastellan",
                "lab",
                "exec",
                "cp2",
                "--",
                "hostname",
                "-f"
            ]
        );
    }
}

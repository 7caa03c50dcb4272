//! [`Local`]: this host.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{AccessKind, Error, NodeAccess, NodeCommand, Output, Payload, Result, absolute};

/// Runs commands on this host, whatever node is named (the name appears in errors).
#[derive(Debug, Clone, Default)]
pub struct Local;

impl Local {
    /// This host.
    pub fn new() -> Local {
        Local
    }
}

impl NodeAccess for Local {
    fn kind(&self) -> AccessKind {
        AccessKind::Local
    }

    fn run(&self, node: &str, cmd: &NodeCommand) -> Result<Output> {
        let Some((program, args)) = cmd.argv.split_first() else {
            return Err(Error::Start {
                node: node.to_string(),
                program: String::new(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
            });
        };
        let mut c = Command::new(program);
        c.args(args);
        crate::process::run(node, c, cmd)
    }

    fn put(
        &self,
        node: &str,
        content: Payload,
        remote: &Path,
        mode: u32,
        _timeout: Duration,
    ) -> Result<()> {
        absolute(node, remote)?;
        write_durably(node, &content, remote, mode)
    }

    fn get(&self, node: &str, remote: &Path, _timeout: Duration) -> Result<Vec<u8>> {
        absolute(node, remote)?;
        std::fs::read(remote).map_err(io(node, "reading", remote))
    }
}

fn io<'a>(
    node: &'a str,
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        node: node.to_string(),
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `content` durably through kastellan-fs (temp beside, exact mode, fsync,
/// rename, fsync of the directory), streaming a file's content.
fn write_durably(node: &str, content: &Payload, path: &Path, mode: u32) -> Result<()> {
    let fs_err = |e: kastellan_fs::Error| {
        let path = e.path().to_path_buf();
        match e {
            kastellan_fs::Error::Io { op, source, .. } => io(node, op, &path)(source),
            other => io(node, "writing", &path)(std::io::Error::other(other.to_string())),
        }
    };
    match content {
        Payload::Bytes(b) => kastellan_fs::write_atomic(path, b, mode & 0o7777).map_err(fs_err),
        Payload::File(src) => {
            let mut from = std::fs::File::open(src).map_err(io(node, "opening", src))?;
            kastellan_fs::write_atomic_from(path, &mut from, mode & 0o7777).map_err(fs_err)
        }
    }
}

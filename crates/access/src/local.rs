//! [`Local`]: this host.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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

/// Temp file beside `path`, content, mode, fsync, rename, fsync of the directory; the
/// temp file is removed when a step fails.
fn write_durably(node: &str, content: &Payload, path: &Path, mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.kastellan-tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(node, "creating", &tmp))?;
        match content {
            Payload::Bytes(b) => f.write_all(b).map_err(io(node, "writing", &tmp))?,
            Payload::File(src) => {
                let mut from = std::fs::File::open(src).map_err(io(node, "opening", src))?;
                std::io::copy(&mut from, &mut f).map_err(io(node, "writing", &tmp))?;
            }
        }
        // Exactly `mode`, whatever the umask.
        f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io(node, "setting the mode of", &tmp))?;
        f.sync_all().map_err(io(node, "syncing", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io(node, "renaming into", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(node, "syncing", dir))
}

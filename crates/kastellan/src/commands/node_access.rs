//! The command line's node access options turned into one `kastellan-access`
//! implementation (shared by `status`, `exporter` and `restore --all-nodes`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kastellan_access::{Inventory, Lab, NodeAccess, Ssh, SshOptions};

use crate::cli::SshArgs;

/// Node access and the kastellan binary to run on the nodes.
pub struct Reach {
    /// How the nodes are reached.
    pub access: Arc<dyn NodeAccess>,
    /// kastellan's path on the nodes.
    pub kastellan: String,
    /// The inventory the nodes come from, if any.
    pub inventory: Option<Inventory>,
}

/// This kastellan binary (a rebuilt binary shows as "path (deleted)"; the new file at
/// the path is ours too).
pub fn this_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the kastellan binary")?;
    let s = exe.to_string_lossy();
    Ok(match s.strip_suffix(" (deleted)") {
        Some(p) => PathBuf::from(p),
        None => exe,
    })
}

/// The lab's namespaces, entered by this binary, which also runs in them.
pub fn lab() -> Result<Reach> {
    let exe = this_exe()?;
    Ok(Reach {
        kastellan: exe.display().to_string(),
        access: Arc::new(Lab::new(exe)),
        inventory: None,
    })
}

/// Whether a lab runs with `lab up --ssh`.
pub fn lab_ssh_up() -> bool {
    kastellan_lab::LabState::load()
        .ok()
        .flatten()
        .is_some_and(|s| s.spec.ssh)
}

/// Whether a lab runs whose nodes have package state of their own (`lab up --packages`).
pub fn lab_packages_up() -> bool {
    kastellan_lab::LabState::load()
        .ok()
        .flatten()
        .is_some_and(|s| s.spec.packages)
}

/// Whether ssh options name no inventory and no ssh config (so the lab's may be used).
pub fn unconfigured(args: &SshArgs) -> bool {
    args.inventory.is_none() && args.ssh_config.is_none()
}

/// ssh as `args` say; with `lab_inventory`, the lab's own inventory (`lab up --ssh`),
/// which needs such a lab. The lab's inventory (given either way) makes this binary the
/// default kastellan on the nodes, since they see the host's files at the same paths.
pub fn ssh(args: &SshArgs, lab_inventory: bool) -> Result<Reach> {
    let lab_files = kastellan_lab::ssh_files();
    let inventory_path: Option<PathBuf> = if lab_inventory {
        if !lab_ssh_up() {
            bail!(
                "no lab with sshd is up ({} missing or without --ssh): kastellan lab up --ssh",
                kastellan_lab::LabState::path().display()
            );
        }
        Some(lab_files.inventory.clone())
    } else {
        args.inventory.clone()
    };
    let inventory = inventory_path.as_deref().map(Inventory::load).transpose()?;
    let is_lab = inventory_path
        .as_deref()
        .is_some_and(|p| same_file(p, &lab_files.inventory));
    let kastellan = match &args.remote_kastellan {
        Some(k) => k.clone(),
        None if is_lab => this_exe()?.display().to_string(),
        None => "kastellan".into(),
    };
    let options = SshOptions {
        config_file: if lab_inventory {
            None
        } else {
            args.ssh_config.clone()
        },
        connect_timeout: Duration::from_secs(args.ssh_connect_timeout.max(1)),
        user: args.ssh_user.clone(),
        ..SshOptions::default()
    };
    let access: Arc<dyn NodeAccess> = match &inventory {
        Some(inv) => Arc::new(Ssh::from_inventory(inv, options)),
        None => Arc::new(Ssh::new(options)),
    };
    Ok(Reach {
        access,
        kastellan,
        inventory,
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

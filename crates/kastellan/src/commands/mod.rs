//! One module per command group; `run` dispatches to them.

mod backup;
mod backup_schedule;
mod certs;
mod certs_view;
mod csr;
mod etcd;
mod exporter;
mod generate;
mod ha;
mod join;
mod kube;
mod lab;
mod node;
mod node_access;
mod objects;
mod preflight;
mod restore;
mod restore_agents;
mod status;
mod status_view;
mod token;
mod upgrade;
mod versions;

use anyhow::Result;
use kastellan_printer::Printer;

use crate::Outcome;
use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli, printer: &Printer) -> Result<Outcome> {
    match cli.command {
        Command::Lab(cmd) => lab::run(cmd, &cli.global, printer),
        Command::Generate(cmd) => generate::run(cmd, &cli.global, printer),
        Command::Certs(cmd) => certs::run(cmd, &cli.global, printer),
        Command::Etcd(cmd) => etcd::run(cmd, &cli.global, printer),
        Command::Backup(cmd) => backup::run(cmd, &cli.global, printer),
        Command::Status(args) => status::run(args, &cli.global, printer),
        Command::Exporter(args) => exporter::run(args, &cli.global, printer),
        Command::Restore(args) => restore::run(*args, &cli.global, printer),
        Command::Versions(args) => versions::versions(&args, &cli.global, printer),
        Command::Upgrade(crate::cli::UpgradeCommand::Check(args)) => {
            versions::check(&args, &cli.global, printer)
        }
        Command::Upgrade(crate::cli::UpgradeCommand::Plan(args)) => {
            versions::plan(&args, &cli.global, printer)
        }
        Command::Upgrade(crate::cli::UpgradeCommand::Apply(args)) => {
            upgrade::apply(*args, &cli.global, printer)
        }
        Command::Node(cmd) => node::run(cmd, &cli.global, printer),
        Command::Csr(cmd) => csr::run(cmd, &cli.global, printer),
        Command::Ha(args) => ha::run(args, &cli.global, printer),
        Command::Token(cmd) => token::run(cmd, &cli.global, printer),
        Command::Join(args) => join::run(args, &cli.global, printer),
        Command::Preflight(args) => preflight::run(&args, printer),
    }
}

/// A multi-threaded tokio runtime for commands that do network work.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Says which dead runs' leftovers (`.part` files, staging directories) a command
/// removed before it started: their writers had died (their locks were free).
pub(crate) fn note_leftovers(printer: &Printer, leftovers: &[kastellan_kubeadm::fs::Leftover]) {
    for l in leftovers {
        printer.note(format!(
            "removed {} ({} bytes), left by a run that died (its lock was free)",
            l.path.display(),
            l.size
        ));
    }
}

/// A removed leftover in a JSON or YAML report.
#[derive(Debug, serde::Serialize)]
pub(crate) struct LeftoverReport {
    /// The file or directory removed.
    pub path: std::path::PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

impl LeftoverReport {
    /// The reports of `leftovers`.
    pub(crate) fn all(leftovers: &[kastellan_kubeadm::fs::Leftover]) -> Vec<LeftoverReport> {
        leftovers
            .iter()
            .map(|l| LeftoverReport {
                path: l.path.clone(),
                size: l.size,
            })
            .collect()
    }
}

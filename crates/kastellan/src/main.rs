//! kastellan: day-2 administration of kubeadm-style Kubernetes clusters.
//!
//! This binary is deliberately thin: it parses the command line, sets up logging and
//! the printer, and hands over to the domain crates. Exit codes: 0 ok, 1 unhealthy or
//! drift found, 2 usage or runtime error.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use kastellan_printer::{Format, Printer};

use crate::cli::{Cli, OutputFormat};

/// What a command reports back to `main`: the verdict that becomes the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked out (exit 0).
    Ok,
    /// The command ran, and found something unhealthy or drifted (exit 1).
    Unhealthy,
    /// The command ran but could not check what it was asked to (exit 2).
    CouldNotCheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.global.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KASTELLAN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .try_init();

    let format = match cli.global.output {
        OutputFormat::Table => Format::Table,
        OutputFormat::Wide => Format::Wide,
        OutputFormat::Json => Format::Json,
        OutputFormat::Yaml => Format::Yaml,
    };
    let printer = Printer::new(format, cli.global.quiet);
    match commands::run(cli, &printer) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Unhealthy) => ExitCode::from(1),
        Ok(Outcome::CouldNotCheck) => ExitCode::from(2),
        // A reader that went away (`kastellan ... | head`) is not an error: quiet, as
        // ripgrep does.
        Err(err) if broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            printer.error(format!("{err:#}"));
            ExitCode::from(2)
        }
    }
}

/// Whether `err` comes from writing to a closed pipe.
fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

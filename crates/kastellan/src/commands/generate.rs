//! `kastellan generate completions|man`: derived from the clap definitions.

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::Outcome;
use crate::cli::{Cli, GenerateCommand};

/// Runs `generate`.
pub fn run(cmd: GenerateCommand, printer: &kastellan_printer::Printer) -> Result<Outcome> {
    match cmd {
        GenerateCommand::Completions { shell } => {
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "kastellan", &mut script);
            printer.raw(script)?;
        }
        GenerateCommand::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
        }
    }
    Ok(Outcome::Ok)
}

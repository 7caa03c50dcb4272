//! `kastellan generate completions|man`: derived from the clap definitions.
//!
//! `completions` writes a shell script to stdout as it is (`-o json|yaml` does not apply
//! to a script and is refused); `man` reports the pages it wrote (`-o json|yaml` for
//! scripts, nothing with `--quiet`). Neither talks to the API.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use kastellan_printer::{Printer, Report, Style};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{Cli, GenerateCommand, GlobalArgs, OutputFormat};

/// Runs `generate`.
pub fn run(cmd: GenerateCommand, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    match cmd {
        GenerateCommand::Completions { shell } => {
            if matches!(global.output, OutputFormat::Json | OutputFormat::Yaml) {
                bail!("generate completions writes a shell script: -o json|yaml does not apply");
            }
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "kastellan", &mut script);
            printer.raw(script)?;
        }
        GenerateCommand::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            let mut pages: Vec<String> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("kastellan") && n.ends_with(".1"))
                .collect();
            pages.sort();
            printer.report(&ManReport { dir, pages })?;
        }
    }
    Ok(Outcome::Ok)
}

/// The man pages written.
#[derive(Serialize)]
struct ManReport {
    /// Where.
    dir: PathBuf,
    /// Their file names.
    pages: Vec<String>,
}

impl Report for ManReport {
    fn render(&self, out: &mut String, _: &Style) {
        out.push_str(&format!(
            "wrote {} man pages into {}\n",
            self.pages.len(),
            self.dir.display()
        ));
    }
}

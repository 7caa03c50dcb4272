//! The one place where kastellan writes user-facing output.
//!
//! A command builds a value that implements [`Report`] and hands it to
//! [`Printer::report`]. The printer renders it as a human table or as stable JSON/YAML
//! (the serde representation), honours `--quiet`, and decides whether colour and
//! progress bars are allowed (only when the stream is a terminal).
//!
//! Human output knows the width it must fit ([`Style::width`]): `COLUMNS` when it is
//! set to a number, else the terminal's width when stdout is a terminal, else none (a
//! pipe or a file gets whole lines). [`Table`]s cut long cells with `…` to fit it
//! instead of letting the terminal wrap them; JSON and YAML are never cut.

// The one crate allowed to print: every other crate writes through it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;

/// The progress bar [`Printer::spinner`] returns (indicatif's).
pub use indicatif::ProgressBar;

mod table;

pub use table::{Table, display_width, truncate, wrap};

/// Output format chosen with `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Human-readable tables and text.
    #[default]
    Table,
    /// Human-readable, with more detail where a command has it (kubectl's `-o wide`);
    /// the same as [`Format::Table`] elsewhere.
    Wide,
    /// Machine-readable JSON (stable, documented per command).
    Json,
    /// The same document as YAML.
    Yaml,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" | "text" => Ok(Format::Table),
            "wide" => Ok(Format::Wide),
            "json" => Ok(Format::Json),
            "yaml" => Ok(Format::Yaml),
            other => Err(format!(
                "unknown output format '{other}' (expected table, wide, json or yaml)"
            )),
        }
    }
}

impl Format {
    /// Whether this is output for humans (`table` or `wide`), not for machines.
    pub fn is_human(self) -> bool {
        matches!(self, Format::Table | Format::Wide)
    }
}

/// Errors the printer can hit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing to stdout or stderr failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    /// The value could not be serialised as JSON.
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The value could not be serialised as YAML.
    #[error("encoding YAML: {0}")]
    Yaml(String),
}

/// Something a command reports: serialisable for `-o json|yaml`, renderable for humans.
pub trait Report: Serialize {
    /// Writes the human form of the report. `style` says whether colour is allowed,
    /// the width lines should fit and whether `-o wide` was asked for.
    fn render(&self, out: &mut String, style: &Style);
}

/// Styling and layout decisions for human output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// Whether ANSI colour may be used.
    pub color: bool,
    /// The width (in terminal columns) lines should fit, when one is known; `None`:
    /// nothing is cut or wrapped to a width.
    pub width: Option<usize>,
    /// Whether `-o wide` asked for the detailed view.
    pub wide: bool,
}

impl Style {
    /// No colour, no width, not wide: what a pipe gets.
    pub fn plain() -> Style {
        Style::default()
    }
    /// Wraps `text` in green when colour is on.
    pub fn good(&self, text: &str) -> String {
        self.paint(text, owo_colors::Style::new().green())
    }
    /// Wraps `text` in yellow when colour is on.
    pub fn warn(&self, text: &str) -> String {
        self.paint(text, owo_colors::Style::new().yellow())
    }
    /// Wraps `text` in red when colour is on.
    pub fn bad(&self, text: &str) -> String {
        self.paint(text, owo_colors::Style::new().red())
    }
    /// Wraps `text` in bold when colour is on.
    pub fn bold(&self, text: &str) -> String {
        self.paint(text, owo_colors::Style::new().bold())
    }
    fn paint(&self, text: &str, style: owo_colors::Style) -> String {
        use owo_colors::OwoColorize as _;
        if self.color {
            text.style(style).to_string()
        } else {
            text.to_string()
        }
    }
}

/// Whether `NO_COLOR` asks for no escape codes (set and not empty).
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// The width human output fits: `COLUMNS` when it holds a positive number (the user
/// said so, even for a pipe), else the terminal's width, else none.
pub fn output_width(columns: Option<&str>, terminal: Option<usize>) -> Option<usize> {
    columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
        .or(terminal.filter(|t| *t > 0))
}

/// The printer every command writes through.
#[derive(Debug, Clone)]
pub struct Printer {
    format: Format,
    quiet: bool,
    /// Colour and in-place refreshes on stdout: a terminal, and no `NO_COLOR`.
    stdout_color: bool,
    /// The width human output on stdout fits.
    width: Option<usize>,
    stderr_tty: bool,
    /// The live status line on stderr, when one is shown: notes, warnings and errors
    /// are printed above it instead of through it.
    live: Arc<Mutex<Option<ProgressBar>>>,
}

impl Printer {
    /// Builds a printer; terminal detection is done here, once.
    pub fn new(format: Format, quiet: bool) -> Self {
        let stdout = std::io::stdout();
        let terminal = terminal_size::terminal_size_of(&stdout).map(|(w, _)| usize::from(w.0));
        let columns = std::env::var("COLUMNS").ok();
        Printer {
            format,
            quiet,
            stdout_color: stdout.is_terminal() && !no_color(),
            width: output_width(columns.as_deref(), terminal),
            stderr_tty: std::io::stderr().is_terminal(),
            live: Arc::default(),
        }
    }

    /// Writes one line on stderr, above the live line when one is shown. A stderr that
    /// is gone (its reader killed, the ssh connection that carried it lost) does not
    /// stop the command halfway through a change, as `eprintln!` would with a panic at
    /// the next line: the line is dropped and the work goes on.
    fn line(&self, text: &str) {
        let write = || {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        };
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        match live.as_ref() {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// The selected output format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether `--quiet` was given.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// Styling for human output on stdout.
    pub fn style(&self) -> Style {
        Style {
            color: self.stdout_color && self.format.is_human(),
            width: self.width,
            wide: self.format == Format::Wide,
        }
    }

    /// Prints a report on stdout in the selected format. With `--quiet` and the table
    /// format nothing is printed (the exit code carries the verdict); JSON and YAML are
    /// always printed because a script asked for them.
    pub fn report<R: Report>(&self, report: &R) -> Result<(), Error> {
        let text = self.render(report)?;
        if self.quiet && self.format.is_human() {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    }

    /// Renders a report to a string in the selected format.
    pub fn render<R: Report>(&self, report: &R) -> Result<String, Error> {
        Ok(match self.format {
            Format::Table | Format::Wide => {
                let mut s = String::new();
                report.render(&mut s, &self.style());
                s
            }
            Format::Json => {
                let mut s = serde_json::to_string_pretty(report)?;
                s.push('\n');
                s
            }
            Format::Yaml => {
                serde_saphyr::to_string(report).map_err(|e| Error::Yaml(e.to_string()))?
            }
        })
    }

    /// A note for humans on stderr (suppressed by `--quiet`).
    pub fn note(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            self.line(msg.as_ref());
        }
    }

    /// A warning on stderr; shown even with `--quiet`.
    pub fn warn(&self, msg: impl AsRef<str>) {
        let prefix = Style {
            color: self.stderr_tty && !no_color(),
            ..Style::plain()
        }
        .warn("warning");
        self.line(&format!("{prefix}: {}", msg.as_ref()));
    }

    /// An error on stderr, shown even with `--quiet` (the binary's last word).
    pub fn error(&self, msg: impl AsRef<str>) {
        let prefix = Style {
            color: self.stderr_tty && !no_color(),
            ..Style::plain()
        }
        .bad("error");
        self.line(&format!("{prefix}: {}", msg.as_ref()));
    }

    /// Whether [`Printer::confirm`] can ask: stdin and stderr are terminals.
    pub fn can_confirm(&self) -> bool {
        std::io::stdin().is_terminal() && self.stderr_tty
    }

    /// Asks `question` on stderr and reads the answer from stdin: `Some(true)` for
    /// `y`/`yes`, `Some(false)` for anything else, `None` when stdin or stderr is not a
    /// terminal (nobody to ask: the caller refuses instead of guessing).
    pub fn confirm(&self, question: &str) -> Result<Option<bool>, Error> {
        if !self.can_confirm() {
            return Ok(None);
        }
        {
            let mut err = std::io::stderr().lock();
            write!(err, "{question} [y/N] ")?;
            err.flush()?;
        }
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        let a = answer.trim().to_ascii_lowercase();
        Ok(Some(a == "y" || a == "yes"))
    }

    /// Writes `text` to stdout as it is: generated files (manifests, completions) that
    /// the user redirects. Not suppressed by `--quiet`: it was asked for.
    pub fn raw(&self, text: impl AsRef<[u8]>) -> Result<(), Error> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_ref())?;
        out.flush()?;
        Ok(())
    }

    /// One frame of a report that refreshes (`--watch`): in the table format, on a
    /// terminal, the screen is cleared and the frame drawn in place under `header`
    /// (never with `NO_COLOR`, and nothing with `--quiet`); elsewhere frames follow each
    /// other: JSON one compact document per line, YAML documents separated by `---`.
    pub fn frame<R: Report>(&self, header: &str, report: &R) -> Result<(), Error> {
        let text = match self.format {
            Format::Table | Format::Wide => {
                if self.quiet {
                    return Ok(());
                }
                let body = self.render(report)?;
                let clear = if self.stdout_color {
                    "\x1b[H\x1b[2J"
                } else {
                    ""
                };
                format!("{clear}{header}\n{body}")
            }
            Format::Json => {
                let mut s = serde_json::to_string(report)?;
                s.push('\n');
                s
            }
            Format::Yaml => format!("---\n{}", self.render(report)?),
        };
        self.raw(text)
    }

    /// One event of a long-running command for machines: JSON as one compact document
    /// per line, YAML as documents separated by `---`, on stdout as it happens. The
    /// table format prints nothing here (humans get notes and the progress line).
    pub fn event<T: Serialize>(&self, event: &T) -> Result<(), Error> {
        let text = match self.format {
            Format::Table | Format::Wide => return Ok(()),
            Format::Json => {
                let mut s = serde_json::to_string(event)?;
                s.push('\n');
                s
            }
            Format::Yaml => format!(
                "---\n{}",
                serde_saphyr::to_string(event).map_err(|e| Error::Yaml(e.to_string()))?
            ),
        };
        self.raw(text)
    }

    /// A progress bar for `total` bytes on stderr, hidden unless stderr is a terminal
    /// and `--quiet` is off.
    pub fn bytes_progress(&self, total: Option<u64>, label: &str) -> indicatif::ProgressBar {
        if self.quiet || !self.stderr_tty {
            return indicatif::ProgressBar::hidden();
        }
        let pb = match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::no_length(),
        };
        let style = indicatif::ProgressStyle::with_template(
            "{msg} {bytes} ({binary_bytes_per_sec}) {elapsed_precise}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        pb.set_style(style);
        pb.set_message(label.to_string());
        pb
    }

    /// A live status line at the bottom of a terminal (stderr) for long work made of
    /// steps: a spinner, the step's message (cut to the terminal's width), the time in
    /// this step and in all. While it is shown, every note, warning and error of this
    /// printer (and its clones) is printed above it. Hidden unless stderr is a
    /// terminal and `--quiet` is off; dropping it clears the line.
    pub fn live(&self) -> Live {
        let since = Arc::new(Mutex::new(Instant::now()));
        if self.quiet || !self.stderr_tty {
            return Live {
                bar: ProgressBar::hidden(),
                since,
                slot: None,
            };
        }
        let clock = since.clone();
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {wide_msg} {step} (total {elapsed})",
        )
        .map(|s| {
            s.with_key(
                "step",
                move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let t = clock.lock().unwrap_or_else(PoisonError::into_inner);
                    let _ = write!(w, "{}s", t.elapsed().as_secs());
                },
            )
        })
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let bar = ProgressBar::new_spinner().with_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        *self.live.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
        Live {
            bar,
            since,
            slot: Some(self.live.clone()),
        }
    }

    /// A status line on stderr that follows work counted elsewhere: `read` is asked
    /// every 100 ms for the line to show (`None`: nothing to show yet) until the
    /// [`Follower`] is dropped, which clears it. Hidden (and `read` never called)
    /// unless stderr is a terminal and `--quiet` is off.
    pub fn follow(&self, read: impl Fn() -> Option<String> + Send + 'static) -> Follower {
        if self.quiet || !self.stderr_tty {
            return Follower {
                stop: Arc::new(std::sync::atomic::AtomicBool::new(true)),
                thread: None,
                bar: ProgressBar::hidden(),
            };
        }
        let bar = ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {wide_msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (b, halt) = (bar.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(line) = read() {
                    b.set_message(line);
                    b.tick();
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        Follower {
            stop,
            thread: Some(thread),
            bar,
        }
    }

    /// "12.0 MiB of 40.0 MiB (30%), 8.1 MiB/s": done and total bytes (total 0: unknown)
    /// at a rate over `elapsed`.
    pub fn bytes_line(done: u64, total: u64, elapsed: std::time::Duration) -> String {
        let rate = match elapsed.as_secs_f64() {
            s if s > 0.0 => format!(", {}/s", indicatif::BinaryBytes((done as f64 / s) as u64)),
            _ => String::new(),
        };
        if total > 0 {
            format!(
                "{} of {} ({}%){rate}",
                indicatif::BinaryBytes(done),
                indicatif::BinaryBytes(total),
                done.saturating_mul(100) / total
            )
        } else {
            format!("{}{rate}", indicatif::BinaryBytes(done))
        }
    }

    /// A spinner with a message on stderr, hidden unless stderr is a terminal.
    pub fn spinner(&self, label: &str) -> indicatif::ProgressBar {
        if self.quiet || !self.stderr_tty {
            return indicatif::ProgressBar::hidden();
        }
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message(label.to_string());
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    }
}

/// The live status line of [`Printer::live`].
#[derive(Debug)]
pub struct Live {
    bar: ProgressBar,
    since: Arc<Mutex<Instant>>,
    slot: Option<Arc<Mutex<Option<ProgressBar>>>>,
}

impl Live {
    /// Shows a new step: its message, and the step's clock starts again.
    pub fn step(&self, msg: impl Into<String>) {
        *self.since.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.bar.set_message(msg.into());
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Demo {
        name: &'static str,
        ok: bool,
    }
    impl Report for Demo {
        fn render(&self, out: &mut String, style: &Style) {
            let mut t = Table::new(["NAME", "OK"]);
            t.row([
                self.name.to_string(),
                if self.ok {
                    style.good("yes")
                } else {
                    style.bad("no")
                },
            ]);
            t.render_into(out, style);
        }
    }

    #[test]
    fn renders_each_format() {
        let d = Demo {
            name: "etcd",
            ok: true,
        };
        let p = Printer {
            format: Format::Table,
            quiet: false,
            stdout_color: false,
            width: None,
            stderr_tty: false,
            live: Arc::default(),
        };
        let table = p.render(&d).unwrap();
        assert!(table.contains("NAME"));
        assert!(table.contains("etcd"));
        assert!(!table.contains('\x1b'), "no colour when not a terminal");
        let p = Printer {
            format: Format::Json,
            ..p
        };
        let v: serde_json::Value = serde_json::from_str(&p.render(&d).unwrap()).unwrap();
        assert_eq!(v["name"], "etcd");
        let p = Printer {
            format: Format::Yaml,
            ..p
        };
        assert!(p.render(&d).unwrap().contains("name: etcd"));
    }

    #[test]
    fn parses_formats() {
        assert_eq!("json".parse::<Format>().unwrap(), Format::Json);
        assert_eq!("wide".parse::<Format>().unwrap(), Format::Wide);
        assert!(Format::Wide.is_human() && !Format::Yaml.is_human());
        assert!("xml".parse::<Format>().unwrap_err().contains("xml"));
    }

    #[test]
    fn columns_then_the_terminal_give_the_width() {
        assert_eq!(output_width(Some("100"), Some(80)), Some(100));
        assert_eq!(
            output_width(Some("100"), None),
            Some(100),
            "even for a pipe"
        );
        assert_eq!(output_width(None, Some(80)), Some(80));
        assert_eq!(output_width(Some("wide"), Some(80)), Some(80));
        assert_eq!(output_width(Some("0"), None), None);
        assert_eq!(output_width(None, None), None, "a pipe: whole lines");
        assert_eq!(output_width(None, Some(0)), None);
    }

    #[test]
    fn human_tables_fit_the_width_and_machine_output_is_whole() {
        let d = Demo {
            name: "a-very-long-name-that-does-not-fit-in-twenty-columns",
            ok: true,
        };
        let p = Printer {
            format: Format::Table,
            quiet: false,
            stdout_color: false,
            width: Some(20),
            stderr_tty: false,
            live: Arc::default(),
        };
        let table = p.render(&d).unwrap();
        assert!(table.lines().all(|l| display_width(l) <= 20), "{table}");
        assert!(table.contains('…'), "{table}");
        for format in [Format::Json, Format::Yaml] {
            let p = Printer {
                format,
                ..p.clone()
            };
            assert!(
                p.render(&d).unwrap().contains(d.name),
                "{format:?} is never cut"
            );
        }
    }
}

/// A status line following work (see [`Printer::follow`]); dropping it stops and
/// clears it.
#[derive(Debug)]
pub struct Follower {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    bar: ProgressBar,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

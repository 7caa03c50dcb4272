//! `kastellan backup schedule ...`: scheduled backups as a systemd service and timer.
//!
//! The units come from `kastellan_bundle::schedule` (pure text); this module turns the
//! flags into the service's command lines, and runs the steps. Each step describes
//! itself for `--dry-run` and performs itself otherwise, so what the dry run prints is
//! what runs. JSON documents: the schedule prints `units` (`serviceName`, `service`,
//! `timerName`, `timer`), `unitDir`, `dryRun` and `status` (as `status` prints it, once
//! enabled); `status` prints `timer`, `installed`, `enabled`, `active`, `lastRun`,
//! `lastRunEnded`, `lastResult`, `lastExitStatus`, `nextRun` (UTC, RFC 3339).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kastellan_bundle::schedule::{
    SERVICE_PROPERTIES, ScheduleRequest, ScheduleStatus, TIMER_PROPERTIES, Units, systemd_units,
};
use kastellan_printer::{Printer, Report, Style};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{BackupScheduleArgs, GlobalArgs, S3Args, ScheduleCommand};

/// Runs `kastellan backup schedule ...`.
pub fn run(args: &BackupScheduleArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    if let Some(ScheduleCommand::Status(s)) = &args.command {
        let status = read_status(&s.name)?;
        let outcome = if !status.installed || status.failed() {
            Outcome::Unhealthy
        } else {
            Outcome::Ok
        };
        printer.report(&StatusReport(status))?;
        return Ok(outcome);
    }
    let Some(every) = args.every else {
        bail!("give --every (e.g. --every 6h), or `backup schedule status`");
    };
    if args.cronjob {
        return cronjob(args, every, global, printer);
    }
    if !args.systemd {
        bail!("give --systemd (a service and timer on this node) or --cronjob --image IMAGE");
    }
    let randomized_delay = args
        .randomized_delay
        .unwrap_or_else(|| Duration::from_secs((every.as_secs() / 10).min(30 * 60)));
    let binary = std::env::current_exe().context("finding this binary's path")?;
    let req = ScheduleRequest {
        name: args.name.clone(),
        every,
        randomized_delay,
        binary,
        create_args: create_args(args, global)?,
        prune_args: prune_args(args)?,
    };
    let units = systemd_units(&req)?;
    if !args.unit_dir.is_dir() {
        bail!(
            "{} is not a directory (--unit-dir)",
            args.unit_dir.display()
        );
    }
    let steps = vec![
        Step::Write {
            path: args.unit_dir.join(&units.service_name),
            content: units.service.clone(),
        },
        Step::Write {
            path: args.unit_dir.join(&units.timer_name),
            content: units.timer.clone(),
        },
        Step::Run(vec!["systemctl".into(), "daemon-reload".into()]),
        Step::Run(vec![
            "systemctl".into(),
            "enable".into(),
            "--now".into(),
            units.timer_name.clone(),
        ]),
    ];
    for step in &steps {
        if args.dry_run {
            printer.note(format!("would {}", step.describe()));
        } else {
            printer.note(step.describe());
            step.perform()?;
        }
    }
    let status = if args.dry_run {
        None
    } else {
        Some(read_status(&args.name)?)
    };
    printer.report(&ScheduleReport {
        units,
        unit_dir: args.unit_dir.clone(),
        dry_run: args.dry_run,
        status,
    })?;
    Ok(Outcome::Ok)
}

/// `--cronjob`: prints the CronJob (generated text, through `Printer::raw`).
fn cronjob(
    args: &BackupScheduleArgs,
    every: Duration,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<Outcome> {
    let Some(image) = args.image.clone() else {
        bail!("--cronjob needs --image IMAGE");
    };
    let create = create_args(args, global)?;
    let etc = PathBuf::from(absolute(&args.create.etc_kubernetes)?);
    // Files the run reads outside the mounted directories, each mounted on its own.
    let mut host_files = Vec::new();
    let c = &args.create;
    for p in [
        &c.passphrase_file,
        &c.etcd.cacert,
        &c.etcd.cert,
        &c.etcd.key,
        &global.kubeconfig,
    ]
    .into_iter()
    .flatten()
    {
        let p = PathBuf::from(absolute(p)?);
        if !p.starts_with(&etc) && !host_files.contains(&p) {
            host_files.push(p);
        }
    }
    let req = kastellan_bundle::schedule::CronJobRequest {
        name: args.name.clone(),
        namespace: args.namespace.clone(),
        api_version: args.batch_api_version.clone(),
        every,
        image,
        etc_kubernetes: etc,
        dir: PathBuf::from(absolute(&c.dir.dir)?),
        host_files,
        create_args: create,
        prune_args: prune_args(args)?,
    };
    printer.raw(kastellan_bundle::schedule::cronjob_yaml(&req)?)?;
    Ok(Outcome::Ok)
}

/// An absolute path for the service, which runs in `/`.
fn absolute(p: &Path) -> Result<String> {
    Ok(std::path::absolute(p)
        .with_context(|| format!("making {} absolute", p.display()))?
        .display()
        .to_string())
}

/// The flags of `backup create` the service passes, paths made absolute.
fn create_args(args: &BackupScheduleArgs, global: &GlobalArgs) -> Result<Vec<String>> {
    let c = &args.create;
    let mut out = vec![
        "--dir".to_string(),
        absolute(&c.dir.dir)?,
        "--etc-kubernetes".into(),
        absolute(&c.etc_kubernetes)?,
    ];
    if let Some(k) = &global.kubeconfig {
        out.extend(["--kubeconfig".into(), absolute(k)?]);
    }
    if let Some(ctx) = &global.context {
        out.extend(["--context".into(), ctx.clone()]);
    }
    for r in &c.recipient {
        out.extend(["--recipient".into(), r.clone()]);
    }
    if let Some(f) = &c.passphrase_file {
        out.extend(["--passphrase-file".into(), absolute(f)?]);
    }
    if c.allow_unencrypted_secrets {
        out.push("--allow-unencrypted-secrets".into());
    }
    let e = &c.etcd;
    if !e.endpoints.is_empty() {
        out.extend(["--endpoints".into(), e.endpoints.join(",")]);
    }
    for (flag, path) in [
        ("--cacert", &e.cacert),
        ("--cert", &e.cert),
        ("--key", &e.key),
        ("--manifests-dir", &e.manifests_dir),
    ] {
        if let Some(p) = path {
            out.extend([flag.to_string(), absolute(p)?]);
        }
    }
    out.extend(["--etcd-timeout".into(), e.etcd_timeout.to_string()]);
    if e.from_cluster {
        out.push("--from-cluster".into());
    }
    if c.volume_snapshots {
        out.push("--volume-snapshots".into());
        if let Some(class) = &c.volume_snapshot_class {
            out.extend(["--volume-snapshot-class".into(), class.clone()]);
        }
        out.extend([
            "--volume-snapshot-timeout".into(),
            format!("{}ms", c.volume_snapshot_timeout.as_millis()),
        ]);
    }
    // The off-node copy: the service reads its credentials from a file (never from the
    // unit), so --s3-credentials-file is passed on, made absolute.
    if let Some(to) = &c.to {
        out.extend(["--to".into(), to.to_string()]);
        out.extend(s3_args(&c.s3, true)?);
    }
    Ok(out)
}

/// The flags that reach the S3 store (`--s3-part-size` only where something is
/// uploaded).
fn s3_args(s3: &S3Args, upload: bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if let Some(e) = &s3.s3_endpoint {
        out.extend(["--s3-endpoint".into(), e.clone()]);
    }
    out.extend(["--s3-region".into(), s3.s3_region.clone()]);
    if s3.s3_virtual_hosted_style {
        out.push("--s3-virtual-hosted-style".into());
    }
    if let Some(f) = &s3.s3_credentials_file {
        out.extend(["--s3-credentials-file".into(), absolute(f)?]);
        out.extend(["--s3-profile".into(), s3.s3_profile.clone()]);
    }
    if upload {
        out.extend(["--s3-part-size".into(), s3.s3_part_size.to_string()]);
    }
    Ok(out)
}

/// The flags of each `backup prune` after a good run, when a `--keep-*` flag is given:
/// the local directory's, then (with `--to`) the same rules on the remote copies.
fn prune_args(args: &BackupScheduleArgs) -> Result<Vec<Vec<String>>> {
    let keeps = args.keep.flags();
    if keeps.is_empty() {
        return Ok(Vec::new());
    }
    let rules: Vec<String> = keeps
        .iter()
        .flat_map(|(flag, n)| [flag.to_string(), n.to_string()])
        .collect();
    let c = &args.create;
    let mut local = vec!["--dir".to_string(), absolute(&c.dir.dir)?];
    local.extend(rules.iter().cloned());
    let mut out = vec![local];
    if let Some(to) = &c.to {
        let mut remote = vec!["--remote".to_string(), to.to_string()];
        remote.extend(s3_args(&c.s3, false)?);
        remote.extend(rules);
        out.push(remote);
    }
    Ok(out)
}

/// One change to the node: what `--dry-run` prints is what runs.
#[derive(Debug)]
enum Step {
    /// Write a unit file (0644: it holds no secret) atomically.
    Write { path: PathBuf, content: String },
    /// Run a command.
    Run(Vec<String>),
}

impl Step {
    fn describe(&self) -> String {
        match self {
            Step::Write { path, .. } => format!("write {} (mode 0644)", path.display()),
            Step::Run(argv) => format!("run {}", argv.join(" ")),
        }
    }

    fn perform(&self) -> Result<()> {
        match self {
            Step::Write { path, content } => {
                kastellan_kubeadm::fs::write_atomic(path, content.as_bytes(), 0o644)?;
            }
            Step::Run(argv) => {
                let out = Command::new(&argv[0])
                    .args(&argv[1..])
                    .output()
                    .with_context(|| format!("running {}", argv.join(" ")))?;
                if !out.status.success() {
                    bail!(
                        "{} failed ({}): {}",
                        argv.join(" "),
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
        }
        Ok(())
    }
}

/// `systemctl show` of the timer and the service, times as Unix seconds.
fn read_status(name: &str) -> Result<ScheduleStatus> {
    let show = |unit: &str, props: &[&str]| -> Result<String> {
        let out = Command::new("systemctl")
            .env("TZ", "UTC")
            .args(["show", "--timestamp=unix", "-p", &props.join(","), unit])
            .output()
            .context("running systemctl show")?;
        if !out.status.success() {
            bail!(
                "systemctl show {unit} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let timer = format!("{name}.timer");
    let t = show(&timer, TIMER_PROPERTIES)?;
    let s = show(&format!("{name}.service"), SERVICE_PROPERTIES)?;
    Ok(ScheduleStatus::from_show(&timer, &t, &s))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleReport {
    units: Units,
    unit_dir: PathBuf,
    dry_run: bool,
    status: Option<ScheduleStatus>,
}

impl Report for ScheduleReport {
    fn render(&self, out: &mut String, style: &Style) {
        if self.dry_run {
            for (name, text) in [
                (&self.units.service_name, &self.units.service),
                (&self.units.timer_name, &self.units.timer),
            ] {
                let _ = writeln!(out, "# {}", self.unit_dir.join(name).display());
                let _ = writeln!(out, "{text}");
            }
            let _ = writeln!(out, "dry run: nothing was written or enabled");
            return;
        }
        let _ = writeln!(
            out,
            "{}",
            style.good(&format!(
                "scheduled: {} enables {}",
                self.units.timer_name, self.units.service_name
            ))
        );
        if let Some(s) = &self.status {
            render_status(out, s);
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct StatusReport(ScheduleStatus);

impl Report for StatusReport {
    fn render(&self, out: &mut String, style: &Style) {
        let s = &self.0;
        if !s.installed {
            let _ = writeln!(out, "{}", style.bad(&format!("{}: not installed", s.timer)));
            return;
        }
        render_status(out, s);
        if s.failed() {
            let _ = writeln!(
                out,
                "{}",
                style.bad("the last run failed: journalctl -u the service for its output")
            );
        }
    }
}

fn render_status(out: &mut String, s: &ScheduleStatus) {
    let or = |v: &Option<String>, none: &str| v.clone().unwrap_or_else(|| none.to_string());
    let _ = writeln!(
        out,
        "timer     {} ({}, {})",
        s.timer,
        if s.enabled { "enabled" } else { "not enabled" },
        if s.active { "active" } else { "inactive" }
    );
    let result = match (&s.last_result, s.last_exit_status) {
        (Some(r), Some(code)) if r != "running" => format!("{r}, exit status {code}"),
        (Some(r), _) => r.clone(),
        (None, _) => "-".into(),
    };
    let _ = writeln!(out, "last run  {}", or(&s.last_run, "never"));
    let _ = writeln!(out, "result    {result}");
    let _ = writeln!(out, "next run  {}", or(&s.next_run, "none scheduled"));
}

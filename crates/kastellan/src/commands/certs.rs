//! `kastellan certs check|renew`: thin glue over `kastellan-pki`; `renew` runs on the
//! executor (`kastellan-exec`).
//!
//! Both work on this node's files only: they never talk to the API, so `--kubeconfig`
//! and `--context` do not apply (a warning says so when they are given).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use jiff::Timestamp;
use kastellan_exec::{Progress, Run};
use kastellan_pki::renew::{self, Applied, RenewReport, RenewRequest, Targets};
use kastellan_pki::steps::{self, Action, Basis, ExecPlan, NodeFacts, RestartSteps};
use kastellan_pki::{Inventory, Layout, Verdict, restart};
use kastellan_printer::Printer;

use crate::Outcome;
use crate::cli::{CertsCheckArgs, CertsCommand, CertsRenewArgs, GlobalArgs, PkiDirArgs};
use crate::commands::certs_view::{CheckView, RenewView};

/// Runs `certs`.
pub fn run(cmd: CertsCommand, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    if global.kubeconfig.is_some() || global.context.is_some() {
        printer.warn(
            "certs works on this node's files and does not use the API: --kubeconfig and --context are ignored",
        );
    }
    match cmd {
        CertsCommand::Check(args) => check(args, printer),
        CertsCommand::Renew(args) => renew(args, printer),
    }
}

/// The directories given, each checked to exist: a mistyped path is a usage error,
/// not a node without certificates.
fn layout(dirs: &PkiDirArgs) -> Result<Layout> {
    for (flag, dir) in [
        ("--cert-dir", &dirs.cert_dir),
        ("--kubeconfig-dir", &dirs.kubeconfig_dir),
    ] {
        if !dir.is_dir() {
            bail!("{flag} {}: no such directory", dir.display());
        }
    }
    Ok(Layout {
        cert_dir: dirs.cert_dir.clone(),
        kubeconfig_dir: dirs.kubeconfig_dir.clone(),
        kubelet_pki_dir: dirs.kubelet_pki_dir.clone(),
    })
}

fn check(args: CertsCheckArgs, printer: &Printer) -> Result<Outcome> {
    let inv = Inventory::load(&layout(&args.dirs)?);
    let report = kastellan_pki::check(&inv, Timestamp::now(), args.warn_days);
    printer.report(&CheckView(&report))?;
    if report
        .rows()
        .all(|r| r.status == kastellan_pki::check::Status::Absent)
    {
        bail!(
            "no certificates found under {} or {}: is this a kubeadm node? (see --cert-dir, --kubeconfig-dir)",
            report.layout.cert_dir.display(),
            report.layout.kubeconfig_dir.display()
        );
    }
    match report.verdict() {
        Verdict::Healthy => Ok(Outcome::Ok),
        Verdict::Unhealthy => Ok(Outcome::Unhealthy),
        Verdict::Errors => bail!("cannot read: {}", report.errors().join("; ")),
    }
}

fn renew(args: CertsRenewArgs, printer: &Printer) -> Result<Outcome> {
    let journal = args.state_dir.join("journal.json");
    if args.resume {
        let run: Run<Action, Basis> = Run::resume(&journal)
            .with_context(|| format!("--resume (--state-dir {})", args.state_dir.display()))?;
        printer.note(resume_note(&run));
        return drive(run, &args.state_dir, printer);
    }
    refuse_in_progress(&journal)?;
    let inv = Inventory::load(&layout(&args.dirs)?);
    let exec = match &args.plan {
        Some(file) => saved_plan(file, &inv)?,
        None => fresh_plan(&args, &inv)?,
    };
    // Signing happens in memory first (no new key made), so a key that does not load or
    // match stops the run before anything is written, dry run or not.
    renew::sign(&inv, &exec.facts.renewal, false)?;
    let report = report_of(
        &exec,
        args.dry_run,
        manifests_dir(&exec, &args.manifests_dir),
    );
    if args.dry_run || exec.steps.is_empty() {
        printer.report(&RenewView(&report))?;
        return Ok(Outcome::Ok);
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&args.state_dir)
            .with_context(|| format!("creating --state-dir {}", args.state_dir.display()))?;
    }
    let run = Run::start(exec, &journal)?;
    drive(run, &args.state_dir, printer)
}

/// The plan from the node's files and the flags.
fn fresh_plan(args: &CertsRenewArgs, inv: &Inventory) -> Result<ExecPlan> {
    let targets = if args.names.iter().any(|n| n == "all") {
        if args.names.len() > 1 {
            bail!("'all' cannot be combined with certificate names");
        }
        Targets::All
    } else {
        Targets::Names(args.names.clone())
    };
    let now = Timestamp::now();
    let req = RenewRequest {
        targets,
        new_key: args.new_key,
        backup_dir: args.backup_dir.clone(),
    };
    let plan = renew::plan(inv, &req, now)?;
    let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    let restart = args.restart.then(|| {
        let (watch, skipped) = steps::watches(&args.manifests_dir, &plan.restart);
        RestartSteps {
            manifests_dir: args.manifests_dir.clone(),
            staging: restart::staging_dir(&args.manifests_dir, &stamp),
            watch,
            skipped,
            wait: Duration::from_secs(args.restart_wait),
        }
    });
    Ok(steps::exec_plan(
        &format!("certs-renew-{stamp}"),
        &kastellan_health::local::hostname(),
        NodeFacts::of(inv),
        plan,
        restart.as_ref(),
    ))
}

/// `--plan FILE`: a plan saved from `--dry-run -o json`, applied only while this node's
/// certificates are as they were and its steps are the ones kastellan plans for them.
fn saved_plan(file: &Path, inv: &Inventory) -> Result<ExecPlan> {
    let bytes =
        std::fs::read(file).with_context(|| format!("reading --plan {}", file.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "--plan {}: not JSON (save the plan with certs renew --dry-run -o json)",
            file.display()
        )
    })?;
    let inner = value.get("exec_plan").cloned().unwrap_or(value);
    let saved = ExecPlan::from_json(steps::KIND, file, &serde_json::to_vec(&inner)?)?;
    let probe = kastellan_exec::Plan::<Action, NodeFacts> {
        kind: saved.kind.clone(),
        id: saved.id.clone(),
        facts: saved.facts.node.clone(),
        steps: Vec::new(),
    };
    probe
        .check_facts(&NodeFacts::of(inv))
        .with_context(|| format!("--plan {}: refused, nothing was changed", file.display()))?;
    let r = &saved.facts.renewal;
    let req = RenewRequest {
        targets: Targets::Names(r.renew.iter().map(|x| x.name.clone()).collect()),
        new_key: r.new_key,
        backup_dir: Some(r.backup_dir.clone()),
    };
    let again = renew::plan(inv, &req, r.created_at)?;
    anyhow::ensure!(
        again.renew == r.renew && steps::steps_match(&saved),
        "--plan {}: its steps are not the ones kastellan plans for this node's certificates (edited by hand?); refused, nothing was changed",
        file.display()
    );
    Ok(saved)
}

/// A journal left by a run under way or interrupted refuses a new run.
fn refuse_in_progress(journal: &Path) -> Result<()> {
    if let Some(j) = kastellan_exec::Journal::<Action, Basis>::load(journal)? {
        bail!(
            "a certs renew run is under way or was interrupted: {} records run {} at step {} of {}; continue it with kastellan certs renew --resume (add --state-dir if it was given)",
            journal.display(),
            j.plan.id,
            j.done + 1,
            j.plan.steps.len()
        );
    }
    Ok(())
}

/// Where the manifests are: the plan's, else the flag's.
fn manifests_dir(exec: &ExecPlan, flag: &Path) -> PathBuf {
    exec.steps
        .iter()
        .find_map(|s| match &s.action {
            Action::HoldUntilStopped { held, .. } => Some(held.manifests_dir.clone()),
            _ => None,
        })
        .unwrap_or_else(|| flag.to_path_buf())
}

fn report_of(exec: &ExecPlan, dry_run: bool, manifests_dir: PathBuf) -> RenewReport {
    RenewReport {
        dry_run,
        plan: exec.facts.renewal.clone(),
        steps: exec.describe(),
        exec_plan: Some(exec.clone()),
        journal: None,
        applied: None,
        restarted: None,
        manifests_dir,
    }
}

/// What `--resume` found, said before anything is done.
fn resume_note(run: &Run<Action, Basis>) -> String {
    let j = run.journal();
    match j.next() {
        Some(s) => format!(
            "resuming {} at step {} of {} ({}: {})",
            j.plan.id,
            j.done + 1,
            j.plan.steps.len(),
            s.phase,
            first_line(&s.action)
        ),
        None => format!("{}: every step is done", j.plan.id),
    }
}

fn first_line(a: &Action) -> String {
    use kastellan_exec::Action as _;
    a.describe().lines().next().unwrap_or_default().to_string()
}

/// Runs the steps left, archives the journal and reports.
fn drive(run: Run<Action, Basis>, state_dir: &Path, printer: &Printer) -> Result<Outcome> {
    let plan = run.journal().plan.clone();
    let ctx = steps::Context::new(
        plan.facts.node.layout.clone(),
        Box::new(|port| !kastellan_kubeadm::hold::answers(port)),
    );
    let mut run = run;
    let finished = loop {
        let label = run
            .next()
            .map(|s| format!("{}: {}", s.phase, first_line(&s.action)));
        let spinner = printer.spinner(label.as_deref().unwrap_or("finishing"));
        let stepped = run.step(&ctx);
        spinner.finish_and_clear();
        match stepped {
            Ok(Progress::Running(r)) => {
                if let Some(l) = label {
                    printer.note(format!("done: {l}"));
                }
                run = r;
            }
            Ok(Progress::Finished(f)) => break f,
            Err(failure) => return Err(failed(&failure, state_dir)),
        }
    };
    let archive = state_dir.join(format!("{}.json", plan.id));
    finished.close(&archive)?;
    let outcome = ctx.take_outcome();
    let mut report = report_of(&plan, false, manifests_dir(&plan, Path::new("")));
    report.journal = Some(archive);
    // The serials as they are now: a resumed run's earlier steps ran in another process.
    let now = Inventory::load(&plan.facts.node.layout);
    let mut backups = Vec::new();
    let mut written = Vec::new();
    for s in &plan.steps {
        if let Action::Renew { backups: b, .. } = &s.action {
            for f in b {
                backups.push((f.file.clone(), f.backup.clone()));
                written.push(f.file.clone());
            }
        }
    }
    report.applied = Some(Applied {
        backup_dir: plan.facts.renewal.backup_dir.clone(),
        backups,
        written,
        serials: plan
            .facts
            .renewal
            .renew
            .iter()
            .filter_map(|r| {
                let f = now.entry(&r.name)?.found()?;
                Some((r.name.clone(), f.cert.facts.serial.clone()))
            })
            .collect(),
    });
    report.restarted = outcome.restarted.map(|mut r| {
        r.skipped = plan.facts.restart_skipped.clone();
        r
    });
    if let Some(r) = &report.restarted
        && !r.not_stopped.is_empty()
    {
        printer.warn(format!(
            "still answering when the manifests went back (the kubelet may not have restarted them): {}",
            r.not_stopped
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    printer.report(&RenewView(&report))?;
    Ok(Outcome::Ok)
}

/// What a failed step says: the step, why, what was undone, and where that leaves the
/// node.
fn failed(f: &kastellan_exec::Failure<Action, Basis>, state_dir: &Path) -> anyhow::Error {
    let mut msg = format!("step {} ({}) failed: {}", f.step, f.phase, f.error);
    if !f.undone.is_empty() {
        let undone: Vec<String> = f.undone.iter().map(|n| n.to_string()).collect();
        msg.push_str(&format!(
            "
put back the old files of step {}",
            undone.join(", ")
        ));
    }
    for (n, e) in &f.undo_errors {
        msg.push_str(&format!(
            "
putting back step {n} failed: {e}"
        ));
    }
    let backup = &f.journal.plan.facts.renewal.backup_dir;
    if f.rolled_back {
        msg.push_str(&format!(
            "
every certificate is as it was (the old files are also in {})",
            backup.display()
        ));
    } else {
        msg.push_str(&format!(
            "
the old files are in {}; fix the cause, then run kastellan certs renew --resume{} (it starts at the failed step)",
            backup.display(),
            if state_dir == Path::new("/var/lib/kastellan/certs-renew") {
                String::new()
            } else {
                format!(" --state-dir {}", state_dir.display())
            }
        ));
    }
    anyhow::anyhow!(msg)
}

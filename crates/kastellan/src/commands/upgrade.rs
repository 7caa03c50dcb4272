//! `kastellan upgrade apply`: the upgrade plan run node by node through the executor.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use kastellan_exec::{Described, Run};
use kastellan_printer::{Printer, Report, Style};
use kastellan_upgrade::apply::{self, Action, Basis, Context, Timeouts};
use kastellan_upgrade::lock;
use kastellan_upgrade::plan::{Severity, UpgradePlan};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{GlobalArgs, UpgradeApplyArgs};
use crate::commands::{node_access, versions};

type Journal = kastellan_exec::Journal<Action, Basis>;

/// The journal of the run under way (one per state directory).
fn journal_path(dir: &Path) -> PathBuf {
    dir.join("upgrade-journal.json")
}

/// Runs `upgrade apply`.
pub fn apply(args: UpgradeApplyArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let journal = journal_path(&args.state_dir);
    if args.resume {
        return resume(&args, &journal, global, printer);
    }
    if args.abandon {
        return abandon(&args, &journal, global, printer);
    }
    if journal.exists() {
        let j = Journal::load(&journal)?;
        let next = j
            .as_ref()
            .and_then(|j| {
                j.next()
                    .map(|s| format!(" (next: {} on {})", s.phase, s.node))
            })
            .unwrap_or_default();
        bail!(
            "an upgrade run is under way or was interrupted: {}{next}; \
             kastellan upgrade apply --resume continues it",
            journal.display()
        );
    }
    let to = args.to.clone().unwrap_or_default();
    let rt = super::runtime()?;
    let kube = rt.block_on(super::kube::client(global, None, super::kube::READ_TIMEOUT))?;
    // Another run's lock refuses before anything is read (a dry run only says so).
    if let Some(h) = rt.block_on(lock::holder(&kube.client))?
        && !args.break_lock
    {
        let e = lock::LockError::Held(Box::new(h));
        if !args.dry_run {
            bail!("{e}; nothing was changed");
        }
        printer.warn(e.to_string());
    }
    let mut versions = args.versions.clone();
    versions.packages = true;
    let fresh = versions::make_plan(&versions, &to, args.max_unavailable, global, printer)?;
    let plan = match &args.plan {
        Some(file) => saved_plan(file, &fresh)?,
        None => fresh,
    };
    let blockers: Vec<String> = plan
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Blocker)
        .map(|f| format!("{}: {}", f.id, f.message))
        .collect();
    let unread: Vec<String> = plan
        .facts
        .nodes
        .iter()
        .filter(|n| n.manager.is_none())
        .map(|n| n.name.clone())
        .collect();
    let id = format!(
        "upgrade-{}-{}",
        plan.to,
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
    );
    let timeouts = Timeouts {
        drain: Duration::from_secs(args.drain_timeout),
        gate: Duration::from_secs(args.gate_timeout),
        ..Timeouts::default()
    };
    let lab = node_access::unconfigured(&args.versions.ssh) && node_access::lab_ssh_up();
    let reach = node_access::ssh(&args.versions.ssh, lab)?;
    let backup = plan
        .facts
        .nodes
        .iter()
        .find(|n| n.control_plane)
        .map(|cp| backup_action(&args, &cp.name, &reach.kastellan));
    let exec = apply::exec_plan(&plan, &id, timeouts, backup, Some(&reach.kastellan));
    if args.dry_run {
        printer.report(&DryRun {
            from: plan.from.to_string(),
            to: plan.to.to_string(),
            blockers: blockers.clone(),
            commands_run_as: apply::node_command_shown(timeouts.command),
            commands_run: apply::node_command_summary(timeouts.command),
            steps: exec.describe(),
        })?;
        return Ok(if blockers.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Unhealthy
        });
    }
    if !blockers.is_empty() {
        bail!(
            "the plan to {} is blocked; nothing was changed:\n  {}",
            plan.to,
            blockers.join("\n  ")
        );
    }
    if !unread.is_empty() {
        bail!(
            "the packages of {} could not be read over ssh; nothing was changed \
             (kastellan versions --packages says why)",
            unread.join(", ")
        );
    }
    if !args.yes {
        bail!(
            "upgrade apply changes every node ({} steps): add --yes to apply, or --dry-run \
             to see them",
            exec.steps.len()
        );
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&args.state_dir)
            .with_context(|| format!("creating --state-dir {}", args.state_dir.display()))?;
    }
    take_lock(&rt, &kube.client, &id, args.break_lock, printer)?;
    let run = match Run::start(exec, &journal) {
        Ok(run) => run,
        Err(e) => {
            let _ = rt.block_on(lock::release(&kube.client, &id));
            return Err(e.into());
        }
    };
    printer.note(format!(
        "upgrade {} -> {}: {} steps, journal {}",
        plan.from,
        plan.to,
        run.journal().plan.steps.len(),
        journal.display()
    ));
    go(run, &args, rt, kube.client, global, printer)
}

/// The backup step on the first control plane, from the `--backup*` flags.
fn backup_action(args: &UpgradeApplyArgs, node: &str, kastellan: &str) -> Action {
    let mut create = Vec::new();
    let mut verify = Vec::new();
    for r in &args.backup_recipient {
        create.extend(["--recipient".to_string(), r.clone()]);
    }
    if let Some(f) = &args.backup_passphrase_file {
        create.extend(["--passphrase-file".to_string(), f.clone()]);
        verify.extend(["--passphrase-file".to_string(), f.clone()]);
    }
    if let Some(f) = &args.backup_identity {
        verify.extend(["--identity".to_string(), f.clone()]);
    }
    if args.backup_allow_unencrypted_secrets {
        create.push("--allow-unencrypted-secrets".into());
    }
    Action::Backup {
        node: node.to_string(),
        kastellan: kastellan.to_string(),
        dir: args.backup_dir.clone(),
        create,
        verify,
        bundle: args.backup.clone(),
    }
}

/// Takes the cluster-wide lock for run `id`, or says who holds it.
fn take_lock(
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    id: &str,
    break_lock: bool,
    printer: &Printer,
) -> Result<()> {
    let host = kastellan_health::local::hostname();
    let identity = format!("{host} pid {}", std::process::id());
    match rt.block_on(lock::acquire(client, id, &identity, break_lock)) {
        Ok(Some(broken)) => {
            printer.warn(format!("--break-lock: took the lock over from {broken}"));
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => bail!("{e}; nothing was changed"),
    }
}

/// A saved plan, applied only while the cluster matches the facts it was made from.
fn saved_plan(file: &Path, fresh: &UpgradePlan) -> Result<UpgradePlan> {
    let bytes =
        std::fs::read(file).with_context(|| format!("reading --plan {}", file.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let saved: UpgradePlan = serde_json::from_str(&text)
        .or_else(|_| serde_saphyr::from_str(&text))
        .with_context(|| {
            format!(
                "--plan {}: not a plan of `kastellan upgrade plan -o json`",
                file.display()
            )
        })?;
    let (then, now) = (Basis::of(&saved), Basis::of(fresh));
    if then != now {
        let probe = kastellan_exec::Plan::<Action, Basis> {
            kind: apply::KIND.into(),
            id: String::new(),
            facts: then,
            steps: Vec::new(),
        };
        if let Err(e) = probe.check_facts(&now) {
            bail!("--plan {}: {e}; nothing was changed", file.display());
        }
    }
    Ok(saved)
}

/// `--abandon`: the journal archived, the lock released, the nodes left as they are
/// (each one's state named).
fn abandon(
    args: &UpgradeApplyArgs,
    journal: &Path,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<Outcome> {
    let run: Run<Action, Basis> = Run::resume(journal)?;
    let j = run.journal();
    let done: Vec<&Action> = j
        .plan
        .steps
        .iter()
        .take(j.done)
        .map(|s| &s.action)
        .collect();
    let mut nodes: Vec<String> = Vec::new();
    for a in &done {
        let n = a.node().to_string();
        if !nodes.contains(&n) {
            nodes.push(n);
        }
    }
    let report = Abandoned {
        id: j.plan.id.clone(),
        done: j.done,
        steps: j.plan.steps.len(),
        archive: args
            .state_dir
            .join(format!("{}.abandoned.json", j.plan.id))
            .display()
            .to_string(),
        nodes: nodes
            .iter()
            .map(|n| (n.clone(), apply::node_state(&done, n).join("; ")))
            .collect(),
        dry_run: args.dry_run,
    };
    if args.dry_run {
        printer.report(&report)?;
        return Ok(Outcome::Ok);
    }
    let id = j.plan.id.clone();
    run.abandon(Path::new(&report.archive))?;
    // The journal goes even when the API cannot be reached: the lock then stays, and
    // the next run names it.
    let rt = super::runtime()?;
    let released = rt
        .block_on(super::kube::client(global, None, super::kube::READ_TIMEOUT))
        .map_err(|e| format!("{e:#}"))
        .and_then(|kube| {
            rt.block_on(lock::release(&kube.client, &id))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = released {
        printer.warn(format!(
            "releasing the upgrade lock: {e} (Lease {}/{} is left; --break-lock takes it over)",
            lock::NAMESPACE,
            lock::NAME
        ));
    }
    printer.report(&report)?;
    Ok(Outcome::Ok)
}

/// An abandoned run.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Abandoned {
    id: String,
    done: usize,
    steps: usize,
    archive: String,
    /// Each node the run changed, with what it did to it.
    nodes: Vec<(String, String)>,
    dry_run: bool,
}

impl Report for Abandoned {
    fn render(&self, out: &mut String, s: &Style) {
        out.push_str(&format!(
            "{} {} at step {} of {}; journal {} {}\n",
            if self.dry_run {
                "dry run: would abandon"
            } else {
                "abandoned"
            },
            self.id,
            self.done,
            self.steps,
            if self.dry_run {
                "would move to"
            } else {
                "moved to"
            },
            self.archive
        ));
        for (node, state) in &self.nodes {
            out.push_str(&format!("  {}: {state}\n", s.bold(node)));
        }
        if !self.nodes.is_empty() {
            out.push_str("the nodes stay as they are: nothing was run on them\n");
        }
    }
}

/// `--resume`: says what it found, then runs the steps left.
fn resume(
    args: &UpgradeApplyArgs,
    journal: &Path,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<Outcome> {
    let run: Run<Action, Basis> = Run::resume(journal)?;
    let rt = super::runtime()?;
    let kube = rt.block_on(super::kube::client(global, None, super::kube::READ_TIMEOUT))?;
    take_lock(
        &rt,
        &kube.client,
        &run.journal().plan.id,
        args.break_lock,
        printer,
    )?;
    let j = run.journal();
    let total = j.plan.steps.len();
    printer.note(format!(
        "resuming {} ({} -> {}): {} of {} steps done{}",
        j.plan.id,
        j.plan.facts.from,
        j.plan.facts.to,
        j.done,
        total,
        j.next()
            .map(|s| format!(
                ", next: step {} ({}) {}",
                j.done + 1,
                s.phase,
                s.action.describe_short()
            ))
            .unwrap_or_default()
    ));
    if let Some(last) = j.log.last()
        && matches!(
            last.event,
            kastellan_exec::Event::Started | kastellan_exec::Event::Failed
        )
    {
        let mut note = format!(
            "step {} was {} when the run stopped: it runs again",
            last.step,
            if matches!(last.event, kastellan_exec::Event::Failed) {
                "failing"
            } else {
                "running"
            }
        );
        if let Some(Action::Run { node, .. }) = j.next().map(|s| &s.action) {
            note.push_str(&format!(
                ", once the command left running on {node} (if any) has ended; \
                 its output is in {} there",
                apply::NODE_LOG
            ));
        }
        printer.note(note);
    }
    go(run, args, rt, kube.client, global, printer)
}

/// Short descriptions for one-line progress.
trait Short {
    fn describe_short(&self) -> String;
}

impl Short for Action {
    fn describe_short(&self) -> String {
        let d = kastellan_exec::Action::describe(self);
        match d.char_indices().nth(60) {
            Some((i, _)) => format!("{}…", &d[..i]),
            None => d,
        }
    }
}

/// Runs the steps left, streaming each command's output with its node.
fn go(
    run: Run<Action, Basis>,
    args: &UpgradeApplyArgs,
    rt: tokio::runtime::Runtime,
    client: kube::Client,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<Outcome> {
    let lab = node_access::unconfigured(&args.versions.ssh) && node_access::lab_ssh_up();
    let reach = node_access::ssh(&args.versions.ssh, lab)?;
    let out = printer.clone();
    let drain_printer = printer.clone();
    // Not `client`: its retry would repeat a budget's 429 in silence.
    let drain_client = rt.block_on(super::kube::drain_client(global))?;
    let rt = Arc::new(rt);
    let drain_rt = rt.clone();
    let emptydir = args.delete_emptydir_data;
    let hazards = args.allow_drain_hazards;
    let ctx = Context {
        access: reach.access.clone(),
        client: client.clone(),
        runtime: rt.handle().clone(),
        output: Arc::new(move |node, line, stderr| {
            out.note(format!("  {node}{} {line}", if stderr { "!" } else { "|" }));
        }),
        drain: Box::new(move |node, timeout| {
            drain_rt.block_on(drain(
                &drain_client,
                node,
                timeout,
                emptydir,
                hazards,
                &drain_printer,
            ))
        }),
        poll: Duration::from_secs(2),
    };
    let total = run.journal().plan.steps.len();
    let start = Instant::now();
    let style = printer.style();
    let id = run.journal().plan.id.clone();
    let mut renew_failed = false;
    // On a terminal: hop and node, step and elapsed times stay on the last line.
    let live = printer.live();
    let result = run.run_all(&ctx, |i, step| {
        let progress = format!("step {i}/{total}: {}", step.phase);
        if let Err(e) = rt.block_on(lock::renew(&client, &progress)) {
            // An apiserver restarting under kubeadm: the lock holds for its duration.
            if !renew_failed {
                printer.warn(format!("renewing the upgrade lock: {e}"));
            }
            renew_failed = true;
        } else {
            renew_failed = false;
        }
        printer.note(style.bold(&format!(
            "[{i}/{total}] {} {:>4}s  {}",
            step.phase,
            start.elapsed().as_secs(),
            kastellan_exec::Action::describe(&step.action)
        )));
        live.step(format!(
            "[{i}/{total}] {} · {}",
            step.phase,
            step.action.describe_short()
        ));
    });
    drop(live);
    match result {
        Ok(finished) => {
            let archive = args
                .state_dir
                .join(format!("{}.json", finished.journal().plan.id));
            let j = finished.close(&archive)?;
            if let Err(e) = rt.block_on(lock::release(&client, &id)) {
                printer.warn(format!(
                    "releasing the upgrade lock: {e} (Lease {}/{} is left; it goes stale)",
                    lock::NAMESPACE,
                    lock::NAME
                ));
            }
            printer.report(&Applied {
                id: j.plan.id.clone(),
                from: j.plan.facts.from.to_string(),
                to: j.plan.facts.to.to_string(),
                steps: j.plan.steps.len(),
                seconds: start.elapsed().as_secs(),
                journal: archive.display().to_string(),
            })?;
            Ok(Outcome::Ok)
        }
        Err(f) => {
            let done: Vec<&Action> = f
                .journal
                .plan
                .steps
                .iter()
                .take(f.journal.done)
                .map(|s| &s.action)
                .collect();
            let state = apply::node_state(&done, &f.node);
            let back = apply::rollback(&done, &f.node, &f.journal.plan.facts.from);
            let mut msg = format!(
                "step {} of {} ({}) failed on {}: {}\n{} now: {}",
                f.step,
                total,
                f.phase,
                f.node,
                f.error,
                f.node,
                state.join("; ")
            );
            if let Some(Action::Run { .. }) = f
                .journal
                .plan
                .steps
                .get(f.step.saturating_sub(1))
                .map(|s| &s.action)
            {
                msg.push_str(&format!(
                    "\nits output is kept on {} in {}",
                    f.node,
                    apply::NODE_LOG
                ));
            }
            if f.rolled_back {
                // No journal is left to resume: the lock goes with it.
                let _ = rt.block_on(lock::release(&client, &id));
                msg.push_str(
                    "\nnothing was changed; run the same command again once the cause is fixed",
                );
            } else {
                msg.push_str(&format!(
                    "\nfix the cause, then: kastellan upgrade apply --resume{} (it starts at step {})",
                    if args.state_dir == Path::new("/var/lib/kastellan/upgrade") {
                        String::new()
                    } else {
                        format!(" --state-dir {}", args.state_dir.display())
                    },
                    f.step
                ));
                msg.push_str(&rollback_advice(&f.node, &back, &args.state_dir));
            }
            Err(anyhow::anyhow!(msg))
        }
    }
}

/// What the failure says about taking the node back instead of going on.
fn rollback_advice(node: &str, back: &apply::Rollback, state_dir: &Path) -> String {
    let state = if state_dir == Path::new("/var/lib/kastellan/upgrade") {
        String::new()
    } else {
        format!(" --state-dir {}", state_dir.display())
    };
    match back {
        apply::Rollback::Unchanged => String::new(),
        apply::Rollback::ForwardOnly => format!(
            "\n{node} cannot be rolled back: kubeadm upgraded it, and kubeadm does not take \
             a node back a minor"
        ),
        apply::Rollback::Commands { commands, uncordon } => {
            let mut s = format!(
                "\nor roll {node} back instead (kubeadm has not upgraded it yet), on {node}:"
            );
            for c in commands {
                s.push_str(&format!("\n    {c}"));
            }
            s.push_str("\n  then:");
            if *uncordon {
                s.push_str(&format!(" kastellan node uncordon {node};"));
            }
            s.push_str(&format!(" kastellan upgrade apply --abandon{state}"));
            s
        }
    }
}

/// Drains one node with kubectl's rules (DaemonSet pods left in place), reporting each
/// eviction; `Err` says what stopped it.
async fn drain(
    client: &kube::Client,
    node: &str,
    timeout: Duration,
    delete_emptydir_data: bool,
    allow_hazards: bool,
    printer: &Printer,
) -> Result<(), String> {
    use kastellan_drain::run::{self, Event, Options};
    let drainer = kastellan_drain::run::Drainer::new(client.clone())
        .await
        .map_err(|e| e.to_string())?;
    let request = kastellan_drain::plan::Request {
        nodes: vec![node.to_string()],
        rules: kastellan_drain::classify::Rules {
            ignore_daemonsets: true,
            delete_emptydir_data,
            force: false,
        },
        allow_hazards,
        max_unavailable: 1,
        primary: None,
        disable_eviction: false,
        nodes_stay_up: true,
    };
    let options = Options {
        timeout,
        ..Options::default()
    };
    let p = printer.clone();
    let observer: run::Observer = Arc::new(move |e: &Event| match e {
        Event::Evicted { node, pod } => p.note(format!("  {node}| evicting {pod}")),
        Event::Gone {
            node,
            pod,
            done,
            total,
        } => p.note(format!("  {node}| {pod} gone ({done}/{total})")),
        Event::Blocked {
            node,
            pod,
            message,
            blocked_secs,
            ..
        } => p.note(format!(
            "  {node}! {pod} blocked for {blocked_secs}s: {message}"
        )),
        _ => {}
    });
    let outcome = run::drain(&drainer, &request, &options, &observer)
        .await
        .map_err(|e| e.to_string())?;
    if outcome.success() {
        return Ok(());
    }
    if let Some(refused) = &outcome.refused {
        let mut why = Vec::new();
        for n in &refused.plan.nodes {
            for pod in &n.refuse {
                let reasons: Vec<&str> = pod.reasons.iter().map(|r| r.describe()).collect();
                why.push(format!("{} ({})", pod.pod, reasons.join(", ")));
            }
            if refused.hazards {
                for h in &n.hazards {
                    why.push(format!(
                        "{} (--allow-drain-hazards goes past it)",
                        h.describe()
                    ));
                }
            }
        }
        return Err(format!(
            "refused before anything changed: {}",
            why.join("; ")
        ));
    }
    let left: Vec<String> = outcome
        .nodes
        .iter()
        .flat_map(|n| n.remaining.iter().map(|p| p.to_string()))
        .collect();
    Err(format!(
        "did not finish in {}s; pods left: {} (the node stays cordoned)",
        timeout.as_secs(),
        left.join(", ")
    ))
}

/// The dry run: every step, numbered, with its node and phase.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DryRun {
    from: String,
    to: String,
    blockers: Vec<String>,
    /// How each command step runs on its node: the exact line.
    commands_run_as: String,
    /// The same in words (the human report's).
    #[serde(skip)]
    commands_run: String,
    steps: Vec<Described>,
}

impl Report for DryRun {
    fn render(&self, out: &mut String, s: &Style) {
        out.push_str(&format!(
            "dry run: upgrade {} -> {}, {} steps; nothing is changed\n",
            self.from,
            self.to,
            self.steps.len()
        ));
        for b in &self.blockers {
            out.push_str(&format!("{} {b}\n", s.bad("blocker:")));
        }
        kastellan_printer::wrap(
            out,
            "each command runs on its node ",
            2,
            &self.commands_run,
            s.width,
        );
        let mut phase = "";
        for step in &self.steps {
            if step.phase != phase {
                phase = &step.phase;
                out.push_str(&format!("\n{}\n", s.bold(phase)));
            }
            out.push_str(&format!("  {:>3}. {}\n", step.step, step.does));
        }
    }
}

/// A run that finished.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Applied {
    id: String,
    from: String,
    to: String,
    steps: usize,
    seconds: u64,
    journal: String,
}

impl Report for Applied {
    fn render(&self, out: &mut String, s: &Style) {
        out.push_str(&format!(
            "{} upgraded {} -> {}: {} steps in {}s (journal {})\n",
            s.good("done:"),
            self.from,
            self.to,
            self.steps,
            self.seconds,
            self.journal
        ));
    }
}

//! `kastellan restore`: the control-plane restore procedure of
//! `kastellan-restore-procedure`, run by the shared executor (`kastellan-exec`), on this
//! node or, with `--all-nodes`, on every control-plane node phase by phase (through
//! `kastellan-access`: the lab's namespaces or ssh).
//!
//! JSON (`-o json`): `{"dryRun", "plan": {kind, id, facts, steps}, "done": [phases]}`;
//! the same document is accepted by `--plan FILE`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kastellan_exec::{Action as _, Described, Progress, Run};
use kastellan_printer::{Printer, Report, Style};
use kastellan_restore_procedure::agents::{Agents, ProbeAnswer};
use kastellan_restore_procedure::bump::{self, BumpAsk, LiveRevision, RevisionBump};
use kastellan_restore_procedure::procedure::{self, Action, Basis, Phase, Plan, ProcedureRequest};
use kastellan_restore_procedure::remote::{self, Ask, NodeRequest, NodeResponse, NodeRun};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{AllNodesAccess, GlobalArgs, RestoreArgs};
use crate::commands::node_access::{self, Reach};

/// One node's restore: from the command line, or from a coordinator's
/// [`NodeRequest`] (one node of `--all-nodes`).
struct Job {
    snapshot: Option<PathBuf>,
    bundle: Option<PathBuf>,
    identity: Option<PathBuf>,
    passphrase_file: Option<PathBuf>,
    manifests_dir: PathBuf,
    restore_dir_parent: PathBuf,
    state_file: PathBuf,
    holding_root: PathBuf,
    timeout: Duration,
    cert_dir: Option<PathBuf>,
    etcd_unit: Option<String>,
    restore_pki: bool,
    dry_run: bool,
    /// The revision bump asked for; None: past the live revision read on this node.
    bump: Option<BumpAsk>,
    /// One node of a multi-member restore.
    part: Option<Part>,
    /// How to reach the store of an `s3://` bundle.
    s3: Option<kastellan_bundle::remote::Settings>,
}

/// Whether the bundle given is an `s3://` URL.
fn is_s3(bundle: &Path) -> bool {
    bundle
        .to_str()
        .is_some_and(|s| s.starts_with(kastellan_bundle::remote::SCHEME))
}

/// What makes a node's run one part of a multi-member restore.
struct Part {
    run_id: String,
    initial_cluster: String,
    until: Phase,
}

impl Job {
    /// The job of the command line (a single node).
    fn of(args: &RestoreArgs) -> Result<Job> {
        let state_file = args
            .state_file
            .clone()
            .unwrap_or_else(|| default_state_file(&args.manifests_dir));
        Ok(Job {
            snapshot: args.snapshot.clone(),
            bundle: args.bundle.clone(),
            identity: args.identity.clone(),
            passphrase_file: args.passphrase_file.clone(),
            manifests_dir: args.manifests_dir.clone(),
            restore_dir_parent: args.restore_dir_parent.clone(),
            holding_root: holding_root(&state_file),
            state_file,
            timeout: Duration::from_secs(args.timeout),
            cert_dir: args.cert_dir.clone(),
            etcd_unit: args.etcd_unit.clone(),
            restore_pki: args.restore_pki,
            dry_run: args.dry_run,
            bump: args.no_bump_revision.then_some(BumpAsk::Off),
            part: None,
            s3: args
                .bundle
                .as_deref()
                .filter(|b| is_s3(b))
                .map(|_| super::backup::s3_settings(&args.s3))
                .transpose()?,
        })
    }

    /// The job a coordinator asks of this node (its state file beside its manifests dir).
    fn of_request(args: &RestoreArgs, req: &NodeRequest, run: &NodeRun, dry_run: bool) -> Job {
        let state_file = args
            .state_file
            .clone()
            .unwrap_or_else(|| default_state_file(&req.manifests_dir));
        let (snapshot, bundle, identity, passphrase_file) = match &run.source {
            remote::Source::Snapshot { path } => (Some(path.clone()), None, None, None),
            remote::Source::Bundle {
                path,
                identity,
                passphrase_file,
            } => (
                None,
                Some(path.clone()),
                identity.clone(),
                passphrase_file.clone(),
            ),
        };
        Job {
            snapshot,
            bundle,
            identity,
            passphrase_file,
            manifests_dir: req.manifests_dir.clone(),
            restore_dir_parent: args.restore_dir_parent.clone(),
            holding_root: holding_root(&state_file),
            state_file,
            timeout: Duration::from_secs(run.timeout_secs),
            cert_dir: None,
            etcd_unit: req.etcd_unit.clone(),
            restore_pki: false,
            dry_run,
            bump: Some(run.bump.clone()),
            part: Some(Part {
                run_id: run.run_id.clone(),
                initial_cluster: run.initial_cluster.clone(),
                until: run.until,
            }),
            s3: None,
        }
    }
}

/// The revision of the etcd that the manifests in `manifests_dir` name (its members'
/// highest), or why it cannot be read: read before anything is stopped, it is the
/// newest resourceVersion a client of the live cluster can have seen.
fn live_revision(manifests_dir: &Path) -> LiveRevision {
    use kastellan_etcd::discovery::{Discovery, from_manifests};
    let unread = |reason: String| LiveRevision::Unread { reason };
    let found = match from_manifests(&Discovery::new(manifests_dir)) {
        Ok(f) => f,
        Err(e) => return unread(format!("etcd's endpoints: {e}")),
    };
    let timeouts = kastellan_etcd::Timeouts {
        connect: Duration::from_secs(3),
        request: Duration::from_secs(3),
        stream_idle: Duration::from_secs(3),
    };
    let cluster = match kastellan_etcd::Cluster::new(found.target.clone(), timeouts) {
        Ok(c) => c,
        Err(e) => return unread(e.to_string()),
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => return unread(e.to_string()),
    };
    let survey = rt.block_on(cluster.survey(found.endpoints_discovered()));
    match survey.statuses().max_by_key(|s| s.revision) {
        Some(s) => LiveRevision::Read {
            revision: s.revision,
            endpoint: s.endpoint.clone(),
        },
        None => unread(format!(
            "no member answered ({})",
            survey
                .endpoints
                .iter()
                .map(|e| format!("{}: {}", e.endpoint, e.error.as_deref().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

/// `kastellan-held/restore-state.json` beside the manifests dir.
fn default_state_file(manifests_dir: &Path) -> PathBuf {
    manifests_dir
        .parent()
        .unwrap_or(Path::new("/etc/kubernetes"))
        .join("kastellan-held/restore-state.json")
}

/// The dir of the state file, where each run keeps its holding dir.
fn holding_root(state_file: &Path) -> PathBuf {
    state_file
        .parent()
        .unwrap_or(Path::new("/etc/kubernetes/kastellan-held"))
        .to_path_buf()
}

/// What a node's job came to.
enum Done {
    /// The plan (a dry run: nothing changed).
    Planned(Plan),
    /// The run's plan and the phases done.
    Ran(Plan, Vec<Phase>),
}

impl Done {
    fn report(self) -> RestoreReport {
        match self {
            Done::Planned(plan) => RestoreReport::of(&plan, true, Vec::new()),
            Done::Ran(plan, done) => RestoreReport::of(&plan, false, done),
        }
    }
}

/// Runs `restore`.
pub fn run(mut args: RestoreArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    if let Some(crate::cli::RestoreCommand::Objects(o)) = args.command.take() {
        return super::objects::restore(o, global, printer);
    }
    if let Some(file) = &args.node_request {
        return node_request(file, &args, printer);
    }
    let job = Job::of(&args)?;
    let done = if args.resume {
        let run = Run::resume(&job.state_file)?;
        printer.note(resume_note(&run));
        drive(run, None, job.timeout, printer)?
    } else if let Some(file) = &args.plan {
        apply_saved(file, &job, args.yes, printer)?
    } else {
        if !args.dry_run && !args.yes {
            bail!(
                "kastellan restore replaces the cluster's state with the snapshot's and restarts the control plane; pass --yes to do it, or --dry-run to see the plan"
            );
        }
        if args.all_nodes {
            return all_nodes(&args, global, printer);
        }
        local(&job, printer)?
    };
    let mut report = done.report();
    if !report.dry_run && report.done.len() == report.plan.phases().len() {
        let admin = job
            .manifests_dir
            .parent()
            .unwrap_or(Path::new("/etc/kubernetes"))
            .join("admin.conf");
        report.after_restart(global, Some(&admin), printer);
    }
    printer.report(&report)?;
    Ok(Outcome::Ok)
}

/// One node of `--all-nodes`: reads the coordinator's [`NodeRequest`] (JSON, from
/// `file` or stdin with `-`), does it, and prints the [`NodeResponse`] (JSON on stdout,
/// exit 1 with [`NodeResponse::Failed`]).
fn node_request(file: &Path, args: &RestoreArgs, printer: &Printer) -> Result<Outcome> {
    let bytes = if file == Path::new("-") {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
            .context("reading the node request on stdin")?;
        b
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
    };
    let answer = NodeRequest::from_json(&bytes)
        .map_err(anyhow::Error::from)
        .and_then(|req| answer(&req, args, printer));
    let response = answer.unwrap_or_else(|e| NodeResponse::Failed {
        error: format!("{e:#}"),
    });
    printer.raw(format!("{}\n", serde_json::to_string(&response)?))?;
    Ok(match response {
        NodeResponse::Failed { .. } => Outcome::Unhealthy,
        _ => Outcome::Ok,
    })
}

/// Does what a [`NodeRequest`] asks.
fn answer(req: &NodeRequest, args: &RestoreArgs, printer: &Printer) -> Result<NodeResponse> {
    let (run, dry_run) = match &req.ask {
        Ask::Member => {
            let live = live_revision(&req.manifests_dir);
            return remote::member(&req.manifests_dir, req.etcd_unit.as_deref(), live)
                .map_err(hint);
        }
        Ask::Plan(run) => (run, true),
        Ask::Run(run) => (run, false),
    };
    let job = Job::of_request(args, req, run, dry_run);
    // A step of a run already under way resumes it (the bundle is not read again).
    if !dry_run
        && let Some(state) = Journal::load(&job.state_file)?
        && state.plan.id == run.run_id
    {
        let r = Run::resume(&job.state_file)?;
        return Ok(ran(drive(r, Some(run.until), job.timeout, printer)?));
    }
    Ok(match local(&job, printer)? {
        Done::Planned(plan) => NodeResponse::Planned {
            plan: Box::new(plan),
        },
        done => ran(done),
    })
}

/// The response of a run.
fn ran(done: Done) -> NodeResponse {
    match done {
        Done::Planned(plan) => NodeResponse::Planned {
            plan: Box::new(plan),
        },
        Done::Ran(plan, done) => NodeResponse::Ran { run: plan.id, done },
    }
}

/// Plans the restore on this node and, unless it is a dry run, runs it (up to the
/// part's phase for one node of several).
fn local(job: &Job, printer: &Printer) -> Result<Done> {
    let until = job.part.as_ref().map(|p| p.until);
    // The snapshot: given, or checked out of the bundle.
    let (snapshot, _scratch) = snapshot_file(job)?;
    let spinner = printer.spinner("checking the snapshot");
    let checked = kastellan_restore::Source::open(&snapshot, false)
        .and_then(|s| s.verify_hash().map(|_| s.latest().main));
    spinner.finish_and_clear();
    let snapshot_revision = checked?;

    let run_id = job
        .part
        .as_ref()
        .map(|p| p.run_id.clone())
        .unwrap_or_else(run_id);
    // A bundle's PKI must match the node's, or be put in place too (--restore-pki).
    let node_pki = job.cert_dir.clone().unwrap_or_else(|| {
        job.manifests_dir
            .parent()
            .unwrap_or(Path::new("/etc/kubernetes"))
            .join("pki")
    });
    let mut pki = None;
    if let Some(scratch) = &_scratch {
        // One node of several: its own certificates differ from the bundle's node's by
        // design; the cluster-wide CAs and service-account keys must not.
        let shared_only = job.part.is_some();
        let diffs = pki_differences(&scratch.path().join("pki"), &node_pki, shared_only)?;
        if shared_only && !diffs.is_empty() {
            bail!(
                "the bundle's cluster-wide PKI (CAs, service-account keys) differs from this node's ({}): {}; the restored cluster would not trust this node's certificates and tokens. Nothing was changed on any node. --restore-pki works on one node only: put the bundle's CAs and service-account keys on every control-plane node first (then kastellan certs renew all on each)",
                node_pki.display(),
                diffs.join(", ")
            );
        }
        if !diffs.is_empty() && !job.restore_pki {
            bail!(
                "the bundle's PKI differs from this node's ({}): {}; restoring etcd alone would leave certificates and service-account keys that do not match the restored cluster. Pass --restore-pki to put the bundle's PKI in place too (the node's is kept in the holding dir)",
                node_pki.display(),
                diffs.join(", ")
            );
        }
        if job.restore_pki && !diffs.is_empty() {
            pki = Some(procedure::PkiRestore {
                from: job.holding_root.join(&run_id).join("pki-from-bundle"),
                to: node_pki.clone(),
            });
        }
    }
    // A bundle's snapshot is kept in the run's holding dir, so a resumed run finds it.
    let kept_snapshot = match &_scratch {
        Some(_) => job.holding_root.join(&run_id).join("snapshot.db"),
        None => snapshot.clone(),
    };
    // The live revision, read before anything is stopped (one node of several: the
    // coordinator's reading of every member).
    let ask = match &job.bump {
        Some(ask) => ask.clone(),
        None => BumpAsk::Past {
            live: live_revision(&job.manifests_dir),
        },
    };
    let req = ProcedureRequest {
        revision: bump::decide(snapshot_revision, &ask).map_err(hint)?,
        snapshot: kept_snapshot,
        run_id: run_id.clone(),
        restore_dir_parent: job.restore_dir_parent.clone(),
        holding_root: job.holding_root.clone(),
        initial_cluster: job.part.as_ref().map(|p| p.initial_cluster.clone()),
        all_nodes: job.part.is_some(),
        pki: pki.clone(),
        node: kastellan_health::local::hostname(),
    };
    // A run under way has moved manifests out: say so before reading the node's facts,
    // which that run has changed.
    refuse_in_progress(&job.state_file)?;
    let facts = gather(job, &snapshot)?;
    let plan = procedure::plan(&facts, &req).map_err(hint)?;
    if job.dry_run {
        return Ok(Done::Planned(plan));
    }
    let summary = &plan.facts.summary;
    if summary.new_data_dir.exists() {
        return Err(procedure::ProcedureError::TargetExists {
            path: summary.new_data_dir.clone(),
        }
        .into());
    }
    if _scratch.is_some() {
        std::fs::create_dir_all(&summary.holding_dir)?;
        std::fs::rename(&snapshot, &summary.snapshot)
            .with_context(|| format!("keeping the snapshot as {}", summary.snapshot.display()))?;
    }
    if let (Some(pki), Some(scratch)) = (&pki, &_scratch) {
        // Kept in the holding dir, so that a resumed run still has it.
        std::fs::rename(scratch.path().join("pki"), &pki.from)
            .with_context(|| format!("keeping the bundle's PKI in {}", pki.from.display()))?;
    }
    let run = Run::start(plan, &job.state_file)?;
    drive(run, until, job.timeout, printer)
}

/// The node's facts, from its manifests or etcd's unit.
fn gather(job: &Job, snapshot: &Path) -> Result<procedure::Facts> {
    match &job.etcd_unit {
        Some(unit) => kastellan_restore_procedure::gather_systemd(
            unit,
            &job.manifests_dir,
            &job.restore_dir_parent,
            snapshot,
        ),
        None => kastellan_restore_procedure::gather(
            &job.manifests_dir,
            &job.restore_dir_parent,
            snapshot,
        ),
    }
    .map_err(hint)
}

/// The journal of a restore run.
type Journal = kastellan_exec::Journal<Action, Basis>;

/// A run under way has moved manifests out: say so before reading the node's facts,
/// which that run has changed.
fn refuse_in_progress(state_file: &Path) -> Result<()> {
    if let Some(j) = Journal::load(state_file)? {
        let next = j.next().map(|s| s.phase.clone()).unwrap_or_default();
        bail!(
            "a restore is in progress: {} records run {} at step {} of {} ({next}); resume it with kastellan restore --resume (or remove that file once you have put things right by hand)",
            state_file.display(),
            j.plan.id,
            j.done + 1,
            j.plan.steps.len()
        );
    }
    Ok(())
}

/// Adds the command-line hints that the library's errors leave out.
fn hint(e: procedure::ProcedureError) -> anyhow::Error {
    let extra = match &e {
        procedure::ProcedureError::MissingManifest { .. } => {
            Some("give the directory with --manifests-dir, or --etcd-unit for etcd run by systemd")
        }
        procedure::ProcedureError::MultiMember { .. } => Some(
            "restore every control-plane node at once: kastellan restore --all-nodes --node-access lab|ssh",
        ),
        procedure::ProcedureError::Systemctl { .. } => {
            Some("check the unit given with --etcd-unit")
        }
        _ => None,
    };
    match extra {
        Some(h) => anyhow::anyhow!("{e}\nhint: {h}"),
        None => e.into(),
    }
}

/// What `--resume` found, said before anything is done.
fn resume_note(run: &Run<Action, Basis>) -> String {
    let j = run.journal();
    match j.next() {
        Some(s) => format!(
            "resuming restore run {} at step {} of {} ({}: {})",
            j.plan.id,
            j.done + 1,
            j.plan.steps.len(),
            s.phase,
            s.action.describe()
        ),
        None => format!("restore run {}: every step is done", j.plan.id),
    }
}

/// `--plan FILE`: applies a saved plan (the JSON of `--dry-run -o json`, or the bare
/// plan) once the node's facts, read again now, still give exactly that plan.
fn apply_saved(file: &Path, job: &Job, yes: bool, printer: &Printer) -> Result<Done> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not JSON (save the plan with -o json)", file.display()))?;
    let inner = value.get("plan").cloned().unwrap_or(value);
    let saved = Plan::from_json(procedure::PLAN_KIND, file, &serde_json::to_vec(&inner)?)?;
    anyhow::ensure!(
        saved.facts.request.pki.is_none() && !saved.facts.request.all_nodes,
        "{}: a plan that restores a bundle's PKI or several nodes cannot be applied from a file; run the restore again",
        file.display()
    );
    refuse_in_progress(&job.state_file)?;
    let snapshot = saved.facts.request.snapshot.clone();
    let source = kastellan_restore::Source::open(&snapshot, false)
        .and_then(|s| s.verify_hash().map(|_| s))
        .with_context(|| format!("the plan's snapshot {}", snapshot.display()))?;
    // The bump was decided for that snapshot and the live revision of then: the file
    // must still be at that revision, and the cluster must not have written past the
    // bump since.
    let revision = &saved.facts.request.revision;
    anyhow::ensure!(
        source.latest().main == revision.snapshot_revision,
        "{}: refused: its snapshot {} is at revision {} now, the plan was made for revision {}",
        file.display(),
        snapshot.display(),
        source.latest().main,
        revision.snapshot_revision
    );
    if let LiveRevision::Read { revision: live, .. } = live_revision(&job.manifests_dir) {
        revision
            .still_covers(live)
            .map_err(hint)
            .with_context(|| format!("{}: refused", file.display()))?;
    }
    let now = gather(job, &snapshot)?;
    let mut fresh = procedure::plan(&now, &saved.facts.request).map_err(hint)?;
    // Free space moves all the time: the plan above checked that there is still room,
    // so it is no difference.
    fresh.facts.facts.free_bytes = saved.facts.facts.free_bytes;
    saved
        .check_facts(&fresh.facts)
        .with_context(|| format!("{}: refused", file.display()))?;
    anyhow::ensure!(
        fresh.steps == saved.steps,
        "{}: its steps are not the ones kastellan plans for this node's facts (edited by hand?); refused",
        file.display()
    );
    if job.dry_run {
        return Ok(Done::Planned(saved));
    }
    anyhow::ensure!(
        yes,
        "kastellan restore replaces the cluster's state with the snapshot's and restarts the control plane; pass --yes to apply {}",
        file.display()
    );
    let run = Run::start(saved, &job.state_file)?;
    drive(run, None, job.timeout, printer)
}

/// Runs the steps of `run` (those of the phases up to `until`, or all) and reports.
fn drive(
    run: Run<Action, Basis>,
    until: Option<Phase>,
    timeout: Duration,
    printer: &Printer,
) -> Result<Done> {
    let ctx = procedure::Context {
        probe: Box::new(HttpProbe::new()?),
        timeout,
    };
    let mut run = run;
    loop {
        // A journal with no step left (killed before it was closed) finishes at once.
        let Some(next) = run.next().cloned() else {
            let f = match run.step(&ctx) {
                Ok(Progress::Finished(f)) => f,
                Ok(Progress::Running(_)) => bail!("a run with no step left is not finished"),
                Err(failure) => return Err(failed(&failure)),
            };
            return finish(f);
        };
        let next = &next;
        let phase = procedure::phase_of(next);
        if let (Some(u), Some(p)) = (until, phase)
            && p > u
        {
            let j = run.journal();
            return Ok(Done::Ran(j.plan.clone(), phases_done(j)));
        }
        let label = format!(
            "{}: {}",
            next.phase,
            next.action
                .describe()
                .lines()
                .collect::<Vec<_>>()
                .join("; ")
        );
        let spinner = printer.spinner(&label);
        let stepped = run.step(&ctx);
        spinner.finish_and_clear();
        match stepped {
            Ok(Progress::Running(r)) => {
                printer.note(format!("done: {label}"));
                run = r;
            }
            Ok(Progress::Finished(f)) => return finish(f),
            Err(failure) => return Err(failed(&failure)),
        }
    }
}

/// Closes a finished run's journal into its holding dir.
fn finish(f: kastellan_exec::Finished<Action, Basis>) -> Result<Done> {
    let summary = &f.journal().plan.facts.summary;
    let archive = summary.holding_dir.join("restore-state.json");
    let journal = f.close(&archive)?;
    let done = phases_done(&journal);
    Ok(Done::Ran(journal.plan, done))
}

/// The phases a journal has done entirely.
fn phases_done(j: &Journal) -> Vec<Phase> {
    j.phases_done()
        .into_iter()
        .filter_map(Phase::parse)
        .collect()
}

/// What a failed step says: the step, why, what was undone, and where that leaves the
/// node.
fn failed(f: &kastellan_exec::Failure<Action, Basis>) -> anyhow::Error {
    let summary = &f.journal.plan.facts.summary;
    let mut msg = format!(
        "step {} ({}) failed on {}: {}",
        f.step, f.phase, f.node, f.error
    );
    if !f.undone.is_empty() {
        let undone: Vec<String> = f.undone.iter().map(|n| n.to_string()).collect();
        msg.push_str(&format!("\nundone: step {}", undone.join(", ")));
    }
    for (n, e) in &f.undo_errors {
        msg.push_str(&format!("\nundoing step {n} failed: {e}"));
    }
    if f.rolled_back {
        // Nothing of this run is left to resume; its empty holding dir goes too.
        let _ = std::fs::remove_dir(&summary.holding_dir);
        msg.push_str("\nthe node is as it was before the restore; nothing was restored");
    } else {
        msg.push_str(
            "\nfix the cause, then run kastellan restore --resume (it starts at the failed step)",
        );
    }
    anyhow::anyhow!(msg)
}

/// Files of the bundle's PKI (only the files every control plane shares with
/// `shared_only`) that are missing
/// on the node or differ from it (relative paths, with the reason).
fn pki_differences(bundle_pki: &Path, node_pki: &Path, shared_only: bool) -> Result<Vec<String>> {
    fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let r = rel.join(e.file_name());
            if e.path().is_dir() {
                walk(&e.path(), &r, out)?;
            } else {
                out.push(r);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    if bundle_pki.is_dir() {
        walk(bundle_pki, Path::new(""), &mut files)
            .with_context(|| format!("reading {}", bundle_pki.display()))?;
    }
    if shared_only {
        files.retain(|f| kastellan_kubeadm::pki::is_shared(f));
    }
    files.sort();
    let mut diffs = Vec::new();
    for rel in files {
        let theirs = std::fs::read(bundle_pki.join(&rel))?;
        match std::fs::read(node_pki.join(&rel)) {
            Ok(ours) if ours == theirs => {}
            Ok(_) => diffs.push(format!("{} differs", rel.display())),
            Err(_) => diffs.push(format!("{} missing on this node", rel.display())),
        }
    }
    Ok(diffs)
}

/// The snapshot to restore: `--snapshot`, or the one in `--bundle` (verified, extracted
/// into a scratch dir that lives as long as the returned guard).
fn snapshot_file(job: &Job) -> Result<(PathBuf, Option<tempfile_guard::Guard>)> {
    if let Some(s) = &job.snapshot {
        return Ok((s.clone(), None));
    }
    let Some(bundle) = &job.bundle else {
        bail!("give --snapshot FILE or --bundle BUNDLE");
    };
    let decryption = match (&job.identity, &job.passphrase_file) {
        (Some(i), _) => kastellan_bundle::Decryption::IdentityFile(i.clone()),
        (None, Some(p)) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading passphrase file {}", p.display()))?;
            let line = text.lines().next().unwrap_or("").to_string();
            anyhow::ensure!(!line.is_empty(), "{}: empty passphrase", p.display());
            kastellan_bundle::Decryption::Passphrase(line.into())
        }
        (None, None) => kastellan_bundle::Decryption::None,
    };
    let guard = tempfile_guard::Guard::new(&job.holding_root)?;
    let to = guard.path().join("snapshot.db");
    // An s3:// bundle is downloaded into the scratch dir (0600, sha256 checked against
    // its remote sidecar) and restored from there.
    let downloaded;
    let bundle = if is_s3(bundle) {
        let url = bundle.to_str().unwrap_or_default();
        let (loc, name) = kastellan_bundle::remote::Location::of_bundle(url)?;
        let settings = job.s3.clone().unwrap_or_default();
        let remote = kastellan_bundle::remote::Remote::new(loc, &settings)?;
        let fetched = super::runtime()?
            .block_on(remote.fetch(&name, guard.path(), &mut |_, _| {}))
            .with_context(|| format!("downloading {url}"))?;
        downloaded = fetched;
        &downloaded
    } else {
        bundle
    };
    // A dry run does not record the verification in the bundle's sidecar.
    kastellan_bundle::verify_and_extract_pki(
        bundle,
        &decryption,
        &to,
        &guard.path().join("pki"),
        !job.dry_run,
    )
    .with_context(|| format!("bundle {}", bundle.display()))?;
    Ok((to, Some(guard)))
}

mod tempfile_guard {
    //! A scratch dir removed on drop.
    use std::path::{Path, PathBuf};

    /// The guard: the scratch dir, and the dirs above it that the guard created
    /// (deepest first).
    #[derive(Debug)]
    pub struct Guard(PathBuf, Vec<PathBuf>);

    impl Guard {
        /// Creates `<parent>/.bundle-<pid>` (and `parent` and its ancestors where they
        /// are missing).
        pub fn new(parent: &Path) -> anyhow::Result<Guard> {
            let created = parent
                .ancestors()
                .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
                .map(Path::to_path_buf)
                .collect();
            let p = parent.join(format!(".bundle-{}", std::process::id()));
            std::fs::create_dir_all(&p)?;
            Ok(Guard(p, created))
        }
        /// Its path.
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
            // A dry run leaves no empty holding dir (nor its parents) behind; a run keeps
            // what it put there (remove_dir only removes empty dirs).
            for dir in &self.1 {
                if std::fs::remove_dir(dir).is_err() {
                    break;
                }
            }
        }
    }
}

/// A run id: the UTC time, `YYYYMMDDTHHMMSSZ`.
fn run_id() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// The HTTP(S) probes, through the status crate's client.
struct HttpProbe {
    get: Box<Get>,
}

/// GETs a URL: (HTTP status, body).
type Get = dyn Fn(&str) -> (Option<u16>, String);

impl HttpProbe {
    fn new() -> Result<HttpProbe> {
        let rt = super::runtime()?;
        let client = kastellan_health::probe::client(Duration::from_secs(3));
        Ok(HttpProbe {
            get: Box::new(move |url| {
                let a = rt.block_on(kastellan_health::probe::get(&client, url));
                (a.status, a.body)
            }),
        })
    }
}

impl procedure::Probe for HttpProbe {
    fn etcd_healthy(&self, url: &str) -> bool {
        let (status, body) = (self.get)(url);
        let answer = kastellan_health::probe::Answer {
            status,
            body,
            latency: Duration::ZERO,
        };
        let check = kastellan_health::probe::judge(
            "",
            "etcd",
            url,
            kastellan_health::probe::Expect::EtcdHealth,
            &answer,
        );
        check.state == kastellan_health::State::Up
    }

    fn apiserver_ready(&self, port: u16) -> bool {
        let (status, _) = (self.get)(&format!("https://127.0.0.1:{port}/readyz"));
        status == Some(200)
    }
}

/// Runs every phase on every node, each phase on all nodes before the next one: all
/// apiservers stop before any etcd does, every member is restored from the same file
/// with the same initial cluster, every etcd starts before any waits for health.
/// First every node plans the run (`--dry-run`): the snapshot or bundle verifies there,
/// a bundle's cluster-wide PKI matches, the disk has room; one refusal stops the run
/// before anything is changed anywhere.
fn all_nodes(args: &RestoreArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let mode = args.node_access.unwrap_or(AllNodesAccess::Lab);
    let mut lab_nodes = mode != AllNodesAccess::Ssh;
    let reach: Reach = match mode {
        AllNodesAccess::Lab => node_access::lab()?,
        AllNodesAccess::LabSsh => node_access::ssh(&args.ssh, true)?,
        AllNodesAccess::Ssh => {
            // Nothing said about the nodes while a lab with sshd runs: the lab's.
            let lab = args.nodes.is_empty()
                && node_access::unconfigured(&args.ssh)
                && node_access::lab_ssh_up();
            if lab {
                printer.note("--node-access ssh: the lab's inventory (lab up --ssh)");
                lab_nodes = true;
            }
            node_access::ssh(&args.ssh, lab)?
        }
    };
    let nodes: Vec<String> = if !args.nodes.is_empty() {
        args.nodes.clone()
    } else if let Some(inv) = &reach.inventory {
        inv.names(kastellan_access::Role::ControlPlane)
    } else if mode == AllNodesAccess::Lab {
        let state = kastellan_lab::LabState::load()?
            .context("--node-access lab: no lab is up (kastellan lab up)")?;
        state
            .nodes
            .iter()
            .filter(|n| n.node.role == kastellan_lab::NodeRole::ControlPlane)
            .map(|n| n.node.name.clone())
            .collect()
    } else {
        bail!("--node-access ssh needs --nodes a,b,c or an --inventory");
    };
    anyhow::ensure!(!nodes.is_empty(), "no control-plane nodes to restore");
    // Each step on a node: its waits have --timeout each; a large data dir takes time.
    let step_timeout = Duration::from_secs(args.timeout.saturating_mul(3).saturating_add(600));
    // One request to one node: `kastellan restore --node-request -` there, the request
    // on its stdin, the response on its stdout.
    let ask = |n: &str, ask: Ask| -> Result<NodeResponse> {
        let req = NodeRequest {
            protocol: remote::PROTOCOL,
            manifests_dir: args.manifests_dir.clone(),
            etcd_unit: args.etcd_unit.clone(),
            ask,
        };
        let argv = [
            reach.kastellan.as_str(),
            "restore",
            "--quiet",
            "--node-request",
            "-",
        ];
        let cmd = kastellan_access::NodeCommand::new(argv)
            .stdin(kastellan_access::Payload::Bytes(serde_json::to_vec(&req)?))
            .timeout(step_timeout);
        let out = reach.access.run(n, &cmd)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) else {
            bail!(
                "{n}: kastellan restore --node-request answered nothing (exit {}): {}",
                out.status,
                out.stderr_tail(5)
            );
        };
        let response: NodeResponse = serde_json::from_str(line).with_context(|| {
            format!("{n}: reading its response (is kastellan there the same version?)")
        })?;
        match response {
            NodeResponse::Failed { error } => bail!("{n}: {error}"),
            r => Ok(r),
        }
    };
    let absolute =
        |p: &Path| std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()));
    // What every node restores: the same snapshot file, or the same bundle (each node
    // verifies it and compares its PKI), at the same path on every node.
    let source = if let Some(snapshot) = &args.snapshot {
        let spinner = printer.spinner("checking the snapshot");
        let checked =
            kastellan_restore::Source::open(snapshot, false).and_then(|s| s.verify_hash());
        spinner.finish_and_clear();
        checked?;
        remote::Source::Snapshot {
            path: absolute(snapshot)?,
        }
    } else if let Some(bundle) = &args.bundle {
        if is_s3(bundle) {
            bail!(
                "--all-nodes restores a bundle that every node reads at the same path: download {} first (kastellan backup verify shows it is whole)",
                bundle.display()
            );
        }
        remote::Source::Bundle {
            path: absolute(bundle)?,
            identity: args.identity.as_deref().map(absolute).transpose()?,
            passphrase_file: args.passphrase_file.as_deref().map(absolute).transpose()?,
        }
    } else {
        bail!("give --snapshot FILE or --bundle BUNDLE");
    };
    let mut members = Vec::new();
    let mut readings = Vec::new();
    for n in &nodes {
        let r = ask(n, Ask::Member).with_context(|| format!("{n}: reading etcd's member"))?;
        members.push(
            r.member_entry()
                .with_context(|| format!("{n}: answered {r:?}, not its member"))?,
        );
        if let NodeResponse::Member { live, .. } = r {
            readings.push((n.clone(), live));
        }
    }
    let initial_cluster = members.join(",");
    // One bump for every member: past the highest revision any member had.
    let bump_ask = if args.no_bump_revision {
        BumpAsk::Off
    } else {
        BumpAsk::Past {
            live: bump::highest(&readings),
        }
    };
    let run_id = run_id();
    let part = |until: Phase| NodeRun {
        source: source.clone(),
        run_id: run_id.clone(),
        initial_cluster: initial_cluster.clone(),
        timeout_secs: args.timeout,
        until,
        bump: bump_ask.clone(),
    };

    // Every node plans first; nothing changes unless all of them can go ahead.
    let mut plans = Vec::new();
    for n in &nodes {
        let spinner = printer.spinner(&format!("{n}: checking"));
        let r = ask(n, Ask::Plan(part(Phase::WaitApiserver)));
        spinner.finish_and_clear();
        match r.context("Nothing was changed on any node.")? {
            NodeResponse::Planned { plan } => plans.push((n.clone(), *plan)),
            other => bail!("{n}: answered {other:?}, not a plan\nNothing was changed on any node."),
        }
    }
    // The same snapshot and the same reading give the same bump everywhere; a node that
    // decided otherwise (another snapshot at that path) stops the run here.
    if let Some((first, p)) = plans.first() {
        let want = &p.facts.summary.revision;
        for (n, other) in &plans {
            anyhow::ensure!(
                &other.facts.summary.revision == want,
                "{n} would restore at {} but {first} at {}: the snapshots differ\nNothing was changed on any node.",
                other.facts.summary.revision.describe(),
                want.describe()
            );
        }
    }
    let report = |done: bool| AllNodesReport {
        dry_run: !done,
        revision: plans.first().map(|(_, p)| p.facts.summary.revision.clone()),
        agents: None,
        agents_unobserved: None,
        run_id: run_id.clone(),
        initial_cluster: initial_cluster.clone(),
        nodes: plans
            .iter()
            .map(|(n, p)| NodeReport {
                node: n.clone(),
                report: RestoreReport::of(
                    p,
                    !done,
                    if done {
                        Phase::ALL
                            .into_iter()
                            .filter(|ph| p.phases().contains(&ph.name()))
                            .collect()
                    } else {
                        Vec::new()
                    },
                ),
            })
            .collect(),
    };
    if args.dry_run {
        printer.report(&report(false))?;
        return Ok(Outcome::Ok);
    }
    printer.note(format!(
        "restoring on {} with --initial-cluster {initial_cluster} (run {run_id})",
        nodes.join(", ")
    ));
    for phase in Phase::ALL {
        for n in &nodes {
            let spinner = printer.spinner(&format!("{n}: {phase}"));
            let r = ask(n, Ask::Run(part(phase)));
            spinner.finish_and_clear();
            match r {
                Ok(NodeResponse::Ran { done, .. })
                    if done.contains(&phase) || !plan_has(&plans, n, phase) => {}
                Ok(other) => bail!("{n}: phase {phase} not done: it answered {other:?}"),
                Err(e) => bail!(
                    "phase {phase} failed: {e:#}\nFix the cause, then run `kastellan restore --resume` on {n}, and the same --all-nodes command again for the other nodes (each node resumes run {run_id} where it stopped)"
                ),
            }
            printer.note(format!("{n}: {phase} done"));
        }
    }
    let mut done = report(true);
    if let Some((_, plan)) = plans.first() {
        // The lab's kubeconfig when the nodes are the lab's.
        let lab = lab_nodes.then(kastellan_lab::kubeconfig_path);
        let (agents, unobserved) = observe_agents(plan, global, lab.as_deref(), printer);
        done.agents = agents;
        done.agents_unobserved = unobserved;
    }
    printer.report(&done)?;
    Ok(Outcome::Ok)
}

/// Whether node `n`'s plan has steps in `phase`.
fn plan_has(plans: &[(String, Plan)], n: &str, phase: Phase) -> bool {
    plans
        .iter()
        .any(|(node, p)| node == n && p.phases().contains(&phase.name()))
}

/// The report of `--all-nodes`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AllNodesReport {
    dry_run: bool,
    /// The revision bump, the same on every member.
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<RevisionBump>,
    /// What the restored API showed of the agents and leaders.
    #[serde(skip_serializing_if = "Option::is_none")]
    agents: Option<Agents>,
    /// Why it could not be looked at.
    #[serde(skip_serializing_if = "Option::is_none")]
    agents_unobserved: Option<String>,
    run_id: String,
    initial_cluster: String,
    nodes: Vec<NodeReport>,
}

/// One node's part.
#[derive(Debug, Serialize)]
struct NodeReport {
    node: String,
    #[serde(flatten)]
    report: RestoreReport,
}

impl Report for AllNodesReport {
    fn render(&self, out: &mut String, style: &Style) {
        let _ = writeln!(
            out,
            "{} {} members with --initial-cluster {} (run {})",
            if self.dry_run {
                "would restore"
            } else {
                "restored"
            },
            self.nodes.len(),
            self.initial_cluster,
            self.run_id
        );
        if let Some(r) = &self.revision {
            kastellan_printer::wrap(out, "", 2, &r.describe(), style.width);
        }
        render_agents(out, style, &self.agents, &self.agents_unobserved);
        for n in &self.nodes {
            let _ = writeln!(out, "\n{}", style.bold(&format!("== {} ==", n.node)));
            n.report.render(out, style);
        }
    }
}

/// The report: the typed plan (what runs), each step described, the phases done.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RestoreReport {
    dry_run: bool,
    plan: Plan,
    done: Vec<Phase>,
    steps: Vec<Described>,
    /// What the restored API showed of the agents and leaders (a finished run).
    #[serde(skip_serializing_if = "Option::is_none")]
    agents: Option<Agents>,
    /// Why it could not be looked at.
    #[serde(skip_serializing_if = "Option::is_none")]
    agents_unobserved: Option<String>,
}

impl RestoreReport {
    fn of(plan: &Plan, dry_run: bool, done: Vec<Phase>) -> RestoreReport {
        RestoreReport {
            dry_run,
            steps: plan.describe(),
            plan: plan.clone(),
            done,
            agents: None,
            agents_unobserved: None,
        }
    }

    /// Looks at what the restored API shows of the agents and leaders.
    fn after_restart(&mut self, global: &GlobalArgs, kubeconfig: Option<&Path>, printer: &Printer) {
        let (agents, unobserved) = observe_agents(&self.plan, global, kubeconfig, printer);
        self.agents = agents;
        self.agents_unobserved = unobserved;
    }
}

/// What the restored API shows after a finished restore of `plan` (every member's is
/// the same bump), or why it could not be looked at (the restore is done either way).
fn observe_agents(
    plan: &Plan,
    global: &GlobalArgs,
    kubeconfig: Option<&Path>,
    printer: &Printer,
) -> (Option<Agents>, Option<String>) {
    let r = &plan.facts.summary.revision;
    // The probe resumes from the newest revision a client can have seen (the live one
    // read before the restore), else from the first one the restore undid.
    let probe_rv = match &r.basis {
        bump::BumpBasis::Live { live_revision, .. } => *live_revision,
        _ => r.snapshot_revision.saturating_add(1),
    };
    let spinner = printer.spinner("watching the node agents' and leaders' Leases");
    let seen = super::restore_agents::observe(
        global,
        kubeconfig,
        r.bumped_revision,
        probe_rv,
        super::restore_agents::WAIT,
    );
    spinner.finish_and_clear();
    match seen {
        Ok(a) => (Some(a), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    }
}

/// The part of a report that says who came back.
fn render_agents(
    out: &mut String,
    style: &Style,
    agents: &Option<Agents>,
    unobserved: &Option<String>,
) {
    let width = style.width;
    if let Some(why) = unobserved {
        kastellan_printer::wrap(
            out,
            "after the restart: ",
            2,
            &format!("not observed: {why}"),
            width,
        );
        return;
    }
    let Some(a) = agents else { return };
    kastellan_printer::wrap(
        out,
        "after the restart ",
        2,
        &format!("(based on {}):", a.basis),
        width,
    );
    let probe = match &a.probe {
        ProbeAnswer::Gone => {
            "410 Gone: every watch from before the restore must relist".to_string()
        }
        ProbeAnswer::Accepted => {
            "accepted: watchers from before the restore resume without relisting".to_string()
        }
        ProbeAnswer::Other { detail } => format!("answered {detail}"),
    };
    kastellan_printer::wrap(
        out,
        "  ",
        4,
        &format!(
            "watch of Nodes from resourceVersion {}: {probe}",
            a.probe_resource_version
        ),
        width,
    );
    for r in a.kubelets.iter().chain(&a.leaders) {
        let who = if r.lease.starts_with("kube-node-lease/") {
            format!("kubelet {}", r.who)
        } else {
            r.who.clone()
        };
        let said = if r.renewed {
            format!(
                "reconnected: renewed {} ({})",
                r.lease,
                r.renew_time.as_deref().unwrap_or("?")
            )
        } else {
            format!(
                "not back: {} not renewed within {} s (last {})",
                r.lease,
                a.waited_secs,
                r.renew_time.as_deref().unwrap_or("never")
            )
        };
        let line = format!("{who}: {said}");
        let line = if r.renewed {
            style.good(&line)
        } else {
            style.bad(&line)
        };
        kastellan_printer::wrap(out, "  ", 4, &line, width);
    }
    kastellan_printer::wrap(
        out,
        "  ",
        4,
        "kube-proxy: keeps no Lease and writes nothing while it runs, so the API cannot show it reconnect; its watches broke at the restart like the kubelets' (see the probe)",
        width,
    );
}

impl Report for RestoreReport {
    fn render(&self, out: &mut String, style: &Style) {
        let p = &self.plan;
        let s = &p.facts.summary;
        let phases = p.phases();
        let head = if self.dry_run {
            format!(
                "would restore {} on member {} (run {})",
                s.snapshot.display(),
                s.name,
                p.id
            )
        } else if self.done.len() == phases.len() {
            format!(
                "restored {} on member {}: etcd now uses {} ({} is untouched)",
                s.snapshot.display(),
                s.name,
                s.new_data_dir.display(),
                s.old_data_dir.display()
            )
        } else {
            format!(
                "restore run {} on member {}: {} of {} phases done",
                p.id,
                s.name,
                self.done.len(),
                phases.len()
            )
        };
        let _ = writeln!(out, "{}", style.good(&head));
        kastellan_printer::wrap(out, "", 2, &s.revision.describe(), style.width);
        render_agents(out, style, &self.agents, &self.agents_unobserved);
        for (i, phase) in phases.iter().enumerate() {
            let done = Phase::parse(phase).is_some_and(|ph| self.done.contains(&ph));
            let mark = if done {
                "done"
            } else if self.dry_run {
                "plan"
            } else {
                "todo"
            };
            let _ = writeln!(out, "{}. {phase} [{mark}]", i + 1);
            for d in self.steps.iter().filter(|d| d.phase == *phase) {
                for line in d.does.lines() {
                    let _ = writeln!(out, "   {line}");
                }
                if d.commit {
                    let _ = writeln!(
                        out,
                        "   (the point of no return: a failure after it is not undone)"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kastellan_restore_procedure::agents::{BASIS, Renewal};

    fn renewal(who: &str, lease: &str, renewed: bool) -> Renewal {
        Renewal {
            who: who.into(),
            lease: lease.into(),
            renewed,
            holder: Some(who.into()),
            renew_time: Some("2026-12-01T00:00:10.123456Z".into()),
        }
    }

    #[test]
    fn the_agents_part_names_each_renewer_and_fits_80_columns() {
        let agents = Agents {
            basis: BASIS.into(),
            start_revision: 1_000_860,
            probe_resource_version: 860,
            probe: ProbeAnswer::Gone,
            kubelets: vec![
                renewal("cp1", "kube-node-lease/cp1", true),
                renewal("w1", "kube-node-lease/w1", false),
            ],
            leaders: vec![renewal(
                "kube-controller-manager",
                "kube-system/kube-controller-manager",
                true,
            )],
            waited_secs: 60,
        };
        let style = Style {
            color: false,
            width: Some(80),
            wide: false,
        };
        let mut out = String::new();
        render_agents(&mut out, &style, &Some(agents), &None);
        assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
        let one_line = out.split_whitespace().collect::<Vec<_>>().join(" ");
        for needle in [
            "based on Lease renewals through the restored API",
            "watch of Nodes from resourceVersion 860: 410 Gone",
            "kubelet cp1: reconnected: renewed kube-node-lease/cp1",
            "kubelet w1: not back: kube-node-lease/w1 not renewed within 60 s",
            "kube-controller-manager: reconnected",
            "kube-proxy: keeps no Lease",
        ] {
            assert!(one_line.contains(needle), "{needle} in {out}");
        }
        let mut out = String::new();
        render_agents(&mut out, &style, &None, &Some("no kubeconfig".into()));
        assert_eq!(out, "after the restart: not observed: no kubeconfig\n");
    }
}

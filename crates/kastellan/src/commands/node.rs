//! `kastellan node cordon|uncordon|drain`: thin glue over `kastellan-drain`. Renders
//! plans, progress and results (80 columns), adds the flag hints the library leaves
//! out, and maps outcomes to exit codes: 0 done, 1 refused, blocked, failed or timed
//! out, 2 bad input or no cluster (errors).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use kastellan_drain::classify::{Reason, Rules};
use kastellan_drain::plan::{BudgetCheck, NodePlan, Plan, PlannedPod, Request};
use kastellan_drain::run::{self, Blocker, Event, NodeResult, NodeState, Observer, Options};
use kastellan_printer::{Printer, ProgressBar, Report, Style};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{DrainArgs, GlobalArgs, NodeCommand, NodeNamesArgs};

const WIDTH: usize = 80;

/// Runs `node`.
pub fn run(cmd: NodeCommand, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let rt = super::runtime()?;
    match cmd {
        NodeCommand::Cordon(args) => rt.block_on(cordon(args, true, global, printer)),
        NodeCommand::Uncordon(args) => rt.block_on(cordon(args, false, global, printer)),
        NodeCommand::Drain(args) => rt.block_on(drain(args, global, printer)),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CordonRow {
    node: String,
    cordoned: bool,
    changed: bool,
}

#[derive(Serialize)]
struct CordonReport(Vec<CordonRow>);

impl Report for CordonReport {
    fn render(&self, out: &mut String, _style: &Style) {
        for r in &self.0 {
            let verb = if r.cordoned { "cordoned" } else { "uncordoned" };
            let _ = writeln!(
                out,
                "node/{} {}{verb}",
                r.node,
                if r.changed { "" } else { "already " }
            );
        }
    }
}

async fn cordon(
    args: NodeNamesArgs,
    on: bool,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<Outcome> {
    let client = super::kube::drain_client(global).await?;
    // Every node must exist before any changes.
    kastellan_drain::api::nodes(&client, &args.nodes).await?;
    let mut rows = Vec::new();
    for node in &args.nodes {
        let changed = kastellan_drain::api::set_unschedulable(&client, node, on).await?;
        rows.push(CordonRow {
            node: node.clone(),
            cordoned: on,
            changed,
        });
    }
    printer.report(&CordonReport(rows))?;
    Ok(Outcome::Ok)
}

async fn drain(args: DrainArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let client = super::kube::drain_client(global).await?;
    let drainer = run::Drainer::new(client)
        .await
        .context("reading what the API server serves")?;
    let request = Request {
        nodes: args.nodes.clone(),
        rules: Rules {
            ignore_daemonsets: args.ignore_daemonsets,
            delete_emptydir_data: args.delete_emptydir_data,
            force: args.force,
        },
        max_unavailable: usize::from(args.max_unavailable),
        primary: args.primary_label.clone(),
        disable_eviction: args.disable_eviction,
        nodes_stay_up: false,
        allow_hazards: false,
    };
    let options = Options {
        timeout: args.timeout,
        grace_period: (args.grace_period >= 0).then_some(args.grace_period),
        uncordon_on_failure: args.uncordon_on_failure,
        pod_selector: args.pod_selector.clone(),
        ..Options::default()
    };
    if args.dry_run {
        let plan = drainer
            .plan(&request, options.pod_selector.as_deref())
            .await?;
        let view = PlanView {
            plan: &plan,
            dry_run: true,
        };
        printer.report(&view)?;
        let stops = plan.refused() || (plan.hazardous() && !args.force) || plan.blocked();
        return Ok(if stops {
            Outcome::Unhealthy
        } else {
            Outcome::Ok
        });
    }

    let progress = printer.spinner("planning");
    let observer = observer(printer.clone(), progress.clone());
    let outcome = run::drain(&drainer, &request, &options, &observer).await;
    progress.finish_and_clear();
    let outcome = outcome?;
    let success = outcome.success();
    if printer.format().is_human() {
        if !outcome.nodes.is_empty() {
            printer.report(&ResultView(&outcome.nodes))?;
        }
        if let Some(refusal) = &outcome.refused {
            printer.report(&PlanView {
                plan: &refusal.plan,
                dry_run: false,
            })?;
        }
    } else {
        printer.event(&ResultLine {
            event: "result",
            outcome: &outcome,
        })?;
    }
    Ok(if success {
        Outcome::Ok
    } else {
        Outcome::Unhealthy
    })
}

#[derive(Serialize)]
struct ResultLine<'a> {
    event: &'static str,
    #[serde(flatten)]
    outcome: &'a run::Outcome,
}

/// Events: one line each for machines; for humans, notes on stderr for the steps that
/// matter (each budget's first refusal) and a progress line on a terminal.
fn observer(printer: Printer, progress: ProgressBar) -> Observer {
    let noted: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
    Arc::new(move |e: &Event| {
        if !printer.format().is_human() {
            if let Err(err) = printer.event(e) {
                progress.suspend(|| printer.warn(format!("{err}")));
            }
            return;
        }
        let note = |msg: String| progress.suspend(|| printer.note(msg));
        match e {
            Event::Batch { nodes, plans } => {
                for n in plans {
                    note(format!(
                        "{}: {} to evict, {} left in place",
                        n.node,
                        n.evict.len(),
                        n.skip.len()
                    ));
                    for h in &n.hazards {
                        progress.suspend(|| {
                            printer.warn(wrap_str(
                                &format!("{}: {} (drained anyway: --force)", n.node, h.describe()),
                                2,
                            ))
                        });
                    }
                }
                progress.set_message(format!("draining {}", nodes.join(", ")));
            }
            Event::Cordoned { node, already } => note(format!(
                "node/{node} {}cordoned",
                if *already { "already " } else { "" }
            )),
            Event::Uncordoned { node } => note(format!("node/{node} uncordoned")),
            Event::Evicted { node, pod } => {
                progress.set_message(fit(&format!("{node}: evicting {pod}")));
            }
            Event::Deleted {
                node,
                pod,
                overrode,
            } => {
                if !overrode.is_empty() {
                    let names: Vec<String> = overrode
                        .iter()
                        .map(|p| format!("{} (allowed {})", p.pdb, p.disruptions_allowed))
                        .collect();
                    note(wrap_str(
                        &format!(
                            "{node}: deleted {pod} past PodDisruptionBudget {}",
                            names.join(", ")
                        ),
                        2,
                    ));
                }
            }
            Event::Gone {
                node, done, total, ..
            } => {
                progress.set_message(format!("{node}: {done}/{total} pods gone"));
            }
            Event::Blocked {
                node,
                pod,
                budget,
                message,
                blocked_secs,
                ..
            } => {
                let key = (
                    pod.to_string(),
                    budget
                        .as_ref()
                        .map(|b| b.pdb.pdb.to_string())
                        .unwrap_or_default(),
                );
                let first = noted.lock().map(|mut n| n.insert(key)).unwrap_or(false);
                match budget {
                    Some(b) => {
                        if first {
                            let mut s = String::new();
                            let _ = write!(s, "{node}: eviction of {pod} refused; ");
                            blocker_text(&mut s, b);
                            s.push_str("; retrying");
                            note(wrap_str(&s, 2));
                        }
                        progress.set_message(fit(&format!(
                            "{node}: blocked {blocked_secs}s by PDB {} (allows {}, {} unhealthy)",
                            b.pdb.pdb,
                            b.pdb.disruptions_allowed,
                            b.pdb.unhealthy()
                        )));
                    }
                    None => {
                        if first {
                            note(wrap_str(&format!("{node}: {pod}: {message}; retrying"), 2));
                        }
                        progress
                            .set_message(fit(&format!("{node}: {pod} blocked {blocked_secs}s")));
                    }
                }
            }
        }
    })
}

/// `text` cut to the width of a progress line.
fn fit(text: &str) -> String {
    if text.chars().count() <= WIDTH - 4 {
        return text.to_string();
    }
    let mut s: String = text.chars().take(WIDTH - 7).collect();
    s.push_str("...");
    s
}

/// Wraps `text` at 80 columns; lines after the first are indented by `indent`.
fn wrap_str(text: &str, indent: usize) -> String {
    let mut out = String::new();
    wrap(&mut out, "", indent, text);
    out.trim_end().to_string()
}

/// Writes `first` then `text`, wrapped at 80 columns at spaces, continuation lines
/// indented by `indent` (a word longer than a line stays whole).
fn wrap(out: &mut String, first: &str, indent: usize, text: &str) {
    kastellan_printer::wrap(out, first, indent, text, Some(WIDTH));
}

/// The flag that allows what `reason` refuses.
fn hint(reason: Reason) -> &'static str {
    match reason {
        Reason::DaemonSet => " (--ignore-daemonsets leaves it)",
        Reason::LocalStorage => " (--delete-emptydir-data)",
        Reason::Unmanaged | Reason::DaemonSetMissing => " (--force)",
        Reason::Mirror | Reason::Finished | Reason::Terminating => "",
    }
}

fn pod_line(p: &PlannedPod, with_hints: bool) -> String {
    let mut s = p.pod.to_string();
    if let Some(o) = &p.owner {
        let _ = write!(s, " ({o})");
    }
    if !p.reasons.is_empty() {
        let reasons: Vec<String> = p
            .reasons
            .iter()
            .map(|r| format!("{}{}", r.describe(), if with_hints { hint(*r) } else { "" }))
            .collect();
        let _ = write!(s, ": {}", reasons.join(", "));
    }
    s
}

/// "PDB ns/name (minAvailable: 2) allows 0 disruptions: 1 of 2 healthy, 1 unhealthy,
/// 2 needed; covers ns/a (Deployment/db, w1), ..."
fn blocker_text(s: &mut String, b: &Blocker) {
    budget_text(s, &b.pdb);
    if b.blocked_secs > 0 {
        let _ = write!(s, "; blocked for {}s", b.blocked_secs);
    }
    covers_text(s, &b.pods);
}

fn budget_text(s: &mut String, p: &kastellan_drain::facts::PdbInfo) {
    let _ = write!(
        s,
        "PDB {} ({}) allows {} disruption{} now: {} of {} pods healthy, {} unhealthy, {} needed",
        p.pdb,
        p.rule,
        p.disruptions_allowed,
        if p.disruptions_allowed == 1 { "" } else { "s" },
        p.current_healthy,
        p.expected_pods,
        p.unhealthy(),
        p.desired_healthy
    );
}

fn covers_text(s: &mut String, pods: &[kastellan_drain::plan::CoveredPod]) {
    if pods.is_empty() {
        return;
    }
    let list: Vec<String> = pods
        .iter()
        .map(|c| {
            let mut d = Vec::new();
            if let Some(o) = &c.owner {
                d.push(o.to_string());
            }
            if let Some(n) = &c.node {
                d.push(format!("on {n}"));
            }
            if !c.ready {
                d.push("not ready".into());
            }
            if c.to_evict {
                d.push("to evict".into());
            }
            format!("{} ({})", c.pod, d.join(", "))
        })
        .collect();
    let _ = write!(s, "; covers {}", list.join(", "));
}

fn budget_line(out: &mut String, b: &BudgetCheck, disable_eviction: bool) {
    let mut s = String::new();
    budget_text(&mut s, &b.pdb);
    let _ = write!(
        s,
        "; the drain evicts {}{}",
        b.evictions,
        if b.blocks { "" } else { ": ok" }
    );
    if b.blocks {
        covers_text(&mut s, &b.pods);
    }
    let tag = match (b.blocks, disable_eviction) {
        (true, true) => "  PASSED ",
        (true, false) => "  BLOCKS ",
        _ => "  budget ",
    };
    wrap(out, tag, 9, &s);
}

/// A plan, for `--dry-run` and refusals.
struct PlanView<'a> {
    plan: &'a Plan,
    dry_run: bool,
}

impl Serialize for PlanView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.plan.serialize(s)
    }
}

fn node_plan(out: &mut String, n: &NodePlan, removal: &str, force: bool, disable_eviction: bool) {
    let _ = writeln!(
        out,
        "{}: {} to evict, {} skipped, {} refused{} (removal: {removal})",
        n.node,
        n.evict.len(),
        n.skip.len(),
        n.refuse.len(),
        if n.cordoned { ", already cordoned" } else { "" },
    );
    for p in &n.evict {
        wrap(out, "  evict  ", 9, &pod_line(p, false));
    }
    for p in &n.skip {
        wrap(out, "  skip   ", 9, &pod_line(p, false));
    }
    for p in &n.refuse {
        wrap(out, "  REFUSE ", 9, &pod_line(p, true));
    }
    for b in &n.budgets {
        budget_line(out, b, disable_eviction);
    }
    for h in &n.hazards {
        let tag = if force { "  warn   " } else { "  HAZARD " };
        let text = format!(
            "{}{}",
            h.describe(),
            if force {
                ""
            } else {
                " (--force drains anyway)"
            }
        );
        wrap(out, tag, 9, &text);
    }
}

impl Report for PlanView<'_> {
    fn render(&self, out: &mut String, style: &Style) {
        let plan = self.plan;
        let force = plan.request.rules.force;
        for n in &plan.nodes {
            node_plan(out, n, &plan.removal, force, plan.request.disable_eviction);
        }
        if plan.batches.len() > 1 && self.dry_run {
            let _ = writeln!(
                out,
                "batches: {} (each planned again from fresh facts before it starts)",
                plan.batches
                    .iter()
                    .map(|b| b.join("+"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let refused = plan.refused();
        let hazards = plan.hazardous() && !force;
        let verdict = if refused || hazards {
            let what = match (refused, hazards) {
                (true, true) => "pods the rules refuse and hazards",
                (true, false) => "pods the rules refuse",
                _ => "hazards",
            };
            style.bad(&format!(
                "{}refused: {what}; nothing was changed",
                if self.dry_run {
                    "the drain would be "
                } else {
                    ""
                }
            ))
        } else if plan.blocked() {
            style.warn(&format!(
                "{}: a PodDisruptionBudget allows fewer evictions than needed now \
                 (the drain retries until --timeout)",
                if self.dry_run {
                    "dry run, blocked"
                } else {
                    "blocked"
                }
            ))
        } else if self.dry_run {
            style.good("dry run: the drain would go ahead; nothing was changed")
        } else {
            String::new()
        };
        let mut v = String::new();
        wrap(&mut v, "", 0, &verdict);
        out.push_str(&v);
    }
}

/// The results of a drain that ran.
#[derive(Serialize)]
struct ResultView<'a>(&'a [NodeResult]);

impl Report for ResultView<'_> {
    fn render(&self, out: &mut String, style: &Style) {
        for r in self.0 {
            let total = r.removed.len() + r.remaining.len();
            let head = match r.state {
                NodeState::Drained => style.good(&format!(
                    "{}: drained in {:.1}s, {} pod{} removed",
                    r.node,
                    r.seconds,
                    total,
                    if total == 1 { "" } else { "s" }
                )),
                NodeState::TimedOut => style.bad(&format!(
                    "{}: timed out after {:.1}s, {} of {total} pods removed",
                    r.node,
                    r.seconds,
                    r.removed.len()
                )),
                NodeState::Failed => style.bad(&format!(
                    "{}: failed after {:.1}s, {} of {total} pods removed",
                    r.node,
                    r.seconds,
                    r.removed.len()
                )),
                NodeState::NotStarted => {
                    format!("{}: not started (an earlier node failed)", r.node)
                }
            };
            let _ = writeln!(out, "{head}");
            if !r.remaining.is_empty() {
                let names: Vec<String> = r.remaining.iter().map(ToString::to_string).collect();
                wrap(out, "  still there: ", 4, &names.join(", "));
            }
            for b in &r.blockers {
                let mut s = String::new();
                blocker_text(&mut s, b);
                s.push_str(" (--disable-eviction deletes past it)");
                wrap(out, "  BLOCKED ", 10, &s);
            }
            for o in &r.overridden {
                let names: Vec<String> = o.budgets.iter().map(ToString::to_string).collect();
                wrap(
                    out,
                    "  override ",
                    4,
                    &format!("{} deleted past PDB {}", o.pod, names.join(", ")),
                );
            }
            if let Some(e) = &r.error {
                wrap(out, "  error: ", 4, e);
            }
            if r.state != NodeState::Drained && r.state != NodeState::NotStarted {
                let _ = writeln!(
                    out,
                    "  {}",
                    if r.cordoned {
                        format!(
                            "node/{} stays cordoned (kastellan node uncordon {})",
                            r.node, r.node
                        )
                    } else {
                        format!("node/{} uncordoned", r.node)
                    }
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kastellan_drain::facts::{ClusterFacts, Owner, PdbInfo, Phase, PodInfo, PodRef};

    fn pod(name: &str, app: &str, kind: &str) -> PodInfo {
        PodInfo {
            pod: PodRef {
                namespace: "shop".into(),
                name: name.into(),
            },
            uid: format!("uid-{name}"),
            node: Some("worker-1".into()),
            phase: Phase::Active,
            labels: [("app".to_string(), app.to_string())].into(),
            annotations: Default::default(),
            controller: (!kind.is_empty()).then(|| Owner {
                kind: if kind == "Deployment" {
                    "ReplicaSet"
                } else {
                    kind
                }
                .into(),
                name: format!("{app}-1"),
            }),
            workload: (!kind.is_empty()).then(|| Owner {
                kind: kind.into(),
                name: app.into(),
            }),
            ready: true,
            terminating: false,
            empty_dir: false,
        }
    }

    /// The human plan: what goes, stays, is refused (with the flag), what blocks.
    #[test]
    fn renders_a_plan_in_80_columns() {
        let mut db_elsewhere = pod("postgres-7d9f8c6b5-k2x4q", "postgres", "Deployment");
        db_elsewhere.node = Some("worker-2".into());
        let mut cache = pod("cache-0", "cache", "StatefulSet");
        cache.empty_dir = true;
        let mut primary = pod("postgres-7d9f8c6b5-abcde", "postgres", "Deployment");
        primary.labels.insert("role".into(), "primary".into());
        let pods = vec![
            primary,
            db_elsewhere,
            pod("log-shipper-x7k2p", "log-shipper", "DaemonSet"),
            pod("debug-shell", "debug", ""),
            cache,
        ];
        let facts = ClusterFacts {
            nodes: [("worker-1".to_string(), false)].into(),
            node_pods: pods
                .iter()
                .filter(|p| p.node.as_deref() == Some("worker-1"))
                .cloned()
                .collect(),
            all_pods: pods,
            pdbs: vec![PdbInfo {
                pdb: PodRef {
                    namespace: "shop".into(),
                    name: "postgres".into(),
                },
                selector: Some(
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                        match_labels: Some([("app".to_string(), "postgres".to_string())].into()),
                        ..Default::default()
                    },
                ),
                empty_selector: None,
                rule: "minAvailable: 2".into(),
                disruptions_allowed: 0,
                current_healthy: 1,
                desired_healthy: 2,
                expected_pods: 2,
            }],
            daemonsets: [("shop".to_string(), "log-shipper-1".to_string())].into(),
        };
        let request = Request {
            nodes: vec!["worker-1".into()],
            max_unavailable: 1,
            primary: Some(kastellan_drain::plan::PrimaryMarker {
                key: "role".into(),
                value: Some("primary".into()),
            }),
            ..Default::default()
        };
        let plan = kastellan_drain::plan::plan(&facts, &request, "policy/v1");
        let mut out = String::new();
        PlanView {
            plan: &plan,
            dry_run: true,
        }
        .render(&mut out, &Style::plain());
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH), "{out}");
        insta::assert_snapshot!("drain_plan", out);
    }

    #[test]
    fn wraps_at_80_columns_with_a_hanging_indent() {
        let mut out = String::new();
        let text = "word ".repeat(40);
        wrap(&mut out, "  BLOCKS ", 9, &text);
        assert!(out.lines().count() > 2);
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH), "{out}");
        assert!(out.lines().skip(1).all(|l| l.starts_with("         word")));
        assert!(fit(&"x".repeat(200)).chars().count() < WIDTH);
    }
}

//! `kastellan etcd defrag` and `etcd alarm list|disarm`.
//!
//! JSON of `defrag`: `outcome` (`done`, `dryRun`, `stopped`), `members` in the order
//! they were (or would be) defragmented, each with `id`, `name`, `role`, `endpoint`,
//! `dbSizeBefore`, `dbSizeInUseBefore`, `dbSizeAfter`, `dbSizeInUseAfter`, `seconds`
//! (the last three null in a dry run), `skipped` (learners), `stoppedBecause`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kastellan_etcd::Cluster;
use kastellan_etcd::membership::{self, Change, MemberState, View};
use kastellan_printer::{Printer, Report, Style, Table, wrap};
use serde::Serialize;

use super::human_bytes;
use super::members::{AlarmRow, alarm_rows, connect};
use crate::Outcome;
use crate::cli::{AlarmDisarmArgs, EtcdDefragArgs, EtcdMembersArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
enum DefragOutcome {
    Done,
    DryRun,
    Stopped,
}

/// One member's defragmentation.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Defragmented {
    id: String,
    name: String,
    role: &'static str,
    endpoint: String,
    db_size_before: i64,
    db_size_in_use_before: i64,
    db_size_after: Option<i64>,
    db_size_in_use_after: Option<i64>,
    seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Skipped {
    name: String,
    reason: String,
}

/// The document `etcd defrag` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DefragReport {
    outcome: DefragOutcome,
    members: Vec<Defragmented>,
    skipped: Vec<Skipped>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stopped_because: Vec<String>,
}

fn size(n: i64) -> String {
    human_bytes(n.max(0) as u64)
}

impl Report for DefragReport {
    fn render(&self, out: &mut String, style: &Style) {
        let mut t = Table::new(["#", "MEMBER", "ROLE", "BEFORE", "IN USE", "AFTER", "TIME"]);
        for (i, d) in self.members.iter().enumerate() {
            t.row([
                (i + 1).to_string(),
                d.name.clone(),
                d.role.to_string(),
                size(d.db_size_before),
                size(d.db_size_in_use_before),
                d.db_size_after.map_or_else(|| "-".to_string(), size),
                d.seconds
                    .map_or_else(|| "-".to_string(), |s| format!("{s:.1}s")),
            ]);
        }
        if !self.members.is_empty() {
            t.render_into(out, style);
            out.push('\n');
        }
        for s in &self.skipped {
            wrap(
                out,
                "",
                2,
                &format!("skipped {}: {}", s.name, s.reason),
                style.width,
            );
        }
        let line = match self.outcome {
            DefragOutcome::Done => style.good(&format!(
                "defragmented {} member{}, followers first, the leader last",
                self.members.len(),
                if self.members.len() == 1 { "" } else { "s" }
            )),
            DefragOutcome::DryRun => format!(
                "dry run, nothing changed: {} member{} would be defragmented in this order",
                self.members.len(),
                if self.members.len() == 1 { "" } else { "s" }
            ),
            DefragOutcome::Stopped => style.bad(&format!(
                "stopped after {} member{}: the cluster is not healthy",
                self.members.len(),
                if self.members.len() == 1 { "" } else { "s" }
            )),
        };
        wrap(out, "", 2, &line, style.width);
        for why in &self.stopped_because {
            wrap(out, "  ", 4, why, style.width);
        }
    }
}

fn role(m: &MemberState) -> &'static str {
    if m.leader { "leader" } else { "follower" }
}

/// The view once the cluster is healthy, or the reasons it stayed unhealthy until the
/// deadline.
async fn healthy_view(
    cluster: &Cluster,
    wait: Duration,
) -> Result<std::result::Result<View, Vec<String>>> {
    let deadline = Instant::now() + wait;
    loop {
        let view = cluster.view().await?;
        let why = membership::cluster_unhealthy(&view);
        if why.is_empty() {
            return Ok(Ok(view));
        }
        if Instant::now() >= deadline {
            return Ok(Err(why));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `kastellan etcd defrag`.
pub(super) fn defrag(args: &EtcdDefragArgs, printer: &Printer) -> Result<Outcome> {
    let rt = crate::commands::runtime()?;
    let (cluster, _) = connect(&args.etcd)?;
    let wait = Duration::from_secs(args.wait_healthy);
    let long = Duration::from_secs(args.defrag_timeout.max(1));
    rt.block_on(async {
        let mut report = DefragReport {
            outcome: DefragOutcome::Done,
            members: Vec::new(),
            skipped: Vec::new(),
            stopped_because: Vec::new(),
        };
        let first = if args.dry_run {
            cluster.view().await?
        } else {
            match healthy_view(&cluster, wait).await? {
                Ok(v) => v,
                Err(why) => {
                    report.outcome = DefragOutcome::Stopped;
                    report.stopped_because = why;
                    printer.report(&report)?;
                    return Ok(Outcome::Unhealthy);
                }
            }
        };
        report.skipped = first
            .members
            .iter()
            .filter(|m| m.learner)
            .map(|m| Skipped {
                name: m.label(),
                reason:
                    "a learner (etcd does not defragment learners; run again once it is promoted)"
                        .to_string(),
            })
            .collect();
        let entry = |m: &MemberState| Defragmented {
            id: format!("{:x}", m.id),
            name: m.label(),
            role: role(m),
            endpoint: m.endpoint.clone().unwrap_or_default(),
            db_size_before: m.status.as_ref().map_or(0, |s| s.db_size),
            db_size_in_use_before: m.status.as_ref().map_or(0, |s| s.db_size_in_use),
            db_size_after: None,
            db_size_in_use_after: None,
            seconds: None,
        };
        if args.dry_run {
            let mut done = Vec::new();
            while let Some(m) = membership::next_to_defragment(&first, &done) {
                done.push(m.id);
                report.members.push(entry(m));
            }
            let why = membership::cluster_unhealthy(&first);
            report.outcome = DefragOutcome::DryRun;
            report.stopped_because = why
                .into_iter()
                .map(|w| format!("now: {w} (a run would wait for health)"))
                .collect();
            printer.report(&report)?;
            return Ok(Outcome::Ok);
        }
        let total = first.members.iter().filter(|m| !m.learner).count();
        let mut done: Vec<u64> = Vec::new();
        let mut view = first;
        while let Some(m) = membership::next_to_defragment(&view, &done).cloned() {
            let Some(endpoint) = m.endpoint.clone() else {
                bail!("member {} answered at no endpoint", m.label());
            };
            let mut e = entry(&m);
            printer.note(format!(
                "defragmenting {} ({}, {} of {total}), {} at {endpoint}",
                e.name,
                e.role,
                done.len() + 1,
                size(e.db_size_before)
            ));
            let started = Instant::now();
            cluster
                .apply(
                    &Change::Defragment {
                        id: m.id,
                        name: m.label(),
                        endpoint: endpoint.clone(),
                    },
                    &endpoint,
                    long,
                )
                .await?;
            e.seconds = Some(started.elapsed().as_secs_f64());
            let after = cluster
                .connector()
                .connect(&endpoint)
                .await?
                .status()
                .await?;
            e.db_size_after = Some(after.db_size);
            e.db_size_in_use_after = Some(after.db_size_in_use);
            printer.note(format!(
                "  {}: {} -> {} in {:.1}s",
                e.name,
                size(e.db_size_before),
                size(after.db_size),
                e.seconds.unwrap_or_default()
            ));
            report.members.push(e);
            done.push(m.id);
            match healthy_view(&cluster, wait).await? {
                Ok(v) => view = v,
                Err(why) => {
                    if membership::next_to_defragment(&view, &done).is_none() {
                        // The last one is done; say the state it left anyway.
                        report.stopped_because = why;
                        break;
                    }
                    report.outcome = DefragOutcome::Stopped;
                    report.stopped_because = why;
                    printer.report(&report)?;
                    return Ok(Outcome::Unhealthy);
                }
            }
        }
        let unhealthy_after = !report.stopped_because.is_empty();
        printer.report(&report)?;
        Ok(if unhealthy_after {
            Outcome::Unhealthy
        } else {
            Outcome::Ok
        })
    })
}

/// The document `etcd alarm list|disarm` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AlarmReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<bool>,
    alarms: Vec<AlarmRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    disarmed: Vec<AlarmRow>,
    db_sizes: Vec<DbSize>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DbSize {
    member: String,
    db_size: Option<i64>,
    db_size_in_use: Option<i64>,
}

impl Report for AlarmReport {
    fn render(&self, out: &mut String, style: &Style) {
        let verb = if self.dry_run == Some(true) {
            "would disarm"
        } else {
            "disarmed"
        };
        for a in &self.disarmed {
            let _ = writeln!(out, "{verb} {} of {}", a.alarm, a.member);
        }
        if self.alarms.is_empty() {
            let _ = writeln!(out, "{}", style.good("no alarm active"));
        } else {
            let mut t = Table::new(["ALARM", "MEMBER", "ID"]);
            for a in &self.alarms {
                t.row([
                    style.bad(&a.alarm.to_string()),
                    a.member.clone(),
                    a.member_id.clone(),
                ]);
            }
            t.render_into(out, style);
        }
        out.push('\n');
        let sizes: Vec<String> = self
            .db_sizes
            .iter()
            .map(|d| {
                format!(
                    "{} {} ({} in use)",
                    d.member,
                    d.db_size.map_or_else(|| "?".to_string(), size),
                    d.db_size_in_use.map_or_else(|| "?".to_string(), size)
                )
            })
            .collect();
        wrap(out, "db sizes: ", 2, &sizes.join(", "), style.width);
    }
}

fn db_sizes(view: &View) -> Vec<DbSize> {
    view.members
        .iter()
        .map(|m| DbSize {
            member: m.label(),
            db_size: m.status.as_ref().map(|s| s.db_size),
            db_size_in_use: m.status.as_ref().map(|s| s.db_size_in_use),
        })
        .collect()
}

/// `kastellan etcd alarm list`.
pub(super) fn alarm_list(args: &EtcdMembersArgs, printer: &Printer) -> Result<Outcome> {
    let rt = crate::commands::runtime()?;
    let (cluster, _) = connect(&args.etcd)?;
    let view = rt.block_on(cluster.view())?;
    let report = AlarmReport {
        dry_run: None,
        alarms: alarm_rows(&view, &view.alarms),
        disarmed: Vec::new(),
        db_sizes: db_sizes(&view),
    };
    printer.report(&report)?;
    Ok(if view.alarms.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Unhealthy
    })
}

/// `kastellan etcd alarm disarm`.
pub(super) fn alarm_disarm(args: &AlarmDisarmArgs, printer: &Printer) -> Result<Outcome> {
    let rt = crate::commands::runtime()?;
    let (cluster, preferred) = connect(&args.etcd)?;
    let view = rt.block_on(cluster.view())?;
    let active = alarm_rows(&view, &view.alarms);
    if args.dry_run || view.alarms.is_empty() {
        printer.report(&AlarmReport {
            dry_run: Some(args.dry_run),
            alarms: active.clone(),
            disarmed: if args.dry_run { active } else { Vec::new() },
            db_sizes: db_sizes(&view),
        })?;
        return Ok(Outcome::Ok);
    }
    let Some(through) = view.through(&preferred, None) else {
        bail!("no healthy voting member answers: alarms cannot be cleared");
    };
    let mut left = view.alarms.clone();
    for a in &view.alarms {
        let change = Change::Disarm {
            member_id: a.member_id,
            member: view
                .member(a.member_id)
                .map_or_else(|| format!("{:x}", a.member_id), MemberState::label),
            alarm: a.kind,
        };
        printer.note(change.describe());
        let applied =
            rt.block_on(cluster.apply(&change, &through.endpoint, Duration::from_secs(30)))?;
        left = applied.alarms.unwrap_or_default();
    }
    let report = AlarmReport {
        dry_run: Some(false),
        alarms: alarm_rows(&view, &left),
        disarmed: active,
        db_sizes: db_sizes(&view),
    };
    printer.report(&report)?;
    Ok(if left.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Unhealthy
    })
}

//! `kastellan etcd members` and `etcd member add|promote|remove`.
//!
//! The decisions are `kastellan_etcd::membership`'s (pure); this module gathers the view,
//! matches members with control-plane Nodes, makes the one change through the executor
//! of that crate (`Cluster::apply`) and renders reports.
//!
//! JSON of `members`: `members` (each: `id` in hex, `name`, `peerUrls`, `clientUrls`,
//! `learner`, `leader`, `health`, `problem`, `endpoint`, `status` with etcd's figures
//! under etcd's names (`memberId` and `leader` in hex), `node`), `leader`, `tolerance`, `alarms`, `controlPlanes` (`checked`, `reason`,
//! `unmatched`). JSON of a change: `outcome` (`done`, `dryRun`, `refused`), `plan`
//! (`change`, `through`, `before`, `after`, `refusals`), `endpointsNote`, `members`
//! after the change, `join` (for an added member) and `next` (what to do on the node).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kastellan_etcd::membership::{
    self, Change, Health, JoinSettings, MemberPlan, MemberState, Refusal, Tolerance, View,
};
use kastellan_etcd::{Alarm, Cluster, Member};
use kastellan_printer::{Printer, Report, Style, Table, wrap};
use serde::Serialize;

use super::{discover, human_bytes, timeouts};
use crate::Outcome;
use crate::cli::{
    EtcdConnectArgs, EtcdMembersArgs, GlobalArgs, MemberAddArgs, MemberPromoteArgs,
    MemberRemoveArgs,
};

/// The cluster the flags point at, and the endpoints the user gave (preferred for
/// changes).
pub(super) fn connect(args: &EtcdConnectArgs) -> Result<(Cluster, Vec<String>)> {
    let default_manifests = Path::new(kastellan_etcd::discovery::DEFAULT_MANIFESTS_DIR);
    let found = discover(args, default_manifests)?;
    let preferred = found.target.endpoints.clone();
    Ok((Cluster::new(found.target, timeouts(args))?, preferred))
}

/// A control-plane Node: its name and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ControlPlane {
    name: String,
    addresses: Vec<String>,
}

/// Whether control-plane Nodes could be matched, and which have no member.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ControlPlanes {
    checked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    unmatched: Vec<String>,
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    }
}

/// The Node a member belongs to: same name (kubeadm names the member after its node),
/// else a Node address equal to the host of one of its peer or client URLs.
fn node_of(member: &MemberState, nodes: &[ControlPlane]) -> Option<String> {
    if let Some(n) = nodes.iter().find(|n| n.name == member.name) {
        return Some(n.name.clone());
    }
    let hosts: Vec<&str> = member
        .peer_urls
        .iter()
        .chain(member.client_urls.iter())
        .map(|u| host_of(u))
        .filter(|h| *h != "127.0.0.1" && *h != "localhost" && *h != "::1")
        .collect();
    nodes
        .iter()
        .find(|n| n.addresses.iter().any(|a| hosts.contains(&a.as_str())))
        .map(|n| n.name.clone())
}

/// The control-plane Nodes (label `node-role.kubernetes.io/control-plane` or the legacy
/// `master`) through the kubeconfig, or why they could not be had.
async fn control_planes(
    global: &GlobalArgs,
    manifests: &Path,
) -> std::result::Result<Vec<ControlPlane>, String> {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, ListParams};
    let fallback = manifests.parent().map(|p| p.join("admin.conf"));
    let fallback = fallback.filter(|p| p.is_file());
    let kube = crate::commands::kube::client(global, fallback.as_deref(), Duration::from_secs(10))
        .await
        .map_err(|e| format!("{e:#}"))?;
    let nodes: Api<Node> = Api::all(kube.client);
    let mut out: Vec<ControlPlane> = Vec::new();
    for label in [
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    ] {
        let list = tokio::time::timeout(
            Duration::from_secs(15),
            nodes.list(&ListParams::default().labels(label)),
        )
        .await
        .map_err(|_| "the API server did not answer in 15 s".to_string())?
        .map_err(|e| format!("listing Nodes: {e}"))?;
        for n in list.items {
            let name = n.metadata.name.clone().unwrap_or_default();
            if out.iter().any(|c| c.name == name) {
                continue;
            }
            let addresses = n
                .status
                .and_then(|s| s.addresses)
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.address)
                .collect();
            out.push(ControlPlane { name, addresses });
        }
    }
    Ok(out)
}

/// One row of `etcd members`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberRow {
    #[serde(flatten)]
    state: MemberState,
    node: Option<String>,
}

/// The document `etcd members` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MembersReport {
    members: Vec<MemberRow>,
    leader: Option<String>,
    tolerance: Tolerance,
    alarms: Vec<AlarmRow>,
    control_planes: ControlPlanes,
}

/// An alarm with the member's name.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AlarmRow {
    pub(super) member_id: String,
    pub(super) member: String,
    pub(super) alarm: kastellan_etcd::AlarmKind,
}

pub(super) fn alarm_rows(view: &View, alarms: &[Alarm]) -> Vec<AlarmRow> {
    alarms
        .iter()
        .map(|a| AlarmRow {
            member_id: format!("{:x}", a.member_id),
            member: view
                .member(a.member_id)
                .map_or_else(|| format!("{:x}", a.member_id), MemberState::label),
            alarm: a.kind,
        })
        .collect()
}

fn role(m: &MemberState) -> &'static str {
    if m.learner {
        "learner"
    } else if m.leader {
        "leader"
    } else {
        "follower"
    }
}

fn health_cell(m: &MemberState, style: &Style) -> String {
    match m.health {
        Health::Healthy => style.good("healthy"),
        Health::Unhealthy => style.bad("unhealthy"),
        Health::NotStarted => style.warn("unstarted"),
    }
}

impl Report for MembersReport {
    fn render(&self, out: &mut String, style: &Style) {
        let mut t = Table::new([
            "NAME",
            "ID",
            "HEALTH",
            "ROLE",
            "RAFT INDEX",
            "DB SIZE",
            "VERSION",
            "NODE",
        ]);
        let dash = || "-".to_string();
        for r in &self.members {
            let m = &r.state;
            t.row([
                if m.name.is_empty() {
                    "-".to_string()
                } else {
                    m.name.clone()
                },
                format!("{:x}", m.id),
                health_cell(m, style),
                role(m).to_string(),
                m.status
                    .as_ref()
                    .map_or_else(dash, |s| s.raft_index.to_string()),
                m.status
                    .as_ref()
                    .map_or_else(dash, |s| human_bytes(s.db_size.max(0) as u64)),
                m.status.as_ref().map_or_else(dash, |s| s.version.clone()),
                r.node.clone().unwrap_or_else(|| {
                    if self.control_planes.checked {
                        "none".to_string()
                    } else {
                        "?".to_string()
                    }
                }),
            ]);
        }
        t.render_into(out, style);
        out.push('\n');
        for r in &self.members {
            let m = &r.state;
            let urls = format!(
                "peer {} client {}",
                join_or_dash(&m.peer_urls),
                join_or_dash(&m.client_urls)
            );
            wrap(out, &format!("{}: ", m.label()), 2, &urls, style.width);
        }
        let problems: Vec<&MemberState> = self
            .members
            .iter()
            .map(|r| &r.state)
            .filter(|m| m.problem.is_some())
            .collect();
        if !problems.is_empty() {
            out.push('\n');
            for m in problems {
                wrap(
                    out,
                    &format!("{} {}: ", style.bad("✗"), m.label()),
                    4,
                    m.problem.as_deref().unwrap_or_default(),
                    style.width,
                );
            }
        }
        out.push('\n');
        let leader = self.leader.as_deref().unwrap_or("none");
        wrap(
            out,
            "etcd: ",
            2,
            &format!("{}, leader {leader}", self.tolerance),
            style.width,
        );
        for a in &self.alarms {
            let _ = writeln!(
                out,
                "{}",
                style.bad(&format!("alarm {} raised by {}", a.alarm, a.member))
            );
        }
        if self.control_planes.checked {
            if !self.control_planes.unmatched.is_empty() {
                wrap(
                    out,
                    "",
                    2,
                    &format!(
                        "control-plane nodes without an etcd member: {} (external etcd, or a member missing)",
                        self.control_planes.unmatched.join(", ")
                    ),
                    style.width,
                );
            }
        } else {
            wrap(
                out,
                "",
                2,
                &format!(
                    "control-plane nodes not matched: no Kubernetes API ({})",
                    self.control_planes.reason.as_deref().unwrap_or("?")
                ),
                style.width,
            );
        }
    }
}

fn join_or_dash(urls: &[String]) -> String {
    if urls.is_empty() {
        "-".to_string()
    } else {
        urls.join(",")
    }
}

/// `kastellan etcd members`.
pub(super) fn members(
    args: &EtcdMembersArgs,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<Outcome> {
    let rt = crate::commands::runtime()?;
    let (cluster, _) = connect(&args.etcd)?;
    let manifests = args
        .etcd
        .manifests_dir
        .clone()
        .unwrap_or_else(|| kastellan_etcd::discovery::DEFAULT_MANIFESTS_DIR.into());
    let (view, nodes) = rt.block_on(async {
        let (view, nodes) = tokio::join!(cluster.view(), control_planes(global, &manifests));
        (view, nodes)
    });
    let view = view?;
    let (rows, control_planes) = match nodes {
        Ok(nodes) => {
            let rows: Vec<MemberRow> = view
                .members
                .iter()
                .map(|m| MemberRow {
                    node: node_of(m, &nodes),
                    state: m.clone(),
                })
                .collect();
            let unmatched = nodes
                .iter()
                .filter(|n| !rows.iter().any(|r| r.node.as_deref() == Some(&n.name)))
                .map(|n| n.name.clone())
                .collect();
            (
                rows,
                ControlPlanes {
                    checked: true,
                    reason: None,
                    unmatched,
                },
            )
        }
        Err(reason) => (
            view.members
                .iter()
                .map(|m| MemberRow {
                    node: None,
                    state: m.clone(),
                })
                .collect(),
            ControlPlanes {
                checked: false,
                reason: Some(reason),
                unmatched: Vec::new(),
            },
        ),
    };
    let report = MembersReport {
        leader: view.leader_member().map(MemberState::label),
        tolerance: view.tolerance(),
        alarms: alarm_rows(&view, &view.alarms),
        members: rows,
        control_planes,
    };
    printer.report(&report)?;
    let all_healthy = view.members.iter().all(MemberState::healthy);
    Ok(if all_healthy && view.alarms.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Unhealthy
    })
}

/// A member of the list etcd answered a change with (the id in hex, as everywhere).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedMember {
    id: String,
    name: String,
    peer_urls: Vec<String>,
    client_urls: Vec<String>,
    learner: bool,
}

impl From<&Member> for ListedMember {
    fn from(m: &Member) -> Self {
        ListedMember {
            id: m.id_hex(),
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: m.client_urls.clone(),
            learner: m.is_learner,
        }
    }
}

/// What became of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
enum ChangeOutcome {
    Done,
    DryRun,
    Refused,
}

/// The document a member change prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangeReport {
    outcome: ChangeOutcome,
    plan: MemberPlan,
    forced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoints_note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<Vec<ListedMember>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    join: Option<JoinSettings>,
    /// The member removed led, and leadership was handed to this one first.
    #[serde(skip_serializing_if = "Option::is_none")]
    leader_moved_to: Option<String>,
    next: Vec<String>,
}

impl Report for ChangeReport {
    fn render(&self, out: &mut String, style: &Style) {
        let p = &self.plan;
        let what = p.change.describe();
        let head = match self.outcome {
            ChangeOutcome::Done => style.good(&format!("done: {what}")),
            ChangeOutcome::DryRun => format!("dry run, nothing changed: would {what}"),
            ChangeOutcome::Refused => style.bad(&format!("refused, nothing changed: {what}")),
        };
        wrap(out, "", 2, &head, style.width);
        if let Some(t) = &p.through {
            wrap(
                out,
                "",
                2,
                &format!("through member {} at {}", t.name, t.endpoint),
                style.width,
            );
        }
        if p.moves_leader
            && let Some(t) = &p.through
        {
            let line = match &self.leader_moved_to {
                Some(to) => format!("it led: leadership was handed to {to} first (no election)"),
                None => format!(
                    "it leads: leadership {} to {} first, so that no election follows",
                    if self.outcome == ChangeOutcome::Done {
                        "had already moved"
                    } else {
                        "moves"
                    },
                    t.name
                ),
            };
            wrap(out, "", 2, &line, style.width);
        }
        if let Some(n) = &self.endpoints_note {
            wrap(out, "", 2, n, style.width);
        }
        wrap(
            out,
            "fault tolerance now:   ",
            2,
            &p.before.to_string(),
            style.width,
        );
        wrap(
            out,
            "fault tolerance after: ",
            2,
            &p.after.to_string(),
            style.width,
        );
        for r in &p.refusals {
            let hint = if r.overridable() {
                if self.forced {
                    " (gone past with --force)"
                } else {
                    " (--force goes past this)"
                }
            } else {
                ""
            };
            let line = format!("{r}{hint}");
            let first = if self.forced && r.overridable() {
                style.warn("warning: ")
            } else {
                style.bad("refused: ")
            };
            wrap(out, &first, 2, &line, style.width);
        }
        if !self.next.is_empty() && self.outcome != ChangeOutcome::Refused {
            out.push('\n');
            let _ = writeln!(
                out,
                "{}",
                if self.outcome == ChangeOutcome::Done {
                    "next:"
                } else {
                    "then:"
                }
            );
            for n in &self.next {
                wrap(out, "  ", 4, n, style.width);
            }
        }
    }
}

/// The note when the endpoints given reach the member a change is about: the change
/// goes through another one, and the user is told.
fn endpoints_note(
    view: &View,
    preferred: &[String],
    target: u64,
    through: Option<&str>,
) -> Option<String> {
    let m = view.member(target)?;
    let first = view.reached_by(preferred)?;
    (first.id == m.id).then(|| match through {
        Some(t) => format!(
            "the endpoints given reach {}, the member this is about: the request goes through {t} instead",
            m.label()
        ),
        None => format!(
            "the endpoints given reach {}, the member this is about, and no other healthy voting member answers",
            m.label()
        ),
    })
}

fn data_dir_hint() -> &'static str {
    "its data dir (--data-dir; kubeadm: /var/lib/etcd)"
}

/// `kastellan etcd member remove`.
pub(super) fn remove(args: &MemberRemoveArgs, printer: &Printer) -> Result<Outcome> {
    let rt = crate::commands::runtime()?;
    let (cluster, preferred) = connect(&args.etcd)?;
    let view = rt.block_on(cluster.view())?;
    let plan = membership::plan_remove(&view, &args.member, &preferred)?;
    let Change::Remove { id, name } = &plan.change else {
        bail!("internal: a removal planned as {:?}", plan.change)
    };
    let target = view.member(*id).cloned();
    let note = endpoints_note(
        &view,
        &preferred,
        *id,
        plan.through.as_ref().map(|t| t.name.as_str()),
    );
    let peer = target
        .as_ref()
        .map(|m| m.peer_urls.join(","))
        .unwrap_or_default();
    let next = vec![
        format!(
            "on {name}'s node, stop its etcd for good: move etcd.yaml out of /etc/kubernetes/manifests (the kubelet would restart it), or stop its unit"
        ),
        format!(
            "empty {} before it ever joins again: a removed member cannot come back on its old data",
            data_dir_hint()
        ),
        format!(
            "to add it back: kastellan etcd member add {name} --peer-urls={peer} (a learner), start it as printed, then kastellan etcd member promote {name}"
        ),
    ];
    let mut report = ChangeReport {
        outcome: ChangeOutcome::DryRun,
        forced: args.force,
        endpoints_note: note,
        members: None,
        join: None,
        leader_moved_to: None,
        next,
        plan,
    };
    finish(
        &rt,
        &cluster,
        &mut report,
        args.dry_run,
        args.force,
        printer,
    )
}

/// Applies the plan unless refused or a dry run, and prints the report.
fn finish(
    rt: &tokio::runtime::Runtime,
    cluster: &Cluster,
    report: &mut ChangeReport,
    dry_run: bool,
    force: bool,
    printer: &Printer,
) -> Result<Outcome> {
    if !report.plan.allowed(force) {
        report.outcome = ChangeOutcome::Refused;
        printer.report(report)?;
        return Ok(Outcome::Unhealthy);
    }
    if dry_run {
        report.outcome = ChangeOutcome::DryRun;
        printer.report(report)?;
        return Ok(Outcome::Ok);
    }
    let Some(through) = report.plan.through.clone() else {
        bail!("no healthy voting member to send the change through")
    };
    let applied = rt
        .block_on(cluster.apply(
            &report.plan.change,
            &through.endpoint,
            Duration::from_secs(60),
        ))
        .map_err(|e| {
            let text = e.to_string();
            let err = anyhow::Error::new(e);
            if text.contains("unhealthy cluster") {
                err.context(
                    "etcd refused: it changes the membership only once the voting members have \
                     been connected to each other for 5 seconds, and removes one only when a \
                     quorum stays connected (--strict-reconfig-check); wait a few seconds and \
                     check `kastellan etcd members`",
                )
            } else if text.contains("not enough started members") {
                err.context(
                    "etcd refused: a member added earlier has not started yet; start it or \
                     remove it first",
                )
            } else {
                err
            }
        })?;
    let change = report.plan.change.clone();
    if let (Some(added), Some(members), Change::Add { name, .. }) =
        (&applied.added, &applied.members, &change)
    {
        report.join = Some(membership::join_settings(members, added.id, name));
        report.plan.change = Change::Add {
            name: name.clone(),
            peer_urls: added.peer_urls.clone(),
            learner: added.is_learner,
        };
        report.next = add_next_steps(report.join.as_ref(), name, added.is_learner);
    }
    report.leader_moved_to = applied.leader_moved_to;
    report.members = applied
        .members
        .map(|list| list.iter().map(ListedMember::from).collect());
    report.outcome = ChangeOutcome::Done;
    printer.report(report)?;
    Ok(Outcome::Ok)
}

fn add_next_steps(join: Option<&JoinSettings>, name: &str, learner: bool) -> Vec<String> {
    let mut next = Vec::new();
    if let Some(j) = join {
        next.push(format!(
            "on the new node, start etcd (kubeadm: the command of /etc/kubernetes/manifests/etcd.yaml) with --name={} --initial-advertise-peer-urls={} --initial-cluster={} --initial-cluster-state={}",
            j.name, j.initial_advertise_peer_urls, j.initial_cluster, j.initial_cluster_state
        ));
    }
    next.push(format!(
        "{} must be empty (or absent) when it starts",
        data_dir_hint()
    ));
    if learner {
        next.push(format!(
            "once it runs and has caught up: kastellan etcd member promote {name} (--wait SECONDS waits for it)"
        ));
    }
    next
}

/// `kastellan etcd member add`.
pub(super) fn add(args: &MemberAddArgs, printer: &Printer) -> Result<Outcome> {
    for u in &args.peer_urls {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            bail!("--peer-urls: '{u}' is not an http:// or https:// URL");
        }
    }
    let rt = crate::commands::runtime()?;
    let (cluster, preferred) = connect(&args.etcd)?;
    let view = rt.block_on(cluster.view())?;
    let plan = membership::plan_add(&view, &args.name, &args.peer_urls, args.learner, &preferred);
    // What the join would look like: the members now and the new one.
    let mut would: Vec<Member> = view
        .members
        .iter()
        .map(|m| Member {
            id: m.id,
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: m.client_urls.clone(),
            is_learner: m.learner,
        })
        .collect();
    would.push(Member {
        id: 0,
        name: String::new(),
        peer_urls: args.peer_urls.clone(),
        client_urls: Vec::new(),
        is_learner: args.learner,
    });
    let join = membership::join_settings(&would, 0, &args.name);
    let mut report = ChangeReport {
        outcome: ChangeOutcome::DryRun,
        forced: args.force,
        endpoints_note: None,
        members: None,
        leader_moved_to: None,
        next: add_next_steps(Some(&join), &args.name, args.learner),
        join: Some(join),
        plan,
    };
    finish(
        &rt,
        &cluster,
        &mut report,
        args.dry_run,
        args.force,
        printer,
    )
}

/// `kastellan etcd member promote`, waiting up to `--wait` for the learner to run and
/// catch up.
pub(super) fn promote(args: &MemberPromoteArgs, printer: &Printer) -> Result<Outcome> {
    let rt = crate::commands::runtime()?;
    let (cluster, preferred) = connect(&args.etcd)?;
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    loop {
        let view = rt.block_on(cluster.view())?;
        let plan = match membership::plan_promote(&view, &args.member, &preferred) {
            Ok(plan) => plan,
            // A learner added by name has no name until it starts: wait for it.
            Err(kastellan_etcd::Error::UnknownMember { unstarted, .. })
                if !unstarted.is_empty() && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let waiting = !plan.refusals.is_empty()
            && plan.refusals.iter().all(|r| {
                matches!(
                    r,
                    Refusal::NotCaughtUp { .. }
                        | Refusal::LearnerNotRunning { .. }
                        | Refusal::NoLeader
                )
            });
        if waiting && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        let Change::Promote { id, name } = &plan.change else {
            bail!("internal: a promotion planned as {:?}", plan.change)
        };
        let note = endpoints_note(
            &view,
            &preferred,
            *id,
            plan.through.as_ref().map(|t| t.name.as_str()),
        );
        let mut next = vec![format!(
            "{name} votes now; its etcd needs no change (--initial-cluster-state=existing only matters at its first start)"
        )];
        let voting = plan.after.voting;
        if voting.is_multiple_of(2) {
            next.push(format!(
                "{voting} voting members are an even count: they tolerate no more failures than {}; add or remove one",
                voting - 1
            ));
        }
        let mut report = ChangeReport {
            outcome: ChangeOutcome::DryRun,
            forced: false,
            endpoints_note: note,
            members: None,
            join: None,
            leader_moved_to: None,
            next,
            plan,
        };
        match finish(&rt, &cluster, &mut report, args.dry_run, false, printer) {
            // etcd has the last word on "caught up": it may still refuse; wait on.
            Err(e)
                if Instant::now() < deadline
                    && format!("{e:#}").contains("in sync with leader") =>
            {
                std::thread::sleep(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(name: &str, peer: &str) -> MemberState {
        MemberState {
            id: 1,
            name: name.into(),
            peer_urls: vec![peer.into()],
            client_urls: vec![],
            learner: false,
            leader: false,
            health: Health::Healthy,
            problem: None,
            endpoint: None,
            status: None,
        }
    }

    #[test]
    fn members_match_nodes_by_name_then_address() {
        let nodes = vec![
            ControlPlane {
                name: "cp1".into(),
                addresses: vec!["10.77.0.11".into(), "cp1".into()],
            },
            ControlPlane {
                name: "cp2".into(),
                addresses: vec!["10.77.0.12".into(), "fd00::12".into()],
            },
        ];
        assert_eq!(
            node_of(&state("cp1", "https://10.77.0.99:2380"), &nodes).as_deref(),
            Some("cp1")
        );
        assert_eq!(
            node_of(&state("etcd-b", "https://10.77.0.12:2380"), &nodes).as_deref(),
            Some("cp2")
        );
        assert_eq!(
            node_of(&state("x", "https://[fd00::12]:2380"), &nodes).as_deref(),
            Some("cp2")
        );
        assert_eq!(node_of(&state("x", "https://127.0.0.1:2380"), &nodes), None);
        assert_eq!(host_of("https://10.0.0.1:2379/"), "10.0.0.1");
        assert_eq!(host_of("http://[::1]:2379"), "::1");
    }
}

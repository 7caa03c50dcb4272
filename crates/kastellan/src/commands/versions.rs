//! `kastellan versions` and `kastellan upgrade check`: the facts of `kastellan-upgrade`,
//! judged by the policies of `kastellan-policy`.
//!
//! JSON (`-o json`) of `versions`: `{found: [{component, instance, version, reported,
//! source, installed}], nodes: [...], support: [{minor, components, support,
//! endOfLife}], problems, newestReleased}`; of `upgrade check`: `{violations: [{rule,
//! statement, era, source, components}], checked}`.

use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use kastellan_policy::skew::{self, Violation};
use kastellan_policy::support::Support;
use kastellan_printer::{Printer, Report, Style, Table};
use kastellan_upgrade::Versions;
use kastellan_upgrade::packages::{self, NodePackages};
use kastellan_upgrade::plan::{Severity, Step, UpgradePlan};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{GlobalArgs, UpgradePlanArgs, VersionsArgs};
use crate::commands::node_access;

/// Runs `versions`.
pub fn versions(args: &VersionsArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let v = gather(args, global, printer)?;
    printer.report(&VersionsReport(&v))?;
    Ok(if v.past_end_of_life().is_empty() {
        Outcome::Ok
    } else {
        Outcome::Unhealthy
    })
}

/// Runs `upgrade check`.
pub fn check(args: &VersionsArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let v = gather(args, global, printer)?;
    let cluster = v.cluster();
    let violations = skew::check(&cluster);
    let report = CheckReport {
        violations: violations.iter().map(ViolationView::of).collect(),
        checked: cluster.components.len(),
        problems: v.problems.clone(),
    };
    printer.report(&report)?;
    Ok(if violations.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Unhealthy
    })
}

/// Runs `upgrade plan`.
pub fn plan(args: &UpgradePlanArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let plan = make_plan(
        &args.versions,
        &args.to,
        args.max_unavailable,
        global,
        printer,
    )?;
    let blocked = plan.blocked();
    printer.report(&PlanReport(&plan))?;
    Ok(if blocked {
        Outcome::Unhealthy
    } else {
        Outcome::Ok
    })
}

/// The upgrade plan to `to` (`--to`) from the cluster as it is now.
pub fn make_plan(
    versions: &VersionsArgs,
    to: &str,
    max_unavailable: usize,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<kastellan_upgrade::plan::UpgradePlan> {
    let to = kastellan_policy::Version::parse(to).with_context(|| format!("--to {to}"))?;
    let v = gather(versions, global, printer)?;
    let rt = super::runtime()?;
    let spinner = printer.spinner("reading nodes, budgets and deprecated API calls");
    let facts = rt.block_on(async {
        let kube = super::kube::client(global, None, super::kube::READ_TIMEOUT).await?;
        anyhow::Ok(kastellan_upgrade::facts::gather(&kube.config, &v).await?)
    });
    spinner.finish_and_clear();
    let mut facts = facts?;
    facts.health = Some(health(versions, global, printer)?);
    match stored_objects(versions, &facts, printer) {
        Ok(rows) => facts.stored = Some(rows),
        Err(why) => facts.stored_unread = Some(why),
    }
    facts.etcd_backup_room = etcd_backup_room(versions, &facts, printer);
    kastellan_upgrade::plan::plan(&facts, &to, max_unavailable).map_err(|e| match e {
        kastellan_upgrade::plan::PlanError::MaxUnavailable => {
            anyhow::anyhow!("--max-unavailable must be at least 1")
        }
        e => anyhow::anyhow!("no plan to {to}: {e}"),
    })
}

/// The versions the API shows, the nodes' packages when asked, the support windows.
fn gather(args: &VersionsArgs, global: &GlobalArgs, printer: &Printer) -> Result<Versions> {
    let rt = super::runtime()?;
    let spinner = printer.spinner("reading versions");
    let v = rt.block_on(async {
        let kube = super::kube::client(global, None, super::kube::READ_TIMEOUT).await?;
        let mut v = kastellan_upgrade::versions::discover(kube.config).await?;
        kastellan_upgrade::versions::add_etcd_status(&mut v, &args.etc_kubernetes).await;
        anyhow::Ok(v)
    });
    spinner.finish_and_clear();
    let mut v = v?;
    if args.packages {
        let nodes = node_packages(args, &v, printer)?;
        v.add_packages(nodes);
    }
    let today = args.date.unwrap_or_else(|| jiff::Zoned::now().date());
    v.add_support(today);
    Ok(v)
}

/// The cluster's health as `kastellan status` sees it (the nodes reached as `status`
/// reaches them: the lab, or ssh as `--inventory`/`--ssh-config` say), with the
/// certificates that end within 30 days.
fn health(
    versions: &VersionsArgs,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<kastellan_upgrade::plan::Health> {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        probe: crate::cli::ProbeArgs,
    }
    let mut probe = <Defaults as clap::Parser>::parse_from(["kastellan"]).probe;
    probe.ssh = versions.ssh.clone();
    let spinner = printer.spinner("checking the cluster's health");
    let rt = super::runtime()?;
    let report = rt.block_on(super::status::gather(&probe, global));
    spinner.finish_and_clear();
    let report = report?;
    Ok(kastellan_upgrade::plan::Health {
        healthy: report.verdict == kastellan_health::Verdict::Healthy,
        summary: report.summary.clone(),
        problems: report
            .checks
            .iter()
            .filter(|c| c.state != kastellan_health::State::Up)
            .map(|c| format!("{} {}: {}", c.node, c.component, c.detail))
            .collect(),
        etcd_tolerated: report.etcd.as_ref().map(|q| q.failures_tolerated),
        expiring: report
            .certificates
            .iter()
            .filter(|c| c.days_left < 30.0)
            .map(|c| kastellan_upgrade::plan::ExpiringCert {
                node: c.node.clone(),
                name: c.name.clone(),
                not_after: c.not_after.clone(),
                days_left: c.days_left.floor() as i64,
            })
            .collect(),
    })
}

/// etcd's objects by the apiVersion they are stored as: `kastellan etcd storage` run on
/// the first control plane over ssh (the lab's sshd when the lab is meant). `Err` says
/// why they were not read.
fn stored_objects(
    args: &VersionsArgs,
    facts: &kastellan_upgrade::plan::PlanFacts,
    printer: &Printer,
) -> std::result::Result<Vec<kastellan_upgrade::plan::StoredObjects>, String> {
    let lab = node_access::unconfigured(&args.ssh) && node_access::lab_ssh_up();
    if !lab && node_access::unconfigured(&args.ssh) {
        return Err("no node access: give --inventory or --ssh-config".into());
    }
    let reach = node_access::ssh(&args.ssh, lab).map_err(|e| format!("{e:#}"))?;
    let node = facts
        .nodes
        .iter()
        .find(|n| n.control_plane)
        .map(|n| n.name.clone())
        .ok_or("no control-plane node")?;
    let spinner = printer.spinner(&format!("{node}: objects stored in etcd"));
    let cmd = kastellan_access::NodeCommand::new([
        reach.kastellan.as_str(),
        "etcd",
        "storage",
        "-o",
        "json",
    ])
    .timeout(std::time::Duration::from_secs(120));
    let answer = reach.access.run(&node, &cmd);
    spinner.finish_and_clear();
    let out = answer.map_err(|e| format!("{node}: {e}"))?;
    if !out.success() {
        return Err(format!(
            "`kastellan etcd storage` on {node}: exit {}: {}",
            out.status,
            out.stderr_tail(2)
        ));
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("`kastellan etcd storage` on {node}: {e}"))?;
    Ok(doc["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(kastellan_upgrade::plan::StoredObjects {
                resource: r["resource"].as_str()?.to_string(),
                api_version: r["apiVersion"].as_str()?.to_string(),
                kind: r["kind"].as_str().map(str::to_string),
                count: r["count"].as_u64()?,
            })
        })
        .collect())
}

/// Prints, on a control plane, etcd's data dir (its manifest's `--data-dir`), its size,
/// the bytes available on the filesystem of `/etc/kubernetes`, the two filesystems'
/// device numbers, and the count and bytes of kubeadm's backups in
/// `/etc/kubernetes/tmp`; exits 3 when the node runs no local etcd. Reads only. `$1`
/// is the root the paths are under (empty on a node; a test's directory in tests).
const ETCD_ROOM_SCRIPT: &str = r#"r=$1
d=$(sed -n 's/^[[:space:]]*- --data-dir=//p' "$r/etc/kubernetes/manifests/etcd.yaml" 2>/dev/null | head -n 1)
[ -n "$d" ] && [ -d "$r$d" ] || exit 3
data=$(du -sxB1 "$r$d" | cut -f1)
free=$(df -PB1 "$r/etc/kubernetes" | awk 'NR==2 {print $4}')
old=0
oldb=0
for b in "$r"/etc/kubernetes/tmp/kubeadm-backup-*; do
  [ -e "$b" ] || continue
  old=$((old + 1))
  oldb=$((oldb + $(du -sxB1 "$b" | cut -f1)))
done
echo "$data $free $(stat -c %d "$r/etc/kubernetes") $(stat -c %d "$r$d") $old $oldb $d""#;

/// Each control plane's room for kubeadm's copy of etcd's data (read over node access;
/// nothing without it, and a node that cannot be read is warned about and left out).
fn etcd_backup_room(
    args: &VersionsArgs,
    facts: &kastellan_upgrade::plan::PlanFacts,
    printer: &Printer,
) -> Vec<kastellan_upgrade::plan::EtcdBackupRoom> {
    let lab = node_access::unconfigured(&args.ssh) && node_access::lab_ssh_up();
    if !lab && node_access::unconfigured(&args.ssh) {
        return Vec::new();
    }
    let reach = match node_access::ssh(&args.ssh, lab) {
        Ok(r) => r,
        Err(e) => {
            printer.warn(format!(
                "room for kubeadm's copy of etcd not checked: {e:#}"
            ));
            return Vec::new();
        }
    };
    let mut rows = Vec::new();
    for node in facts.nodes.iter().filter(|n| n.control_plane) {
        let spinner = printer.spinner(&format!("{}: room for kubeadm's etcd copy", node.name));
        let cmd = kastellan_access::NodeCommand::new(["sh", "-c", ETCD_ROOM_SCRIPT, "sh", ""])
            .timeout(std::time::Duration::from_secs(120));
        let answer = reach.access.run(&node.name, &cmd);
        spinner.finish_and_clear();
        let parsed = match answer {
            Ok(out) if out.status.code() == Some(3) => continue,
            Ok(out) if out.success() => parse_etcd_room(&node.name, &out.stdout),
            Ok(out) => Err(format!("exit {}: {}", out.status, out.stderr_tail(2))),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(r) => rows.push(r),
            Err(why) => printer.warn(format!(
                "{}: room for kubeadm's copy of etcd not checked: {why}",
                node.name
            )),
        }
    }
    rows
}

/// The line of [`ETCD_ROOM_SCRIPT`].
fn parse_etcd_room(
    node: &str,
    out: &[u8],
) -> std::result::Result<kastellan_upgrade::plan::EtcdBackupRoom, String> {
    let text = String::from_utf8_lossy(out);
    let line = text.trim();
    let mut f = line.splitn(7, ' ');
    let mut num = || -> std::result::Result<u64, String> {
        f.next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| format!("unexpected answer {line:?}"))
    };
    let (data, free, dev_etc, dev_data, old, old_bytes) =
        (num()?, num()?, num()?, num()?, num()?, num()?);
    let data_dir = f
        .next()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| format!("unexpected answer {line:?}"))?;
    Ok(kastellan_upgrade::plan::EtcdBackupRoom {
        node: node.to_string(),
        data_dir: data_dir.to_string(),
        data_bytes: data,
        free_bytes: free,
        same_filesystem: dev_etc == dev_data,
        old_backups: old,
        old_backup_bytes: old_bytes,
    })
}

/// Runs the package script on every node over ssh.
fn node_packages(
    args: &VersionsArgs,
    v: &Versions,
    printer: &Printer,
) -> Result<Vec<NodePackages>> {
    let lab = node_access::unconfigured(&args.ssh) && node_access::lab_ssh_up();
    if lab && !node_access::lab_packages_up() {
        printer.warn(
            "--packages: this lab's nodes have no package state of their own (they would \
             show the host's); bring the lab up with `lab up --ssh --packages`",
        );
        return Ok(Vec::new());
    }
    let reach = node_access::ssh(&args.ssh, lab)?;
    let names: Vec<String> = if !args.nodes.is_empty() {
        args.nodes.clone()
    } else if let Some(inv) = &reach.inventory {
        let mut all = inv.names(kastellan_access::Role::ControlPlane);
        all.extend(inv.names(kastellan_access::Role::Worker));
        all
    } else {
        let mut n: Vec<String> = v
            .found
            .iter()
            .filter(|f| f.component == kastellan_upgrade::Component::Kubelet)
            .map(|f| f.instance.clone())
            .collect();
        n.dedup();
        n
    };
    let mut out = Vec::new();
    for node in names {
        let spinner = printer.spinner(&format!("{node}: packages"));
        let cmd = kastellan_access::NodeCommand::new(["sh", "-c", packages::SCRIPT])
            .timeout(std::time::Duration::from_secs(60));
        let answer = reach.access.run(&node, &cmd);
        spinner.finish_and_clear();
        out.push(match answer {
            Ok(o) if o.success() => packages::parse(&node, &String::from_utf8_lossy(&o.stdout)),
            Ok(o) => NodePackages {
                node: node.clone(),
                error: Some(format!("exit {}: {}", o.status, o.stderr_tail(3))),
                ..NodePackages::default()
            },
            Err(e) => NodePackages {
                node: node.clone(),
                error: Some(e.to_string()),
                ..NodePackages::default()
            },
        });
    }
    Ok(out)
}

/// The `versions` report.
struct VersionsReport<'a>(&'a Versions);

impl Serialize for VersionsReport<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl Report for VersionsReport<'_> {
    fn render(&self, out: &mut String, style: &Style) {
        let v = self.0;
        let mut t = Table::new(["COMPONENT", "WHERE", "VERSION", "INSTALLED AS"]);
        for f in &v.found {
            t.row([
                f.component.name().to_string(),
                f.instance.clone(),
                f.reported.clone(),
                serde_plain(&f.installed),
            ]);
        }
        t.render_into(out, style);
        let _ = writeln!(out, "\nsources:");
        for f in &v.found {
            let _ = writeln!(out, "  {} {}: {}", f.component.name(), f.instance, f.source);
        }
        for n in &v.nodes {
            let _ = writeln!(out, "\n{}", style.bold(&format!("== {} ==", n.node)));
            if let Some(e) = &n.error {
                let _ = writeln!(out, "  {}", style.bad(&format!("not read: {e}")));
                continue;
            }
            let _ = writeln!(
                out,
                "  os {}, packages by {}",
                n.os.as_deref().unwrap_or("unknown"),
                n.manager.as_deref().unwrap_or("unknown")
            );
            for p in &n.packages {
                let _ = writeln!(
                    out,
                    "  {:<8} {:<16} candidate {:<16}{}",
                    p.name,
                    p.installed.as_deref().unwrap_or("not installed"),
                    p.candidate.as_deref().unwrap_or("-"),
                    if p.held { " held" } else { "" }
                );
            }
            for r in &n.repositories {
                let _ = writeln!(out, "  repository {}", repository(r));
            }
        }
        let _ = writeln!(out, "\nsupport:");
        for s in &v.support {
            let eol = s
                .end_of_life
                .map(|d| d.to_string())
                .unwrap_or_else(|| "unknown".into());
            let line = match s.support {
                Support::Supported { days_left, .. } => style.good(&format!(
                    "{} supported until {eol} ({days_left} days left)",
                    s.minor
                )),
                Support::PastEndOfLife { days, .. } => style.bad(&format!(
                    "{} past end of life since {eol} ({days} days)",
                    s.minor
                )),
                Support::NotYetReleased { .. } => {
                    style.warn(&format!("{} not released yet", s.minor))
                }
                Support::Unknown => style.warn(&format!("{} unknown to kastellan", s.minor)),
            };
            let _ = writeln!(out, "  {line}: {}", s.components.join(", "));
        }
        if let Some(n) = v.newest_released {
            let _ = writeln!(out, "  newest released minor: {n}");
        }
        for p in &v.problems {
            let _ = writeln!(out, "{}", style.warn(&format!("not read: {p}")));
        }
    }
}

/// A serialised unit variant as plain text (`static-pod`).
fn serde_plain<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|x| x.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A repository in one line.
fn repository(r: &packages::Repository) -> String {
    match r {
        packages::Repository::PerMinor { minor, file } => {
            format!("pkgs.k8s.io v{minor} ({file})")
        }
        packages::Repository::Legacy { file } => {
            format!("legacy apt.kubernetes.io, frozen ({file})")
        }
        packages::Repository::Other { file, line } => format!("{line} ({file})"),
    }
}

/// One violation as reported.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ViolationView {
    rule: String,
    statement: String,
    era: String,
    source: String,
    components: Vec<skew::Component>,
}

impl ViolationView {
    fn of(v: &Violation) -> ViolationView {
        ViolationView {
            rule: v.rule.id().to_string(),
            statement: v.rule.statement().to_string(),
            era: v.rule.era().to_string(),
            source: v.rule.source().to_string(),
            components: v.components.clone(),
        }
    }
}

/// The `upgrade check` report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckReport {
    violations: Vec<ViolationView>,
    checked: usize,
    problems: Vec<String>,
}

impl Report for CheckReport {
    fn render(&self, out: &mut String, style: &Style) {
        if self.violations.is_empty() {
            let _ = writeln!(
                out,
                "{}",
                style.good(&format!(
                    "no version-skew violation among {} components",
                    self.checked
                ))
            );
        } else {
            let _ = writeln!(
                out,
                "{}",
                style.bad(&format!(
                    "{} version-skew violation(s) among {} components",
                    self.violations.len(),
                    self.checked
                ))
            );
        }
        for v in &self.violations {
            let _ = writeln!(out, "\n{} ({})", style.bold(&v.rule), v.era);
            let _ = writeln!(out, "  {}", v.statement);
            for c in &v.components {
                let _ = writeln!(out, "  - {} {} on {}", c.kind, c.version, c.node);
            }
        }
        for p in &self.problems {
            let _ = writeln!(out, "{}", style.warn(&format!("not read: {p}")));
        }
    }
}

/// The `upgrade plan` report: the plan itself in JSON/YAML (what a later apply takes).
struct PlanReport<'a>(&'a UpgradePlan);

impl Serialize for PlanReport<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl Report for PlanReport<'_> {
    fn render(&self, out: &mut String, style: &Style) {
        let p = self.0;
        let hops: Vec<String> = p.hops.iter().map(|h| h.minor.to_string()).collect();
        let _ = writeln!(
            out,
            "{}",
            style.bold(&format!(
                "upgrade {} -> {}: {} hop(s) ({}), workers {} at a time",
                p.from,
                p.to,
                p.hops.len(),
                hops.join(", "),
                p.max_unavailable
            ))
        );
        if !p.findings.is_empty() {
            let _ = writeln!(out, "\npre-flight:");
        }
        for f in &p.findings {
            let tag = match f.severity {
                Severity::Blocker => style.bad("BLOCKER"),
                Severity::Warning => style.warn("warning"),
                Severity::Info => "info".to_string(),
            };
            let _ = writeln!(out, "  {tag} {}: {}", f.id, f.message);
            for e in &f.evidence {
                let _ = writeln!(out, "      {e}");
            }
        }
        for h in &p.hops {
            let version = h
                .version
                .as_ref()
                .map_or_else(|| format!("newest {} patch", h.minor), |v| v.to_string());
            let _ = writeln!(
                out,
                "\n{}",
                style.bold(&format!(
                    "== hop to {} ({version}; packages {}) ==",
                    h.minor, h.package
                ))
            );
            for n in &h.nodes {
                let role = match n.role {
                    kastellan_upgrade::plan::NodeRole::FirstControlPlane => {
                        "first control plane".to_string()
                    }
                    kastellan_upgrade::plan::NodeRole::ControlPlane => "control plane".to_string(),
                    kastellan_upgrade::plan::NodeRole::Worker => {
                        format!("worker, batch {}", n.batch)
                    }
                };
                let _ = writeln!(out, "{} ({role})", n.node);
                for (i, s) in n.steps.iter().enumerate() {
                    let line = match s {
                        Step::Repository { file, content } => format!(
                            "repository {} in {file}",
                            content
                                .split_whitespace()
                                .find(|w| w.contains("://") || w.starts_with("baseurl="))
                                .unwrap_or("")
                                .trim_start_matches("baseurl=")
                        ),
                        other => other.line(&n.node),
                    };
                    let _ = writeln!(out, "  {:>2}. {line}", i + 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script run by the real `sh`, `du`, `df` and `stat` on a root laid out as a
    /// kubeadm control plane after one upgrade.
    #[test]
    fn etcd_room_of_a_control_plane_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let write = |path: &str, bytes: &[u8]| {
            let p = r.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        };
        write(
            "etc/kubernetes/manifests/etcd.yaml",
            b"spec:\n  containers:\n  - command:\n    - etcd\n    - --data-dir=/var/lib/etcd\n",
        );
        write("var/lib/etcd/member/snap/db", &vec![7u8; 1 << 20]);
        write(
            "etc/kubernetes/tmp/kubeadm-backup-etcd-2026-12-02-10-00-00/etcd/member/snap/db",
            &vec![7u8; 1 << 20],
        );
        write(
            "etc/kubernetes/tmp/kubeadm-backup-manifests-2026-12-02-10-00-00/etcd.yaml",
            b"x",
        );
        let run = |root: &std::path::Path| {
            std::process::Command::new("sh")
                .args(["-c", ETCD_ROOM_SCRIPT, "sh"])
                .arg(root)
                .output()
                .unwrap()
        };
        let out = run(r);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let room = parse_etcd_room("cp1", &out.stdout).unwrap();
        assert_eq!(room.node, "cp1");
        assert_eq!(room.data_dir, "/var/lib/etcd");
        // du counts blocks: the 1 MiB file and a few directories.
        assert!(
            (1 << 20..(1 << 20) + (64 << 10)).contains(&room.data_bytes),
            "{room:?}"
        );
        assert!(room.free_bytes > 0, "{room:?}");
        assert!(room.same_filesystem);
        assert_eq!(room.old_backups, 2);
        assert!(room.old_backup_bytes > room.data_bytes, "{room:?}");

        // A node without a local etcd (a worker, or external etcd): exit 3, no row.
        std::fs::remove_file(r.join("etc/kubernetes/manifests/etcd.yaml")).unwrap();
        assert_eq!(run(r).status.code(), Some(3));
        assert!(parse_etcd_room("cp1", b"12 x").is_err());
    }
}

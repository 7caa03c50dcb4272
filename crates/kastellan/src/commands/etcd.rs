//! `kastellan etcd ...`: etcd maintenance. `members`, `member add|promote|remove`
//! (`members.rs`), `defrag` and `alarm list|disarm` (`maintenance.rs`) talk to the
//! members with `kastellan-etcd`, whose `membership` module makes every decision.
//! `snapshot status` and `snapshot verify` read
//! a snapshot file (never writing it) with `kastellan-snapshot`; `snapshot save` streams
//! one from a running member with `kastellan-etcd` (its JSON: `file`, `endpoint`,
//! `member`, `size`, `sha256`, `elapsedSeconds`, and etcd's `hash`, `revision`,
//! `totalKey`, `totalSize` of the saved file).
//!
//! Both print the same document. Its JSON carries the fields of `etcdutl snapshot
//! status -w json` under the same names (`hash`, `revision`, `totalKey`, `totalSize`;
//! null when the file is too damaged to compute them) and kastellan's extras: `file`,
//! `fileSize`, `verified`, `trailer`, `pageSize`, `pages`, `activeMeta`, `txid`,
//! `clusterVersion`, `storageVersion`, `checks`, `faults`, `faultCount`.
//!
//! Exit codes: 0 the checks passed, 1 they found corruption, 2 the file cannot be read
//! or is not a snapshot (bbolt database) at all.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kastellan_etcd::{Cluster, Timeouts, TlsFiles};
use kastellan_printer::{Printer, Report, Style, Table};
use kastellan_snapshot::{
    CheckResult, Fault, Inspection, MetaInfo, Options, PageStats, SnapshotFile, Trailer, Verdict,
};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{
    AlarmCommand, EtcdCommand, EtcdConnectArgs, MemberCommand, SnapshotCommand, SnapshotSaveArgs,
};

mod inspect;
mod maintenance;
mod members;
mod restore;
mod storage;

/// Runs `kastellan etcd ...`.
pub fn run(
    cmd: EtcdCommand,
    global: &crate::cli::GlobalArgs,
    printer: &Printer,
) -> Result<Outcome> {
    match cmd {
        EtcdCommand::Snapshot(SnapshotCommand::Status(args)) => {
            snapshot(&args.file, Mode::Status, printer)
        }
        EtcdCommand::Snapshot(SnapshotCommand::Verify(args)) => {
            snapshot(&args.file, Mode::Verify, printer)
        }
        EtcdCommand::Snapshot(SnapshotCommand::Save(args)) => save(&args, global, printer),
        EtcdCommand::Snapshot(SnapshotCommand::Restore(args)) => restore::run(args, printer),
        EtcdCommand::Snapshot(SnapshotCommand::Inspect(args)) => inspect::run(&args, printer),
        EtcdCommand::Members(args) => members::members(&args, global, printer),
        EtcdCommand::Member(MemberCommand::Add(args)) => members::add(&args, printer),
        EtcdCommand::Member(MemberCommand::Remove(args)) => members::remove(&args, printer),
        EtcdCommand::Member(MemberCommand::Promote(args)) => members::promote(&args, printer),
        EtcdCommand::Defrag(args) => maintenance::defrag(&args, printer),
        EtcdCommand::Storage(args) => storage::storage(&args, printer),
        EtcdCommand::Alarm(AlarmCommand::List(args)) => maintenance::alarm_list(&args, printer),
        EtcdCommand::Alarm(AlarmCommand::Disarm(args)) => maintenance::alarm_disarm(&args, printer),
    }
}

/// Resolves endpoints and certificates from the flags, the rest from the manifests in
/// `args.manifests_dir` (or `default_manifests`).
pub(crate) fn discover(
    args: &EtcdConnectArgs,
    default_manifests: &Path,
) -> Result<kastellan_etcd::discovery::Discovered> {
    use kastellan_etcd::discovery::{Discovery, Flags, discover};
    let at = Discovery::new(
        args.manifests_dir
            .clone()
            .unwrap_or_else(|| default_manifests.to_path_buf()),
    );
    let flags = Flags {
        endpoints: args.endpoints.clone(),
        tls: TlsFiles::from_flags(args.cacert.clone(), args.cert.clone(), args.key.clone())?,
    };
    Ok(discover(flags, &at)?)
}

/// The timeouts the flags ask for.
pub(crate) fn timeouts(args: &EtcdConnectArgs) -> Timeouts {
    let t = std::time::Duration::from_secs(args.etcd_timeout.max(1));
    Timeouts {
        connect: t,
        request: t,
        stream_idle: t.max(std::time::Duration::from_secs(30)),
    }
}

/// Chooses a member, tells which, and streams its snapshot into `file` with a progress
/// bar on a terminal.
pub(crate) async fn save_snapshot(
    found: &kastellan_etcd::discovery::Discovered,
    timeouts: Timeouts,
    file: &Path,
    force: bool,
    printer: &Printer,
) -> Result<(kastellan_etcd::Choice, kastellan_etcd::snapshot::Saved)> {
    let cluster = Cluster::new(found.target.clone(), timeouts)?;
    let (choice, _) = cluster
        .choose_for_snapshot(found.endpoints_discovered())
        .await?;
    printer.note(format!("snapshot from {}", choice.describe()));
    let stream = cluster
        .snapshot_client(&choice.endpoint)
        .await?
        .snapshot()
        .await?;
    let bar = printer.bytes_progress(None, "etcd snapshot");
    let mut on_progress = |p: kastellan_etcd::snapshot::Progress| {
        if let (Some(t), None) = (p.total, bar.length()) {
            bar.set_length(t);
        }
        bar.set_position(p.received);
    };
    let saved = kastellan_etcd::snapshot::save(
        stream,
        file,
        kastellan_etcd::snapshot::SaveOptions { force },
        &mut on_progress,
    )
    .await;
    bar.finish_and_clear();
    Ok((choice, saved?))
}

/// etcd's client URLs as the cluster shows them: the etcd static pods'
/// `--advertise-client-urls` (stacked etcd), else the apiservers' `--etcd-servers`
/// (external etcd).
async fn endpoints_from_cluster(global: &crate::cli::GlobalArgs) -> Result<Vec<String>> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    let kube = super::kube::client(global, None, super::kube::READ_TIMEOUT).await?;
    let pods: Api<Pod> = Api::namespaced(kube.client, "kube-system");
    for (label, flag) in [
        ("component=etcd", "--advertise-client-urls="),
        ("component=kube-apiserver", "--etcd-servers="),
    ] {
        let list = pods.list(&ListParams::default().labels(label)).await?;
        let mut urls: Vec<String> = list
            .items
            .iter()
            .flat_map(|p| p.spec.iter().flat_map(|s| s.containers.iter()))
            .flat_map(|c| c.command.iter().flatten().chain(c.args.iter().flatten()))
            .filter_map(|a| a.strip_prefix(flag))
            .flat_map(|v| v.split(',').map(str::to_string))
            .filter(|u| !u.contains("127.0.0.1") && !u.contains("localhost"))
            .collect();
        urls.sort();
        urls.dedup();
        if !urls.is_empty() {
            return Ok(urls);
        }
    }
    bail!("the cluster shows no etcd static pod nor apiserver --etcd-servers in kube-system")
}

fn save(
    args: &SnapshotSaveArgs,
    global: &crate::cli::GlobalArgs,
    printer: &Printer,
) -> Result<Outcome> {
    let rt = super::runtime()?;
    let default_manifests = Path::new(kastellan_etcd::discovery::DEFAULT_MANIFESTS_DIR);
    let manifests = args
        .etcd
        .manifests_dir
        .as_deref()
        .unwrap_or(default_manifests);
    let local =
        manifests.join("etcd.yaml").is_file() || manifests.join("kube-apiserver.yaml").is_file();
    let found = if args.etcd.endpoints.is_empty() && !local && args.etcd.from_cluster {
        // Not on a control-plane node: the endpoints come from the cluster; the client
        // certificate cannot (it is in no API object), so the flags must give it.
        let endpoints = rt
            .block_on(endpoints_from_cluster(global))
            .context("--from-cluster: finding etcd's endpoints through the kubeconfig")?;
        if args.etcd.cacert.is_none() || args.etcd.cert.is_none() || args.etcd.key.is_none() {
            bail!(
                "--from-cluster found etcd at {} but its client certificate is not in the API: give --cacert, --cert and --key",
                endpoints.join(",")
            );
        }
        printer.note(format!(
            "etcd endpoints from the cluster: {}",
            endpoints.join(",")
        ));
        let mut with = args.etcd.clone();
        with.endpoints = endpoints;
        discover(&with, default_manifests)?
    } else {
        discover(&args.etcd, default_manifests)?
    };
    let (choice, saved) = rt.block_on(save_snapshot(
        &found,
        timeouts(&args.etcd),
        &args.file,
        args.force,
        printer,
    ))?;
    super::note_leftovers(printer, saved.leftover.as_slice());
    printer.report(&SaveReport {
        removed_leftovers: super::LeftoverReport::all(saved.leftover.as_slice()),
        file: saved.path.clone(),
        endpoint: saved.endpoint.clone(),
        member: MemberReport {
            id: format!("{:x}", choice.member_id),
            name: choice.name.clone(),
            role: choice.role.to_string(),
            version: choice.status.version.clone(),
        },
        size: saved.size,
        sha256: saved.sha256.clone(),
        elapsed_seconds: saved.elapsed.as_secs_f64(),
        hash: saved.status.hash,
        revision: saved.status.revision,
        total_key: saved.status.total_key,
        total_size: saved.status.total_size,
    })?;
    Ok(Outcome::Ok)
}

/// The member a snapshot came from.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberReport {
    id: String,
    name: Option<String>,
    role: String,
    version: String,
}

/// The document `etcd snapshot save` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SaveReport {
    file: PathBuf,
    removed_leftovers: Vec<super::LeftoverReport>,
    endpoint: String,
    member: MemberReport,
    size: u64,
    sha256: String,
    elapsed_seconds: f64,
    hash: u32,
    revision: i64,
    total_key: u64,
    total_size: u64,
}

impl Report for SaveReport {
    fn render(&self, out: &mut String, style: &Style) {
        let rate = if self.elapsed_seconds > 0.0 {
            format!(
                ", {}/s",
                human_bytes((self.size as f64 / self.elapsed_seconds) as u64)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{}",
            style.good(&format!(
                "saved {} ({}{rate}, sha256 checked, verified)",
                self.file.display(),
                human_bytes(self.size)
            ))
        );
        let _ = writeln!(
            out,
            "from member {} ({}, {}, etcd {}) at {}",
            self.member.name.as_deref().unwrap_or("?"),
            self.member.id,
            self.member.role,
            self.member.version,
            self.endpoint
        );
        out.push('\n');
        let mut t = Table::new(["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"]);
        t.row([
            format!("{:x}", self.hash),
            self.revision.to_string(),
            self.total_key.to_string(),
            human_bytes(self.total_size),
        ]);
        t.render_into(out, style);
    }
}

fn snapshot(path: &Path, mode: Mode, printer: &Printer) -> Result<Outcome> {
    let file = SnapshotFile::open(path)?;
    // `status` does what etcd's does (no hashing of the whole file); `verify` also
    // checks the sha256 trailer.
    let inspection = file.inspect(&Options {
        verify_trailer: mode == Mode::Verify,
    })?;
    let report = SnapshotReport::new(path, mode, inspection);
    printer.report(&report)?;
    Ok(if report.verified {
        Outcome::Ok
    } else {
        Outcome::Unhealthy
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Status,
    Verify,
}

/// The trailer, as reported.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TrailerReport {
    /// Whether the file ends with the sha256 trailer of `etcdctl snapshot save`.
    present: bool,
    /// The stored digest (hex), if present.
    sha256: Option<String>,
    /// Whether it matches the content; null when absent or not hashed (`status`).
    matches: Option<bool>,
    /// Bytes at the end that are neither whole pages nor a trailer (a fault).
    #[serde(skip_serializing_if = "Option::is_none")]
    stray_bytes: Option<u64>,
}

/// The document `etcd snapshot status|verify` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotReport {
    hash: Option<u32>,
    revision: Option<i64>,
    total_key: Option<u64>,
    total_size: Option<u64>,
    file: PathBuf,
    file_size: u64,
    verified: bool,
    trailer: TrailerReport,
    page_size: u32,
    pages: PageStats,
    active_meta: kastellan_snapshot::MetaSlot,
    txid: u64,
    metas: [MetaInfo; 2],
    cluster_version: Option<String>,
    storage_version: Option<String>,
    checks: Vec<CheckResult>,
    faults: Vec<Fault>,
    fault_count: u64,
    #[serde(skip)]
    mode: Mode,
}

impl SnapshotReport {
    fn new(path: &Path, mode: Mode, i: Inspection) -> Self {
        let checks = i.checks();
        let trailer = match &i.trailer {
            Trailer::Absent => TrailerReport {
                present: false,
                sha256: None,
                matches: None,
                stray_bytes: None,
            },
            Trailer::Stray { bytes } => TrailerReport {
                present: false,
                sha256: None,
                matches: None,
                stray_bytes: Some(*bytes),
            },
            Trailer::Present { stored, .. } => TrailerReport {
                present: true,
                sha256: Some(stored.clone()),
                matches: i.trailer.matches(),
                stray_bytes: None,
            },
        };
        SnapshotReport {
            hash: i.status.map(|s| s.hash),
            revision: i.status.map(|s| s.revision),
            total_key: i.status.map(|s| s.total_key),
            total_size: i.status.map(|s| s.total_size),
            file: path.to_path_buf(),
            file_size: i.file_size,
            verified: i.is_clean(),
            trailer,
            page_size: i.page_size,
            pages: i.pages,
            active_meta: i.active_meta,
            txid: i.txid,
            metas: i.metas,
            cluster_version: i.versions.cluster_version,
            storage_version: i.versions.storage_version,
            checks,
            faults: i.faults,
            fault_count: i.fault_count,
            mode,
        }
    }

    fn render_figures(&self, out: &mut String, style: &Style) {
        let mut t = Table::new(["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"]);
        let dash = || "-".to_string();
        t.row([
            self.hash.map_or_else(dash, |h| format!("{h:x}")), // as etcd prints it: %x
            self.revision.map_or_else(dash, |r| r.to_string()),
            self.total_key.map_or_else(dash, |k| k.to_string()),
            self.total_size.map_or_else(dash, human_bytes),
        ]);
        t.render_into(out, style);
    }

    fn render_details(&self, out: &mut String, style: &Style) {
        let p = &self.pages;
        let trailer = match (self.trailer.present, self.trailer.matches) {
            (false, _) if self.trailer.stray_bytes.is_some() => style.bad(&format!(
                "none, and {} stray bytes at the end (an interrupted copy?)",
                self.trailer.stray_bytes.unwrap_or_default()
            )),
            (false, _) if p.high_water > p.in_file => style.bad("none (the file is cut short)"),
            (false, _) => "none (a raw member/snap/db copy)".to_string(),
            (true, None) => {
                "sha256 present, not hashed (run `kastellan etcd snapshot verify`)".to_string()
            }
            (true, Some(true)) => style.good("sha256 present and matching"),
            (true, Some(false)) => style.bad("sha256 present and NOT matching"),
        };
        let meta = self
            .metas
            .iter()
            .map(|m| match (&m.problem, m.txid) {
                (None, Some(txid)) if m.slot == self.active_meta => {
                    format!("{} txid {txid} (in force)", slot(m))
                }
                (None, Some(txid)) => format!("{} txid {txid}", slot(m)),
                (Some(problem), _) => style.bad(&format!("{} invalid: {problem}", slot(m))),
                (None, None) => format!("{} ?", slot(m)),
            })
            .collect::<Vec<_>>()
            .join("; ");
        let versions = match (&self.cluster_version, &self.storage_version) {
            (None, None) => "not recorded".to_string(),
            (c, s) => [
                c.as_ref().map(|c| format!("cluster {c}")),
                s.as_ref().map(|s| format!("storage {s}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
        };
        let lines = [
            (
                "file",
                format!("{} ({} bytes)", self.file.display(), self.file_size),
            ),
            ("trailer", trailer),
            (
                "pages",
                format!(
                    "{} × {} bytes: {} branch, {} leaf, {} overflow, {} freelist, {} free",
                    p.high_water, p.page_size, p.branch, p.leaf, p.overflow, p.freelist, p.free
                ),
            ),
            (
                "buckets",
                format!(
                    "{} ({} inline), {} keys at all depths",
                    p.buckets, p.inline_buckets, p.keys
                ),
            ),
            ("meta", meta),
            ("etcd version", versions),
        ];
        for (name, value) in lines {
            let _ = writeln!(out, "{:<13} {value}", format!("{name}:"));
        }
    }

    fn render_checks(&self, out: &mut String, style: &Style) {
        let mut t = Table::new(["CHECK", "RESULT", "FAULTS", "NOTE"]);
        for c in &self.checks {
            let verdict = match c.verdict {
                Verdict::Passed => style.good("passed"),
                Verdict::Failed => style.bad("FAILED"),
                Verdict::Skipped => style.warn("skipped"),
            };
            t.row([
                c.check.name().to_string(),
                verdict,
                c.faults.to_string(),
                c.note.clone().unwrap_or_default(),
            ]);
        }
        t.render_into(out, style);
    }

    fn render_faults(&self, out: &mut String, style: &Style) {
        const SHOWN: usize = 20;
        for f in self.faults.iter().take(SHOWN) {
            let _ = writeln!(out, "  {} {f}", style.bad("✗"));
        }
        if self.fault_count > SHOWN as u64 {
            let _ = writeln!(
                out,
                "  … and {} more (see -o json)",
                self.fault_count - SHOWN as u64
            );
        }
    }

    fn render_verdict(&self, out: &mut String, style: &Style) {
        if self.verified {
            let _ = writeln!(
                out,
                "{}",
                style.good(&format!("{}: no corruption found", self.file.display()))
            );
        } else {
            let _ = writeln!(
                out,
                "{}",
                style.bad(&format!(
                    "{}: CORRUPT, {} problem(s) found",
                    self.file.display(),
                    self.fault_count
                ))
            );
        }
    }
}

fn slot(m: &MetaInfo) -> String {
    format!("page {}", m.slot.page())
}

impl Report for SnapshotReport {
    fn render(&self, out: &mut String, style: &Style) {
        match self.mode {
            Mode::Status => {
                self.render_figures(out, style);
                out.push('\n');
                self.render_details(out, style);
                let count = |v| self.checks.iter().filter(|c| c.verdict == v).count();
                let (passed, failed, skipped) = (
                    count(Verdict::Passed),
                    count(Verdict::Failed),
                    count(Verdict::Skipped),
                );
                let mut summary = if failed == 0 {
                    style.good(&format!("{passed} passed"))
                } else {
                    style.bad(&format!("{failed} FAILED, {passed} passed"))
                };
                if skipped > 0 {
                    let names: Vec<_> = self
                        .checks
                        .iter()
                        .filter(|c| c.verdict == Verdict::Skipped)
                        .map(|c| c.check.name())
                        .collect();
                    let _ = write!(summary, ", {skipped} skipped ({})", names.join(", "));
                }
                let _ = writeln!(out, "{:<13} {summary}", "checks:");
                self.render_faults(out, style);
            }
            Mode::Verify => {
                self.render_checks(out, style);
                out.push('\n');
                self.render_details(out, style);
                if !self.faults.is_empty() {
                    out.push('\n');
                    self.render_faults(out, style);
                }
                out.push('\n');
                self.render_verdict(out, style);
            }
        }
    }
}

/// Sizes as etcd prints them (go-humanize `Bytes`: SI units, one decimal below 10).
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor();
    let unit = UNITS[(e as usize).min(UNITS.len() - 1)];
    let val = ((n as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {unit}")
    } else {
        format!("{val:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_etcd() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(20480), "20 kB");
        assert_eq!(human_bytes(94208), "94 kB");
        assert_eq!(human_bytes(3_444_736), "3.4 MB");
        assert_eq!(human_bytes(1_073_741_824), "1.1 GB");
    }
}

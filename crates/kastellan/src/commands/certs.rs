//! `kastellan certs check|renew`: thin glue over `kastellan-pki`.

use std::time::Duration;

use anyhow::{Result, bail};
use jiff::Timestamp;
use kastellan_pki::renew::{self, RenewReport, RenewRequest, Targets};
use kastellan_pki::{Inventory, Layout, Verdict, restart};
use kastellan_printer::Printer;

use crate::Outcome;
use crate::cli::{CertsCheckArgs, CertsCommand, CertsRenewArgs, PkiDirArgs};
use crate::commands::certs_view::{CheckView, RenewView};

/// Runs `certs`.
pub fn run(cmd: CertsCommand, printer: &Printer) -> Result<Outcome> {
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
    let targets = if args.names.iter().any(|n| n == "all") {
        if args.names.len() > 1 {
            bail!("'all' cannot be combined with certificate names");
        }
        Targets::All
    } else {
        Targets::Names(args.names.clone())
    };
    let inv = Inventory::load(&layout(&args.dirs)?);
    let now = Timestamp::now();
    let req = RenewRequest {
        targets,
        new_key: args.new_key,
        backup_dir: args.backup_dir.clone(),
    };
    let plan = renew::plan(&inv, &req, now)?;
    // Signing happens in memory for dry runs too, so a dry run proves the keys load and match.
    let signed = renew::sign(&inv, &plan, !args.dry_run)?;
    let mut report = RenewReport {
        dry_run: args.dry_run,
        plan,
        applied: None,
        restarted: None,
        manifests_dir: args.manifests_dir.clone(),
    };
    if !args.dry_run && !report.plan.renew.is_empty() {
        report.applied = Some(renew::apply(&inv, &report.plan, signed)?);
        if args.restart && !report.plan.restart.is_empty() {
            let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
            let staging = restart::staging_dir(&args.manifests_dir, &stamp);
            let wait = Duration::from_secs(args.restart_wait);
            let spinner = printer.spinner(&format!(
                "static pod manifests held out until the pods stop (at most {}s)",
                args.restart_wait
            ));
            let outcome = restart::restart_static_pods(
                &args.manifests_dir,
                &staging,
                &report.plan.restart,
                wait,
                |port| !kastellan_kubeadm::hold::answers(port),
            );
            spinner.finish_and_clear();
            report.restarted = Some(outcome?);
        }
    }
    printer.report(&RenewView(&report))?;
    Ok(Outcome::Ok)
}

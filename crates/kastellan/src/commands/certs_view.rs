//! The human views of `kastellan-pki`'s reports (the library returns data; the tables
//! are the command line's).

use std::fmt::Write as _;

use kastellan_pki::check::{CertStatus, Status, kubeadm_date};
use kastellan_pki::{CheckReport, RenewReport};
use kastellan_printer::{Report, Style, Table};
use serde::Serialize;

/// `certs check`: the report, shown as kubeadm's `certs check-expiration` tables.
pub struct CheckView<'a>(pub &'a CheckReport);

/// `certs renew`: what was (or would be) renewed, backed up and restarted.
pub struct RenewView<'a>(pub &'a RenewReport);

impl Serialize for CheckView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl Serialize for RenewView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

fn status_text(r: &CertStatus, style: &Style) -> String {
    let base = match r.status {
        Status::Ok => style.good("ok"),
        Status::Expiring => style.warn("EXPIRING"),
        Status::Expired => style.bad("EXPIRED"),
        Status::Absent if r.optional => "absent (optional)".to_string(),
        Status::Absent => style.warn("absent"),
        Status::Error => style.bad("ERROR"),
    };
    if r.problems.is_empty() {
        base
    } else {
        format!("{base}, {}", style.bad("PROBLEM"))
    }
}

impl Report for CheckView<'_> {
    fn render(&self, out: &mut String, style: &Style) {
        let report = self.0;
        let dash = || "-".to_string();
        let mut t = Table::new([
            "CERTIFICATE",
            "EXPIRES",
            "RESIDUAL TIME",
            "CERTIFICATE AUTHORITY",
            "EXTERNALLY MANAGED",
            "KEY",
            "STATUS",
        ]);
        for r in &report.certificates {
            t.row([
                r.name.clone(),
                r.not_after.map(kubeadm_date).unwrap_or_else(dash),
                r.residual.clone().unwrap_or_else(dash),
                r.ca.map(|c| c.name().to_string())
                    .unwrap_or_else(|| match &r.issuer {
                        Some(i) => format!("({i})"),
                        None => "-".into(),
                    }),
                yes_no(r.externally_managed).to_string(),
                r.key.as_ref().map(|k| k.to_string()).unwrap_or_else(dash),
                status_text(r, style),
            ]);
        }
        t.render_into(out, style);
        out.push('\n');
        let mut t = Table::new([
            "CERTIFICATE AUTHORITY",
            "EXPIRES",
            "RESIDUAL TIME",
            "EXTERNALLY MANAGED",
            "KEY",
            "STATUS",
        ]);
        for r in &report.authorities {
            t.row([
                r.name.clone(),
                r.not_after.map(kubeadm_date).unwrap_or_else(dash),
                r.residual.clone().unwrap_or_else(dash),
                yes_no(r.externally_managed).to_string(),
                r.key.as_ref().map(|k| k.to_string()).unwrap_or_else(dash),
                status_text(r, style),
            ]);
        }
        t.render_into(out, style);
        let with_sans: Vec<&CertStatus> = report.rows().filter(|r| !r.sans.is_empty()).collect();
        if !with_sans.is_empty() {
            out.push_str("\nSubject alternative names:\n");
            for r in with_sans {
                let _ = writeln!(out, "  {}: {}", r.name, r.sans.join(", "));
            }
        }
        let notes: Vec<String> = report
            .rows()
            .flat_map(|r| {
                r.problems
                    .iter()
                    .map(move |p| format!("  {}: {p}", r.name))
                    .chain(r.error.iter().map(move |e| format!("  {}: {e}", r.name)))
            })
            .collect();
        if !notes.is_empty() {
            out.push_str("\nProblems:\n");
            for n in notes {
                let _ = writeln!(out, "{n}");
            }
        }
        let s = &report.summary;
        let _ = writeln!(
            out,
            "\n{} ok, {} expiring within {} days, {} expired, {} absent, {} unreadable",
            s.ok, s.expiring, report.warn_days, s.expired, s.absent, s.errors
        );
    }
}

impl Report for RenewView<'_> {
    fn render(&self, out: &mut String, style: &Style) {
        let report = self.0;
        let p = &report.plan;
        if p.renew.is_empty() {
            out.push_str("Nothing to renew.\n");
        } else {
            let head = if report.dry_run {
                "Would renew (dry run, nothing written):"
            } else {
                "Renewed:"
            };
            let _ = writeln!(out, "{}", style.bold(head));
            let mut t = Table::new([
                "CERTIFICATE",
                "CA",
                "EXPIRES NOW",
                "NEW EXPIRY",
                "NEW KEY",
                "FILES",
            ]);
            for r in &p.renew {
                t.row([
                    r.name.clone(),
                    r.ca.name().to_string(),
                    kubeadm_date(r.current_not_after),
                    kubeadm_date(r.new_not_after),
                    if r.new_key {
                        "yes".into()
                    } else {
                        "no (kept)".into()
                    },
                    r.writes
                        .iter()
                        .map(|w| w.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                ]);
            }
            t.render_into(out, style);
        }
        if report.dry_run && !report.steps.is_empty() {
            let _ = writeln!(
                out,
                "\n{}",
                style.bold(
                    "Steps (exactly what runs; keys are read and made only while a step runs):"
                )
            );
            for d in &report.steps {
                let mut lines = d.does.lines();
                let _ = writeln!(
                    out,
                    "{:>3}. [{}] {}{}",
                    d.step,
                    d.phase,
                    lines.next().unwrap_or_default(),
                    if d.commit {
                        " (point of no return)"
                    } else {
                        ""
                    }
                );
                for l in lines {
                    let _ = writeln!(out, "       {}", l.trim_start());
                }
                if let Some(u) = &d.undo {
                    let _ = writeln!(out, "       if a later step fails: {u}");
                }
            }
        }
        match &report.applied {
            Some(a) => {
                let _ = writeln!(out, "\nOld files backed up in {}", a.backup_dir.display());
            }
            None if !p.renew.is_empty() => {
                let _ = writeln!(
                    out,
                    "\nOld files would be backed up in {}",
                    p.backup_dir.display()
                );
            }
            None => {}
        }
        if !p.skipped.is_empty() {
            out.push_str("\nNot renewed:\n");
            for s in &p.skipped {
                let _ = writeln!(out, "  {}: {}", s.name, s.reason);
            }
        }
        for n in &p.notes {
            let _ = writeln!(out, "\nNote: {n}");
        }
        if !p.restart.is_empty() {
            let names: Vec<&str> = p.restart.iter().map(|c| c.name()).collect();
            match &report.restarted {
                Some(r) => {
                    let _ = writeln!(
                        out,
                        "\nRestarted static pods by moving their manifests out of {} for {}s and back: {}",
                        report.manifests_dir.display(),
                        r.waited_seconds,
                        r.moved
                            .iter()
                            .map(|c| c.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    for s in &r.skipped {
                        let _ = writeln!(out, "  {s}");
                    }
                }
                None => {
                    let verb = if report.dry_run { "would need" } else { "need" };
                    let _ = writeln!(
                        out,
                        "\n{}: {} {verb} a restart to load the new certificates: move their manifests out of {} for ~20s and back, or run again with --restart",
                        style.warn("Restart"),
                        names.join(", "),
                        report.manifests_dir.display()
                    );
                }
            }
        }
    }
}

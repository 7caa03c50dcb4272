//! `kastellan preflight`: this node checked before `kubeadm init` or `join`. The facts
//! and verdicts are `kastellan-preflight`'s; this module parses the flags, reads the
//! peers file and renders the report.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kastellan_preflight::read::{self, Options};
use kastellan_preflight::{Facts, Request, Role, Verdict};
use kastellan_printer::{Printer, Report, Style, Table, wrap};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{PreflightArgs, PreflightRole};

/// The search path when `PATH` is not set (a root shell's usual one).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs `preflight`.
pub fn run(args: &PreflightArgs, printer: &Printer) -> Result<Outcome> {
    let req = request(args)?;
    if !args.root.is_dir() {
        bail!("--root {}: not a directory", args.root.display());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    let search_path: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|p| p.is_absolute())
        .collect();
    let opts = Options {
        root: args.root.clone(),
        ..Options::host(search_path)
    };
    let facts = read::read(&opts);
    if args.facts {
        printer.report(&FactsView(facts))?;
        return Ok(Outcome::Ok);
    }
    let report = kastellan_preflight::check(&facts, &req);
    printer.report(&View(&report))?;
    Ok(match report.verdict {
        Verdict::Fail => Outcome::Unhealthy,
        Verdict::Pass | Verdict::Warn => Outcome::Ok,
    })
}

/// The request the flags describe; bad input names its flag (exit 2).
fn request(args: &PreflightArgs) -> Result<Request> {
    let mut req = Request::new(match args.role {
        PreflightRole::ControlPlane => Role::ControlPlane,
        PreflightRole::Worker => Role::Worker,
    });
    req.service_cidr = args.service_cidr;
    req.pod_cidr = args.pod_network_cidr;
    req.nodes = args.nodes;
    req.advertise = args.apiserver_advertise_address;
    if let (Some(mask), Some(pod)) = (args.node_cidr_mask_size, args.pod_network_cidr) {
        if mask > pod.family_bits() {
            bail!(
                "--node-cidr-mask-size {mask}: longer than the {}-bit addresses of --pod-network-cidr {pod}",
                pod.family_bits()
            );
        }
        req.node_mask = Some(mask);
    }
    if let Some(pod) = args.pod_network_cidr
        && pod.is_ipv4() != args.service_cidr.is_ipv4()
    {
        bail!(
            "--pod-network-cidr {pod} and --service-cidr {} are of different IP families (dual-stack takes a comma-separated pair, which preflight does not check yet)",
            args.service_cidr
        );
    }
    if let Some(file) = &args.peers {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--peers {}: cannot read it", file.display()))?;
        let peers = kastellan_preflight::parse_peers(&file.display().to_string(), &text)
            .with_context(|| format!("--peers {}", file.display()))?;
        req.peers = Some(peers);
    }
    Ok(req)
}

/// The report as printed.
#[derive(Serialize)]
#[serde(transparent)]
struct View<'a>(&'a kastellan_preflight::Report);

fn paint(style: &Style, v: Verdict) -> String {
    match v {
        Verdict::Pass => style.good("pass"),
        Verdict::Warn => style.warn("warn"),
        Verdict::Fail => style.bad("FAIL"),
    }
}

impl Report for View<'_> {
    fn render(&self, out: &mut String, style: &Style) {
        let r = self.0;
        let mut t = Table::new(["CHECK", "RESULT", "EVIDENCE"]);
        for c in &r.checks {
            t.row([c.id.clone(), paint(style, c.verdict), c.evidence.clone()]);
        }
        t.render_into(out, style);
        let count = |v: Verdict| r.checks.iter().filter(|c| c.verdict == v).count();
        let problems: Vec<_> = r
            .checks
            .iter()
            // -o wide: every check's whole evidence, the passed ones too.
            .filter(|c| style.wide || c.verdict != Verdict::Pass)
            .collect();
        for c in &problems {
            out.push('\n');
            wrap(
                out,
                &format!("{} {}: ", paint(style, c.verdict), c.id),
                2,
                &c.evidence,
                style.width,
            );
            if let Some(fix) = &c.fix {
                wrap(out, "  fix: ", 7, fix, style.width);
            }
        }
        let role = match r.role {
            Role::ControlPlane => "control plane",
            Role::Worker => "worker",
        };
        let _ = writeln!(
            out,
            "\n{} as a {role}: {} passed, {} warned, {} failed",
            match r.verdict {
                Verdict::Fail => style.bad("not ready"),
                Verdict::Warn | Verdict::Pass => style.good("ready"),
            },
            count(Verdict::Pass),
            count(Verdict::Warn),
            count(Verdict::Fail),
        );
    }
}

/// This node's facts (`--facts`); JSON and YAML carry every field.
#[derive(Serialize)]
#[serde(transparent)]
struct FactsView(Facts);

impl Report for FactsView {
    fn render(&self, out: &mut String, style: &Style) {
        let f = &self.0;
        let none = || "unknown".to_string();
        let mut t = Table::new(["FACT", "VALUE"]);
        t.row([
            "hostname".to_string(),
            f.identity.hostname.clone().unwrap_or_else(none),
        ]);
        t.row([
            "product_uuid".to_string(),
            f.identity.product_uuid.clone().unwrap_or_else(none),
        ]);
        t.row(["macs".to_string(), f.identity.macs.join(", ")]);
        t.row(["pid 1".to_string(), f.init.clone().unwrap_or_else(none)]);
        for i in f.interfaces.iter().filter(|i| !i.loopback) {
            let addrs: Vec<String> = i.addrs.iter().map(|a| a.cidr.to_string()).collect();
            t.row([format!("interface {}", i.name), addrs.join(", ")]);
        }
        for b in &f.binaries {
            t.row([
                b.name.clone(),
                match (&b.path, &b.version) {
                    (None, _) => "not found".to_string(),
                    (Some(p), v) => format!("{} ({p})", v.as_deref().unwrap_or("version unknown")),
                },
            ]);
        }
        t.render_into(out, style);
        out.push_str("\n-o json or -o yaml prints every fact (the form --peers reads)\n");
    }
}

//! `kastellan lab ...`: the built-in lab cluster.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use kastellan_lab::{JoinMode, LabSpec, LabStatus};
use kastellan_printer::{Printer, Report, Style, Table};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{GlobalArgs, LabCommand};

/// Runs a `lab` subcommand.
pub fn run(cmd: LabCommand, _global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    match cmd {
        LabCommand::Up(args) => {
            // A lab of one node joins nothing; a node that joins with kubeadm runs the
            // kubeadm of its own packages.
            let join = if args.control_planes + args.workers > 1 {
                args.join.parse().map_err(anyhow::Error::msg)?
            } else {
                JoinMode::Copy
            };
            let spec = LabSpec {
                control_planes: args.control_planes,
                workers: args.workers,
                etcd: args.etcd.parse().map_err(anyhow::Error::msg)?,
                kubernetes_version: args.kubernetes_version,
                subnet: "10.77.0".into(),
                ssh: args.ssh,
                packages: args.packages || join == JoinMode::Kubeadm,
                join,
            };
            let mut say = |line: String| printer.note(format!("lab: {line}"));
            kastellan_lab::up(&spec, Duration::from_secs(args.timeout), &mut say)?;
            let status = kastellan_lab::status()?;
            printer.report(&StatusReport(status))?;
            for line in env_report().lines() {
                printer.note(line);
            }
            Ok(Outcome::Ok)
        }
        LabCommand::Down(args) => {
            let mut say = |line: String| printer.note(format!("lab: {line}"));
            kastellan_lab::down(args.keep_data, &mut say)?;
            Ok(Outcome::Ok)
        }
        LabCommand::Status => {
            let status = kastellan_lab::status()?;
            let ssh = status.spec.ssh;
            let healthy = status.nodes.iter().all(|n| {
                n.agent_running
                    && (!ssh || n.sshd_running)
                    && n.reported
                        .as_ref()
                        .is_some_and(|r| r.registered && r.probes.iter().all(|p| p.ok))
            });
            printer.report(&StatusReport(status))?;
            Ok(if healthy {
                Outcome::Ok
            } else {
                Outcome::Unhealthy
            })
        }
        LabCommand::Env => {
            printer.report(&env_report())?;
            Ok(Outcome::Ok)
        }
        LabCommand::Exec(args) => {
            let code = kastellan_lab::exec_in_node(&args.node, &args.command)?;
            std::process::exit(code);
        }
        LabCommand::Build(args) => {
            let script = find_build_script()?;
            let dir = kastellan_lab::build_kubernetes(&script, &args.version)?;
            printer.note(format!("binaries in {}", dir.display()));
            Ok(Outcome::Ok)
        }
        LabCommand::Agent(args) => {
            let rt = super::runtime()?;
            rt.block_on(kastellan_lab::agent::run(&args.node))?;
            Ok(Outcome::Ok)
        }
        LabCommand::Enter(args) => Err(kastellan_lab::enter(&args.node, &args.command).into()),
        LabCommand::Systemctl(args) => {
            shim(printer, kastellan_lab::packages::systemctl(&args.args)?)
        }
        LabCommand::Crictl(args) => shim(printer, kastellan_lab::packages::crictl(&args.args)),
    }
}

/// Writes what a lab stand-in tool answered, as the real tool would, and exits with
/// its code.
fn shim(printer: &Printer, out: kastellan_lab::packages::ShimOutput) -> Result<Outcome> {
    printer.raw(&out.stdout)?;
    for line in out.stderr.lines() {
        printer.note(line);
    }
    std::process::exit(out.code);
}

/// The build script ships with the repository; look beside the binary's source tree
/// and in the current directory.
fn find_build_script() -> Result<PathBuf> {
    let candidates = [
        std::env::var_os("KASTELLAN_REPO")
            .map(|r| PathBuf::from(r).join("scripts/build-kubernetes.sh")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-kubernetes.sh")),
        Some(PathBuf::from("scripts/build-kubernetes.sh")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .context("scripts/build-kubernetes.sh not found: run from the kastellan repository or set KASTELLAN_REPO")
}

fn role_name(role: kastellan_lab::NodeRole) -> &'static str {
    match role {
        kastellan_lab::NodeRole::ControlPlane => "control-plane",
        kastellan_lab::NodeRole::Worker => "worker",
    }
}

/// What `lab env` prints: the kubeconfig, and with `--ssh` the ssh config and the
/// inventory (for `ssh -F` and for `--node-access ssh`).
#[derive(Serialize)]
struct EnvReport {
    kubeconfig: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_config: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inventory: Option<PathBuf>,
}

impl EnvReport {
    fn lines(&self) -> Vec<String> {
        let mut v = vec![format!("export KUBECONFIG={}", self.kubeconfig.display())];
        if let (Some(config), Some(inventory)) = (&self.ssh_config, &self.inventory) {
            v.push(format!("export KASTELLAN_SSH_CONFIG={}", config.display()));
            v.push(format!(
                "export KASTELLAN_INVENTORY={}",
                inventory.display()
            ));
            v.push(format!(
                "# every node runs sshd: ssh -F {} cp1; kastellan status --node-access ssh",
                config.display()
            ));
        }
        v
    }
}

/// The environment of the lab as it is (ssh lines only when it runs with `--ssh`).
fn env_report() -> EnvReport {
    let ssh = kastellan_lab::LabState::load()
        .ok()
        .flatten()
        .is_some_and(|s| s.spec.ssh)
        .then(kastellan_lab::ssh_files);
    EnvReport {
        kubeconfig: kastellan_lab::kubeconfig_path(),
        ssh_config: ssh.as_ref().map(|f| f.config.clone()),
        inventory: ssh.map(|f| f.inventory),
    }
}

impl Report for EnvReport {
    fn render(&self, out: &mut String, _style: &Style) {
        for line in self.lines() {
            out.push_str(&line);
            out.push('\n');
        }
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct StatusReport(LabStatus);

impl Report for StatusReport {
    fn render(&self, out: &mut String, style: &Style) {
        let s = &self.0;
        out.push_str(&format!("lab: {}\n", s.spec.describe()));
        out.push_str(&format!("kubelet: {}\n", s.kubelet));
        out.push_str(&format!("kubeconfig: {}\n\n", s.kubeconfig.display()));
        let mut t = Table::new(["NODE", "ROLE", "IP", "COMPONENT", "ENDPOINT", "STATE"]);
        for n in &s.nodes {
            let role = role_name(n.node.role).to_string();
            let agent = if n.agent_running {
                style.good(&format!(
                    "running (pid {})",
                    n.agent_pid.unwrap_or_default()
                ))
            } else {
                style.bad("not running")
            };
            t.row([
                n.node.name.clone(),
                role.clone(),
                n.node.ip.clone(),
                "agent (kubelet stand-in)".into(),
                String::new(),
                agent,
            ]);
            if let Some(pid) = n.sshd_pid {
                t.row([
                    n.node.name.clone(),
                    role.clone(),
                    n.node.ip.clone(),
                    "sshd".into(),
                    format!("{}:22", n.node.ip),
                    if n.sshd_running {
                        style.good(&format!("running (pid {pid})"))
                    } else {
                        style.bad("not running")
                    },
                ]);
            }
            if let Some(r) = &n.reported {
                t.row([
                    n.node.name.clone(),
                    role.clone(),
                    n.node.ip.clone(),
                    "Node".into(),
                    String::new(),
                    if r.registered {
                        style.good("registered")
                    } else {
                        style.warn("not registered")
                    },
                ]);
                for p in &r.probes {
                    let state = if p.ok {
                        style.good("ok")
                    } else {
                        style.bad(&format!("down: {}", p.detail))
                    };
                    t.row([
                        n.node.name.clone(),
                        role.clone(),
                        n.node.ip.clone(),
                        p.component.clone(),
                        p.url.clone(),
                        state,
                    ]);
                }
            }
        }
        t.render_into(out, style);
        if let Some(f) = &s.ssh {
            out.push_str(&format!(
                "\nssh: ssh -F {} NODE (inventory {})\n",
                f.config.display(),
                f.inventory.display()
            ));
        }
    }
}

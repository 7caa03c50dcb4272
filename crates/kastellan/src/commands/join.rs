//! `kastellan join-command`: the `kubeadm join` line for a new node, and for a control
//! plane the encrypted certificate upload `kubeadm init phase upload-certs
//! --upload-certs` makes. What to write comes from `kastellan-bootstrap`; this module
//! reads the cluster, sends the writes (with the apiserver's dry run under
//! `--dry-run`) and reports.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kastellan_bootstrap::certs::{self, CertificateKey};
use kastellan_bootstrap::discovery::{self, KubeadmConfig};
use kastellan_bootstrap::join::JoinCommand;
use kastellan_bootstrap::secret::{self, NAMESPACE, TokenSpec};
use kastellan_bootstrap::token::{DEFAULT_GROUP, Token, Usage};
use kastellan_printer::{Format, Printer, Report, Style};
use kube::Api;
use serde::Serialize;

use super::kube::Kube;
use super::token::{create_secret, post, secrets};
use crate::Outcome;
use crate::cli::{GlobalArgs, JoinCommandArgs};

/// The default PKI directory of a kubeadm node.
const DEFAULT_CERT_DIR: &str = "/etc/kubernetes/pki";

/// What the cluster says about joining it: its CA pins, its endpoints, kubeadm's
/// ClusterConfiguration.
pub(super) struct Discovery {
    /// The CA pins.
    pub ca_cert_hashes: Vec<String>,
    /// Where the CA came from (for the report).
    pub ca_source: String,
    /// The server of cluster-info (or of the kubeconfig, without cluster-info).
    pub server_endpoint: String,
    /// kubeadm's ClusterConfiguration (empty without kubeadm-config).
    pub config: KubeadmConfig,
}

impl Discovery {
    /// Reads cluster-info and kubeadm-config; without cluster-info, the CA is read
    /// from `cert_dir` (else the ClusterConfiguration's, else kubeadm's default).
    pub async fn read(kube: &Kube, cert_dir: Option<&Path>) -> Result<Discovery> {
        let config = match Api::<ConfigMap>::namespaced(kube.client.clone(), NAMESPACE)
            .get_opt("kubeadm-config")
            .await
            .context("reading ConfigMap kube-system/kubeadm-config")?
            .and_then(|c| c.data)
            .and_then(|mut d| d.remove("ClusterConfiguration"))
        {
            Some(text) => discovery::kubeadm_config(&text)?,
            None => KubeadmConfig::default(),
        };
        let info =
            Api::<ConfigMap>::namespaced(kube.client.clone(), discovery::CLUSTER_INFO_NAMESPACE)
                .get_opt(discovery::CLUSTER_INFO)
                .await
                .context("reading ConfigMap kube-public/cluster-info")?
                .and_then(|c| c.data)
                .and_then(|mut d| d.remove(discovery::CLUSTER_INFO_KEY));
        let (ca_pem, ca_source, server_endpoint) = match info {
            Some(kc) => {
                let ci = discovery::cluster_info(&kc, "ConfigMap kube-public/cluster-info")?;
                let endpoint = ci.endpoint();
                (
                    ci.ca_pem,
                    "ConfigMap kube-public/cluster-info".to_string(),
                    endpoint,
                )
            }
            None => {
                let path = cert_dir_of(cert_dir, &config).join("ca.crt");
                let pem = std::fs::read(&path).with_context(|| {
                    format!(
                        "the cluster has no ConfigMap kube-public/cluster-info, and reading {} failed",
                        path.display()
                    )
                })?;
                (
                    pem,
                    path.display().to_string(),
                    discovery::endpoint_of(&kube.config.cluster_url.to_string()),
                )
            }
        };
        Ok(Discovery {
            ca_cert_hashes: discovery::ca_cert_hashes(&ca_pem, &ca_source)?,
            ca_source,
            server_endpoint,
            config,
        })
    }

    /// The join command with `token`: the endpoint given, else controlPlaneEndpoint,
    /// else cluster-info's server.
    pub fn command(
        &self,
        endpoint: Option<&str>,
        token: Token,
        certificate_key: Option<CertificateKey>,
    ) -> JoinCommand {
        JoinCommand {
            endpoint: endpoint
                .map(str::to_string)
                .or_else(|| self.config.control_plane_endpoint.clone())
                .unwrap_or_else(|| self.server_endpoint.clone()),
            token,
            ca_cert_hashes: self.ca_cert_hashes.clone(),
            control_plane: certificate_key.is_some(),
            certificate_key,
        }
    }
}

fn cert_dir_of(given: Option<&Path>, config: &KubeadmConfig) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(|| {
        PathBuf::from(
            config
                .certificates_dir
                .as_deref()
                .unwrap_or(DEFAULT_CERT_DIR),
        )
    })
}

/// Runs `join-command`.
pub fn run(args: JoinCommandArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let rt = super::runtime()?;
    rt.block_on(async {
        let kube = super::kube::client(global, None, super::kube::READ_TIMEOUT).await?;
        join_command(&kube, &args, printer).await
    })
}

/// What `join-command` did or would do, and the command.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinReport {
    dry_run: bool,
    /// The API writes, in order ("created Secret ...", "would create ...").
    steps: Vec<String>,
    /// Why nothing was done (then there is no command).
    refused: Vec<String>,
    /// Where the CA pin came from.
    ca_source: String,
    /// The command: with the secrets for a real run, with placeholders for a dry run.
    command: Option<String>,
    /// Its parts (a real run only).
    #[serde(skip_serializing_if = "Option::is_none")]
    join: Option<JoinCommand>,
}

impl Report for JoinReport {
    fn render(&self, out: &mut String, style: &Style) {
        if !self.refused.is_empty() {
            let _ = writeln!(out, "{} no join command:", style.bad("refused"));
            for why in &self.refused {
                let _ = writeln!(out, "  - {why}");
            }
            return;
        }
        if self.dry_run {
            let _ = writeln!(out, "dry run (nothing was created):");
            for s in &self.steps {
                let _ = writeln!(out, "  {s}");
            }
            if let Some(c) = &self.command {
                let _ = writeln!(out, "then the node would run:\n  {c}");
            }
            return;
        }
        if let Some(c) = &self.command {
            let _ = writeln!(out, "{c}");
        }
    }
}

/// Creates `obj`, or replaces the one of that name (kubeadm's CreateOrUpdate).
async fn create_or_replace<K>(api: &Api<K>, obj: &K, dry_run: bool) -> Result<&'static str>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let kind = K::kind(&()).to_string();
    match api.create(&post(dry_run), obj).await {
        Ok(_) => Ok("create"),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let current = api
                .get(&name)
                .await
                .with_context(|| format!("reading {kind} {NAMESPACE}/{name}"))?;
            let mut obj = obj.clone();
            obj.meta_mut().resource_version = current.meta().resource_version.clone();
            api.replace(&name, &post(dry_run), &obj)
                .await
                .with_context(|| format!("replacing {kind} {NAMESPACE}/{name}"))?;
            Ok("replace")
        }
        Err(e) => Err(e).with_context(|| format!("creating {kind} {NAMESPACE}/{name}")),
    }
}

fn did(dry_run: bool, verb: &str) -> String {
    match (dry_run, verb) {
        (true, v) => format!("would {v}"),
        (false, "create") => "created".into(),
        (false, "replace") => "replaced".into(),
        (false, v) => format!("{v}d"),
    }
}

/// The writes of `join-command`, in order: the join token (unless given), then for a
/// control plane the owner token, kubeadm-certs, the Role and the RoleBinding. Each
/// write is described in `steps`; the token Secrets made are named in `created`.
/// Returns the token, whether it is new, and the certificate key.
async fn write(
    client: &kube::Client,
    args: &JoinCommandArgs,
    files: &[(String, Option<Vec<u8>>)],
    now: Timestamp,
    steps: &mut Vec<String>,
    created: &mut Vec<String>,
) -> Result<(Token, bool, Option<CertificateKey>)> {
    let (token, new_token) = match &args.token {
        Some(t) => (t.clone(), false),
        None => {
            let spec = TokenSpec {
                token: Token::generate()?,
                description: Some(if args.control_plane {
                    "kastellan join-command --control-plane".into()
                } else {
                    "kastellan join-command".into()
                }),
                expires: secret::expiry(now, SignedDuration::from_hours(24)),
                usages: Usage::ALL.to_vec(),
                groups: vec![DEFAULT_GROUP.parse()?],
            };
            create_secret(client, &spec, args.dry_run).await?;
            created.push(spec.token.id().secret_name());
            steps.push(format!(
                "{} Secret {NAMESPACE}/{} (join token, 24h)",
                did(args.dry_run, "create"),
                spec.token.id().secret_name()
            ));
            (spec.token, true)
        }
    };
    let key = if args.control_plane {
        let key = CertificateKey::generate()?;
        let owner = certs::owner_token(now)?;
        let stored = create_secret(client, &owner, args.dry_run).await?;
        let owner_name = owner.token.id().secret_name();
        created.push(owner_name.clone());
        steps.push(format!(
            "{} Secret {NAMESPACE}/{owner_name} (owner of {}, 2h)",
            did(args.dry_run, "create"),
            certs::SECRET_NAME
        ));
        let uid = stored
            .metadata
            .uid
            .clone()
            .context("the apiserver gave the token's Secret no uid")?;
        let secret = certs::secret(files, &key, certs::owner_reference(&owner_name, &uid))?;
        let verb = create_or_replace(&secrets(client), &secret, args.dry_run).await?;
        steps.push(format!(
            "{} Secret {NAMESPACE}/{} ({} files encrypted with AES-256-GCM; deleted with its owner)",
            did(args.dry_run, verb),
            certs::SECRET_NAME,
            files.iter().filter(|(_, c)| c.is_some()).count()
        ));
        let verb = create_or_replace(
            &Api::<Role>::namespaced(client.clone(), NAMESPACE),
            &certs::role(),
            args.dry_run,
        )
        .await?;
        steps.push(format!(
            "{} Role {NAMESPACE}/{} (get Secret {})",
            did(args.dry_run, verb),
            certs::RBAC_NAME,
            certs::SECRET_NAME
        ));
        let verb = create_or_replace(
            &Api::<RoleBinding>::namespaced(client.clone(), NAMESPACE),
            &certs::role_binding(),
            args.dry_run,
        )
        .await?;
        steps.push(format!(
            "{} RoleBinding {NAMESPACE}/{} (group {DEFAULT_GROUP})",
            did(args.dry_run, verb),
            certs::RBAC_NAME
        ));
        Some(key)
    } else {
        None
    };
    Ok((token, new_token, key))
}

async fn join_command(kube: &Kube, args: &JoinCommandArgs, printer: &Printer) -> Result<Outcome> {
    let client = &kube.client;
    let d = Discovery::read(kube, args.cert_dir.as_deref()).await?;
    let now = Timestamp::now();
    let mut refused = Vec::new();
    if let Some(t) = &args.token {
        let name = t.id().secret_name();
        let Some(s) = secrets(client)
            .get_opt(&name)
            .await
            .with_context(|| format!("reading Secret {NAMESPACE}/{name}"))?
        else {
            bail!("no bootstrap token {} in the cluster", t.id());
        };
        refused.extend(secret::join_refusals(&s, t, args.control_plane, now));
    }
    if args.control_plane && d.config.control_plane_endpoint.is_none() {
        refused.push(
            "the cluster's ClusterConfiguration has no controlPlaneEndpoint: kubeadm adds no \
             control plane to a cluster without a stable endpoint for all of them"
                .into(),
        );
    }
    // Every file is read before anything is written.
    let files = if args.control_plane {
        let dir = cert_dir_of(args.cert_dir.as_deref(), &d.config);
        let mut read = Vec::new();
        for f in certs::files(&dir, d.config.external_etcd.as_ref()) {
            match std::fs::read(&f.path) {
                Ok(c) => read.push((f.key, Some(c))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    printer.warn(format!(
                        "{} does not exist: {} is uploaded empty, and a control plane joining \
                         with it will lack the file",
                        f.path.display(),
                        f.key
                    ));
                    read.push((f.key, None));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {}", f.path.display()));
                }
            }
        }
        read
    } else {
        Vec::new()
    };
    if !refused.is_empty() {
        printer.report(&JoinReport {
            dry_run: args.dry_run,
            steps: Vec::new(),
            refused,
            ca_source: d.ca_source,
            command: None,
            join: None,
        })?;
        return Ok(Outcome::Unhealthy);
    }

    let mut steps = Vec::new();
    // The tokens this run created: removed again if a later write fails (the owner's
    // removal takes kubeadm-certs with it).
    let mut created: Vec<String> = Vec::new();
    let written = write(client, args, &files, now, &mut steps, &mut created).await;
    let (token, new_token, key) = match written {
        Ok(w) => w,
        Err(e) if !args.dry_run && !created.is_empty() => {
            let api = secrets(client);
            let mut undone = Vec::new();
            for name in &created {
                if api.delete(name, &Default::default()).await.is_ok() {
                    undone.push(name.clone());
                }
            }
            return Err(e.context(format!(
                "the Secrets it had created were removed again: {}",
                undone.join(", ")
            )));
        }
        Err(e) => return Err(e),
    };
    let join = d.command(args.endpoint.as_deref(), token, key);
    let mut command = join.to_string();
    if args.dry_run {
        if new_token {
            command = command.replace(&join.token.to_string(), "<new token>");
        }
        if let Some(k) = &join.certificate_key {
            command = command.replace(&k.to_string(), "<new key>");
        }
    }
    let report = JoinReport {
        dry_run: args.dry_run,
        steps,
        refused: Vec::new(),
        ca_source: d.ca_source,
        command: Some(command),
        join: (!args.dry_run).then_some(join),
    };
    if !args.dry_run && matches!(printer.format(), Format::Table | Format::Wide) {
        for s in &report.steps {
            printer.note(s);
        }
        // The command alone on stdout, even with --quiet: it was asked for.
        printer.raw(printer.render(&report)?)?;
    } else {
        printer.report(&report)?;
    }
    if args.control_plane && !args.dry_run {
        printer.warn(
            "the certificate key decrypts the cluster's CA keys for 2 hours: treat it as a \
             secret. It is not stored anywhere and will not be shown again.",
        );
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_dir_comes_from_the_flag_then_the_cluster_then_kubeadms_default() {
        let mut c = KubeadmConfig::default();
        assert_eq!(cert_dir_of(None, &c), Path::new("/etc/kubernetes/pki"));
        c.certificates_dir = Some("/srv/pki".into());
        assert_eq!(cert_dir_of(None, &c), Path::new("/srv/pki"));
        assert_eq!(cert_dir_of(Some(Path::new("/x")), &c), Path::new("/x"));
    }
}

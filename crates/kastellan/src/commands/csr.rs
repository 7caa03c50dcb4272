//! `kastellan csr list|approve`: CertificateSigningRequests, and the approval of
//! kubelet serving requests only for the node's own names and addresses.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::api::core::v1::Node;
use kastellan_pki::csr::{self, NodeAddresses, Request};
use kastellan_printer::{Printer, Report, Style, Table};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{CsrApproveArgs, CsrCommand, GlobalArgs};

/// Runs `csr ...`.
pub fn run(cmd: CsrCommand, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let rt = super::runtime()?;
    rt.block_on(async {
        let client = super::kube::client(global, None, super::kube::READ_TIMEOUT)
            .await?
            .client;
        match cmd {
            CsrCommand::List => list(&client, printer).await,
            CsrCommand::Approve(args) => approve(&client, &args, printer).await,
        }
    })
}

/// One CSR as listed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    name: String,
    signer: String,
    requester: String,
    age_secs: i64,
    condition: String,
}

#[derive(Serialize)]
struct Listed(Vec<Row>);

impl Report for Listed {
    fn render(&self, out: &mut String, style: &Style) {
        if self.0.is_empty() {
            out.push_str("no CertificateSigningRequests\n");
            return;
        }
        let mut t = Table::new(["NAME", "SIGNER", "REQUESTER", "AGE", "CONDITION"]);
        for r in &self.0 {
            t.row([
                r.name.clone(),
                r.signer
                    .strip_prefix("kubernetes.io/")
                    .unwrap_or(&r.signer)
                    .to_string(),
                r.requester.clone(),
                age(r.age_secs),
                r.condition.clone(),
            ]);
        }
        t.render_into(out, style);
    }
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Approved, Denied, Failed or Pending (and Issued once signed).
fn condition(c: &CertificateSigningRequest) -> String {
    let status = c.status.as_ref();
    let mut kinds: Vec<String> = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.status == "True")
        .map(|c| c.type_.clone())
        .collect();
    if kinds.is_empty() {
        kinds.push("Pending".into());
    }
    if status.and_then(|s| s.certificate.as_ref()).is_some() {
        kinds.push("Issued".into());
    }
    kinds.join(",")
}

async fn list(client: &kube::Client, printer: &Printer) -> Result<Outcome> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let now = jiff::Timestamp::now();
    let mut rows: Vec<Row> = api
        .list(&ListParams::default())
        .await
        .context("listing CertificateSigningRequests")?
        .items
        .iter()
        .map(|c| Row {
            name: c.metadata.name.clone().unwrap_or_default(),
            signer: c.spec.signer_name.clone(),
            requester: c.spec.username.clone().unwrap_or_default(),
            age_secs: c
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| now.as_second() - t.0.as_second())
                .unwrap_or(0),
            condition: condition(c),
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.condition != "Pending", a.age_secs).cmp(&(b.condition != "Pending", b.age_secs))
    });
    printer.report(&Listed(rows))?;
    Ok(Outcome::Ok)
}

/// What `approve` did (or would do) with one CSR.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Decision {
    name: String,
    requester: String,
    requested: Option<csr::Requested>,
    approved: bool,
    refused: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Decisions {
    dry_run: bool,
    csrs: Vec<Decision>,
}

impl Report for Decisions {
    fn render(&self, out: &mut String, style: &Style) {
        if self.csrs.is_empty() {
            out.push_str("no pending kubelet serving CSR\n");
        }
        for d in &self.csrs {
            let names = d
                .requested
                .as_ref()
                .map(|r| {
                    r.dns
                        .iter()
                        .cloned()
                        .chain(r.ips.iter().map(|i| i.to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            if d.refused.is_empty() {
                let verb = if self.dry_run {
                    "would approve"
                } else {
                    "approved"
                };
                let _ = writeln!(
                    out,
                    "{} {} from {} for {names}",
                    style.good(verb),
                    d.name,
                    d.requester
                );
            } else {
                let _ = writeln!(
                    out,
                    "{} {} from {} for {names}:",
                    style.bad("refused"),
                    d.name,
                    d.requester
                );
                for why in &d.refused {
                    let _ = writeln!(out, "  - {why}");
                }
            }
        }
    }
}

fn addresses(n: &Node) -> NodeAddresses {
    let mut a = NodeAddresses::default();
    for addr in n
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
    {
        match addr.type_.as_str() {
            "InternalIP" | "ExternalIP" => {
                if let Ok(ip) = addr.address.parse() {
                    a.ips.push(ip);
                }
            }
            _ => a.names.push(addr.address.clone()),
        }
    }
    a
}

async fn approve(
    client: &kube::Client,
    args: &CsrApproveArgs,
    printer: &Printer,
) -> Result<Outcome> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let all = api
        .list(&ListParams::default())
        .await
        .context("listing CertificateSigningRequests")?
        .items;
    for n in &args.names {
        if !all.iter().any(|c| c.metadata.name.as_deref() == Some(n)) {
            anyhow::bail!("no CertificateSigningRequest {n}; nothing was approved");
        }
    }
    let mut decisions = Vec::new();
    for c in all {
        let name = c.metadata.name.clone().unwrap_or_default();
        let named = args.names.contains(&name);
        let pending = condition(&c) == "Pending";
        if !(named || (args.names.is_empty() && c.spec.signer_name == csr::KUBELET_SERVING)) {
            continue;
        }
        if !pending {
            if named {
                decisions.push(Decision {
                    name,
                    requester: c.spec.username.clone().unwrap_or_default(),
                    requested: None,
                    approved: false,
                    refused: vec![format!("it is not pending: {}", condition(&c))],
                });
            }
            continue;
        }
        let username = c.spec.username.clone().unwrap_or_default();
        let groups = c.spec.groups.clone().unwrap_or_default();
        let usages = c.spec.usages.clone().unwrap_or_default();
        let (requested, mut refused) = match csr::requested(&c.spec.request.0) {
            Ok(r) => (Some(r), Vec::new()),
            Err(e) => (None, vec![format!("its request cannot be read: {e}")]),
        };
        if let Some(r) = &requested {
            let node = match username.strip_prefix("system:node:") {
                Some(n) => nodes
                    .get_opt(n)
                    .await
                    .with_context(|| format!("reading Node {n}"))?,
                None => None,
            };
            refused = csr::refusals(
                &Request {
                    signer: &c.spec.signer_name,
                    username: &username,
                    groups: &groups,
                    usages: &usages,
                    requested: r,
                },
                node.as_ref().map(addresses).as_ref(),
            );
        }
        let approved = refused.is_empty() && !args.dry_run;
        if approved {
            let mut status = c.status.clone().unwrap_or_default();
            status.conditions.get_or_insert_with(Vec::new).push(
                CertificateSigningRequestCondition {
                    type_: "Approved".into(),
                    status: "True".into(),
                    reason: Some("KastellanKubeletServing".into()),
                    message: Some(
                        "approved by kastellan: the node's own names and addresses".into(),
                    ),
                    ..Default::default()
                },
            );
            let mut body = c.clone();
            body.status = Some(status);
            api.replace_subresource("approval", &name, &PostParams::default(), &body)
                .await
                .with_context(|| format!("approving {name}"))?;
        }
        decisions.push(Decision {
            name,
            requester: username,
            requested,
            approved,
            refused,
        });
    }
    let refused = decisions.iter().any(|d| !d.refused.is_empty());
    printer.report(&Decisions {
        dry_run: args.dry_run,
        csrs: decisions,
    })?;
    Ok(if refused {
        Outcome::Unhealthy
    } else {
        Outcome::Ok
    })
}

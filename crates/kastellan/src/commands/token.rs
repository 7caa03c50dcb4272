//! `kastellan token create|list|delete`: kubeadm's bootstrap tokens, as Secrets in
//! kube-system. The tokens and their Secrets come from `kastellan-bootstrap`; this
//! module reads and writes them through the API and reports.
//!
//! Every write is one API call; `--dry-run` sends the same call with the apiserver's
//! own dry run, so what a dry run checks is what a real run does, and nothing is stored.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kastellan_bootstrap::secret::{self, Life, ListedToken, NAMESPACE, SECRET_TYPE, TokenSpec};
use kastellan_bootstrap::token::{Token, TokenId};
use kastellan_printer::{Format, Printer, Report, Style, Table};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{GlobalArgs, TokenCommand, TokenCreateArgs, TokenDeleteArgs};

/// Runs `token ...`.
pub fn run(cmd: TokenCommand, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let rt = super::runtime()?;
    rt.block_on(async {
        let kube = super::kube::client(global, None, super::kube::READ_TIMEOUT).await?;
        let client = kube.client.clone();
        match cmd {
            TokenCommand::Create(args) => create(&kube, args, printer).await,
            TokenCommand::List => list(&client, printer).await,
            TokenCommand::Delete(args) => delete(&client, &args, printer).await,
        }
    })
}

/// The Secrets API of kube-system.
pub(super) fn secrets(client: &kube::Client) -> Api<Secret> {
    Api::namespaced(client.clone(), NAMESPACE)
}

/// Create or replace parameters: the apiserver's dry run when asked.
pub(super) fn post(dry_run: bool) -> PostParams {
    PostParams {
        dry_run,
        field_manager: Some("kastellan".into()),
    }
}

/// Creates a token's Secret (with the apiserver's dry run when `dry_run`), refusing
/// one whose ID is taken, as kubeadm does. Returns the Secret as stored (or as it
/// would be).
pub(super) async fn create_secret(
    client: &kube::Client,
    spec: &TokenSpec,
    dry_run: bool,
) -> Result<Secret> {
    let api = secrets(client);
    let name = spec.token.id().secret_name();
    match api.create(&post(dry_run), &spec.secret()).await {
        Ok(s) => Ok(s),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            bail!(
                "a bootstrap token with ID {} already exists (Secret {NAMESPACE}/{name})",
                spec.token.id()
            )
        }
        Err(e) => Err(e).with_context(|| format!("creating Secret {NAMESPACE}/{name}")),
    }
}

/// A TTL as kubectl and kubeadm print ages: `45s`, `59m`, `23h`, `6d`.
pub(super) fn short(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The warning for a token that never expires.
pub(super) const FOREVER_WARNING: &str = "this token never expires (TTL 0): it lets anyone who \
     holds it join nodes until it is deleted (kastellan token delete ID)";

/// What `token create` made (or would make).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    dry_run: bool,
    /// The whole token: printed once, here.
    token: Token,
    id: TokenId,
    secret: String,
    expires: Option<Timestamp>,
    usages: Vec<kastellan_bootstrap::token::Usage>,
    groups: Vec<kastellan_bootstrap::token::Group>,
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    join_command: Option<String>,
}

impl Report for Created {
    fn render(&self, out: &mut String, _style: &Style) {
        if self.dry_run {
            let _ = writeln!(
                out,
                "dry run: would create Secret {NAMESPACE}/{} (token ID {}, expires {}, usages {}, groups {})",
                self.secret,
                self.id,
                self.expires.map_or("never".into(), secret::rfc3339),
                join(&self.usages),
                join(&self.groups),
            );
            return;
        }
        match &self.join_command {
            Some(j) => out.push_str(j),
            None => out.push_str(&self.token.to_string()),
        }
        out.push('\n');
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "(none)".into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

async fn create(
    kube: &super::kube::Kube,
    args: TokenCreateArgs,
    printer: &Printer,
) -> Result<Outcome> {
    let client = &kube.client;
    let ttl = SignedDuration::try_from(args.ttl).context("--ttl is too long")?;
    let token = match args.token {
        Some(t) => t,
        None => Token::generate()?,
    };
    let now = Timestamp::now();
    let expires = secret::expiry(now, ttl);
    if expires.is_none() && !ttl.is_zero() {
        bail!("--ttl {ttl:#} reaches past the year 9999");
    }
    let spec = TokenSpec {
        token,
        description: args.description,
        expires,
        usages: args.usages,
        groups: args.groups,
    };
    if spec.expires.is_none() {
        printer.warn(FOREVER_WARNING);
    }
    // The join command is worked out before the token exists: if the cluster cannot
    // give one, nothing is created.
    let join_command = if args.print_join_command {
        let facts = super::join::Discovery::read(kube, None).await?;
        Some(facts.command(None, spec.token.clone(), None).to_string())
    } else {
        None
    };
    create_secret(client, &spec, args.dry_run).await?;
    let created = Created {
        dry_run: args.dry_run,
        id: spec.token.id().clone(),
        secret: spec.token.id().secret_name(),
        token: spec.token,
        expires: spec.expires,
        usages: spec.usages,
        groups: spec.groups,
        description: spec.description,
        join_command,
    };
    if !args.dry_run && matches!(printer.format(), Format::Table | Format::Wide) {
        // The token (or the command) alone on stdout, even with --quiet: it was asked
        // for, and is not shown again.
        printer.raw(printer.render(&created)?)?;
        printer.note(format!(
            "created Secret {NAMESPACE}/{}; expires {}",
            created.secret,
            created.expires.map_or("never".into(), secret::rfc3339)
        ));
    } else {
        printer.report(&created)?;
    }
    Ok(Outcome::Ok)
}

/// One token as `token list` shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    #[serde(flatten)]
    token: ListedToken,
    life: Life,
}

/// A bootstrap token Secret that the authenticator would not accept.
#[derive(Serialize)]
struct Unreadable {
    secret: String,
    problem: String,
}

#[derive(Serialize)]
struct Listed {
    tokens: Vec<Row>,
    unreadable: Vec<Unreadable>,
}

impl Report for Listed {
    fn render(&self, out: &mut String, style: &Style) {
        if self.tokens.is_empty() {
            out.push_str("no bootstrap tokens\n");
        } else {
            let mut t = Table::new(["ID", "TTL", "EXPIRES", "USAGES", "GROUPS", "DESCRIPTION"]);
            for r in &self.tokens {
                let ttl = match r.life {
                    Life::Forever => style.warn("<forever>"),
                    Life::Valid { seconds_left } => short(seconds_left),
                    Life::Expired { seconds_ago } => {
                        style.bad(&format!("expired {} ago", short(seconds_ago)))
                    }
                };
                t.row([
                    r.token.id.to_string(),
                    ttl,
                    r.token.expires.map_or("<never>".into(), secret::rfc3339),
                    join(&r.token.usages),
                    if r.token.groups.is_empty() {
                        "(none)".into()
                    } else {
                        r.token.groups.join(",")
                    },
                    r.token.description.clone().unwrap_or_default(),
                ]);
            }
            t.render_into(out, style);
        }
        for u in &self.unreadable {
            let _ = writeln!(out, "{}: {}", style.bad("unusable"), u.problem);
        }
    }
}

/// Every bootstrap token Secret in kube-system.
async fn all(client: &kube::Client) -> Result<Vec<Secret>> {
    Ok(secrets(client)
        .list(&ListParams::default().fields(&format!("type={SECRET_TYPE}")))
        .await
        .context("listing the bootstrap token Secrets of kube-system")?
        .items)
}

async fn list(client: &kube::Client, printer: &Printer) -> Result<Outcome> {
    let now = Timestamp::now();
    let mut tokens = Vec::new();
    let mut unreadable = Vec::new();
    for s in all(client).await? {
        match ListedToken::from_secret(&s) {
            Ok(token) => tokens.push(Row {
                life: token.life(now),
                token,
            }),
            Err(e) => unreadable.push(Unreadable {
                secret: s.metadata.name.clone().unwrap_or_default(),
                problem: e.to_string(),
            }),
        }
    }
    tokens.sort_by(|a, b| a.token.id.cmp(&b.token.id));
    printer.report(&Listed { tokens, unreadable })?;
    Ok(Outcome::Ok)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Deleted {
    dry_run: bool,
    ids: Vec<TokenId>,
}

impl Report for Deleted {
    fn render(&self, out: &mut String, style: &Style) {
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        for id in &self.ids {
            let _ = writeln!(
                out,
                "{} bootstrap token {id} (Secret {NAMESPACE}/{})",
                style.good(verb),
                id.secret_name()
            );
        }
    }
}

async fn delete(
    client: &kube::Client,
    args: &TokenDeleteArgs,
    printer: &Printer,
) -> Result<Outcome> {
    let api = secrets(client);
    let mut ids: Vec<TokenId> = Vec::new();
    for id in &args.ids {
        if ids.contains(id) {
            continue;
        }
        let name = id.secret_name();
        match api
            .get_opt(&name)
            .await
            .with_context(|| format!("reading Secret {NAMESPACE}/{name}"))?
        {
            Some(s) if s.type_.as_deref() == Some(SECRET_TYPE) => ids.push(id.clone()),
            Some(_) => {
                bail!("Secret {NAMESPACE}/{name} is not of type {SECRET_TYPE}; nothing was deleted")
            }
            None => bail!("no bootstrap token {id}; nothing was deleted"),
        }
    }
    let params = DeleteParams {
        dry_run: args.dry_run,
        ..DeleteParams::default()
    };
    for id in &ids {
        let name = id.secret_name();
        api.delete(&name, &params)
            .await
            .with_context(|| format!("deleting Secret {NAMESPACE}/{name}"))?;
    }
    printer.report(&Deleted {
        dry_run: args.dry_run,
        ids,
    })?;
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed() -> Listed {
        let now: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let spec = |id: &str, expires: Option<&str>| TokenSpec {
            token: Token::from_parts(id, "0123456789abcdef").unwrap(),
            description: Some(format!("token {id}")),
            expires: expires.map(|e| e.parse().unwrap()),
            usages: kastellan_bootstrap::token::Usage::ALL.to_vec(),
            groups: Vec::new(),
        };
        let tokens = [
            spec("aaaaaa", Some("2026-12-02T12:00:00Z")),
            spec("bbbbbb", Some("2020-01-01T00:00:00Z")),
            spec("cccccc", None),
        ]
        .iter()
        .map(|s| {
            let token = ListedToken::from_secret(&s.secret()).unwrap();
            Row {
                life: token.life(now),
                token,
            }
        })
        .collect();
        Listed {
            tokens,
            unreadable: vec![Unreadable {
                secret: "bootstrap-token-dddddd".into(),
                problem: "Secret bootstrap-token-dddddd: no token-id".into(),
            }],
        }
    }

    #[test]
    fn the_list_flags_expired_and_forever_and_hides_secrets() {
        let l = listed();
        let mut table = String::new();
        l.render(&mut table, &Style::plain());
        let row = |id: &str| table.lines().find(|r| r.contains(id)).unwrap().to_string();
        assert!(row("aaaaaa").contains(" 2h "), "{table}");
        assert!(row("bbbbbb").contains("expired 2527d ago"), "{table}");
        assert!(row("cccccc").contains("<forever>") && row("cccccc").contains("<never>"));
        assert!(table.contains("unusable: Secret bootstrap-token-dddddd: no token-id"));
        for format in [Format::Json, Format::Yaml] {
            let text = Printer::new(format, false).render(&l).unwrap();
            assert!(!text.contains("0123456789abcdef"), "{text}");
            assert!(
                text.contains("expired") && text.contains("secondsAgo"),
                "{text}"
            );
        }
        assert!(!table.contains("0123456789abcdef"));
    }

    #[test]
    fn ttls_read_like_kubeadms() {
        assert_eq!(short(59), "59s");
        assert_eq!(short(3599), "59m");
        assert_eq!(short(86_399), "23h");
        assert_eq!(short(6 * 86_400), "6d");
    }
}

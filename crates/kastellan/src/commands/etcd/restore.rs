//! `kastellan etcd snapshot restore`: the native restore of `kastellan-restore`.
//!
//! JSON (`-o json`): the plan (`snapshot`, `target` {`kind`: new|empty, `path`},
//! `hash` {`state`: verified|skipped}, `member`, `clusterId`, `members`,
//! `initialCluster`, `initialClusterToken`, `clusterVersion`, `revision`,
//! `bumpedRevision`, `raftIndex`, `raftTerm`, `files`), plus `dryRun` and, after a
//! restore, `backend` {`revisions`, `totalKeys`, `pages`, `size`}. With
//! `--print-member-commands`: `{"members": [{"member", "argv", "command"}]}`.

use std::fmt::Write as _;

use anyhow::Result;
use kastellan_printer::{Printer, Report, Style, Table};
use kastellan_restore::{CopyStats, HashCheck, MemberCommand, Plan, Request, Target};
use serde::Serialize;

use crate::Outcome;
use crate::cli::SnapshotRestoreArgs;

/// Runs `etcd snapshot restore`.
pub fn run(args: SnapshotRestoreArgs, printer: &Printer) -> Result<Outcome> {
    let req = Request {
        snapshot: args.file,
        data_dir: args.data_dir,
        name: args.name,
        initial_cluster: args.initial_cluster,
        initial_cluster_token: args.initial_cluster_token,
        initial_advertise_peer_urls: args.initial_advertise_peer_urls,
        skip_hash_check: args.skip_hash_check,
        bump_revision: args.bump_revision.unwrap_or(0),
        mark_compacted: args.mark_compacted,
    };
    if args.print_member_commands {
        let members = kastellan_restore::member_commands(&req, &["kastellan"])?;
        printer.report(&MemberCommands { members })?;
        return Ok(Outcome::Ok);
    }
    let spinner = printer.spinner("checking the snapshot");
    let (plan, source) = kastellan_restore::plan(&req)?;
    if args.dry_run {
        let plan = kastellan_restore::verify(plan, &source);
        spinner.finish_and_clear();
        let plan = plan?;
        printer.report(&RestoreReport {
            plan,
            dry_run: true,
            backend: None,
        })?;
        return Ok(Outcome::Ok);
    }
    spinner.set_message("writing the data dir");
    let restored = kastellan_restore::apply(plan, &source);
    spinner.finish_and_clear();
    let restored = restored?;
    printer.report(&RestoreReport {
        plan: restored.plan,
        dry_run: false,
        backend: Some(restored.backend),
    })?;
    Ok(Outcome::Ok)
}

/// The document `etcd snapshot restore` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RestoreReport {
    #[serde(flatten)]
    plan: Plan,
    dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<CopyStats>,
}

impl Report for RestoreReport {
    fn render(&self, out: &mut String, style: &Style) {
        let p = &self.plan;
        let dir = p.data_dir().display();
        let headline = match (self.dry_run, &p.target) {
            (true, Target::New { .. }) => {
                format!(
                    "would restore {} into {dir} (a new directory)",
                    p.snapshot.display()
                )
            }
            (true, Target::Empty { .. }) => {
                format!(
                    "would restore {} into {dir} (empty directory)",
                    p.snapshot.display()
                )
            }
            (false, _) => format!("restored {} into {dir}", p.snapshot.display()),
        };
        let _ = writeln!(out, "{}", style.good(&headline));
        let hash = match &p.hash {
            HashCheck::Verified { sha256 } => style.good(&format!("verified ({sha256})")),
            HashCheck::Skipped { trailer: false } => {
                style.warn("not checked: the file has no trailer (--skip-hash-check)")
            }
            HashCheck::Skipped { trailer: true } => style.warn("not checked (--skip-hash-check)"),
            HashCheck::Pending => style.warn("not checked yet"),
        };
        let revision = match p.bumped_revision {
            Some(b) => format!(
                "{} in the snapshot; starts at {b}, marked compacted",
                p.revision
            ),
            None => p.revision.to_string(),
        };
        let mut lines = vec![
            ("sha256", hash),
            (
                "member",
                format!(
                    "{} ({}) of new cluster {}, token {}",
                    p.member.name, p.member.id, p.cluster_id, p.initial_cluster_token
                ),
            ),
            ("revision", revision),
            (
                "raft",
                format!("index {}, term {}", p.raft_index, p.raft_term),
            ),
        ];
        if let Some(v) = &p.cluster_version {
            lines.push(("cluster ver.", v.clone()));
        }
        if let Some(b) = &self.backend {
            lines.push((
                "backend",
                format!(
                    "{} revisions, {} keys in all buckets, {} pages ({} bytes)",
                    b.revisions, b.total_keys, b.pages, b.size
                ),
            ));
        }
        for (name, value) in lines {
            let _ = writeln!(out, "{:<13} {value}", format!("{name}:"));
        }
        out.push('\n');
        let mut t = Table::new(["MEMBER", "ID", "PEER URLS"]);
        for m in &p.members {
            let name = if m.id == p.member.id {
                format!("{} (this one)", m.name)
            } else {
                m.name.clone()
            };
            t.row([name, m.id.to_string(), m.peer_urls.join(",")]);
        }
        t.render_into(out, style);
        out.push('\n');
        let mut t = Table::new(["FILE", "CONTENT"]);
        for f in &p.files {
            t.row([f.path.clone(), f.content.clone()]);
        }
        t.render_into(out, style);
        if p.members.len() > 1 {
            let _ = writeln!(
                out,
                "\nRestore every other member from the same file with the same --initial-cluster \
                 and token (--print-member-commands prints the commands), then start them all."
            );
        }
    }
}

/// The document of `--print-member-commands`.
#[derive(Debug, Serialize)]
struct MemberCommands {
    members: Vec<MemberCommand>,
}

impl Report for MemberCommands {
    fn render(&self, out: &mut String, _style: &Style) {
        let _ = writeln!(
            out,
            "# Run on each member's host, with the same snapshot file, then start every member."
        );
        for c in &self.members {
            let _ = writeln!(
                out,
                "\n# {} (member id {}, peer {})\n{}",
                c.member.name,
                c.member.id,
                c.member.peer_urls.join(","),
                c.command
            );
        }
    }
}

//! `kastellan etcd storage`: every object in etcd counted by resource and the
//! apiVersion it is stored as, with the minor that stops serving that version. What
//! the API shows is converted on the way out; etcd keeps each object in the storage
//! version of the apiserver that last wrote it, and that is what a storage migration
//! rewrites before an upgrade takes a version away.
//!
//! JSON: `endpoint`, `objects` (total), `rows`: `resource`, `apiVersion`, `kind`,
//! `encoding`, `count`, `removedIn` and `replacement` (when the stored version is one
//! that Kubernetes stopped serving).

use anyhow::{Context, Result};
use kastellan_printer::{Printer, Report, Style, Table};
use kastellan_snapshot::kube::{StoredRow, StoredVersions};
use serde::Serialize;

use super::members::connect;
use crate::Outcome;
use crate::cli::EtcdStorageArgs;

/// Keys read per request.
const PAGE: i64 = 500;

/// One resource stored with one apiVersion.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    #[serde(flatten)]
    stored: StoredRow,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replacement: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Storage {
    endpoint: String,
    objects: u64,
    rows: Vec<Row>,
}

impl Report for Storage {
    fn render(&self, out: &mut String, style: &Style) {
        let mut t = Table::new(["RESOURCE", "STORED AS", "OBJECTS", "REMOVED IN"]);
        for r in &self.rows {
            let stored = match (&r.stored.api_version, &r.stored.kind) {
                (Some(v), Some(k)) => format!("{v} {k}"),
                (Some(v), None) => v.clone(),
                _ => format!("({})", r.stored.encoding),
            };
            let removed = match (&r.removed_in, &r.replacement) {
                (Some(m), Some(to)) => style.warn(&format!("{m} (use {to})")),
                (Some(m), None) => style.warn(&format!("{m} (no successor)")),
                _ => String::new(),
            };
            t.row([
                r.stored.resource.clone(),
                stored,
                r.stored.count.to_string(),
                removed,
            ]);
        }
        t.render_into(out, style);
        let old: u64 = self
            .rows
            .iter()
            .filter(|r| r.removed_in.is_some())
            .map(|r| r.stored.count)
            .sum();
        out.push_str(&format!(
            "\n{} objects read from {}; {old} stored as an API version that Kubernetes \
             stops serving\n",
            self.objects, self.endpoint
        ));
    }
}

/// Runs `etcd storage`.
pub(super) fn storage(args: &EtcdStorageArgs, printer: &Printer) -> Result<Outcome> {
    let rt = crate::commands::runtime()?;
    let (cluster, preferred) = connect(&args.etcd)?;
    let spinner = printer.spinner("reading /registry/");
    let (endpoint, counts, objects) = rt.block_on(async {
        let mut last = None;
        for endpoint in &preferred {
            match cluster.connector().connect(endpoint).await {
                Ok(mut client) => {
                    let mut counts = StoredVersions::default();
                    let mut objects = 0u64;
                    let end = b"/registry0".to_vec(); // '0' follows '/'
                    let mut from = b"/registry/".to_vec();
                    loop {
                        let (kvs, more) = client
                            .range_page(&from, &end, PAGE)
                            .await
                            .with_context(|| format!("reading /registry/ from {endpoint}"))?;
                        for (k, v) in &kvs {
                            counts.add(k, v);
                            objects += 1;
                        }
                        match kvs.last() {
                            Some((k, _)) if more => {
                                from = k.clone();
                                from.push(0);
                            }
                            _ => break,
                        }
                    }
                    return anyhow::Ok((endpoint.clone(), counts, objects));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(
            || anyhow::anyhow!("no etcd endpoint to read from"),
            anyhow::Error::from,
        ))
    })?;
    spinner.finish_and_clear();
    let rows = counts
        .rows()
        .into_iter()
        .map(|stored| {
            let removal = stored.api_version.as_deref().and_then(|av| {
                let (group, version) = av.split_once('/').unwrap_or(("", av));
                let kind = stored.kind.as_deref().unwrap_or(&stored.resource);
                kastellan_policy::removed::lookup(group, version, kind)
            });
            Row {
                removed_in: removal.map(|r| r.removed_in.to_string()),
                replacement: removal.and_then(|r| r.replacement.map(str::to_string)),
                stored,
            }
        })
        .collect();
    printer.report(&Storage {
        endpoint,
        objects,
        rows,
    })?;
    Ok(Outcome::Ok)
}

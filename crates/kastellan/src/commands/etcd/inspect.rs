//! `kastellan etcd snapshot inspect FILE [--key KEY | --prefix PREFIX] [--revision REV]`:
//! what a snapshot holds as Kubernetes sees it, read natively with
//! `kastellan-snapshot` (its `mvcc` and `kube` modules).
//!
//! Without --key/--prefix the JSON is `{file, revision, latestRevision,
//! compactRevision, keys, bytes, encrypted, resources: [{resource, namespace (null when
//! cluster-scoped), count, bytes, encrypted}]}`. With them it is `{file, revision,
//! objects: [{key, resource, namespace, name, createRevision, modRevision, version,
//! lease, size, encoding (protobuf|json|encrypted|text|binary), apiVersion, kind,
//! object, complete, secret, encryption: {provider, version, keyName}, text, length,
//! hexPreview, note}]}`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kastellan_printer::{Printer, Report, Style, Table};
use kastellan_snapshot::SnapshotFile;
use kastellan_snapshot::kube::encryption::Keyring;
use kastellan_snapshot::kube::value::{Decoded, Encoding};
use kastellan_snapshot::kube::{CountRow, counts, keys, value};
use kastellan_snapshot::mvcc::{Select, View, ViewError, view_of_file};
use serde::Serialize;

use super::human_bytes;
use crate::Outcome;
use crate::cli::SnapshotInspectArgs;

/// Runs `etcd snapshot inspect`.
pub fn run(args: &SnapshotInspectArgs, printer: &Printer) -> Result<Outcome> {
    let at = match args.revision.as_str() {
        "latest" => None,
        n => Some(n.parse::<i64>().ok().filter(|n| *n > 0).with_context(|| {
            format!("--revision {n}: expected `latest` or a positive revision")
        })?),
    };
    let select = match (&args.key, &args.prefix) {
        (Some(k), _) => Select::Key(k.as_bytes().to_vec()),
        (None, Some(p)) => Select::Prefix(p.as_bytes().to_vec()),
        (None, None) => Select::All,
    };
    let file = SnapshotFile::open(&args.file)?;
    // Every failure names the file (exit 2): not a bbolt file, a page tree too damaged
    // to walk, no `key` bucket, or a revision outside the snapshot.
    let view = view_of_file(file.bytes(), &select, at)
        .map_err(|e: ViewError| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    if select == Select::All {
        printer.report(&Summary::new(&args.file, &view))?;
        return Ok(Outcome::Ok);
    }
    let keyring = args
        .encryption_config
        .as_deref()
        .map(|f| -> Result<Keyring> {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("--encryption-config {}", f.display()))?;
            Keyring::parse(&text).with_context(|| format!("--encryption-config {}", f.display()))
        })
        .transpose()?;
    let report = Objects::new(&args.file, &view, keyring.as_ref());
    if report.objects.is_empty() {
        let what = match (&args.key, &args.prefix) {
            (Some(k), _) => format!("key {k}"),
            (_, Some(p)) => format!("key with prefix {p}"),
            _ => unreachable!("select is not All"),
        };
        printer.warn(format!(
            "no live {what} in {} at revision {}",
            args.file.display(),
            view.revision
        ));
    }
    printer.report(&report)?;
    Ok(if report.objects.is_empty() {
        Outcome::Unhealthy
    } else {
        Outcome::Ok
    })
}

/// The counts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    file: PathBuf,
    revision: i64,
    latest_revision: i64,
    compact_revision: Option<i64>,
    keys: u64,
    bytes: u64,
    encrypted: u64,
    resources: Vec<CountRow>,
}

impl Summary {
    fn new(file: &Path, view: &View) -> Summary {
        let resources = counts(view);
        Summary {
            file: file.to_path_buf(),
            revision: view.revision,
            latest_revision: view.latest_revision,
            compact_revision: view.compact_revision,
            keys: resources.iter().map(|r| r.count).sum(),
            bytes: resources.iter().map(|r| r.bytes).sum(),
            encrypted: resources.iter().map(|r| r.encrypted).sum(),
            resources,
        }
    }
}

impl Report for Summary {
    fn render(&self, out: &mut String, style: &Style) {
        let _ = writeln!(
            out,
            "{} at revision {}{}: {} live keys, {}",
            self.file.display(),
            self.revision,
            match self.compact_revision {
                Some(c) => format!(" (compacted at {c})"),
                None => String::new(),
            },
            self.keys,
            human_bytes(self.bytes)
        );
        if self.encrypted > 0 {
            let _ = writeln!(
                out,
                "{}",
                style.warn(&format!(
                    "{} values are encrypted at rest (counted, not decoded)",
                    self.encrypted
                ))
            );
        }
        out.push('\n');
        let mut t = Table::new(["RESOURCE", "NAMESPACE", "COUNT", "BYTES"]);
        for r in &self.resources {
            t.row([
                r.resource.clone(),
                r.namespace.clone().unwrap_or_else(|| "-".into()),
                r.count.to_string(),
                human_bytes(r.bytes),
            ]);
        }
        t.render_into(out, style);
    }
}

/// The objects of --key/--prefix.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Objects {
    file: PathBuf,
    revision: i64,
    objects: Vec<Object>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    key: String,
    resource: String,
    namespace: Option<String>,
    name: String,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
    size: usize,
    #[serde(flatten)]
    decoded: Decoded,
}

impl Objects {
    fn new(file: &Path, view: &View, keyring: Option<&Keyring>) -> Objects {
        let objects = view
            .keys
            .iter()
            .map(|(key, kv)| {
                let k = keys::parse(key);
                Object {
                    key: String::from_utf8_lossy(key).into_owned(),
                    resource: k.resource,
                    namespace: k.namespace,
                    name: k.name,
                    create_revision: kv.create_revision,
                    mod_revision: kv.mod_revision,
                    version: kv.version,
                    lease: kv.lease,
                    size: kv.value.len(),
                    decoded: value::decode_with(key, &kv.value, keyring),
                }
            })
            .collect();
        Objects {
            file: file.to_path_buf(),
            revision: view.revision,
            objects,
        }
    }
}

impl Report for Objects {
    fn render(&self, out: &mut String, style: &Style) {
        for (i, o) in self.objects.iter().enumerate() {
            if i > 0 {
                out.push_str("---\n");
            }
            render_object(o, out, style);
        }
    }
}

fn render_object(o: &Object, out: &mut String, style: &Style) {
    let d = &o.decoded;
    let encoding = match d.encoding {
        Encoding::Protobuf => "protobuf",
        Encoding::Json => "json",
        Encoding::Encrypted => "encrypted",
        Encoding::Text => "text",
        Encoding::Binary => "binary",
    };
    let _ = writeln!(
        out,
        "# {} (modRevision {}, createRevision {}, version {}, {} bytes, {encoding})",
        o.key, o.mod_revision, o.create_revision, o.version, o.size
    );
    if o.lease != 0 {
        let _ = writeln!(out, "# attached to lease {:x}", o.lease);
    }
    let sealed = d.encryption.as_ref().map(|e| {
        format!(
            "{} key {}{}",
            e.provider,
            e.key_name.as_deref().unwrap_or("(unnamed)"),
            e.version
                .as_deref()
                .map(|v| format!(" ({v})"))
                .unwrap_or_default()
        )
    });
    if let (Some(how), None) = (&sealed, &d.object) {
        // The keyring's reason when one was given; else how to decode it.
        let why = d
            .note
            .as_deref()
            .and_then(|n| n.strip_prefix("encrypted at rest; "))
            .filter(|n| *n != "not decoded")
            .map(|n| format!(": {n}"))
            .unwrap_or_else(|| " (give --encryption-config)".into());
        let _ = writeln!(
            out,
            "{}",
            style.warn(&format!("# encrypted with {how}; not decoded{why}"))
        );
        return;
    }
    if let Some(how) = &sealed {
        let _ = writeln!(
            out,
            "# encrypted at rest with {how}; decrypted with --encryption-config"
        );
    }
    if d.secret {
        let _ = writeln!(
            out,
            "{}",
            style.warn(if sealed.is_some() {
                "# Secret: the data below is decrypted, only base64-encoded; these are secrets"
            } else {
                "# Secret: the data below is only base64-encoded, not encrypted; these are secrets"
            })
        );
    }
    if let Some(note) = &d.note {
        let _ = writeln!(out, "# note: {note}");
    }
    if let Some(object) = &d.object {
        match serde_saphyr::to_string(object) {
            Ok(yaml) => out.push_str(&yaml),
            Err(e) => {
                let _ = writeln!(out, "# cannot render as YAML: {e}");
            }
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        return;
    }
    if let Some(text) = &d.text {
        let doc = serde_json::json!({ "value": text });
        if let Ok(yaml) = serde_saphyr::to_string(&doc) {
            out.push_str(&yaml);
        }
        return;
    }
    if let Some(k) = &d.kind {
        let _ = writeln!(
            out,
            "# apiVersion {} kind {k}",
            d.api_version.as_deref().unwrap_or("?")
        );
    }
    let _ = writeln!(
        out,
        "# {} bytes not decoded; first bytes: {}",
        d.length,
        d.hex_preview.as_deref().unwrap_or("")
    );
}

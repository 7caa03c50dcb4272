//! `kastellan restore objects` and `kastellan backup diff`: API objects from a bundle's
//! exported resources, compared with the live cluster or with another bundle. The rules
//! (filters, normalisation, skips, order) are `kastellan_bundle::objects`; this module
//! asks the API and applies.
//!
//! JSON documents: `restore objects` prints `bundle`, `createdAt`, `dryRun`,
//! `overwrite`, `objects` (each: `group`, `kind`, `namespace`, `name`, `apiVersion`,
//! `state` — missing, same, changed, skipped, unknownKind —, `result` — created,
//! wouldCreate, unchanged, skipped, conflicted, overwritten, wouldOverwrite, failed —,
//! `reason`, `changedAfterBackup`, `diff`, `fromVolumeSnapshot`: with
//! `--pvc-from-snapshot`, the VolumeSnapshot a PVC is re-created from) and `counts`
//! (objects per result); `backup
//! diff` prints `a`, `b`, their `createdAt`, `added`, `removed`, `changed` and
//! `differences` (each: `group`, `kind`, `namespace`, `name`, `change`, `diff`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use kastellan_bundle::Decryption;
use kastellan_bundle::objects::{
    self, Action, Compared, Difference, FIELD_MANAGER, Filter, Object, ObjectKey, SkipRules,
};
use kastellan_printer::{Printer, Report, Style, Table, truncate};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{ApiResource, Discovery, Scope};
use serde::Serialize;
use serde_json::Value;

use crate::Outcome;
use crate::cli::{BackupDiffArgs, GlobalArgs, RestoreObjectsArgs};

/// How long custom resources wait for the API to serve the kind of a CRD this run
/// created.
const CRD_WAIT: Duration = Duration::from_secs(30);

/// Diff lines shown per object in the table view (JSON and YAML carry them all).
const DIFF_LINES: usize = 30;

fn decryption(identity: &Option<PathBuf>, passphrase: &Option<PathBuf>) -> Result<Decryption> {
    Ok(match (identity, passphrase) {
        (Some(f), _) => Decryption::IdentityFile(f.clone()),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading passphrase file {}", f.display()))?;
            let line = text.lines().next().unwrap_or("").to_string();
            anyhow::ensure!(!line.is_empty(), "{}: empty passphrase", f.display());
            Decryption::Passphrase(kastellan_bundle::SecretString::from(line))
        }
        (None, None) => Decryption::None,
    })
}

/// A verified bundle's objects and when it was made.
fn read_bundle(path: &Path, dec: &Decryption) -> Result<(Vec<Object>, String)> {
    let (objs, manifest) = read_bundle_manifest(path, dec)?;
    Ok((objs, manifest.created_at))
}

/// A verified bundle's objects and its manifest.
fn read_bundle_manifest(
    path: &Path,
    dec: &Decryption,
) -> Result<(Vec<Object>, kastellan_bundle::Manifest)> {
    let (verified, members) = kastellan_bundle::verify_and_read_resources(path, dec)?;
    let objs = objects::parse_resources(&members)?;
    Ok((objs, verified.manifest))
}

/// What `restore objects` restores from: a bundle's exported objects, or a raw
/// snapshot's decoded ones.
struct Source {
    /// Every object.
    all: Vec<Object>,
    /// When the backup was made (a snapshot file: when it was written).
    created_at: String,
    /// The volume snapshots a bundle recorded.
    recorded: Recorded,
    /// From a snapshot: the objects decoded only in part, and why (never restored).
    partial: BTreeMap<objects::ObjectKey, String>,
}

/// Reads `--from`: a raw etcd snapshot when the file is one, else a bundle (verified).
fn read_source(args: &RestoreObjectsArgs, dec: &Decryption) -> Result<Source> {
    let from = &args.from;
    let snapshot = kastellan_snapshot::SnapshotFile::open(from)
        .ok()
        .filter(|f| f.status().is_ok());
    let Some(file) = snapshot else {
        anyhow::ensure!(
            args.encryption_config.is_none(),
            "--encryption-config: {} is a bundle, whose objects were exported through the API (already decrypted); the flag is for raw snapshots",
            from.display()
        );
        let (all, manifest) = read_bundle_manifest(from, dec)?;
        let recorded: Recorded = manifest
            .volume_snapshots
            .iter()
            .flat_map(|v| &v.taken)
            .map(|r| {
                (
                    (r.namespace.clone(), r.pvc.clone()),
                    r.volume_snapshot.clone(),
                )
            })
            .collect();
        return Ok(Source {
            all,
            created_at: manifest.created_at,
            recorded,
            partial: BTreeMap::new(),
        });
    };
    let keyring = args
        .encryption_config
        .as_deref()
        .map(
            |f| -> Result<kastellan_snapshot::kube::encryption::Keyring> {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("--encryption-config {}", f.display()))?;
                kastellan_snapshot::kube::encryption::Keyring::parse(&text)
                    .with_context(|| format!("--encryption-config {}", f.display()))
            },
        )
        .transpose()?;
    let read = objects::objects_from_snapshot(from, file.bytes(), keyring.as_ref())?;
    let created_at = std::fs::metadata(from)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut all = read.objects;
    let mut partial = BTreeMap::new();
    for (o, why) in read.partial {
        partial.insert(o.key.clone(), why);
        all.push(o);
    }
    all.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Source {
        all,
        created_at,
        recorded: Recorded::new(),
        partial,
    })
}

/// `namespace/pvc` -> the VolumeSnapshot the bundle recorded for it.
type Recorded = BTreeMap<(String, String), String>;

fn is_pvc(obj: &Object) -> bool {
    obj.key.group.is_empty() && obj.key.kind == "PersistentVolumeClaim"
}

/// The PVC as re-created from `snapshot`: `spec.dataSource` names it; the old
/// volume's binding (`spec.volumeName`, the binder's annotations) is dropped so that
/// the provisioner makes a new volume from the snapshot.
fn pvc_from_snapshot(mut v: Value, snapshot: &str) -> Value {
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("volumeName");
        spec.remove("dataSourceRef");
        spec.insert(
            "dataSource".into(),
            serde_json::json!({
                "apiGroup": kastellan_bundle::volumes::GROUP,
                "kind": "VolumeSnapshot",
                "name": snapshot,
            }),
        );
    }
    if let Some(a) = v
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        for k in [
            "pv.kubernetes.io/bind-completed",
            "pv.kubernetes.io/bound-by-controller",
            "volume.beta.kubernetes.io/storage-provisioner",
            "volume.kubernetes.io/storage-provisioner",
            "volume.kubernetes.io/selected-node",
        ] {
            a.remove(k);
        }
    }
    v
}

/// What became of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
enum Fate {
    Created,
    WouldCreate,
    Unchanged,
    Skipped,
    Conflicted,
    Overwritten,
    WouldOverwrite,
    Failed,
}

impl Fate {
    fn label(self) -> &'static str {
        match self {
            Fate::Created => "created",
            Fate::WouldCreate => "would create",
            Fate::Unchanged => "unchanged",
            Fate::Skipped => "skipped",
            Fate::Conflicted => "conflicted",
            Fate::Overwritten => "overwritten",
            Fate::WouldOverwrite => "would overwrite",
            Fate::Failed => "failed",
        }
    }
}

/// How the object compared with the live one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
enum State {
    Missing,
    Same,
    Changed,
    Skipped,
    /// The cluster serves no such kind (yet: its CRD may come with this restore).
    UnknownKind,
    /// From a raw snapshot: decoded only in part, so never restored.
    Partial,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    #[serde(flatten)]
    key: ObjectKey,
    api_version: String,
    state: State,
    result: Fate,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_after_backup: Option<jiff::Timestamp>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    diff: Vec<String>,
    /// The VolumeSnapshot a PVC is (to be) re-created from.
    #[serde(skip_serializing_if = "Option::is_none")]
    from_volume_snapshot: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct RestoreReport {
    bundle: PathBuf,
    created_at: String,
    dry_run: bool,
    overwrite: bool,
    objects: Vec<Row>,
    counts: BTreeMap<Fate, usize>,
}

impl RestoreReport {
    fn count(&mut self) {
        self.counts.clear();
        for r in &self.objects {
            *self.counts.entry(r.result).or_default() += 1;
        }
    }
    fn troubled(&self) -> bool {
        self.objects
            .iter()
            .any(|r| matches!(r.result, Fate::Conflicted | Fate::Failed))
    }
}

impl Report for RestoreReport {
    fn render(&self, out: &mut String, style: &Style) {
        let mut t = Table::new(["KIND", "OBJECT", "RESULT", "REASON"]);
        for r in &self.objects {
            let result = match r.result {
                Fate::Conflicted | Fate::Failed => style.bad(r.result.label()),
                Fate::Created | Fate::Overwritten => style.good(r.result.label()),
                _ => r.result.label().to_string(),
            };
            // The kind without its group: the width goes to the reason (`-o json`
            // has the group).
            t.row([
                r.key.kind.clone(),
                r.key.namespaced_name(),
                result,
                r.reason.clone(),
            ]);
        }
        if style.wide {
            // -o wide: whole reasons, whatever the width.
            t.render_width(out, None);
        } else {
            t.render_into(out, style);
        }
        for r in self.objects.iter().filter(|r| !r.diff.is_empty()) {
            let _ = writeln!(
                out,
                "\n{} {} (- live, + backup):",
                r.key.qualified_kind(),
                r.key.namespaced_name()
            );
            for l in r.diff.iter().take(DIFF_LINES) {
                let l = match style.width {
                    Some(w) => truncate(l, w),
                    None => l.clone(),
                };
                let _ = writeln!(out, "{l}");
            }
            if r.diff.len() > DIFF_LINES {
                let _ = writeln!(
                    out,
                    "… {} more lines (-o yaml shows them all)",
                    r.diff.len() - DIFF_LINES
                );
            }
        }
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(f, n)| format!("{n} {}", f.label()))
            .collect();
        let _ = writeln!(
            out,
            "\n{}{}",
            if self.dry_run {
                "dry run, nothing changed: "
            } else {
                ""
            },
            counts.join(", ")
        );
    }
}

/// One selected object on its way through the restore.
struct Item<'a> {
    obj: &'a Object,
    resource: Option<(ApiResource, Scope)>,
    action: Option<Action>,
    row: Row,
}

fn api_for(
    client: &kube::Client,
    obj: &Object,
    ar: &ApiResource,
    scope: &Scope,
) -> Api<DynamicObject> {
    match (scope, &obj.key.namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, ar),
        _ => Api::all_with(client.clone(), ar),
    }
}

fn resolve(discovery: &Discovery, obj: &Object) -> Option<(ApiResource, Scope)> {
    let (group, version) = match obj.api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", obj.api_version.as_str()),
    };
    let gvk = kube::api::GroupVersionKind::gvk(group, version, &obj.key.kind);
    discovery
        .resolve_gvk(&gvk)
        .map(|(ar, caps)| (ar, caps.scope))
}

fn api_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({}): {}", s.reason, s.code, s.message),
        other => other.to_string(),
    }
}

/// Compares `item` with the live object and decides; fills its row.
async fn plan_item(
    client: &kube::Client,
    item: &mut Item<'_>,
    rules: &SkipRules,
    overwrite: bool,
    backup_time: Option<jiff::Timestamp>,
) {
    let skip = rules.reason(item.obj);
    if let Some(s) = skip {
        item.action = Some(Action::Skip);
        item.row.state = State::Skipped;
        item.row.result = Fate::Skipped;
        item.row.reason = s.to_string();
        return;
    }
    let Some((ar, scope)) = &item.resource else {
        item.row.state = State::UnknownKind;
        item.row.result = Fate::Failed;
        item.row.reason = format!(
            "the cluster serves no {} in {}",
            item.obj.key.kind, item.obj.api_version
        );
        return;
    };
    let api = api_for(client, item.obj, ar, scope);
    let live = match api.get_opt(&item.obj.key.name).await {
        Ok(l) => l,
        Err(e) => {
            item.row.result = Fate::Failed;
            item.row.reason = format!("reading the live object: {}", api_reason(&e));
            return;
        }
    };
    let live = live.and_then(|l| serde_json::to_value(l).ok());
    let d = objects::decide(None, &item.obj.value, live.as_ref(), overwrite, backup_time);
    item.action = Some(d.action);
    item.row.changed_after_backup = d.changed_after_backup;
    let after = d
        .changed_after_backup
        .map(|t| format!("; written {t}, after the backup was made"))
        .unwrap_or_default();
    match d.compared {
        Some(Compared::Missing) => {
            item.row.state = State::Missing;
            item.row.result = Fate::WouldCreate;
            item.row.reason = "missing".into();
        }
        Some(Compared::Same) => {
            item.row.state = State::Same;
            item.row.result = Fate::Unchanged;
            item.row.reason = "same as the backup".into();
        }
        Some(Compared::Changed { diff }) => {
            item.row.state = State::Changed;
            item.row.diff = diff;
            if d.action == Action::Overwrite {
                item.row.result = Fate::WouldOverwrite;
                item.row.reason = format!("changed{after}");
            } else {
                item.row.result = Fate::Conflicted;
                item.row.reason = format!("changed, not overwritten (--overwrite){after}");
            }
        }
        None => {}
    }
}

/// With `--pvc-from-snapshot`: a missing PVC with a recorded VolumeSnapshot that still
/// exists is re-created from it; one whose VolumeSnapshot is gone fails (re-creating it
/// bound to its old volume is not what was asked for).
async fn plan_from_snapshot(client: &kube::Client, item: &mut Item<'_>, recorded: &Recorded) {
    if !is_pvc(item.obj) || item.row.state != State::Missing {
        return;
    }
    let ns = item.obj.key.namespace.clone().unwrap_or_default();
    let Some(snap) = recorded.get(&(ns.clone(), item.obj.key.name.clone())) else {
        item.row.reason = "missing; the bundle records no VolumeSnapshot of it: re-created \
                           as backed up"
            .into();
        return;
    };
    let ar = kastellan_bundle::volumes::resource("VolumeSnapshot", "volumesnapshots");
    match Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &ar)
        .get_opt(snap)
        .await
    {
        Ok(Some(_)) => {
            item.row.reason = format!("missing; from VolumeSnapshot {ns}/{snap}");
            item.row.from_volume_snapshot = Some(snap.clone());
        }
        Ok(None) => {
            item.action = None;
            item.row.result = Fate::Failed;
            item.row.reason = format!("missing; its VolumeSnapshot {ns}/{snap} no longer exists");
        }
        Err(e) => {
            item.action = None;
            item.row.result = Fate::Failed;
            item.row.reason = format!(
                "missing; reading its VolumeSnapshot {ns}/{snap}: {}",
                api_reason(&e)
            );
        }
    }
}

/// The backup's object as applied: server-owned fields dropped, ownerReferences
/// pointed at the live owners' uids (a reference to an owner the cluster does not have
/// is dropped: the API refuses one without a uid).
async fn applied_value(
    client: &kube::Client,
    discovery: &Discovery,
    obj: &Object,
    notes: &mut Vec<String>,
) -> Value {
    let mut v = objects::prepare_for_apply(&obj.value);
    let Some(refs) = v
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    else {
        return v;
    };
    let mut kept = Vec::new();
    for r in refs.drain(..) {
        let api_version = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        let owner = Object::from_value(
            serde_json::json!({"apiVersion": api_version, "kind": kind,
                "metadata": {"name": name, "namespace": obj.key.namespace}}),
            "",
        );
        let uid = match owner
            .as_ref()
            .and_then(|o| Some((o, resolve(discovery, o)?)))
        {
            Some((o, (ar, scope))) => api_for(client, o, &ar, &scope)
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|l| l.metadata.uid),
            None => None,
        };
        match uid {
            Some(uid) => {
                let mut r = r;
                r["uid"] = Value::String(uid);
                kept.push(r);
            }
            None => notes.push(format!(
                "ownerReference to {kind}/{name} dropped (no such owner)"
            )),
        }
    }
    *refs = kept;
    v
}

/// Runs `restore objects`.
pub fn restore(
    args: RestoreObjectsArgs,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<Outcome> {
    let dec = decryption(&args.identity, &args.passphrase_file)?;
    let Source {
        all,
        created_at,
        recorded,
        partial,
    } = read_source(&args, &dec)?;
    if args.pvc_from_snapshot && recorded.is_empty() {
        anyhow::bail!(
            "--pvc-from-snapshot: {} records no volume snapshot (made without \
             --volume-snapshots, or no PVC had a VolumeSnapshotClass)",
            args.from.display()
        );
    }
    let filter = Filter {
        namespaces: args.namespace.clone(),
        kinds: args.kind.clone(),
        name: args.name.clone(),
        selector: args.selector.clone(),
    };
    let mut selected: Vec<&Object> = all.iter().filter(|o| filter.matches(o)).collect();
    if selected.is_empty() {
        anyhow::bail!(
            "no object in {} matches the filters ({} objects in it)",
            args.from.display(),
            all.len()
        );
    }
    objects::sort_for_apply(&mut selected, |o| &o.key);
    let rules = SkipRules::new(&all);
    let backup_time = created_at.parse::<jiff::Timestamp>().ok();

    super::runtime()?.block_on(async {
        let client = super::kube::client(
            global,
            Some(Path::new("/etc/kubernetes/admin.conf")),
            super::kube::READ_TIMEOUT,
        )
        .await?
        .client;
        let mut discovery = Discovery::new(client.clone())
            .run()
            .await
            .context("API discovery")?;
        let mut items: Vec<Item> = selected
            .iter()
            .map(|o| Item {
                obj: o,
                resource: resolve(&discovery, o),
                action: None,
                row: Row {
                    key: o.key.clone(),
                    api_version: o.api_version.clone(),
                    state: State::Missing,
                    result: Fate::Failed,
                    reason: String::new(),
                    changed_after_backup: None,
                    diff: Vec::new(),
                    from_volume_snapshot: None,
                },
            })
            .collect();
        let crds: Vec<String> = items
            .iter()
            .filter(|i| i.obj.key.kind == "CustomResourceDefinition")
            .filter_map(|i| {
                let g = i.obj.value.pointer("/spec/group")?.as_str()?;
                let k = i.obj.value.pointer("/spec/names/kind")?.as_str()?;
                Some(format!("{k}.{g}"))
            })
            .collect();
        for item in &mut items {
            if let Some(why) = partial.get(&item.obj.key) {
                item.row.state = State::Partial;
                item.row.result = Fate::Skipped;
                item.row.reason =
                    format!("the snapshot gives it only in part ({why}); restore it from a bundle");
                continue;
            }
            plan_item(&client, item, &rules, args.overwrite, backup_time).await;
            if args.pvc_from_snapshot {
                plan_from_snapshot(&client, item, &recorded).await;
            }
            if item.row.state == State::UnknownKind && crds.contains(&item.obj.key.qualified_kind())
            {
                item.row.result = Fate::WouldCreate;
                item.row.reason = "missing (its CRD is restored first)".into();
            }
        }
        let mut report = RestoreReport {
            bundle: args.from.clone(),
            created_at: created_at.clone(),
            dry_run: true,
            overwrite: args.overwrite,
            objects: Vec::new(),
            counts: BTreeMap::new(),
        };
        let to_do = items
            .iter()
            .filter(|i| matches!(i.row.result, Fate::WouldCreate | Fate::WouldOverwrite))
            .count();
        let finish = |report: &mut RestoreReport, items: Vec<Item>| -> Result<Outcome> {
            report.objects = items.into_iter().map(|i| i.row).collect();
            report.count();
            printer.report(report)?;
            Ok(if report.troubled() {
                Outcome::Unhealthy
            } else {
                Outcome::Ok
            })
        };
        if args.dry_run || to_do == 0 {
            report.dry_run = args.dry_run;
            return finish(&mut report, items);
        }
        if !args.yes {
            let question = format!(
                "Restore {to_do} object(s) from {} into the cluster?",
                args.from.display()
            );
            if !printer.can_confirm() {
                // Nobody to ask: show what would be done, and refuse.
                report.dry_run = true;
                finish(&mut report, items)?;
                printer.error(format!(
                    "{question} Refused: no terminal to ask on; pass --yes to do it, \
                     or --dry-run to only compare"
                ));
                return Ok(Outcome::Unhealthy);
            }
            printer.report(&RestoreReport {
                objects: items.iter().map(|i| i.row.clone()).collect(),
                ..report.clone()
            })?;
            if printer.confirm(&question)? != Some(true) {
                printer.error("nothing changed (not confirmed)");
                return Ok(Outcome::Unhealthy);
            }
        }
        report.dry_run = false;
        // Custom resources whose CRD this run created wait, all together, at most this
        // long for the API to serve their kind.
        let mut crd_deadline: Option<tokio::time::Instant> = None;
        for item in &mut items {
            match item.row.result {
                Fate::WouldCreate | Fate::WouldOverwrite => {}
                _ => continue,
            }
            if item.resource.is_none() {
                let deadline =
                    *crd_deadline.get_or_insert_with(|| tokio::time::Instant::now() + CRD_WAIT);
                while resolve(&discovery, item.obj).is_none()
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Ok(d) = Discovery::new(client.clone()).run().await {
                        discovery = d;
                    }
                }
                item.resource = resolve(&discovery, item.obj);
                if item.resource.is_none() {
                    item.row.result = Fate::Failed;
                    item.row.reason = format!(
                        "the cluster serves no {} in {} (its CRD was restored but is not served)",
                        item.obj.key.kind, item.obj.api_version
                    );
                    continue;
                }
            }
            let Some((ar, scope)) = item.resource.clone() else {
                continue;
            };
            let mut notes = Vec::new();
            let mut value = applied_value(&client, &discovery, item.obj, &mut notes).await;
            if let Some(snap) = &item.row.from_volume_snapshot {
                value = pvc_from_snapshot(value, snap);
            }
            let api = api_for(&client, item.obj, &ar, &scope);
            let overwrite = item.row.result == Fate::WouldOverwrite;
            let mut params = PatchParams::apply(FIELD_MANAGER);
            if overwrite {
                params = params.force();
            }
            match api
                .patch(&item.obj.key.name, &params, &Patch::Apply(&value))
                .await
            {
                Ok(_) => {
                    item.row.result = if overwrite {
                        Fate::Overwritten
                    } else {
                        Fate::Created
                    };
                }
                Err(e) => {
                    item.row.result = Fate::Failed;
                    notes.insert(0, api_reason(&e));
                }
            }
            if !notes.is_empty() {
                item.row.reason = format!("{}; {}", item.row.reason, notes.join("; "));
            }
        }
        finish(&mut report, items)
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DiffReport {
    a: PathBuf,
    a_created_at: String,
    b: PathBuf,
    b_created_at: String,
    added: usize,
    removed: usize,
    changed: usize,
    differences: Vec<Difference>,
}

impl Report for DiffReport {
    fn render(&self, out: &mut String, style: &Style) {
        if self.differences.is_empty() {
            let _ = writeln!(
                out,
                "{}",
                style.good(&format!(
                    "no difference in the API objects ({} made {}, {} made {})",
                    name(&self.a),
                    self.a_created_at,
                    name(&self.b),
                    self.b_created_at
                ))
            );
            return;
        }
        let mut t = Table::new(["KIND", "NAMESPACE", "NAME", "CHANGE"]);
        for d in &self.differences {
            t.row([
                d.key.qualified_kind(),
                d.key.namespace.clone().unwrap_or_default(),
                d.key.name.clone(),
                match d.change {
                    objects::Change::Added => "added".to_string(),
                    objects::Change::Removed => "removed".to_string(),
                    objects::Change::Changed => "changed".to_string(),
                },
            ]);
        }
        t.render_into(out, style);
        for d in self.differences.iter().filter(|d| !d.diff.is_empty()) {
            let _ = writeln!(out, "\n{} (- A, + B):", d.key);
            for l in d.diff.iter().take(DIFF_LINES) {
                let l = match style.width {
                    Some(w) => truncate(l, w),
                    None => l.clone(),
                };
                let _ = writeln!(out, "{l}");
            }
            if d.diff.len() > DIFF_LINES {
                let _ = writeln!(
                    out,
                    "… {} more lines (-o yaml shows them all)",
                    d.diff.len() - DIFF_LINES
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{} added, {} removed, {} changed (A {}, B {})",
            self.added, self.removed, self.changed, self.a_created_at, self.b_created_at
        );
    }
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| p.display().to_string())
}

/// Runs `backup diff A B`.
pub fn diff(args: &BackupDiffArgs, printer: &Printer) -> Result<Outcome> {
    let dec = decryption(&args.identity, &args.passphrase_file)?;
    let (a, a_created_at) = read_bundle(&args.a, &dec)?;
    let (b, b_created_at) = read_bundle(&args.b, &dec)?;
    let differences = objects::diff_bundles(&a, &b, args.all);
    let count = |c: objects::Change| differences.iter().filter(|d| d.change == c).count();
    let report = DiffReport {
        a: args.a.clone(),
        a_created_at,
        b: args.b.clone(),
        b_created_at,
        added: count(objects::Change::Added),
        removed: count(objects::Change::Removed),
        changed: count(objects::Change::Changed),
        differences,
    };
    printer.report(&report)?;
    Ok(if report.differences.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Unhealthy
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pvc_from_a_snapshot_names_it_and_drops_the_old_binding() {
        let backed_up = serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "vault", "annotations": {
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
                "team": "vault"}},
            "spec": {"storageClassName": "test-csi", "volumeName": "vault-data",
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}},
        });
        let v = pvc_from_snapshot(backed_up, "kastellan-data-20261202-080000");
        assert_eq!(
            v["spec"]["dataSource"],
            serde_json::json!({"apiGroup": "snapshot.storage.k8s.io",
                "kind": "VolumeSnapshot", "name": "kastellan-data-20261202-080000"})
        );
        assert!(v["spec"].get("volumeName").is_none());
        assert_eq!(
            v["metadata"]["annotations"],
            serde_json::json!({"team": "vault"})
        );
        assert_eq!(v["spec"]["resources"]["requests"]["storage"], "1Gi");
    }
}

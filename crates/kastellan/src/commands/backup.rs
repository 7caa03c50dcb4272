//! `kastellan backup ...`: full cluster bundles with `kastellan-bundle`.
//!
//! JSON documents: `create` prints the sidecar (`bundle`, `size`, `sha256`, `encrypted`,
//! `clusterName`, `createdAt`, `revision`, `verifiedAt`, `verifiedBy`) plus `path`,
//! `files`, `resources`, `warnings`, `removedLeftovers` (`path`, `size` of each dead
//! run's `.part` or staging directory removed first); `verify` prints `path`, `files`, `bytes`,
//! `encrypted`, `revision`, `totalKey`, `clusterName`, `createdAt`, `sidecarChecked`,
//! `keyspaceHash` (etcd's keyspace hash recorded at the snapshot and found again in it;
//! null for a bundle of an older kastellan); `list` an array of
//! bundles; `prune` the rules, one decision per bundle and whether it deleted.
//! With `--to`, `create` adds `copies`: one per bundle copied (`bundle`, `url`, `pushed`:
//! `already-there`, `sidecar-only`, `uploaded` or `{"resumed": {"from": PART}}`,
//! `parts`, `bytesSent`); remote bundles' `path` is their `s3://` URL. With
//! `--volume-snapshots`, `create` adds `volumeSnapshots`: `taken` (each: `namespace`,
//! `pvc`, `volumeSnapshot`, `class`, `driver`, `content`, `snapshotHandle`,
//! `restoreSize`, `readyAt`) and `skipped` (`namespace`, `pvc`, `reason`), as the
//! bundle's manifest records them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use kastellan_bundle::meter::Meter;
use kastellan_bundle::proof::RestoreTest;
use kastellan_bundle::remote::{Credentials, Location, PushOutcome, Pushed, Remote, Settings};
use kastellan_bundle::volumes::VolumeSnapshots;
use kastellan_bundle::{
    BundleInfo, CreateRequest, Decryption, Encryption, PruneOutcome, SecretString, Sidecar,
};
use kastellan_printer::{Printer, Report, Style, Table};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{BackupCommand, BackupCreateArgs, BackupVerifyArgs, GlobalArgs, S3Args};

/// Runs `kastellan backup ...`.
pub fn run(cmd: BackupCommand, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    match cmd {
        BackupCommand::Create(args) => create(&args, global, printer),
        BackupCommand::Verify(args) => verify(&args, printer),
        BackupCommand::Diff(args) => super::objects::diff(&args, printer),
        BackupCommand::Copy(args) => copy(&args, printer),
        BackupCommand::List(args) => {
            let bundles = match &args.remote {
                Some(loc) => {
                    let remote = remote(loc, &args.s3)?;
                    super::runtime()?.block_on(remote.list())?
                }
                None => kastellan_bundle::list(&args.dir.dir)?,
            };
            printer.report(&ListReport(bundles))?;
            Ok(Outcome::Ok)
        }
        BackupCommand::Schedule(args) => super::backup_schedule::run(&args, global, printer),
        BackupCommand::Prune(args) => {
            let rules = args.keep.rules();
            let outcome = match &args.remote {
                Some(loc) => {
                    let remote = remote(loc, &args.s3)?;
                    super::runtime()?.block_on(remote.prune(rules, args.dry_run))?
                }
                None => kastellan_bundle::prune(&args.dir.dir, rules, args.dry_run)?,
            };
            printer.report(&PruneReport(outcome))?;
            Ok(Outcome::Ok)
        }
    }
}

/// The flag behind a volume snapshot error, named for the user (the library's errors
/// name no flags).
fn volume_hint(e: kastellan_bundle::Error) -> anyhow::Error {
    use kastellan_bundle::Error as E;
    let flag = match &e {
        E::SnapshotApiMissing { .. } => "--volume-snapshots",
        E::UnknownSnapshotClass { .. } => "--volume-snapshot-class",
        E::VolumeSnapshotTimeout { .. } => "--volume-snapshot-timeout",
        E::VolumeSnapshotFailed { .. } => "--volume-snapshots (no bundle written)",
        _ => return e.into(),
    };
    anyhow::Error::new(e).context(flag)
}

/// The store's settings from the S3 flags and the usual environment variables.
pub(crate) fn s3_settings(args: &S3Args) -> Result<Settings> {
    let credentials = match &args.s3_credentials_file {
        Some(f) => Some(
            Credentials::from_file(f, &args.s3_profile)
                .with_context(|| "--s3-credentials-file".to_string())?,
        ),
        None => {
            let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                (Some(access_key_id), Some(secret_access_key)) => Some(Credentials {
                    access_key_id,
                    secret_access_key,
                    session_token: var("AWS_SESSION_TOKEN"),
                }),
                (None, None) => None,
                _ => anyhow::bail!(
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together (or use --s3-credentials-file)"
                ),
            }
        }
    };
    Ok(Settings {
        endpoint: args.s3_endpoint.clone().filter(|e| !e.is_empty()),
        region: Some(args.s3_region.clone()),
        virtual_hosted_style: args.s3_virtual_hosted_style,
        credentials,
        part_size: usize::try_from(args.s3_part_size << 20).ok(),
    })
}

/// A client of the store at `loc`.
pub(crate) fn remote(loc: &Location, args: &S3Args) -> Result<Remote> {
    Ok(Remote::new(loc.clone(), &s3_settings(args)?)?)
}

/// Copies `bundles` to the store, one after the other, with a progress bar each. A
/// failed copy does not stop the next ones; the last failure is returned (the others
/// are printed as warnings) once every bundle was tried.
fn push_all(remote: &Remote, bundles: &[PathBuf], printer: &Printer) -> Result<Vec<PushOutcome>> {
    let rt = super::runtime()?;
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for b in bundles {
        let name = b
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let bar = printer.bytes_progress(None, &format!("upload {name}"));
        let mut progress = |done: u64, total: u64| {
            if bar.length().is_none() {
                bar.set_length(total);
            }
            bar.set_position(done);
        };
        let r = rt.block_on(remote.push(b, &mut progress));
        bar.finish_and_clear();
        let pushed = match r.with_context(|| {
            format!(
                "copying {name} to {}: the local bundle is kept at {} (the next run with --to tries again)",
                remote.location(),
                b.display()
            )
        }) {
            Ok(p) => p,
            Err(e) => {
                failed.push(e);
                continue;
            }
        };
        printer.note(match pushed.pushed {
            Pushed::AlreadyThere => format!("{}: already there, same sha256", pushed.url),
            Pushed::SidecarOnly => format!("{}: was there; its sidecar uploaded", pushed.url),
            Pushed::Uploaded => format!(
                "copied to {} ({} bytes in {} part(s))",
                pushed.url, pushed.bytes_sent, pushed.parts
            ),
            Pushed::Resumed { from } => format!(
                "copied to {}: continued an interrupted upload at part {} ({} bytes sent now, {} part(s))",
                pushed.url,
                from + 1,
                pushed.bytes_sent,
                pushed.parts
            ),
        });
        out.push(pushed);
    }
    if let Some(last) = failed.pop() {
        for e in &failed {
            printer.warn(format!("{e:#}"));
        }
        return Err(last);
    }
    Ok(out)
}

/// `backup copy`: the bundles named (or every local one the store lacks) copied.
fn copy(args: &crate::cli::BackupCopyArgs, printer: &Printer) -> Result<Outcome> {
    let remote = remote(&args.to, &args.s3)?;
    let rt = super::runtime()?;
    let there: std::collections::BTreeMap<String, Option<String>> = rt
        .block_on(remote.list())?
        .into_iter()
        .map(|b| (b.name, b.sidecar.map(|s| s.sha256)))
        .collect();
    let candidates: Vec<PathBuf> = if args.all {
        let mut local = kastellan_bundle::list(&args.dir.dir)?;
        local.reverse(); // oldest first: a run cut short keeps the older copies
        local.into_iter().map(|b| b.path).collect()
    } else {
        for b in &args.bundles {
            anyhow::ensure!(b.is_file(), "{}: no such bundle", b.display());
            anyhow::ensure!(
                kastellan_bundle::manifest::sidecar_path(b).is_file(),
                "{}: no sidecar beside it ({}.json): verify it first (`kastellan backup verify`)",
                b.display(),
                b.display()
            );
        }
        args.bundles.clone()
    };
    let mut plan = Vec::new();
    for b in candidates {
        let name = b
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let local_sha = std::fs::read(kastellan_bundle::manifest::sidecar_path(&b))
            .ok()
            .and_then(|j| serde_json::from_slice::<Sidecar>(&j).ok())
            .map(|s| s.sha256);
        let already = local_sha.is_some() && there.get(&name) == Some(&local_sha);
        plan.push((b, name, already));
    }
    let todo: Vec<PathBuf> = plan
        .iter()
        .filter(|(_, _, already)| !*already)
        .map(|(b, _, _)| b.clone())
        .collect();
    let copies = if args.dry_run || todo.is_empty() {
        Vec::new()
    } else {
        push_all(&remote, &todo, printer)?
    };
    let rows = plan
        .into_iter()
        .map(|(_, name, already)| CopyRow {
            result: if already {
                "already there".into()
            } else if args.dry_run {
                "would copy".into()
            } else {
                copies
                    .iter()
                    .find(|c| c.bundle == name)
                    .map_or("copied".into(), |c| match c.pushed {
                        Pushed::AlreadyThere => "already there".into(),
                        Pushed::SidecarOnly => "sidecar copied".into(),
                        Pushed::Uploaded => "copied".into(),
                        Pushed::Resumed { .. } => "copied (resumed)".into(),
                    })
            },
            bundle: name,
        })
        .collect();
    printer.report(&CopyReport {
        to: remote.location().to_string(),
        dry_run: args.dry_run,
        bundles: rows,
        copies,
    })?;
    Ok(Outcome::Ok)
}

/// One bundle of `backup copy`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CopyRow {
    bundle: String,
    result: String,
}

/// `backup copy`'s report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CopyReport {
    to: String,
    dry_run: bool,
    bundles: Vec<CopyRow>,
    copies: Vec<PushOutcome>,
}

impl Report for CopyReport {
    fn render(&self, out: &mut String, style: &Style) {
        if self.bundles.is_empty() {
            let _ = writeln!(out, "no bundle to copy to {}", self.to);
            return;
        }
        let mut t = Table::new(["BUNDLE", "RESULT"]);
        for r in &self.bundles {
            t.row([r.bundle.clone(), r.result.clone()]);
        }
        t.render_into(out, style);
        if self.dry_run {
            let _ = writeln!(out, "dry run: nothing uploaded to {}", self.to);
        }
    }
}

/// When each step of a status line started (its first counted unit), for its rate.
#[derive(Default)]
struct Stopwatches(std::sync::Mutex<std::collections::HashMap<usize, std::time::Instant>>);

impl Stopwatches {
    /// "LABEL: 12 MiB of 40 MiB (30%), 8 MiB/s" for a meter of bytes.
    fn line(&self, label: &str, meter: &Arc<Meter>) -> Option<String> {
        let (done, total) = meter.read();
        let key = Arc::as_ptr(meter) as usize;
        let mut started = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = *started.entry(key).or_insert_with(std::time::Instant::now);
        Some(format!(
            "{label}: {}",
            Printer::bytes_line(done, total, at.elapsed())
        ))
    }
}

/// A status line while `bundle` is read and verified.
fn follow_reading(
    printer: &Printer,
    bundle: &Path,
    meter: &Arc<Meter>,
) -> kastellan_printer::Follower {
    let name = bundle
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let (m, since) = (meter.clone(), Stopwatches::default());
    printer.follow(move || since.line(&format!("verifying {name}"), &m))
}

fn read_passphrase(path: &Path) -> Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading passphrase file {}", path.display()))?;
    let line = text.lines().next().unwrap_or("").to_string();
    anyhow::ensure!(!line.is_empty(), "{}: empty passphrase", path.display());
    Ok(SecretString::from(line))
}

fn create(args: &BackupCreateArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    let encryption = match (&args.recipient[..], &args.passphrase_file) {
        ([], None) => Encryption::None,
        ([], Some(f)) => Encryption::Passphrase(read_passphrase(f)?),
        (r, _) => Encryption::Recipients(r.to_vec()),
    };
    let unencrypted = matches!(encryption, Encryption::None);
    anyhow::ensure!(
        !(args.proof.restore_test && matches!(encryption, Encryption::Recipients(_))),
        "--restore-test with --recipient: the bundle cannot be read back without an identity; run `kastellan backup verify --restore-test --identity FILE BUNDLE` once it is written"
    );
    let decryption = match &encryption {
        Encryption::Passphrase(p) => Decryption::Passphrase(p.clone()),
        _ => Decryption::None,
    };
    // The store's settings are checked before the bundle is made.
    let target = args
        .to
        .as_ref()
        .map(|loc| remote(loc, &args.s3))
        .transpose()?;
    let found = super::etcd::discover(&args.etcd, &args.etc_kubernetes.join("manifests"))?;
    let req = CreateRequest {
        dir: args.dir.dir.clone(),
        etc_kubernetes: args.etc_kubernetes.clone(),
        etcd: found,
        etcd_timeouts: super::etcd::timeouts(&args.etcd),
        encryption,
        allow_unencrypted_secrets: args.allow_unencrypted_secrets,
        volume_snapshots: args
            .volume_snapshots
            .then(|| kastellan_bundle::volumes::Options {
                class: args.volume_snapshot_class.clone(),
                timeout: args.volume_snapshot_timeout,
            }),
        export_meter: Arc::default(),
        write_meter: Arc::default(),
    };
    let snapshot_meter = Arc::new(Meter::default());
    let created = super::runtime()?.block_on(async {
        let client = super::kube::client(
            global,
            Some(&args.etc_kubernetes.join("admin.conf")),
            super::kube::READ_TIMEOUT,
        )
        .await?
        .client;
        // One status line through the steps: export, snapshot stream, writing.
        let (export, snap, write) = (
            req.export_meter.clone(),
            snapshot_meter.clone(),
            req.write_meter.clone(),
        );
        let since = Stopwatches::default();
        let follower = printer.follow(move || {
            if write.read().1 > 0 {
                return since.line("writing and compressing the bundle", &write);
            }
            if snap.read().0 > 0 {
                return since.line("etcd snapshot", &snap);
            }
            let (objects, _) = export.read();
            (objects > 0).then(|| format!("exporting API resources: {objects} objects"))
        });
        let note = |s: String| printer.note(s);
        let mut progress = |p: kastellan_etcd::snapshot::Progress| {
            snapshot_meter.set_total(p.total.unwrap_or(0));
            snapshot_meter.set_done(p.received);
        };
        let r = kastellan_bundle::create(req, &client, &note, &mut progress).await;
        drop(follower);
        anyhow::Ok(r.map_err(volume_hint)?)
    })?;
    super::note_leftovers(printer, &created.leftovers);
    for w in &created.warnings {
        printer.warn(format!("not exported: {w}"));
    }
    if unencrypted && created.manifest.sensitive.any() {
        printer.warn(format!(
            "UNENCRYPTED: {} holds {} in the clear. Anyone who can read it owns the cluster. \
             Keep it offline or re-create it with --recipient/--passphrase-file.",
            created.path.display(),
            created.manifest.sensitive.describe()
        ));
    }
    // Proven before it is copied, so that the copy's sidecar carries the verdict.
    let proof = if args.proof.restore_test {
        Some(restore_test(&created.path, &decryption, &args.proof, printer)?.1)
    } else {
        None
    };
    let copies = match &target {
        Some(remote) => {
            // The interrupted copies of earlier runs first, then this bundle.
            let mut todo: Vec<PathBuf> = kastellan_bundle::remote::interrupted(&args.dir.dir)?
                .into_iter()
                .filter(|p| *p != created.path)
                .collect();
            todo.push(created.path.clone());
            push_all(remote, &todo, printer)?
        }
        None => Vec::new(),
    };
    let passed = proof.as_ref().is_none_or(|t| t.passed);
    printer.report(&CreateReport {
        restore_test: proof,
        copies,
        path: created.path.clone(),
        sidecar: created.sidecar.clone(),
        files: created.manifest.files.len(),
        resources: created.manifest.resources,
        member: created.choice.describe(),
        warnings: created.warnings.clone(),
        removed_leftovers: super::LeftoverReport::all(&created.leftovers),
        volume_snapshots: created.manifest.volume_snapshots.clone(),
    })?;
    Ok(if passed {
        Outcome::Ok
    } else {
        Outcome::Unhealthy
    })
}

fn verify(args: &BackupVerifyArgs, printer: &Printer) -> Result<Outcome> {
    let decryption = match (&args.identity, &args.passphrase_file) {
        (Some(f), _) => Decryption::IdentityFile(f.clone()),
        (None, Some(f)) => Decryption::Passphrase(read_passphrase(f)?),
        (None, None) => Decryption::None,
    };
    let url = args.bundle.to_str().filter(|s| s.starts_with("s3://"));
    if args.proof.restore_test {
        anyhow::ensure!(
            url.is_none(),
            "--restore-test: {} is remote; download it first (restore --bundle takes it) or restore-test it where it was made",
            args.bundle.display()
        );
        let (v, test) = restore_test(&args.bundle, &decryption, &args.proof, printer)?;
        let passed = test.passed;
        printer.report(&VerifyReport::new(&v, Some(test)))?;
        return Ok(if passed {
            Outcome::Ok
        } else {
            Outcome::Unhealthy
        });
    }
    let v = match url {
        Some(url) => {
            let (loc, name) = Location::of_bundle(url)?;
            let remote = remote(&loc, &args.s3)?;
            let bar = printer.bytes_progress(None, &format!("download {name}"));
            let mut progress = |done: u64, total: u64| {
                if bar.length().is_none() {
                    bar.set_length(total);
                }
                bar.set_position(done);
            };
            let r = super::runtime()?.block_on(remote.verify(&name, &decryption, &mut progress));
            bar.finish_and_clear();
            let mut v = r?;
            v.path = PathBuf::from(url);
            v
        }
        None => {
            let meter = Arc::new(Meter::default());
            let _line = follow_reading(printer, &args.bundle, &meter);
            kastellan_bundle::verify(&args.bundle, &decryption, &meter)?
        }
    };
    printer.report(&VerifyReport::new(&v, None))?;
    Ok(Outcome::Ok)
}

/// Runs the restore test of a local bundle, with a spinner and a note per step.
fn restore_test(
    bundle: &Path,
    decryption: &Decryption,
    args: &crate::cli::RestoreTestArgs,
    printer: &Printer,
) -> Result<(kastellan_bundle::Verified, RestoreTest)> {
    let options = kastellan_bundle::proof::Options {
        etcd_binary: args.etcd_binary.clone(),
        timeout: args.restore_test_timeout,
        ..Default::default()
    };
    let note = |s: String| printer.note(s);
    let meter = Arc::new(Meter::default());
    let line = follow_reading(printer, bundle, &meter);
    let r = kastellan_bundle::proof::restore_test(bundle, decryption, &options, &note, &meter);
    drop(line);
    r.map_err(|e| match e {
        kastellan_bundle::Error::Usage(_) if args.etcd_binary.is_none() => {
            anyhow::Error::new(e).context("--restore-test")
        }
        e => e.into(),
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateReport {
    path: PathBuf,
    #[serde(flatten)]
    sidecar: Sidecar,
    files: usize,
    resources: u64,
    member: String,
    warnings: Vec<String>,
    removed_leftovers: Vec<super::LeftoverReport>,
    copies: Vec<PushOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    volume_snapshots: Option<VolumeSnapshots>,
    #[serde(skip_serializing_if = "Option::is_none")]
    restore_test: Option<RestoreTest>,
}

impl Report for CreateReport {
    fn render(&self, out: &mut String, style: &Style) {
        let wrote = format!(
            "wrote {} ({} bytes, {})",
            self.path.display(),
            self.sidecar.size,
            if self.sidecar.encrypted {
                "age-encrypted"
            } else {
                "NOT encrypted"
            }
        );
        painted(out, &wrote, style, Style::good);
        painted(
            out,
            &format!(
                "cluster {}, etcd revision {}, {} files, {} API objects",
                self.sidecar.cluster_name, self.sidecar.revision, self.files, self.resources
            ),
            style,
            unpainted,
        );
        painted(
            out,
            &format!("snapshot from {}", self.member),
            style,
            unpainted,
        );
        let _ = writeln!(out, "sha256 {}", self.sidecar.sha256);
        for c in &self.copies {
            painted(out, &format!("copy at {}", c.url), style, Style::good);
        }
        if let Some(v) = &self.volume_snapshots {
            let _ = writeln!(
                out,
                "{} volume snapshot(s), {} PVC(s) skipped",
                v.taken.len(),
                v.skipped.len()
            );
            if !v.taken.is_empty() {
                let mut t = Table::new(["NAMESPACE", "PVC", "VOLUMESNAPSHOT", "CLASS", "SIZE"]);
                for r in &v.taken {
                    t.row([
                        r.namespace.clone(),
                        r.pvc.clone(),
                        r.volume_snapshot.clone(),
                        r.class.clone(),
                        r.restore_size.clone().unwrap_or_default(),
                    ]);
                }
                t.render_into(out, style);
            }
            for k in &v.skipped {
                painted(
                    out,
                    &format!("skipped PVC {}/{}: {}", k.namespace, k.pvc, k.reason),
                    style,
                    Style::warn,
                );
            }
        }
        if let Some(t) = &self.restore_test {
            render_restore_test(t, out, style);
        }
    }
}

/// `text` as it is: for [`painted`] lines without colour.
fn unpainted(_: &Style, text: &str) -> String {
    text.to_string()
}

/// Writes `text` wrapped to the style's width (continuation lines indented by two
/// blanks, a word longer than a line kept whole), each line painted with `paint`.
fn painted(out: &mut String, text: &str, style: &Style, paint: fn(&Style, &str) -> String) {
    let mut lines = String::new();
    kastellan_printer::wrap(&mut lines, "", 2, text, style.width);
    for line in lines.lines() {
        let _ = writeln!(out, "{}", paint(style, line));
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifyReport {
    path: PathBuf,
    /// The restore test's verdict and figures, when one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    restore_test: Option<RestoreTest>,
    files: usize,
    bytes: u64,
    encrypted: bool,
    revision: i64,
    total_key: u64,
    cluster_name: String,
    created_at: String,
    sidecar_checked: bool,
    /// etcd's keyspace hash recorded at the snapshot, and found again in it.
    keyspace_hash: Option<u32>,
}

impl VerifyReport {
    fn new(v: &kastellan_bundle::Verified, restore_test: Option<RestoreTest>) -> VerifyReport {
        VerifyReport {
            path: v.path.clone(),
            restore_test,
            files: v.files,
            bytes: v.bytes,
            encrypted: v.encrypted,
            revision: v.snapshot.revision,
            total_key: v.snapshot.total_key,
            cluster_name: v.manifest.cluster_name.clone(),
            created_at: v.manifest.created_at.clone(),
            sidecar_checked: v.sidecar_checked,
            keyspace_hash: v.manifest.snapshot.hash_kv.map(|h| h.hash),
        }
    }
}

/// The restore test's lines (verify and create).
fn render_restore_test(t: &RestoreTest, out: &mut String, style: &Style) {
    let figures = format!(
        "served revision {}, {} keys, keyspace hash {}, {} keys compared",
        t.revision,
        t.keys,
        t.hash_kv.map_or_else(|| "-".into(), |h| h.to_string()),
        t.sampled
    );
    if t.passed {
        let head = format!(
            "restore test passed in {:.1}s: a restored etcd serves the snapshot",
            t.millis as f64 / 1000.0
        );
        painted(out, &head, style, Style::good);
    } else {
        let head = format!("restore test FAILED ({} problem(s))", t.problems.len());
        painted(out, &head, style, Style::bad);
        for p in &t.problems {
            kastellan_printer::wrap(out, "  ", 4, p, style.width);
        }
    }
    painted(out, &figures, style, unpainted);
    painted(out, &format!("etcd {}", t.etcd), style, unpainted);
}

impl Report for VerifyReport {
    fn render(&self, out: &mut String, style: &Style) {
        painted(
            out,
            &format!(
                "{}: intact ({} files, {} bytes, every sha256 matches{})",
                self.path.display(),
                self.files,
                self.bytes,
                if self.sidecar_checked {
                    ", and the bundle's own"
                } else {
                    ""
                }
            ),
            style,
            Style::good,
        );
        painted(
            out,
            &format!(
                "cluster {}, made {}, etcd snapshot verified: revision {}, {} keys",
                self.cluster_name, self.created_at, self.revision, self.total_key
            ),
            style,
            unpainted,
        );
        match self.keyspace_hash {
            Some(h) => painted(
                out,
                &format!("keyspace hash {h}: the one etcd gave when the snapshot was taken"),
                style,
                unpainted,
            ),
            None => painted(
                out,
                "no keyspace hash recorded (a bundle of an older kastellan)",
                style,
                Style::warn,
            ),
        }
        if let Some(t) = &self.restore_test {
            render_restore_test(t, out, style);
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct ListReport(Vec<BundleInfo>);

impl Report for ListReport {
    fn render(&self, out: &mut String, style: &Style) {
        let mut t = Table::new([
            "BUNDLE",
            "CREATED",
            "SIZE",
            "ENCRYPTED",
            "VERIFIED",
            "PROVEN",
        ]);
        for b in &self.0 {
            let proven = match b.sidecar.as_ref().and_then(|s| s.restore_test.as_ref()) {
                Some(t) if t.passed && b.verified => t.at.clone(),
                Some(t) if !t.passed => style.bad(&format!("FAILED {}", t.at)),
                _ => "no".into(),
            };
            t.row([
                b.name.clone(),
                b.created
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "?".into()),
                b.size.to_string(),
                if b.encrypted { "yes" } else { "no" }.to_string(),
                b.sidecar
                    .as_ref()
                    .and_then(|s| s.verified_at.clone())
                    .filter(|_| b.verified)
                    .unwrap_or_else(|| "no".into()),
                proven,
            ]);
        }
        t.render_into(out, style);
    }
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct PruneReport(PruneOutcome);

impl Report for PruneReport {
    fn render(&self, out: &mut String, style: &Style) {
        let mut t = Table::new(["BUNDLE", "DECISION", "WHY"]);
        for d in &self.0.decisions {
            let (decision, why) = if d.keep.is_empty() {
                (
                    style.bad(if self.0.deleted {
                        "deleted"
                    } else {
                        "would delete"
                    }),
                    String::new(),
                )
            } else {
                (
                    "keep".to_string(),
                    d.keep
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            };
            t.row([d.name.clone(), decision, why]);
        }
        t.render_into(out, style);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kastellan_bundle::volumes::{Recorded, Skipped, snapshot_name};
    use kastellan_printer::display_width;

    fn render(report: &impl Report, width: Option<usize>, color: bool) -> String {
        let mut out = String::new();
        report.render(
            &mut out,
            &Style {
                color,
                width,
                wide: false,
            },
        );
        out
    }

    fn too_wide(out: &str, width: usize) -> Vec<&str> {
        out.lines().filter(|l| display_width(l) > width).collect()
    }

    /// A bundle with one long-named VolumeSnapshot (the PVC of a StatefulSet, the
    /// name `backup create` gives its snapshot) and a skipped PVC.
    fn created() -> CreateReport {
        let pvc = "postgres-data-payments-primary-0";
        let at: jiff::Timestamp = "2026-12-02T10:38:13Z".parse().unwrap();
        CreateReport {
            path: "/var/lib/kastellan/backups/kubernetes-20261202T103813Z.tar.zst.age".into(),
            sidecar: Sidecar {
                bundle: "kubernetes-20261202T103813Z.tar.zst.age".into(),
                size: 48_213_771,
                sha256: "9f".repeat(32),
                encrypted: true,
                cluster_name: "kubernetes".into(),
                created_at: at.to_string(),
                revision: 1_284_113,
                verified_at: None,
                verified_by: None,
                restore_test: None,
            },
            files: 31,
            resources: 2_412,
            member: "cp1 (https://10.77.0.11:2379, the leader)".into(),
            warnings: Vec::new(),
            removed_leftovers: Vec::new(),
            copies: Vec::new(),
            restore_test: None,
            volume_snapshots: Some(VolumeSnapshots {
                taken: vec![Recorded {
                    namespace: "payments-production".into(),
                    pvc: pvc.into(),
                    volume_snapshot: snapshot_name(pvc, at),
                    class: "csi-rbd-snapclass-retain".into(),
                    driver: "rbd.csi.ceph.com".into(),
                    content: Some("snapcontent-5b1f".into()),
                    snapshot_handle: Some("0001-0009-rook-ceph".into()),
                    restore_size: Some("100Gi".into()),
                    ready_at: at.to_string(),
                }],
                skipped: vec![Skipped {
                    namespace: "vault".into(),
                    pvc: "scratch".into(),
                    reason: "no VolumeSnapshotClass for driver other.csi.kastellan.dev".into(),
                }],
            }),
        }
    }

    #[test]
    fn create_with_volume_snapshots_fits_80_columns() {
        let report = created();
        for color in [false, true] {
            let out = render(&report, Some(80), color);
            assert_eq!(too_wide(&out, 80), Vec::<&str>::new(), "{out}");
            // The table keeps its header and one line per snapshot; the long name is
            // cut with an ellipsis, not wrapped.
            let lines: Vec<&str> = out.lines().collect();
            let header = lines
                .iter()
                .position(|l| l.contains("VOLUMESNAPSHOT"))
                .unwrap();
            assert!(lines[header].contains("SIZE"), "{out}");
            let row = lines[header + 1];
            assert!(
                row.starts_with(" payments-") && row.contains('…') && row.ends_with("100Gi"),
                "{out}"
            );
            // The skipped PVC's reason is all there, over two lines (each painted).
            let skipped = out
                .replace("\x1b[33m", "")
                .replace("\x1b[0m", "")
                .split("skipped PVC ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                skipped.contains(
                    "vault/scratch: no VolumeSnapshotClass for driver other.csi.kastellan.dev"
                ),
                "{out}"
            );
        }
        // Without a width (a pipe): whole lines, the whole snapshot name.
        let out = render(&report, None, false);
        assert!(
            out.contains("kastellan-postgres-data-payments-primary-0-20261202-103813"),
            "{out}"
        );
        assert!(
            out.contains(
                "skipped PVC vault/scratch: no VolumeSnapshotClass for driver other.csi.kastellan.dev\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn verify_with_the_keyspace_hash_fits_80_columns() {
        let mut report = VerifyReport {
            path: "/var/lib/kastellan/backups/kubernetes-20261202T103813Z.tar.zst.age".into(),
            files: 31,
            bytes: 48_213_771,
            encrypted: true,
            revision: 1_284_113,
            total_key: 12_345,
            cluster_name: "production-eu-west".into(),
            created_at: "2026-12-02T10:38:13.123456789Z".into(),
            sidecar_checked: true,
            keyspace_hash: Some(u32::MAX),
            restore_test: Some(RestoreTest {
                at: "2026-12-02T10:40:01Z".into(),
                passed: false,
                problems: vec![format!(
                    "/registry/configmaps/payments-production/{}: the value served (1843 bytes, v1 ConfigMap) differs from the snapshot's (1843 bytes, v1 ConfigMap)",
                    "checkout-feature-flags"
                )],
                // (containerd's image store gives longer paths: a path stays whole)
                etcd: "/usr/local/bin/etcd 3.5.21".into(),
                revision: 1_284_113_000,
                keys: 12_345_678,
                hash_kv: Some(u32::MAX),
                sampled: 32,
                millis: 81_234,
            }),
        };
        let out = render(&report, Some(80), true);
        assert_eq!(too_wide(&out, 80), Vec::<&str>::new(), "{out}");
        assert!(out.contains("restore test FAILED (1 problem(s))"), "{out}");
        assert!(
            out.contains("keyspace hash 4294967295: the one etcd gave when the snapshot was taken"),
            "{out}"
        );
        report.keyspace_hash = None;
        let out = render(&report, Some(80), false);
        assert_eq!(too_wide(&out, 80), Vec::<&str>::new(), "{out}");
        assert!(out.contains("no keyspace hash recorded"), "{out}");
    }
}

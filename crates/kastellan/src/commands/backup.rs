//! `kastellan backup ...`: full cluster bundles with `kastellan-bundle`.
//!
//! JSON documents: `create` prints the sidecar (`bundle`, `size`, `sha256`, `encrypted`,
//! `clusterName`, `createdAt`, `revision`, `verifiedAt`, `verifiedBy`) plus `path`,
//! `files`, `resources`, `warnings`, `removedLeftovers` (`path`, `size` of each dead
//! run's `.part` or staging directory removed first); `verify` prints `path`, `files`, `bytes`,
//! `encrypted`, `revision`, `totalKey`, `clusterName`, `createdAt`; `list` an array of
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
        let _ = writeln!(
            out,
            "{}",
            style.good(&format!(
                "wrote {} ({} bytes, {})",
                self.path.display(),
                self.sidecar.size,
                if self.sidecar.encrypted {
                    "age-encrypted"
                } else {
                    "NOT encrypted"
                }
            ))
        );
        let _ = writeln!(
            out,
            "cluster {}, etcd revision {}, {} files, {} API objects",
            self.sidecar.cluster_name, self.sidecar.revision, self.files, self.resources
        );
        let _ = writeln!(out, "snapshot from {}", self.member);
        let _ = writeln!(out, "sha256 {}", self.sidecar.sha256);
        for c in &self.copies {
            let _ = writeln!(out, "{}", style.good(&format!("copy at {}", c.url)));
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
                let _ = writeln!(
                    out,
                    "{}",
                    style.warn(&format!(
                        "skipped PVC {}/{}: {}",
                        k.namespace, k.pvc, k.reason
                    ))
                );
            }
        }
        if let Some(t) = &self.restore_test {
            render_restore_test(t, out, style);
        }
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
        let _ = writeln!(
            out,
            "{}",
            style.good(&format!(
                "restore test passed in {:.1}s: a restored etcd serves the snapshot",
                t.millis as f64 / 1000.0
            ))
        );
        let _ = writeln!(out, "{figures}");
    } else {
        let _ = writeln!(
            out,
            "{}",
            style.bad(&format!(
                "restore test FAILED ({} problem(s))",
                t.problems.len()
            ))
        );
        for p in &t.problems {
            let _ = writeln!(out, "  {p}");
        }
        let _ = writeln!(out, "{figures}");
    }
    let _ = writeln!(out, "etcd {}", t.etcd);
}

impl Report for VerifyReport {
    fn render(&self, out: &mut String, style: &Style) {
        let _ = writeln!(
            out,
            "{}",
            style.good(&format!(
                "{}: intact ({} files, {} bytes, every sha256 matches{})",
                self.path.display(),
                self.files,
                self.bytes,
                if self.sidecar_checked {
                    ", and the bundle's own"
                } else {
                    ""
                }
            ))
        );
        let _ = writeln!(
            out,
            "cluster {}, made {}, etcd snapshot verified: revision {}, {} keys",
            self.cluster_name, self.created_at, self.revision, self.total_key
        );
        match self.keyspace_hash {
            Some(h) => {
                let _ = writeln!(
                    out,
                    "keyspace hash {h}: the one etcd gave when the snapshot was taken"
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{}",
                    style.warn("no keyspace hash recorded (a bundle of an older kastellan)")
                );
            }
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

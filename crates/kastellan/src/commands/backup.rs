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

use anyhow::{Context, Result};
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
    };
    let created = super::runtime()?.block_on(async {
        let client = super::kube::client(
            global,
            Some(&args.etc_kubernetes.join("admin.conf")),
            super::kube::READ_TIMEOUT,
        )
        .await?
        .client;
        let bar = printer.bytes_progress(None, "etcd snapshot");
        let note = |s: String| printer.note(s);
        let mut progress = |p: kastellan_etcd::snapshot::Progress| {
            if let (Some(t), None) = (p.total, bar.length()) {
                bar.set_length(t);
            }
            bar.set_position(p.received);
        };
        let r = kastellan_bundle::create(req, &client, &note, &mut progress).await;
        bar.finish_and_clear();
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
    printer.report(&CreateReport {
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
    Ok(Outcome::Ok)
}

fn verify(args: &BackupVerifyArgs, printer: &Printer) -> Result<Outcome> {
    let decryption = match (&args.identity, &args.passphrase_file) {
        (Some(f), _) => Decryption::IdentityFile(f.clone()),
        (None, Some(f)) => Decryption::Passphrase(read_passphrase(f)?),
        (None, None) => Decryption::None,
    };
    let url = args.bundle.to_str().filter(|s| s.starts_with("s3://"));
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
        None => kastellan_bundle::verify(&args.bundle, &decryption)?,
    };
    printer.report(&VerifyReport {
        path: v.path.clone(),
        files: v.files,
        bytes: v.bytes,
        encrypted: v.encrypted,
        revision: v.snapshot.revision,
        total_key: v.snapshot.total_key,
        cluster_name: v.manifest.cluster_name.clone(),
        created_at: v.manifest.created_at.clone(),
        sidecar_checked: v.sidecar_checked,
        keyspace_hash: v.manifest.snapshot.hash_kv.map(|h| h.hash),
    })?;
    Ok(Outcome::Ok)
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
    }
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct ListReport(Vec<BundleInfo>);

impl Report for ListReport {
    fn render(&self, out: &mut String, style: &Style) {
        let mut t = Table::new(["BUNDLE", "CREATED", "SIZE", "ENCRYPTED", "VERIFIED"]);
        for b in &self.0 {
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
            },
            files: 31,
            resources: 2_412,
            member: "cp1 (https://10.77.0.11:2379, the leader)".into(),
            warnings: Vec::new(),
            removed_leftovers: Vec::new(),
            copies: Vec::new(),
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
        };
        let out = render(&report, Some(80), true);
        assert_eq!(too_wide(&out, 80), Vec::<&str>::new(), "{out}");
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

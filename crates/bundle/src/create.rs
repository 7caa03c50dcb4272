//! `backup create`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::archive::{self, Protection};
use crate::collect::{self, Content, Member};
use crate::error::{Error, Result, io_err};
use crate::manifest::{self, FileEntry, Manifest, Sensitive, Sidecar, SnapshotInfo};

/// How the bundle is encrypted.
pub enum Encryption {
    /// Not at all.
    None,
    /// To age X25519 recipients (`age1...`).
    Recipients(Vec<String>),
    /// With a passphrase (age's scrypt recipient).
    Passphrase(age::secrecy::SecretString),
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encryption::None => f.write_str("None"),
            Encryption::Recipients(r) => f.debug_tuple("Recipients").field(r).finish(),
            Encryption::Passphrase(_) => f.write_str("Passphrase(..)"),
        }
    }
}

impl Encryption {
    pub(crate) fn encryptor(&self) -> Result<Option<age::Encryptor>> {
        match self {
            Encryption::None => Ok(None),
            Encryption::Passphrase(p) => Ok(Some(age::Encryptor::with_user_passphrase(p.clone()))),
            Encryption::Recipients(list) => {
                let parsed: Vec<age::x25519::Recipient> = list
                    .iter()
                    .map(|r| {
                        age::x25519::Recipient::from_str(r.trim()).map_err(|e| {
                            Error::Crypto(format!(
                                "recipient '{r}' is not an age X25519 public key (age1...): {e}"
                            ))
                        })
                    })
                    .collect::<Result<_>>()?;
                if parsed.is_empty() {
                    return Err(Error::Crypto("no recipient given".into()));
                }
                age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
                    .map(Some)
                    .map_err(|e| Error::Crypto(e.to_string()))
            }
        }
    }
}

/// What to put where.
#[derive(Debug)]
pub struct CreateRequest {
    /// The directory bundles are kept in (created 0700 if missing).
    pub dir: PathBuf,
    /// The node's `/etc/kubernetes` (PKI, kubeconfigs, manifests).
    pub etc_kubernetes: PathBuf,
    /// The etcd cluster to snapshot.
    pub etcd: kastellan_etcd::discovery::Discovered,
    /// Timeouts for etcd.
    pub etcd_timeouts: kastellan_etcd::Timeouts,
    /// Encryption.
    pub encryption: Encryption,
    /// Accept private keys and Secrets in an unencrypted bundle.
    pub allow_unencrypted_secrets: bool,
    /// Take a CSI VolumeSnapshot of every bound PVC that has a class for its driver.
    pub volume_snapshots: Option<crate::volumes::Options>,
    /// Objects exported so far.
    pub export_meter: std::sync::Arc<crate::meter::Meter>,
    /// Bytes of the members written into the archive (compressed, encrypted) so far,
    /// of their total.
    pub write_meter: std::sync::Arc<crate::meter::Meter>,
}

/// A bundle written.
#[derive(Debug, Clone)]
pub struct Created {
    /// The bundle.
    pub path: PathBuf,
    /// Its sidecar.
    pub sidecar: Sidecar,
    /// Its manifest.
    pub manifest: Manifest,
    /// The member the snapshot came from.
    pub choice: kastellan_etcd::Choice,
    /// Resources that could not be exported.
    pub warnings: Vec<String>,
    /// What dead runs had left in the directory (`*.part` files, staging directories),
    /// removed before this bundle was made.
    pub leftovers: Vec<kastellan_fs::Leftover>,
}

/// The name prefix of the staging directories `create` makes in the bundle directory.
pub const STAGING_PREFIX: &str = ".kastellan-backup-";

/// Makes a bundle. `note` receives human progress notes; `progress` the snapshot
/// stream's progress.
pub async fn create(
    req: CreateRequest,
    client: &kube::Client,
    note: &(dyn Fn(String) + Send + Sync),
    progress: &mut (dyn FnMut(kastellan_etcd::snapshot::Progress) + Send),
) -> Result<Created> {
    let encryptor = req.encryption.encryptor()?;
    let encrypted = encryptor.is_some();

    // A run killed (SIGKILL, power loss) leaves its `.part` and staging directory; their
    // locks died with it. Those of a run still going stay.
    let mut leftovers =
        kastellan_fs::remove_dead_leftovers(&req.dir, STAGING_PREFIX).map_err(fs_err)?;

    // The node's files first: cheap, and they tell whether keys are involved.
    let mut members = collect::node_files(&req.etc_kubernetes)?;
    if !members.iter().any(|m| m.path.starts_with("pki/")) {
        return Err(Error::Usage(format!(
            "no PKI under {}: is --etc-kubernetes right?",
            req.etc_kubernetes.join("pki").display()
        )));
    }
    let mut sensitive = Sensitive {
        private_keys: collect::private_keys(&members),
        secrets: 0,
    };
    let refuse = |s: &Sensitive| -> Result<()> {
        if !encrypted && s.any() && !req.allow_unencrypted_secrets {
            return Err(Error::UnencryptedSecrets { what: s.describe() });
        }
        Ok(())
    };
    refuse(&sensitive)?;

    // Volume snapshots: discovery and the plan before anything is made, so that an
    // unserved snapshot API stops the run before the etcd snapshot.
    let volume_plan = match &req.volume_snapshots {
        Some(opts) => Some(crate::volumes::plan(client, opts).await?),
        None => None,
    };

    note("exporting API resources".into());
    let export = crate::resources::export_resources(client, &req.export_meter).await?;
    sensitive.secrets = export.secrets;
    refuse(&sensitive)?;
    let resources = export.objects;
    members.extend(export.members);

    std::fs::create_dir_all(&req.dir).map_err(io_err("creating", &req.dir))?;
    let staging = kastellan_fs::StagingDir::create(&req.dir, STAGING_PREFIX).map_err(fs_err)?;

    let cluster = kastellan_etcd::Cluster::new(req.etcd.target.clone(), req.etcd_timeouts)?;
    let (choice, _) = cluster
        .choose_for_snapshot(req.etcd.endpoints_discovered())
        .await?;
    note(format!("etcd snapshot from {}", choice.describe()));
    let mut member = cluster.snapshot_client(&choice.endpoint).await?;
    let stream = member.snapshot().await?;
    let snap_path = staging.path().join("snapshot.db");
    let saved = kastellan_etcd::snapshot::save(
        stream,
        &snap_path,
        kastellan_etcd::snapshot::SaveOptions::default(),
        progress,
    )
    .await?;
    // The member's own hash of the keyspace at the snapshot's revision: evidence from
    // etcd, not from the file, that `backup verify` checks the snapshot against.
    let hash_kv = match member.hash_kv(saved.status.revision).await {
        Ok((hash, revision, compact_revision)) => Some(manifest::HashKvRecord {
            hash,
            revision,
            compact_revision,
        }),
        Err(e) => {
            note(format!(
                "etcd's keyspace hash at revision {} not recorded: {e}",
                saved.status.revision
            ));
            None
        }
    };
    members.push(Member {
        path: manifest::SNAPSHOT_PATH.into(),
        content: Content::File(snap_path.clone()),
    });
    members.sort_by(|a, b| a.path.cmp(&b.path));

    let now = jiff::Timestamp::now();
    let created_at = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let dir = req.dir.clone();
    let cluster_name = export.cluster_name.clone();
    let name = manifest::bundle_name(&cluster_name, now, encrypted);
    let volume_snapshots = match (&volume_plan, &req.volume_snapshots) {
        (Some(plan), Some(opts)) => {
            note(format!(
                "taking {} volume snapshot(s), {} PVC(s) skipped",
                plan.planned.len(),
                plan.skipped.len()
            ));
            Some(crate::volumes::take(client, plan, opts.timeout, &name, now, note).await?)
        }
        _ => None,
    };
    let manifest_doc = Manifest {
        format: manifest::FORMAT.into(),
        kastellan_version: env!("CARGO_PKG_VERSION").into(),
        kubernetes_version: export.kubernetes_version.clone(),
        etcd_version: choice.status.version.clone(),
        cluster_name: cluster_name.clone(),
        created_at: created_at.clone(),
        snapshot: SnapshotInfo {
            endpoint: choice.endpoint.clone(),
            member_id: format!("{:x}", choice.member_id),
            member_name: choice.name.clone(),
            revision: saved.status.revision,
            total_key: saved.status.total_key,
            hash: saved.status.hash,
            hash_kv,
        },
        sensitive,
        resources,
        files: Vec::new(),
        volume_snapshots,
    };
    let dest = dir.join(&name);
    let write_meter = req.write_meter.clone();
    type Written = (Manifest, u64, String, Option<kastellan_fs::Leftover>);
    let written = tokio::task::spawn_blocking(move || -> Result<Written> {
        let mut manifest_doc = manifest_doc;
        manifest_doc.files = members.iter().map(entry_of).collect::<Result<_>>()?;
        let json = serde_json::to_vec_pretty(&manifest_doc).map_err(|e| Error::Encode {
            what: "manifest.json".into(),
            message: e.to_string(),
        })?;
        let (size, sha, leftover) =
            write_bundle(&dest, &json, &members, now, encryptor, &write_meter)?;
        Ok((manifest_doc, size, sha, leftover))
    })
    .await
    .map_err(|e| Error::Io {
        action: "writing",
        path: dir.join(&name),
        source: std::io::Error::other(e.to_string()),
    })??;
    drop(staging);
    let (manifest_doc, size, sha256, leftover) = written;
    leftovers.extend(leftover);
    let sidecar = Sidecar {
        bundle: name.clone(),
        size,
        sha256,
        encrypted,
        cluster_name,
        created_at: created_at.clone(),
        revision: saved.status.revision,
        verified_at: Some(created_at),
        verified_by: Some("create".into()),
        restore_test: None,
    };
    let path = dir.join(&name);
    write_sidecar(&path, &sidecar)?;
    Ok(Created {
        path,
        sidecar,
        manifest: manifest_doc,
        choice,
        warnings: export.warnings,
        leftovers,
    })
}

pub(crate) fn entry_of(m: &Member) -> Result<FileEntry> {
    match &m.content {
        Content::Memory(b) => Ok(FileEntry {
            path: m.path.clone(),
            size: b.len() as u64,
            sha256: hex::encode(Sha256::digest(b)),
        }),
        Content::File(p) => {
            let mut f = std::fs::File::open(p).map_err(io_err("reading", p))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            loop {
                let n = f.read(&mut buf).map_err(io_err("reading", p))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                size += n as u64;
            }
            Ok(FileEntry {
                path: m.path.clone(),
                size,
                sha256: hex::encode(h.finalize()),
            })
        }
    }
}

/// `.part` (0600, locked while written: [`kastellan_fs::PartFile`]), archive, fsync,
/// link to the final name (never replacing), fsync dir. Returns the size, the sha256
/// and a dead run's `.part` of the same name that was removed.
pub(crate) fn write_bundle(
    dest: &Path,
    manifest_json: &[u8],
    members: &[Member],
    now: jiff::Timestamp,
    encryptor: Option<age::Encryptor>,
    meter: &crate::meter::Meter,
) -> Result<(u64, String, Option<kastellan_fs::Leftover>)> {
    let part = part_path(dest);
    let (part_file, leftover) = kastellan_fs::PartFile::create(&part, 0o600).map_err(fs_err)?;
    let file = part_file.try_clone_file().map_err(fs_err)?;
    let protection = match encryptor {
        Some(e) => Protection::Age(e),
        None => Protection::Plain,
    };
    let mtime = u64::try_from(now.as_second()).unwrap_or(0);
    let (size, sha) = archive::write(
        file,
        &part,
        manifest_json,
        members,
        mtime,
        protection,
        meter,
    )?;
    pause_before_publish();
    part_file.publish(dest, false).map_err(fs_err)?;
    Ok((size, sha, leftover))
}

/// Debug builds only: with `KASTELLAN_BUNDLE_PAUSE_BEFORE_PUBLISH` set, waits forever
/// once the bundle's `.part` is written and before it gets its name, so that a crash
/// test can kill the process with SIGKILL while it holds the `.part`.
#[cfg(debug_assertions)]
fn pause_before_publish() {
    if std::env::var_os("KASTELLAN_BUNDLE_PAUSE_BEFORE_PUBLISH").is_some() {
        tracing::warn!("paused before publishing the bundle for a crash test");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[cfg(not(debug_assertions))]
fn pause_before_publish() {}

pub(crate) fn part_path(dest: &Path) -> PathBuf {
    let mut n = dest.file_name().unwrap_or_default().to_os_string();
    n.push(".part");
    dest.with_file_name(n)
}

pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    kastellan_fs::sync_parent(path).map_err(fs_err)
}

/// A durable-write error as this crate's.
pub(crate) fn fs_err(e: kastellan_fs::Error) -> Error {
    match e {
        kastellan_fs::Error::Io { op, path, source } => Error::Io {
            action: op,
            path,
            source,
        },
        kastellan_fs::Error::Busy { path } => Error::Busy { path },
        kastellan_fs::Error::Exists { path } => Error::Io {
            action: "publishing",
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            path,
        },
    }
}

/// Writes the sidecar atomically (0600).
pub(crate) fn write_sidecar(bundle: &Path, sidecar: &Sidecar) -> Result<()> {
    let path = manifest::sidecar_path(bundle);
    let json = serde_json::to_vec_pretty(sidecar).map_err(|e| Error::Encode {
        what: "sidecar".into(),
        message: e.to_string(),
    })?;
    kastellan_fs::write_atomic(&path, &json, 0o600).map_err(fs_err)
}

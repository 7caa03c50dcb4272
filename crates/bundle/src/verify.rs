//! `backup verify`: every member's sha256 against the manifest, nothing missing or
//! extra, the bundle's own sha256 against its sidecar, and the snapshot checked like
//! `etcd snapshot verify`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::archive;
use crate::error::{Error, Result, io_err};
use crate::manifest::{self, Manifest, Sidecar};
use crate::meter::Meter;

/// The key for an encrypted bundle.
pub enum Decryption {
    /// None given (fine for unencrypted bundles).
    None,
    /// An age identity file (`AGE-SECRET-KEY-1...` lines).
    IdentityFile(PathBuf),
    /// The passphrase.
    Passphrase(age::secrecy::SecretString),
}

impl std::fmt::Debug for Decryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decryption::None => f.write_str("None"),
            Decryption::IdentityFile(p) => f.debug_tuple("IdentityFile").field(p).finish(),
            Decryption::Passphrase(_) => f.write_str("Passphrase(..)"),
        }
    }
}

impl Decryption {
    fn identities(&self) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>> {
        match self {
            Decryption::None => Ok(Vec::new()),
            Decryption::Passphrase(p) => Ok(vec![Box::new(age::scrypt::Identity::new(p.clone()))]),
            Decryption::IdentityFile(path) => {
                let text = std::fs::read_to_string(path).map_err(io_err("reading", path))?;
                let ids: Vec<Box<dyn age::Identity + Send + Sync>> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| {
                        age::x25519::Identity::from_str(l)
                            .map(|i| Box::new(i) as Box<dyn age::Identity + Send + Sync>)
                            .map_err(|e| {
                                Error::Crypto(format!(
                                    "{}: not an age identity: {e}",
                                    path.display()
                                ))
                            })
                    })
                    .collect::<Result<_>>()?;
                if ids.is_empty() {
                    return Err(Error::Crypto(format!(
                        "{}: no identity in it",
                        path.display()
                    )));
                }
                Ok(ids)
            }
        }
    }
}

/// A verified bundle.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The bundle.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Members checked (manifest excluded).
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Whether it was encrypted.
    pub encrypted: bool,
    /// The snapshot's figures, recomputed from the bytes in the bundle.
    pub snapshot: kastellan_snapshot::Status,
    /// Whether a sidecar was there to compare the bundle's own sha256 with.
    pub sidecar_checked: bool,
}

/// Verifies a bundle; on success records it in the sidecar (creating one if missing).
/// `meter` counts the bytes of the bundle read, of its size.
pub fn verify(bundle: &Path, decryption: &Decryption, meter: &Meter) -> Result<Verified> {
    verify_keeping(bundle, decryption, None, None, true, None, meter)
}

/// Verifies a bundle like [`verify`] (without recording it in the sidecar: reading
/// changes nothing beside the bundle) and returns its `resources/` members (path and
/// bytes), only once every member has verified.
pub fn verify_and_read_resources(
    bundle: &Path,
    decryption: &Decryption,
) -> Result<(Verified, BTreeMap<String, Vec<u8>>)> {
    let mut resources = BTreeMap::new();
    let v = verify_keeping(
        bundle,
        decryption,
        None,
        None,
        false,
        Some(&mut resources),
        &Meter::default(),
    )?;
    Ok((v, resources))
}

/// Verifies a bundle like [`verify`] and copies its (checked) etcd snapshot to
/// `snapshot_to` (created, mode 0600; it must not exist).
pub fn verify_and_extract(
    bundle: &Path,
    decryption: &Decryption,
    snapshot_to: &Path,
    meter: &Meter,
) -> Result<Verified> {
    verify_keeping(
        bundle,
        decryption,
        Some(snapshot_to),
        None,
        true,
        None,
        meter,
    )
}

/// Like [`verify_and_extract`], and also writes the bundle's `pki/` members into
/// `pki_to` (created, mode 0700; keys 0600, certificates 0644), only once every member
/// of the bundle has verified. The verification is recorded in the sidecar only with
/// `record` (a dry run leaves the bundle's directory as it was).
pub fn verify_and_extract_pki(
    bundle: &Path,
    decryption: &Decryption,
    snapshot_to: &Path,
    pki_to: &Path,
    record: bool,
) -> Result<Verified> {
    verify_keeping(
        bundle,
        decryption,
        Some(snapshot_to),
        Some(pki_to),
        record,
        None,
        &Meter::default(),
    )
}

fn verify_keeping(
    bundle: &Path,
    decryption: &Decryption,
    keep: Option<&Path>,
    pki_to: Option<&Path>,
    record: bool,
    mut resources: Option<&mut BTreeMap<String, Vec<u8>>>,
    meter: &Meter,
) -> Result<Verified> {
    if let Ok(m) = std::fs::metadata(bundle) {
        meter.set_total(m.len());
    }
    let corrupt = |message: String| Error::Corrupt {
        path: bundle.to_path_buf(),
        message,
    };
    let identities = decryption.identities()?;
    let (reader, tally, encrypted) = archive::open(bundle, &identities)?;
    let mut tar = tar::Archive::new(reader);
    let dir = bundle
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let scratch = tempfile::Builder::new()
        .prefix(".kastellan-verify-")
        .tempdir_in(dir)
        .or_else(|_| {
            tempfile::Builder::new()
                .prefix("kastellan-verify-")
                .tempdir()
        })
        .map_err(io_err("creating a scratch directory in", dir))?;
    let snap_path = scratch.path().join("snapshot.db");

    let mut manifest_doc: Option<Manifest> = None;
    let mut expected: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut seen = 0usize;
    let mut bytes = 0u64;
    let entries = tar
        .entries()
        .map_err(|e| corrupt(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(format!("damaged archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| corrupt(format!("bad member name: {e}")))?
            .to_string_lossy()
            .to_string();
        if manifest_doc.is_none() {
            if path != manifest::MANIFEST_PATH {
                return Err(corrupt(format!(
                    "first member is {path}, not manifest.json"
                )));
            }
            let mut json = Vec::new();
            entry
                .read_to_end(&mut json)
                .map_err(|e| corrupt(format!("reading manifest.json: {e}")))?;
            let m: Manifest = serde_json::from_slice(&json)
                .map_err(|e| corrupt(format!("manifest.json: {e}")))?;
            if m.format != manifest::FORMAT {
                return Err(corrupt(format!("unknown format {}", m.format)));
            }
            for f in &m.files {
                if let Some(why) = manifest::member_name_problem(&f.path) {
                    return Err(corrupt(format!(
                        "the manifest lists {:?}: {why}; kastellan never writes such a member",
                        f.path
                    )));
                }
                if f.path == manifest::MANIFEST_PATH {
                    return Err(corrupt("the manifest lists manifest.json itself".into()));
                }
                if expected
                    .insert(f.path.clone(), (f.size, f.sha256.clone()))
                    .is_some()
                {
                    return Err(corrupt(format!("the manifest lists {} twice", f.path)));
                }
            }
            manifest_doc = Some(m);
            continue;
        }
        // Only plain files, under the names the format defines, at the listed size.
        let kind = entry.header().entry_type();
        if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
            return Err(corrupt(format!(
                "member {path:?} is a {kind:?} entry, not a plain file; kastellan writes only plain files"
            )));
        }
        if let Some(why) = manifest::member_name_problem(&path) {
            return Err(corrupt(format!("member {path:?}: {why}")));
        }
        let Some((size, sha)) = expected.remove(&path) else {
            return Err(corrupt(format!(
                "{path} is not listed in the manifest (or appears twice)"
            )));
        };
        let declared = entry.header().size().unwrap_or(u64::MAX);
        if declared != size {
            return Err(corrupt(format!(
                "{path}: the archive says {declared} bytes, the manifest {size}"
            )));
        }
        let pki_rel = path.strip_prefix("pki/").filter(|_| pki_to.is_some());
        if let Some(rel) = pki_rel
            && (rel.is_empty()
                || Path::new(rel)
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_))))
        {
            return Err(corrupt(format!("{path}: not a plain path inside pki/")));
        }
        let mut out = if path == manifest::SNAPSHOT_PATH {
            Some(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&snap_path)
                    .map_err(io_err("creating", &snap_path))?,
            )
        } else if let Some(rel) = pki_rel {
            let to = scratch.path().join("pki").join(rel);
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
            }
            Some(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&to)
                    .map_err(io_err("creating", &to))?,
            )
        } else {
            None
        };
        let mut kept = (resources.is_some() && path.starts_with("resources/")).then(Vec::new);
        let mut h = Sha256::new();
        let mut n = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let k = entry
                .read(&mut buf)
                .map_err(|e| corrupt(format!("reading {path}: {e}")))?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            n += k as u64;
            meter.set_done(tally.bytes());
            if let Some(f) = out.as_mut() {
                f.write_all(&buf[..k])
                    .map_err(io_err("writing", &snap_path))?;
            }
            if let Some(b) = kept.as_mut() {
                b.extend_from_slice(&buf[..k]);
            }
        }
        let got = hex::encode(h.finalize());
        if n != size || got != sha {
            return Err(corrupt(format!(
                "{path}: sha256 {got} ({n} bytes), the manifest says {sha} ({size} bytes)"
            )));
        }
        if let (Some(b), Some(r)) = (kept, resources.as_deref_mut()) {
            r.insert(path, b);
        }
        seen += 1;
        bytes += n;
    }
    let Some(manifest_doc) = manifest_doc else {
        return Err(corrupt("empty archive (no manifest.json)".into()));
    };
    if let Some(missing) = expected.keys().next() {
        return Err(corrupt(format!(
            "{} member(s) missing, first {missing} (truncated bundle?)",
            expected.len()
        )));
    }
    // Read to the very end so that the whole file went through the tally.
    let mut rest = tar.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink())
        .map_err(|e| corrupt(format!("damaged after the last member: {e}")))?;
    let (size, sha) = tally.result();

    let sidecar_file = manifest::sidecar_path(bundle);
    let sidecar: Option<Sidecar> = std::fs::read(&sidecar_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(s) = &sidecar
        && (s.size != size || s.sha256 != sha)
    {
        return Err(corrupt(format!(
            "the file's sha256 {sha} ({size} bytes) differs from the one recorded when it was written, {} ({} bytes)",
            s.sha256, s.size
        )));
    }

    let snapshot = check_snapshot(bundle, &snap_path)?;
    if snapshot.revision != manifest_doc.snapshot.revision {
        return Err(corrupt(format!(
            "the snapshot's revision {} differs from the manifest's {}",
            snapshot.revision, manifest_doc.snapshot.revision
        )));
    }
    if let Some(theirs) = manifest_doc.snapshot.hash_kv {
        let ours = hash_kv(bundle, &snap_path, theirs.revision)?;
        if ours != theirs.hash {
            return Err(corrupt(format!(
                "the snapshot's keyspace hash at revision {} is {ours}, but etcd answered {} when the snapshot was taken: its content changed after that",
                theirs.revision, theirs.hash
            )));
        }
    }

    if let Some(to) = keep {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(io_err("creating", to))?;
        let mut from = std::fs::File::open(&snap_path).map_err(io_err("reading", &snap_path))?;
        std::io::copy(&mut from, &mut out).map_err(io_err("writing", to))?;
        out.sync_all().map_err(io_err("fsync", to))?;
    }
    if let Some(to) = pki_to {
        copy_pki(&scratch.path().join("pki"), to)?;
    }
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let name = bundle
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let updated = match sidecar.clone() {
        Some(mut s) => {
            s.verified_at = Some(now);
            s.verified_by = Some("verify".into());
            s
        }
        None => Sidecar {
            bundle: name,
            size,
            sha256: sha,
            encrypted,
            cluster_name: manifest_doc.cluster_name.clone(),
            created_at: manifest_doc.created_at.clone(),
            revision: manifest_doc.snapshot.revision,
            verified_at: Some(now),
            verified_by: Some("verify".into()),
            restore_test: None,
        },
    };
    if record && let Err(e) = crate::create::write_sidecar(bundle, &updated) {
        tracing::warn!("recording the verification: {e}");
    }
    Ok(Verified {
        path: bundle.to_path_buf(),
        manifest: manifest_doc,
        files: seen,
        bytes,
        encrypted,
        snapshot,
        sidecar_checked: sidecar.is_some(),
    })
}

/// etcd's HashKV at `revision`, computed from the snapshot file.
fn hash_kv(bundle: &Path, snap: &Path, revision: i64) -> Result<u32> {
    let file = kastellan_snapshot::SnapshotFile::open(snap).map_err(|e| Error::BadSnapshot {
        path: bundle.to_path_buf(),
        message: e.to_string(),
    })?;
    // The latest revision is hashed as "the current one" (etcd refuses an explicit
    // revision at or below the compacted one, which the current one may be).
    let latest = kastellan_snapshot::hashkv::hash_kv_of_file(file.bytes(), None);
    let at = match latest {
        Ok(h) if h.revision == revision => Ok(h),
        _ => kastellan_snapshot::hashkv::hash_kv_of_file(file.bytes(), Some(revision)),
    };
    at.map(|h| h.hash).map_err(|e| Error::BadSnapshot {
        path: bundle.to_path_buf(),
        message: format!("computing its keyspace hash: {e}"),
    })
}

fn check_snapshot(bundle: &Path, snap: &Path) -> Result<kastellan_snapshot::Status> {
    let bad = |message: String| Error::BadSnapshot {
        path: bundle.to_path_buf(),
        message,
    };
    let file = kastellan_snapshot::SnapshotFile::open(snap).map_err(|e| bad(e.to_string()))?;
    let report = file
        .inspect(&kastellan_snapshot::Options {
            verify_trailer: true,
        })
        .map_err(|e| bad(e.to_string()))?;
    if !report.is_clean() {
        let f: Vec<String> = report
            .faults
            .iter()
            .take(3)
            .map(ToString::to_string)
            .collect();
        return Err(bad(format!(
            "{} finding(s): {}",
            report.fault_count,
            f.join("; ")
        )));
    }
    report.status.ok_or_else(|| bad("no etcd key space".into()))
}

/// Copies an extracted PKI tree: directories 0700, keys 0600, the rest 0644.
fn copy_pki(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).map_err(io_err("creating", to))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err("chmod", to))?;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for e in entries {
        let e = e.map_err(io_err("reading", from))?;
        let src = e.path();
        let dst = to.join(e.file_name());
        if src.is_dir() {
            copy_pki(&src, &dst)?;
            continue;
        }
        let key = dst.extension().is_some_and(|x| x == "key");
        let bytes = std::fs::read(&src).map_err(io_err("reading", &src))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if key { 0o600 } else { 0o644 })
            .open(&dst)
            .map_err(io_err("creating", &dst))?;
        f.write_all(&bytes).map_err(io_err("writing", &dst))?;
        f.sync_all().map_err(io_err("fsync", &dst))?;
    }
    Ok(())
}

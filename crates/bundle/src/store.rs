//! `backup list` and `backup prune`: the bundles in a directory.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Result, io_err};
use crate::manifest::{self, Sidecar};
use crate::retention::{self, Decision, Item, Rules};

/// A bundle found in a directory.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleInfo {
    /// File name.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Size on disk.
    pub size: u64,
    /// When it was made (sidecar, or the name).
    pub created: Option<jiff::Timestamp>,
    /// Whether it is encrypted (by its name).
    pub encrypted: bool,
    /// Its sidecar, when present and readable.
    pub sidecar: Option<Sidecar>,
    /// Verified once and the size still matches the sidecar.
    pub verified: bool,
}

/// Bundles in `dir`, newest first.
pub fn list(dir: &Path) -> Result<Vec<BundleInfo>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err("listing", dir))? {
        let e = e.map_err(io_err("listing", dir))?;
        let name = e.file_name().to_string_lossy().to_string();
        if !manifest::is_bundle_name(&name) {
            continue;
        }
        let path = e.path();
        let size = e.metadata().map_err(io_err("reading", &path))?.len();
        let sidecar: Option<Sidecar> = std::fs::read(manifest::sidecar_path(&path))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        out.push(info(name, path, size, sidecar));
    }
    sort(&mut out);
    Ok(out)
}

/// A bundle as `list` shows it, from its name, where it is, its size and its sidecar
/// (local and remote bundles alike).
pub(crate) fn info(name: String, path: PathBuf, size: u64, sidecar: Option<Sidecar>) -> BundleInfo {
    let created = sidecar
        .as_ref()
        .and_then(|s| s.created_at.parse().ok())
        .or_else(|| manifest::time_from_name(&name));
    let verified = sidecar
        .as_ref()
        .is_some_and(|s| s.verified_at.is_some() && s.size == size);
    BundleInfo {
        encrypted: name.ends_with(manifest::AGE_SUFFIX),
        name,
        path,
        size,
        created,
        sidecar,
        verified,
    }
}

/// Newest first.
pub(crate) fn sort(bundles: &mut [BundleInfo]) {
    bundles.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
}

/// At least one rule keeps something.
pub(crate) fn check_rules(rules: Rules) -> Result<()> {
    if rules.is_empty() {
        return Err(crate::Error::Usage(
            "no retention rule: give --keep-last, --keep-hourly, --keep-daily, --keep-weekly or --keep-monthly (at least one above 0)".into(),
        ));
    }
    Ok(())
}

/// The rules' decisions over `bundles` (local or remote), `newest_verified` protected.
pub(crate) fn decide(
    bundles: &[BundleInfo],
    newest_verified: Option<&str>,
    rules: Rules,
) -> Vec<Decision> {
    let items: Vec<Item> = bundles
        .iter()
        .filter_map(|b| {
            b.created.map(|created| Item {
                name: b.name.clone(),
                created,
                verified: Some(b.name.as_str()) == newest_verified,
            })
        })
        .collect();
    retention::plan(&items, rules)
}

/// What `prune` decided and did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneOutcome {
    /// The rules applied.
    pub rules: Rules,
    /// One decision per bundle, newest first.
    pub decisions: Vec<Decision>,
    /// The newest bundle whose sha256 still matches the one recorded at verification.
    pub newest_verified: Option<String>,
    /// Whether anything was deleted (false with `--dry-run`).
    pub deleted: bool,
}

fn sha256_of(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(io_err("reading", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err("reading", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Applies the rules to the bundles in `dir`; deletes (bundle and sidecar) unless
/// `dry_run`. The newest verified bundle is re-hashed first: only one whose bytes still
/// match is protected as such (a damaged one is no backup).
pub fn prune(dir: &Path, rules: Rules, dry_run: bool) -> Result<PruneOutcome> {
    check_rules(rules)?;
    let mut bundles = list(dir)?;
    let mut newest_verified = None;
    for b in bundles.iter_mut() {
        if !b.verified {
            continue;
        }
        let recorded = b.sidecar.as_ref().map(|s| s.sha256.clone());
        if recorded.as_deref() == Some(sha256_of(&b.path)?.as_str()) {
            newest_verified = Some(b.name.clone());
            break;
        }
        tracing::warn!("{}: its sha256 no longer matches its sidecar", b.name);
        b.verified = false;
    }
    let decisions = decide(&bundles, newest_verified.as_deref(), rules);
    if !dry_run {
        for d in decisions.iter().filter(|d| d.keep.is_empty()) {
            let path = dir.join(&d.name);
            std::fs::remove_file(&path).map_err(io_err("deleting", &path))?;
            for side in [
                manifest::sidecar_path(&path),
                crate::remote::journal_path(&path),
            ] {
                match std::fs::remove_file(&side) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(crate::Error::Io {
                            action: "deleting",
                            path: side,
                            source: e,
                        });
                    }
                    _ => {}
                }
            }
        }
        crate::create::sync_dir(&dir.join("x"))?;
    }
    Ok(PruneOutcome {
        rules,
        decisions,
        newest_verified,
        deleted: !dry_run,
    })
}

//! The node's files: PKI, kubeconfigs, static pod manifests.

use std::path::{Path, PathBuf};

use crate::error::{Result, io_err};

/// A member's content before it goes into the archive.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// Small files and generated documents.
    Memory(Vec<u8>),
    /// Large files (the snapshot), streamed from disk.
    File(PathBuf),
}

/// One member to be archived.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) path: String,
    pub(crate) content: Content,
}

/// Reads `<etc>/pki/**`, `<etc>/*.conf` and `<etc>/manifests/*`.
pub(crate) fn node_files(etc: &Path) -> Result<Vec<Member>> {
    let mut out = Vec::new();
    let pki = etc.join("pki");
    walk(&pki, &pki, "pki", &mut out)?;
    for entry in read_dir_sorted(etc)? {
        let name = entry
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if name.ends_with(".conf") && entry.is_file() {
            out.push(read_member(&entry, format!("kubeconfigs/{name}"))?);
        }
    }
    let manifests = etc.join("manifests");
    if manifests.is_dir() {
        for entry in read_dir_sorted(&manifests)? {
            if entry.is_file() {
                let name = entry
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                out.push(read_member(&entry, format!("manifests/{name}"))?);
            }
        }
    }
    Ok(out)
}

/// The archive paths that hold private keys.
pub(crate) fn private_keys(members: &[Member]) -> Vec<String> {
    members
        .iter()
        .filter(|m| {
            m.path.starts_with("pki/")
                && (m.path.ends_with(".key")
                    || matches!(&m.content, Content::Memory(b) if contains(b, b"PRIVATE KEY-----")))
        })
        .map(|m| m.path.clone())
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn read_member(path: &Path, archive: String) -> Result<Member> {
    Ok(Member {
        path: archive,
        content: Content::Memory(std::fs::read(path).map_err(io_err("reading", path))?),
    })
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err("listing", dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<Member>) -> Result<()> {
    for p in read_dir_sorted(dir)? {
        let meta = std::fs::symlink_metadata(&p).map_err(io_err("reading", &p))?;
        if meta.is_dir() {
            walk(root, &p, prefix, out)?;
        } else if meta.is_file() {
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .to_string();
            out.push(read_member(&p, format!("{prefix}/{rel}"))?);
        }
    }
    Ok(())
}

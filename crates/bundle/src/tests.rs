//! Bundles written and read back in a temporary directory (no cluster): encryption,
//! damage, retention on disk.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::SecretString;

use crate::collect::{Content, Member};
use crate::create::{Encryption, write_bundle, write_sidecar};
use crate::manifest::{self, Manifest, Sensitive, Sidecar, SnapshotInfo};
use crate::retention::Rules;
use crate::{Decryption, Error, list, prune, verify};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshot/tests/fixtures/etcd35.snapshot.db")
}

/// Writes a bundle the way `create` does, from a fixture snapshot.
fn make(dir: &Path, at: &str, encryption: Encryption) -> PathBuf {
    let snap = dir.join(format!("snap-{at}.db"));
    std::fs::copy(fixture(), &snap).unwrap();
    let status = kastellan_snapshot::SnapshotFile::open(&snap)
        .unwrap()
        .status()
        .unwrap();
    let mut members = vec![
        Member {
            path: "pki/ca.key".into(),
            content: Content::Memory(b"-----BEGIN RSA PRIVATE KEY-----\n".to_vec()),
        },
        Member {
            path: "resources/namespaces/default/core/configmaps.yaml".into(),
            content: Content::Memory(b"---\napiVersion: v1\nkind: ConfigMap\n".to_vec()),
        },
        Member {
            path: manifest::SNAPSHOT_PATH.into(),
            content: Content::File(snap.clone()),
        },
    ];
    members.sort_by(|a, b| a.path.cmp(&b.path));
    let now: jiff::Timestamp = at.parse().unwrap();
    let encryptor = encryption.encryptor().unwrap();
    let encrypted = encryptor.is_some();
    let m = Manifest {
        format: manifest::FORMAT.into(),
        kastellan_version: "test".into(),
        kubernetes_version: Some("v1.20.2".into()),
        etcd_version: "3.5.1".into(),
        cluster_name: "kubernetes".into(),
        created_at: at.into(),
        snapshot: SnapshotInfo {
            endpoint: "https://127.0.0.1:2379".into(),
            member_id: "1".into(),
            member_name: None,
            revision: status.revision,
            total_key: status.total_key,
            hash: status.hash,
            hash_kv: None,
        },
        sensitive: Sensitive::default(),
        resources: 1,
        files: members
            .iter()
            .map(|m| crate::create::entry_of(m).unwrap())
            .collect(),
        volume_snapshots: None,
    };
    let json = serde_json::to_vec(&m).unwrap();
    let name = manifest::bundle_name("kubernetes", now, encrypted);
    let dest = dir.join(&name);
    let (size, sha256, _) = write_bundle(
        &dest,
        &json,
        &members,
        now,
        encryptor,
        &crate::meter::Meter::default(),
    )
    .unwrap();
    write_sidecar(
        &dest,
        &Sidecar {
            bundle: name,
            size,
            sha256,
            encrypted,
            cluster_name: "kubernetes".into(),
            created_at: at.into(),
            revision: status.revision,
            verified_at: Some(at.into()),
            verified_by: Some("create".into()),
            restore_test: None,
        },
    )
    .unwrap();
    std::fs::remove_file(snap).unwrap();
    dest
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn plain_bundle_round_trips_and_damage_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let b = make(dir.path(), "2026-11-20T10:00:00Z", Encryption::None);
    assert_eq!(mode(&b), 0o600);
    assert_eq!(mode(&manifest::sidecar_path(&b)), 0o600);
    let v = verify(&b, &Decryption::None, &crate::meter::Meter::default()).unwrap();
    assert_eq!(v.files, 3);
    assert!(v.sidecar_checked && !v.encrypted);
    assert_eq!(v.snapshot.revision, v.manifest.snapshot.revision);
    // Nothing left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // One bit flipped near the end: the bundle's own sha256, or zstd, or a member's hash.
    let bytes = std::fs::read(&b).unwrap();
    let mut flipped = bytes.clone();
    let at = flipped.len() - 40;
    flipped[at] ^= 0x04;
    std::fs::write(&b, &flipped).unwrap();
    let err = verify(&b, &Decryption::None, &crate::meter::Meter::default()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(&b.display().to_string()), "{err}");

    // Truncated.
    std::fs::write(&b, &bytes[..bytes.len() / 2]).unwrap();
    let err = verify(&b, &Decryption::None, &crate::meter::Meter::default()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");

    // Not a bundle at all.
    std::fs::write(&b, b"hello").unwrap();
    assert!(verify(&b, &Decryption::None, &crate::meter::Meter::default()).is_err());
}

#[test]
fn encrypted_bundles_need_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public().to_string();
    let b = make(
        dir.path(),
        "2026-11-20T10:00:00Z",
        Encryption::Recipients(vec![recipient]),
    );
    assert!(b.to_string_lossy().ends_with(".tar.zst.age"));
    let raw = std::fs::read(&b).unwrap();
    assert!(raw.starts_with(crate::archive::AGE_MAGIC));
    assert!(
        !raw.windows(11).any(|w| w == b"PRIVATE KEY"),
        "key material in the clear"
    );
    let err = verify(&b, &Decryption::None, &crate::meter::Meter::default()).unwrap_err();
    assert!(err.to_string().contains("--identity"), "{err}");
    let idfile = dir.path().join("id.txt");
    use age::secrecy::ExposeSecret;
    std::fs::write(
        &idfile,
        format!("# test\n{}\n", id.to_string().expose_secret()),
    )
    .unwrap();
    let v = verify(
        &b,
        &Decryption::IdentityFile(idfile.clone()),
        &crate::meter::Meter::default(),
    )
    .unwrap();
    assert!(v.encrypted);
    let other = dir.path().join("other.txt");
    std::fs::write(
        &other,
        age::x25519::Identity::generate()
            .to_string()
            .expose_secret(),
    )
    .unwrap();
    let err = verify(
        &b,
        &Decryption::IdentityFile(other),
        &crate::meter::Meter::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Decrypt { .. }), "{err}");

    // A passphrase.
    let b = make(
        dir.path(),
        "2026-11-21T10:00:00Z",
        Encryption::Passphrase(SecretString::from("correct horse".to_string())),
    );
    verify(
        &b,
        &Decryption::Passphrase(SecretString::from("correct horse".to_string())),
        &crate::meter::Meter::default(),
    )
    .unwrap();
    let err = verify(
        &b,
        &Decryption::Passphrase(SecretString::from("wrong".to_string())),
        &crate::meter::Meter::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Decrypt { .. }), "{err}");
    assert!(age::x25519::Recipient::from_str("age1nope").is_err());
    assert!(
        Encryption::Recipients(vec!["age1nope".into()])
            .encryptor()
            .is_err()
    );
}

#[test]
fn prune_keeps_the_newest_verified_and_lists_with_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let times = [
        "2026-11-01T10:00:00Z",
        "2026-11-10T10:00:00Z",
        "2026-11-19T10:00:00Z",
        "2026-11-20T09:00:00Z",
        "2026-11-20T10:00:00Z",
    ];
    let paths: Vec<PathBuf> = times
        .iter()
        .map(|t| make(dir.path(), t, Encryption::None))
        .collect();
    // The two newest are damaged: the newest intact one must survive keep-last 1.
    for p in &paths[3..] {
        let mut b = std::fs::read(p).unwrap();
        let n = b.len();
        b[n - 10] ^= 1;
        std::fs::write(p, b).unwrap();
    }
    let listed = list(dir.path()).unwrap();
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[0].path, paths[4]);
    let rules = Rules {
        keep_last: 1,
        ..Rules::default()
    };
    let dry = prune(dir.path(), rules, true).unwrap();
    let file_name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(
        dry.newest_verified.as_deref(),
        Some(file_name(&paths[2]).as_str())
    );
    assert_eq!(
        dry.decisions.iter().filter(|d| d.keep.is_empty()).count(),
        3
    );
    assert_eq!(
        list(dir.path()).unwrap().len(),
        5,
        "dry run deletes nothing"
    );
    let done = prune(dir.path(), rules, false).unwrap();
    assert!(done.deleted);
    let left: Vec<String> = list(dir.path())
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(left, [file_name(&paths[4]), file_name(&paths[2])]);
    assert!(!manifest::sidecar_path(&paths[0]).exists());
    assert!(prune(dir.path(), Rules::default(), true).is_err());
}

/// One member of a hand-made archive: raw name, entry type, content.
struct Raw {
    name: Vec<u8>,
    kind: tar::EntryType,
    data: Vec<u8>,
}

/// Reads every member of a plain (unencrypted) bundle.
fn members_of(bundle: &Path) -> Vec<Raw> {
    let zst = zstd::Decoder::new(std::fs::File::open(bundle).unwrap()).unwrap();
    let mut tar = tar::Archive::new(zst);
    tar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            Raw {
                name: e.path_bytes().to_vec(),
                kind: e.header().entry_type(),
                data,
            }
        })
        .collect()
}

/// Writes `members` as a bundle at `dest` (names written raw, as a foreign tool could),
/// encrypted with `passphrase` if given.
fn write_raw(dest: &Path, members: &[Raw], passphrase: Option<&str>) {
    let mut tar = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_gnu();
        let name = &mut h.as_old_mut().name;
        name[..m.name.len()].copy_from_slice(&m.name);
        h.set_size(m.data.len() as u64);
        h.set_mode(0o600);
        h.set_entry_type(m.kind);
        if m.kind == tar::EntryType::Symlink {
            h.set_link_name("/etc/shadow").unwrap();
        }
        h.set_cksum();
        tar.append(&h, &m.data[..]).unwrap();
    }
    let plain = zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap();
    let bytes = match passphrase {
        None => plain,
        Some(p) => {
            let enc = age::Encryptor::with_user_passphrase(SecretString::from(p.to_string()));
            let mut out = Vec::new();
            let mut w = enc.wrap_output(&mut out).unwrap();
            std::io::Write::write_all(&mut w, &plain).unwrap();
            w.finish().unwrap();
            out
        }
    };
    std::fs::write(dest, bytes).unwrap();
}

/// Every file under `dir`, with its content.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// Bundles kastellan did not make are refused, naming the member, whatever their
/// encryption, and verifying them writes nothing anywhere.
#[test]
fn foreign_members_are_refused() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let good = make(dir.path(), "2026-11-22T10:00:00Z", Encryption::None);
    let original = members_of(&good);
    let entry = |name: &str, data: &[u8]| manifest::FileEntry {
        path: name.into(),
        size: data.len() as u64,
        sha256: hex::encode(sha2::Sha256::digest(data)),
    };
    // Each case: what is added to (or changed in) the archive and its manifest, and
    // what the refusal must say.
    type Case = (&'static str, fn(&mut Vec<Raw>, &mut Manifest), &'static str);
    let cases: Vec<Case> = vec![
        (
            "dot-dot",
            |m, man| {
                m.push(Raw {
                    name: b"../../../../tmp/x".to_vec(),
                    kind: tar::EntryType::Regular,
                    data: b"x".to_vec(),
                });
                man.files.push(manifest::FileEntry {
                    path: "../../../../tmp/x".into(),
                    size: 1,
                    sha256: String::new(),
                });
            },
            "../../../../tmp/x",
        ),
        (
            "absolute",
            |m, man| {
                m.push(Raw {
                    name: b"/tmp/x".to_vec(),
                    kind: tar::EntryType::Regular,
                    data: b"x".to_vec(),
                });
                man.files.push(manifest::FileEntry {
                    path: "/tmp/x".into(),
                    size: 1,
                    sha256: String::new(),
                });
            },
            "an absolute name",
        ),
        (
            "outside the layout",
            |m, man| {
                m.push(Raw {
                    name: b"bin/evil".to_vec(),
                    kind: tar::EntryType::Regular,
                    data: b"x".to_vec(),
                });
                man.files.push(manifest::FileEntry {
                    path: "bin/evil".into(),
                    size: 1,
                    sha256: String::new(),
                });
            },
            "outside the layout",
        ),
        (
            "listed twice",
            |_, man| {
                let again = man.files[0].clone();
                man.files.push(again);
            },
            "twice",
        ),
        (
            "symlink",
            |m, _| {
                // Not listed, but the entry type is refused before anything else.
                let pos = m.iter().position(|r| r.name == b"pki/ca.key").unwrap();
                m[pos].kind = tar::EntryType::Symlink;
            },
            "pki/ca.key",
        ),
        (
            "longer than listed",
            |m, _| {
                let pos = m.iter().position(|r| r.name == b"pki/ca.key").unwrap();
                m[pos].data.extend_from_slice(b"more");
            },
            "pki/ca.key: the archive says",
        ),
    ];
    for passphrase in [None, Some("correct horse")] {
        for (what, change, says) in &cases {
            let mut members: Vec<Raw> = original
                .iter()
                .map(|r| Raw {
                    name: r.name.clone(),
                    kind: r.kind,
                    data: r.data.clone(),
                })
                .collect();
            let mut man: Manifest = serde_json::from_slice(&members[0].data).unwrap();
            change(&mut members, &mut man);
            // Listed entries get their true hash (the refusal must not be a hash mismatch).
            for f in &mut man.files {
                if let Some(r) = members.iter().find(|r| r.name == f.path.as_bytes())
                    && f.sha256.is_empty()
                {
                    *f = entry(&f.path, &r.data);
                }
            }
            members[0].data = serde_json::to_vec(&man).unwrap();
            let sub = tempfile::tempdir().unwrap();
            let name = if passphrase.is_some() {
                "x.tar.zst.age"
            } else {
                "x.tar.zst"
            };
            let bundle = sub.path().join(name);
            write_raw(&bundle, &members, passphrase);
            let before = tree(sub.path());
            let decryption = match passphrase {
                Some(p) => Decryption::Passphrase(SecretString::from(p.to_string())),
                None => Decryption::None,
            };
            let err = verify(&bundle, &decryption, &crate::meter::Meter::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{what} ({passphrase:?}): {err}");
            assert_eq!(tree(sub.path()), before, "{what}: nothing written");
        }
    }
    // The untouched members, rewritten the same way, still verify: the refusals above
    // come from the changes, not from the rewriting.
    let same = dir.path().join("same.tar.zst");
    write_raw(&same, &original, None);
    verify(&same, &Decryption::None, &crate::meter::Meter::default()).unwrap();
}

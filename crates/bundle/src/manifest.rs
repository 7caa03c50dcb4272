//! `manifest.json` inside the bundle, the sidecar next to it, and bundle file names.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The format string of `manifest.json`.
pub const FORMAT: &str = "kastellan-backup/v1";
/// The member of the archive that holds the manifest (always the first).
pub const MANIFEST_PATH: &str = "manifest.json";
/// The member that holds the etcd snapshot.
pub const SNAPSHOT_PATH: &str = "etcd/snapshot.db";

/// Why a member name is not one that format v1 defines, if it is not: a plain relative
/// path (no empty, `.`, `..` or absolute parts) that is `manifest.json`,
/// `etcd/snapshot.db`, `kubeadm/kubeadm-config.yaml`, `kubeconfigs/<name>.conf`,
/// `manifests/<name>`, or a file below `pki/` or `resources/`.
pub fn member_name_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("an empty name");
    }
    if path.starts_with('/') {
        return Some("an absolute name");
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Some("a name with an empty, `.` or `..` part");
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return Some("a name with a backslash or a control character");
    }
    let ok = match parts.as_slice() {
        [MANIFEST_PATH] => true,
        ["etcd", "snapshot.db"] | ["kubeadm", "kubeadm-config.yaml"] => true,
        ["kubeconfigs", name] => name.ends_with(".conf"),
        ["manifests", _] => true,
        ["pki" | "resources", _, ..] => true,
        _ => false,
    };
    (!ok).then_some("a name outside the layout of kastellan-backup/v1")
}
/// File names start with this.
pub const NAME_PREFIX: &str = "kastellan-backup-";
/// Unencrypted bundles end with this.
pub const PLAIN_SUFFIX: &str = ".tar.zst";
/// Encrypted bundles end with this.
pub const AGE_SUFFIX: &str = ".tar.zst.age";

/// One member of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// Path inside the archive.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256, hex.
    pub sha256: String,
}

/// Where the snapshot came from and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    /// The endpoint streamed from.
    pub endpoint: String,
    /// The member's id (hex).
    pub member_id: String,
    /// The member's name.
    pub member_name: Option<String>,
    /// etcd's revision in the snapshot.
    pub revision: i64,
    /// Keys in the snapshot.
    pub total_key: u64,
    /// etcd's `snapshot status` hash.
    pub hash: u32,
    /// The member's own hash of the keyspace at the snapshot's revision, asked right
    /// after the snapshot (absent in bundles of older kastellan versions, or when the
    /// member could not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_kv: Option<HashKvRecord>,
}

/// What etcd's `HashKV` answered: a restored member must answer the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HashKvRecord {
    /// The CRC-32C of the keyspace.
    pub hash: u32,
    /// The revision hashed at.
    pub revision: i64,
    /// The member's compacted revision then.
    pub compact_revision: i64,
}

/// What a bundle holds that needs protecting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sensitive {
    /// Private keys from the PKI (paths in the archive).
    pub private_keys: Vec<String>,
    /// How many Secret objects were exported.
    pub secrets: u64,
}

impl Sensitive {
    /// Whether anything sensitive is held.
    pub fn any(&self) -> bool {
        !self.private_keys.is_empty() || self.secrets > 0
    }

    /// "12 private keys (CA keys included) and 9 Secrets".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.private_keys.is_empty() {
            let ca = self
                .private_keys
                .iter()
                .any(|k| k.ends_with("ca.key") || k.ends_with("sa.key"));
            parts.push(format!(
                "{} private key(s){}",
                self.private_keys.len(),
                if ca { " (CA keys included)" } else { "" }
            ));
        }
        if self.secrets > 0 {
            parts.push(format!("{} Secret(s)", self.secrets));
        }
        parts.join(" and ")
    }
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The kastellan that wrote it.
    pub kastellan_version: String,
    /// The apiserver's `gitVersion`.
    pub kubernetes_version: Option<String>,
    /// The etcd member's version.
    pub etcd_version: String,
    /// `clusterName` from kubeadm's ClusterConfiguration.
    pub cluster_name: String,
    /// When the bundle was made (RFC 3339, UTC).
    pub created_at: String,
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// What needs protecting.
    pub sensitive: Sensitive,
    /// API resources exported (objects).
    pub resources: u64,
    /// Every other member of the archive, sorted by path.
    pub files: Vec<FileEntry>,
    /// CSI volume snapshots taken with the bundle (absent when none were asked for;
    /// bundles written before volume snapshots existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshots: Option<crate::volumes::VolumeSnapshots>,
}

/// The sidecar `<bundle>.json`: no secrets, readable without the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    /// The bundle's file name.
    pub bundle: String,
    /// Its size.
    pub size: u64,
    /// Its sha256 (of the file as stored, encrypted or not).
    pub sha256: String,
    /// Whether it is age-encrypted.
    pub encrypted: bool,
    /// The cluster.
    pub cluster_name: String,
    /// When it was made.
    pub created_at: String,
    /// The etcd revision of its snapshot.
    pub revision: i64,
    /// When its content was last verified (every member's sha256 and the snapshot),
    /// and by what ("create" or "verify").
    pub verified_at: Option<String>,
    /// "create" or "verify".
    pub verified_by: Option<String>,
    /// The last restore test (`backup verify --restore-test`): its verdict and figures
    /// (absent when none ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_test: Option<crate::proof::RestoreTest>,
}

/// The sidecar path of a bundle.
pub fn sidecar_path(bundle: &Path) -> std::path::PathBuf {
    let mut name = bundle.file_name().unwrap_or_default().to_os_string();
    name.push(".json");
    bundle.with_file_name(name)
}

/// A cluster name made safe for a file name.
pub fn safe_name(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() { "cluster".into() } else { s }
}

/// `kastellan-backup-<cluster>-<YYYYMMDDTHHMMSSZ>.tar.zst[.age]`.
pub fn bundle_name(cluster: &str, at: jiff::Timestamp, encrypted: bool) -> String {
    format!(
        "{NAME_PREFIX}{}-{}{}",
        safe_name(cluster),
        at.strftime("%Y%m%dT%H%M%SZ"),
        if encrypted { AGE_SUFFIX } else { PLAIN_SUFFIX }
    )
}

/// Whether a file name is a bundle's (not a `.part`, not a sidecar).
pub fn is_bundle_name(name: &str) -> bool {
    name.starts_with(NAME_PREFIX) && (name.ends_with(PLAIN_SUFFIX) || name.ends_with(AGE_SUFFIX))
}

/// The time encoded in a bundle's name.
pub fn time_from_name(name: &str) -> Option<jiff::Timestamp> {
    let stem = name
        .strip_suffix(AGE_SUFFIX)
        .or_else(|| name.strip_suffix(PLAIN_SUFFIX))?;
    let stamp = stem.rsplit('-').next()?;
    jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", stamp)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let t: jiff::Timestamp = "2026-11-21T10:20:30Z".parse().unwrap();
        let n = bundle_name("kubernetes", t, true);
        assert_eq!(
            n,
            "kastellan-backup-kubernetes-20261121T102030Z.tar.zst.age"
        );
        assert!(is_bundle_name(&n));
        assert!(!is_bundle_name(&format!("{n}.json")));
        assert!(!is_bundle_name(&format!("{n}.part")));
        assert_eq!(time_from_name(&n), Some(t));
        assert_eq!(
            time_from_name(&bundle_name("my cluster/1", t, false)),
            Some(t)
        );
        assert_eq!(safe_name("my cluster/1"), "my-cluster-1");
    }

    #[test]
    fn sensitive_is_described() {
        let s = Sensitive {
            private_keys: vec!["pki/ca.key".into(), "pki/apiserver.key".into()],
            secrets: 3,
        };
        assert_eq!(
            s.describe(),
            "2 private key(s) (CA keys included) and 3 Secret(s)"
        );
        assert!(!Sensitive::default().any());
    }

    /// A manifest as written before volume snapshots existed.
    const OLD: &str = r#"{"format":"kastellan-backup/v1","kastellanVersion":"0.1.0",
        "kubernetesVersion":"v1.20.2","etcdVersion":"3.5.1","clusterName":"kubernetes",
        "createdAt":"2026-11-21T10:20:30Z","snapshot":{"endpoint":"https://10.77.0.11:2379",
        "memberId":"1","memberName":"cp1","revision":42,"totalKey":7,"hash":1},
        "sensitive":{"privateKeys":[],"secrets":0},"resources":3,"files":[]}"#;

    #[test]
    fn old_manifests_read_and_volume_snapshots_round_trip() {
        let mut m: Manifest = serde_json::from_str(OLD).unwrap();
        assert_eq!(m.volume_snapshots, None);
        let plain = serde_json::to_value(&m).unwrap();
        assert!(plain.get("volumeSnapshots").is_none(), "{plain}");

        m.volume_snapshots = Some(crate::volumes::VolumeSnapshots {
            taken: vec![crate::volumes::Recorded {
                namespace: "shop".into(),
                pvc: "data".into(),
                volume_snapshot: "kastellan-data-20261121-102030".into(),
                class: "csi-snap".into(),
                driver: "test.csi.kastellan.dev".into(),
                content: Some("snapcontent-1".into()),
                snapshot_handle: Some("handle-1".into()),
                restore_size: Some("1Gi".into()),
                ready_at: "2026-11-21T10:20:35Z".into(),
            }],
            skipped: vec![crate::volumes::Skipped {
                namespace: "shop".into(),
                pvc: "scratch".into(),
                reason: "no VolumeSnapshotClass for driver b.csi".into(),
            }],
        });
        let json = serde_json::to_string(&m).unwrap();
        assert!(
            json.contains(r#""volumeSnapshot":"kastellan-data-20261121-102030""#),
            "{json}"
        );
        assert!(json.contains(r#""snapshotHandle":"handle-1""#), "{json}");
        let back: Manifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }
}

//! Test support: a real kubeadm PKI in a temp dir, kubeadm's own verdicts, directory
//! snapshots, and certificates made to order with rcgen.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use kastellan_pki::Layout;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose};
use sha2::Digest as _;

/// The kubeadm binary built by scripts/build-kubernetes.sh.
pub fn kubeadm() -> PathBuf {
    let cache = std::env::var_os("KASTELLAN_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/kastellan"), PathBuf::from);
    let bin = cache.join("kubernetes/v1.20.2/bin/kubeadm");
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/build-kubernetes.sh (KASTELLAN_CACHE={})",
        bin.display(),
        cache.display()
    );
    bin
}

/// A node's filesystem root in a temp dir, with a PKI and kubeconfigs made by the real
/// kubeadm (run with `--rootfs`, so it sees `/etc/kubernetes` inside the temp dir).
pub struct Node {
    _tmp: tempfile::TempDir,
    /// The node's root directory.
    pub root: PathBuf,
}

const CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta2
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.77.0.11
  bindPort: 6443
nodeRegistration:
  name: cp1
---
apiVersion: kubeadm.k8s.io/v1beta2
kind: ClusterConfiguration
kubernetesVersion: v1.20.2
certificatesDir: /etc/kubernetes/pki
";

impl Node {
    /// `kubeadm init phase certs all` and `kubeadm init phase kubeconfig all`.
    pub fn init() -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc/kubernetes/manifests")).unwrap();
        std::fs::write(root.join("kubeadm.yaml"), CONFIG).unwrap();
        let node = Node { _tmp: tmp, root };
        node.kubeadm_ok(&["init", "phase", "certs", "all", "--config", "/kubeadm.yaml"]);
        node.kubeadm_ok(&[
            "init",
            "phase",
            "kubeconfig",
            "all",
            "--config",
            "/kubeadm.yaml",
            "--kubeconfig-dir",
            "/etc/kubernetes",
        ]);
        node
    }

    /// Runs kubeadm inside the node root; returns (success, stdout, stderr).
    pub fn kubeadm(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(kubeadm())
            .args(args)
            .arg("--rootfs")
            .arg(&self.root)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs kubeadm and fails the test unless it succeeds; returns stdout.
    pub fn kubeadm_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubeadm(args);
        assert!(ok, "kubeadm {args:?} failed:\n{out}\n{err}");
        out
    }

    /// `/etc/kubernetes` of the node.
    pub fn etc(&self) -> PathBuf {
        self.root.join("etc/kubernetes")
    }

    /// `/etc/kubernetes/pki` of the node.
    pub fn pki(&self) -> PathBuf {
        self.etc().join("pki")
    }

    /// The layout kastellan should read.
    pub fn layout(&self) -> Layout {
        Layout {
            cert_dir: self.pki(),
            kubeconfig_dir: self.etc(),
            kubelet_pki_dir: self.root.join("var/lib/kubelet/pki"),
        }
    }

    /// kubeadm's own `certs check-expiration`.
    pub fn check_expiration(&self) -> KubeadmCheck {
        parse_check_expiration(&self.kubeadm_ok(&[
            "certs",
            "check-expiration",
            "--config",
            "/kubeadm.yaml",
        ]))
    }
}

/// One row of `kubeadm certs check-expiration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeadmRow {
    /// Certificate name.
    pub name: String,
    /// `Nov 21, 2027 20:58 UTC`, or empty when missing.
    pub expires: String,
    /// `364d`.
    pub residual: String,
    /// CA column (empty for CAs and, in 1.20, for kubeconfigs).
    pub ca: String,
    /// `yes` / `no`.
    pub externally_managed: String,
    /// `!MISSING!` rows.
    pub missing: bool,
}

/// Both tables of kubeadm's output.
#[derive(Debug, Clone, Default)]
pub struct KubeadmCheck {
    /// Certificates.
    pub certificates: Vec<KubeadmRow>,
    /// CAs.
    pub authorities: Vec<KubeadmRow>,
}

/// Parses kubeadm's tabwriter tables by the header's column offsets (the CA column may be empty).
pub fn parse_check_expiration(out: &str) -> KubeadmCheck {
    let mut check = KubeadmCheck::default();
    let mut cols: Vec<(String, usize)> = Vec::new();
    let mut in_cas = false;
    for line in out.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with("CERTIFICATE") && line.contains("EXPIRES") {
            in_cas = line.starts_with("CERTIFICATE AUTHORITY");
            cols = [
                "EXPIRES",
                "RESIDUAL TIME",
                "CERTIFICATE AUTHORITY",
                "EXTERNALLY MANAGED",
            ]
            .iter()
            .filter_map(|h| {
                // For the CA table, "CERTIFICATE AUTHORITY" is the first column.
                let idx = if in_cas && *h == "CERTIFICATE AUTHORITY" {
                    None
                } else {
                    line.find(h)
                };
                idx.map(|i| (h.to_string(), i))
            })
            .collect();
            continue;
        }
        let cell = |name: &str| -> String {
            let Some(pos) = cols.iter().position(|(h, _)| h == name) else {
                return String::new();
            };
            let start = cols[pos].1;
            let end = cols.get(pos + 1).map_or(line.len(), |c| c.1);
            line.get(start.min(line.len())..end.min(line.len()))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let first_end = cols.first().map_or(line.len(), |c| c.1).min(line.len());
        let first = line[..first_end].trim();
        let (missing, name) = match first.strip_prefix("!MISSING! ") {
            Some(n) => (true, n.trim().to_string()),
            None => (false, first.to_string()),
        };
        let row = KubeadmRow {
            name,
            expires: cell("EXPIRES"),
            residual: cell("RESIDUAL TIME"),
            ca: cell("CERTIFICATE AUTHORITY"),
            externally_managed: cell("EXTERNALLY MANAGED"),
            missing,
        };
        if in_cas {
            check.authorities.push(row)
        } else {
            check.certificates.push(row)
        }
    }
    check
}

/// Every file under `dir`: relative path → (sha256, mode). Symlinks are followed.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (String, u32)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (String, u32)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let data = std::fs::read(&p).unwrap();
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
                out.insert(
                    p.strip_prefix(base).unwrap().to_path_buf(),
                    (hex::encode(sha2::Sha256::digest(&data)), mode),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The unix mode of a file.
pub fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Runs openssl and returns (success, stdout+stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Loads a CA (cert + key) of the node as an rcgen issuer.
pub fn issuer(node: &Node, base: &str) -> Issuer<'static, KeyPair> {
    let cert = std::fs::read_to_string(node.pki().join(format!("{base}.crt"))).unwrap();
    let key = std::fs::read_to_string(node.pki().join(format!("{base}.key"))).unwrap();
    let key = KeyPair::from_pem(&key).unwrap();
    Issuer::from_ca_cert_pem(&cert, key).unwrap()
}

/// Replaces `<pki>/<base>.crt/.key` with a client certificate signed by the CA `ca_base`,
/// valid until `not_after` (unix seconds). RSA 2048 key in PKCS#1, like kubeadm.
pub fn replace_leaf(node: &Node, base: &str, ca_base: &str, cn: &str, not_after: i64) {
    let issuer = issuer(node, ca_base);
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.not_before = time::OffsetDateTime::from_unix_timestamp(not_after - 400 * 86400).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(node.pki().join(format!("{base}.crt")), cert.pem()).unwrap();
    let pkcs1 = kastellan_pki::pem::pkcs8_to_pkcs1(&key.serialize_der()).unwrap();
    std::fs::write(
        node.pki().join(format!("{base}.key")),
        kastellan_pki::pem::encode("RSA PRIVATE KEY", &pkcs1),
    )
    .unwrap();
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

//! What a joining node needs to trust the cluster: the CA's public key pin
//! (`sha256:` and the hex SHA-256 of the certificate's DER SubjectPublicKeyInfo, as
//! kubeadm's pubkeypin computes it) and the API endpoint, read from the `cluster-info`
//! ConfigMap's kubeconfig or kubeadm's ClusterConfiguration.

use base64::Engine as _;
use serde::Deserialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, Result};

/// The namespace of the `cluster-info` ConfigMap.
pub const CLUSTER_INFO_NAMESPACE: &str = "kube-public";
/// The name of the ConfigMap a joining node reads without credentials.
pub const CLUSTER_INFO: &str = "cluster-info";
/// The key of the kubeconfig in `cluster-info`.
pub const CLUSTER_INFO_KEY: &str = "kubeconfig";

/// The pin of one DER certificate: `sha256:<hex>` of its SubjectPublicKeyInfo.
pub fn ca_cert_hash(der: &[u8], what: &str) -> Result<String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| Error::Certificate {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    Ok(format!("sha256:{}", hex::encode(digest.as_ref())))
}

/// The pins of every certificate in a PEM bundle (a CA file may hold several, and
/// kubeadm prints one `--discovery-token-ca-cert-hash` for each).
pub fn ca_cert_hashes(pem: &[u8], what: &str) -> Result<Vec<String>> {
    let mut hashes = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| Error::Certificate {
            what: what.to_string(),
            detail: format!("bad PEM: {e}"),
        })?;
        if block.label == "CERTIFICATE" {
            hashes.push(ca_cert_hash(&block.contents, what)?);
        }
    }
    if hashes.is_empty() {
        return Err(Error::Certificate {
            what: what.to_string(),
            detail: "no CERTIFICATE block".into(),
        });
    }
    Ok(hashes)
}

/// The cluster a kubeconfig names first: what `cluster-info` publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The apiserver URL, e.g. `https://10.0.0.1:6443`.
    pub server: String,
    /// The CA bundle (PEM).
    pub ca_pem: Vec<u8>,
}

impl ClusterInfo {
    /// The server as `HOST:PORT` (the scheme dropped), as a join command takes it.
    pub fn endpoint(&self) -> String {
        endpoint_of(&self.server)
    }
}

/// `https://HOST:PORT/...` as `HOST:PORT`.
pub fn endpoint_of(server: &str) -> String {
    let s = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    s.split('/').next().unwrap_or(s).to_string()
}

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(default)]
    clusters: Vec<NamedCluster>,
}

#[derive(Deserialize)]
struct NamedCluster {
    cluster: Cluster,
}

#[derive(Deserialize)]
struct Cluster {
    server: Option<String>,
    #[serde(rename = "certificate-authority-data")]
    ca_data: Option<String>,
}

/// Reads the first cluster of a kubeconfig (`cluster-info` holds exactly one, with
/// the CA embedded).
pub fn cluster_info(kubeconfig: &str, what: &str) -> Result<ClusterInfo> {
    let bad = |detail: String| Error::Kubeconfig {
        what: what.to_string(),
        detail,
    };
    let kc: Kubeconfig = serde_saphyr::from_str(kubeconfig).map_err(|e| bad(e.to_string()))?;
    let cluster = kc
        .clusters
        .into_iter()
        .next()
        .ok_or_else(|| bad("no cluster".into()))?
        .cluster;
    let server = cluster.server.ok_or_else(|| bad("no server".into()))?;
    let data = cluster
        .ca_data
        .ok_or_else(|| bad("no certificate-authority-data".into()))?;
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| bad(format!("certificate-authority-data: {e}")))?;
    Ok(ClusterInfo { server, ca_pem })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration {
    control_plane_endpoint: Option<String>,
    certificates_dir: Option<String>,
    #[serde(default)]
    etcd: Etcd,
}

#[derive(Deserialize, Default)]
struct Etcd {
    external: Option<ExternalEtcd>,
}

/// The client files of an external etcd, as the ClusterConfiguration names them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalEtcd {
    /// The CA of the etcd servers.
    #[serde(default)]
    pub ca_file: String,
    /// The apiserver's client certificate.
    #[serde(default)]
    pub cert_file: String,
    /// Its key.
    #[serde(default)]
    pub key_file: String,
}

/// What a join command needs from kubeadm's ClusterConfiguration (the
/// `ClusterConfiguration` key of the `kubeadm-config` ConfigMap).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeadmConfig {
    /// `controlPlaneEndpoint`, if set.
    pub control_plane_endpoint: Option<String>,
    /// `certificatesDir`, if set.
    pub certificates_dir: Option<String>,
    /// `etcd.external`, if the cluster's etcd is not kubeadm's own.
    pub external_etcd: Option<ExternalEtcd>,
}

/// Reads the parts of a ClusterConfiguration a join command needs.
pub fn kubeadm_config(text: &str) -> Result<KubeadmConfig> {
    let c: ClusterConfiguration = serde_saphyr::from_str(text).map_err(|e| Error::Kubeconfig {
        what: "kubeadm-config ClusterConfiguration".into(),
        detail: e.to_string(),
    })?;
    Ok(KubeadmConfig {
        control_plane_endpoint: c.control_plane_endpoint.filter(|e| !e.is_empty()),
        certificates_dir: c.certificates_dir.filter(|d| !d.is_empty()),
        external_etcd: c.etcd.external,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        (cert.pem(), cert.der().to_vec())
    }

    /// openssl's answer: `openssl x509 -pubkey -noout | openssl pkey -pubin -outform
    /// der | sha256sum`, the recipe kubeadm's documentation gives.
    fn openssl_pin(pem: &str) -> Option<String> {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let run = |args: &[&str], input: &[u8]| -> Option<Vec<u8>> {
            let mut c = Command::new("openssl")
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .ok()?;
            c.stdin.take()?.write_all(input).ok()?;
            let out = c.wait_with_output().ok()?;
            out.status.success().then_some(out.stdout)
        };
        let pubkey = run(&["x509", "-pubkey", "-noout"], pem.as_bytes())?;
        let der = run(&["pkey", "-pubin", "-outform", "der"], &pubkey)?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
        Some(format!("sha256:{}", hex::encode(digest.as_ref())))
    }

    #[test]
    fn the_pin_is_openssls_spki_sha256() {
        let (pem, der) = ca();
        let Some(want) = openssl_pin(&pem) else {
            panic!("openssl is needed for this test (it is the reference)");
        };
        assert_eq!(ca_cert_hash(&der, "ca").unwrap(), want);
        assert_eq!(ca_cert_hashes(pem.as_bytes(), "ca").unwrap(), [want]);
    }

    #[test]
    fn a_bundle_gives_one_pin_per_certificate() {
        let (a, _) = ca();
        let (b, _) = ca();
        let both = format!("{a}{b}");
        let pins = ca_cert_hashes(both.as_bytes(), "bundle").unwrap();
        assert_eq!(pins.len(), 2);
        assert_ne!(pins[0], pins[1]);
        assert!(ca_cert_hashes(b"nothing", "x").is_err());
    }

    #[test]
    fn cluster_info_gives_server_and_ca() {
        let (pem, _) = ca();
        let kc = format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://10.77.0.11:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
            base64::engine::general_purpose::STANDARD.encode(&pem)
        );
        let ci = cluster_info(&kc, "cluster-info").unwrap();
        assert_eq!(ci.endpoint(), "10.77.0.11:6443");
        assert_eq!(ci.ca_pem, pem.as_bytes());
        assert!(cluster_info("clusters: []\n", "x").is_err());
    }

    #[test]
    fn endpoints_lose_scheme_and_path() {
        assert_eq!(endpoint_of("https://lb.example:6443"), "lb.example:6443");
        assert_eq!(endpoint_of("https://[fd00::1]:6443/"), "[fd00::1]:6443");
        assert_eq!(endpoint_of("10.0.0.1:6443"), "10.0.0.1:6443");
    }

    #[test]
    fn kubeadm_config_fields() {
        let c = kubeadm_config(
            "apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 10.77.0.11:6443\ncertificatesDir: /etc/kubernetes/pki\netcd:\n  local:\n    dataDir: /var/lib/etcd\n",
        )
        .unwrap();
        assert_eq!(c.control_plane_endpoint.as_deref(), Some("10.77.0.11:6443"));
        assert_eq!(c.certificates_dir.as_deref(), Some("/etc/kubernetes/pki"));
        assert_eq!(c.external_etcd, None);
        let ext = kubeadm_config(
            "etcd:\n  external:\n    endpoints: [https://e:2379]\n    caFile: /e/ca.crt\n    certFile: /e/c.crt\n    keyFile: /e/c.key\n",
        )
        .unwrap();
        assert_eq!(ext.external_etcd.unwrap().key_file, "/e/c.key");
        assert_eq!(
            kubeadm_config("kind: ClusterConfiguration\n").unwrap(),
            KubeadmConfig::default()
        );
    }
}

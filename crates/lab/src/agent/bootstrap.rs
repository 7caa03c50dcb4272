//! The kubelet's TLS bootstrap, as the stand-in performs it on a node that `kubeadm
//! join` prepared.
//!
//! `kubeadm join`'s `kubelet-start` phase writes `/etc/kubernetes/bootstrap-kubelet.conf`
//! (the cluster, and the bootstrap token as credentials), restarts the kubelet and
//! waits (5 min) until `/etc/kubernetes/kubelet.conf` loads as a client, deleting the
//! bootstrap file when the phase ends. A real kubelet that finds the bootstrap file and
//! no `kubelet.conf` does what [`run`] does:
//! - makes a key (ECDSA P-256), kept in `kubelet-client.key.tmp` until the certificate
//!   arrives, so that a restarted kubelet asks again with the same key;
//! - posts a CertificateSigningRequest for `system:node:<name>` in `system:nodes` to the
//!   signer `kubernetes.io/kube-apiserver-client-kubelet`, with the token's credentials
//!   (kubeadm's bootstrap-token phase lets the token group create CSRs and have them
//!   approved by the controller-manager's csrapprover);
//! - waits for the approval and the signed certificate;
//! - writes certificate and key to `kubelet-client-<date>.pem` under
//!   `/var/lib/kubelet/pki`, points `kubelet-client-current.pem` at it, and writes
//!   `kubelet.conf` naming that file as its client certificate and key.
//!
//! Two differences from the kubelet, both for the lab's layout: the key is PKCS#8
//! (`PRIVATE KEY`, what rcgen writes; the kubelet writes SEC1 `EC PRIVATE KEY`, and Go
//! reads both), and the `current` link is relative, so that it resolves both inside
//! the node and from the host, where the node's `/var/lib/kubelet` lives under the lab
//! directory.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use kube::api::{Api, ObjectMeta, PostParams};
use sha2::Digest as _;

use crate::{Error, Result, io_err, write_atomic};

/// The bootstrap kubeconfig `kubeadm join` writes.
pub const BOOTSTRAP_KUBELET_CONF: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
/// Where the kubelet keeps its client certificates.
pub const PKI_DIR: &str = "/var/lib/kubelet/pki";
/// The link to the kubelet's current client certificate and key.
pub const CLIENT_CURRENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
/// The key kept (in [`PKI_DIR`]) while its certificate is being asked for.
const KEY_TMP: &str = "kubelet-client.key.tmp";
/// The signer of kubelet client certificates.
pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The key usages the kubelet asks for (the csrapprover accepts exactly these).
pub const USAGES: [&str; 3] = ["digital signature", "key encipherment", "client auth"];
/// How long one attempt waits for the signed certificate.
const WAIT: Duration = Duration::from_secs(300);

/// Whether the node needs a TLS bootstrap: a bootstrap kubeconfig and no `kubelet.conf`.
pub fn needed(kubelet_conf: &Path, bootstrap_conf: &Path) -> bool {
    !kubelet_conf.exists() && bootstrap_conf.exists()
}

/// The certificate request of node `node` for `key` (PEM).
pub fn request_pem(node: &str, key: &rcgen::KeyPair) -> Result<String> {
    let path = Path::new(PKI_DIR).join(KEY_TMP);
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params
        .serialize_request(key)
        .and_then(|r| r.pem())
        .map_err(|e| Error::Parse {
            path,
            message: format!("making the certificate request: {e}"),
        })
}

/// The CSR's name: `node-csr-` and a digest of the public key, so that a restarted
/// agent finds the request it made with the same key.
pub fn csr_name(key: &rcgen::KeyPair) -> String {
    let digest = sha2::Sha256::digest(key.public_key_pem().as_bytes());
    format!("node-csr-{}", &hex::encode(digest)[..40])
}

/// The name of a dated client certificate file, as the kubelet's certificate store
/// names them (`kubelet-client-2006-01-02-15-04-05.pem`).
pub fn dated_name(now: jiff::Timestamp) -> String {
    format!("kubelet-client-{}.pem", now.strftime("%Y-%m-%d-%H-%M-%S"))
}

/// The `kubelet.conf` the kubelet writes after its bootstrap: the bootstrap file's
/// cluster, and the current client certificate as credentials.
pub fn kubelet_conf(server: &str, ca_data: &str) -> String {
    format!(
        "apiVersion: v1\n\
         clusters:\n\
         - cluster:\n    certificate-authority-data: {ca_data}\n    server: {server}\n  name: default-cluster\n\
         contexts:\n\
         - context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n  name: default-context\n\
         current-context: default-context\n\
         kind: Config\n\
         preferences: {{}}\n\
         users:\n\
         - name: default-auth\n  user:\n    client-certificate: {CLIENT_CURRENT}\n    client-key: {CLIENT_CURRENT}\n"
    )
}

/// The server and CA data (base64) of the current context of a kubeconfig.
fn cluster_of(kc: &kube::config::Kubeconfig, path: &Path) -> Result<(String, String)> {
    let bad = |message: &str| Error::Kubeconfig {
        path: path.to_path_buf(),
        message: message.to_string(),
    };
    let current = kc
        .current_context
        .as_deref()
        .ok_or_else(|| bad("no current-context"))?;
    let cluster = kc
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| bad("the current context names no cluster"))?;
    let c = kc
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| bad("the current context's cluster is not in the file"))?;
    let server = c
        .server
        .clone()
        .ok_or_else(|| bad("the cluster has no server"))?;
    let ca = c
        .certificate_authority_data
        .clone()
        .ok_or_else(|| bad("the cluster has no certificate-authority-data"))?;
    Ok((server, ca))
}

/// The key kept from an earlier attempt, or a new one (saved before it is used).
fn key(dir: &Path) -> Result<rcgen::KeyPair> {
    let path = dir.join(KEY_TMP);
    if let Ok(pem) = std::fs::read_to_string(&path)
        && let Ok(k) = rcgen::KeyPair::from_pem(&pem)
    {
        return Ok(k);
    }
    let k = rcgen::KeyPair::generate().map_err(|e| Error::Parse {
        path: path.clone(),
        message: format!("generating a key: {e}"),
    })?;
    write_atomic(&path, k.serialize_pem().as_bytes(), 0o600)?;
    Ok(k)
}

/// Performs the TLS bootstrap of `node` (see the module): returns once `kubelet.conf`
/// is written, or fails (the caller tries again later).
pub async fn run(node: &str, kubelet_conf_path: &Path, bootstrap_conf: &Path) -> Result<()> {
    let kc =
        kube::config::Kubeconfig::read_from(bootstrap_conf).map_err(|e| Error::Kubeconfig {
            path: bootstrap_conf.to_path_buf(),
            message: e.to_string(),
        })?;
    let (server, ca_data) = cluster_of(&kc, bootstrap_conf)?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Kubeconfig {
                path: bootstrap_conf.to_path_buf(),
                message: e.to_string(),
            })?;
    let client = kube::Client::try_from(config)?;
    let dir = Path::new(PKI_DIR);
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let key = key(dir)?;
    let name = csr_name(&key);
    let csrs: Api<CertificateSigningRequest> = Api::all(client);
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request_pem(node, &key)?.into_bytes()),
            signer_name: SIGNER.into(),
            usages: Some(USAGES.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    match csrs.create(&PostParams::default(), &csr).await {
        Ok(_) => tracing::info!("TLS bootstrap: CertificateSigningRequest {name} posted"),
        // Made by an earlier attempt with this key: wait for it.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::info!("TLS bootstrap: waiting for the existing request {name}")
        }
        Err(e) => return Err(e.into()),
    }
    let deadline = Instant::now() + WAIT;
    let cert = loop {
        let got = csrs.get(&name).await?;
        let status = got.status.unwrap_or_default();
        if let Some(c) = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| matches!(c.type_.as_str(), "Denied" | "Failed") && c.status == "True")
        {
            return Err(Error::CsrRefused {
                name,
                condition: c.type_,
                message: c.message.unwrap_or_default(),
            });
        }
        if let Some(c) = status.certificate.filter(|c| !c.0.is_empty()) {
            break c.0;
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                seconds: WAIT.as_secs(),
                waiting_for: format!("the signed certificate of {name}"),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let mut pem = cert;
    if !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    pem.extend_from_slice(key.serialize_pem().as_bytes());
    let dated = dated_name(jiff::Timestamp::now());
    write_atomic(&dir.join(&dated), &pem, 0o600)?;
    let current = Path::new(CLIENT_CURRENT);
    let link_tmp = dir.join(format!(
        ".kubelet-client-current.pem.{}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&link_tmp);
    std::os::unix::fs::symlink(&dated, &link_tmp).map_err(io_err("linking", &link_tmp))?;
    std::fs::rename(&link_tmp, current).map_err(io_err("renaming", &link_tmp))?;
    write_atomic(
        kubelet_conf_path,
        kubelet_conf(&server, &ca_data).as_bytes(),
        0o600,
    )?;
    let _ = std::fs::remove_file(dir.join(KEY_TMP));
    tracing::info!(
        "TLS bootstrap: {name} approved and signed; {} and {} written",
        dir.join(&dated).display(),
        kubelet_conf_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_node_in_system_nodes_and_nothing_else() {
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = request_pem("w1", &key).unwrap();
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&pem).unwrap();
        let dn: Vec<(String, String)> = parsed
            .params
            .distinguished_name
            .iter()
            .map(|(t, v)| {
                let v = match v {
                    rcgen::DnValue::Utf8String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                (format!("{t:?}"), v)
            })
            .collect();
        assert!(
            dn.contains(&("OrganizationName".into(), "system:nodes".into())),
            "{dn:?}"
        );
        assert!(
            dn.contains(&("CommonName".into(), "system:node:w1".into())),
            "{dn:?}"
        );
        assert_eq!(dn.len(), 2, "{dn:?}");
        assert!(
            parsed.params.subject_alt_names.is_empty(),
            "the csrapprover refuses a client CSR with SANs"
        );
        assert_eq!(csr_name(&key), csr_name(&key), "one key, one name");
        assert!(csr_name(&key).starts_with("node-csr-"));
    }

    #[test]
    fn files_are_named_as_the_kubelet_names_them() {
        let t: jiff::Timestamp = "2026-12-02T10:05:09Z".parse().unwrap();
        assert_eq!(dated_name(t), "kubelet-client-2026-12-02-10-05-09.pem");
        let conf = kubelet_conf("https://10.77.0.11:6443", "Q0E=");
        let kc = kube::config::Kubeconfig::from_yaml(&conf).unwrap();
        let (server, ca) = cluster_of(&kc, Path::new("kubelet.conf")).unwrap();
        assert_eq!(server, "https://10.77.0.11:6443");
        assert_eq!(ca, "Q0E=");
        assert_eq!(
            kc.auth_infos[0]
                .auth_info
                .as_ref()
                .unwrap()
                .client_certificate
                .as_deref(),
            Some(CLIENT_CURRENT)
        );
    }

    #[test]
    fn bootstrap_only_without_kubelet_conf() {
        let dir = tempfile::tempdir().unwrap();
        let kubelet = dir.path().join("kubelet.conf");
        let boot = dir.path().join("bootstrap-kubelet.conf");
        assert!(!needed(&kubelet, &boot));
        std::fs::write(&boot, "x").unwrap();
        assert!(needed(&kubelet, &boot));
        std::fs::write(&kubelet, "x").unwrap();
        assert!(!needed(&kubelet, &boot));
    }
}

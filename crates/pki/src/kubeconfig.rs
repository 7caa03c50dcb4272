//! The client credentials of a kubeconfig file, and rewriting them in place.
//!
//! Rewriting replaces the exact base64 value in the file's text, so everything else
//! (order, other users, comments) stays byte-for-byte as it was.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Deserialize)]
struct Doc {
    #[serde(rename = "current-context", default)]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Option<Vec<Named<Context>>>,
    #[serde(default)]
    users: Option<Vec<Named<User>>>,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "context", alias = "user")]
    #[serde(default = "Option::default")]
    value: Option<T>,
}

#[derive(Debug, Deserialize)]
struct Context {
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct User {
    #[serde(rename = "client-certificate-data", default)]
    client_certificate_data: Option<String>,
    #[serde(rename = "client-certificate", default)]
    client_certificate: Option<String>,
    #[serde(rename = "client-key-data", default)]
    client_key_data: Option<String>,
    #[serde(rename = "client-key", default)]
    client_key: Option<String>,
}

/// Where a credential is: embedded base64 data, or a file the kubeconfig points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `client-certificate-data` / `client-key-data`.
    Embedded {
        /// The base64 text exactly as it appears in the file.
        base64: String,
        /// The decoded PEM.
        pem: Vec<u8>,
    },
    /// `client-certificate` / `client-key`: a path, made absolute against the
    /// kubeconfig's directory.
    File(PathBuf),
}

/// The client credentials of the current context's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The user's name in the kubeconfig.
    pub user: String,
    /// The client certificate.
    pub certificate: Credential,
    /// The client key, when the kubeconfig names one.
    pub key: Option<Credential>,
}

/// Reads the current context's client credentials from kubeconfig text read from `path`.
pub fn client_credentials(path: &Path, text: &str) -> Result<ClientCredentials> {
    let bad = |detail: String| Error::Kubeconfig {
        path: path.to_path_buf(),
        detail,
    };
    let doc: Doc =
        serde_saphyr::from_str(text).map_err(|e| bad(format!("not a valid kubeconfig: {e}")))?;
    let current = doc
        .current_context
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("no current-context".into()))?;
    let context = doc
        .contexts
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == current)
        .ok_or_else(|| bad(format!("invalid kubeconfig: missing context {current}")))?;
    let user_name = context
        .value
        .and_then(|c| c.user)
        .ok_or_else(|| bad(format!("context {current} names no user")))?;
    let user = doc
        .users
        .unwrap_or_default()
        .into_iter()
        .find(|u| u.name == user_name)
        .ok_or_else(|| bad(format!("invalid kubeconfig: missing user {user_name}")))?
        .value
        .unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("."));
    let cred =
        |data: Option<String>, file: Option<String>, what: &str| -> Result<Option<Credential>> {
            if let Some(b64) = data.filter(|d| !d.is_empty()) {
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| {
                        bad(format!(
                            "{what}-data of user {user_name} is not valid base64: {e}"
                        ))
                    })?;
                return Ok(Some(Credential::Embedded { base64: b64, pem }));
            }
            Ok(file
                .filter(|f| !f.is_empty())
                .map(|f| Credential::File(dir.join(f))))
        };
    let certificate = cred(
        user.client_certificate_data,
        user.client_certificate,
        "client-certificate",
    )?
    .ok_or_else(|| bad(format!("user {user_name} has no client certificate")))?;
    let key = cred(user.client_key_data, user.client_key, "client-key")?;
    Ok(ClientCredentials {
        user: user_name,
        certificate,
        key,
    })
}

/// Encodes PEM the way kubeconfigs embed it.
pub fn encode_data(pem: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

/// Replaces the one occurrence of `old` (a base64 value) in `text` with `new`. Fails
/// when the value does not occur exactly once, so nothing ambiguous is rewritten.
pub fn replace_value(path: &Path, text: &str, old: &str, new: &str) -> Result<String> {
    let old = old.trim();
    let count = text.matches(old).count();
    if count != 1 || old.len() < 16 {
        return Err(Error::Kubeconfig {
            path: path.to_path_buf(),
            detail: format!(
                "cannot rewrite the embedded credential in place: its value occurs {count} times in the file"
            ),
        });
    }
    Ok(text.replacen(old, new, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0FEQVRB
    server: https://10.77.0.11:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
- context:
    cluster: kubernetes
    user: other
  name: other@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: other
  user:
    client-certificate: other.crt
- name: kubernetes-admin
  user:
    client-certificate-data: Q0VSVElGSUNBVEUgUEVNIFRFWFQ=
    client-key-data: S0VZIFBFTSBURVhUIEZPUiBURVNU
"#;

    #[test]
    fn reads_current_users_embedded_credentials() {
        let c = client_credentials(Path::new("/etc/kubernetes/admin.conf"), CONF).unwrap();
        assert_eq!(c.user, "kubernetes-admin");
        match &c.certificate {
            Credential::Embedded { pem, .. } => assert_eq!(pem, b"CERTIFICATE PEM TEXT"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(c.key, Some(Credential::Embedded { .. })));
    }

    #[test]
    fn file_references_are_relative_to_the_kubeconfig() {
        let text = CONF.replace(
            "current-context: kubernetes-admin@kubernetes",
            "current-context: other@kubernetes",
        );
        let c = client_credentials(Path::new("/etc/kubernetes/kubelet.conf"), &text).unwrap();
        assert_eq!(
            c.certificate,
            Credential::File(PathBuf::from("/etc/kubernetes/other.crt"))
        );
        assert_eq!(c.key, None);
    }

    #[test]
    fn errors_name_the_file() {
        let err = client_credentials(Path::new("/k/a.conf"), "current-context: x\n").unwrap_err();
        assert!(err.to_string().starts_with("/k/a.conf: "), "{err}");
        assert!(err.to_string().contains("missing context x"), "{err}");
        let err = client_credentials(Path::new("/k/a.conf"), ": : :\n\t- [").unwrap_err();
        assert!(err.to_string().contains("not a valid kubeconfig"), "{err}");
    }

    #[test]
    fn replaces_exactly_one_value() {
        let out =
            replace_value(Path::new("a"), CONF, "Q0VSVElGSUNBVEUgUEVNIFRFWFQ=", "TkVX").unwrap();
        assert!(out.contains("client-certificate-data: TkVX\n"));
        assert_eq!(
            out.len(),
            CONF.len() - "Q0VSVElGSUNBVEUgUEVNIFRFWFQ=".len() + 4
        );
        let twice = format!("{CONF}# Q0VSVElGSUNBVEUgUEVNIFRFWFQ=\n");
        assert!(
            replace_value(
                Path::new("a"),
                &twice,
                "Q0VSVElGSUNBVEUgUEVNIFRFWFQ=",
                "TkVX"
            )
            .is_err()
        );
    }
}

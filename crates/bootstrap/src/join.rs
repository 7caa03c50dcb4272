//! The `kubeadm join` command line a new node runs.

use std::fmt;

use serde::Serialize;

use crate::certs::CertificateKey;
use crate::token::Token;

/// Everything `kubeadm join` needs, for a worker or (with a certificate key) a control
/// plane. `Display` gives the command on one line, secrets included: it is printed
/// only where it was asked for.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinCommand {
    /// The apiserver, `HOST:PORT`.
    pub endpoint: String,
    /// The bootstrap token.
    pub token: Token,
    /// The CA pins, `sha256:HEX`, one per CA certificate.
    pub ca_cert_hashes: Vec<String>,
    /// Whether the node joins as a control plane.
    pub control_plane: bool,
    /// The key of the uploaded certificates (a control plane only).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "hex_key")]
    pub certificate_key: Option<CertificateKey>,
}

fn hex_key<S: serde::Serializer>(
    k: &Option<CertificateKey>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match k {
        Some(k) => s.collect_str(k),
        None => s.serialize_none(),
    }
}

impl fmt::Display for JoinCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kubeadm join {} --token {}", self.endpoint, self.token)?;
        for h in &self.ca_cert_hashes {
            write!(f, " --discovery-token-ca-cert-hash {h}")?;
        }
        if self.control_plane {
            f.write_str(" --control-plane")?;
            if let Some(k) = &self.certificate_key {
                write!(f, " --certificate-key {k}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_and_control_plane_lines() {
        let mut j = JoinCommand {
            endpoint: "10.77.0.11:6443".into(),
            token: "abcdef.0123456789abcdef".parse().unwrap(),
            ca_cert_hashes: vec!["sha256:00ff".into()],
            control_plane: false,
            certificate_key: None,
        };
        assert_eq!(
            j.to_string(),
            "kubeadm join 10.77.0.11:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:00ff"
        );
        let key: CertificateKey = "ab".repeat(32).parse().unwrap();
        j.control_plane = true;
        j.certificate_key = Some(key);
        assert!(j.to_string().ends_with(&format!(
            "sha256:00ff --control-plane --certificate-key {}",
            "ab".repeat(32)
        )));
    }
}

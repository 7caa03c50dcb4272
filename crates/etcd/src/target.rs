//! What to connect to: endpoints and the client's TLS material.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;

use crate::error::{Error, Result};

/// The three files of mutual TLS with etcd, as `etcdctl --cacert --cert --key` takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsFiles {
    /// The CA that signed the members' serving certificates (kubeadm: `pki/etcd/ca.crt`).
    pub ca: PathBuf,
    /// The client certificate (kubeadm: `pki/etcd/healthcheck-client.crt` or
    /// `pki/apiserver-etcd-client.crt`).
    pub cert: PathBuf,
    /// The client certificate's private key.
    pub key: PathBuf,
}

/// The PEM contents of [`TlsFiles`], read and checked.
#[derive(Clone)]
pub(crate) struct TlsPem {
    pub(crate) ca: Vec<u8>,
    pub(crate) cert: Vec<u8>,
    pub(crate) key: Vec<u8>,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPem").finish_non_exhaustive()
    }
}

impl TlsFiles {
    /// Builds the set from the three optional flags: all three or none.
    pub fn from_flags(
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<TlsFiles>> {
        match (ca, cert, key) {
            (None, None, None) => Ok(None),
            (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsFiles { ca, cert, key })),
            (ca, cert, key) => {
                let missing: Vec<&str> = [
                    ("--cacert", ca.is_none()),
                    ("--cert", cert.is_none()),
                    ("--key", key.is_none()),
                ]
                .into_iter()
                .filter_map(|(n, m)| m.then_some(n))
                .collect();
                Err(Error::IncompleteTls(format!(
                    "{} missing (give --cacert, --cert and --key together)",
                    missing.join(", ")
                )))
            }
        }
    }

    /// Reads the three files and checks that each holds what it should, so that a wrong
    /// path is reported as such rather than as a TLS failure later.
    pub(crate) fn load(&self) -> Result<TlsPem> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| Error::ReadTlsFile {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let ca = read("CA certificate", &self.ca)?;
        let cert = read("client certificate", &self.cert)?;
        let key = read("client key", &self.key)?;
        check_certs("CA certificate", &self.ca, &ca)?;
        check_certs("client certificate", &self.cert, &cert)?;
        if PrivateKeyDer::from_pem_slice(&key).is_err() {
            return Err(Error::BadTlsFile {
                what: "client key",
                path: self.key.clone(),
                reason: "no PEM private key in it".to_string(),
            });
        }
        Ok(TlsPem { ca, cert, key })
    }
}

fn check_certs(what: &'static str, path: &Path, pem: &[u8]) -> Result<()> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::BadTlsFile {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::BadTlsFile {
            what,
            path: path.to_path_buf(),
            reason: "no PEM certificate in it".to_string(),
        });
    }
    Ok(())
}

/// Timeouts of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing TCP + TLS to one member.
    pub connect: Duration,
    /// One unary request (status, member list, alarms).
    pub request: Duration,
    /// A snapshot stream may go this long without receiving a byte.
    pub stream_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(10),
            stream_idle: Duration::from_secs(30),
        }
    }
}

/// Where etcd is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Client URLs (`https://10.0.0.11:2379`), at least one.
    pub endpoints: Vec<String>,
    /// Mutual TLS material; `None` for plain `http://` endpoints.
    pub tls: Option<TlsFiles>,
}

impl Target {
    /// Checks the endpoints (scheme, non-empty) and that TLS is given for `https://`.
    pub fn new(endpoints: Vec<String>, tls: Option<TlsFiles>) -> Result<Target> {
        if endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        for e in &endpoints {
            check_endpoint(e)?;
            if e.starts_with("https://") && tls.is_none() {
                return Err(Error::InvalidEndpoint {
                    endpoint: e.clone(),
                    reason: "https needs client certificates: give --cacert, --cert and --key"
                        .to_string(),
                });
            }
        }
        Ok(Target { endpoints, tls })
    }
}

/// Splits a comma-separated list of endpoints, as etcd and kubeadm write them.
pub fn split_endpoints(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('/').to_string())
        .collect()
}

fn check_endpoint(e: &str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidEndpoint {
        endpoint: e.to_string(),
        reason: reason.to_string(),
    };
    let rest = e
        .strip_prefix("https://")
        .or_else(|| e.strip_prefix("http://"))
        .ok_or_else(|| bad("expected http:// or https:// followed by host:port"))?;
    let hostport = rest.split('/').next().unwrap_or("");
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return Err(bad("no port (etcd's client port is usually 2379)"));
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if port.parse::<u16>().is_err() {
        return Err(bad("the port is not a number"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked() {
        assert!(check_endpoint("https://10.0.0.1:2379").is_ok());
        assert!(check_endpoint("http://[::1]:2379").is_ok());
        assert!(check_endpoint("10.0.0.1:2379").is_err());
        assert!(check_endpoint("https://10.0.0.1").is_err());
        assert!(check_endpoint("https://:2379").is_err());
        assert!(check_endpoint("https://h:x").is_err());
        assert_eq!(
            split_endpoints("https://a:1, https://b:2/,"),
            vec!["https://a:1", "https://b:2"]
        );
    }

    #[test]
    fn tls_flags_come_together() {
        assert_eq!(TlsFiles::from_flags(None, None, None).unwrap(), None);
        let err = TlsFiles::from_flags(Some("ca".into()), None, None).unwrap_err();
        assert!(err.to_string().contains("--cert, --key"), "{err}");
        assert!(matches!(
            Target::new(vec!["https://a:1".into()], None),
            Err(Error::InvalidEndpoint { .. })
        ));
        assert!(matches!(Target::new(vec![], None), Err(Error::NoEndpoints)));
    }
}

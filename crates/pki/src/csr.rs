//! Kubelet serving certificate requests: what a CSR asks for, and whether it may be
//! approved for the node that sent it. Pure: no I/O.
//!
//! A kubelet with `serverTLSBootstrap: true` asks for its serving certificate through a
//! CertificateSigningRequest with the signer `kubernetes.io/kubelet-serving`, and nobody
//! approves those automatically. Approving one blindly is the attack this module
//! prevents: a node (or anyone holding a node's credentials) asking for a certificate
//! with another node's name or address could then serve as that node.

use std::net::IpAddr;

use serde::Serialize;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509CertificationRequest};

/// The signer of kubelet serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";

/// What the PEM request inside a CSR asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requested {
    /// The subject's common name.
    pub common_name: Option<String>,
    /// The subject's organizations.
    pub organizations: Vec<String>,
    /// DNS names asked for.
    pub dns: Vec<String>,
    /// IP addresses asked for.
    pub ips: Vec<IpAddr>,
    /// Other names asked for (e-mail, URI, ...), which a serving certificate has no use for.
    pub other: Vec<String>,
}

/// Reads the PEM `CERTIFICATE REQUEST` of a CSR's `spec.request`.
pub fn requested(pem: &[u8]) -> Result<Requested, String> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM request: {e}"))?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err(format!(
            "a PEM {} block, not a CERTIFICATE REQUEST",
            block.label
        ));
    }
    let (_, csr) = X509CertificationRequest::from_der(&block.contents)
        .map_err(|e| format!("not a PKCS#10 request: {e}"))?;
    let subject = &csr.certification_request_info.subject;
    let mut r = Requested {
        common_name: subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string),
        organizations: subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(str::to_string)
            .collect(),
        ..Requested::default()
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => r.dns.push(d.to_string()),
                    GeneralName::IPAddress(b) => match ip(b) {
                        Some(a) => r.ips.push(a),
                        None => r.other.push(format!("IP of {} bytes", b.len())),
                    },
                    other => r.other.push(other.to_string()),
                }
            }
        }
    }
    Ok(r)
}

fn ip(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// A CSR as the API shows it, with the facts the judgement needs.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `spec.signerName`.
    pub signer: &'a str,
    /// `spec.username`: who sent it.
    pub username: &'a str,
    /// `spec.groups`.
    pub groups: &'a [String],
    /// `spec.usages`.
    pub usages: &'a [String],
    /// What the PEM request asks for.
    pub requested: &'a Requested,
}

/// A Node's addresses (`status.addresses`), by type.
#[derive(Debug, Clone, Default)]
pub struct NodeAddresses {
    /// Hostname, InternalDNS and ExternalDNS addresses.
    pub names: Vec<String>,
    /// InternalIP and ExternalIP addresses.
    pub ips: Vec<IpAddr>,
}

/// Why a kubelet serving CSR may not be approved: every reason found, empty when it may.
/// `node` is the Node named by the requester (`None` when there is no such Node).
pub fn refusals(r: &Request<'_>, node: Option<&NodeAddresses>) -> Vec<String> {
    let mut why = Vec::new();
    if r.signer != KUBELET_SERVING {
        why.push(format!("signer {} is not {KUBELET_SERVING}", r.signer));
        return why;
    }
    let Some(name) = r.username.strip_prefix("system:node:") else {
        why.push(format!(
            "requested by {}, not by a node (system:node:NAME)",
            r.username
        ));
        return why;
    };
    if !r.groups.iter().any(|g| g == "system:nodes") {
        why.push(format!("{} is not in the group system:nodes", r.username));
    }
    if r.requested.common_name.as_deref() != Some(r.username) {
        why.push(format!(
            "its subject's CN is {}, not {}",
            r.requested.common_name.as_deref().unwrap_or("empty"),
            r.username
        ));
    }
    if r.requested.organizations != ["system:nodes"] {
        why.push(format!(
            "its subject's O is [{}], not [system:nodes]",
            r.requested.organizations.join(", ")
        ));
    }
    let allowed = ["digital signature", "key encipherment", "server auth"];
    let odd: Vec<&str> = r
        .usages
        .iter()
        .map(String::as_str)
        .filter(|u| !allowed.contains(u))
        .collect();
    if !odd.is_empty() {
        why.push(format!(
            "usages a serving certificate has no need of: {}",
            odd.join(", ")
        ));
    }
    if !r.usages.iter().any(|u| u == "server auth") {
        why.push("no `server auth` usage".into());
    }
    if !r.requested.other.is_empty() {
        why.push(format!(
            "names other than DNS and IP: {}",
            r.requested.other.join(", ")
        ));
    }
    if r.requested.dns.is_empty() && r.requested.ips.is_empty() {
        why.push("no DNS name or IP address asked for".into());
    }
    let Some(node) = node else {
        why.push(format!("there is no Node {name}"));
        return why;
    };
    for d in &r.requested.dns {
        if d != name && !node.names.iter().any(|n| n == d) {
            why.push(format!("DNS name {d} is not an address of Node {name}"));
        }
    }
    for a in &r.requested.ips {
        if !node.ips.contains(a) {
            why.push(format!("IP address {a} is not an address of Node {name}"));
        }
    }
    why
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn csr(cn: &str, o: &str, dns: &[&str], ips: &[&str]) -> String {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, o);
        for d in dns {
            params
                .subject_alt_names
                .push(rcgen::SanType::DnsName((*d).try_into().unwrap()));
        }
        for i in ips {
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(i.parse().unwrap()));
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn node() -> NodeAddresses {
        NodeAddresses {
            names: vec!["w1".into()],
            ips: vec!["10.77.0.21".parse().unwrap()],
        }
    }

    fn judge(pem: &str, user: &str, usages: &[&str]) -> Vec<String> {
        let requested = requested(pem.as_bytes()).unwrap();
        let groups = vec!["system:nodes".to_string(), "system:authenticated".into()];
        let usages: Vec<String> = usages.iter().map(|s| s.to_string()).collect();
        refusals(
            &Request {
                signer: KUBELET_SERVING,
                username: user,
                groups: &groups,
                usages: &usages,
                requested: &requested,
            },
            Some(&node()),
        )
    }

    const USAGES: [&str; 3] = ["digital signature", "key encipherment", "server auth"];

    #[test]
    fn a_node_asking_for_its_own_names_is_approved() {
        let pem = csr("system:node:w1", "system:nodes", &["w1"], &["10.77.0.21"]);
        let r = requested(pem.as_bytes()).unwrap();
        assert_eq!(r.dns, ["w1"]);
        assert_eq!(r.ips, ["10.77.0.21".parse::<IpAddr>().unwrap()]);
        assert!(judge(&pem, "system:node:w1", &USAGES).is_empty());
    }

    #[test]
    fn another_nodes_address_or_name_is_refused() {
        let pem = csr("system:node:w1", "system:nodes", &["w1"], &["10.77.0.11"]);
        assert_eq!(
            judge(&pem, "system:node:w1", &USAGES),
            ["IP address 10.77.0.11 is not an address of Node w1"]
        );
        let pem = csr("system:node:w1", "system:nodes", &["cp1"], &[]);
        assert_eq!(
            judge(&pem, "system:node:w1", &USAGES),
            ["DNS name cp1 is not an address of Node w1"]
        );
        // Another node's identity, or none.
        let pem = csr("system:node:w1", "system:nodes", &["w1"], &[]);
        assert_eq!(
            judge(&pem, "system:node:w2", &USAGES),
            ["its subject's CN is system:node:w1, not system:node:w2"]
        );
        assert_eq!(
            judge(&pem, "kubernetes-admin", &USAGES),
            ["requested by kubernetes-admin, not by a node (system:node:NAME)"]
        );
        assert_eq!(
            judge(&pem, "system:node:w1", &["client auth"]),
            [
                "usages a serving certificate has no need of: client auth",
                "no `server auth` usage"
            ]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(requested(b"not pem").is_err());
        assert!(
            requested(
                b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            )
            .is_err()
        );
    }
}

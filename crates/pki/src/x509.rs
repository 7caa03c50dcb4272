//! What a certificate says: parsed once at the boundary into plain, serialisable facts.

use std::fmt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::error::{Error, Result};

/// A certificate in DER together with the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    /// The DER bytes.
    pub der: Vec<u8>,
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// The facts parsed from it.
    pub facts: CertFacts,
}

/// The public key of a certificate: algorithm and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// `RSA`, `ECDSA`, `Ed25519`, or the algorithm OID when unknown.
    pub algorithm: String,
    /// Key size in bits (RSA modulus, EC field size).
    pub bits: Option<u32>,
    /// The named curve of an ECDSA key, e.g. `P-256`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
}

impl fmt::Display for KeyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.curve, self.bits) {
            (Some(curve), _) => write!(f, "{} {curve}", self.algorithm),
            (None, Some(bits)) => write!(f, "{} {bits}", self.algorithm),
            (None, None) => write!(f, "{}", self.algorithm),
        }
    }
}

/// Everything kastellan reports about one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertFacts {
    /// Subject in RFC 4514 order as x509-parser prints it, e.g. `CN=kube-apiserver`.
    pub subject: String,
    /// Issuer, same notation.
    pub issuer: String,
    /// Serial number, colon-separated hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// Whether basic constraints say CA:TRUE.
    pub is_ca: bool,
    /// Subject alternative names as `DNS:x`, `IP:x`, `URI:x`, `email:x`.
    pub sans: Vec<String>,
    /// Key usage names (RFC 5280 spelling, e.g. `digitalSignature`).
    pub key_usage: Vec<String>,
    /// Extended key usage names (`serverAuth`, `clientAuth`, or OIDs).
    pub ext_key_usage: Vec<String>,
    /// The public key.
    pub key: KeyInfo,
}

impl Cert {
    /// Parses DER read from `path`.
    pub fn from_der(path: &Path, der: Vec<u8>) -> Result<Cert> {
        let facts = {
            let x = parse(path, &der)?;
            facts(path, &x)?
        };
        Ok(Cert {
            der,
            path: path.to_path_buf(),
            facts,
        })
    }

    /// Parses the first certificate of a PEM document read from `path`; the others (a
    /// bundled chain, as the kubelet's self-signed serving certificate has) are returned too.
    pub fn from_pem(path: &Path, pem: &[u8]) -> Result<(Cert, Vec<Cert>)> {
        let mut ders = crate::pem::certificates(path, pem)?.into_iter();
        let first = ders.next().ok_or_else(|| Error::Missing {
            path: path.to_path_buf(),
            what: "CERTIFICATE block",
        })?;
        let first = Cert::from_der(path, first)?;
        let rest = ders
            .map(|d| Cert::from_der(path, d))
            .collect::<Result<Vec<_>>>()?;
        Ok((first, rest))
    }

    /// The parsed X.509 structure (borrowing the DER).
    pub fn x509(&self) -> Result<X509Certificate<'_>> {
        parse(&self.path, &self.der)
    }

    /// Whether `issuer`'s public key verifies this certificate's signature and its issuer
    /// name is byte-for-byte the issuer's subject (what Go's verifier requires).
    pub fn is_signed_by(&self, issuer: &Cert) -> bool {
        let (Ok(me), Ok(ca)) = (self.x509(), issuer.x509()) else {
            return false;
        };
        me.issuer().as_raw() == ca.subject().as_raw()
            && me.verify_signature(Some(ca.public_key())).is_ok()
    }

    /// The raw public key bits (the SPKI's BIT STRING), to match private keys against.
    pub fn public_key_bits(&self) -> Result<Vec<u8>> {
        Ok(self.x509()?.public_key().subject_public_key.data.to_vec())
    }
}

fn parse<'a>(path: &Path, der: &'a [u8]) -> Result<X509Certificate<'a>> {
    let (rest, x) = X509Certificate::from_der(der).map_err(|e| Error::Certificate {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(Error::Certificate {
            path: path.to_path_buf(),
            detail: format!(
                "{} bytes of trailing data after the certificate",
                rest.len()
            ),
        });
    }
    Ok(x)
}

fn timestamp(path: &Path, t: x509_parser::time::ASN1Time) -> Result<Timestamp> {
    Timestamp::from_second(t.timestamp()).map_err(|e| Error::Certificate {
        path: path.to_path_buf(),
        detail: format!("validity out of range: {e}"),
    })
}

fn facts(path: &Path, x: &X509Certificate<'_>) -> Result<CertFacts> {
    let bad = |e: x509_parser::error::X509Error| Error::Certificate {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let mut sans = Vec::new();
    if let Some(ext) = x.subject_alternative_name().map_err(bad)? {
        for name in &ext.value.general_names {
            sans.push(general_name(name));
        }
    }
    let mut key_usage = Vec::new();
    if let Some(ku) = x.key_usage().map_err(bad)? {
        let ku = ku.value;
        for (on, name) in [
            (ku.digital_signature(), "digitalSignature"),
            (ku.non_repudiation(), "contentCommitment"),
            (ku.key_encipherment(), "keyEncipherment"),
            (ku.data_encipherment(), "dataEncipherment"),
            (ku.key_agreement(), "keyAgreement"),
            (ku.key_cert_sign(), "keyCertSign"),
            (ku.crl_sign(), "cRLSign"),
            (ku.encipher_only(), "encipherOnly"),
            (ku.decipher_only(), "decipherOnly"),
        ] {
            if on {
                key_usage.push(name.to_string());
            }
        }
    }
    let mut ext_key_usage = Vec::new();
    if let Some(eku) = x.extended_key_usage().map_err(bad)? {
        let eku = eku.value;
        for (on, name) in [
            (eku.any, "any"),
            (eku.server_auth, "serverAuth"),
            (eku.client_auth, "clientAuth"),
            (eku.code_signing, "codeSigning"),
            (eku.email_protection, "emailProtection"),
            (eku.time_stamping, "timeStamping"),
            (eku.ocsp_signing, "OCSPSigning"),
        ] {
            if on {
                ext_key_usage.push(name.to_string());
            }
        }
        for oid in &eku.other {
            ext_key_usage.push(oid.to_id_string());
        }
    }
    let is_ca = x
        .basic_constraints()
        .map_err(bad)?
        .is_some_and(|bc| bc.value.ca);
    Ok(CertFacts {
        subject: x.subject().to_string(),
        issuer: x.issuer().to_string(),
        serial: x.raw_serial_as_string(),
        not_before: timestamp(path, x.validity().not_before)?,
        not_after: timestamp(path, x.validity().not_after)?,
        is_ca,
        sans,
        key_usage,
        ext_key_usage,
        key: key_info(x),
    })
}

fn general_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(d) => format!("DNS:{d}"),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => {
                let mut a = [0u8; 4];
                a.copy_from_slice(bytes);
                format!("IP:{}", std::net::Ipv4Addr::from(a))
            }
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(bytes);
                format!("IP:{}", std::net::Ipv6Addr::from(a))
            }
            _ => format!("IP:{}", hex_string(bytes)),
        },
        GeneralName::URI(u) => format!("URI:{u}"),
        GeneralName::RFC822Name(e) => format!("email:{e}"),
        other => format!("{other}"),
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn key_info(x: &X509Certificate<'_>) -> KeyInfo {
    let spki = x.public_key();
    let oid = spki.algorithm.algorithm.to_id_string();
    match (oid.as_str(), spki.parsed()) {
        ("1.2.840.113549.1.1.1", Ok(PublicKey::RSA(rsa))) => KeyInfo {
            algorithm: "RSA".into(),
            bits: Some(bit_length(rsa.modulus)),
            curve: None,
        },
        ("1.2.840.10045.2.1", _) => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            let (curve, bits) = match curve_oid.as_str() {
                "1.2.840.10045.3.1.7" => ("P-256".to_string(), Some(256)),
                "1.3.132.0.34" => ("P-384".to_string(), Some(384)),
                "1.3.132.0.35" => ("P-521".to_string(), Some(521)),
                other => (other.to_string(), None),
            };
            KeyInfo {
                algorithm: "ECDSA".into(),
                bits,
                curve: Some(curve),
            }
        }
        ("1.3.101.112", _) => KeyInfo {
            algorithm: "Ed25519".into(),
            bits: Some(256),
            curve: None,
        },
        _ => KeyInfo {
            algorithm: oid,
            bits: None,
            curve: None,
        },
    }
}

/// The number of significant bits of a big-endian unsigned integer.
pub(crate) fn bit_length(be: &[u8]) -> u32 {
    let trimmed: &[u8] = match be.iter().position(|b| *b != 0) {
        Some(i) => &be[i..],
        None => return 0,
    };
    let top = 8 - trimmed[0].leading_zeros();
    // A modulus is at most a few kilobytes, far below u32::MAX bits.
    u32::try_from(trimmed.len() - 1).unwrap_or(u32::MAX / 8) * 8 + top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bit_length(&[0x01]), 1);
        assert_eq!(bit_length(&[0x00]), 0);
        let mut modulus = vec![0u8];
        modulus.extend([0xffu8; 256]);
        assert_eq!(bit_length(&modulus), 2048);
    }

    #[test]
    fn rejects_garbage_naming_the_file() {
        let err = Cert::from_der(Path::new("/x/ca.crt"), vec![0x30, 0x03, 1, 2, 3]).unwrap_err();
        assert!(
            err.to_string().starts_with("/x/ca.crt: not a valid X.509"),
            "{err}"
        );
    }
}

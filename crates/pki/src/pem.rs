//! PEM in and out: certificates and private keys, with errors that name the file.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// The PEM encodings of a private key that kastellan reads and writes back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyFormat {
    /// `BEGIN RSA PRIVATE KEY` (PKCS#1), as kubeadm writes RSA keys.
    Pkcs1,
    /// `BEGIN EC PRIVATE KEY` (SEC1), as kubeadm and the kubelet write ECDSA keys.
    Sec1,
    /// `BEGIN PRIVATE KEY` (PKCS#8).
    Pkcs8,
}

/// A private key read from PEM: its DER and the encoding it came in.
pub struct PemKey {
    /// The key's DER in its original encoding.
    pub der: PrivateKeyDer<'static>,
    /// Which PEM block it came from.
    pub format: KeyFormat,
}

impl std::fmt::Debug for PemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("PemKey")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Reads every `CERTIFICATE` block of a PEM document, in order. `path` is only used for
/// error messages. A document without any certificate is an error.
pub fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        let der = item.map_err(|e| Error::Pem {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        out.push(der.as_ref().to_vec());
    }
    if out.is_empty() {
        return Err(Error::Missing {
            path: path.to_path_buf(),
            what: "CERTIFICATE block",
        });
    }
    Ok(out)
}

/// Reads the first private key of a PEM document (PKCS#1, SEC1 or PKCS#8).
pub fn private_key(path: &Path, pem: &[u8]) -> Result<PemKey> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => Error::Missing {
            path: path.to_path_buf(),
            what: "private key",
        },
        other => Error::Pem {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    })?;
    let format = match &der {
        PrivateKeyDer::Pkcs1(_) => KeyFormat::Pkcs1,
        PrivateKeyDer::Sec1(_) => KeyFormat::Sec1,
        _ => KeyFormat::Pkcs8,
    };
    Ok(PemKey { der, format })
}

/// Encodes DER as a PEM block with the given label (`CERTIFICATE`, `RSA PRIVATE KEY`,
/// ...), 64 characters a line and `\n` line ends, as Go's `encoding/pem` writes it.
pub fn encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// `rsaEncryption`.
const RSA_OID: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Extracts the PKCS#1 `RSAPrivateKey` from a PKCS#8 `PrivateKeyInfo` holding an RSA key,
/// so that a new key can be written in the same encoding as the one it replaces.
/// Returns `None` when `pkcs8` is not such a structure.
pub fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Option<Vec<u8>> {
    use der::asn1::{AnyRef, OctetStringRef};
    use der::{Decode as _, Reader as _, Tagged as _};
    // PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm AlgorithmIdentifier,
    //                               privateKey OCTET STRING, ... }
    let info = AnyRef::from_der(pkcs8).ok()?;
    let mut r = der::SliceReader::new(info.value()).ok()?;
    let _version: u8 = r.decode().ok()?;
    // AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY }
    let algorithm: AnyRef<'_> = r.decode().ok()?;
    if algorithm.tag() != der::Tag::Sequence {
        return None;
    }
    let oid: der::asn1::ObjectIdentifier = der::SliceReader::new(algorithm.value())
        .ok()?
        .decode()
        .ok()?;
    if oid != RSA_OID {
        return None;
    }
    let key: OctetStringRef<'_> = r.decode().ok()?;
    Some(key.as_bytes().to_vec())
}

/// The bit length of the modulus of a PKCS#1 `RSAPublicKey` (0 when it is not one).
pub fn rsa_modulus_bits(rsa_public_key_der: &[u8]) -> u32 {
    use der::asn1::{AnyRef, UintRef};
    use der::{Decode as _, Reader as _, Tagged as _};
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    let Ok(key) = AnyRef::from_der(rsa_public_key_der) else {
        return 0;
    };
    if key.tag() != der::Tag::Sequence {
        return 0;
    }
    der::SliceReader::new(key.value())
        .and_then(|mut r| r.decode::<UintRef<'_>>())
        .map_or(0, |m| crate::x509::bit_length(m.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_wraps_at_64_columns() {
        let pem = encode("CERTIFICATE", &[0u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END CERTIFICATE-----"));
        let back = certificates(Path::new("x"), pem.as_bytes()).unwrap();
        assert_eq!(back, vec![vec![0u8; 100]]);
    }

    #[test]
    fn corrupted_pem_names_the_file() {
        let bad = b"-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n";
        let err = certificates(Path::new("/pki/apiserver.crt"), bad).unwrap_err();
        assert!(err.to_string().contains("/pki/apiserver.crt"), "{err}");
        let err = certificates(Path::new("/pki/empty.crt"), b"hello").unwrap_err();
        assert!(matches!(err, Error::Missing { .. }), "{err}");
        let err = private_key(Path::new("/pki/k.key"), b"nothing").unwrap_err();
        assert!(err.to_string().contains("/pki/k.key"), "{err}");
    }

    #[test]
    fn der_walks() {
        assert_eq!(pkcs8_to_pkcs1(&[0x30, 0x00]), None);
        assert_eq!(pkcs8_to_pkcs1(b"not der"), None);
        assert_eq!(rsa_modulus_bits(&[0x30, 0x00]), 0);
        // SEQUENCE { INTEGER 0x00ff (8 bits: the leading zero is the sign), INTEGER 3 }
        assert_eq!(
            rsa_modulus_bits(&[0x30, 0x07, 0x02, 0x02, 0x00, 0xff, 0x02, 0x01, 0x03]),
            8
        );
    }
}

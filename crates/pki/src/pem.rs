//! PEM in and out: certificates and private keys, with errors that name the file.

use std::path::Path;

use base64::Engine as _;
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
/// ...), 64 characters a line, as Go's `encoding/pem` writes it.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Extracts the PKCS#1 `RSAPrivateKey` from a PKCS#8 `PrivateKeyInfo` holding an RSA key,
/// so that a new key can be written in the same encoding as the one it replaces.
/// Returns `None` when `pkcs8` is not such a structure.
pub fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Option<Vec<u8>> {
    // PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm AlgorithmIdentifier,
    //                               privateKey OCTET STRING, ... }
    let (tag, body, _) = der_element(pkcs8)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _, rest) = der_element(body)?;
    if tag != 0x02 {
        return None;
    }
    let (tag, alg, rest) = der_element(rest)?;
    if tag != 0x30 {
        return None;
    }
    // rsaEncryption 1.2.840.113549.1.1.1
    const RSA_OID: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    if !alg.starts_with(RSA_OID) {
        return None;
    }
    let (tag, key, _) = der_element(rest)?;
    if tag != 0x04 {
        return None;
    }
    Some(key.to_vec())
}

/// Splits one DER element off `input`: (tag, contents, remainder). Only definite lengths
/// up to four length octets, which is all keys ever need.
pub(crate) fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, input.get(header..end)?, input.get(end..)?))
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
    fn der_lengths() {
        assert_eq!(
            der_element(&[0x04, 0x02, 1, 2, 9]),
            Some((0x04, &[1u8, 2][..], &[9u8][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend(std::iter::repeat_n(7u8, 0x80));
        let (_, body, rest) = der_element(&long).unwrap();
        assert_eq!(body.len(), 0x80);
        assert!(rest.is_empty());
        assert_eq!(der_element(&[0x04, 0x05, 1]), None, "truncated");
        assert_eq!(pkcs8_to_pkcs1(&[0x30, 0x00]), None);
    }
}

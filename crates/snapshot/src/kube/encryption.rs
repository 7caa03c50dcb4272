//! Values encrypted at rest by the API server, decrypted with the keys of its
//! `EncryptionConfiguration` (`--encryption-provider-config`): the `aescbc`, `aesgcm`
//! and `secretbox` providers. `kms` keys live outside the file and `identity` encrypts
//! nothing, so both are read and skipped.
//!
//! A value reads `k8s:enc:<provider>:v1:<key name>:<data>`:
//! - `aescbc`: a 16-byte IV, then AES-CBC with PKCS#7 padding;
//! - `aesgcm`: a 12-byte nonce, then AES-GCM with the etcd key as authenticated data;
//! - `secretbox`: a 24-byte nonce, then XSalsa20-Poly1305 (NaCl secretbox).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use serde::Deserialize;

use super::value::ENCRYPTED_PREFIX;

/// A provider whose keys the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// AES-CBC, PKCS#7 padding.
    AesCbc,
    /// AES-GCM, the etcd key authenticated.
    AesGcm,
    /// XSalsa20-Poly1305.
    Secretbox,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::AesCbc => "aescbc",
            Provider::AesGcm => "aesgcm",
            Provider::Secretbox => "secretbox",
        }
    }
}

/// One key of the file.
#[derive(Clone)]
struct Key {
    provider: Provider,
    name: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("provider", &self.provider)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The keys of an `EncryptionConfiguration`, for every resource it lists.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

/// Why a configuration or a value could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptionError {
    /// The file is not an `EncryptionConfiguration`.
    #[error("not an EncryptionConfiguration: {0}")]
    Config(String),
    /// The value names a key the file does not hold.
    #[error("no {provider} key named {name:?} in the encryption configuration")]
    UnknownKey {
        /// The provider.
        provider: String,
        /// The key's name.
        name: String,
    },
    /// The value is not in the provider's format, or the key does not open it.
    #[error("{provider} key {name:?} does not decrypt it: {message}")]
    Decrypt {
        /// The provider.
        provider: String,
        /// The key's name.
        name: String,
        /// Why.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    kind: Option<String>,
    #[serde(default)]
    resources: Vec<ResourceConfig>,
}

#[derive(Deserialize)]
struct ResourceConfig {
    #[serde(default)]
    providers: Vec<ProviderConfig>,
}

#[derive(Deserialize)]
struct ProviderConfig {
    aescbc: Option<KeysConfig>,
    aesgcm: Option<KeysConfig>,
    secretbox: Option<KeysConfig>,
}

#[derive(Deserialize)]
struct KeysConfig {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
struct KeyConfig {
    name: String,
    secret: String,
}

impl Keyring {
    /// Reads an `EncryptionConfiguration` (YAML or JSON).
    pub fn parse(text: &str) -> Result<Keyring, EncryptionError> {
        let config: Config =
            serde_saphyr::from_str(text).map_err(|e| EncryptionError::Config(e.to_string()))?;
        if config.kind.as_deref() != Some("EncryptionConfiguration") {
            return Err(EncryptionError::Config(format!(
                "kind is {:?}, not EncryptionConfiguration",
                config.kind.unwrap_or_default()
            )));
        }
        let mut keys = Vec::new();
        for p in config.resources.iter().flat_map(|r| &r.providers) {
            for (provider, set) in [
                (Provider::AesCbc, &p.aescbc),
                (Provider::AesGcm, &p.aesgcm),
                (Provider::Secretbox, &p.secretbox),
            ] {
                for k in set.iter().flat_map(|s| &s.keys) {
                    let secret = base64::engine::general_purpose::STANDARD
                        .decode(k.secret.trim())
                        .map_err(|e| {
                            EncryptionError::Config(format!(
                                "{} key {:?}: the secret is not base64: {e}",
                                provider.name(),
                                k.name
                            ))
                        })?;
                    let ok = match provider {
                        Provider::AesCbc | Provider::AesGcm => {
                            matches!(secret.len(), 16 | 24 | 32)
                        }
                        Provider::Secretbox => secret.len() == 32,
                    };
                    if !ok {
                        return Err(EncryptionError::Config(format!(
                            "{} key {:?}: {} bytes is not a valid key length",
                            provider.name(),
                            k.name,
                            secret.len()
                        )));
                    }
                    keys.push(Key {
                        provider,
                        name: k.name.clone(),
                        secret,
                    });
                }
            }
        }
        if keys.is_empty() {
            return Err(EncryptionError::Config(
                "no aescbc, aesgcm or secretbox key in it (kms keys are not in the file)".into(),
            ));
        }
        Ok(Keyring { keys })
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Decrypts a value stored under the etcd key `etcd_key`; `Ok(None)` when the
    /// value is not encrypted by a provider with keys in a file.
    pub fn decrypt(
        &self,
        etcd_key: &[u8],
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, EncryptionError> {
        let Some(rest) = value.strip_prefix(ENCRYPTED_PREFIX) else {
            return Ok(None);
        };
        let provider = match rest.split(|&b| b == b':').next() {
            Some(b"aescbc") => Provider::AesCbc,
            Some(b"aesgcm") => Provider::AesGcm,
            Some(b"secretbox") => Provider::Secretbox,
            _ => return Ok(None),
        };
        let head = format!("{}:v1:", provider.name());
        let Some(rest) = rest.strip_prefix(head.as_bytes()) else {
            return Ok(None);
        };
        let Some(colon) = rest.iter().position(|&b| b == b':') else {
            return Ok(None);
        };
        let name = String::from_utf8_lossy(&rest[..colon]).to_string();
        let data = &rest[colon + 1..];
        let key = self
            .keys
            .iter()
            .find(|k| k.provider == provider && k.name == name)
            .ok_or_else(|| EncryptionError::UnknownKey {
                provider: provider.name().into(),
                name: name.clone(),
            })?;
        let fail = |message: &str| EncryptionError::Decrypt {
            provider: provider.name().into(),
            name: name.clone(),
            message: message.into(),
        };
        let plain = match provider {
            Provider::AesCbc => {
                aes_cbc(&key.secret, data).ok_or_else(|| fail("bad padding or length"))?
            }
            Provider::AesGcm => aes_gcm(&key.secret, data, etcd_key)
                .ok_or_else(|| fail("authentication failed (another key, or another etcd key)"))?,
            Provider::Secretbox => {
                secretbox(&key.secret, data).ok_or_else(|| fail("authentication failed"))?
            }
        };
        Ok(Some(plain))
    }
}

fn aes_cbc(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
    if data.len() < 32 || !data.len().is_multiple_of(16) {
        return None;
    }
    let (iv, body) = data.split_at(16);
    match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded_vec_mut::<Pkcs7>(body)
            .ok(),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded_vec_mut::<Pkcs7>(body)
            .ok(),
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded_vec_mut::<Pkcs7>(body)
            .ok(),
        _ => None,
    }
}

fn aes_gcm(key: &[u8], data: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if data.len() < 12 + 16 {
        return None;
    }
    let (nonce, body) = data.split_at(12);
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    let payload = Payload { msg: body, aad };
    match key.len() {
        16 => aes_gcm::Aes128Gcm::new_from_slice(key)
            .ok()?
            .decrypt(nonce, payload)
            .ok(),
        24 => aes_gcm::AesGcm::<aes::Aes192, aes_gcm::aead::consts::U12>::new_from_slice(key)
            .ok()?
            .decrypt(nonce, payload)
            .ok(),
        32 => aes_gcm::Aes256Gcm::new_from_slice(key)
            .ok()?
            .decrypt(nonce, payload)
            .ok(),
        _ => None,
    }
}

fn secretbox(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    use crypto_secretbox::aead::{Aead as _, KeyInit as _};
    if data.len() < 24 + 16 {
        return None;
    }
    let (nonce, body) = data.split_at(24);
    crypto_secretbox::XSalsa20Poly1305::new_from_slice(key)
        .ok()?
        .decrypt(crypto_secretbox::Nonce::from_slice(nonce), body)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm:
          keys:
            - name: g1
              secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
      - aescbc:
          keys:
            - name: c1
              secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
      - secretbox:
          keys:
            - name: s1
              secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
      - identity: {}
";

    #[test]
    fn configuration_is_read_and_checked() {
        assert_eq!(Keyring::parse(CONFIG).unwrap().len(), 3);
        let e = Keyring::parse("kind: Pod\n").unwrap_err();
        assert!(e.to_string().contains("not EncryptionConfiguration"), "{e}");
        let short = CONFIG.replace("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "AAECAwQ=");
        let e = Keyring::parse(&short).unwrap_err();
        assert!(e.to_string().contains("not a valid key length"), "{e}");
    }

    #[test]
    fn other_values_are_left_alone_and_unknown_keys_named() {
        let k = Keyring::parse(CONFIG).unwrap();
        assert_eq!(k.decrypt(b"/registry/x", b"k8s\0plain").unwrap(), None);
        assert_eq!(
            k.decrypt(b"/registry/x", b"k8s:enc:kms:v1:p:xx").unwrap(),
            None
        );
        let e = k
            .decrypt(
                b"/registry/x",
                b"k8s:enc:aescbc:v1:other:0123456789abcdef0123456789abcdef",
            )
            .unwrap_err();
        assert!(matches!(e, EncryptionError::UnknownKey { .. }), "{e}");
        let e = k
            .decrypt(
                b"/registry/x",
                b"k8s:enc:aesgcm:v1:g1:0123456789abcdef0123456789abcdef",
            )
            .unwrap_err();
        assert!(e.to_string().contains("authentication failed"), "{e}");
    }
}

//! The control-plane certificates a joining control plane downloads, as `kubeadm init
//! phase upload-certs --upload-certs` leaves them: Secret `kubeadm-certs` in
//! `kube-system`, one entry per file (the name with `/` turned into `-`), each
//! encrypted with AES-256-GCM under a random 32-byte key (a random 12-byte nonce, then
//! the ciphertext and its tag, as kubeadm's cryptoutil seals), the Secret owned by a
//! bootstrap token that lives 2 hours (so the garbage collector removes it with the
//! token), and the Role and RoleBinding that let the joining node's token read it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::discovery::ExternalEtcd;
use crate::error::{Error, Result};
use crate::secret::{NAMESPACE, TokenSpec, expiry};
use crate::token::{DEFAULT_GROUP, Token};

/// The Secret holding the encrypted certificates.
pub const SECRET_NAME: &str = "kubeadm-certs";
/// The Role and RoleBinding that let joining nodes read [`SECRET_NAME`].
pub const RBAC_NAME: &str = "kubeadm:kubeadm-certs";
/// How long the certificates stay (kubeadm's `DefaultCertTokenDuration`).
pub const TTL: SignedDuration = SignedDuration::from_hours(2);
/// The description kubeadm gives the token that owns the Secret.
pub const OWNER_DESCRIPTION: &str = "Proxy for managing TTL for the kubeadm-certs secret";
/// The length of a certificate key in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// The key the certificates are encrypted with (`--certificate-key`). `Display` gives
/// the 64 hex digits kubeadm takes; `Debug` hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateKey([u8; KEY_LEN]);

impl CertificateKey {
    /// A new random key from the system CSPRNG.
    pub fn generate() -> Result<CertificateKey> {
        let mut k = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut k).map_err(|_| Error::Random)?;
        Ok(CertificateKey(k))
    }

    fn aead(&self) -> Result<LessSafeKey> {
        let key = UnboundKey::new(&AES_256_GCM, &self.0).map_err(|_| Error::CertificateKey)?;
        Ok(LessSafeKey::new(key))
    }
}

impl FromStr for CertificateKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bytes = hex::decode(s).map_err(|_| Error::CertificateKey)?;
        Ok(CertificateKey(
            bytes.try_into().map_err(|_| Error::CertificateKey)?,
        ))
    }
}

impl fmt::Display for CertificateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertificateKey(<secret>)")
    }
}

/// `data` sealed under `key`: nonce, ciphertext, tag (Go's `gcm.Seal(nonce, nonce,
/// data, nil)`).
pub fn encrypt(data: &[u8], key: &CertificateKey) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Error::Random)?;
    let mut sealed = data.to_vec();
    key.aead()?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut sealed,
        )
        .map_err(|_| Error::Encrypt)?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a blob sealed by [`encrypt`] or by kubeadm; `what` names it in the error.
pub fn decrypt(blob: &[u8], key: &CertificateKey, what: &str) -> Result<Vec<u8>> {
    if blob.len() < NONCE_LEN {
        return Err(Error::Decrypt(what.to_string()));
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let nonce =
        Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Decrypt(what.to_string()))?;
    let mut buf = sealed.to_vec();
    let plain = key
        .aead()?
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .map_err(|_| Error::Decrypt(what.to_string()))?;
    Ok(plain.to_vec())
}

/// One file to upload: its key in the Secret and where it is on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFile {
    /// The key in the Secret (`etcd/ca.key` becomes `etcd-ca.key`).
    pub key: String,
    /// The file.
    pub path: PathBuf,
}

/// The files kubeadm uploads: the shared CAs and service-account keys under
/// `cert_dir`, and with an external etcd its CA and client pair instead of the etcd CA.
pub fn files(cert_dir: &Path, external: Option<&ExternalEtcd>) -> Vec<CertFile> {
    let mut out: Vec<CertFile> = kastellan_kubeadm::pki::SHARED
        .iter()
        .filter(|f| external.is_none() || !f.starts_with("etcd/"))
        .map(|f| CertFile {
            key: f.replace('/', "-"),
            path: cert_dir.join(f),
        })
        .collect();
    if let Some(e) = external {
        for (key, path) in [
            ("external-etcd-ca.crt", &e.ca_file),
            ("external-etcd.crt", &e.cert_file),
            ("external-etcd.key", &e.key_file),
        ] {
            out.push(CertFile {
                key: key.into(),
                path: PathBuf::from(path),
            });
        }
    }
    out
}

/// The token that owns the Secret: no usages, no groups, 2 hours, kubeadm's
/// description.
pub fn owner_token(now: Timestamp) -> Result<TokenSpec> {
    Ok(TokenSpec {
        token: Token::generate()?,
        description: Some(OWNER_DESCRIPTION.into()),
        expires: expiry(now, TTL),
        usages: Vec::new(),
        groups: Vec::new(),
    })
}

/// The owner reference to a token's Secret (`uid` as the API gave it), a controller
/// reference as kubeadm sets it.
pub fn owner_reference(token_secret_name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Secret".into(),
        name: token_secret_name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The `kubeadm-certs` Secret: every file's contents (`None`: absent on disk, stored
/// empty as kubeadm does) encrypted under `key`.
pub fn secret(
    contents: &[(String, Option<Vec<u8>>)],
    key: &CertificateKey,
    owner: OwnerReference,
) -> Result<Secret> {
    let mut data = BTreeMap::new();
    for (name, content) in contents {
        let value = match content {
            Some(c) => encrypt(c, key)?,
            None => Vec::new(),
        };
        data.insert(name.clone(), ByteString(value));
    }
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.into()),
            namespace: Some(NAMESPACE.into()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    })
}

/// Every entry of a `kubeadm-certs` Secret decrypted (empty entries stay empty), as
/// `kubeadm join` reads it; one bad entry fails the whole.
pub fn open_secret(secret: &Secret, key: &CertificateKey) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for (name, value) in secret.data.iter().flatten() {
        let plain = if value.0.is_empty() {
            Vec::new()
        } else {
            decrypt(&value.0, key, name)?
        };
        out.insert(name.clone(), plain);
    }
    Ok(out)
}

/// The Role that lets its subjects get the `kubeadm-certs` Secret, and nothing else.
pub fn role() -> Role {
    Role {
        metadata: ObjectMeta {
            name: Some(RBAC_NAME.into()),
            namespace: Some(NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            resource_names: Some(vec![SECRET_NAME.into()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        }]),
    }
}

/// The RoleBinding of [`role`] to the group of kubeadm's node tokens.
pub fn role_binding() -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(RBAC_NAME.into()),
            namespace: Some(NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: RBAC_NAME.into(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            name: DEFAULT_GROUP.into(),
            namespace: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_64_hex_digits_and_hidden_in_debug() {
        let k = CertificateKey::generate().unwrap();
        let hexed = k.to_string();
        assert_eq!(hexed.len(), 64);
        assert_eq!(hexed.parse::<CertificateKey>().unwrap(), k);
        assert_eq!(format!("{k:?}"), "CertificateKey(<secret>)");
        assert!("abcd".parse::<CertificateKey>().is_err());
        assert!("zz".repeat(32).parse::<CertificateKey>().is_err());
        assert_ne!(CertificateKey::generate().unwrap(), k);
    }

    #[test]
    fn round_trip_and_layout() {
        let k = CertificateKey::generate().unwrap();
        let data = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let blob = encrypt(data, &k).unwrap();
        assert_eq!(blob.len(), 12 + data.len() + 16, "nonce, ciphertext, tag");
        assert_eq!(decrypt(&blob, &k, "ca.crt").unwrap(), data);
        let again = encrypt(data, &k).unwrap();
        assert_ne!(blob, again, "a fresh nonce every time");
    }

    #[test]
    fn a_wrong_key_or_a_flipped_bit_fails() {
        let k = CertificateKey::generate().unwrap();
        let blob = encrypt(b"secret key material", &k).unwrap();
        let other = CertificateKey::generate().unwrap();
        let e = decrypt(&blob, &other, "sa.key").unwrap_err().to_string();
        assert!(e.starts_with("sa.key: wrong certificate key"), "{e}");
        let mut flipped = blob.clone();
        flipped[20] ^= 1;
        assert!(decrypt(&flipped, &k, "sa.key").is_err());
        assert!(decrypt(&blob[..5], &k, "sa.key").is_err());
    }

    /// Test case 14 of the GCM specification (McGrew and Viega): key and IV of
    /// zeros, 16 zero bytes of text. Laid out as kubeadm seals (nonce, ciphertext,
    /// tag), the blob opens to the text: the layout is not only our own round trip.
    #[test]
    fn a_blob_laid_out_from_the_gcm_specification_opens() {
        let key = CertificateKey([0; KEY_LEN]);
        let mut blob = vec![0u8; 12];
        blob.extend(hex::decode("cea7403d4d606b6e074ec5d3baf39d18").unwrap());
        blob.extend(hex::decode("d0d1c8a799996bf0265b98b5d48ab919").unwrap());
        assert_eq!(decrypt(&blob, &key, "tc14").unwrap(), [0u8; 16]);
        let mut swapped = vec![0u8; 12];
        swapped.extend(hex::decode("d0d1c8a799996bf0265b98b5d48ab919").unwrap());
        swapped.extend(hex::decode("cea7403d4d606b6e074ec5d3baf39d18").unwrap());
        assert!(decrypt(&swapped, &key, "tc14").is_err());
    }

    /// A blob sealed by the real kubeadm v1.20.2 (see testdata/README.md) opens.
    #[test]
    fn a_blob_sealed_by_kubeadm_opens() {
        use base64::Engine as _;
        let key: CertificateKey =
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
                .parse()
                .unwrap();
        let blob = base64::engine::general_purpose::STANDARD
            .decode(include_str!("testdata/kubeadm-sa.pub.b64").trim())
            .unwrap();
        let plain = decrypt(&blob, &key, "sa.pub").unwrap();
        assert_eq!(plain, include_bytes!("testdata/sa.pub"));
        let other = CertificateKey::generate().unwrap();
        assert!(decrypt(&blob, &other, "sa.pub").is_err());
    }

    #[test]
    fn files_are_kubeadms_with_dashes() {
        let f = files(Path::new("/etc/kubernetes/pki"), None);
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ca.crt",
                "ca.key",
                "sa.key",
                "sa.pub",
                "front-proxy-ca.crt",
                "front-proxy-ca.key",
                "etcd-ca.crt",
                "etcd-ca.key"
            ]
        );
        assert_eq!(f[7].path, Path::new("/etc/kubernetes/pki/etcd/ca.key"));
        let ext = ExternalEtcd {
            ca_file: "/e/ca.pem".into(),
            cert_file: "/e/c.pem".into(),
            key_file: "/e/k.pem".into(),
        };
        let f = files(Path::new("/p"), Some(&ext));
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ca.crt",
                "ca.key",
                "sa.key",
                "sa.pub",
                "front-proxy-ca.crt",
                "front-proxy-ca.key",
                "external-etcd-ca.crt",
                "external-etcd.crt",
                "external-etcd.key"
            ]
        );
    }

    #[test]
    fn the_secret_opens_with_its_key_and_is_owned_by_the_token() {
        let k = CertificateKey::generate().unwrap();
        let owner = owner_token("2026-12-02T10:00:00Z".parse().unwrap()).unwrap();
        let owner_secret = owner.secret();
        let name = owner_secret.metadata.name.clone().unwrap();
        assert_eq!(
            owner_secret.data.as_ref().unwrap()["expiration"].0,
            b"2026-12-02T12:00:00Z"
        );
        assert!(
            !owner_secret
                .data
                .as_ref()
                .unwrap()
                .keys()
                .any(|k| k.starts_with("usage-") || k == "auth-extra-groups"),
            "kubeadm's owner token has neither usages nor groups"
        );
        let s = secret(
            &[
                ("ca.crt".into(), Some(b"CA".to_vec())),
                ("etcd-ca.key".into(), None),
            ],
            &k,
            owner_reference(&name, "uid-1"),
        )
        .unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("kubeadm-certs"));
        let r = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                r.kind.as_str(),
                r.name.as_str(),
                r.uid.as_str(),
                r.controller
            ),
            ("Secret", name.as_str(), "uid-1", Some(true))
        );
        let opened = open_secret(&s, &k).unwrap();
        assert_eq!(opened["ca.crt"], b"CA");
        assert!(opened["etcd-ca.key"].is_empty());
        assert!(open_secret(&s, &CertificateKey::generate().unwrap()).is_err());
    }

    #[test]
    fn rbac_lets_node_tokens_get_the_secret_only() {
        let r = role();
        let rule = &r.rules.as_ref().unwrap()[0];
        assert_eq!(rule.verbs, ["get"]);
        assert_eq!(
            rule.resource_names.as_deref(),
            Some(&["kubeadm-certs".to_string()][..])
        );
        let b = role_binding();
        assert_eq!(b.role_ref.name, "kubeadm:kubeadm-certs");
        assert_eq!(
            b.subjects.as_ref().unwrap()[0].name,
            "system:bootstrappers:kubeadm:default-node-token"
        );
    }
}

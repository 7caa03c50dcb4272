//! `certs renew`: plan (pure, serialisable), sign (in memory, verified), apply (backup,
//! then atomic writes).
//!
//! A renewed certificate keeps the old one's subject and every extension byte-for-byte
//! (SANs, key usage, extended key usage, basic constraints, ...) and, unless a new key is
//! asked for, its key. Like kubeadm it is valid from the CA's `notBefore` until one year
//! from now, gets a fresh random serial, and is signed by the existing CA. Nothing is
//! written until every certificate of the plan has been signed and checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, Issuer, KeyPair,
    PublicKeyData as _,
};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::X509Certificate;

use crate::error::{Error, Result};
use crate::inventory::{Found, Inventory, State};
use crate::kubeconfig::{self, Credential};
use crate::layout::{self, CaId, Component, Kind, Spec};
use crate::pem::{self, KeyFormat};
use crate::restart::RestartOutcome;
use crate::x509::Cert;

/// How long a renewed certificate is valid: kubeadm's `CertificateValidity`, 365 days.
pub const VALIDITY: SignedDuration = SignedDuration::from_hours(24 * 365);

const OID_AKI: &str = "2.5.29.35";
const OID_SKI: &str = "2.5.29.14";

/// Which certificates to renew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Every renewable certificate that is present (CAs and kubelet-managed ones excluded).
    All,
    /// These names (kubeadm's, or file base names).
    Names(Vec<String>),
}

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewRequest {
    /// Which certificates.
    pub targets: Targets,
    /// Generate new keys (same type and size) instead of keeping the old ones.
    pub new_key: bool,
    /// Where to put the backups; default `<kubeconfig_dir>/tmp/kastellan-certs-<time>`.
    pub backup_dir: Option<PathBuf>,
}

/// One certificate the plan renews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRenewal {
    /// kubeadm's name.
    pub name: String,
    /// Leaf file or kubeconfig.
    pub kind: Kind,
    /// The CA that signs the new certificate.
    pub ca: CaId,
    /// The file whose certificate is replaced (a `.crt`, or the kubeconfig).
    pub cert_file: PathBuf,
    /// The key file (for kubeconfigs: the kubeconfig itself).
    pub key_file: PathBuf,
    /// Every file that will be replaced (and backed up first).
    pub writes: Vec<PathBuf>,
    /// The current certificate's end of validity.
    pub current_not_after: Timestamp,
    /// The new certificate's start of validity (the CA's, as kubeadm does).
    pub new_not_before: Timestamp,
    /// The new certificate's end of validity.
    pub new_not_after: Timestamp,
    /// Whether a new key is generated.
    pub new_key: bool,
    /// The static pod that must restart to load it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<Component>,
}

/// A certificate the plan leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Its name.
    pub name: String,
    /// Why it is not renewed.
    pub reason: String,
}

/// A reviewed, serialisable renewal plan: what will be signed, written and restarted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewPlan {
    /// When the plan was made (the new certificates' validity counts from here).
    pub created_at: Timestamp,
    /// Where the old files are copied before anything is replaced.
    pub backup_dir: PathBuf,
    /// Whether new keys are generated.
    pub new_key: bool,
    /// The certificates to renew.
    pub renew: Vec<PlannedRenewal>,
    /// The certificates left alone.
    pub skipped: Vec<Skipped>,
    /// Static pods that must restart afterwards, in restart order.
    pub restart: Vec<Component>,
    /// Things the operator should know.
    pub notes: Vec<String>,
}

/// Makes a renewal plan from what is on disk. Pure: `now` is the clock.
///
/// Fails (and nothing will be written) when a named certificate is unknown, not renewable
/// or absent, when a file to renew is unreadable, or when a CA key needed is absent
/// (externally managed CA).
pub fn plan(inv: &Inventory, req: &RenewRequest, now: Timestamp) -> Result<RenewPlan> {
    let mut specs: Vec<&'static Spec> = Vec::new();
    let mut skipped = Vec::new();
    match &req.targets {
        Targets::All => {
            for e in inv.entries() {
                if !e.spec.renewable {
                    skipped.push(Skipped {
                        name: e.spec.name.into(),
                        reason: layout::not_renewable_reason(e.spec).into(),
                    });
                    continue;
                }
                match &e.state {
                    State::Absent { path } => skipped.push(Skipped {
                        name: e.spec.name.into(),
                        reason: format!("absent ({})", path.display()),
                    }),
                    _ => specs.push(e.spec),
                }
            }
        }
        Targets::Names(names) => {
            for n in names {
                let spec = layout::find(n).ok_or_else(|| Error::UnknownName {
                    name: n.clone(),
                    known: layout::catalogue()
                        .filter(|s| s.renewable)
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
                if !spec.renewable {
                    return Err(Error::NotRenewable {
                        name: spec.name.into(),
                        reason: layout::not_renewable_reason(spec).into(),
                    });
                }
                if !specs.contains(&spec) {
                    specs.push(spec);
                }
            }
        }
    }

    // Every CA key needed must be there; say which CA is external and what it blocks.
    let mut blocked: BTreeMap<CaId, Vec<&str>> = BTreeMap::new();
    for spec in &specs {
        if let Some(ca) = spec.ca
            && !inv.ca_key_present(ca)
        {
            blocked.entry(ca).or_default().push(spec.name);
        }
    }
    if let Some((ca, names)) = blocked.into_iter().next() {
        return Err(Error::ExternalCa {
            names: names.join(", "),
            ca: ca.name().into(),
            key_path: inv.layout.key(ca.base()),
        });
    }

    let new_not_after = now.checked_add(VALIDITY).unwrap_or(now);
    let mut renew = Vec::new();
    let mut notes = Vec::new();
    for spec in specs {
        let entry = inv.entry(spec.name).ok_or_else(|| Error::UnknownName {
            name: spec.name.into(),
            known: String::new(),
        })?;
        let found = match &entry.state {
            State::Present(f) => f,
            State::Absent { path } => {
                return Err(Error::Absent {
                    name: spec.name.into(),
                    path: path.clone(),
                });
            }
            State::Broken(e) => return Err(clone_error(e)),
        };
        let Some(ca) = spec.ca else { continue };
        let ca_found = match inv
            .authorities
            .iter()
            .find(|e| e.spec.name == ca.name())
            .map(|e| &e.state)
        {
            Some(State::Present(f)) => f,
            Some(State::Broken(e)) => return Err(clone_error(e)),
            _ => {
                return Err(Error::Absent {
                    name: spec.name.into(),
                    path: inv.layout.crt(ca.base()),
                });
            }
        };
        let (key_file, writes) = match spec.kind {
            Kind::Kubeconfig => {
                let (conf, creds) = found.kubeconfig.as_ref().ok_or_else(|| Error::Kubeconfig {
                    path: found.cert_file.clone(),
                    detail: "no client credentials".into(),
                })?;
                if !matches!(creds.certificate, Credential::Embedded { .. }) {
                    return Err(Error::Kubeconfig {
                        path: conf.clone(),
                        detail: format!(
                            "{} does not have an embedded client certificate (it references {}); renew that file instead",
                            spec.name,
                            found.cert_file.display()
                        ),
                    });
                }
                if req.new_key && !matches!(creds.key, Some(Credential::Embedded { .. })) {
                    return Err(Error::Kubeconfig {
                        path: conf.clone(),
                        detail: "--new-key needs an embedded client key".into(),
                    });
                }
                (conf.clone(), vec![conf.clone()])
            }
            _ => {
                let key = found
                    .key_file
                    .clone()
                    .unwrap_or_else(|| found.cert_file.with_extension("key"));
                let mut w = vec![found.cert_file.clone()];
                if req.new_key {
                    w.push(key.clone());
                }
                (key, w)
            }
        };
        let ca_not_after = ca_found.cert.facts.not_after;
        if new_not_after > ca_not_after {
            notes.push(format!(
                "{} will outlive its CA '{}', which expires {}; rotate the CA",
                spec.name,
                ca.name(),
                ca_not_after
            ));
        }
        renew.push(PlannedRenewal {
            name: spec.name.into(),
            kind: spec.kind,
            ca,
            cert_file: found.cert_file.clone(),
            key_file,
            writes,
            current_not_after: found.cert.facts.not_after,
            new_not_before: ca_found.cert.facts.not_before,
            new_not_after,
            new_key: req.new_key,
            restart: spec.restart,
        });
    }

    let mut restart: Vec<Component> = renew.iter().filter_map(|r| r.restart).collect();
    restart.sort();
    restart.dedup();
    if renew
        .iter()
        .any(|r| r.name == "admin.conf" || r.name == "super-admin.conf")
    {
        notes.push("copies of admin.conf elsewhere (e.g. ~/.kube/config) still hold the old certificate: copy it again".into());
    }
    let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    let backup_dir = req.backup_dir.clone().unwrap_or_else(|| {
        kastellan_kubeadm::fs::unique_dir(
            inv.layout
                .backup_root()
                .join(format!("kastellan-certs-{stamp}")),
        )
    });
    Ok(RenewPlan {
        created_at: now,
        backup_dir,
        new_key: req.new_key,
        renew,
        skipped,
        restart,
        notes,
    })
}

/// Errors are not `Clone`; re-create the message for a broken entry met during planning.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Read { path, source } => Error::Read {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::Pem { path, detail } => Error::Pem {
            path: path.clone(),
            detail: detail.clone(),
        },
        Error::Missing { path, what } => Error::Missing {
            path: path.clone(),
            what,
        },
        Error::Certificate { path, detail } => Error::Certificate {
            path: path.clone(),
            detail: detail.clone(),
        },
        Error::Kubeconfig { path, detail } => Error::Kubeconfig {
            path: path.clone(),
            detail: detail.clone(),
        },
        // Loading only produces the variants above; keep the message for anything else.
        other => Error::Kubeconfig {
            path: PathBuf::new(),
            detail: other.to_string(),
        },
    }
}

/// One file's new content.
#[derive(Clone, PartialEq, Eq)]
pub struct FileWrite {
    /// The file to replace.
    pub path: PathBuf,
    /// Its new content.
    pub data: Vec<u8>,
    /// The mode to write it with; `None` keeps the file's current mode. Key files are
    /// always written 0600.
    pub mode: Option<u32>,
}

impl std::fmt::Debug for FileWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWrite")
            .field("path", &self.path)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// The outcome of signing: every file's new content, nothing written yet.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The files to replace, in plan order.
    pub writes: Vec<FileWrite>,
    /// The new certificates' serial numbers by name.
    pub serials: BTreeMap<String, String>,
}

/// Signs every certificate of the plan in memory and verifies each result. With
/// `generate_keys` false (dry runs) no new keys are made; the old ones are used to prove
/// the plan can be carried out.
pub fn sign(inv: &Inventory, plan: &RenewPlan, generate_keys: bool) -> Result<Signed> {
    let mut writes = Vec::new();
    let mut serials = BTreeMap::new();
    let mut ca_keys: BTreeMap<CaId, (KeyPair, Cert)> = BTreeMap::new();
    for item in &plan.renew {
        if let std::collections::btree_map::Entry::Vacant(slot) = ca_keys.entry(item.ca) {
            slot.insert(load_ca(inv, item.ca)?);
        }
        let (ca_key, ca_cert) = ca_keys.get(&item.ca).ok_or_else(|| Error::Sign {
            name: item.name.clone(),
            detail: "CA key not loaded".into(),
        })?;
        let entry = inv
            .entry(&item.name)
            .and_then(|e| e.found())
            .ok_or_else(|| Error::Absent {
                name: item.name.clone(),
                path: item.cert_file.clone(),
            })?;
        let (out, serial) = sign_one(item, entry, ca_key, ca_cert, plan.new_key && generate_keys)?;
        serials.insert(item.name.clone(), serial);
        writes.extend(out);
    }
    Ok(Signed { writes, serials })
}

/// Signs one planned renewal with what is on disk now (its CA's key, its current
/// certificate and key), verifies the result and returns the files' new content and the
/// new serial. Nothing is written. With `generate_key` a new key of the same type and
/// size is made; it exists only in the returned writes.
pub fn sign_item(
    inv: &Inventory,
    item: &PlannedRenewal,
    generate_key: bool,
) -> Result<(Vec<FileWrite>, String)> {
    let (ca_key, ca_cert) = load_ca(inv, item.ca)?;
    let entry = inv
        .entry(&item.name)
        .and_then(|e| e.found())
        .ok_or_else(|| Error::Absent {
            name: item.name.clone(),
            path: item.cert_file.clone(),
        })?;
    sign_one(item, entry, &ca_key, &ca_cert, item.new_key && generate_key)
}

/// Replaces `path` (through a symlink, the file it points to) with `data` atomically,
/// keeping its owner and its mode unless `mode` says otherwise; returns the file
/// written.
pub fn write_keeping_mode(path: &Path, data: &[u8], mode: Option<u32>) -> Result<PathBuf> {
    let real = std::fs::canonicalize(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let own = kastellan_kubeadm::fs::ownership(&real)?;
    let mode = mode.or(own.map(|o| o.mode)).unwrap_or(0o600);
    kastellan_kubeadm::fs::write_owned(&real, data, mode, own)?;
    Ok(real)
}

fn load_ca(inv: &Inventory, ca: CaId) -> Result<(KeyPair, Cert)> {
    let found = inv.authority(ca).ok_or_else(|| Error::Absent {
        name: ca.name().into(),
        path: inv.layout.crt(ca.base()),
    })?;
    let key_path = inv.layout.key(ca.base());
    let bytes = std::fs::read(&key_path).map_err(|source| Error::Read {
        path: key_path.clone(),
        source,
    })?;
    let key = load_key_pair(&key_path, &bytes)?.0;
    if key.der_bytes() != found.cert.public_key_bits()?.as_slice() {
        return Err(Error::KeyMismatch {
            name: ca.name().into(),
            cert_path: found.cert_file.clone(),
            key_path,
        });
    }
    Ok((key, found.cert.clone()))
}

fn load_key_pair(path: &Path, pem_bytes: &[u8]) -> Result<(KeyPair, KeyFormat)> {
    let key = pem::private_key(path, pem_bytes)?;
    let pair = KeyPair::try_from(&key.der).map_err(|e| Error::Key {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok((pair, key.format))
}

fn sign_one(
    item: &PlannedRenewal,
    found: &Found,
    ca_key: &KeyPair,
    ca_cert: &Cert,
    generate: bool,
) -> Result<(Vec<FileWrite>, String)> {
    // The current key: from the key file, or embedded in the kubeconfig.
    let (key_bytes, key_path, kube) = match (&found.kubeconfig, item.kind) {
        (Some((conf, creds)), Kind::Kubeconfig) => {
            let text = std::fs::read_to_string(conf).map_err(|source| Error::Read {
                path: conf.clone(),
                source,
            })?;
            let key_pem = match &creds.key {
                Some(Credential::Embedded { pem, .. }) => pem.clone(),
                Some(Credential::File(f)) => std::fs::read(f).map_err(|source| Error::Read {
                    path: f.clone(),
                    source,
                })?,
                None => {
                    return Err(Error::Kubeconfig {
                        path: conf.clone(),
                        detail: "no client key for the current user".into(),
                    });
                }
            };
            (
                key_pem,
                conf.clone(),
                Some((conf.clone(), text, creds.clone())),
            )
        }
        _ => {
            let bytes = std::fs::read(&item.key_file).map_err(|source| Error::Read {
                path: item.key_file.clone(),
                source,
            })?;
            (bytes, item.key_file.clone(), None)
        }
    };
    let (old_key, format) = load_key_pair(&key_path, &key_bytes)?;
    if old_key.der_bytes() != found.cert.public_key_bits()?.as_slice() {
        return Err(Error::KeyMismatch {
            name: item.name.clone(),
            cert_path: found.cert_file.clone(),
            key_path,
        });
    }
    let (subject_key, new_key_pem) = if generate {
        let k = generate_like(&item.name, &old_key)?;
        let pem = encode_key(&item.name, &k, format)?;
        (k, Some(pem))
    } else {
        (old_key, None)
    };

    let old = found.cert.x509()?;
    let serial = random_serial(&item.name)?;
    let params = params_from(
        item,
        &found.cert,
        &old,
        &subject_key,
        &serial,
        new_key_pem.is_some(),
    )?;
    let issuer =
        Issuer::from_ca_cert_der(&ca_cert.der.clone().into(), ca_key).map_err(|e| Error::Sign {
            name: item.name.clone(),
            detail: format!("loading CA '{}': {e}", item.ca.name()),
        })?;
    let new = params
        .signed_by(&subject_key, &issuer)
        .map_err(|e| Error::Sign {
            name: item.name.clone(),
            detail: e.to_string(),
        })?;
    verify_renewed(
        item,
        &old,
        new.der(),
        ca_cert,
        subject_key.der_bytes(),
        new_key_pem.is_some(),
    )
    .map_err(|detail| Error::Verify {
        name: item.name.clone(),
        detail,
    })?;
    let cert_pem = pem::encode("CERTIFICATE", new.der());
    let serial_hex = serial
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");

    let mut writes = Vec::new();
    match kube {
        Some((conf, text, creds)) => {
            let Credential::Embedded {
                base64: old_cert_b64,
                ..
            } = &creds.certificate
            else {
                return Err(Error::Kubeconfig {
                    path: conf,
                    detail: "client certificate is not embedded".into(),
                });
            };
            let mut new_text = kubeconfig::replace_value(
                &conf,
                &text,
                old_cert_b64,
                &kubeconfig::encode_data(cert_pem.as_bytes()),
            )?;
            if let Some(key_pem) = &new_key_pem {
                let Some(Credential::Embedded {
                    base64: old_key_b64,
                    ..
                }) = &creds.key
                else {
                    return Err(Error::Kubeconfig {
                        path: conf,
                        detail: "client key is not embedded".into(),
                    });
                };
                new_text = kubeconfig::replace_value(
                    &conf,
                    &new_text,
                    old_key_b64,
                    &kubeconfig::encode_data(key_pem.as_bytes()),
                )?;
            }
            // Read it back the way every reader will.
            let check = kubeconfig::client_credentials(&conf, &new_text)?;
            match check.certificate {
                Credential::Embedded { pem, .. } if pem == cert_pem.as_bytes() => {}
                _ => {
                    return Err(Error::Verify {
                        name: item.name.clone(),
                        detail: format!(
                            "{} does not read back the new certificate",
                            conf.display()
                        ),
                    });
                }
            }
            writes.push(FileWrite {
                path: conf,
                data: new_text.into_bytes(),
                mode: None,
            });
        }
        None => {
            writes.push(FileWrite {
                path: item.cert_file.clone(),
                data: cert_pem.into_bytes(),
                mode: None,
            });
            if let Some(key_pem) = new_key_pem {
                writes.push(FileWrite {
                    path: item.key_file.clone(),
                    data: key_pem.into_bytes(),
                    mode: Some(0o600),
                });
            }
        }
    }
    Ok((writes, serial_hex))
}

fn random_serial(name: &str) -> Result<Vec<u8>> {
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| Error::Sign {
        name: name.into(),
        detail: "no randomness for the serial".into(),
    })?;
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x01; // and 16 bytes long
    Ok(serial.to_vec())
}

/// A new key of the same algorithm and size as `old`.
fn generate_like(name: &str, old: &KeyPair) -> Result<KeyPair> {
    let alg = old.algorithm();
    let err = |e: rcgen::Error| Error::Sign {
        name: name.into(),
        detail: format!("generating a new key: {e}"),
    };
    if alg == &rcgen::PKCS_RSA_SHA256
        || alg == &rcgen::PKCS_RSA_SHA384
        || alg == &rcgen::PKCS_RSA_SHA512
    {
        // The public key is DER RSAPublicKey { modulus, exponent }; its size tells the modulus size.
        let bits = pem::rsa_modulus_bits(old.der_bytes());
        let size = match bits {
            0..=2048 => rcgen::RsaKeySize::_2048,
            2049..=3072 => rcgen::RsaKeySize::_3072,
            _ => rcgen::RsaKeySize::_4096,
        };
        return KeyPair::generate_rsa_for(alg, size).map_err(err);
    }
    KeyPair::generate_for(alg).map_err(err)
}

/// The new key as PEM in the old key's encoding where possible (PKCS#1 for RSA keys that
/// were PKCS#1, as kubeadm writes them; PKCS#8 otherwise).
fn encode_key(name: &str, key: &KeyPair, old_format: KeyFormat) -> Result<String> {
    let pkcs8 = key.serialize_der();
    if old_format == KeyFormat::Pkcs1 {
        let pkcs1 = pem::pkcs8_to_pkcs1(&pkcs8).ok_or_else(|| Error::Sign {
            name: name.into(),
            detail: "cannot encode the new key as PKCS#1".into(),
        })?;
        return Ok(pem::encode("RSA PRIVATE KEY", &pkcs1));
    }
    Ok(pem::encode("PRIVATE KEY", &pkcs8))
}

/// rcgen parameters reproducing `old`: same subject (attribute order and string types),
/// every extension copied verbatim except the authority key identifier (regenerated from
/// the CA) and, with a new key, the subject key identifier (recomputed).
fn params_from(
    item: &PlannedRenewal,
    cert: &Cert,
    old: &X509Certificate<'_>,
    subject_key: &KeyPair,
    serial: &[u8],
    new_key: bool,
) -> Result<CertificateParams> {
    let unsupported = |detail: String| Error::Unsupported {
        name: item.name.clone(),
        path: cert.path.clone(),
        detail,
    };
    let mut dn = DistinguishedName::new();
    for rdn in old.subject().iter() {
        let attrs: Vec<_> = rdn.iter().collect();
        let [attr] = attrs.as_slice() else {
            return Err(unsupported("a multi-valued RDN in the subject".into()));
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| unsupported("an attribute OID too large".into()))?
            .collect();
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            return Err(unsupported(format!(
                "the attribute {} appears twice in the subject",
                attr.attr_type()
            )));
        }
        let value = attr.attr_value();
        let text = || {
            std::str::from_utf8(value.data)
                .map(str::to_owned)
                .map_err(|_| unsupported("a subject value that is not UTF-8".into()))
        };
        use x509_parser::der_parser::asn1_rs::Tag;
        let v = match value.header.tag() {
            Tag::PrintableString => DnValue::PrintableString(
                text()?
                    .try_into()
                    .map_err(|_| unsupported("an invalid PrintableString".into()))?,
            ),
            Tag::Utf8String => DnValue::Utf8String(text()?),
            Tag::Ia5String => DnValue::Ia5String(
                text()?
                    .try_into()
                    .map_err(|_| unsupported("an invalid IA5String".into()))?,
            ),
            other => return Err(unsupported(format!("a subject value of type {other}"))),
        };
        dn.push(ty, v);
    }

    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.serial_number = Some(serial.to_vec().into());
    params.not_before = to_offset(item.new_not_before);
    params.not_after = to_offset(item.new_not_after);
    for ext in old.extensions() {
        let oid = ext.oid.to_id_string();
        if oid == OID_AKI {
            params.use_authority_key_identifier_extension = true;
            continue;
        }
        let content = if oid == OID_SKI && new_key {
            let id = params.key_identifier(subject_key);
            let mut v = vec![0x04, u8::try_from(id.len()).unwrap_or(20)];
            v.extend(id);
            v
        } else {
            ext.value.to_vec()
        };
        let arcs: Vec<u64> = ext
            .oid
            .iter()
            .ok_or_else(|| unsupported(format!("extension OID {oid} too large")))?
            .collect();
        let mut custom = CustomExtension::from_oid_content(&arcs, content);
        custom.set_criticality(ext.critical);
        params.custom_extensions.push(custom);
    }
    Ok(params)
}

fn to_offset(t: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.as_second())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The checks a renewed certificate must pass before anything is written.
fn verify_renewed(
    item: &PlannedRenewal,
    old: &X509Certificate<'_>,
    new_der: &[u8],
    ca: &Cert,
    key_bits: &[u8],
    new_key: bool,
) -> std::result::Result<(), String> {
    let new = Cert::from_der(&item.cert_file, new_der.to_vec()).map_err(|e| e.to_string())?;
    let x = new.x509().map_err(|e| e.to_string())?;
    let ca_x = ca.x509().map_err(|e| e.to_string())?;
    if x.subject().as_raw() != old.subject().as_raw() {
        return Err(format!(
            "subject differs: {} vs {}",
            x.subject(),
            old.subject()
        ));
    }
    if !new.is_signed_by(ca) {
        return Err(format!("not verifiable with CA '{}'", item.ca.name()));
    }
    if x.public_key().subject_public_key.data.as_ref() != key_bits {
        return Err("public key differs from the intended key".into());
    }
    if !new_key && x.public_key().raw != old.public_key().raw {
        return Err("public key changed although the key was kept".into());
    }
    let exts = |c: &X509Certificate<'_>, skip_ski: bool| {
        let mut v: Vec<(String, bool, Vec<u8>)> = c
            .extensions()
            .iter()
            .map(|e| (e.oid.to_id_string(), e.critical, e.value.to_vec()))
            .filter(|(oid, _, _)| oid != OID_AKI && !(skip_ski && oid == OID_SKI))
            .collect();
        v.sort();
        v
    };
    if exts(&x, new_key) != exts(old, new_key) {
        return Err(
            "extensions (SANs, usages, constraints) differ from the old certificate".into(),
        );
    }
    if new.facts.sans != item_sans(old) {
        return Err("subject alternative names differ".into());
    }
    if let Some(ski) = ca_x
        .iter_extensions()
        .find(|e| e.oid.to_id_string() == OID_SKI)
    {
        let aki = x
            .iter_extensions()
            .find(|e| e.oid.to_id_string() == OID_AKI);
        let ski_value = ski.value.get(2..).unwrap_or_default();
        if !aki.is_some_and(|a| {
            a.value
                .windows(ski_value.len().max(1))
                .any(|w| w == ski_value)
        }) {
            return Err("authority key identifier does not name the CA".into());
        }
    }
    if new.facts.not_after.as_second() != item.new_not_after.as_second()
        || new.facts.not_before.as_second() != item.new_not_before.as_second()
    {
        return Err("validity differs from the plan".into());
    }
    Ok(())
}

fn item_sans(old: &X509Certificate<'_>) -> Vec<String> {
    Cert::from_der(Path::new(""), old.as_raw().to_vec())
        .map(|c| c.facts.sans)
        .unwrap_or_default()
}

/// What `apply` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Where the old files are.
    pub backup_dir: PathBuf,
    /// The files backed up (original path → backup path).
    pub backups: Vec<(PathBuf, PathBuf)>,
    /// The files replaced.
    pub written: Vec<PathBuf>,
    /// New serial numbers by certificate name.
    pub serials: BTreeMap<String, String>,
}

/// Backs up every file the plan replaces into the plan's backup directory, then replaces
/// them atomically, keeping each file's mode and owner (new key files 0600). If a write
/// fails, the files already replaced are restored from the backup.
pub fn apply(inv: &Inventory, plan: &RenewPlan, signed: Signed) -> Result<Applied> {
    kastellan_kubeadm::fs::create_private_dir(&plan.backup_dir)?;
    let mut backups = Vec::new();
    let mut targets = Vec::new();
    for w in &signed.writes {
        // Write through symlinks (kubelet-style *-current.pem) to the real file.
        let real = std::fs::canonicalize(&w.path).map_err(|source| Error::Read {
            path: w.path.clone(),
            source,
        })?;
        let to = plan
            .backup_dir
            .join(layout::backup_relative(&inv.layout, &w.path));
        kastellan_kubeadm::fs::backup_copy(&real, &to)?;
        backups.push((w.path.clone(), to));
        targets.push(real);
    }
    let mut written: Vec<PathBuf> = Vec::new();
    for (i, w) in signed.writes.iter().enumerate() {
        let real = &targets[i];
        let own = kastellan_kubeadm::fs::ownership(real)?;
        let mode = w.mode.or(own.map(|o| o.mode)).unwrap_or(0o600);
        if let Err(e) = kastellan_kubeadm::fs::write_owned(real, &w.data, mode, own) {
            for (j, done) in written.iter().enumerate() {
                let _ = (|| -> Result<()> {
                    let (_, backup) = &backups[j];
                    let data = std::fs::read(backup).map_err(|source| Error::Read {
                        path: backup.clone(),
                        source,
                    })?;
                    let own = kastellan_kubeadm::fs::ownership(backup)?;
                    Ok(kastellan_kubeadm::fs::write_owned(
                        done,
                        &data,
                        own.map_or(0o600, |o| o.mode),
                        own,
                    )?)
                })();
            }
            return Err(Error::Apply {
                path: w.path.clone(),
                backup_dir: plan.backup_dir.clone(),
                source: Box::new(e.into()),
            });
        }
        written.push(real.clone());
    }
    Ok(Applied {
        backup_dir: plan.backup_dir.clone(),
        backups,
        written,
        serials: signed.serials,
    })
}

/// The report of `certs renew`: the plan, and what was done.
#[derive(Debug, Clone, Serialize)]
pub struct RenewReport {
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// The plan.
    pub plan: RenewPlan,
    /// The executor's steps, described by the actions that run (what a dry run shows
    /// is what runs).
    pub steps: Vec<kastellan_exec::Described>,
    /// The executor's plan: `--dry-run -o json` saved to a file is applied later with
    /// `--plan FILE` while the node's facts are unchanged. It holds no key material.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec_plan: Option<crate::steps::ExecPlan>,
    /// The run's journal (after a run: where it was archived).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<PathBuf>,
    /// What was written, unless a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
    /// What `--restart` did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarted: Option<RestartOutcome>,
    /// The static pod manifests directory (for the restart advice).
    pub manifests_dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_kubeadms() {
        assert_eq!(VALIDITY.as_secs(), 365 * 86400);
    }

    #[test]
    fn serials_are_positive_and_distinct() {
        let a = random_serial("x").unwrap();
        let b = random_serial("x").unwrap();
        assert_ne!(a, b);
        assert!(a[0] < 0x80 && a[0] > 0);
    }

    #[test]
    fn new_rsa_keys_come_out_as_pkcs1() {
        let k =
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let pem = encode_key("t", &k, KeyFormat::Pkcs1).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let (back, format) = load_key_pair(Path::new("k"), pem.as_bytes()).unwrap();
        assert_eq!(format, KeyFormat::Pkcs1);
        assert_eq!(back.der_bytes(), k.der_bytes());
        let again = generate_like("t", &back).unwrap();
        assert_eq!(again.algorithm(), &rcgen::PKCS_RSA_SHA256);
        assert_eq!(pem::rsa_modulus_bits(again.der_bytes()), 2048);
    }
}

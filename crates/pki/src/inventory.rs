//! Reading a node's certificates from disk into an [`Inventory`]: the I/O boundary of
//! `check` and `renew`. Everything after this works on the loaded values.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kubeconfig::{self, ClientCredentials, Credential};
use crate::layout::{self, CaId, Layout, Source, Spec};
use crate::x509::Cert;

/// Everything found on one node.
#[derive(Debug)]
pub struct Inventory {
    /// The directories that were read.
    pub layout: Layout,
    /// The CAs, in [`layout::AUTHORITIES`] order.
    pub authorities: Vec<Entry>,
    /// The other certificates, in [`layout::CERTIFICATES`] order.
    pub certificates: Vec<Entry>,
}

/// One catalogue entry and what was found for it.
#[derive(Debug)]
pub struct Entry {
    /// The catalogue entry.
    pub spec: &'static Spec,
    /// What was found.
    pub state: State,
}

/// What was found for an entry.
#[derive(Debug)]
pub enum State {
    /// The file does not exist.
    Absent {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// The file exists but could not be read or parsed.
    Broken(Error),
    /// The certificate was read.
    Present(Box<Found>),
}

/// A certificate that was read, and where its parts are.
#[derive(Debug)]
pub struct Found {
    /// The certificate.
    pub cert: Cert,
    /// Further certificates in the same file (a bundled issuer).
    pub chain: Vec<Cert>,
    /// The file that holds the certificate: a `.crt`/`.pem`, or the kubeconfig when embedded.
    pub cert_file: PathBuf,
    /// The file that holds the private key, if known.
    pub key_file: Option<PathBuf>,
    /// For kubeconfig entries: the kubeconfig file and its current user's credentials.
    pub kubeconfig: Option<(PathBuf, ClientCredentials)>,
}

impl Entry {
    /// The found certificate, if any.
    pub fn found(&self) -> Option<&Found> {
        match &self.state {
            State::Present(f) => Some(f),
            _ => None,
        }
    }
}

impl Inventory {
    /// Reads every catalogue entry under `layout`. Missing files become
    /// [`State::Absent`], unreadable ones [`State::Broken`]; this never fails as a whole.
    pub fn load(layout: &Layout) -> Inventory {
        let load = |spec: &'static Spec| Entry {
            spec,
            state: load_entry(layout, spec),
        };
        Inventory {
            layout: layout.clone(),
            authorities: layout::AUTHORITIES.iter().map(load).collect(),
            certificates: layout::CERTIFICATES.iter().map(load).collect(),
        }
    }

    /// The loaded CA certificate, if present and readable.
    pub fn authority(&self, ca: CaId) -> Option<&Found> {
        self.authorities
            .iter()
            .find(|e| e.spec.name == ca.name())
            .and_then(Entry::found)
    }

    /// Whether the CA's private key file exists (kubeadm's test for "not externally managed").
    pub fn ca_key_present(&self, ca: CaId) -> bool {
        self.layout.key(ca.base()).exists()
    }

    /// Every entry, CAs first.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.authorities.iter().chain(self.certificates.iter())
    }

    /// The entry of a catalogue name.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries().find(|e| e.spec.name == name)
    }
}

/// Reads a file, telling "absent" apart from other failures.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn load_entry(layout: &Layout, spec: &Spec) -> State {
    match try_load(layout, spec) {
        Ok(Some(found)) => State::Present(Box::new(found)),
        Ok(None) => State::Absent {
            path: primary_path(layout, spec),
        },
        Err(e) => State::Broken(e),
    }
}

/// The file whose absence means the entry is absent.
pub fn primary_path(layout: &Layout, spec: &Spec) -> PathBuf {
    match spec.source {
        Source::Pki { base } => layout.crt(base),
        Source::Kubeconfig { file } => layout.kubeconfig(file),
        Source::KubeletClient => layout.kubelet("kubelet-client-current.pem"),
        Source::KubeletServing => {
            let rotated = layout.kubelet("kubelet-server-current.pem");
            if rotated.exists() {
                rotated
            } else {
                layout.kubelet("kubelet.crt")
            }
        }
    }
}

fn try_load(layout: &Layout, spec: &Spec) -> Result<Option<Found>> {
    let path = primary_path(layout, spec);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    match spec.source {
        Source::Pki { base } => {
            let (cert, chain) = Cert::from_pem(&path, &bytes)?;
            Ok(Some(Found {
                cert,
                chain,
                cert_file: path,
                key_file: Some(layout.key(base)),
                kubeconfig: None,
            }))
        }
        Source::KubeletClient => {
            let (cert, chain) = Cert::from_pem(&path, &bytes)?;
            Ok(Some(Found {
                cert,
                chain,
                key_file: Some(path.clone()),
                cert_file: path,
                kubeconfig: None,
            }))
        }
        Source::KubeletServing => {
            let (cert, chain) = Cert::from_pem(&path, &bytes)?;
            let key_file = if path.ends_with("kubelet.crt") {
                layout.kubelet("kubelet.key")
            } else {
                path.clone()
            };
            Ok(Some(Found {
                cert,
                chain,
                cert_file: path,
                key_file: Some(key_file),
                kubeconfig: None,
            }))
        }
        Source::Kubeconfig { .. } => {
            let text = String::from_utf8(bytes).map_err(|_| Error::Kubeconfig {
                path: path.clone(),
                detail: "not UTF-8 text".into(),
            })?;
            let creds = kubeconfig::client_credentials(&path, &text)?;
            let (cert, chain, cert_file) = match &creds.certificate {
                Credential::Embedded { pem, .. } => {
                    let (cert, chain) = Cert::from_pem(&path, pem)?;
                    (cert, chain, path.clone())
                }
                Credential::File(file) => {
                    let bytes = std::fs::read(file).map_err(|source| Error::Read {
                        path: file.clone(),
                        source,
                    })?;
                    let (cert, chain) = Cert::from_pem(file, &bytes)?;
                    (cert, chain, file.clone())
                }
            };
            let key_file = match &creds.key {
                Some(Credential::Embedded { .. }) => Some(path.clone()),
                Some(Credential::File(f)) => Some(f.clone()),
                None => None,
            };
            Ok(Some(Found {
                cert,
                chain,
                cert_file,
                key_file,
                kubeconfig: Some((path, creds)),
            }))
        }
    }
}

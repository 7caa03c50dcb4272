//! Where a kubeadm node keeps its certificates and kubeconfigs, and which certificate is
//! which: a fixed catalogue, free of I/O. [`SHARED`] lists the files that every
//! control-plane node of a cluster holds alike.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::Component;

/// The three directories a kubeadm node keeps certificates in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// The PKI directory (`certificatesDir`), default `/etc/kubernetes/pki`.
    pub cert_dir: PathBuf,
    /// Where the kubeconfig files are, default `/etc/kubernetes`.
    pub kubeconfig_dir: PathBuf,
    /// The kubelet's own certificates, default `/var/lib/kubelet/pki`.
    pub kubelet_pki_dir: PathBuf,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            cert_dir: PathBuf::from("/etc/kubernetes/pki"),
            kubeconfig_dir: PathBuf::from("/etc/kubernetes"),
            kubelet_pki_dir: PathBuf::from("/var/lib/kubelet/pki"),
        }
    }
}

/// The certificate authorities of a kubeadm cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CaId {
    /// The cluster CA (`ca.crt`).
    #[serde(rename = "ca")]
    Ca,
    /// The etcd CA (`etcd/ca.crt`).
    #[serde(rename = "etcd-ca")]
    EtcdCa,
    /// The front-proxy CA (`front-proxy-ca.crt`).
    #[serde(rename = "front-proxy-ca")]
    FrontProxyCa,
}

impl CaId {
    /// Every CA, in kubeadm's (alphabetical) order.
    pub const ALL: [CaId; 3] = [CaId::Ca, CaId::EtcdCa, CaId::FrontProxyCa];

    /// kubeadm's name for it (`ca`, `etcd-ca`, `front-proxy-ca`).
    pub const fn name(self) -> &'static str {
        match self {
            CaId::Ca => "ca",
            CaId::EtcdCa => "etcd-ca",
            CaId::FrontProxyCa => "front-proxy-ca",
        }
    }

    /// The file base name under the PKI directory (`etcd/ca` for the etcd CA).
    pub const fn base(self) -> &'static str {
        match self {
            CaId::Ca => "ca",
            CaId::EtcdCa => "etcd/ca",
            CaId::FrontProxyCa => "front-proxy-ca",
        }
    }
}

/// What sort of certificate an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A certificate authority.
    Authority,
    /// A leaf certificate with its key beside it in the PKI directory.
    Leaf,
    /// A client certificate inside a kubeconfig file.
    Kubeconfig,
    /// A certificate the kubelet manages itself under its PKI directory.
    Kubelet,
}

/// Where an entry's certificate (and key) live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `<cert_dir>/<base>.crt` and `<cert_dir>/<base>.key`.
    Pki {
        /// The base name, e.g. `apiserver` or `etcd/server`.
        base: &'static str,
    },
    /// The current user's client certificate of `<kubeconfig_dir>/<file>`.
    Kubeconfig {
        /// The file name, e.g. `admin.conf`.
        file: &'static str,
    },
    /// `<kubelet_pki_dir>/kubelet-client-current.pem` (certificate and key in one file).
    KubeletClient,
    /// `<kubelet_pki_dir>/kubelet-server-current.pem` when serving certificates are
    /// rotated, otherwise the self-signed `kubelet.crt`.
    KubeletServing,
}

/// One certificate a kubeadm node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// kubeadm's name for it (`apiserver`, `admin.conf`, ...) or kastellan's for those
    /// kubeadm does not list (`kubelet.conf`, `kubelet-client`, `kubelet-serving`).
    pub name: &'static str,
    /// What sort it is.
    pub kind: Kind,
    /// Where it lives.
    pub source: Source,
    /// The CA expected to sign it (`None` for CAs and for the kubelet's serving certificate).
    pub ca: Option<CaId>,
    /// Whether its absence is normal (super-admin.conf before 1.29, kubelet files).
    pub optional: bool,
    /// Whether `renew` handles it (like `kubeadm certs renew`, plus super-admin.conf).
    pub renewable: bool,
    /// The component to restart after renewing it.
    pub restart: Option<Component>,
}

const fn leaf(
    name: &'static str,
    base: &'static str,
    ca: CaId,
    restart: Option<Component>,
) -> Spec {
    Spec {
        name,
        kind: Kind::Leaf,
        source: Source::Pki { base },
        ca: Some(ca),
        optional: false,
        renewable: true,
        restart,
    }
}

const fn conf(
    name: &'static str,
    optional: bool,
    renewable: bool,
    restart: Option<Component>,
) -> Spec {
    Spec {
        name,
        kind: Kind::Kubeconfig,
        source: Source::Kubeconfig { file: name },
        ca: Some(CaId::Ca),
        optional,
        renewable,
        restart,
    }
}

const fn authority(ca: CaId) -> Spec {
    Spec {
        name: ca.name(),
        kind: Kind::Authority,
        source: Source::Pki { base: ca.base() },
        ca: None,
        optional: false,
        renewable: false,
        restart: None,
    }
}

/// The CAs, in kubeadm's order.
pub const AUTHORITIES: [Spec; 3] = [
    authority(CaId::Ca),
    authority(CaId::EtcdCa),
    authority(CaId::FrontProxyCa),
];

/// Every non-CA certificate, sorted by name as `kubeadm certs check-expiration` lists them.
pub const CERTIFICATES: [Spec; 14] = [
    conf("admin.conf", false, true, None),
    leaf(
        "apiserver",
        "apiserver",
        CaId::Ca,
        Some(Component::KubeApiserver),
    ),
    leaf(
        "apiserver-etcd-client",
        "apiserver-etcd-client",
        CaId::EtcdCa,
        Some(Component::KubeApiserver),
    ),
    leaf(
        "apiserver-kubelet-client",
        "apiserver-kubelet-client",
        CaId::Ca,
        Some(Component::KubeApiserver),
    ),
    conf(
        "controller-manager.conf",
        false,
        true,
        Some(Component::KubeControllerManager),
    ),
    leaf(
        "etcd-healthcheck-client",
        "etcd/healthcheck-client",
        CaId::EtcdCa,
        None,
    ),
    leaf(
        "etcd-peer",
        "etcd/peer",
        CaId::EtcdCa,
        Some(Component::Etcd),
    ),
    leaf(
        "etcd-server",
        "etcd/server",
        CaId::EtcdCa,
        Some(Component::Etcd),
    ),
    leaf(
        "front-proxy-client",
        "front-proxy-client",
        CaId::FrontProxyCa,
        Some(Component::KubeApiserver),
    ),
    Spec {
        name: "kubelet-client",
        kind: Kind::Kubelet,
        source: Source::KubeletClient,
        ca: Some(CaId::Ca),
        optional: true,
        renewable: false,
        restart: None,
    },
    Spec {
        name: "kubelet-serving",
        kind: Kind::Kubelet,
        source: Source::KubeletServing,
        ca: None,
        optional: true,
        renewable: false,
        restart: None,
    },
    conf("kubelet.conf", true, false, None),
    conf(
        "scheduler.conf",
        false,
        true,
        Some(Component::KubeScheduler),
    ),
    conf("super-admin.conf", true, true, None),
];

/// Every known certificate, CAs first.
pub fn catalogue() -> impl Iterator<Item = &'static Spec> {
    AUTHORITIES.iter().chain(CERTIFICATES.iter())
}

/// Looks a certificate up by kubeadm's name, or by its file's base name
/// (`etcd/server`, `etcd-server`, `admin.conf`, `admin`).
pub fn find(name: &str) -> Option<&'static Spec> {
    let name = name.trim();
    catalogue().find(|s| {
        s.name == name
            || matches!(s.source, Source::Pki { base } if base == name)
            || matches!(s.source, Source::Kubeconfig { file } if file.strip_suffix(".conf") == Some(name))
    })
}

/// Why a catalogue entry is not renewed, for messages and plans.
pub fn not_renewable_reason(spec: &Spec) -> &'static str {
    match spec.kind {
        Kind::Authority => {
            "CA certificates are not renewed (kubeadm does not renew them either); rotating a CA is a separate procedure"
        }
        Kind::Kubelet | Kind::Kubeconfig => {
            "managed by the kubelet's own certificate rotation (kubeadm excludes it too)"
        }
        Kind::Leaf => "not renewable",
    }
}

impl Layout {
    /// `<cert_dir>/<base>.crt`.
    pub fn crt(&self, base: &str) -> PathBuf {
        self.cert_dir.join(format!("{base}.crt"))
    }

    /// `<cert_dir>/<base>.key`.
    pub fn key(&self, base: &str) -> PathBuf {
        self.cert_dir.join(format!("{base}.key"))
    }

    /// The certificate and key paths of a CA.
    pub fn ca_paths(&self, ca: CaId) -> (PathBuf, PathBuf) {
        (self.crt(ca.base()), self.key(ca.base()))
    }

    /// A kubeconfig file.
    pub fn kubeconfig(&self, file: &str) -> PathBuf {
        self.kubeconfig_dir.join(file)
    }

    /// A file under the kubelet's PKI directory.
    pub fn kubelet(&self, file: &str) -> PathBuf {
        self.kubelet_pki_dir.join(file)
    }

    /// Default place for backups: `<kubeconfig_dir>/tmp`, where kubeadm keeps its own.
    pub fn backup_root(&self) -> PathBuf {
        self.kubeconfig_dir.join("tmp")
    }
}

/// The PKI files (relative to the PKI directory) that every control-plane node of a
/// cluster holds alike: the three CAs and the service-account key pair. kubeadm copies
/// them to each control plane that joins (`--upload-certs` or by hand); every other
/// certificate is the node's own.
pub const SHARED: [&str; 8] = [
    "ca.crt",
    "ca.key",
    "sa.key",
    "sa.pub",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
];

/// Whether `relative` (a path under the PKI directory) is one of [`SHARED`].
pub fn is_shared(relative: &Path) -> bool {
    SHARED.iter().any(|s| Path::new(s) == relative)
}

/// The mode kubeadm gives a PKI file: 0600 for keys, 0644 for certificates.
pub fn file_mode(relative: &Path) -> u32 {
    if relative.extension().is_some_and(|x| x == "key") {
        0o600
    } else {
        0o644
    }
}

/// The kubeconfig files kubeadm writes into `/etc/kubernetes` on a control plane
/// (`kubelet.conf` also on workers; `super-admin.conf` from 1.29).
pub const KUBECONFIGS: [&str; 5] = [
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
    "kubelet.conf",
];

/// The path of a file relative to one of the layout's directories, for mirroring it
/// inside a backup directory (`pki/etcd/server.crt`, `admin.conf`, `kubelet/...`).
pub fn backup_relative(layout: &Layout, path: &Path) -> PathBuf {
    if let Ok(rel) = path.strip_prefix(&layout.cert_dir) {
        return Path::new("pki").join(rel);
    }
    if let Ok(rel) = path.strip_prefix(&layout.kubeconfig_dir) {
        return rel.to_path_buf();
    }
    if let Ok(rel) = path.strip_prefix(&layout.kubelet_pki_dir) {
        return Path::new("kubelet-pki").join(rel);
    }
    let flat: String = path
        .to_string_lossy()
        .trim_start_matches('/')
        .replace('/', "_");
    Path::new("other").join(flat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_sorted_and_unique() {
        let names: Vec<&str> = CERTIFICATES.iter().map(|s| s.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert_eq!(catalogue().count(), 17);
    }

    #[test]
    fn finds_by_kubeadm_name_and_file_name() {
        assert_eq!(find("etcd-server").map(|s| s.name), Some("etcd-server"));
        assert_eq!(find("etcd/server").map(|s| s.name), Some("etcd-server"));
        assert_eq!(find("admin").map(|s| s.name), Some("admin.conf"));
        assert_eq!(find("etcd/ca").map(|s| s.name), Some("etcd-ca"));
        assert!(find("nope").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn backup_paths_mirror_the_layout() {
        let l = Layout::default();
        assert_eq!(
            backup_relative(&l, &l.crt("etcd/server")),
            PathBuf::from("pki/etcd/server.crt")
        );
        assert_eq!(
            backup_relative(&l, &l.kubeconfig("admin.conf")),
            PathBuf::from("admin.conf")
        );
        assert_eq!(
            backup_relative(&l, Path::new("/srv/x.crt")),
            PathBuf::from("other/srv_x.crt")
        );
    }
}

//! Finding etcd's endpoints and client certificates on a kubeadm control-plane node.
//!
//! kubeadm writes etcd's static pod manifest (`/etc/kubernetes/manifests/etcd.yaml`)
//! with `--advertise-client-urls`, `--listen-client-urls` and `--trusted-ca-file`, and
//! puts a client certificate for health checks, `healthcheck-client.crt`, next to etcd's
//! CA. When that certificate is missing (or there is no local etcd, as with an external
//! etcd), the kube-apiserver manifest names the apiserver's own client certificate and
//! the servers: `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`, `--etcd-servers`.
//!
//! Paths in the manifests are the node's (`/etc/kubernetes/pki/...`). When the manifests
//! are read from another place (a lab node's directory seen from the host, a copy in a
//! test), [`Discovery::etc_kubernetes`] says where `/etc/kubernetes` really is, and paths
//! below `/etc/kubernetes/` are rewritten to it.

use std::path::{Path, PathBuf};

use kastellan_kubeadm::Flags as CommandLine;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::target::{Target, TlsFiles, split_endpoints};

/// kubeadm's directory of static pod manifests.
pub use kastellan_kubeadm::manifest::DEFAULT_MANIFESTS_DIR;
/// kubeadm's configuration directory, as paths in the manifests spell it.
pub const ETC_KUBERNETES: &str = "/etc/kubernetes";

/// Where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The static pod manifest directory (holds `etcd.yaml`, `kube-apiserver.yaml`).
    pub manifests_dir: PathBuf,
    /// Where the node's `/etc/kubernetes` is; paths in the manifests below
    /// `/etc/kubernetes/` are rewritten to it.
    pub etc_kubernetes: PathBuf,
}

impl Discovery {
    /// Looks in `manifests_dir`, taking its parent directory as `/etc/kubernetes`.
    pub fn new(manifests_dir: impl Into<PathBuf>) -> Discovery {
        let manifests_dir = manifests_dir.into();
        let etc_kubernetes = manifests_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(ETC_KUBERNETES));
        Discovery {
            manifests_dir,
            etc_kubernetes,
        }
    }

    /// Looks in `<etc_kubernetes>/manifests`.
    pub fn in_etc_kubernetes(etc_kubernetes: impl Into<PathBuf>) -> Discovery {
        let etc_kubernetes = etc_kubernetes.into();
        Discovery {
            manifests_dir: etc_kubernetes.join("manifests"),
            etc_kubernetes,
        }
    }

    /// The node path `p` as seen from here.
    pub fn remap(&self, p: &str) -> PathBuf {
        match p.strip_prefix("/etc/kubernetes/") {
            Some(rest) if self.etc_kubernetes != Path::new(ETC_KUBERNETES) => {
                self.etc_kubernetes.join(rest)
            }
            _ => PathBuf::from(p),
        }
    }
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery::new(DEFAULT_MANIFESTS_DIR)
    }
}

/// What the user gave on the command line; what is missing is discovered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--endpoints` (empty when not given).
    pub endpoints: Vec<String>,
    /// `--cacert --cert --key`.
    pub tls: Option<TlsFiles>,
}

/// Where the endpoints and the certificates came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "from", content = "path")]
pub enum Source {
    /// Command-line flags.
    Flags,
    /// etcd's static pod manifest (certificate: `healthcheck-client`).
    EtcdManifest(PathBuf),
    /// kube-apiserver's static pod manifest (certificate: `apiserver-etcd-client`).
    ApiserverManifest(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flags => f.write_str("flags"),
            Source::EtcdManifest(p) => write!(f, "{}", p.display()),
            Source::ApiserverManifest(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The result of discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discovered {
    /// What to connect to.
    pub target: Target,
    /// Where the endpoints came from.
    pub endpoints_from: Source,
    /// Where the certificates came from (`Flags` also when none are needed).
    pub tls_from: Source,
}

impl Discovered {
    /// Whether the endpoints were discovered rather than given: then the members' other
    /// client URLs (from the member list) are candidates as well.
    pub fn endpoints_discovered(&self) -> bool {
        self.endpoints_from != Source::Flags
    }
}

/// Resolves the target: flags win, what they leave open comes from the manifests.
pub fn discover(flags: Flags, at: &Discovery) -> Result<Discovered> {
    let need_tls = flags.tls.is_none()
        && (flags.endpoints.is_empty() || flags.endpoints.iter().any(|e| e.starts_with("https")));
    if !flags.endpoints.is_empty() && !need_tls {
        return Ok(Discovered {
            target: Target::new(flags.endpoints, flags.tls)?,
            endpoints_from: Source::Flags,
            tls_from: Source::Flags,
        });
    }
    let found = from_manifests(at)?;
    let (endpoints, endpoints_from) = if flags.endpoints.is_empty() {
        (found.target.endpoints, found.endpoints_from)
    } else {
        (flags.endpoints, Source::Flags)
    };
    let (tls, tls_from) = match flags.tls {
        Some(t) => (Some(t), Source::Flags),
        None => (found.target.tls, found.tls_from),
    };
    Ok(Discovered {
        target: Target::new(endpoints, tls)?,
        endpoints_from,
        tls_from,
    })
}

/// Reads the manifests only.
pub fn from_manifests(at: &Discovery) -> Result<Discovered> {
    use kastellan_kubeadm::{Component, StaticPod};
    let read = |c: Component| -> Result<Option<(PathBuf, CommandLine)>> {
        let path = at.manifests_dir.join(c.manifest());
        let Some(pod) = StaticPod::read(&path).map_err(node_error)? else {
            return Ok(None);
        };
        let flags = pod.flags(c.name()).map_err(node_error)?;
        Ok(Some((path, flags)))
    };
    let etcd = read(Component::Etcd)?;
    let api = read(Component::KubeApiserver)?;
    plan(
        etcd.as_ref().map(|(p, f)| (p.as_path(), f)),
        api.as_ref().map(|(p, f)| (p.as_path(), f)),
        at,
        &|p: &Path| p.is_file(),
    )
}

/// A manifest that cannot be read or parsed, as this crate's error.
fn node_error(e: kastellan_kubeadm::Error) -> Error {
    match e {
        kastellan_kubeadm::Error::Read { path, source } => Error::ReadManifest { path, source },
        kastellan_kubeadm::Error::Manifest { path, detail } => Error::Manifest {
            path,
            message: detail,
        },
        other => Error::Manifest {
            path: PathBuf::new(),
            message: other.to_string(),
        },
    }
}

/// The pure decision, given the parsed command lines and a file-existence probe.
fn plan(
    etcd: Option<(&Path, &CommandLine)>,
    api: Option<(&Path, &CommandLine)>,
    at: &Discovery,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Discovered> {
    let missing = |path: &Path, flag: &str| Error::Manifest {
        path: path.to_path_buf(),
        message: format!("no {flag} flag in the etcd container's command"),
    };
    // Endpoints and the healthcheck-client certificate from etcd's manifest.
    let mut endpoints = None;
    let mut tls = None;
    if let Some((path, args)) = etcd {
        let urls = args
            .get("advertise-client-urls")
            .map(str::to_string)
            .or_else(|| args.get("listen-client-urls").map(str::to_string))
            .ok_or_else(|| missing(path, "--advertise-client-urls"))?;
        endpoints = Some((
            split_endpoints(&urls),
            Source::EtcdManifest(path.to_path_buf()),
        ));
        if let Some(ca) = args.get("trusted-ca-file").map(str::to_string) {
            let ca = at.remap(&ca);
            let dir = ca.parent().map(Path::to_path_buf).unwrap_or_default();
            let cert = dir.join("healthcheck-client.crt");
            let key = dir.join("healthcheck-client.key");
            if exists(&cert) && exists(&key) {
                tls = Some((
                    TlsFiles { ca, cert, key },
                    Source::EtcdManifest(path.to_path_buf()),
                ));
            }
        }
    }
    // The apiserver's client certificate (and its servers, for an external etcd).
    if let Some((path, args)) = api {
        if tls.is_none()
            && let (Some(ca), Some(cert), Some(key)) = (
                args.get("etcd-cafile").map(str::to_string),
                args.get("etcd-certfile").map(str::to_string),
                args.get("etcd-keyfile").map(str::to_string),
            )
        {
            tls = Some((
                TlsFiles {
                    ca: at.remap(&ca),
                    cert: at.remap(&cert),
                    key: at.remap(&key),
                },
                Source::ApiserverManifest(path.to_path_buf()),
            ));
        }
        if endpoints.is_none()
            && let Some(servers) = args.get("etcd-servers").map(str::to_string)
        {
            endpoints = Some((
                split_endpoints(&servers),
                Source::ApiserverManifest(path.to_path_buf()),
            ));
        }
    }
    let Some((endpoints, endpoints_from)) = endpoints else {
        return Err(Error::NothingDiscovered {
            etcd: at.manifests_dir.join("etcd.yaml"),
            apiserver: at.manifests_dir.join("kube-apiserver.yaml"),
        });
    };
    let (tls, tls_from) = match tls {
        Some((t, s)) => (Some(t), s),
        None => (None, endpoints_from.clone()),
    };
    Ok(Discovered {
        target: Target::new(endpoints, tls)?,
        endpoints_from,
        tls_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETCD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://10.77.0.11:2379
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.77.0.11:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --listen-client-urls=https://127.0.0.1:2379,https://10.77.0.11:2379
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: k8s.gcr.io/etcd:3.4.13-0
    name: etcd
  hostNetwork: true
"#;

    const API: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
spec:
  containers:
  - name: kube-apiserver
    command:
    - kube-apiserver
    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt
    - --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt
    - --etcd-keyfile
    - /etc/kubernetes/pki/apiserver-etcd-client.key
    - --etcd-servers=https://127.0.0.1:2379
"#;

    fn args(m: &str, n: &str) -> CommandLine {
        kastellan_kubeadm::StaticPod::parse(Path::new("/m/x.yaml"), m.into())
            .unwrap()
            .flags(n)
            .unwrap()
    }

    #[test]
    fn reads_flags_both_ways() {
        let a = args(API, "kube-apiserver");
        assert_eq!(
            a.get("etcd-keyfile"),
            Some("/etc/kubernetes/pki/apiserver-etcd-client.key")
        );
        assert_eq!(a.get("etcd-servers"), Some("https://127.0.0.1:2379"));
        assert_eq!(a.get("etcd"), None);
    }

    #[test]
    fn prefers_healthcheck_client_next_to_the_ca() {
        let at = Discovery::default();
        let e = args(ETCD, "etcd");
        let a = args(API, "kube-apiserver");
        let d = plan(
            Some((Path::new("/m/etcd.yaml"), &e)),
            Some((Path::new("/m/kube-apiserver.yaml"), &a)),
            &at,
            &|_| true,
        )
        .unwrap();
        assert_eq!(d.target.endpoints, vec!["https://10.77.0.11:2379"]);
        let tls = d.target.tls.unwrap();
        assert_eq!(
            tls.cert,
            Path::new("/etc/kubernetes/pki/etcd/healthcheck-client.crt")
        );
        assert!(matches!(d.tls_from, Source::EtcdManifest(_)));
    }

    #[test]
    fn falls_back_to_the_apiserver_certificate_and_remaps() {
        let at = Discovery::new("/lab/cp1/etc-kubernetes/manifests");
        let e = args(ETCD, "etcd");
        let a = args(API, "kube-apiserver");
        let d = plan(
            Some((Path::new("/m/etcd.yaml"), &e)),
            Some((Path::new("/m/kube-apiserver.yaml"), &a)),
            &at,
            &|_| false,
        )
        .unwrap();
        let tls = d.target.tls.unwrap();
        assert_eq!(tls.ca, Path::new("/lab/cp1/etc-kubernetes/pki/etcd/ca.crt"));
        assert_eq!(
            tls.key,
            Path::new("/lab/cp1/etc-kubernetes/pki/apiserver-etcd-client.key")
        );
        assert!(matches!(d.tls_from, Source::ApiserverManifest(_)));
        assert!(matches!(d.endpoints_from, Source::EtcdManifest(_)));
    }

    #[test]
    fn external_etcd_from_the_apiserver_alone() {
        let a = args(API, "kube-apiserver");
        let d = plan(
            None,
            Some((Path::new("/m/kube-apiserver.yaml"), &a)),
            &Discovery::default(),
            &|_| true,
        )
        .unwrap();
        assert_eq!(d.target.endpoints, vec!["https://127.0.0.1:2379"]);
        assert!(d.endpoints_discovered());
    }

    #[test]
    fn nothing_found_names_both_files() {
        let err = plan(None, None, &Discovery::default(), &|_| true).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/etc/kubernetes/manifests/etcd.yaml"), "{msg}");
        assert!(msg.contains("kube-apiserver.yaml"), "{msg}");
    }

    #[test]
    fn flags_win_and_skip_the_files() {
        let d = discover(
            Flags {
                endpoints: vec!["http://127.0.0.1:1".into()],
                tls: None,
            },
            &Discovery::new("/nonexistent/manifests"),
        )
        .unwrap();
        assert_eq!(d.endpoints_from, Source::Flags);
        assert!(!d.endpoints_discovered());
    }

    #[test]
    fn bad_manifest_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifests");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("etcd.yaml"), "spec:\n  containers: []\n").unwrap();
        let err = from_manifests(&Discovery::new(&m)).unwrap_err().to_string();
        assert!(err.contains("etcd.yaml"), "{err}");
        // A single container is taken whatever its name (some distributions rename it).
        let renamed = ETCD
            .replace("name: etcd\n  hostNetwork", "name: main\n  hostNetwork")
            .replace("https://", "http://");
        std::fs::write(m.join("etcd.yaml"), renamed).unwrap();
        let d = from_manifests(&Discovery::new(&m)).unwrap();
        assert_eq!(d.target.endpoints, vec!["http://10.77.0.11:2379"]);
    }
}

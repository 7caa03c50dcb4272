//! The Kubernetes packages of a node, as its package manager sees them: installed,
//! candidate and held versions of kubeadm, kubelet and kubectl (dpkg/apt or rpm/dnf),
//! the configured Kubernetes package repository, and the OS.
//!
//! One shell script runs on the node (through node access) and prints tagged lines;
//! [`parse`] reads them. The script only reads: `dpkg-query`, `apt-cache policy`,
//! `apt-mark showhold`, `rpm -q`, the repository files and `/etc/os-release`.

use kastellan_policy::{Minor, Version};
use serde::{Deserialize, Serialize};

/// The packages whose versions an upgrade pins.
pub const PACKAGES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];

/// The script run on a node (by `sh -c`); it changes nothing.
pub const SCRIPT: &str = r#"
export LC_ALL=C
if [ -r /etc/os-release ]; then . /etc/os-release; echo "os	${PRETTY_NAME:-$NAME}"; fi
if command -v dpkg-query >/dev/null 2>&1; then
  echo "manager	dpkg"
  for p in kubeadm kubelet kubectl; do
    v=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' "$p" 2>/dev/null)
    case "$v" in ?i*) echo "installed	$p	${v#*|}";; esac
    c=$(apt-cache policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
    [ -n "$c" ] && [ "$c" != "(none)" ] && echo "candidate	$p	$c"
  done
  apt-mark showhold 2>/dev/null | sed 's/^/held	/'
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] && grep -hiE '^[^#]*(kubernetes|k8s)' "$f" 2>/dev/null | sed "s|^|repo	$f	|"
  done
elif command -v rpm >/dev/null 2>&1; then
  echo "manager	rpm"
  for p in kubeadm kubelet kubectl; do
    v=$(rpm -q --qf '%{VERSION}-%{RELEASE}' "$p" 2>/dev/null) && echo "installed	$p	$v"
  done
  if [ -r /etc/dnf/plugins/versionlock.list ]; then
    grep -hE '^(kubeadm|kubelet|kubectl)-' /etc/dnf/plugins/versionlock.list | sed 's/-[0-9].*//; s/^/held	/'
  fi
  for f in /etc/yum.repos.d/*.repo; do
    [ -r "$f" ] && grep -hiE '^baseurl=.*(kubernetes|k8s)' "$f" | sed "s|^|repo	$f	|"
  done
else
  echo "manager	none"
fi
exit 0
"#;

/// One package on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    /// `kubeadm`, `kubelet` or `kubectl`.
    pub name: String,
    /// The installed package version (`1.20.2-00`), if installed.
    pub installed: Option<String>,
    /// The Kubernetes version it carries.
    pub version: Option<Version>,
    /// The version the configured repositories would install (`apt-cache policy`).
    pub candidate: Option<String>,
    /// Whether it is held (`apt-mark hold`, dnf versionlock).
    pub held: bool,
}

/// Which Kubernetes package repository a node uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Repository {
    /// `pkgs.k8s.io`: one repository per minor (current clusters).
    PerMinor {
        /// The minor it serves.
        minor: Minor,
        /// The file that configures it.
        file: String,
    },
    /// The frozen `apt.kubernetes.io` / `packages.cloud.google.com` repository.
    Legacy {
        /// The file that configures it.
        file: String,
    },
    /// Another repository mentioning Kubernetes (a mirror, a local repository).
    Other {
        /// The file that configures it.
        file: String,
        /// The line.
        line: String,
    },
}

/// The package facts of one node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePackages {
    /// The node.
    pub node: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os: Option<String>,
    /// `dpkg`, `rpm` or `none`.
    pub manager: Option<String>,
    /// kubeadm, kubelet, kubectl (installed or not).
    pub packages: Vec<Package>,
    /// The Kubernetes repositories configured.
    pub repositories: Vec<Repository>,
    /// Why the node could not be asked.
    pub error: Option<String>,
}

impl NodePackages {
    /// The package named `name`.
    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }
}

/// Reads the script's output for `node`.
pub fn parse(node: &str, output: &str) -> NodePackages {
    let mut out = NodePackages {
        node: node.to_string(),
        packages: PACKAGES
            .iter()
            .map(|n| Package {
                name: (*n).to_string(),
                installed: None,
                version: None,
                candidate: None,
                held: false,
            })
            .collect(),
        ..NodePackages::default()
    };
    for line in output.lines() {
        let mut f = line.splitn(3, '\t');
        let (tag, a, b) = (f.next(), f.next(), f.next());
        let pkg = |out: &mut NodePackages, name: &str| -> Option<usize> {
            out.packages.iter().position(|p| p.name == name)
        };
        match (tag, a, b) {
            (Some("os"), Some(os), None) => out.os = Some(os.trim().to_string()),
            (Some("manager"), Some(m), None) => out.manager = Some(m.trim().to_string()),
            (Some("installed"), Some(name), Some(v)) => {
                if let Some(i) = pkg(&mut out, name) {
                    let v = v.trim();
                    out.packages[i].installed = Some(v.to_string());
                    out.packages[i].version = Version::from_package(v).ok();
                }
            }
            (Some("candidate"), Some(name), Some(v)) => {
                if let Some(i) = pkg(&mut out, name) {
                    out.packages[i].candidate = Some(v.trim().to_string());
                }
            }
            (Some("held"), Some(name), None) => {
                if let Some(i) = pkg(&mut out, name.trim()) {
                    out.packages[i].held = true;
                }
            }
            (Some("repo"), Some(file), Some(l)) => {
                out.repositories.push(repository(file, l.trim()));
            }
            _ => {}
        }
    }
    out
}

/// Classifies one repository line of `file`.
pub fn repository(file: &str, line: &str) -> Repository {
    let file = file.to_string();
    if let Some(i) = line.find("pkgs.k8s.io/core:/stable:/v") {
        let rest = &line[i + "pkgs.k8s.io/core:/stable:/v".len()..];
        let minor: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        if let Ok(minor) = minor.parse::<Minor>() {
            return Repository::PerMinor { minor, file };
        }
    }
    if line.contains("apt.kubernetes.io") || line.contains("packages.cloud.google.com") {
        return Repository::Legacy { file };
    }
    Repository::Other {
        file,
        line: line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_debian_node() {
        let out = "os\tDebian GNU/Linux 12 (bookworm)\nmanager\tdpkg\n\
                   installed\tkubeadm\t1.28.3-1.1\ncandidate\tkubeadm\t1.28.15-1.1\n\
                   installed\tkubelet\t1.28.3-1.1\ncandidate\tkubelet\t1.28.3-1.1\n\
                   held\tkubeadm\nheld\tkubelet\nheld\tcontainerd\n\
                   repo\t/etc/apt/sources.list.d/kubernetes.list\tdeb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.28/deb/ /\n";
        let n = parse("cp1", out);
        assert_eq!(n.os.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(n.manager.as_deref(), Some("dpkg"));
        let kubeadm = n.package("kubeadm").unwrap();
        assert_eq!(kubeadm.installed.as_deref(), Some("1.28.3-1.1"));
        assert_eq!(kubeadm.version.as_ref().unwrap().to_string(), "v1.28.3");
        assert_eq!(kubeadm.candidate.as_deref(), Some("1.28.15-1.1"));
        assert!(kubeadm.held);
        let kubectl = n.package("kubectl").unwrap();
        assert_eq!(kubectl.installed, None);
        assert!(!kubectl.held);
        assert_eq!(
            n.repositories,
            [Repository::PerMinor {
                minor: "1.28".parse().unwrap(),
                file: "/etc/apt/sources.list.d/kubernetes.list".into()
            }]
        );
    }

    #[test]
    fn legacy_and_other_repositories() {
        assert!(matches!(
            repository("f", "deb https://apt.kubernetes.io/ kubernetes-xenial main"),
            Repository::Legacy { .. }
        ));
        assert!(matches!(
            repository("f", "baseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/"),
            Repository::PerMinor { minor, .. } if minor.to_string() == "1.30"
        ));
        assert!(matches!(
            repository("f", "deb file:/srv/k8s-mirror ./"),
            Repository::Other { .. }
        ));
    }

    /// The script on this host (Debian, where none of the packages is installed): it
    /// runs, names dpkg, and reports the real state of each package.
    #[test]
    fn the_script_runs_on_this_host() {
        if !std::path::Path::new("/usr/bin/dpkg-query").exists() {
            return;
        }
        let out = std::process::Command::new("sh")
            .args(["-c", SCRIPT])
            .output()
            .unwrap();
        assert!(out.status.success());
        let n = parse("host", &String::from_utf8_lossy(&out.stdout));
        assert_eq!(n.manager.as_deref(), Some("dpkg"));
        for p in &n.packages {
            let real = std::process::Command::new("dpkg-query")
                .args(["-W", "-f=${db:Status-Abbrev}", &p.name])
                .output()
                .unwrap();
            let installed = String::from_utf8_lossy(&real.stdout).starts_with("ii");
            assert_eq!(p.installed.is_some(), installed, "{p:?}");
        }
    }
}

//! The inventory file: the nodes kastellan reaches over ssh, as an alternative to the
//! API's node list.
//!
//! ```yaml
//! knownHostsFile: /var/lib/kastellan/lab/ssh/known_hosts   # optional
//! nodes:
//! - name: cp1                 # the Kubernetes Node name
//!   address: 10.77.0.11       # what ssh connects to (address or host name)
//!   role: control-plane       # or worker
//!   user: root                # optional: ssh's own choice otherwise
//!   port: 22                  # optional
//!   identityFile: /var/lib/kastellan/lab/ssh/id_ed25519   # optional
//! ```
//!
//! Relative file paths are read relative to the inventory's directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A node's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Runs the control plane (apiserver, controller-manager, scheduler, etcd).
    ControlPlane,
    /// Runs workloads only.
    Worker,
}

impl Role {
    /// How the inventory spells it: `control-plane` or `worker`.
    pub fn name(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        }
    }
}

/// One node of an inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryNode {
    /// The node's name (the Kubernetes Node name).
    pub name: String,
    /// What ssh connects to: an address or a host name.
    pub address: String,
    /// The login user; none: ssh's own choice.
    pub user: Option<String>,
    /// The ssh port; none: ssh's own choice.
    pub port: Option<u16>,
    /// The private key; none: ssh's own choice.
    pub identity_file: Option<PathBuf>,
    /// Its role.
    pub role: Role,
}

/// The nodes of an inventory file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The file it was read from (or will be written to).
    pub path: PathBuf,
    /// The known_hosts file for every node, if the inventory names one.
    pub known_hosts_file: Option<PathBuf>,
    /// The nodes, in the file's order.
    pub nodes: Vec<InventoryNode>,
}

/// The file as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawInventory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    known_hosts_file: Option<PathBuf>,
    #[serde(default)]
    nodes: Vec<RawNode>,
}

/// One node as written: every field optional here, so that a missing one is reported
/// with the node's name.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity_file: Option<PathBuf>,
}

/// A word without blanks that does not start with `-` (it becomes an argument of ssh).
fn plain_word(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('-') && !s.contains(char::is_whitespace)
}

impl Inventory {
    /// Reads and checks the inventory file at `path`.
    pub fn load(path: &Path) -> Result<Inventory> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Inventory {
            path: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        })?;
        Inventory::parse(&text, path)
    }

    /// Parses and checks an inventory's text; `path` names it in errors and anchors
    /// relative file paths.
    pub fn parse(text: &str, path: &Path) -> Result<Inventory> {
        let raw: RawInventory = serde_saphyr::from_str(text).map_err(|e| Error::Inventory {
            path: path.to_path_buf(),
            // The excerpt saphyr shows names the input `<input>`: name the file.
            message: e
                .to_string()
                .replace("<input>", &path.display().to_string()),
        })?;
        let base = path.parent().unwrap_or(Path::new("/"));
        let anchor = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        if raw.nodes.is_empty() {
            return Err(Error::Inventory {
                path: path.to_path_buf(),
                message: "lists no nodes (a `nodes:` list with name, address and role)".into(),
            });
        }
        let mut seen = BTreeSet::new();
        let mut nodes = Vec::new();
        for (i, n) in raw.nodes.into_iter().enumerate() {
            let bad = |node: &str, message: String| Error::InventoryNode {
                path: path.to_path_buf(),
                node: node.to_string(),
                message,
            };
            let Some(name) = n.name.filter(|s| !s.trim().is_empty()) else {
                return Err(bad(&format!("#{}", i + 1), "has no name".into()));
            };
            if !plain_word(&name) || name.contains('/') {
                return Err(bad(
                    &name,
                    "the name must be one word without `/`, not starting with `-`".into(),
                ));
            }
            if !seen.insert(name.clone()) {
                return Err(bad(&name, "listed more than once".into()));
            }
            let address = n
                .address
                .ok_or_else(|| bad(&name, "has no address".into()))?;
            if !plain_word(&address) {
                return Err(bad(
                    &name,
                    format!("address {address:?} must be one word, not starting with `-`"),
                ));
            }
            let role = match n.role.as_deref() {
                Some("control-plane") => Role::ControlPlane,
                Some("worker") => Role::Worker,
                Some(other) => {
                    return Err(bad(
                        &name,
                        format!("role {other:?} is neither control-plane nor worker"),
                    ));
                }
                None => return Err(bad(&name, "has no role (control-plane or worker)".into())),
            };
            if let Some(u) = &n.user
                && !plain_word(u)
            {
                return Err(bad(
                    &name,
                    format!("user {u:?} must be one word, not starting with `-`"),
                ));
            }
            if n.port == Some(0) {
                return Err(bad(&name, "port 0 is no port".into()));
            }
            nodes.push(InventoryNode {
                name,
                address,
                user: n.user,
                port: n.port,
                identity_file: n.identity_file.map(anchor),
                role,
            });
        }
        Ok(Inventory {
            path: path.to_path_buf(),
            known_hosts_file: raw.known_hosts_file.map(anchor),
            nodes,
        })
    }

    /// The file's text, as [`Inventory::parse`] reads it back.
    pub fn to_yaml(&self) -> Result<String> {
        let raw = RawInventory {
            known_hosts_file: self.known_hosts_file.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| RawNode {
                    name: Some(n.name.clone()),
                    address: Some(n.address.clone()),
                    role: Some(n.role.name().into()),
                    user: n.user.clone(),
                    port: n.port,
                    identity_file: n.identity_file.clone(),
                })
                .collect(),
        };
        serde_saphyr::to_string(&raw).map_err(|e| Error::Inventory {
            path: self.path.clone(),
            message: format!("cannot write it: {e}"),
        })
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&InventoryNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The names of the nodes with `role`, in the file's order.
    pub fn names(&self, role: Role) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.role == role)
            .map(|n| n.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "\
knownHostsFile: known_hosts
nodes:
- name: cp1
  address: 10.77.0.11
  role: control-plane
  user: root
  port: 22
  identityFile: /var/lib/kastellan/lab/ssh/id_ed25519
- name: w1
  address: w1.example
  role: worker
";

    fn parse(text: &str) -> Result<Inventory> {
        Inventory::parse(text, Path::new("/etc/kastellan/inventory.yaml"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_into_typed_nodes() {
        let inv = parse(LAB).unwrap();
        assert_eq!(
            inv.known_hosts_file.as_deref(),
            Some(Path::new("/etc/kastellan/known_hosts")),
            "relative to the inventory's directory"
        );
        assert_eq!(
            inv.nodes[0],
            InventoryNode {
                name: "cp1".into(),
                address: "10.77.0.11".into(),
                user: Some("root".into()),
                port: Some(22),
                identity_file: Some("/var/lib/kastellan/lab/ssh/id_ed25519".into()),
                role: Role::ControlPlane,
            }
        );
        assert_eq!(inv.nodes[1].user, None);
        assert_eq!(inv.nodes[1].port, None);
        assert_eq!(inv.names(Role::ControlPlane), ["cp1"]);
        assert_eq!(inv.names(Role::Worker), ["w1"]);
        assert_eq!(inv.node("w1").unwrap().address, "w1.example");
        assert!(inv.node("w2").is_none());
    }

    #[test]
    fn writes_what_it_reads() {
        let inv = parse(LAB).unwrap();
        let text = inv.to_yaml().unwrap();
        assert_eq!(parse(&text).unwrap(), inv);
        assert!(text.contains("identityFile:"), "{text}");
        assert!(text.contains("role: control-plane"), "{text}");
    }

    #[test]
    fn errors_name_the_file_and_the_node() {
        let e = err("nodes:\n- name: cp1\n  address: 10.0.0.1\n  role: master\n");
        assert!(
            e.contains("/etc/kastellan/inventory.yaml")
                && e.contains("node cp1")
                && e.contains("\"master\""),
            "{e}"
        );
        let e = err("nodes:\n- name: cp1\n  role: worker\n");
        assert!(e.contains("node cp1: has no address"), "{e}");
        let e = err("nodes:\n- name: cp1\n  address: a\n");
        assert!(e.contains("node cp1: has no role"), "{e}");
        let e = err("nodes:\n- address: a\n  role: worker\n");
        assert!(e.contains("node #1: has no name"), "{e}");
        let e = err(
            "nodes:\n- {name: a, address: x, role: worker}\n- {name: a, address: y, role: worker}\n",
        );
        assert!(e.contains("node a: listed more than once"), "{e}");
        let e = err("nodes:\n- {name: a, address: x, role: worker, port: 0}\n");
        assert!(e.contains("node a: port 0"), "{e}");
        let e = err("nodes:\n- {name: a, address: '-oProxyCommand=x', role: worker}\n");
        assert!(e.contains("node a: address"), "{e}");
        let e = err("nodes:\n- {name: a, address: x, role: worker, user: 'a b'}\n");
        assert!(e.contains("node a: user"), "{e}");
    }

    #[test]
    fn structural_errors_name_the_file_and_where() {
        let e = err("nodes:\n- name: cp1\n  address: x\n  role: worker\n  adress: y\n");
        assert!(
            e.contains("/etc/kastellan/inventory.yaml") && e.contains("adress"),
            "{e}"
        );
        let e = err("nodes:\n- {name: a, address: x, role: worker, port: seventy}\n");
        assert!(e.contains("/etc/kastellan/inventory.yaml"), "{e}");
        let e = err("nodes: []\n");
        assert!(e.contains("lists no nodes"), "{e}");
        let e = err("{");
        assert!(e.contains("/etc/kastellan/inventory.yaml"), "{e}");
    }

    #[test]
    fn missing_files_are_named() {
        let e = Inventory::load(Path::new("/nonexistent/inventory.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/inventory.yaml"), "{e}");
    }
}

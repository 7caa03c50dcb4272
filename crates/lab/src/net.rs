//! The lab network: a bridge holding the lab's /24 and one network namespace per node,
//! attached by a veth pair. Everything is created with iproute2's `ip`.

use std::process::Command;

use crate::Result;
use crate::host::run;
use crate::spec::{LabSpec, NodeSpec};

/// Name of the lab bridge on the host.
pub const BRIDGE: &str = "kl-br0";

fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the network namespace exists.
pub fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

/// Creates the bridge with the gateway address, if it is not there yet.
pub fn ensure_bridge(spec: &LabSpec) -> Result<()> {
    if !link_exists(BRIDGE) {
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
    }
    let cidr = format!("{}/24", spec.gateway());
    let addrs = ip(&["-o", "addr", "show", "dev", BRIDGE])?;
    if !addrs.contains(&format!("inet {cidr}")) {
        ip(&["addr", "add", &cidr, "dev", BRIDGE])?;
    }
    ip(&["link", "set", BRIDGE, "up"])?;
    Ok(())
}

/// Creates the node's namespace and veth, with its address and a default route via
/// the bridge. Idempotent.
pub fn ensure_node(spec: &LabSpec, node: &NodeSpec) -> Result<()> {
    let ns = node.netns();
    if !netns_exists(&ns) {
        ip(&["netns", "add", &ns])?;
    }
    let host_if = node.veth_host();
    if !link_exists(&host_if) {
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
    }
    ip(&["link", "set", &host_if, "master", BRIDGE, "up"])?;
    let cidr = format!("{}/24", node.ip);
    let addrs = ip(&["-n", &ns, "-o", "addr", "show", "dev", "eth0"])?;
    if !addrs.contains(&format!("inet {cidr}")) {
        ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
    }
    ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    let routes = ip(&["-n", &ns, "route", "show", "default"])?;
    if routes.trim().is_empty() {
        ip(&["-n", &ns, "route", "add", "default", "via", &spec.gateway()])?;
    }
    Ok(())
}

/// Removes a node's namespace (and with it the veth pair).
pub fn remove_node(node: &NodeSpec) -> Result<()> {
    if netns_exists(&node.netns()) {
        ip(&["netns", "del", &node.netns()])?;
    }
    // Deleting the namespace deletes the veth pair too, asynchronously: a host side
    // that vanishes between the check and the delete is fine.
    if link_exists(&node.veth_host()) {
        match ip(&["link", "del", &node.veth_host()]) {
            Err(crate::Error::Command { stderr, .. }) if stderr.contains("Cannot find device") => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// Removes the bridge.
pub fn remove_bridge() -> Result<()> {
    if link_exists(BRIDGE) {
        ip(&["link", "del", BRIDGE])?;
    }
    Ok(())
}

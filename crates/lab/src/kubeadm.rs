//! The kubeadm side of the lab: one config file per node, and the `kubeadm init phase`
//! commands that write the real PKI, kubeconfigs and static pod manifests.

use crate::spec::{LabSpec, NodeRole, NodeSpec};

/// Pod network of the lab (kept apart from the lab's own /24).
pub const POD_SUBNET: &str = "10.244.0.0/16";
/// Service network of the lab.
pub const SERVICE_SUBNET: &str = "10.96.0.0/12";
/// The cluster name kubeadm writes into the kubeconfigs.
pub const CLUSTER_NAME: &str = "kastellan-lab";

/// The API endpoint every kubeconfig points at: the first control plane (there is no
/// load balancer in the lab).
pub fn control_plane_endpoint(spec: &LabSpec) -> String {
    format!("{}.11:6443", spec.subnet)
}

/// The kubeadm configuration (v1beta2, as kubeadm 1.20 reads it) for one node.
pub fn config(spec: &LabSpec, node: &NodeSpec) -> String {
    let mut sans = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    for n in spec
        .nodes()
        .iter()
        .filter(|n| n.role == NodeRole::ControlPlane)
    {
        sans.push(n.ip.clone());
    }
    let sans = sans
        .iter()
        .map(|s| format!("  - \"{s}\""))
        .collect::<Vec<_>>()
        .join("\n");
    let taints = match node.role {
        NodeRole::ControlPlane => {
            "  taints:\n  - key: node-role.kubernetes.io/master\n    effect: NoSchedule"
        }
        NodeRole::Worker => "  taints: []",
    };
    format!(
        r#"# Written by `kastellan lab up` for node {name}.
apiVersion: kubeadm.k8s.io/v1beta2
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: "{ip}"
  bindPort: 6443
nodeRegistration:
  name: "{name}"
  criSocket: /run/containerd/containerd.sock
{taints}
---
apiVersion: kubeadm.k8s.io/v1beta2
kind: ClusterConfiguration
clusterName: {cluster}
kubernetesVersion: "{version}"
controlPlaneEndpoint: "{endpoint}"
certificatesDir: /etc/kubernetes/pki
imageRepository: k8s.gcr.io
networking:
  dnsDomain: cluster.local
  podSubnet: "{pods}"
  serviceSubnet: "{services}"
apiServer:
  certSANs:
{sans}
etcd:
  local:
    dataDir: /var/lib/etcd
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
conntrack:
  maxPerCore: 0
"#,
        name = node.name,
        ip = node.ip,
        cluster = CLUSTER_NAME,
        version = spec.kubernetes_version,
        endpoint = control_plane_endpoint(spec),
        pods = POD_SUBNET,
        services = SERVICE_SUBNET,
    )
}

/// The `--initial-cluster` value of a stacked etcd with every control plane.
pub fn initial_cluster(spec: &LabSpec) -> String {
    spec.nodes()
        .iter()
        .filter(|n| n.role == NodeRole::ControlPlane)
        .map(|n| format!("{}=https://{}:2380", n.name, n.ip))
        .collect::<Vec<_>>()
        .join(",")
}

/// Rewrites the `--initial-cluster` flag of a kubeadm etcd manifest so that all
/// control planes start together as one new cluster. Every other line stays as it was.
pub fn patch_initial_cluster(manifest: &str, initial: &str) -> Option<String> {
    let mut found = false;
    let out: Vec<String> = manifest
        .lines()
        .map(|line| {
            if let Some(idx) = line.find("- --initial-cluster=") {
                found = true;
                format!("{}- --initial-cluster={initial}", &line[..idx])
            } else {
                line.to_string()
            }
        })
        .collect();
    found.then(|| out.join("\n") + "\n")
}

/// kube-proxy's configuration on a node (the agent runs kube-proxy with it).
pub fn kube_proxy_config(node: &NodeSpec) -> String {
    format!(
        r#"# Written by `kastellan lab up` for node {name}.
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: 0.0.0.0
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
clusterCIDR: "{pods}"
conntrack:
  maxPerCore: 0
hostnameOverride: "{name}"
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 127.0.0.1:10249
mode: iptables
"#,
        name = node.name,
        pods = POD_SUBNET,
    )
}

/// The pod the agent runs for kube-proxy (a DaemonSet pod on real clusters).
pub fn kube_proxy_pod(spec: &LabSpec) -> String {
    format!(
        r#"# kube-proxy is a DaemonSet on real clusters; the lab agent runs it as a process.
apiVersion: v1
kind: Pod
metadata:
  name: kube-proxy
  namespace: kube-system
spec:
  hostNetwork: true
  containers:
  - name: kube-proxy
    image: k8s.gcr.io/kube-proxy:{version}
    command:
    - kube-proxy
    - --config=/var/lib/kube-proxy/config.conf
"#,
        version = spec.kubernetes_version
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::EtcdVersion;

    fn spec(cps: u8) -> LabSpec {
        LabSpec {
            control_planes: cps,
            workers: 1,
            etcd: EtcdVersion::V3_4,
            kubernetes_version: "v1.20.2".into(),
            subnet: "10.77.0".into(),
            ssh: false,
            packages: false,
            join: crate::spec::JoinMode::Copy,
        }
    }

    #[test]
    fn config_names_the_node_and_its_address() {
        let s = spec(3);
        let cfg = config(&s, &s.nodes()[1]);
        assert!(cfg.contains("advertiseAddress: \"10.77.0.12\""));
        assert!(cfg.contains("name: \"cp2\""));
        assert!(cfg.contains("controlPlaneEndpoint: \"10.77.0.11:6443\""));
        assert!(
            cfg.contains("- \"10.77.0.13\""),
            "every control plane is an apiserver SAN"
        );
        assert!(
            cfg.contains("kubernetesVersion: \"v1.20.2\""),
            "no online version lookup"
        );
    }

    #[test]
    fn initial_cluster_lists_control_planes_only() {
        assert_eq!(
            initial_cluster(&spec(3)),
            "cp1=https://10.77.0.11:2380,cp2=https://10.77.0.12:2380,cp3=https://10.77.0.13:2380"
        );
    }

    #[test]
    fn patch_touches_only_the_initial_cluster_line() {
        let m = "spec:\n  containers:\n  - command:\n    - etcd\n    - --initial-cluster=cp2=https://10.77.0.12:2380\n    - --name=cp2\n";
        let out = patch_initial_cluster(m, "a=https://x:2380,b=https://y:2380").unwrap();
        assert!(out.contains("    - --initial-cluster=a=https://x:2380,b=https://y:2380\n"));
        assert!(out.contains("    - --name=cp2\n"));
        assert_eq!(out.lines().count(), m.lines().count());
        assert!(patch_initial_cluster("spec: {}\n", "x").is_none());
    }
}

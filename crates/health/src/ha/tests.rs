use super::*;
use crate::EtcdMember;
use crate::quorum::assess as quorum;

fn member(name: &str, healthy: bool) -> EtcdMember {
    EtcdMember {
        name: name.into(),
        id: None,
        healthy,
        learner: false,
        leader: name == "cp1",
        has_leader: None,
        leader_changes: None,
        db_size_bytes: None,
        db_in_use_bytes: None,
        quota_bytes: None,
        version: None,
        alarms: Vec::new(),
    }
}

fn instance(node: &str, leader_elect: Option<bool>) -> Instance {
    Instance {
        node: node.into(),
        ready: true,
        leader_elect,
        address: None,
    }
}

/// A stacked cluster of `cps` control planes at 10.0.0.1x, every kubelet pointing at
/// `server`, all tainted.
fn cluster(cps: usize, server: &str) -> HaFacts {
    let names: Vec<String> = (1..=cps).map(|i| format!("cp{i}")).collect();
    HaFacts {
        control_planes: names
            .iter()
            .enumerate()
            .map(|(i, n)| ControlPlane {
                name: n.clone(),
                addresses: vec![format!("10.0.0.1{}", i + 1), n.clone()],
                taints: vec![format!("{LEGACY_MASTER_TAINT}:NoSchedule")],
            })
            .collect(),
        apiservers: names
            .iter()
            .enumerate()
            .map(|(i, n)| Instance {
                address: Some(format!("10.0.0.1{}", i + 1)),
                ..instance(n, None)
            })
            .collect(),
        controller_managers: names.iter().map(|n| instance(n, Some(true))).collect(),
        schedulers: names.iter().map(|n| instance(n, Some(true))).collect(),
        leases: vec![LeaseFact {
            component: "kube-scheduler".into(),
            holder: Some("cp2_4f1c".into()),
            transitions: Some(3),
        }],
        etcd: Some(quorum(
            &names.iter().map(|n| member(n, true)).collect::<Vec<_>>(),
            Some(cps),
        )),
        etcd_unknown: None,
        kubelets_unread: Vec::new(),
        clients: names
            .iter()
            .chain(["w1".to_string()].iter())
            .map(|n| ClientFact {
                client: "kubelet".into(),
                node: Some(n.clone()),
                server: server.into(),
                source: format!("/etc/kubernetes/kubelet.conf on {n}"),
            })
            .collect(),
        workloads_on_control_planes: Vec::new(),
    }
}

fn errors(r: &HaReport) -> Vec<&str> {
    r.findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.text.as_str())
        .collect()
}

#[test]
fn three_control_planes_behind_a_load_balancer_are_tolerant() {
    let r = assess(cluster(3, "https://lb.example:6443"));
    assert_eq!(r.verdict, HaVerdict::Tolerant, "{:#?}", r.findings);
    let etcd = r.components.iter().find(|c| c.component == "etcd").unwrap();
    assert_eq!((etcd.instances, etcd.tolerates), (3, Some(1)));
    let sched = &r.components[3];
    assert_eq!(sched.detail, "cp1,cp2,cp3; leader cp2 (3 changes)");
    // The load balancer is named, not judged.
    assert!(r.findings.iter().any(|f| {
        f.severity == Severity::Info
            && f.text.contains("https://lb.example:6443")
            && f.text
                .contains("kubelet on cp1, kubelet on cp2, kubelet on cp3, kubelet on w1")
    }));
}

#[test]
fn kubelets_pinned_to_one_control_plane_are_a_single_point_of_failure() {
    let r = assess(cluster(3, "https://10.0.0.11:6443"));
    assert_eq!(r.verdict, HaVerdict::SinglePointOfFailure);
    let e = errors(&r);
    assert_eq!(e.len(), 1, "{e:?}");
    // cp1's own kubelet depends only on cp1: not listed.
    assert!(
        e[0].starts_with("kubelet on cp2, kubelet on cp3, kubelet on w1 reach the API only through cp1's own address https://10.0.0.11:6443"),
        "{}",
        e[0]
    );
    let f = &r.findings[0];
    assert!(f.fix.as_deref().unwrap().contains("load balancer"));
}

#[test]
fn a_node_name_or_loopback_server() {
    // A server named by the node's name (one of its addresses) is that apiserver.
    let r = assess(cluster(3, "https://cp3:6443"));
    assert!(
        errors(&r)[0].contains("through cp3's own address"),
        "{r:#?}"
    );
    // Loopback: each client depends on its own node only.
    let r = assess(cluster(3, "https://127.0.0.1:6443"));
    assert!(errors(&r).is_empty(), "{:?}", r.findings);
    assert_eq!(server_host("https://[::1]:6443/x"), "::1");
    assert_eq!(server_host("10.0.0.1:6443"), "10.0.0.1");
}

#[test]
fn one_control_plane_loses_the_api_and_quorum_with_its_node() {
    let r = assess(cluster(1, "https://10.0.0.11:6443"));
    let e = errors(&r);
    assert!(
        e.contains(&"one ready apiserver (cp1): losing its node loses the API"),
        "{e:?}"
    );
    assert!(
        e.contains(&"1 etcd member: a single failure loses quorum"),
        "{e:?}"
    );
    // With one apiserver, a kubelet pointing at it is only a warning (already said).
    assert!(
        r.findings
            .iter()
            .any(|f| f.severity == Severity::Warning && f.text.contains("kubelet on w1")),
        "{:#?}",
        r.findings
    );
    // One scheduler and one controller-manager: warnings, not errors.
    assert_eq!(
        r.findings
            .iter()
            .filter(|f| f.text.starts_with("one instance (cp1)"))
            .count(),
        2
    );
}

#[test]
fn etcd_degraded_even_and_unmatched() {
    let mut f = cluster(3, "https://lb:6443");
    f.etcd = Some(quorum(
        &[
            member("cp1", true),
            member("cp2", true),
            member("cp3", false),
        ],
        Some(3),
    ));
    let r = assess(f.clone());
    assert_eq!(
        errors(&r),
        ["2 of 3 etcd members healthy: the next failure loses quorum"]
    );
    f.etcd = Some(quorum(
        &[
            member("cp1", true),
            member("cp2", true),
            member("cp3", true),
            member("ext4", true),
        ],
        Some(3),
    ));
    let r = assess(f.clone());
    let texts: Vec<&str> = r.findings.iter().map(|f| f.text.as_str()).collect();
    assert!(
        texts.contains(&"4 etcd members: an even count tolerates no more failures than 3"),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("etcd member ext4 matches no control-plane node")),
        "{texts:?}"
    );
    f.etcd = Some(quorum(
        &[member("cp1", true), member("cp2", false)],
        Some(3),
    ));
    let r = assess(f.clone());
    assert!(
        errors(&r).contains(&"etcd has lost quorum: 1 of 2 members healthy, 2 needed"),
        "{:?}",
        errors(&r)
    );
    assert!(
        r.findings
            .iter()
            .any(|f| f.text.starts_with("control plane cp3 runs no etcd member")),
        "{:#?}",
        r.findings
    );
    f.etcd = None;
    f.etcd_unknown = Some("no node access".into());
    let r = assess(f);
    assert_eq!(r.verdict, HaVerdict::TolerantWithWarnings);
    assert_eq!(
        r.findings[0].text,
        "etcd's members could not be asked: no node access"
    );
}

#[test]
fn a_controller_manager_without_leader_election_beside_others_is_an_error() {
    let mut f = cluster(3, "https://lb:6443");
    f.controller_managers[1].leader_elect = Some(false);
    let r = assess(f.clone());
    assert_eq!(
        errors(&r),
        [
            "3 instances, and cp2 runs with --leader-elect=false: it acts beside the elected \
          leader on the same objects"
        ]
    );
    assert_eq!(r.findings[0].area, "kube-controller-manager");
    // Alone, without leader election, it is only the single-instance warning.
    f.controller_managers.truncate(1);
    f.controller_managers[0].leader_elect = Some(false);
    let r = assess(f);
    assert!(errors(&r).is_empty(), "{:?}", r.findings);
}

#[test]
fn untainted_control_planes_and_their_workloads() {
    let mut f = cluster(3, "https://lb:6443");
    f.control_planes[0].taints.clear();
    f.control_planes[1].taints = vec![format!("{CONTROL_PLANE_TAINT}:PreferNoSchedule")];
    f.workloads_on_control_planes = vec![
        PodRef {
            node: "cp1".into(),
            pod: "default/web-1".into(),
            owner: Some("ReplicaSet/web-5d".into()),
        },
        PodRef {
            node: "cp1".into(),
            pod: "default/bare".into(),
            owner: None,
        },
    ];
    let r = assess(f);
    assert_eq!(r.verdict, HaVerdict::TolerantWithWarnings);
    let taints: Vec<&Finding> = r.findings.iter().filter(|f| f.area == "taints").collect();
    assert_eq!(taints.len(), 3, "{taints:#?}");
    assert!(taints[0].text.starts_with("control plane cp1 has no"));
    // The fix uses the key the tainted control planes use (the legacy one here).
    assert_eq!(
        taints[0].fix.as_deref(),
        Some("kubectl taint nodes cp1 node-role.kubernetes.io/master:NoSchedule")
    );
    assert!(taints[1].text.starts_with("control plane cp2 has no"));
    assert_eq!(
        taints[2].text,
        "2 workload pods on control plane cp1: default/web-1, default/bare"
    );
}

//! Table tests of every rule at its boundaries, per era, with the policy page's own
//! examples.

use super::*;
use ComponentKind::*;

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn m(n: u32) -> Minor {
    Minor::new(n)
}

/// A version of minor `n` (patch 3, so that patches visibly do not matter).
fn at(n: u32) -> Version {
    v(&format!("1.{n}.3"))
}

fn cluster(parts: &[(ComponentKind, &str, u32)]) -> Cluster {
    parts.iter().fold(Cluster::new(), |c, &(kind, node, n)| {
        c.with(kind, node, at(n))
    })
}

fn rules(c: &Cluster) -> Vec<Rule> {
    check(c).into_iter().map(|v| v.rule).collect()
}

/// One component of `kind` at minor `n` against kube-apiservers at `apis`.
fn against(apis: &[u32], kind: ComponentKind, n: u32) -> Vec<Rule> {
    let mut c = Cluster::new();
    for (i, &a) in apis.iter().enumerate() {
        c = c.with(ApiServer, format!("cp{i}"), at(a));
    }
    rules(&c.with(kind, "n1", at(n)))
}

#[test]
fn kubelet_against_kube_apiserver() {
    use Rule::*;
    let cases: &[(&[u32], u32, &[Rule])] = &[
        // "kube-apiserver is at 1.20: kubelet is supported at 1.20, 1.19, and 1.18"
        (&[20], 20, &[]),
        (&[20], 19, &[]),
        (&[20], 18, &[]),
        (&[20], 17, &[KubeletTwoOlder]),
        (&[20], 21, &[KubeletNewerThanApiServer]),
        // The last n-2 era: 1.27.
        (&[27], 25, &[]),
        (&[27], 24, &[KubeletTwoOlder]),
        // "kube-apiserver is at 1.28: kubelet is supported at 1.28, 1.27, 1.26, and 1.25"
        (&[28], 28, &[]),
        (&[28], 27, &[]),
        (&[28], 26, &[]),
        (&[28], 25, &[]),
        (&[28], 24, &[KubeletThreeOlder]),
        (&[28], 29, &[KubeletNewerThanApiServer]),
        (&[36], 33, &[]),
        (&[36], 32, &[KubeletThreeOlder]),
        // "kube-apiserver instances are at 1.28 and 1.27: kubelet is supported at 1.27,
        // 1.26, and 1.25 (1.28 is not supported because that would be newer than the
        // kube-apiserver instance at version 1.27)"
        (&[28, 27], 27, &[]),
        (&[28, 27], 26, &[]),
        (&[28, 27], 25, &[]),
        (&[28, 27], 28, &[KubeletNewerThanApiServer]),
        (&[28, 27], 24, &[KubeletThreeOlder]),
        // The pre-1.28 page: "kube-apiserver instances are at 1.18 and 1.17: kubelet is
        // supported at 1.17, and 1.16 (1.18 is not supported ...)"
        (&[18, 17], 17, &[]),
        (&[18, 17], 16, &[]),
        (&[18, 17], 18, &[KubeletNewerThanApiServer]),
        (&[18, 17], 15, &[KubeletTwoOlder]),
    ];
    for (apis, kubelet, want) in cases {
        assert_eq!(
            against(apis, Kubelet, *kubelet),
            *want,
            "kube-apiservers {apis:?}, kubelet 1.{kubelet}"
        );
    }
}

#[test]
fn kube_proxy_against_kube_apiserver() {
    use Rule::*;
    let cases: &[(&[u32], u32, &[Rule])] = &[
        (&[20], 20, &[]),
        (&[20], 18, &[]),
        (&[20], 17, &[KubeProxyTwoOlder]),
        (&[20], 21, &[KubeProxyNewerThanApiServer]),
        (&[27], 25, &[]),
        (&[27], 24, &[KubeProxyTwoOlder]),
        // "kube-apiserver is at 1.28: kube-proxy is supported at 1.28, 1.27, 1.26, and 1.25"
        (&[28], 28, &[]),
        (&[28], 25, &[]),
        (&[28], 24, &[KubeProxyThreeOlder]),
        (&[28], 29, &[KubeProxyNewerThanApiServer]),
        // "kube-apiserver instances are at 1.28 and 1.27: kube-proxy is supported at 1.27,
        // 1.26, and 1.25"
        (&[28, 27], 27, &[]),
        (&[28, 27], 25, &[]),
        (&[28, 27], 28, &[KubeProxyNewerThanApiServer]),
        (&[28, 27], 24, &[KubeProxyThreeOlder]),
    ];
    for (apis, proxy, want) in cases {
        assert_eq!(
            against(apis, KubeProxy, *proxy),
            *want,
            "kube-apiservers {apis:?}, kube-proxy 1.{proxy}"
        );
    }
}

#[test]
fn kube_proxy_against_its_kubelet_per_era() {
    use Rule::*;
    // (kube-apiserver or none, kubelet, kube-proxy on the same node, rules)
    let cases: &[(Option<u32>, u32, u32, &[Rule])] = &[
        // 1.19 to 1.26 pages: the same minor.
        (Some(20), 20, 20, &[]),
        (Some(20), 19, 20, &[KubeProxyMatchesKubelet]),
        (Some(26), 25, 25, &[]),
        (Some(26), 26, 25, &[KubeProxyMatchesKubelet]),
        // Applied back to 1.16 to 1.18, whose pages had no kube-proxy rule.
        (Some(17), 16, 17, &[KubeProxyMatchesKubelet]),
        // 1.27: two older or newer.
        (Some(27), 25, 27, &[]),
        (Some(27), 27, 25, &[]),
        (None, 24, 27, &[KubeProxyKubeletTwo]),
        (None, 27, 24, &[KubeProxyKubeletTwo]),
        // From 1.28: three older or newer for kube-proxy 1.25 and later...
        (Some(28), 25, 28, &[]),
        (Some(28), 28, 25, &[]),
        (Some(29), 26, 29, &[]),
        (None, 26, 30, &[KubeProxyKubeletThree]),
        (None, 30, 26, &[KubeProxyKubeletThree]),
        // ... and still two for kube-proxy < 1.25.
        (
            Some(28),
            27,
            24,
            &[KubeProxyThreeOlder, KubeProxyKubeletTwo],
        ),
    ];
    for &(api, kubelet, proxy, want) in cases {
        let mut c = cluster(&[(Kubelet, "w1", kubelet), (KubeProxy, "w1", proxy)]);
        if let Some(a) = api {
            c = c.with(ApiServer, "cp1", at(a));
        }
        assert_eq!(
            rules(&c),
            want,
            "kube-apiserver {api:?}, kubelet 1.{kubelet}, kube-proxy 1.{proxy}"
        );
        // A kubelet on another node is not its kubelet.
        let mut other = cluster(&[(Kubelet, "w2", kubelet), (KubeProxy, "w1", proxy)]);
        if let Some(a) = api {
            other = other.with(ApiServer, "cp1", at(a));
        }
        assert!(
            !rules(&other).iter().any(|r| matches!(
                r,
                KubeProxyMatchesKubelet | KubeProxyKubeletTwo | KubeProxyKubeletThree
            )),
            "{other:?}"
        );
    }
}

#[test]
fn controller_manager_scheduler_cloud_controller_manager() {
    use Rule::*;
    let cases: &[(&[u32], u32, &[Rule])] = &[
        // "kube-apiserver is at 1.28: ... supported at 1.28 and 1.27"
        (&[28], 28, &[]),
        (&[28], 27, &[]),
        (&[28], 26, &[ControlPlaneOneOlder]),
        (&[28], 29, &[ControlPlaneNewerThanApiServer]),
        (&[20], 19, &[]),
        (&[20], 18, &[ControlPlaneOneOlder]),
        // "kube-apiserver instances are at 1.28 and 1.27, and these components can
        // communicate with any kube-apiserver instance: supported at 1.27 (1.28 is not
        // supported because that would be newer than the kube-apiserver instance at
        // version 1.27)"
        (&[28, 27], 27, &[]),
        (&[28, 27], 28, &[ControlPlaneNewerThanApiServer]),
        (&[28, 27], 26, &[ControlPlaneOneOlder]),
    ];
    for kind in [ControllerManager, Scheduler, CloudControllerManager] {
        for (apis, n, want) in cases {
            assert_eq!(
                against(apis, kind, *n),
                *want,
                "kube-apiservers {apis:?}, {kind} 1.{n}"
            );
        }
    }
}

#[test]
fn controller_manager_and_scheduler_talk_to_their_own_kube_apiserver() {
    use Rule::*;
    // HA mid-upgrade: cp1 is at 1.28, cp2 still at 1.27.
    let ha = || cluster(&[(ApiServer, "cp1", 28), (ApiServer, "cp2", 27)]);
    for kind in [ControllerManager, Scheduler] {
        assert_eq!(
            rules(&ha().with(kind, "cp1", at(28))),
            [],
            "{kind} beside 1.28"
        );
        assert_eq!(
            rules(&ha().with(kind, "cp2", at(27))),
            [],
            "{kind} beside 1.27"
        );
        assert_eq!(
            rules(&ha().with(kind, "cp2", at(28))),
            [ControlPlaneNewerThanApiServer],
            "{kind} 1.28 beside 1.27"
        );
        assert_eq!(
            rules(&ha().with(kind, "elsewhere", at(28))),
            [ControlPlaneNewerThanApiServer],
            "{kind} without a kube-apiserver on its node reaches any"
        );
        assert_eq!(
            rules(&cluster(&[(ApiServer, "cp1", 28), (kind, "cp1", 26)])),
            [ControlPlaneOneOlder]
        );
    }
    // cloud-controller-manager reaches any kube-apiserver (through the service).
    assert_eq!(
        rules(&ha().with(CloudControllerManager, "cp1", at(28))),
        [ControlPlaneNewerThanApiServer]
    );
}

#[test]
fn kubectl_within_one_of_every_kube_apiserver() {
    use Rule::*;
    let cases: &[(&[u32], u32, &[Rule])] = &[
        // "kube-apiserver is at 1.28: kubectl is supported at 1.29, 1.28, and 1.27"
        (&[28], 29, &[]),
        (&[28], 28, &[]),
        (&[28], 27, &[]),
        (&[28], 30, &[KubectlWithinOne]),
        (&[28], 26, &[KubectlWithinOne]),
        (&[20], 21, &[]),
        (&[20], 18, &[KubectlWithinOne]),
        // "kube-apiserver instances are at 1.28 and 1.27: kubectl is supported at 1.28 and
        // 1.27 (other versions would be more than one minor version skewed from one of
        // the kube-apiserver components)"
        (&[28, 27], 28, &[]),
        (&[28, 27], 27, &[]),
        (&[28, 27], 29, &[KubectlWithinOne]),
        (&[28, 27], 26, &[KubectlWithinOne]),
    ];
    for (apis, n, want) in cases {
        assert_eq!(
            against(apis, Kubectl, *n),
            *want,
            "kube-apiservers {apis:?}, kubectl 1.{n}"
        );
    }
}

#[test]
fn ha_kube_apiservers_within_one_minor() {
    // "newest kube-apiserver is at 1.28: other kube-apiserver instances are supported at
    // 1.28 and 1.27"
    assert_eq!(
        rules(&cluster(&[(ApiServer, "a", 28), (ApiServer, "b", 28)])),
        []
    );
    assert_eq!(
        rules(&cluster(&[(ApiServer, "a", 28), (ApiServer, "b", 27)])),
        []
    );
    assert_eq!(
        rules(&cluster(&[(ApiServer, "a", 28), (ApiServer, "b", 26)])),
        [Rule::ApiServerHaSkew]
    );
    let three = cluster(&[
        (ApiServer, "a", 18),
        (ApiServer, "b", 17),
        (ApiServer, "c", 16),
    ]);
    let found = check(&three);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].rule, Rule::ApiServerHaSkew);
    let nodes: Vec<&str> = found[0]
        .components
        .iter()
        .map(|c| c.node.as_str())
        .collect();
    assert_eq!(nodes, ["a", "c"], "the newest and the oldest");
}

#[test]
fn kubeadm_against_control_plane() {
    use Rule::*;
    let cases: &[(&[u32], u32, &[Rule])] = &[
        // "kubeadm is at 1.28: kubernetesVersion must be at 1.28 or 1.27"
        (&[28], 28, &[]),
        (&[27], 28, &[]),
        (&[26], 28, &[KubeadmTooNewForControlPlane]),
        (&[29], 28, &[KubeadmOlderThanControlPlane]),
        (&[20], 21, &[]),
        (&[20], 22, &[KubeadmTooNewForControlPlane]),
        // Mid-upgrade HA: kubeadm at the new minor manages both.
        (&[22, 21], 22, &[]),
        (&[22, 21], 21, &[KubeadmOlderThanControlPlane]),
    ];
    for (apis, n, want) in cases {
        assert_eq!(
            against(apis, Kubeadm, *n),
            *want,
            "kube-apiservers {apis:?}, kubeadm 1.{n}"
        );
    }
}

#[test]
fn kubeadm_against_its_kubelet_per_era() {
    use Rule::*;
    let cases: &[(u32, u32, &[Rule])] = &[
        // Before kubeadm 1.29: the same minor or one older.
        (28, 28, &[]),
        (28, 27, &[]),
        (28, 26, &[KubeadmKubeletOneOlder]),
        (28, 29, &[KubeadmKubeletOneOlder]),
        (20, 19, &[]),
        (20, 18, &[KubeadmKubeletOneOlder]),
        // "kubeadm is at 1.29: kubelet on the host must be at 1.29, 1.28, 1.27 or 1.26"
        (29, 29, &[]),
        (29, 26, &[]),
        (29, 25, &[KubeadmKubeletThreeOlder]),
        (29, 30, &[KubeadmKubeletThreeOlder]),
    ];
    for &(kubeadm, kubelet, want) in cases {
        let same = cluster(&[(Kubeadm, "n1", kubeadm), (Kubelet, "n1", kubelet)]);
        assert_eq!(
            rules(&same),
            want,
            "kubeadm 1.{kubeadm}, kubelet 1.{kubelet}"
        );
        let apart = cluster(&[(Kubeadm, "n1", kubeadm), (Kubelet, "n2", kubelet)]);
        assert_eq!(rules(&apart), [], "on different nodes");
    }
}

#[test]
fn patches_and_pre_releases_do_not_matter() {
    let c = Cluster::new()
        .with(ApiServer, "cp1", v("v1.28.0-rc.1"))
        .with(Kubelet, "w1", v("v1.25.16+k3s1"))
        .with(Kubectl, "laptop", v("1.29.0"));
    assert_eq!(check(&c), []);
}

#[test]
fn a_consistent_kubeadm_cluster_has_no_violations() {
    let c = cluster(&[
        (ApiServer, "cp1", 28),
        (ControllerManager, "cp1", 28),
        (Scheduler, "cp1", 28),
        (Kubelet, "cp1", 27),
        (KubeProxy, "cp1", 27),
        (Kubeadm, "cp1", 28),
        (ApiServer, "cp2", 27),
        (ControllerManager, "cp2", 27),
        (Scheduler, "cp2", 27),
        (Kubelet, "cp2", 27),
        (KubeProxy, "cp2", 27),
        (Kubeadm, "cp2", 28),
        (Kubelet, "w1", 27),
        (KubeProxy, "w1", 27),
        (Kubeadm, "w1", 28),
        (Kubelet, "w2", 25),
        (KubeProxy, "w2", 25),
        (Kubectl, "ci", 27),
    ]);
    assert_eq!(check(&c), []);
}

#[test]
fn cluster_facts_read_from_json() {
    let json = r#"{"components": [
        {"kind": "api-server", "node": "cp1", "version": "v1.28.3"},
        {"kind": "kubelet", "node": "w1", "version": "1.24.17"},
        {"kind": "cloud-controller-manager", "node": "cp1", "version": "v1.28.0"}
    ]}"#;
    let c: Cluster = serde_json::from_str(json).unwrap();
    assert_eq!(c.components.len(), 3);
    assert_eq!(c.newest_apiserver(), Some(m(28)));
    assert_eq!(rules(&c), [Rule::KubeletThreeOlder]);
    assert_eq!(
        serde_json::from_str::<Cluster>(&serde_json::to_string(&c).unwrap()).unwrap(),
        c
    );
    assert!(
        serde_json::from_str::<Cluster>(
            r#"{"components": [{"kind": "etcd", "node": "cp1", "version": "v3.5.1"}]}"#
        )
        .is_err()
    );
}

#[test]
fn violations_name_their_components() {
    let c = cluster(&[(ApiServer, "cp1", 20), (Kubelet, "w1", 17)]);
    let found = check(&c);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].to_string(),
        "kubelet may be up to two minor versions older than kube-apiserver: \
         kubelet v1.17.3 on w1, kube-apiserver v1.20.3 on cp1"
    );
    let json = serde_json::to_value(&found[0]).unwrap();
    assert_eq!(json["rule"], "kubelet-max-two-older");
    assert_eq!(json["components"][0]["kind"], "kubelet");
    assert_eq!(json["components"][0]["version"], "v1.17.3");
    assert_eq!(json["components"][1]["node"], "cp1");
}

#[test]
fn rules_have_stable_ids_statements_eras_and_sources() {
    let mut ids = BTreeSet::new();
    for &rule in Rule::ALL {
        let id = rule.id();
        assert!(ids.insert(id), "{id} twice");
        assert!(
            id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "{id} is kebab-case"
        );
        assert_eq!(Rule::from_id(id), Some(rule));
        assert!(!rule.statement().is_empty() && !rule.statement().contains('\n'));
        assert!(rule.source().starts_with("https://kubernetes.io/"));
        let json = serde_json::to_string(&rule).unwrap();
        assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), rule);
    }
    assert_eq!(Rule::from_id("no-such-rule"), None);
    assert!(Rule::KubeletTwoOlder.era().contains(m(27)));
    assert!(!Rule::KubeletTwoOlder.era().contains(m(28)));
    assert!(Rule::KubeletThreeOlder.era().contains(m(28)));
    assert!(Rule::KubeletThreeOlder.era().contains(m(36)));
    assert!(!Rule::KubeProxyMatchesKubelet.era().contains(m(27)));
    assert!(Rule::KubeadmKubeletThreeOlder.era().contains(m(29)));
    assert!(!Rule::KubeadmKubeletOneOlder.era().contains(m(29)));
    assert_eq!(Rule::KubeletTwoOlder.era().to_string(), "1.16 to 1.27");
    assert_eq!(Rule::KubeletThreeOlder.era().to_string(), "1.28 and later");
    assert_eq!(max_node_skew(m(27)), 2);
    assert_eq!(max_node_skew(m(28)), 3);
}

fn blocker_summary(blockers: &[Blocker]) -> Vec<(String, Vec<Rule>, Option<String>)> {
    blockers
        .iter()
        .map(|b| {
            (
                format!("{} {}", b.component.kind, b.component.node),
                b.rules.clone(),
                b.allowed.map(|r| r.to_string()),
            )
        })
        .collect()
}

#[test]
fn hop_in_the_n_minus_2_era() {
    let c = cluster(&[
        (ApiServer, "cp1", 21),
        (ControllerManager, "cp1", 21),
        (Scheduler, "cp1", 21),
        (Kubeadm, "cp1", 21),
        (Kubelet, "cp1", 21),
        (Kubelet, "w1", 19),
        (Kubeadm, "w1", 19),
        (Kubelet, "w2", 20),
        (Kubectl, "ci", 20),
    ]);
    let blockers = blockers_for_hop(&c, m(22)).unwrap();
    assert_eq!(
        blocker_summary(&blockers),
        [
            (
                "kubeadm cp1".to_string(),
                vec![Rule::KubeadmTargetNotNewerThanItself],
                Some("1.22".to_string())
            ),
            // kube-apiserver 1.22 allows kubelets down to 1.20; before the hop it
            // allows up to 1.21.
            (
                "kubelet w1".to_string(),
                vec![Rule::KubeletTwoOlder],
                Some("1.20 to 1.21".to_string())
            ),
            (
                "kubectl ci".to_string(),
                vec![Rule::KubectlWithinOne],
                Some("1.21 to 1.22".to_string())
            ),
        ]
    );
    // The kubeadm of the worker (1.19) moves with its node, later: not a blocker, and
    // the kubelet at 1.20 is within two of 1.22.
    assert_eq!(blockers[0].component.version, at(21));
}

#[test]
fn hop_in_the_n_minus_3_era() {
    let base = [
        (ApiServer, "cp1", 27),
        (ControllerManager, "cp1", 27),
        (Scheduler, "cp1", 27),
        (Kubeadm, "cp1", 28),
        (Kubelet, "cp1", 27),
        (Kubelet, "w1", 25),
    ];
    // 1.27 -> 1.28: a 1.25 kubelet may be three behind a 1.28 kube-apiserver.
    assert_eq!(blockers_for_hop(&cluster(&base), m(28)).unwrap(), []);
    // 1.28 -> 1.29: now the 1.25 kubelet blocks.
    let c = cluster(&[
        (ApiServer, "cp1", 28),
        (ControllerManager, "cp1", 28),
        (Scheduler, "cp1", 28),
        (Kubeadm, "cp1", 29),
        (Kubelet, "cp1", 28),
        (Kubelet, "w1", 25),
        (KubeProxy, "w1", 26),
    ]);
    assert_eq!(
        blocker_summary(&blockers_for_hop(&c, m(29)).unwrap()),
        [(
            "kubelet w1".to_string(),
            vec![Rule::KubeletThreeOlder],
            Some("1.26 to 1.28".to_string())
        )]
    );
}

#[test]
fn hop_with_kube_proxy_tied_to_its_kubelet() {
    // Before 1.27 kube-proxy must match its kubelet: neither can move alone.
    let c = cluster(&[
        (ApiServer, "cp1", 21),
        (Kubelet, "w1", 19),
        (KubeProxy, "w1", 19),
    ]);
    let blockers = blockers_for_hop(&c, m(22)).unwrap();
    assert_eq!(
        blocker_summary(&blockers),
        [
            ("kubelet w1".to_string(), vec![Rule::KubeletTwoOlder], None),
            (
                "kube-proxy w1".to_string(),
                vec![Rule::KubeProxyTwoOlder],
                None
            ),
        ]
    );
}

#[test]
fn hop_refusals() {
    let c = cluster(&[(ApiServer, "cp1", 21), (Kubelet, "w1", 21)]);
    assert_eq!(
        blockers_for_hop(&c, m(23)),
        Err(Error::SkipsMinor {
            from: m(21),
            to: m(23)
        })
    );
    assert_eq!(
        blockers_for_hop(&c, m(20)),
        Err(Error::Downgrade {
            from: "1.21".into(),
            to: "1.20".into()
        })
    );
    assert!(matches!(
        blockers_for_hop(&c, m(37)),
        Err(Error::UnknownMinor { .. })
    ));
    assert_eq!(
        blockers_for_hop(&cluster(&[(Kubelet, "w1", 21)]), m(22)),
        Err(Error::NoApiServer)
    );
    assert_eq!(blockers_for_hop(&c, m(21)), Ok(vec![]), "already there");
    // Mid-hop HA: 1.22 finishes the hop; 1.23 would skip for the 1.21 instance.
    let ha = cluster(&[(ApiServer, "cp1", 22), (ApiServer, "cp2", 21)]);
    assert_eq!(blockers_for_hop(&ha, m(22)), Ok(vec![]));
    assert_eq!(
        blockers_for_hop(&ha, m(23)),
        Err(Error::SkipsMinor {
            from: m(21),
            to: m(23)
        })
    );
    let e = blockers_for_hop(&c, m(23)).unwrap_err().to_string();
    assert!(e.contains("1.21") && e.contains("1.23"), "{e}");
}

#[test]
fn upgrade_paths() {
    let minors = |from: &str, to: &str| path(v(from), v(to));
    assert_eq!(minors("v1.20.2", "v1.23.0"), Ok(vec![m(21), m(22), m(23)]));
    assert_eq!(minors("1.20.2", "1.21.14"), Ok(vec![m(21)]));
    assert_eq!(minors("v1.20.2", "v1.20.15"), Ok(vec![]));
    assert_eq!(minors("v1.29.0-rc.1", "v1.29.0"), Ok(vec![]));
    assert_eq!(minors("v1.16.0", "v1.36.0").unwrap().len(), 20);
    assert_eq!(
        minors("v1.22.0", "v1.21.9"),
        Err(Error::Downgrade {
            from: "v1.22.0".into(),
            to: "v1.21.9".into()
        })
    );
    assert!(matches!(
        minors("v1.20.5", "v1.20.2"),
        Err(Error::Downgrade { .. })
    ));
    assert_eq!(
        minors("v1.35.0", "v1.37.0"),
        Err(Error::UnknownMinor {
            minor: m(37),
            oldest: m(16),
            newest: m(36)
        })
    );
    assert!(matches!(
        minors("v1.15.0", "v1.17.0"),
        Err(Error::UnknownMinor { .. })
    ));
    let e = minors("v1.35.0", "v1.37.0").unwrap_err().to_string();
    assert_eq!(
        e,
        "Kubernetes 1.37 is unknown: the policy tables cover 1.16 to 1.36"
    );
}

//! Tier `kubeadm_real`: a PKI made by the real kubeadm v1.20.2, checked against kubeadm's
//! own `certs check-expiration`, renewed, and verified with openssl and kubeadm again.

use std::path::Path;

use jiff::Timestamp;
use kastellan_pki::check::{Status, kubeadm_date};
use kastellan_pki::renew::{self, RenewRequest, Targets};
use kastellan_pki::x509::Cert;
use kastellan_pki::{CaId, Error, Inventory, Verdict, check};

use crate::support::{self, Node, mode, now_secs, openssl, snapshot};

/// (kubeadm name, cert file under pki, CA file under pki)
const LEAVES: [(&str, &str, &str); 7] = [
    ("apiserver", "apiserver.crt", "ca.crt"),
    (
        "apiserver-kubelet-client",
        "apiserver-kubelet-client.crt",
        "ca.crt",
    ),
    (
        "apiserver-etcd-client",
        "apiserver-etcd-client.crt",
        "etcd/ca.crt",
    ),
    (
        "front-proxy-client",
        "front-proxy-client.crt",
        "front-proxy-ca.crt",
    ),
    ("etcd-server", "etcd/server.crt", "etcd/ca.crt"),
    ("etcd-peer", "etcd/peer.crt", "etcd/ca.crt"),
    (
        "etcd-healthcheck-client",
        "etcd/healthcheck-client.crt",
        "etcd/ca.crt",
    ),
];
const CONFS: [&str; 3] = ["admin.conf", "controller-manager.conf", "scheduler.conf"];

fn read_cert(path: &Path) -> Cert {
    Cert::from_pem(path, &std::fs::read(path).unwrap())
        .unwrap()
        .0
}

fn conf_cert(path: &Path) -> Cert {
    let text = std::fs::read_to_string(path).unwrap();
    match kastellan_pki::kubeconfig::client_credentials(path, &text)
        .unwrap()
        .certificate
    {
        kastellan_pki::kubeconfig::Credential::Embedded { pem, .. } => {
            Cert::from_pem(path, &pem).unwrap().0
        }
        other => panic!("{other:?}"),
    }
}

fn conf_key_b64(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match kastellan_pki::kubeconfig::client_credentials(path, &text)
        .unwrap()
        .key
    {
        Some(kastellan_pki::kubeconfig::Credential::Embedded { base64, .. }) => base64,
        other => panic!("{other:?}"),
    }
}

/// Asserts that kastellan's report agrees with kubeadm's table on every row kubeadm prints.
fn assert_agrees(node: &Node, report: &kastellan_pki::CheckReport) {
    let kubeadm = node.check_expiration();
    assert_eq!(kubeadm.certificates.len(), 10, "{kubeadm:?}");
    assert_eq!(kubeadm.authorities.len(), 3, "{kubeadm:?}");
    for (k, ours) in kubeadm
        .certificates
        .iter()
        .map(|k| (k, report.certificates.iter().find(|r| r.name == k.name)))
        .chain(
            kubeadm
                .authorities
                .iter()
                .map(|k| (k, report.authorities.iter().find(|r| r.name == k.name))),
        )
    {
        let ours = ours.unwrap_or_else(|| panic!("kastellan does not list {}", k.name));
        if k.missing {
            assert_eq!(ours.status, Status::Absent, "{}", k.name);
            continue;
        }
        assert_eq!(
            ours.not_after.map(kubeadm_date).as_deref(),
            Some(k.expires.as_str()),
            "expiry of {}",
            k.name
        );
        assert_eq!(
            ours.residual.as_deref(),
            Some(k.residual.as_str()),
            "residual time of {}",
            k.name
        );
        let em = ours
            .externally_managed
            .map(|b| if b { "yes" } else { "no" });
        assert_eq!(
            em,
            Some(k.externally_managed.as_str()),
            "externally managed of {}",
            k.name
        );
        if !k.ca.is_empty() {
            assert_eq!(
                ours.ca.map(CaId::name),
                Some(k.ca.as_str()),
                "CA of {}",
                k.name
            );
        }
    }
}

#[test]
fn kubeadm_real_check_agrees_with_check_expiration() {
    let node = Node::init();
    let inv = Inventory::load(&node.layout());
    let report = check(&inv, Timestamp::now(), 30);
    assert_eq!(report.verdict(), Verdict::Healthy, "{report:#?}");
    assert_agrees(&node, &report);
    // What kubeadm does not list: kubelet.conf present, kubelet PKI and super-admin.conf absent.
    assert_eq!(report.row("kubelet.conf").unwrap().status, Status::Ok);
    for absent in ["super-admin.conf", "kubelet-client", "kubelet-serving"] {
        let r = report.row(absent).unwrap();
        assert_eq!(r.status, Status::Absent, "{absent}");
        assert!(r.optional, "{absent}");
    }
    // SANs and key of the apiserver certificate as kubeadm made them.
    let api = report.row("apiserver").unwrap();
    for san in [
        "DNS:cp1",
        "DNS:kubernetes.default.svc.cluster.local",
        "IP:10.96.0.1",
        "IP:10.77.0.11",
    ] {
        assert!(
            api.sans.contains(&san.to_string()),
            "{san} in {:?}",
            api.sans
        );
    }
    assert_eq!(
        api.key.as_ref().map(ToString::to_string).as_deref(),
        Some("RSA 2048")
    );
    assert_eq!(
        report
            .row("etcd-server")
            .unwrap()
            .sans
            .last()
            .map(String::as_str),
        Some("IP:::1")
    );
    // The JSON is what `-o json` prints.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["certificates"][1]["name"], "apiserver");
    assert_eq!(json["certificates"][1]["ca"], "ca");
    assert_eq!(json["authorities"][1]["name"], "etcd-ca");
}

#[test]
fn kubeadm_real_renew_all_keeps_identity_and_key() {
    let node = Node::init();
    let pki = node.pki();
    let before_certs: Vec<Cert> = LEAVES
        .iter()
        .map(|(_, f, _)| read_cert(&pki.join(f)))
        .collect();
    let before_files: Vec<Vec<u8>> = LEAVES
        .iter()
        .map(|(_, f, _)| std::fs::read(pki.join(f)).unwrap())
        .collect();
    let before_confs: Vec<Cert> = CONFS
        .iter()
        .map(|c| conf_cert(&node.etc().join(c)))
        .collect();
    let before_keys = snapshot(&pki);
    let conf_keys: Vec<String> = CONFS
        .iter()
        .map(|c| conf_key_b64(&node.etc().join(c)))
        .collect();
    let modes: Vec<u32> = CONFS.iter().map(|c| mode(&node.etc().join(c))).collect();
    let kubelet_conf = std::fs::read(node.etc().join("kubelet.conf")).unwrap();

    // Let the clock move so the new expiry is visibly later than kubeadm's.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let inv = Inventory::load(&node.layout());
    let now = Timestamp::now();
    let plan = renew::plan(
        &inv,
        &RenewRequest {
            targets: Targets::All,
            new_key: false,
            backup_dir: None,
        },
        now,
    )
    .unwrap();
    assert_eq!(plan.renew.len(), 10, "{plan:#?}");
    assert!(
        plan.skipped
            .iter()
            .any(|s| s.name == "ca" && s.reason.contains("not renewed")),
        "{plan:#?}"
    );
    let names: Vec<&str> = plan.restart.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler"
        ]
    );
    let signed = renew::sign(&inv, &plan, true).unwrap();
    let applied = renew::apply(&inv, &plan, signed).unwrap();
    assert!(
        applied.backup_dir.starts_with(node.etc().join("tmp")),
        "{}",
        applied.backup_dir.display()
    );

    for (i, (name, file, ca)) in LEAVES.iter().enumerate() {
        let path = pki.join(file);
        let (ok, out) = openssl(&[
            "verify",
            "-CAfile",
            pki.join(ca).to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        assert!(ok, "openssl verify {name}: {out}");
        let new = read_cert(&path);
        let old = &before_certs[i];
        assert_eq!(new.facts.subject, old.facts.subject, "{name}");
        assert_eq!(new.facts.sans, old.facts.sans, "{name}");
        assert_eq!(new.facts.key_usage, old.facts.key_usage, "{name}");
        assert_eq!(new.facts.ext_key_usage, old.facts.ext_key_usage, "{name}");
        assert_eq!(
            new.public_key_bits().unwrap(),
            old.public_key_bits().unwrap(),
            "{name}: key kept"
        );
        assert_ne!(new.facts.serial, old.facts.serial, "{name}: new serial");
        assert_eq!(
            new.facts.not_after.as_second(),
            now.as_second() + 365 * 86400,
            "{name}: one year"
        );
        assert!(new.facts.not_after > old.facts.not_after, "{name}");
        // Same mode, old file in the backup.
        assert_eq!(
            mode(&path),
            before_keys[Path::new(file)].1,
            "{name}: mode kept"
        );
        let backup = applied.backup_dir.join("pki").join(file);
        assert_eq!(
            std::fs::read(&backup).unwrap(),
            before_files[i],
            "{name}: backup"
        );
        // The openssl text view of usages is unchanged too.
        let text = |p: &Path| {
            let (_, t) = openssl(&[
                "x509",
                "-noout",
                "-ext",
                "subjectAltName,keyUsage,extendedKeyUsage",
                "-in",
                p.to_str().unwrap(),
            ]);
            t
        };
        assert_eq!(text(&path), text(&backup), "{name}: openssl -ext view");
    }
    // Keys untouched, byte for byte.
    let after = snapshot(&pki);
    for (p, v) in &before_keys {
        if p.extension().is_some_and(|e| e == "key") || p.ends_with("sa.pub") {
            assert_eq!(after.get(p), Some(v), "{} unchanged", p.display());
        }
    }
    for (i, c) in CONFS.iter().enumerate() {
        let path = node.etc().join(c);
        let new = conf_cert(&path);
        assert_eq!(new.facts.subject, before_confs[i].facts.subject, "{c}");
        assert_eq!(
            new.facts.ext_key_usage, before_confs[i].facts.ext_key_usage,
            "{c}"
        );
        assert!(new.facts.not_after > before_confs[i].facts.not_after, "{c}");
        assert_eq!(conf_key_b64(&path), conf_keys[i], "{c}: client key kept");
        assert_eq!(mode(&path), modes[i], "{c}: mode kept");
        assert!(applied.backup_dir.join(c).is_file(), "{c}: backed up");
        // The CA cert embedded in the kubeconfig verifies the new client cert.
        let (ok, out) = verify_conf_cert(&path, &pki.join("ca.crt"));
        assert!(ok, "{c}: {out}");
    }
    assert_eq!(
        std::fs::read(node.etc().join("kubelet.conf")).unwrap(),
        kubelet_conf,
        "kubelet.conf left to the kubelet"
    );

    // kubeadm reads the new dates, and Go's verifier accepts every renewed certificate.
    let report = check(&Inventory::load(&node.layout()), Timestamp::now(), 30);
    assert_agrees(&node, &report);
    let kubeadm = node.check_expiration();
    let api = kubeadm
        .certificates
        .iter()
        .find(|r| r.name == "apiserver")
        .unwrap();
    assert_eq!(
        api.expires,
        kubeadm_date(Timestamp::from_second(now.as_second() + 365 * 86400).unwrap())
    );
    let out = node.kubeadm_ok(&["init", "phase", "certs", "all", "--config", "/kubeadm.yaml"]);
    for (name, file, _) in LEAVES {
        let shown = file.trim_end_matches(".crt");
        assert!(
            out.contains(&format!(
                "Using existing {shown} certificate and key on disk"
            )),
            "kubeadm rejected {name}:\n{out}"
        );
    }
    let out = node.kubeadm_ok(&[
        "init",
        "phase",
        "kubeconfig",
        "all",
        "--config",
        "/kubeadm.yaml",
        "--kubeconfig-dir",
        "/etc/kubernetes",
    ]);
    assert_eq!(
        out.matches("Using existing kubeconfig file").count(),
        4,
        "{out}"
    );
}

fn verify_conf_cert(conf: &Path, ca: &Path) -> (bool, String) {
    let cert = conf_cert(conf);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.crt");
    std::fs::write(&p, kastellan_pki::pem::encode("CERTIFICATE", &cert.der)).unwrap();
    openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        p.to_str().unwrap(),
    ])
}

#[test]
fn kubeadm_real_renew_new_key() {
    let node = Node::init();
    let pki = node.pki();
    let old_key = std::fs::read(pki.join("apiserver.key")).unwrap();
    let old_conf_key = conf_key_b64(&node.etc().join("admin.conf"));
    let inv = Inventory::load(&node.layout());
    let req = RenewRequest {
        targets: Targets::Names(vec![
            "apiserver".into(),
            "etcd/server".into(),
            "admin.conf".into(),
        ]),
        new_key: true,
        backup_dir: Some(node.root.join("backup")),
    };
    let plan = renew::plan(&inv, &req, Timestamp::now()).unwrap();
    assert_eq!(
        plan.renew
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["apiserver", "etcd-server", "admin.conf"]
    );
    let signed = renew::sign(&inv, &plan, true).unwrap();
    renew::apply(&inv, &plan, signed).unwrap();

    let new_key = std::fs::read(pki.join("apiserver.key")).unwrap();
    assert_ne!(new_key, old_key);
    assert!(
        new_key.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"),
        "PKCS#1 like kubeadm"
    );
    assert_eq!(mode(&pki.join("apiserver.key")), 0o600);
    assert_eq!(
        std::fs::read(node.root.join("backup/pki/apiserver.key")).unwrap(),
        old_key
    );
    for (cert, key, ca) in [
        ("apiserver", "apiserver", "ca"),
        ("etcd/server", "etcd/server", "etcd/ca"),
    ] {
        let c = pki.join(format!("{cert}.crt"));
        let (ok, out) = openssl(&[
            "verify",
            "-CAfile",
            pki.join(format!("{ca}.crt")).to_str().unwrap(),
            c.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        let (_, a) = openssl(&["x509", "-noout", "-pubkey", "-in", c.to_str().unwrap()]);
        let (_, b) = openssl(&[
            "pkey",
            "-pubout",
            "-in",
            pki.join(format!("{key}.key")).to_str().unwrap(),
        ]);
        assert_eq!(a, b, "{cert}: new key matches new certificate");
    }
    assert_ne!(conf_key_b64(&node.etc().join("admin.conf")), old_conf_key);
    // kubeadm (Go) accepts the new pairs, and sees admin.conf as valid.
    let out = node.kubeadm_ok(&[
        "init",
        "phase",
        "certs",
        "apiserver",
        "--config",
        "/kubeadm.yaml",
    ]);
    assert!(
        out.contains("Using existing apiserver certificate and key on disk"),
        "{out}"
    );
    let out = node.kubeadm_ok(&[
        "init",
        "phase",
        "certs",
        "etcd-server",
        "--config",
        "/kubeadm.yaml",
    ]);
    assert!(
        out.contains("Using existing etcd/server certificate and key on disk"),
        "{out}"
    );
    assert_agrees(
        &node,
        &check(&Inventory::load(&node.layout()), Timestamp::now(), 30),
    );
}

#[test]
fn kubeadm_real_expiring_and_expired_are_flagged_like_kubeadm() {
    let node = Node::init();
    let day = 86400;
    support::replace_leaf(
        &node,
        "apiserver-etcd-client",
        "etcd/ca",
        "kube-apiserver-etcd-client",
        now_secs() + 10 * day + 3600,
    );
    support::replace_leaf(
        &node,
        "front-proxy-client",
        "front-proxy-ca",
        "front-proxy-client",
        now_secs() - day,
    );
    let report = check(&Inventory::load(&node.layout()), Timestamp::now(), 30);
    assert_eq!(
        report.row("apiserver-etcd-client").unwrap().status,
        Status::Expiring
    );
    assert_eq!(
        report
            .row("apiserver-etcd-client")
            .unwrap()
            .residual
            .as_deref(),
        Some("10d")
    );
    assert_eq!(
        report.row("front-proxy-client").unwrap().status,
        Status::Expired
    );
    assert_eq!(
        report
            .row("front-proxy-client")
            .unwrap()
            .residual
            .as_deref(),
        Some("<invalid>")
    );
    assert_eq!(report.row("apiserver").unwrap().status, Status::Ok);
    assert_eq!(report.verdict(), Verdict::Unhealthy);
    assert_eq!((report.summary.expiring, report.summary.expired), (1, 1));
    assert_agrees(&node, &report);
    // A narrower window: only the expired one counts, still unhealthy.
    let report = check(&Inventory::load(&node.layout()), Timestamp::now(), 5);
    assert_eq!(
        report.row("apiserver-etcd-client").unwrap().status,
        Status::Ok
    );
    assert_eq!(report.verdict(), Verdict::Unhealthy);

    // Renewing the expired one brings it back, with its own subject and usages.
    let inv = Inventory::load(&node.layout());
    let req = RenewRequest {
        targets: Targets::Names(vec!["front-proxy-client".into()]),
        new_key: false,
        backup_dir: None,
    };
    let plan = renew::plan(&inv, &req, Timestamp::now()).unwrap();
    renew::apply(&inv, &plan, renew::sign(&inv, &plan, true).unwrap()).unwrap();
    let report = check(&Inventory::load(&node.layout()), Timestamp::now(), 30);
    assert_eq!(report.row("front-proxy-client").unwrap().status, Status::Ok);
    assert_eq!(
        report.row("front-proxy-client").unwrap().ext_key_usage,
        ["clientAuth"]
    );
}

#[test]
fn kubeadm_real_missing_ca_key_refuses_and_writes_nothing() {
    let node = Node::init();
    std::fs::remove_file(node.pki().join("front-proxy-ca.key")).unwrap();
    let report = check(&Inventory::load(&node.layout()), Timestamp::now(), 30);
    assert_eq!(
        report.row("front-proxy-ca").unwrap().externally_managed,
        Some(true)
    );
    assert_eq!(
        report.row("front-proxy-client").unwrap().externally_managed,
        Some(true)
    );
    assert_eq!(
        report.row("apiserver").unwrap().externally_managed,
        Some(false)
    );
    assert_agrees(&node, &report);

    let before = snapshot(&node.root);
    let inv = Inventory::load(&node.layout());
    let err = renew::plan(
        &inv,
        &RenewRequest {
            targets: Targets::All,
            new_key: false,
            backup_dir: None,
        },
        Timestamp::now(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::ExternalCa { .. }), "{msg}");
    assert!(
        msg.contains("front-proxy-client") && msg.contains("'front-proxy-ca'"),
        "{msg}"
    );
    assert!(
        msg.contains(&node.pki().join("front-proxy-ca.key").display().to_string()),
        "{msg}"
    );
    assert_eq!(snapshot(&node.root), before, "nothing written");
    // The certificates the remaining CAs sign can still be renewed by name.
    let req = RenewRequest {
        targets: Targets::Names(vec!["apiserver".into()]),
        new_key: false,
        backup_dir: None,
    };
    assert!(renew::plan(&inv, &req, Timestamp::now()).is_ok());
}

fn expect_nothing_written(node: &Node, what: &str, check_msg: impl Fn(&str)) {
    let before = snapshot(&node.root);
    let inv = Inventory::load(&node.layout());
    let result = renew::plan(
        &inv,
        &RenewRequest {
            targets: Targets::All,
            new_key: false,
            backup_dir: None,
        },
        Timestamp::now(),
    )
    .and_then(|plan| renew::sign(&inv, &plan, true).map(|s| (plan, s)))
    .and_then(|(plan, s)| renew::apply(&inv, &plan, s));
    let err = result.expect_err(what);
    check_msg(&err.to_string());
    assert_eq!(snapshot(&node.root), before, "{what}: nothing written");
    assert!(
        !node.etc().join("tmp").exists(),
        "{what}: no backup dir either"
    );
}

#[test]
fn kubeadm_real_corrupted_pem_names_the_file_and_writes_nothing() {
    let node = Node::init();
    let path = node.pki().join("apiserver.crt");
    let text = std::fs::read_to_string(&path).unwrap();
    let corrupted: String = text.replacen("MII", "M!I", 1);
    std::fs::write(&path, corrupted).unwrap();
    let report = check(&Inventory::load(&node.layout()), Timestamp::now(), 30);
    let row = report.row("apiserver").unwrap();
    assert_eq!(row.status, Status::Error);
    assert!(
        row.error
            .as_deref()
            .unwrap()
            .contains(&path.display().to_string()),
        "{row:?}"
    );
    assert_eq!(report.verdict(), Verdict::Errors);
    expect_nothing_written(&node, "corrupted PEM", |msg| {
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("PEM"),
            "{msg}"
        )
    });

    // A key that is PEM but garbage inside.
    let node = Node::init();
    let key = node.pki().join("etcd/peer.key");
    std::fs::write(
        &key,
        kastellan_pki::pem::encode("RSA PRIVATE KEY", b"\x30\x03\x02\x01\x00"),
    )
    .unwrap();
    expect_nothing_written(&node, "garbage key", |msg| {
        assert!(msg.contains(&key.display().to_string()), "{msg}")
    });
}

#[test]
fn kubeadm_real_key_not_matching_certificate_writes_nothing() {
    let node = Node::init();
    let pki = node.pki();
    std::fs::copy(pki.join("etcd/server.key"), pki.join("etcd/peer.key")).unwrap();
    expect_nothing_written(&node, "mismatched key", |msg| {
        assert!(msg.contains("does not match"), "{msg}");
        assert!(
            msg.contains(&pki.join("etcd/peer.key").display().to_string()),
            "{msg}"
        );
        assert!(
            msg.contains(&pki.join("etcd/peer.crt").display().to_string()),
            "{msg}"
        );
    });
    // The same inside a kubeconfig: scheduler.conf with controller-manager.conf's key.
    let node = Node::init();
    let cm = std::fs::read_to_string(node.etc().join("controller-manager.conf")).unwrap();
    let sched_path = node.etc().join("scheduler.conf");
    let sched = std::fs::read_to_string(&sched_path).unwrap();
    let cm_key = conf_key_b64(&node.etc().join("controller-manager.conf"));
    let sched_key = conf_key_b64(&sched_path);
    assert!(cm.contains(&cm_key));
    std::fs::write(&sched_path, sched.replace(&sched_key, &cm_key)).unwrap();
    expect_nothing_written(&node, "mismatched kubeconfig key", |msg| {
        assert!(
            msg.contains("scheduler.conf") && msg.contains("does not match"),
            "{msg}"
        )
    });
}

#[test]
fn kubeadm_real_pkcs8_key_is_kept_as_is() {
    let node = Node::init();
    let key = node.pki().join("apiserver.key");
    let (ok, pkcs8) = openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", key.to_str().unwrap()]);
    assert!(
        ok && pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"),
        "{pkcs8}"
    );
    std::fs::write(&key, &pkcs8).unwrap();
    let inv = Inventory::load(&node.layout());
    let req = RenewRequest {
        targets: Targets::Names(vec!["apiserver".into()]),
        new_key: false,
        backup_dir: None,
    };
    let plan = renew::plan(&inv, &req, Timestamp::now()).unwrap();
    renew::apply(&inv, &plan, renew::sign(&inv, &plan, true).unwrap()).unwrap();
    assert_eq!(std::fs::read_to_string(&key).unwrap(), pkcs8);
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        node.pki().join("ca.crt").to_str().unwrap(),
        node.pki().join("apiserver.crt").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    // With --new-key the PKCS#8 key is replaced by a PKCS#8 key.
    let inv = Inventory::load(&node.layout());
    let req = RenewRequest {
        targets: Targets::Names(vec!["apiserver".into()]),
        new_key: true,
        backup_dir: None,
    };
    let plan = renew::plan(&inv, &req, Timestamp::now()).unwrap();
    renew::apply(&inv, &plan, renew::sign(&inv, &plan, true).unwrap()).unwrap();
    let new = std::fs::read_to_string(&key).unwrap();
    assert!(new.starts_with("-----BEGIN PRIVATE KEY-----") && new != pkcs8);
}

#[test]
fn kubeadm_real_dry_run_writes_nothing() {
    let node = Node::init();
    let before = snapshot(&node.root);
    let inv = Inventory::load(&node.layout());
    let req = RenewRequest {
        targets: Targets::All,
        new_key: true,
        backup_dir: None,
    };
    let plan = renew::plan(&inv, &req, Timestamp::now()).unwrap();
    let signed = renew::sign(&inv, &plan, false).unwrap();
    // Dry runs sign with the old keys (proving they load and match) and make no new ones;
    // the plan still lists the 7 key files a real run would replace.
    assert_eq!(signed.writes.len(), 10);
    assert_eq!(
        plan.renew.iter().map(|r| r.writes.len()).sum::<usize>(),
        10 + 7
    );
    assert_eq!(snapshot(&node.root), before);
    // The plan is a stable, reviewable document.
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["renew"][0]["name"], "admin.conf");
    assert_eq!(
        json["renew"][1]["writes"][1],
        node.pki().join("apiserver.key").display().to_string()
    );
    assert_eq!(json["restart"][0], "etcd");
}

#[test]
fn kubeadm_real_kubelet_certificates_are_reported() {
    let node = Node::init();
    let kpki = node.root.join("var/lib/kubelet/pki");
    std::fs::create_dir_all(&kpki).unwrap();
    // kubelet-client-current.pem -> dated file with cert and EC key, signed by the cluster CA.
    let issuer = support::issuer(&node, "ca");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:node:cp1");
    params.not_before = time::OffsetDateTime::now_utc();
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(20);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let dated = kpki.join("kubelet-client-2026-11-21-00-00-00.pem");
    std::fs::write(&dated, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
    std::os::unix::fs::symlink(&dated, kpki.join("kubelet-client-current.pem")).unwrap();
    // The self-signed serving certificate with its own CA bundled after it.
    let kca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut kca = rcgen::CertificateParams::default();
    kca.distinguished_name = rcgen::DistinguishedName::new();
    kca.distinguished_name
        .push(rcgen::DnType::CommonName, "cp1-ca@1700000000");
    kca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let kca_cert = kca.self_signed(&kca_key).unwrap();
    let kca_issuer = rcgen::Issuer::new(kca, kca_key);
    let skey = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut sp = rcgen::CertificateParams::new(vec!["cp1".to_string()]).unwrap();
    sp.distinguished_name = rcgen::DistinguishedName::new();
    sp.distinguished_name
        .push(rcgen::DnType::CommonName, "cp1@1700000000");
    sp.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let scert = sp.signed_by(&skey, &kca_issuer).unwrap();
    std::fs::write(
        kpki.join("kubelet.crt"),
        format!("{}{}", scert.pem(), kca_cert.pem()),
    )
    .unwrap();
    std::fs::write(kpki.join("kubelet.key"), skey.serialize_pem()).unwrap();
    // kubelet.conf pointing at the rotated file, as after kubeadm's kubelet-finalize phase.
    let kc = node.etc().join("kubelet.conf");
    let text = std::fs::read_to_string(&kc).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("client-certificate-data:") {
            out.push_str(&format!(
                "    client-certificate: {}\n",
                kpki.join("kubelet-client-current.pem").display()
            ));
        } else if line.trim_start().starts_with("client-key-data:") {
            out.push_str(&format!(
                "    client-key: {}\n",
                kpki.join("kubelet-client-current.pem").display()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&kc, out).unwrap();

    let report = check(&Inventory::load(&node.layout()), Timestamp::now(), 30);
    let client = report.row("kubelet-client").unwrap();
    assert_eq!(client.status, Status::Expiring, "20 days left");
    assert_eq!(client.ca, Some(CaId::Ca));
    assert_eq!(
        client.key.as_ref().map(ToString::to_string).as_deref(),
        Some("ECDSA P-256")
    );
    let conf = report.row("kubelet.conf").unwrap();
    assert_eq!(conf.path, kpki.join("kubelet-client-current.pem"));
    assert_eq!(conf.not_after, client.not_after);
    let serving = report.row("kubelet-serving").unwrap();
    assert_eq!(serving.status, Status::Ok);
    assert_eq!(serving.ca, None);
    assert_eq!(serving.issuer.as_deref(), Some("CN=cp1-ca@1700000000"));
    assert_eq!(serving.externally_managed, None);
    assert_eq!(serving.sans, ["DNS:cp1"]);
    assert_eq!(report.verdict(), Verdict::Unhealthy);
    // kubeadm's own rows are unaffected.
    assert_agrees(&node, &report);
    // And the kubelet's certificates are not for `renew`.
    let inv = Inventory::load(&node.layout());
    let err = renew::plan(
        &inv,
        &RenewRequest {
            targets: Targets::Names(vec!["kubelet.conf".into()]),
            new_key: false,
            backup_dir: None,
        },
        Timestamp::now(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("kubelet"), "{err}");
}

/// Issue 10: the renewal's executor steps. A renewal step that fails (here: the key of
/// the ninth certificate no longer loads) puts back every file the steps before it
/// replaced, and the journal goes: the node is exactly as it was, apart from the backup
/// directory.
#[test]
fn kubeadm_real_renew_steps_failure_puts_every_file_back() {
    use kastellan_pki::steps::{self, Action, Basis, Context, NodeFacts};
    let node = Node::init();
    let inv = Inventory::load(&node.layout());
    let req = RenewRequest {
        targets: Targets::All,
        new_key: true,
        backup_dir: Some(node.root.join("backup")),
    };
    let plan = renew::plan(&inv, &req, Timestamp::now()).unwrap();
    let exec = steps::exec_plan("t", "cp1", NodeFacts::of(&inv), plan, None);
    assert_eq!(exec.steps.len(), 11);
    assert_eq!(
        exec.steps[9].phase, "renew",
        "step 10 renews front-proxy-client"
    );
    // Break the key of step 10's certificate after planning.
    let key = node.pki().join("front-proxy-client.key");
    let broken = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    std::fs::write(&key, broken).unwrap();
    let before = snapshot(&node.etc());
    let journal = node.root.join("state/journal.json");
    let run = kastellan_exec::Run::<Action, Basis>::start(exec, &journal).unwrap();
    let ctx = Context::new(node.layout(), Box::new(|_| true));
    let failure = run.run_all(&ctx, |_, _| {}).unwrap_err();
    assert_eq!(failure.step, 10);
    assert_eq!(failure.undone, [9, 8, 7, 6, 5, 4, 3, 2]);
    assert!(failure.rolled_back);
    assert!(failure.error.to_string().contains("front-proxy-client.key"));
    assert!(!journal.exists());
    let mut after = snapshot(&node.etc());
    after.retain(|p, _| !p.starts_with("tmp"));
    assert_eq!(after, before, "every file as it was, modes too");
    // The backup directory holds the old files.
    assert!(node.root.join("backup/pki/apiserver.key").is_file());
}

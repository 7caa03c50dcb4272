//! `kastellan backup schedule --systemd` under a real systemd (tier `systemd_`; root),
//! booted in namespaces of its own as the restore tests do (`restore_systemd`): etcd
//! 3.4 runs as a unit on the namespace's loopback, and the API that `backup create`
//! reads is the stand-in of `crash::FakeApi`, listening on that same loopback (its
//! thread joins systemd's network namespace). The schedule's units are written into
//! the test's unit directory, enabled, the service started as the timer would start it,
//! and `backup schedule status` read back from systemd.
//!
//! systemd's own default dependencies of a service and a timer require
//! `sysinit.target`; the isolated systemd sees no system unit, so the test supplies an
//! empty `sysinit.target` and `timers.target` (`DefaultDependencies=no`, pulling
//! nothing). The schedule's units themselves are as kastellan writes them for a node.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;
use std::time::Instant;

use crate::crash::FakeApi;
use crate::restore_systemd::{Root, Systemd, chmod, kastellan_in, wait_healthy};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|it| {
            it.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn systemd_backup_schedule_writes_enables_runs_and_reports_17() {
    let started = Instant::now();
    let root = Root::new("schedule");
    let r = &root.0;
    let units = r.join("units");
    for t in ["sysinit.target", "timers.target"] {
        std::fs::write(
            units.join(t),
            "[Unit]\nDescription=stand-in (kastellan test)\nDefaultDependencies=no\n",
        )
        .unwrap();
    }
    let data = r.join("etcd-data");
    std::fs::create_dir_all(&data).unwrap();
    chmod(&data, 0o700);
    std::fs::write(
        units.join("kl-etcd.service"),
        format!(
            "[Unit]\nDescription=etcd (kastellan test)\nDefaultDependencies=no\n\n[Service]\nType=notify\nExecStart=/usr/bin/etcd --name e1 --data-dir {data} --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster e1=http://127.0.0.1:2380\nStandardOutput=append:{log}\nStandardError=append:{log}\n",
            data = data.display(),
            log = r.join("etcd.log").display(),
        ),
    )
    .unwrap();
    let sd = Systemd::boot(&units);
    sd.ok(&["systemctl", "start", "kl-etcd.service"]);
    let etcdctl = Path::new("/usr/bin/etcdctl");
    wait_healthy(&sd, etcdctl);
    let api = FakeApi::start_in(Some(sd.pid));

    let etc = r.join("etc-kubernetes");
    std::fs::create_dir_all(etc.join("pki")).unwrap();
    std::fs::write(etc.join("pki/ca.crt"), b"not a real certificate").unwrap();
    std::fs::write(
        etc.join("admin.conf"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n",
            api.port
        ),
    )
    .unwrap();
    let backups = r.join("backups");
    let bin = kastellan_in(r).display().to_string();
    let (backups_s, etc_s) = (backups.display().to_string(), etc.display().to_string());
    let schedule = |extra: &[&str]| -> Output {
        let mut cmd = vec![
            bin.as_str(),
            "backup",
            "schedule",
            "--every",
            "6h",
            "--keep-last",
            "3",
            "--systemd",
            "--name",
            "kl-backup",
            "--dir",
            &backups_s,
            "--etc-kubernetes",
            &etc_s,
            "--allow-unencrypted-secrets",
            "--endpoints",
            "http://127.0.0.1:2379",
        ];
        cmd.extend(extra);
        sd.run(&cmd)
    };
    let status = || {
        sd.run(&[
            bin.as_str(),
            "backup",
            "schedule",
            "status",
            "--name",
            "kl-backup",
            "-o",
            "json",
        ])
    };

    // The dry run prints both units and changes nothing: no file, no unit known.
    let before = crate::tree::snapshot(&units);
    let out = schedule(&["--dry-run"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for want in [
        "kl-backup.service",
        "kl-backup.timer",
        "Type=oneshot",
        "OnCalendar=*-*-* 00/6:00:00",
        "Persistent=true",
        "RandomizedDelaySec=30min",
        "backup prune --dir",
        "--keep-last 3",
    ] {
        assert!(stdout.contains(want), "{want} missing:\n{stdout}");
    }
    crate::tree::assert_unchanged(&units, &before, "the dry run");
    assert!(!backups.exists());
    let out = status();
    assert_eq!(
        out.status.code(),
        Some(1),
        "not installed yet: {}",
        text(&out.stdout)
    );

    // Installed: both units written 0644, the timer enabled and waiting.
    let out = schedule(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for u in ["kl-backup.service", "kl-backup.timer"] {
        let mode = std::fs::metadata(units.join(u))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644, "{u}");
    }
    assert_eq!(
        sd.ok(&["systemctl", "is-enabled", "kl-backup.timer"])
            .trim(),
        "enabled"
    );
    assert_eq!(
        sd.ok(&["systemctl", "is-active", "kl-backup.timer"]).trim(),
        "active"
    );
    let out = status();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["lastRun"], serde_json::Value::Null, "{doc}");
    assert!(doc["nextRun"].is_string(), "{doc}");

    // The timer's service, started as the timer starts it: a bundle lands, pruned to 3.
    sd.ok(&["systemctl", "start", "kl-backup.service"]);
    let landed = files(&backups);
    assert_eq!(landed.len(), 2, "a bundle and its sidecar: {landed:?}");
    assert!(landed[0].ends_with(".tar.zst"), "{landed:?}");
    let out = status();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["lastResult"], "success", "{doc}");
    assert_eq!(doc["lastExitStatus"], 0, "{doc}");
    assert!(
        doc["lastRun"].is_string() && doc["nextRun"].is_string(),
        "{doc}"
    );
    assert!(doc["enabled"].as_bool().unwrap() && doc["active"].as_bool().unwrap());
    let human = sd.run(&[
        bin.as_str(),
        "backup",
        "schedule",
        "status",
        "--name",
        "kl-backup",
    ]);
    let human = text(&human.stdout);
    assert!(
        human.contains("result    success, exit status 0"),
        "{human}"
    );

    // A run that fails (etcd stopped) is reported as failed, exit 1.
    sd.ok(&["systemctl", "stop", "kl-etcd.service"]);
    let out = sd.run(&["systemctl", "start", "kl-backup.service"]);
    assert!(!out.status.success());
    let out = status();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["lastResult"], "exit-code", "{doc}");
    assert_eq!(doc["lastExitStatus"], 2, "{doc}");
    assert_eq!(files(&backups).len(), 2, "the failed run left nothing");
    eprintln!("schedule under systemd: {:?}", started.elapsed());
}

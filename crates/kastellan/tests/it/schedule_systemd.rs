//! `kastellan backup schedule --systemd` under a real systemd (tier `systemd_`; root),
//! booted in namespaces of its own as the restore tests do (`restore_systemd`): etcd
//! 3.4 runs as a unit on the namespace's loopback, and the API that `backup create`
//! reads is the stand-in of `crash::FakeApi`, listening on that same loopback (its
//! thread joins systemd's network namespace). The schedule's units are written into
//! the test's unit directory, enabled, the service started as the timer would start it,
//! and `backup schedule status` read back from systemd.
//!
//! Tier `lab`: the same systemd booted in the lab's cp1 instead (its network namespace,
//! its `/etc/kubernetes`), so the schedule backs up the lab's real cluster (see
//! `lab_scheduled_backup_of_cp1_lands_locally_and_in_s3_and_prunes_by_tier_17`).
//!
//! systemd's own default dependencies of a service and a timer require
//! `sysinit.target`; the isolated systemd sees no system unit, so the test supplies an
//! empty `sysinit.target` and `timers.target` (`DefaultDependencies=no`, pulling
//! nothing). The schedule's units themselves are as kastellan writes them for a node.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use crate::crash::FakeApi;
use crate::restore_systemd::{Place, Root, Systemd, chmod, kastellan_in, wait_healthy};
use crate::{LabGuard, kastellan, kubectl, lab_lock, stdout_ok};

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

/// The empty `sysinit.target` and `timers.target` a service's and a timer's default
/// dependencies need, in the test's unit directory.
fn stand_in_targets(units: &Path) {
    for t in ["sysinit.target", "timers.target"] {
        std::fs::write(
            units.join(t),
            "[Unit]\nDescription=stand-in (kastellan test)\nDefaultDependencies=no\n",
        )
        .unwrap();
    }
}

/// `backup schedule status --name kl-backup -o json`, run in systemd's namespaces: its
/// exit code and document.
fn schedule_status(sd: &Systemd, bin: &str) -> (Option<i32>, serde_json::Value) {
    let out = sd.run(&[
        bin,
        "backup",
        "schedule",
        "status",
        "--name",
        "kl-backup",
        "-o",
        "json",
    ]);
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code(), doc)
}

/// `kastellan backup schedule` of both tests: every 6 hours, the last 3 kept, as
/// systemd units named `kl-backup`, bundles into `backups`, Secrets unencrypted.
fn schedule_line<'a>(bin: &'a str, backups: &'a str) -> Vec<&'a str> {
    vec![
        bin,
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
        backups,
        "--allow-unencrypted-secrets",
    ]
}

#[test]
fn systemd_backup_schedule_writes_enables_runs_and_reports_17() {
    let started = Instant::now();
    let root = Root::new("schedule");
    let r = &root.0;
    let units = r.join("units");
    stand_in_targets(&units);
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
    std::fs::write(etc.join("admin.conf"), api.kubeconfig()).unwrap();
    let backups = r.join("backups");
    let bin = kastellan_in(r).display().to_string();
    let (backups_s, etc_s) = (backups.display().to_string(), etc.display().to_string());
    let schedule = |extra: &[&str]| -> Output {
        let mut cmd = schedule_line(&bin, &backups_s);
        cmd.extend([
            "--etc-kubernetes",
            &etc_s,
            "--endpoints",
            "http://127.0.0.1:2379",
        ]);
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

    let _ = clock_moves_on_copies_and_prunes_by_tier(
        &sd,
        &units,
        r,
        &bin,
        &backups,
        &[
            "--etc-kubernetes",
            &etc_s,
            "--endpoints",
            "http://127.0.0.1:2379",
        ],
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
    assert_eq!(
        files(&backups).len(),
        4,
        "the failed run left nothing: {:?}",
        files(&backups)
    );
    eprintln!("schedule under systemd: {:?}", started.elapsed());
}

/// cp1's `/etc/kubernetes` as the lab keeps it on the host.
const CP1_ETC: &str = "/var/lib/kastellan/lab/nodes/cp1/etc-kubernetes";

/// Issue 17's done-when on the lab (tier `lab`): a scheduled backup of the lab's real
/// cluster (kube-apiserver v1.20.2, etcd 3.4) runs, lands locally and in S3, and the
/// retention prunes by tier as the test's clock moves on.
///
/// The test's systemd boots as in the `systemd_` tier, but in cp1's network namespace
/// (`/run/netns/kl-cp1`, joined, not changed) with cp1's `/etc/kubernetes` bound over
/// `/etc/kubernetes` in its mount namespace: its services see what a backup unit on a
/// real control-plane node sees, so the schedule is installed with the defaults (no
/// `--etc-kubernetes`, no `--endpoints`: etcd's client URL and certificates come from
/// cp1's etcd manifest, the API from its admin.conf). moto's S3 server listens on
/// cp1's loopback (127.0.0.1:9000), started in systemd's namespaces.
///
/// Checked: the service, started as the timer would start it, leaves a bundle of the
/// lab (cluster `kastellan-lab`) that holds a ConfigMap the test made with kubectl
/// (`restore objects --dry-run` on the node, after the ConfigMap was deleted, would
/// create it again); `backup schedule status` reads the run back from systemd; then
/// [`clock_moves_on_copies_and_prunes_by_tier`] with the lab's defaults.
///
/// What differs from a node: the lab's cp1 has no systemd of its own (its control plane
/// runs as processes of the lab's agent), so the test's systemd stands in for it and
/// knows only the test's units; its UTS namespace is its own, not named cp1 (`backup
/// create` does not read the hostname). The systemd, moto and
/// every unit's process die with systemd's pid namespace, then the lab goes down
/// (guards, also on failure).
#[test]
fn lab_scheduled_backup_of_cp1_lands_locally_and_in_s3_and_prunes_by_tier_17() {
    let _lock = lab_lock();
    let started = Instant::now();
    let status = kastellan().args(["lab", "status"]).output().unwrap();
    assert!(
        !status.status.success(),
        "a lab is already up on this machine; run `kastellan lab down` before the lab tests"
    );
    let _lab = LabGuard;
    stdout_ok(
        kastellan()
            .args(["lab", "up", "--timeout", "240"])
            .output()
            .unwrap(),
    );
    let up = started.elapsed();
    let made = kubectl()
        .args([
            "create",
            "configmap",
            "kl-scheduled",
            "-n",
            "default",
            "--from-literal=made-by=issue-17",
        ])
        .output()
        .unwrap();
    stdout_ok(made);

    let root = Root::new("lab-schedule");
    let r = &root.0;
    let units = r.join("units");
    stand_in_targets(&units);
    let sd = Systemd::boot_in(
        &units,
        &Place {
            netns: Some(PathBuf::from("/run/netns/kl-cp1")),
            binds: vec![(PathBuf::from(CP1_ETC), PathBuf::from("/etc/kubernetes"))],
        },
    );
    let bin = kastellan_in(r).display().to_string();
    let backups = r.join("backups");
    let backups_s = backups.display().to_string();
    sd.ok(&schedule_line(&bin, &backups_s));
    // As on a node: the default /etc/kubernetes, etcd found from its manifest there.
    let service = std::fs::read_to_string(units.join("kl-backup.service")).unwrap();
    assert!(
        service.contains("--etc-kubernetes /etc/kubernetes ") && !service.contains("--endpoints"),
        "{service}"
    );
    let (code, doc) = schedule_status(&sd, &bin);
    assert_eq!(code, Some(0), "{doc}");
    assert!(
        doc["enabled"].as_bool().unwrap() && doc["nextRun"].is_string(),
        "{doc}"
    );

    // The service's output in a file of the test's (a drop-in; this systemd has no
    // journald), shown when a run fails.
    let dropin = units.join("kl-backup.service.d");
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(
        dropin.join("output.conf"),
        format!(
            "# The test's, not kastellan's.\n[Service]\nStandardOutput=append:{log}\nStandardError=append:{log}\n",
            log = r.join("backup.log").display()
        ),
    )
    .unwrap();
    sd.ok(&["systemctl", "daemon-reload"]);

    // The timer's service, started as the timer starts it.
    let out = sd.run(&["systemctl", "start", "kl-backup.service"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        std::fs::read_to_string(r.join("backup.log")).unwrap_or_default()
    );
    let landed = files(&backups);
    assert_eq!(landed.len(), 2, "a bundle and its sidecar: {landed:?}");
    let bundle = backups.join(&landed[0]);
    let bundle_s = bundle.display().to_string();
    let (code, doc) = schedule_status(&sd, &bin);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["lastResult"], "success", "{doc}");
    assert_eq!(doc["lastExitStatus"], 0, "{doc}");
    let v: serde_json::Value =
        serde_json::from_str(&sd.ok(&[&bin, "backup", "verify", &bundle_s, "-o", "json"])).unwrap();
    assert_eq!(v["clusterName"], "kastellan-lab", "{v}");

    // The ConfigMap came from the real apiserver: gone from the cluster, the bundle's
    // copy would be created again.
    stdout_ok(
        kubectl()
            .args(["delete", "configmap", "kl-scheduled", "-n", "default"])
            .output()
            .unwrap(),
    );
    let out = sd.run(&[
        &bin,
        "--kubeconfig",
        "/etc/kubernetes/admin.conf",
        "restore",
        "objects",
        "--from",
        &bundle_s,
        "-n",
        "default",
        "--kind",
        "ConfigMap",
        "--name",
        "kl-scheduled",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let dry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects = dry["objects"].as_array().unwrap();
    assert!(
        objects.iter().any(|o| o["kind"] == "ConfigMap"
            && o["namespace"] == "default"
            && o["name"] == "kl-scheduled"
            && o["state"] == "missing"
            && o["result"] == "wouldCreate"),
        "{dry:#}"
    );
    let first = started.elapsed();

    let newest = clock_moves_on_copies_and_prunes_by_tier(&sd, &units, r, &bin, &backups, &[]);
    assert_eq!(newest["clusterName"], "kastellan-lab", "{newest}");
    eprintln!(
        "scheduled backup of the lab: up {up:?}, first run checked {first:?}, all {:?}",
        started.elapsed()
    );
}

/// libfaketime, which the test preloads into its service to move its clock.
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The schedule with an off-node copy and hourly and daily tiers, run four times as the
/// test's clock moves on: the service's clock is moved with libfaketime (a drop-in of
/// the test's, `LD_PRELOAD` and `FAKETIME`; the unit itself is as kastellan writes it),
/// so each bundle is named and dated at that time. After each run, the bundles left
/// locally and in the bucket (moto's S3 server, started in systemd's network namespace)
/// are exactly the ones the tiers keep; the newest copy in the bucket then verifies.
///
/// `cluster`: the flags of `backup create` that find the cluster (none on a lab node,
/// where the defaults do). `backups` holds exactly one bundle, of a real-clock run. The
/// clock starts two days after today (UTC): later than that run whatever the hour, and
/// well within the validity of a fresh cluster's certificates, which the runs present
/// to a real apiserver and etcd. The timer is stopped while the clock moves, so that
/// only the test starts the service (an hourly timer could fire during the test).
fn clock_moves_on_copies_and_prunes_by_tier(
    sd: &Systemd,
    units: &Path,
    r: &Path,
    bin: &str,
    backups: &Path,
    cluster: &[&str],
) -> serde_json::Value {
    assert!(
        Path::new(FAKETIME).exists(),
        "{FAKETIME} missing: install Debian's faketime (scripts/install-deps.sh)"
    );
    // moto in systemd's namespaces (its pid namespace ends with the test's systemd);
    // its own pid is written down there and it is killed by it at the end.
    let pidfile = r.join("moto.pid");
    let log = r.join("moto.log");
    let mut moto = sd
        .command(&[
            "sh",
            "-c",
            &format!(
                "echo $$ > {} && exec moto_server -H 127.0.0.1 -p 9000 >{} 2>&1",
                pidfile.display(),
                log.display()
            ),
        ])
        .spawn()
        .unwrap();
    // Up, and the bucket made (moto does not check signatures).
    let made = sd.run(&[
        "python3",
        "-c",
        "import http.client, time\n\
         for _ in range(150):\n\
         \ttry:\n\
         \t\tc = http.client.HTTPConnection('127.0.0.1', 9000, timeout=5)\n\
         \t\tc.request('PUT', '/kl-sched')\n\
         \t\tprint(c.getresponse().status); break\n\
         \texcept OSError:\n\
         \t\ttime.sleep(0.2)\n",
    ]);
    assert_eq!(
        text(&made.stdout).trim(),
        "200",
        "moto: {} {}",
        text(&made.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let creds = r.join("s3-credentials");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = kastellan-test\naws_secret_access_key = kastellan-test\n",
    )
    .unwrap();
    let creds = creds.display().to_string();
    let backups_s = backups.display().to_string();
    let s3 = [
        "--s3-endpoint",
        "http://127.0.0.1:9000",
        "--s3-credentials-file",
        creds.as_str(),
    ];
    let mut cmd = vec![
        bin,
        "backup",
        "schedule",
        "--every",
        "1h",
        "--keep-hourly",
        "2",
        "--keep-daily",
        "2",
        "--systemd",
        "--name",
        "kl-backup",
        "--dir",
        &backups_s,
        "--allow-unencrypted-secrets",
        "--to",
        "s3://kl-sched/node1",
    ];
    cmd.extend(cluster);
    cmd.extend(s3);
    sd.ok(&cmd);
    sd.ok(&["systemctl", "stop", "kl-backup.timer"]);

    let dropin = units.join("kl-backup.service.d");
    std::fs::create_dir_all(&dropin).unwrap();
    let remote = || -> Vec<String> {
        let mut cmd = vec![
            bin,
            "backup",
            "list",
            "--remote",
            "s3://kl-sched/node1",
            "-o",
            "json",
        ];
        cmd.extend(s3);
        let list: serde_json::Value = serde_json::from_str(&sd.ok(&cmd)).unwrap();
        let mut names: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    let local = || -> Vec<String> {
        files(backups)
            .into_iter()
            .filter(|f| f.ends_with(".tar.zst"))
            .collect()
    };
    // Bundle names carry their UTC time: YYYYMMDDTHHMMSSZ.
    let stamps = |names: &[String]| -> Vec<String> {
        let mut v: Vec<String> = names
            .iter()
            .filter_map(|n| n.split('-').next_back())
            .map(|t| t.get(..13).unwrap_or(t).to_string())
            .collect();
        v.sort();
        v
    };
    let real_run = stamps(&local());
    assert_eq!(real_run.len(), 1, "{real_run:?}");
    let real = real_run[0].clone();
    // Day 1 and day 2 of the test's clock, as in FAKETIME and in bundle names.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let day = |n: i64| {
        let d = today.checked_add(jiff::Span::new().days(n + 1)).unwrap();
        (
            d.strftime("%Y-%m-%d").to_string(),
            d.strftime("%Y%m%d").to_string(),
        )
    };
    let ((d1, s1), (d2, s2)) = (day(1), day(2));
    let at = |d: &str, hm: &str| format!("{d} {hm}:00");
    let st = |s: &str, hm: &str| format!("{s}T{}", hm.replace(':', ""));
    // (the clock, what stays locally, what stays in the bucket): hourly 2 and daily 2.
    let steps: [(String, Vec<String>, Vec<String>); 4] = [
        (
            at(&d1, "10:05"),
            vec![real.clone(), st(&s1, "10:05")],
            vec![st(&s1, "10:05")],
        ),
        // Same hour and day as 10:05, newer: 10:05 goes.
        (
            at(&d1, "10:40"),
            vec![real.clone(), st(&s1, "10:40")],
            vec![st(&s1, "10:40")],
        ),
        // A new hour: 10:40 stays as the second hour, the real run as the second day.
        (
            at(&d1, "11:10"),
            vec![real.clone(), st(&s1, "10:40"), st(&s1, "11:10")],
            vec![st(&s1, "10:40"), st(&s1, "11:10")],
        ),
        // A new day: hours 09 (day 2) and 11 (day 1), days 2 and 1.
        (
            at(&d2, "09:00"),
            vec![st(&s1, "11:10"), st(&s2, "09:00")],
            vec![st(&s1, "11:10"), st(&s2, "09:00")],
        ),
    ];
    for (at, want_local, want_remote) in steps {
        std::fs::write(
            dropin.join("clock.conf"),
            format!(
                "# The test's clock (libfaketime), not kastellan's.\n[Service]\nEnvironment=LD_PRELOAD={FAKETIME} \"FAKETIME=@{at}\" FAKETIME_DONT_FAKE_MONOTONIC=1\n"
            ),
        )
        .unwrap();
        sd.ok(&["systemctl", "daemon-reload"]);
        let out = sd.run(&["systemctl", "start", "kl-backup.service"]);
        assert!(
            out.status.success(),
            "run at {at}: {}\n{}{}",
            text(&out.stderr),
            std::fs::read_to_string(r.join("backup.log")).unwrap_or_default(),
            sd.run(&[
                "journalctl",
                "-u",
                "kl-backup.service",
                "-n",
                "30",
                "--no-pager"
            ])
            .stdout
            .iter()
            .map(|&b| b as char)
            .collect::<String>()
        );
        let stamp = |v: Vec<String>| -> Vec<String> {
            let mut v: Vec<String> = v
                .iter()
                .map(|s| s.get(..13).unwrap_or(s).to_string())
                .collect();
            v.sort();
            v
        };
        let (l, rm) = (local(), remote());
        assert_eq!(
            stamps(&l),
            stamp(want_local),
            "local after the run at {at}: {l:?}"
        );
        assert_eq!(
            stamps(&rm),
            stamp(want_remote),
            "remote after the run at {at}: {rm:?}"
        );
    }
    std::fs::remove_file(dropin.join("clock.conf")).unwrap();
    sd.ok(&["systemctl", "daemon-reload"]);
    sd.ok(&["systemctl", "start", "kl-backup.timer"]);

    // The newest copy, downloaded from the bucket: every sha256 and the snapshot check.
    let newest = remote().pop().unwrap();
    let at = format!("s3://kl-sched/node1/{newest}");
    let mut cmd = vec![bin, "backup", "verify", &at, "-o", "json"];
    cmd.extend(s3);
    let v: serde_json::Value = serde_json::from_str(&sd.ok(&cmd)).unwrap();
    assert_eq!(v["sidecarChecked"], true, "{v}");
    assert!(v["files"].as_u64().unwrap() > 0, "{v}");

    let pid = std::fs::read_to_string(&pidfile).unwrap();
    sd.run(&["kill", "-9", pid.trim()]);
    let _ = moto.wait();
    v
}

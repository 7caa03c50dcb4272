//! Tier `lab`: `kastellan backup create|verify|list|prune` against the real lab, run
//! from the host with the node's directory as `--etc-kubernetes` (its admin.conf and
//! etcd manifest point at 10.77.0.11, which the host reaches over the lab bridge); tier
//! `cli`: `backup prune --dry-run` on a temp dir, `backup schedule --systemd --dry-run`
//! and `backup schedule --cronjob` (issue 17).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

use crate::LabGuard;
use crate::{kastellan, kubectl, lab_lock};

const ETC: &str = "/var/lib/kastellan/lab/nodes/cp1/etc-kubernetes";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn backup(args: &[&str]) -> Output {
    kastellan()
        .arg("backup")
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
}

/// The members of an unencrypted bundle, with their contents.
fn members(bundle: &Path) -> Vec<(String, Vec<u8>)> {
    let f = std::fs::File::open(bundle).unwrap();
    let mut tar = tar::Archive::new(zstd::Decoder::new(f).unwrap());
    tar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().to_string();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            (p, b)
        })
        .collect()
}

#[test]
fn lab_backup_create_verify_list_prune() {
    let _lock = lab_lock();
    let status = kastellan().args(["lab", "status"]).output().unwrap();
    assert!(
        !status.status.success(),
        "a lab is already up on this machine; run `kastellan lab down` before the lab tests"
    );
    let _guard = LabGuard;
    ok(kastellan()
        .args(["lab", "up", "--timeout", "240"])
        .output()
        .unwrap());
    run_ok(kubectl().args([
        "create",
        "configmap",
        "kastellan-it",
        "-n",
        "default",
        "--from-literal=greeting=hello",
    ]));

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();

    // Unencrypted with keys and Secrets: refused, nothing written.
    let out = backup(&["create", "--dir", d, "--etc-kubernetes", ETC]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--allow-unencrypted-secrets"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 0);

    // Passphrase-encrypted.
    let pass = dir.path().join("pass.txt");
    std::fs::write(&pass, "lab passphrase\n").unwrap();
    let pass_s = pass.to_str().unwrap();
    let out = ok(backup(&[
        "create",
        "--dir",
        d,
        "--etc-kubernetes",
        ETC,
        "--passphrase-file",
        pass_s,
        "--restore-test",
        "-o",
        "json",
    ]));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["encrypted"], true, "{doc}");
    // Proven at once: restored and served by an etcd found on this host (PATH).
    let proof = &doc["restoreTest"];
    assert_eq!(proof["passed"], true, "{doc}");
    assert_eq!(proof["revision"], doc["revision"], "{doc}");
    assert!(proof["keys"].as_u64().unwrap() > 100, "{doc}");
    let encrypted = doc["path"].as_str().unwrap().to_string();
    assert!(encrypted.ends_with(".tar.zst.age"));
    assert!(
        text(&out.stderr).contains("etcd snapshot from member cp1"),
        "{}",
        text(&out.stderr)
    );
    let out = ok(backup(&[
        "verify",
        &encrypted,
        "--passphrase-file",
        pass_s,
        "-o",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["files"].as_u64().unwrap() > 20, "{v}");
    assert_eq!(v["clusterName"], "kastellan-lab");
    let out = backup(&["verify", &encrypted]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--passphrase-file"));

    // Unencrypted, explicitly allowed: a loud warning, and the content is what we expect.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = ok(backup(&[
        "create",
        "--dir",
        d,
        "--etc-kubernetes",
        ETC,
        "--allow-unencrypted-secrets",
        "-o",
        "json",
    ]));
    assert!(
        text(&out.stderr).contains("UNENCRYPTED"),
        "{}",
        text(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plain = doc["path"].as_str().unwrap().to_string();
    ok(backup(&["verify", &plain]));
    let m = members(Path::new(&plain));
    assert_eq!(m[0].0, "manifest.json");
    let manifest: serde_json::Value = serde_json::from_slice(&m[0].1).unwrap();
    assert_eq!(manifest["kubernetesVersion"], "v1.20.2", "{manifest}");
    assert!(manifest["etcdVersion"].as_str().unwrap().starts_with("3.4"));
    assert!(manifest["sensitive"]["secrets"].as_u64().unwrap() > 0);
    let names: Vec<&str> = m.iter().map(|(p, _)| p.as_str()).collect();
    for want in [
        "etcd/snapshot.db",
        "pki/ca.key",
        "pki/etcd/ca.crt",
        "pki/etcd/ca.key",
        "kubeconfigs/admin.conf",
        "manifests/etcd.yaml",
        "manifests/kube-apiserver.yaml",
        "kubeadm/kubeadm-config.yaml",
        "resources/namespaces/default/core/configmaps.yaml",
        "resources/cluster/core/namespaces.yaml",
        "resources/namespaces/kube-system/apps/deployments.yaml",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains("events")), "{names:?}");
    let cms = m
        .iter()
        .find(|(p, _)| p == "resources/namespaces/default/core/configmaps.yaml")
        .map(|(_, b)| text(b))
        .unwrap();
    assert!(
        cms.contains("kastellan-it") && cms.contains("hello"),
        "{cms}"
    );
    for gone in [
        "resourceVersion",
        "uid:",
        "managedFields",
        "creationTimestamp",
        "selfLink",
    ] {
        assert!(!cms.contains(gone), "{gone} in {cms}");
    }
    // Re-appliable: the server accepts it as it is.
    let yaml = dir.path().join("cms.yaml");
    std::fs::write(&yaml, &cms).unwrap();
    run_ok(kubectl().args(["apply", "--dry-run=server", "-f", yaml.to_str().unwrap()]));

    // list, prune.
    let out = ok(backup(&["list", "--dir", d, "-o", "json"]));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let out = ok(backup(&[
        "prune",
        "--dir",
        d,
        "--keep-last",
        "1",
        "--dry-run",
    ]));
    assert!(
        text(&out.stdout).contains("would delete"),
        "{}",
        text(&out.stdout)
    );
    assert!(Path::new(&encrypted).exists());
    ok(backup(&["prune", "--dir", d, "--keep-last", "1"]));
    assert!(!Path::new(&encrypted).exists());
    assert!(Path::new(&plain).exists());
}

/// Issue 18, "Dry runs change nothing", tier `cli`: `backup prune --dry-run` names the
/// bundles it would delete and leaves the directory as it was (bundles, sidecars, a
/// `.part` and a foreign file, their modes); the same prune without `--dry-run` deletes
/// exactly those.
#[test]
fn cli_backup_prune_dry_run_leaves_the_tree_as_it_was_18() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("backups");
    std::fs::create_dir(&dir).unwrap();
    let names: Vec<String> = ["20260101T000000Z", "20260102T000000Z", "20260103T000000Z"]
        .iter()
        .map(|at| format!("kastellan-backup-kubernetes-{at}.tar.zst"))
        .collect();
    for (i, n) in names.iter().enumerate() {
        let p = dir.join(n);
        std::fs::write(&p, format!("bundle {i}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.join(format!("{n}.json")), "{}").unwrap();
    }
    std::fs::write(dir.join(format!("{}.part", names[2])), "partial").unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let before = crate::tree::snapshot(tmp.path());
    let d = dir.to_str().unwrap();

    let out = ok(backup(&[
        "prune",
        "--dir",
        d,
        "--keep-last",
        "1",
        "--dry-run",
    ]));
    let printed = text(&out.stdout);
    for old in &names[..2] {
        assert!(
            printed
                .lines()
                .any(|l| l.contains(old.as_str()) && l.contains("would delete")),
            "{old} would be deleted: {printed}"
        );
    }
    assert!(
        printed
            .lines()
            .any(|l| l.contains(names[2].as_str()) && l.contains("keep")),
        "{printed}"
    );
    crate::tree::assert_unchanged(tmp.path(), &before, "backup prune --dry-run");

    ok(backup(&["prune", "--dir", d, "--keep-last", "1"]));
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            names[2].clone(),
            format!("{}.json", names[2]),
            format!("{}.part", names[2]),
            "notes.txt".to_string()
        ]
    );
}

/// Issue 17, tiered retention (restic's model), tier `cli`: hourly, daily and monthly
/// tiers over bundles named for their times (no sidecar: the name is the time), as the
/// table and JSON say them, then deleted as planned.
#[test]
fn cli_backup_prune_by_tier_17() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let at = [
        "20260310T104000Z", // hour 10, 10 March, March
        "20260310T101000Z", // same hour, older: goes
        "20260310T093000Z", // hour 9
        "20260309T230000Z", // 9 March
        "20260220T120000Z", // February
        "20260115T120000Z", // January
        "20251231T120000Z", // the 4th month back: goes
    ];
    let name = |at: &str| format!("kastellan-backup-kubernetes-{at}.tar.zst");
    for a in at {
        std::fs::write(tmp.path().join(name(a)), a).unwrap();
    }
    let rules = [
        "--keep-hourly",
        "2",
        "--keep-daily",
        "2",
        "--keep-monthly",
        "3",
    ];
    let prune = |extra: &[&str]| {
        let mut args = vec!["prune", "--dir", d];
        args.extend(rules);
        args.extend(extra);
        ok(backup(&args))
    };
    let table = text(&prune(&["--dry-run"]).stdout);
    let why = |a: &str| {
        table
            .lines()
            .find(|l| l.contains(&name(a)))
            .unwrap_or_else(|| panic!("{a} not listed:\n{table}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(why(at[0]), "keep hourly, daily, monthly", "{table}");
    assert_eq!(why(at[1]), "would delete", "{table}");
    assert_eq!(why(at[2]), "keep hourly", "{table}");
    assert_eq!(why(at[3]), "keep daily", "{table}");
    assert_eq!(why(at[4]), "keep monthly", "{table}");
    assert_eq!(why(at[5]), "keep monthly", "{table}");
    assert_eq!(why(at[6]), "would delete", "{table}");

    let out = prune(&["-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["rules"]["keepHourly"], 2, "{json}");
    assert_eq!(json["rules"]["keepMonthly"], 3, "{json}");
    assert_eq!(json["deleted"], true, "{json}");
    let mut left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut want: Vec<String> = [at[0], at[2], at[3], at[4], at[5]]
        .iter()
        .map(|a| name(a))
        .collect();
    want.sort();
    assert_eq!(left, want);

    // No rule at all is refused, naming the flags.
    let out = backup(&["prune", "--dir", d]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--keep-hourly"),
        "{}",
        text(&out.stderr)
    );
}

/// `backup schedule --systemd --dry-run` prints both units with the create and prune
/// flags and writes nothing into the unit directory or the bundle directory.
#[test]
fn cli_backup_schedule_systemd_dry_run_leaves_the_tree_as_it_was_17() {
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    std::fs::create_dir(&units).unwrap();
    std::fs::write(units.join("other.service"), "[Service]\n").unwrap();
    let pass = dir.path().join("pass phrase");
    std::fs::write(&pass, "secret-words\n").unwrap();
    let before = crate::tree::snapshot(dir.path());
    let d = dir.path().display().to_string();
    let out = ok(backup(&[
        "schedule",
        "--every",
        "15m",
        "--keep-daily",
        "7",
        "--systemd",
        "--dry-run",
        "--unit-dir",
        &units.display().to_string(),
        "--dir",
        &format!("{d}/bundles"),
        "--passphrase-file",
        &pass.display().to_string(),
    ]));
    let stdout = text(&out.stdout);
    for want in [
        "OnCalendar=*-*-* *:00/15:00",
        "Persistent=true",
        "RandomizedDelaySec=90s",
        &format!("--passphrase-file \"{}\"", pass.display()),
        &format!("backup prune --dir {d}/bundles --keep-daily 7"),
    ] {
        assert!(stdout.contains(want), "{want} missing:\n{stdout}");
    }
    assert!(!stdout.contains("secret-words"), "{stdout}");
    assert!(text(&out.stderr).contains("would run systemctl enable --now kastellan-backup.timer"));
    crate::tree::assert_unchanged(dir.path(), &before, "the schedule's dry run");

    // An interval that is no calendar is refused before anything.
    let out = backup(&["schedule", "--every", "5h", "--systemd", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("hours must divide a day"),
        "{}",
        text(&out.stderr)
    );
}

/// `backup schedule --to s3://...` passes the copy's flags on to the service, the
/// credentials by file (made absolute), never their content.
#[test]
fn cli_backup_schedule_passes_the_s3_copy_on_17() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = very-secret\n",
    )
    .unwrap();
    let out = ok(backup(&[
        "schedule",
        "--every",
        "6h",
        "--systemd",
        "--dry-run",
        "--unit-dir",
        &dir.path().display().to_string(),
        "--allow-unencrypted-secrets",
        "--to",
        "s3://backups/prod/",
        "--s3-endpoint",
        "https://s3.example:9000",
        "--s3-credentials-file",
        &creds.display().to_string(),
        "--keep-hourly",
        "6",
        "--keep-daily",
        "7",
    ]));
    let stdout = text(&out.stdout);
    for want in [
        "--to s3://backups/prod ",
        "--s3-endpoint https://s3.example:9000",
        &format!("--s3-credentials-file {}", creds.display()),
        "--s3-part-size 16",
    ] {
        assert!(stdout.contains(want), "{want} missing:\n{stdout}");
    }
    assert!(!stdout.contains("very-secret"), "{stdout}");
    // The same tiers prune the local bundles, then the remote copies.
    let posts: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("ExecStartPost="))
        .collect();
    assert_eq!(posts.len(), 2, "{stdout}");
    assert!(
        posts[0]
            .contains("backup prune --dir /var/backups/kastellan --keep-hourly 6 --keep-daily 7"),
        "{}",
        posts[0]
    );
    assert!(
        posts[1].contains(
            "backup prune --remote s3://backups/prod --s3-endpoint https://s3.example:9000"
        ) && posts[1].ends_with("--keep-hourly 6 --keep-daily 7")
            && !posts[1].contains("--s3-part-size"),
        "{}",
        posts[1]
    );

    // A URL that is no s3:// location is refused, naming the flag.
    let out = backup(&[
        "schedule",
        "--every",
        "6h",
        "--systemd",
        "--dry-run",
        "--to",
        "/mnt/x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--to"), "{}", text(&out.stderr));
}

/// `backup schedule` passes the volume snapshot flags on to each run, as it does the
/// others (issue 17): a schedule never drops them in silence.
#[test]
fn cli_backup_schedule_passes_the_volume_snapshots_on_17() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(backup(&[
        "schedule",
        "--every",
        "6h",
        "--systemd",
        "--dry-run",
        "--unit-dir",
        &dir.path().display().to_string(),
        "--allow-unencrypted-secrets",
        "--volume-snapshots",
        "--volume-snapshot-class",
        "csi-snap",
        "--volume-snapshot-timeout",
        "90s",
    ]));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "--volume-snapshots --volume-snapshot-class csi-snap --volume-snapshot-timeout 90000ms"
        ),
        "{stdout}"
    );
    // Without --volume-snapshots, its companions are refused (exit 2, naming it).
    let out = backup(&["create", "--volume-snapshot-class", "csi-snap"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--volume-snapshots"),
        "{}",
        text(&out.stderr)
    );
}

/// `backup schedule --cronjob` prints a CronJob for the control-plane nodes; the lab
/// cannot run containers, so it is checked as YAML here, not applied.
#[test]
fn cli_backup_schedule_cronjob_prints_the_yaml_17() {
    let out = ok(backup(&[
        "schedule",
        "--every",
        "6h",
        "--keep-last",
        "4",
        "--cronjob",
        "--image",
        "registry.example/kastellan:0.1",
        "--dir",
        "/var/backups/kastellan",
        "--passphrase-file",
        "/root/kastellan.pass",
    ]));
    let yaml = text(&out.stdout);
    let doc: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(doc["apiVersion"], "batch/v1");
    assert_eq!(doc["spec"]["schedule"], "0 */6 * * *");
    assert_eq!(doc["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(
        pod["nodeSelector"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    let create = &pod["initContainers"][0];
    assert_eq!(create["image"], "registry.example/kastellan:0.1");
    let command: Vec<&str> = create["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&command[..3], ["kastellan", "backup", "create"]);
    assert!(command.contains(&"/root/kastellan.pass"), "{command:?}");
    let mounts = create["volumeMounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"] == "/etc/kubernetes" && m["readOnly"] == true),
        "{mounts:?}"
    );
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"] == "/root/kastellan.pass" && m["readOnly"] == true),
        "{mounts:?}"
    );
    assert_eq!(pod["containers"][0]["command"][2], "prune");

    // --cronjob without --image is a usage error.
    let out = backup(&["schedule", "--every", "6h", "--cronjob"]);
    assert_eq!(out.status.code(), Some(2));
}

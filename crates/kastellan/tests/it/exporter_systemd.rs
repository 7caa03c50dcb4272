//! The exporter's systemd unit (`deploy/kastellan-exporter.service`, installed by the
//! .deb) run live under a real systemd (tier `systemd_`; root), booted in namespaces of
//! its own as the restore tests do (`restore_systemd`). The unit is the shipped file
//! with three paths moved into the test root (the binary under test, the manifests
//! dir, the settings file); its hardening is kept whole, so a sandbox setting that this
//! systemd cannot apply fails the start. The exporter listens on the namespace's own
//! loopback and probes only that loopback: no traffic leaves the namespace.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::restore_systemd::{Root, Systemd, kastellan_in};

const UNIT: &str = "kastellan-exporter.service";
const SHIPPED: &str = include_str!("../../../../deploy/kastellan-exporter.service");
const URL: &str = "http://127.0.0.1:9842/metrics";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A directory of the test under `/var/lib/kastellan`, removed at the end.
struct Outside(PathBuf);

impl Outside {
    fn new() -> Outside {
        let p = PathBuf::from(format!(
            "/var/lib/kastellan/test-exporter-unit-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Outside(p)
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `prop` of the unit, as `systemctl show` says it.
fn show(sd: &Systemd, prop: &str) -> String {
    sd.ok(&["systemctl", "show", "-p", prop, "--value", UNIT])
        .trim()
        .to_string()
}

/// Started, scraped on loopback, stopped: the shipped unit under systemd. The settings
/// file's `KASTELLAN_EXPORTER_LISTEN` and `KASTELLAN_EXPORTER_ARGS` (as the unit's
/// comment shows them) reach the process; the service runs with no capabilities and
/// `no_new_privs`; a stop ends it cleanly and closes the port.
#[test]
fn systemd_exporter_unit_starts_serves_metrics_and_stops_18() {
    let started = Instant::now();
    let root = Root::new("exporter");
    let r = &root.0;
    let units = r.join("units");
    // A service's default dependencies require sysinit.target; this systemd has none.
    std::fs::write(
        units.join("sysinit.target"),
        "[Unit]\nDescription=stand-in (kastellan test)\nDefaultDependencies=no\n",
    )
    .unwrap();
    // The unit's PrivateTmp= hides /tmp and /var/tmp (the test root) from the service,
    // as ProtectHome= hides /home and /root: the binary and the manifests dir it reads
    // live under /var/lib instead, as a package's would.
    let outside = Outside::new();
    let bin = outside.0.join("kastellan");
    if std::fs::hard_link(kastellan_in(r), &bin).is_err() {
        std::fs::copy(kastellan_in(r), &bin).unwrap();
    }
    let bin = bin.display().to_string();
    let manifests = outside.0.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let manifests = manifests.display().to_string();
    let settings = r.join("kastellan-exporter.default");
    std::fs::write(
        &settings,
        "KASTELLAN_EXPORTER_LISTEN=127.0.0.1:9842\n\
         KASTELLAN_EXPORTER_ARGS=\"--node cp1 --min-interval 0 --probe-timeout 1\"\n",
    )
    .unwrap();
    let unit = SHIPPED
        .replace(
            "ExecStart=/usr/bin/kastellan ",
            &format!("ExecStart={bin} "),
        )
        .replace(
            "--manifests-dir=/etc/kubernetes/manifests",
            &format!("--manifests-dir={manifests}"),
        )
        .replace(
            "EnvironmentFile=-/etc/default/kastellan-exporter",
            &format!("EnvironmentFile=-{}", settings.display()),
        );
    for (was, now) in [
        ("/usr/bin/kastellan ", bin.as_str()),
        ("/etc/kubernetes/manifests", manifests.as_str()),
        (
            "/etc/default/kastellan-exporter\n",
            &settings.display().to_string(),
        ),
    ] {
        assert!(
            !unit.contains(was) && unit.contains(now),
            "the shipped unit changed: {was} not replaced\n{unit}"
        );
    }
    std::fs::write(units.join(UNIT), &unit).unwrap();
    let sd = Systemd::boot(&units);

    let start = sd.run(&["systemctl", "start", UNIT]);
    assert!(
        start.status.success(),
        "systemctl start: {}\n{}\nResult={} ExecMainStatus={}",
        text(&start.stderr),
        text(
            &sd.run(&["systemctl", "status", "--no-pager", "-l", UNIT])
                .stdout
        ),
        show(&sd, "Result"),
        show(&sd, "ExecMainStatus")
    );
    let scrape = || sd.run(&["curl", "-sS", "--max-time", "20", URL]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let out = scrape();
        if out.status.success() {
            break text(&out.stdout);
        }
        assert!(
            Instant::now() < deadline,
            "no scrape of {URL}: {}\n{}\n{}",
            text(&out.stderr),
            sd.run(&["systemctl", "status", "--no-pager", UNIT])
                .stdout
                .escape_ascii(),
            show(&sd, "Result")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(show(&sd, "ActiveState"), "active");
    assert!(body.contains("kastellan_sweeps 1"), "{body}");
    // --node from the settings file; nothing of the node runs here, so unhealthy.
    assert!(body.contains(r#"kastellan_probe_up{node="cp1","#), "{body}");
    assert!(body.contains("kastellan_healthy 0"), "{body}");
    // The hardening is in force: no capabilities, no_new_privs.
    let pid = show(&sd, "MainPID");
    let status = sd.ok(&["cat", &format!("/proc/{pid}/status")]);
    for line in [
        "NoNewPrivs:\t1",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
    ] {
        assert!(status.contains(line), "{line} in\n{status}");
    }
    assert_eq!(show(&sd, "NRestarts"), "0");

    sd.ok(&["systemctl", "stop", UNIT]);
    assert_eq!(show(&sd, "ActiveState"), "inactive");
    assert_eq!(show(&sd, "Result"), "success", "a clean stop");
    let after = scrape();
    assert!(
        !after.status.success(),
        "the port is closed after the stop: {}",
        text(&after.stdout)
    );
    eprintln!("exporter unit test took {:?}", started.elapsed());
}

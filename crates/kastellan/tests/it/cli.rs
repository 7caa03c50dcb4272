//! Tier `cli`: the command line itself, no cluster.

use crate::kastellan;

#[test]
fn cli_help_lists_the_command_groups() {
    let out = kastellan().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "lab",
        "generate",
        "preflight",
        "--kubeconfig",
        "--context",
        "--output",
        "--quiet",
        "--verbose",
    ] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
}

#[test]
fn cli_usage_errors_exit_2_and_name_the_flag() {
    let out = kastellan()
        .args(["lab", "up", "--control-planes", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--control-planes"), "{err}");
    assert!(err.contains("1 or 3"), "{err}");
}

#[test]
fn cli_completions_and_man_pages_come_from_the_definitions() {
    let out = kastellan()
        .args(["generate", "completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("kastellan") && script.contains("lab"),
        "bash completion mentions the commands"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = kastellan()
        .args(["generate", "man"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(dir.path().join("kastellan.1")).unwrap();
    assert!(page.contains(".TH kastellan"), "a roff man page");
    assert!(
        dir.path().join("kastellan-lab-up.1").is_file(),
        "one page per subcommand"
    );
    // Global options: -o json reports the pages; a script has no JSON form.
    let out = kastellan()
        .args(["generate", "man", "-o", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["pages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "kastellan-certs-renew.1"),
        "{v}"
    );
    let out = kastellan()
        .args(["generate", "man", "-q"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.is_empty());
    let out = kastellan()
        .args(["generate", "completions", "bash", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not apply"));
}

#[test]
fn cli_works_as_a_kubectl_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-kastellan");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin!("kastellan"), &plugin).unwrap();
    let out = std::process::Command::new(&plugin)
        .args(["lab", "env", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["kubeconfig"].as_str().unwrap().ends_with("admin.conf"));
}

/// A reader that goes away early (`| head -1`) ends the command quietly, with exit 0
/// and nothing on stderr, as ripgrep does.
#[test]
fn cli_closed_stdout_is_not_an_error() {
    let mut child = kastellan()
        .args(["generate", "completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before the command writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A mistyped directory is a usage error naming it, not a node without certificates.
#[test]
fn cli_certs_check_refuses_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, other) in [
        ("--cert-dir", "--kubeconfig-dir"),
        ("--kubeconfig-dir", "--cert-dir"),
    ] {
        let missing = dir.path().join("nope");
        let out = kastellan()
            .args(["certs", "check", flag])
            .arg(&missing)
            .arg(other)
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{flag} {}: no such directory", missing.display())),
            "{err}"
        );
    }
}

#[test]
fn cli_a_missing_kubeconfig_is_named_once() {
    for (args, file) in [
        (
            vec!["versions", "--kubeconfig", "/nonexistent/kubeconfig"],
            "/nonexistent/kubeconfig",
        ),
        (vec!["upgrade", "check"], "/nonexistent-home/.kube/config"),
    ] {
        let out = kastellan()
            .env_remove("KUBECONFIG")
            .env("HOME", "/nonexistent-home")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(file), "{args:?}: {err}");
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "{args:?}: the cause is said more than once: {err}"
        );
    }
}

/// A plain HTTP GET on loopback: the body, and how long the answer took.
fn http_get(port: u16, path: &str) -> (String, std::time::Duration) {
    use std::io::{Read as _, Write as _};
    let start = std::time::Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    (out, start.elapsed())
}

/// A metric's value in an OpenMetrics text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// The exporter started on a free loopback port, killed when dropped.
struct Exporter(std::process::Child, u16);

impl Exporter {
    fn start(manifests: &std::path::Path, min_interval: u64) -> Exporter {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = kastellan()
            .args(["exporter", "--local", "--node", "t", "--probe-timeout", "1"])
            .arg("--manifests-dir")
            .arg(manifests)
            .args(["--min-interval", &min_interval.to_string()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Exporter(child, port);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the exporter never listened on {port}");
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 50 scrapes at once cost the node one sweep, not 50: they all wait for the sweep
/// under way and are answered within its time plus a margin; a scrape after it runs a
/// new one (`--min-interval 0`), and one within `--min-interval` is served from memory.
/// The sweep is made slow for real: the node's scheduler manifest names a loopback
/// port whose listener never answers, so that probe waits out its 1 s timeout.
#[test]
fn cli_exporter_coalesces_concurrent_scrapes() {
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hung.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kube-scheduler.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: kube-scheduler, namespace: kube-system}}\n\
             spec:\n  containers:\n  - name: kube-scheduler\n    image: registry.k8s.io/kube-scheduler:v1.30.0\n    \
             command: [kube-scheduler, --secure-port={port}]\n"
        ),
    )
    .unwrap();

    let exporter = Exporter::start(dir.path(), 0);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
    let scrapes: Vec<_> = (0..50)
        .map(|_| {
            let barrier = barrier.clone();
            let port = exporter.1;
            std::thread::spawn(move || {
                barrier.wait();
                http_get(port, "/metrics")
            })
        })
        .collect();
    let answers: Vec<(String, std::time::Duration)> =
        scrapes.into_iter().map(|t| t.join().unwrap()).collect();
    for (body, took) in &answers {
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert_eq!(metric(body, "kastellan_sweeps"), 1.0, "{body}");
        let sweep = metric(body, "kastellan_sweep_duration_seconds");
        // The hung probe's timeout: the sweep really was slow.
        assert!(sweep >= 0.9, "{body}");
        assert!(
            took.as_secs_f64() < sweep + 2.0,
            "a scrape took {took:?}, the sweep {sweep} s"
        );
    }
    let (after, _) = http_get(exporter.1, "/metrics");
    assert_eq!(metric(&after, "kastellan_sweeps"), 2.0, "{after}");
    drop(exporter);

    let cached = Exporter::start(dir.path(), 60);
    let (first, _) = http_get(cached.1, "/metrics");
    let (second, took) = http_get(cached.1, "/metrics");
    assert_eq!(metric(&second, "kastellan_sweeps"), 1.0, "{second}");
    assert!(took.as_secs_f64() < 0.5, "served from memory in {took:?}");
    assert!(
        metric(&second, "kastellan_sweep_age_seconds")
            >= metric(&first, "kastellan_sweep_age_seconds"),
        "{first}\n{second}"
    );
    drop(hung);
}

/// `scripts/install-deps.sh` derives its deb-src entries from the machine's own apt
/// sources (one-line and deb822, options kept, disabled and non-bookworm entries left
/// out), so a mirror or proxy configured there keeps being used.
#[test]
fn cli_install_deps_derives_deb_src_from_the_apt_sources() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
    std::fs::write(
        dir.path().join("sources.list"),
        "# a comment\n\
         deb [arch=amd64 signed-by=/k.gpg] http://mirror.example.internal/debian bookworm main contrib\n\
         deb http://mirror.example.internal/debian bookworm-updates main\n\
         deb http://apt.example.com/other stable main\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sources.list.d/local.sources"),
        "Types: deb\nURIs: http://proxy.internal:3142/debian\nSuites: bookworm bookworm-security\n\
         Components: main\nSigned-By: /k.gpg\n\n\
         Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nComponents: main\n\
         Enabled: no\n",
    )
    .unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-deps.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("--print-deb-src")
        .env("KASTELLAN_APT_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "deb-src [arch=amd64 signed-by=/k.gpg] http://mirror.example.internal/debian bookworm main contrib\n\
         deb-src [signed-by=/k.gpg] http://proxy.internal:3142/debian bookworm main\n\
         deb-src [signed-by=/k.gpg] http://proxy.internal:3142/debian bookworm-security main\n\
         deb-src http://mirror.example.internal/debian bookworm-updates main\n"
    );
    // The script names no mirror host of its own.
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(
        !text.contains("deb.debian.org"),
        "a mirror host in install-deps.sh"
    );
}

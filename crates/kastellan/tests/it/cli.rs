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

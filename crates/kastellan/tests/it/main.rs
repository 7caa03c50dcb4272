//! Integration tests of the `kastellan` binary. Modules name their tier:
//! `cli_*` run the binary without any cluster; `lab_*` bring up the real lab (root,
//! the cached Kubernetes build, etcd from Debian); `kubeadm_real_*` (in `certs`) need the
//! cached kubeadm and root for its `--rootfs`; `systemd_*` (in `restore_systemd`,
//! `schedule_systemd`, `exporter_systemd`) boot a real systemd in namespaces of their
//! own (root); `netns_*` (in `preflight`) build hosts in network namespaces of their
//! own (root).
// Tests fail loudly on unexpected errors and may say what they measured.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod backup;
mod certs;
mod cli;
mod crash;
mod csr;
mod dashboard;
mod drain;
mod encryption;
mod etcd_members;
mod etcd_restore;
mod etcd_save;
mod exporter_systemd;
mod ha;
mod inspect;
mod join;
mod lab;
mod objects;
mod package;
mod preflight;
mod restore;
mod restore_systemd;
mod s3;
mod schedule_systemd;
mod snapshot_cli;
mod status;
mod tokens;
mod tree;
mod upgrade;
mod versions;
mod volumes;

use std::path::PathBuf;
use std::process::Command;

/// Takes the lab down when dropped (at the end of a lab test, passed or not).
pub struct LabGuard;

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = kastellan().args(["lab", "down"]).status();
    }
}

/// The `kastellan` binary under test.
pub fn kastellan() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin!("kastellan"))
}

/// A command's exit code, stdout and stderr, for assertion messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The stdout of a command that must have succeeded (all it said in the panic if not).
pub fn stdout_ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}", output_text(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// `kastellan ARGS` inside a lab node (its files, its network namespace).
pub fn on_node(node: &str, args: &[&str]) -> std::process::Output {
    let exe = assert_cmd::cargo::cargo_bin!("kastellan")
        .display()
        .to_string();
    kastellan()
        .args(["lab", "exec", node, "--", &exe])
        .args(args)
        .output()
        .unwrap()
}

/// Cache directory of the lab's Kubernetes build.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KASTELLAN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/kastellan"))
}

/// The lab's kubectl.
pub fn kubectl() -> Command {
    let bin = cache_dir().join("kubernetes/v1.20.2/bin/kubectl");
    assert!(
        bin.is_file(),
        "{} missing: run scripts/build-kubernetes.sh",
        bin.display()
    );
    let mut c = Command::new(bin);
    c.arg("--kubeconfig")
        .arg("/var/lib/kastellan/lab/admin.conf");
    c
}

/// Serialises the tests that bring up the lab: one lab per machine. A process-wide
/// mutex for the tests of this binary, and a file lock for other processes
/// (`/var/lib/kastellan/lab-test.lock`).
pub fn lab_lock() -> (std::sync::MutexGuard<'static, ()>, std::fs::File) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    std::fs::create_dir_all("/var/lib/kastellan").unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/var/lib/kastellan/lab-test.lock")
        .unwrap();
    let waited = std::time::Instant::now();
    file.lock().unwrap();
    eprintln!("lab lock taken after {:?}", waited.elapsed());
    (guard, file)
}

/// The lab's kubectl with `args`, `input` on its stdin (a manifest for `-f -`).
pub fn kubectl_stdin(args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = kubectl()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

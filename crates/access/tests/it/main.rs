//! Integration tests of node access, tier `local_`: real local processes (`sh`, `cat`,
//! a stand-in `ssh` script), no network and no cluster. ssh to real sshd processes is
//! tested on the lab by the binary's `lab_` tests.
#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use kastellan_access::{
    Error, Inventory, Local, NodeAccess, NodeCommand, Payload, Ssh, SshOptions,
};

fn sh(script: &str) -> NodeCommand {
    NodeCommand::new(["sh", "-c", script])
}

#[test]
fn local_run_returns_status_stdout_stderr_and_feeds_stdin() {
    let out = Local::new()
        .run(
            "n1",
            &sh("cat; echo err >&2; exit 3").stdin(Payload::Bytes(b"in\x00put".to_vec())),
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"in\x00put");
    assert_eq!(out.stderr_tail(1), "err");
    let err = out.check("n1", &sh("x")).unwrap_err().to_string();
    assert!(err.contains("n1") && err.contains("err"), "{err}");

    // A large input and output do not deadlock the pipes.
    let big = vec![b'x'; 4 << 20];
    let out = Local::new()
        .run(
            "n1",
            &NodeCommand::new(["cat"]).stdin(Payload::Bytes(big.clone())),
        )
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), big.len());
}

#[test]
fn local_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let start = Instant::now();
    // The child starts a grandchild that would outlive it, as `lab exec` does.
    let cmd = sh(&format!("sleep 30 & echo $! > {}; wait", pidfile.display()))
        .timeout(Duration::from_millis(700));
    let err = Local::new().run("n1", &cmd).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("n1"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Path::new(&format!("/proc/{pid}")).exists() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "grandchild {pid} survived the timeout"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn local_missing_program_and_stdin_file_are_named() {
    let err = Local::new()
        .run("n1", &NodeCommand::new(["/nonexistent/prog"]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("n1") && err.contains("/nonexistent/prog"),
        "{err}"
    );
    let err = Local::new()
        .run(
            "n1",
            &NodeCommand::new(["cat"]).stdin(Payload::File("/nonexistent/in".into())),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/in"), "{err}");
}

/// `put` through the shell script (what `Lab` and `Ssh` run on the node), here run by
/// a local shell: the default methods of the trait with `Local`'s `run`.
#[derive(Debug)]
struct ScriptedLocal;

impl NodeAccess for ScriptedLocal {
    fn kind(&self) -> kastellan_access::AccessKind {
        kastellan_access::AccessKind::Local
    }
    fn run(
        &self,
        node: &str,
        cmd: &NodeCommand,
    ) -> kastellan_access::Result<kastellan_access::Output> {
        Local::new().run(node, cmd)
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn local_put_and_get_native_and_scripted() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::write(&src, b"from a file\n").unwrap();
    let accesses: [&dyn NodeAccess; 2] = [&Local::new(), &ScriptedLocal];
    for (i, access) in accesses.into_iter().enumerate() {
        let target = dir.path().join(format!("t{i} with blank.conf"));
        std::fs::write(&target, b"old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let t = Duration::from_secs(10);
        access
            .put("n1", Payload::Bytes(b"new\n".to_vec()), &target, 0o600, t)
            .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new\n");
        assert_eq!(mode(&target), 0o600, "{access:?}");
        access
            .put("n1", Payload::File(src.clone()), &target, 0o640, t)
            .unwrap();
        assert_eq!(access.get("n1", &target, t).unwrap(), b"from a file\n");
        assert_eq!(mode(&target), 0o640, "{access:?}");
        // Nothing left beside it.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("kastellan-tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
        // A directory that does not exist: an error, nothing created.
        let missing = dir.path().join("no-dir/x");
        let err = access
            .put("n1", Payload::Bytes(b"x".to_vec()), &missing, 0o600, t)
            .unwrap_err();
        assert!(err.to_string().contains("n1"), "{err}");
        assert!(!dir.path().join("no-dir").exists());
        let err = access.get("n1", &missing, t).unwrap_err().to_string();
        assert!(err.contains("n1"), "{err}");
    }
}

/// A stand-in `ssh` that records its argv and runs the remote line with `sh -c`, or
/// fails as ssh does (255) for the host `down`.
fn fake_ssh(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("ssh");
    std::fs::write(
        &p,
        format!(
            r#"#!/bin/sh
printf '%s\n' "$@" > {log}
for a; do last=$a; done
case " $* " in *" -G "*) echo "user root"; exit 0;; esac
case " $* " in *" down "*) echo "ssh: connect to host down port 22: Connection refused" >&2; exit 255;; esac
exec sh -c "$last"
"#,
            log = dir.join("argv").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn local_ssh_runs_the_quoted_line_and_names_unreachable_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(
        &inv,
        "nodes:\n- {name: cp1, address: 10.77.0.11, role: control-plane}\n- {name: cp2, address: down, role: control-plane, user: ops}\n",
    )
    .unwrap();
    let inventory = Inventory::load(&inv).unwrap();
    let ssh = Ssh::from_inventory(
        &inventory,
        SshOptions {
            program: fake_ssh(dir.path()),
            ..SshOptions::default()
        },
    );
    let out = ssh
        .run(
            "cp1",
            &NodeCommand::new(["printf", "%s|", "a b", "it's", "$HOME"])
                .stdin(Payload::Bytes(Vec::new())),
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|it's|$HOME|");
    let argv = std::fs::read_to_string(dir.path().join("argv")).unwrap();
    assert!(
        argv.contains("BatchMode=yes\n") && argv.contains("--\n10.77.0.11\n"),
        "{argv}"
    );

    // Files go through the same line.
    let target = dir.path().join("put target");
    ssh.put(
        "cp1",
        Payload::Bytes(b"over ssh\n".to_vec()),
        &target,
        0o600,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(
        ssh.get("cp1", &target, Duration::from_secs(10)).unwrap(),
        b"over ssh\n"
    );
    assert_eq!(mode(&target), 0o600);

    let err = ssh.run("cp2", &NodeCommand::new(["true"])).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("cp2") && msg.contains("ops@down") && msg.contains("Connection refused"),
        "{msg}"
    );
    let argv = std::fs::read_to_string(dir.path().join("argv")).unwrap();
    assert!(
        argv.ends_with("sudo -n -- true\n"),
        "not root: sudo -n: {argv}"
    );

    let err = ssh
        .run("cp9", &NodeCommand::new(["true"]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cp9") && err.contains("inventory.yaml"),
        "{err}"
    );
}

#[test]
fn local_lines_arrive_while_the_command_runs() {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<(bool, String, Instant)>>> = Arc::default();
    let sink = {
        let seen = seen.clone();
        kastellan_access::LineSink::new(move |stderr, line| {
            seen.lock()
                .unwrap()
                .push((stderr, line.to_string(), Instant::now()));
        })
    };
    let start = Instant::now();
    let out = Local::new()
        .run(
            "n1",
            &sh("echo first; sleep 1; echo oops >&2; sleep 0.2; printf 'last'").lines(sink),
        )
        .unwrap();
    let ended = Instant::now();
    assert!(out.success());
    // The whole output is still collected.
    assert_eq!(out.stdout, b"first\nlast");
    assert_eq!(out.stderr, b"oops\n");
    let seen = seen.lock().unwrap();
    let lines: Vec<(bool, &str)> = seen.iter().map(|(e, l, _)| (*e, l.as_str())).collect();
    assert_eq!(lines, [(false, "first"), (true, "oops"), (false, "last")]);
    // "first" was passed on before the command's second half, not at its end.
    let first_at = seen[0].2;
    assert!(
        first_at.duration_since(start) < Duration::from_millis(900)
            && ended.duration_since(first_at) > Duration::from_millis(500),
        "first line at {:?} of {:?}",
        first_at.duration_since(start),
        ended.duration_since(start)
    );
}

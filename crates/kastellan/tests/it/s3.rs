//! Tier `real_etcd` (issue 17, off-node copies): `backup create --to s3://...`, `backup
//! list|prune --remote`, `backup verify s3://...` and `restore --bundle s3://...
//! --dry-run` against a real S3-compatible server, moto's (`moto_server`, PyPI
//! `moto[server]`, installed by `scripts/install-deps.sh`), that each test starts on a
//! free port of 127.0.0.1 and kills by pid when it ends. Bundles are made from a real
//! etcd on 127.0.0.1 and the stand-in API server of `crash`; a 12 MiB file of random
//! bytes in the node's PKI makes each bundle three 5 MiB parts. The interrupted upload
//! is paused after its first part (debug-build pause point
//! `KASTELLAN_S3_PAUSE_AFTER_PART=0`) and killed with SIGKILL.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kastellan_etcd::testing::{EtcdCluster, etcd35};

use crate::crash::{FakeApi, kill_9, spawn_paused, wait_for_file};
use crate::kastellan;

const BUCKET: &str = "kastellan-it";
const PART_MIB: &str = "5";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(what: &str, out: Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what}: {}\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", text(&out.stdout)))
}

/// moto's S3 server on a free port of 127.0.0.1, killed (by pid) on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start(log_dir: &Path) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(log_dir.join("moto.log")).unwrap();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}): install it with scripts/install-deps.sh (pip install 'moto[server]')"
                )
            });
        let mut moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while moto.request("GET", "/", b"").is_none() {
            if let Some(s) = moto.child.try_wait().unwrap() {
                panic!(
                    "moto_server ended ({s}): {}",
                    std::fs::read_to_string(log_dir.join("moto.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "moto_server not up in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// One plain HTTP/1.1 request (moto does not check signatures); the status.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> Option<u16> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .ok()?;
        s.write_all(body).ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        answer.split_whitespace().nth(1)?.parse().ok()
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A node's kubeadm dir for `backup create` and `restore --dry-run`: the stand-in
/// manifests of `restore`, a PKI with 12 MiB of random bytes, admin.conf for `api`.
struct Node {
    _etcd: EtcdCluster,
    _api: FakeApi,
    moto: Moto,
    root: PathBuf,
    etcd_args: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let moto = Moto::start(&root);
        assert_eq!(moto.request("PUT", &format!("/{BUCKET}"), b""), Some(200));
        let etcd = EtcdCluster::start(&etcd35(), 1);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(etcd.put_known_data(200, 100));
        let api = FakeApi::start();
        crate::restore::node_dir(&root, 6443);
        let etc = root.join("kubernetes");
        std::fs::create_dir_all(etc.join("pki")).unwrap();
        std::fs::write(etc.join("pki/ca.crt"), b"not a real certificate").unwrap();
        // Incompressible: xorshift64 bytes.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let big: Vec<u8> = (0..12 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        std::fs::write(etc.join("pki/random.bin"), big).unwrap();
        std::fs::write(etc.join("admin.conf"), api.kubeconfig()).unwrap();
        let p = |f: &str| etcd.pki.path(f).display().to_string();
        let etcd_args = vec![
            format!("--endpoints={}", etcd.endpoints().join(",")),
            format!("--cacert={}", p("ca.crt")),
            format!("--cert={}", p("healthcheck-client.crt")),
            format!("--key={}", p("healthcheck-client.key")),
        ];
        Node {
            _etcd: etcd,
            _api: api,
            moto,
            root,
            etcd_args,
            _tmp: tmp,
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.join("backups")
    }

    /// `kastellan` with the store's endpoint and credentials in the environment.
    fn kastellan(&self) -> Command {
        let mut c = kastellan();
        c.env_remove("KUBECONFIG")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_REGION")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_ENDPOINT_URL", self.moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "kastellan-it")
            .env("AWS_SECRET_ACCESS_KEY", "kastellan-it-secret");
        c
    }

    fn create(&self, to: &str) -> Command {
        let mut c = self.create_local();
        c.args(["--to", to, "--s3-part-size", PART_MIB]);
        c
    }

    /// `backup create` without a copy.
    fn create_local(&self) -> Command {
        let mut c = self.kastellan();
        c.args(["backup", "create", "--allow-unencrypted-secrets", "--dir"])
            .arg(self.dir())
            .arg("--etc-kubernetes")
            .arg(self.root.join("kubernetes"))
            .args(&self.etcd_args)
            .args(["-o", "json"]);
        c
    }

    fn remote(&self, args: &[&str]) -> Output {
        self.kastellan().args(args).output().unwrap()
    }
}

/// Runs `kastellan ARGS` on a pseudo-terminal (util-linux `script`), stdout into
/// `json_to`; returns what the terminal showed (stderr).
fn on_a_terminal(args: &[String], json_to: &Path) -> String {
    let bin = assert_cmd::cargo::cargo_bin!("kastellan");
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut cmd = format!(
        "stty cols 100 rows 50 && exec {}",
        quote(&bin.display().to_string())
    );
    for a in args {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    cmd.push_str(&format!(" > {}", quote(&json_to.display().to_string())));
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env_remove("COLUMNS")
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("util-linux `script`");
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{shown}");
    shown
}

/// Issue 17, "a progress bar on a terminal for every long step": `backup create` shows
/// the snapshot stream and the writing (with bytes and rate), `backup verify` its
/// reading, each on one status line of the terminal (stderr), while `-o json` on stdout
/// stays clean.
#[test]
fn real_etcd_cli_backup_progress_on_a_terminal_json_stays_clean_17() {
    let node = Node::new();
    let mut create: Vec<String> = vec![
        "backup".into(),
        "create".into(),
        "--allow-unencrypted-secrets".into(),
        "--dir".into(),
        node.dir().display().to_string(),
        "--etc-kubernetes".into(),
        node.root.join("kubernetes").display().to_string(),
        "-o".into(),
        "json".into(),
    ];
    create.extend(node.etcd_args.iter().cloned());
    let json = node.root.join("create.json");
    let shown = on_a_terminal(&create, &json);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap())
        .unwrap_or_else(|e| {
            panic!(
                "stdout is JSON only ({e}): {}",
                std::fs::read_to_string(&json).unwrap()
            )
        });
    assert!(
        shown.contains("writing and compressing the bundle: ") && shown.contains("/s"),
        "{shown}"
    );
    let bundle = doc["path"].as_str().unwrap().to_string();
    let json = node.root.join("verify.json");
    let shown = on_a_terminal(
        &[
            "backup".into(),
            "verify".into(),
            bundle.clone(),
            "-o".into(),
            "json".into(),
        ],
        &json,
    );
    let name = Path::new(&bundle)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(shown.contains(&format!("verifying {name}: ")), "{shown}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["path"], bundle.as_str());
}

/// The upload journal in `dir`, if there is one.
fn journal_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok().and_then(|it| {
        it.flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".s3-upload.json"))
    })
}

/// Waits until the journal lists `n` finished parts.
fn wait_for_parts(journal: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let parts = std::fs::read(journal)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|j| j["parts"].as_array().map(Vec::len));
        if parts == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: not {n} parts in 60 s",
            journal.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn real_etcd_cli_s3_copy_list_verify_restore_prune_17() {
    let node = Node::new();
    let started = Instant::now();
    let at = format!("s3://{BUCKET}/clusters/a");

    // create --to: the bundle, then its copy in three parts, sidecar last.
    let one = ok("create --to", node.create(&at).output().unwrap());
    let name1 = one["bundle"].as_str().unwrap().to_string();
    let size = one["size"].as_u64().unwrap();
    assert!(size > 10 << 20, "{size}");
    let copy = &one["copies"][0];
    assert_eq!(copy["pushed"], "uploaded", "{one}");
    assert_eq!(copy["parts"], 3, "{one}");
    assert_eq!(copy["bytesSent"], size);
    assert_eq!(copy["url"], format!("{at}/{name1}"));
    let created_in = started.elapsed();

    // list --remote: the copy, with the local sha256 and size, verified (by create).
    let list = ok(
        "list --remote",
        node.remote(&["backup", "list", "--remote", &at, "-o", "json"]),
    );
    assert_eq!(names(&list), [name1.as_str()]);
    assert_eq!(list[0]["size"], size);
    assert_eq!(list[0]["sidecar"]["sha256"], one["sha256"]);
    assert_eq!(list[0]["verified"], true);
    assert_eq!(list[0]["path"], format!("{at}/{name1}"));

    // verify s3://...: downloaded, every sha256 checked, recorded remotely.
    let t = Instant::now();
    let v = ok(
        "verify s3://",
        node.remote(&["backup", "verify", &format!("{at}/{name1}"), "-o", "json"]),
    );
    let verify_took = t.elapsed();
    assert_eq!(v["path"], format!("{at}/{name1}"));
    assert_eq!(v["sidecarChecked"], true);
    assert_eq!(v["clusterName"], "crashtest");
    // etcd's keyspace hash, asked when the snapshot was taken, found again in it.
    assert!(v["keyspaceHash"].is_u64(), "{v}");
    let list = ok(
        "list --remote",
        node.remote(&["backup", "list", "--remote", &at, "-o", "json"]),
    );
    assert_eq!(list[0]["sidecar"]["verifiedBy"], "verify", "{list}");

    // restore --bundle s3://... --dry-run: downloaded, verified, planned; the node's
    // tree is left as it was.
    let before = crate::tree::snapshot(&node.root.join("kubernetes"));
    let out = node
        .kastellan()
        .arg("restore")
        .arg("--bundle")
        .arg(format!("{at}/{name1}"))
        .arg("--manifests-dir")
        .arg(node.root.join("kubernetes/manifests"))
        .arg("--restore-dir-parent")
        .arg(node.root.join("var-lib"))
        .args(["--timeout", "2", "--dry-run", "-o", "json"])
        .env_remove("KASTELLAN_RESTORE_DIR_PARENT")
        .output()
        .unwrap();
    let plan = ok("restore --bundle s3:// --dry-run", out);
    assert_eq!(plan["plan"]["kind"], "restore", "{plan}");
    crate::tree::assert_unchanged(
        &node.root.join("kubernetes"),
        &before,
        "restore --bundle s3:// --dry-run",
    );

    // A second bundle (names have whole seconds), copied too.
    std::thread::sleep(Duration::from_millis(1100));
    let two = ok("second create --to", node.create(&at).output().unwrap());
    let name2 = two["bundle"].as_str().unwrap().to_string();
    assert_eq!(two["copies"].as_array().unwrap().len(), 1, "{two}");

    // prune --remote --dry-run: says what would go, deletes nothing.
    let dry = ok(
        "prune --remote --dry-run",
        node.remote(&[
            "backup",
            "prune",
            "--remote",
            &at,
            "--keep-last",
            "1",
            "--dry-run",
            "-o",
            "json",
        ]),
    );
    assert_eq!(dry["deleted"], false);
    assert_eq!(dry["decisions"][1]["name"], name1.as_str());
    assert_eq!(dry["decisions"][1]["keep"], serde_json::json!([]));
    let list = ok(
        "list --remote",
        node.remote(&["backup", "list", "--remote", &at, "-o", "json"]),
    );
    assert_eq!(names(&list), [name2.clone(), name1.clone()]);

    // prune --remote: the older copy goes (sidecar and bundle); local ones stay.
    ok(
        "prune --remote",
        node.remote(&[
            "backup",
            "prune",
            "--remote",
            &at,
            "--keep-last",
            "1",
            "-o",
            "json",
        ]),
    );
    let list = ok(
        "list --remote",
        node.remote(&["backup", "list", "--remote", &at, "-o", "json"]),
    );
    assert_eq!(names(&list), [name2.as_str()]);
    assert_eq!(
        node.moto
            .request("GET", &format!("/{BUCKET}/clusters/a/{name1}.json"), b""),
        Some(404)
    );
    assert!(node.dir().join(&name1).is_file());

    // backup copy: a bundle made without --to, copied afterwards; then --all --dry-run
    // names what the store lacks (the copy pruned above) and uploads nothing.
    std::thread::sleep(Duration::from_millis(1100));
    let three = ok("create (local)", node.create_local().output().unwrap());
    let name3 = three["bundle"].as_str().unwrap().to_string();
    assert!(three["copies"].as_array().unwrap().is_empty(), "{three}");
    let bundle3 = node.dir().join(&name3).display().to_string();
    let copied = ok(
        "copy",
        node.remote(&["backup", "copy", &bundle3, "--to", &at, "-o", "json"]),
    );
    assert_eq!(copied["bundles"][0]["result"], "copied", "{copied}");
    assert_eq!(copied["copies"][0]["pushed"], "uploaded", "{copied}");
    let list = ok(
        "list --remote",
        node.remote(&["backup", "list", "--remote", &at, "-o", "json"]),
    );
    assert_eq!(names(&list), [name3.clone(), name2.clone()]);
    assert_eq!(list[0]["sidecar"]["sha256"], three["sha256"], "{list}");
    let dir = node.dir().display().to_string();
    let dry = ok(
        "copy --all --dry-run",
        node.remote(&[
            "backup",
            "copy",
            "--all",
            "--dir",
            &dir,
            "--to",
            &at,
            "--dry-run",
            "-o",
            "json",
        ]),
    );
    let results: Vec<(String, String)> = dry["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["bundle"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            (name1.clone(), "would copy".to_string()),
            (name2.clone(), "already there".to_string()),
            (name3.clone(), "already there".to_string()),
        ]
    );
    let list = ok(
        "list --remote",
        node.remote(&["backup", "list", "--remote", &at, "-o", "json"]),
    );
    assert_eq!(
        names(&list),
        [name3.clone(), name2.clone()],
        "the dry run uploads nothing"
    );
    eprintln!(
        "s3 copy test: create+copy of {size} bytes {created_in:?}, remote verify {verify_took:?}, all {:?}",
        started.elapsed()
    );
}

#[test]
fn real_etcd_cli_s3_upload_killed_then_the_next_run_completes_the_copy_17() {
    let node = Node::new();
    let at = format!("s3://{BUCKET}/interrupted");
    let started = Instant::now();

    // Run 1 pauses after its first part is uploaded and journaled; SIGKILL.
    let mut one = spawn_paused(
        node.create(&at),
        "KASTELLAN_S3_PAUSE_AFTER_PART",
        &node.root,
        "one",
    );
    let journal = wait_for_file(&mut one, "run 1's upload journal", || {
        journal_in(&node.dir())
    });
    // The pause comes right after the journal is written: wait for its first part.
    wait_for_parts(&journal, 1);
    kill_9(one);
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
    assert_eq!(j["parts"].as_array().unwrap().len(), 1, "{j}");
    let name1 = journal
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".s3-upload.json")
        .to_string();
    assert!(
        node.dir().join(&name1).is_file(),
        "the local bundle is whole"
    );

    // Not a copy yet: the remote listing has nothing, and no sidecar is there.
    let list = ok(
        "list --remote",
        node.remote(&["backup", "list", "--remote", &at, "-o", "json"]),
    );
    assert_eq!(names(&list), Vec::<String>::new(), "{list}");

    // Run 2 (a scheduled run, say): continues run 1's upload at its second part, then
    // copies its own bundle.
    std::thread::sleep(Duration::from_millis(1100));
    let two = ok("the next create --to", node.create(&at).output().unwrap());
    let copies = two["copies"].as_array().unwrap();
    assert_eq!(copies.len(), 2, "{two}");
    assert_eq!(copies[0]["bundle"], name1.as_str());
    assert_eq!(
        copies[0]["pushed"],
        serde_json::json!({"resumed": {"from": 1}}),
        "{two}"
    );
    assert_eq!(copies[0]["parts"], 3);
    assert_eq!(copies[1]["pushed"], "uploaded");
    assert!(!journal.exists(), "the journal goes once the copy is whole");

    // The resumed copy is whole: listed, and it verifies byte for byte.
    let list = ok(
        "list --remote",
        node.remote(&["backup", "list", "--remote", &at, "-o", "json"]),
    );
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    ok(
        "verify the resumed copy",
        node.remote(&["backup", "verify", &format!("{at}/{name1}"), "-o", "json"]),
    );

    // Run 3 is killed once its bundle's object is complete, before its sidecar.
    std::thread::sleep(Duration::from_millis(1100));
    let mut three = spawn_paused(
        node.create(&at),
        "KASTELLAN_S3_PAUSE_BEFORE_SIDECAR",
        &node.root,
        "three",
    );
    let journal = wait_for_file(&mut three, "run 3's upload journal", || {
        journal_in(&node.dir())
    });
    let name3 = journal
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".s3-upload.json")
        .to_string();
    let object = format!("/{BUCKET}/interrupted/{name3}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.moto.request("HEAD", &object, b"") != Some(200) {
        assert!(Instant::now() < deadline, "{object} not complete in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_9(three);
    // Without its sidecar it is no whole copy: listed as unverified, refused by verify.
    let list = ok(
        "list --remote",
        node.remote(&["backup", "list", "--remote", &at, "-o", "json"]),
    );
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name3.as_str())
        .unwrap();
    assert_eq!(listed["verified"], false, "{list}");
    assert_eq!(listed["sidecar"], serde_json::Value::Null, "{list}");
    let out = node.remote(&["backup", "verify", &format!("{at}/{name3}")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no sidecar"),
        "{}",
        text(&out.stderr)
    );
    // Run 4 sees the object whole (size and sha256) and uploads only the sidecar.
    std::thread::sleep(Duration::from_millis(1100));
    let four = ok(
        "create --to after run 3",
        node.create(&at).output().unwrap(),
    );
    let copies = four["copies"].as_array().unwrap();
    assert_eq!(copies[0]["bundle"], name3.as_str(), "{four}");
    assert_eq!(copies[0]["pushed"], "sidecar-only", "{four}");
    assert_eq!(copies[0]["bytesSent"], 0);
    ok(
        "verify the copy whose sidecar came later",
        node.remote(&["backup", "verify", &format!("{at}/{name3}"), "-o", "json"]),
    );
    eprintln!("s3 interrupted upload test: {:?}", started.elapsed());
}

#[test]
fn real_etcd_cli_s3_bucket_refusing_writes_keeps_the_local_bundle_17() {
    let node = Node::new();
    let at = "s3://no-such-bucket/x";
    let out = node.create(at).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let local: Vec<String> = std::fs::read_dir(node.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.zst"))
        .collect();
    assert_eq!(local.len(), 1, "{local:?}");
    let name = &local[0];
    eprintln!("refused: {}", err.trim());
    assert!(
        err.contains(&format!("s3://no-such-bucket/x/{name}")),
        "the error names the bucket and key: {err}"
    );
    assert!(
        err.contains(&format!(
            "the local bundle is kept at {}",
            node.dir().join(name).display()
        )),
        "{err}"
    );
    assert!(err.contains("NoSuchBucket"), "the server's answer: {err}");
    assert!(node.dir().join(format!("{name}.json")).is_file());
    // Marked for the next run, which tries it again (and fails again, naming it).
    assert!(node.dir().join(format!("{name}.s3-upload.json")).is_file());
    std::thread::sleep(Duration::from_millis(1100));
    let out = node.create(at).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("s3://no-such-bucket/x/{name}")),
        "{err}"
    );

    // A bad URL is refused before anything is made.
    let out = node.create("https://example.invalid/x").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--to"), "{}", text(&out.stderr));
}

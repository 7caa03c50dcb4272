//! etcd run by systemd: the unit's effective configuration read as systemd reads it
//! (the unit file, then its drop-ins in order; `Environment=`, `EnvironmentFile=`,
//! `ExecStart=`, `User=`, `Group=`, `WorkingDirectory=`; specifiers such as `%H`; `$VAR`
//! and `${VAR}` in `ExecStart=`), the etcd flags that amounts to (a flag beats its
//! `ETCD_*` variable, etcd's defaults otherwise), and the drop-in that points the unit
//! at a restored data dir.
//!
//! The files come from `systemctl show -P FragmentPath/DropInPaths`; everything else
//! here is pure and works on their texts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::procedure::ProcedureError;

/// The drop-in kastellan writes (last in lexical order, so it wins over the others).
pub const DROPIN_NAME: &str = "99-kastellan-restore.conf";

/// A unit's files and the environment files they name, read from disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitFiles {
    /// The unit name with its suffix (`etcd.service`).
    pub unit: String,
    /// The unit file and then its drop-ins, in the order systemd applies them.
    pub files: Vec<(PathBuf, String)>,
    /// Each `EnvironmentFile=` path and its text (None: it does not exist).
    pub env_files: BTreeMap<PathBuf, Option<String>>,
    /// The host name, for `%H`.
    pub hostname: String,
}

/// The `[Service]` settings that decide how etcd runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    /// `ExecStart=` as written (specifiers resolved, variables not yet expanded).
    pub exec_start: Option<String>,
    /// `Environment=` assignments, in order.
    pub environment: Vec<(String, String)>,
    /// `EnvironmentFile=` paths, with whether a missing file is an error.
    pub environment_files: Vec<(PathBuf, bool)>,
    /// `User=`.
    pub user: Option<String>,
    /// `Group=`.
    pub group: Option<String>,
    /// `WorkingDirectory=`.
    pub working_directory: Option<String>,
    /// `UnsetEnvironment=` names (or exact `NAME=VALUE` assignments).
    pub unset_environment: Vec<String>,
}

/// `etcd` → `etcd.service`.
pub fn unit_name(unit: &str) -> String {
    if unit.contains('.') {
        unit.to_string()
    } else {
        format!("{unit}.service")
    }
}

/// Resolves the specifiers systemd resolves in the settings read here.
fn specifiers(value: &str, unit: &str, hostname: &str) -> String {
    let prefix = unit.rsplit_once('.').map(|(p, _)| p).unwrap_or(unit);
    let (prefix, instance) = match prefix.split_once('@') {
        Some((p, i)) => (p, i),
        None => (prefix, ""),
    };
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('H') | Some('l') => out.push_str(hostname),
            Some('n') => out.push_str(unit),
            Some('N') => out.push_str(unit.rsplit_once('.').map(|(p, _)| p).unwrap_or(unit)),
            Some('p') => out.push_str(prefix),
            Some('i') | Some('I') => out.push_str(instance),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Splits a systemd value into words: whitespace separates, `"…"` and `'…'` group,
/// a backslash escapes the next character.
pub fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The `[Service]` settings of a unit's files, applied in order as systemd does (an
/// empty assignment resets a list; the last `ExecStart=` after a reset counts).
pub fn service(files: &UnitFiles) -> Service {
    let mut s = Service::default();
    let spec = |v: &str| specifiers(v, &files.unit, &files.hostname);
    for (_, text) in &files.files {
        let mut section = String::new();
        let mut pending = String::new();
        for raw in text.lines() {
            let line = raw.trim();
            if pending.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
                continue;
            }
            if let Some(body) = line.strip_suffix('\\') {
                pending.push_str(body);
                pending.push(' ');
                continue;
            }
            let line = if pending.is_empty() {
                line.to_string()
            } else {
                let l = format!("{pending}{line}");
                pending.clear();
                l
            };
            if line.starts_with('[') {
                section = line.trim_matches(['[', ']']).to_string();
                continue;
            }
            if section != "Service" {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "ExecStart" if value.is_empty() => s.exec_start = None,
                "ExecStart" => s.exec_start = Some(spec(value)),
                "Environment" if value.is_empty() => s.environment.clear(),
                "Environment" => {
                    for w in split_words(&spec(value)) {
                        if let Some((k, v)) = w.split_once('=') {
                            s.environment.push((k.to_string(), v.to_string()));
                        }
                    }
                }
                "EnvironmentFile" if value.is_empty() => s.environment_files.clear(),
                "EnvironmentFile" => {
                    let v = spec(value);
                    let (optional, path) = match v.strip_prefix('-') {
                        Some(p) => (true, p.to_string()),
                        None => (false, v),
                    };
                    s.environment_files.push((PathBuf::from(path), !optional));
                }
                "UnsetEnvironment" if value.is_empty() => s.unset_environment.clear(),
                "UnsetEnvironment" => s.unset_environment.extend(split_words(&spec(value))),
                "User" => s.user = (!value.is_empty()).then(|| spec(value)),
                "Group" => s.group = (!value.is_empty()).then(|| spec(value)),
                "WorkingDirectory" => {
                    s.working_directory = (!value.is_empty()).then(|| spec(value))
                }
                _ => {}
            }
        }
    }
    s
}

/// Parses an environment file: `KEY=VALUE` lines, `#`/`;` comments, quotes removed.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            v[1..v.len() - 1].to_string()
        } else {
            v.to_string()
        };
        out.push((k.trim().to_string(), v));
    }
    out
}

/// The environment etcd gets: `Environment=` first, the environment files over it
/// (a later file over an earlier one), then `UnsetEnvironment=` removes, as systemd
/// documents.
pub fn environment(
    service: &Service,
    files: &UnitFiles,
) -> Result<BTreeMap<String, String>, ProcedureError> {
    let mut env: BTreeMap<String, String> = service.environment.iter().cloned().collect();
    for (path, required) in &service.environment_files {
        match files.env_files.get(path).cloned().flatten() {
            Some(text) => env.extend(parse_env_file(&text)),
            None if *required => {
                return Err(ProcedureError::MissingEnvironmentFile {
                    unit: files.unit.clone(),
                    path: path.clone(),
                });
            }
            None => {}
        }
    }
    for u in &service.unset_environment {
        match u.split_once('=') {
            Some((k, v)) => {
                if env.get(k).is_some_and(|x| x == v) {
                    env.remove(k);
                }
            }
            None => {
                env.remove(u);
            }
        }
    }
    Ok(env)
}

/// `ExecStart=`'s argv: the prefixes `-@:+!` dropped, `${VAR}` replaced in place, a
/// word `$VAR` replaced by the value split at whitespace.
pub fn argv(exec_start: &str, env: &BTreeMap<String, String>) -> Vec<String> {
    let cmd = exec_start.trim_start_matches(['-', '@', ':', '+', '!']);
    let mut out = Vec::new();
    for w in split_words(cmd) {
        if let Some(name) = w.strip_prefix('$')
            && !name.starts_with('{')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            out.extend(
                env.get(name)
                    .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                    .unwrap_or_default(),
            );
            continue;
        }
        let mut s = String::new();
        let mut rest = w.as_str();
        while let Some(i) = rest.find("${") {
            s.push_str(&rest[..i]);
            match rest[i + 2..].find('}') {
                Some(j) => {
                    let name = &rest[i + 2..i + 2 + j];
                    s.push_str(env.get(name).map(String::as_str).unwrap_or(""));
                    rest = &rest[i + 3 + j..];
                }
                None => {
                    s.push_str(&rest[i..]);
                    rest = "";
                }
            }
        }
        s.push_str(rest);
        out.push(s);
    }
    out
}

/// The etcd settings the restore needs, as etcd would resolve them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdSettings {
    /// `--name` (etcd's default: `default`).
    pub name: String,
    /// `--data-dir`, absolute (etcd's default: `<name>.etcd` in the working directory).
    pub data_dir: PathBuf,
    /// `--initial-advertise-peer-urls`.
    pub peer_urls: String,
    /// `--initial-cluster`.
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--listen-client-urls`.
    pub listen_client_urls: String,
    /// `--listen-metrics-urls`, when set.
    pub listen_metrics_urls: Option<String>,
}

/// The value of etcd flag `name` in `args` (the last one, as Go's flag package keeps),
/// else of its `ETCD_*` variable.
pub fn etcd_flag(args: &[String], env: &BTreeMap<String, String>, name: &str) -> Option<String> {
    let found = kastellan_kubeadm::Flags(args.iter().skip(1).cloned().collect())
        .get(name)
        .map(str::to_string);
    found.or_else(|| {
        env.get(&format!("ETCD_{}", name.to_uppercase().replace('-', "_")))
            .cloned()
    })
}

/// What etcd would run with under this unit.
pub fn etcd_settings(files: &UnitFiles) -> Result<(Service, EtcdSettings), ProcedureError> {
    let service = service(files);
    let env = environment(&service, files)?;
    let exec = service
        .exec_start
        .clone()
        .ok_or_else(|| ProcedureError::NoExecStart {
            unit: files.unit.clone(),
            files: files
                .files
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let args = argv(&exec, &env);
    let program = args.first().cloned().unwrap_or_default();
    if Path::new(&program).file_name().and_then(|n| n.to_str()) != Some("etcd") {
        return Err(ProcedureError::NotEtcd {
            unit: files.unit.clone(),
            program,
        });
    }
    // etcd refuses to start when a flag is also set by its ETCD_* variable.
    for a in args.iter().skip(1) {
        let Some(body) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            continue;
        };
        let flag = body.split('=').next().unwrap_or(body);
        let var = format!("ETCD_{}", flag.to_uppercase().replace('-', "_"));
        if !flag.is_empty() && env.contains_key(&var) {
            return Err(ProcedureError::EnvShadowed {
                unit: files.unit.clone(),
                var,
                flag: format!("--{flag}"),
            });
        }
    }
    let flag = |n: &str| etcd_flag(&args, &env, n).filter(|v| !v.is_empty());
    if let Some(path) = flag("config-file") {
        return Err(ProcedureError::ConfigFile {
            unit: files.unit.clone(),
            path,
        });
    }
    let name = flag("name").unwrap_or_else(|| "default".into());
    let data_dir = flag("data-dir").unwrap_or_else(|| format!("{name}.etcd"));
    let data_dir = Path::new(service.working_directory.as_deref().unwrap_or("/")).join(data_dir);
    let peer_urls = flag("initial-advertise-peer-urls").unwrap_or("http://localhost:2380".into());
    // etcd: with the default --initial-cluster and a name of its own, the cluster is
    // this one member.
    let initial_cluster = flag("initial-cluster").unwrap_or_else(|| {
        if name == "default" {
            "default=http://localhost:2380".into()
        } else {
            format!("{name}={peer_urls}")
        }
    });
    let settings = EtcdSettings {
        initial_cluster_token: flag("initial-cluster-token").unwrap_or("etcd-cluster".into()),
        listen_client_urls: flag("listen-client-urls").unwrap_or("http://localhost:2379".into()),
        listen_metrics_urls: flag("listen-metrics-urls"),
        name,
        data_dir,
        peer_urls,
        initial_cluster,
    };
    Ok((service, settings))
}

/// The drop-in that makes the unit run etcd on `new`: `ExecStart=` reset and written
/// again with `--data-dir` replaced where it is, else appended, and `ETCD_DATA_DIR`
/// unset (etcd refuses a flag that its variable also sets). Checked: with it applied,
/// etcd would start, on `new`.
pub fn dropin(files: &UnitFiles, new: &Path) -> Result<String, ProcedureError> {
    let (service, _) = etcd_settings(files)?;
    let exec = service.exec_start.unwrap_or_default();
    let new_s = new.display().to_string();
    let mut words = split_words(&exec);
    let mut replaced = false;
    let mut i = 0;
    while i < words.len() {
        let w = words[i].clone();
        let body = w.trim_start_matches('-');
        if w.starts_with('-') && body.starts_with("data-dir=") {
            words[i] = format!("--data-dir={new_s}");
            replaced = true;
        } else if w.starts_with('-') && body == "data-dir" && i + 1 < words.len() {
            words[i + 1] = new_s.clone();
            replaced = true;
            i += 1;
        }
        i += 1;
    }
    if !replaced {
        words.push(format!("--data-dir={new_s}"));
    }
    let line = words
        .iter()
        .map(|w| quote_word(w))
        .collect::<Vec<_>>()
        .join(" ");
    let text = format!(
        "# Written by kastellan restore: etcd's data dir after a snapshot restore.\n# The data dir before is kept as it was; remove this file to go back to it.\n[Service]\nUnsetEnvironment=ETCD_DATA_DIR\nExecStart=\nExecStart={line}\n"
    );
    let mut with = files.clone();
    with.files.push((PathBuf::from(DROPIN_NAME), text.clone()));
    let (_, after) = etcd_settings(&with)?;
    if after.data_dir != new {
        return Err(ProcedureError::DropinIneffective {
            unit: files.unit.clone(),
            effective: after.data_dir.display().to_string(),
            wanted: new_s,
        });
    }
    Ok(text)
}

/// Quotes a word for `ExecStart=` when it needs it (variables stay unquoted so that
/// `$VAR` still splits).
fn quote_word(w: &str) -> String {
    if w.is_empty() {
        return "\"\"".into();
    }
    if w.chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\')
    {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        return format!("\"{escaped}\"");
    }
    w.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's etcd-server unit, as bookworm ships it.
    const DEBIAN: &str = "[Unit]\nDescription=etcd - highly-available key value store\nAfter=network.target\n\n[Service]\nEnvironment=DAEMON_ARGS=\nEnvironment=ETCD_NAME=%H\nEnvironment=ETCD_DATA_DIR=/var/lib/etcd/default\nEnvironmentFile=-/etc/default/%p\nType=notify\nUser=etcd\nPermissionsStartOnly=true\n#ExecStart=/bin/sh -c \"GOMAXPROCS=$(nproc) /usr/bin/etcd $DAEMON_ARGS\"\nExecStart=/usr/bin/etcd $DAEMON_ARGS\nRestart=on-abnormal\n\n[Install]\nWantedBy=multi-user.target\n";

    fn files(texts: &[(&str, &str)], env: &[(&str, Option<&str>)]) -> UnitFiles {
        UnitFiles {
            unit: "etcd.service".into(),
            files: texts
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect(),
            env_files: env
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.map(str::to_string)))
                .collect(),
            hostname: "node1".into(),
        }
    }

    #[test]
    fn debian_unit_with_its_defaults() {
        let f = files(&[("/lib/systemd/system/etcd.service", DEBIAN)], &[]);
        let (svc, s) = etcd_settings(&f).unwrap();
        assert_eq!(svc.user.as_deref(), Some("etcd"));
        assert_eq!(
            svc.environment_files,
            vec![("/etc/default/etcd".into(), false)]
        );
        assert_eq!(s.name, "node1");
        assert_eq!(s.data_dir, Path::new("/var/lib/etcd/default"));
        assert_eq!(s.peer_urls, "http://localhost:2380");
        assert_eq!(s.initial_cluster, "node1=http://localhost:2380");
        assert_eq!(s.listen_client_urls, "http://localhost:2379");
        assert_eq!(s.initial_cluster_token, "etcd-cluster");
    }

    #[test]
    fn environment_file_beats_environment_and_daemon_args_split() {
        let env = "# /etc/default/etcd\nETCD_DATA_DIR=\"/srv/etcd\"\nDAEMON_ARGS=\"--initial-cluster-token=tok --listen-metrics-urls=http://127.0.0.1:2381\"\nETCD_NAME=a1\n";
        let f = files(
            &[("/lib/systemd/system/etcd.service", DEBIAN)],
            &[("/etc/default/etcd", Some(env))],
        );
        let (_, s) = etcd_settings(&f).unwrap();
        assert_eq!(s.data_dir, Path::new("/srv/etcd"));
        assert_eq!(
            s.name, "a1",
            "the file's ETCD_NAME over Environment=ETCD_NAME=%H"
        );
        assert_eq!(s.initial_cluster_token, "tok");
        assert_eq!(
            s.listen_metrics_urls.as_deref(),
            Some("http://127.0.0.1:2381")
        );
    }

    #[test]
    fn required_environment_file_missing_is_named() {
        let unit = "[Service]\nEnvironmentFile=/etc/etcd.env\nExecStart=/usr/local/bin/etcd\n";
        let f = files(
            &[("/etc/systemd/system/etcd.service", unit)],
            &[("/etc/etcd.env", None)],
        );
        let e = etcd_settings(&f).unwrap_err().to_string();
        assert!(
            e.contains("/etc/etcd.env") && e.contains("etcd.service"),
            "{e}"
        );
    }

    #[test]
    fn continuation_lines_drop_ins_and_exec_reset() {
        let unit = "[Service]\nExecStart=/usr/local/bin/etcd \\\n  --name m1 \\\n  --data-dir /var/lib/etcd \\\n  --initial-cluster m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380 \\\n  --listen-metrics-urls=http://127.0.0.1:2381\nWorkingDirectory=/var/lib/etcd\n";
        let over = "[Service]\nExecStart=\nExecStart=/usr/local/bin/etcd --name m1 --data-dir=rel --initial-cluster-token \"t 1\"\n";
        let f = files(
            &[
                ("/etc/systemd/system/etcd.service", unit),
                ("/etc/systemd/system/etcd.service.d/10-x.conf", over),
            ],
            &[],
        );
        let (_, s) = etcd_settings(&f).unwrap();
        assert_eq!(
            s.data_dir,
            Path::new("/var/lib/etcd/rel"),
            "relative to WorkingDirectory"
        );
        assert_eq!(s.initial_cluster_token, "t 1");
        assert_eq!(
            s.initial_cluster, "m1=http://localhost:2380",
            "the reset dropped the flags"
        );
        let base = files(&[("/etc/systemd/system/etcd.service", unit)], &[]);
        let (_, s) = etcd_settings(&base).unwrap();
        assert_eq!(s.data_dir, Path::new("/var/lib/etcd"));
        assert_eq!(
            s.listen_metrics_urls.as_deref(),
            Some("http://127.0.0.1:2381")
        );
        assert_eq!(s.initial_cluster.split(',').count(), 2);
    }

    #[test]
    fn dropin_replaces_or_appends_the_flag_and_is_checked() {
        let new = Path::new("/var/lib/etcd-restore-20260101T000000Z");
        // Data dir from ETCD_DATA_DIR: the flag is appended after $DAEMON_ARGS.
        let f = files(&[("/lib/systemd/system/etcd.service", DEBIAN)], &[]);
        let d = dropin(&f, new).unwrap();
        assert!(
            d.contains("UnsetEnvironment=ETCD_DATA_DIR\nExecStart=\nExecStart=/usr/bin/etcd $DAEMON_ARGS --data-dir=/var/lib/etcd-restore-20260101T000000Z\n"),
            "{d}"
        );
        // Data dir as a flag with a separate value: replaced where it is.
        let unit = "[Service]\nExecStart=/usr/local/bin/etcd --name m1 --data-dir /var/lib/etcd --quota-backend-bytes=1\n";
        let f = files(&[("/etc/systemd/system/etcd.service", unit)], &[]);
        let d = dropin(&f, new).unwrap();
        assert!(
            d.contains("ExecStart=/usr/local/bin/etcd --name m1 --data-dir /var/lib/etcd-restore-20260101T000000Z --quota-backend-bytes=1\n"),
            "{d}"
        );
        // A shell wrapper: refused, naming what it runs.
        let unit = "[Service]\nExecStart=/bin/sh -c \"exec /usr/bin/etcd\"\n";
        let f = files(&[("/etc/systemd/system/etcd.service", unit)], &[]);
        let e = dropin(&f, new).unwrap_err().to_string();
        assert!(
            e.contains("/bin/sh") && e.contains("not etcd itself"),
            "{e}"
        );
        // etcd configured by a file: refused.
        let unit = "[Service]\nExecStart=/usr/bin/etcd --config-file /etc/etcd/etcd.yml\n";
        let f = files(&[("/etc/systemd/system/etcd.service", unit)], &[]);
        let e = dropin(&f, new).unwrap_err().to_string();
        assert!(e.contains("/etc/etcd/etcd.yml"), "{e}");
    }

    #[test]
    fn a_flag_also_set_by_its_variable_is_refused_as_etcd_does() {
        let unit =
            "[Service]\nEnvironment=ETCD_DATA_DIR=/a\nExecStart=/usr/bin/etcd --data-dir=/b\n";
        let f = files(&[("/etc/systemd/system/etcd.service", unit)], &[]);
        let e = etcd_settings(&f).unwrap_err().to_string();
        assert!(
            e.contains("ETCD_DATA_DIR") && e.contains("--data-dir"),
            "{e}"
        );
        let unset = "[Service]\nUnsetEnvironment=ETCD_DATA_DIR\n";
        let f = files(
            &[
                ("/etc/systemd/system/etcd.service", unit),
                ("/etc/systemd/system/etcd.service.d/x.conf", unset),
            ],
            &[],
        );
        assert_eq!(etcd_settings(&f).unwrap().1.data_dir, Path::new("/b"));
    }

    #[test]
    fn words_variables_and_specifiers() {
        assert_eq!(
            split_words(r#"a "b c" 'd e' f\ g"#),
            vec!["a", "b c", "d e", "f g"]
        );
        let env: BTreeMap<String, String> = [("A".to_string(), "x  y".to_string())].into();
        assert_eq!(
            argv("-/usr/bin/etcd $A ${A}z $B --k=${A}", &env),
            vec!["/usr/bin/etcd", "x", "y", "x  yz", "--k=x  y"]
        );
        assert_eq!(
            specifiers("%p-%n-%H-%%", "etcd.service", "h"),
            "etcd-etcd.service-h-%"
        );
        assert_eq!(unit_name("etcd"), "etcd.service");
        assert_eq!(unit_name("etcd2.service"), "etcd2.service");
    }
}

//! Scheduled backups: under systemd, the service and timer units (pure text, no I/O)
//! and the reading of `systemctl show` into the last run, its result and the next one;
//! in the cluster, a CronJob for the control-plane nodes ([`cronjob_yaml`]).
//!
//! The timer is `Persistent=` (a run missed while the node was off happens at boot)
//! with a `RandomizedDelaySec=` (control planes do not all snapshot etcd in the same
//! second); its `OnCalendar=` is derived from the interval, which must divide a day
//! (minutes dividing an hour, hours dividing a day) or be a day or a week, so that
//! runs fall at the same times every day. The service is `Type=oneshot`, runs
//! `backup create` with the caller's arguments and then, when retention is asked for,
//! `backup prune` (`ExecStartPost=`: only after a good bundle). Secrets are never in
//! the units: a passphrase or a key is passed by its file's path.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};

/// What to schedule.
#[derive(Debug, Clone)]
pub struct ScheduleRequest {
    /// The units' name (`<name>.service`, `<name>.timer`).
    pub name: String,
    /// How often.
    pub every: Duration,
    /// The timer's `RandomizedDelaySec=`.
    pub randomized_delay: Duration,
    /// The binary the service runs (absolute).
    pub binary: PathBuf,
    /// The arguments of `backup create` (after `backup create`).
    pub create_args: Vec<String>,
    /// The arguments of each `backup prune` (after `backup prune`) to run after a good
    /// bundle, when retention is asked: the local directory's, then the remote copies'.
    pub prune_args: Vec<Vec<String>>,
}

/// The two unit files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Units {
    /// `<name>.service`.
    pub service_name: String,
    /// Its content.
    pub service: String,
    /// `<name>.timer`.
    pub timer_name: String,
    /// Its content.
    pub timer: String,
}

/// `OnCalendar=` for runs every `every`, at the same times each day.
pub fn on_calendar(every: Duration) -> Result<String> {
    let secs = every.as_secs();
    let bad = |why: &str| {
        Error::Usage(format!(
            "a schedule every {} cannot be a calendar: {why} (e.g. 15m, 1h, 6h, 1d, 7d)",
            span(every)
        ))
    };
    if secs == 0 || every.subsec_nanos() != 0 || !secs.is_multiple_of(60) {
        return Err(bad("it must be whole minutes"));
    }
    let minutes = secs / 60;
    match minutes {
        m if m < 60 && 60u64.is_multiple_of(m) => Ok(format!("*-*-* *:00/{m}:00")),
        m if m < 60 => Err(bad("minutes must divide an hour")),
        m if !m.is_multiple_of(60) => Err(bad("more than an hour must be whole hours")),
        m if m / 60 < 24 && 24u64.is_multiple_of(m / 60) => {
            Ok(format!("*-*-* 00/{}:00:00", m / 60))
        }
        m if m / 60 < 24 => Err(bad("hours must divide a day")),
        1440 => Ok("*-*-* 00:00:00".into()),
        10080 => Ok("Mon *-*-* 00:00:00".into()),
        _ => Err(bad("longer than a day must be 1d or 7d")),
    }
}

/// One argument of `ExecStart=` as systemd reads it: `%` and `$` doubled, quoted when
/// it holds a space, a quote or a backslash.
pub fn exec_arg(arg: &str) -> String {
    let escaped = arg.replace('%', "%%").replace('$', "$$");
    if escaped.is_empty()
        || escaped
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\' || c == ';')
    {
        let inner = escaped.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{inner}\"")
    } else {
        escaped
    }
}

fn command_line(binary: &std::path::Path, words: &[&str], args: &[String]) -> String {
    let mut parts = vec![exec_arg(&binary.display().to_string())];
    parts.extend(words.iter().map(|w| exec_arg(w)));
    parts.extend(args.iter().map(|a| exec_arg(a)));
    parts.join(" ")
}

/// A duration as systemd's time span (`90s`, `6h`).
fn span(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}min", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Whether `name` is usable as a unit name (letters, digits, `-`, `_`, `.`, `@`-free).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// The service and the timer for `req`.
pub fn systemd_units(req: &ScheduleRequest) -> Result<Units> {
    if !valid_name(&req.name) {
        return Err(Error::Usage(format!(
            "'{}' is not a unit name (letters, digits, '-', '_', '.', ':')",
            req.name
        )));
    }
    if !req.binary.is_absolute() {
        return Err(Error::Usage(format!(
            "the service needs the binary's absolute path, not {}",
            req.binary.display()
        )));
    }
    let calendar = on_calendar(req.every)?;
    let every = span(req.every);
    let mut service = format!(
        "# Written by kastellan backup schedule. Secrets are passed by file, never here.\n\
         [Unit]\n\
         Description=kastellan backup (every {every})\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         UMask=0077\n\
         Nice=10\n\
         IOSchedulingClass=best-effort\n\
         IOSchedulingPriority=7\n\
         ExecStart={}\n",
        command_line(&req.binary, &["backup", "create"], &req.create_args)
    );
    for prune in &req.prune_args {
        service.push_str(&format!(
            "ExecStartPost={}\n",
            command_line(&req.binary, &["backup", "prune"], prune)
        ));
    }
    let timer = format!(
        "# Written by kastellan backup schedule.\n\
         [Unit]\n\
         Description=kastellan backup every {every}\n\
         \n\
         [Timer]\n\
         OnCalendar={calendar}\n\
         Persistent=true\n\
         RandomizedDelaySec={}\n\
         AccuracySec=1min\n\
         Unit={}.service\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
        span(req.randomized_delay),
        req.name
    );
    Ok(Units {
        service_name: format!("{}.service", req.name),
        service,
        timer_name: format!("{}.timer", req.name),
        timer,
    })
}

/// The cron schedule (`minute hour day month weekday`) of runs every `every`, at the
/// same times as [`on_calendar`]'s.
pub fn cron_schedule(every: Duration) -> Result<String> {
    on_calendar(every)?;
    let minutes = every.as_secs() / 60;
    Ok(match minutes {
        m if m < 60 => format!("*/{m} * * * *"),
        1440 => "0 0 * * *".into(),
        10080 => "0 0 * * 1".into(),
        m => format!("0 */{} * * *", m / 60),
    })
}

/// What a CronJob runs and where.
#[derive(Debug, Clone)]
pub struct CronJobRequest {
    /// The CronJob's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its `apiVersion` (`batch/v1`; `batch/v1beta1` before Kubernetes 1.21).
    pub api_version: String,
    /// How often.
    pub every: Duration,
    /// The image holding `kastellan` on its `PATH`.
    pub image: String,
    /// The node's kubeadm directory, mounted read-only at the same path.
    pub etc_kubernetes: PathBuf,
    /// The bundle directory on the node (hostPath), mounted at the same path.
    pub dir: PathBuf,
    /// Other files of the node the run reads (a passphrase file, etcd's client key
    /// outside `etc_kubernetes`): each mounted read-only at its own path.
    pub host_files: Vec<PathBuf>,
    /// The arguments of `backup create` (after `backup create`).
    pub create_args: Vec<String>,
    /// The arguments of each `backup prune`, when retention is asked (local, then
    /// remote).
    pub prune_args: Vec<Vec<String>>,
}

/// A CronJob running `backup create` (then `backup prune`) on a control-plane node:
/// the host's network (etcd on its loopback), the node's `/etc/kubernetes` read-only,
/// the bundles on a hostPath, the control-plane node selector and tolerations,
/// `concurrencyPolicy: Forbid`. With retention, `backup create` is the init container
/// and `backup prune` the container, so pruning only follows a good bundle. Secrets
/// stay files on the node: nothing secret is in the object.
pub fn cronjob_yaml(req: &CronJobRequest) -> Result<String> {
    let schedule = cron_schedule(req.every)?;
    for p in std::iter::once(&req.etc_kubernetes)
        .chain(std::iter::once(&req.dir))
        .chain(&req.host_files)
    {
        if !p.is_absolute() {
            return Err(Error::Usage(format!(
                "a CronJob mounts node paths: {} must be absolute",
                p.display()
            )));
        }
    }
    let labels = serde_json::json!({
        "app.kubernetes.io/name": req.name,
        "app.kubernetes.io/managed-by": "kastellan",
    });
    let mut mounts = vec![
        serde_json::json!({"name": "etc-kubernetes", "mountPath": req.etc_kubernetes, "readOnly": true}),
        serde_json::json!({"name": "bundles", "mountPath": req.dir}),
    ];
    let mut volumes = vec![
        serde_json::json!({"name": "etc-kubernetes", "hostPath": {"path": req.etc_kubernetes, "type": "Directory"}}),
        serde_json::json!({"name": "bundles", "hostPath": {"path": req.dir, "type": "DirectoryOrCreate"}}),
    ];
    for (i, f) in req.host_files.iter().enumerate() {
        let name = format!("host-file-{i}");
        mounts.push(serde_json::json!({"name": name, "mountPath": f, "readOnly": true}));
        volumes.push(serde_json::json!({"name": name, "hostPath": {"path": f, "type": "File"}}));
    }
    let container = |name: &str, verb: &str, args: &[String]| {
        let mut command = vec![
            "kastellan".to_string(),
            "backup".to_string(),
            verb.to_string(),
        ];
        command.extend(args.iter().cloned());
        serde_json::json!({
            "name": name,
            "image": req.image,
            "command": command,
            "volumeMounts": mounts,
            "securityContext": {
                "runAsUser": 0,
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
            },
        })
    };
    let create = container("backup-create", "create", &req.create_args);
    let (init, main) = if req.prune_args.is_empty() {
        (Vec::new(), vec![create])
    } else {
        let prunes = req.prune_args.iter().map(|p| {
            let remote = p.iter().any(|a| a == "--remote");
            let name = if remote {
                "backup-prune-remote"
            } else {
                "backup-prune"
            };
            container(name, "prune", p)
        });
        (vec![create], prunes.collect())
    };
    let mut pod_spec = serde_json::json!({
        "restartPolicy": "Never",
        "hostNetwork": true,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
        "tolerations": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
        ],
        "containers": main,
        "volumes": volumes,
    });
    if !init.is_empty() {
        pod_spec["initContainers"] = serde_json::Value::Array(init);
    }
    let doc = serde_json::json!({
        "apiVersion": req.api_version,
        "kind": "CronJob",
        "metadata": {"name": req.name, "namespace": req.namespace, "labels": labels},
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": pod_spec,
                    },
                },
            },
        },
    });
    crate::resources::to_yaml(&doc)
}

/// The `systemctl show` properties [`ScheduleStatus::from_show`] reads from the timer.
pub const TIMER_PROPERTIES: &[&str] = &[
    "LoadState",
    "ActiveState",
    "UnitFileState",
    "NextElapseUSecRealtime",
];

/// The `systemctl show` properties [`ScheduleStatus::from_show`] reads from the service.
pub const SERVICE_PROPERTIES: &[&str] = &[
    "ActiveState",
    "Result",
    "ExecMainStartTimestamp",
    "ExecMainExitTimestamp",
    "ExecMainStatus",
];

/// A schedule's state as systemd reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// The timer unit.
    pub timer: String,
    /// Whether systemd knows the timer (`LoadState=loaded`).
    pub installed: bool,
    /// Whether it is enabled (`UnitFileState`).
    pub enabled: bool,
    /// Whether it is running (`ActiveState=active`).
    pub active: bool,
    /// When the last run started (UTC, RFC 3339), if any.
    pub last_run: Option<String>,
    /// When it ended.
    pub last_run_ended: Option<String>,
    /// Its result: `success`, `exit-code`, ... (`Result=`), or `running`.
    pub last_result: Option<String>,
    /// Its exit status.
    pub last_exit_status: Option<i32>,
    /// When the next run is due (UTC, RFC 3339).
    pub next_run: Option<String>,
}

impl ScheduleStatus {
    /// Reads `systemctl show --timestamp=unix` output of the timer and the service
    /// (`KEY=VALUE` lines, times as `@<seconds>`, empty or `0` when never). systemd 252
    /// prints a timer's `NextElapseUSecRealtime` in its own form whatever
    /// `--timestamp` says (`Wed 2026-12-02 06:14:37 UTC`): run it with `TZ=UTC`.
    /// The last run is the service's last start: the timer's `LastTriggerUSec` is set
    /// when a persistent timer is first started, before any run.
    pub fn from_show(timer: &str, timer_show: &str, service_show: &str) -> ScheduleStatus {
        let t = parse_show(timer_show);
        let s = parse_show(service_show);
        let get = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
        let last_run = time(&get(&s, "ExecMainStartTimestamp"));
        let state = get(&s, "ActiveState");
        let last_result = if last_run.is_none() {
            None
        } else if state == "activating" {
            Some("running".into())
        } else {
            Some(get(&s, "Result")).filter(|r| !r.is_empty())
        };
        ScheduleStatus {
            timer: timer.to_string(),
            installed: get(&t, "LoadState") == "loaded",
            enabled: get(&t, "UnitFileState") == "enabled",
            active: get(&t, "ActiveState") == "active",
            last_run_ended: time(&get(&s, "ExecMainExitTimestamp")),
            last_exit_status: last_run
                .as_ref()
                .and_then(|_| get(&s, "ExecMainStatus").parse().ok()),
            last_run,
            last_result,
            next_run: time(&get(&t, "NextElapseUSecRealtime")),
        }
    }

    /// Whether the last run failed.
    pub fn failed(&self) -> bool {
        matches!(self.last_result.as_deref(), Some(r) if r != "success" && r != "running")
    }
}

/// `KEY=VALUE` lines.
pub fn parse_show(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `@1733100000` (systemd's `--timestamp=unix`) or `Wed 2026-12-02 06:14:37 UTC` as
/// RFC 3339 UTC; empty, `0` or `n/a` is none.
fn time(v: &str) -> Option<String> {
    let ts = match v.strip_prefix('@') {
        Some(secs) => {
            let secs: i64 = secs.parse().ok()?;
            if secs == 0 {
                return None;
            }
            jiff::Timestamp::from_second(secs).ok()?
        }
        None => {
            let civil = v.strip_suffix(" UTC")?.split_once(' ')?.1;
            jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", civil)
                .ok()?
                .to_zoned(jiff::tz::TimeZone::UTC)
                .ok()?
                .timestamp()
        }
    };
    Some(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendars_keep_the_same_times_every_day() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(on_calendar(h(6)).unwrap(), "*-*-* 00/6:00:00");
        assert_eq!(on_calendar(h(1)).unwrap(), "*-*-* 00/1:00:00");
        assert_eq!(
            on_calendar(Duration::from_secs(900)).unwrap(),
            "*-*-* *:00/15:00"
        );
        assert_eq!(on_calendar(h(24)).unwrap(), "*-*-* 00:00:00");
        assert_eq!(on_calendar(h(168)).unwrap(), "Mon *-*-* 00:00:00");
        for bad in [
            h(5),
            h(48),
            Duration::from_secs(7 * 60),
            Duration::from_secs(90),
        ] {
            assert!(on_calendar(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn exec_args_are_quoted_and_escaped_as_systemd_reads_them() {
        assert_eq!(exec_arg("/var/backups"), "/var/backups");
        assert_eq!(exec_arg("/a b/c"), "\"/a b/c\"");
        assert_eq!(exec_arg("100%"), "100%%");
        assert_eq!(exec_arg("$HOME"), "$$HOME");
        assert_eq!(exec_arg("a\"b"), "\"a\\\"b\"");
        assert_eq!(exec_arg(""), "\"\"");
    }

    fn request() -> ScheduleRequest {
        ScheduleRequest {
            name: "kastellan-backup".into(),
            every: Duration::from_secs(6 * 3600),
            randomized_delay: Duration::from_secs(1800),
            binary: "/usr/local/bin/kastellan".into(),
            create_args: vec![
                "--dir".into(),
                "/var/backups/kastellan".into(),
                "--passphrase-file".into(),
                "/etc/kastellan/pass phrase".into(),
            ],
            prune_args: vec![vec![
                "--dir".into(),
                "/var/backups/kastellan".into(),
                "--keep-last".into(),
                "4".into(),
            ]],
        }
    }

    #[test]
    fn units_of_a_six_hourly_schedule() {
        let u = systemd_units(&request()).unwrap();
        assert_eq!(u.service_name, "kastellan-backup.service");
        assert_eq!(u.timer_name, "kastellan-backup.timer");
        assert_eq!(
            u.service,
            "# Written by kastellan backup schedule. Secrets are passed by file, never here.
[Unit]
Description=kastellan backup (every 6h)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
UMask=0077
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
ExecStart=/usr/local/bin/kastellan backup create --dir /var/backups/kastellan --passphrase-file \"/etc/kastellan/pass phrase\"
ExecStartPost=/usr/local/bin/kastellan backup prune --dir /var/backups/kastellan --keep-last 4
"
        );
        assert_eq!(
            u.timer,
            "# Written by kastellan backup schedule.
[Unit]
Description=kastellan backup every 6h

[Timer]
OnCalendar=*-*-* 00/6:00:00
Persistent=true
RandomizedDelaySec=30min
AccuracySec=1min
Unit=kastellan-backup.service

[Install]
WantedBy=timers.target
"
        );
        let mut no_prune = request();
        no_prune.prune_args = Vec::new();
        assert!(
            !systemd_units(&no_prune)
                .unwrap()
                .service
                .contains("ExecStartPost")
        );
        let mut bad = request();
        bad.name = "a/b".into();
        assert!(systemd_units(&bad).is_err());
        bad = request();
        bad.binary = "kastellan".into();
        assert!(systemd_units(&bad).is_err());
    }

    #[test]
    fn cron_schedules_match_the_calendars() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(cron_schedule(h(6)).unwrap(), "0 */6 * * *");
        assert_eq!(
            cron_schedule(Duration::from_secs(900)).unwrap(),
            "*/15 * * * *"
        );
        assert_eq!(cron_schedule(h(24)).unwrap(), "0 0 * * *");
        assert_eq!(cron_schedule(h(168)).unwrap(), "0 0 * * 1");
        assert!(cron_schedule(h(5)).is_err());
    }

    #[test]
    fn a_cronjob_for_the_control_plane_nodes() {
        let mut req = CronJobRequest {
            name: "kastellan-backup".into(),
            namespace: "kube-system".into(),
            api_version: "batch/v1".into(),
            every: Duration::from_secs(6 * 3600),
            image: "registry.example/kastellan:0.1".into(),
            etc_kubernetes: "/etc/kubernetes".into(),
            dir: "/var/backups/kastellan".into(),
            host_files: vec!["/etc/kastellan/passphrase".into()],
            create_args: vec!["--dir".into(), "/var/backups/kastellan".into()],
            prune_args: vec![vec!["--keep-last".into(), "4".into()]],
        };
        let yaml = cronjob_yaml(&req).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(doc["kind"], "CronJob");
        assert_eq!(doc["metadata"]["namespace"], "kube-system");
        assert_eq!(doc["spec"]["schedule"], "0 */6 * * *");
        assert_eq!(doc["spec"]["concurrencyPolicy"], "Forbid");
        let pod = &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"], true);
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(
            pod["nodeSelector"]["node-role.kubernetes.io/control-plane"],
            ""
        );
        let tolerated: Vec<&str> = pod["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            tolerated,
            [
                "node-role.kubernetes.io/control-plane",
                "node-role.kubernetes.io/master"
            ]
        );
        let init = &pod["initContainers"][0];
        assert_eq!(init["image"], "registry.example/kastellan:0.1");
        assert_eq!(
            init["command"],
            serde_json::json!([
                "kastellan",
                "backup",
                "create",
                "--dir",
                "/var/backups/kastellan"
            ])
        );
        assert_eq!(
            pod["containers"][0]["command"],
            serde_json::json!(["kastellan", "backup", "prune", "--keep-last", "4"])
        );
        let mounts = init["volumeMounts"].as_array().unwrap();
        assert_eq!(mounts[0]["mountPath"], "/etc/kubernetes");
        assert_eq!(mounts[0]["readOnly"], true);
        assert_eq!(mounts[1]["mountPath"], "/var/backups/kastellan");
        assert_eq!(mounts[2]["mountPath"], "/etc/kastellan/passphrase");
        assert_eq!(mounts[2]["readOnly"], true);
        let volumes = pod["volumes"].as_array().unwrap();
        assert_eq!(volumes[0]["hostPath"]["path"], "/etc/kubernetes");
        assert_eq!(volumes[1]["hostPath"]["type"], "DirectoryOrCreate");
        assert_eq!(volumes[2]["hostPath"]["type"], "File");
        assert!(!yaml.contains("passphrase:"), "no secret inline");

        // Without retention, create is the one container.
        req.prune_args = Vec::new();
        let doc: serde_json::Value = serde_saphyr::from_str(&cronjob_yaml(&req).unwrap()).unwrap();
        let pod = &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert!(pod.get("initContainers").is_none());
        assert_eq!(pod["containers"][0]["command"][2], "create");
        req.dir = "relative".into();
        assert!(cronjob_yaml(&req).is_err());
    }

    #[test]
    fn status_from_systemctl_show() {
        let timer = "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\nNextElapseUSecRealtime=Wed 2026-12-02 12:00:00 UTC\nLastTriggerUSec=Wed 2026-12-02 06:00:00 UTC\n";
        let service = "ActiveState=inactive\nResult=success\nExecMainStartTimestamp=@1796191230\nExecMainExitTimestamp=@1796191242\nExecMainStatus=0\n";
        let s = ScheduleStatus::from_show("kastellan-backup.timer", timer, service);
        assert!(s.installed && s.enabled && s.active);
        assert_eq!(s.last_run.as_deref(), Some("2026-12-02T06:00:30Z"));
        assert_eq!(s.last_run_ended.as_deref(), Some("2026-12-02T06:00:42Z"));
        assert_eq!(s.last_result.as_deref(), Some("success"));
        assert_eq!(s.next_run.as_deref(), Some("2026-12-02T12:00:00Z"));
        assert!(!s.failed());

        let failed = "ActiveState=failed\nResult=exit-code\nExecMainStartTimestamp=@1796191230\nExecMainExitTimestamp=@1796191231\nExecMainStatus=2\n";
        let s = ScheduleStatus::from_show("t", timer, failed);
        assert!(s.failed());
        assert_eq!(s.last_exit_status, Some(2));

        let never = "ActiveState=inactive\nResult=success\nExecMainStartTimestamp=\nExecMainExitTimestamp=\nExecMainStatus=0\n";
        let timer_never = "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\nNextElapseUSecRealtime=@1796212800\nLastTriggerUSec=Wed 2026-12-02 01:33:34 UTC\n";
        let s = ScheduleStatus::from_show("t", timer_never, never);
        assert_eq!(
            (&s.last_run, &s.last_result, s.last_exit_status),
            (&None, &None, None)
        );
        assert!(!s.failed());
        let s = ScheduleStatus::from_show("t", "LoadState=not-found\n", "");
        assert!(!s.installed);
    }
}

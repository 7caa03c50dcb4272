//! Parsers for what the control-plane endpoints answer. Pure: no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The failing checks named in a verbose `/livez` or `/readyz` body
/// (`[-]etcd failed: reason withheld`).
pub fn failing_checks(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("[-]"))
        .map(|rest| rest.split_whitespace().next().unwrap_or(rest).to_string())
        .collect()
}

/// One sample of a Prometheus text exposition: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parses the Prometheus text format (comments and malformed lines are skipped).
pub fn prometheus_text(body: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, rest) = match line.find('{') {
            Some(i) => {
                let Some(j) = line[i..].find('}') else {
                    continue;
                };
                (&line[..i], Some((&line[i + 1..i + j], &line[i + j + 1..])))
            }
            None => (line.split_whitespace().next().unwrap_or(""), None),
        };
        let (labels, value_part) = match rest {
            Some((labels, after)) => (parse_labels(labels), after.trim()),
            None => (BTreeMap::new(), line[head.len()..].trim()),
        };
        let Some(value) = value_part.split_whitespace().next().and_then(parse_value) else {
            continue;
        };
        out.push(Sample {
            name: head.to_string(),
            labels,
            value,
        });
    }
    out
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let Some(stripped) = after.strip_prefix('"') else {
            break;
        };
        let mut value = String::new();
        let mut chars = stripped.char_indices();
        let mut end = stripped.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key, value);
        rest = &stripped[end.min(stripped.len())..];
    }
    out
}

/// The first value of a metric (optionally with a label), if present.
pub fn metric(samples: &[Sample], name: &str) -> Option<f64> {
    samples.iter().find(|s| s.name == name).map(|s| s.value)
}

/// What etcd's `/metrics` says about one member.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdMetrics {
    /// `etcd_server_has_leader`.
    pub has_leader: Option<bool>,
    /// `etcd_server_is_leader`.
    pub is_leader: Option<bool>,
    /// `etcd_server_is_learner`.
    pub is_learner: Option<bool>,
    /// `etcd_mvcc_db_total_size_in_bytes` (or the 3.4 debugging name).
    pub db_size_bytes: Option<u64>,
    /// `etcd_mvcc_db_total_size_in_use_in_bytes`.
    pub db_in_use_bytes: Option<u64>,
    /// `etcd_server_quota_backend_bytes`.
    pub quota_bytes: Option<u64>,
    /// `etcd_server_leader_changes_seen_total`.
    pub leader_changes: Option<u64>,
    /// `etcd_server_version{server_version=...}`.
    pub version: Option<String>,
}

/// Extracts the member figures from etcd's metrics.
pub fn etcd_metrics(body: &str) -> EtcdMetrics {
    let s = prometheus_text(body);
    let flag = |n: &str| metric(&s, n).map(|v| v >= 1.0);
    let num = |n: &str| metric(&s, n).map(|v| v as u64);
    EtcdMetrics {
        has_leader: flag("etcd_server_has_leader"),
        is_leader: flag("etcd_server_is_leader"),
        is_learner: flag("etcd_server_is_learner"),
        db_size_bytes: num("etcd_mvcc_db_total_size_in_bytes")
            .or_else(|| num("etcd_debugging_mvcc_db_total_size_in_bytes")),
        db_in_use_bytes: num("etcd_mvcc_db_total_size_in_use_in_bytes"),
        quota_bytes: num("etcd_server_quota_backend_bytes"),
        leader_changes: num("etcd_server_leader_changes_seen_total"),
        version: s
            .iter()
            .find(|x| x.name == "etcd_server_version")
            .and_then(|x| x.labels.get("server_version").cloned()),
    }
}

/// kube-proxy's `:10256/healthz` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyHealth {
    /// When kube-proxy last synced its rules.
    #[serde(default)]
    pub last_updated: String,
    /// kube-proxy's clock at the time of the answer.
    #[serde(default)]
    pub current_time: String,
}

/// Parses kube-proxy's healthz JSON; the sync age in seconds when both times parse.
pub fn proxy_health(body: &str) -> Option<(ProxyHealth, Option<i64>)> {
    let h: ProxyHealth = serde_json::from_str(body).ok()?;
    let age = match (go_time(&h.last_updated), go_time(&h.current_time)) {
        (Some(a), Some(b)) => Some(b.duration_since(a).as_secs()),
        _ => None,
    };
    Some((h, age))
}

/// Parses RFC 3339 or Go's `time.Time.String()` form
/// (`2026-11-21 21:22:00.704694608 +0000 UTC m=+13.81`).
pub fn go_time(s: &str) -> Option<jiff::Timestamp> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t);
    }
    let s = s.split(" m=").next()?.trim();
    let mut parts: Vec<&str> = s.split(' ').collect();
    if parts.len() == 4 {
        parts.pop(); // the zone abbreviation; the offset says it all
    }
    let s = parts.join(" ");
    jiff::fmt::strtime::parse("%Y-%m-%d %H:%M:%S%.f %z", &s)
        .ok()?
        .to_timestamp()
        .ok()
}

/// A byte count for humans (`12.5 MiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_failures_are_named() {
        let body = "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[+]poststarthook/start-kube-aggregator-informers ok\n[-]informer-sync failed: reason withheld\nreadyz check failed\n";
        assert_eq!(failing_checks(body), ["etcd", "informer-sync"]);
        assert!(failing_checks("[+]ping ok\nreadyz check passed\n").is_empty());
    }

    #[test]
    fn prometheus_text_with_labels_and_escapes() {
        let body = "# HELP x y\n# TYPE etcd_server_has_leader gauge\netcd_server_has_leader 1\n\
                    etcd_server_version{server_version=\"3.4.23\"} 1\n\
                    weird{a=\"b\\\"c\",d=\"e\"} 2.5e+06\nbroken{ 1\n";
        let s = prometheus_text(body);
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].labels["server_version"], "3.4.23");
        assert_eq!(s[2].labels["a"], "b\"c");
        assert_eq!(s[2].labels["d"], "e");
        assert_eq!(s[2].value, 2.5e6);
    }

    #[test]
    fn etcd_figures_from_metrics() {
        let body = "etcd_server_has_leader 1\netcd_server_is_leader 0\netcd_mvcc_db_total_size_in_bytes 2.0480e+07\n\
                    etcd_mvcc_db_total_size_in_use_in_bytes 1.024e+07\netcd_server_quota_backend_bytes 2.147483648e+09\n\
                    etcd_server_leader_changes_seen_total 2\netcd_server_version{server_version=\"3.5.1\"} 1\n";
        let m = etcd_metrics(body);
        assert_eq!(m.has_leader, Some(true));
        assert_eq!(m.is_leader, Some(false));
        assert_eq!(m.db_size_bytes, Some(20_480_000));
        assert_eq!(m.quota_bytes, Some(2_147_483_648));
        assert_eq!(m.leader_changes, Some(2));
        assert_eq!(m.version.as_deref(), Some("3.5.1"));
        assert_eq!(etcd_metrics("").has_leader, None);
    }

    #[test]
    fn proxy_health_age() {
        let (h, age) = proxy_health(
            r#"{"lastUpdated": "2026-11-21 10:00:00.5 +0000 UTC","currentTime": "x"}"#,
        )
        .unwrap();
        assert!(h.last_updated.starts_with("2026"));
        assert_eq!(age, None, "unparseable times give no age");
        let (_, age) = proxy_health(
            r#"{"lastUpdated": "2026-11-21 21:22:00.704694608 +0000 UTC m=+13.813432758","currentTime": "2026-11-21 21:22:05.9 +0000 UTC m=+19.0"}"#,
        )
        .unwrap();
        assert_eq!(
            age,
            Some(5),
            "Go's time format, as kube-proxy 1.20 writes it"
        );
        let (_, age) = proxy_health(
            r#"{"lastUpdated":"2026-11-21T10:00:00Z","currentTime":"2026-11-21T10:00:42Z"}"#,
        )
        .unwrap();
        assert_eq!(age, Some(42));
        assert!(proxy_health("ok").is_none());
    }

    #[test]
    fn bytes_for_humans() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(20 * 1024 * 1024), "20.0 MiB");
    }
}

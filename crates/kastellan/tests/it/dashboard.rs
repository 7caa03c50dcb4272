//! The Grafana dashboard (`deploy/grafana-dashboard.json`) against the metrics the
//! exporter really serves: every metric a query names must be in a scrape of the
//! exporter on the lab, and every label a query uses (matchers, `by`/`on` lists,
//! legends, `label_values`) must be one that those metrics carry (or a target label that
//! Prometheus adds: `job`, `instance`). So the dashboard cannot drift from the code.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kastellan;

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

fn dashboard() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/grafana-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Metric names and the labels each carries, from an OpenMetrics/Prometheus text.
fn served(scrape: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in scrape.lines().filter(|l| l.starts_with("kastellan_")) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_string()).or_default();
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.rfind('}').unwrap_or(line.len())];
            let mut rest = body;
            // name="value" pairs; values may hold commas, so walk quote by quote.
            while let Some(eq) = rest.find("=\"") {
                labels.insert(rest[..eq].trim_start_matches(',').trim().to_string());
                let after = &rest[eq + 2..];
                let mut end = 0;
                let bytes = after.as_bytes();
                while end < bytes.len()
                    && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\'))
                {
                    end += 1;
                }
                rest = &after[(end + 1).min(after.len())..];
            }
        }
    }
    out
}

fn idents(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The metric names and labels one query (and its legend) uses.
fn uses(expr: &str, legend: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut metrics = BTreeSet::new();
    let mut labels = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = expr[i..].find("kastellan_") {
        let start = i + at;
        let end = expr[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(expr.len(), |e| start + e);
        metrics.insert(expr[start..end].to_string());
        i = end;
    }
    // Matchers: {a="x", b=~"y"}.
    let mut rest = expr;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        for m in rest[open + 1..close].split(',') {
            if let Some(op) = m.find(['=', '!']) {
                labels.insert(m[..op].trim().to_string());
            }
        }
        rest = &rest[close..];
        rest = rest.get(1..).unwrap_or("");
    }
    // by (...) / on (...) / without (...) / ignoring (...)
    for kw in ["by", "on", "without", "ignoring"] {
        let mut rest = expr;
        while let Some(at) = rest.find(kw) {
            let after = rest[at + kw.len()..].trim_start();
            let word_start = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric();
            if word_start && after.starts_with('(') {
                let close = after.find(')').unwrap_or(after.len());
                labels.extend(idents(&after[1..close]));
            }
            rest = &rest[at + kw.len()..];
        }
    }
    // label_values(metric, label)
    if let Some(args) = expr
        .strip_prefix("label_values(")
        .and_then(|a| a.strip_suffix(')'))
    {
        let parts = idents(args);
        if let [m, l] = parts.as_slice() {
            metrics.insert(m.clone());
            labels.insert(l.clone());
        }
    }
    // Legends: {{label}}.
    let mut rest = legend;
    while let Some(open) = rest.find("{{") {
        let close = rest[open..].find("}}").map_or(rest.len(), |c| open + c);
        labels.insert(rest[open + 2..close].trim().to_string());
        rest = &rest[close..];
        rest = rest.get(2..).unwrap_or("");
    }
    (metrics, labels)
}

/// Every query of the dashboard with its legend.
fn queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                t["expr"].as_str().unwrap().to_string(),
                t["legendFormat"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            out.push((v["query"].as_str().unwrap().to_string(), String::new()));
        }
    }
    out
}

/// What the dashboard asks for that `scrape` does not serve, one line each.
fn problems(d: &Value, scrape: &str) -> Vec<String> {
    let served = served(scrape);
    let mut out = Vec::new();
    for (expr, legend) in queries(d) {
        let (metrics, labels) = uses(&expr, &legend);
        let mut known: BTreeSet<String> = TARGET_LABELS.iter().map(|s| s.to_string()).collect();
        for m in &metrics {
            match served.get(m) {
                Some(l) => known.extend(l.iter().cloned()),
                None => out.push(format!("{expr}: metric {m} is not served")),
            }
        }
        for l in labels.difference(&known) {
            out.push(format!("{expr}: label {l} is on none of {metrics:?}"));
        }
    }
    out
}

/// The check itself finds what drifted: a renamed metric and a label no metric has.
#[test]
fn cli_dashboard_check_finds_drift() {
    let d = dashboard();
    let scrape = "# TYPE kastellan_healthy gauge\nkastellan_healthy 1\n\
        kastellan_probe_up{node=\"cp1\",component=\"etcd\",endpoint=\"https://a,b\",source=\"local\"} 1\n";
    let p = problems(&d, scrape);
    assert!(
        p.iter()
            .any(|l| l.contains("metric kastellan_etcd_quorum_margin is not served")),
        "{p:#?}"
    );
    assert!(
        !p.iter()
            .any(|l| l.contains("kastellan_healthy is not served")),
        "{p:#?}"
    );
    let (m, l) = uses(
        "max by (node, component) (kastellan_probe_latency_seconds{job=~\"$job\", node=~\"$node\"})",
        "{{node}} {{component}}",
    );
    assert_eq!(
        m.into_iter().collect::<Vec<_>>(),
        ["kastellan_probe_latency_seconds"]
    );
    assert_eq!(
        l.into_iter().collect::<Vec<_>>(),
        ["component", "job", "node"]
    );
    let mut broken = d.clone();
    broken["panels"][5]["targets"][0]["legendFormat"] = "{{pod}}".into();
    let full = "kastellan_probe_latency_seconds{node=\"a\",component=\"b\",endpoint=\"c\",source=\"d\"} 1\n";
    assert!(
        problems(&broken, full)
            .iter()
            .any(|l| l.contains("label pod is on none of")),
        "{:#?}",
        problems(&broken, full)
    );
}

/// On the running 3+2 lab (called from its test): a cluster-wide exporter's scrape
/// serves every metric and label the dashboard uses.
pub fn dashboard_matches_the_exporter_on_the_lab() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = kastellan()
        .args([
            "exporter",
            "--kubeconfig",
            "/var/lib/kastellan/lab/admin.conf",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let scrape = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            write!(
                s,
                "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            break out;
        }
        assert!(Instant::now() < deadline, "the exporter never listened");
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    let p = problems(&dashboard(), &scrape);
    assert!(
        p.is_empty(),
        "the dashboard drifted from the exporter:\n{}\n{scrape}",
        p.join("\n")
    );
    // Not vacuous: the lab's scrape has the etcd and certificate families.
    for m in [
        "kastellan_etcd_db_size_bytes",
        "kastellan_certificate_expiry_days",
    ] {
        assert!(scrape.contains(m), "{m} missing from\n{scrape}");
    }
}

//! `kastellan exporter`: the status as Prometheus metrics, gathered on each scrape.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kastellan_health::{State, StatusReport, Verdict};
use kastellan_printer::Printer;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::Outcome;
use crate::cli::{ExporterArgs, GlobalArgs, ProbeArgs};

const DAEMONSET: &str = include_str!("../../../../deploy/exporter-daemonset.yaml");
const ALERTS: &str = include_str!("../../../../deploy/alerts.yaml");

/// Runs `exporter`.
pub fn run(args: ExporterArgs, global: &GlobalArgs, printer: &Printer) -> Result<Outcome> {
    if args.print_daemonset {
        printer.raw(DAEMONSET)?;
        return Ok(Outcome::Ok);
    }
    if args.print_alerts {
        printer.raw(ALERTS)?;
        return Ok(Outcome::Ok);
    }
    let rt = super::runtime()?;
    let state = Arc::new((
        args.probe.clone(),
        global.clone(),
        Sweeper::new(Duration::from_secs(args.min_interval)),
        args.backup_dir.clone(),
    ));
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot bind", args.listen))?;
        printer.note(format!(
            "serving metrics on http://{}/metrics",
            listener.local_addr()?
        ));
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let state = state.clone();
                    async move { scrape(&state.0, &state.1, &state.2, state.3.as_deref()).await }
                }),
            )
            .route("/healthz", axum::routing::get(|| async { "ok" }));
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving metrics")
    })?;
    Ok(Outcome::Ok)
}

/// One sweep's result, kept for the scrapes that follow it.
struct Swept {
    report: Arc<StatusReport>,
    finished: Instant,
    took: Duration,
}

/// Coalesces scrapes: one sweep at a time, shared by every scrape that arrived while
/// it ran, and served from memory while it is younger than the minimum interval. Two
/// Prometheus replicas and a few dashboards then cost the control plane one sweep.
struct Sweeper {
    min_interval: Duration,
    last: tokio::sync::Mutex<Option<Swept>>,
    sweeps: AtomicU64,
}

/// What a scrape says about the sweep it was served from.
#[derive(Debug, Clone, Copy)]
pub struct SweepStats {
    /// Seconds since the sweep finished.
    pub age: f64,
    /// How long the sweep took.
    pub duration: f64,
    /// Sweeps run since the exporter started.
    pub total: u64,
}

impl Sweeper {
    fn new(min_interval: Duration) -> Sweeper {
        Sweeper {
            min_interval,
            last: tokio::sync::Mutex::new(None),
            sweeps: AtomicU64::new(0),
        }
    }

    /// The report for a scrape that arrived now: the last sweep when it finished after
    /// the scrape arrived (it ran while the scrape waited) or is younger than the
    /// minimum interval, else a new sweep (the lock makes the others wait for it).
    async fn report(&self, p: &ProbeArgs, global: &GlobalArgs) -> (Arc<StatusReport>, SweepStats) {
        let arrived = Instant::now();
        let mut last = self.last.lock().await;
        let fresh = last
            .as_ref()
            .is_some_and(|s| s.finished >= arrived || s.finished.elapsed() < self.min_interval);
        let s: &Swept = match &mut *last {
            Some(s) if fresh => s,
            slot => {
                let start = Instant::now();
                let report = match super::status::gather(p, global).await {
                    Ok(r) => r,
                    Err(e) => {
                        let mut r = StatusReport::new(Vec::new(), None, Vec::new());
                        r.summary = format!("could not check: {e:#}");
                        r
                    }
                };
                self.sweeps.fetch_add(1, Ordering::Relaxed);
                slot.insert(Swept {
                    report: Arc::new(report),
                    finished: Instant::now(),
                    took: start.elapsed(),
                })
            }
        };
        (
            s.report.clone(),
            SweepStats {
                age: s.finished.elapsed().as_secs_f64(),
                duration: s.took.as_secs_f64(),
                total: self.sweeps.load(Ordering::Relaxed),
            },
        )
    }
}

async fn scrape(
    p: &ProbeArgs,
    global: &GlobalArgs,
    sweeper: &Sweeper,
    backup_dir: Option<&std::path::Path>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let (report, stats) = sweeper.report(p, global).await;
    let ct = (
        axum::http::header::CONTENT_TYPE,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    );
    let backups = backup_dir.map(|d| BackupFigures::of(d, jiff::Timestamp::now()));
    ([ct], encode_swept(&report, Some(stats), backups.as_ref()))
}

/// What the exporter says of the bundles in `--backup-dir`.
#[derive(Debug, Clone, Default)]
pub struct BackupFigures {
    /// Whether the directory could be listed.
    pub readable: bool,
    /// Bundles in it.
    pub bundles: usize,
    /// Age of the newest bundle, in seconds.
    pub newest: Option<f64>,
    /// Age of the newest bundle verified (and unchanged since).
    pub newest_verified: Option<f64>,
    /// Age of the newest bundle proven by a restore test that passed (and unchanged
    /// since).
    pub newest_proven: Option<f64>,
}

impl BackupFigures {
    /// Lists `dir` now.
    pub fn of(dir: &std::path::Path, now: jiff::Timestamp) -> BackupFigures {
        let Ok(list) = kastellan_bundle::list(dir) else {
            return BackupFigures::default();
        };
        let age = |b: &kastellan_bundle::BundleInfo| {
            b.created
                .map(|c| (now.as_millisecond() - c.as_millisecond()) as f64 / 1000.0)
        };
        let proven = |b: &&kastellan_bundle::BundleInfo| {
            b.verified
                && b.sidecar
                    .as_ref()
                    .and_then(|s| s.restore_test.as_ref())
                    .is_some_and(|t| t.passed)
        };
        // `list` is newest first.
        BackupFigures {
            readable: true,
            bundles: list.len(),
            newest: list.first().and_then(age),
            newest_verified: list.iter().find(|b| b.verified).and_then(age),
            newest_proven: list.iter().find(proven).and_then(age),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    node: String,
    component: String,
    endpoint: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemberLabels {
    member: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    node: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    lease: String,
    holder: String,
}

type G = Gauge<f64, AtomicU64>;

/// Encodes a report in the OpenMetrics text format, with the sweep's age, duration and
/// count when it comes from one, and the bundles' figures when a directory is watched.
pub fn encode_swept(
    r: &StatusReport,
    sweep: Option<SweepStats>,
    backups: Option<&BackupFigures>,
) -> String {
    let mut reg = Registry::with_prefix("kastellan");
    if let Some(b) = backups {
        register_backups(&mut reg, b);
    }
    if let Some(sw) = sweep {
        let age = G::default();
        let took = G::default();
        let total = G::default();
        reg.register(
            "sweep_age_seconds",
            "Seconds since the sweep these metrics come from finished",
            age.clone(),
        );
        reg.register(
            "sweep_duration_seconds",
            "How long that sweep took",
            took.clone(),
        );
        reg.register(
            "sweeps",
            "Sweeps run since the exporter started (concurrent scrapes share one)",
            total.clone(),
        );
        age.set(sw.age);
        took.set(sw.duration);
        total.set(sw.total as f64);
    }
    let up = Family::<ProbeLabels, G>::default();
    let latency = Family::<ProbeLabels, G>::default();
    let healthy = G::default();
    reg.register(
        "probe_up",
        "1 when the check is up, 0 otherwise",
        up.clone(),
    );
    reg.register(
        "probe_latency_seconds",
        "Round trip of the probe",
        latency.clone(),
    );
    reg.register(
        "healthy",
        "1 when the overall verdict is healthy",
        healthy.clone(),
    );
    healthy.set(if r.verdict == Verdict::Healthy {
        1.0
    } else {
        0.0
    });
    let lease_age = Family::<LeaseLabels, G>::default();
    reg.register(
        "lease_renew_age_seconds",
        "Seconds since the leader Lease was renewed",
        lease_age.clone(),
    );
    for c in &r.checks {
        let labels = ProbeLabels {
            node: c.node.clone(),
            component: c.component.clone(),
            endpoint: c.endpoint.clone(),
            source: serde_json::to_value(c.source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        };
        up.get_or_create(&labels)
            .set(if c.state == State::Up { 1.0 } else { 0.0 });
        if let Some(ms) = c.latency_ms {
            latency.get_or_create(&labels).set(ms as f64 / 1000.0);
        }
        if let Some(lease) = c.component.strip_prefix("lease/")
            && let Some(age) = renew_age(&c.detail)
        {
            let holder = c
                .endpoint
                .rsplit("holder=")
                .next()
                .unwrap_or("")
                .to_string();
            lease_age
                .get_or_create(&LeaseLabels {
                    lease: lease.to_string(),
                    holder,
                })
                .set(age);
        }
    }
    let certs = Family::<CertLabels, G>::default();
    reg.register(
        "certificate_expiry_days",
        "Days until the certificate expires",
        certs.clone(),
    );
    for c in &r.certificates {
        certs
            .get_or_create(&CertLabels {
                node: c.node.clone(),
                name: c.name.clone(),
            })
            .set(c.days_left);
    }
    if let Some(q) = &r.etcd {
        let members = G::default();
        let healthy_members = G::default();
        let margin = G::default();
        let has_quorum = G::default();
        reg.register("etcd_members", "Voting etcd members", members.clone());
        reg.register(
            "etcd_healthy_members",
            "Healthy voting etcd members",
            healthy_members.clone(),
        );
        reg.register(
            "etcd_quorum_margin",
            "Member failures the cluster survives now",
            margin.clone(),
        );
        reg.register(
            "etcd_has_quorum",
            "1 when the healthy members make a quorum",
            has_quorum.clone(),
        );
        members.set(q.members as f64);
        healthy_members.set(q.healthy as f64);
        margin.set(q.failures_tolerated as f64);
        has_quorum.set(if q.has_quorum { 1.0 } else { 0.0 });
        let db = Family::<MemberLabels, G>::default();
        let quota = Family::<MemberLabels, G>::default();
        reg.register("etcd_db_size_bytes", "etcd database size", db.clone());
        reg.register("etcd_quota_bytes", "etcd backend quota", quota.clone());
        for m in &q.member_list {
            let l = MemberLabels {
                member: m.name.clone(),
            };
            if let Some(v) = m.db_size_bytes {
                db.get_or_create(&l).set(v as f64);
            }
            if let Some(v) = m.quota_bytes {
                quota.get_or_create(&l).set(v as f64);
            }
        }
    }
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
        out = "# encoding failed\n".into();
    }
    out
}

/// The `backup_*` gauges (an age only when such a bundle exists).
fn register_backups(reg: &mut Registry, b: &BackupFigures) {
    let gauge = |reg: &mut Registry, name: &str, help: &str, v: f64| {
        let g = G::default();
        g.set(v);
        reg.register(name, help, g);
    };
    gauge(
        reg,
        "backup_dir_readable",
        "1 when --backup-dir could be listed",
        if b.readable { 1.0 } else { 0.0 },
    );
    gauge(
        reg,
        "backup_bundles",
        "Bundles in --backup-dir",
        b.bundles as f64,
    );
    let ages = [
        (
            "backup_newest_age_seconds",
            "Age of the newest bundle",
            b.newest,
        ),
        (
            "backup_newest_verified_age_seconds",
            "Age of the newest bundle verified and unchanged since",
            b.newest_verified,
        ),
        (
            "backup_newest_proven_age_seconds",
            "Age of the newest bundle whose restore test passed (backup verify --restore-test)",
            b.newest_proven,
        ),
    ];
    for (name, help, age) in ages {
        if let Some(a) = age {
            gauge(reg, name, help, a);
        }
    }
}

/// The renew age from a lease check's detail ("renewed 3s ago", "last renewed 40s ago").
fn renew_age(detail: &str) -> Option<f64> {
    let i = detail.find("renewed ")?;
    let rest = &detail[i + "renewed ".len()..];
    rest.split('s').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kastellan_health::{Check, Source};

    #[test]
    fn metrics_carry_probes_leases_and_quorum() {
        let checks = vec![
            Check {
                node: "cp1".into(),
                component: "etcd".into(),
                endpoint: "http://127.0.0.1:2381/health".into(),
                source: Source::LocalProbe,
                state: State::Up,
                latency_ms: Some(4),
                detail: "health true".into(),
                failing: vec![],
            },
            Check {
                node: "cluster".into(),
                component: "lease/kube-scheduler".into(),
                endpoint: "Lease/kube-system/kube-scheduler holder=cp2".into(),
                source: Source::Api,
                state: State::Down,
                latency_ms: None,
                detail: "STALE: held by cp2_x, last renewed 40s ago (lease 15s)".into(),
                failing: vec![],
            },
        ];
        let members = vec![kastellan_health::EtcdMember {
            name: "cp1".into(),
            healthy: true,
            db_size_bytes: Some(1000),
            ..Default::default()
        }];
        let q = kastellan_health::quorum::assess(&members, Some(1));
        let text = encode_swept(&StatusReport::new(checks, Some(q), vec![]), None, None);
        assert!(text.contains(r#"kastellan_probe_up{node="cp1",component="etcd",endpoint="http://127.0.0.1:2381/health",source="local-probe"} 1"#), "{text}");
        assert!(
            text.contains(
                r#"kastellan_lease_renew_age_seconds{lease="kube-scheduler",holder="cp2"} 40"#
            ),
            "{text}"
        );
        assert!(text.contains("kastellan_etcd_quorum_margin 0"), "{text}");
        assert!(
            text.contains(r#"kastellan_etcd_db_size_bytes{member="cp1"} 1000"#),
            "{text}"
        );
        assert!(text.contains("kastellan_healthy 0"), "{text}");
    }
}

//! The human views of `kastellan status`: at a glance (the default: one line per node,
//! one column per component, then etcd and the leader Leases, the problems and the
//! verdict) and one row per probe (`-o wide`). JSON and YAML are the report itself.

use std::collections::HashMap;

use kastellan_health::glance::{self, Cell};
use kastellan_health::{Check, State, StatusReport, Verdict, cluster};
use kastellan_printer::{Report, Style, Table, wrap};

/// A check's identity across refreshes: node, component, endpoint.
pub type Key = (String, String, String);

/// The checks whose state changed since the previous refresh, with the state they had
/// (`None`: new).
pub type Changes = HashMap<Key, Option<State>>;

fn key(c: &Check) -> Key {
    (c.node.clone(), c.component.clone(), c.endpoint.clone())
}

/// Checks whose state differs from the previous refresh (new checks count as changed).
pub fn changes(prev: &StatusReport, now: &StatusReport) -> Changes {
    let before: HashMap<Key, State> = prev.checks.iter().map(|c| (key(c), c.state)).collect();
    now.checks
        .iter()
        .filter_map(|c| {
            let old = before.get(&key(c)).copied();
            (old != Some(c.state)).then(|| (key(c), old))
        })
        .collect()
}

/// The report as printed, with the checks that changed since the last refresh.
pub struct StatusView<'a> {
    /// The report.
    pub report: &'a StatusReport,
    /// With `--watch`, from the second refresh on: what changed.
    pub changed: Option<&'a Changes>,
}

impl serde::Serialize for StatusView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.report.serialize(s)
    }
}

impl Report for StatusView<'_> {
    fn render(&self, out: &mut String, style: &Style) {
        if style.wide {
            self.wide(out, style);
        } else {
            self.glance(out, style);
        }
    }
}

/// The column headers of the glance view, one per [`glance::Component::ALL`].
const COLUMNS: [&str; 7] = [
    "APISERVER",
    "ETCD",
    "CONTROLLER",
    "SCHEDULER",
    "KUBELET",
    "PROXY",
    "CERTS",
];

fn paint_state(style: &Style, state: State) -> String {
    match state {
        State::Up => style.good(state.label()),
        State::Degraded | State::Unknown => style.warn(state.label()),
        State::Down => style.bad(state.label()),
    }
}

fn paint_cell(style: &Style, cell: Cell) -> String {
    match cell {
        Cell::Absent => "-".to_string(),
        Cell::Ok => style.good("ok"),
        Cell::Slow => style.warn("slow"),
        Cell::Warn => style.warn("warn"),
        Cell::Unknown => style.warn("?"),
        Cell::Down => style.bad("down"),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl StatusView<'_> {
    /// The default view.
    fn glance(&self, out: &mut String, style: &Style) {
        let r = self.report;
        let width = style.width;
        let rows = glance::grid(r);
        let mut sections: Vec<String> = Vec::new();
        if !rows.is_empty() {
            let mut t = Table::new(std::iter::once("NODE").chain(COLUMNS));
            for row in &rows {
                t.row(
                    std::iter::once(row.node.clone())
                        .chain(row.cells.iter().map(|c| paint_cell(style, *c))),
                );
            }
            let mut s = String::new();
            t.render_into(&mut s, style);
            sections.push(s);
        }

        let mut s = String::new();
        if let Some(line) = self.etcd_line(style) {
            wrap(&mut s, "", 2, &line, width);
        }
        if let Some(line) = self.leases_line(style) {
            wrap(&mut s, "", 2, &line, width);
        }
        sections.push(s);

        if let Some(changed) = self.changed {
            let mut s = String::new();
            for c in r.checks.iter() {
                if let Some(old) = changed.get(&key(c)) {
                    let was = old.map(|o| o.label()).unwrap_or("new");
                    let head = format!(
                        "  {} {} {} (was {was})",
                        c.node,
                        c.component,
                        paint_state(style, c.state)
                    );
                    wrap(&mut s, &head, 4, "", width);
                    wrap(&mut s, "    at ", 4, &c.endpoint, width);
                }
            }
            if !s.is_empty() {
                sections.push(format!("changed since the last refresh:\n{s}"));
            }
        }

        let mut s = String::new();
        for c in r.checks.iter().filter(|c| glance::is_problem(c)) {
            let state = if glance::is_slow(c) {
                style.warn(&format!("slow ({}ms)", c.latency_ms.unwrap_or_default()))
            } else {
                paint_state(style, c.state)
            };
            let mut head = format!("  {} {} {state}", c.node, c.component);
            if !c.detail.is_empty() {
                head.push_str(": ");
            }
            wrap(&mut s, &head, 4, &c.detail, width);
            wrap(&mut s, "    at ", 4, &c.endpoint, width);
        }
        if !s.is_empty() {
            sections.push(format!("problems:\n{s}"));
        }

        let mut s = String::new();
        for w in &r.warnings {
            wrap(&mut s, &format!("{} ", style.warn("warning:")), 2, w, width);
        }
        sections.push(s);

        let mut s = String::new();
        wrap(&mut s, "", 2, &self.verdict(style), width);
        sections.push(s);

        let sections: Vec<&String> = sections.iter().filter(|s| !s.is_empty()).collect();
        for (i, s) in sections.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(s);
        }
    }

    /// etcd's quorum in one line (`None` when etcd could not be asked).
    fn etcd_line(&self, style: &Style) -> Option<String> {
        let q = self.report.etcd.as_ref()?;
        let mut line = format!(
            "etcd: {}, {} healthy, quorum {}, {} tolerated",
            plural(q.members, "member", "members"),
            q.healthy,
            q.quorum,
            plural(q.failures_tolerated, "failure", "failures"),
        );
        if q.failures_tolerated != q.failures_tolerated_when_healthy {
            line.push_str(&format!(" (of {})", q.failures_tolerated_when_healthy));
        }
        match &q.leader {
            Some(l) => line.push_str(&format!(", leader {l}")),
            None => line.push_str(", no leader"),
        }
        Some(if !q.has_quorum {
            style.bad(&format!("{line}: QUORUM LOST"))
        } else if q.healthy < q.members {
            style.warn(&line)
        } else {
            line
        })
    }

    /// Who holds each leader Lease (`None` when the API's Leases were not read).
    fn leases_line(&self, style: &Style) -> Option<String> {
        let leases: Vec<String> = self
            .report
            .checks
            .iter()
            .filter(|c| c.node == "cluster" && c.component.starts_with("lease/"))
            .map(|c| {
                let name = c
                    .component
                    .trim_start_matches("lease/")
                    .trim_start_matches("kube-");
                match (c.state, cluster::lease_holder(c)) {
                    (State::Up, Some(h)) => format!("{name} held by {h}"),
                    (State::Up, None) => name.to_string(),
                    (_, Some(h)) => style.bad(&format!("{name} stale (held by {h})")),
                    (_, None) => style.bad(&format!("{name} without leader")),
                }
            })
            .collect();
        (!leases.is_empty()).then(|| format!("leases: {}", leases.join(", ")))
    }

    fn verdict(&self, style: &Style) -> String {
        let r = self.report;
        match r.verdict {
            Verdict::Healthy => style.good(&r.summary),
            Verdict::Degraded => style.bad(&r.summary),
            Verdict::Unknown => style.warn(&r.summary),
        }
    }

    /// `-o wide`: one row per probe, with where it came from, its latency and endpoint.
    fn wide(&self, out: &mut String, style: &Style) {
        let r = self.report;
        let mut t = Table::new([
            "NODE",
            "COMPONENT",
            "STATE",
            "SOURCE",
            "LATENCY",
            "DETAIL",
            "ENDPOINT",
        ]);
        for c in &r.checks {
            let mut state = paint_state(style, c.state);
            if let Some(changed) = self.changed
                && let Some(old) = changed.get(&key(c))
            {
                let was = old.map(|o| o.label()).unwrap_or("new");
                state = style.bold(&format!("{state} (was {was})"));
            }
            let source = serde_json::to_value(c.source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let detail: String = c.detail.chars().take(90).collect();
            t.row([
                c.node.clone(),
                c.component.clone(),
                state,
                source,
                c.latency_ms.map(|l| format!("{l}ms")).unwrap_or_default(),
                detail,
                c.endpoint.clone(),
            ]);
        }
        t.render_into(out, style);
        if let Some(q) = &r.etcd {
            out.push('\n');
            let line = format!(
                "etcd: {} members, {} healthy, quorum {}, {} failure{} tolerated (of {} when all are healthy){}",
                q.members,
                q.healthy,
                q.quorum,
                q.failures_tolerated,
                if q.failures_tolerated == 1 { "" } else { "s" },
                q.failures_tolerated_when_healthy,
                q.leader
                    .as_ref()
                    .map(|l| format!(", leader {l}"))
                    .unwrap_or_default()
            );
            let line = if q.has_quorum {
                line
            } else {
                style.bad(&format!("{line}: QUORUM LOST"))
            };
            wrap(out, "", 2, &line, style.width);
        }
        if !r.warnings.is_empty() {
            out.push('\n');
            for w in &r.warnings {
                wrap(
                    out,
                    &format!("{} ", style.warn("warning:")),
                    2,
                    w,
                    style.width,
                );
            }
        }
        out.push('\n');
        wrap(out, "", 2, &self.verdict(style), style.width);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kastellan_health::cluster::{NodeInfo, NodeReports};
    use kastellan_health::quorum::{self, EtcdMember};
    use kastellan_health::{Source, glance::SLOW_MS};
    use kastellan_printer::display_width;

    use super::*;

    /// What is wrong in a fixture.
    #[derive(Clone, Copy, PartialEq)]
    enum Fault {
        None,
        /// The scheduler hung on the first control plane (SIGSTOP): its probe times
        /// out and, after a while, its Lease is stale.
        SchedulerHung,
        /// etcd hung on the third control plane: its probe and member time out, that
        /// apiserver is not ready; and the second worker's kubelet answers slowly.
        EtcdHung,
    }

    fn check(node: &str, component: &str, endpoint: &str, state: State, detail: &str) -> Check {
        Check {
            node: node.into(),
            component: component.into(),
            endpoint: endpoint.into(),
            source: Source::LocalProbe,
            state,
            latency_ms: Some(3),
            detail: detail.into(),
            failing: vec![],
        }
    }

    fn api(node: &str, component: &str, endpoint: &str, detail: &str) -> Check {
        Check {
            source: Source::Api,
            latency_ms: None,
            ..check(node, component, endpoint, State::Up, detail)
        }
    }

    fn lease(name: &str, holder: &str, age: i64) -> Check {
        let now: jiff::Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        let renewed = now - jiff::SignedDuration::from_secs(age);
        let l: k8s_openapi::api::coordination::v1::Lease =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "kube-system"},
                "spec": {"holderIdentity": format!("{holder}_3f9c1e2a"), "leaseDurationSeconds": 15,
                         "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.000000Z").to_string(),
                         "leaseTransitions": 0}
            }))
            .unwrap();
        cluster::lease_check(name, &l, now)
    }

    /// A lab-like report of `cps` control planes (stacked etcd, cp1 the leader) and
    /// `workers` workers, as `status` gathers it over node access.
    fn lab(cps: usize, workers: usize, fault: Fault) -> StatusReport {
        let cp: Vec<String> = (1..=cps).map(|i| format!("cp{i}")).collect();
        let w: Vec<String> = (1..=workers).map(|i| format!("w{i}")).collect();
        let down = |node: &str, what: Fault| fault == what && node == cp[cp.len() - 1];
        let mut api_checks = vec![
            Check {
                latency_ms: Some(4),
                ..api(
                    "cluster",
                    "kube-apiserver",
                    "kubeconfig /livez?verbose",
                    "livez check passed",
                )
            },
            Check {
                latency_ms: Some(5),
                ..api(
                    "cluster",
                    "kube-apiserver",
                    "kubeconfig /readyz?verbose",
                    "readyz check passed",
                )
            },
            lease("kube-controller-manager", &cp[0], 1),
            lease(
                "kube-scheduler",
                &cp[cp.len() - 1],
                if fault == Fault::SchedulerHung { 31 } else { 2 },
            ),
        ];
        let mut nodes = Vec::new();
        for n in cp.iter().chain(&w) {
            nodes.push(NodeInfo {
                name: n.clone(),
                control_plane: n.starts_with("cp"),
            });
            api_checks.push(api(
                n,
                "node",
                &format!("Node/{n}"),
                "Ready, kubelet v1.20.2",
            ));
        }
        for n in &cp {
            for pod in [
                "etcd",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
            ] {
                api_checks.push(api(
                    n,
                    &format!("pod/{pod}"),
                    &format!("Pod/kube-system/{pod}-{n}"),
                    "Running, ready, 0 restarts",
                ));
            }
        }
        let members: Vec<EtcdMember> = cp
            .iter()
            .enumerate()
            .map(|(i, n)| EtcdMember {
                name: n.clone(),
                id: Some(format!("{:016x}", 0x8e9e05c52164694d_u64 + i as u64)),
                healthy: !down(n, Fault::EtcdHung),
                leader: i == 0,
                has_leader: Some(true),
                ..Default::default()
            })
            .collect();
        let survey: Vec<Check> = cp
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let endpoint = format!("https://10.77.0.{}:2379", 11 + i);
                let c = check(
                    n,
                    "etcd-member",
                    &endpoint,
                    State::Up,
                    &format!(
                        "{}, v3.4.23, term 2, index 4711 (applied 4711), db 2.1 MiB (1.4 MiB in use)",
                        if i == 0 { "leader" } else { "follower" }
                    ),
                );
                let c = Check {
                    source: Source::EtcdApi,
                    latency_ms: None,
                    ..c
                };
                if down(n, Fault::EtcdHung) {
                    Check {
                        state: State::Down,
                        detail: "status: timed out".into(),
                        ..c
                    }
                } else {
                    c
                }
            })
            .collect();
        let timed_out = |c: Check| Check {
            state: State::Down,
            latency_ms: Some(2001),
            detail: "timed out: operation timed out".into(),
            ..c
        };
        let mut local = BTreeMap::new();
        for n in cp.iter().chain(&w) {
            let mut checks = Vec::new();
            let is_cp = n.starts_with("cp");
            if is_cp {
                checks.push(check(
                    n,
                    "kube-apiserver",
                    "https://127.0.0.1:6443/livez?verbose",
                    State::Up,
                    "livez check passed",
                ));
                let readyz = check(
                    n,
                    "kube-apiserver",
                    "https://127.0.0.1:6443/readyz?verbose",
                    State::Up,
                    "readyz check passed",
                );
                checks.push(if down(n, Fault::EtcdHung) {
                    Check {
                        state: State::Down,
                        detail: "HTTP 500: failing: etcd".into(),
                        failing: vec!["etcd".into()],
                        ..readyz
                    }
                } else {
                    readyz
                });
                let etcd = check(
                    n,
                    "etcd",
                    "http://127.0.0.1:2381/health",
                    State::Up,
                    &format!(
                        "health true; db 2.1 MiB of 2.0 GiB quota{}",
                        if *n == cp[0] { "; leader" } else { "" }
                    ),
                );
                checks.push(if down(n, Fault::EtcdHung) {
                    timed_out(etcd)
                } else {
                    etcd
                });
                checks.push(check(
                    n,
                    "kube-controller-manager",
                    "https://127.0.0.1:10257/healthz",
                    State::Up,
                    "ok",
                ));
                let scheduler = check(
                    n,
                    "kube-scheduler",
                    "https://127.0.0.1:10259/healthz",
                    State::Up,
                    "ok",
                );
                checks.push(if down(n, Fault::SchedulerHung) {
                    timed_out(scheduler)
                } else {
                    scheduler
                });
            }
            let slow = fault == Fault::EtcdHung && *n == w[w.len() - 1];
            checks.push(Check {
                latency_ms: Some(if slow { SLOW_MS + 240 } else { 2 }),
                ..check(
                    n,
                    "kubelet",
                    "http://127.0.0.1:10248/healthz",
                    State::Up,
                    "ok",
                )
            });
            checks.push(check(
                n,
                "kube-proxy",
                "http://127.0.0.1:10249/healthz",
                State::Up,
                "ok",
            ));
            checks.push(check(
                n,
                "kube-proxy",
                "http://127.0.0.1:10256/healthz",
                State::Up,
                "rules synced 1s ago",
            ));
            checks.push(Check {
                latency_ms: None,
                ..check(
                    n,
                    "certificates",
                    "/etc/kubernetes/pki",
                    State::Up,
                    if is_cp {
                        "13 certificates valid; soonest admin.conf in 364 days"
                    } else {
                        "2 certificates valid; soonest kubelet.conf in 364 days"
                    },
                )
            });
            let mut etcd = None;
            let mut etcd_member = None;
            if is_cp {
                let me = members.iter().find(|m| m.name == *n).cloned();
                etcd_member = me.map(|m| EtcdMember { id: None, ..m });
                // The survey from a node whose own etcd answers.
                if !down(n, Fault::EtcdHung) {
                    checks.extend(survey.iter().cloned());
                    etcd = Some(quorum::assess(&members, None));
                }
            }
            let mut report = StatusReport::new(checks, etcd, Vec::new());
            report.etcd_member = etcd_member;
            local.insert(n.clone(), Ok(report));
        }
        let access = NodeReports {
            access: Arc::new(kastellan_access::Lab::new("/usr/local/bin/kastellan")),
            kastellan: "/usr/local/bin/kastellan".into(),
        };
        cluster::merge(api_checks, &nodes, local, Some(&access))
    }

    fn render(report: &StatusReport, width: usize, wide: bool) -> String {
        let mut out = String::new();
        StatusView {
            report,
            changed: None,
        }
        .render(
            &mut out,
            &Style {
                color: false,
                width: Some(width),
                wide,
            },
        );
        for line in out.lines() {
            assert!(
                display_width(line) <= width,
                "wider than {width}: {line:?}\n{out}"
            );
        }
        out
    }

    #[test]
    fn glance_of_the_labs_healthy_and_faulty_at_80_and_120_columns() {
        for (cps, workers, fault, name) in [
            (1, 1, Fault::None, "1cp1w_healthy"),
            (1, 1, Fault::SchedulerHung, "1cp1w_scheduler_hung"),
            (3, 2, Fault::None, "3cp2w_healthy"),
            (3, 2, Fault::EtcdHung, "3cp2w_etcd_hung"),
        ] {
            let report = lab(cps, workers, fault);
            assert_eq!(
                report.verdict,
                if fault == Fault::None {
                    Verdict::Healthy
                } else {
                    Verdict::Degraded
                },
                "{name}: {}",
                report.summary
            );
            for width in [80, 120] {
                let out = render(&report, width, false);
                // One line per node under the header.
                let grid: Vec<&str> = out.lines().take_while(|l| !l.is_empty()).collect();
                assert_eq!(grid.len(), 1 + cps + workers, "{name}:\n{out}");
                // The verdict last (its own paragraph: it may wrap).
                let verdict = out.trim_end().rsplit("\n\n").next().unwrap();
                assert!(
                    verdict.starts_with(if fault == Fault::None {
                        "healthy:"
                    } else {
                        "degraded:"
                    }),
                    "{name}:\n{out}"
                );
                assert!(!out.contains('\x1b'), "no colour asked for");
                insta::assert_snapshot!(format!("glance_{name}_{width}"), out);
            }
        }
    }

    #[test]
    fn glance_names_only_the_problems_each_with_detail_and_endpoint() {
        let healthy = render(&lab(3, 2, Fault::None), 80, false);
        assert!(!healthy.contains("problems:"), "{healthy}");
        let out = render(&lab(3, 2, Fault::EtcdHung), 80, false);
        let problems: Vec<&str> = out
            .lines()
            .skip_while(|l| *l != "problems:")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        assert_eq!(
            problems,
            [
                "  cp3 etcd down: timed out: operation timed out",
                "    at http://127.0.0.1:2381/health",
                "  cp3 etcd-member down: status: timed out",
                "    at https://10.77.0.13:2379",
                "  cp3 kube-apiserver down: HTTP 500: failing: etcd",
                "    at https://127.0.0.1:6443/readyz?verbose",
                "  w2 kubelet slow (1240ms): ok",
                "    at http://127.0.0.1:10248/healthz",
            ],
            "{out}"
        );
        let cp3 = out.lines().find(|l| l.starts_with(" cp3 ")).unwrap();
        assert_eq!(
            cp3.split_whitespace().collect::<Vec<_>>(),
            ["cp3", "down", "down", "ok", "ok", "ok", "ok", "ok"]
        );
        let w2 = out.lines().find(|l| l.starts_with(" w2 ")).unwrap();
        assert_eq!(
            w2.split_whitespace().collect::<Vec<_>>(),
            ["w2", "-", "-", "-", "-", "slow", "ok", "ok"]
        );
        assert!(out.contains(
            "etcd: 3 members, 2 healthy, quorum 2, 0 failures tolerated (of 1), leader cp1\n"
        ));
        let stale = render(&lab(1, 1, Fault::SchedulerHung), 80, false);
        assert!(
            stale.contains("leases: controller-manager held by cp1, scheduler stale (held by cp1)"),
            "{stale}"
        );
    }

    #[test]
    fn glance_colours_on_a_terminal_only() {
        let report = lab(3, 2, Fault::EtcdHung);
        let mut out = String::new();
        StatusView {
            report: &report,
            changed: None,
        }
        .render(
            &mut out,
            &Style {
                color: true,
                width: Some(80),
                wide: false,
            },
        );
        assert!(out.contains("\x1b[31mdown\x1b[0m"), "{out:?}");
        assert!(out.contains("\x1b[32mok\x1b[0m"), "{out:?}");
        // Colour takes no room: the grid lines up as without it.
        let plain = render(&report, 80, false);
        let strip = |s: &str| {
            let mut o = String::new();
            let mut esc = false;
            for c in s.chars() {
                match (esc, c) {
                    (_, '\x1b') => esc = true,
                    (true, 'm') => esc = false,
                    (true, _) => {}
                    (false, c) => o.push(c),
                }
            }
            o
        };
        assert_eq!(strip(&out), plain);
    }

    #[test]
    fn watch_marks_what_changed_since_the_last_refresh() {
        let before = lab(3, 2, Fault::None);
        let now = lab(3, 2, Fault::EtcdHung);
        let changed = changes(&before, &now);
        let mut out = String::new();
        StatusView {
            report: &now,
            changed: Some(&changed),
        }
        .render(&mut out, &Style::plain());
        let marked: Vec<&str> = out.lines().filter(|l| l.contains("(was ")).collect();
        assert_eq!(
            marked,
            [
                "  cp3 etcd down (was up)",
                "  cp3 etcd-member down (was up)",
                "  cp3 kube-apiserver down (was up)",
            ],
            "{out}"
        );
        // The same in the wide view, on the rows themselves.
        let mut wide = String::new();
        StatusView {
            report: &now,
            changed: Some(&changed),
        }
        .render(
            &mut wide,
            &Style {
                wide: true,
                ..Style::plain()
            },
        );
        assert_eq!(wide.lines().filter(|l| l.contains("(was up)")).count(), 3);
    }

    #[test]
    fn wide_is_one_row_per_probe_cut_to_the_width() {
        let report = lab(3, 2, Fault::EtcdHung);
        let whole = {
            let mut out = String::new();
            StatusView {
                report: &report,
                changed: None,
            }
            .render(
                &mut out,
                &Style {
                    wide: true,
                    ..Style::plain()
                },
            );
            out
        };
        let rows = whole.lines().take_while(|l| !l.is_empty()).count();
        assert_eq!(rows, 1 + report.checks.len(), "{whole}");
        assert!(!whole.contains('…'), "a pipe gets whole lines");
        assert!(whole.lines().any(|l| display_width(l) > 120));
        let out = render(&report, 120, true);
        assert_eq!(out.lines().take_while(|l| !l.is_empty()).count(), rows);
        assert!(out.contains('…'), "{out}");
        insta::assert_snapshot!("wide_3cp2w_etcd_hung_120", out);
    }

    /// README's status examples are this view's real output.
    #[test]
    fn readme_shows_the_real_glance() {
        let readme = include_str!("../../../../README.md");
        for (cps, workers, fault) in [(1, 1, Fault::None), (3, 2, Fault::EtcdHung)] {
            let out = render(&lab(cps, workers, fault), 80, false);
            let block = format!("```text\n$ kastellan status\n{out}```\n");
            assert!(
                readme.contains(&block),
                "README.md lacks this block (update it from the snapshot):\n{block}"
            );
        }
    }
}

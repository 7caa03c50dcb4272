//! HTTP(S) probes with per-probe timeouts. A failed probe is a [`Check`] in state
//! `down`, never an error.

use std::time::{Duration, Instant};

use crate::{Check, Source, State};

/// A client for probes: self-signed serving certificates are accepted (the
/// controller-manager's and scheduler's are, and `/healthz` needs no credentials);
/// no proxy; a timeout per request.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .build()
        .unwrap_or_default()
}

/// What an endpoint answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status, when the server answered HTTP.
    pub status: Option<u16>,
    /// The body (first 64 KiB), or the error.
    pub body: String,
    /// Round trip.
    pub latency: Duration,
}

/// GETs `url`.
pub async fn get(client: &reqwest::Client, url: &str) -> Answer {
    let start = Instant::now();
    match client.get(url).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            let body: String = body.chars().take(64 * 1024).collect();
            Answer {
                status: Some(status),
                body,
                latency: start.elapsed(),
            }
        }
        Err(e) => Answer {
            status: None,
            body: describe(&e),
            latency: start.elapsed(),
        },
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = String::new();
    while let Some(x) = src {
        last = x.to_string();
        src = x.source();
    }
    if !last.is_empty() {
        s.push_str(": ");
        s.push_str(&last);
    }
    s
}

/// How to judge an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// 200 and a body of `ok`.
    Ok,
    /// 200; failing sub-checks named from a verbose body.
    Verbose,
    /// 200 and etcd's `{"health":"true"}`.
    EtcdHealth,
    /// 200 and kube-proxy's JSON with `lastUpdated`.
    ProxyHealth,
}

/// Probes `url` and judges the answer.
pub async fn probe(
    client: &reqwest::Client,
    node: &str,
    component: &str,
    url: &str,
    expect: Expect,
) -> Check {
    let a = get(client, url).await;
    judge(node, component, url, expect, &a)
}

/// Judges an answer (pure; used by [`probe`]).
pub fn judge(node: &str, component: &str, url: &str, expect: Expect, a: &Answer) -> Check {
    let first_line = a
        .body
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let short: String = first_line.chars().take(120).collect();
    let mut failing = Vec::new();
    let (state, detail) = match a.status {
        None => (State::Down, a.body.clone()),
        Some(code) if !(200..300).contains(&code) => {
            failing = crate::parse::failing_checks(&a.body);
            let named = if failing.is_empty() {
                short.clone()
            } else {
                format!("failing: {}", failing.join(", "))
            };
            (State::Down, format!("HTTP {code}: {named}"))
        }
        Some(code) => match expect {
            Expect::Ok if a.body.trim() == "ok" => (State::Up, "ok".into()),
            Expect::Ok => (
                State::Down,
                format!("HTTP {code} but unexpected answer: {short}"),
            ),
            Expect::Verbose => {
                failing = crate::parse::failing_checks(&a.body);
                if failing.is_empty() && (a.body.contains("check passed") || a.body.trim() == "ok")
                {
                    (
                        State::Up,
                        a.body.lines().last().unwrap_or("ok").trim().to_string(),
                    )
                } else if failing.is_empty() {
                    (
                        State::Down,
                        format!("HTTP {code} but unexpected answer: {short}"),
                    )
                } else {
                    (State::Down, format!("failing: {}", failing.join(", ")))
                }
            }
            Expect::EtcdHealth => match serde_json::from_str::<serde_json::Value>(&a.body) {
                Ok(v) if v["health"] == "true" => (State::Up, "health true".into()),
                Ok(v) => (
                    State::Down,
                    format!(
                        "health {} {}",
                        v["health"],
                        v["reason"].as_str().unwrap_or("")
                    ),
                ),
                Err(_) => (State::Down, format!("not etcd's health answer: {short}")),
            },
            Expect::ProxyHealth => match crate::parse::proxy_health(&a.body) {
                Some((_, Some(age))) => (State::Up, format!("rules synced {age}s ago")),
                Some((h, None)) => (State::Up, format!("last updated {}", h.last_updated)),
                None => (
                    State::Down,
                    format!("not kube-proxy's healthz answer: {short}"),
                ),
            },
        },
    };
    Check {
        node: node.to_string(),
        component: component.to_string(),
        endpoint: url.to_string(),
        source: Source::LocalProbe,
        state,
        latency_ms: Some(a.latency.as_millis() as u64),
        detail,
        failing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans(status: Option<u16>, body: &str) -> Answer {
        Answer {
            status,
            body: body.into(),
            latency: Duration::from_millis(3),
        }
    }

    #[test]
    fn judging() {
        let c = judge("n", "kubelet", "u", Expect::Ok, &ans(Some(200), "ok"));
        assert_eq!(c.state, State::Up);
        let c = judge(
            "n",
            "kubelet",
            "u",
            Expect::Ok,
            &ans(Some(200), "<html>nginx</html>"),
        );
        assert_eq!(
            c.state,
            State::Down,
            "a port answering something else is down"
        );
        assert!(c.detail.contains("unexpected answer"));
        let c = judge(
            "n",
            "x",
            "u",
            Expect::Verbose,
            &ans(
                Some(500),
                "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed",
            ),
        );
        assert_eq!(c.state, State::Down);
        assert_eq!(c.failing, ["etcd"]);
        assert!(c.detail.contains("failing: etcd"));
        let c = judge(
            "n",
            "x",
            "u",
            Expect::Verbose,
            &ans(Some(200), "[+]ping ok\nlivez check passed\n"),
        );
        assert_eq!(c.state, State::Up);
        let c = judge(
            "n",
            "etcd",
            "u",
            Expect::EtcdHealth,
            &ans(Some(200), r#"{"health":"false","reason":"RAFT NO LEADER"}"#),
        );
        assert_eq!(c.state, State::Down);
        assert!(c.detail.contains("RAFT NO LEADER"));
        let c = judge(
            "n",
            "etcd",
            "u",
            Expect::EtcdHealth,
            &ans(None, "connection failed: Connection refused"),
        );
        assert_eq!(c.state, State::Down);
        assert!(c.detail.contains("refused"));
    }
}

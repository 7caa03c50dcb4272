//! Who came back after a restore: what the API shows of the node agents and the
//! control plane's leaders once the restored apiserver answers. Pure: the binary reads
//! the Leases and the probe's answer, [`judge`] says what they mean.
//!
//! The signal is the Lease each writer renews: a kubelet its `kube-node-lease/<node>`
//! (every 10 s by default), the controller-manager and scheduler their leader Lease in
//! `kube-system`. Every write to the restored store gets a revision above the one it
//! started from ([`crate::bump::RevisionBump::bumped_revision`]), so a Lease whose
//! resourceVersion is above it was renewed through the restored API; no clock is
//! compared. kube-proxy keeps no Lease and writes nothing to the API while it runs,
//! so the API cannot show that it came back; what it shows instead is the probe: a
//! watch resumed from a pre-restore resourceVersion. Answered 410 Gone, every
//! informer (the kubelet's, kube-proxy's) whose watch broke at the restart must list
//! again before it goes on.

use serde::{Deserialize, Serialize};

/// What the report's observation is based on, for people.
pub const BASIS: &str = "Lease renewals through the restored API (a Lease whose resourceVersion is above the revision the restored store started from); kube-proxy keeps no Lease, so for it only the probe watch speaks";

/// One Lease as the restored API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSeen {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `spec.holderIdentity`.
    pub holder: Option<String>,
    /// `spec.renewTime`, as the API gives it.
    pub renew_time: Option<String>,
    /// `metadata.resourceVersion` (etcd's mod revision; None when not a number).
    pub resource_version: Option<i64>,
}

/// How the probe watch was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ProbeAnswer {
    /// 410 Gone ("too old resource version"): the watcher must list again.
    Gone,
    /// Accepted: the watch went on (or waited) from there.
    Accepted,
    /// Something else (an error status, no answer).
    Other {
        /// What was said.
        detail: String,
    },
}

/// One renewer's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Renewal {
    /// The node (kubelets) or the component (leaders).
    pub who: String,
    /// The Lease, `namespace/name`.
    pub lease: String,
    /// Whether it was renewed through the restored API.
    pub renewed: bool,
    /// Its holder.
    pub holder: Option<String>,
    /// Its last renewal time.
    pub renew_time: Option<String>,
}

/// What the restored API shows of the agents and leaders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agents {
    /// What this is based on ([`BASIS`]).
    pub basis: String,
    /// The revision the restored store started from.
    pub start_revision: i64,
    /// The probe: a watch of Nodes from this resourceVersion (the live revision read
    /// before the restore, else the first one after the snapshot).
    pub probe_resource_version: i64,
    /// How the probe was answered.
    pub probe: ProbeAnswer,
    /// Each Node's kubelet.
    pub kubelets: Vec<Renewal>,
    /// The controller-manager's and scheduler's leader Leases.
    pub leaders: Vec<Renewal>,
    /// How long the Leases were watched for.
    pub waited_secs: u64,
}

impl Agents {
    /// Whether every kubelet and leader renewed its Lease.
    pub fn all_back(&self) -> bool {
        self.kubelets.iter().chain(&self.leaders).all(|r| r.renewed)
    }

    /// Whether watchers from before the restore must relist.
    pub fn watchers_relist(&self) -> bool {
        self.probe == ProbeAnswer::Gone
    }
}

/// The leader Leases of a kubeadm control plane.
pub const LEADERS: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];

/// The verdict for `nodes` and [`LEADERS`] from the Leases seen: renewed when the
/// resourceVersion is above `start_revision` (a node's Lease also held by the node).
pub fn judge(nodes: &[String], leases: &[LeaseSeen], start_revision: i64) -> Vec<Renewal> {
    let find = |ns: &str, name: &str| leases.iter().find(|l| l.namespace == ns && l.name == name);
    let verdict = |who: &str, ns: &str, name: &str, holder_must_be: Option<&str>| {
        let l = find(ns, name);
        let renewed = l.is_some_and(|l| {
            l.resource_version.is_some_and(|rv| rv > start_revision)
                && holder_must_be.is_none_or(|h| l.holder.as_deref() == Some(h))
        });
        Renewal {
            who: who.to_string(),
            lease: format!("{ns}/{name}"),
            renewed,
            holder: l.and_then(|l| l.holder.clone()),
            renew_time: l.and_then(|l| l.renew_time.clone()),
        }
    };
    nodes
        .iter()
        .map(|n| verdict(n, "kube-node-lease", n, Some(n)))
        .chain(LEADERS.iter().map(|c| verdict(c, "kube-system", c, None)))
        .collect()
}

/// The kubelets' verdicts and the leaders' from [`judge`]'s list.
pub fn split(verdicts: Vec<Renewal>) -> (Vec<Renewal>, Vec<Renewal>) {
    verdicts
        .into_iter()
        .partition(|r| r.lease.starts_with("kube-node-lease/"))
}

/// Reads the answer of a watch (its status code, if it failed, and its body).
pub fn probe_answer(status: Option<u16>, body: &str) -> ProbeAnswer {
    let gone = status == Some(410)
        || body.contains("\"code\":410")
        || body.contains("too old resource version");
    match status {
        _ if gone => ProbeAnswer::Gone,
        Some(200) if !body.contains("\"type\":\"ERROR\"") => ProbeAnswer::Accepted,
        Some(s) => ProbeAnswer::Other {
            detail: format!("HTTP {s}: {}", body.chars().take(200).collect::<String>()),
        },
        None => ProbeAnswer::Other {
            detail: body.chars().take(200).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ns: &str, name: &str, holder: &str, rv: i64) -> LeaseSeen {
        LeaseSeen {
            namespace: ns.into(),
            name: name.into(),
            holder: Some(holder.into()),
            renew_time: Some("2026-12-01T00:00:00.000000Z".into()),
            resource_version: Some(rv),
        }
    }

    #[test]
    fn a_lease_written_after_the_restore_is_above_its_start_revision() {
        let nodes = vec!["cp1".to_string(), "w1".to_string(), "w2".to_string()];
        let start = 1_000_860;
        let leases = vec![
            lease("kube-node-lease", "cp1", "cp1", start + 40),
            // From the snapshot: not renewed since.
            lease("kube-node-lease", "w1", "w1", 640),
            // w2 has no Lease at all.
            lease(
                "kube-system",
                "kube-controller-manager",
                "cp1_abc",
                start + 7,
            ),
            lease("kube-system", "kube-scheduler", "cp1_def", start),
        ];
        let (kubelets, leaders) = split(judge(&nodes, &leases, start));
        let got: Vec<(&str, bool)> = kubelets
            .iter()
            .map(|r| (r.who.as_str(), r.renewed))
            .collect();
        assert_eq!(got, [("cp1", true), ("w1", false), ("w2", false)]);
        assert_eq!(kubelets[0].lease, "kube-node-lease/cp1");
        assert_eq!(kubelets[2].holder, None);
        let got: Vec<(&str, bool)> = leaders
            .iter()
            .map(|r| (r.who.as_str(), r.renewed))
            .collect();
        // The start revision itself is the restore's own marker, not a renewal.
        assert_eq!(
            got,
            [("kube-controller-manager", true), ("kube-scheduler", false)]
        );
    }

    #[test]
    fn a_node_lease_held_by_another_is_not_its_kubelet() {
        let leases = vec![lease("kube-node-lease", "cp1", "someone-else", 99)];
        let v = judge(&["cp1".into()], &leases, 10);
        assert!(!v[0].renewed);
        let mut no_rv = lease("kube-node-lease", "cp1", "cp1", 0);
        no_rv.resource_version = None;
        assert!(!judge(&["cp1".into()], &[no_rv], 10)[0].renewed);
    }

    #[test]
    fn the_probe_answers() {
        let gone = r#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 860 (1000700)"}}"#;
        assert_eq!(probe_answer(Some(200), gone), ProbeAnswer::Gone);
        assert_eq!(probe_answer(Some(410), ""), ProbeAnswer::Gone);
        let event = r#"{"type":"ADDED","object":{"kind":"Node"}}"#;
        assert_eq!(probe_answer(Some(200), event), ProbeAnswer::Accepted);
        assert_eq!(probe_answer(Some(200), ""), ProbeAnswer::Accepted);
        let other = r#"{"type":"ERROR","object":{"kind":"Status","code":500}}"#;
        assert!(matches!(
            probe_answer(Some(200), other),
            ProbeAnswer::Other { .. }
        ));
        assert!(matches!(
            probe_answer(Some(504), "Too large resource version"),
            ProbeAnswer::Other { .. }
        ));
        assert!(matches!(
            probe_answer(None, "connection refused"),
            ProbeAnswer::Other { .. }
        ));
    }

    #[test]
    fn all_back_needs_every_renewal() {
        let r = |renewed| Renewal {
            who: "x".into(),
            lease: "kube-node-lease/x".into(),
            renewed,
            holder: None,
            renew_time: None,
        };
        let mut a = Agents {
            basis: BASIS.into(),
            start_revision: 1,
            probe_resource_version: 1,
            probe: ProbeAnswer::Gone,
            kubelets: vec![r(true)],
            leaders: vec![r(true)],
            waited_secs: 0,
        };
        assert!(a.all_back() && a.watchers_relist());
        a.leaders.push(r(false));
        a.probe = ProbeAnswer::Accepted;
        assert!(!a.all_back() && !a.watchers_relist());
    }
}

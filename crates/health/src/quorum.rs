//! etcd quorum arithmetic and HA warnings. Pure: no I/O.

use serde::{Deserialize, Serialize};

/// What is known about one etcd member.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdMember {
    /// Member name (the node name on kubeadm clusters).
    pub name: String,
    /// Member id in hex, when the v3 API was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Whether it answered healthy.
    pub healthy: bool,
    /// Whether it is a learner (not voting).
    #[serde(default)]
    pub learner: bool,
    /// Whether it is the leader.
    #[serde(default)]
    pub leader: bool,
    /// Whether it sees a leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_leader: Option<bool>,
    /// Leader changes it has seen since it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_changes: Option<u64>,
    /// Database size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_size_bytes: Option<u64>,
    /// Database size in use in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_in_use_bytes: Option<u64>,
    /// The backend quota in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// etcd version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Active alarms (NOSPACE, CORRUPT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
}

/// The quorum picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quorum {
    /// Voting members (learners excluded).
    pub members: usize,
    /// Healthy voting members.
    pub healthy: usize,
    /// Votes needed: floor(N/2)+1.
    pub quorum: usize,
    /// Failures the cluster survives now: healthy - quorum (0 when quorum is lost).
    pub failures_tolerated: usize,
    /// Failures a cluster of this size survives when all members are healthy.
    pub failures_tolerated_when_healthy: usize,
    /// Whether the healthy members make a quorum.
    pub has_quorum: bool,
    /// The leader's name, when one is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Learners (non-voting members).
    pub learners: usize,
    /// The members.
    pub member_list: Vec<EtcdMember>,
    /// Plain warnings.
    pub warnings: Vec<String>,
}

/// Computes the quorum picture. `control_planes` is the number of control-plane nodes
/// (for the stacked-etcd layout check); `None` when unknown.
pub fn assess(members: &[EtcdMember], control_planes: Option<usize>) -> Quorum {
    let voters: Vec<&EtcdMember> = members.iter().filter(|m| !m.learner).collect();
    let n = voters.len();
    let healthy = voters.iter().filter(|m| m.healthy).count();
    let quorum = n / 2 + 1;
    let has_quorum = n > 0 && healthy >= quorum;
    let tolerated = healthy.saturating_sub(quorum);
    let tolerated_when_healthy = n.saturating_sub(quorum);
    let leader = members.iter().find(|m| m.leader).map(|m| m.name.clone());
    let mut warnings = Vec::new();
    if n == 0 {
        warnings.push("etcd: no voting member found".into());
    } else {
        if !has_quorum {
            warnings.push(format!(
                "etcd: quorum LOST: {healthy} of {n} members healthy, {quorum} needed; the cluster cannot write"
            ));
        } else if healthy < n {
            warnings.push(format!(
                "etcd: {} of {n} members down; quorum kept ({healthy} >= {quorum}), {tolerated} more failure{} tolerated",
                n - healthy,
                if tolerated == 1 { "" } else { "s" }
            ));
        }
        if n.is_multiple_of(2) {
            warnings.push(format!(
                "etcd: even member count ({n}) tolerates no more failures than {}; use an odd count",
                n - 1
            ));
        }
        if n == 1 {
            warnings.push("etcd: a single member tolerates no failure".into());
        }
    }
    if let Some(cp) = control_planes
        && cp != n
        && n > 0
    {
        warnings.push(format!(
            "etcd: {n} voting member{} but {cp} control-plane node{} (stacked etcd expects one member per control plane)",
            if n == 1 { "" } else { "s" },
            if cp == 1 { "" } else { "s" }
        ));
    }
    for m in voters
        .iter()
        .filter(|m| m.healthy && m.has_leader == Some(false))
    {
        warnings.push(format!("etcd: member {} has no leader", m.name));
    }
    if has_quorum && leader.is_none() && voters.iter().any(|m| m.has_leader.is_some()) {
        warnings.push("etcd: no member reports itself as leader".into());
    }
    for m in members
        .iter()
        .filter(|m| m.leader_changes.is_some_and(|c| c > 1))
    {
        warnings.push(format!(
            "etcd: member {} has seen {} leader changes since it started",
            m.name,
            m.leader_changes.unwrap_or_default()
        ));
    }
    for m in members {
        for a in &m.alarms {
            warnings.push(format!("etcd: alarm {a} on member {}", m.name));
        }
        if let (Some(size), Some(quota)) = (m.db_size_bytes, m.quota_bytes)
            && quota > 0
            && size * 100 / quota >= 80
        {
            warnings.push(format!(
                "etcd: member {} database at {}% of its quota ({} of {})",
                m.name,
                size * 100 / quota,
                crate::parse::human_bytes(size),
                crate::parse::human_bytes(quota)
            ));
        }
    }
    Quorum {
        members: n,
        healthy,
        quorum,
        failures_tolerated: tolerated,
        failures_tolerated_when_healthy: tolerated_when_healthy,
        has_quorum,
        leader,
        learners: members.len() - n,
        member_list: members.to_vec(),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, healthy: bool) -> EtcdMember {
        EtcdMember {
            name: name.into(),
            healthy,
            has_leader: Some(healthy),
            ..Default::default()
        }
    }

    #[test]
    fn three_members_lose_one_then_two() {
        let mut ms = vec![m("cp1", true), m("cp2", true), m("cp3", true)];
        ms[0].leader = true;
        let q = assess(&ms, Some(3));
        assert_eq!(
            (q.members, q.healthy, q.quorum, q.failures_tolerated),
            (3, 3, 2, 1)
        );
        assert!(q.has_quorum && q.warnings.is_empty(), "{:?}", q.warnings);

        ms[2].healthy = false;
        let q = assess(&ms, Some(3));
        assert_eq!(
            (q.healthy, q.failures_tolerated, q.has_quorum),
            (2, 0, true)
        );
        assert!(
            q.warnings[0].contains("1 of 3 members down"),
            "{:?}",
            q.warnings
        );

        ms[1].healthy = false;
        let q = assess(&ms, Some(3));
        assert!(!q.has_quorum);
        assert_eq!(q.failures_tolerated, 0);
        assert!(q.warnings[0].contains("quorum LOST"), "{:?}", q.warnings);
    }

    #[test]
    fn layout_warnings() {
        let q = assess(&[m("a", true), m("b", true)], Some(2));
        assert!(q.warnings.iter().any(|w| w.contains("even member count")));
        let q = assess(&[m("a", true), m("b", true), m("c", true)], Some(1));
        assert!(
            q.warnings
                .iter()
                .any(|w| w.contains("3 voting members but 1 control-plane node"))
        );
        let mut learner = m("d", true);
        learner.learner = true;
        let q = assess(&[m("a", true), learner], None);
        assert_eq!((q.members, q.learners, q.quorum), (1, 1, 1));
    }

    #[test]
    fn leaderless_and_alarms() {
        let mut a = m("a", true);
        a.has_leader = Some(false);
        a.alarms = vec!["NOSPACE".into()];
        a.db_size_bytes = Some(90);
        a.quota_bytes = Some(100);
        let q = assess(&[a], None);
        assert!(q.warnings.iter().any(|w| w.contains("has no leader")));
        assert!(q.warnings.iter().any(|w| w.contains("alarm NOSPACE")));
        assert!(q.warnings.iter().any(|w| w.contains("90% of its quota")));
    }
}

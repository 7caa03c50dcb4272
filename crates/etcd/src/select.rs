//! Choosing the member to read from: pure logic over what each endpoint answered.

use serde::Serialize;

use crate::client::{AlarmKind, MemberStatus};

/// One endpoint considered for the choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The endpoint.
    pub endpoint: String,
    /// The member's name, when known from the member list.
    pub name: Option<String>,
    /// Its status, when it answered.
    pub status: Option<MemberStatus>,
    /// Why it did not answer.
    pub error: Option<String>,
    /// Alarms raised by this member.
    pub alarms: Vec<AlarmKind>,
}

/// The role of the chosen member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A voting member that follows the leader.
    Follower,
    /// The leader.
    Leader,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Follower => "follower",
            Role::Leader => "leader",
        })
    }
}

/// The member chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Choice {
    /// The endpoint to use.
    pub endpoint: String,
    /// The member's id.
    pub member_id: u64,
    /// The member's name, when known.
    pub name: Option<String>,
    /// Leader or follower.
    pub role: Role,
    /// Its status at the time of the choice.
    pub status: MemberStatus,
    /// How many healthy members there were to choose from.
    pub healthy: usize,
}

impl Choice {
    /// "member cp2 (8e9e05c52164694d), a follower, at https://..."
    pub fn describe(&self) -> String {
        let name = self.name.as_deref().unwrap_or("?");
        format!(
            "member {name} ({:x}), the {}{}, at {}",
            self.member_id,
            self.role,
            if self.healthy > 1 {
                format!(" (of {} healthy members)", self.healthy)
            } else {
                String::new()
            },
            self.endpoint
        )
    }
}

/// Why a candidate cannot be used, or `None` when it can. A NOSPACE alarm does not rule
/// a member out (a backup is what one wants before freeing space; reads still work),
/// it only makes it a later choice; a CORRUPT one does.
pub fn unhealthy_reason(c: &Candidate) -> Option<String> {
    let Some(s) = &c.status else {
        return Some(c.error.clone().unwrap_or_else(|| "no answer".to_string()));
    };
    if s.is_learner {
        return Some("a learner (not yet a voting member)".to_string());
    }
    if s.leader == 0 {
        return Some("has no leader (no quorum?)".to_string());
    }
    if c.alarms.contains(&AlarmKind::Corrupt)
        || s.errors
            .iter()
            .any(|e| e.to_ascii_uppercase().contains("CORRUPT"))
    {
        return Some("alarm CORRUPT".to_string());
    }
    None
}

fn degraded(c: &Candidate, s: &MemberStatus) -> bool {
    !c.alarms.is_empty() || !s.errors.is_empty()
}

/// Chooses a healthy member: one without alarms before one with, a follower before the
/// leader (a snapshot costs the member disk and network bandwidth; the leader has the
/// most to do), then the one that applied the most raft entries, then the first given. Several endpoints that
/// reach the same member count once. On failure, one line per candidate saying why.
pub fn choose(cands: &[Candidate]) -> Result<Choice, Vec<String>> {
    let mut healthy: Vec<(usize, &Candidate, &MemberStatus)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut tried = Vec::new();
    for (i, c) in cands.iter().enumerate() {
        match (unhealthy_reason(c), &c.status) {
            (None, Some(s)) => {
                if seen.insert(s.member_id) {
                    healthy.push((i, c, s));
                }
            }
            (reason, _) => tried.push(format!(
                "{}: {}",
                c.endpoint,
                reason.unwrap_or_else(|| "no status".to_string())
            )),
        }
    }
    if cands.is_empty() {
        tried.push("no endpoints".to_string());
    }
    let count = healthy.len();
    healthy.sort_by(|(ia, ca, a), (ib, cb, b)| {
        degraded(ca, a)
            .cmp(&degraded(cb, b))
            .then(a.is_leader().cmp(&b.is_leader()))
            .then(b.raft_applied_index.cmp(&a.raft_applied_index))
            .then(ia.cmp(ib))
    });
    match healthy.first() {
        Some((_, c, s)) => Ok(Choice {
            endpoint: c.endpoint.clone(),
            member_id: s.member_id,
            name: c.name.clone(),
            role: if s.is_leader() {
                Role::Leader
            } else {
                Role::Follower
            },
            status: (*s).clone(),
            healthy: count,
        }),
        None => Err(tried),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: u64, leader: u64, applied: u64) -> Candidate {
        Candidate {
            endpoint: format!("https://m{id}:2379"),
            name: Some(format!("m{id}")),
            status: Some(MemberStatus {
                endpoint: format!("https://m{id}:2379"),
                member_id: id,
                version: "3.4.23".into(),
                db_size: 0,
                db_size_in_use: 0,
                leader,
                raft_term: 1,
                raft_index: applied,
                raft_applied_index: applied,
                revision: 1,
                errors: vec![],
                is_learner: false,
            }),
            error: None,
            alarms: vec![],
        }
    }

    #[test]
    fn prefers_a_follower_then_the_most_applied() {
        let c = choose(&[cand(1, 1, 50), cand(2, 1, 40), cand(3, 1, 45)]).unwrap();
        assert_eq!(c.member_id, 3);
        assert_eq!(c.role, Role::Follower);
        assert_eq!(c.healthy, 3);
        assert!(c.describe().contains("follower"), "{}", c.describe());
    }

    #[test]
    fn takes_the_leader_when_alone() {
        let mut down = cand(2, 1, 0);
        down.status = None;
        down.error = Some("connection refused".into());
        let mut corrupt = cand(3, 1, 50);
        corrupt.alarms = vec![AlarmKind::Corrupt];
        let c = choose(&[cand(1, 1, 50), down, corrupt]).unwrap();
        assert_eq!((c.member_id, c.role), (1, Role::Leader));
    }

    #[test]
    fn nospace_only_makes_a_member_a_later_choice() {
        let mut full = cand(2, 1, 50);
        full.alarms = vec![AlarmKind::Nospace];
        let c = choose(&[full.clone(), cand(1, 1, 50)]).unwrap();
        assert_eq!(c.role, Role::Leader, "the leader without alarm first");
        let c = choose(&[full]).unwrap();
        assert_eq!(c.member_id, 2);
    }

    #[test]
    fn explains_when_nothing_is_healthy() {
        let mut noleader = cand(1, 0, 5);
        noleader.endpoint = "https://x:1".into();
        let mut learner = cand(2, 1, 5);
        if let Some(s) = learner.status.as_mut() {
            s.is_learner = true;
        }
        let err = choose(&[noleader, learner]).unwrap_err();
        assert_eq!(err.len(), 2);
        assert!(err[0].contains("no leader"), "{err:?}");
        assert!(err[1].contains("learner"), "{err:?}");
        assert_eq!(choose(&[]).unwrap_err(), vec!["no endpoints".to_string()]);
    }

    #[test]
    fn the_same_member_twice_counts_once() {
        let a = cand(1, 2, 5);
        let mut b = cand(1, 2, 5);
        b.endpoint = "https://127.0.0.1:2379".into();
        assert_eq!(choose(&[a, b]).unwrap().healthy, 1);
    }
}

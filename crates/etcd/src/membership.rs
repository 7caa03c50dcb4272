//! Membership and maintenance decisions: pure logic over what the members answered
//! (no I/O, so every guard rail is tested in microseconds).
//!
//! - [`View`]: every member of the member list with what its own endpoint said (status,
//!   a linearizable read), its health, and who leads.
//! - [`Tolerance`]: how many more member failures the voting members survive.
//! - [`plan_remove`], [`plan_add`], [`plan_promote`]: one [`Change`] with the member it
//!   goes through, the fault tolerance before and after, and the guard rails it
//!   breaks ([`Refusal`]); [`JoinSettings`]: what a new member's etcd must be started
//!   with.
//! - [`cluster_unhealthy`] and [`next_to_defragment`]: defragmentation one member at a
//!   time, followers first and the leader last, each only on a healthy cluster.

use serde::{Serialize, Serializer};

use crate::client::{Alarm, AlarmKind, Member, MemberStatus};
use crate::error::{Error, Result};

/// etcd promotes a learner only once its log has reached this share of the leader's
/// (etcd's `readyPercent`).
pub const CAUGHT_UP_SHARE: f64 = 0.9;

/// Serialises a member id as etcdctl prints it (hex): JSON readers that hold numbers as
/// doubles would lose precision past 2^53.
pub(crate) fn hex<S: Serializer>(id: &u64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:x}"))
}

/// What one endpoint answered: its status, and for a voting member whether a
/// linearizable read went through it (what `etcdctl endpoint health` checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The endpoint asked.
    pub endpoint: String,
    /// Its status, or why there was none.
    pub status: std::result::Result<MemberStatus, String>,
    /// The read's outcome; `None` when not tried (learners serve no linearizable read).
    pub read: Option<std::result::Result<(), String>>,
}

/// A member's health as the command judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// It answered its status, knows a leader, and (a voting member) served a
    /// linearizable read.
    Healthy,
    /// It did not answer, or answered without a leader or without the read.
    Unhealthy,
    /// Added to the member list but never started (no name, no client URL yet).
    NotStarted,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::NotStarted => "not started",
        })
    }
}

/// One member with what is known about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberState {
    /// The member id (hex in JSON, as etcdctl prints it).
    #[serde(serialize_with = "hex")]
    pub id: u64,
    /// Its name (empty while it has not started).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs (empty while it has not started).
    pub client_urls: Vec<String>,
    /// Whether it is a raft learner.
    pub learner: bool,
    /// Whether it is the leader.
    pub leader: bool,
    /// Its health.
    pub health: Health,
    /// Why it is not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The endpoint that answered for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Its status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<MemberStatus>,
}

impl MemberState {
    /// Its name, or its id in hex while it has none.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            format!("{:x}", self.id)
        } else {
            self.name.clone()
        }
    }

    /// Whether it is healthy.
    pub fn healthy(&self) -> bool {
        self.health == Health::Healthy
    }

    /// The raft index it reported.
    pub fn raft_index(&self) -> Option<u64> {
        self.status.as_ref().map(|s| s.raft_index)
    }
}

/// The cluster as the members answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct View {
    /// Every member of the member list, in its order.
    pub members: Vec<MemberState>,
    /// The leader's id, when the members that answered agree on one.
    #[serde(serialize_with = "hex_opt")]
    pub leader: Option<u64>,
    /// Leader ids that answering members disagree on (empty: they agree).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leaders_seen: Vec<String>,
    /// Active alarms.
    pub alarms: Vec<Alarm>,
}

fn hex_opt<S: Serializer>(id: &Option<u64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.serialize_str(&format!("{id:x}")),
        None => s.serialize_none(),
    }
}

fn trim_url(u: &str) -> &str {
    u.trim_end_matches('/')
}

/// Whether `endpoint` is one of the member's client URLs, or the one it answered at.
fn answers_at(m: &MemberState, endpoint: &str) -> bool {
    m.endpoint.as_deref().map(trim_url) == Some(trim_url(endpoint))
        || m.client_urls
            .iter()
            .any(|u| trim_url(u) == trim_url(endpoint))
}

impl View {
    /// Puts the member list and the endpoints' answers together. An answer belongs to
    /// the member whose id it carries; a member no endpoint answered for gets the error
    /// of its own client URL.
    pub fn build(members: Vec<Member>, probes: &[Probe], alarms: Vec<Alarm>) -> View {
        let mut states: Vec<MemberState> = members
            .into_iter()
            .map(|m| {
                let started = !m.name.is_empty() || !m.client_urls.is_empty();
                MemberState {
                    id: m.id,
                    name: m.name,
                    peer_urls: m.peer_urls,
                    client_urls: m.client_urls,
                    learner: m.is_learner,
                    leader: false,
                    health: if started {
                        Health::Unhealthy
                    } else {
                        Health::NotStarted
                    },
                    problem: (!started).then(|| {
                        "added but never started (start etcd on its node with \
                         --initial-cluster-state=existing)"
                            .to_string()
                    }),
                    endpoint: None,
                    status: None,
                }
            })
            .collect();
        for st in &mut states {
            if st.health == Health::NotStarted {
                continue;
            }
            let answered = probes.iter().find(|p| {
                p.status
                    .as_ref()
                    .is_ok_and(|s| s.member_id == st.id && s.member_id != 0)
            });
            match answered {
                Some(p) => {
                    let Ok(s) = &p.status else { continue };
                    st.endpoint = Some(p.endpoint.clone());
                    st.status = Some(s.clone());
                    st.problem = if s.leader == 0 {
                        Some("has no leader (no quorum?)".to_string())
                    } else if let Some(Err(e)) = &p.read {
                        Some(format!("a linearizable read failed: {e}"))
                    } else if !st.learner && p.read.is_none() {
                        Some("no read was tried".to_string())
                    } else {
                        // Errors a member reports about itself are its alarms, listed
                        // on their own: a NOSPACE member still serves reads, and
                        // defragmentation and disarming go through it.
                        None
                    };
                    if st.problem.is_none() {
                        st.health = Health::Healthy;
                    }
                }
                None => {
                    let own = probes.iter().find(|p| {
                        st.client_urls
                            .iter()
                            .any(|u| trim_url(u) == trim_url(&p.endpoint))
                    });
                    st.endpoint = own.map(|p| p.endpoint.clone());
                    st.problem = Some(match own.map(|p| &p.status) {
                        Some(Err(e)) => e.clone(),
                        _ => "no endpoint of it answered".to_string(),
                    });
                }
            }
        }
        let mut leaders: Vec<u64> = states
            .iter()
            .filter_map(|s| s.status.as_ref())
            .map(|s| s.leader)
            .filter(|l| *l != 0)
            .collect();
        leaders.sort_unstable();
        leaders.dedup();
        let leader = match leaders.as_slice() {
            [one] => Some(*one),
            _ => None,
        };
        for st in &mut states {
            st.leader = leader == Some(st.id);
        }
        View {
            members: states,
            leader,
            leaders_seen: if leaders.len() > 1 {
                leaders.iter().map(|l| format!("{l:x}")).collect()
            } else {
                Vec::new()
            },
            alarms,
        }
    }

    /// The member with this id.
    pub fn member(&self, id: u64) -> Option<&MemberState> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The leader.
    pub fn leader_member(&self) -> Option<&MemberState> {
        self.leader.and_then(|l| self.member(l))
    }

    /// The member a user named: by name, or by id in hex (as etcdctl prints it).
    pub fn find(&self, given: &str) -> Result<&MemberState> {
        let by_name: Vec<&MemberState> = self.members.iter().filter(|m| m.name == given).collect();
        match by_name.as_slice() {
            [one] => return Ok(one),
            [] => {}
            _ => {
                return Err(Error::AmbiguousMember {
                    given: given.to_string(),
                    ids: by_name.iter().map(|m| format!("{:x}", m.id)).collect(),
                });
            }
        }
        let id = u64::from_str_radix(given.trim_start_matches("0x"), 16).ok();
        id.and_then(|id| self.member(id))
            .ok_or_else(|| Error::UnknownMember {
                given: given.to_string(),
                known: self
                    .members
                    .iter()
                    .map(|m| format!("{} ({:x})", m.label(), m.id))
                    .collect(),
                unstarted: self
                    .members
                    .iter()
                    .filter(|m| m.health == Health::NotStarted)
                    .map(|m| format!("{:x}", m.id))
                    .collect(),
            })
    }

    /// Voting members and how many of them are healthy.
    pub fn tolerance(&self) -> Tolerance {
        let voting = self.members.iter().filter(|m| !m.learner);
        Tolerance::of(
            voting.clone().count(),
            voting.filter(|m| m.healthy()).count(),
        )
    }

    /// The member the endpoints given reach first (the one a command would talk
    /// through if nothing else were said): the first of `preferred` that is a healthy
    /// member's client URL or answered as it.
    pub fn reached_by(&self, preferred: &[String]) -> Option<&MemberState> {
        preferred.iter().find_map(|e| {
            self.members
                .iter()
                .filter(|m| m.healthy())
                .find(|m| answers_at(m, e))
        })
    }

    /// A healthy voting member to send a change through, other than `except`: the
    /// first of `preferred` (the endpoints the user gave) that is one, else the first
    /// in the member list.
    pub fn through(&self, preferred: &[String], except: Option<u64>) -> Option<Through> {
        let usable = |m: &&MemberState| !m.learner && m.healthy() && Some(m.id) != except;
        let pick = preferred
            .iter()
            .find_map(|e| {
                self.members
                    .iter()
                    .filter(usable)
                    .find(|m| answers_at(m, e))
            })
            .or_else(|| self.members.iter().find(usable))?;
        Some(Through {
            id: pick.id,
            name: pick.label(),
            endpoint: pick
                .endpoint
                .clone()
                .or_else(|| pick.client_urls.first().cloned())
                .unwrap_or_default(),
        })
    }
}

/// Fault tolerance of the voting members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tolerance {
    /// Voting members.
    pub voting: usize,
    /// Healthy voting members.
    pub healthy: usize,
    /// Members a quorum needs (`voting / 2 + 1`).
    pub quorum: usize,
    /// How many more healthy members may fail before quorum is lost (0 when lost).
    pub tolerated: usize,
    /// Whether the healthy members make a quorum.
    pub has_quorum: bool,
}

impl Tolerance {
    /// The figures of `voting` members of which `healthy` are healthy.
    pub fn of(voting: usize, healthy: usize) -> Tolerance {
        let quorum = voting / 2 + 1;
        Tolerance {
            voting,
            healthy,
            quorum,
            tolerated: healthy.saturating_sub(quorum),
            has_quorum: voting > 0 && healthy >= quorum,
        }
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.has_quorum {
            write!(
                f,
                "{} voting, {} healthy, quorum {}, {} failure{} tolerated",
                self.voting,
                self.healthy,
                self.quorum,
                self.tolerated,
                if self.tolerated == 1 { "" } else { "s" }
            )
        } else {
            write!(
                f,
                "{} voting, {} healthy, quorum {}: quorum LOST",
                self.voting, self.healthy, self.quorum
            )
        }
    }
}

/// The member a change is sent through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Through {
    /// Its id.
    #[serde(serialize_with = "hex")]
    pub id: u64,
    /// Its name.
    pub name: String,
    /// The endpoint used.
    pub endpoint: String,
}

/// One change to the cluster. The same value describes itself for `--dry-run` and is
/// what [`Cluster::apply`](crate::Cluster::apply) performs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Change {
    /// Remove a member from the member list.
    #[serde(rename_all = "camelCase")]
    Remove {
        /// Its id.
        #[serde(serialize_with = "hex")]
        id: u64,
        /// Its name.
        name: String,
    },
    /// Add a member (not started yet) with these peer URLs.
    #[serde(rename_all = "camelCase")]
    Add {
        /// The name its etcd will be started with (etcd itself learns it at start).
        name: String,
        /// Its peer URLs.
        peer_urls: Vec<String>,
        /// As a learner (non-voting until promoted).
        learner: bool,
    },
    /// Promote a learner to a voting member.
    #[serde(rename_all = "camelCase")]
    Promote {
        /// Its id.
        #[serde(serialize_with = "hex")]
        id: u64,
        /// Its name.
        name: String,
    },
    /// Defragment one member's backend.
    #[serde(rename_all = "camelCase")]
    Defragment {
        /// Its id.
        #[serde(serialize_with = "hex")]
        id: u64,
        /// Its name.
        name: String,
        /// The endpoint of that member.
        endpoint: String,
    },
    /// Clear an alarm a member raised.
    #[serde(rename_all = "camelCase")]
    Disarm {
        /// The member that raised it.
        #[serde(serialize_with = "hex")]
        member_id: u64,
        /// Its name.
        member: String,
        /// The alarm.
        alarm: AlarmKind,
    },
}

impl Change {
    /// What it does, with every id and URL.
    pub fn describe(&self) -> String {
        match self {
            Change::Remove { id, name } => format!("remove member {name} ({id:x})"),
            Change::Add {
                name,
                peer_urls,
                learner,
            } => format!(
                "add member {name} with peer URLs {} as a {}",
                peer_urls.join(","),
                if *learner {
                    "learner (non-voting)"
                } else {
                    "voting member"
                }
            ),
            Change::Promote { id, name } => {
                format!("promote learner {name} ({id:x}) to a voting member")
            }
            Change::Defragment { id, name, endpoint } => {
                format!("defragment member {name} ({id:x}) at {endpoint}")
            }
            Change::Disarm {
                member_id,
                member,
                alarm,
            } => format!("disarm alarm {alarm} of member {member} ({member_id:x})"),
        }
    }
}

/// A guard rail a change would break.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Refusal {
    /// The healthy voting members left would not make a quorum.
    #[serde(rename_all = "camelCase")]
    LosesQuorum {
        /// Before the change.
        before: Tolerance,
        /// After it.
        after: Tolerance,
    },
    /// An even number of voting members would be left: no more failures tolerated
    /// than with one member fewer.
    #[serde(rename_all = "camelCase")]
    EvenCount {
        /// Voting members after the change.
        voting: usize,
    },
    /// The change lowers the fault tolerance (a voting member added before it runs).
    #[serde(rename_all = "camelCase")]
    LowersTolerance {
        /// Before the change.
        before: Tolerance,
        /// After it.
        after: Tolerance,
    },
    /// The cluster has no quorum now: no membership change can be committed.
    #[serde(rename_all = "camelCase")]
    NoQuorum {
        /// The figures now.
        now: Tolerance,
    },
    /// The last voting member cannot be removed.
    LastMember,
    /// No healthy voting member other than the one to change could carry the request.
    #[serde(rename_all = "camelCase")]
    NoOtherMember {
        /// The member to change.
        member: String,
    },
    /// A member already has one of these peer URLs.
    #[serde(rename_all = "camelCase")]
    PeerUrlInUse {
        /// The URL.
        url: String,
        /// The member that has it.
        member: String,
    },
    /// A member already has this name.
    #[serde(rename_all = "camelCase")]
    NameInUse {
        /// The name.
        name: String,
        /// That member's id in hex.
        id: String,
    },
    /// etcd keeps at most one learner; this one must be promoted or removed first.
    #[serde(rename_all = "camelCase")]
    LearnerExists {
        /// The learner.
        member: String,
    },
    /// Only a learner can be promoted.
    #[serde(rename_all = "camelCase")]
    NotALearner {
        /// The member.
        member: String,
    },
    /// The learner's etcd has not started (or does not answer).
    #[serde(rename_all = "camelCase")]
    LearnerNotRunning {
        /// The learner.
        member: String,
        /// Why.
        problem: String,
    },
    /// The learner's log is behind the leader's.
    #[serde(rename_all = "camelCase")]
    NotCaughtUp {
        /// The learner.
        member: String,
        /// Its raft index.
        learner_index: u64,
        /// The leader's.
        leader_index: u64,
    },
    /// No leader is known to compare the learner with.
    NoLeader,
}

impl Refusal {
    /// Whether `--force` may go past it (the others are impossible or etcd refuses them
    /// anyway).
    pub fn overridable(&self) -> bool {
        matches!(
            self,
            Refusal::LosesQuorum { .. }
                | Refusal::EvenCount { .. }
                | Refusal::LowersTolerance { .. }
        )
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::LosesQuorum { before, after } => {
                write!(f, "quorum would be lost: now {before}; after: {after}")
            }
            Refusal::EvenCount { voting } => write!(
                f,
                "{voting} voting members would be left: an even count tolerates no more failures than {} and needs one vote more",
                voting.saturating_sub(1)
            ),
            Refusal::LowersTolerance { before, after } => write!(
                f,
                "fault tolerance would drop from {} to {} until the new member runs: now {before}; after: {after}",
                before.tolerated, after.tolerated
            ),
            Refusal::NoQuorum { now } => write!(
                f,
                "the cluster has no quorum ({now}): no membership change can be committed"
            ),
            Refusal::LastMember => f.write_str("it is the last voting member"),
            Refusal::NoOtherMember { member } => write!(
                f,
                "no healthy voting member other than {member} answers, and the request cannot go through the member it removes"
            ),
            Refusal::PeerUrlInUse { url, member } => {
                write!(f, "peer URL {url} belongs to member {member} already")
            }
            Refusal::NameInUse { name, id } => write!(
                f,
                "member {id} is named {name} already (remove it first to replace it)"
            ),
            Refusal::LearnerExists { member } => write!(
                f,
                "learner {member} is still waiting: promote or remove it first (etcd keeps one learner at a time)"
            ),
            Refusal::NotALearner { member } => {
                write!(f, "{member} is a voting member already, not a learner")
            }
            Refusal::LearnerNotRunning { member, problem } => {
                write!(f, "learner {member} is not running: {problem}")
            }
            Refusal::NotCaughtUp {
                member,
                learner_index,
                leader_index,
            } => write!(
                f,
                "learner {member} has not caught up: raft index {learner_index} of the leader's {leader_index} (etcd promotes at {:.0}%)",
                CAUGHT_UP_SHARE * 100.0
            ),
            Refusal::NoLeader => f.write_str("no leader is known"),
        }
    }
}

/// A change checked against the cluster: what it would do, through which member, the
/// fault tolerance before and after, and what it breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberPlan {
    /// The change.
    pub change: Change,
    /// The member the request goes through (none when no usable member answers).
    pub through: Option<Through>,
    /// Fault tolerance now.
    pub before: Tolerance,
    /// Fault tolerance once the change is made (a new member counted as not yet
    /// healthy).
    pub after: Tolerance,
    /// The guard rails broken.
    pub refusals: Vec<Refusal>,
    /// The member removed is the leader: leadership moves to the member the request
    /// goes through first, so that the removal causes no election.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moves_leader: bool,
}

impl MemberPlan {
    /// Whether it may go ahead: nothing refused, or only what `force` overrides.
    pub fn allowed(&self, force: bool) -> bool {
        self.refusals.iter().all(|r| force && r.overridable())
    }
}

/// Checks the removal of the member `given` (name or hex id).
pub fn plan_remove(view: &View, given: &str, preferred: &[String]) -> Result<MemberPlan> {
    let target = view.find(given)?;
    let before = view.tolerance();
    let after = if target.learner {
        before
    } else {
        Tolerance::of(
            before.voting.saturating_sub(1),
            before.healthy - usize::from(target.healthy()),
        )
    };
    let mut refusals = Vec::new();
    if !before.has_quorum {
        refusals.push(Refusal::NoQuorum { now: before });
    } else if !target.learner {
        if after.voting == 0 {
            refusals.push(Refusal::LastMember);
        } else if !after.has_quorum {
            refusals.push(Refusal::LosesQuorum { before, after });
        } else if after.voting.is_multiple_of(2) {
            refusals.push(Refusal::EvenCount {
                voting: after.voting,
            });
        }
    }
    let through = view.through(preferred, Some(target.id));
    if through.is_none() && before.has_quorum && after.voting > 0 {
        refusals.push(Refusal::NoOtherMember {
            member: target.label(),
        });
    }
    let moves_leader = target.leader && !target.learner && through.is_some();
    Ok(MemberPlan {
        change: Change::Remove {
            id: target.id,
            name: target.label(),
        },
        through,
        before,
        after,
        refusals,
        moves_leader,
    })
}

/// Checks adding a member named `name` with `peer_urls`, as a learner or a voting member.
pub fn plan_add(
    view: &View,
    name: &str,
    peer_urls: &[String],
    learner: bool,
    preferred: &[String],
) -> MemberPlan {
    let before = view.tolerance();
    let after = if learner {
        before
    } else {
        Tolerance::of(before.voting + 1, before.healthy)
    };
    let mut refusals = Vec::new();
    if !before.has_quorum {
        refusals.push(Refusal::NoQuorum { now: before });
    }
    for url in peer_urls {
        if let Some(m) = view
            .members
            .iter()
            .find(|m| m.peer_urls.iter().any(|p| trim_url(p) == trim_url(url)))
        {
            refusals.push(Refusal::PeerUrlInUse {
                url: url.clone(),
                member: m.label(),
            });
        }
    }
    if let Some(m) = view.members.iter().find(|m| m.name == name) {
        refusals.push(Refusal::NameInUse {
            name: name.to_string(),
            id: format!("{:x}", m.id),
        });
    }
    if learner && let Some(l) = view.members.iter().find(|m| m.learner) {
        refusals.push(Refusal::LearnerExists { member: l.label() });
    }
    if !learner && before.has_quorum {
        if !after.has_quorum {
            refusals.push(Refusal::LosesQuorum { before, after });
        } else if after.tolerated < before.tolerated {
            refusals.push(Refusal::LowersTolerance { before, after });
        }
    }
    MemberPlan {
        change: Change::Add {
            name: name.to_string(),
            peer_urls: peer_urls.to_vec(),
            learner,
        },
        through: view.through(preferred, None),
        before,
        after,
        refusals,
        moves_leader: false,
    }
}

/// Whether the learner's log has reached [`CAUGHT_UP_SHARE`] of the leader's.
pub fn caught_up(learner_index: u64, leader_index: u64) -> bool {
    learner_index as f64 >= leader_index as f64 * CAUGHT_UP_SHARE
}

/// Checks promoting the learner `given` (name or hex id).
pub fn plan_promote(view: &View, given: &str, preferred: &[String]) -> Result<MemberPlan> {
    let target = view.find(given)?;
    let before = view.tolerance();
    let mut refusals = Vec::new();
    let after = if target.learner {
        Tolerance::of(
            before.voting + 1,
            before.healthy + usize::from(target.healthy()),
        )
    } else {
        refusals.push(Refusal::NotALearner {
            member: target.label(),
        });
        before
    };
    if !before.has_quorum {
        refusals.push(Refusal::NoQuorum { now: before });
    }
    if target.learner {
        if !target.healthy() {
            refusals.push(Refusal::LearnerNotRunning {
                member: target.label(),
                problem: target.problem.clone().unwrap_or_default(),
            });
        } else {
            match (
                view.leader_member().and_then(|l| l.raft_index()),
                target.raft_index(),
            ) {
                (Some(leader_index), Some(learner_index)) => {
                    if !caught_up(learner_index, leader_index) {
                        refusals.push(Refusal::NotCaughtUp {
                            member: target.label(),
                            learner_index,
                            leader_index,
                        });
                    }
                }
                _ => refusals.push(Refusal::NoLeader),
            }
        }
    }
    Ok(MemberPlan {
        change: Change::Promote {
            id: target.id,
            name: target.label(),
        },
        through: view.through(preferred, Some(target.id)),
        before,
        after,
        refusals,
        moves_leader: false,
    })
}

/// What the new member's etcd must be started with (etcd's own flag names), as
/// `etcdctl member add` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinSettings {
    /// `--name`.
    pub name: String,
    /// `--initial-cluster`: every member's `name=peerURL`, the new one included.
    pub initial_cluster: String,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: String,
    /// `--initial-cluster-state`: always `existing` for a member that joins.
    pub initial_cluster_state: String,
}

/// The settings of the member `new_id` named `name`, from the member list etcd returned
/// after adding it. Members that have not started have no name; they are listed with an
/// empty one, as etcdctl does (etcd checks the peer URLs).
pub fn join_settings(members: &[Member], new_id: u64, name: &str) -> JoinSettings {
    let mut cluster = Vec::new();
    let mut own = Vec::new();
    for m in members {
        let n = if m.id == new_id {
            name
        } else {
            m.name.as_str()
        };
        for u in &m.peer_urls {
            cluster.push(format!("{n}={u}"));
            if m.id == new_id {
                own.push(u.clone());
            }
        }
    }
    JoinSettings {
        name: name.to_string(),
        initial_cluster: cluster.join(","),
        initial_advertise_peer_urls: own.join(","),
        initial_cluster_state: "existing".to_string(),
    }
}

/// Why the cluster is not healthy enough to defragment a member (empty: it is): every
/// member started and healthy, one leader agreed on, quorum kept.
pub fn cluster_unhealthy(view: &View) -> Vec<String> {
    let mut why: Vec<String> = view
        .members
        .iter()
        .filter(|m| !m.healthy())
        .map(|m| {
            format!(
                "{} is {}: {}",
                m.label(),
                m.health,
                m.problem.as_deref().unwrap_or("?")
            )
        })
        .collect();
    if !view.leaders_seen.is_empty() {
        why.push(format!(
            "members disagree on the leader ({})",
            view.leaders_seen.join(", ")
        ));
    } else if view.leader.is_none() {
        why.push("no leader".to_string());
    }
    let t = view.tolerance();
    if !t.has_quorum {
        why.push(format!("no quorum ({t})"));
    }
    why
}

/// The next member to defragment among those not in `done`: a follower first (in
/// member-list order), the leader only when it is the last one left. Learners are
/// skipped (etcd serves no defragment on a learner).
pub fn next_to_defragment<'a>(view: &'a View, done: &[u64]) -> Option<&'a MemberState> {
    let left = || {
        view.members
            .iter()
            .filter(|m| !m.learner && !done.contains(&m.id))
    };
    left().find(|m| !m.leader).or_else(|| left().next())
}

#[cfg(test)]
mod tests;

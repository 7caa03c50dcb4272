use super::*;

fn member(id: u64, learner: bool) -> Member {
    Member {
        id,
        name: format!("m{id}"),
        peer_urls: vec![format!("https://10.0.0.{id}:2380")],
        client_urls: vec![format!("https://10.0.0.{id}:2379")],
        is_learner: learner,
    }
}

fn status(id: u64, leader: u64, index: u64, learner: bool) -> MemberStatus {
    MemberStatus {
        endpoint: format!("https://10.0.0.{id}:2379"),
        member_id: id,
        version: "3.5.1".into(),
        db_size: 1000,
        db_size_in_use: 500,
        leader,
        raft_term: 2,
        raft_index: index,
        raft_applied_index: index,
        revision: 1,
        errors: vec![],
        is_learner: learner,
    }
}

fn up(id: u64, leader: u64, index: u64, learner: bool) -> Probe {
    Probe {
        endpoint: format!("https://10.0.0.{id}:2379"),
        status: Ok(status(id, leader, index, learner)),
        read: (!learner).then_some(Ok(())),
    }
}

fn down(id: u64) -> Probe {
    Probe {
        endpoint: format!("https://10.0.0.{id}:2379"),
        status: Err("connection refused".into()),
        read: None,
    }
}

/// Members 1..=n voting (leader 1), those in `dead` not answering.
fn cluster(n: u64, dead: &[u64]) -> View {
    let members = (1..=n).map(|i| member(i, false)).collect();
    let probes: Vec<Probe> = (1..=n)
        .map(|i| {
            if dead.contains(&i) {
                down(i)
            } else {
                up(i, 1, 100, false)
            }
        })
        .collect();
    View::build(members, &probes, vec![])
}

#[test]
fn view_joins_answers_to_members_and_finds_the_leader() {
    let v = cluster(3, &[3]);
    assert_eq!(v.leader, Some(1));
    assert!(v.members[0].leader && !v.members[1].leader);
    assert_eq!(v.members[2].health, Health::Unhealthy);
    assert_eq!(v.members[2].problem.as_deref(), Some("connection refused"));
    assert_eq!(v.tolerance(), Tolerance::of(3, 2));
    assert_eq!(v.find("m2").unwrap().id, 2);
    assert_eq!(v.find("3").unwrap().name, "m3", "an id in hex");
    assert!(matches!(
        v.find("nope"),
        Err(Error::UnknownMember { known, .. }) if known.len() == 3
    ));
}

#[test]
fn a_member_without_read_or_leader_is_unhealthy_and_an_unstarted_one_says_so() {
    let mut members: Vec<Member> = (1..=3).map(|i| member(i, false)).collect();
    members.push(Member {
        id: 9,
        name: String::new(),
        peer_urls: vec!["https://10.0.0.9:2380".into()],
        client_urls: vec![],
        is_learner: true,
    });
    let mut no_read = up(2, 1, 100, false);
    no_read.read = Some(Err("context deadline exceeded".into()));
    let probes = [up(1, 1, 100, false), no_read, up(3, 0, 100, false)];
    let v = View::build(members, &probes, vec![]);
    assert_eq!(v.members[1].health, Health::Unhealthy);
    assert!(
        v.members[1]
            .problem
            .as_ref()
            .unwrap()
            .contains("linearizable")
    );
    assert!(v.members[2].problem.as_ref().unwrap().contains("no leader"));
    assert_eq!(v.members[3].health, Health::NotStarted);
    assert_eq!(v.members[3].label(), "9");
    assert_eq!(v.tolerance(), Tolerance::of(3, 1));
    assert!(!v.tolerance().has_quorum);
}

#[test]
fn tolerance_arithmetic() {
    assert_eq!(Tolerance::of(3, 3).tolerated, 1);
    assert_eq!(Tolerance::of(3, 2).tolerated, 0);
    assert_eq!(Tolerance::of(4, 4).tolerated, 1);
    assert_eq!(Tolerance::of(5, 5).tolerated, 2);
    assert!(!Tolerance::of(2, 1).has_quorum);
    assert!(!Tolerance::of(0, 0).has_quorum);
    assert!(
        Tolerance::of(3, 2)
            .to_string()
            .contains("0 failures tolerated")
    );
}

#[test]
fn removing_from_three_healthy_leaves_an_even_count() {
    let v = cluster(3, &[]);
    let p = plan_remove(&v, "m3", &[]).unwrap();
    assert_eq!(p.refusals, vec![Refusal::EvenCount { voting: 2 }]);
    assert_eq!((p.before.tolerated, p.after.tolerated), (1, 0));
    assert!(!p.allowed(false));
    assert!(p.allowed(true));
    // From five, four are left: refused too; from four, three: allowed.
    assert!(
        !plan_remove(&cluster(5, &[]), "m5", &[])
            .unwrap()
            .allowed(false)
    );
    let four = plan_remove(&cluster(4, &[]), "m4", &[]).unwrap();
    assert!(four.refusals.is_empty(), "{:?}", four.refusals);
}

#[test]
fn removing_a_healthy_member_with_one_down_loses_quorum() {
    let v = cluster(3, &[2]);
    let p = plan_remove(&v, "m3", &[]).unwrap();
    assert_eq!(
        p.refusals,
        vec![Refusal::LosesQuorum {
            before: Tolerance::of(3, 2),
            after: Tolerance::of(2, 1)
        }]
    );
    let text = p.refusals[0].to_string();
    assert!(text.contains("0 failures tolerated"), "{text}");
    assert!(text.contains("quorum LOST"), "{text}");
    // The member that is down: quorum kept, but an even count.
    let p = plan_remove(&v, "m2", &[]).unwrap();
    assert_eq!(p.refusals, vec![Refusal::EvenCount { voting: 2 }]);
    assert_eq!(p.after, Tolerance::of(2, 2));
}

#[test]
fn no_change_without_quorum_even_with_force() {
    let v = cluster(3, &[2, 3]);
    let p = plan_remove(&v, "m3", &[]).unwrap();
    assert!(matches!(p.refusals[0], Refusal::NoQuorum { .. }));
    assert!(!p.allowed(true));
    let p = plan_add(&v, "m4", &["https://10.0.0.4:2380".into()], true, &[]);
    assert!(!p.allowed(true));
}

#[test]
fn a_removal_never_goes_through_the_member_it_removes() {
    let v = cluster(3, &[]);
    let mine = vec!["https://10.0.0.3:2379".to_string()];
    assert_eq!(v.reached_by(&mine).unwrap().name, "m3");
    let p = plan_remove(&v, "m3", &mine).unwrap();
    assert_eq!(p.through.as_ref().unwrap().name, "m1");
    // m3 the only member answering besides a dead m2, with five members: nobody else.
    let v = cluster(5, &[1, 2, 4]);
    let p = plan_remove(&v, "m3", &mine).unwrap();
    assert!(p.refusals.contains(&Refusal::NoQuorum {
        now: Tolerance::of(5, 2)
    }));
    let members = vec![member(1, false), member(2, false)];
    let v = View::build(members, &[down(1), up(2, 2, 5, false)], vec![]);
    let p = plan_remove(&v, "m2", &[]).unwrap();
    assert!(p.through.is_none());
    assert!(!p.allowed(true), "{:?}", p.refusals);
    // The preferred endpoint is used when it is usable.
    let v = cluster(3, &[]);
    let p = plan_remove(&v, "m1", &["https://10.0.0.2:2379/".into()]).unwrap();
    assert_eq!(p.through.unwrap().name, "m2");
}

#[test]
fn add_a_learner_keeps_tolerance_and_a_voter_lowers_it() {
    let v = cluster(3, &[]);
    let url = vec!["https://10.0.0.4:2380".to_string()];
    let p = plan_add(&v, "m4", &url, true, &[]);
    assert!(p.refusals.is_empty());
    assert_eq!(p.before, p.after);
    let p = plan_add(&v, "m4", &url, false, &[]);
    assert_eq!(
        p.refusals,
        vec![Refusal::LowersTolerance {
            before: Tolerance::of(3, 3),
            after: Tolerance::of(4, 3)
        }]
    );
    assert!(p.allowed(true));
    // A voter added to two of three healthy: quorum lost until it runs.
    let p = plan_add(&cluster(3, &[3]), "m4", &url, false, &[]);
    assert!(matches!(p.refusals[0], Refusal::LosesQuorum { .. }));
    // A name in use.
    let p = plan_add(&v, "m2", &url, true, &[]);
    assert_eq!(
        p.refusals,
        vec![Refusal::NameInUse {
            name: "m2".into(),
            id: "2".into()
        }]
    );
    assert!(!p.allowed(true));
    // A peer URL in use, and a second learner.
    let p = plan_add(&v, "x", &["https://10.0.0.2:2380/".into()], true, &[]);
    assert!(matches!(&p.refusals[0], Refusal::PeerUrlInUse { member, .. } if member == "m2"));
    let members = vec![
        member(1, false),
        member(2, false),
        member(3, false),
        member(4, true),
    ];
    let probes = [
        up(1, 1, 9, false),
        up(2, 1, 9, false),
        up(3, 1, 9, false),
        up(4, 1, 9, true),
    ];
    let v = View::build(members, &probes, vec![]);
    let p = plan_add(&v, "m5", &["https://10.0.0.5:2380".into()], true, &[]);
    assert_eq!(
        p.refusals,
        vec![Refusal::LearnerExists {
            member: "m4".into()
        }]
    );
    assert!(!p.allowed(true));
}

fn with_learner(learner_index: Option<u64>) -> View {
    let members = vec![member(1, false), member(2, false), member(3, true)];
    let third = match learner_index {
        Some(i) => up(3, 1, i, true),
        None => down(3),
    };
    View::build(
        members,
        &[up(1, 1, 1000, false), up(2, 1, 1000, false), third],
        vec![],
    )
}

#[test]
fn promote_only_a_running_caught_up_learner() {
    let p = plan_promote(&with_learner(Some(950)), "m3", &[]).unwrap();
    assert!(p.refusals.is_empty(), "{:?}", p.refusals);
    assert_eq!(
        (p.before, p.after),
        (Tolerance::of(2, 2), Tolerance::of(3, 3))
    );
    let p = plan_promote(&with_learner(Some(500)), "m3", &[]).unwrap();
    assert_eq!(
        p.refusals,
        vec![Refusal::NotCaughtUp {
            member: "m3".into(),
            learner_index: 500,
            leader_index: 1000
        }]
    );
    assert!(!p.allowed(true));
    let p = plan_promote(&with_learner(None), "m3", &[]).unwrap();
    assert!(
        matches!(&p.refusals[0], Refusal::LearnerNotRunning { problem, .. } if problem.contains("refused"))
    );
    let p = plan_promote(&with_learner(Some(1000)), "m2", &[]).unwrap();
    assert_eq!(
        p.refusals,
        vec![Refusal::NotALearner {
            member: "m2".into()
        }]
    );
    assert!(caught_up(900, 1000) && !caught_up(899, 1000));
}

#[test]
fn join_settings_list_every_member_and_the_new_one() {
    let mut members = vec![member(1, false), member(2, false)];
    members.push(Member {
        id: 7,
        name: String::new(),
        peer_urls: vec!["https://10.0.0.7:2380".into()],
        client_urls: vec![],
        is_learner: true,
    });
    let j = join_settings(&members, 7, "cp3");
    assert_eq!(
        j.initial_cluster,
        "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,cp3=https://10.0.0.7:2380"
    );
    assert_eq!(j.initial_advertise_peer_urls, "https://10.0.0.7:2380");
    assert_eq!(j.initial_cluster_state, "existing");
}

#[test]
fn defragment_followers_first_and_the_leader_last() {
    // The leader is m2 and listed second.
    let members = (1..=3).map(|i| member(i, false)).collect();
    let probes: Vec<Probe> = (1..=3).map(|i| up(i, 2, 10, false)).collect();
    let v = View::build(members, &probes, vec![]);
    assert!(cluster_unhealthy(&v).is_empty());
    let mut done = Vec::new();
    while let Some(m) = next_to_defragment(&v, &done) {
        done.push(m.id);
    }
    assert_eq!(done, vec![1, 3, 2]);
    // Learners are skipped; an unhealthy member or no leader stops it.
    let v = with_learner(Some(10));
    assert_eq!(next_to_defragment(&v, &[1, 2]), None);
    let why = cluster_unhealthy(&cluster(3, &[3]));
    assert_eq!(why.len(), 1, "{why:?}");
    assert!(why[0].starts_with("m3 is unhealthy"), "{why:?}");
    let members = (1..=3).map(|i| member(i, false)).collect();
    let split = [up(1, 1, 1, false), up(2, 2, 1, false), up(3, 2, 1, false)];
    let why = cluster_unhealthy(&View::build(members, &split, vec![]));
    assert!(why.iter().any(|w| w.contains("disagree")), "{why:?}");
}

#[test]
fn changes_describe_themselves_and_serialise_ids_in_hex() {
    let c = Change::Remove {
        id: 0x8e9e05c52164694d,
        name: "cp2".into(),
    };
    assert_eq!(c.describe(), "remove member cp2 (8e9e05c52164694d)");
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["action"], "remove");
    assert_eq!(json["id"], "8e9e05c52164694d");
    let v = serde_json::to_value(cluster(3, &[])).unwrap();
    assert_eq!(v["leader"], "1");
    assert_eq!(v["members"][1]["id"], "2");
    assert_eq!(v["members"][1]["status"]["memberId"], "2");
    assert_eq!(v["members"][1]["status"]["leader"], "1");
    let r = serde_json::to_value(Refusal::EvenCount { voting: 2 }).unwrap();
    assert_eq!(r["reason"], "evenCount");
}

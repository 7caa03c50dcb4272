//! Tier `real_etcd` (cli): `kastellan etcd members`, `member add|promote|remove`,
//! `defrag` and `alarm list|disarm` against real 3-member etcd clusters (3.4 and 3.5)
//! on 127.0.0.1 with mutual TLS. The tests start every etcd process themselves and
//! kill only those, by pid.

use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kastellan_etcd::testing::{
    EtcdCluster, EtcdRelease, TestMember, etcd_client, etcd34, etcd35, free_port,
};
use serde_json::Value;

use crate::kastellan;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `kastellan etcd ARGS` against `endpoints` with the test's certificates, no
/// kubeconfig (a path that does not exist) and 80 columns.
fn run(etcd: &EtcdCluster, endpoints: &[String], args: &[&str]) -> Output {
    let p = |f: &str| etcd.pki.path(f).display().to_string();
    let started = Instant::now();
    let out = kastellan()
        .arg("etcd")
        .args(args)
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg(format!("--cacert={}", p("ca.crt")))
        .arg(format!("--cert={}", p("healthcheck-client.crt")))
        .arg(format!("--key={}", p("healthcheck-client.key")))
        .env("KUBECONFIG", etcd.scratch().join("no-such-kubeconfig"))
        .env("COLUMNS", "80")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    eprintln!(
        "kastellan etcd {} -> {:?} in {:.2}s",
        args.join(" "),
        out.status.code(),
        started.elapsed().as_secs_f64()
    );
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// etcdctl's member list through `endpoint`: (name, learner) sorted by name.
fn etcdctl_members(etcd: &EtcdCluster, endpoint: &str) -> Vec<(String, bool)> {
    let out = etcd
        .etcdctl_on(endpoint)
        .args(["member", "list", "-w", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut list: Vec<(String, bool)> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["isLearner"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    list.sort();
    list
}

/// Writes a key every 50 ms through `endpoints` until stopped; counts the writes that
/// failed or took more than 5 s (generous: the machine may be busy with other builds).
struct Writer {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(usize, usize)>,
}

impl Writer {
    fn start(etcd: &EtcdCluster, endpoints: Vec<String>) -> Writer {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = rt.block_on(etcd.client_for(&endpoints));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, 0);
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let mut c = client.clone();
                let r = rt.block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(5),
                        c.put(format!("/it/writer/{i}"), "x", None),
                    )
                    .await
                });
                match r {
                    Ok(Ok(_)) => ok += 1,
                    other => {
                        eprintln!("write {i} failed: {other:?}");
                        failed += 1;
                    }
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (ok, failed)
        });
        Writer { stop, handle }
    }

    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

fn lines_fit(out: &str, width: usize) {
    for l in out.lines() {
        assert!(
            l.chars().count() <= width,
            "line longer than {width}: {l:?}\n{out}"
        );
    }
}

/// Remove a follower, add it back as a learner (the member started by the test with
/// the flags the command printed), promote it; a writer sees no failed write meanwhile.
fn remove_add_promote(release: &EtcdRelease) {
    let started = Instant::now();
    let mut etcd = EtcdCluster::start(release, 3);
    let healthy_at = Instant::now();
    let all = etcd.endpoints();
    let leader = etcd.leader_index();
    let i = (leader + 1) % 3;
    let name = etcd.members[i].name.clone();
    let others: Vec<String> = (0..3)
        .filter(|j| *j != i)
        .map(|j| etcd.members[j].client_url.clone())
        .collect();

    // The members as they are: all healthy, one leader, no kube client (said so).
    let out = run(&etcd, &all, &["members", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc = json(&out);
    let members = doc["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{doc}");
    assert!(members.iter().all(|m| m["health"] == "healthy"), "{doc}");
    assert_eq!(
        members.iter().filter(|m| m["leader"] == true).count(),
        1,
        "{doc}"
    );
    assert_eq!(doc["leader"], etcd.members[leader].name.as_str());
    assert!(members[0]["status"]["raftIndex"].as_u64().unwrap() > 0);
    assert!(members[0]["status"]["dbSize"].as_i64().unwrap() > 0);
    assert!(
        members[0]["status"]["version"]
            .as_str()
            .unwrap()
            .starts_with(release.name)
    );
    assert_eq!(doc["controlPlanes"]["checked"], false);
    assert!(
        doc["controlPlanes"]["reason"]
            .as_str()
            .unwrap()
            .contains("no-such-kubeconfig"),
        "{doc}"
    );
    assert_eq!(doc["tolerance"]["tolerated"], 1);
    let out = run(&etcd, &all, &["members"]);
    let human = text(&out.stdout);
    eprintln!("{human}");
    lines_fit(&human, 80);
    for word in [
        "NAME",
        "RAFT INDEX",
        "DB SIZE",
        "leader",
        "follower",
        "peer https://127.0.0.1:",
        "control-plane nodes not matched",
        "1 failure tolerated",
    ] {
        assert!(human.contains(word), "{word} missing:\n{human}");
    }

    // Bad input changes nothing: a name in use, a member that does not exist.
    let taken = etcd.members[leader].name.clone();
    let url = format!("https://127.0.0.1:{}", free_port());
    let out = run(&etcd, &all, &["member", "add", &taken, "--peer-urls", &url]);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("named"), "{}", text(&out.stdout));
    let out = run(&etcd, &all, &["member", "remove", "nope"]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("no etcd member 'nope'"));
    assert_eq!(etcdctl_members(&etcd, &all[0]).len(), 3);

    let writer = Writer::start(&etcd, others.clone());
    // etcd removes a voting member only once the others have been connected to the
    // leader for 5 s (its strict reconfiguration check): give the peers that time.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(healthy_at.elapsed()));

    // Without --force: refused, the even count and the tolerance before and after said.
    let out = run(&etcd, &all, &["member", "remove", &name]);
    let human = text(&out.stdout);
    eprintln!("{human}");
    assert_eq!(code(&out), 1, "{human}{}", text(&out.stderr));
    assert!(human.contains("refused, nothing changed"), "{human}");
    assert!(human.contains("even count"), "{human}");
    assert!(human.contains("--force"), "{human}");
    assert!(
        human.contains("now:   3 voting, 3 healthy, quorum 2, 1 failure tolerated"),
        "{human}"
    );
    assert!(
        human.contains("after: 2 voting, 2 healthy, quorum 2, 0 failures tolerated"),
        "{human}"
    );
    lines_fit(&human, 80);
    assert_eq!(etcdctl_members(&etcd, &others[0]).len(), 3);

    // A dry run with --force: would remove, changes nothing.
    let out = run(
        &etcd,
        &all,
        &["member", "remove", &name, "--force", "--dry-run"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("dry run, nothing changed: would remove member"));
    assert_eq!(etcdctl_members(&etcd, &others[0]).len(), 3);

    // Removed, talking only to the member removed: the request goes through another,
    // and the command says so.
    let own = vec![etcd.members[i].client_url.clone()];
    let out = run(
        &etcd,
        &own,
        &["member", "remove", &name, "--force", "-o", "json"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["outcome"], "done", "{doc}");
    assert_ne!(doc["plan"]["through"]["name"], name.as_str(), "{doc}");
    assert!(
        doc["endpointsNote"]
            .as_str()
            .unwrap()
            .contains("goes through"),
        "{doc}"
    );
    assert_eq!(doc["members"].as_array().unwrap().len(), 2, "{doc}");
    assert!(doc["next"][1].as_str().unwrap().contains("empty"), "{doc}");
    let names: Vec<String> = etcdctl_members(&etcd, &others[0])
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(!names.contains(&name), "{names:?}");
    // etcd stops a removed member by itself.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !etcd.members[i].exited() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone = etcd.forget(i);
    let out = run(&etcd, &others, &["members", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(json(&out)["members"].as_array().unwrap().len(), 2);

    // Added back as a learner: a dry run first, then for real.
    let peer = gone.peer_url.clone();
    let add = ["member", "add", &name, "--peer-urls", &peer];
    let out = run(&etcd, &others, &[&add[..], &["--dry-run"]].concat());
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("--initial-cluster-state=existing"));
    assert_eq!(etcdctl_members(&etcd, &others[0]).len(), 2);
    let out = run(&etcd, &others, &[&add[..], &["-o", "json"]].concat());
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["plan"]["change"]["learner"], true, "{doc}");
    let join = &doc["join"];
    assert_eq!(join["initialClusterState"], "existing");
    assert_eq!(join["initialAdvertisePeerUrls"], peer.as_str());
    let initial = join["initialCluster"].as_str().unwrap().to_string();
    assert_eq!(initial.split(',').count(), 3, "{initial}");
    assert!(initial.contains(&format!("{name}={peer}")), "{initial}");
    assert!(
        doc["next"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("member promote")),
        "{doc}"
    );
    assert_eq!(
        etcdctl_members(&etcd, &others[0])
            .iter()
            .filter(|(_, l)| *l)
            .count(),
        1
    );

    // Not started yet: promotion is refused and says why.
    let out = run(
        &etcd,
        &others,
        &["member", "promote", &peer_id(&etcd, &others[0], &peer)],
    );
    assert_eq!(code(&out), 1, "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("not running"),
        "{}",
        text(&out.stdout)
    );

    // The member started with exactly the printed flags, on an empty data dir.
    let data = etcd.scratch().join(format!("{name}-again"));
    let client = format!("https://127.0.0.1:{}", free_port());
    let j = etcd.join(TestMember::planned(&name, &client, &peer, &data), &initial);
    let out = run(&etcd, &others, &["members", "-o", "json"]);
    let doc = json(&out);
    let learner = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{doc}"))
        .clone();
    assert_eq!(learner["learner"], true, "{doc}");

    // Promoted once caught up.
    let out = run(
        &etcd,
        &others,
        &["member", "promote", &name, "--wait", "30", "-o", "json"],
    );
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["outcome"], "done");
    assert_eq!(doc["plan"]["after"]["voting"], 3, "{doc}");
    let mut all_now = others.clone();
    all_now.push(etcd.members[j].client_url.clone());
    let out = run(&etcd, &all_now, &["members", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
    let doc = json(&out);
    assert_eq!(doc["tolerance"]["voting"], 3, "{doc}");
    assert_eq!(doc["tolerance"]["healthy"], 3, "{doc}");
    assert!(etcdctl_members(&etcd, &others[0]).iter().all(|(_, l)| !l));

    let (ok, failed) = writer.finish();
    eprintln!(
        "etcd {}: {ok} writes, {failed} failed, {:.1}s",
        release.name,
        started.elapsed().as_secs_f64()
    );
    assert!(ok > 10, "the writer wrote {ok} keys");
    assert_eq!(failed, 0, "the cluster was not healthy throughout");
}

/// The id (hex) of the member with `peer` as etcdctl lists it.
fn peer_id(etcd: &EtcdCluster, endpoint: &str, peer: &str) -> String {
    let out = etcd
        .etcdctl_on(endpoint)
        .args(["member", "list", "-w", "json", "--hex"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["peerURLs"][0] == peer)
        // etcdctl 3.5 honours --hex; 3.4 prints the id as a number.
        .map(|m| match m["ID"].as_u64() {
            Some(id) => format!("{id:x}"),
            None => m["ID"].as_str().unwrap().to_string(),
        })
        .unwrap_or_else(|| panic!("no member with {peer}: {v}"))
}

#[test]
fn real_etcd_34_cli_member_remove_add_learner_promote() {
    remove_add_promote(&etcd34());
}

#[test]
fn real_etcd_35_cli_member_remove_add_learner_promote() {
    remove_add_promote(&etcd35());
}

/// Fills the keyspace, deletes it and compacts, so that defragmentation frees most of
/// each member's file.
async fn garbage(etcd: &EtcdCluster) {
    let rev = etcd.put_known_data(1500, 4000).await;
    let mut c = etcd.client_for(&etcd.endpoints()).await;
    c.delete(
        "/registry/kastellan/it/",
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await
    .unwrap();
    c.compact(
        rev + 1,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    )
    .await
    .unwrap();
}

/// Polls every member's DB size every 10 ms until stopped; returns, per member index,
/// when its size first fell under half of what it was at the start.
fn watch_shrink(
    etcd: &EtcdCluster,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Option<Instant>>> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let clients: Vec<etcd_client::Client> = etcd
        .endpoints()
        .iter()
        .map(|e| rt.block_on(etcd.client_for(std::slice::from_ref(e))))
        .collect();
    std::thread::spawn(move || {
        rt.block_on(async {
            let mut first: Vec<Option<i64>> = vec![None; clients.len()];
            let mut shrunk: Vec<Option<Instant>> = vec![None; clients.len()];
            while !stop.load(Ordering::Relaxed) {
                for (k, c) in clients.iter().enumerate() {
                    let mut c = c.clone();
                    if let Ok(s) = c.status().await {
                        let size = s.db_size();
                        let base = *first[k].get_or_insert(size);
                        if shrunk[k].is_none() && size < base / 2 {
                            shrunk[k] = Some(Instant::now());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            shrunk
        })
    })
}

/// Defragmentation goes followers first and the leader last (in the output and as each
/// member's DB size shrinks); alarms are listed and cleared; with one member killed, an
/// unsafe removal is refused and changes nothing, and defragmentation does not start.
fn defrag_alarms_unsafe_removal(release: &EtcdRelease) {
    let started = Instant::now();
    let mut etcd = EtcdCluster::start(release, 3);
    let all = etcd.endpoints();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(garbage(&etcd));
    let leader = etcd.leader_index();
    let leader_name = etcd.members[leader].name.clone();

    // The dry run: the order, nothing changed. A defragmentation rewrites each
    // member's database into a new file renamed over the old one, so every member's
    // `member/snap/db` keeps its inode through a dry run and gets a new one after
    // the real run; no directory appears in a data dir (issue 18).
    let db_files = || -> Vec<(u64, PathBuf)> {
        etcd.members
            .iter()
            .map(|m| {
                let db = m.data_dir.join("member/snap/db");
                (std::fs::metadata(&db).unwrap().ino(), db)
            })
            .collect()
    };
    let dbs_before = db_files();
    let dirs_before: Vec<_> = etcd
        .members
        .iter()
        .map(|m| crate::tree::directories(&m.data_dir))
        .collect();
    let out = run(&etcd, &all, &["defrag", "--dry-run", "-o", "json"]);
    assert_eq!(
        db_files(),
        dbs_before,
        "the dry run rewrote a member's database"
    );
    for (m, before) in etcd.members.iter().zip(&dirs_before) {
        assert_eq!(
            &crate::tree::directories(&m.data_dir),
            before,
            "the dry run changed {}'s data dir",
            m.name
        );
    }
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["outcome"], "dryRun");
    let planned: Vec<&str> = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(planned.last(), Some(&leader_name.as_str()), "{doc}");
    let sizes_before: Vec<i64> = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["dbSizeBefore"].as_i64().unwrap())
        .collect();
    assert!(
        sizes_before.iter().all(|s| *s > 4_000_000),
        "{sizes_before:?}"
    );

    // For real, watched from outside.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_shrink(&etcd, stop.clone());
    std::thread::sleep(Duration::from_millis(200));
    let out = run(&etcd, &all, &["defrag", "-o", "json"]);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let shrunk = watcher.join().unwrap();
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    for ((was, db), (now, _)) in dbs_before.iter().zip(db_files()) {
        assert_ne!(*was, now, "the defragmentation rewrote {}", db.display());
    }
    let doc = json(&out);
    assert_eq!(doc["outcome"], "done", "{doc}");
    let done = doc["members"].as_array().unwrap();
    let roles: Vec<&str> = done.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["follower", "follower", "leader"], "{doc}");
    assert_eq!(done[2]["name"], leader_name.as_str());
    for m in done {
        let (before, after) = (
            m["dbSizeBefore"].as_i64().unwrap(),
            m["dbSizeAfter"].as_i64().unwrap(),
        );
        assert!(after * 2 < before, "{m}");
    }
    let stderr = text(&out.stderr);
    let order: Vec<usize> = done
        .iter()
        .map(|m| {
            stderr
                .find(&format!("defragmenting {}", m["name"].as_str().unwrap()))
                .unwrap()
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{stderr}");
    // Each member's own DB size: every one shrank, the leader's last.
    let when: Vec<Instant> = shrunk
        .iter()
        .enumerate()
        .map(|(k, t)| t.unwrap_or_else(|| panic!("member {k}'s DB never shrank")))
        .collect();
    for (k, t) in when.iter().enumerate() {
        if k != leader {
            assert!(*t <= when[leader], "member {k} shrank after the leader");
        }
    }

    // An alarm raised on a follower: listed (exit 1), a dry run keeps it, disarm clears it.
    let follower = (leader + 1) % 3;
    rt.block_on(async {
        let mut c = etcd.client_for(&all).await;
        let members = c.member_list().await.unwrap();
        let fid = members
            .members()
            .iter()
            .find(|m| m.name() == etcd.members[follower].name)
            .unwrap()
            .id();
        let mut o = etcd_client::AlarmOptions::new();
        o.with_member(fid);
        c.alarm(
            etcd_client::AlarmAction::Activate,
            etcd_client::AlarmType::Nospace,
            Some(o),
        )
        .await
        .unwrap();
    });
    let out = run(&etcd, &all, &["alarm", "list", "-o", "json"]);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["alarms"][0]["alarm"], "NOSPACE");
    assert_eq!(
        doc["alarms"][0]["member"],
        etcd.members[follower].name.as_str()
    );
    let out = run(&etcd, &all, &["members"]);
    assert_eq!(code(&out), 1);
    assert!(text(&out.stdout).contains("alarm NOSPACE raised by"));
    let out = run(&etcd, &all, &["alarm", "disarm", "--dry-run"]);
    assert_eq!(code(&out), 0);
    assert!(text(&out.stdout).contains("would disarm NOSPACE"));
    assert_eq!(code(&run(&etcd, &all, &["alarm", "list"])), 1);
    let out = run(&etcd, &all, &["alarm", "disarm"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let out = run(&etcd, &all, &["alarm", "list"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("no alarm active"));

    // One member down for real (killed by its pid): the other follower's removal would
    // lose quorum; refused, also as a dry run and with --force not given, nothing changes.
    let down = follower;
    let victim = (0..3).find(|k| *k != leader && *k != down).unwrap();
    let victim_name = etcd.members[victim].name.clone();
    etcd.kill(down);
    let alive = etcd.members[leader].client_url.clone();
    let before = etcdctl_members(&etcd, &alive);
    for extra in [&[][..], &["--dry-run"][..]] {
        let out = run(
            &etcd,
            &all,
            &[&["member", "remove", victim_name.as_str()][..], extra].concat(),
        );
        let human = text(&out.stdout);
        assert_eq!(code(&out), 1, "{human}{}", text(&out.stderr));
        assert!(human.contains("quorum would be lost"), "{human}");
        assert!(
            human.contains("now:   3 voting, 2 healthy, quorum 2, 0 failures"),
            "{human}"
        );
        assert!(human.contains("quorum LOST"), "{human}");
        assert_eq!(etcdctl_members(&etcd, &alive), before);
    }
    let out = run(&etcd, &all, &["members", "-o", "json"]);
    assert_eq!(code(&out), 1);
    let doc = json(&out);
    let unhealthy: Vec<&str> = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["health"] == "unhealthy")
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(unhealthy, [etcd.members[down].name.as_str()], "{doc}");

    // Defragmentation waits for health, then stops without touching anyone.
    let out = run(
        &etcd,
        &all,
        &["defrag", "--wait-healthy", "1", "-o", "json"],
    );
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["outcome"], "stopped");
    assert!(doc["members"].as_array().unwrap().is_empty());
    eprintln!(
        "etcd {}: defrag, alarms, unsafe removal in {:.1}s",
        release.name,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn real_etcd_34_cli_defrag_order_alarms_and_unsafe_removal() {
    defrag_alarms_unsafe_removal(&etcd34());
}

#[test]
fn real_etcd_35_cli_defrag_order_alarms_and_unsafe_removal() {
    defrag_alarms_unsafe_removal(&etcd35());
}

/// `etcd endpoint status` of one member: (raft term, leader id, its own id) as etcd
/// reports them.
fn term_leader_self(etcd: &EtcdCluster, endpoint: &str) -> (u64, u64, u64) {
    let out = etcd
        .etcdctl_on(endpoint)
        .args(["endpoint", "status", "-w", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v[0]["Status"];
    (
        s["raftTerm"]
            .as_u64()
            .unwrap_or_else(|| panic!("raftTerm in {v}")),
        s["leader"].as_u64().unwrap(),
        s["header"]["member_id"].as_u64().unwrap(),
    )
}

/// Removing the leader hands leadership over first (MoveLeader, asked of the leader):
/// the dry run says so, the member the request goes through leads once the command
/// returns, and etcd's raft term moved on by exactly one (the handover; no election
/// after the removal).
#[test]
fn real_etcd_35_cli_member_remove_of_the_leader_hands_leadership_over_first() {
    let etcd = EtcdCluster::start(&etcd35(), 3);
    let healthy_at = Instant::now();
    let all = etcd.endpoints();
    let leader = etcd.leader_index();
    let name = etcd.members[leader].name.clone();
    let others: Vec<String> = (0..3)
        .filter(|j| *j != leader)
        .map(|j| etcd.members[j].client_url.clone())
        .collect();
    std::thread::sleep(Duration::from_secs(8).saturating_sub(healthy_at.elapsed()));

    let out = run(
        &etcd,
        &all,
        &["member", "remove", &name, "--force", "--dry-run"],
    );
    let human = text(&out.stdout);
    assert_eq!(code(&out), 0, "{human}{}", text(&out.stderr));
    assert!(
        human.contains("it leads: leadership moves to ") && human.contains("first"),
        "{human}"
    );
    lines_fit(&human, 80);
    assert_eq!(etcd.leader_index(), leader, "a dry run moves nothing");

    let (term_before, _, _) = term_leader_self(&etcd, &others[0]);
    let out = run(
        &etcd,
        &all,
        &["member", "remove", &name, "--force", "-o", "json"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["plan"]["movesLeader"], true, "{doc}");
    let to = doc["leaderMovedTo"].as_str().unwrap().to_string();
    assert_eq!(doc["plan"]["through"]["name"], to.as_str(), "{doc}");
    assert_eq!(doc["members"].as_array().unwrap().len(), 2, "{doc}");
    let to_url = etcd
        .members
        .iter()
        .find(|m| m.name == to)
        .unwrap()
        .client_url
        .clone();
    let (term_after, leader_after, to_id) = term_leader_self(&etcd, &to_url);
    assert_eq!(leader_after, to_id, "{to} leads");
    assert_eq!(term_after, term_before + 1, "one handover, no election");
}

#[test]
fn cli_etcd_member_help_names_the_guard_rails() {
    let out = kastellan()
        .args(["etcd", "member", "remove", "--help"])
        .output()
        .unwrap();
    let help = text(&out.stdout);
    for word in ["--force", "--dry-run", "quorum", "even"] {
        assert!(help.contains(word), "{word}:\n{help}");
    }
}

/// A minimal API server on 127.0.0.1 (plain HTTP, one request per connection) that
/// lists `nodes` for the control-plane label and none for the legacy one; it serves
/// until the test ends.
fn fake_apiserver(nodes: Value) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let request = String::from_utf8_lossy(&buf).to_string();
            let items = if request.contains("control-plane") {
                nodes.clone()
            } else {
                Value::Array(vec![])
            };
            let body = serde_json::json!({
                "kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": items
            })
            .to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn real_etcd_35_cli_members_match_control_plane_nodes() {
    let etcd = EtcdCluster::start(&etcd35(), 3);
    let node = |name: &str, ip: &str| {
        serde_json::json!({
            "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}
        })
    };
    // m0 and m1 have Nodes of their names; no Node for m2; cp9 has no member.
    let port = fake_apiserver(Value::Array(vec![
        node("m0", "10.1.0.1"),
        node("m1", "10.1.0.2"),
        node("cp9", "10.1.0.9"),
    ]));
    let kubeconfig = etcd.scratch().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    let p = |f: &str| etcd.pki.path(f).display().to_string();
    let out = kastellan()
        .args(["etcd", "members", "-o", "json", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg(format!("--endpoints={}", etcd.endpoints().join(",")))
        .arg(format!("--cacert={}", p("ca.crt")))
        .arg(format!("--cert={}", p("healthcheck-client.crt")))
        .arg(format!("--key={}", p("healthcheck-client.key")))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["controlPlanes"]["checked"], true, "{doc}");
    assert_eq!(
        doc["controlPlanes"]["unmatched"],
        serde_json::json!(["cp9"])
    );
    for m in doc["members"].as_array().unwrap() {
        let expected = match m["name"].as_str().unwrap() {
            "m2" => Value::Null,
            other => Value::String(other.to_string()),
        };
        assert_eq!(m["node"], expected, "{doc}");
    }
}

//! Real etcd clusters on 127.0.0.1 with mutual TLS.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use kastellan_etcd::snapshot::{self, SaveOptions, Saved, part_path};
use kastellan_etcd::testing::{EtcdCluster, EtcdRelease, etcd34, etcd35};
use kastellan_etcd::{
    AlarmKind, Cluster, Error, Role, RpcCause, Target, Timeouts, TlsFiles, discovery,
};

fn timeouts() -> Timeouts {
    Timeouts {
        connect: std::time::Duration::from_secs(3),
        request: std::time::Duration::from_secs(5),
        stream_idle: std::time::Duration::from_secs(10),
    }
}

fn cluster_of(c: &EtcdCluster) -> Cluster {
    Cluster::new(
        Target::new(c.endpoints(), Some(c.pki.client())).unwrap(),
        timeouts(),
    )
    .unwrap()
}

async fn save_from(
    cluster: &Cluster,
    endpoint: &str,
    dest: &Path,
    force: bool,
) -> Result<Saved, Error> {
    let stream = cluster.snapshot_client(endpoint).await?.snapshot().await?;
    snapshot::save(stream, dest, SaveOptions { force }, &mut |_| {}).await
}

fn assert_nothing_left(dest: &Path) {
    assert!(!dest.exists(), "{} must not exist", dest.display());
    assert!(
        !part_path(dest).exists(),
        "{} must have been removed",
        part_path(dest).display()
    );
}

/// Our snapshot and etcdctl's of the same member agree on revision and keys (and on
/// etcd's hash, as nothing is written between the two).
async fn save_matches_etcdctl(release: &EtcdRelease, members: usize) {
    let etcd = EtcdCluster::start(release, members);
    let rev = etcd.put_known_data(3000, 200).await;
    let cluster = cluster_of(&etcd);

    let survey = cluster.survey(false).await;
    assert_eq!(survey.members.len(), members, "{survey:?}");
    assert!(survey.members.iter().all(|m| m.name.starts_with('m')));
    let q = survey.quorum();
    assert_eq!((q.voting, q.healthy), (members, members), "{q:?}");
    assert!(q.has_quorum());
    for s in survey.statuses() {
        assert!(s.version.starts_with(release.name), "{s:?}");
        assert!(
            s.db_size > 0 && s.db_size_in_use > 0 && s.raft_term > 0,
            "{s:?}"
        );
        assert!(s.raft_applied_index > 0 && s.raft_index > 0, "{s:?}");
        // A fresh store starts at revision 1.
        assert!(s.revision >= 1, "{s:?}");
    }
    assert!(survey.alarms.is_empty());

    let (choice, _) = cluster.choose_for_snapshot(false).await.unwrap();
    if members > 1 {
        assert_eq!(choice.role, Role::Follower, "{}", choice.describe());
        assert_ne!(choice.endpoint, etcd.endpoints()[etcd.leader_index()]);
        assert_eq!(choice.healthy, members);
    } else {
        assert_eq!(choice.role, Role::Leader);
    }

    let ours = etcd.scratch().join("ours.db");
    let theirs = etcd.scratch().join("theirs.db");
    let mut seen = Vec::new();
    let stream = cluster
        .snapshot_client(&choice.endpoint)
        .await
        .unwrap()
        .snapshot()
        .await
        .unwrap();
    let saved = snapshot::save(stream, &ours, SaveOptions::default(), &mut |p| seen.push(p))
        .await
        .unwrap();
    etcd.etcdctl_snapshot(&choice.endpoint, &theirs);

    let a = release.snapshot_status(&ours);
    let b = release.snapshot_status(&theirs);
    eprintln!(
        "etcd {} x{members}: ours {a:?}, etcdctl {b:?}",
        release.name
    );
    assert_eq!(a.revision, rev);
    assert_eq!(a.revision, b.revision);
    assert_eq!(a.total_key, b.total_key);
    assert_eq!(a.hash, b.hash, "same revision, same content");
    assert_eq!(saved.status.revision, a.revision);
    assert_eq!(saved.status.total_key, a.total_key);
    assert_eq!(saved.status.hash, a.hash);
    assert_eq!(saved.size, std::fs::metadata(&ours).unwrap().len());
    assert_eq!(
        std::fs::metadata(&ours).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!part_path(&ours).exists());
    let last = seen.last().unwrap();
    assert_eq!(Some(last.received), last.total, "{last:?}");
    assert_eq!(last.received, saved.size);

    // The same file again: refused without force, replaced with it.
    let err = save_from(&cluster, &choice.endpoint, &ours, false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Exists { .. }), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert!(!part_path(&ours).exists());
    save_from(&cluster, &choice.endpoint, &ours, true)
        .await
        .unwrap();
}

#[tokio::test]
async fn real_etcd_34_one_member_save_matches_etcdctl() {
    save_matches_etcdctl(&etcd34(), 1).await;
}

#[tokio::test]
async fn real_etcd_35_one_member_save_matches_etcdctl() {
    save_matches_etcdctl(&etcd35(), 1).await;
}

#[tokio::test]
async fn real_etcd_34_three_members_follower_save_matches_etcdctl() {
    save_matches_etcdctl(&etcd34(), 3).await;
}

#[tokio::test]
async fn real_etcd_35_three_members_follower_save_matches_etcdctl() {
    save_matches_etcdctl(&etcd35(), 3).await;
}

/// With one member down the others keep quorum and a remaining follower is chosen;
/// with two down there is no quorum and no member is healthy.
#[tokio::test]
async fn real_etcd_35_three_members_one_then_two_down() {
    let mut etcd = EtcdCluster::start(&etcd35(), 3);
    etcd.put_known_data(100, 100).await;
    let leader = etcd.leader_index();
    let follower = (leader + 1) % 3;
    etcd.kill(follower);
    let cluster = cluster_of(&etcd);
    let survey = cluster.survey(false).await;
    let q = survey.quorum();
    assert_eq!((q.voting, q.healthy, q.needed), (3, 2, 2), "{survey:?}");
    assert!(q.has_quorum());
    let down = &survey.endpoints[follower];
    assert!(down.status.is_none());
    assert!(
        down.error.as_deref().unwrap().contains("cannot connect"),
        "{down:?}"
    );
    let (choice, _) = cluster.choose_for_snapshot(false).await.unwrap();
    assert_eq!(choice.role, Role::Follower, "{}", choice.describe());
    assert_eq!(choice.endpoint, etcd.endpoints()[3 - leader - follower]);
    let dest = etcd.scratch().join("two-left.db");
    save_from(&cluster, &choice.endpoint, &dest, false)
        .await
        .unwrap();

    etcd.kill(3 - leader - follower);
    // The last member loses its leader after an election timeout.
    let mut last = None;
    for _ in 0..50 {
        match cluster.choose_for_snapshot(false).await {
            Err(e @ Error::NoHealthyMember { .. }) => {
                last = Some(e);
                break;
            }
            other => last = other.err(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let err = last.expect("no member should be healthy");
    let msg = err.to_string();
    assert!(msg.contains("no healthy etcd member"), "{msg}");
    assert!(msg.contains("cannot connect"), "{msg}");
}

/// Kills the member by its pid as soon as the first chunk has arrived.
async fn killed_mid_stream(release: &EtcdRelease) {
    let mut etcd = EtcdCluster::start(release, 1);
    etcd.put_known_data(600, 100_000).await; // about 60 MB
    let cluster = cluster_of(&etcd);
    let endpoint = etcd.endpoints()[0].clone();
    let pid = etcd.members[0].pid().unwrap();
    let dest = etcd.scratch().join("killed.db");
    let stream = cluster
        .snapshot_client(&endpoint)
        .await
        .unwrap()
        .snapshot()
        .await
        .unwrap();
    let mut killed = false;
    let err = snapshot::save(stream, &dest, SaveOptions::default(), &mut |_| {
        if !killed {
            killed = true;
            let ok = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "kill {pid}");
        }
    })
    .await
    .unwrap_err();
    etcd.kill(0); // reap it
    eprintln!("killed mid-stream: {err}");
    let msg = err.to_string();
    assert!(msg.contains(&endpoint), "{msg}");
    assert!(
        matches!(
            err,
            Error::Rpc {
                cause: RpcCause::ConnectionLost | RpcCause::Unreachable | RpcCause::Other,
                ..
            } | Error::SnapshotTruncated { .. }
        ),
        "{err:?}"
    );
    assert_nothing_left(&dest);
}

#[tokio::test]
async fn real_etcd_35_member_killed_mid_stream() {
    killed_mid_stream(&etcd35()).await;
}

#[tokio::test]
async fn real_etcd_34_member_killed_mid_stream() {
    killed_mid_stream(&etcd34()).await;
}

/// A small tmpfs, unmounted when the test ends.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs on {} (needs root)", at.display());
        SmallDisk(at)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn real_etcd_35_disk_full() {
    let etcd = EtcdCluster::start(&etcd35(), 1);
    etcd.put_known_data(80, 100_000).await; // about 8 MB
    let disk = SmallDisk::mount(etcd.scratch().join("small"), "2m");
    let cluster = cluster_of(&etcd);
    let dest = disk.0.join("snapshot.db");
    let err = save_from(&cluster, &etcd.endpoints()[0], &dest, false)
        .await
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("disk full: {msg}");
    assert!(matches!(err, Error::Write { .. }), "{err:?}");
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(msg.contains("snapshot.db.part"), "{msg}");
    assert_nothing_left(&dest);
    assert_eq!(std::fs::read_dir(&disk.0).unwrap().count(), 0);
}

#[tokio::test]
async fn real_etcd_34_wrong_endpoint_bad_certificates_and_etcd_down() {
    let mut etcd = EtcdCluster::start(&etcd34(), 1);
    let good = etcd.endpoints()[0].clone();
    let pki = etcd.pki.clone();
    let status_err = |tls: TlsFiles, endpoint: String| async move {
        let cluster = Cluster::new(
            Target::new(vec![endpoint.clone()], Some(tls)).unwrap(),
            timeouts(),
        )
        .unwrap();
        let mut c = cluster.connector().connect(&endpoint).await.unwrap();
        c.status().await.unwrap_err()
    };

    // Nothing listens there.
    let nowhere = format!("https://127.0.0.1:{}", kastellan_etcd::testing::free_port());
    let err = status_err(pki.client(), nowhere.clone()).await;
    eprintln!("wrong endpoint: {err}");
    assert!(
        matches!(
            err,
            Error::Rpc {
                cause: RpcCause::Unreachable,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&nowhere));

    // A CA that did not sign etcd's certificate.
    let mut tls = pki.client();
    tls.ca = pki.path("other-ca.crt");
    let err = status_err(tls, good.clone()).await;
    eprintln!("wrong CA: {err}");
    assert!(
        matches!(
            err,
            Error::Rpc {
                cause: RpcCause::ServerCertificate,
                ..
            }
        ),
        "{err:?}"
    );

    // A client certificate etcd's CA did not sign.
    let tls = TlsFiles {
        ca: pki.path("ca.crt"),
        cert: pki.path("stranger.crt"),
        key: pki.path("stranger.key"),
    };
    let err = status_err(tls, good.clone()).await;
    eprintln!("foreign client certificate: {err}");
    assert!(
        matches!(
            err,
            Error::Rpc {
                cause: RpcCause::ClientCertificate,
                ..
            }
        ),
        "{err:?}"
    );

    // A missing key file, a certificate file that holds no certificate.
    let mut tls = pki.client();
    tls.key = pki.path("missing.key");
    let err = Cluster::new(
        Target::new(vec![good.clone()], Some(tls)).unwrap(),
        timeouts(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::ReadTlsFile { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.key"), "{err}");
    let mut tls = pki.client();
    tls.cert = pki.path("healthcheck-client.key");
    let err = Cluster::new(
        Target::new(vec![good.clone()], Some(tls)).unwrap(),
        timeouts(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::BadTlsFile { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not a usable client certificate"),
        "{err}"
    );

    // etcd down.
    etcd.kill(0);
    let err = status_err(pki.client(), good.clone()).await;
    assert!(
        matches!(
            err,
            Error::Rpc {
                cause: RpcCause::Unreachable,
                ..
            }
        ),
        "{err:?}"
    );
    let cluster = Cluster::new(
        Target::new(vec![good.clone()], Some(pki.client())).unwrap(),
        timeouts(),
    )
    .unwrap();
    let err = cluster.choose_for_snapshot(false).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no healthy etcd member") && msg.contains(&good),
        "{msg}"
    );
}

/// A member over its space quota raises NOSPACE; it is reported, and a snapshot can
/// still be taken from it (that is when one wants a backup most).
#[tokio::test]
async fn real_etcd_34_nospace_alarm() {
    let etcd = EtcdCluster::start_with(&etcd34(), 1, &["--quota-backend-bytes=4194304"]);
    let cluster = cluster_of(&etcd);
    let write = tokio::spawn({
        let etcd_endpoints = etcd.endpoints();
        let pki = etcd.pki.clone();
        async move {
            let opts = etcd_client::ConnectOptions::new().with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(
                        std::fs::read(pki.path("ca.crt")).unwrap(),
                    ))
                    .identity(etcd_client::Identity::from_pem(
                        std::fs::read(pki.path("healthcheck-client.crt")).unwrap(),
                        std::fs::read(pki.path("healthcheck-client.key")).unwrap(),
                    )),
            );
            let mut c = etcd_client::Client::connect(etcd_endpoints, Some(opts))
                .await
                .unwrap();
            for i in 0..200 {
                if let Err(e) = c.put(format!("/fill/{i}"), vec![b'x'; 100_000], None).await {
                    return e.to_string();
                }
            }
            "quota never hit".to_string()
        }
    });
    let msg = write.await.unwrap();
    assert!(msg.contains("database space exceeded"), "{msg}");
    let survey = cluster.survey(false).await;
    assert_eq!(survey.alarms.len(), 1, "{survey:?}");
    assert_eq!(survey.alarms[0].kind, AlarmKind::Nospace);
    let (choice, _) = cluster.choose_for_snapshot(false).await.unwrap();
    let dest = etcd.scratch().join("full.db");
    let saved = save_from(&cluster, &choice.endpoint, &dest, false)
        .await
        .unwrap();
    assert!(saved.status.total_key > 0);
}

/// Discovery from a kubeadm-like /etc/kubernetes kept elsewhere: the healthcheck-client
/// certificate next to etcd's CA first, the apiserver's client certificate when it is
/// missing.
#[tokio::test]
async fn real_etcd_35_discovery_from_manifests() {
    let etcd = EtcdCluster::start(&etcd35(), 1);
    let endpoint = etcd.endpoints()[0].clone();
    let etc = etcd.scratch().join("etc-kubernetes");
    let pki = etc.join("pki/etcd");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::create_dir_all(etc.join("manifests")).unwrap();
    for f in ["ca.crt", "healthcheck-client.crt", "healthcheck-client.key"] {
        std::fs::copy(etcd.pki.path(f), pki.join(f)).unwrap();
    }
    std::fs::write(
        etc.join("manifests/etcd.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\nspec:\n  containers:\n  - name: etcd\n    command:\n    - etcd\n    - --advertise-client-urls={endpoint}\n    - --listen-client-urls={endpoint}\n    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n"
        ),
    )
    .unwrap();
    let at = discovery::Discovery::new(etc.join("manifests"));
    let found = discovery::discover(discovery::Flags::default(), &at).unwrap();
    assert_eq!(found.target.endpoints, vec![endpoint.clone()]);
    assert_eq!(
        found.target.tls.as_ref().unwrap().cert,
        pki.join("healthcheck-client.crt")
    );
    let cluster = Cluster::new(found.target.clone(), timeouts()).unwrap();
    let survey = cluster.survey(found.endpoints_discovered()).await;
    assert_eq!(survey.quorum().healthy, 1, "{survey:?}");

    // Without healthcheck-client: the apiserver's certificate.
    std::fs::rename(
        pki.join("healthcheck-client.crt"),
        etc.join("pki/apiserver-etcd-client.crt"),
    )
    .unwrap();
    std::fs::rename(
        pki.join("healthcheck-client.key"),
        etc.join("pki/apiserver-etcd-client.key"),
    )
    .unwrap();
    std::fs::write(
        etc.join("manifests/kube-apiserver.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt\n    - --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt\n    - --etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key\n    - --etcd-servers={endpoint}\n"
        ),
    )
    .unwrap();
    let found = discovery::discover(discovery::Flags::default(), &at).unwrap();
    assert!(matches!(
        found.tls_from,
        discovery::Source::ApiserverManifest(_)
    ));
    let cluster = Cluster::new(found.target.clone(), timeouts()).unwrap();
    let dest = etcd.scratch().join("discovered.db");
    let (choice, _) = cluster.choose_for_snapshot(true).await.unwrap();
    save_from(&cluster, &choice.endpoint, &dest, false)
        .await
        .unwrap();
}

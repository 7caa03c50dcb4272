//! Talking to etcd members: one client per endpoint, so that every per-member answer
//! (status, snapshot) really comes from the member named.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{AlarmAction, AlarmType, Certificate, ConnectOptions, Identity, TlsOptions};
use serde::Serialize;

use crate::error::{Error, Result, rpc_error};
use crate::membership::{Change, Probe, View};
use crate::select::{self, Candidate, Choice};
use crate::target::{Target, Timeouts, TlsPem};

/// One etcd member as the member list reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The member id (etcdctl prints it as hex, and so does its JSON).
    #[serde(serialize_with = "crate::membership::hex")]
    pub id: u64,
    /// The member's name; empty while it has not started.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs; empty while it has not started.
    pub client_urls: Vec<String>,
    /// Whether it is a raft learner (non-voting).
    pub is_learner: bool,
}

impl Member {
    /// The id as etcdctl prints it (lower-case hex).
    pub fn id_hex(&self) -> String {
        format!("{:x}", self.id)
    }
}

/// One member's `Maintenance.Status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// The endpoint that answered.
    pub endpoint: String,
    /// The id of the member that answered (hex in JSON).
    #[serde(serialize_with = "crate::membership::hex")]
    pub member_id: u64,
    /// etcd's server version.
    pub version: String,
    /// Size of the backend database file in bytes (physically allocated).
    pub db_size: i64,
    /// Bytes of the database actually in use (after compaction and before defrag).
    pub db_size_in_use: i64,
    /// The id of the leader this member knows (0: none; hex in JSON).
    #[serde(serialize_with = "crate::membership::hex")]
    pub leader: u64,
    /// The raft term.
    pub raft_term: u64,
    /// The raft index (last log entry).
    pub raft_index: u64,
    /// The last applied raft index.
    pub raft_applied_index: u64,
    /// The key-value store's revision (the response header's): the newest
    /// resourceVersion the Kubernetes API can have handed out.
    pub revision: i64,
    /// Errors the member reports about itself (e.g. alarms).
    pub errors: Vec<String>,
    /// Whether the member is a raft learner.
    pub is_learner: bool,
}

impl MemberStatus {
    /// Whether this member is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader != 0 && self.leader == self.member_id
    }
}

/// The kind of an active alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AlarmKind {
    /// The database hit its space quota; etcd accepts only reads and deletes.
    Nospace,
    /// A corruption check found members disagreeing.
    Corrupt,
}

impl std::fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlarmKind::Nospace => "NOSPACE",
            AlarmKind::Corrupt => "CORRUPT",
        })
    }
}

/// An active alarm on a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alarm {
    /// The member raising it (hex in JSON).
    #[serde(serialize_with = "crate::membership::hex")]
    pub member_id: u64,
    /// What it is.
    pub kind: AlarmKind,
}

/// Builds clients for the endpoints of one [`Target`], with its TLS material read and
/// checked once.
#[derive(Debug, Clone)]
pub struct Connector {
    tls: Option<Arc<TlsPem>>,
    timeouts: Timeouts,
}

impl Connector {
    /// Reads the target's certificate files (failing with the file's name when one is
    /// missing or not PEM).
    pub fn new(target: &Target, timeouts: Timeouts) -> Result<Connector> {
        let tls = target.tls.as_ref().map(|t| t.load()).transpose()?;
        Ok(Connector {
            tls: tls.map(Arc::new),
            timeouts,
        })
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    fn options(&self, request_timeout: Option<Duration>) -> ConnectOptions {
        let mut o = ConnectOptions::new()
            .with_connect_timeout(self.timeouts.connect)
            .with_keep_alive(Duration::from_secs(10), self.timeouts.request);
        if let Some(t) = request_timeout {
            o = o.with_timeout(t);
        }
        if let Some(pem) = &self.tls {
            o = o.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(&pem.ca))
                    .identity(Identity::from_pem(&pem.cert, &pem.key)),
            );
        }
        o
    }

    /// A client for exactly one endpoint. Connecting is lazy: a wrong address or
    /// certificate shows at the first call, as an [`Error::Rpc`] naming the endpoint.
    pub async fn connect(&self, endpoint: &str) -> Result<MemberClient> {
        self.connect_with(endpoint, Some(self.timeouts.request))
            .await
    }

    async fn connect_with(
        &self,
        endpoint: &str,
        request_timeout: Option<Duration>,
    ) -> Result<MemberClient> {
        let setup = |message: String| Error::Setup {
            endpoint: endpoint.to_string(),
            message,
        };
        let fut = etcd_client::Client::connect([endpoint], Some(self.options(request_timeout)));
        let inner = match tokio::time::timeout(self.timeouts.connect, fut).await {
            Ok(Ok(c)) => c,
            Ok(Err(
                e @ (etcd_client::Error::InvalidArgs(_) | etcd_client::Error::InvalidUri(_)),
            )) => {
                return Err(setup(e.to_string()));
            }
            Ok(Err(e)) => return Err(rpc_error(endpoint, "connect", &e)),
            Err(_) => {
                return Err(Error::Rpc {
                    endpoint: endpoint.to_string(),
                    operation: "connect",
                    cause: crate::RpcCause::Timeout,
                    detail: format!("no connection within {:?}", self.timeouts.connect),
                });
            }
        };
        Ok(MemberClient {
            endpoint: endpoint.to_string(),
            inner,
            timeouts: self.timeouts,
            tls: self.tls.is_some(),
        })
    }
}

/// A client bound to one endpoint.
pub struct MemberClient {
    endpoint: String,
    inner: etcd_client::Client,
    timeouts: Timeouts,
    tls: bool,
}

impl std::fmt::Debug for MemberClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl MemberClient {
    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeouts.connect + self.timeouts.request, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let mut err = rpc_error(&self.endpoint, operation, &e);
                // Under TLS 1.3 the client finishes its handshake before the server has
                // checked the client certificate; etcd then just closes the connection
                // and the alert is not seen. A connection lost on a fresh client's first
                // unary call is, in practice, that.
                if let Error::Rpc { cause, detail, .. } = &mut err
                    && *cause == crate::RpcCause::ConnectionLost
                    && self.tls
                {
                    *cause = crate::RpcCause::ClientCertificate;
                    detail.insert_str(
                        0,
                        "the member closed the connection right after the TLS handshake: ",
                    );
                }
                Err(err)
            }
            Err(_) => Err(Error::Rpc {
                endpoint: self.endpoint.clone(),
                operation,
                cause: crate::RpcCause::Timeout,
                detail: format!(
                    "no answer within {:?}",
                    self.timeouts.connect + self.timeouts.request
                ),
            }),
        }
    }

    /// The cluster's members, as this member knows them.
    pub async fn member_list(&mut self) -> Result<Vec<Member>> {
        let mut c = self.inner.clone();
        let resp = self.timed("member list", c.member_list()).await?;
        Ok(members_of(resp.members()))
    }

    /// A linearizable read through this member (of the key `health`, as `etcdctl
    /// endpoint health` does): it needs the member to reach a quorum. A permission
    /// error counts as an answer (the read went through raft).
    pub async fn health_read(&mut self) -> Result<()> {
        let mut c = self.inner.clone();
        match self.timed("linearizable read", c.get("health", None)).await {
            Ok(_) => Ok(()),
            Err(Error::Rpc { detail, .. }) if detail.contains("PermissionDenied") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Adds a member with `peer_urls` (a learner when `learner`); returns the new
    /// member and the member list etcd answered with.
    pub async fn member_add(
        &mut self,
        peer_urls: &[String],
        learner: bool,
    ) -> Result<(Member, Vec<Member>)> {
        let mut c = self.inner.clone();
        let options = if learner {
            etcd_client::MemberAddOptions::new().with_is_learner()
        } else {
            etcd_client::MemberAddOptions::new()
        };
        let resp = self
            .timed("member add", c.member_add(peer_urls, Some(options)))
            .await?;
        let added = resp.member().map(member_of).ok_or_else(|| Error::Rpc {
            endpoint: self.endpoint.clone(),
            operation: "member add",
            cause: crate::RpcCause::Other,
            detail: "etcd answered without the new member".to_string(),
        })?;
        Ok((added, members_of(resp.member_list())))
    }

    /// Removes the member `id`; returns the member list etcd answered with.
    pub async fn member_remove(&mut self, id: u64) -> Result<Vec<Member>> {
        let mut c = self.inner.clone();
        let resp = self.timed("member remove", c.member_remove(id)).await?;
        Ok(members_of(resp.members()))
    }

    /// Promotes the learner `id`; returns the member list etcd answered with.
    pub async fn member_promote(&mut self, id: u64) -> Result<Vec<Member>> {
        let mut c = self.inner.clone();
        let resp = self.timed("member promote", c.member_promote(id)).await?;
        Ok(members_of(resp.members()))
    }

    /// Clears the alarm `kind` raised by `member_id`; returns the alarms still active.
    pub async fn alarm_disarm(&mut self, member_id: u64, kind: AlarmKind) -> Result<Vec<Alarm>> {
        let mut c = self.inner.clone();
        let mut options = etcd_client::AlarmOptions::new();
        options.with_member(member_id);
        let alarm = match kind {
            AlarmKind::Nospace => AlarmType::Nospace,
            AlarmKind::Corrupt => AlarmType::Corrupt,
        };
        self.timed(
            "alarm disarm",
            c.alarm(AlarmAction::Deactivate, alarm, Some(options)),
        )
        .await?;
        self.alarms().await
    }

    /// One page of the keys and values in `[from, end)`, at most `limit` of them
    /// (serializable read: this member's own copy, no quorum round trip); the `bool`
    /// says whether more follow (the next page starts after the last key).
    pub async fn range_page(
        &mut self,
        from: &[u8],
        end: &[u8],
        limit: i64,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, bool)> {
        let mut c = self.inner.clone();
        let options = etcd_client::GetOptions::new()
            .with_range(end.to_vec())
            .with_limit(limit)
            .with_serializable();
        let resp = self
            .timed("range", c.get(from.to_vec(), Some(options)))
            .await?;
        let kvs = resp
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
            .collect();
        Ok((kvs, resp.more()))
    }

    /// How many keys this member holds now (a serializable count of the whole keyspace,
    /// `etcdctl get "" --prefix --count-only`), and the revision it answered at.
    pub async fn count_keys(&mut self) -> Result<(u64, i64)> {
        let mut c = self.inner.clone();
        let options = etcd_client::GetOptions::new()
            .with_all_keys()
            .with_count_only()
            .with_serializable();
        let resp = self.timed("range", c.get(vec![0u8], Some(options))).await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        Ok((u64::try_from(resp.count()).unwrap_or(0), revision))
    }

    /// One key as this member holds it now (serializable read), with its revisions;
    /// `None` when it does not exist.
    pub async fn get_key(
        &mut self,
        key: &[u8],
    ) -> Result<Option<kastellan_snapshot::mvcc::KeyValue>> {
        let mut c = self.inner.clone();
        let options = etcd_client::GetOptions::new().with_serializable();
        let resp = self
            .timed("range", c.get(key.to_vec(), Some(options)))
            .await?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| kastellan_snapshot::mvcc::KeyValue {
                key: kv.key().to_vec(),
                create_revision: kv.create_revision(),
                mod_revision: kv.mod_revision(),
                version: kv.version(),
                value: kv.value().to_vec(),
                lease: kv.lease(),
            }))
    }

    /// etcd's hash of the keyspace at `revision` (0: the current one), as this member
    /// computes it (`etcdctl endpoint hashkv`): (hash, revision hashed at, compacted
    /// revision).
    pub async fn hash_kv(&mut self, revision: i64) -> Result<(u32, i64, i64)> {
        let mut c = self.inner.clone();
        let r = self.timed("hashkv", c.hash_kv(revision)).await?;
        let at = if revision == 0 {
            r.header().map_or(0, |h| h.revision())
        } else {
            revision
        };
        Ok((r.hash(), at, r.compact_version()))
    }

    /// This member's status.
    pub async fn status(&mut self) -> Result<MemberStatus> {
        let mut c = self.inner.clone();
        let s = self.timed("status", c.status()).await?;
        Ok(MemberStatus {
            endpoint: self.endpoint.clone(),
            member_id: s.header().map_or(0, |h| h.member_id()),
            version: s.version().to_string(),
            db_size: s.db_size(),
            db_size_in_use: s.raft_used_db_size(),
            leader: s.leader(),
            raft_term: s.raft_term(),
            raft_index: s.raft_index(),
            raft_applied_index: s.raft_applied_index(),
            revision: s.header().map_or(0, |h| h.revision()),
            errors: s.errors().to_vec(),
            is_learner: s.is_learner(),
        })
    }

    /// The alarms active in the cluster (NOSPACE, CORRUPT), as this member reports them.
    pub async fn alarms(&mut self) -> Result<Vec<Alarm>> {
        let mut c = self.inner.clone();
        let resp = self
            .timed(
                "alarm list",
                c.alarm(AlarmAction::Get, AlarmType::None, None),
            )
            .await?;
        Ok(resp
            .alarms()
            .iter()
            .filter_map(|a| {
                let kind = match a.alarm() {
                    AlarmType::Nospace => AlarmKind::Nospace,
                    AlarmType::Corrupt => AlarmKind::Corrupt,
                    AlarmType::None => return None,
                };
                Some(Alarm {
                    member_id: a.member_id(),
                    kind,
                })
            })
            .collect())
    }

    /// Starts streaming a snapshot of this member's whole backend. The stream has an
    /// idle timeout ([`Timeouts::stream_idle`]) but no overall one.
    pub async fn snapshot(&mut self) -> Result<crate::snapshot::SnapshotStream> {
        let mut c = self.inner.clone();
        let stream = self.timed("snapshot", c.snapshot()).await?;
        Ok(crate::snapshot::SnapshotStream::new(
            self.endpoint.clone(),
            stream,
            self.timeouts.stream_idle,
        ))
    }
}

fn member_of(m: &etcd_client::Member) -> Member {
    Member {
        id: m.id(),
        name: m.name().to_string(),
        peer_urls: m.peer_urls().to_vec(),
        client_urls: m.client_urls().to_vec(),
        is_learner: m.is_learner(),
    }
}

fn members_of(list: &[etcd_client::Member]) -> Vec<Member> {
    list.iter().map(member_of).collect()
}

/// What a [`Change`] returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// The member list etcd answered with (member changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<Member>>,
    /// The member added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<Member>,
    /// The alarms still active (disarm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarms: Option<Vec<Alarm>>,
    /// The member removed was the leader: leadership was handed to this member first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_moved_to: Option<String>,
}

/// What one endpoint answered.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointReport {
    /// The endpoint.
    pub endpoint: String,
    /// Its status, when it answered.
    pub status: Option<MemberStatus>,
    /// Why it did not, otherwise.
    pub error: Option<String>,
}

/// Quorum arithmetic over the voting members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quorum {
    /// Voting members (learners excluded).
    pub voting: usize,
    /// Voting members that answered a status call and know a leader (alarms do not
    /// count against them).
    pub healthy: usize,
    /// Members needed for a quorum (`voting / 2 + 1`).
    pub needed: usize,
}

impl Quorum {
    /// Whether enough voting members are healthy.
    pub fn has_quorum(&self) -> bool {
        self.voting > 0 && self.healthy >= self.needed
    }
    /// How many more members may fail before quorum is lost (0 when already lost).
    pub fn fault_tolerance(&self) -> usize {
        self.healthy.saturating_sub(self.needed)
    }
}

/// Everything learnt about the cluster in one round: member list, per-endpoint status
/// and alarms.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Survey {
    /// The members (empty when no endpoint answered the member list).
    pub members: Vec<Member>,
    /// One entry per endpoint asked, in order.
    pub endpoints: Vec<EndpointReport>,
    /// Active alarms.
    pub alarms: Vec<Alarm>,
    /// Why the member list could not be had, if so.
    pub member_list_error: Option<String>,
}

impl Survey {
    /// The member with this id.
    pub fn member(&self, id: u64) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The statuses that answered.
    pub fn statuses(&self) -> impl Iterator<Item = &MemberStatus> {
        self.endpoints.iter().filter_map(|e| e.status.as_ref())
    }

    /// The quorum figures.
    pub fn quorum(&self) -> Quorum {
        let voting: Vec<&Member> = self.members.iter().filter(|m| !m.is_learner).collect();
        let healthy: BTreeSet<u64> = self
            .statuses()
            .filter(|s| s.leader != 0)
            .map(|s| s.member_id)
            .filter(|id| voting.iter().any(|m| m.id == *id))
            .collect();
        Quorum {
            voting: voting.len(),
            healthy: healthy.len(),
            needed: voting.len() / 2 + 1,
        }
    }

    /// The candidates for a member choice.
    pub fn candidates(&self) -> Vec<Candidate> {
        self.endpoints
            .iter()
            .map(|e| {
                let member = e.status.as_ref().and_then(|s| self.member(s.member_id));
                Candidate {
                    endpoint: e.endpoint.clone(),
                    name: member.map(|m| m.name.clone()),
                    status: e.status.clone(),
                    error: e.error.clone(),
                    alarms: e
                        .status
                        .as_ref()
                        .map(|s| {
                            self.alarms
                                .iter()
                                .filter(|a| a.member_id == s.member_id)
                                .map(|a| a.kind)
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// A cluster reached through a [`Target`].
#[derive(Debug, Clone)]
pub struct Cluster {
    target: Target,
    connector: Connector,
}

impl Cluster {
    /// Reads the target's TLS files and prepares clients.
    pub fn new(target: Target, timeouts: Timeouts) -> Result<Cluster> {
        let connector = Connector::new(&target, timeouts)?;
        Ok(Cluster { target, connector })
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The connector (for per-member clients).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// The member list from the first endpoint that answers; when none does, the error
    /// of the first one (the others are logged).
    pub async fn members(&self) -> Result<Vec<Member>> {
        let mut first_err = None;
        for e in &self.target.endpoints {
            let r = match self.connector.connect(e).await {
                Ok(mut c) => c.member_list().await,
                Err(err) => Err(err),
            };
            match r {
                Ok(m) => return Ok(m),
                Err(err) => {
                    tracing::debug!("member list from {e}: {err}");
                    first_err.get_or_insert(err);
                }
            }
        }
        Err(first_err.unwrap_or(Error::NoEndpoints))
    }

    /// Member list, the status of every endpoint (all queried concurrently) and alarms.
    ///
    /// With `expand`, the members' client URLs are asked too (use this when the
    /// endpoints were discovered rather than chosen by the user).
    pub async fn survey(&self, expand: bool) -> Survey {
        let (members, member_list_error) = match self.members().await {
            Ok(m) => (m, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let mut endpoints: Vec<String> = self.target.endpoints.clone();
        if expand {
            for m in &members {
                for u in &m.client_urls {
                    let u = u.trim_end_matches('/').to_string();
                    if !endpoints.contains(&u) {
                        endpoints.push(u);
                    }
                }
            }
        }
        let mut set = tokio::task::JoinSet::new();
        for (i, e) in endpoints.iter().enumerate() {
            let connector = self.connector.clone();
            let e = e.clone();
            set.spawn(async move {
                let r = match connector.connect(&e).await {
                    Ok(mut c) => c.status().await,
                    Err(err) => Err(err),
                };
                (i, e, r)
            });
        }
        let mut reports: Vec<(usize, EndpointReport)> = Vec::new();
        while let Some(joined) = set.join_next().await {
            // A panicking task is a bug; report it as that endpoint's error.
            let (i, endpoint, r) = match joined {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("status task failed: {e}");
                    continue;
                }
            };
            reports.push((
                i,
                match r {
                    Ok(s) => EndpointReport {
                        endpoint,
                        status: Some(s),
                        error: None,
                    },
                    Err(err) => EndpointReport {
                        endpoint,
                        status: None,
                        error: Some(err.to_string()),
                    },
                },
            ));
        }
        reports.sort_by_key(|(i, _)| *i);
        let endpoints: Vec<EndpointReport> = reports.into_iter().map(|(_, r)| r).collect();
        // Alarms are cluster-wide: ask the first member that answered.
        let mut alarms = Vec::new();
        if let Some(e) = endpoints.iter().find(|e| e.status.is_some())
            && let Ok(mut c) = self.connector.connect(&e.endpoint).await
        {
            match c.alarms().await {
                Ok(a) => alarms = a,
                Err(err) => tracing::warn!("alarm list: {err}"),
            }
        }
        Survey {
            members,
            endpoints,
            alarms,
            member_list_error,
        }
    }

    /// The member list (from the first endpoint that answers) and every member's own
    /// answer: its status and, for voting members, a linearizable read, all asked
    /// concurrently at the target's endpoints and every member's client URLs; the
    /// alarms from a voting member that answered.
    pub async fn view(&self) -> Result<View> {
        let members = self.members().await?;
        let mut endpoints: Vec<String> = Vec::new();
        for e in self
            .target
            .endpoints
            .iter()
            .chain(members.iter().flat_map(|m| m.client_urls.iter()))
        {
            let e = e.trim_end_matches('/').to_string();
            if !endpoints.contains(&e) {
                endpoints.push(e);
            }
        }
        let mut set = tokio::task::JoinSet::new();
        for (i, e) in endpoints.into_iter().enumerate() {
            let connector = self.connector.clone();
            set.spawn(async move {
                let mut client = match connector.connect(&e).await {
                    Ok(c) => c,
                    Err(err) => {
                        return (
                            i,
                            Probe {
                                endpoint: e,
                                status: Err(err.to_string()),
                                read: None,
                            },
                        );
                    }
                };
                let status = client.status().await.map_err(|err| err.to_string());
                let read = match &status {
                    Ok(s) if !s.is_learner => {
                        Some(client.health_read().await.map_err(|err| err.to_string()))
                    }
                    _ => None,
                };
                (
                    i,
                    Probe {
                        endpoint: e,
                        status,
                        read,
                    },
                )
            });
        }
        let mut probes: Vec<(usize, Probe)> = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(p) => probes.push(p),
                // A panicking task is a bug; its endpoint counts as not answering.
                Err(e) => tracing::warn!("probe task failed: {e}"),
            }
        }
        probes.sort_by_key(|(i, _)| *i);
        let probes: Vec<Probe> = probes.into_iter().map(|(_, p)| p).collect();
        let mut alarms = Vec::new();
        if let Some(p) = probes
            .iter()
            .find(|p| p.status.as_ref().is_ok_and(|s| !s.is_learner))
            && let Ok(mut c) = self.connector.connect(&p.endpoint).await
        {
            match c.alarms().await {
                Ok(a) => alarms = a,
                Err(err) => tracing::warn!("alarm list: {err}"),
            }
        }
        Ok(View::build(members, &probes, alarms))
    }

    /// When the member `id` about to be removed leads, moves leadership to the member
    /// `c` talks to (asked of the leader, as etcd requires) and waits until that member
    /// leads: the removal then causes no election. Returns the new leader's name.
    async fn move_leader_off(&self, c: &mut MemberClient, id: u64) -> Result<Option<String>> {
        let status = c.status().await?;
        if status.leader != id {
            return Ok(None);
        }
        let to = status.member_id;
        let members = c.member_list().await?;
        let Some(leader_url) = members
            .iter()
            .find(|m| m.id == id)
            .and_then(|m| m.client_urls.first().cloned())
        else {
            return Ok(None);
        };
        let leader = self.connector.connect(&leader_url).await?;
        let mut inner = leader.inner.clone();
        leader.timed("move leader", inner.move_leader(to)).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if c.status().await.is_ok_and(|s| s.leader == to) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Rpc {
                    endpoint: c.endpoint().to_string(),
                    operation: "move leader",
                    cause: crate::RpcCause::Timeout,
                    detail: "leadership was handed over but the member does not lead after 10 s"
                        .into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Some(
            members
                .iter()
                .find(|m| m.id == to)
                .map_or_else(|| format!("{to:x}"), |m| m.name.clone()),
        ))
    }

    /// Makes `change` through the member at `through` (a defragmentation goes to the
    /// member it names, and may take up to `long`, since a large backend takes a while).
    pub async fn apply(&self, change: &Change, through: &str, long: Duration) -> Result<Applied> {
        match change {
            Change::Remove { id, .. } => {
                let mut c = self.connector.connect(through).await?;
                let leader_moved_to = self.move_leader_off(&mut c, *id).await?;
                Ok(Applied {
                    members: Some(c.member_remove(*id).await?),
                    leader_moved_to,
                    ..Applied::default()
                })
            }
            Change::Add {
                peer_urls, learner, ..
            } => {
                let mut c = self.connector.connect(through).await?;
                let (added, members) = c.member_add(peer_urls, *learner).await?;
                Ok(Applied {
                    members: Some(members),
                    added: Some(added),
                    ..Applied::default()
                })
            }
            Change::Promote { id, .. } => {
                let mut c = self.connector.connect(through).await?;
                Ok(Applied {
                    members: Some(c.member_promote(*id).await?),
                    ..Applied::default()
                })
            }
            Change::Defragment { endpoint, .. } => {
                let mut c = self.connector.connect_with(endpoint, None).await?;
                c.timeouts.request = long;
                let mut inner = c.inner.clone();
                c.timed("defragment", inner.defragment()).await?;
                Ok(Applied::default())
            }
            Change::Disarm {
                member_id, alarm, ..
            } => {
                let mut c = self.connector.connect(through).await?;
                Ok(Applied {
                    alarms: Some(c.alarm_disarm(*member_id, *alarm).await?),
                    ..Applied::default()
                })
            }
        }
    }

    /// Chooses the member to take a snapshot from: a healthy one, a follower first.
    pub async fn choose_for_snapshot(&self, expand: bool) -> Result<(Choice, Survey)> {
        let survey = self.survey(expand).await;
        let choice = select::choose(&survey.candidates())
            .map_err(|tried| Error::NoHealthyMember { tried })?;
        Ok((choice, survey))
    }

    /// Connects to `endpoint` for a snapshot stream (no per-request timeout, which would
    /// cut a long stream; the stream has an idle timeout instead).
    pub async fn snapshot_client(&self, endpoint: &str) -> Result<MemberClient> {
        self.connector.connect_with(endpoint, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: u64, leader: u64) -> MemberStatus {
        MemberStatus {
            endpoint: format!("https://m{id}:2379"),
            member_id: id,
            version: "3.5.1".into(),
            db_size: 1,
            db_size_in_use: 1,
            leader,
            raft_term: 2,
            raft_index: 10,
            raft_applied_index: 10,
            revision: 1,
            errors: vec![],
            is_learner: false,
        }
    }

    fn member(id: u64, learner: bool) -> Member {
        Member {
            id,
            name: format!("m{id}"),
            peer_urls: vec![],
            client_urls: vec![format!("https://m{id}:2379")],
            is_learner: learner,
        }
    }

    #[test]
    fn quorum_counts_voting_members_that_know_a_leader() {
        let s = Survey {
            members: vec![
                member(1, false),
                member(2, false),
                member(3, false),
                member(4, true),
            ],
            endpoints: vec![
                EndpointReport {
                    endpoint: "a".into(),
                    status: Some(status(1, 1)),
                    error: None,
                },
                EndpointReport {
                    endpoint: "b".into(),
                    status: Some(status(2, 1)),
                    error: None,
                },
                EndpointReport {
                    endpoint: "c".into(),
                    status: None,
                    error: Some("down".into()),
                },
                EndpointReport {
                    endpoint: "d".into(),
                    status: Some(status(4, 1)),
                    error: None,
                },
            ],
            alarms: vec![],
            member_list_error: None,
        };
        let q = s.quorum();
        assert_eq!((q.voting, q.healthy, q.needed), (3, 2, 2));
        assert!(q.has_quorum());
        assert_eq!(q.fault_tolerance(), 0);
        assert_eq!(s.candidates()[1].name.as_deref(), Some("m2"));
    }
}

//! The new cluster's membership, from the restore flags, computed as etcd computes it.
//!
//! - Peer URLs are parsed and normalised as etcd's `types.NewURLs` does: scheme `http`,
//!   `https`, `unix` or `unixs`, a `host:port`, no path; each member's URLs sorted.
//! - `--initial-cluster` is read as etcd's `types.NewURLsMap`: comma-separated
//!   `name=url` pairs, a name may repeat to give a member several URLs.
//! - A member id is the first 8 bytes (big-endian) of the SHA-1 of the member's sorted
//!   peer URLs joined without separator, followed by the cluster token (etcd's
//!   `computeMemberId` without a timestamp, as at bootstrap).
//! - The cluster id is the first 8 bytes of the SHA-1 of the member ids, sorted, each
//!   as 8 big-endian bytes (etcd's `RaftCluster.genID`).
//!
//! So a member restored by kastellan and one restored by `etcdutl` with the same flags
//! have the same ids, and can even form one cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::ToSocketAddrs;

use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::error::ClusterError;
use crate::gojson;

/// etcd's default member name.
pub const DEFAULT_NAME: &str = "default";
/// etcd's default `--initial-cluster`.
pub const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";
/// etcd's default `--initial-cluster-token`.
pub const DEFAULT_TOKEN: &str = "etcd-cluster";
/// etcd's default `--initial-advertise-peer-urls`.
pub const DEFAULT_PEER_URLS: &str = "http://localhost:2380";

/// A member or cluster id. Shown as etcd shows it: lower-case hex without padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(pub u64);

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One member of the new cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The member's name (`--name` on that member).
    pub name: String,
    /// The member id etcd will use.
    pub id: Id,
    /// Its peer URLs, normalised and sorted.
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
}

impl Member {
    /// The member as etcd stores it (backend `members` bucket, ConfChange context):
    /// Go's `json.Marshal` of `membership.Member` with no client URLs yet.
    pub fn to_json(&self) -> String {
        let mut out = format!("{{\"id\":{},\"peerURLs\":", self.id.0);
        gojson::push_str_array(&mut out, &self.peer_urls);
        if !self.name.is_empty() {
            out.push_str(",\"name\":");
            gojson::push_str(&mut out, &self.name);
        }
        out.push('}');
        out
    }

    /// The member's raft attributes as the v2 store keeps them.
    pub fn raft_attributes_json(&self) -> String {
        let mut out = String::from("{\"peerURLs\":");
        gojson::push_str_array(&mut out, &self.peer_urls);
        out.push('}');
        out
    }
}

/// The membership of the new cluster and which member is being restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// Every member, sorted by id (the order etcd writes them in).
    members: Vec<Member>,
    /// The cluster id.
    cluster_id: Id,
    /// The cluster token the ids were computed with.
    token: String,
    /// Index into `members` of the member being restored.
    #[serde(skip)]
    local: usize,
}

impl Membership {
    /// Validates the restore flags as etcd's `ServerConfig.VerifyBootstrap` does and
    /// computes the ids.
    ///
    /// `resolve` decides whether advertised URLs that differ from the initial cluster's
    /// as strings may still match once host names are resolved (etcd resolves them).
    pub fn new(
        name: &str,
        initial_cluster: &str,
        token: &str,
        advertise_peer_urls: &str,
        resolve: bool,
    ) -> Result<Membership, ClusterError> {
        let map = parse_initial_cluster(initial_cluster)?;
        let advertised = parse_urls(
            &advertise_peer_urls.split(',').collect::<Vec<_>>(),
            "--initial-advertise-peer-urls",
        )?;
        let Some(local_urls) = map.get(name) else {
            return Err(ClusterError::NameNotInCluster {
                name: name.to_string(),
                initial_cluster: canonical(&map),
            });
        };
        if *local_urls != advertised && !(resolve && resolved_equal(local_urls, &advertised)) {
            return Err(ClusterError::AdvertiseMismatch {
                name: name.to_string(),
                in_cluster: local_urls.join(","),
                advertised: advertised.join(","),
            });
        }
        let mut seen = BTreeSet::new();
        for url in map.values().flatten() {
            if !seen.insert(url.as_str()) {
                return Err(ClusterError::DuplicateUrl { url: url.clone() });
            }
        }
        let mut members: Vec<Member> = map
            .iter()
            .map(|(n, urls)| Member {
                name: n.clone(),
                id: member_id(urls, token),
                peer_urls: urls.clone(),
            })
            .collect();
        members.sort_by_key(|m| m.id);
        for pair in members.windows(2) {
            if pair[0].id == pair[1].id {
                return Err(ClusterError::DuplicateId {
                    id: pair[0].id.to_string(),
                });
            }
        }
        if let Some(m) = members.iter().find(|m| m.id.0 == 0) {
            return Err(ClusterError::ZeroId {
                name: m.name.clone(),
            });
        }
        let ids: Vec<Id> = members.iter().map(|m| m.id).collect();
        let local = members.iter().position(|m| m.name == name).unwrap_or(0); // present: checked above
        Ok(Membership {
            cluster_id: cluster_id(&ids),
            members,
            token: token.to_string(),
            local,
        })
    }

    /// Every member, sorted by id.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member being restored.
    pub fn local(&self) -> &Member {
        &self.members[self.local]
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> Id {
        self.cluster_id
    }

    /// The cluster token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The initial cluster in etcd's canonical form: `name=url` pairs, sorted.
    pub fn initial_cluster(&self) -> String {
        let mut pairs: Vec<String> = self
            .members
            .iter()
            .flat_map(|m| m.peer_urls.iter().map(move |u| format!("{}={u}", m.name)))
            .collect();
        pairs.sort();
        pairs.join(",")
    }

    /// The same membership seen from another member.
    pub fn for_member(&self, name: &str) -> Option<Membership> {
        let local = self.members.iter().position(|m| m.name == name)?;
        Some(Membership {
            local,
            ..self.clone()
        })
    }
}

/// etcd's `computeMemberId` for a member at bootstrap.
pub fn member_id(sorted_peer_urls: &[String], token: &str) -> Id {
    let mut h = Sha1::new();
    for u in sorted_peer_urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    Id(first_u64(&h.finalize()))
}

/// etcd's `RaftCluster.genID`.
pub fn cluster_id(ids: &[Id]) -> Id {
    let mut sorted = ids.to_vec();
    sorted.sort();
    let mut h = Sha1::new();
    for id in sorted {
        h.update(id.0.to_be_bytes());
    }
    Id(first_u64(&h.finalize()))
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]); // a SHA-1 digest has 20 bytes
    u64::from_be_bytes(b)
}

/// Parses `--initial-cluster` as etcd's `types.NewURLsMap`.
pub fn parse_initial_cluster(s: &str) -> Result<BTreeMap<String, Vec<String>>, ClusterError> {
    let mut raw: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (name, url) = pair.split_once('=').unwrap_or((pair, ""));
        raw.entry(name.to_string()).or_default().push(url);
    }
    if raw.is_empty() {
        return Err(ClusterError::EmptyCluster);
    }
    raw.into_iter()
        .map(|(name, urls)| Ok((name, parse_urls(&urls, "--initial-cluster")?)))
        .collect()
}

fn canonical(map: &BTreeMap<String, Vec<String>>) -> String {
    let mut pairs: Vec<String> = map
        .iter()
        .flat_map(|(n, urls)| urls.iter().map(move |u| format!("{n}={u}")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// Parses and sorts URLs as etcd's `types.NewURLs`.
pub fn parse_urls(urls: &[&str], flag: &'static str) -> Result<Vec<String>, ClusterError> {
    let mut out = urls
        .iter()
        .map(|u| parse_url(u, flag))
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Err(ClusterError::InvalidUrl {
            flag,
            url: String::new(),
            reason: "no URL given",
        });
    }
    out.sort();
    Ok(out)
}

/// Parses one URL: `scheme://host:port`, normalised as Go's `url.URL.String` writes it
/// (the scheme in lower case). Paths are refused as etcd refuses them; so are queries,
/// fragments and user info, which etcd would keep but which make no sense in a peer URL.
pub fn parse_url(input: &str, flag: &'static str) -> Result<String, ClusterError> {
    let s = input.trim();
    let bad = |reason| ClusterError::InvalidUrl {
        flag,
        url: s.to_string(),
        reason,
    };
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| bad("expected scheme://host:port"))?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "unix" | "unixs") {
        return Err(bad("the scheme must be http, https, unix or unixs"));
    }
    if rest.contains('/') {
        return Err(bad("a peer URL must not contain a path"));
    }
    if rest.contains(['?', '#', '@']) {
        return Err(bad(
            "a peer URL must not contain a query, fragment or user info",
        ));
    }
    if !rest.chars().all(|c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~' | ':' | '[' | ']' | '%')
    }) {
        return Err(bad("the host contains characters a host name cannot have"));
    }
    split_host_port(rest).ok_or_else(|| bad("the address must have the form host:port"))?;
    Ok(format!("{scheme}://{rest}"))
}

/// Go's `net.SplitHostPort`, enough to tell whether `hostport` has the form.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    if let Some(inner) = hostport.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return (!port.contains([':', '[', ']'])).then_some((host, port));
    }
    let (host, port) = hostport.rsplit_once(':')?;
    (!host.contains([':', '[', ']']) && !port.contains(['[', ']'])).then_some((host, port))
}

/// Whether two URL lists name the same addresses once host names are resolved (etcd's
/// `netutil.URLStringsEqual`). Only used when the strings differ.
fn resolved_equal(a: &[String], b: &[String]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let resolve = |urls: &[String]| -> Option<Vec<String>> {
        let mut out = urls
            .iter()
            .map(|u| {
                let (scheme, hostport) = u.split_once("://")?;
                let addrs: Vec<_> = hostport.to_socket_addrs().ok()?.collect();
                let addr = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first())?;
                Some(format!("{scheme}://{addr}"))
            })
            .collect::<Option<Vec<_>>>()?;
        out.sort();
        Some(out)
    };
    matches!((resolve(a), resolve(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(u: &[&str]) -> Vec<String> {
        u.iter().map(|s| s.to_string()).collect()
    }

    /// Ids printed by a real `etcdutl snapshot restore` (3.5.1) for the same flags.
    #[test]
    fn ids_match_etcdutl() {
        let m = Membership::new(
            "m1",
            "m1=http://127.0.0.1:2380",
            "etcd-cluster",
            "http://127.0.0.1:2380",
            false,
        )
        .unwrap();
        assert_eq!(m.local().id.to_string(), "b71f75320dc06a6c");
        assert_eq!(m.cluster_id().to_string(), "1c45a069f3a1d796");
        assert_eq!(
            member_id(&urls(&["http://localhost:2380"]), "etcd-cluster").to_string(),
            "8e9e05c52164694d" // etcd's well-known id of a default single member
        );
    }

    /// Ids of a three-member restore by `etcdutl snapshot restore` 3.5.1 (read from the
    /// metadata record of each member's WAL).
    #[test]
    fn three_member_ids_match_etcdutl() {
        let ic = "a=http://127.0.0.1:12380,b=http://127.0.0.1:22380,c=http://127.0.0.1:32380";
        let expected = [
            ("a", "a1e17166fc360ef9"),
            ("b", "7f9c79c62226dbbe"),
            ("c", "7c7ba0707757ae90"),
        ];
        for (i, (name, id)) in expected.iter().enumerate() {
            let port = 12380 + 10000 * i;
            let m = Membership::new(
                name,
                ic,
                "tok-3",
                &format!("http://127.0.0.1:{port}"),
                false,
            )
            .unwrap();
            assert_eq!(m.local().id.to_string(), *id, "member {name}");
            assert_eq!(m.cluster_id().to_string(), "a2b10cc9be6f34aa");
            let order: Vec<_> = m.members().iter().map(|m| m.name.as_str()).collect();
            assert_eq!(order, ["c", "b", "a"], "sorted by id");
        }
    }

    #[test]
    fn several_urls_per_member_are_sorted_before_hashing() {
        let a = Membership::new(
            "a",
            "a=http://10.0.0.2:2380,a=http://10.0.0.1:2380",
            "t",
            "http://10.0.0.1:2380,http://10.0.0.2:2380",
            false,
        )
        .unwrap();
        assert_eq!(
            a.local().peer_urls,
            urls(&["http://10.0.0.1:2380", "http://10.0.0.2:2380"])
        );
        assert_eq!(
            a.local().id,
            member_id(
                &urls(&["http://10.0.0.1:2380", "http://10.0.0.2:2380"]),
                "t"
            )
        );
    }

    #[test]
    fn members_are_sorted_by_id_and_json_is_gos() {
        let m = Membership::new(
            "b",
            "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3",
            "tok",
            "http://127.0.0.1:2",
            false,
        )
        .unwrap();
        let ids: Vec<_> = m.members().iter().map(|m| m.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert_eq!(m.local().name, "b");
        assert_eq!(m.cluster_id(), cluster_id(&ids));
        let b = m.local();
        assert_eq!(
            b.to_json(),
            format!(
                r#"{{"id":{},"peerURLs":["http://127.0.0.1:2"],"name":"b"}}"#,
                b.id.0
            )
        );
        assert_eq!(
            b.raft_attributes_json(),
            r#"{"peerURLs":["http://127.0.0.1:2"]}"#
        );
        assert_eq!(
            m.initial_cluster(),
            "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3"
        );
        assert_eq!(m.for_member("c").unwrap().local().name, "c");
    }

    #[test]
    fn refuses_what_etcd_refuses() {
        let err = |name, cluster, adv| {
            Membership::new(name, cluster, "t", adv, false)
                .unwrap_err()
                .to_string()
        };
        assert!(err("x", "a=http://h:1", "http://h:1").contains("\"x\""));
        assert!(err("a", "a=http://h:1", "http://h:2").contains("--initial-advertise-peer-urls"));
        assert!(
            err("a", "a=http://h:1,b=http://h:1", "http://h:1").contains("more than once"),
            "duplicate url"
        );
        assert!(err("a", "a=h:1", "h:1").contains("scheme"));
        assert!(err("a", "a=ftp://h:1", "ftp://h:1").contains("scheme"));
        assert!(err("a", "a=http://h:1/x", "http://h:1/x").contains("path"));
        assert!(err("a", "a=http://h", "http://h").contains("host:port"));
        assert!(err("a", "", "http://h:1").contains("empty"));
        assert_eq!(
            parse_url(" HTTPS://[::1]:2380 ", "f").unwrap(),
            "https://[::1]:2380"
        );
    }
}

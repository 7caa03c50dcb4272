//! A bootstrap token as its Secret in `kube-system`, both ways: the Secret kubeadm
//! writes for a token (type `bootstrap.kubernetes.io/token`; `token-id`,
//! `token-secret`, `expiration` in RFC 3339 UTC, `usage-bootstrap-<usage>: "true"`,
//! `auth-extra-groups` comma-separated, `description`), and a listed token read back
//! from one, with what is left of its life.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::token::{Group, Token, TokenId, Usage};

/// The namespace of bootstrap token Secrets.
pub const NAMESPACE: &str = "kube-system";
/// The type of a bootstrap token Secret.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

const KEY_ID: &str = "token-id";
const KEY_SECRET: &str = "token-secret";
const KEY_EXPIRATION: &str = "expiration";
const KEY_DESCRIPTION: &str = "description";
const KEY_GROUPS: &str = "auth-extra-groups";
const USAGE_PREFIX: &str = "usage-bootstrap-";

/// A token to create: what `kubeadm token create` takes.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// The token.
    pub token: Token,
    /// Free text for humans (`--description`).
    pub description: Option<String>,
    /// When it expires; `None`: never.
    pub expires: Option<Timestamp>,
    /// What it may be used for.
    pub usages: Vec<Usage>,
    /// Extra groups the apiserver gives a client authenticated with it.
    pub groups: Vec<Group>,
}

/// When a token made at `now` with `ttl` expires: `None` for a TTL of zero (never),
/// whole seconds (the Secret holds RFC 3339 without fractions).
pub fn expiry(now: Timestamp, ttl: SignedDuration) -> Option<Timestamp> {
    if ttl.is_zero() {
        return None;
    }
    let at = now.checked_add(ttl).ok()?;
    Timestamp::from_second(at.as_second()).ok()
}

/// A timestamp as the `expiration` field holds it (Go's `time.RFC3339` in UTC).
pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl TokenSpec {
    /// The Secret kubeadm creates for this token.
    pub fn secret(&self) -> Secret {
        let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
        let mut put = |k: String, v: &str| {
            data.insert(k, ByteString(v.as_bytes().to_vec()));
        };
        put(KEY_ID.into(), self.token.id().as_str());
        put(KEY_SECRET.into(), self.token.secret());
        if let Some(d) = self.description.as_deref().filter(|d| !d.is_empty()) {
            put(KEY_DESCRIPTION.into(), d);
        }
        if let Some(at) = self.expires {
            put(KEY_EXPIRATION.into(), &rfc3339(at));
        }
        for u in &self.usages {
            put(format!("{USAGE_PREFIX}{u}"), "true");
        }
        if !self.groups.is_empty() {
            let groups: Vec<&str> = self.groups.iter().map(Group::as_str).collect();
            put(KEY_GROUPS.into(), &groups.join(","));
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(self.token.id().secret_name()),
                namespace: Some(NAMESPACE.into()),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.into()),
            data: Some(data),
            ..Secret::default()
        }
    }
}

/// A token as listed: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedToken {
    /// The token's ID.
    pub id: TokenId,
    /// When it expires; `None`: never.
    pub expires: Option<Timestamp>,
    /// Its usages, known ones only (in the Secret's key order).
    pub usages: Vec<Usage>,
    /// Its extra groups, as written.
    pub groups: Vec<String>,
    /// Its description.
    pub description: Option<String>,
}

/// Where a token stands at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Life {
    /// It has no expiration.
    Forever,
    /// It is valid for this long still.
    Valid {
        /// Seconds left.
        seconds_left: i64,
    },
    /// It expired this long ago (the controller-manager's token cleaner deletes it,
    /// when it runs).
    Expired {
        /// Seconds since it expired.
        seconds_ago: i64,
    },
}

impl ListedToken {
    /// Reads a token from its Secret, as the apiserver's authenticator would: the
    /// type, the `token-id` matching the name, a secret of the right form, an
    /// RFC 3339 expiration if there is one.
    pub fn from_secret(secret: &Secret) -> Result<ListedToken> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let bad = |detail: String| Error::Secret {
            secret: name.clone(),
            detail,
        };
        if secret.type_.as_deref() != Some(SECRET_TYPE) {
            return Err(bad(format!(
                "type {}, not {SECRET_TYPE}",
                secret.type_.as_deref().unwrap_or("(none)")
            )));
        }
        let empty = BTreeMap::new();
        let data = secret.data.as_ref().unwrap_or(&empty);
        let text = |k: &str| -> Result<Option<String>> {
            data.get(k)
                .map(|v| {
                    String::from_utf8(v.0.clone()).map_err(|_| bad(format!("{k} is not UTF-8")))
                })
                .transpose()
        };
        let id = text(KEY_ID)?.ok_or_else(|| bad(format!("no {KEY_ID}")))?;
        let token_secret = text(KEY_SECRET)?.ok_or_else(|| bad(format!("no {KEY_SECRET}")))?;
        let token = Token::from_parts(&id, &token_secret)
            .map_err(|_| bad("token-id or token-secret is malformed".into()))?;
        if name != token.id().secret_name() {
            return Err(bad(format!(
                "token-id {id} does not match the name (the authenticator ignores it)"
            )));
        }
        let expires = text(KEY_EXPIRATION)?
            .map(|e| {
                e.parse::<Timestamp>()
                    .map_err(|err| bad(format!("expiration '{e}' is not RFC 3339: {err}")))
            })
            .transpose()?;
        let usages = data
            .iter()
            .filter_map(|(k, v)| {
                let u = k.strip_prefix(USAGE_PREFIX)?;
                (v.0 == b"true").then(|| u.parse::<Usage>().ok())?
            })
            .collect();
        let groups = text(KEY_GROUPS)?
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(ListedToken {
            id: token.id().clone(),
            expires,
            usages,
            groups,
            description: text(KEY_DESCRIPTION)?.filter(|d| !d.is_empty()),
        })
    }

    /// Where the token stands at `now`.
    pub fn life(&self, now: Timestamp) -> Life {
        match self.expires {
            None => Life::Forever,
            Some(at) => {
                let left = at.as_second() - now.as_second();
                if left > 0 {
                    Life::Valid { seconds_left: left }
                } else {
                    Life::Expired { seconds_ago: -left }
                }
            }
        }
    }
}

/// Why `token` (whole, as given) cannot be used to join a node through its Secret
/// `secret`, at `now`; empty when it can. A control plane also needs the node group,
/// which alone may read the uploaded certificates.
pub fn join_refusals(
    secret: &Secret,
    token: &Token,
    control_plane: bool,
    now: Timestamp,
) -> Vec<String> {
    let listed = match ListedToken::from_secret(secret) {
        Ok(l) => l,
        Err(e) => return vec![e.to_string()],
    };
    let mut why = Vec::new();
    let stored = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY_SECRET))
        .map(|v| v.0.as_slice());
    if stored != Some(token.secret().as_bytes()) {
        why.push(format!(
            "the secret given is not token {}'s secret",
            token.id()
        ));
    }
    if let Life::Expired { .. } = listed.life(now) {
        why.push(format!("token {} has expired", token.id()));
    }
    for (usage, needed_for) in [
        (Usage::Signing, "discovery (the signed cluster-info)"),
        (Usage::Authentication, "the TLS bootstrap"),
    ] {
        if !listed.usages.contains(&usage) {
            why.push(format!(
                "token {} lacks the usage {usage}, needed for {needed_for}",
                token.id()
            ));
        }
    }
    if control_plane
        && !listed
            .groups
            .iter()
            .any(|g| g == crate::token::DEFAULT_GROUP)
    {
        why.push(format!(
            "token {} is not in the group {}, the only one that may read the uploaded certificates",
            token.id(),
            crate::token::DEFAULT_GROUP
        ));
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TokenSpec {
        TokenSpec {
            token: "abcdef.0123456789abcdef".parse().unwrap(),
            description: Some("for w7".into()),
            expires: expiry(
                "2026-12-02T10:00:00.75Z".parse().unwrap(),
                SignedDuration::from_hours(24),
            ),
            usages: Usage::ALL.to_vec(),
            groups: vec![crate::token::DEFAULT_GROUP.parse().unwrap()],
        }
    }

    fn data(s: &Secret) -> BTreeMap<String, String> {
        s.data
            .as_ref()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).unwrap()))
            .collect()
    }

    #[test]
    fn the_secret_has_kubeadms_layout() {
        let s = spec().secret();
        assert_eq!(s.metadata.name.as_deref(), Some("bootstrap-token-abcdef"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(s.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
        let d = data(&s);
        let want: BTreeMap<String, String> = [
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("expiration", "2026-12-03T10:00:00Z"),
            ("usage-bootstrap-signing", "true"),
            ("usage-bootstrap-authentication", "true"),
            (
                "auth-extra-groups",
                "system:bootstrappers:kubeadm:default-node-token",
            ),
            ("description", "for w7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(d, want);
    }

    #[test]
    fn no_ttl_no_expiration_and_empty_fields_left_out() {
        let mut s = spec();
        s.expires = expiry(Timestamp::now(), SignedDuration::ZERO);
        s.description = Some(String::new());
        s.groups.clear();
        s.usages = vec![Usage::Signing];
        let d = data(&s.secret());
        assert_eq!(
            d.keys().map(String::as_str).collect::<Vec<_>>(),
            ["token-id", "token-secret", "usage-bootstrap-signing"]
        );
    }

    #[test]
    fn a_secret_reads_back_without_its_secret() {
        let listed = ListedToken::from_secret(&spec().secret()).unwrap();
        assert_eq!(listed.id.as_str(), "abcdef");
        assert_eq!(listed.usages, [Usage::Authentication, Usage::Signing]);
        assert_eq!(listed.groups, [crate::token::DEFAULT_GROUP]);
        assert_eq!(listed.description.as_deref(), Some("for w7"));
        let json = serde_json_free(&listed);
        assert!(!json.contains("0123456789abcdef"), "{json}");
    }

    fn serde_json_free(l: &ListedToken) -> String {
        serde_saphyr::to_string(l).unwrap()
    }

    #[test]
    fn life_is_forever_valid_or_expired() {
        let l = ListedToken::from_secret(&spec().secret()).unwrap();
        let before: Timestamp = "2026-12-03T09:00:00Z".parse().unwrap();
        let after: Timestamp = "2026-12-03T10:00:30Z".parse().unwrap();
        assert_eq!(l.life(before), Life::Valid { seconds_left: 3600 });
        assert_eq!(l.life(after), Life::Expired { seconds_ago: 30 });
        let at: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        assert_eq!(l.life(at), Life::Expired { seconds_ago: 0 });
        let mut forever = l.clone();
        forever.expires = None;
        assert_eq!(forever.life(after), Life::Forever);
    }

    #[test]
    fn odd_secrets_are_refused_with_the_reason() {
        let mut s = spec().secret();
        s.type_ = Some("Opaque".into());
        assert!(
            ListedToken::from_secret(&s)
                .unwrap_err()
                .to_string()
                .contains("type Opaque")
        );
        let mut s = spec().secret();
        s.metadata.name = Some("bootstrap-token-zzzzzz".into());
        assert!(
            ListedToken::from_secret(&s)
                .unwrap_err()
                .to_string()
                .contains("does not match")
        );
        let mut s = spec().secret();
        s.data
            .as_mut()
            .unwrap()
            .insert("expiration".into(), ByteString(b"tomorrow".to_vec()));
        assert!(
            ListedToken::from_secret(&s)
                .unwrap_err()
                .to_string()
                .contains("not RFC 3339")
        );
        let mut s = spec().secret();
        s.data
            .as_mut()
            .unwrap()
            .insert("token-secret".into(), ByteString(b"short".to_vec()));
        let e = ListedToken::from_secret(&s).unwrap_err().to_string();
        assert!(e.contains("malformed") && !e.contains("short"), "{e}");
    }

    #[test]
    fn join_refusals_name_each_reason() {
        let s = spec();
        let secret = s.secret();
        let before: Timestamp = "2026-12-03T09:00:00Z".parse().unwrap();
        let after: Timestamp = "2026-12-03T11:00:00Z".parse().unwrap();
        assert!(join_refusals(&secret, &s.token, true, before).is_empty());
        let why = join_refusals(&secret, &s.token, false, after);
        assert_eq!(why, ["token abcdef has expired"]);
        let wrong: Token = "abcdef.ffffffffffffffff".parse().unwrap();
        let why = join_refusals(&secret, &wrong, false, before);
        assert_eq!(why, ["the secret given is not token abcdef's secret"]);
        let mut narrow = spec();
        narrow.usages = vec![Usage::Signing];
        narrow.groups = vec!["system:bootstrappers:other".parse().unwrap()];
        let why = join_refusals(&narrow.secret(), &narrow.token, false, before);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("lacks the usage authentication"));
        let why = join_refusals(&narrow.secret(), &narrow.token, true, before);
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(why[1].contains("not in the group"));
    }

    #[test]
    fn offsets_and_fractions_in_expiration_are_read_as_go_does() {
        let mut s = spec().secret();
        s.data.as_mut().unwrap().insert(
            "expiration".into(),
            ByteString(b"2026-12-03T12:00:00.5+02:00".to_vec()),
        );
        let l = ListedToken::from_secret(&s).unwrap();
        assert_eq!(rfc3339(l.expires.unwrap()), "2026-12-03T10:00:00Z");
    }
}

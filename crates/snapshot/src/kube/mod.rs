//! The keyspace as Kubernetes sees it: objects by resource and namespace, and values
//! decoded into what the API would show.
//!
//! - [`keys`]: which resource, namespace and name a key is.
//! - [`value`]: what a value holds (protobuf, JSON, encrypted at rest, other).
//! - [`types`]: the protobuf messages of the common built-in kinds.
//! - [`StoredVersions`]: objects counted by the apiVersion they are stored as (what a
//!   storage migration must rewrite before an API version goes away).

pub mod encryption;
pub mod keys;
pub mod types;
pub mod value;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::mvcc::View;
use value::Encoding;

/// Objects of one resource in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountRow {
    /// The resource (`configmaps`, `crontabs.stable.example.com`).
    pub resource: String,
    /// The namespace; `None` for cluster-scoped resources.
    pub namespace: Option<String>,
    /// How many live keys.
    pub count: u64,
    /// Their values' bytes.
    pub bytes: u64,
    /// Of these keys, how many are encrypted at rest.
    pub encrypted: u64,
}

/// Counts the live keys of a view by resource and namespace, in that order.
pub fn counts(view: &View) -> Vec<CountRow> {
    let mut rows: BTreeMap<(String, Option<String>), CountRow> = BTreeMap::new();
    for (key, kv) in &view.keys {
        let k = keys::parse(key);
        let row = rows
            .entry((k.resource.clone(), k.namespace.clone()))
            .or_insert_with(|| CountRow {
                resource: k.resource,
                namespace: k.namespace,
                count: 0,
                bytes: 0,
                encrypted: 0,
            });
        row.count += 1;
        row.bytes += kv.value.len() as u64;
        if value::encoding(&kv.value) == Encoding::Encrypted {
            row.encrypted += 1;
        }
    }
    rows.into_values().collect()
}

/// Objects of one resource stored with one apiVersion and kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRow {
    /// The resource (`ingresses`, `crontabs.stable.example.com`).
    pub resource: String,
    /// The apiVersion the value is encoded with (`networking.k8s.io/v1beta1`);
    /// `None` when it cannot be read (encrypted at rest, not an object).
    pub api_version: Option<String>,
    /// The kind, when known.
    pub kind: Option<String>,
    /// How the values are stored (`protobuf`, `json`, `encrypted`, ...).
    pub encoding: String,
    /// How many objects.
    pub count: u64,
}

/// Counts objects by resource and the apiVersion they are stored as. Feed it keys and
/// values (from a live etcd or a snapshot), then read [`StoredVersions::rows`].
#[derive(Debug, Default)]
pub struct StoredVersions {
    rows: BTreeMap<(String, String, String, String), u64>,
}

impl StoredVersions {
    /// Counts one key and its value (only keys under `/registry/`).
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        let k = keys::parse(key);
        if k.resource == "(non-registry)" || k.name.is_empty() {
            return;
        }
        let encoding = value::encoding(value);
        let (api_version, kind) = match encoding {
            Encoding::Protobuf | Encoding::Json => {
                let d = value::decode(value);
                (
                    d.api_version.unwrap_or_default(),
                    d.kind.unwrap_or_default(),
                )
            }
            _ => (String::new(), String::new()),
        };
        let encoding = serde_json::to_value(encoding)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *self
            .rows
            .entry((k.resource, api_version, kind, encoding))
            .or_default() += 1;
    }

    /// The counts, by resource, then apiVersion.
    pub fn rows(&self) -> Vec<StoredRow> {
        self.rows
            .iter()
            .map(
                |((resource, api_version, kind, encoding), count)| StoredRow {
                    resource: resource.clone(),
                    api_version: (!api_version.is_empty()).then(|| api_version.clone()),
                    kind: (!kind.is_empty()).then(|| kind.clone()),
                    encoding: encoding.clone(),
                    count: *count,
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod stored_tests {
    use super::*;

    #[test]
    fn counts_by_the_stored_api_version() {
        let mut s = StoredVersions::default();
        // The envelope of a protobuf value: `k8s\0`, then runtime.Unknown with its
        // TypeMeta (field 1: apiVersion 1, kind 2), as etcd holds an Ingress on 1.20.
        let proto = |api: &str, kind: &str| {
            let mut tm = vec![0x0a, api.len() as u8];
            tm.extend_from_slice(api.as_bytes());
            tm.extend([0x12, kind.len() as u8]);
            tm.extend_from_slice(kind.as_bytes());
            let mut v = b"k8s\0".to_vec();
            v.extend([0x0a, tm.len() as u8]);
            v.extend(tm);
            v
        };
        let ing = proto("networking.k8s.io/v1beta1", "Ingress");
        s.add(b"/registry/ingress/default/a", &ing);
        s.add(b"/registry/ingress/default/b", &ing);
        s.add(
            b"/registry/stable.example.com/crontabs/default/c",
            br#"{"apiVersion":"stable.example.com/v1","kind":"CronTab"}"#,
        );
        s.add(
            b"/registry/secrets/default/s",
            b"k8s:enc:aescbc:v1:key1:xxxx",
        );
        s.add(b"/registry/ranges/serviceips", b"raw");
        s.add(b"compact_rev_key", b"x");
        let rows = s.rows();
        let view: Vec<(&str, Option<&str>, &str, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r.resource.as_str(),
                    r.api_version.as_deref(),
                    r.encoding.as_str(),
                    r.count,
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                (
                    "crontabs.stable.example.com",
                    Some("stable.example.com/v1"),
                    "json",
                    1
                ),
                (
                    "ingresses",
                    Some("networking.k8s.io/v1beta1"),
                    "protobuf",
                    2
                ),
                ("ranges", None, "text", 1),
                ("secrets", None, "encrypted", 1),
            ]
        );
        assert_eq!(rows[1].kind.as_deref(), Some("Ingress"));
    }
}

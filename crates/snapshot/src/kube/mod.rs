//! The keyspace as Kubernetes sees it: objects by resource and namespace, and values
//! decoded into what the API would show.
//!
//! - [`keys`]: which resource, namespace and name a key is.
//! - [`value`]: what a value holds (protobuf, JSON, encrypted at rest, other).
//! - [`types`]: the protobuf messages of the common built-in kinds.

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

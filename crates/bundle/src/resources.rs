//! Exporting every listable API resource as re-appliable YAML.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::Value;

use crate::collect::{Content, Member};
use crate::error::{Error, Result};

/// Metadata fields that belong to one live object and make no sense when re-applied.
pub const STRIPPED_METADATA: [&str; 5] = [
    "managedFields",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "selfLink",
];

/// What the API export produced.
#[derive(Debug, Default)]
pub struct Export {
    pub(crate) members: Vec<Member>,
    /// Objects exported.
    pub objects: u64,
    /// Secret objects among them.
    pub secrets: u64,
    /// The apiserver's `gitVersion`.
    pub kubernetes_version: Option<String>,
    /// kubeadm's `clusterName` (`kubernetes` when not set).
    pub cluster_name: String,
    /// Resources that could not be listed (skipped, with the reason).
    pub warnings: Vec<String>,
}

/// Removes what belongs to the live object: `status` and [`STRIPPED_METADATA`].
pub fn clean_object(obj: &mut Value) {
    if let Some(map) = obj.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in STRIPPED_METADATA {
                meta.remove(f);
            }
        }
    }
}

/// Lists every resource the API serves with the `list` verb (preferred version of each
/// group; events and subresources skipped) and renders one multi-document YAML file per
/// resource and namespace; also fetches `kube-system/kubeadm-config`.
pub async fn export_resources(
    client: &kube::Client,
    meter: &crate::meter::Meter,
) -> Result<Export> {
    let kerr = |what: &str| {
        let what = what.to_string();
        move |source| Error::Kube { what, source }
    };
    let mut export = Export {
        kubernetes_version: client.apiserver_version().await.ok().map(|v| v.git_version),
        cluster_name: "kubernetes".to_string(),
        ..Export::default()
    };

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let kubeadm = cms
        .get("kubeadm-config")
        .await
        .map_err(kerr("get configmap kube-system/kubeadm-config"))?;
    if let Some(cc) = kubeadm
        .data
        .as_ref()
        .and_then(|d| d.get("ClusterConfiguration"))
        && let Ok(v) = serde_saphyr::from_str::<Value>(cc)
        && let Some(name) = v.get("clusterName").and_then(Value::as_str)
    {
        export.cluster_name = name.to_string();
    }
    let mut kubeadm_value = serde_json::to_value(&kubeadm).map_err(|e| Error::Encode {
        what: "kubeadm-config".into(),
        message: e.to_string(),
    })?;
    if let Some(m) = kubeadm_value.as_object_mut() {
        m.insert("apiVersion".into(), "v1".into());
        m.insert("kind".into(), "ConfigMap".into());
    }
    clean_object(&mut kubeadm_value);
    export.members.push(Member {
        path: "kubeadm/kubeadm-config.yaml".into(),
        content: Content::Memory(to_yaml(&kubeadm_value)?.into_bytes()),
    });

    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(kerr("discovery"))?;
    // (file path) -> documents
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) || ar.plural == "events" {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let group_dir = if ar.group.is_empty() {
                "core".to_string()
            } else {
                ar.group.clone()
            };
            let mut params = ListParams::default().limit(500);
            loop {
                let list = match api.list(&params).await {
                    Ok(l) => l,
                    Err(e) => {
                        export
                            .warnings
                            .push(format!("{} {}: {e}", ar.api_version, ar.plural));
                        break;
                    }
                };
                for obj in list.items {
                    let ns = obj.metadata.namespace.clone();
                    let mut v = serde_json::to_value(&obj).map_err(|e| Error::Encode {
                        what: format!(
                            "{} {}",
                            ar.plural,
                            obj.metadata.name.as_deref().unwrap_or("?")
                        ),
                        message: e.to_string(),
                    })?;
                    if let Some(m) = v.as_object_mut() {
                        m.insert("apiVersion".into(), ar.api_version.clone().into());
                        m.insert("kind".into(), ar.kind.clone().into());
                    }
                    clean_object(&mut v);
                    let path = match (&caps.scope, ns) {
                        (Scope::Namespaced, Some(ns)) => {
                            format!("resources/namespaces/{ns}/{group_dir}/{}.yaml", ar.plural)
                        }
                        _ => format!("resources/cluster/{group_dir}/{}.yaml", ar.plural),
                    };
                    files.entry(path).or_default().push(to_yaml(&v)?);
                    export.objects += 1;
                    meter.add(1);
                    if ar.group.is_empty() && ar.plural == "secrets" {
                        export.secrets += 1;
                    }
                }
                match list.metadata.continue_.as_deref() {
                    Some(token) if !token.is_empty() => {
                        params = ListParams::default().limit(500).continue_token(token);
                    }
                    _ => break,
                }
            }
        }
    }
    for (path, docs) in files {
        let mut text = String::new();
        for d in docs {
            text.push_str("---\n");
            text.push_str(&d);
            if !d.ends_with('\n') {
                text.push('\n');
            }
        }
        export.members.push(Member {
            path,
            content: Content::Memory(text.into_bytes()),
        });
    }
    Ok(export)
}

pub(crate) fn to_yaml(v: &Value) -> Result<String> {
    serde_saphyr::to_string(v).map_err(|e| Error::Encode {
        what: "YAML".into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_keeps_what_apply_needs() {
        let mut v = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "default", "uid": "u", "resourceVersion": "5",
                "creationTimestamp": "t", "selfLink": "/api/v1/...", "managedFields": [{}],
                "labels": {"a": "b"}},
            "data": {"k": "v"},
            "status": {"phase": "x"}
        });
        clean_object(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "x", "namespace": "default", "labels": {"a": "b"}},
                "data": {"k": "v"}
            })
        );
    }
}

//! Where the API server keeps each object: `/registry/<resource>/<namespace>/<name>`,
//! `/registry/<resource>/<name>` for cluster-scoped resources, and
//! `/registry/<group>/<resource>/...` for custom resources and a few built-in ones of
//! dotted groups (`apiregistration.k8s.io/apiservices`,
//! `apiextensions.k8s.io/customresourcedefinitions`).

use serde::Serialize;

/// The prefix the API server stores under (its `--etcd-prefix` default).
pub const REGISTRY: &str = "/registry/";

/// A parsed object key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectKey {
    /// The resource as `kubectl` names it (`configmaps`, `crontabs.stable.example.com`);
    /// `(non-registry)` for keys outside `/registry/`.
    pub resource: String,
    /// The namespace, `None` for cluster-scoped resources.
    pub namespace: Option<String>,
    /// The object's name (empty when the key names no object).
    pub name: String,
}

/// Storage names that differ from the resource's name.
fn alias(stored: &str) -> &str {
    match stored {
        "minions" => "nodes",
        "controllers" => "replicationcontrollers",
        "ingress" => "ingresses",
        "podsecuritypolicy" => "podsecuritypolicies",
        other => other,
    }
}

/// Parses a key. Never fails: keys of no known shape land in `(non-registry)` or keep
/// their first segment as the resource.
pub fn parse(key: &[u8]) -> ObjectKey {
    let text = String::from_utf8_lossy(key);
    let Some(rest) = text.strip_prefix(REGISTRY) else {
        return ObjectKey {
            resource: "(non-registry)".into(),
            namespace: None,
            name: text.into_owned(),
        };
    };
    let mut parts: Vec<&str> = rest.split('/').collect();
    let first = parts.remove(0);
    let resource = if first.contains('.') && !parts.is_empty() {
        // `<group>/<resource>/...`: name it `<resource>.<group>` as kubectl does.
        format!("{}.{first}", parts.remove(0))
    } else if first == "services" && matches!(parts.first(), Some(&"specs" | &"endpoints")) {
        // Services are kept under `services/specs/`, endpoints under
        // `services/endpoints/`.
        let sub = parts.remove(0);
        if sub == "specs" {
            "services"
        } else {
            "endpoints"
        }
        .to_string()
    } else {
        alias(first).to_string()
    };
    match parts.as_slice() {
        [] => ObjectKey {
            resource,
            namespace: None,
            name: String::new(),
        },
        [name] => ObjectKey {
            resource,
            namespace: None,
            name: (*name).to_string(),
        },
        [ns, name @ ..] => ObjectKey {
            resource,
            namespace: Some((*ns).to_string()),
            name: name.join("/"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str) -> (String, Option<String>, String) {
        let o = parse(k.as_bytes());
        (o.resource, o.namespace, o.name)
    }

    #[test]
    fn shapes() {
        assert_eq!(
            p("/registry/configmaps/kube-system/coredns"),
            (
                "configmaps".into(),
                Some("kube-system".into()),
                "coredns".into()
            )
        );
        assert_eq!(
            p("/registry/namespaces/default"),
            ("namespaces".into(), None, "default".into())
        );
        assert_eq!(
            p("/registry/minions/cp1"),
            ("nodes".into(), None, "cp1".into())
        );
        assert_eq!(
            p("/registry/services/specs/default/kubernetes"),
            (
                "services".into(),
                Some("default".into()),
                "kubernetes".into()
            )
        );
        assert_eq!(
            p("/registry/services/endpoints/default/kubernetes"),
            (
                "endpoints".into(),
                Some("default".into()),
                "kubernetes".into()
            )
        );
        assert_eq!(
            p("/registry/apiregistration.k8s.io/apiservices/v1.apps"),
            (
                "apiservices.apiregistration.k8s.io".into(),
                None,
                "v1.apps".into()
            )
        );
        assert_eq!(
            p("/registry/stable.example.com/crontabs/ns1/my-cron"),
            (
                "crontabs.stable.example.com".into(),
                Some("ns1".into()),
                "my-cron".into()
            )
        );
        assert_eq!(
            p("/registry/masterleases/10.77.0.11"),
            ("masterleases".into(), None, "10.77.0.11".into())
        );
        assert_eq!(
            p("/registry/ranges/serviceips"),
            ("ranges".into(), None, "serviceips".into())
        );
        assert_eq!(
            p("compact_rev_key"),
            ("(non-registry)".into(), None, "compact_rev_key".into())
        );
        assert_eq!(p("/registry/"), (String::new(), None, String::new()));
    }
}

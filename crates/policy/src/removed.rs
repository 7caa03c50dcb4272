//! API group/versions that Kubernetes stopped serving, by minor.
//!
//! Source: the Deprecated API Migration Guide,
//! <https://kubernetes.io/docs/reference/using-api/deprecation-guide/> (kubernetes/website
//! `content/en/docs/reference/using-api/deprecation-guide.md`), and for 1.16 also
//! <https://kubernetes.io/blog/2019/07/18/api-deprecations-in-1-16/>. The guide lists
//! removals in v1.16, v1.22, v1.25, v1.26, v1.27, v1.29 and v1.32; as read in 2026 it
//! lists none after v1.32 (through 1.36). Alpha versions, which may go without notice,
//! are not in the guide and not here.

use serde::Serialize;

use crate::version::Minor;

/// One API group/version of one resource that is no longer served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// The API group (`extensions`, `networking.k8s.io`).
    pub group: &'static str,
    /// The version within the group (`v1beta1`).
    pub version: &'static str,
    /// The resource, plural and lower case, as in URLs and RBAC rules (`ingresses`).
    pub resource: &'static str,
    /// The kind (`Ingress`).
    pub kind: &'static str,
    /// The first minor that no longer serves it.
    pub removed_in: Minor,
    /// The `group/version` to migrate to, or `None` when the API is gone without a
    /// successor (PodSecurityPolicy).
    pub replacement: Option<&'static str>,
    /// What changes on migration, in short.
    pub notes: &'static str,
}

impl Removal {
    /// The `apiVersion` as manifests spell it (`extensions/v1beta1`).
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

const fn r(
    removed_in: u32,
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    replacement: Option<&'static str>,
    notes: &'static str,
) -> Removal {
    Removal {
        group,
        version,
        resource,
        kind,
        removed_in: Minor::new(removed_in),
        replacement,
        notes,
    }
}

const APPS_V1_SELECTOR: &str =
    "spec.selector is required and immutable; use the template labels as the selector";

/// Every removal, by minor, in the guide's order within a minor.
#[rustfmt::skip]
pub const REMOVALS: &[Removal] = &[
    // v1.16 (https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-16)
    r(16, "extensions", "v1beta1", "networkpolicies", "NetworkPolicy",
        Some("networking.k8s.io/v1"), "networking.k8s.io/v1 available since v1.8"),
    r(16, "extensions", "v1beta1", "podsecuritypolicies", "PodSecurityPolicy",
        Some("policy/v1beta1"),
        "policy/v1beta1 available since v1.10, itself removed in v1.25 (no successor)"),
    r(16, "extensions", "v1beta1", "daemonsets", "DaemonSet", Some("apps/v1"),
        "spec.templateGeneration removed; spec.selector required and immutable; \
         spec.updateStrategy.type defaults to RollingUpdate (was OnDelete)"),
    r(16, "apps", "v1beta2", "daemonsets", "DaemonSet", Some("apps/v1"), APPS_V1_SELECTOR),
    r(16, "extensions", "v1beta1", "deployments", "Deployment", Some("apps/v1"),
        "spec.rollbackTo removed; spec.selector required and immutable; \
         progressDeadlineSeconds defaults to 600, revisionHistoryLimit to 10, \
         maxSurge/maxUnavailable to 25%"),
    r(16, "apps", "v1beta1", "deployments", "Deployment", Some("apps/v1"),
        "spec.rollbackTo removed; spec.selector required and immutable; \
         revisionHistoryLimit defaults to 10 (was 2)"),
    r(16, "apps", "v1beta2", "deployments", "Deployment", Some("apps/v1"), APPS_V1_SELECTOR),
    r(16, "apps", "v1beta1", "statefulsets", "StatefulSet", Some("apps/v1"),
        "spec.selector required and immutable; spec.updateStrategy.type defaults to \
         RollingUpdate (was OnDelete)"),
    r(16, "apps", "v1beta2", "statefulsets", "StatefulSet", Some("apps/v1"), APPS_V1_SELECTOR),
    r(16, "extensions", "v1beta1", "replicasets", "ReplicaSet", Some("apps/v1"),
        APPS_V1_SELECTOR),
    r(16, "apps", "v1beta1", "replicasets", "ReplicaSet", Some("apps/v1"), APPS_V1_SELECTOR),
    r(16, "apps", "v1beta2", "replicasets", "ReplicaSet", Some("apps/v1"), APPS_V1_SELECTOR),
    // v1.22 (https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-22)
    r(22, "admissionregistration.k8s.io", "v1beta1", "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration", Some("admissionregistration.k8s.io/v1"),
        "v1 defaults: failurePolicy Fail, matchPolicy Equivalent, timeoutSeconds 10; \
         sideEffects and admissionReviewVersions required; webhook names unique"),
    r(22, "admissionregistration.k8s.io", "v1beta1", "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration", Some("admissionregistration.k8s.io/v1"),
        "v1 defaults: failurePolicy Fail, matchPolicy Equivalent, timeoutSeconds 10; \
         sideEffects and admissionReviewVersions required; webhook names unique"),
    r(22, "apiextensions.k8s.io", "v1beta1", "customresourcedefinitions",
        "CustomResourceDefinition", Some("apiextensions.k8s.io/v1"),
        "spec.scope required; per-version schema, subresources and printer columns; \
         structural openAPIV3Schema required; preserveUnknownFields: true disallowed"),
    r(22, "apiregistration.k8s.io", "v1beta1", "apiservices", "APIService",
        Some("apiregistration.k8s.io/v1"), "no notable changes"),
    r(22, "authentication.k8s.io", "v1beta1", "tokenreviews", "TokenReview",
        Some("authentication.k8s.io/v1"), "no notable changes"),
    r(22, "authorization.k8s.io", "v1beta1", "localsubjectaccessreviews",
        "LocalSubjectAccessReview", Some("authorization.k8s.io/v1"),
        "spec.group renamed to spec.groups"),
    r(22, "authorization.k8s.io", "v1beta1", "selfsubjectaccessreviews",
        "SelfSubjectAccessReview", Some("authorization.k8s.io/v1"),
        "spec.group renamed to spec.groups"),
    r(22, "authorization.k8s.io", "v1beta1", "subjectaccessreviews", "SubjectAccessReview",
        Some("authorization.k8s.io/v1"), "spec.group renamed to spec.groups"),
    r(22, "authorization.k8s.io", "v1beta1", "selfsubjectrulesreviews",
        "SelfSubjectRulesReview", Some("authorization.k8s.io/v1"), "no notable changes"),
    r(22, "certificates.k8s.io", "v1beta1", "certificatesigningrequests",
        "CertificateSigningRequest", Some("certificates.k8s.io/v1"),
        "spec.signerName and spec.usages required; no kubernetes.io/legacy-unknown"),
    r(22, "coordination.k8s.io", "v1beta1", "leases", "Lease",
        Some("coordination.k8s.io/v1"), "no notable changes"),
    r(22, "extensions", "v1beta1", "ingresses", "Ingress", Some("networking.k8s.io/v1"),
        "spec.backend renamed spec.defaultBackend; serviceName/servicePort become \
         service.name/service.port; pathType required"),
    r(22, "networking.k8s.io", "v1beta1", "ingresses", "Ingress",
        Some("networking.k8s.io/v1"),
        "spec.backend renamed spec.defaultBackend; serviceName/servicePort become \
         service.name/service.port; pathType required"),
    r(22, "networking.k8s.io", "v1beta1", "ingressclasses", "IngressClass",
        Some("networking.k8s.io/v1"), "no notable changes"),
    r(22, "rbac.authorization.k8s.io", "v1beta1", "clusterroles", "ClusterRole",
        Some("rbac.authorization.k8s.io/v1"), "no notable changes"),
    r(22, "rbac.authorization.k8s.io", "v1beta1", "clusterrolebindings", "ClusterRoleBinding",
        Some("rbac.authorization.k8s.io/v1"), "no notable changes"),
    r(22, "rbac.authorization.k8s.io", "v1beta1", "roles", "Role",
        Some("rbac.authorization.k8s.io/v1"), "no notable changes"),
    r(22, "rbac.authorization.k8s.io", "v1beta1", "rolebindings", "RoleBinding",
        Some("rbac.authorization.k8s.io/v1"), "no notable changes"),
    r(22, "scheduling.k8s.io", "v1beta1", "priorityclasses", "PriorityClass",
        Some("scheduling.k8s.io/v1"), "no notable changes"),
    r(22, "storage.k8s.io", "v1beta1", "csidrivers", "CSIDriver", Some("storage.k8s.io/v1"),
        "no notable changes"),
    r(22, "storage.k8s.io", "v1beta1", "csinodes", "CSINode", Some("storage.k8s.io/v1"),
        "no notable changes"),
    r(22, "storage.k8s.io", "v1beta1", "storageclasses", "StorageClass",
        Some("storage.k8s.io/v1"), "no notable changes"),
    r(22, "storage.k8s.io", "v1beta1", "volumeattachments", "VolumeAttachment",
        Some("storage.k8s.io/v1"), "no notable changes"),
    // v1.25 (https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-25)
    r(25, "batch", "v1beta1", "cronjobs", "CronJob", Some("batch/v1"), "no notable changes"),
    r(25, "discovery.k8s.io", "v1beta1", "endpointslices", "EndpointSlice",
        Some("discovery.k8s.io/v1"),
        "per-endpoint nodeName and zone replace topology; topology becomes \
         deprecatedTopology"),
    r(25, "events.k8s.io", "v1beta1", "events", "Event", Some("events.k8s.io/v1"),
        "type is Normal or Warning; involvedObject renamed regarding; eventTime, series \
         and reportingController/reportingInstance replace the deprecated fields"),
    r(25, "autoscaling", "v2beta1", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
        Some("autoscaling/v2"),
        "targetAverageUtilization replaced by target.averageUtilization with \
         target.type: Utilization"),
    r(25, "policy", "v1beta1", "poddisruptionbudgets", "PodDisruptionBudget",
        Some("policy/v1"),
        "an empty spec.selector selects every pod of the namespace in policy/v1 (none in \
         v1beta1)"),
    r(25, "policy", "v1beta1", "podsecuritypolicies", "PodSecurityPolicy", None,
        "no successor: migrate to Pod Security Admission or a third-party admission \
         webhook; the PodSecurityPolicy admission controller is removed too"),
    r(25, "node.k8s.io", "v1beta1", "runtimeclasses", "RuntimeClass", Some("node.k8s.io/v1"),
        "no notable changes"),
    // v1.26 (https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-26)
    r(26, "flowcontrol.apiserver.k8s.io", "v1beta1", "flowschemas", "FlowSchema",
        Some("flowcontrol.apiserver.k8s.io/v1beta2"),
        "the guide names v1beta2, itself removed in v1.29; v1beta3 exists since v1.26 \
         (removed in v1.32), v1 since v1.29"),
    r(26, "flowcontrol.apiserver.k8s.io", "v1beta1", "prioritylevelconfigurations",
        "PriorityLevelConfiguration", Some("flowcontrol.apiserver.k8s.io/v1beta2"),
        "the guide names v1beta2, itself removed in v1.29; v1beta3 exists since v1.26 \
         (removed in v1.32), v1 since v1.29"),
    r(26, "autoscaling", "v2beta2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
        Some("autoscaling/v2"),
        "targetAverageUtilization replaced by target.averageUtilization with \
         target.type: Utilization"),
    // v1.27 (https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-27)
    r(27, "storage.k8s.io", "v1beta1", "csistoragecapacities", "CSIStorageCapacity",
        Some("storage.k8s.io/v1"), "storage.k8s.io/v1 available since v1.24"),
    // v1.29 (https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-29)
    r(29, "flowcontrol.apiserver.k8s.io", "v1beta2", "flowschemas", "FlowSchema",
        Some("flowcontrol.apiserver.k8s.io/v1"),
        "v1 since v1.29 (or v1beta3 since v1.26, removed in v1.32)"),
    r(29, "flowcontrol.apiserver.k8s.io", "v1beta2", "prioritylevelconfigurations",
        "PriorityLevelConfiguration", Some("flowcontrol.apiserver.k8s.io/v1"),
        "spec.limited.assuredConcurrencyShares renamed nominalConcurrencyShares; in v1 an \
         explicit 0 is no longer changed to 30"),
    // v1.32 (https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-32)
    r(32, "flowcontrol.apiserver.k8s.io", "v1beta3", "flowschemas", "FlowSchema",
        Some("flowcontrol.apiserver.k8s.io/v1"), "v1 available since v1.29"),
    r(32, "flowcontrol.apiserver.k8s.io", "v1beta3", "prioritylevelconfigurations",
        "PriorityLevelConfiguration", Some("flowcontrol.apiserver.k8s.io/v1"),
        "in v1, nominalConcurrencyShares defaults to 30 only when unset; an explicit 0 \
         stays 0"),
];

/// Everything no longer served by `target`: removed in `target` or earlier.
pub fn removed_by(target: Minor) -> impl Iterator<Item = &'static Removal> {
    REMOVALS.iter().filter(move |r| r.removed_in <= target)
}

/// What an upgrade from `from` to `to` stops serving: removed after `from`, at or
/// before `to`.
pub fn removed_between(from: Minor, to: Minor) -> impl Iterator<Item = &'static Removal> {
    REMOVALS
        .iter()
        .filter(move |r| from < r.removed_in && r.removed_in <= to)
}

/// The removal of `resource` in `group`/`version`, if that API version was removed.
///
/// `resource` matches the plural resource (`ingresses`) or the kind (`Ingress`), case
/// not significant; `group` is the API group (`extensions`, `networking.k8s.io`).
pub fn lookup(group: &str, version: &str, resource: &str) -> Option<&'static Removal> {
    REMOVALS.iter().find(|r| {
        r.group == group
            && r.version == version
            && (r.resource.eq_ignore_ascii_case(resource) || r.kind.eq_ignore_ascii_case(resource))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_extensions_goes_in_1_22() {
        let in_22: Vec<_> = removed_by(Minor::new(22))
            .filter(|r| r.resource == "ingresses")
            .map(|r| r.api_version())
            .collect();
        assert_eq!(in_22, ["extensions/v1beta1", "networking.k8s.io/v1beta1"]);
        assert!(!removed_by(Minor::new(21)).any(|r| r.resource == "ingresses"));
        // 1.21 still sees the 1.16 removals.
        assert!(removed_by(Minor::new(21)).any(|r| r.kind == "Deployment"));
        assert!(removed_by(Minor::new(21)).all(|r| r.removed_in == Minor::new(16)));
    }

    #[test]
    fn counts_per_minor() {
        let count = |m: u32| {
            REMOVALS
                .iter()
                .filter(|r| r.removed_in == Minor::new(m))
                .count()
        };
        assert_eq!(count(16), 12);
        assert_eq!(count(22), 23);
        assert_eq!(count(25), 7);
        assert_eq!(count(26), 3);
        assert_eq!(count(27), 1);
        assert_eq!(count(29), 2);
        assert_eq!(count(32), 2);
        assert_eq!(removed_by(Minor::new(36)).count(), REMOVALS.len());
        assert_eq!(removed_by(Minor::new(15)).count(), 0);
    }

    #[test]
    fn rows_are_unique_and_ordered() {
        for (i, a) in REMOVALS.iter().enumerate() {
            for b in &REMOVALS[i + 1..] {
                assert!(
                    (a.group, a.version, a.resource) != (b.group, b.version, b.resource),
                    "{} {} twice",
                    a.api_version(),
                    a.resource
                );
                assert!(a.removed_in <= b.removed_in);
            }
            assert_eq!(a.resource, a.resource.to_ascii_lowercase());
            assert!(a.replacement != Some(a.api_version().as_str()));
        }
    }

    #[test]
    fn lookups() {
        let r = lookup("extensions", "v1beta1", "ingresses").unwrap();
        assert_eq!(r.removed_in, Minor::new(22));
        assert_eq!(r.replacement, Some("networking.k8s.io/v1"));
        assert_eq!(lookup("extensions", "v1beta1", "Ingress"), Some(r));
        assert_eq!(
            lookup("policy", "v1beta1", "podsecuritypolicies")
                .unwrap()
                .replacement,
            None
        );
        assert_eq!(
            lookup("batch", "v1beta1", "CronJob").unwrap().removed_in,
            Minor::new(25)
        );
        assert_eq!(
            lookup("flowcontrol.apiserver.k8s.io", "v1beta3", "flowschemas")
                .unwrap()
                .removed_in,
            Minor::new(32)
        );
        assert_eq!(lookup("networking.k8s.io", "v1", "ingresses"), None);
        assert_eq!(lookup("batch", "v1", "cronjobs"), None);
    }

    #[test]
    fn removed_between_an_upgrade() {
        let got: Vec<_> = removed_between(Minor::new(24), Minor::new(26))
            .map(|r| (r.removed_in.number(), r.kind))
            .collect();
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|(m, _)| *m == 25 || *m == 26));
        assert_eq!(removed_between(Minor::new(22), Minor::new(24)).count(), 0);
    }
}

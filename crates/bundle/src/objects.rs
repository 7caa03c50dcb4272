//! The API objects of a bundle, as `restore objects` and `backup diff` see them: read
//! from `resources/`, filtered, normalised (the metadata a live object carries and a
//! backup should not be compared on), compared, checked against the rules of what is
//! never restored (events, objects a controller recreates, per-namespace system
//! objects) and ordered for re-creation. Pure: no I/O, no API calls.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Metadata that belongs to one live object: never compared, never applied.
pub const IGNORED_METADATA: [&str; 7] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
];

/// Annotations written by tools and controllers, not by the object's author: never
/// compared (the first is kept when applying, so that `kubectl apply` goes on working).
pub const IGNORED_ANNOTATIONS: [&str; 3] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "control-plane.alpha.kubernetes.io/leader",
];

/// The field manager of `restore objects`' server-side applies.
pub const FIELD_MANAGER: &str = "kastellan-restore";

/// Which object: the API group (not the version: an object is the same one whichever
/// version serves it), kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectKey {
    /// The API group (`""` for the core group).
    pub group: String,
    /// The kind.
    pub kind: String,
    /// The namespace (none: cluster-scoped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// `Kind` for the core group, `Kind.group` for the others.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// `ns/name`, or `name` when cluster-scoped.
    pub fn namespaced_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.qualified_kind(), self.namespaced_name())
    }
}

/// One object from a bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Which object.
    pub key: ObjectKey,
    /// The `apiVersion` it was exported as.
    pub api_version: String,
    /// The resource's plural name (from the member's file name).
    pub plural: String,
    /// The whole object, as exported.
    pub value: Value,
}

impl Object {
    /// Builds an object from its exported value; `plural` is the resource's name.
    pub fn from_value(value: Value, plural: &str) -> Option<Object> {
        let api_version = value.get("apiVersion")?.as_str()?.to_string();
        let kind = value.get("kind")?.as_str()?.to_string();
        let meta = value.get("metadata")?;
        let name = meta.get("name")?.as_str()?.to_string();
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let group = match api_version.rsplit_once('/') {
            Some((g, _)) => g.to_string(),
            None => String::new(),
        };
        Some(Object {
            key: ObjectKey {
                group,
                kind,
                namespace,
                name,
            },
            api_version,
            plural: plural.to_string(),
            value,
        })
    }

    /// The object's labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        string_map(self.value.pointer("/metadata/labels"))
    }

    /// The kind and name of the object's controller (its ownerReference marked
    /// `controller: true`).
    pub fn controller(&self) -> Option<(String, String)> {
        self.value
            .pointer("/metadata/ownerReferences")?
            .as_array()?
            .iter()
            .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            .map(|r| {
                (
                    r.get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    r.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                )
            })
    }

    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.value.pointer(pointer).and_then(Value::as_str)
    }
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the objects of a bundle's `resources/` members (path and bytes, as
/// [`crate::verify_and_read_resources`] returns them), sorted by key.
pub fn parse_resources(members: &BTreeMap<String, Vec<u8>>) -> Result<Vec<Object>> {
    let mut out = Vec::new();
    for (path, bytes) in members {
        let bad = |message: String| Error::BadResource {
            member: path.clone(),
            message,
        };
        let Some(file) = path.rsplit('/').next() else {
            continue;
        };
        let Some(plural) = file.strip_suffix(".yaml") else {
            continue;
        };
        let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        let docs: Vec<Value> =
            serde_saphyr::from_str_multiple(text).map_err(|e| bad(e.to_string()))?;
        for doc in docs {
            if doc.is_null() {
                continue;
            }
            let obj = Object::from_value(doc, plural)
                .ok_or_else(|| bad("a document without apiVersion, kind or name".into()))?;
            out.push(obj);
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// The objects of a raw etcd snapshot (see [`objects_from_snapshot`]).
#[derive(Debug, Clone, Default)]
pub struct SnapshotObjects {
    /// The snapshot's revision.
    pub revision: i64,
    /// Objects decoded whole, cleaned as `backup create` exports them: restorable.
    pub objects: Vec<Object>,
    /// Objects kastellan decodes only in part (or not at all: encrypted without the
    /// key), with why: named, never restored.
    pub partial: Vec<(Object, String)>,
}

/// Reads every live object under `/registry/` of a raw etcd snapshot (the file's bytes,
/// as [`kastellan_snapshot::SnapshotFile::bytes`] gives them), decrypting values
/// encrypted at rest with `keyring`. Events and values that are not objects are left
/// out. `path` names the file in errors.
pub fn objects_from_snapshot(
    path: &std::path::Path,
    file: &[u8],
    keyring: Option<&kastellan_snapshot::kube::encryption::Keyring>,
) -> Result<SnapshotObjects> {
    use kastellan_snapshot::kube::{keys, value};
    use kastellan_snapshot::mvcc::{Select, view_of_file};
    let view = view_of_file(
        file,
        &Select::Prefix(keys::REGISTRY.as_bytes().to_vec()),
        None,
    )
    .map_err(|e| Error::BadSnapshot {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut out = SnapshotObjects {
        revision: view.revision,
        ..SnapshotObjects::default()
    };
    for (key, kv) in &view.keys {
        let k = keys::parse(key);
        if k.resource == "events" || k.name.is_empty() {
            continue;
        }
        let d = value::decode_with(key, &kv.value, keyring);
        let Some(mut v) = d.object.clone() else {
            if let (Some(api_version), Some(kind)) = (&d.api_version, &d.kind) {
                // Encrypted, or an envelope whose body does not decode: named from
                // its key.
                let stub = serde_json::json!({
                    "apiVersion": api_version,
                    "kind": kind,
                    "metadata": {"name": k.name, "namespace": k.namespace},
                });
                if let Some(o) = Object::from_value(stub, &k.resource) {
                    let why = d.note.unwrap_or_else(|| "not decoded".into());
                    out.partial.push((o, why));
                }
            }
            continue;
        };
        if d.complete {
            crate::resources::clean_object(&mut v);
            if let Some(o) = Object::from_value(v, &k.resource) {
                out.objects.push(o);
            }
        } else if let Some(o) = Object::from_value(v, &k.resource) {
            let why = d.note.unwrap_or_else(|| "only its metadata decodes".into());
            out.partial.push((o, why));
        }
    }
    out.objects.sort_by(|a, b| a.key.cmp(&b.key));
    out.partial.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    Ok(out)
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` (or `key==value`).
    Equals(String, String),
    /// `key!=value` (also true when the label is absent).
    NotEquals(String, String),
    /// `key`: the label is present.
    Exists(String),
    /// `!key`: the label is absent.
    Absent(String),
}

/// A label selector: comma-separated requirements, all of which must hold
/// (`app=shop,tier!=cache,!legacy`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector(pub Vec<Requirement>);

impl FromStr for Selector {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim) {
            let bad_key = |k: &str| {
                k.is_empty()
                    || k.chars()
                        .any(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(c)))
            };
            let req = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::Absent(k.trim().into())
            } else {
                Requirement::Exists(part.into())
            };
            let key = match &req {
                Requirement::Equals(k, _)
                | Requirement::NotEquals(k, _)
                | Requirement::Exists(k)
                | Requirement::Absent(k) => k,
            };
            if bad_key(key) {
                return Err(format!(
                    "'{part}' is not a label requirement (KEY=VALUE, KEY!=VALUE, KEY or !KEY)"
                ));
            }
            reqs.push(req);
        }
        Ok(Selector(reqs))
    }
}

impl Selector {
    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }
}

/// Which objects to consider; empty lists match everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only objects in these namespaces, and these Namespace objects themselves.
    pub namespaces: Vec<String>,
    /// Only these kinds: a kind, plural or short name, optionally `.group`
    /// (`ConfigMap`, `configmaps`, `cm`, `deployments.apps`), case-insensitive.
    pub kinds: Vec<String>,
    /// Only objects of this name.
    pub name: Option<String>,
    /// Only objects whose labels match.
    pub selector: Option<Selector>,
}

/// kubectl's short names of the common kinds.
const SHORT_NAMES: [(&str, &str); 16] = [
    ("cm", "configmaps"),
    ("svc", "services"),
    ("deploy", "deployments"),
    ("sa", "serviceaccounts"),
    ("ns", "namespaces"),
    ("ds", "daemonsets"),
    ("sts", "statefulsets"),
    ("rs", "replicasets"),
    ("po", "pods"),
    ("pvc", "persistentvolumeclaims"),
    ("pv", "persistentvolumes"),
    ("crd", "customresourcedefinitions"),
    ("cj", "cronjobs"),
    ("ing", "ingresses"),
    ("ep", "endpoints"),
    ("netpol", "networkpolicies"),
];

impl Filter {
    /// Whether `obj` is selected. A Namespace named by [`Filter::namespaces`] always is
    /// (its objects need it); with namespaces given, no other cluster-scoped object is.
    pub fn matches(&self, obj: &Object) -> bool {
        let k = &obj.key;
        if !self.namespaces.is_empty() {
            if k.group.is_empty() && k.kind == "Namespace" && k.namespace.is_none() {
                return self.namespaces.contains(&k.name);
            }
            match &k.namespace {
                Some(ns) if self.namespaces.contains(ns) => {}
                _ => return false,
            }
        }
        if !self.kinds.is_empty() && !self.kinds.iter().any(|f| kind_matches(f, obj)) {
            return false;
        }
        if let Some(n) = &self.name
            && *n != k.name
        {
            return false;
        }
        if let Some(s) = &self.selector
            && !s.matches(&obj.labels())
        {
            return false;
        }
        true
    }
}

fn kind_matches(filter: &str, obj: &Object) -> bool {
    let f = filter.to_ascii_lowercase();
    let (name, group) = match f.split_once('.') {
        Some((n, g)) => (n.to_string(), Some(g.to_string())),
        None => (f.clone(), None),
    };
    if let Some(g) = &group {
        let obj_group = if obj.key.group.is_empty() {
            "core"
        } else {
            obj.key.group.as_str()
        };
        if *g != obj_group && !(g.is_empty() && obj.key.group.is_empty()) {
            return false;
        }
    }
    let name = SHORT_NAMES
        .iter()
        .find(|(s, _)| *s == name)
        .map(|(_, p)| (*p).to_string())
        .unwrap_or(name);
    let kind = obj.key.kind.to_ascii_lowercase();
    name == kind || name == obj.plural || name == format!("{kind}s")
}

/// Why an object is not restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "rule")]
pub enum Skip {
    /// An Event: a record of the past, not state.
    Event,
    /// Its controller recreates it.
    OwnedBy {
        /// The controller's kind.
        kind: String,
        /// Its name.
        name: String,
    },
    /// Made and kept by the cluster itself.
    System {
        /// By whom, and why it must not be restored.
        why: String,
    },
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Event => f.write_str("an Event: a record of the past, not state"),
            Skip::OwnedBy { kind, name } => {
                write!(f, "owned by {kind}/{name} (its controller recreates it)")
            }
            Skip::System { why } => f.write_str(why),
        }
    }
}

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The rules of what is never restored, with what they need to know about the other
/// objects of the bundle (the Services whose Endpoints their controller maintains).
#[derive(Debug, Clone, Default)]
pub struct SkipRules {
    /// `ns/name` of the Services with a selector.
    selector_services: BTreeSet<(String, String)>,
}

impl SkipRules {
    /// The rules for a bundle holding `all`.
    pub fn new(all: &[Object]) -> SkipRules {
        let selector_services = all
            .iter()
            .filter(|o| o.key.group.is_empty() && o.key.kind == "Service")
            .filter(|o| {
                o.value
                    .pointer("/spec/selector")
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
            })
            .filter_map(|o| Some((o.key.namespace.clone()?, o.key.name.clone())))
            .collect();
        SkipRules { selector_services }
    }

    /// Why `obj` must not be restored, if it must not.
    pub fn reason(&self, obj: &Object) -> Option<Skip> {
        let k = &obj.key;
        let core = k.group.is_empty();
        let system = |why: &str| Some(Skip::System { why: why.into() });
        if k.kind == "Event" && (core || k.group == "events.k8s.io") {
            return Some(Skip::Event);
        }
        if let Some((kind, name)) = obj.controller() {
            return Some(Skip::OwnedBy { kind, name });
        }
        let ns = k.namespace.as_deref();
        match (core, k.kind.as_str()) {
            (true, "Namespace") if SYSTEM_NAMESPACES.contains(&k.name.as_str()) => {
                return system("a system namespace: every cluster has it");
            }
            (true, "ConfigMap") if k.name == "kube-root-ca.crt" => {
                return system(
                    "the cluster CA, published into every namespace by the controller-manager",
                );
            }
            (true, "Secret")
                if obj.str_at("/type") == Some("kubernetes.io/service-account-token") =>
            {
                return system(
                    "a ServiceAccount token: the controller-manager mints a new one for its ServiceAccount",
                );
            }
            (true, "ServiceAccount") if k.name == "default" => {
                return system("created in every namespace by the controller-manager");
            }
            (true, "Service" | "Endpoints") if ns == Some("default") && k.name == "kubernetes" => {
                return system("the apiserver's own Service, kept by the apiserver");
            }
            (true, "Endpoints") => {
                if let Some(ns) = ns
                    && self
                        .selector_services
                        .contains(&(ns.to_string(), k.name.clone()))
                {
                    return Some(Skip::OwnedBy {
                        kind: "Service".into(),
                        name: k.name.clone(),
                    });
                }
            }
            (true, "Node") => return system("registered by its kubelet"),
            (true, "ComponentStatus") => return system("computed by the apiserver on each read"),
            _ => {}
        }
        if k.group == "coordination.k8s.io" && k.kind == "Lease" {
            return system("a lease: heartbeat or leader-election state its holder rewrites");
        }
        if k.group == "discovery.k8s.io"
            && k.kind == "EndpointSlice"
            && let Some(by) = obj.labels().get("endpointslice.kubernetes.io/managed-by")
        {
            return Some(Skip::System {
                why: format!("maintained by {by}"),
            });
        }
        if k.group == "rbac.authorization.k8s.io"
            && obj
                .labels()
                .get("kubernetes.io/bootstrapping")
                .map(String::as_str)
                == Some("rbac-defaults")
        {
            return system("default RBAC, reconciled by the apiserver when it starts");
        }
        if k.group == "apiregistration.k8s.io"
            && obj
                .labels()
                .contains_key("kube-aggregator.kubernetes.io/automanaged")
        {
            return system("registered by the apiserver for a built-in API");
        }
        if k.group.starts_with("flowcontrol.apiserver.k8s.io")
            && obj.str_at("/metadata/annotations/apf.kubernetes.io~1autoupdate-spec")
                == Some("true")
        {
            return system("a built-in flow-control object, kept by the apiserver");
        }
        if k.group == "scheduling.k8s.io"
            && k.kind == "PriorityClass"
            && k.name.starts_with("system-")
        {
            return system("a built-in priority class");
        }
        None
    }
}

/// The object as it is compared: no `status`, none of [`IGNORED_METADATA`] or
/// [`IGNORED_ANNOTATIONS`], no ownerReference uids, no allocated Service cluster IPs
/// (`None`, a headless Service, is kept), no ServiceAccount token Secrets in a
/// ServiceAccount's `secrets`; maps sorted by key.
pub fn normalize(v: &Value) -> Value {
    let mut v = v.clone();
    strip(&mut v, true);
    sorted(v)
}

/// The object as `restore objects` applies it: like [`normalize`] but keeping
/// `kubectl.kubernetes.io/last-applied-configuration`.
pub fn prepare_for_apply(v: &Value) -> Value {
    let mut v = v.clone();
    strip(&mut v, false);
    v
}

fn strip(v: &mut Value, all_annotations: bool) {
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let core = v.get("apiVersion").and_then(Value::as_str) == Some("v1");
    let Some(map) = v.as_object_mut() else {
        return;
    };
    map.remove("status");
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in IGNORED_METADATA {
            meta.remove(f);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for a in IGNORED_ANNOTATIONS {
                if all_annotations || a != IGNORED_ANNOTATIONS[0] {
                    ann.remove(a);
                }
            }
        }
        remove_if_empty(meta, "annotations");
        if let Some(refs) = meta
            .get_mut("ownerReferences")
            .and_then(Value::as_array_mut)
        {
            for r in refs.iter_mut().filter_map(Value::as_object_mut) {
                r.remove("uid");
            }
        }
    }
    if core
        && kind == "Service"
        && let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut)
    {
        let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
        if !headless {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    }
    if core && kind == "ServiceAccount" {
        let token = format!("{name}-token-");
        if let Some(secrets) = map.get_mut("secrets").and_then(Value::as_array_mut) {
            secrets.retain(|s| {
                !s.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with(&token))
            });
        }
        remove_if_empty(map, "secrets");
    }
}

fn remove_if_empty(map: &mut Map<String, Value>, key: &str) {
    let empty = match map.get(key) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Null) => true,
        _ => false,
    };
    if empty {
        map.remove(key);
    }
}

fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The normalised object as YAML lines (what diffs are made of).
pub fn normalized_yaml(v: &Value) -> String {
    serde_saphyr::to_string(&normalize(v)).unwrap_or_else(|e| format!("<not YAML: {e}>\n"))
}

/// A unified line diff of `old` and `new` (`-` old, `+` new, two lines of context;
/// `@@` lines between hunks), empty when they are equal.
pub fn line_diff(old: &str, new: &str) -> Vec<String> {
    let diff = similar::TextDiff::from_lines(old, new);
    let mut out = Vec::new();
    for (i, group) in diff.grouped_ops(2).iter().enumerate() {
        if i > 0 {
            out.push("@@".to_string());
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let sign = match change.tag() {
                    similar::ChangeTag::Delete => '-',
                    similar::ChangeTag::Insert => '+',
                    similar::ChangeTag::Equal => ' ',
                };
                out.push(format!("{sign}{}", change.value().trim_end_matches('\n')));
            }
        }
    }
    out
}

/// How a backed-up object compares with the live one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Compared {
    /// Not in the cluster.
    Missing,
    /// The same, once normalised.
    Same,
    /// Different: the line diff of the normalised YAML, `-` live, `+` backup.
    Changed {
        /// The diff's lines.
        diff: Vec<String>,
    },
}

/// Compares a backed-up object with the live one (none: missing).
pub fn compare(backup: &Value, live: Option<&Value>) -> Compared {
    let Some(live) = live else {
        return Compared::Missing;
    };
    if normalize(backup) == normalize(live) {
        return Compared::Same;
    }
    Compared::Changed {
        diff: line_diff(&normalized_yaml(live), &normalized_yaml(backup)),
    }
}

/// When the live object was last written, by its `managedFields` times (none when it
/// has none).
pub fn last_written(live: &Value) -> Option<jiff::Timestamp> {
    live.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .filter_map(|m| m.get("time")?.as_str()?.parse::<jiff::Timestamp>().ok())
        .max()
}

/// Where an object goes in the order of re-creation: Namespaces, CRDs,
/// ServiceAccounts, ConfigMaps and Secrets, StorageClasses, PVs, PVCs, Services,
/// workloads (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs), then the rest.
pub fn apply_rank(key: &ObjectKey) -> u8 {
    match (key.group.as_str(), key.kind.as_str()) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        ("", "ServiceAccount") => 2,
        ("", "ConfigMap" | "Secret") => 3,
        ("storage.k8s.io", "StorageClass") => 4,
        ("", "PersistentVolume") => 5,
        ("", "PersistentVolumeClaim") => 6,
        ("", "Service") => 7,
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => 8,
        ("batch", "Job" | "CronJob") => 8,
        _ => 9,
    }
}

/// Sorts `items` into the order of re-creation ([`apply_rank`], then by key).
pub fn sort_for_apply<T>(items: &mut [T], key: impl Fn(&T) -> &ObjectKey) {
    items.sort_by(|a, b| {
        let (a, b) = (key(a), key(b));
        (apply_rank(a), a).cmp(&(apply_rank(b), b))
    });
}

/// What `restore objects` does with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Create it (missing).
    Create,
    /// Nothing: it is the same.
    Unchanged,
    /// Nothing: a rule says it is never restored.
    Skip,
    /// Nothing: it changed, and overwriting was not asked for.
    Conflict,
    /// Apply the backup over it, taking its fields (asked for).
    Overwrite,
}

/// One object's decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// What is done.
    pub action: Action,
    /// How it compares with the live one (not compared when skipped).
    pub compared: Option<Compared>,
    /// Why it is skipped.
    pub skip: Option<Skip>,
    /// When the live object was last written, if at or after the second the backup
    /// was made (both times are to the second).
    pub changed_after_backup: Option<jiff::Timestamp>,
}

/// Decides what to do with a backed-up object, given the live one (none: missing).
pub fn decide(
    skip: Option<Skip>,
    backup: &Value,
    live: Option<&Value>,
    overwrite: bool,
    backup_time: Option<jiff::Timestamp>,
) -> Decision {
    if let Some(skip) = skip {
        return Decision {
            action: Action::Skip,
            compared: None,
            skip: Some(skip),
            changed_after_backup: None,
        };
    }
    let compared = compare(backup, live);
    let changed_after_backup = match (live.and_then(last_written), backup_time) {
        // Both are to the second, and the bundle's time is taken after its export:
        // a write in that same second may have come after the export.
        (Some(w), Some(b)) if w >= b => Some(w),
        _ => None,
    };
    let action = match (&compared, overwrite) {
        (Compared::Missing, _) => Action::Create,
        (Compared::Same, _) => Action::Unchanged,
        (Compared::Changed { .. }, false) => Action::Conflict,
        (Compared::Changed { .. }, true) => Action::Overwrite,
    };
    Decision {
        action,
        compared: Some(compared),
        skip: None,
        changed_after_backup,
    }
}

/// How an object differs between two bundles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    /// Only in the second.
    Added,
    /// Only in the first.
    Removed,
    /// In both, different once normalised.
    Changed,
}

/// One difference between two bundles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    /// Which object.
    #[serde(flatten)]
    pub key: ObjectKey,
    /// How it differs.
    pub change: Change,
    /// For [`Change::Changed`]: the line diff of the normalised YAML, `-` first
    /// bundle, `+` second.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
}

/// The objects added, removed and changed from `a` to `b`, by kind, namespace and
/// name. Objects that are never restored ([`SkipRules`]: events, owned objects,
/// leases, ...) are left out unless `everything`: they change on their own.
pub fn diff_bundles(a: &[Object], b: &[Object], everything: bool) -> Vec<Difference> {
    let keep = |all: &[Object]| -> BTreeMap<ObjectKey, Value> {
        let rules = SkipRules::new(all);
        all.iter()
            .filter(|o| everything || rules.reason(o).is_none())
            .map(|o| (o.key.clone(), o.value.clone()))
            .collect()
    };
    let (a, b) = (keep(a), keep(b));
    let mut out = Vec::new();
    for (key, va) in &a {
        match b.get(key) {
            None => out.push(Difference {
                key: key.clone(),
                change: Change::Removed,
                diff: Vec::new(),
            }),
            Some(vb) => {
                if normalize(va) != normalize(vb) {
                    out.push(Difference {
                        key: key.clone(),
                        change: Change::Changed,
                        diff: line_diff(&normalized_yaml(va), &normalized_yaml(vb)),
                    });
                }
            }
        }
    }
    for key in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(Difference {
            key: key.clone(),
            change: Change::Added,
            diff: Vec::new(),
        });
    }
    out.sort_by(|x, y| {
        (&x.key.kind, &x.key.namespace, &x.key.name, x.change).cmp(&(
            &y.key.kind,
            &y.key.namespace,
            &y.key.name,
            y.change,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value, plural: &str) -> Object {
        Object::from_value(v, plural).unwrap()
    }

    fn cm(ns: &str, name: &str, data: Value) -> Object {
        obj(
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns}, "data": data}),
            "configmaps",
        )
    }

    #[test]
    fn resources_are_read_from_multi_document_yaml() {
        let mut m = BTreeMap::new();
        m.insert(
            "resources/namespaces/shop/core/configmaps.yaml".to_string(),
            b"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: shop\ndata:\n  k: v\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: shop\n".to_vec(),
        );
        m.insert(
            "resources/cluster/apps/deployments.yaml".to_string(),
            b"---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n"
                .to_vec(),
        );
        let objs = parse_resources(&m).unwrap();
        let keys: Vec<String> = objs.iter().map(|o| o.key.to_string()).collect();
        assert_eq!(
            keys,
            [
                "ConfigMap shop/a",
                "ConfigMap shop/b",
                "Deployment.apps shop/web"
            ]
        );
        assert_eq!(objs[2].key.group, "apps");
        assert_eq!(objs[2].plural, "deployments");
        assert_eq!(objs[1].value["data"]["k"], "v");

        m.insert(
            "resources/cluster/core/namespaces.yaml".into(),
            b"---\nkind: Namespace\n".to_vec(),
        );
        let err = parse_resources(&m).unwrap_err().to_string();
        assert!(
            err.contains("resources/cluster/core/namespaces.yaml"),
            "{err}"
        );
    }

    #[test]
    fn normalisation_drops_live_noise_and_keeps_content() {
        let live = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1",
                "resourceVersion": "77", "generation": 3, "creationTimestamp": "t",
                "selfLink": "/x", "managedFields": [{"manager": "kubectl"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "team": "blue"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                    "name": "o", "uid": "abc"}]},
            "spec": {"clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
                "ports": [{"port": 80}], "selector": {"app": "web"}},
            "status": {"loadBalancer": {}}
        });
        let backup = json!({
            "kind": "Service", "apiVersion": "v1",
            "metadata": {"namespace": "shop", "name": "web",
                "annotations": {"team": "blue"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                    "name": "o", "uid": "other"}]},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}],
                "clusterIP": "10.96.0.99"}
        });
        assert_eq!(normalize(&live), normalize(&backup));
        assert_eq!(compare(&backup, Some(&live)), Compared::Same);
        // A headless Service keeps its "None".
        let headless = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "h"}, "spec": {"clusterIP": "None"}});
        assert_eq!(normalize(&headless)["spec"]["clusterIP"], "None");
        // Only noise: annotations disappear entirely.
        let v = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d",
            "annotations": {"deployment.kubernetes.io/revision": "4"}}});
        assert!(normalize(&v)["metadata"].get("annotations").is_none());
        // Keys are sorted in the YAML.
        let y = normalized_yaml(&backup);
        assert!(
            y.find("apiVersion").unwrap() < y.find("kind").unwrap(),
            "{y}"
        );
    }

    #[test]
    fn apply_keeps_last_applied_and_drops_what_the_server_owns() {
        let v = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "app", "uid": "u", "resourceVersion": "1",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "deployment.kubernetes.io/revision": "2"}},
            "secrets": [{"name": "app-token-x7k2p"}, {"name": "registry"}]});
        let p = prepare_for_apply(&v);
        assert_eq!(
            p,
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "app",
                    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                "secrets": [{"name": "registry"}]})
        );
    }

    #[test]
    fn a_changed_value_gives_a_readable_diff() {
        let live = cm("shop", "cfg", json!({"color": "red", "size": "L"})).value;
        let backup = cm("shop", "cfg", json!({"color": "blue", "size": "L"})).value;
        let Compared::Changed { diff } = compare(&backup, Some(&live)) else {
            panic!("not changed")
        };
        assert!(diff.contains(&"-  color: red".to_string()), "{diff:?}");
        assert!(diff.contains(&"+  color: blue".to_string()), "{diff:?}");
        assert!(diff.contains(&"   size: L".to_string()), "{diff:?}");
        assert_eq!(compare(&backup, None), Compared::Missing);
        assert!(line_diff("a\n", "a\n").is_empty());
    }

    #[test]
    fn filters_select_by_namespace_kind_name_and_labels() {
        let ns = obj(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            "namespaces",
        );
        let other_ns = obj(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}}),
            "namespaces",
        );
        let crb = obj(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "x"}}),
            "clusterroles",
        );
        let mut a = cm("shop", "a", json!({}));
        a.value["metadata"]["labels"] = json!({"app": "web", "tier": "front"});
        let b = cm("ops", "b", json!({}));
        let d = obj(
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "a", "namespace": "shop"}}),
            "deployments",
        );
        let f = Filter {
            namespaces: vec!["shop".into()],
            ..Filter::default()
        };
        assert!(f.matches(&ns) && f.matches(&a) && f.matches(&d));
        assert!(!f.matches(&other_ns) && !f.matches(&b) && !f.matches(&crb));
        // The Namespace comes with its namespace whatever the other filters say.
        let f = Filter {
            namespaces: vec!["shop".into()],
            kinds: vec!["cm".into()],
            name: Some("a".into()),
            ..Filter::default()
        };
        assert!(f.matches(&ns) && f.matches(&a) && !f.matches(&d));
        for k in [
            "ConfigMap",
            "configmaps",
            "configmap",
            "cm",
            "configmaps.core",
            "cm.",
        ] {
            let f = Filter {
                kinds: vec![k.into()],
                ..Filter::default()
            };
            assert!(f.matches(&a), "{k}");
            assert!(!f.matches(&d), "{k}");
        }
        let f = Filter {
            kinds: vec!["deployments.apps".into(), "deploy".into()],
            ..Filter::default()
        };
        assert!(f.matches(&d) && !f.matches(&a));
        let f = Filter {
            kinds: vec!["deployments.batch".into()],
            ..Filter::default()
        };
        assert!(!f.matches(&d));
        let sel = |s: &str| Filter {
            selector: Some(s.parse().unwrap()),
            ..Filter::default()
        };
        assert!(sel("app=web").matches(&a));
        assert!(sel("app==web,tier!=back").matches(&a));
        assert!(!sel("app=web,tier=back").matches(&a));
        assert!(sel("app").matches(&a) && !sel("app").matches(&b));
        assert!(sel("!app").matches(&b) && !sel("!app").matches(&a));
        assert!("a b=c".parse::<Selector>().is_err());
        assert!("".parse::<Selector>().is_err());
    }

    #[test]
    fn owned_objects_are_left_to_their_controllers() {
        let owned = |kind: &str, plural: &str, api: &str, owner: &str| {
            obj(
                json!({"apiVersion": api, "kind": kind,
                    "metadata": {"name": "x-1", "namespace": "shop",
                        "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Other", "name": "o", "uid": "1"},
                            {"apiVersion": "apps/v1", "kind": owner, "name": "x",
                             "uid": "2", "controller": true}]}}),
                plural,
            )
        };
        let rules = SkipRules::default();
        for (kind, plural, api, owner) in [
            ("ReplicaSet", "replicasets", "apps/v1", "Deployment"),
            ("Pod", "pods", "v1", "ReplicaSet"),
            ("Pod", "pods", "v1", "Job"),
            (
                "ControllerRevision",
                "controllerrevisions",
                "apps/v1",
                "StatefulSet",
            ),
            (
                "EndpointSlice",
                "endpointslices",
                "discovery.k8s.io/v1",
                "Service",
            ),
        ] {
            let r = rules.reason(&owned(kind, plural, api, owner)).unwrap();
            assert_eq!(
                r.to_string(),
                format!("owned by {owner}/x (its controller recreates it)")
            );
        }
        // A non-controller owner does not make it skipped.
        let mut o = owned("ConfigMap", "configmaps", "v1", "Deployment");
        o.value["metadata"]["ownerReferences"][1]["controller"] = json!(false);
        assert_eq!(rules.reason(&o), None);

        // Endpoints belong to a Service with a selector; a selector-less Service's
        // Endpoints are written by hand and restored.
        let svc = |name: &str, selector: Value| {
            obj(
                json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": "shop"},
                    "spec": {"selector": selector}}),
                "services",
            )
        };
        let ep = |name: &str| {
            obj(
                json!({"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": "shop"}}),
                "endpoints",
            )
        };
        let all = vec![svc("web", json!({"app": "web"})), svc("db", json!({}))];
        let rules = SkipRules::new(&all);
        assert_eq!(
            rules.reason(&ep("web")),
            Some(Skip::OwnedBy {
                kind: "Service".into(),
                name: "web".into()
            })
        );
        assert_eq!(rules.reason(&ep("db")), None);
    }

    #[test]
    fn system_objects_and_events_are_never_restored() {
        let rules = SkipRules::default();
        let skipped = |v: Value, plural: &str| rules.reason(&obj(v, plural));
        assert_eq!(
            skipped(
                json!({"apiVersion": "v1", "kind": "Event",
                    "metadata": {"name": "e", "namespace": "shop"}}),
                "events"
            ),
            Some(Skip::Event)
        );
        for (v, plural, why) in [
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "kube-root-ca.crt", "namespace": "shop"}}),
                "configmaps",
                "controller-manager",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Secret", "type":
                    "kubernetes.io/service-account-token",
                    "metadata": {"name": "default-token-abcde", "namespace": "shop"}}),
                "secrets",
                "ServiceAccount token",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": "shop"}}),
                "serviceaccounts",
                "every namespace",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "kube-system"}}),
                "namespaces",
                "system namespace",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "kubernetes", "namespace": "default"}}),
                "services",
                "apiserver",
            ),
            (
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": "cp1", "namespace": "kube-node-lease"}}),
                "leases",
                "lease",
            ),
            (
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "admin",
                        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}}),
                "clusterroles",
                "default RBAC",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cp1"}}),
                "nodes",
                "kubelet",
            ),
        ] {
            let r = skipped(v.clone(), plural).unwrap_or_else(|| panic!("not skipped: {v}"));
            assert!(r.to_string().contains(why), "{r} / {why}");
        }
        // What a user made is restored.
        for (v, plural) in [
            (
                json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": "db", "namespace": "shop"}}),
                "secrets",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "app", "namespace": "shop"}}),
                "serviceaccounts",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
                "namespaces",
            ),
            (
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "shop-reader"}}),
                "clusterroles",
            ),
        ] {
            assert_eq!(skipped(v.clone(), plural), None, "{v}");
        }
    }

    #[test]
    fn recreation_follows_dependencies() {
        let key = |g: &str, k: &str, n: &str| ObjectKey {
            group: g.into(),
            kind: k.into(),
            namespace: Some("shop".into()),
            name: n.into(),
        };
        let mut keys = vec![
            key("networking.k8s.io", "Ingress", "web"),
            key("apps", "Deployment", "web"),
            key("", "Service", "web"),
            key("", "PersistentVolumeClaim", "data"),
            key("", "Secret", "db"),
            key("", "ConfigMap", "cfg"),
            key("", "ServiceAccount", "app"),
            key("batch", "CronJob", "nightly"),
            key("apiextensions.k8s.io", "CustomResourceDefinition", "x"),
            key("", "Namespace", "shop"),
        ];
        sort_for_apply(&mut keys, |k| k);
        let kinds: Vec<&str> = keys.iter().map(|k| k.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "ServiceAccount",
                "ConfigMap",
                "Secret",
                "PersistentVolumeClaim",
                "Service",
                "Deployment",
                "CronJob",
                "Ingress"
            ]
        );
    }

    #[test]
    fn decisions_follow_the_comparison_and_the_overwrite_flag() {
        let backup = cm("shop", "cfg", json!({"k": "old"})).value;
        let mut live = cm("shop", "cfg", json!({"k": "new"})).value;
        live["metadata"]["managedFields"] = json!([
            {"manager": "kubectl-create", "time": "2026-12-01T10:00:00Z"},
            {"manager": "kubectl-edit", "time": "2026-12-02T10:00:00Z"}]);
        let taken: jiff::Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let d = decide(None, &backup, Some(&live), false, Some(taken));
        assert_eq!(d.action, Action::Conflict);
        assert_eq!(
            d.changed_after_backup,
            Some("2026-12-02T10:00:00Z".parse().unwrap())
        );
        let d = decide(None, &backup, Some(&live), true, Some(taken));
        assert_eq!(d.action, Action::Overwrite);
        assert!(d.changed_after_backup.is_some());
        let same_second: jiff::Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        assert!(
            decide(None, &backup, Some(&live), false, Some(same_second))
                .changed_after_backup
                .is_some()
        );
        let later: jiff::Timestamp = "2026-12-03T00:00:00Z".parse().unwrap();
        assert_eq!(
            decide(None, &backup, Some(&live), false, Some(later)).changed_after_backup,
            None
        );
        assert_eq!(
            decide(None, &backup, None, false, None).action,
            Action::Create
        );
        assert_eq!(
            decide(None, &backup, Some(&backup), true, None).action,
            Action::Unchanged
        );
        let d = decide(Some(Skip::Event), &backup, None, true, None);
        assert_eq!((d.action, d.compared), (Action::Skip, None));
    }

    #[test]
    fn bundles_differ_by_what_was_added_removed_and_changed() {
        let lease = |t: &str| {
            obj(
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": "cp1", "namespace": "kube-node-lease"},
                    "spec": {"renewTime": t}}),
                "leases",
            )
        };
        let mut a = vec![
            cm("shop", "same", json!({"k": "v"})),
            cm("shop", "gone", json!({})),
            cm("shop", "cfg", json!({"k": "1"})),
            lease("t1"),
        ];
        let mut b = vec![
            cm("shop", "same", json!({"k": "v"})),
            cm("shop", "new", json!({})),
            cm("shop", "cfg", json!({"k": "2"})),
            lease("t2"),
        ];
        // Live noise between the two does not count.
        a[0].value["metadata"]["resourceVersion"] = json!("1");
        b[0].value["metadata"]["resourceVersion"] = json!("9");
        let d = diff_bundles(&a, &b, false);
        let got: Vec<(String, Change)> = d.iter().map(|x| (x.key.name.clone(), x.change)).collect();
        assert_eq!(
            got,
            [
                ("cfg".to_string(), Change::Changed),
                ("gone".to_string(), Change::Removed),
                ("new".to_string(), Change::Added)
            ]
        );
        let changed: Vec<&String> = d[0].diff.iter().filter(|l| !l.starts_with(' ')).collect();
        assert_eq!(changed.len(), 2, "{:?}", d[0].diff);
        assert!(changed[0].starts_with("-  k:") && changed[0].contains('1'));
        assert!(changed[1].starts_with("+  k:") && changed[1].contains('2'));
        assert_eq!(diff_bundles(&a, &b, true).len(), 4);
        assert!(diff_bundles(&a, &a, false).is_empty());
    }
}

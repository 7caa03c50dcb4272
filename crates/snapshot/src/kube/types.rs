//! Hand-written protobuf messages for the common built-in Kubernetes kinds, as the API
//! server stores them (field numbers from the `generated.proto` files of
//! `k8s.io/api` and `k8s.io/apimachinery`).
//!
//! Only the fields people look at are declared; prost skips the others. They derive
//! `Serialize` with Kubernetes' JSON names, so that an object renders as the YAML
//! `kubectl get -o yaml` would show (empty fields are pruned afterwards, see
//! [`super::value`]).

#![allow(missing_docs)]

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

/// `runtime.TypeMeta`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    pub api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub kind: Option<String>,
}

/// `runtime.Unknown`: the envelope after the `k8s\0` magic.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Unknown {
    #[prost(message, optional, tag = "1")]
    pub type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub raw: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    pub content_encoding: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub content_type: Option<String>,
}

/// `metav1.Time` and `metav1.MicroTime` (seconds and nanoseconds since the epoch),
/// rendered as RFC 3339 like the JSON form.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Time {
    #[prost(int64, optional, tag = "1")]
    pub seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    pub nanos: Option<i32>,
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let secs = self.seconds.unwrap_or(0);
        let nanos = self.nanos.unwrap_or(0);
        match jiff::Timestamp::new(secs, nanos) {
            Ok(t) if nanos == 0 => s.collect_str(&format_args!("{t:.0}")),
            Ok(t) => s.collect_str(&format_args!("{t:.6}")),
            Err(_) => s.collect_str(&format_args!("{secs}s+{nanos}ns")),
        }
    }
}

/// `intstr.IntOrString`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IntOrString {
    #[prost(int64, optional, tag = "1")]
    pub r#type: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    pub int_val: Option<i32>,
    #[prost(string, optional, tag = "3")]
    pub str_val: Option<String>,
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.r#type == Some(1) {
            s.serialize_str(self.str_val.as_deref().unwrap_or(""))
        } else {
            s.serialize_i32(self.int_val.unwrap_or(0))
        }
    }
}

/// `resource.Quantity`, a string.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Quantity {
    #[prost(string, optional, tag = "1")]
    pub string: Option<String>,
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.string.as_deref().unwrap_or(""))
    }
}

/// Bytes as base64, as Kubernetes' JSON writes them.
fn base64_map<S: Serializer>(m: &BTreeMap<String, Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        map.serialize_entry(k, &base64::engine::general_purpose::STANDARD.encode(v))?;
    }
    map.end()
}

/// `metav1.OwnerReference`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    #[prost(string, optional, tag = "5")]
    pub api_version: Option<String>,
    #[prost(string, optional, tag = "1")]
    pub kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub uid: Option<String>,
    #[prost(bool, optional, tag = "6")]
    pub controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub block_owner_deletion: Option<bool>,
}

/// `metav1.ObjectMeta` (managedFields decoded as raw entries and not shown, as
/// `kubectl get -o yaml` leaves them out; every field is declared, so that a stored
/// object re-encodes to its own length when nothing else was left out).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    #[serde(skip_serializing_if = "unset")]
    pub generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    #[serde(skip_serializing_if = "unset")]
    pub namespace: Option<String>,
    #[prost(string, optional, tag = "4")]
    #[serde(skip_serializing_if = "unset")]
    pub self_link: Option<String>,
    #[prost(string, optional, tag = "5")]
    #[serde(skip_serializing_if = "unset")]
    pub uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    #[serde(skip_serializing_if = "unset")]
    pub resource_version: Option<String>,
    #[prost(int64, optional, tag = "7")]
    pub generation: Option<i64>,
    #[prost(message, optional, tag = "8")]
    pub creation_timestamp: Option<Time>,
    #[prost(message, optional, tag = "9")]
    pub deletion_timestamp: Option<Time>,
    #[prost(int64, optional, tag = "10")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[prost(btree_map = "string, string", tag = "11")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    pub annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    pub owner_references: Vec<OwnerReference>,
    #[prost(string, repeated, tag = "14")]
    pub finalizers: Vec<String>,
    #[prost(string, optional, tag = "15")]
    #[serde(skip_serializing_if = "unset")]
    pub cluster_name: Option<String>,
    /// The managedFields entries, undecoded (never shown).
    #[prost(bytes = "vec", repeated, tag = "17")]
    #[serde(skip)]
    pub managed_fields: Vec<Vec<u8>>,
}

/// Any stored object: every top-level kind has its ObjectMeta at field 1.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Generic {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
}

/// `v1.ConfigMap`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, string", tag = "2")]
    pub data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    #[serde(serialize_with = "base64_map")]
    pub binary_data: BTreeMap<String, Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    pub immutable: Option<bool>,
}

/// `v1.Secret` (data as base64, as the API shows it).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    #[serde(serialize_with = "base64_map")]
    pub data: BTreeMap<String, Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    pub r#type: Option<String>,
    #[prost(bool, optional, tag = "5")]
    pub immutable: Option<bool>,
}

/// `v1.NamespaceSpec`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    pub finalizers: Vec<String>,
}

/// `v1.NamespaceStatus` (phase only).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct NamespaceStatus {
    #[prost(string, optional, tag = "1")]
    pub phase: Option<String>,
}

/// `v1.Namespace`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Namespace {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<NamespaceSpec>,
    #[prost(message, optional, tag = "3")]
    pub status: Option<NamespaceStatus>,
}

/// `v1.ContainerPort`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub host_port: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub container_port: Option<i32>,
    #[prost(string, optional, tag = "4")]
    pub protocol: Option<String>,
    #[prost(string, optional, tag = "5")]
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
}

/// `v1.EnvVar` (valueFrom left out).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct EnvVar {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// `v1.ResourceRequirements`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct ResourceRequirements {
    #[prost(btree_map = "string, message", tag = "1")]
    pub limits: BTreeMap<String, Quantity>,
    #[prost(btree_map = "string, message", tag = "2")]
    pub requests: BTreeMap<String, Quantity>,
}

/// `v1.VolumeMount`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(bool, optional, tag = "2")]
    pub read_only: Option<bool>,
    #[prost(string, optional, tag = "3")]
    pub mount_path: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub sub_path: Option<String>,
}

/// `v1.Container` (probes, lifecycle and security context left out).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub image: Option<String>,
    #[prost(string, repeated, tag = "3")]
    pub command: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub args: Vec<String>,
    #[prost(string, optional, tag = "5")]
    pub working_dir: Option<String>,
    #[prost(message, repeated, tag = "6")]
    pub ports: Vec<ContainerPort>,
    #[prost(message, repeated, tag = "7")]
    pub env: Vec<EnvVar>,
    #[prost(message, optional, tag = "8")]
    pub resources: Option<ResourceRequirements>,
    #[prost(message, repeated, tag = "9")]
    pub volume_mounts: Vec<VolumeMount>,
    #[prost(string, optional, tag = "14")]
    pub image_pull_policy: Option<String>,
}

/// `v1.Volume` (name only; the source is left out).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Volume {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
}

/// `v1.Toleration`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub operator: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub value: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub effect: Option<String>,
    #[prost(int64, optional, tag = "5")]
    pub toleration_seconds: Option<i64>,
}

/// `v1.PodSpec` (affinity and security context left out).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[prost(message, repeated, tag = "1")]
    pub volumes: Vec<Volume>,
    #[prost(message, repeated, tag = "20")]
    pub init_containers: Vec<Container>,
    #[prost(message, repeated, tag = "2")]
    pub containers: Vec<Container>,
    #[prost(string, optional, tag = "3")]
    pub restart_policy: Option<String>,
    #[prost(int64, optional, tag = "4")]
    pub termination_grace_period_seconds: Option<i64>,
    #[prost(string, optional, tag = "6")]
    pub dns_policy: Option<String>,
    #[prost(btree_map = "string, string", tag = "7")]
    pub node_selector: BTreeMap<String, String>,
    #[prost(string, optional, tag = "8")]
    pub service_account_name: Option<String>,
    #[prost(string, optional, tag = "10")]
    pub node_name: Option<String>,
    #[prost(bool, optional, tag = "11")]
    pub host_network: Option<bool>,
    #[prost(string, optional, tag = "19")]
    pub scheduler_name: Option<String>,
    #[prost(message, repeated, tag = "22")]
    pub tolerations: Vec<Toleration>,
    #[prost(string, optional, tag = "24")]
    pub priority_class_name: Option<String>,
    #[prost(int32, optional, tag = "25")]
    pub priority: Option<i32>,
}

/// `v1.PodCondition` and `v1.NodeCondition`-like conditions.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCondition {
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub status: Option<String>,
    #[prost(message, optional, tag = "3")]
    pub last_probe_time: Option<Time>,
    #[prost(message, optional, tag = "4")]
    pub last_transition_time: Option<Time>,
    #[prost(string, optional, tag = "5")]
    pub reason: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub message: Option<String>,
}

/// `v1.ContainerStatus` (state left out).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(bool, optional, tag = "4")]
    pub ready: Option<bool>,
    #[prost(int32, optional, tag = "5")]
    pub restart_count: Option<i32>,
    #[prost(string, optional, tag = "6")]
    pub image: Option<String>,
    #[prost(string, optional, tag = "7")]
    #[serde(rename = "imageID")]
    pub image_id: Option<String>,
    #[prost(string, optional, tag = "8")]
    #[serde(rename = "containerID")]
    pub container_id: Option<String>,
    #[prost(bool, optional, tag = "9")]
    pub started: Option<bool>,
}

/// `v1.PodStatus`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[prost(string, optional, tag = "1")]
    pub phase: Option<String>,
    #[prost(message, repeated, tag = "2")]
    pub conditions: Vec<PodCondition>,
    #[prost(string, optional, tag = "3")]
    pub message: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub reason: Option<String>,
    #[prost(string, optional, tag = "5")]
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
    #[prost(string, optional, tag = "6")]
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[prost(message, optional, tag = "7")]
    pub start_time: Option<Time>,
    #[prost(message, repeated, tag = "8")]
    pub container_statuses: Vec<ContainerStatus>,
    #[prost(string, optional, tag = "9")]
    pub qos_class: Option<String>,
}

/// `v1.Pod`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Pod {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<PodSpec>,
    #[prost(message, optional, tag = "3")]
    pub status: Option<PodStatus>,
}

/// `v1.PodTemplateSpec`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct PodTemplateSpec {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<PodSpec>,
}

/// `metav1.LabelSelectorRequirement`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LabelSelectorRequirement {
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub operator: Option<String>,
    #[prost(string, repeated, tag = "3")]
    pub values: Vec<String>,
}

/// `metav1.LabelSelector`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[prost(btree_map = "string, string", tag = "1")]
    pub match_labels: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "2")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// `appsv1.RollingUpdateDeployment`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateDeployment {
    #[prost(message, optional, tag = "1")]
    pub max_unavailable: Option<IntOrString>,
    #[prost(message, optional, tag = "2")]
    pub max_surge: Option<IntOrString>,
}

/// `appsv1.DeploymentStrategy`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStrategy {
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub rolling_update: Option<RollingUpdateDeployment>,
}

/// `appsv1.DeploymentSpec`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    #[prost(int32, optional, tag = "1")]
    pub replicas: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub selector: Option<LabelSelector>,
    #[prost(message, optional, tag = "3")]
    pub template: Option<PodTemplateSpec>,
    #[prost(message, optional, tag = "4")]
    pub strategy: Option<DeploymentStrategy>,
    #[prost(int32, optional, tag = "5")]
    pub min_ready_seconds: Option<i32>,
    #[prost(int32, optional, tag = "6")]
    pub revision_history_limit: Option<i32>,
    #[prost(bool, optional, tag = "7")]
    pub paused: Option<bool>,
    #[prost(int32, optional, tag = "9")]
    pub progress_deadline_seconds: Option<i32>,
}

/// `appsv1.DeploymentCondition`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCondition {
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub status: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub reason: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub message: Option<String>,
    #[prost(message, optional, tag = "6")]
    pub last_update_time: Option<Time>,
    #[prost(message, optional, tag = "7")]
    pub last_transition_time: Option<Time>,
}

/// `appsv1.DeploymentStatus`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    #[prost(int64, optional, tag = "1")]
    pub observed_generation: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    pub replicas: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub updated_replicas: Option<i32>,
    #[prost(int32, optional, tag = "7")]
    pub ready_replicas: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    pub available_replicas: Option<i32>,
    #[prost(int32, optional, tag = "5")]
    pub unavailable_replicas: Option<i32>,
    #[prost(message, repeated, tag = "6")]
    pub conditions: Vec<DeploymentCondition>,
}

/// `appsv1.Deployment`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Deployment {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<DeploymentSpec>,
    #[prost(message, optional, tag = "3")]
    pub status: Option<DeploymentStatus>,
}

/// `v1.ServicePort`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub protocol: Option<String>,
    #[prost(int32, optional, tag = "3")]
    pub port: Option<i32>,
    #[prost(message, optional, tag = "4")]
    pub target_port: Option<IntOrString>,
    #[prost(int32, optional, tag = "5")]
    pub node_port: Option<i32>,
}

/// `v1.ServiceSpec`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[prost(message, repeated, tag = "1")]
    pub ports: Vec<ServicePort>,
    #[prost(btree_map = "string, string", tag = "2")]
    pub selector: BTreeMap<String, String>,
    #[prost(string, optional, tag = "3")]
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[prost(string, repeated, tag = "18")]
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Vec<String>,
    #[prost(string, optional, tag = "4")]
    pub r#type: Option<String>,
    #[prost(string, repeated, tag = "5")]
    #[serde(rename = "externalIPs")]
    pub external_ips: Vec<String>,
    #[prost(string, optional, tag = "7")]
    pub session_affinity: Option<String>,
    #[prost(string, optional, tag = "10")]
    pub external_name: Option<String>,
    #[prost(string, optional, tag = "11")]
    pub external_traffic_policy: Option<String>,
}

/// `v1.Service` (status left out).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Service {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<ServiceSpec>,
}

/// `coordinationv1.LeaseSpec`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSpec {
    #[prost(string, optional, tag = "1")]
    pub holder_identity: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub lease_duration_seconds: Option<i32>,
    #[prost(message, optional, tag = "3")]
    pub acquire_time: Option<Time>,
    #[prost(message, optional, tag = "4")]
    pub renew_time: Option<Time>,
    #[prost(int32, optional, tag = "5")]
    pub lease_transitions: Option<i32>,
}

/// `coordinationv1.Lease`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Lease {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<LeaseSpec>,
}

/// `v1.Taint`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub effect: Option<String>,
    #[prost(message, optional, tag = "4")]
    pub time_added: Option<Time>,
}

/// `v1.NodeSpec`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[prost(string, optional, tag = "1")]
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    #[prost(string, repeated, tag = "7")]
    #[serde(rename = "podCIDRs")]
    pub pod_cidrs: Vec<String>,
    #[prost(string, optional, tag = "3")]
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    #[prost(bool, optional, tag = "4")]
    pub unschedulable: Option<bool>,
    #[prost(message, repeated, tag = "5")]
    pub taints: Vec<Taint>,
}

/// `v1.NodeCondition`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition {
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub status: Option<String>,
    #[prost(message, optional, tag = "3")]
    pub last_heartbeat_time: Option<Time>,
    #[prost(message, optional, tag = "4")]
    pub last_transition_time: Option<Time>,
    #[prost(string, optional, tag = "5")]
    pub reason: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub message: Option<String>,
}

/// `v1.NodeAddress`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct NodeAddress {
    #[prost(string, optional, tag = "1")]
    #[serde(rename = "type")]
    pub r#type: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub address: Option<String>,
}

/// `v1.NodeSystemInfo`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSystemInfo {
    #[prost(string, optional, tag = "1")]
    #[serde(rename = "machineID")]
    pub machine_id: Option<String>,
    #[prost(string, optional, tag = "2")]
    #[serde(rename = "systemUUID")]
    pub system_uuid: Option<String>,
    #[prost(string, optional, tag = "3")]
    #[serde(rename = "bootID")]
    pub boot_id: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub kernel_version: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub os_image: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub container_runtime_version: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub kubelet_version: Option<String>,
    #[prost(string, optional, tag = "8")]
    pub kube_proxy_version: Option<String>,
    #[prost(string, optional, tag = "9")]
    pub operating_system: Option<String>,
    #[prost(string, optional, tag = "10")]
    pub architecture: Option<String>,
}

/// `v1.NodeStatus` (images and volumes left out).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    #[prost(btree_map = "string, message", tag = "1")]
    pub capacity: BTreeMap<String, Quantity>,
    #[prost(btree_map = "string, message", tag = "2")]
    pub allocatable: BTreeMap<String, Quantity>,
    #[prost(message, repeated, tag = "4")]
    pub conditions: Vec<NodeCondition>,
    #[prost(message, repeated, tag = "5")]
    pub addresses: Vec<NodeAddress>,
    #[prost(message, optional, tag = "7")]
    pub node_info: Option<NodeSystemInfo>,
}

/// `v1.Node`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Node {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<NodeSpec>,
    #[prost(message, optional, tag = "3")]
    pub status: Option<NodeStatus>,
}

/// A string the API's JSON leaves out (`omitempty`): absent or empty. The API server's
/// protobuf encoder writes such fields even when empty.
fn unset(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

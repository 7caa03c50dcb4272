//! Wire-level tests of the API part (tier `wire_`): a hand-written API server on
//! 127.0.0.1 (axum, plain HTTP) answers kube-rs as a modern server (`policy/v1`) or as
//! Kubernetes 1.20 (`policy/v1beta1` only) would, and records what it receives.
// Tests fail loudly on unexpected errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kastellan_drain::api::{self, Evicted, PolicyVersion};
use kastellan_drain::facts::PodRef;
use kastellan_drain::plan::Request;
use kastellan_drain::run::{self, Event, NodeState, Observer, Options, Outcome};
use serde_json::{Value, json};

/// What the fake server serves and what it has seen.
#[derive(Default)]
struct Server {
    /// `policy` versions served, preferred first.
    policy: Vec<&'static str>,
    /// Pods by name (namespace `default`), with their node and uid.
    pods: BTreeMap<String, (String, String)>,
    /// Evictions still refused with 429 per pod name.
    refuse: BTreeMap<String, u32>,
    /// Pods that come back under the same name with a new uid after eviction.
    replaced: Vec<String>,
    /// Whether `w1` is unschedulable.
    cordoned: bool,
    /// Every eviction body received, with its path.
    evictions: Vec<(String, Value)>,
}

type Shared = Arc<Mutex<Server>>;

fn json_response(code: StatusCode, v: Value) -> Response {
    (code, [("content-type", "application/json")], v.to_string()).into_response()
}

fn status(code: u16, reason: &str, message: &str, causes: Value) -> Response {
    json_response(
        StatusCode::from_u16(code).unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
               "reason": reason, "message": message, "details": {"causes": causes}}),
    )
}

fn pod_json(name: &str, node: &str, uid: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid,
            "labels": {"app": name.split('-').next().unwrap()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{}-rs", name.split('-').next().unwrap()), "uid": "rs", "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

async fn handle(state: Shared, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let mut s = state.lock().unwrap();
    let policy = s.policy.clone();
    match (method.as_str(), path.as_str()) {
        ("GET", "/apis") => json_response(
            StatusCode::OK,
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
                "name": "policy",
                "versions": policy.iter().map(|v| json!({"groupVersion": format!("policy/{v}"), "version": v})).collect::<Vec<_>>(),
                "preferredVersion": {"groupVersion": format!("policy/{}", policy[0]), "version": policy[0]},
            }]}),
        ),
        ("GET", "/api/v1") => json_response(
            StatusCode::OK,
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "pods", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get", "list"]},
                {"name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy",
                 "version": policy[0], "kind": "Eviction", "verbs": ["create"]},
            ]}),
        ),
        ("GET", "/api/v1/nodes/w1") => json_response(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
                   "spec": {"unschedulable": s.cordoned}}),
        ),
        ("PATCH", "/api/v1/nodes/w1") => {
            let patch: Value = serde_json::from_slice(&body).unwrap();
            s.cordoned = patch["spec"]["unschedulable"] == json!(true);
            json_response(
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
                       "spec": {"unschedulable": s.cordoned}}),
            )
        }
        ("GET", "/api/v1/pods") => {
            let on_w1 = query.contains("spec.nodeName%3Dw1") || query.contains("spec.nodeName=w1");
            let items: Vec<Value> = s
                .pods
                .iter()
                .filter(|(_, (node, _))| !on_w1 || node == "w1")
                .map(|(n, (node, uid))| pod_json(n, node, uid))
                .collect();
            json_response(
                StatusCode::OK,
                json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}),
            )
        }
        ("GET", "/apis/apps/v1/replicasets") | ("GET", "/apis/apps/v1/daemonsets") => {
            json_response(
                StatusCode::OK,
                json!({"kind": "List", "apiVersion": "apps/v1", "metadata": {}, "items": []}),
            )
        }
        ("GET", p) if p.ends_with("/poddisruptionbudgets") => json_response(
            StatusCode::OK,
            json!({"kind": "PodDisruptionBudgetList", "apiVersion": format!("policy/{}", policy[0]),
                   "metadata": {}, "items": [pdb_json()]}),
        ),
        ("GET", p) if p.ends_with("/poddisruptionbudgets/db-pdb") => {
            json_response(StatusCode::OK, pdb_json())
        }
        ("POST", p) if p.ends_with("/eviction") => {
            let name = p.split('/').nth(6).unwrap_or_default().to_string();
            let v: Value = serde_json::from_slice(&body).unwrap();
            s.evictions.push((p.to_string(), v));
            if !s.pods.contains_key(&name) {
                return status(
                    404,
                    "NotFound",
                    &format!("pods \"{name}\" not found"),
                    json!([]),
                );
            }
            if let Some(n) = s.refuse.get_mut(&name).filter(|n| **n > 0) {
                *n -= 1;
                return status(
                    429,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    json!([{"reason": "DisruptionBudget",
                            "message": "The disruption budget db-pdb needs 1 healthy pods and has 1 currently"}]),
                );
            }
            if s.replaced.contains(&name) {
                s.pods.get_mut(&name).unwrap().1 = format!("new-{name}");
            } else {
                s.pods.remove(&name);
            }
            json_response(
                StatusCode::CREATED,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}),
            )
        }
        _ => status(
            404,
            "NotFound",
            &format!("{method} {path} not served"),
            json!([]),
        ),
    }
}

fn pdb_json() -> Value {
    json!({"metadata": {"name": "db-pdb", "namespace": "default"},
           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
           "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}})
}

/// Starts the server; returns its state and a client for it (kube's retry off).
async fn serve(server: Server) -> (Shared, kube::Client) {
    let state: Shared = Arc::new(Mutex::new(server));
    let app_state = state.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let state = app_state.clone();
        async move { handle(state, method, uri, body).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    config.default_retry = false;
    (state, kube::Client::try_from(config).unwrap())
}

fn pods(names: &[&str]) -> BTreeMap<String, (String, String)> {
    names
        .iter()
        .map(|n| (n.to_string(), ("w1".to_string(), format!("uid-{n}"))))
        .collect()
}

#[tokio::test]
async fn wire_policy_v1_discovery_and_eviction() {
    let (state, client) = serve(Server {
        policy: vec!["v1", "v1beta1"],
        pods: pods(&["web-1"]),
        ..Default::default()
    })
    .await;
    let d = api::discover(&client).await.unwrap();
    assert_eq!(d.eviction, Some(PolicyVersion::V1));
    assert_eq!(d.pdb, Some(PolicyVersion::V1));
    let pod = PodRef {
        namespace: "default".into(),
        name: "web-1".into(),
    };
    let r = api::evict(&client, d.eviction.unwrap(), &pod, Some(7))
        .await
        .unwrap();
    assert_eq!(r, Evicted::Accepted);
    let seen = state.lock().unwrap().evictions.clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "/api/v1/namespaces/default/pods/web-1/eviction");
    assert_eq!(seen[0].1["apiVersion"], "policy/v1");
    assert_eq!(seen[0].1["kind"], "Eviction");
    assert_eq!(seen[0].1["metadata"]["name"], "web-1");
    assert_eq!(seen[0].1["deleteOptions"]["gracePeriodSeconds"], 7);
    // 404: already gone.
    assert_eq!(
        api::evict(&client, PolicyVersion::V1, &pod, None)
            .await
            .unwrap(),
        Evicted::Gone
    );
}

#[tokio::test]
async fn wire_policy_v1beta1_only_as_kubernetes_1_20() {
    let (state, client) = serve(Server {
        policy: vec!["v1beta1"],
        pods: pods(&["web-1"]),
        ..Default::default()
    })
    .await;
    let d = api::discover(&client).await.unwrap();
    assert_eq!(d.eviction, Some(PolicyVersion::V1beta1));
    assert_eq!(d.pdb, Some(PolicyVersion::V1beta1));
    let pod = PodRef {
        namespace: "default".into(),
        name: "web-1".into(),
    };
    api::evict(&client, d.eviction.unwrap(), &pod, None)
        .await
        .unwrap();
    let seen = state.lock().unwrap().evictions.clone();
    assert_eq!(seen[0].1["apiVersion"], "policy/v1beta1");
    assert!(seen[0].1["deleteOptions"].as_object().unwrap().is_empty());
}

#[tokio::test]
async fn wire_drain_retries_429_names_the_budget_and_counts_replaced_pods_gone() {
    // db-a is refused twice by db-pdb, then evicted; sts-0 comes back under its name
    // with a new uid (a StatefulSet) and counts as gone; web-1 goes at once.
    let (state, client) = serve(Server {
        policy: vec!["v1"],
        pods: pods(&["web-1", "db-a", "sts-0"]),
        refuse: [("db-a".to_string(), 2)].into(),
        replaced: vec!["sts-0".into()],
        ..Default::default()
    })
    .await;
    let drainer = run::Drainer::new(client).await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let observer: Observer = Arc::new(move |e: &Event| sink.lock().unwrap().push(e.clone()));
    let request = Request {
        nodes: vec!["w1".into()],
        max_unavailable: 1,
        ..Default::default()
    };
    let options = Options {
        timeout: Duration::from_secs(20),
        poll: Duration::from_millis(50),
        ..Default::default()
    };
    let out = run::drain(&drainer, &request, &options, &observer)
        .await
        .unwrap();
    assert!(out.success(), "{out:#?}");
    let Outcome {
        removal,
        nodes,
        refused: None,
    } = &out
    else {
        panic!("{out:#?}")
    };
    assert_eq!(removal, "policy/v1");
    assert_eq!(nodes[0].state, NodeState::Drained);
    assert_eq!(nodes[0].removed.len(), 3);
    assert!(
        state.lock().unwrap().cordoned,
        "left cordoned after a drain"
    );
    let events = events.lock().unwrap();
    let blocked: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Blocked { .. }))
        .collect();
    assert_eq!(blocked.len(), 2, "{events:#?}");
    let Event::Blocked { pod, budget, .. } = blocked[0] else {
        panic!()
    };
    assert_eq!(pod.name, "db-a");
    let budget = budget.as_ref().expect("the budget is named");
    assert_eq!(budget.pdb.pdb.name, "db-pdb");
    assert_eq!(budget.pdb.disruptions_allowed, 0);
    assert_eq!(budget.pods[0].pod.name, "db-a");
    let evictions = state.lock().unwrap().evictions.len();
    assert_eq!(evictions, 5, "3 accepted + 2 refused");
}

#[tokio::test]
async fn wire_drain_blocked_until_the_timeout_then_uncordoned_on_request() {
    let (state, client) = serve(Server {
        policy: vec!["v1beta1"],
        pods: pods(&["db-a"]),
        refuse: [("db-a".to_string(), u32::MAX)].into(),
        ..Default::default()
    })
    .await;
    let drainer = run::Drainer::new(client).await.unwrap();
    let observer: Observer = Arc::new(|_: &Event| {});
    let request = Request {
        nodes: vec!["w1".into()],
        max_unavailable: 1,
        ..Default::default()
    };
    let mut options = Options {
        timeout: Duration::from_millis(1500),
        poll: Duration::from_millis(50),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let out = run::drain(&drainer, &request, &options, &observer)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let nodes = &out.nodes;
    assert_eq!(nodes[0].state, NodeState::TimedOut);
    assert!(nodes[0].cordoned && state.lock().unwrap().cordoned);
    assert_eq!(nodes[0].blockers[0].pdb.pdb.name, "db-pdb");
    assert_eq!(nodes[0].remaining[0].name, "db-a");
    options.uncordon_on_failure = true;
    let out = run::drain(&drainer, &request, &options, &observer)
        .await
        .unwrap();
    let nodes = &out.nodes;
    assert!(!nodes[0].cordoned && !state.lock().unwrap().cordoned);
}

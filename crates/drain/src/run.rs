//! Carrying out a plan, one node at a time as types: a [`Planned`] node is cordoned
//! into a [`Cordoned`] one, whose pods are removed, giving a [`Drained`] node or a
//! [`Stuck`] one that is either uncordoned or left cordoned. Each step takes the
//! previous one by value, so a node cannot be drained before it is cordoned, nor left
//! in between. Progress is reported as [`Event`]s to an observer.
//!
//! [`drain`] runs a whole request: batch after batch, each re-planned from fresh facts
//! just before it starts, refusing (with nothing changed) when the plan refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::api::{self, Discovery, Evicted, PolicyVersion};
use crate::error::{Error, Result};
use crate::facts::{PdbInfo, PodRef};
use crate::plan::{self, BudgetCheck, CoveredPod, NodePlan, Plan, Request};

/// How pods are removed and how long the drain may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Give up on a node after this long (from its cordon).
    pub timeout: Duration,
    /// Seconds each pod gets to stop (`None`: the pod's own).
    pub grace_period: Option<i64>,
    /// Uncordon a node whose drain failed (by default it stays cordoned).
    pub uncordon_on_failure: bool,
    /// A label selector: only matching pods are removed.
    pub pod_selector: Option<String>,
    /// How often the pods on a node are listed while waiting for them to go.
    pub poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(300),
            grace_period: None,
            uncordon_on_failure: false,
            pod_selector: None,
            poll: Duration::from_millis(500),
        }
    }
}

/// What the observer hears while a drain runs (`-o json`: one per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A batch starts, with its fresh plan (hazards in it were allowed by `force`).
    #[serde(rename_all = "camelCase")]
    Batch {
        /// The nodes drained together.
        nodes: Vec<String>,
        /// The plan of each.
        plans: Vec<NodePlan>,
    },
    /// The node is cordoned (`already`: it was before).
    #[serde(rename_all = "camelCase")]
    Cordoned {
        /// The node.
        node: String,
        /// Whether it was already cordoned.
        already: bool,
    },
    /// The node was uncordoned after a failure.
    #[serde(rename_all = "camelCase")]
    Uncordoned {
        /// The node.
        node: String,
    },
    /// The server accepted the eviction of a pod (it is being deleted).
    #[serde(rename_all = "camelCase")]
    Evicted {
        /// The node.
        node: String,
        /// The pod.
        pod: PodRef,
    },
    /// A pod was deleted without the Eviction API; `overrode` are the budgets that
    /// would not have allowed it.
    #[serde(rename_all = "camelCase")]
    Deleted {
        /// The node.
        node: String,
        /// The pod.
        pod: PodRef,
        /// The budgets it went past, with their status then.
        overrode: Vec<PdbInfo>,
    },
    /// The pod is gone from the node (deleted, or replaced by one with another UID).
    #[serde(rename_all = "camelCase")]
    Gone {
        /// The node.
        node: String,
        /// The pod.
        pod: PodRef,
        /// How many of the node's pods are gone, of how many.
        done: usize,
        /// How many pods the node's plan removes.
        total: usize,
    },
    /// An eviction was refused with 429 because of a budget; retried with backoff.
    #[serde(rename_all = "camelCase")]
    Blocked {
        /// The node.
        node: String,
        /// The pod.
        pod: PodRef,
        /// The budget (its status now) and the pods it covers.
        #[serde(skip_serializing_if = "Option::is_none")]
        budget: Option<Blocker>,
        /// The server's message.
        message: String,
        /// Seconds since this pod's first refused eviction.
        blocked_secs: u64,
        /// Seconds until the next attempt.
        retry_in_secs: f64,
    },
}

/// A budget that blocks, with what it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocker {
    /// The budget and its status when last read.
    #[serde(flatten)]
    pub pdb: PdbInfo,
    /// The pods it covers, with owners and nodes (from the plan).
    pub pods: Vec<CoveredPod>,
    /// Seconds it has blocked.
    pub blocked_secs: u64,
}

/// The observer of a drain.
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// How a node's drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    /// Every pod of the plan is gone.
    Drained,
    /// The timeout passed with pods left.
    TimedOut,
    /// A pod could not be removed for another reason than a budget.
    Failed,
    /// Not started: an earlier batch failed.
    NotStarted,
}

/// The result of one node's drain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeResult {
    /// The node.
    pub node: String,
    /// How it ended.
    pub state: NodeState,
    /// Whether the node is cordoned now.
    pub cordoned: bool,
    /// Pods removed.
    pub removed: Vec<PodRef>,
    /// Pods still there.
    pub remaining: Vec<PodRef>,
    /// Budgets that blocked at the end.
    pub blockers: Vec<Blocker>,
    /// Pods deleted past their budgets (without the Eviction API).
    pub overridden: Vec<Overridden>,
    /// What went wrong, if anything did besides budgets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Seconds from cordon to the end.
    pub seconds: f64,
}

/// A pod deleted although a budget did not allow it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overridden {
    /// The pod.
    pub pod: PodRef,
    /// The budgets it went past.
    pub budgets: Vec<PodRef>,
}

/// Talks to one cluster.
#[derive(Clone)]
pub struct Drainer {
    client: kube::Client,
    discovery: Discovery,
}

impl Drainer {
    /// Discovers what the server serves. The client should have kube's default retry
    /// off (see [`crate::api`]).
    pub async fn new(client: kube::Client) -> Result<Drainer> {
        let discovery = api::discover(&client).await?;
        Ok(Drainer { client, discovery })
    }

    /// What discovery found.
    pub fn discovery(&self) -> Discovery {
        self.discovery
    }

    /// How pods are removed with `disable_eviction`: `delete`, else the Eviction
    /// version (an error if the server serves none).
    pub fn removal(&self, disable_eviction: bool) -> Result<String> {
        if disable_eviction {
            return Ok("delete".into());
        }
        self.discovery
            .eviction
            .map(|v| v.api_version().to_string())
            .ok_or(Error::NoEvictionApi)
    }

    /// The plan of `request` against the cluster as it is now.
    pub async fn plan(&self, request: &Request, pod_selector: Option<&str>) -> Result<Plan> {
        let removal = self.removal(request.disable_eviction)?;
        let facts =
            api::gather(&self.client, &self.discovery, &request.nodes, pod_selector).await?;
        Ok(plan::plan(&facts, request, &removal))
    }

    /// Cordons (`true`) or uncordons a node; returns whether it changed.
    pub async fn cordon(&self, node: &str, on: bool) -> Result<bool> {
        api::set_unschedulable(&self.client, node, on).await
    }

    /// Starts the typed drain of one node from its plan.
    pub fn start(&self, plan: NodePlan, disable_eviction: bool) -> Planned {
        Planned {
            drainer: self.clone(),
            plan,
            disable_eviction,
        }
    }
}

/// A node with its plan, not changed yet.
pub struct Planned {
    drainer: Drainer,
    plan: NodePlan,
    disable_eviction: bool,
}

impl Planned {
    /// Cordons the node.
    pub async fn cordon(self, observer: &Observer) -> Result<Cordoned> {
        let changed = self.drainer.cordon(&self.plan.node, true).await?;
        observer(&Event::Cordoned {
            node: self.plan.node.clone(),
            already: !changed,
        });
        Ok(Cordoned {
            inner: self,
            since: Instant::now(),
        })
    }
}

/// A cordoned node whose pods are still there.
pub struct Cordoned {
    inner: Planned,
    since: Instant,
}

/// A node whose plan is done: every pod gone.
pub struct Drained(NodeResult);

impl Drained {
    /// The result.
    pub fn result(self) -> NodeResult {
        self.0
    }
}

/// A cordoned node whose drain failed or timed out.
pub struct Stuck {
    drainer: Drainer,
    result: NodeResult,
}

impl Stuck {
    /// The result so far.
    pub fn result(&self) -> &NodeResult {
        &self.result
    }
    /// Leaves the node cordoned.
    pub fn keep_cordoned(self) -> NodeResult {
        self.result
    }
    /// Uncordons the node.
    pub async fn uncordon(mut self, observer: &Observer) -> Result<NodeResult> {
        self.drainer.cordon(&self.result.node, false).await?;
        observer(&Event::Uncordoned {
            node: self.result.node.clone(),
        });
        self.result.cordoned = false;
        Ok(self.result)
    }
}

/// What one pod's removal task reports.
enum Report {
    Removed(PodRef),
    Overrode(Overridden),
    Blocked(PodRef, Option<Blocker>),
    Failed(PodRef, Error),
}

impl Cordoned {
    /// Removes the plan's pods in parallel (evictions retried on 429 with backoff, or
    /// deletions with `disable_eviction`) and waits until each is gone, deleted or
    /// replaced under its name by a pod with another UID, at most until `deadline`.
    pub async fn remove_pods(
        self,
        options: &Options,
        observer: &Observer,
    ) -> std::result::Result<Drained, Stuck> {
        let planned = self.inner;
        let drainer = planned.drainer.clone();
        let node = planned.plan.node.clone();
        let deadline = self.since + options.timeout;
        let version = drainer.discovery.eviction.unwrap_or(PolicyVersion::V1beta1);
        let pdb_version = drainer.discovery.pdb;
        let budgets: Arc<Vec<BudgetCheck>> = Arc::new(planned.plan.budgets.clone());
        let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
        let mut tasks = tokio::task::JoinSet::new();
        for p in &planned.plan.evict {
            let pod = p.pod.clone();
            let tx = tx.clone();
            let client = drainer.client.clone();
            let observer = observer.clone();
            let node = node.clone();
            let budgets = budgets.clone();
            let grace = options.grace_period;
            let disable = planned.disable_eviction;
            tasks.spawn(async move {
                let r = if disable {
                    delete_one(&client, &pod, grace, &budgets, &node, &observer).await
                } else {
                    evict_one(
                        &client,
                        version,
                        pdb_version,
                        &pod,
                        grace,
                        &budgets,
                        &node,
                        &observer,
                        &tx,
                    )
                    .await
                };
                let _ = tx.send(r);
            });
        }
        drop(tx);

        let want: BTreeMap<PodRef, String> = planned
            .plan
            .evict
            .iter()
            .map(|p| (p.pod.clone(), p.uid.clone()))
            .collect();
        let total = want.len();
        let mut gone: BTreeSet<PodRef> = BTreeSet::new();
        let mut blocked: BTreeMap<PodRef, Blocker> = BTreeMap::new();
        let mut blocked_since: BTreeMap<PodRef, Instant> = BTreeMap::new();
        let mut overridden = Vec::new();
        let mut error: Option<String> = None;
        let mut tick = tokio::time::interval(options.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut channel_open = true;
        let state = loop {
            if gone.len() == total {
                break NodeState::Drained;
            }
            if error.is_some() {
                break NodeState::Failed;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => break NodeState::TimedOut,
                msg = rx.recv(), if channel_open => match msg {
                    None => channel_open = false,
                    Some(Report::Removed(pod)) => { blocked.remove(&pod); }
                    Some(Report::Overrode(o)) => { blocked.remove(&o.pod); overridden.push(o); }
                    Some(Report::Blocked(pod, b)) => {
                        blocked_since.entry(pod.clone()).or_insert_with(Instant::now);
                        if let Some(b) = b { blocked.insert(pod, b); }
                    }
                    Some(Report::Failed(pod, e)) => {
                        error = Some(format!("{pod}: {e}"));
                    }
                },
                _ = tick.tick() => {
                    // A failed listing is tried again on the next tick; the deadline
                    // bounds it.
                    if let Ok(now) = api::pods_on(&drainer.client, &node).await {
                        let present: BTreeSet<(&PodRef, &String)> =
                            now.iter().map(|(p, u)| (p, u)).collect();
                        for (pod, uid) in &want {
                            if !gone.contains(pod) && !present.contains(&(pod, uid)) {
                                gone.insert(pod.clone());
                                blocked.remove(pod);
                                observer(&Event::Gone {
                                    node: node.clone(),
                                    pod: pod.clone(),
                                    done: gone.len(),
                                    total,
                                });
                            }
                        }
                    }
                }
            }
        };
        tasks.abort_all();
        let mut blockers: Vec<Blocker> = Vec::new();
        for (pod, mut b) in blocked {
            if let Some(since) = blocked_since.get(&pod) {
                b.blocked_secs = b.blocked_secs.max(since.elapsed().as_secs());
            }
            match blockers.iter_mut().find(|x| x.pdb.pdb == b.pdb.pdb) {
                Some(x) => x.blocked_secs = x.blocked_secs.max(b.blocked_secs),
                None => blockers.push(b),
            }
        }
        let result = NodeResult {
            node: node.clone(),
            state,
            cordoned: true,
            removed: want.keys().filter(|p| gone.contains(p)).cloned().collect(),
            remaining: want.keys().filter(|p| !gone.contains(p)).cloned().collect(),
            blockers,
            overridden,
            error,
            seconds: self.since.elapsed().as_secs_f64(),
        };
        if state == NodeState::Drained {
            Ok(Drained(result))
        } else {
            Err(Stuck { drainer, result })
        }
    }
}

fn covered(budgets: &[BudgetCheck], pdb: &PodRef) -> Vec<CoveredPod> {
    budgets
        .iter()
        .find(|b| &b.pdb.pdb == pdb)
        .map(|b| b.pods.clone())
        .unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
async fn evict_one(
    client: &kube::Client,
    version: PolicyVersion,
    pdb_version: Option<PolicyVersion>,
    pod: &PodRef,
    grace: Option<i64>,
    budgets: &[BudgetCheck],
    node: &str,
    observer: &Observer,
    tx: &mpsc::UnboundedSender<Report>,
) -> Report {
    let mut backoff = Duration::from_millis(500);
    let mut first_refusal: Option<Instant> = None;
    loop {
        match api::evict(client, version, pod, grace).await {
            Ok(Evicted::Accepted) => {
                observer(&Event::Evicted {
                    node: node.to_string(),
                    pod: pod.clone(),
                });
                return Report::Removed(pod.clone());
            }
            Ok(Evicted::Gone) => return Report::Removed(pod.clone()),
            Ok(Evicted::TooManyRequests { budget, message }) => {
                let since = *first_refusal.get_or_insert_with(Instant::now);
                let blocked_secs = since.elapsed().as_secs();
                // The budget the server named, else the plan's budgets that cover it.
                let name = budget
                    .map(|name| PodRef {
                        namespace: pod.namespace.clone(),
                        name,
                    })
                    .or_else(|| {
                        budgets
                            .iter()
                            .find(|b| b.blocks && b.pods.iter().any(|p| &p.pod == pod))
                            .map(|b| b.pdb.pdb.clone())
                    });
                let mut blocker = None;
                if let Some(name) = name {
                    let fresh = match pdb_version {
                        Some(v) => api::get_pdb(client, v, &name).await.ok().flatten(),
                        None => None,
                    };
                    let pdb = fresh.or_else(|| {
                        budgets
                            .iter()
                            .find(|b| b.pdb.pdb == name)
                            .map(|b| b.pdb.clone())
                    });
                    if let Some(pdb) = pdb {
                        blocker = Some(Blocker {
                            pods: covered(budgets, &name),
                            pdb,
                            blocked_secs,
                        });
                    }
                }
                observer(&Event::Blocked {
                    node: node.to_string(),
                    pod: pod.clone(),
                    budget: blocker.clone(),
                    message,
                    blocked_secs,
                    retry_in_secs: backoff.as_secs_f64(),
                });
                let _ = tx.send(Report::Blocked(pod.clone(), blocker));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Report::Failed(pod.clone(), e),
        }
    }
}

async fn delete_one(
    client: &kube::Client,
    pod: &PodRef,
    grace: Option<i64>,
    budgets: &[BudgetCheck],
    node: &str,
    observer: &Observer,
) -> Report {
    let overrode: Vec<PdbInfo> = budgets
        .iter()
        .filter(|b| b.blocks && b.pods.iter().any(|p| &p.pod == pod && p.to_evict))
        .map(|b| b.pdb.clone())
        .collect();
    match api::delete(client, pod, grace).await {
        Ok(_) => {
            observer(&Event::Deleted {
                node: node.to_string(),
                pod: pod.clone(),
                overrode: overrode.clone(),
            });
            if overrode.is_empty() {
                Report::Removed(pod.clone())
            } else {
                Report::Overrode(Overridden {
                    pod: pod.clone(),
                    budgets: overrode.into_iter().map(|p| p.pdb).collect(),
                })
            }
        }
        Err(e) => Report::Failed(pod.clone(), e),
    }
}

/// Why a drain did not start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// The plan of the batch that was refused (nothing was changed).
    pub plan: Plan,
    /// Whether hazards were refused (pods the rules refuse always are).
    pub hazards: bool,
}

/// The outcome of [`drain`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// How pods were removed.
    pub removal: String,
    /// One result per node whose batch ran, in order (nodes after a failed batch: not
    /// started).
    pub nodes: Vec<NodeResult>,
    /// The batch whose plan refused, before anything of it changed; later batches were
    /// not planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Box<Refusal>>,
}

impl Outcome {
    /// Whether every node was drained.
    pub fn success(&self) -> bool {
        self.refused.is_none() && self.nodes.iter().all(|n| n.state == NodeState::Drained)
    }
}

fn not_started(node: &str) -> NodeResult {
    NodeResult {
        node: node.to_string(),
        state: NodeState::NotStarted,
        cordoned: false,
        removed: Vec::new(),
        remaining: Vec::new(),
        blockers: Vec::new(),
        overridden: Vec::new(),
        error: None,
        seconds: 0.0,
    }
}

/// Drains `request.nodes`, `max_unavailable` at a time. Each batch is planned from fresh
/// facts first; pods the rules refuse (or hazards, unless `request.rules.force`) stop
/// the run before that batch changes anything. A node that fails stops the run after
/// its batch; it stays cordoned unless `options.uncordon_on_failure`.
pub async fn drain(
    drainer: &Drainer,
    request: &Request,
    options: &Options,
    observer: &Observer,
) -> Result<Outcome> {
    let removal = drainer.removal(request.disable_eviction)?;
    let mut outcome = Outcome {
        removal,
        nodes: Vec::new(),
        refused: None,
    };
    let batches = plan::batches(&request.nodes, request.max_unavailable);
    let mut failed = false;
    for batch in &batches {
        if failed {
            outcome.nodes.extend(batch.iter().map(|n| not_started(n)));
            continue;
        }
        let batch_request = Request {
            nodes: batch.clone(),
            max_unavailable: batch.len(),
            ..request.clone()
        };
        let plan = drainer
            .plan(&batch_request, options.pod_selector.as_deref())
            .await?;
        let hazards = plan.hazardous() && !request.rules.force && !request.allow_hazards;
        if plan.refused() || hazards {
            outcome.refused = Some(Box::new(Refusal { plan, hazards }));
            return Ok(outcome);
        }
        observer(&Event::Batch {
            nodes: batch.clone(),
            plans: plan.nodes.clone(),
        });
        let mut set = tokio::task::JoinSet::new();
        for (i, node_plan) in plan.nodes.into_iter().enumerate() {
            let started = drainer.start(node_plan, request.disable_eviction);
            let options = options.clone();
            let observer = observer.clone();
            set.spawn(async move { (i, drain_node(started, &options, &observer).await) });
        }
        let mut batch_results: Vec<(usize, NodeResult)> = Vec::new();
        while let Some(joined) = set.join_next().await {
            let (i, r) = joined.map_err(|e| Error::Task {
                reason: e.to_string(),
            })?;
            let r = r?;
            failed |= r.state != NodeState::Drained;
            batch_results.push((i, r));
        }
        batch_results.sort_by_key(|(i, _)| *i);
        outcome
            .nodes
            .extend(batch_results.into_iter().map(|(_, r)| r));
    }
    Ok(outcome)
}

async fn drain_node(
    started: Planned,
    options: &Options,
    observer: &Observer,
) -> Result<NodeResult> {
    let cordoned = started.cordon(observer).await?;
    match cordoned.remove_pods(options, observer).await {
        Ok(done) => Ok(done.result()),
        Err(stuck) if options.uncordon_on_failure => stuck.uncordon(observer).await,
        Err(stuck) => Ok(stuck.keep_cordoned()),
    }
}

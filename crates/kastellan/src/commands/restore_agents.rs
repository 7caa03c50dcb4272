//! After a restore: what the restored API shows of the node agents and the leaders
//! (`kastellan-restore-procedure::agents` judges it): the probe watch, then the Leases
//! until every kubelet and leader renewed its own or the wait is over.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kastellan_restore_procedure::agents::{self, Agents, LeaseSeen};
use kube::api::{Api, ListParams, WatchParams};

use crate::cli::GlobalArgs;

/// How long kastellan waits for the Leases: a kubelet renews every 10 s, a restarted
/// controller-manager or scheduler takes its leader Lease once the old holder's 15 s
/// have run out.
pub const WAIT: Duration = Duration::from_secs(60);

/// Watches what the restored API shows for up to `wait`. `start_revision`: the revision
/// the restored store started from; `probe_rv`: the resourceVersion the probe watch
/// resumes from. `kubeconfig`: the fallback when neither `--kubeconfig` nor
/// `$KUBECONFIG` is given.
pub fn observe(
    global: &GlobalArgs,
    kubeconfig: Option<&Path>,
    start_revision: i64,
    probe_rv: i64,
    wait: Duration,
) -> Result<Agents> {
    let rt = super::runtime()?;
    rt.block_on(async {
        let kube = super::kube::client(global, kubeconfig, super::kube::READ_TIMEOUT).await?;
        let c = kube.client;
        let mut nodes: Vec<String> = Api::<Node>::all(c.clone())
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        nodes.sort();
        // The probe: a watch of Nodes resumed from before the restore, as a kubelet's
        // informer resumes its own after the apiserver restarted.
        let req = kube::core::Request::new("/api/v1/nodes")
            .watch(&WatchParams::default().timeout(2), &probe_rv.to_string())
            .map_err(kube::Error::BuildRequest)?;
        let probe = match c.request_text(req).await {
            Ok(body) => agents::probe_answer(Some(200), &body),
            Err(kube::Error::Api(s)) => agents::probe_answer(Some(s.code), &s.message),
            Err(e) => agents::probe_answer(None, &e.to_string()),
        };
        let start = Instant::now();
        let verdicts = loop {
            let mut seen = leases(&c, "kube-node-lease").await?;
            seen.extend(leases(&c, "kube-system").await?);
            let v = agents::judge(&nodes, &seen, start_revision);
            if v.iter().all(|r| r.renewed) || start.elapsed() >= wait {
                break v;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        let (kubelets, leaders) = agents::split(verdicts);
        Ok(Agents {
            basis: agents::BASIS.into(),
            start_revision,
            probe_resource_version: probe_rv,
            probe,
            kubelets,
            leaders,
            waited_secs: start.elapsed().as_secs(),
        })
    })
}

/// The Leases of a namespace.
async fn leases(c: &kube::Client, ns: &str) -> Result<Vec<LeaseSeen>> {
    let list = Api::<Lease>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(list
        .items
        .into_iter()
        .map(|l| LeaseSeen {
            namespace: ns.to_string(),
            name: l.metadata.name.unwrap_or_default(),
            holder: l.spec.as_ref().and_then(|s| s.holder_identity.clone()),
            renew_time: l
                .spec
                .as_ref()
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0.to_string()),
            resource_version: l.metadata.resource_version.and_then(|rv| rv.parse().ok()),
        })
        .collect())
}

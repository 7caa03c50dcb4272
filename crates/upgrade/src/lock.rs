//! The cluster-wide upgrade lock: a Lease in `kube-system` that names the run holding
//! it, so that two upgrade runs (from two machines, or two state directories) never
//! overlap. The run renews it before every step and records its progress in the
//! Lease's annotations; a finished run deletes it. A lock left by a run that stopped is
//! named as stale, and only `--break-lock` takes it over.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// The Lease's namespace and name.
pub const NAMESPACE: &str = "kube-system";
/// The Lease's name.
pub const NAME: &str = "kastellan-upgrade";
/// The annotation with the run's id.
pub const RUN_ANNOTATION: &str = "kastellan.dev/upgrade-run";
/// The annotation with the run's progress (`step 8/29: 1.21 cp1`).
pub const PROGRESS_ANNOTATION: &str = "kastellan.dev/upgrade-progress";
/// How long the lock holds without a renewal (a step may take this long).
pub const DURATION: Duration = Duration::from_secs(30 * 60);

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `holderIdentity`: host and process.
    pub identity: String,
    /// The run's id.
    pub run: String,
    /// Its progress when last renewed.
    pub progress: String,
    /// Seconds since it was last renewed.
    pub renewed_secs_ago: Option<i64>,
    /// Whether it went unrenewed longer than its duration.
    pub stale: bool,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Lease {NAMESPACE}/{NAME} held by {} for run {}",
            self.identity, self.run
        )?;
        if !self.progress.is_empty() {
            write!(f, " ({})", self.progress)?;
        }
        if let Some(s) = self.renewed_secs_ago {
            write!(f, ", renewed {s}s ago")?;
        }
        if self.stale {
            write!(
                f,
                "; stale (not renewed for more than {}s)",
                DURATION.as_secs()
            )?;
        }
        Ok(())
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds it.
    #[error("another upgrade run holds the lock: {0}; only --break-lock takes it over")]
    Held(Box<Holder>),
    /// The API failed.
    #[error("the upgrade lock (Lease {NAMESPACE}/{NAME}): {0}")]
    Kube(#[from] kube::Error),
}

fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn holder_of(lease: &Lease) -> Holder {
    let annotations = lease.metadata.annotations.clone().unwrap_or_default();
    let spec = lease.spec.clone().unwrap_or_default();
    let renewed_secs_ago = spec
        .renew_time
        .as_ref()
        .map(|t| (jiff::Timestamp::now() - t.0).get_seconds());
    let duration = i64::from(
        spec.lease_duration_seconds
            .unwrap_or(DURATION.as_secs() as i32),
    );
    Holder {
        identity: spec.holder_identity.unwrap_or_default(),
        run: annotations.get(RUN_ANNOTATION).cloned().unwrap_or_default(),
        progress: annotations
            .get(PROGRESS_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        renewed_secs_ago,
        stale: renewed_secs_ago.is_none_or(|s| s > duration),
    }
}

/// Takes the lock for `run` (held by `identity`). A lock of the same run (a resumed
/// run) is taken back; another run's is refused, stale or not, unless `break_lock`.
/// Returns the holder that was broken, if any.
pub async fn acquire(
    client: &kube::Client,
    run: &str,
    identity: &str,
    break_lock: bool,
) -> Result<Option<Holder>, LockError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let body = |resource_version: Option<String>| -> Result<Lease, kube::Error> {
        serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "resourceVersion": resource_version,
                "annotations": {RUN_ANNOTATION: run, PROGRESS_ANNOTATION: "starting"},
            },
            "spec": {
                "holderIdentity": identity,
                "leaseDurationSeconds": DURATION.as_secs(),
                "acquireTime": now_micro(),
                "renewTime": now_micro(),
            },
        }))
        .map_err(kube::Error::SerdeError)
    };
    match api.get_opt(NAME).await? {
        None => {
            api.create(&PostParams::default(), &body(None)?).await?;
            Ok(None)
        }
        Some(lease) => {
            let holder = holder_of(&lease);
            if holder.run != run && !break_lock {
                return Err(LockError::Held(Box::new(holder)));
            }
            // Replace with the resourceVersion read: a concurrent taker loses (409).
            api.replace(
                NAME,
                &PostParams::default(),
                &body(lease.metadata.resource_version.clone())?,
            )
            .await?;
            Ok((holder.run != run).then_some(holder))
        }
    }
}

/// Renews the lock and records the run's progress.
pub async fn renew(client: &kube::Client, progress: &str) -> Result<(), LockError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({
            "metadata": {"annotations": {PROGRESS_ANNOTATION: progress}},
            "spec": {"renewTime": now_micro()},
        })),
    )
    .await?;
    Ok(())
}

/// Releases the lock of `run` (a lock another run took over is left alone).
pub async fn release(client: &kube::Client, run: &str) -> Result<(), LockError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    if let Some(lease) = api.get_opt(NAME).await?
        && holder_of(&lease).run == run
    {
        api.delete(NAME, &DeleteParams::default()).await?;
    }
    Ok(())
}

/// The holder of the lock, if any.
pub async fn holder(client: &kube::Client) -> Result<Option<Holder>, LockError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    Ok(api.get_opt(NAME).await?.as_ref().map(holder_of))
}

//! The one way every command gets a Kubernetes client: `--kubeconfig`, else
//! `$KUBECONFIG`, else the command's own fallback (e.g. `/etc/kubernetes/admin.conf` on a
//! control-plane node), else kube-rs's defaults (`~/.kube/config`, in-cluster); the
//! context of `--context`; the same timeouts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::cli::GlobalArgs;

/// How long connecting to the apiserver may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one API read may take, unless the command says otherwise.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A client, and the kubeconfig file it came from (none: kube-rs's defaults).
pub struct Kube {
    /// The kubeconfig file read, if one was named.
    pub path: Option<PathBuf>,
    /// The configuration the client was made from.
    pub config: kube::Config,
    /// The client.
    pub client: kube::Client,
}

/// The kubeconfig file the options name (`--kubeconfig`, `$KUBECONFIG`, `fallback`).
pub fn kubeconfig_path(global: &GlobalArgs, fallback: Option<&Path>) -> Option<PathBuf> {
    global
        .kubeconfig
        .clone()
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
        .or_else(|| fallback.map(Path::to_path_buf))
}

/// A client as the global options say, with [`CONNECT_TIMEOUT`] and `read_timeout`.
pub async fn client(
    global: &GlobalArgs,
    fallback: Option<&Path>,
    read_timeout: Duration,
) -> Result<Kube> {
    let path = kubeconfig_path(global, fallback);
    let options = kube::config::KubeConfigOptions {
        context: global.context.clone(),
        ..Default::default()
    };
    let mut config = match &path {
        Some(p) => {
            // kube's errors repeat their source in their own text: say each thing once.
            let kc = kube::config::Kubeconfig::read_from(p)
                .map_err(|e| anyhow::anyhow!("reading kubeconfig {}: {e}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| anyhow::anyhow!("kubeconfig {}: {e}", p.display()))?
        }
        None => kube::Config::from_kubeconfig(&options).await.map_err(|e| {
            anyhow::anyhow!("no kubeconfig (give --kubeconfig FILE or set KUBECONFIG): {e}")
        })?,
    };
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(read_timeout);
    Ok(Kube {
        path,
        client: kube::Client::try_from(config.clone())?,
        config,
    })
}

/// The client of cordons, drains and evictions: kube's own retry of 429s off, so that a
/// budget's refusal comes back to the drain, which says so, instead of being retried in
/// silence inside the client.
pub async fn drain_client(global: &GlobalArgs) -> Result<kube::Client> {
    let mut config = client(global, None, READ_TIMEOUT).await?.config;
    config.default_retry = false;
    Ok(kube::Client::try_from(config)?)
}

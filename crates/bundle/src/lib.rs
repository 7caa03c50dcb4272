//! Full cluster backup bundles.
//!
//! A bundle is one file, `kastellan-backup-<cluster>-<UTC time>.tar.zst` (`.age`
//! appended when encrypted), holding:
//!
//! | path in the archive | what |
//! |---|---|
//! | `manifest.json` | versions, cluster name, time, and size + sha256 of every other member (always first) |
//! | `etcd/snapshot.db` | an etcd snapshot, sha256-checked and verified when taken |
//! | `pki/...` | `/etc/kubernetes/pki`, etcd's CA and every private key included |
//! | `kubeconfigs/*.conf` | `admin.conf`, `controller-manager.conf`, `scheduler.conf`, `kubelet.conf`, ... |
//! | `manifests/*.yaml` | the static pod manifests |
//! | `kubeadm/kubeadm-config.yaml` | the `kube-system/kubeadm-config` ConfigMap |
//! | `resources/cluster/<group>/<resource>.yaml`, `resources/namespaces/<ns>/<group>/<resource>.yaml` | every listable API resource (events excluded) as re-appliable multi-document YAML: `status`, `managedFields`, `uid`, `resourceVersion`, `creationTimestamp`, `selfLink` removed |
//!
//! Next to it, `<bundle>.json` (the sidecar) records the bundle's own size and sha256,
//! whether it is encrypted, and when it was last verified; it holds no secret, so
//! `list` and `prune` work without the key.
//!
//! With [`CreateRequest::volume_snapshots`], every bound PVC whose CSI driver has a
//! VolumeSnapshotClass gets a VolumeSnapshot, ready to use before the bundle is
//! written, and recorded in its manifest ([`volumes`]).
//!
//! Copies go to S3 or an S3-compatible store with [`remote::Remote`] (bundle first,
//! sidecar last; multipart, resumable, checked against the sidecar's sha256).
//!
//! Bundles are written as `.part` (mode 0600), fsynced, renamed, and the directory
//! fsynced. The `.part` and the staging directory are locked (`flock`) while a run
//! lives; `create` first removes those a dead run left (their lock is free) and
//! reports them in [`Created::leftovers`], and never touches a live run's. A bundle holding private keys or Secrets is only written unencrypted when
//! the caller allows it explicitly.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod archive;
mod collect;
mod create;
mod error;
pub mod manifest;
pub mod meter;
pub mod objects;
pub mod proof;
pub mod remote;
mod resources;
pub mod retention;
pub mod schedule;
mod store;
#[cfg(test)]
mod tests;
mod verify;
pub mod volumes;

pub use crate::create::{CreateRequest, Created, Encryption, STAGING_PREFIX, create};
pub use crate::error::{Error, Result};
pub use crate::manifest::{FileEntry, Manifest, Sidecar};
pub use crate::resources::{Export, clean_object, export_resources};
pub use crate::store::{BundleInfo, PruneOutcome, list, prune};
pub use crate::verify::{
    Decryption, Verified, verify, verify_and_extract, verify_and_extract_pki,
    verify_and_read_resources,
};
/// The passphrase type of [`Encryption::Passphrase`] and [`Decryption::Passphrase`].
pub use age::secrecy::SecretString;

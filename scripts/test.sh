#!/usr/bin/env bash
# The whole test suite: installs prerequisites, builds (or reuses) the lab's Kubernetes
# binaries, checks formatting and lints, and runs every test tier (unit, real etcd,
# lab). Needs root on Debian bookworm. This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "test: cargo not found: install a Rust toolchain (rustup) first" >&2; exit 2; }

bash scripts/install-deps.sh
bash scripts/build-kubernetes.sh v1.20.2

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test (unit, real etcd, lab)"
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.log

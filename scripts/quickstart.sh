#!/usr/bin/env bash
# Quickstart on a fresh Debian bookworm machine, as root: installs every prerequisite,
# builds kastellan and the lab's Kubernetes, brings up the built-in lab cluster and
# runs the main job against it.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "quickstart: cargo not found: install a Rust toolchain (rustup) first" >&2; exit 2; }

bash scripts/install-deps.sh
bash scripts/build-kubernetes.sh v1.20.2

echo "== building kastellan (release)"
cargo build --release --quiet -p kastellan
install -m 0755 target/release/kastellan /usr/local/bin/kastellan
ln -sf kastellan /usr/local/bin/kubectl-kastellan
kube_bin="${KASTELLAN_CACHE:-/var/cache/kastellan}/kubernetes/v1.20.2/bin"
[ -e /usr/local/bin/kubectl ] || ln -s "$kube_bin/kubectl" /usr/local/bin/kubectl

echo "== kastellan lab up"
kastellan lab up --control-planes 1 --workers 1
echo "== kastellan lab status"
kastellan lab status
echo "== kubectl kastellan lab env (as a kubectl plugin)"
kubectl kastellan lab env
echo
echo "The lab keeps running; stop it with: kastellan lab down"

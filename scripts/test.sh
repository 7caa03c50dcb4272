#!/usr/bin/env bash
# The whole test suite: installs prerequisites, builds (or reuses) the lab's Kubernetes
# binaries, checks formatting, lints and unused dependencies, and runs every test tier
# (unit, packages, cli/real etcd/kubeadm, systemd, lab), printing each tier's time. Needs root on
# Debian bookworm. This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "test: cargo not found: install a Rust toolchain (rustup) first" >&2; exit 2; }

# Incremental caches only help an edited tree; a clean checkout would pay gigabytes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

times=()
tier() {
  local name=$1
  shift
  local start=$SECONDS
  echo "== $name"
  "$@"
  times+=("$(printf '%-34s %5ds' "$name" $((SECONDS - start)))")
  echo "== $name: $((SECONDS - start))s"
}

tier "prerequisites" bash scripts/install-deps.sh
tier "lab Kubernetes build (cached)" bash scripts/build-kubernetes.sh v1.20.2
# The upgrade tests need a second version: the same source stamped v1.21.0 (the Go
# build cache inside the source tree makes it mostly a relink).
tier "lab Kubernetes v1.21.0 (cached)" bash scripts/build-kubernetes.sh v1.21.0

machete() {
  if ! command -v cargo-machete >/dev/null; then
    cargo install --quiet --locked cargo-machete
  fi
  cargo machete
}

tier "cargo fmt --check" cargo fmt --all -- --check
tier "cargo clippy -D warnings" cargo clippy --workspace --all-targets --quiet -- -D warnings
tier "unused dependencies (machete)" machete
tier "build" cargo test --workspace --no-run --quiet

mkdir -p target
log=target/test-output.log
: >"$log"
failed=0
run() {
  # Every tier runs even when an earlier one failed; the exit status says if any did.
  "$@" 2>&1 | tee -a "$log" || failed=1
}
# The packages: scripts/package.sh builds the static (musl) binary, its krew archive and
# manifest and the .deb with an unoptimised profile (package-test: a release build would
# cost several more minutes), then the package_ tests install and purge the .deb in a
# scratch dpkg root and run the static binary in an empty root.
packages() {
  bash scripts/package.sh --profile package-test &&
    cargo test -p kastellan --test it --no-fail-fast -- package_
}
tier "packages (.deb, static musl, krew)" run packages
tier "unit (lib, bins)" run cargo test --workspace --lib --bins --no-fail-fast
tier "doc tests" run cargo test --workspace --doc --no-fail-fast
tier "cli, real etcd, kubeadm, local" run cargo test --workspace --test '*' --no-fail-fast -- --skip lab_ --skip systemd_ --skip package_
tier "systemd" run cargo test -p kastellan --test it --no-fail-fast -- systemd_
tier "lab" run cargo test --workspace --test '*' --no-fail-fast -- lab_

echo "== disk"
df -h . /var/lib 2>/dev/null || true
du -sh "${CARGO_TARGET_DIR:-target}" 2>/dev/null || true
echo "== times"
printf '%s\n' "${times[@]}"
exit $failed

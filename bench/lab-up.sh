#!/usr/bin/env bash
# Time from `kastellan lab up` (Kubernetes binaries cached) to all-ready, for a
# 1-control-plane lab and a 3-control-plane + 2-worker lab made by copying cp1's CAs
# (`--join copy`), the same with per-node packages, and joined with real `kubeadm join`
# (the default); prints the median of RUNS.
# Needs root and no lab running. usage: bench/lab-up.sh [RUNS]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
runs="${1:-3}"
cargo build --release --quiet -p kastellan
k=target/release/kastellan
bash scripts/build-kubernetes.sh v1.20.2 >/dev/null

for shape in "1 0" "3 2 --join copy" "3 2 --join copy --packages" "3 2"; do
  set -- $shape
  cps="$1" workers="$2"
  shift 2
  times=()
  for _ in $(seq "$runs"); do
    start=$(date +%s.%N)
    "$k" lab up -q --control-planes "$cps" --workers "$workers" "$@" >/dev/null
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
    "$k" lab down -q
  done
  printf 'lab up --control-planes %s --workers %s %s: runs %s, median %.1f s (%s)\n' \
    "$cps" "$workers" "$*" "$runs" "$(printf '%s\n' "${times[@]}" | median)" "${times[*]}"
done

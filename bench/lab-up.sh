#!/usr/bin/env bash
# Time from `kastellan lab up` (Kubernetes binaries cached) to all-ready, for a
# 1-control-plane lab and a 3-control-plane + 2-worker lab; prints the median of RUNS.
# Needs root and no lab running. usage: bench/lab-up.sh [RUNS]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
runs="${1:-3}"
cargo build --release --quiet -p kastellan
k=target/release/kastellan
bash scripts/build-kubernetes.sh v1.20.2 >/dev/null

for shape in "1 0" "3 2"; do
  set -- $shape
  times=()
  for _ in $(seq "$runs"); do
    start=$(date +%s.%N)
    "$k" lab up -q --control-planes "$1" --workers "$2" >/dev/null
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
    "$k" lab down -q
  done
  printf 'lab up --control-planes %s --workers %s: runs %s, median %.1f s (%s)\n' \
    "$1" "$2" "$runs" "$(printf '%s\n' "${times[@]}" | median)" "${times[*]}"
done

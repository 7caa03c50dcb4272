#!/usr/bin/env bash
# Draining a worker of 20 pods: `kubectl drain` v1.20.2 against `kastellan node drain`
# on the lab (1 control plane, 2 workers). Four Deployments of 5 replicas each are
# pinned to w1 (nodeSelector), so every run drains the same 20 pods; after each drain
# w1 is uncordoned and the replacements become Running there again before the next
# run. Both commands select the pods with --pod-selector bench=drain and return when
# the pods are gone (checked after each run); the tools alternate. Prints each run,
# the medians and the ratio.
# Needs root, and the lab lock (it waits for /var/lib/kastellan/lab-test.lock); brings
# the lab up if it is not (and leaves it as it found it).
# usage: bench/drain.sh [RUNS]    (KASTELLAN_BIN: the binary to time, else a release build)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
runs="${1:-5}"
if [ -n "${KASTELLAN_BIN:-}" ]; then
  k="$KASTELLAN_BIN"
else
  cargo build --release --quiet -p kastellan
  k="${CARGO_TARGET_DIR:-$PWD/target}/release/kastellan"
fi
kubectl="${KASTELLAN_CACHE:-/var/cache/kastellan}/kubernetes/v1.20.2/bin/kubectl"
export KUBECONFIG=/var/lib/kastellan/lab/admin.conf
kc() { "$kubectl" "$@"; }

bench_lab "$k" --control-planes 1 --workers 2
cleanup() {
  kc delete namespace bench-drain --wait=false >/dev/null 2>&1 || true
  kc uncordon w1 >/dev/null 2>&1 || true
  bench_lab_down "$k"
}
trap cleanup EXIT

kc create namespace bench-drain >/dev/null
until kc get serviceaccount default -n bench-drain >/dev/null 2>&1; do sleep 0.5; done
for d in alpha beta gamma delta; do
  cat <<EOF | kc apply -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: {name: $d, namespace: bench-drain}
spec:
  replicas: 5
  selector: {matchLabels: {app: $d}}
  template:
    metadata: {labels: {app: $d, bench: drain}}
    spec:
      nodeSelector: {kubernetes.io/hostname: w1}
      containers: [{name: c, image: busybox}]
EOF
done

# 20 pods Running and Ready on w1, none being deleted.
ready_on_w1() {
  local n
  n=$(kc get pods -n bench-drain -l bench=drain --field-selector spec.nodeName=w1 \
    -o jsonpath='{range .items[*]}{.status.phase}{" "}{.metadata.deletionTimestamp}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    awk '$1 == "Running" && NF == 2 && $2 == "True"' | wc -l)
  [ "$n" = 20 ]
}
wait_ready() {
  local i
  for i in $(seq 240); do ready_on_w1 && return; sleep 0.5; done
  echo "the 20 pods did not become ready on w1" >&2
  exit 1
}
left_on_w1() {
  kc get pods -n bench-drain -l bench=drain --field-selector spec.nodeName=w1 -o name | wc -l
}

# One timed drain of w1 by "$@"; checks that the 20 pods are gone when it returns.
time_drain() {
  local s e left
  wait_ready
  s=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  e=$(date +%s.%N)
  left=$(left_on_w1)
  if [ "$left" != 0 ]; then
    echo "$1 returned with $left pods still on w1" >&2
    exit 1
  fi
  kc uncordon w1 >/dev/null
  echo "$e - $s" | bc
}

kubectl_drain() { kc drain w1 --pod-selector bench=drain --force --timeout=120s; }
kastellan_drain() { "$k" node drain w1 --pod-selector bench=drain --force --timeout 120s -q; }

# Warm-up, not timed.
time_drain kubectl_drain >/dev/null
ks=(); hs=()
for i in $(seq "$runs"); do
  hs+=("$(time_drain kubectl_drain)")
  ks+=("$(time_drain kastellan_drain)")
  printf 'run %s: kubectl drain %.2f s, kastellan node drain %.2f s\n' "$i" "${hs[-1]}" "${ks[-1]}"
done
km=$(printf '%s\n' "${ks[@]}" | median)
hm=$(printf '%s\n' "${hs[@]}" | median)
printf 'kubectl drain (20 pods, %s runs): median %.2f s\n' "$runs" "$hm"
printf 'kastellan node drain (20 pods, %s runs): median %.2f s\n' "$runs" "$km"
printf 'ratio (kubectl / kastellan): %.2fx\n' "$(echo "$hm / $km" | bc -l)"

#!/usr/bin/env bash
# Full status of a 3-control-plane + 2-worker lab: `kastellan status` against the same
# probes done one by one by hand (curl per endpoint inside each node, etcdctl endpoint
# status, kubectl for Nodes, Pods and Leases), in one run; prints medians and the ratio.
# Needs root; brings the lab up if it is not (and leaves it as it found it).
# usage: bench/status.sh [RUNS]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
runs="${1:-5}"
cargo build --release --quiet -p kastellan
k="$PWD/target/release/kastellan"
kube_bin="${KASTELLAN_CACHE:-/var/cache/kastellan}/kubernetes/v1.20.2/bin"
kc=/var/lib/kastellan/lab/admin.conf

started=0
if ! "$k" lab status -q >/dev/null 2>&1; then
  "$k" lab up -q --control-planes 3 --workers 2 >/dev/null
  started=1
fi
cleanup() { [ "$started" = 1 ] && "$k" lab down -q; }
trap cleanup EXIT

by_hand() {
  for n in cp1 cp2 cp3; do
    for u in https://127.0.0.1:6443/livez?verbose https://127.0.0.1:6443/readyz?verbose \
             http://127.0.0.1:2381/health http://127.0.0.1:2381/metrics \
             http://127.0.0.1:10248/healthz http://127.0.0.1:10249/healthz http://127.0.0.1:10256/healthz \
             https://127.0.0.1:10257/healthz https://127.0.0.1:10259/healthz; do
      "$k" lab exec "$n" -- curl -sk --max-time 3 "$u" >/dev/null || true
    done
    "$k" lab exec "$n" -- /usr/bin/etcdctl --endpoints=https://127.0.0.1:2379 \
      --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
      --key=/etc/kubernetes/pki/etcd/healthcheck-client.key endpoint status >/dev/null || true
  done
  for n in w1 w2; do
    for u in http://127.0.0.1:10248/healthz http://127.0.0.1:10249/healthz http://127.0.0.1:10256/healthz; do
      "$k" lab exec "$n" -- curl -s --max-time 3 "$u" >/dev/null || true
    done
  done
  "$kube_bin/kubectl" --kubeconfig "$kc" get nodes >/dev/null
  "$kube_bin/kubectl" --kubeconfig "$kc" get pods -n kube-system -l tier=control-plane >/dev/null
  "$kube_bin/kubectl" --kubeconfig "$kc" get lease -n kube-system >/dev/null
}

time_it() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N); echo "$e - $s" | bc; }

"$k" status --kubeconfig "$kc" >/dev/null || true   # warm-up
ks=(); hs=()
for _ in $(seq "$runs"); do
  ks+=("$(time_it "$k" status --kubeconfig "$kc")")
  hs+=("$(time_it by_hand)")
done
km=$(printf '%s\n' "${ks[@]}" | median)
hm=$(printf '%s\n' "${hs[@]}" | median)
printf 'kastellan status (3+2 lab, %s runs): median %.3f s\n' "$runs" "$km"
printf 'one by one (curl x %s, etcdctl x 3, kubectl x 3): median %.3f s\n' 39 "$hm"
printf 'ratio (by hand / kastellan): %.1fx\n' "$(echo "$hm / $km" | bc -l)"

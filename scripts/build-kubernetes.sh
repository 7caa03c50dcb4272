#!/usr/bin/env bash
# Builds the lab's Kubernetes binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, kube-proxy, kubeadm, kubectl) from Debian bookworm's `kubernetes`
# source package, offline, with Debian's Go. The result is cached by version outside the
# repository: $KASTELLAN_CACHE (default /var/cache/kastellan)/kubernetes/<version>/bin.
#
# usage: build-kubernetes.sh [VERSION]   (default v1.20.2, the source's own version)
# A different VERSION stamps the same source with another version string, which is
# how the upgrade tests get two versions.
set -euo pipefail

version="${1:-v1.20.2}"
cache="${KASTELLAN_CACHE:-/var/cache/kastellan}"
out="$cache/kubernetes/$version/bin"
bins=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubeadm kubectl)

have_all=1
for b in "${bins[@]}"; do [ -x "$out/$b" ] || have_all=0; done
if [ "$have_all" = 1 ]; then
  echo "build-kubernetes: $version cached in $out"
  exit 0
fi

for tool in go dpkg-source apt-get rsync; do
  command -v "$tool" >/dev/null || {
    echo "build-kubernetes: '$tool' missing: run scripts/install-deps.sh (packages golang-go, dpkg-dev, rsync)" >&2
    exit 2
  }
done
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -f "$reflect2/reflect2.go" ] || {
  echo "build-kubernetes: $reflect2 missing: apt-get install golang-github-modern-go-reflect2-dev" >&2
  exit 2
}

src_root="$cache/src"
mkdir -p "$src_root"
tree=$(find "$src_root" -maxdepth 1 -type d -name 'kubernetes-*' | sort | tail -n 1)
if [ -z "$tree" ] || [ ! -f "$tree/hack/lib/version.sh" ]; then
  echo "build-kubernetes: fetching Debian source package 'kubernetes' into $src_root"
  (cd "$src_root" && apt-get source -qq kubernetes >/dev/null) || {
    echo "build-kubernetes: 'apt-get source kubernetes' failed: is a deb-src entry for bookworm configured? (scripts/install-deps.sh adds one)" >&2
    exit 2
  }
  tree=$(find "$src_root" -maxdepth 1 -type d -name 'kubernetes-*' | sort | tail -n 1)
fi
echo "build-kubernetes: source tree $tree"

# The vendored reflect2 v1.0.1 crashes under Go >= 1.18; Debian ships 1.0.2.
vend="$tree/vendor/github.com/modern-go/reflect2"
if ! [ -f "$vend/go_above_118.go" ]; then
  rm -rf "$vend"
  mkdir -p "$vend"
  rsync -a --exclude go.mod "$reflect2/" "$vend/"
fi

gopath="$cache/gopath"
mkdir -p "$gopath/src/k8s.io"
ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"

major=$(echo "$version" | sed -E 's/^v([0-9]+)\..*/\1/')
minor=$(echo "$version" | sed -E 's/^v[0-9]+\.([0-9]+)\..*/\1/')
vfile="$cache/kubernetes/$version.version"
mkdir -p "$(dirname "$vfile")"
cat > "$vfile" <<V
KUBE_GIT_VERSION='$version'
KUBE_GIT_MAJOR='$major'
KUBE_GIT_MINOR='$minor'
KUBE_GIT_TREE_STATE='clean'
KUBE_GIT_COMMIT='debian-kubernetes-source'
V

echo "build-kubernetes: building $version (a few minutes on 2 cores)"
cd "$gopath/src/k8s.io/kubernetes"
rm -rf _output/local/bin
env GOPATH="$gopath" GO111MODULE=off GOFLAGS=-mod=vendor CGO_ENABLED=0 GOPROXY=off \
  KUBE_GIT_VERSION_FILE="$vfile" GOCACHE="$cache/gocache" \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kube-proxy cmd/kubeadm cmd/kubectl" \
  >"$cache/kubernetes/build-$version.log" 2>&1 || {
    echo "build-kubernetes: build failed, last lines of $cache/kubernetes/build-$version.log:" >&2
    tail -n 30 "$cache/kubernetes/build-$version.log" >&2
    exit 2
  }
built=$(find _output/local/bin -type d -path '*/linux/amd64' | head -n 1)
tmp="$out.tmp.$$"
mkdir -p "$tmp"
for b in "${bins[@]}"; do cp "$built/$b" "$tmp/$b"; done
rm -rf "$out"
mv "$tmp" "$out"
"$out/kubeadm" version -o short
echo "build-kubernetes: $version ready in $out"

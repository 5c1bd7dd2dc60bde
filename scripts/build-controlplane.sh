#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-scheduler and kube-controller-manager from upstream Go modules (no binary is downloaded)
# into a cache outside the repo, keyed by a hash of the module files, so a second run takes seconds.
# Prints the bin directory on stdout. Env: CS_CACHE_DIR (default ~/.cache/cluster-scheduler).
set -euo pipefail
here=$(cd "$(dirname "$0")/controlplane" && pwd)
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
cache=${CS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cluster-scheduler}
key=$( (go version; cd "$here" && cat k8s/go.mod k8s/go.sum etcd/go.mod etcd/go.sum k8s/cmd/*/main.go etcd/cmd/*/main.go) | sha256sum | cut -c1-16)
bin="$cache/controlplane-$key/bin"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-scheduler" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/etcd" ]; then
  echo "$bin"; exit 0
fi
command -v go >/dev/null || { echo "build-controlplane: Go is not installed (need Go >= 1.26)" >&2; exit 1; }
mkdir -p "$bin.tmp"
kver=$(awk '$1=="k8s.io/kubernetes"{print $2}' "$here/k8s/go.mod" | head -1)
[ -n "$kver" ] || kver=$(grep -E 'k8s.io/kubernetes v' "$here/k8s/go.mod" | awk '{print $NF}' | head -1)
maj=${kver#v}; maj=${maj%%.*}; min=${kver#v*.}; min=${min%%.*}
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $p.gitVersion=$kver -X $p.gitMajor=$maj -X $p.gitMinor=$min -X $p.gitTreeState=clean"
done
echo "build-controlplane: building Kubernetes $kver and etcd into $bin (first build: ~10-20 min)" >&2
(cd "$here/etcd" && go build -p 2 -trimpath -ldflags "-s -w" -o "$bin.tmp/etcd" ./cmd/etcd)
(cd "$here/k8s" && go build -p 2 -trimpath -ldflags "$ld" -o "$bin.tmp/" ./cmd/kube-apiserver ./cmd/kube-scheduler ./cmd/kube-controller-manager)
rm -rf "$bin" && mv "$bin.tmp" "$bin"
echo "$bin"

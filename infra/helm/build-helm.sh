#!/usr/bin/env bash
# Build Helm from its official Go module (helm.sh/helm/v4 through the Go module proxy) into the cluster's cache and
# print the binary's path. Built once; later calls print the cached path. Never commit the binary.
#
#   infra/helm/build-helm.sh          # -> /var/cache/spaces-k8s/bin/helm-v4.3.2/helm
#
# Environment: SPACES_K8S_CACHE (default /var/cache/spaces-k8s, shared with infra/kubernetes/cluster: the same Go
# module and build caches), HELM_VERSION (default below), SPACES_K8S_BUILD_PROCS (GOMAXPROCS, default 2).
# helm's go.mod has no replace lines, so a plain `go install module/cmd/helm@version` works (unlike Kubernetes).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
CACHE="${SPACES_K8S_CACHE:-/var/cache/spaces-k8s}"
OUT="$CACHE/bin/helm-$HELM_VERSION"

if [ -x "$OUT/helm" ]; then echo "$OUT/helm"; exit 0; fi
command -v go >/dev/null || { echo "build-helm: Go >= 1.26 is needed (helm $HELM_VERSION's go.mod)" >&2; exit 1; }

export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOPATH="$CACHE/go/path"
export GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=local
export GOPROXY="${GOPROXY:-https://proxy.golang.org}" GOSUMDB="${GOSUMDB:-off}"  # sum.golang.org is unreachable here
export GOMAXPROCS="${SPACES_K8S_BUILD_PROCS:-2}"
mkdir -p "$OUT.part"
# the release build stamps the version the same way (helm version prints it)
nice -n 19 env GOBIN="$OUT.part" go install \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
rm -rf "$OUT"; mv "$OUT.part" "$OUT"
echo "$OUT/helm"

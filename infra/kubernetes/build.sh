#!/usr/bin/env bash
# Build the cluster's binaries from the official Go modules, once, into the cache (sourced by `cluster`).
#
# Reproducible from this repository only: a scratch Go module is generated here that requires the pinned
# k8s.io/kubernetes release and replaces each staging module it requires at v0.0.0 (k8s.io/api, client-go, ...)
# with the published v0.<minor>.<patch> of the same release -- `go install k8s.io/kubernetes/cmd/x@v` refuses because
# of those replace lines in its go.mod. etcd comes from go.etcd.io/etcd/server/v3 in a scratch module of its own (so
# the two dependency graphs do not raise each other's versions). The module hashes of a first build are kept in
# infra/kubernetes/sums/*.sum: later builds are checked against them (sum.golang.org is not reachable here).
# Binaries land in $CACHE/bin/<kube version>-<etcd version>/ and are built only when missing.

build_env() {
    export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOPATH="$CACHE/go/path"
    export GOFLAGS="-mod=mod -trimpath -buildvcs=false" GOSUMDB=off GOTOOLCHAIN=local CGO_ENABLED=0
    export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
    # two cores shared with everything else: keep the build polite unless told otherwise
    export GOMAXPROCS="${SPACES_K8S_BUILD_PROCS:-2}"
}

go_minor_ok() {  # the release targets Go 1.26 (its go.mod); another minor has produced a broken apiserver OpenAPI
    local v
    v="$(go env GOVERSION 2>/dev/null)" || return 1
    [[ "$v" == "go${GO_MINOR}" || "$v" == "go${GO_MINOR}."* ]]
}

scratch_kube() {  # $1 dir: the scratch module for the Kubernetes binaries
    local dir="$1" gomod staging
    mkdir -p "$dir"
    gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
    [ -f "$gomod" ] || { echo "could not fetch the go.mod of k8s.io/kubernetes@$KUBE_VERSION" >&2; return 1; }
    staging="$(awk '/^require|^\t/ && $2 == "v0.0.0" && $1 ~ /^k8s.io\// {print $1}' "$gomod" | sort -u)"
    {
        echo "module spaces.local/k8s-build"
        echo
        echo "go ${GO_MINOR}.0"
        echo
        echo "godebug default=go${GO_MINOR}"
        echo
        echo "require k8s.io/kubernetes $KUBE_VERSION"
        echo
        for m in $staging; do echo "replace $m => $m $STAGING_VERSION"; done
    } >"$dir/go.mod"
    echo 'package build' >"$dir/build.go"
    seed_sums "$dir" kubernetes
}

scratch_etcd() {
    local dir="$1"
    mkdir -p "$dir"
    printf 'module spaces.local/etcd-build\n\ngo %s.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
        "$GO_MINOR" "$ETCD_VERSION" >"$dir/go.mod"
    echo 'package build' >"$dir/build.go"
    seed_sums "$dir" etcd
}

seed_sums() {  # the recorded hashes, when this version was built before by the project
    local dir="$1" name="$2" rec="$HERE/sums/$2.sum"
    if [ -f "$rec" ] && head -n1 "$rec" | grep -q "$(pin_of "$name")"; then
        tail -n +2 "$rec" >"$dir/go.sum"
    else
        : >"$dir/go.sum"
    fi
}

pin_of() { if [ "$1" = kubernetes ]; then echo "k8s.io/kubernetes $KUBE_VERSION"; else echo "etcd $ETCD_VERSION"; fi; }

record_sums() {  # keep the hashes of this build beside the script (committed by whoever bumps the pins)
    local dir="$1" name="$2"
    mkdir -p "$HERE/sums"
    { echo "# $(pin_of "$name"): module hashes recorded by the first build; later builds must match"; \
      sort -u "$dir/go.sum"; } >"$HERE/sums/$name.sum.new"
    mv "$HERE/sums/$name.sum.new" "$HERE/sums/$name.sum"
}

kube_ldflags() {
    local minor="${KUBE_VERSION#v1.}" pkg flags=""
    minor="${minor%%.*}"
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    echo "-s -w$flags"
}

build_all() {  # builds what is missing in $BIN; logs to $CACHE/build.log
    local src="$CACHE/src/$KUBE_VERSION" esrc="$CACHE/src/etcd-$ETCD_VERSION" name missing=()
    for name in $KUBE_BINARIES etcd; do [ -x "$BIN/$name" ] || missing+=("$name"); done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v go >/dev/null || { echo "go is not installed (need Go $GO_MINOR.x)" >&2; return 1; }
    go_minor_ok || { echo "need Go $GO_MINOR.x for Kubernetes $KUBE_VERSION, found $(go env GOVERSION)" >&2; return 1; }
    build_env
    mkdir -p "$BIN.part"
    say "building ${missing[*]} ($KUBE_VERSION, etcd $ETCD_VERSION) into $BIN; log: $CACHE/build.log"
    for name in "${missing[@]}"; do
        local t0=$SECONDS
        if [ "$name" = etcd ]; then
            scratch_etcd "$esrc" && (cd "$esrc" && go build -ldflags "-s -w" -o "$BIN.part/etcd" \
                go.etcd.io/etcd/server/v3) || return 1
            record_sums "$esrc" etcd
        else
            scratch_kube "$src" && (cd "$src" && go build -ldflags "$(kube_ldflags)" -o "$BIN.part/$name" \
                "k8s.io/kubernetes/cmd/$name") || return 1
            record_sums "$src" kubernetes
        fi
        say "built $name in $((SECONDS - t0)) s"
    done
    mkdir -p "$BIN"
    for name in "${missing[@]}"; do mv "$BIN.part/$name" "$BIN/$name"; done
    rmdir "$BIN.part" 2>/dev/null || true
}

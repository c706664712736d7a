#!/usr/bin/env bash
# Build the local base images the Docker builder uses, idempotently (no container registry is needed).
#
#   infra/images/build-base.sh              # build what is missing
#   SPACES_BASE_REBUILD=1 infra/images/build-base.sh   # rebuild both
#
# Images (each labelled spaces.base.version; a different version is rebuilt):
#   spaces/base-debian:bookworm  debootstrap --variant=minbase of Debian bookworm from the mirror apt uses here,
#                                turned into an image with `docker import` (about 100 MB).
#   spaces/base-python:3.11      FROM the Debian base: python3 (3.11), a virtual environment in /opt/venv (on PATH)
#                                with uv in it, user `user` (uid 1000, HOME=/home/user) as on Hugging Face Spaces.
#
# Extra CA bundle: SPACES_EXTRA_CA_BUNDLE (default: this host's /etc/ssl/certs/ca-certificates.crt when present) is
# copied into the build context and installed with update-ca-certificates, so pip and uv inside reach PyPI through a
# TLS-inspecting egress proxy. Set it to an empty string to leave it out.
# Fast when done: two `docker image inspect` calls. Exits non-zero with a message saying what failed.
set -euo pipefail

# bump one of these when its recipe below changes: that image (and what is built on it) is rebuilt
DEBIAN_VERSION=2
PYTHON_VERSION=2
DEBIAN_IMAGE="${SPACES_BASE_DEBIAN_IMAGE:-spaces/base-debian:bookworm}"
PYTHON_IMAGE="${SPACES_BASE_PYTHON_IMAGE:-spaces/base-python:3.11}"
SUITE=bookworm
CA_BUNDLE="${SPACES_EXTRA_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"

say() { printf '[build-base] %s\n' "$*"; }
die() { printf '[build-base] error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

have docker || die "docker CLI not found: run infra/docker/setup-engine.sh first"
timeout 10 docker info >/dev/null 2>&1 || die "the Docker engine does not answer: run infra/docker/setup-engine.sh first"

image_current() {  # $1 image, $2 version: present and built by this version of its recipe
    local v
    [ "${SPACES_BASE_REBUILD:-0}" = "1" ] && return 1
    v="$(docker image inspect --format '{{ index .Config.Labels "spaces.base.version" }}' "$1" 2>/dev/null)" || return 1
    [ "$v" = "$2" ]
}

mirror() {  # the Debian mirror apt uses on this host (deb822 or one-line format), else deb.debian.org
    local m=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        m="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
    fi
    if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
        m="$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)"
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

WORK="$(mktemp -d /tmp/spaces-base.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# -- spaces/base-debian:bookworm ---------------------------------------------------------------------------------
if image_current "$DEBIAN_IMAGE" "$DEBIAN_VERSION"; then
    say "$DEBIAN_IMAGE present"
else
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root to build $DEBIAN_IMAGE"
    if ! have debootstrap; then
        say "installing debootstrap ..."
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1 \
            || { env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
                 && env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; } \
            || die "could not install debootstrap"
    fi
    MIRROR="$(mirror)"
    say "debootstrap --variant=minbase $SUITE from $MIRROR (about a minute) ..."
    ROOTFS="$WORK/rootfs"
    debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
    # keep it small and let apt work inside: sources (with security updates), no caches, no downloaded lists
    cat >"$ROOTFS/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SOURCES
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$ROOTFS/etc/apt/apt.conf.d/90spaces"
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* \
        "$ROOTFS"/usr/share/man/* "$ROOTFS"/var/log/*.log "$ROOTFS"/tmp/*
    say "docker import -> $DEBIAN_IMAGE ..."
    tar -C "$ROOTFS" -c . | docker import \
        -c "LABEL spaces.base.version=$DEBIAN_VERSION" -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' \
        - "$DEBIAN_IMAGE" >/dev/null || die "docker import failed"
    say "$DEBIAN_IMAGE built ($(docker image inspect --format '{{.Size}}' "$DEBIAN_IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
    FORCE_PYTHON=1
fi

# -- spaces/base-python:3.11 -------------------------------------------------------------------------------------
if [ "${FORCE_PYTHON:-0}" != "1" ] && image_current "$PYTHON_IMAGE" "$PYTHON_VERSION"; then
    say "$PYTHON_IMAGE present"
    exit 0
fi
CTX="$WORK/python"
mkdir -p "$CTX"
if [ -n "$CA_BUNDLE" ]; then
    [ -r "$CA_BUNDLE" ] || die "SPACES_EXTRA_CA_BUNDLE=$CA_BUNDLE is not a readable file"
    cp "$CA_BUNDLE" "$CTX/spaces-extra-ca.crt"
    say "adding extra CA bundle $CA_BUNDLE"
else
    : >"$CTX/spaces-extra-ca.crt"
fi
cat >"$CTX/Dockerfile" <<DOCKERFILE
FROM $DEBIAN_IMAGE
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
COPY spaces-extra-ca.crt /usr/local/share/ca-certificates/spaces-extra-ca.crt
# one bundle for every TLS client: Python's ssl, pip, uv (SSL_CERT_FILE) and requests
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \\
    VIRTUAL_ENV=/opt/venv PATH=/home/user/.local/bin:/opt/venv/bin:\$PATH
RUN (test -s /usr/local/share/ca-certificates/spaces-extra-ca.crt || rm /usr/local/share/ca-certificates/spaces-extra-ca.crt) \\
 && update-ca-certificates >/dev/null \\
 && python3 -m venv /opt/venv \\
 && /opt/venv/bin/pip install --quiet uv \\
 && useradd --create-home --uid 1000 --shell /bin/bash user \\
 && mkdir -p /home/user/app && chown user:user /home/user/app \\
 && chown -R user:user /opt/venv
ENV HOME=/home/user
WORKDIR /home/user/app
LABEL spaces.base.version=$PYTHON_VERSION
DOCKERFILE
say "docker build -> $PYTHON_IMAGE ..."
docker build -q -t "$PYTHON_IMAGE" "$CTX" >"$WORK/build.log" 2>&1 \
    || { tail -n 30 "$WORK/build.log" >&2; die "building $PYTHON_IMAGE failed (log above)"; }
say "$PYTHON_IMAGE built ($(docker image inspect --format '{{.Size}}' "$PYTHON_IMAGE" | awk '{printf "%d MB", $1/1e6}'))"

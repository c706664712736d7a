#!/usr/bin/env bash
# Make a Docker engine answer on this machine, idempotently.
#
#   infra/docker/setup-engine.sh          # install docker.io if missing, start dockerd if not answering, wait
#
# Fast when the engine already answers (one `docker info`). On Debian 12 the engine is Debian's `docker.io`
# package (20.10: BuildKit is built into its `docker build` with DOCKER_BUILDKIT=1, no buildx plugin needed).
# dockerd is started in the background with its log in /var/log/dockerd.log (no systemd on CI containers).
# Exit status: 0 when `docker info` answers, non-zero with a message saying why otherwise.
set -euo pipefail

WAIT_S="${SPACES_DOCKER_WAIT_S:-60}"
LOG="${SPACES_DOCKERD_LOG:-/var/log/dockerd.log}"

say() { printf '[setup-engine] %s\n' "$*"; }
die() { printf '[setup-engine] error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if have sudo; then SUDO="sudo"; else die "not root and no sudo: cannot install or start dockerd"; fi
fi

engine_ready() { have docker && timeout 10 docker info >/dev/null 2>&1; }

if engine_ready; then
    say "engine answers: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null)"
    exit 0
fi

if ! have dockerd; then
    have apt-get || die "dockerd is missing and apt-get is not available: install a Docker engine by hand"
    say "installing docker.io (Debian package) ..."
    APT_LOG="$(mktemp)"
    { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          docker.io iptables ca-certificates; } >"$APT_LOG" 2>&1 \
        || { tail -n 20 "$APT_LOG" >&2; die "installing docker.io with apt-get failed (output above)"; }
    rm -f "$APT_LOG"
fi
have dockerd || die "dockerd still not found after installing docker.io"

if ! pgrep -x dockerd >/dev/null 2>&1; then
    say "starting dockerd (log: $LOG) ..."
    # setsid: the daemon must outlive this script and the test session that called it
    $SUDO setsid dockerd >>"$LOG" 2>&1 < /dev/null &
else
    say "dockerd is running but not answering yet; waiting"
fi

deadline=$((SECONDS + WAIT_S))
until engine_ready; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        say "last lines of $LOG:" >&2
        tail -n 20 "$LOG" >&2 2>/dev/null || true
        die "dockerd did not answer within ${WAIT_S}s"
    fi
    sleep 1
done
say "engine ready: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null)"

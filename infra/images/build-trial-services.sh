#!/usr/bin/env bash
# Build PostgreSQL and Redis images for the chart's bundled databases from the project's base image (for clusters
# that cannot pull Docker Hub, like the local one) and push them. Prints the two references.
#   infra/images/build-trial-services.sh [--push]      # -> 127.0.0.1:5123/spaces/postgresql:15, .../redis:7
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PREFIX="${SPACES_TRIAL_IMAGE_PREFIX:-127.0.0.1:5123/spaces}"
"$HERE/build-base.sh" >&2
for spec in postgresql:15 redis:7; do
    name="${spec%%:*}"
    nice -n 19 docker build -q -t "$PREFIX/$spec" -f "$HERE/trial/$name.Dockerfile" "$HERE/trial" >&2
    if [ "${1:-}" = --push ]; then docker push -q "$PREFIX/$spec" >&2; fi
    echo "$PREFIX/$spec"
done

#!/usr/bin/env bash
# Build the platform's image (infra/images/platform/Dockerfile) with the local Docker engine and, with --push, push
# it to a registry (default the local cluster's, 127.0.0.1:5123). Prints the image reference.
#
#   infra/images/build-platform.sh [--push]
#
# Environment: SPACES_PLATFORM_IMAGE (default 127.0.0.1:5123/spaces/platform), SPACES_PLATFORM_TAG (default: the
# short commit, "-dirty" when the tree has changes). The build context is the tracked and untracked-but-not-ignored
# files of this checkout (git ls-files), so .venv, caches and build outputs never go in.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
IMAGE="${SPACES_PLATFORM_IMAGE:-127.0.0.1:5123/spaces/platform}"
cd "$ROOT"
TAG="${SPACES_PLATFORM_TAG:-$(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo -dirty)}"

"$HERE/build-base.sh" >&2
# the context as a tar on stdin, with the Dockerfile put at its root
git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - -cf - --ignore-failed-read --transform 's,^infra/images/platform/Dockerfile$,Dockerfile,' \
    | nice -n 19 docker build -q -t "$IMAGE:$TAG" - >&2
if [ "${1:-}" = --push ]; then docker push -q "$IMAGE:$TAG" >&2; fi
echo "$IMAGE:$TAG"

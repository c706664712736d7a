"""The hub's side of ``spaces.metrics``: requests counted by route class, and ``/metrics`` for the operator.

``/metrics`` on the hub is reached through the public proxy like every hub page, and what it says (Space counts
by stage, flavors in use, request rates) is the operator's business: it answers only a Bearer token equal to the
``SPACES_METRICS_TOKEN`` setting (what Prometheus' ``authorization`` scrape option sends) or the token of an
administrator, and 401 to anyone else. A role without the hub serves ``/metrics`` on its ops port instead
(``spaces.ops.ops_app``), which binds to loopback or a private network and needs no token.
"""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from spaces import metrics
from spaces.errors import Forbidden, Unauthorized
from spaces.ops import metrics_text

router = APIRouter()
NEEDS = "Metrics need the SPACES_METRICS_TOKEN setting's token or an administrator's token as a Bearer token."

_GIT_SUFFIXES = ("/info/refs", "/git-upload-pack", "/git-receive-pack")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_OPS = frozenset({"/metrics", "/healthz", "/readyz", "/api/health"})


def route_class(path: str) -> str:
    """api, git, static, ops or pages: what kind of work a request is, from its path alone."""
    if path in _OPS:
        return "ops"
    if path.endswith(_GIT_SUFFIXES):
        return "git"
    if path.startswith("/api/") or "/resolve/" in path:  # file downloads are the API's (huggingface_hub)
        return "api"
    if path.startswith("/static/"):
        return "static"
    return "pages"


class RequestMetrics:
    """Pure ASGI, so streamed bodies (git, logs) pass untouched: counts each request by route class, method and
    status class, and times it to its response head."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        klass = route_class(scope.get("path", ""))
        method = scope.get("method", "GET")
        started = time.perf_counter()
        status = 500  # what a request that raised before answering counts as

        async def timed_send(message) -> None:  # noqa: ANN001
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                metrics.HUB_REQUEST_SECONDS.labels(klass).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            metrics.HUB_REQUESTS.labels(klass, method if method in _METHODS else "other",
                                        f"{status // 100}xx").inc()


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    from spaces.hub.api.common import in_session

    hub = request.app.state.hub
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    expected = hub.settings.metrics_token
    if not token:
        raise Unauthorized(NEEDS)
    if expected is None or not hmac.compare_digest(token, expected.get_secret_value()):
        if not await in_session(request, lambda s, p: p is not None and p.account.is_admin):
            raise Forbidden(NEEDS)
    body, content_type = metrics_text()
    return Response(body, media_type=content_type)

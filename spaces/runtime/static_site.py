"""Static Spaces: their files served straight from the working copy by one small ASGI app, no process per Space.

The proxy routes ``{subdomain}.{apps domain}`` of a static Space here like any upstream; the Host header picks the
working copy (``roots``, kept by the platform as static Spaces start and stop). Paths are resolved inside that
directory only: ``..``, absolute paths and symlinks out of the tree answer 404.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response


class StaticSites:
    def __init__(self, apps_domain: str) -> None:
        self.suffix = "." + apps_domain.split(":")[0].lower()
        #: subdomain -> (working copy, app file)
        self.roots: dict[str, tuple[Path, str]] = {}

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = self.respond(request)
        await response(scope, receive, send)

    def respond(self, request: Request) -> Response:
        host = request.headers.get("host", "").split(":")[0].lower()
        label = host[: -len(self.suffix)] if host.endswith(self.suffix) else ""
        site = self.roots.get(label)
        if site is None or request.method not in ("GET", "HEAD"):
            return PlainTextResponse("Not found", status_code=404)
        root, app_file = site
        rel = request.url.path.lstrip("/") or app_file
        path = (root / rel).resolve()
        if path.is_dir():
            path = path / "index.html"
        if not path.is_relative_to(root.resolve()) or not path.is_file() or ".git" in path.parts:
            return PlainTextResponse("Not found", status_code=404)
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=ctype)

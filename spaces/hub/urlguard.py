"""Refuse URLs that carry control characters (NUL, newlines, ESC...) with a 400, before any route sees them.

No name, path or revision the hub knows can hold one (see ``domain.naming``), so such a URL can only be a probe.
Refusing it at the edge keeps the bytes out of every lookup, log line and error message: a NUL that reached the
``X-Error-Message`` header once made the server drop the connection, and the proxy answered 502.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.requests import Request

from spaces.hub.errors import error_response

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def control_byte(scope: dict) -> str | None:
    """Where the first control byte of the decoded path or query string is, as a sentence; None when clean."""
    raw_path = (scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")).split(b"?", 1)[0]
    for what, raw in (("path", raw_path), ("query string", scope.get("query_string") or b"")):
        decoded = unquote_to_bytes(raw.replace(b"+", b" ") if what == "query string" else raw)
        found = _CONTROL.search(decoded) or _CONTROL.search(raw)
        if found:
            return f"The URL {what} contains the control character 0x{found.group()[0]:02x}"
    return None


class ControlBytes:
    """Pure ASGI: HTTP requests whose path or query string holds a control byte get a 400."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] == "http":
            problem = control_byte(scope)
            if problem is not None:
                message = f"{problem}; names, paths and revisions cannot hold NUL, newlines or other control bytes."
                response = error_response(Request(scope), 400, "BadRequest", message)
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)

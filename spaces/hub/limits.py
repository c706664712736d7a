"""Request body limits, enforced while the body streams in (a declared Content-Length over the limit is refused
before a byte is read; a chunked body is cut off the moment it passes the limit). Git transfers are exempt:
their size is the repository's business, not a JSON parser's."""

from __future__ import annotations

import json

from spaces.settings import Limits


class BodyLimit:
    def __init__(self, app, limits: Limits) -> None:  # noqa: ANN001
        self.app = app
        self.limits = limits

    def limit_for(self, path: str) -> int | None:
        if path.endswith(("/git-receive-pack", "/git-upload-pack")):
            return None
        if "/commit/" in path:
            return self.limits.max_commit_bytes
        return self.limits.max_json_bytes

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        if limit is None:
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _too_large(send, limit)
        seen = 0
        started = False

        async def limited_receive():  # noqa: ANN202
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return message

        async def tracking_send(message) -> None:  # noqa: ANN001
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _too_large(send, limit)


class _TooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:  # noqa: ANN001
    msg = f"Request body too large: the limit is {limit} bytes. Split the upload into several commits."
    body = json.dumps({"error": msg}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"x-error-code", b"PayloadTooLarge"), (b"x-error-message", msg.encode())]})
    await send({"type": "http.response.body", "body": body})

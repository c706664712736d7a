"""A small real ASGI app the proxy tests put behind the proxy (run by uvicorn in a subprocess).

Endpoints: ``/headers`` (the request as JSON, body size too), ``/stream`` (chunked, ``n`` chunks), ``/gated``
(one chunk, then waits until ``/release`` is called: proves the proxy does not buffer), ``/sse`` (``n`` events every
``every`` seconds, then optionally ``quiet`` seconds of silence before the last one), ``/upload`` (streams the body
into sha256), ``/ws`` (WebSocket echo). ``UPSTREAM_NAME`` names the instance in every answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from urllib.parse import parse_qs

NAME = os.environ.get("UPSTREAM_NAME", "app")
_gates: dict[str, asyncio.Event] = {}


async def _body(receive) -> tuple[int, str]:  # noqa: ANN001
    digest, size = hashlib.sha256(), 0
    while True:
        msg = await receive()
        chunk = msg.get("body", b"")
        size += len(chunk)
        digest.update(chunk)
        if not msg.get("more_body"):
            return size, digest.hexdigest()


async def _json(send, data: dict, status: int = 200) -> None:  # noqa: ANN001
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"x-upstream", NAME.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:  # noqa: ANN001
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            await send({"type": msg["type"] + ".complete"})
            if msg["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("text") is not None:
                await send({"type": "websocket.send", "text": f"{NAME}:{msg['text']}"})
            else:
                await send({"type": "websocket.send", "bytes": msg["bytes"]})
        return
    q = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    if path in ("/headers", "/upload", "/"):
        size, digest = await _body(receive)
        await _json(send, {"upstream": NAME, "method": scope["method"], "path": path, "size": size,
                           "sha256": digest, "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]]})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(int(q.get("n", 5))):
            await send({"type": "http.response.body", "body": f"chunk {i}\n".encode(), "more_body": True})
            await asyncio.sleep(float(q.get("every", 0.01)))
        await send({"type": "http.response.body", "body": b""})
    elif path == "/gated":
        gate = _gates.setdefault(q["id"], asyncio.Event())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        await gate.wait()
        await send({"type": "http.response.body", "body": b"second\n"})
    elif path == "/release":
        _gates.setdefault(q["id"], asyncio.Event()).set()
        await _json(send, {"released": q["id"]})
    elif path == "/sse":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        n, every, quiet = int(q.get("n", 5)), float(q.get("every", 0.1)), float(q.get("quiet", 0))
        for i in range(n):
            await send({"type": "http.response.body", "body": f"data: event {i}\n\n".encode(), "more_body": True})
            await asyncio.sleep(every)
        if quiet:
            await asyncio.sleep(quiet)
        await send({"type": "http.response.body", "body": b"data: end\n\n"})
    else:
        await _json(send, {"error": "no such path", "upstream": NAME}, 404)

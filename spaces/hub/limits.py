"""Request body limits and the body memory budget, enforced while the body streams in.

* Size: a declared Content-Length over the limit is refused (413) before a byte is read; a chunked body is cut
  off the moment it passes the limit. Git transfers are exempt: their size is the repository's business (they
  stream to ``git http-backend``, never into memory). An LFS object upload streams to disk too: its limit is
  ``LargeFileSettings.max_object_bytes`` and it holds one chunk of memory at a time.
* Authentication comes first: the endpoints check the caller (``json_body``, the commit endpoint) before they
  read, so an anonymous body is never read at all; this middleware only sees the reads that follow.
* Memory: every body the hub reads takes a share of one budget (``Limits.body_memory``) on its first read and
  gives it back when the request ends: its declared size, or for a commit (decoded as a stream, see
  ``spaces.hub.ndjson``) at most what the decoder can hold. A request that does not fit waits, in arrival order,
  up to ``Limits.body_wait`` seconds, then gets 503 with Retry-After. Waiting rather than refusing at once: a
  waiting body costs nothing (it stays unread in the socket, and the proxy stops reading the client), and
  huggingface_hub's create_commit does not retry a 503, so a burst of uploads is served in turn instead of
  failing; the bound on the wait keeps a queue that does not move from holding clients forever.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque

from spaces.hub.ndjson import MEMORY_BOUND
from spaces.settings import Limits

#: a serialized xorb is at most 64 MiB (the Xet spec), plus the footer hf_xet appends
XORB_LIMIT = 65 * 1024 * 1024
SHARD_LIMIT = 32 * 1024 * 1024


class BodyBudget:
    """Bytes of request bodies held in memory at once, handed out first come, first served."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()

    async def acquire(self, n: int, timeout: float) -> int | None:
        """Take ``n`` bytes (at most the whole budget); the amount taken, or None after ``timeout`` seconds."""
        n = min(n, self.total)
        if not self._waiting and n <= self.free:
            self.free -= n
            return n
        fut = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiting.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)  # cancels fut when the time is up, unless it was granted
        except asyncio.TimeoutError:
            pass
        except BaseException:  # the request went away while waiting
            if fut.done() and not fut.cancelled():
                self.release(n)
            else:
                self._drop(entry)
            raise
        if fut.done() and not fut.cancelled():
            return n
        self._drop(entry)
        return None

    def release(self, n: int) -> None:
        self.free += n
        self._grant()

    def _drop(self, entry: tuple[int, asyncio.Future]) -> None:
        if entry in self._waiting:
            self._waiting.remove(entry)
        self._grant()  # it may have held back smaller requests behind it

    def _grant(self) -> None:
        while self._waiting and self._waiting[0][0] <= self.free:
            n, fut = self._waiting.popleft()
            if not fut.done():
                self.free -= n
                fut.set_result(None)


class BodyLimit:
    def __init__(self, app, limits: Limits, budget: BodyBudget | None = None,  # noqa: ANN001
                 lfs_object_bytes: int = 50 * 1024**3) -> None:
        self.app = app
        self.limits = limits
        self.limits_lfs = lfs_object_bytes
        self.budget = budget or BodyBudget(limits.body_memory)

    def limit_for(self, path: str) -> tuple[int, int] | None:
        """(largest body, most of it held in memory at once) for a path; None when exempt."""
        if path.endswith(("/git-receive-pack", "/git-upload-pack")):
            return None
        if "/info/lfs/objects/" in path and not path.endswith("/objects/batch"):  # an object, streamed to disk
            return self.limits_lfs, 1 << 20
        if "/commit/" in path:
            return self.limits.max_commit_bytes, MEMORY_BOUND
        if path.startswith("/xet/v1/xorbs/"):  # streamed to a spool file and verified chunk by chunk
            return XORB_LIMIT, MEMORY_BOUND
        if path.startswith(("/xet/v1/shards", "/xet/v2/shards")):  # parsed whole: its records, not data
            return SHARD_LIMIT, SHARD_LIMIT
        return self.limits.max_json_bytes, self.limits.max_json_bytes

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        found = self.limit_for(scope["path"])
        if found is None:
            return await self.app(scope, receive, send)
        limit, held_at_most = found
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        size = int(declared) if declared is not None and declared.isdigit() else None
        if size is not None and size > limit:
            return await _too_large(send, limit)
        has_body = (size or 0) > 0 or b"transfer-encoding" in headers
        share = min(size if size is not None else limit, held_at_most) if has_body else 0
        seen = held = 0
        started = False

        async def limited_receive():  # noqa: ANN202
            nonlocal seen, held
            if share and not held:  # the first read of the body: its share of the budget first
                got = await self.budget.acquire(share, self.limits.body_wait)
                if got is None:
                    raise _Busy()
                held = got
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
        except _Busy:
            if not started:
                await _busy(send, self.limits.body_wait)
        finally:
            if held:
                self.budget.release(held)


class _TooLarge(Exception):
    pass


class _Busy(Exception):
    pass


async def _answer(send, status: int, code: str, msg: str, extra: list[tuple[bytes, bytes]]) -> None:  # noqa: ANN001
    body = json.dumps({"error": msg}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"x-error-code", code.encode()), (b"x-error-message", msg.encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


async def _too_large(send, limit: int) -> None:  # noqa: ANN001
    msg = f"Request body too large: the limit is {limit} bytes. Split the upload into several commits."
    await _answer(send, 413, "PayloadTooLarge", msg, [])


async def _busy(send, wait: float) -> None:  # noqa: ANN001
    retry = max(1, int(wait))
    msg = f"The server is busy receiving other uploads; retry in {retry} seconds."
    await _answer(send, 503, "ServiceUnavailable", msg, [(b"retry-after", str(retry).encode())])

"""A Gradio Space's own endpoints for its "Use via API" snippets, read from the running app and kept per revision.

The hub asks the app for ``/gradio_api/info`` (what ``gradio_client``'s ``view_api()`` reads) at the upstream
address the route table gives the proxy, only while that route says ``running``: a sleeping, frozen or queued
Space is never woken to render a page, and no visit is counted (the request does not go through the proxy). What
it read is stored in the data dir per Space with the revision it came from, so later page views, other hub
processes and a restarted hub answer from the file; the app is asked again only when a newer revision runs.
A failed read is not retried for a minute (a broken app must not slow every page view), and one read at a time
per Space runs (a page-view storm is one request to the app).

Without an answer the snippets fall back to what was read from an earlier revision, or to a generic endpoint,
and :class:`ApiView` says which and why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from spaces.domain import gradio_api
from spaces.durable import write_bytes
from spaces.domain.gradio_api import Endpoint, Param

log = logging.getLogger(__name__)

#: the app's answer is cut off past this size (a hostile app may send anything)
MAX_INFO_BYTES = 2 * 1024 * 1024
TIMEOUT_S = 3.0
RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class ApiView:
    """What the snippets show. ``read``: the endpoints came from the app (possibly none public); otherwise the
    snippets name a generic endpoint and ``note`` says why. ``current``: read from the revision that runs now."""

    endpoints: tuple[Endpoint, ...] = ()
    read: bool = False
    sha: str | None = None
    current: bool = False
    note: str = ""


class AppApi:
    """Reads and keeps the endpoints of Gradio Spaces. ``routes`` is the proxy's route table (None where no
    runtime is attached: then only what was kept is shown)."""

    def __init__(self, root: Path, routes: Any = None, *, timeout: float = TIMEOUT_S,
                 retry_after: float = RETRY_AFTER_S) -> None:
        self.root = root
        self.routes = routes
        self.timeout = timeout
        self.retry_after = retry_after
        self._failed: dict[tuple[str, str], float] = {}  # (space id, revision) -> when the read failed
        self._reads: dict[str, asyncio.Task] = {}

    async def view(self, space_id: str, subdomain: str, revision: str | None, *, asleep: bool = False) -> ApiView:
        """The endpoints of the Space's app at ``revision`` (the one running, or last run)."""
        kept = self._load(space_id)
        if kept is not None and revision and kept[0] == revision:
            return ApiView(kept[1], read=True, sha=revision, current=True)
        route = self.routes.get(subdomain) if self.routes is not None else None
        reachable = route is not None and route.state == "running" and route.upstream is not None \
            and route.space_id == space_id
        if reachable and revision and time.monotonic() - self._failed.get((space_id, revision), -1e9) \
                > self.retry_after:
            found = await self._read_once(space_id, revision, route.upstream)
            if found is not None:
                return ApiView(found, read=True, sha=revision, current=True)
        if kept is not None:
            return ApiView(kept[1], read=True, sha=kept[0], current=False,
                           note=f"Read from revision {kept[0][:7]}, the last one that answered; the revision "
                                "running now may name other endpoints (client.view_api() lists them).")
        return ApiView(note=_generic_note(asleep, reachable))

    async def _read_once(self, space_id: str, revision: str, upstream: tuple[str, int]) -> tuple[Endpoint, ...] | None:
        task = self._reads.get(space_id)
        if task is None:
            task = asyncio.ensure_future(self._read(space_id, revision, upstream))
            self._reads[space_id] = task
            task.add_done_callback(lambda _: self._reads.pop(space_id, None))
        return await asyncio.shield(task)

    async def _read(self, space_id: str, revision: str, upstream: tuple[str, int]) -> tuple[Endpoint, ...] | None:
        try:
            info = await fetch_info(upstream, self.timeout)
        except (httpx.HTTPError, ValueError, TimeoutError, asyncio.TimeoutError) as exc:
            if len(self._failed) > 10_000:  # a long-lived hub with many broken apps: start the count over
                self._failed.clear()
            self._failed[(space_id, revision)] = time.monotonic()
            log.info("the endpoints of Space %s could not be read: %s", space_id, exc)
            return None
        found = gradio_api.endpoints(info)
        self._store(space_id, revision, found)
        self._failed.pop((space_id, revision), None)
        return found

    def forget(self, space_id: str) -> None:
        """A deleted Space's file goes with it."""
        self._path(space_id).unlink(missing_ok=True)

    # ---- the kept answers: one JSON file per Space ------------------------------------------------------------
    def _path(self, space_id: str) -> Path:
        return self.root / f"{space_id}.json"

    def _load(self, space_id: str) -> tuple[str, tuple[Endpoint, ...]] | None:
        try:
            data = json.loads(self._path(space_id).read_text())
            eps = tuple(Endpoint(e["api_name"], tuple(Param(**p) for p in e["params"]), tuple(e["returns"]))
                        for e in data["endpoints"])
            return str(data["sha"]), eps
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:  # a file from another version: read the app again
            log.warning("ignoring the kept endpoints of Space %s: %s", space_id, exc)
            return None

    def _store(self, space_id: str, revision: str, found: tuple[Endpoint, ...]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"sha": revision, "endpoints": [asdict(e) for e in found]}).encode()
        write_bytes(self._path(space_id), data, self.root)  # whole or absent for another hub process reading it


async def fetch_info(upstream: tuple[str, int], timeout: float) -> Any:
    """The app's ``/gradio_api/info`` as JSON, within ``timeout`` in all (an app may drip its answer); ValueError
    when it is not JSON or too large, TimeoutError when it is too slow."""
    return await asyncio.wait_for(_fetch(upstream, timeout), timeout)


async def _fetch(upstream: tuple[str, int], timeout: float) -> Any:
    host, port = upstream
    url = f"http://{host}:{port}/gradio_api/info"
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        async with client.stream("GET", url) as r:
            r.raise_for_status()
            body = bytearray()
            async for chunk in r.aiter_bytes():
                body += chunk
                if len(body) > MAX_INFO_BYTES:
                    raise ValueError(f"its /gradio_api/info is larger than {MAX_INFO_BYTES} bytes")
    return json.loads(body, parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _generic_note(asleep: bool, reachable: bool) -> str:
    placeholder = "so these examples name a placeholder endpoint, /predict"
    if asleep:
        return (f"This Space is asleep and its endpoints were not read while it ran, {placeholder}. Open the App "
                "tab (that wakes it), then reload this page to see its own; client.view_api() lists them too.")
    if reachable:
        return (f"The app did not say which endpoints it has, {placeholder}; client.view_api() lists its own. "
                "This page asks it again in a minute.")
    return (f"The app is not running, so its endpoints could not be read, {placeholder}. Once it runs, reload "
            "this page to see its own; client.view_api() lists them too.")

"""Per request, decide where it goes: the hub, a Space's app, or an answer the proxy writes itself.

``Gate.decide(req)`` returns a :class:`Target` (forward), a :class:`Reply` (answer here), or a coroutine that
resolves to one of the two when the decision needs I/O: a private Space's first request with a credential not
seen in the last ``auth_cache_ttl`` seconds (``authorize``), or an API client held while a Space wakes
(``waker``). Everything else (the hot path) is dict lookups.

Rules, in order, for a Host under the apps domain (any other Host goes to the hub, which decides):

1. unknown subdomain -> 404 (or, with ``auth_redirect_url``, browsers are sent to the hub to sign in);
2. ``/__spaces/status`` and ``/__spaces/auth`` are answered here, never forwarded (``/__spaces/auth?ticket=``
   exchanges the hub's one-use URL ticket for the app cookie: see ``spaces.hub.tickets`` and ``_app_cookie``);
3. private Space: a Bearer token (``Authorization`` or ``x-hf-authorization``) or our cookie must pass
   ``authorize``; otherwise exactly the same answer as rule 1. The credential is stripped before forwarding;
4. running with an upstream -> forward; paused / error -> a page or JSON with the stage and message;
5. sleeping / starting -> one coalesced ``waker`` call per Space; browsers get the waiting page at once, API
   clients wait for the route to turn running (at most ``wake_timeout``), then 503 with Retry-After.

The hot path's decision is remembered per host name: a public Space that is running forwards every request
(but ``/__spaces/``) to the same ``Target``, so ``decide`` keeps that target until the route table's ``version``
changes, and the next request to that host is one dict lookup.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, quote

from spaces import metrics
from spaces.domain.status import WAITING_FOR_CAPACITY, Observed, Status, derive
from spaces.proxy import pages
from spaces.proxy.http1 import RequestHead, cookie_value
from spaces.proxy.routes import Route, RouteTable
from spaces.proxy.settings import ProxySettings

log = logging.getLogger("spaces.proxy")

Waker = Callable[[str], Awaitable[Any]]  # space id -> WakeResult-like (``.ok``, ``.message``)
Authorize = Callable[[str, "str | None", "str | None"], Awaitable[bool]]
#: (space id, URL ticket) -> the cookie value it is exchanged for, or None (see spaces.hub.tickets); sync or async
Exchange = Callable[[str, str], "str | None | Awaitable[str | None]"]
ROUTE_SETTLE = 2.0  # seconds a finished wake waits for the route table to say "running" (Redis propagation)


class Target:
    """Where to forward: ``addr`` is ``(host, port)`` or a unix socket path; ``key`` identifies a reusable
    upstream connection; ``strip_auth``: drop Authorization (a private Space's credential must not reach the app)."""

    __slots__ = ("key", "addr", "space_id", "title", "strip_auth")

    def __init__(self, key: object, addr: tuple[str, int] | str, space_id: str | None, title: str = "",
                 strip_auth: bool = False) -> None:
        self.key, self.addr, self.space_id, self.title, self.strip_auth = key, addr, space_id, title, strip_auth


class Reply:
    """An answer written by the proxy. ``keep_alive`` False closes the connection after it."""

    __slots__ = ("data", "keep_alive")

    def __init__(self, data: bytes, keep_alive: bool = True) -> None:
        self.data, self.keep_alive = data, keep_alive


def _reason(route: Route) -> str:
    """The stage's reason code the route was published with; a route published before routes carried it says
    "waiting for capacity" only in its message."""
    return route.reason or (WAITING_FOR_CAPACITY if pages.waiting_for_capacity(route.message) else "")


class Gate:
    def __init__(self, *, routes: RouteTable, apps_domain: str, hub_upstream: tuple[str, int] | str | None,
                 waker: Waker, authorize: Authorize, on_upstream_dead: Callable[[str], Any],
                 settings: ProxySettings, exchange: Exchange | None = None) -> None:
        self.routes = routes
        self.exchange = exchange
        self.settings = settings
        apps_host = apps_domain.lower().strip(".")
        apps_host = apps_host[:apps_host.rindex(":")] if apps_host.rfind(":") > apps_host.rfind("]") else apps_host
        self.suffix = b"." + apps_host.encode()
        self.hub_hosts = frozenset(h.lower().split(":")[0].encode() for h in settings.hub_hosts)
        # None: a proxy with no hub behind it (roles run apart, no SPACES_HUB_UPSTREAM): other hosts get a 404
        self.hub: Target | Reply = Reply(pages.response(
            404, pages.json_body(error="This address serves Spaces' apps only; the hub is served elsewhere."),
            content_type="application/json")) if hub_upstream is None else Target(
            "hub", hub_upstream if isinstance(hub_upstream, str) else tuple(hub_upstream), None, "hub")
        self.waker, self.authorize, self.on_upstream_dead = waker, authorize, on_upstream_dead
        self.cookie = settings.cookie_name.encode()
        self._wakes: dict[str, asyncio.Task] = {}
        self._wake_failed: dict[str, tuple[str, float]] = {}
        self._auth: dict[tuple[str, str | None, str | None], tuple[bool, float]] = {}
        self._nudged: dict[str, float] = {}
        self._targets: dict[str, tuple[Route, Target]] = {}
        #: host name -> the Target of a public running Space, valid while routes.version == _hot_version
        self._hot: dict[bytes, Target] = {}
        self._hot_version = routes.version
        #: how many times ``waker`` was actually called (coalesced calls not counted)
        self.wake_calls = 0
        #: app requests by outcome (spaces.metrics.PROXY_OUTCOMES): plain ints, read by a collector at scrape time
        self.counts = metrics.proxy_counts()

    # ---- entry point ------------------------------------------------------------------------------------
    def decide(self, req: RequestHead) -> Target | Reply | Awaitable[Target | Reply]:
        hostname = req.hostname
        version = self.routes.version  # read before the route: a change made after this is seen next time
        if version != self._hot_version:
            self._hot.clear()
            self._hot_version = version
        else:
            hot = self._hot.get(hostname)
            if hot is not None and req.target[:10] != b"/__spaces/":
                self.counts.proxied += 1
                return hot
        suffix = self.suffix
        if not hostname.endswith(suffix) or hostname in self.hub_hosts:
            hub = self.hub
            return hub if hub.__class__ is Target else Reply(hub.data, _no_body(req))
        label = hostname[:-len(suffix)]
        name = label.decode()
        route = self.routes.get(name) if label and label.find(b".") < 0 else None
        if route is None:
            return self._denied(req)
        if req.target[:10] == b"/__spaces/":
            return self._special(req, name, route)
        if route.private:
            token, cookie = self._credentials(req)
            if token is None and cookie is None:
                return self._denied(req)
            ok = self._auth_cached(route.space_id, token, cookie)
            if ok is None:
                return self._authorize_then(req, name, route, token, cookie)
            if not ok:
                return self._denied(req)
        elif route.state == "running" and route.upstream is not None:
            target = self._hot[hostname] = self._target(route)
            self.counts.proxied += 1
            return target
        return self._by_state(req, name, route)

    # ---- state -> answer --------------------------------------------------------------------------------
    def _by_state(self, req: RequestHead, label: str, route: Route) -> Target | Reply | Awaitable[Target | Reply]:
        state = route.state
        if state == "running" and route.upstream is not None:
            self.counts.proxied += 1
            return self._target(route)
        if state in ("paused", "error"):
            return self._stopped(req, route)
        self._ensure_wake(label, route.space_id)
        if _is_browser(req):
            self.counts.held += 1
            page = pages.waiting_page(route.title or label, *self._route_status(route))
            return Reply(pages.response(200, page, head_only=req.method == b"HEAD"), _no_body(req))
        return self._hold(req, label, route.space_id)

    def _target(self, route: Route) -> Target:
        cached = self._targets.get(route.space_id)
        if cached is not None and cached[0] is route:  # same route object: reuse (no allocation per request)
            return cached[1]
        target = Target(("space", route.space_id, route.upstream), route.upstream, route.space_id,  # type: ignore[arg-type]
                        route.title or route.space_id, route.private)
        if len(self._targets) > 100_000:
            self._targets.clear()
        self._targets[route.space_id] = (route, target)
        return target

    def _stopped(self, req: RequestHead, route: Route) -> Reply:
        self.counts.refused += 1
        paused = route.state == "paused"
        stage = route.stage or ("PAUSED" if paused else "RUNTIME_ERROR")
        message = route.message or ("This Space is paused by its owner." if paused else "The app is not running.")
        if _is_browser(req):
            body = pages.error_page(route.title or route.space_id, stage, message, paused=paused)
            return Reply(pages.response(503, body, head_only=req.method == b"HEAD"), _no_body(req))
        code = "SpacePaused" if paused else "SpaceError"
        body = pages.json_body(error=message, state=route.state, stage=stage)
        return Reply(pages.response(503, body, content_type="application/json",
                                    headers=[("X-Error-Code", code), ("X-Error-Message", message)]), _no_body(req))

    def _denied(self, req: RequestHead) -> Reply:
        self.counts.refused += 1
        target = self.settings.auth_redirect_url
        if target and req.method == b"GET" and _is_browser(req):
            here = f"{self.settings.forwarded_proto}://{req.host.decode()}{req.target.decode('latin-1')}"
            sep = "&" if "?" in target else "?"
            return Reply(pages.response(302, b"", headers=[("Location", f"{target}{sep}next={quote(here, safe='')}")]),
                         _no_body(req))
        if _is_browser(req):
            return Reply(pages.response(404, pages.not_found_page(), head_only=req.method == b"HEAD"), _no_body(req))
        body = pages.json_body(error="Space not found.")
        return Reply(pages.response(404, body, content_type="application/json",
                                    headers=[("X-Error-Code", "RepoNotFound"),
                                             ("X-Error-Message", "Space not found.")]), _no_body(req))

    def _route_status(self, route: Route) -> tuple[Status, str]:
        """The Space's status as the hub's pages derive it (spaces.domain.status) from the record the route was
        published with, so the App tab's frame and the page around it say the same; and a note of what only this
        proxy knows: a wake that failed (a Space waiting for capacity says that, not that its wake timed out)."""
        reason = _reason(route)
        stage = route.stage or ("SLEEPING" if route.state == "sleeping" else "APP_STARTING")
        # a sleeping route's page or status is only ever answered after a wake was asked for (``_ensure_wake``),
        # which the wake service writes down at once: the hub's pages then say "waking up" too
        status = derive(Observed(stage, reason, route.message, waking=route.state == "sleeping"))
        failed = self._wake_failed.get(route.space_id)
        note = failed[0] if failed and route.state != "running" and reason != WAITING_FOR_CAPACITY else ""
        return status, note

    # ---- the proxy's own endpoints on the app origin -----------------------------------------------------
    def _special(self, req: RequestHead, label: str, route: Route) -> Reply | Awaitable[Reply]:
        path, _, query = req.target.decode("latin-1").partition("?")
        if path == "/__spaces/auth":
            return self._auth_ticket(req, route, parse_qs(query))
        if path != "/__spaces/status":
            return self._denied(req)
        if route.private:
            token, cookie = self._credentials(req)
            ok = self._auth_cached(route.space_id, token, cookie) if (token or cookie) else False
            if ok is None:
                return self._authorize_then(req, label, route, token, cookie, status=True)
            if not ok:
                return self._denied(req)
        return self._status(label, route)

    def _status(self, label: str, route: Route) -> Reply:
        if route.state in ("sleeping", "starting") or (route.state == "running" and route.upstream is None):
            failed = self._wake_failed.get(route.space_id)
            if failed is None or time.monotonic() - failed[1] > self.settings.retry_after:
                self._ensure_wake(label, route.space_id)
        state = "starting" if route.state == "running" and route.upstream is None else route.state
        status, note = self._route_status(route)
        body = pages.json_body(state=state, stage=status.stage, label=status.label, headline=status.headline,
                               message=status.message, tone=status.tone, note=note,
                               waking=route.space_id in self._wakes,
                               queued=_reason(route) == WAITING_FOR_CAPACITY)
        return Reply(pages.response(200, body, content_type="application/json"))

    async def _auth_ticket_check(self, req: RequestHead, route: Route, ticket: str, next_url: str) -> Reply:
        """Exchange the hub's URL ticket for the app cookie, then 303 to ``next_url``: the ticket leaves the URL
        before the app sees it. Without ``exchange`` (a bare proxy) the ticket is its own cookie value."""
        if self.exchange is not None:
            value = self.exchange(route.space_id, ticket)
            value = await value if inspect.isawaitable(value) else value
        else:
            value = ticket if await self._authorized(route.space_id, None, ticket) else None
        headers = [("Location", next_url), ("Referrer-Policy", "no-referrer")]
        if value is None:
            # a used or stale ticket (the frame was reloaded, the page restored) with a cookie that still works
            _, cookie = self._credentials(req)
            if cookie is None or not await self._authorized(route.space_id, None, cookie):
                return self._denied(req)
        else:
            headers.append(("Set-Cookie", self._app_cookie(req, value)))
        return Reply(pages.response(303, b"", headers=headers))

    def _app_cookie(self, req: RequestHead, value: str) -> str:
        """The app origin is a third party inside the hub's iframe: where the browser takes Secure cookies (https,
        and http on ``*.localhost``, a secure context), a partitioned cookie (CHIPS) still reaches it there with
        third-party cookies blocked. Plain http elsewhere keeps SameSite=Lax (the hub and its apps are then
        sibling hosts of one site, where Lax is sent in the frame)."""
        s = self.settings
        cookie = f"{s.cookie_name}={value}; Path=/; Max-Age={s.cookie_max_age}; HttpOnly"
        host = req.hostname
        if s.forwarded_proto == "https" or host == b"localhost" or host.endswith(b".localhost"):
            return cookie + "; SameSite=None; Secure; Partitioned"
        return cookie + "; SameSite=Lax"

    def _auth_ticket(self, req: RequestHead, route: Route, query: dict[str, list[str]]) -> Reply | Awaitable[Reply]:
        ticket = (query.get("ticket") or [""])[0]
        next_url = (query.get("next") or ["/"])[0]
        if not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url:
            next_url = "/"  # only paths on this origin: never an open redirect
        if not ticket or not all(c.isalnum() or c in "-_.~:+/=" for c in ticket):
            return self._denied(req)
        return self._auth_ticket_check(req, route, ticket, next_url)

    # ---- private Spaces ---------------------------------------------------------------------------------
    def _credentials(self, req: RequestHead) -> tuple[str | None, str | None]:
        token = None
        for name in (b"authorization", b"x-hf-authorization"):
            value = req.get(name)
            if value and value[:7].lower() == b"bearer ":
                token = value[7:].strip().decode("latin-1") or None
                if token:
                    break
        return token, cookie_value(req, self.cookie)

    def _auth_cached(self, space_id: str, token: str | None, cookie: str | None) -> bool | None:
        hit = self._auth.get((space_id, token, cookie))
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    async def _authorized(self, space_id: str, token: str | None, cookie: str | None) -> bool:
        try:
            ok = bool(await self.authorize(space_id, token, cookie))
        except Exception:
            log.exception("authorize(%s) failed; refusing", space_id)
            return False
        if len(self._auth) > 50_000:  # bounded: a flood of random tokens must not grow memory forever
            self._auth.clear()
        ttl = self.settings.auth_cache_ttl if ok else self.settings.auth_cache_negative_ttl
        self._auth[(space_id, token, cookie)] = (ok, time.monotonic() + ttl)
        return ok

    async def _authorize_then(self, req: RequestHead, label: str, route: Route, token: str | None,
                              cookie: str | None, status: bool = False) -> Target | Reply:
        if not await self._authorized(route.space_id, token, cookie):
            return self._denied(req)
        route = self.routes.get(label) or route
        if status:
            return self._status(label, route)
        result = self._by_state(req, label, route)
        return await result if inspect.isawaitable(result) else result

    # ---- wake -------------------------------------------------------------------------------------------
    def _ensure_wake(self, label: str, space_id: str) -> asyncio.Task:
        task = self._wakes.get(space_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._wake(label, space_id))
            self._wakes[space_id] = task
        return task

    async def _wake(self, label: str, space_id: str) -> None:
        try:
            self.wake_calls += 1
            tier, started = _wake_tier(self.routes.get(label)), time.monotonic()
            try:
                result = await self.waker(space_id)
            except Exception as exc:
                log.exception("waking %s failed", space_id)
                result = exc
            ok = getattr(result, "ok", result is None or result is True)
            metrics.observe_wake(getattr(result, "tier", "") or tier, ok, time.monotonic() - started)
            if not ok:
                self._wake_failed[space_id] = (getattr(result, "message", "") or "The Space could not start.",
                                               time.monotonic())
                return
            self._wake_failed.pop(space_id, None)
            # keep coalescing until the route table says so: a replica may see the change a moment later
            deadline = time.monotonic() + ROUTE_SETTLE
            while time.monotonic() < deadline:
                route = self.routes.get(label)
                if route is None or route.state in ("paused", "error") or (
                        route.state == "running" and route.upstream is not None):
                    return
                await asyncio.sleep(0.01)
        finally:
            self._wakes.pop(space_id, None)

    async def _hold(self, req: RequestHead, label: str, space_id: str) -> Target | Reply:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.wake_timeout
        while True:
            route = self.routes.get(label)
            if route is None:
                return self._denied(req)
            if route.state == "running" and route.upstream is not None:
                self.counts.woken += 1
                return self._target(route)
            if route.state in ("paused", "error"):
                return self._stopped(req, route)
            failed = self._wake_failed.get(space_id)
            task = self._wakes.get(space_id)
            if task is None:
                if failed is not None and time.monotonic() - failed[1] < 1.0:
                    return self._not_ready(req, failed[0])
                task = self._ensure_wake(label, space_id)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return self._not_ready(req, "The Space is still starting; try again in a moment.")
            try:
                await asyncio.wait_for(asyncio.shield(task), remaining)
            except asyncio.TimeoutError:
                return self._not_ready(req, "The Space is still starting; try again in a moment.")

    def _not_ready(self, req: RequestHead, message: str) -> Reply:
        self.counts.held += 1
        body = pages.json_body(error=message, state="starting")
        return Reply(pages.response(503, body, content_type="application/json",
                                    headers=[("Retry-After", str(self.settings.retry_after)),
                                             ("X-Error-Code", "SpaceNotReady"), ("X-Error-Message", message)]),
                     _no_body(req))

    # ---- upstream failures ------------------------------------------------------------------------------
    def upstream_dead(self, req: RequestHead | None, target: Target) -> Reply:
        """The app refused the connection: 502 now, and one nudge per second at most to the reconciler."""
        if target.space_id is not None:
            now = time.monotonic()
            if now - self._nudged.get(target.space_id, -10.0) >= 1.0:
                self._nudged[target.space_id] = now
                try:
                    result = self.on_upstream_dead(target.space_id)
                    if inspect.isawaitable(result):
                        asyncio.ensure_future(result)
                except Exception:
                    log.exception("on_upstream_dead(%s) failed", target.space_id)
        message = "The app did not answer." if target.space_id else "The hub did not answer."
        if req is not None and _is_browser(req):
            return Reply(pages.response(502, pages.bad_gateway_page(target.title)), False)
        return Reply(pages.response(502, pages.json_body(error=message), content_type="application/json",
                                    headers=[("X-Error-Code", "BadGateway"), ("X-Error-Message", message)]), False)


def _wake_tier(route: Route | None) -> str:
    """What a wake of this route will do, as far as the route tells: a sleeping route with an upstream is a frozen
    instance (or a standby: the waker's result says which), one without needs a fresh start."""
    return "frozen" if route is not None and route.state == "sleeping" and route.upstream is not None else "cold"


def _is_browser(req: RequestHead) -> bool:
    accept = req.get(b"accept")
    return accept is not None and b"text/html" in accept and req.method in (b"GET", b"HEAD")


def _no_body(req: RequestHead) -> bool:
    """Keep the connection after a local answer only when the request carried no body we would have to skip."""
    return req.keep_alive and req.framer.done

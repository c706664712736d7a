"""``ProxyServer``: the platform's front door on one port.

Lifecycle::

    proxy = ProxyServer(routes=..., apps_domain="localhost:8000", hub_upstream="/run/spaces/hub.sock",
                        waker=wake_service.wake, authorize=check_access, on_upstream_dead=reconciler.nudge,
                        settings=settings.proxy)
    await proxy.start("0.0.0.0", 8000)   # listening; returns at once
    ...                                  # proxy.activity.last_seen(space_id) feeds the sleeper
    await proxy.close()                  # stops listening, drops open connections, cancels pending wakes

Injected callables (all run on the proxy's event loop):

* ``waker(space_id) -> WakeResult`` (async): make a sleeping or starting Space run; return when it answers
  (``.ok`` True) or with ``.ok`` False and a ``.message`` saying why not. The proxy calls it at most once at a time
  per Space however many requests are waiting (``gate.wake_calls`` counts the calls).
* ``authorize(space_id, token, cookie) -> bool`` (async): may this Bearer token or signed cookie value see this
  private Space? Answers are cached ``auth_cache_ttl`` seconds (refusals ``auth_cache_negative_ttl``).
* ``exchange(space_id, ticket) -> str | None`` (optional, sync or async): the app cookie's value for a URL
  ticket the hub minted (``/__spaces/auth?ticket=...``), once per ticket (``spaces.hub.tickets``); without it the
  ticket itself becomes the cookie, checked by ``authorize``.
* ``on_upstream_dead(space_id)`` (sync or async): the app refused a connection; nudge the reconciler. Called at
  most once a second per Space.

Security notes for the runtime: the proxy only ever connects to the hub upstream and to upstreams in the route
table, whatever Host a client sends. An app running on this machine can still connect to the public port like
any visitor (that reaches the public hub, which is fine) but must not be able to reach the hub's internal
socket/port or other Spaces' upstream ports directly: sandbox apps in their own network namespace (or bind
upstreams to addresses only the proxy can reach) and keep the hub's unix socket out of the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from spaces.proxy import pages
from spaces.proxy.activity import Activity
from spaces.proxy.connection import ClientConnection
from spaces.proxy.cookies import CookieGuard
from spaces.proxy.gate import Authorize, Exchange, Gate, Waker
from spaces.proxy.routes import RouteTable
from spaces.proxy.settings import ProxySettings

log = logging.getLogger("spaces.proxy")


class ProxyServer:
    def __init__(self, *, routes: RouteTable, apps_domain: str, hub_upstream: tuple[str, int] | str | None,
                 waker: Waker, authorize: Authorize, on_upstream_dead: Callable[[str], Any],
                 settings: ProxySettings | None = None, exchange: Exchange | None = None) -> None:
        self.settings = settings = settings or ProxySettings()
        self.routes = routes
        self.activity = Activity()
        self.gate = Gate(routes=routes, apps_domain=apps_domain, hub_upstream=hub_upstream, waker=waker,
                         authorize=authorize, on_upstream_dead=on_upstream_dead, settings=settings,
                         exchange=exchange)
        self.connections: set[ClientConnection] = set()
        # per-request constants, encoded once
        self.proto = settings.forwarded_proto.encode()
        self.cookie = settings.cookie_name.encode()
        self.trust_forwarded = settings.trust_forwarded
        self.upstream_idle = settings.upstream_idle_timeout
        self.cookies = CookieGuard([*settings.hub_cookies, settings.cookie_name])
        # open connections per client address (see connection.address_key); None: no cap. Behind a trusted load
        # balancer every connection comes from its address, so the cap would throttle everyone at once.
        self.max_per_address = settings.max_connections_per_address
        self.per_address: dict[str, int] | None = (
            {} if self.max_per_address > 0 and not settings.trust_forwarded else None)
        self.too_many = pages.response(
            429, pages.json_body(error="Too many open connections from your address; close some and retry."),
            content_type="application/json", headers=[("Retry-After", "5")], close=True)
        self._server: asyncio.AbstractServer | None = None
        self._also: list[asyncio.AbstractServer] = []  # further addresses (see also_listen)
        self._sweeper: asyncio.Task | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 8000) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: ClientConnection(self), host, port, reuse_address=True,
                                                backlog=4096)
        self._sweeper = loop.create_task(self._sweep())
        log.info("proxy listening on %s:%s", host, self.port)

    async def also_listen(self, host: str, port: int) -> None:
        """Serve the same routes on one more address (the Docker apps network's gateway, for the hub's API)."""
        loop = asyncio.get_running_loop()
        self._also.append(await loop.create_server(lambda: ClientConnection(self), host, port, reuse_address=True))
        log.info("proxy also listening on %s:%s", host, port)

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``start(port=0)``)."""
        assert self._server is not None, "start() first"
        return self._server.sockets[0].getsockname()[1]

    @property
    def wake_calls(self) -> int:
        return self.gate.wake_calls

    async def drain(self, timeout: float) -> None:
        """Stop accepting connections and give the open ones up to ``timeout`` seconds to finish (a SIGTERM);
        ``close`` then drops what is left."""
        for server in (self._server, *self._also):
            if server is not None:
                server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for server in self._also:
            server.close()
        self._also = []
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            conn.abort()
        for task in list(self.gate._wakes.values()):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _sweep(self) -> None:
        """Close connections idle past their timeout; one pass over all connections, never a timer per chunk."""
        s = self.settings
        timeouts = (s.keepalive_timeout, s.stream_idle_timeout or 3600.0, s.header_timeout, s.lingering_time)
        interval = max(0.05, min(t for t in timeouts if t > 0) / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.idle_expired(now, s):
                    conn._close()

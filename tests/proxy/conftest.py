"""Fixtures for the proxy tests: real upstream processes, the real proxy on a loopback port, real clients.

* ``upstreams``: three uvicorn processes running ``upstream_app.py`` ("app-a", "app-b" and one playing "hub");
* ``make_proxy(**settings)``: a ``ProxyServer`` on its own event loop in a thread (so tests can count ``waker``
  and ``authorize`` calls) with a ``MemoryRouteTable``; returns a :class:`ProxyHandle`;
* ``*.localhost`` resolves to 127.0.0.1 in the test process (glibc here does not), so gradio_client, httpx and
  websockets use the real URLs ``http://{sub}.localhost:{port}``.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from spaces.proxy.routes import MemoryRouteTable, Route, RouteTable
from spaces.proxy.server import ProxyServer
from spaces.proxy.settings import ProxySettings

HERE = Path(__file__).parent


from proxykit import free_port, start_process, stop_process, wait_port  # noqa: E402,F401


@pytest.fixture(autouse=True, scope="session")
def localhost_subdomains() -> Iterator[None]:
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        elif isinstance(host, bytes) and host.endswith(b".localhost"):
            host = b"127.0.0.1"
        return real(host, *args, **kwargs)

    socket.getaddrinfo = resolve  # type: ignore[assignment]
    yield
    socket.getaddrinfo = real  # type: ignore[assignment]


@dataclass
class Upstream:
    name: str
    port: int
    proc: subprocess.Popen

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


@pytest.fixture(scope="session")
def upstreams() -> Iterator[dict[str, Upstream]]:
    out: dict[str, Upstream] = {}
    try:
        for name in ("app-a", "app-b", "hub"):
            port = free_port()
            proc = start_process([sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "upstream_app:app",
                                  "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                                  "--ws", "websockets"], port, env={"UPSTREAM_NAME": name})
            out[name] = Upstream(name, port, proc)
        yield out
    finally:
        for up in out.values():
            stop_process(up.proc)


@dataclass
class Controls:
    """What the injected callables do; tests change it and read the counters."""

    wake_delay: float = 0.3
    wake_ok: bool = True
    wake_message: str = ""
    wake_to: dict[str, tuple[str, tuple[str, int]]] = field(default_factory=dict)  # space id -> (label, upstream)
    wake_calls: list[str] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    cookies: set[str] = field(default_factory=set)
    auth_calls: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)


@dataclass
class WakeResult:
    ok: bool
    message: str = ""


class ProxyHandle:
    def __init__(self, proxy: ProxyServer, routes: RouteTable, controls: Controls, loop: asyncio.AbstractEventLoop,
                 port: int) -> None:
        self.proxy, self.routes, self.controls, self.loop, self.port = proxy, routes, controls, loop, port

    def url(self, label: str | None = None, path: str = "/") -> str:
        host = f"{label}.localhost" if label else "localhost"
        return f"http://{host}:{self.port}{path}"

    def client(self, label: str | None = None, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url(label, ""), **kwargs)

    def put(self, label: str, space_id: str, upstream: tuple[str, int] | None, state: str = "running",
            **kwargs: Any) -> None:
        self.routes.put(label, Route(space_id, upstream, state, title=kwargs.pop("title", space_id), **kwargs))

    def raw(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


def _run_proxy(routes: RouteTable, controls: Controls, settings: ProxySettings, hub: tuple[str, int],
               exchange: Any = None) -> tuple[ProxyHandle, Callable[[], None]]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def waker(space_id: str) -> WakeResult:
        controls.wake_calls.append(space_id)
        await asyncio.sleep(controls.wake_delay)
        if controls.wake_ok and space_id in controls.wake_to:
            label, upstream = controls.wake_to[space_id]
            old = routes.get(label)
            routes.put(label, Route(space_id, upstream, "running", private=bool(old and old.private),
                                    title=old.title if old else space_id))
        return WakeResult(controls.wake_ok, controls.wake_message)

    async def authorize(space_id: str, token: str | None, cookie: str | None) -> bool:
        controls.auth_calls.append((space_id, token, cookie))
        return (token is not None and token in controls.tokens) or (cookie is not None and cookie in controls.cookies)

    def on_dead(space_id: str) -> None:
        controls.dead.append(space_id)

    def run() -> None:
        asyncio.set_event_loop(loop)
        proxy = ProxyServer(routes=routes, apps_domain="localhost:8000", hub_upstream=hub, waker=waker,
                            authorize=authorize, on_upstream_dead=on_dead, settings=settings, exchange=exchange)
        loop.run_until_complete(proxy.start("127.0.0.1", 0))
        holder["proxy"] = proxy
        started.set()
        loop.run_forever()
        loop.run_until_complete(proxy.close())
        loop.close()

    thread = threading.Thread(target=run, name="proxy-under-test", daemon=True)
    thread.start()
    assert started.wait(10), "the proxy did not start"
    proxy = holder["proxy"]
    handle = ProxyHandle(proxy, routes, controls, loop, proxy.port)

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return handle, stop


@pytest.fixture
def make_proxy(upstreams: dict[str, Upstream]) -> Iterator[Callable[..., ProxyHandle]]:
    stops: list[Callable[[], None]] = []

    def make(routes: RouteTable | None = None, exchange: Any = None, **settings: Any) -> ProxyHandle:
        """``exchange``: the URL-ticket exchange the platform injects (spaces.hub.tickets), None for none."""
        handle, stop = _run_proxy(routes if routes is not None else MemoryRouteTable(), Controls(),
                                  ProxySettings(**settings), upstreams["hub"].addr, exchange)
        stops.append(stop)
        return handle

    yield make
    for stop in stops:
        stop()


@pytest.fixture
def proxy(make_proxy: Callable[..., ProxyHandle], upstreams: dict[str, Upstream]) -> ProxyHandle:
    """A proxy with ``demo`` -> app-a and ``other`` -> app-b running."""
    return _with_demo_routes(make_proxy(wake_timeout=20.0, keepalive_timeout=5.0), upstreams)


@pytest.fixture
def short_idle_proxy(make_proxy: Callable[..., ProxyHandle], upstreams: dict[str, Upstream]) -> ProxyHandle:
    """Like ``proxy`` with a 1 s ``stream_idle_timeout``: streams must outlive it while they have traffic."""
    return _with_demo_routes(make_proxy(stream_idle_timeout=1.0), upstreams)


def _with_demo_routes(handle: ProxyHandle, upstreams: dict[str, Upstream]) -> ProxyHandle:
    handle.put("demo", "alice/demo", upstreams["app-a"].addr)
    handle.put("other", "bob/other", upstreams["app-b"].addr)
    return handle

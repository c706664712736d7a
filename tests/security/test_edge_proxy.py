"""Issue 20, rows 5 and 10, at the proxy: slow clients (head deadline, idle keep-alive deadline, connections per
address), streams that must never be cut by those deadlines, the lingering close after an early answer, and the
cookies an app may set. A real ``ProxyServer`` on its own loop, in front of real upstreams: the proxy tests' ASGI
app under uvicorn (SSE, WebSocket, uploads) and a small ``http.server`` app answering what a test asks for."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from harness import free_port

from spaces.proxy.connection import address_key
from spaces.proxy.cookies import CookieGuard
from spaces.proxy.routes import MemoryRouteTable, Route
from spaces.proxy.server import ProxyServer
from spaces.proxy.settings import ProxySettings

PROXY_TESTS = Path(__file__).resolve().parents[1] / "proxy"


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(port)


@pytest.fixture(scope="module")
def asgi_upstream() -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(PROXY_TESTS), "upstream_app:app",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--ws",
                             "websockets"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield ("127.0.0.1", port)
    finally:
        proc.terminate()
        proc.wait(10)


class _Answers(BaseHTTPRequestHandler):
    """``/cookies?c=<Set-Cookie value>&c=...`` answers with those Set-Cookie headers; ``/early`` answers 401
    without reading the request body (as the hub does for an anonymous upload)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, headers: list[tuple[str, str]], close: bool = False) -> None:
        body = json.dumps({"ok": status == 200}).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/cookies":
            self._answer(200, [("Set-Cookie", c) for c in parse_qs(url.query).get("c", [])])
        else:
            self._answer(404, [])

    def do_POST(self) -> None:  # noqa: N802
        self._answer(401, [], close=True)
        self.wfile.flush()
        left = int(self.headers.get("Content-Length") or 0)  # then drop the body unread, as uvicorn does
        while left > 0:
            got = self.rfile.read(min(left, 1 << 16))
            if not got:
                break
            left -= len(got)


@pytest.fixture(scope="module")
def answers_upstream() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address
    server.shutdown()


@pytest.fixture
def make_proxy(asgi_upstream, answers_upstream) -> Iterator[Callable[..., int]]:  # noqa: ANN001
    """``make_proxy(**settings)`` -> the port of a proxy with ``demo`` (the ASGI app) and ``cookies`` (the
    answering app) running; its hub is the answering app too."""
    stops: list[Callable[[], None]] = []

    def make(**settings: Any) -> int:
        routes = MemoryRouteTable()
        routes.put("demo", Route("alice/demo", asgi_upstream, "running", title="demo"))
        routes.put("cookies", Route("alice/cookies", answers_upstream, "running", title="cookies"))
        loop = asyncio.new_event_loop()
        holder: dict[str, ProxyServer] = {}
        started = threading.Event()

        async def waker(space_id: str) -> Any:
            raise AssertionError("nothing sleeps here")

        async def authorize(space_id: str, token: str | None, cookie: str | None) -> bool:
            return False

        def run() -> None:
            asyncio.set_event_loop(loop)
            proxy = ProxyServer(routes=routes, apps_domain="localhost:8000", hub_upstream=answers_upstream,
                                waker=waker, authorize=authorize, on_upstream_dead=lambda _: None,
                                settings=ProxySettings(**settings))
            loop.run_until_complete(proxy.start("127.0.0.1", 0))
            holder["proxy"] = proxy
            started.set()
            loop.run_forever()
            loop.run_until_complete(proxy.close())
            loop.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert started.wait(10)

        def stop() -> None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

        stops.append(stop)
        return holder["proxy"].port

    yield make
    for stop in stops:
        stop()


def closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> bool:
    """Whether the proxy closes ``sock`` within ``seconds`` while the client sends ``trickle`` every 0.2 s."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if trickle:
                sock.sendall(trickle)
            if sock.recv(4096) == b"":
                return True
        except (TimeoutError, socket.timeout):
            continue
        except OSError:
            return True
    return False


# ---- slow clients ----------------------------------------------------------------------------------------
def test_a_head_sent_a_byte_at_a_time_is_cut_at_the_head_deadline(make_proxy) -> None:  # noqa: ANN001
    port = make_proxy(header_timeout=1.0, keepalive_timeout=60.0)
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    for s in socks:
        s.sendall(b"GET /headers HTTP/1.1\r\nHost: demo.localhost\r\nX-Slow: ")
    assert all(closed_within(s, 15, trickle=b"a") for s in socks)
    # a complete request on a fresh connection is served as before
    assert httpx.get(f"http://127.0.0.1:{port}/headers", headers={"Host": "demo.localhost"}).status_code == 200


def test_without_a_head_deadline_the_same_client_stays(make_proxy) -> None:  # noqa: ANN001
    """The control for the test above: it is the deadline, not the trickle itself, that ends the connection."""
    port = make_proxy(header_timeout=0, keepalive_timeout=60.0)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /headers HTTP/1.1\r\nHost: demo.localhost\r\nX-Slow: ")
        assert not closed_within(s, 2.5, trickle=b"a")


def test_blank_lines_do_not_keep_an_idle_connection_open(make_proxy) -> None:  # noqa: ANN001
    port = make_proxy(keepalive_timeout=1.0, header_timeout=60.0)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /headers HTTP/1.1\r\nHost: demo.localhost\r\n\r\n")
        assert b"200 OK" in s.recv(65536)
        assert closed_within(s, 15, trickle=b"\r\n")


def test_connections_per_address_are_capped(make_proxy) -> None:  # noqa: ANN001
    port = make_proxy(max_connections_per_address=3)
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
        answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 429") and b"Retry-After: 5" in answer
        assert extra.recv(4096) == b""
    held.pop().close()
    deadline = time.monotonic() + 10  # a place is free again once the proxy has seen the close
    while True:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Host": "demo.localhost"}) as client:
            status = client.get("/headers").status_code
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200
    for s in held:
        s.close()


def test_the_cap_can_be_turned_off(make_proxy) -> None:  # noqa: ANN001
    port = make_proxy(max_connections_per_address=0)
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Host": "demo.localhost"}) as client:
        assert client.get("/headers").status_code == 200
    for s in held:
        s.close()


# ---- what the deadlines must never cut ----------------------------------------------------------------------
SHORT = {"header_timeout": 0.5, "keepalive_timeout": 0.5}


def test_an_sse_stream_outlives_the_deadlines(make_proxy) -> None:  # noqa: ANN001
    port = make_proxy(**SHORT)
    with httpx.stream("GET", f"http://127.0.0.1:{port}/sse?n=4&every=0.2&quiet=1.5",
                      headers={"Host": "demo.localhost"}, timeout=30) as r:
        text = "".join(r.iter_text())
    assert [line for line in text.splitlines() if line.startswith("data:")] == [
        "data: event 0", "data: event 1", "data: event 2", "data: event 3", "data: end"]


def test_a_websocket_outlives_the_deadlines(make_proxy) -> None:  # noqa: ANN001
    from websockets.sync.client import connect

    port = make_proxy(**SHORT)
    sock = socket.create_connection(("127.0.0.1", port))
    with connect(f"ws://demo.localhost:{port}/ws", sock=sock) as ws:
        for i in range(3):
            ws.send(f"m{i}")
            assert ws.recv(timeout=10) == f"app:m{i}"  # echoed with the upstream's name
            time.sleep(1.2)  # silent for longer than either deadline
        ws.send("last")
        assert ws.recv(timeout=10) == "app:last"


def test_a_slow_upload_that_keeps_moving_is_not_cut(make_proxy) -> None:  # noqa: ANN001
    port = make_proxy(**SHORT)

    def slowly() -> Iterator[bytes]:
        for _ in range(6):
            yield b"x" * 1000
            time.sleep(0.4)

    r = httpx.post(f"http://127.0.0.1:{port}/upload", content=slowly(), headers={"Host": "demo.localhost"},
                   timeout=30)
    assert r.status_code == 200 and r.json()["size"] == 6000


def test_an_early_answer_reaches_a_client_still_sending_its_body(make_proxy) -> None:  # noqa: ANN001
    """The app (as the hub for an anonymous upload) answers 401 without reading the body. A client that sends
    the whole body before it reads must be able to send it all and then read the 401 (lingering close), not
    run into a reset while it is still sending."""
    port = make_proxy()
    piece = b"x" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /commit HTTP/1.1\r\nHost: cookies.localhost\r\nContent-Length: %d\r\n\r\n" % (64 << 20))
        for _ in range(64):
            sock.sendall(piece)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401")


# ---- cookies ---------------------------------------------------------------------------------------------
def cookies_through(port: int, host: str, *values: str) -> list[str]:
    query = "&".join("c=" + httpx.QueryParams({"c": v})["c"].replace("&", "%26").replace(";", "%3B")
                     .replace(" ", "%20").replace("=", "%3D") for v in values)
    r = httpx.get(f"http://127.0.0.1:{port}/cookies?{query}", headers={"Host": host})
    assert r.status_code == 200
    return r.headers.get_list("set-cookie")


def test_an_app_cannot_set_cookies_for_the_hub_or_other_spaces(make_proxy) -> None:  # noqa: ANN001
    port = make_proxy()
    sent = ["spaces_session=forged; Domain=localhost; Path=/", "spaces_session=forged", "theme=dark",
            "tracker=1; Domain=localhost", "spaces_app_auth=forged; Path=/", "__Host-spaces_session=x; Secure; Path=/",
            "own=1; Domain=cookies.localhost", "other=1; Domain=demo.localhost"]
    got = cookies_through(port, "cookies.localhost:8000", *sent)
    assert got == ["theme=dark", "own=1; Domain=cookies.localhost"]


def test_the_hubs_own_cookies_pass(make_proxy) -> None:  # noqa: ANN001
    port = make_proxy()
    sent = ["spaces_session=real; Path=/; HttpOnly; SameSite=Lax"]
    assert cookies_through(port, "localhost:8000", *sent) == sent


# ---- the pure parts: cookie rules, address keys ---------------------------------------------------------------------------------------------
GUARD = CookieGuard(["spaces_session", "spaces_app_auth"])
HOST = b"alice-demo.localhost"


@pytest.mark.parametrize("value", [
    b"spaces_session=x; Domain=localhost", b"spaces_session=x", b"SPACES_SESSION=x; Path=/",
    b"__Host-spaces_session=x; Secure; Path=/", b"__secure-spaces_app_auth=x; Secure", b"spaces_app_auth=forged",
    b"theme=dark; Domain=localhost", b"theme=dark; Domain=.localhost", b"theme=dark; path=/; DOMAIN=LocalHost",
    b"theme=dark; Domain=bob-other.localhost", b"theme=dark; Domain=alice-demo.localhost; Domain=localhost",
    b"theme=dark; Domain=localhost.",
])
def test_cookies_that_reach_beyond_the_app_are_refused(value: bytes) -> None:
    assert GUARD.refusal(value, HOST) is not None


@pytest.mark.parametrize("value", [
    b"theme=dark", b"theme=dark; Path=/; HttpOnly", b"theme=dark; Domain=alice-demo.localhost",
    b"theme=dark; Domain=.Alice-Demo.localhost", b"__Host-app=x; Secure; Path=/", b"session=x",
    b"spaces_session_extra=x", b"theme=dark; Domain=",
])
def test_the_apps_own_cookies_pass(value: bytes) -> None:
    assert GUARD.refusal(value, HOST) is None


def test_filter_head_drops_only_the_refused_lines() -> None:
    head = (b"HTTP/1.1 200 OK\r\nSet-Cookie: theme=dark\r\nset-cookie: spaces_session=evil; Domain=localhost\r\n"
            b"Content-Length: 2\r\nSET-COOKIE: a=b; domain=localhost\r\n\r\n")
    assert GUARD.filter_head(head, HOST) == (b"HTTP/1.1 200 OK\r\nSet-Cookie: theme=dark\r\nContent-Length: 2"
                                             b"\r\n\r\n")
    plain = b"HTTP/1.1 200 OK\r\nSet-Cookie: theme=dark\r\n\r\n"
    assert GUARD.filter_head(plain, HOST) is plain


def test_address_key_groups_an_ipv6_host_and_keeps_ipv4_apart() -> None:
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9") == "2001:0db8:0001:0002::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")


def test_a_head_with_set_cookie_leaves_the_quick_path_in_c_and_python() -> None:
    """The cookie check runs on parsed heads only: a Set-Cookie must never ride the quick answer."""
    from spaces.proxy import http1

    scanners = [http1._scan_response_py] + ([http1._scan.scan_response] if http1._scan is not None else [])
    for scan in scanners:
        for name in (b"Set-Cookie", b"set-cookie", b"SET-COOKIE"):
            assert scan(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + name + b": a=b")[2] is None
        assert scan(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookies: a=b")[2] is not None


def test_the_proxy_knows_the_hubs_cookie_names() -> None:
    from spaces.hub.session import COOKIE_NAME
    from spaces.proxy.settings import ProxySettings

    assert COOKIE_NAME in ProxySettings().hub_cookies

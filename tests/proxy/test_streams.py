"""Streams through the real proxy: chunked bodies both ways, SSE, WebSocket, large uploads, activity stamps."""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid

import httpx
import pytest
from websockets.sync.client import connect


@pytest.fixture
def proxy(short_idle_proxy):
    return short_idle_proxy


def test_chunked_response_is_not_buffered(proxy, upstreams):
    """The upstream sends one chunk, then blocks until released: the client must already have that chunk."""
    gate = uuid.uuid4().hex
    with proxy.client("demo") as c, c.stream("GET", f"/gated?id={gate}") as r:
        lines = r.iter_lines()
        assert next(lines) == "first"  # arrived while the app is still blocked
        with httpx.Client(base_url=f"http://127.0.0.1:{upstreams['app-a'].port}") as direct:
            direct.get(f"/release?id={gate}")
        assert next(lines) == "second"


def test_streamed_chunks_arrive_in_order(proxy):
    with proxy.client("demo") as c:
        r = c.get("/stream?n=50&every=0")
    assert r.status_code == 200
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.text.splitlines() == [f"chunk {i}" for i in range(50)]


def test_sse_with_traffic_outlives_the_idle_timeout_and_keeps_the_space_awake(proxy):
    # the proxy's stream_idle_timeout is 1 s; this stream lasts about 2.5 s with an event every 0.25 s
    stamps = []
    with proxy.client("demo") as c, c.stream("GET", "/sse?n=10&every=0.25",
                                              headers={"Accept": "text/event-stream"}) as r:
        events = []
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
                stamps.append(proxy.proxy.activity.last_seen("alice/demo"))
    assert events == [f"event {i}" for i in range(10)] + ["end"]
    assert all(b >= a for a, b in zip(stamps, stamps[1:]))
    assert stamps[-1] > stamps[0]  # every event moved the activity stamp forward


def test_a_dead_quiet_stream_is_cut_after_the_idle_timeout_and_does_not_count_as_activity(proxy):
    with proxy.client("demo") as c, c.stream("GET", "/sse?n=1&every=0&quiet=8") as r:
        lines = r.iter_lines()
        assert next(lines) == "data: event 0"
        seen = proxy.proxy.activity.stamps["alice/demo"]
        rest = []
        try:
            rest = list(lines)
        except httpx.HTTPError:
            pass  # the cut surfaces as an incomplete chunked body
        assert "data: end" not in rest  # closed by the proxy long before the app's last event
        assert proxy.proxy.activity.stamps["alice/demo"] == seen


def test_websocket_echo_through_the_proxy(proxy):
    with connect(f"ws://demo.localhost:{proxy.port}/ws", open_timeout=10) as ws:
        for i in range(20):
            ws.send(f"hello {i}")
            assert ws.recv(timeout=10) == f"app-a:hello {i}"
        payload = os.urandom(200_000)
        ws.send(payload)
        assert ws.recv(timeout=10) == payload
    with connect(f"ws://other.localhost:{proxy.port}/ws", open_timeout=10) as ws:
        ws.send("x")
        assert ws.recv(timeout=10) == "app-b:x"


def test_websocket_stays_open_past_the_idle_timeout_while_it_has_traffic(proxy):
    with connect(f"ws://demo.localhost:{proxy.port}/ws", open_timeout=10) as ws:
        deadline = time.monotonic() + 2.5  # stream_idle_timeout is 1 s
        n = 0
        while time.monotonic() < deadline:
            ws.send(str(n))
            assert ws.recv(timeout=10) == f"app-a:{n}"
            n += 1
            time.sleep(0.2)


def _blob(size: int, chunk: int = 1 << 20):
    seed = hashlib.sha256(b"seed").digest() * (chunk // 32)
    sent = 0
    while sent < size:
        piece = seed[:min(chunk, size - sent)]
        sent += len(piece)
        yield piece


def test_large_uploads_stream_through(proxy):
    size = 64 * 1024 * 1024
    expected = hashlib.sha256(b"".join(_blob(size))).hexdigest()
    with proxy.client("demo", timeout=120) as c:
        chunked = c.post("/upload", content=_blob(size))  # a generator: Transfer-Encoding: chunked
        sized = c.post("/upload", content=b"".join(_blob(size)))  # Content-Length
    for r in (chunked, sized):
        assert r.status_code == 200
        assert (r.json()["size"], r.json()["sha256"]) == (size, expected)


def test_expect_100_continue(proxy):
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall(f"POST /upload HTTP/1.1\r\nHost: demo.localhost:{proxy.port}\r\nContent-Length: 4\r\n"
                 "Expect: 100-continue\r\n\r\n".encode())
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 100 Continue")
    sock.sendall(b"abcd")
    data = first
    while b'"size": 4' not in data:
        chunk = sock.recv(65536)
        assert chunk
        data += chunk
    sock.close()

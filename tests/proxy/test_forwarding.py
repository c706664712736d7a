"""Routing and header hygiene through the real proxy to real upstream processes."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

import httpx
import pytest
from proxykit import free_port, start_process, stop_process


def _recv_responses(sock: socket.socket, count: int) -> list[tuple[bytes, dict]]:
    """Read ``count`` JSON responses (Content-Length framed) from a raw socket."""
    buf, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(out)} responses"
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        length = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
        while len(buf) < length:
            buf += sock.recv(65536)
        body, buf = buf[:length], buf[length:]
        out.append((head, json.loads(body) if body.startswith(b"{") else {}))
    return out


def _headers(answer: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in answer["headers"]:
        out.setdefault(k, []).append(v)
    return out


def test_routes_by_host_and_keeps_it(proxy, upstreams):
    with proxy.client("demo") as c:
        r = c.get("/headers")
    assert r.status_code == 200
    assert r.json()["upstream"] == "app-a"
    h = _headers(r.json())
    assert h["host"] == [f"demo.localhost:{proxy.port}"]
    assert h["x-forwarded-for"] == ["127.0.0.1"]
    assert h["x-forwarded-proto"] == ["http"]
    assert h["x-forwarded-host"] == [f"demo.localhost:{proxy.port}"]
    with proxy.client("other") as c:
        assert c.get("/headers").json()["upstream"] == "app-b"
    with proxy.client() as c:  # any other host: the hub
        assert c.get("/headers").json()["upstream"] == "hub"


def test_every_route_change_reaches_the_next_request_to_a_host_the_gate_remembers(proxy, upstreams):
    """The gate keeps a running public Space's target per host name until the route table changes: each change
    (new upstream, paused, private, gone) must still decide the very next request, on a kept-alive connection too."""
    with proxy.client("demo") as c:
        assert [c.get("/headers").json()["upstream"] for _ in range(3)] == ["app-a"] * 3  # remembered after the first
        proxy.put("demo", "alice/demo", upstreams["app-b"].addr)
        assert c.get("/headers").json()["upstream"] == "app-b"
        proxy.put("demo", "alice/demo", upstreams["app-b"].addr, state="paused", message="paused by alice")
        r = c.get("/headers")
        assert r.status_code == 503 and r.json()["error"] == "paused by alice"
        proxy.put("demo", "alice/demo", upstreams["app-a"].addr)
        assert c.get("/headers").json()["upstream"] == "app-a"
        proxy.put("demo", "alice/demo", upstreams["app-a"].addr, private=True)
        assert c.get("/headers").status_code == 404  # no credential: as if it did not exist
        proxy.controls.tokens.add("hf_alice")
        for _ in range(2):  # the second is allowed from the gate's cache of checked credentials
            assert c.get("/headers", headers={"authorization": "Bearer hf_alice"}).json()["upstream"] == "app-a"
        assert c.get("/headers").status_code == 404  # a private Space's answer is never remembered
        proxy.put("demo", "alice/demo", upstreams["app-a"].addr)
        assert c.get("/headers").json()["upstream"] == "app-a"
        assert c.get("/__spaces/status").json()["state"] == "running"  # answered by the proxy, even when remembered
        proxy.routes.delete("demo")
        assert c.get("/headers").status_code == 404
    with proxy.client("other") as c:  # another host on the same gate is unaffected
        assert c.get("/headers").json()["upstream"] == "app-b"


def test_keep_alive_every_request_gets_its_own_forwarding_headers(proxy):
    sock = proxy.raw()
    host = f"demo.localhost:{proxy.port}"
    requests = [
        f"GET /headers?i=0 HTTP/1.1\r\nHost: {host}\r\n\r\n",
        f"GET /headers?i=1 HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
        "Forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\r\n",
        f"POST /headers?i=2 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\nhello",
    ]
    answers = []
    for req in requests:  # one at a time on the same connection
        sock.sendall(req.encode())
        answers += _recv_responses(sock, 1)
    # and pipelined: three heads in one write
    sock.sendall("".join(requests).encode())
    answers += _recv_responses(sock, 3)
    sock.close()
    assert len(answers) == 6
    for _, body in answers:
        h = _headers(body)
        assert h["x-forwarded-for"] == ["127.0.0.1"]
        assert h["x-forwarded-proto"] == ["http"]
        assert "forwarded" not in h and "x-real-ip" not in h
    assert [b["size"] for _, b in answers] == [0, 0, 5, 0, 0, 5]


def test_each_request_on_one_connection_is_routed_by_its_own_host(proxy):
    """A load balancer pooling connections may mix hosts on one connection: each request goes where its Host says."""
    sock = proxy.raw()
    hosts = [f"demo.localhost:{proxy.port}", f"other.localhost:{proxy.port}", "localhost", "nobody.localhost",
             f"demo.localhost:{proxy.port}"]
    seen = []
    for host in hosts:
        sock.sendall(f"GET /headers HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode())
        head, body = _recv_responses(sock, 1)[0]
        seen.append(body.get("upstream") or head.split(b" ")[1].decode())
    sock.close()
    assert seen == ["app-a", "app-b", "hub", "404", "app-a"]


def test_hop_by_hop_and_internal_headers_are_dropped(proxy):
    sock = proxy.raw()
    sock.sendall((f"GET /headers HTTP/1.1\r\nHost: demo.localhost:{proxy.port}\r\n"
                  "Connection: keep-alive, X-Custom-Hop\r\nX-Custom-Hop: secret\r\nKeep-Alive: timeout=300\r\n"
                  "TE: trailers\r\nTrailer: X-T\r\nProxy-Authorization: Basic Zm9v\r\nProxy-Connection: keep-alive\r\n"
                  "X-Forwarded-Host: evil.example\r\nX-Spaces-User: admin\r\nx-hf-authorization: Bearer hf_x\r\n"
                  "Authorization: Bearer public-app-token\r\nUser-Agent: raw\r\n\r\n").encode())
    _, body = _recv_responses(sock, 1)[0]
    sock.close()
    h = _headers(body)
    for name in ("connection", "x-custom-hop", "keep-alive", "te", "trailer", "proxy-authorization",
                 "proxy-connection", "x-spaces-user", "x-hf-authorization"):
        assert name not in h, name
    assert h["x-forwarded-host"] == [f"demo.localhost:{proxy.port}"]
    assert h["authorization"] == ["Bearer public-app-token"]  # a public Space's own auth scheme passes
    assert h["user-agent"] == ["raw"]


def test_response_hop_by_hop_headers_are_dropped(make_proxy):
    """A raw upstream that names its own hop-by-hop header: the client never sees it, the connection lives on."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        buf = b""
        for _ in range(2):
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(65536)
            _, _, buf = buf.partition(b"\r\n\r\n")
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n"
                         b"Keep-Alive: timeout=5\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\n{}")
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    handle = make_proxy()
    handle.put("raw", "x/raw", ("127.0.0.1", port))
    sock = handle.raw()
    heads = []
    for _ in range(2):
        sock.sendall(f"GET / HTTP/1.1\r\nHost: raw.localhost:{handle.port}\r\n\r\n".encode())
        heads.append(_recv_responses(sock, 1)[0][0].lower())
    sock.close()
    srv.close()
    for head in heads:
        assert b"x-kept: yes" in head
        assert b"x-hop" not in head and b"keep-alive" not in head and b"connection:" not in head


def test_unknown_subdomain_is_404_page_or_json(proxy):
    with proxy.client("nobody") as c:
        page = c.get("/", headers={"Accept": "text/html"})
        api = c.get("/api/predict")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "Space not found" in page.text
    assert api.status_code == 404 and api.headers["x-error-code"] == "RepoNotFound"
    assert api.json() == {"error": "Space not found."}


@pytest.mark.parametrize("host", [
    "nobody.localhost",  # unregistered Space
    "a.demo.localhost",  # a deeper name under the apps domain
])
def test_spoofed_hosts_reach_nothing_unregistered(proxy, upstreams, host):
    with proxy.client() as c:
        r = c.get("/headers", headers={"Host": host})
    assert r.status_code == 404
    assert "upstream" not in r.text


def test_host_naming_an_upstream_address_goes_to_the_hub_not_there(proxy, upstreams):
    """The Host header is never used to connect anywhere: naming app-b's real address reaches the hub."""
    for host in (f"127.0.0.1:{upstreams['app-b'].port}", f"localhost:{upstreams['app-b'].port}"):
        with proxy.client() as c:
            assert c.get("/headers", headers={"Host": host}).json()["upstream"] == "hub"


@pytest.mark.parametrize("raw,status", [
    (b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: demo.localhost\r\n\r\n", 400),  # absolute-form target
    (b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n", 405),
    (b"GET / HTTP/1.1\r\nHost: demo.localhost\r\nHost: other.localhost\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"POST / HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"GET / HTTP/1.1\r\nHost: demo.localhost\r\nX-A: 1\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost : demo.localhost\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: demo.localhost\r\n\r\n", 505),
    # a control byte in a value: some servers read "5\x0b" as 5, others refuse it
    (b"POST / HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 3\x0b\r\n\r\nabc", 400),
    (b"GET / HTTP/1.1\r\nHost: demo.localhost\r\nX-A: a\x01b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: demo.localhost\r\nX-A: a\x7f\r\n\r\n", 400),
    # an empty Transfer-Encoding beside "chunked": some servers take the last one, others refuse two
    (b"POST / HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n", 400),
])
def test_ambiguous_or_malformed_requests_are_refused(proxy, raw, status):
    sock = proxy.raw()
    sock.sendall(raw.replace(b"demo.localhost", f"demo.localhost:{proxy.port}".encode()))
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert data.startswith(f"HTTP/1.1 {status} ".encode()), data[:100]
    assert b'{"error":' in data and b"upstream" not in data  # the proxy's own answer: nothing reached the app


def test_upstream_dead_gives_502_and_a_nudge(proxy):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    dead = port.getsockname()[1]
    port.close()  # nothing listens there now
    proxy.put("gone", "carol/gone", ("127.0.0.1", dead))
    with proxy.client("gone") as c:
        r = c.get("/")
    assert r.status_code == 502
    assert r.headers["x-error-code"] == "BadGateway"
    assert proxy.controls.dead == ["carol/gone"]


class _OneShotApp:
    """A raw app that answers the first request on each connection and closes the connection when the next one
    comes, unanswered: what an app does when its keep-alive timer closes a connection the proxy is writing to.
    ``seen`` lists (connection number, request line) for every request head read."""

    def __init__(self) -> None:
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen()
        self.addr = self.srv.getsockname()
        self.seen: list[tuple[int, bytes]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        n = 0
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            n += 1
            threading.Thread(target=self._serve, args=(conn, n), daemon=True).start()

    def _serve(self, conn: socket.socket, n: int) -> None:
        buf = b""
        with conn:
            for answered in (False, True):
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.seen.append((n, head.split(b"\r\n")[0]))
                if answered:
                    return  # closed without answering
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    def close(self) -> None:
        self.srv.close()


def test_a_safe_request_crossing_the_apps_close_is_sent_again(make_proxy):
    app = _OneShotApp()
    handle = make_proxy()
    handle.put("oneshot", "x/oneshot", app.addr)
    try:
        with handle.client("oneshot") as c:
            assert c.get("/first").status_code == 200
            assert c.get("/second").status_code == 200  # crossed the close: sent again on a new connection
            # a request with a body is not repeated (the app may have acted on it): 502, sent once
            r = c.post("/third", content=b"x")
            assert r.status_code == 502
    finally:
        app.close()
    assert app.seen == [(1, b"GET /first HTTP/1.1"), (1, b"GET /second HTTP/1.1"), (2, b"GET /second HTTP/1.1"),
                        (2, b"POST /third HTTP/1.1")]


def test_a_body_that_comes_in_pieces_after_its_head_is_counted_to_its_end(make_proxy):
    """The head and the body's first bytes in one read, the rest later: the proxy must count the body to its end,
    or the next request on the connection would wait for bytes that never come."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    body = bytes(range(256)) * 40

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            for i in range(2):
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += conn.recv(65536)
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nX-Answer: {i}\r\n\r\n".encode()
                conn.sendall(head + body[:1000])
                time.sleep(0.2)  # the proxy reads the head with part of the body first
                conn.sendall(body[1000:])

    threading.Thread(target=serve, daemon=True).start()
    handle = make_proxy()
    handle.put("pieces", "x/pieces", srv.getsockname())
    try:
        with handle.client("pieces") as c:
            answers = [c.get(f"/{i}", timeout=5) for i in range(2)]
    finally:
        srv.close()
    assert [(r.status_code, r.headers["x-answer"], r.content) for r in answers] == [(200, "0", body), (200, "1", body)]


def test_an_upstream_connection_idle_too_long_is_not_reused(make_proxy):
    app = _OneShotApp()
    handle = make_proxy(upstream_idle_timeout=0.3)
    handle.put("oneshot", "x/oneshot", app.addr)
    try:
        with handle.client("oneshot") as c:
            assert c.get("/first").status_code == 200
            time.sleep(0.6)
            assert c.post("/second", content=b"x").status_code == 200  # a new connection: no close to cross
    finally:
        app.close()
    assert app.seen == [(1, b"GET /first HTTP/1.1"), (2, b"POST /second HTTP/1.1")]


@pytest.mark.parametrize("head", [b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 2",
                                  b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: a\r\n folded"])
def test_an_app_cannot_pass_a_response_head_the_client_could_read_differently(make_proxy, head):
    """A client or a pooling load balancer parses the response after us: an app's malformed head becomes our 502."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def answer() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(head + b"\r\n\r\n{}")

    threading.Thread(target=answer, daemon=True).start()
    handle = make_proxy()
    handle.put("crooked", "x/crooked", srv.getsockname())
    try:
        with handle.client("crooked") as c:
            r = c.get("/")
    finally:
        srv.close()
    assert r.status_code == 502 and r.json() == {"error": "the app sent a malformed response"}


def test_the_standalone_proxy_routes_its_static_routes_and_sends_the_rest_to_the_hub(upstreams):
    """``python -m spaces.proxy`` (the benches' proxy) as a process: --route hosts to their app, others to --hub."""
    port = free_port()
    app, hub = upstreams["app-a"], upstreams["hub"]
    proc = start_process([sys.executable, "-m", "spaces.proxy", "--listen", f"127.0.0.1:{port}",
                          "--hub", f"127.0.0.1:{hub.port}", "--route", f"demo=127.0.0.1:{app.port}",
                          "--loop", "asyncio"], port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            assert c.get("/headers", headers={"host": "demo.localhost"}).json()["upstream"] == "app-a"
            assert c.get("/headers", headers={"host": "elsewhere.example"}).json()["upstream"] == "hub"
            assert c.get("/headers", headers={"host": "nope.localhost"}).status_code == 404
    finally:
        stop_process(proc)
    assert proc.returncode == 0  # SIGTERM stops it cleanly

"""The compiled head scanner (spaces/proxy/_scan.c) against the Python one it replaces on the hot path.

``_scan_request_py`` and ``_scan_response_py`` in http1.py are the reference: for every head, the C scanner must
return the same tuple or raise the same ``HttpError`` (status and message). The heads are every byte value put at
every position of a few valid heads (each character class, each boundary), then heads built from plain and hostile
parts and mutated at random from a fixed seed. test_http1.py also runs every rule once through each scanner.
"""

from __future__ import annotations

import random

import pytest

from spaces.proxy import http1
from spaces.proxy.http1 import HttpError

needs_c = pytest.mark.skipif(http1._scan is None, reason="the C scanner is not built (see test_it_is_built)")

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: app.localhost:8080",
    b"OPTIONS * HTTP/1.0\r\nX-Forwarded-For: 1.2.3.4\r\nTe: trailers\r\nContent-Length: 3",
    b"POST /a?b=c HTTP/1.1\r\nhost:\tA.example \r\nTransfer-Encoding: chunked\r\nConnection: Upgrade, x-y\r\n"
    b"Upgrade: websocket\r\nProxy-Authorization: x\r\nX-Spaces-Owner: y\r\nCookie: spaces-session=s",
    b"GET /x HTTP/1.1",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\nHOST: b",
]
RESPONSES = [
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 13\r\nConnection: keep-alive",
    b"HTTP/1.0 101 Switching\r\nUpgrade: websocket\r\nConnection:  Upgrade \r\nKeep-Alive: timeout=5",
    b"HTTP/1.1 204\r\nTransfer-Encoding: chunked\r\nProxy-Authenticate: x\r\nX: \xc3\xa9\t",
    b"HTTP/1.1 304 ",
    # the quick answer's edges: one Content-Length and one "Connection: keep-alive", either order, with blanks
    b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive \r\nX: y\r\nContent-Length:\t012 ",
    b"HTTP/1.0 404 x\r\nContent-Length: 123456789012345678\r\nDate: d",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\nConnection: keep-alive",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1",
]
#: bytes that sit on a boundary of some rule: separators, blanks, controls, tchar edges, case, obs-text
SPECIAL = b"\r\n\t \x00\x0b\x1f\x7f\x80\xff:;,#*/\\\"()<>@[]{}?=!|~^_`.-+AZaz09"
PARTS = [b"GET", b"CONNECT", b"OPTIONS", b"get", b"/", b"*", b"#", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"Host",
         b"Content-Length", b"Transfer-Encoding", b"Connection", b"TE", b"Trailer", b"Upgrade", b"Forwarded",
         b"Keep-Alive", b"X-Real-IP", b"X-Hf-Authorization", b"Proxy-", b"X-Forwarded-Host", b"X-Spaces-",
         b"HTTP/1.1 200", b"\r\n", b": ", b":", b"[::1]:80"]


def outcome(scan, raw: bytes) -> tuple:  # noqa: ANN001
    try:
        return ("ok", scan(raw))
    except HttpError as e:
        return ("refused", e.status, e.message)


def assert_same(raw: bytes) -> None:
    assert outcome(http1._scan.scan_request, raw) == outcome(http1._scan_request_py, raw), raw
    assert outcome(http1._scan.scan_response, raw) == outcome(http1._scan_response_py, raw), raw


def mutate(rnd: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rnd.randint(1, 4)):
        op, at = rnd.random(), rnd.randint(0, len(data))
        piece = bytes([rnd.choice(SPECIAL)]) if rnd.random() < 0.7 else rnd.choice(PARTS)
        if op < 0.4:
            data[at:at] = piece
        elif op < 0.7 and data:
            del data[at:at + rnd.randint(1, 3)]
        elif data:
            data[at:at + len(piece)] = piece
    return bytes(data)


def test_it_is_built():
    """scripts/test installs the project with a C compiler: the proxy must run (and be tested) on the C scanner."""
    assert http1._scan is not None, "spaces/proxy/_scan.c was not compiled: install gcc and the Python headers, " \
        "then reinstall the project (scripts/test does)"
    assert http1._scan_request is http1._scan.scan_request
    assert http1._scan_response is http1._scan.scan_response


@needs_c
@pytest.mark.parametrize("base", REQUESTS + RESPONSES)
def test_every_byte_at_every_position(base):
    for at in range(len(base) + 1):
        for b in range(256):
            assert_same(base[:at] + bytes([b]) + base[at:])
            if at < len(base):
                assert_same(base[:at] + bytes([b]) + base[at + 1:])
    for at in range(len(base)):  # and every byte removed
        assert_same(base[:at] + base[at + 1:])


@needs_c
def test_random_heads_and_mutations():
    rnd = random.Random(20261203)
    for _ in range(40000):
        base = rnd.choice(REQUESTS + RESPONSES)
        raw = mutate(rnd, base)
        if rnd.random() < 0.3:
            raw = b"\r\n".join(mutate(rnd, rnd.choice(PARTS) + b": x") for _ in range(rnd.randint(0, 3))) + raw
        assert_same(raw)
        assert_same(raw.upper())


@needs_c
@pytest.mark.parametrize("raw", [b"", b" ", b"  ", b"\r\n", b"\r\n\r\n", b"GET  HTTP/1.1", b"GET / HTTP/1.1\r\n",
                                 b"GET / HTTP/1.1\r\nHost: a\r\n", b"GET / HTTP/1.1\r\n\r\nHost: a",
                                 b"HTTP/1.1 200\r\n", b"HTTP/1.1 2000", b"HTTP/1.1 200\r", b"x" * 70000])
def test_edges(raw):
    assert_same(raw)


@needs_c
def test_wrong_argument_types_are_refused():
    for scan in (http1._scan.scan_request, http1._scan.scan_response):
        with pytest.raises(TypeError):
            scan("GET / HTTP/1.1")
        with pytest.raises(TypeError):
            scan(bytearray(b"GET / HTTP/1.1"))

"""The HTTP/1.1 framing and head rules in isolation (pure: no sockets)."""

from __future__ import annotations

import pytest

from spaces.proxy import http1
from spaces.proxy.http1 import Framer, HttpError, RequestHead, ResponseHead


@pytest.fixture(autouse=True, params=["compiled", "python"])
def scanner(request, monkeypatch):
    """Every rule here holds with the C head scanner (the proxy's) and with the Python one it falls back to."""
    if request.param == "python":
        monkeypatch.setattr(http1, "_scan_request", http1._scan_request_py)
        monkeypatch.setattr(http1, "_scan_response", http1._scan_response_py)
    elif http1._scan is None:
        pytest.skip("the C scanner is not built (test_http1_scan.py::test_it_is_built fails)")
    return request.param


def _feed_all(framer: Framer, data: bytes, step: int) -> int:
    used = 0
    for i in range(0, len(data), step):
        piece = data[i:i + step]
        n = framer.feed(piece)
        used += n
        if framer.done:
            return used
    return used


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_chunked_body_end_is_found_whatever_the_packet_boundaries(step):
    body = b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"
    framer = Framer(Framer.CHUNKED)
    assert _feed_all(framer, body + b"GET /next", step) == len(body)
    assert framer.done


@pytest.mark.parametrize("body", [b"5\r\nhelloXX0\r\n\r\n", b"zz\r\n", b"5\nhello\r\n", b"-1\r\n",
                                  b"5 \r\n", b"5;a\x00\r\n", b"5;a\x0bb\r\n", b"0x5\r\n", b"5\r\r\n",
                                  b"5;a\rb\r\n", b"5\r\nhello\r\n0\r\nX: a\rb\r\n"])
def test_malformed_chunked_bodies_are_refused(body):
    with pytest.raises(HttpError):
        Framer(Framer.CHUNKED).feed(body)


@pytest.mark.parametrize("target,ok", [(b"/a?b=c", True), (b"*", False), (b"/a#frag", False), (b"#", False),
                                       (b"http://x/", False), (b"x", False)])
def test_request_target_must_be_origin_form(target, ok):
    raw = b"GET " + target + b" HTTP/1.1\r\nHost: demo.localhost"
    if ok:
        assert RequestHead(raw).target == target
    else:
        with pytest.raises(HttpError):
            RequestHead(raw)
    assert RequestHead(b"OPTIONS * HTTP/1.1\r\nHost: demo.localhost").target == b"*"  # the one exception


def test_content_length_body_stops_at_its_length():
    framer = Framer(Framer.LENGTH, 5)
    assert framer.feed(b"hel") == 3 and not framer.done
    assert framer.feed(b"loGET /") == 2 and framer.done


def test_forward_head_rewrites_only_what_it_must():
    req = RequestHead(b"GET /p?q=1 HTTP/1.1\r\nHost: Demo.localhost:8000\r\nConnection: keep-alive, X-Hop\r\n"
                      b"X-Hop: 1\r\nAuthorization: Bearer t\r\nCookie: a=1; spaces_app_auth=s; b=2\r\nX-Other: y")
    assert req.hostname == b"demo.localhost" and req.keep_alive
    head = req.forward(client_ip="10.0.0.1", proto=b"https", strip_auth=True, cookie_name=b"spaces_app_auth",
                       trust_forwarded=False)
    assert head == (b"GET /p?q=1 HTTP/1.1\r\nHost: Demo.localhost:8000\r\nCookie: a=1; b=2\r\nX-Other: y\r\n"
                    b"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: demo.localhost:8000"
                    b"\r\n\r\n")


def test_field_values_may_hold_tabs_and_non_ascii_but_no_control_byte():
    assert RequestHead(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\tc \xc3\xa9").get(b"x-a") == b"b\tc \xc3\xa9"
    for bad in (b"\x0b", b"\x0c", b"\x1b", b"\x7f", b"\x01"):
        with pytest.raises(HttpError):
            RequestHead(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b" + bad)
        with pytest.raises(HttpError):  # "5\x0b" is 5 to some servers and an error to others
            RequestHead(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5" + bad)
    with pytest.raises(HttpError):
        Framer(Framer.CHUNKED).feed(b"0\r\nX-Trailer: a\x0bb\r\n\r\n")
    with pytest.raises(HttpError):  # an app's response is held to the same rule for its length
        ResponseHead(b"HTTP/1.1 200 OK\r\nContent-Length: 5\x0b", b"GET")


def test_connection_header_cannot_drop_framing_headers():
    req = RequestHead(b"POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length, transfer-encoding, host\r\n"
                      b"Content-Length: 3")
    head = req.forward(client_ip="1.1.1.1", proto=b"http", strip_auth=False, cookie_name=None, trust_forwarded=False)
    assert b"Content-Length: 3" in head and b"Host: a" in head


def test_trusted_forwarded_headers_are_appended_to():
    req = RequestHead(b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 9.9.9.9\r\nX-Forwarded-Proto: https")
    head = req.forward(client_ip="10.0.0.2", proto=b"http", strip_auth=False, cookie_name=None, trust_forwarded=True)
    assert b"X-Forwarded-For: 9.9.9.9, 10.0.0.2\r\n" in head and b"X-Forwarded-Proto: https\r\n" in head
    assert head.count(b"X-Forwarded-For") == 1


def test_upgrade_keeps_its_headers():
    req = RequestHead(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      b"Sec-WebSocket-Key: k")
    assert req.upgrade == b"websocket"
    head = req.forward(client_ip="1.1.1.1", proto=b"http", strip_auth=False, cookie_name=None, trust_forwarded=False)
    assert b"Connection: upgrade\r\nUpgrade: websocket\r\n" in head and b"Sec-WebSocket-Key: k" in head


@pytest.mark.parametrize("raw,method,kind", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3", b"GET", Framer.LENGTH),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", b"GET", Framer.CHUNKED),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream", b"GET", Framer.UNTIL_CLOSE),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3", b"HEAD", Framer.NONE),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3", b"GET", Framer.NONE),
    (b"HTTP/1.1 100 Continue", b"POST", Framer.NONE),
])
def test_response_framing(raw, method, kind):
    assert ResponseHead(raw, method).framer.kind == kind


def test_response_with_nothing_to_drop_is_passed_as_received():
    raw = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: b"
    assert ResponseHead(raw, b"GET").data == raw + b"\r\n\r\n"


@pytest.mark.parametrize("raw,keep_alive,length,sent", [
    # the common heads take a fast path; the answers must be those of the general rules
    (b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\nConnection: keep-alive\r\nX-A: b", True, 2,
     b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\nX-A: b\r\n\r\n"),
    (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 7 ", True, 7,
     b"HTTP/1.1 200 OK\r\nContent-Length: 7 \r\n\r\n"),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive", True, 2,
     b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n"),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2", False, 2, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n"),
    # and the rest take the general one
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close", False, 2,
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5", True, 2,
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, x-a\r\nX-A: b", True, 2,
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
])
def test_response_keep_alive_and_hop_by_hop_headers(raw, keep_alive, length, sent):
    head = ResponseHead(raw, b"GET")
    assert (head.keep_alive, head.framer.kind, head.framer.remaining, head.data) == (
        keep_alive, Framer.LENGTH, length, sent)


@pytest.mark.parametrize("raw,method,quick", [
    (b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\nConnection: keep-alive", b"GET", True),
    (b"HTTP/1.0 404 Not Found\r\nContent-Length: 0", b"POST", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2", b"HEAD", False),  # no body follows, whatever the length says
    (b"HTTP/1.1 204 No Content\r\nContent-Length: 0", b"GET", False),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 2", b"GET", False),
    (b"HTTP/1.1 103 Early Hints\r\nContent-Length: 2", b"GET", False),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream", b"GET", False),  # until close
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", b"GET", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close", b"GET", False),
])
def test_parse_response_answers_the_common_head_as_a_tuple_that_agrees_with_response_head(raw, method, quick):
    """The proxy reads response heads with parse_response: its fast answer must be ResponseHead's, field for field."""
    parsed, head = http1.parse_response(raw, method), ResponseHead(raw, method)
    if not quick:
        assert isinstance(parsed, ResponseHead)
        assert (parsed.status, parsed.keep_alive, parsed.framer.kind, parsed.data) == (
            head.status, head.keep_alive, head.framer.kind, head.data)
        return
    keep_alive, length, data = parsed
    assert (keep_alive, Framer.LENGTH, length, data) == (head.keep_alive, head.framer.kind, head.framer.remaining,
                                                         head.data)


def test_parse_response_refuses_what_response_head_refuses():
    with pytest.raises(HttpError) as exc:
        http1.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3", b"GET")
    assert exc.value.status == 502


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3",
    b"HTTP/1.1 200 OK\r\nContent-Length: x2\r\nConnection: keep-alive",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked",  # chunked to some clients, an unknown field to others
    b"HTTP/1.1 200 OK\r\nX-A: 1\r\n Content-Length: 9",  # folded
    b"HTTP/1.1 200 OK\r\nX-A: 1\rContent-Length: 9",  # bare CR
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\nX: y",  # bare LF
    b"HTTP/1.1 200 OK\r\nX-A: \x0b",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 2",
    b"HTTP/1.1 200 OK\x00\r\nContent-Length: 2",
    b"HTTP/1.1 20 OK",
])
def test_invalid_lengths_and_malformed_response_heads_are_refused(raw):
    with pytest.raises(HttpError) as exc:
        ResponseHead(raw, b"GET")
    assert exc.value.status == 502


@pytest.mark.parametrize("raw", [b"HTTP/1.1 200", b"HTTP/1.1 200 ", b"HTTP/1.0 404 Not \xc3\xa9\tFound\r\nX: a\tb"])
def test_bare_and_unusual_but_valid_status_lines_pass(raw):
    assert ResponseHead(raw, b"GET").status == int(raw[9:12])


def test_a_known_host_is_validated_once_and_a_bad_one_always_refused():
    for _ in range(2):  # the second time the remembered host name is used
        req = RequestHead(b"GET / HTTP/1.1\r\nHost: Demo.Localhost:8000")
        assert (req.host, req.hostname, req.framer.done) == (b"demo.localhost:8000", b"demo.localhost", True)
    for bad in (b"demo.localhost:8000/x", b"a b", b"", b"demo.localhost:123456"):
        with pytest.raises(HttpError):
            RequestHead(b"GET / HTTP/1.1\r\nHost: " + bad)
    hosts = [b"h%d.localhost" % i for i in range(5000)]
    for h in hosts:  # many distinct hosts never grow the memory without bound
        assert RequestHead(b"GET / HTTP/1.1\r\nHost: " + h).hostname == h
    assert len(http1._hostnames) <= 4096


@pytest.mark.parametrize("raw", [
    b"GET /a?b=1 HTTP/1.1\r\nHost: demo.localhost:8000\r\nAccept: */*",
    b"POST /x HTTP/1.0\r\nHost: d.localhost\r\nContent-Length: 3\r\nCookie: a=1",
])
def test_a_head_with_nothing_to_take_out_is_forwarded_as_the_general_rules_would(raw):
    req = RequestHead(raw)
    kw = dict(client_ip="10.0.0.1", proto=b"https", cookie_name=b"spaces_app_auth", trust_forwarded=False)
    quick = req.forward(strip_auth=False, **kw)  # the shortcut (nothing to drop)
    general = req.forward(strip_auth=True, **kw)  # no Authorization to strip: the general rules, same result
    assert quick == general
    assert quick == raw + (b"\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: "
                           + req.host + b"\r\n\r\n")

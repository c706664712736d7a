"""Smuggling and response splitting, checked against real parsers: what the proxy passes on must be framed by the
next parser exactly as the proxy framed it.

* Requests: what the proxy forwards, parsed by h11 and by llhttp (httptools, which uvicorn uses when installed).
* Chunked request bodies: where the proxy's ``Framer`` ends one (and so where it reads the next request) against
  where h11 and llhttp end it.
* Responses: what the proxy passes back, parsed by h11 (httpx's parser; a client, or a load balancer pooling its
  connections to us).

Twenty thousand cases of each kind come from a fixed seed, most with a hostile part or two: duplicated or
conflicting Content-Length, Transfer-Encoding spellings, both together, obsolete folding, bare CR or LF, control
bytes, blanks before a colon, duplicate Hosts, odd methods, targets, versions and status lines; chunk sizes, chunk
extensions, chunk lengths, line ends and trailers spelled wrong. For every head the
proxy accepts, the bytes it would send on (the head as rewritten, then the body as the proxy counts it, then the
next message unless the connection ends there) go to the reference, which must read the same method, target and
Host (or status), the same body, and the next message starting exactly where the proxy starts it.

A head the proxy refuses goes nowhere, so refusing more than a reference is always allowed. A reference that refuses
a first head answers 400 (or shows the client an error) and nothing is smuggled; llhttp refuses some heads the proxy
passes on (methods it does not know, an identical Content-Length twice), so each test asks only that most accepted
heads get a reference's verdict. A reference that accepts a head and then fails on what follows it has framed the
message differently: that fails the test.
"""

from __future__ import annotations

import random

import h11
import httptools
import pytest

from spaces.proxy.http1 import Framer, HttpError, RequestHead, parse_response

SEED, CASES = 20261203, 20000
NEXT = b"GET /next HTTP/1.1\r\nHost: next.example\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"
CHUNKED_BODY = b"3\r\nabc\r\n0\r\n\r\n"
FAILED = ("parse error after the head",)
HOSTILE = 0.12  # the chance of each part being a hostile spelling: most heads have one or two

# (plain spellings, hostile spellings) of each part of a head
METHODS = ([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"X-CUSTOM"],
           [b"get", b"G ET", b"CONNECT", b"GET\t", b""])
TARGETS = ([b"/", b"/a/b?c=d", b"/%20x", b"//x"], [b"*", b"http://evil/", b"/a#frag", b"/a b", b"a", b""])
VERSIONS = ([b"HTTP/1.1"] * 6 + [b"HTTP/1.0"], [b"HTTP/2.0", b"http/1.1", b"HTTP/1.1 ", b"HTTP/1.10"])
HOSTS = ([b"Host: app.example", b"Host: app.example:8000", b"host: APP.example", b"Host:app.example",
          b"Host: [::1]:80", b"Host: app.example\t"],
         [b"Host: a b", b"Host: ", b"Host: app.example\x00", b"Host : app.example", b" Host: app.example"])
LENGTHS = ([b"Content-Length: 5", b"Content-Length: 0", b"content-length:5", b"Content-Length: 5 "],
           [b"Content-Length: 05", b"Content-Length: +5", b"Content-Length: -1", b"Content-Length: 5, 5",
            b"Content-Length: 5,6", b"Content-Length: 0x5", b"Content-Length: 99999999999999999999",
            b"Content-Length : 5", b"Content-Length: 5\x0b"])
ENCODINGS = ([b"Transfer-Encoding: chunked", b"transfer-encoding: CHUNKED", b"Transfer-Encoding:\tchunked"],
             [b"Transfer-Encoding: chunked ", b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: chunked, gzip",
              b"Transfer-Encoding: identity", b"Transfer-Encoding: xchunked", b"Transfer-Encoding: chunked\x0b",
              b"Transfer-Encoding : chunked", b"Transfer-Encoding: ", b"Transfer-Encoding: \"chunked\""])
OTHERS = ([b"Accept: */*", b"User-Agent: t/1", b"Connection: keep-alive", b"Connection: close", b"Cookie: a=b",
           b"Connection: upgrade", b"Upgrade: websocket", b"X-Forwarded-For: 6.6.6.6", b"Keep-Alive: timeout=5",
           b"Expect: 100-continue", b"X-Empty:", b"Authorization: Bearer t", b"Cookie: spaces-session=s; a=b",
           b"X-Hf-Authorization: Bearer t", b"Proxy-Authorization: x"],
          [b"Connection: Content-Length", b"X-Folded: a\r\n b", b"X-Bare: a\rb", b"X-Lf: a\nb", b"X: \x7f",
           b": nameless", b"Bad Name: x", b"X-Nul: \x00"])


def pick(rnd: random.Random, part: tuple[list[bytes], list[bytes]]) -> bytes:
    return rnd.choice(part[1] if rnd.random() < HOSTILE else part[0])


def random_head(rnd: random.Random) -> bytes:
    """One request head without its final CRLF CRLF (as the proxy hands it to ``RequestHead``)."""
    lines = [pick(rnd, METHODS) + b" " + pick(rnd, TARGETS) + b" " + pick(rnd, VERSIONS)]
    fields = [pick(rnd, HOSTS) for _ in range(rnd.choice((0, 1, 1, 1, 1, 1, 1, 2)))]
    fields += [pick(rnd, LENGTHS) for _ in range(rnd.choice((0, 0, 1, 1, 2)))]
    fields += [pick(rnd, ENCODINGS) for _ in range(rnd.choice((0, 0, 0, 1, 1, 2)))]
    fields += [pick(rnd, OTHERS) for _ in range(rnd.choice((0, 1, 2, 3)))]
    rnd.shuffle(fields)
    lines += fields
    sep = b"\r\n" if rnd.random() > HOSTILE / 2 else rnd.choice((b"\n", b"\r"))
    return sep.join(lines)


def proxy_view(raw: bytes) -> tuple[RequestHead, bytes, bytes, bytes] | None:
    """What the proxy would send upstream for this head: (parsed head, rewritten head, body as sent, body as the app
    reads it); None if the proxy refuses the head."""
    try:
        req = RequestHead(raw)
    except HttpError:
        return None
    framer = req.framer
    if framer.kind == Framer.LENGTH:
        body = b"x" * framer.remaining if framer.remaining < 1 << 16 else None
    elif framer.kind == Framer.CHUNKED:
        body = CHUNKED_BODY
    else:
        body = b""
    if body is None:
        return None  # a huge declared length: nothing follows it here to compare
    return req, rewritten(req), body, b"abc" if body is CHUNKED_BODY else body


def rewritten(req: RequestHead) -> bytes:
    """The head the proxy sends upstream, as for a private Space: the credentials and our cookie are taken out, so
    the rewriting paths run too."""
    return req.forward(client_ip="192.0.2.1", proto=b"http", strip_auth=True, cookie_name=b"spaces-session",
                       trust_forwarded=False)


def h11_view(stream: bytes) -> list[tuple[bytes, bytes, bytes, bytes]] | None:
    """The requests h11 reads from ``stream``: (method, target, host, body) each, then ``FAILED`` if it failed after
    reading a head; None if it refuses the first head."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(stream)
    out: list[tuple[bytes, bytes, bytes, bytes]] = []
    current = None
    try:
        while len(out) < 2:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                host = dict(event.headers).get(b"host", b"")
                current = [event.method, event.target, host.strip(b" \t").lower(), b""]
            elif isinstance(event, h11.Data):
                current[3] += event.data
            elif isinstance(event, h11.EndOfMessage):
                out.append(tuple(current))  # type: ignore[arg-type]
                conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
            elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                break
    except h11.RemoteProtocolError:
        if not out and current is None:
            return None  # refused the first head: the app answers 400
        out.append(FAILED)  # accepted the head, then failed on what followed it: framed differently
    return out


class _Llhttp:
    """httptools callbacks collecting each request as (method, target, host, body)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.out: list[tuple[bytes, bytes, bytes, bytes]] = []
        self.headers: dict[bytes, bytes] = {}
        self.method = self.url = self.body = b""
        self.heads = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.method = self.parser.get_method()
        self.heads += 1

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.out.append((self.method, self.url, self.headers.get(b"host", b"").strip(b" \t").lower(), self.body))
        self.headers, self.method, self.url, self.body = {}, b"", b"", b""


def llhttp_view(stream: bytes) -> list[tuple[bytes, bytes, bytes, bytes]] | None:
    """The requests llhttp reads from ``stream``, as :func:`h11_view`."""
    sink = _Llhttp()
    try:
        sink.parser.feed_data(stream)
    except httptools.HttpParserUpgrade:
        pass  # an upgrade stops llhttp at the head: what follows belongs to the new protocol
    except httptools.HttpParserError:
        if not sink.heads:
            return None
        return [*sink.out, FAILED]
    return sink.out


def cases() -> list[bytes]:
    rnd = random.Random(SEED)
    return [random_head(rnd) for _ in range(CASES)]


@pytest.mark.parametrize("reference", [h11_view, llhttp_view], ids=["h11", "llhttp"])
def test_what_the_proxy_forwards_is_framed_the_same_by_the_upstreams_parser(reference) -> None:  # noqa: ANN001
    accepted = agreed = 0
    for raw in cases():
        view = proxy_view(raw)
        if view is None:
            continue
        accepted += 1
        req, head, body, content = view
        low = head.lower()  # a visitor's credentials never reach a private Space's app, however the head is spelled
        assert all(low.find(secret) < 0 for secret in (b"\r\nauthorization:", b"\r\nx-hf-authorization:",
                                                        b"\r\nproxy-authorization:", b"spaces-session=")), raw
        # nothing more follows on this upstream connection after an upgrade or a request that ends it; the
        # proxy drops an HTTP/1.0 client's "Connection: keep-alive" (hop-by-hop), so the app closes after those too
        last = req.upgrade is not None or not req.keep_alive or req.version == b"HTTP/1.0"
        seen = reference(head + body + (b"" if last else NEXT))
        if seen is None:
            continue  # the app answers 400: nothing is smuggled
        expected_first = (req.method, req.target, req.host, content)
        if req.upgrade is not None:  # the app may switch protocols right after the head: only the head is HTTP
            assert [m[:3] for m in seen] in ([], [expected_first[:3]]), (raw, seen)
            continue
        if last:
            assert seen == [expected_first], (raw, seen)
            continue
        assert len(seen) == 2, (raw, seen)
        assert seen[0] == expected_first, (raw, seen[0])
        assert seen[1][:3] == (b"GET", b"/next", b"next.example"), (raw, seen[1])
        agreed += 1
    assert accepted > CASES // 10 and agreed > accepted // 2, (accepted, agreed)  # the generator still reaches deep


def test_the_shortcut_forward_gives_the_bytes_of_the_general_rules() -> None:
    """``forward`` cuts hop-by-hop lines out of the head as received when it can; for every accepted head that
    shortcut must send exactly what the general rules (split, drop, rebuild) send. Without an Authorization field,
    taking Authorization out changes nothing, so ``strip_auth=True`` gives the general rules' answer to compare."""
    compared = cut = 0
    for raw in cases():
        view = proxy_view(raw)
        if view is None or view[0].low.find(b"\r\nauthorization:") >= 0:
            continue
        req = view[0]
        kw = dict(client_ip="192.0.2.1", proto=b"http", cookie_name=None, trust_forwarded=False)
        assert req.forward(strip_auth=False, **kw) == req.forward(strip_auth=True, **kw), raw
        compared += 1
        cut += req.drops and not req.listed
    assert compared > CASES // 20 and cut > compared // 4, (compared, cut)  # the shortcut's cutting path is reached


# ---- responses: an app's answer, as the proxy passes it on, must be framed the same by the client's parser ----------

NEXT_RESPONSE = b"HTTP/1.1 299 Next\r\nContent-Length: 4\r\n\r\nnext"
STATUS = ([b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.0 200 OK", b"HTTP/1.1 204 No Content",
           b"HTTP/1.1 304 Not Modified", b"HTTP/1.1 500 "],
          [b"HTTP/1.1 200", b"HTTP/1.1 2000 OK", b"HTTP/1.1 20 OK", b"http/1.1 200 OK", b"HTTP/1.2 200 OK",
           b"HTTP/1.1 200 OK\x00"])
RESP_LENGTHS = ([b"Content-Length: 4", b"content-length:0", b"Content-Length: 4 "],
                [b"Content-Length: 4, 4", b"Content-Length: 4,5", b"Content-Length: -4", b"Content-Length: +4",
                 b"Content-Length: 4\x0b", b"Content-Length : 4", b"Content-Length: 0x4"])
RESP_ENCODINGS = ([b"Transfer-Encoding: chunked", b"transfer-encoding: Chunked"],
                  [b"Transfer-Encoding: gzip", b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: chunked, gzip",
                   b"Transfer-Encoding: ", b"Transfer-Encoding : chunked", b"Transfer-Encoding: chunked\x0b"])
RESP_OTHERS = ([b"Content-Type: text/plain", b"Connection: keep-alive", b"Connection: close", b"Keep-Alive: timeout=5",
                b"Server: t", b"Set-Cookie: a=b"],
               [b"Connection: Content-Length", b"Connection: transfer-encoding", b"Proxy-Authenticate: x",
                b"X-Folded: a\r\n b", b"X-Bare: a\rb", b"X-Lf: a\nb", b"X: \x7f", b"Bad Name: x"])


def random_response(rnd: random.Random) -> tuple[bytes, bytes]:
    """(the request's method, one response head without its final CRLF CRLF)."""
    fields = [pick(rnd, RESP_LENGTHS) for _ in range(rnd.choice((0, 1, 1, 1, 2)))]
    fields += [pick(rnd, RESP_ENCODINGS) for _ in range(rnd.choice((0, 0, 0, 1, 1, 2)))]
    fields += [pick(rnd, RESP_OTHERS) for _ in range(rnd.choice((0, 1, 2, 3)))]
    rnd.shuffle(fields)
    sep = b"\r\n" if rnd.random() > HOSTILE / 2 else rnd.choice((b"\n", b"\r"))
    return rnd.choice((b"GET",) * 7 + (b"HEAD",)), sep.join([pick(rnd, STATUS), *fields])


def proxy_response_view(method: bytes, raw: bytes) -> tuple[bytes, bytes, bool] | None:
    """What the proxy would send the client: (head as passed on, the body as counted, whether the connection goes
    on after it); None if the proxy answers 502 instead."""
    try:
        head = parse_response(raw, method)
    except HttpError:
        return None
    if type(head) is tuple:  # the common answer, as the proxy's fast path takes it
        keep_alive, length, data = head
        return data, b"y" * length, keep_alive
    if head.status < 200 or head.status == 101:
        return None  # interim and upgrade answers: the connection code handles them, not framing
    framer = head.framer
    if framer.kind == Framer.LENGTH:
        body = b"y" * framer.remaining
    elif framer.kind == Framer.CHUNKED:
        body = CHUNKED_BODY
    elif framer.kind == Framer.UNTIL_CLOSE:
        body = b"until close"
    else:
        body = b""
    return head.data, body, head.keep_alive and framer.kind != Framer.UNTIL_CLOSE


def h11_client_view(method: bytes, stream: bytes, goes_on: bool) -> list[tuple[int, bytes]] | None:
    """The responses h11 (httpx's parser) reads from ``stream``: (status, body) each, then ``FAILED`` if it failed
    after reading a head; None if it refuses the first head."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "app.example")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(stream)
    if not goes_on:
        conn.receive_data(b"")  # the proxy closes the client's connection after this response
    out: list[tuple[int, bytes]] = []
    status, body = 0, b""
    try:
        while len(out) < 2:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                status, body = event.status_code, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                out.append((status, body))
                if conn.our_state is h11.MUST_CLOSE or not goes_on:
                    break
                conn.start_next_cycle()
                conn.send(h11.Request(method="GET", target="/next", headers=[("Host", "app.example")]))
                conn.send(h11.EndOfMessage())
            else:
                break
    except h11.RemoteProtocolError:
        if not out and not status:
            return None  # refused the head: the client sees an error, not another response
        out.append(FAILED)  # accepted the head, then failed on what followed it: framed differently
    return out


def test_what_the_proxy_passes_back_is_framed_the_same_by_the_clients_parser() -> None:
    rnd = random.Random(SEED)
    accepted = agreed = 0
    for _ in range(CASES):
        method, raw = random_response(rnd)
        view = proxy_response_view(method, raw)
        if view is None:
            continue
        accepted += 1
        data, body, goes_on = view
        seen = h11_client_view(method, data + body + (NEXT_RESPONSE if goes_on else b""), goes_on)
        if seen is None:
            continue  # the client refuses the answer: nothing of it is read as another response
        content = b"abc" if body is CHUNKED_BODY else body
        assert seen[:1] == [(int(raw[9:12]), content)], (method, raw, seen)
        if goes_on:
            assert seen[1:] in ([], [(299, b"next")]), (method, raw, seen)
        agreed += 1
    assert accepted > CASES // 10 and agreed > accepted // 2, (accepted, agreed)


# ---- chunked request bodies: the proxy's Framer must end a body exactly where the app's parser ends it ----------

CHUNKED_HEAD = b"POST /upload HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked"
SIZES = ([b"%x", b"%X", b"0%x"], [b"0x%x", b"+%x", b" %x", b"%x ", b"%x\t", b"", b"-%x", b"%x\r", b"1%016x"])
EXTENSIONS = ([b"", b"", b"", b";a", b";a=b", b';a="q"'], [b" ;a", b";", b';a="\r\n"', b";a\x00", b"; a = b"])
ENDS = ([b"\r\n"], [b"\n", b"\r", b"", b"X\r\n"])
TRAILERS = ([b"", b"", b"X-T: v\r\n"], [b"X-T : v\r\n", b"X-T: a\r\n b\r\n", b"X-T: a\rb\r\n", b"X-T: \x0b\r\n"])


def random_chunked_body(rnd: random.Random) -> bytes:
    """A chunked body, most of it well formed, some chunk lines, sizes, lengths or line ends hostile."""
    out = b""
    for _ in range(rnd.choice((0, 1, 1, 2, 3))):
        size = rnd.choice((1, 3, 10, 16))
        spelling = pick(rnd, SIZES)
        data = b"d" * (size if rnd.random() > HOSTILE / 2 else size + rnd.choice((-1, 1)))
        out += (spelling % size if b"%" in spelling else spelling) + pick(rnd, EXTENSIONS) + pick(rnd, ENDS)
        out += data + pick(rnd, ENDS)
    return out + b"0" + pick(rnd, EXTENSIONS) + pick(rnd, ENDS) + pick(rnd, TRAILERS) + pick(rnd, ENDS)


@pytest.mark.parametrize("reference", [h11_view, llhttp_view], ids=["h11", "llhttp"])
def test_a_chunked_body_ends_where_the_upstreams_parser_ends_it(reference) -> None:  # noqa: ANN001
    rnd = random.Random(SEED)
    ended = agreed = 0
    for _ in range(CASES):
        body = random_chunked_body(rnd)
        data = body + NEXT  # what the client sends: a chunked body, then another request
        framer = Framer(Framer.CHUNKED)
        try:
            n = framer.feed(data)
        except HttpError:
            continue  # the proxy closes both connections at the bad line: nothing more reaches the app
        if not framer.done:
            continue  # the proxy is still waiting for the body's end
        ended += 1
        stream = rewritten(RequestHead(CHUNKED_HEAD)) + data[:n]
        rest = data[n:]  # what the proxy reads as the next request head (empty lines before one are skipped)
        rest = rest.lstrip(b"\r\n") if rest[:2] == b"\r\n" else rest
        end = rest.find(b"\r\n\r\n")
        try:
            second = RequestHead(rest[:end]) if end >= 0 else None
        except HttpError:
            second = None  # the proxy answers 400 and closes: nothing more reaches the app
        if second is not None:
            stream += rewritten(second)
        seen = reference(stream)
        if seen is None or seen == [FAILED]:
            continue  # the app refused the body before its end: it answers 400 and closes
        assert seen[0][:3] == (b"POST", b"/upload", b"app.example"), (body, seen)
        if second is None:
            assert len(seen) == 1, (body, seen)
        else:
            assert [m[:3] for m in seen[1:]] == [(second.method, second.target, second.host)], (body, seen)
        agreed += 1
    assert ended > CASES // 10 and agreed > ended // 2, (ended, agreed)

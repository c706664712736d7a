"""Just enough HTTP/1.1 to find message boundaries and rewrite heads; bodies pass through untouched.

The proxy parses every request head on a connection (routing, auth and X-Forwarded-* are per request) and every
response head (to know when a response ends, to spot ``101 Switching Protocols``, to drop hop-by-hop headers).
Bodies are never decoded: :class:`Framer` only counts bytes (``Content-Length``) or walks chunk sizes
(``chunked``), so chunked uploads, SSE and streamed downloads pass through as they arrive.

The parser is strict on purpose: the upstream parses the same bytes again, and any message the two could read
differently (request smuggling) is refused with 400: both Content-Length and Transfer-Encoding, differing or
malformed Content-Length, a transfer coding other than ``chunked``, obsolete line folding, bare CR or LF, a
control byte in a field value, whitespace before a header colon, a request target that is not origin-form. A
response head is parsed again by the client (or by a load balancer that pools its connections to us), so the same
syntax rules hold for it, and a malformed status line or field line from the app becomes a 502.

The syntax pass over each head (request or status line, every field line, the fields the proxy acts on, and the
whole answer for the common response head) is the proxy's largest per-request cost, so it runs in C where the
install compiled ``spaces/proxy/_scan.c``: ``_scan_request_py`` and ``_scan_response_py`` below are the rules, and
tests/proxy/test_http1_scan.py holds the C scanner to the same answers on every head it tries. Everything after
that pass is this module's Python.

Per request, substring tests use ``bytes.find``, not ``in``: CPython's ``bytes.__contains__`` first tries its
argument as an integer and formats, raises and discards a TypeError before it searches (about 90 ns each).
"""

from __future__ import annotations

import re

_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
#: a field value: visible bytes, obs-text, spaces and tabs; no control byte (RFC 9110 5.5). Some servers read a
#: vertical tab or form feed as blank space ("Content-Length: 5\x0b"), others refuse the line: a value the two
#: could read differently never passes
_VALUE = rb"[^\x00-\x08\x0a-\x1f\x7f]*"
_TOKEN_LINE = re.compile(_TCHAR + rb"+:" + _VALUE + rb"\Z")
#: a whole header block validated in one C-speed match: name ":" value lines, CRLF separated, no folding
_HEADER_BLOCK = re.compile(_TCHAR + rb"+:" + _VALUE + rb"(?:\r\n" + _TCHAR + rb"+:" + _VALUE + rb")*\Z")
#: a response's status line: version, three digits, then a space and a reason, or nothing
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] [0-9]{3}(?: " + _VALUE + rb")?\Z")
_METHOD = re.compile(_TCHAR + rb"+\Z")
_HOST = re.compile(rb"(?:[A-Za-z0-9\-._~]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\Z")
#: a chunk-size line: hex digits, then nothing or ";" and extensions (ignored, but like a field value: no control
#: byte, which parsers split or refuse differently)
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:;" + _VALUE + rb")?\Z")
_DIGITS = re.compile(rb"[0-9]{1,18}\Z")

#: request headers never forwarded: hop-by-hop (RFC 9110 7.6.1) plus everything we set or must not leak.
#: Searched as b"\r\n" + name in the lowercased head (names cannot contain spaces: validated).
_DROP_EXACT = frozenset({b"connection", b"keep-alive", b"te", b"trailer", b"upgrade", b"forwarded", b"x-real-ip",
                         b"x-hf-authorization"})
_DROP_PREFIXES = (b"proxy-", b"x-forwarded-", b"x-spaces-")
#: never dropped because a Connection header lists them (a classic way to make a proxy desynchronise)
_PROTECTED = frozenset({b"host", b"content-length", b"transfer-encoding", b"authorization", b"cookie", b"close",
                        b"keep-alive", b"upgrade", b""})
_NOTHING: set[bytes] = set()
_COMMON_METHODS = frozenset({b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"})
_RESP_DROP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate"})


class HttpError(Exception):
    """A malformed message: answered with ``status`` and the connection is closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Framer:
    """Counts the bytes of one message body. ``feed(data)`` returns how many of ``data`` belong to the body."""

    __slots__ = ("kind", "remaining", "done", "_state", "_line")

    NONE, LENGTH, CHUNKED, UNTIL_CLOSE = 0, 1, 2, 3
    _SIZE, _DATA, _CRLF, _TRAILER = 0, 1, 2, 3

    def __init__(self, kind: int, length: int = 0) -> None:
        self.kind = kind
        self.remaining = length
        self.done = kind == 0 or (kind == 1 and length == 0)  # NONE, or LENGTH 0
        self._state = 0  # _SIZE
        self._line = b""

    def feed(self, data: bytes) -> int:
        kind = self.kind
        if kind == Framer.LENGTH:
            n = len(data)
            if n < self.remaining:
                self.remaining -= n
                return n
            n = self.remaining
            self.remaining = 0
            self.done = True
            return n
        if kind == Framer.UNTIL_CLOSE:
            return len(data)
        if kind == Framer.NONE:
            return 0
        return self._chunked(data)

    def _chunked(self, data: bytes) -> int:
        i, n = 0, len(data)
        while i < n:
            state = self._state
            if state == Framer._DATA:
                take = min(self.remaining, n - i)
                i += take
                self.remaining -= take
                if self.remaining == 0:
                    self._state, self.remaining = Framer._CRLF, 2
            elif state == Framer._CRLF:
                got = data[i:i + self.remaining]
                if got != b"\r\n"[2 - self.remaining:2 - self.remaining + len(got)]:
                    raise HttpError(400, "malformed chunked body: chunk data not followed by CRLF")
                i += len(got)
                self.remaining -= len(got)
                if self.remaining == 0:
                    self._state = Framer._SIZE
            else:
                j = data.find(b"\n", i)
                if j < 0:
                    self._line += data[i:]
                    if len(self._line) > 8192:
                        raise HttpError(400, "malformed chunked body: chunk line too long")
                    return n
                line, self._line, i = self._line + data[i:j + 1], b"", j + 1
                if len(line) < 2 or line[-2] != 13 or line.find(b"\r", 0, -2) >= 0:
                    raise HttpError(400, "malformed chunked body: bare LF or CR")
                line = line[:-2]
                if state == Framer._SIZE:
                    m = _CHUNK_LINE.match(line)
                    if m is None:
                        raise HttpError(400, "malformed chunked body: bad chunk size")
                    size_n = int(m.group(1), 16)
                    if size_n:
                        self._state, self.remaining = Framer._DATA, size_n
                    else:
                        self._state = Framer._TRAILER
                elif line:
                    if not _TOKEN_LINE.match(line):
                        raise HttpError(400, "malformed chunked body: bad trailer field")
                else:
                    self.done = True
                    return i
        return i


#: the framer of every message without a body: never fed, never changes, so one instance serves them all
NO_BODY = Framer(Framer.NONE)

#: one pass over a lowercased request head for every field name the proxy acts on (names are validated tokens,
#: so "\r\n" + name + ":" can only be the start of a field line). The common request has only ``host``.
_REQ_SPECIAL = re.compile(rb"\r\n(host|content-length|transfer-encoding|connection|" + b"|".join(
    sorted(_DROP_EXACT - {b"connection"})) + rb"|(?:" + b"|".join(_DROP_PREFIXES) + rb")" + _TCHAR + rb"*):")
_JUST_HOST = [b"host"]
_NOT_DROPPED = frozenset((b"host", b"content-length", b"transfer-encoding"))
#: what may follow a field value in a head: the next line, or the end of the head
_LINE_ENDS = (b"\r\n", b"")
#: the same for a response head, with each value (up to the end of its line, leading blanks skipped); a Set-Cookie
#: takes a head off the quick path so that the proxy can check an app's cookies (spaces/proxy/cookies.py)
_RESP_SPECIAL = re.compile(rb"\r\n(connection|keep-alive|transfer-encoding|content-length|set-cookie|proxy-"
                           + _TCHAR + rb"*):[ \t]*([^\r]*)")


class _Head:
    """Header lookup without building a dict: ``low`` is the whole head lowercased, so ``low.find(b"\r\nname:")``
    finds a field at the same offset in ``raw`` (lowercasing ASCII keeps every offset)."""

    __slots__ = ("raw", "low")

    def get(self, name: bytes) -> bytes | None:
        key = b"\r\n" + name + b":"
        i = self.low.find(key)
        if i < 0:
            return None
        start = i + len(key)
        end = self.raw.find(b"\r", start)
        return self.raw[start:end if end >= 0 else len(self.raw)].strip(b" \t")

    def getall(self, name: bytes) -> list[bytes]:
        key, raw, low = b"\r\n" + name + b":", self.raw, self.low
        out, i = [], low.find(key)
        while i >= 0:
            start = i + len(key)
            end = raw.find(b"\r", start)
            out.append(raw[start:end if end >= 0 else len(raw)].strip(b" \t"))
            i = low.find(key, start)
        return out


def _drop_lines(block: bytes, exact: frozenset[bytes] | set[bytes], prefixes: tuple[bytes, ...] = ()) -> bytes:
    kept = []
    for line in block.split(b"\r\n"):
        name = line[:line.find(b":")].lower()
        if name in exact or (prefixes and name.startswith(prefixes)):
            continue
        kept.append(line)
    return b"\r\n".join(kept)


def _content_length(values: list[bytes]) -> int:
    first = values[0].strip(b" \t")
    for v in values:
        for part in v.split(b","):
            if part.strip(b" \t") != first or not _DIGITS.match(first):
                raise HttpError(400, "invalid or conflicting Content-Length")
    return int(first)


def _chunked_only(values: list[bytes]) -> None:
    codings = [c.strip(b" \t").lower() for v in values for c in v.split(b",")]
    if b"" in codings:  # an empty field or element: "chunked" to us, but one that servers read differently
        raise HttpError(400, "an empty Transfer-Encoding")
    if codings != [b"chunked"]:
        raise HttpError(501, "only 'Transfer-Encoding: chunked' is supported")


def _tokens(values: list[bytes] | None) -> set[bytes]:
    tokens: set[bytes] = set()
    for v in values or ():
        tokens.update(t.strip().lower() for t in v.split(b","))
    return tokens


#: valid Host values seen lately -> their host name (a proxy sees the same few hosts over and over)
_hostnames: dict[bytes, bytes] = {}


def _hostname(host: bytes) -> bytes:
    """Validate a (lowercased) Host value and return its name without the port; remembered in ``_hostnames``."""
    if not _HOST.match(host):
        raise HttpError(400, "exactly one valid Host header is required")
    if host[:1] == b"[":
        name = host[:host.index(b"]") + 1]
    else:
        colon = host.find(b":")
        name = host if colon < 0 else host[:colon]
    if len(_hostnames) >= 4096:  # bounded: a client inventing hosts cannot grow it
        _hostnames.clear()
    _hostnames[host] = name
    return name


def _scan_request_py(raw: bytes) -> tuple[bytes, bytes, bytes, bytes, list[bytes], bytes | None]:
    """The syntax pass over a request head (without its final CRLFCRLF): the request line and every field line
    checked, or HttpError. Returns ``(method, target, version, low, found, host)``: ``low`` is the head lowercased,
    ``found`` the lowercased names of the fields the proxy acts on (``_REQ_SPECIAL``) in order, ``host`` the first
    Host value stripped of blanks (lowercased), or None. ``_scan.scan_request`` is the same in C."""
    line_end = raw.find(b"\r\n")
    start = raw if line_end < 0 else raw[:line_end]
    parts = start.split(b" ")
    if len(parts) != 3 or start.find(b"\n") >= 0 or start.find(b"\r") >= 0:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version != b"HTTP/1.1" and version != b"HTTP/1.0":
        raise HttpError(505 if version.startswith(b"HTTP/") else 400, "only HTTP/1.0 and HTTP/1.1 are served")
    if method not in _COMMON_METHODS and (not _METHOD.match(method) or method == b"CONNECT"):
        raise HttpError(400 if method != b"CONNECT" else 405, "unsupported request method")
    if not (target[:1] == b"/" or (target == b"*" and method == b"OPTIONS")) or target.find(b"#") >= 0:
        raise HttpError(400, "the request target must be a path (origin-form)")
    if line_end >= 0 and not _HEADER_BLOCK.match(raw, line_end + 2):
        raise HttpError(400, "malformed header line (bare CR/LF, folding or a space before ':')")
    low = raw.lower()
    found = _REQ_SPECIAL.findall(low)
    host = None
    if found:
        i = low.find(b"\r\nhost:")
        if i >= 0:
            end = low.find(b"\r", i + 7)
            host = low[i + 7:end if end >= 0 else len(low)].strip(b" \t")
    return method, target, version, low, found, host


def _without_line(raw: bytes, at: int) -> bytes:
    """``raw`` without the field line whose CRLF starts at ``at``."""
    end = raw.find(b"\r\n", at + 2)
    return raw[:at] + (raw[end:] if end >= 0 else b"")


def _scan_response_py(raw: bytes) -> tuple[int, bytes, tuple[bool, int, bytes] | None]:
    """The syntax pass over a response head: the status line and every field line checked, or HttpError(502).
    Returns ``(status, low, quick)``. ``quick`` answers the common head, whose only fields the proxy acts on
    (``_RESP_SPECIAL``) are at most one valid Content-Length and one ``Connection: keep-alive``:
    ``(keep_alive, length or -1, the head to send on)``, that Connection line cut out; None for any other head.
    ``_scan.scan_response`` is the same in C."""
    line_end = raw.find(b"\r\n")
    if not _STATUS_LINE.match(raw, 0, line_end if line_end >= 0 else len(raw)) or (
            line_end >= 0 and not _HEADER_BLOCK.match(raw, line_end + 2)):
        raise HttpError(502, "the app sent a malformed response")
    low = raw.lower()
    cl = conn = None
    for name, value in _RESP_SPECIAL.findall(low):
        if name == b"content-length" and cl is None:
            cl = value.rstrip(b" \t")
        elif name == b"connection" and conn is None:
            conn = value.rstrip(b" \t")
        else:
            return int(raw[9:12]), low, None
    if (conn is not None and conn != b"keep-alive") or (cl is not None and not _DIGITS.match(cl)):
        return int(raw[9:12]), low, None
    if conn is None:
        data = raw + b"\r\n\r\n"  # nothing to drop: the bytes as received
    else:  # cut the hop-by-hop "Connection: keep-alive" line out
        data = _without_line(raw, low.find(b"\r\nconnection:")) + b"\r\n\r\n"
    keep_alive = conn is not None or raw[5:8] == b"1.1"
    return int(raw[9:12]), low, (keep_alive, -1 if cl is None else int(cl), data)


try:  # the same syntax pass compiled (spaces/proxy/_scan.c); the Python above serves where it was not built
    from spaces.proxy import _scan
except ImportError:  # pragma: no cover - depends on the install
    _scan = None
    _scan_request, _scan_response = _scan_request_py, _scan_response_py
else:
    _scan.set_error(HttpError)
    _scan_request, _scan_response = _scan.scan_request, _scan.scan_response


class RequestHead(_Head):
    """One parsed request head: what routing, auth and framing need; everything else stays raw bytes."""

    __slots__ = ("method", "target", "version", "host", "hostname", "framer", "keep_alive", "upgrade", "listed",
                 "drops", "found")

    def __init__(self, raw: bytes) -> None:
        method, target, version, low, found, host = _scan_request(raw)
        self.method, self.target, self.version, self.raw, self.low = method, target, version, raw, low
        self.found = found
        if found == _JUST_HOST:  # the common request: a Host, no body, nothing to drop
            name = _hostnames.get(host)
            self.host, self.hostname = host, name if name is not None else _hostname(host)
            self.framer = NO_BODY
            self.upgrade = None
            self.listed = _NOTHING
            self.drops = False
            self.keep_alive = version == b"HTTP/1.1"
            return

        # ``found`` lists every field line the checks below look at (their names are exact, lowercased)
        hosts = found.count(b"host")
        if hosts == 0:
            if version == b"HTTP/1.1":
                raise HttpError(400, "a Host header is required")
            self.host = self.hostname = b""
        elif hosts > 1:
            raise HttpError(400, "exactly one valid Host header is required")
        else:
            name = _hostnames.get(host)
            self.host, self.hostname = host, name if name is not None else _hostname(host)

        if b"transfer-encoding" in found:
            if b"content-length" in found:
                raise HttpError(400, "both Content-Length and Transfer-Encoding")
            if version == b"HTTP/1.0":
                raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
            _chunked_only(self.getall(b"transfer-encoding"))
            self.framer = Framer(Framer.CHUNKED)
        elif b"content-length" in found:
            n = _content_length(self.getall(b"content-length"))
            self.framer = Framer(Framer.LENGTH, n) if n else NO_BODY
        else:
            self.framer = NO_BODY

        self.upgrade = None
        self.listed: set[bytes] = _NOTHING
        #: any header to drop present at all? (the common request has none: its block is forwarded as is)
        self.drops = drops = not _NOT_DROPPED.issuperset(found)
        if drops and b"connection" in found:
            at = low.find(b"\r\nconnection: keep-alive")
            if at >= 0 and low[at + 24:at + 26] in _LINE_ENDS and found.count(b"connection") == 1:
                tokens = _KEEP_ALIVE  # what HTTP/1.1 clients (browsers, httpx, gradio_client) send
            else:
                tokens = _tokens(self.getall(b"connection"))
            self.keep_alive = b"close" not in tokens and (version == b"HTTP/1.1" or b"keep-alive" in tokens)
            if b"upgrade" in tokens and version == b"HTTP/1.1":
                self.upgrade = self.get(b"upgrade")
            self.listed = tokens - _PROTECTED  # other headers the client names as hop-by-hop (rare)
        else:
            self.keep_alive = version == b"HTTP/1.1"

    def forward(self, *, client_ip: str, proto: bytes, strip_auth: bool, cookie_name: bytes | None,
                trust_forwarded: bool) -> bytes:
        """The head to send upstream: hop-by-hop headers dropped (and Authorization when ``strip_auth``), our
        cookie removed, X-Forwarded-For/Proto/Host set (appended to the client's only when ``trust_forwarded``)."""
        raw = self.raw
        if not (strip_auth or trust_forwarded or self.listed or not self.host) and (
                cookie_name is None or raw.find(cookie_name) < 0):
            # at most hop-by-hop fields to take out, all of them in ``found``: the head as received (its request
            # line is exactly method, target and version joined by single spaces) with their lines cut out, plus
            # our headers. The general rules below give the same bytes (tests/proxy/test_http1_differential.py)
            if self.drops:
                raw = _cut_lines(raw, self.low, self.found)
                if self.upgrade is not None:  # (only ever set with a Connection field, so with drops)
                    raw += b"\r\nConnection: upgrade\r\nUpgrade: " + self.upgrade
            return b"".join((raw, b"\r\nX-Forwarded-For: ", client_ip.encode(), b"\r\nX-Forwarded-Proto: ", proto,
                             b"\r\nX-Forwarded-Host: ", self.host, b"\r\n\r\n"))
        line_end = raw.find(b"\r\n")
        block = b"" if line_end < 0 else raw[line_end + 2:]
        if self.drops or (strip_auth and self.low.find(b"\r\nauthorization:") >= 0):
            exact = _DROP_EXACT | self.listed if self.listed else _DROP_EXACT
            if strip_auth:
                exact = exact | {b"authorization"}
            block = _drop_lines(block, exact, _DROP_PREFIXES)
        if cookie_name is not None and block.find(cookie_name) >= 0 and self.low.find(b"\r\ncookie:") >= 0:
            block = _drop_cookie(block, cookie_name)
        xff = client_ip.encode()
        if trust_forwarded:
            prior = self.getall(b"x-forwarded-for")
            if prior:
                xff = b", ".join(prior) + b", " + xff
            proto = (self.getall(b"x-forwarded-proto") or [proto])[-1]
        parts = [self.method, b" ", self.target, b" ", self.version, b"\r\n"]
        if block:
            parts += (block, b"\r\n")
        if self.upgrade is not None:
            parts += (b"Connection: upgrade\r\nUpgrade: ", self.upgrade, b"\r\n")
        parts += (b"X-Forwarded-For: ", xff, b"\r\nX-Forwarded-Proto: ", proto)
        if self.host:
            parts += (b"\r\nX-Forwarded-Host: ", self.host)
        parts.append(b"\r\n\r\n")
        return b"".join(parts)


def _cut_lines(raw: bytes, low: bytes, found: list[bytes]) -> bytes:
    """``raw`` without the field lines named in ``found`` that are never forwarded (all but Host and framing).

    ``found`` lists those lines in the order of the head, so each one is the next line of its name after the line
    cut before it."""
    kept, at = [], 0
    for name in found:
        if name in _NOT_DROPPED:
            continue
        i = low.find(b"\r\n" + name + b":", at)
        end = low.find(b"\r\n", i + 2)
        kept.append(raw[at:i])
        at = end if end >= 0 else len(raw)
    kept.append(raw[at:])
    return b"".join(kept)


def _drop_cookie(block: bytes, cookie_name: bytes) -> bytes:
    kept = []
    for line in block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"cookie":
            crumbs = [c for c in value.split(b";") if c.strip().split(b"=", 1)[0] != cookie_name]
            if not any(c.strip() for c in crumbs):
                continue
            line = name + b":" + b";".join(crumbs)
        kept.append(line)
    return b"\r\n".join(kept)


def cookie_value(req: RequestHead, cookie_name: bytes) -> str | None:
    for v in req.getall(b"cookie"):
        for c in v.split(b";"):
            k, _, val = c.strip().partition(b"=")
            if k == cookie_name and val:
                return val.decode("latin-1")
    return None


_KEEP_ALIVE = frozenset({b"keep-alive"})


def _value_at(low: bytes, start: int) -> bytes:
    end = low.find(b"\r", start)
    return low[start:end if end >= 0 else len(low)].strip(b" \t")


def parse_response(raw: bytes, request_method: bytes) -> ResponseHead | tuple[bool, int, bytes]:
    """A response head (without its final CRLFCRLF) for a request made with ``request_method``, for the proxy.

    The common final answer comes back as the tuple ``(keep_alive, length, head to send on)``, with no object
    built for it: a status of 200 or more with a body (not 204 or 304, not for HEAD) framed by one valid
    Content-Length, whose only other field the proxy acts on is at most ``Connection: keep-alive`` (cut from the
    head). Any other head comes back as a :class:`ResponseHead`. Malformed heads raise HttpError(502) either way."""
    scanned = _scan_response(raw)
    status, _, quick = scanned
    if quick is not None and quick[1] >= 0 and status >= 200 and status != 204 and status != 304 \
            and request_method != b"HEAD":
        return quick
    return ResponseHead(raw, request_method, scanned)


class ResponseHead(_Head):
    """One parsed response head: status, how its body is framed, and the head to send to the client."""

    __slots__ = ("status", "framer", "keep_alive", "data")

    def __init__(self, raw: bytes, request_method: bytes,
                 scanned: tuple[int, bytes, tuple[bool, int, bytes] | None] | None = None) -> None:
        # held to the request rules: the client (or a load balancer pooling its connections to us) parses these
        # bytes after us, and an app must not get a head past us that the client reads differently.
        # ``scanned``: what _scan_response(raw) returned, when the caller ran it already (parse_response)
        status, low, quick = scanned or _scan_response(raw)
        self.status, self.raw, self.low = status, raw, low
        if quick is not None:  # at most one Content-Length and one "Connection: keep-alive" (nginx, uvicorn)
            self.keep_alive, length, self.data = quick
            if status < 200 or status in (204, 304) or request_method == b"HEAD":
                self.framer = NO_BODY
            elif length >= 0:
                self.framer = Framer(Framer.LENGTH, length)
            else:
                self.framer = Framer(Framer.UNTIL_CLOSE)
            return
        conn_at = low.find(b"\r\nconnection:")
        if conn_at < 0:
            tokens = _NOTHING
        elif _value_at(low, conn_at + 13) == b"keep-alive" and low.find(b"\r\nconnection:", conn_at + 13) < 0:
            tokens = _KEEP_ALIVE  # what nginx and most servers send: skip the general parse
        else:
            tokens = _tokens(self.getall(b"connection"))
        self.keep_alive = b"close" not in tokens and (raw[5:8] == b"1.1" or b"keep-alive" in tokens)
        drop_cl = False
        if status < 200 or status in (204, 304) or request_method == b"HEAD":
            self.framer = NO_BODY
        elif low.find(b"\r\ntransfer-encoding:") >= 0:
            te = self.getall(b"transfer-encoding")
            if te[-1].lower().rsplit(b",", 1)[-1].strip() == b"chunked":
                self.framer = Framer(Framer.CHUNKED)
            else:
                self.framer = Framer(Framer.UNTIL_CLOSE)
            drop_cl = low.find(b"\r\ncontent-length:") >= 0
        elif (cl_at := low.find(b"\r\ncontent-length:")) >= 0:
            value = _value_at(low, cl_at + 17)
            if _DIGITS.match(value) and low.find(b"\r\ncontent-length:", cl_at + 17) < 0:
                n = int(value)
            else:
                try:
                    n = _content_length(self.getall(b"content-length"))
                except HttpError:
                    raise HttpError(502, "the app sent an invalid Content-Length") from None
            self.framer = Framer(Framer.LENGTH, n)
        else:
            self.framer = Framer(Framer.UNTIL_CLOSE)
        if status == 101:
            self.data = raw + b"\r\n\r\n"
            return
        proxy_at = low.find(b"\r\nproxy-")
        ka_at = low.find(b"\r\nkeep-alive:")
        if conn_at < 0 and ka_at < 0 and proxy_at < 0 and not drop_cl:
            self.data = raw + b"\r\n\r\n"  # nothing to drop: send the bytes as received
            return
        listed = tokens - _PROTECTED
        if listed or drop_cl or proxy_at >= 0 or low.find(b"\r\nconnection:", conn_at + 1) >= 0 or (
                ka_at >= 0 and low.find(b"\r\nkeep-alive:", ka_at + 1) >= 0):
            line_end = raw.find(b"\r\n")
            exact = _RESP_DROP | listed
            if drop_cl:
                exact = exact | {b"content-length"}
            block = _drop_lines(raw[line_end + 2:], exact) if line_end >= 0 else b""
            self.data = raw[:line_end] + b"\r\n" + block + b"\r\n\r\n" if block else raw[:line_end] + b"\r\n\r\n"
            return
        # common case: a single "Connection: keep-alive" (and maybe "Keep-Alive: ..."): cut those lines out
        for at in sorted((x for x in (conn_at, ka_at) if x >= 0), reverse=True):
            raw = _without_line(raw, at)
        self.data = raw + b"\r\n\r\n"

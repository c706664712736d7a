"""Moving bytes: one client connection, and at most one upstream connection behind it at a time.

Lifecycle of a client connection (``ClientConnection.state``):

``HEAD``    waiting for a request head. Each head is parsed and ``Gate.decide`` routes it: a ``Target`` is
            forwarded, a ``Reply`` is written here, a coroutine (auth / wake) moves the connection to ``BUSY``;
``BUSY``    waiting for that coroutine; bytes that arrive meanwhile are buffered (reading pauses past 1 MiB);
``BODY``    the request head went upstream; body bytes are forwarded as they arrive, counted by a ``Framer``;
``WAIT``    the request is complete; the response streams back. Pipelined bytes wait in the buffer, so every
            request is routed, authorised and given X-Forwarded-* headers of its own (a load balancer that pools
            connections may send requests for different Spaces and users on one connection);
``TUNNEL``  after ``101 Switching Protocols`` (WebSocket): raw bytes both ways until either side closes;
``DRAIN``   the app answered before the request body was all read (a 401 or 413 before an upload): what the
            client still sends is read and dropped for a while (lingering close), so it reads the answer instead
            of a connection reset;
``CLOSED``  done.

The upstream connection is reused for the next request while it goes to the same place, the app kept it alive
and it has been idle for less than ``upstream_idle_timeout``. An app closes an idle connection on a timer of its
own (a thawed Space fires every timer that passed while it was frozen), so a request can cross the close: one
that is safe to repeat (idempotent method, no body) is then sent once more on a new connection instead of failing
with 502, as browsers and nginx do. Back-pressure: when one side's write buffer is full, the other side stops
reading. There is no timeout on a stream with traffic; the server's idle sweep closes connections that moved no
byte for the configured time, a request head not complete ``header_timeout`` after its first byte (a client that
trickles a head a byte at a time), and a connection waiting for a head ``keepalive_timeout`` after the last
exchange (bytes that start no head, such as blank lines, do not count as activity).
Every chunk moving on a connection to a Space stamps its activity (a dict store) for the sleeper.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from time import monotonic
from typing import TYPE_CHECKING, Any

from spaces.proxy import pages
from spaces.proxy.gate import Reply, Target
from spaces.proxy.http1 import Framer, HttpError, RequestHead, ResponseHead, parse_response

if TYPE_CHECKING:
    from spaces.proxy.server import ProxyServer
    from spaces.proxy.settings import ProxySettings

log = logging.getLogger("spaces.proxy")

HEAD, BUSY, BODY, WAIT, TUNNEL, CLOSED, DRAIN = range(7)
R_IDLE, R_HEAD, R_BODY = range(3)
READ_LIMIT = 1 << 20  # bytes buffered from a client before we stop reading it
WRITE_HIGH = 1 << 19  # transport write buffer high-water mark
MAX_RESPONSE_HEAD = 1 << 18
# RFC 9110 9.2.2: requests a client may repeat when the connection closed before any answer came
REPLAYABLE = frozenset((b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"))
# reasons the client's reading is paused (bit flags)
P_UPSTREAM_FULL, P_BUFFER_FULL, P_CONNECTING = 1, 2, 4
LINGER_IDLE = 5.0  # a lingering close ends once the client sent nothing for this long (nginx's lingering_timeout)


class ClientConnection(asyncio.Protocol):
    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.gate = server.gate
        self.stamps = server.activity.stamps
        self.transport: Any = None
        self.client_ip = ""
        self.state = HEAD
        self.buf = b""
        self.req: RequestHead | None = None
        self.framer: Framer | None = None
        self.up: Upstream | None = None
        self.sid: str | None = None  # Space of the current exchange (activity stamps)
        self.req_done = self.resp_done = False
        self.close_after = False
        self.write_blocked = False
        self.paused = 0
        self.task: asyncio.Task | None = None
        self.tunnel_to: Any = None  # the upstream transport once the connection is a tunnel
        self.replay: bytes | None = None  # the head to send again if a reused upstream closes without answering
        self.last_io = self.idle_since = self.head_at = monotonic()
        # idle_since: since when the connection waits for a request; head_at: when the head now in buf began
        self.address: str | None = None  # the key counted in server.per_address

    # ---- asyncio callbacks ------------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if isinstance(peer, tuple) else "127.0.0.1"
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        server = self.server
        if server.per_address is not None:
            key = address_key(self.client_ip)
            held = server.per_address.get(key, 0)
            if held >= server.max_per_address:
                log.debug("refused a connection: %s holds %d already", key, held)
                self.state = CLOSED
                transport.write(server.too_many)
                transport.close()
                return
            server.per_address[key] = held + 1
            self.address = key
        server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = CLOSED
        self.server.connections.discard(self)
        if self.address is not None:
            counts, key = self.server.per_address, self.address
            self.address = None
            held = counts.get(key, 1) - 1
            if held > 0:
                counts[key] = held
            else:
                counts.pop(key, None)
        if self.up is not None:
            self.up.close()
            self.up = None
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        now = monotonic()
        self.last_io = now
        state = self.state
        if self.sid is not None:
            self.stamps[self.sid] = now
        if state == TUNNEL:
            self.tunnel_to.write(data)
        elif state == BODY:
            self._body(data)
        elif state == HEAD:
            if self.buf:
                self.buf += data
            else:
                self.buf = data
                self.head_at = now
            self._process()
        elif state != CLOSED:
            if state == DRAIN:
                return
            self.buf = self.buf + data if self.buf else data
            if len(self.buf) > READ_LIMIT:
                self._pause(P_BUFFER_FULL)

    def eof_received(self) -> bool:
        if self.state in (BODY, WAIT, BUSY):
            self.close_after = True  # half-closed after sending a request: answer it, then close
            return True
        return False

    def pause_writing(self) -> None:
        self.write_blocked = True
        if self.up is not None:
            self.up.pause_reading()

    def resume_writing(self) -> None:
        self.write_blocked = False
        if self.up is not None:
            self.up.resume_reading()

    # ---- requests ---------------------------------------------------------------------------------------
    def _process(self) -> None:
        while self.state == HEAD:
            buf = self.buf
            if buf[:2] == b"\r\n":
                buf = buf.lstrip(b"\r\n")  # RFC 9112 2.2: ignore empty lines before a request line
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                if len(buf) > self.server.settings.max_head_bytes:
                    self._fail(431, "The request head is too large.")
                return
            self.buf = buf[end + 4:]
            try:
                req = RequestHead(buf[:end])
            except HttpError as exc:
                self._fail(exc.status, exc.message)
                return
            try:
                decision = self.gate.decide(req)
            except Exception:
                log.exception("routing failed")
                decision = Reply(pages.response(500, b"internal proxy error", content_type="text/plain"), False)
            kind = type(decision)
            if kind is Target:
                self._forward(req, decision)  # type: ignore[arg-type]
            elif kind is Reply:
                self._reply(req, decision)  # type: ignore[arg-type]
            else:
                self.state = BUSY
                self.task = asyncio.get_running_loop().create_task(self._decide_later(req, decision))

    async def _decide_later(self, req: RequestHead, pending: Any) -> None:
        try:
            decision = await pending
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("routing failed")
            decision = Reply(pages.response(500, b"internal proxy error", content_type="text/plain"), False)
        self.task = None
        if self.state != BUSY:
            return
        self.state = HEAD
        if type(decision) is Target:
            self._forward(req, decision)
        else:
            self._reply(req, decision)
        if self.state == HEAD:
            self._unpause(P_BUFFER_FULL)
            self._wait_head()
            self._process()

    def _reply(self, req: RequestHead, reply: Reply) -> None:
        self.transport.write(reply.data)
        if not (reply.keep_alive and req.keep_alive) or self.close_after:
            self._close()
        else:
            self._wait_head()

    def _wait_head(self) -> None:
        """Back to waiting for a request: the keep-alive clock starts, and a head already buffered (pipelined)
        is timed from now."""
        self.idle_since = self.head_at = self.last_io

    def _forward(self, req: RequestHead, target: Target) -> None:
        server = self.server
        self.req = req
        now = monotonic()
        sid = self.sid = target.space_id
        if sid is not None:
            self.stamps[sid] = now
        head = req.forward(client_ip=self.client_ip, proto=server.proto, strip_auth=target.strip_auth,
                           cookie_name=server.cookie, trust_forwarded=server.trust_forwarded)
        if not req.keep_alive:
            self.close_after = True
        framer = req.framer
        up = self.up
        if up is None or up.key != target.key or up.closed or now - up.idle_since > server.upstream_idle:
            if up is not None:
                up.close()
            up = self.up = Upstream(self, target)
            up.connect()
            self.replay = None
        else:
            self.replay = head if framer.done and req.method in REPLAYABLE else None
        up.expect(req)
        up.write(head)
        self.resp_done = False
        if framer.done:
            self.req_done = True
            self.state = WAIT
        else:
            self.req_done = False
            self.framer = framer
            self.state = BODY
            if self.buf:
                data, self.buf = self.buf, b""
                self._body(data)

    def _body(self, data: bytes) -> None:
        framer = self.framer
        try:
            n = framer.feed(data)  # type: ignore[union-attr]
        except HttpError:
            self._close()  # the head went upstream already: a malformed body can only end the connection
            return
        up = self.up
        if n == len(data):
            up.write(data)  # type: ignore[union-attr]
        else:
            up.write(data[:n])  # type: ignore[union-attr]
            self.buf = data[n:]
        if framer.done:  # type: ignore[union-attr]
            self.req_done = True
            self.state = WAIT
            if self.resp_done:
                self._exchange_done()

    # ---- callbacks from the upstream side ---------------------------------------------------------------
    def response_done(self, keep_upstream: bool) -> None:
        self.resp_done = True
        if not keep_upstream and self.up is not None:
            up, self.up = self.up, None
            up.close()
        if not self.req_done:
            self._linger()  # the app answered before reading the whole body (e.g. 401, 413): finish by closing
        else:
            self._exchange_done()

    def _linger(self) -> None:
        """Close after an answer that came before the whole request body: stop sending (FIN after the answer),
        then read and drop what the client still sends until it closes, goes quiet for LINGER_IDLE seconds or
        ``lingering_time`` passes. Closing at once would reset the connection while the client is still
        sending, and a reset can destroy the answer before the client reads it."""
        if self.up is not None:
            up, self.up = self.up, None
            up.close()
        if self.server.settings.lingering_time <= 0:
            self._close()
            return
        self.state = DRAIN
        self.buf = b""
        self.head_at = monotonic()
        if self.paused:
            self.paused = 0
            self.transport.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()

    def _exchange_done(self) -> None:
        self.req = None
        self.framer = None
        if self.close_after:
            self._close()
            return
        self.state = HEAD
        self._unpause(P_BUFFER_FULL)
        self.idle_since = self.last_io
        if self.buf:
            self.head_at = self.last_io
            self._process()

    def upgraded(self, head: bytes, rest: bytes) -> None:
        self.state = TUNNEL
        self.tunnel_to = self.up.transport  # type: ignore[union-attr]
        self.transport.write(head)
        if rest:
            self.transport.write(rest)
        if self.buf:
            data, self.buf = self.buf, b""
            self.up.write(data)  # type: ignore[union-attr]
        self._unpause(P_BUFFER_FULL)

    def upstream_failed(self, up: Upstream, exc: BaseException) -> None:
        if up is not self.up or self.state == CLOSED:
            return
        self.up = None
        if isinstance(exc, asyncio.TimeoutError):
            reply = Reply(pages.response(504, pages.json_body(error="The app did not accept a connection in time."),
                                         content_type="application/json"), False)
        else:
            reply = self.gate.upstream_dead(self.req, up.target)
        self.transport.write(reply.data)
        self._close()

    def upstream_lost(self, up: Upstream) -> None:
        if up is not self.up or self.state == CLOSED:
            return
        self.up = None
        if self.state == TUNNEL:
            self._close()
        elif up.rstate == R_IDLE and self.state in (HEAD, BUSY):
            return  # the app closed an idle keep-alive connection: the next request opens a new one
        elif up.rstate == R_BODY and up.framer is not None and up.framer.kind == Framer.UNTIL_CLOSE:
            self.close_after = True
            self.resp_done = True
            self._close()
        elif up.rstate == R_HEAD and not up.answered and self.replay is not None and self.req is not None:
            head, self.replay = self.replay, None
            up = self.up = Upstream(self, up.target)
            up.connect()
            up.expect(self.req)
            up.write(head)
        elif up.rstate == R_HEAD and not up.answered:
            self.transport.write(pages.response(502, pages.json_body(error="The app closed the connection "
                                                                     "without answering."),
                                                content_type="application/json", close=True))
            self._close()
        else:
            self._close()  # cut in the middle of a response: the client must see it cut too

    def bad_upstream(self, up: Upstream, message: str) -> None:
        if up.rstate == R_HEAD and not up.answered:
            self.transport.write(pages.response(502, pages.json_body(error=message),
                                                content_type="application/json", close=True))
        self._close()

    # ---- plumbing ---------------------------------------------------------------------------------------
    def _pause(self, reason: int) -> None:
        if not self.paused and self.state != CLOSED:
            self.transport.pause_reading()
        self.paused |= reason

    def _unpause(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and self.state != CLOSED:
                self.transport.resume_reading()

    def _fail(self, status: int, message: str) -> None:
        self.transport.write(pages.response(status, pages.json_body(error=message), content_type="application/json",
                                            close=True))
        self._close()

    def _close(self) -> None:
        if self.state == CLOSED:
            return
        self.state = CLOSED
        self.transport.close()  # flushes what is buffered first
        if self.up is not None:
            self.up.close()
            self.up = None

    def idle_expired(self, now: float, s: ProxySettings) -> bool:
        state = self.state
        if state == HEAD:
            if self.buf:  # a head has begun: it has header_timeout to be complete, however it trickles
                return 0 < s.header_timeout < now - self.head_at
            return now - self.idle_since > s.keepalive_timeout
        if state == BUSY:
            return False  # holding for a wake: bounded by wake_timeout
        if state == DRAIN:
            return now - self.head_at > s.lingering_time or now - self.last_io > LINGER_IDLE
        return 0 < s.stream_idle_timeout < now - self.last_io

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Upstream(asyncio.Protocol):
    """The connection to an app (or the hub) behind one client connection; parses response heads only."""

    def __init__(self, client: ClientConnection, target: Target) -> None:
        self.client = client
        self.target = target
        self.key = target.key
        self.transport: Any = None
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.closed = False
        self.rstate = R_IDLE
        self.buf = b""
        self.framer: Framer | None = None
        self.method = b"GET"
        self.upgrade = False
        self.answered = False  # a response head (final or 1xx) was sent to the client for this request
        self.keep = True
        self.tunnel = False
        self.reading_paused = False
        self.idle_since = monotonic()  # when the last exchange on this connection ended

    def connect(self) -> None:
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        addr = self.target.addr
        try:
            if isinstance(addr, str):
                coro = loop.create_unix_connection(lambda: self, addr)
            else:
                coro = loop.create_connection(lambda: self, addr[0], addr[1])
            await asyncio.wait_for(coro, self.client.server.settings.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            if not self.closed:
                self.closed = True
                self.client.upstream_failed(self, exc)

    def expect(self, req: RequestHead) -> None:
        self.rstate = R_HEAD
        self.method = req.method
        self.upgrade = req.upgrade is not None
        self.answered = False

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self.transport is not None:
            self.transport.write(data)
        else:
            self.pending.append(data)
            self.pending_size += len(data)
            if self.pending_size > READ_LIMIT:
                self.client._pause(P_CONNECTING)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()

    # ---- asyncio callbacks ------------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        if self.closed:  # the client left while we were connecting
            transport.close()
            return
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        if self.pending:
            transport.writelines(self.pending)
            self.pending = []
        self.client._unpause(P_CONNECTING)
        if self.client.write_blocked:
            self.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client.upstream_lost(self)

    def pause_writing(self) -> None:
        self.client._pause(P_UPSTREAM_FULL)

    def resume_writing(self) -> None:
        self.client._unpause(P_UPSTREAM_FULL)

    def data_received(self, data: bytes) -> None:
        client = self.client
        now = monotonic()
        client.last_io = now
        if client.sid is not None:
            client.stamps[client.sid] = now
        if self.tunnel:
            client.transport.write(data)
        elif self.rstate == R_BODY:
            self._body(data)
        elif self.rstate == R_HEAD:
            self._head(self.buf + data if self.buf else data)
        else:
            self.keep = False  # bytes nobody asked for: never reuse this connection
            self.close()

    def _head(self, buf: bytes) -> None:
        client = self.client
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                if len(buf) > MAX_RESPONSE_HEAD:
                    client.bad_upstream(self, "The app sent a response head that is too large.")
                return
            try:
                head = parse_response(buf[:end], self.method)
            except HttpError as exc:
                client.bad_upstream(self, exc.message)
                return
            buf = buf[end + 4:]
            self.buf = b""
            if type(head) is tuple:  # the common final answer, framed by a Content-Length (no objects built)
                self.answered = True
                self.keep, length, data = head
                if len(buf) >= length:  # all of the body came with the head: one send, and the exchange is over
                    client.transport.write(data + buf[:length] if length else data)
                    self._done(len(buf) > length)
                    return
                self.framer = Framer(Framer.LENGTH, length - len(buf))
                self.rstate = R_BODY
                client.transport.write(data + buf if buf else data)
                return
            if self.target.space_id is not None and head.low.find(b"\r\nset-cookie:") >= 0:
                req = client.req
                head.data = client.server.cookies.filter_head(head.data, req.hostname if req else b"",
                                                              self.target.space_id)
            if head.status == 101:
                if not self.upgrade:
                    client.bad_upstream(self, "The app switched protocols without being asked.")
                    return
                self.tunnel = True
                self.rstate = R_IDLE
                client.upgraded(head.data, buf)
                return
            self.answered = True
            if head.status < 200:
                client.transport.write(head.data)
                continue  # 100 Continue, 103 Early Hints: the final response follows
            self.keep = head.keep_alive
            framer = self.framer = head.framer
            if framer.kind == Framer.UNTIL_CLOSE:
                client.close_after = True  # the body ends when the app closes: so must the client's
            if framer.done:
                client.transport.write(head.data)
                self._done(bool(buf))
                return
            self.rstate = R_BODY
            if not buf:
                client.transport.write(head.data)
                return
            try:
                n = framer.feed(buf)
            except HttpError as exc:
                client.bad_upstream(self, exc.message)
                return
            # head and the body bytes that came with it leave in one send: a syscall is most of a small
            # response's cost
            client.transport.write(head.data + (buf if n == len(buf) else buf[:n]))
            if framer.done:
                self._done(n < len(buf))
            return

    def _body(self, data: bytes) -> None:
        try:
            n = self.framer.feed(data)  # type: ignore[union-attr]
        except HttpError as exc:
            self.client.bad_upstream(self, exc.message)
            return
        self.client.transport.write(data if n == len(data) else data[:n])
        if self.framer.done:  # type: ignore[union-attr]
            self._done(n < len(data))

    def _done(self, extra: bool) -> None:
        self.rstate = R_IDLE
        self.idle_since = self.client.last_io  # stamped by data_received for the bytes that ended the response
        if extra:
            self.keep = False
        self.client.response_done(self.keep and not self.closed)


def address_key(ip: str) -> str:
    """What the per-address cap counts: an IPv4 address; an IPv6 address's /64 (one host usually has a whole
    /64 to pick addresses from); an IPv4-mapped IPv6 address as the IPv4 address it is."""
    if ip.find(":") < 0:
        return ip
    try:
        addr = ipaddress.IPv6Address(ip.partition("%")[0])
    except ValueError:
        return ip
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return addr.exploded[:19] + "::/64"

"""How fast can a Python proxy be on this machine, and what do its checks cost? Side by side with nginx, one run.

``bench/proxy.py`` compares our proxy with nginx and configurable-http-proxy. This script explains the gap to
nginx: it runs three reference proxies, written here for the measurement and never used by the product, on the
same event loop (uvloop) and against the same upstream:

``tunnel``  routes on the first request head by Host, then moves bytes both ways untouched (the design the proxy
            issue cites). Later requests on a connection are neither parsed nor routed: unsafe behind a load
            balancer that pools connections, and it forwards whatever X-Forwarded-* and credentials they carry.
``lean``    finds every request and response head and frames bodies by Content-Length, routes each request and
            adds X-Forwarded-*, but validates nothing.
``checked`` ``lean`` plus the checks a safe proxy cannot drop, each with our own patterns from
            ``spaces.proxy.http1``: request line, header block (bare CR/LF, folding, blank before a colon), one
            scan for framing and hop-by-hop fields, Host syntax; the response's status line, header block and
            framing scan, ``Connection: keep-alive`` cut from it; and the activity stamp.

The three handle only what wrk sends (GET, no body) and answers with Content-Length; they are yardsticks, not
proxies. Prints requests/s at 1 and 50 connections (medians of interleaved rounds) and each one's ratio to nginx.

    .venv/bin/python bench/proxy_ceiling.py [--duration 3] [--rounds 3] [--connections 1,50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
from pathlib import Path
from time import monotonic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy import bench_processes, free_port, start, start_nginx, wait_port, wrk  # noqa: E402  (bench/proxy.py)

from spaces.proxy.http1 import (  # noqa: E402
    _HEADER_BLOCK, _HOST, _METHOD, _REQ_SPECIAL, _RESP_SPECIAL, _STATUS_LINE,
)

ROUTES: dict[bytes, tuple[str, int]] = {}


# ---- tunnel: route once, then bytes both ways --------------------------------------------------------------
class TunnelClient(asyncio.Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.t, self.up, self.pending, self.routed = transport, None, b"", False

    def data_received(self, data: bytes) -> None:
        if self.up is not None:
            self.up.write(data)
            return
        self.pending += data
        end = self.pending.find(b"\r\n\r\n")
        if end < 0 or self.routed:
            return
        self.routed = True
        low = self.pending[:end].lower()
        i = low.find(b"\r\nhost:")
        j = low.find(b"\r", i + 7)
        label = low[i + 7:j if j > 0 else end].strip(b" \t").split(b".", 1)[0]
        asyncio.get_running_loop().create_task(self._connect(ROUTES[label]))

    async def _connect(self, addr: tuple[str, int]) -> None:
        up, _ = await asyncio.get_running_loop().create_connection(lambda: TunnelUp(self.t), *addr)
        up.write(self.pending)
        self.up, self.pending = up, b""

    def connection_lost(self, exc: Exception | None) -> None:
        if self.up is not None:
            self.up.close()


class TunnelUp(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


# ---- lean and checked: every head parsed, one exchange at a time -------------------------------------------
class LeanClient(asyncio.Protocol):
    checked = False

    def __init__(self) -> None:
        self.buf = b""
        self.up: LeanUp | None = None
        self.busy = False
        self.stamps: dict[bytes, float] = {}

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.t = transport
        self.ip = transport.get_extra_info("peername")[0].encode()

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        if not self.busy:
            self.next()

    def next(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head, self.buf = self.buf[:end], self.buf[end + 4:]
        low = head.lower()
        i = low.find(b"\r\nhost:")
        j = low.find(b"\r", i + 7)
        host = low[i + 7:j if j > 0 else len(low)].strip(b" \t")
        if self.checked and not self._valid(head, low, host):
            self.t.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.t.close()
            return
        label = host.split(b".", 1)[0]
        if self.checked:
            self.stamps[label] = monotonic()
        out = b"".join((head, b"\r\nX-Forwarded-For: ", self.ip, b"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ",
                        host, b"\r\n\r\n"))
        self.busy = True
        if self.up is None:
            self.up = LeanUp(self)
            asyncio.get_running_loop().create_task(self.up.connect(ROUTES[label], out))
        else:
            self.up.t.write(out)

    @staticmethod
    def _valid(head: bytes, low: bytes, host: bytes) -> bool:
        line_end = head.find(b"\r\n")
        parts = head[:line_end].split(b" ")
        return (len(parts) == 3 and parts[2] in (b"HTTP/1.1", b"HTTP/1.0") and _METHOD.match(parts[0]) is not None
                and parts[1][:1] == b"/" and _HEADER_BLOCK.match(head, line_end + 2) is not None
                and _REQ_SPECIAL.findall(low) == [b"host"] and _HOST.match(host) is not None)

    def done(self) -> None:
        self.busy = False
        if self.buf:
            self.next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.up is not None and self.up.t is not None:
            self.up.t.close()


class LeanUp(asyncio.Protocol):
    def __init__(self, client: LeanClient) -> None:
        self.client, self.t, self.buf, self.left, self.last = client, None, b"", -1, False

    async def connect(self, addr: tuple[str, int], first: bytes) -> None:
        await asyncio.get_running_loop().create_connection(lambda: self, *addr)
        self.t.write(first)

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        client = self.client
        if self.left > 0:  # inside a body
            client.t.write(data)
            self.left -= len(data)
        else:
            self.buf = self.buf + data if self.buf else data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, body = self.buf[:end], self.buf[end + 4:]
            self.buf = b""
            low = head.lower()
            i = low.find(b"\r\ncontent-length:")
            j = low.find(b"\r", i + 17)
            self.left = int(low[i + 17:j if j > 0 else len(low)]) - len(body)
            # the upstream ends a keep-alive connection now and then (nginx: every 1,000 requests)
            self.last = low.find(b"\r\nconnection: close") >= 0
            if client.checked:
                line_end = head.find(b"\r\n")
                # framing and hop-by-hop fields: this probe serves only one Content-Length and "Connection"
                special = [name for name, _ in _RESP_SPECIAL.findall(low)]
                if (not _STATUS_LINE.match(head, 0, line_end) or not _HEADER_BLOCK.match(head, line_end + 2)
                        or special.count(b"content-length") != 1 or len(special) > 2):
                    client.t.close()
                    return
                at = low.find(b"\r\nconnection:")
                if at >= 0:
                    end_line = head.find(b"\r\n", at + 2)
                    head = head[:at] + (head[end_line:] if end_line >= 0 else b"")
            client.t.write(head + b"\r\n\r\n" + body)
        if self.left <= 0:
            if self.last:
                client.up = None
                self.t.close()
            client.done()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.up is self:
            self.client.up = None


class CheckedClient(LeanClient):
    checked = True


PROBES = {"tunnel": TunnelClient, "lean": LeanClient, "checked": CheckedClient}


def serve_probe(kind: str, port: int, upstream: int) -> None:
    import uvloop

    ROUTES[b"demo"] = ("127.0.0.1", upstream)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(PROBES[kind], "127.0.0.1", port, backlog=4096)
        await server.serve_forever()

    uvloop.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", default="1,50")
    parser.add_argument("--serve", choices=sorted(PROBES), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_probe(args.serve, args.port, args.upstream)
        return 0
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or not shutil.which("wrk"):
        print("nginx or wrk is missing: apt-get install nginx-light wrk", file=sys.stderr)
        return 2
    with bench_processes("bench-ceiling-") as (work, procs):
        up, ng = start_nginx(nginx, work, "1", procs)
        targets = [("nginx (1 worker)", ng)]
        for kind in ("tunnel", "lean", "checked"):
            port = free_port()
            procs.append(start([sys.executable, __file__, "--serve", kind, "--port", str(port), "--upstream", str(up)]))
            targets.append((f"probe: {kind}", port))
        port = free_port()
        procs.append(start([sys.executable, "-m", "spaces.proxy", "--listen", f"127.0.0.1:{port}", "--hub",
                            f"127.0.0.1:{up}", "--apps-domain", "localhost", "--route", f"demo=127.0.0.1:{up}",
                            "--loop", "uvloop"], cwd=Path(__file__).resolve().parent.parent))
        targets.append(("spaces proxy", port))
        for _, p in targets:
            wait_port(p)
        for _, p in targets:
            res = wrk(p, 10, 1, "demo.localhost")
            if res["rps"] == 0 or res["errors"]:
                print(f"target on port {p} does not answer 200", file=sys.stderr)
                return 1
        conns = [int(c) for c in args.connections.split(",")]
        runs: dict[tuple[str, int], list[float]] = {}
        errors: dict[str, int] = {}
        for _ in range(args.rounds):
            for c in conns:
                for name, p in targets:
                    res = wrk(p, c, args.duration, "demo.localhost")
                    runs.setdefault((name, c), []).append(res["rps"])
                    errors[name] = errors.get(name, 0) + int(res["errors"])
        print(f"\nwrk -t1 -d{args.duration:g}s x {args.rounds} interleaved rounds (median req/s), "
              f"{os.cpu_count()} cores")
        print(f"{'target':22} " + " ".join(f"{'c=' + str(c):>10} {'vs nginx':>9}" for c in conns) + "  non-2xx")
        for name, _ in targets:
            cells = []
            for c in conns:
                rps = statistics.median(runs[(name, c)])
                cells.append(f"{rps:>10.0f} {rps / statistics.median(runs[(targets[0][0], c)]):>8.2f}x")
            print(f"{name:22} " + " ".join(cells) + f"  {errors[name]:>7}")
        return 0


if __name__ == "__main__":
    sys.exit(main())

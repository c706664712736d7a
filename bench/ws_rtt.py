"""WebSocket round trip: direct vs through our proxy vs through nginx, to the same echo server, one run.

An echo server (``websockets``, in a subprocess) answers each message; one client sends ``--count`` small messages
one after another on one connection per path and records each round trip, in ``--rounds`` interleaved rounds.
Prints p50/p99 and the ratio of ours to nginx's (goal: no slower than nginx). Loopback only; bounded count.

    .venv/bin/python bench/ws_rtt.py [--count 3000] [--size 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from proxy import bench_processes, event_loops, free_port, nginx_conf, start, wait_port  # noqa: E402

ECHO = """
import asyncio, sys
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None):
        await asyncio.Future()

asyncio.run(main())
"""


def measure(url: str, count: int, size: int, host: str | None) -> list[float]:
    import socket

    from websockets.sync.client import connect

    sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])))
    if host:
        url = f"ws://{host}/ws"
    payload = b"x" * size
    out = []
    with connect(url, sock=sock, compression=None) as ws:
        for _ in range(200):  # warm up
            ws.send(payload)
            ws.recv()
        for _ in range(count):
            t0 = time.perf_counter()
            ws.send(payload)
            ws.recv()
            out.append((time.perf_counter() - t0) * 1e6)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all paths")
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with bench_processes("bench-ws-") as (work, procs):
        echo_port = free_port()
        (work / "echo.py").write_text(ECHO)
        procs.append(start([sys.executable, str(work / "echo.py"), str(echo_port)]))
        ng = free_port()
        procs.append(start([nginx, "-c", str(nginx_conf(work, f"""
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{ listen 127.0.0.1:{ng}; location / {{ proxy_pass http://127.0.0.1:{echo_port};
    proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade; proxy_set_header Host $host; proxy_read_timeout 1h; }} }}""",
                                                             "1"))]))
        paths: list[tuple[str, int, str | None]] = [("direct", echo_port, None), ("nginx (1 worker)", ng, None)]
        loops = event_loops()
        for loop in loops:
            port = free_port()
            procs.append(start([sys.executable, "-m", "spaces.proxy", "--listen", f"127.0.0.1:{port}",
                                "--hub", f"127.0.0.1:{echo_port}", "--route", f"echo=127.0.0.1:{echo_port}",
                                "--loop", loop]))
            paths.append((f"spaces proxy ({loop})", port, f"echo.localhost:{port}"))
        for _, port, _ in paths:
            wait_port(port)
        # interleaved rounds, all samples pooled: a machine that drifts slows every path alike, not the last one
        results: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for name, port, host in paths:
                results.setdefault(name, []).extend(
                    measure(f"ws://127.0.0.1:{port}/ws", args.count, args.size, host))
        print(f"\nWebSocket echo round trip, {args.rounds} x {args.count} messages of {args.size} B, one connection "
              f"per path and round (µs)\n")
        print(f"{'path':26} {'p50':>8} {'p99':>8} {'mean':>8}")
        for name, rtts in results.items():
            q = statistics.quantiles(rtts, n=100)
            print(f"{name:26} {q[49]:>8.1f} {q[98]:>8.1f} {statistics.fmean(rtts):>8.1f}")
        ng50 = statistics.median(results["nginx (1 worker)"])
        print("\nratio to nginx p50 (goal <= 1.0):")
        for loop in loops:
            name = f"spaces proxy ({loop})"
            print(f"  {name:24} {statistics.median(results[name]) / ng50:.2f}x")
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU instructions per proxied exchange, counted by callgrind: our proxy's code vs the reference probes.

Throughput on a shared 2-core VM moves by 10-30% between runs (CPU steal); an instruction count does not, so
this is the figure to compare before and after a change to the proxy's hot path. Each subject handles one small
GET and its 200 answer (nginx's headers, ``Content-Length: 2``) with fake transports, so no I/O is counted:

``spaces``         ``spaces.proxy.connection``: ClientConnection + Upstream, routing through the real Gate;
``spaces-pyscan``  the same with the head syntax pass in Python (an install without a C compiler);
``spaces-httpx``   the same as ``spaces`` for the request head httpx and gradio_client send (four more fields,
                   ``Connection: keep-alive`` among them, which the proxy must take out) instead of wrk's;
``checked``        ``bench/proxy_ceiling.py``'s probe with only the checks a safe proxy keeps;
``lean``           the same probe without checks.

Per-exchange count = (instructions for N2 exchanges - for N1) / (N2 - N1): start-up cancels out.
Needs valgrind (Debian package ``valgrind``).

    .venv/bin/python bench/proxy_instructions.py [--n1 5000] [--n2 15000] [--baseline DIR]

``--baseline DIR`` adds ``baseline``: ``spaces`` with the proxy of another checkout (e.g. ``git archive main | tar
-x -C DIR``, its C scanner built or copied there), so a change's cost on the hot path is one ratio of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REQUEST = b"GET / HTTP/1.1\r\nHost: demo.localhost\r\nUser-Agent: wrk\r\n\r\n"
HTTPX_REQUEST = (b"GET / HTTP/1.1\r\nHost: demo.localhost\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\n"
                 b"Connection: keep-alive\r\nUser-Agent: python-httpx/0.28.1\r\n\r\n")
KINDS = ("spaces", "spaces-pyscan", "spaces-httpx", "checked", "lean")
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 17:00:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")


class FakeTransport:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def writelines(self, items: list[bytes]) -> None:
        self.out.extend(items)

    def get_extra_info(self, key: str) -> tuple[str, int]:
        return ("127.0.0.1", 40000)

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def _spaces_pair(python_scanner: bool) -> tuple[object, object, FakeTransport]:
    if python_scanner:  # hide the C scanner: http1.py takes its Python fallback
        sys.modules["spaces.proxy._scan"] = None  # type: ignore[assignment]
    from spaces.proxy import http1
    from spaces.proxy.connection import ClientConnection
    from spaces.proxy.routes import MemoryRouteTable, Route
    from spaces.proxy.server import ProxyServer
    from spaces.proxy.settings import ProxySettings

    async def never(*_: object) -> None:
        return None

    if (http1._scan is None) != python_scanner:
        raise SystemExit("the C head scanner is not built: reinstall the project (uv pip install -e .)")
    routes = MemoryRouteTable()
    routes.put("demo", Route("demo", ("127.0.0.1", 9), "running", title="demo"))
    server = ProxyServer(routes=routes, apps_domain="localhost", hub_upstream=("127.0.0.1", 9), waker=never,
                         authorize=never, on_upstream_dead=lambda _: None, settings=ProxySettings())
    client, out = ClientConnection(server), FakeTransport()
    client.connection_made(out)
    client.data_received(REQUEST)  # opens the upstream "connection": the pair is then reused, as under wrk
    client.up.connection_made(FakeTransport())
    return client, client.up, out


def _probe_pair(kind: str) -> tuple[object, object, FakeTransport]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import proxy_ceiling as probes

    client, out = probes.PROBES[kind](), FakeTransport()
    client.connection_made(out)
    up = client.up = probes.LeanUp(client)
    up.connection_made(FakeTransport())
    client.data_received(REQUEST)
    return client, up, out


def harness(kind: str, n: int) -> None:
    """Run ``n`` exchanges after one warm-up exchange; the last answer must have reached the client."""
    async def main() -> None:
        if kind.startswith("spaces"):
            client, up, out = _spaces_pair(python_scanner=kind == "spaces-pyscan")
        else:
            client, up, out = _probe_pair(kind)
        request = HTTPX_REQUEST if kind == "spaces-httpx" else REQUEST
        up.data_received(RESPONSE)
        for _ in range(n):
            if len(out.out) > 1000:
                out.out.clear()
            client.data_received(request)
            up.data_received(RESPONSE)
        assert out.out[-1].endswith(b"\r\n\r\nok"), out.out[-1]

    asyncio.run(main())


def count(kind: str, n: int, work: Path, baseline: Path | None = None) -> int:
    env = {**os.environ, "PYTHONPATH": str(baseline.resolve())} if kind == "baseline" and baseline else None
    res = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.{kind}.{n}",
                          sys.executable, __file__, "--harness", "spaces" if kind == "baseline" else kind, str(n)],
                         capture_output=True, text=True, env=env)
    found = re.search(r"Collected : (\d+)", res.stderr)
    if res.returncode != 0 or not found:
        raise SystemExit(f"callgrind run failed for {kind} ({n}):\n{res.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n1", type=int, default=5000)
    parser.add_argument("--n2", type=int, default=15000)
    parser.add_argument("--baseline", type=Path, help="also count the proxy of the checkout in this folder")
    parser.add_argument("--harness", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.harness:
        harness(args.harness[0], int(args.harness[1]))
        return 0
    if not shutil.which("valgrind"):
        print("valgrind is missing: apt-get install valgrind", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp:
        kinds = (*KINDS, "baseline") if args.baseline else KINDS
        per = {kind: (count(kind, args.n2, Path(tmp), args.baseline) - count(kind, args.n1, Path(tmp), args.baseline))
               / (args.n2 - args.n1) for kind in kinds}
    print(f"\ninstructions per exchange (callgrind, {args.n2} - {args.n1} exchanges, no I/O)")
    for kind, n in per.items():
        print(f"  {kind:14} {n:>9,.0f}   {n / per['spaces']:.2f}x ours")
    return 0


if __name__ == "__main__":
    sys.exit(main())

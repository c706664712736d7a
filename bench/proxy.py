"""Proxy throughput and added latency: our proxy vs direct vs nginx vs configurable-http-proxy, one run.

All proxies forward to the same fast upstream (nginx answering ``return 200 "ok"``) on loopback; wrk drives each
at 1 and 50 connections for a short bounded run. Prints requests/s, p50/p99 latency, latency added over direct,
and the ratios the proxy issue sets as goals (>= 0.8x nginx's throughput, >= 4x chp's, p99 <= 0.1x chp's).

Needs: ``nginx`` and ``wrk`` (Debian packages), configurable-http-proxy from npm (installed into /tmp/chp on first
use; skipped if npm cannot), uvloop optional (both event loops are measured when it is installed).

    .venv/bin/python bench/proxy.py [--duration 3] [--rounds 3] [--connections 1,50] [--client wrk|httpx]
                                    [--python-scanner] [--baseline DIR]

nginx runs with one worker, like our proxy's one process; ``--nginx-workers auto`` gives it every core.
``--client httpx`` sends the request head httpx and gradio_client send (browsers send the same kinds of fields)
instead of wrk's, which has only a Host. ``--python-scanner`` adds our proxy once more with its head syntax pass
in Python instead of C (the fallback of an install without a C compiler), to measure what the C scanner gives.
``--baseline DIR`` adds the proxy of another checkout (e.g. ``git archive main | tar -x -C DIR``, with its C
scanner built there) on each event loop, and prints ours against it: a change's cost in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

CHP_DIR = Path("/tmp/chp")
#: our proxy with the C head scanner hidden: http1.py then takes its Python fallback
PYTHON_SCANNER = ("import runpy, sys; sys.modules['spaces.proxy._scan'] = None; "
                  "runpy.run_module('spaces.proxy', run_name='__main__', alter_sys=True)")


def event_loops() -> list[str]:
    """The event loops the proxy can run on here: uvloop when installed, and asyncio."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return ["asyncio"]
    return ["uvloop", "asyncio"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def nginx_conf(workdir: Path, body: str, workers: str) -> Path:
    conf = workdir / f"nginx-{abs(hash(body))}.conf"
    temp = " ".join(f"{k}_temp_path {workdir};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf.write_text(f"""
worker_processes {workers};
pid {conf}.pid;
error_log {workdir}/error.log;
daemon off;
events {{ worker_connections 4096; }}
http {{
  access_log off; {temp}
  {body}
}}
""")
    return conf


def start_nginx(nginx: str, work: Path, workers: str, procs: list[subprocess.Popen]) -> tuple[int, int]:
    """Start the fast upstream (nginx answering ``return 200 "ok"``, one worker) and nginx proxying to it with
    ``workers`` workers; both are appended to ``procs``. Returns (upstream port, nginx proxy port)."""
    up, ng = free_port(), free_port()
    procs.append(start([nginx, "-c", str(nginx_conf(
        work, f'server {{ listen 127.0.0.1:{up}; location / {{ return 200 "ok"; }} }}', "1"))]))
    procs.append(start([nginx, "-c", str(nginx_conf(work, f"""
  upstream app {{ server 127.0.0.1:{up}; keepalive 128; }}
  server {{ listen 127.0.0.1:{ng}; location / {{ proxy_pass http://app; proxy_http_version 1.1;
    proxy_set_header Connection ""; proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $remote_addr; proxy_buffering off; }} }}""", workers))]))
    return up, ng


@contextlib.contextmanager
def bench_processes(prefix: str) -> Iterator[tuple[Path, list[subprocess.Popen]]]:
    """A scratch folder and a list for the processes a bench starts: on leaving, every process is stopped
    (last started first) and the folder removed, whatever happened."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    procs: list[subprocess.Popen] = []
    try:
        yield work, procs
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def start(cmd: list[str], **kw) -> subprocess.Popen:  # noqa: ANN003
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, **kw)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def ensure_chp() -> Path | None:
    binary = CHP_DIR / "node_modules/.bin/configurable-http-proxy"
    if not binary.exists() and shutil.which("npm"):
        CHP_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "configurable-http-proxy"], cwd=CHP_DIR, check=False)
    return binary if binary.exists() else None


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


#: the fields httpx (so gradio_client) sends besides Host; wrk's own request has none of them
HTTPX_FIELDS = ("Accept: */*", "Accept-Encoding: gzip, deflate", "Connection: keep-alive",
                "User-Agent: python-httpx/0.28.1")


def wrk(port: int, connections: int, duration: float, host: str | None,
        fields: tuple[str, ...] = ()) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", f"http://127.0.0.1:{port}/"]
    cmd[1:1] = [arg for field in ((f"Host: {host}",) if host else ()) + fields for arg in ("-H", field)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = re.search(r"\s50%\s+(\S+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "p50": _ms(p50.group(1)) if p50 else float("nan"),
            "p99": _ms(p99.group(1)) if p99 else float("nan"), "errors": int(errors.group(1)) if errors else 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--connections", default="1,50")
    parser.add_argument("--nginx-workers", default="1")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per target; medians are printed")
    parser.add_argument("--client", choices=("wrk", "httpx"), default="wrk",
                        help="the request head: wrk's (Host only) or the one httpx and gradio_client send")
    parser.add_argument("--python-scanner", action="store_true",
                        help="also run our proxy with its head syntax pass in Python (no C scanner)")
    parser.add_argument("--baseline", type=Path, help="also run the proxy of the checkout in this folder")
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} is missing: apt-get install nginx-light wrk", file=sys.stderr)
            return 2
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with bench_processes("bench-proxy-") as (work, procs):
        up, ng = start_nginx(nginx, work, args.nginx_workers, procs)
        targets: list[tuple[str, int, str | None]] = [("direct", up, None),
                                                      (f"nginx ({args.nginx_workers} worker)", ng, None)]

        chp = ensure_chp()
        if chp is not None:
            cp = free_port()
            procs.append(start([str(chp), "--ip", "127.0.0.1", "--port", str(cp), "--api-ip", "127.0.0.1",
                                "--api-port", str(free_port()), "--default-target", f"http://127.0.0.1:{up}",
                                "--log-level", "error"]))
            targets.append(("configurable-http-proxy", cp, None))
        else:
            print("configurable-http-proxy unavailable (npm install failed): skipped", file=sys.stderr)

        loops = event_loops()
        ours_all = [(f"spaces proxy ({loop})", loop, ["-m", "spaces.proxy"]) for loop in loops]
        if args.python_scanner:
            ours_all.append((f"spaces proxy ({loops[0]}, Py scan)", loops[0], ["-c", PYTHON_SCANNER]))
        baselines = [(f"baseline proxy ({loop})", loop, ["-m", "spaces.proxy"]) for loop in loops] \
            if args.baseline else []
        for name, loop, how in ours_all + baselines:
            port = free_port()
            env = {**os.environ, "PYTHONPATH": str(args.baseline.resolve())} if name.startswith("baseline") else None
            procs.append(start([sys.executable, *how, "--listen", f"127.0.0.1:{port}",
                                "--hub", f"127.0.0.1:{up}", "--apps-domain", "localhost",
                                "--route", f"demo=127.0.0.1:{up}", "--loop", loop], env=env))
            targets.append((name, port, "demo.localhost"))

        fields = HTTPX_FIELDS if args.client == "httpx" else ()
        for _, port, _ in targets:
            wait_port(port)
        for _, port, host in targets:  # warm up: connections, JIT-less caches, page faults
            wrk(port, 10, 1, host, fields)

        conns = [int(c) for c in args.connections.split(",")]
        # interleaved rounds, median per figure: a busy machine slows whichever target runs at that moment
        rounds: dict[tuple[str, int], list[dict[str, float]]] = {}
        for _ in range(args.rounds):
            for c in conns:
                for name, port, host in targets:
                    rounds.setdefault((name, c), []).append(wrk(port, c, args.duration, host, fields))
        results = {key: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for key, runs in rounds.items()}

        print(f"\nwrk -t1 -d{args.duration:g}s x {args.rounds} interleaved rounds (medians), upstream nginx 'return 200', loopback, {os.cpu_count()} cores\n")
        print(f"{'target':30} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'+p99 ms':>8} {'non2xx':>6}")
        for c in conns:
            base = results[("direct", c)]
            for name, _, _ in targets:
                r = results[(name, c)]
                print(f"{name:30} {c:>5} {r['rps']:>9.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} "
                      f"{r['p50'] - base['p50']:>8.3f} {r['p99'] - base['p99']:>8.3f} {r['errors']:>6}")
        print("\nratios (goal: >= 0.8x nginx req/s, >= 4x chp req/s, p99 <= 0.1x chp p99)")
        ng_name = targets[1][0]
        for ours, _, _ in ours_all:
            for c in conns:
                r = results[(ours, c)]
                line = f"  {ours:30} c={c:<3} vs nginx: {r['rps'] / max(results[(ng_name, c)]['rps'], 1):.2f}x req/s"
                if ("configurable-http-proxy", c) in results:
                    ch = results[("configurable-http-proxy", c)]
                    line += (f"; vs chp: {r['rps'] / max(ch['rps'], 1):.2f}x req/s, "
                             f"p99 {r['p99'] / ch['p99']:.2f}x")
                print(line)
        for (ours, _, _), (base, _, _) in zip(ours_all, baselines):
            for c in conns:
                r, b = results[(ours, c)], results[(base, c)]
                print(f"  {ours:30} c={c:<3} vs {base}: {r['rps'] / max(b['rps'], 1):.3f}x req/s, "
                      f"p50 {r['p50'] / b['p50']:.3f}x, p99 {r['p99'] / b['p99']:.3f}x")
        if any(("configurable-http-proxy", c) in results for c in conns):
            # the same yardstick for nginx: tells how far the machine itself lets a proxy go
            print("reference: nginx on the same goals")
            for c in conns:
                ch, ng = results.get(("configurable-http-proxy", c)), results[(ng_name, c)]
                if ch:
                    print(f"  {ng_name:30} c={c:<3} vs chp: {ng['rps'] / max(ch['rps'], 1):.2f}x req/s, "
                          f"p99 {ng['p99'] / ch['p99']:.2f}x")
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""The start-up heap kept out of the cyclic collector (``gc.freeze``): hub API latency through the proxy, with and
without, in one run.

``spaces serve`` runs the hub and the proxy in one process and one event loop. Two servers are started side by
side, one with ``SPACES_GC_FREEZE=false`` (the reference); wrk drives ``GET /api/spaces`` through each one's proxy
port in interleaved rounds. Prints requests/s, p50/p99 and the worst latency (medians over rounds) and the ratios.

    .venv/bin/python bench/gc_freeze.py [--rounds 3] [--duration 15] [--connections 10]

Needs wrk (Debian package). Loopback only; each server is stopped at the end.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness import start_server  # noqa: E402

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    """wrk's "1.23ms" / "850.00us" / "1.02s" in milliseconds."""
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(url: str, connections: int, duration: float) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", url],
                         capture_output=True, text=True, timeout=duration + 30).stdout
    found = {key: re.search(pattern, out) for key, pattern in (
        ("rps", r"Requests/sec:\s+([\d.]+)"), ("p50", r"\s50%\s+(\S+)"), ("p99", r"\s99%\s+(\S+)"),
        ("max", r"Latency\s+\S+\s+\S+\s+(\S+)"), ("errors", r"Non-2xx or 3xx responses: (\d+)"))}
    return {"rps": float(found["rps"].group(1)) if found["rps"] else 0.0,
            **{k: _ms(found[k].group(1)) if found[k] else float("nan") for k in ("p50", "p99", "max")},
            "errors": int(found["errors"].group(1)) if found["errors"] else 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of load per server and round")
    ap.add_argument("--connections", type=int, default=10)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return 1
    servers = {"frozen heap": start_server(extra_env={"SPACES_GC_FREEZE": "true"}),
               "no gc.freeze": start_server(extra_env={"SPACES_GC_FREEZE": "false"})}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    try:
        for srv in servers.values():  # warm-up: first requests import and compile what the hub needs
            wrk(f"{srv.url}/api/spaces", args.connections, 3)
        for _ in range(args.rounds):
            for name, srv in servers.items():
                samples[name].append(wrk(f"{srv.url}/api/spaces", args.connections, args.duration))
    finally:
        for srv in servers.values():
            srv.stop()
    print(f"\nGET /api/spaces through the proxy, wrk -t1 -c{args.connections} -d{args.duration:g}s x {args.rounds} "
          "interleaved rounds (medians)\n")
    print(f"{'server':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'non2xx':>7}")
    med = {name: {k: statistics.median(s[k] for s in runs) for k in ("rps", "p50", "p99", "max", "errors")}
           for name, runs in samples.items()}
    for name, m in med.items():
        print(f"{name:<14} {m['rps']:8.0f} {m['p50']:8.2f} {m['p99']:8.2f} {m['max']:8.2f} {m['errors']:7.0f}")
    a, b = med["frozen heap"], med["no gc.freeze"]
    print(f"\nfrozen vs not: {a['rps'] / b['rps']:.2f}x req/s, p99 {a['p99'] / b['p99']:.2f}x, "
          f"worst {a['max'] / b['max']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scale-out: the roles apart (``spaces serve --roles``) against the all-in-one ``spaces serve``, in one run.

Four figures, each side by side with its reference, printed as a table of ratios:

1. **hub API requests/s** (``GET /api/spaces/{id}``, what ``space_info`` sends) through one hub process, and
   through two hub processes with one wrk on each (what a load balancer in front of them would spread), vs the
   all-in-one server (through its proxy, as users reach it);
2. **proxy requests/s** to an app (nginx answering ``return 200``: the proxy is what is measured, not an app)
   through one proxy process, and two, vs the all-in-one server's proxy;
3. **controller failover**: two ``--roles controller`` processes; the leader is killed (-9) ``--kills`` times;
   each time, seconds until the standby's ``/readyz`` answers 200 (it leads and has adopted what runs); p50, max.
   The killed one is started again as the next standby;
4. **the shared route table's cost on the proxy's hot path**: the same proxy (``spaces.proxy.server``) with its
   routes in Redis (``RedisRouteTable``: served from a local cache kept fresh by pub/sub) vs in memory.

Everything shares one PostgreSQL database (fresh), one Redis (a unique key prefix) and one data dir, on this
machine: on two cores, a second process shows where a second core goes (wrk takes its share too), not a doubling.
Rounds are interleaved and medians printed: a shared machine slows whichever target runs at that moment.

Needs root (the controller's local backend), PostgreSQL and Redis (``scripts/test`` starts both), ``wrk`` and
``nginx`` (Debian packages). Starts live servers: hold the live lock.

    flock -o /tmp/spaces-live.lock .venv/bin/python bench/scaleout.py [--duration 3] [--rounds 3]
          [--connections 50] [--kills 10]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from benchstats import percentile  # noqa: E402
from harness import create_postgres_database, free_port, spaces_command  # noqa: E402
from proxy import start_nginx  # noqa: E402  (bench/proxy.py: nginx 'return 200' upstream)

REDIS_URL = os.environ.get("SPACES_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: a proxy on its own with one route, its table in memory or in Redis (argv: kind, port, upstream port, prefix)
PROXY_ALONE = """
import asyncio, sys
from spaces.proxy.routes import MemoryRouteTable, Route
from spaces.proxy.server import ProxyServer
from spaces.proxy.settings import ProxySettings
kind, port, up, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if kind == "redis":
    from spaces.proxy.redis_routes import RedisRouteTable
    routes = RedisRouteTable(sys.argv[5], prefix=prefix)
else:
    routes = MemoryRouteTable()
routes.put("bench", Route("bench", ("127.0.0.1", up), "running", title="bench"))
async def never(*_):
    return None
async def main():
    import uvloop  # noqa: F401  (the event loop spaces serve uses where installed)
    server = ProxyServer(routes=routes, apps_domain="localhost", hub_upstream=("127.0.0.1", up), waker=never,
                         authorize=never, on_upstream_dead=lambda _: None, settings=ProxySettings())
    await server.start("127.0.0.1", port)
    await asyncio.Event().wait()
try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""


def wrk(port: int, connections: int, duration: float, *, host: str | None = None, path: str = "/") -> float:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", f"http://127.0.0.1:{port}{path}"]
    if host:
        cmd[1:1] = ["-H", f"Host: {host}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad and int(bad.group(1)):
        raise SystemExit(f"wrk on :{port}{path} got {bad.group(1)} non-2xx answers:\n{out}")
    return float(rps.group(1)) if rps else 0.0


def wrk_many(ports: list[int], connections: int, duration: float, **kw: str) -> float:
    """One wrk per port at the same time (each with its share of the connections): the sum of their requests/s."""
    from concurrent.futures import ThreadPoolExecutor

    share = max(1, connections // len(ports))
    with ThreadPoolExecutor(len(ports)) as pool:
        return sum(pool.map(lambda p: wrk(p, share, duration, **kw), ports))


def wait_http(url: str, timeout: float = 60.0, status: int = 200) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == status:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer {status} within {timeout:g} s")


class Fleet:
    """The ``spaces serve`` processes of one run: same data dir, database and Redis prefix."""

    def __init__(self, work: Path, db_url: str, prefix: str) -> None:
        self.work, self.procs = work, []
        self.env = {**os.environ, "SPACES_DATA_DIR": str(work / "data"), "SPACES_DATABASE_URL": db_url,
                    "SPACES_REDIS_URL": REDIS_URL, "SPACES_REDIS_PREFIX": prefix,
                    "SPACES_ANNOUNCE_DIR": str(work / "announce"), "SPACES_RUNTIME__SWEEP_SECONDS": "1"}

    def serve(self, *args: str, **env: str) -> subprocess.Popen:
        log = open(self.work / f"serve-{len(self.procs)}.log", "ab")  # noqa: SIM115 (kept open for the child)
        proc = subprocess.Popen([*spaces_command(), "serve", *args], env={**self.env, **env}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def close(self) -> None:
        for proc in self.procs:
            self.stop(proc)
        if self.procs:  # what the controllers put on the host (uids, chains, cgroups) goes with the run
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run([*spaces_command(), "down", "--force"], env=self.env, capture_output=True, timeout=600)


@contextlib.contextmanager
def fleet() -> Iterator[tuple[Fleet, int]]:
    work = Path(tempfile.mkdtemp(prefix="bench-scaleout-", dir="/var/tmp"))
    os.chmod(work, 0o711)
    db_url, drop = create_postgres_database("spaces_scaleout")
    prefix = f"bench-{secrets.token_hex(4)}:"
    f = Fleet(work, db_url, prefix)
    procs: list[subprocess.Popen] = []
    try:
        up, _ = start_nginx("/usr/sbin/nginx", work, "1", procs)
        yield f, up
    finally:
        f.close()
        for p in procs:
            p.terminate()
        drop()
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        for key in r.scan_iter(f"{prefix}*"):
            r.delete(key)
        subprocess.run(["rm", "-rf", str(work)], check=False)


def seed(f: Fleet, hub_url: str) -> str:
    """A user and a public static Space; returns the API path that reads it."""
    out = subprocess.run([*spaces_command(), "token", "create", "bench"], env=f.env, capture_output=True,
                         text=True, check=True).stdout.strip()
    r = httpx.post(f"{hub_url}/api/repos/create", headers={"authorization": f"Bearer {out}"}, timeout=30,
                   json={"type": "space", "name": "demo", "sdk": "static"})
    r.raise_for_status()
    return "/api/spaces/bench/demo"


def put_route(prefix: str, up: int) -> None:
    from spaces.proxy.redis_routes import RedisRouteTable
    from spaces.proxy.routes import Route

    table = RedisRouteTable(REDIS_URL, prefix=prefix)
    table.put("bench", Route("bench", ("127.0.0.1", up), "running", title="bench"))
    table.close()


def medians(rounds: dict[str, list[float]]) -> dict[str, float]:
    return {k: statistics.median(v) for k, v in rounds.items()}


def throughput(f: Fleet, up: int, args: argparse.Namespace) -> dict[str, float]:
    prefix = f.env["SPACES_REDIS_PREFIX"]
    # the reference: every role in one process (its proxy in front of its hub)
    port = free_port()
    allinone = f.serve("--port", str(port))
    wait_http(f"http://127.0.0.1:{port}/api/health")
    api = seed(f, f"http://127.0.0.1:{port}")
    c, d = args.connections, args.duration
    rounds: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        put_route(prefix, up)  # a route to nginx: what the proxy forwards is not what is measured
        rounds.setdefault("hub all-in-one", []).append(wrk(port, c, d, path=api))
        rounds.setdefault("proxy all-in-one", []).append(wrk(port, c, d, host=f"bench.localhost:{port}"))
    f.stop(allinone)
    # the roles apart: two hubs, two proxies (and no controller: nothing here needs one)
    hubs = [free_port(), free_port()]
    proxies = [free_port(), free_port()]
    for h in hubs:
        f.serve("--roles", "hub", "--port", str(h))
    for p in proxies:
        f.serve("--roles", "proxy", "--port", str(p), "--ops-port", str(free_port()),
                SPACES_HUB_UPSTREAM=f"127.0.0.1:{hubs[0]}", SPACES_APPS_DOMAIN="localhost")
    for h in hubs:
        wait_http(f"http://127.0.0.1:{h}/readyz")
    for p in proxies:
        wait_http(f"http://127.0.0.1:{p}/api/health")  # through the proxy to the first hub
    put_route(prefix, up)
    for _ in range(args.rounds):
        rounds.setdefault("hub x1", []).append(wrk(hubs[0], c, d, path=api))
        rounds.setdefault("hub x2", []).append(wrk_many(hubs, c, d, path=api))
        rounds.setdefault("proxy x1", []).append(wrk(proxies[0], c, d, host="bench.localhost"))
        rounds.setdefault("proxy x2", []).append(wrk_many(proxies, c, d, host="bench.localhost"))
    return medians(rounds)


def route_table_cost(f: Fleet, up: int, args: argparse.Namespace) -> dict[str, float]:
    prefix = f"bench-rt-{secrets.token_hex(3)}:"
    ports = {"memory": free_port(), "redis": free_port()}
    procs = [subprocess.Popen([sys.executable, "-c", PROXY_ALONE, kind, str(port), str(up), prefix, REDIS_URL],
                              start_new_session=True) for kind, port in ports.items()]
    try:
        for port in ports.values():
            _wait_route(port)
        rounds: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for kind, port in ports.items():
                rounds.setdefault(f"routes in {kind}", []).append(
                    wrk(port, args.connections, args.duration, host="bench.localhost"))
        return {**medians(rounds), **lookup_ns(prefix, up)}
    finally:
        for p in procs:
            Fleet.stop(p)


def lookup_ns(prefix: str, up: int) -> dict[str, float]:
    """The hot path's own read of each table, in process (min of 5 repeats: what load cannot make faster)."""
    import timeit

    from spaces.proxy.redis_routes import RedisRouteTable
    from spaces.proxy.routes import MemoryRouteTable, Route

    out = {}
    for kind, table in (("memory", MemoryRouteTable()), ("redis", RedisRouteTable(REDIS_URL, prefix=prefix))):
        table.put("bench", Route("bench", ("127.0.0.1", up), "running", title="bench"))
        n = 200_000
        out[f"lookup ns, {kind}"] = min(timeit.repeat(lambda t=table: (t.version, t.get("bench")), number=n,
                                                      repeat=5)) / n * 1e9
        getattr(table, "close", lambda: None)()
    return out


def _wait_route(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/", headers={"host": "bench.localhost"}, timeout=2).is_success:
                return
        time.sleep(0.1)
    raise SystemExit(f"the proxy on :{port} did not forward within 30 s")


def failover(f: Fleet, kills: int) -> list[float]:
    """Seconds from kill -9 of the leading controller to the standby's /readyz answering 200, ``kills`` times."""
    ops = [free_port(), free_port()]
    procs = [f.serve("--roles", "controller", "--ops-port", str(o)) for o in ops]
    wait_http(f"http://127.0.0.1:{ops[0]}/healthz")
    wait_http(f"http://127.0.0.1:{ops[1]}/healthz")
    times = []
    for i in range(kills):
        leader = _leader(ops)
        standby = 1 - leader
        time.sleep(0.3 + (i % 7) / 10)  # kills fall at different points of the standby's poll
        os.killpg(procs[leader].pid, signal.SIGKILL)
        procs[leader].wait(10)
        killed_at = time.monotonic()
        wait_http(f"http://127.0.0.1:{ops[standby]}/readyz", timeout=60)
        times.append(time.monotonic() - killed_at)
        procs[leader] = f.serve("--roles", "controller", "--ops-port", str(ops[leader]))
        wait_http(f"http://127.0.0.1:{ops[leader]}/healthz")
    for p in procs:
        f.stop(p)
    return times


def _leader(ops: list[int], timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, o in enumerate(ops):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{o}/readyz", timeout=2).status_code == 200:
                    return i
        time.sleep(0.1)
    raise SystemExit("no controller leads")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--only", default="throughput,routes,failover",
                        help="which parts to run, comma separated (routes alone starts no Space: no live lock)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if os.geteuid() != 0 and parts - {"routes"}:
        print("needs root (the controller's local backend)", file=sys.stderr)
        return 2
    rps: dict[str, float] = {}
    times: list[float] = []
    with fleet() as (f, up):
        if "throughput" in parts:
            rps.update(throughput(f, up, args))
        if "routes" in parts:
            rps.update(route_table_cost(f, up, args))
        if "failover" in parts:
            times = failover(f, args.kills)
    print(f"\nwrk -t1 -c{args.connections} -d{args.duration:g}s x {args.rounds} interleaved rounds (medians), "
          f"{os.cpu_count()} cores, PostgreSQL + Redis\n")
    print(f"{'target':28} {'req/s':>9} {'ratio':>7}  reference")
    for name, ref in (("hub all-in-one", None), ("hub x1", "hub all-in-one"), ("hub x2", "hub all-in-one"),
                      ("proxy all-in-one", None), ("proxy x1", "proxy all-in-one"), ("proxy x2", "proxy all-in-one"),
                      ("routes in memory", None), ("routes in redis", "routes in memory")):
        if name not in rps:
            continue
        ratio = f"{rps[name] / max(rps[ref], 1):.2f}x" if ref else ""
        print(f"{name:28} {rps[name]:>9.0f} {ratio:>7}  {ref or ''}")
    if "lookup ns, memory" in rps:
        mem, red = rps["lookup ns, memory"], rps["lookup ns, redis"]
        print(f"{'route lookup (version, get)':28} {mem:>6.0f} ns in memory, {red:.0f} ns from the Redis table's "
              f"cache: {red / mem:.2f}x")
    if times:
        print(f"\ncontroller failover over {len(times)} kills (kill -9 of the leader to the standby's /readyz 200): "
              f"p50 {percentile(times, 50):.2f} s, max {max(times):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

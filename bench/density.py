"""Density on the local backend: how many Spaces of each kind one machine holds, by memory and by capacity, against
one process per Space, in one run.

    flock -o /tmp/spaces-live.lock .venv/bin/python bench/density.py                       # the goal: 200 + 1000
    flock -o /tmp/spaces-live.lock .venv/bin/python bench/density.py --gradio 30 --cold 8 --static 100   # quick
    .venv/bin/python bench/density.py --n 8            # the old comparison only: 8 forks vs 8 cold processes

Needs root (sandboxes, cgroups, uids 33000-33999); hold the live lock (it starts real sandboxed apps). The venv
defaults to the test environment (tests/runtime_local builds it). Phases, in order:

1. **one process per Space** (the reference): ``--cold`` Gradio hello apps, each a plain ``python app.py`` in its
   sandbox (no zygote), each answers one GET /, then idles 3 s;
2. **idle Gradio Spaces**: ``--gradio`` apps forked from the environment's zygote, each answers one GET /, idle;
   with memory merging on (``SPACES_LOCAL__MEMORY_MERGE``, the default) measured once ksmd has merged what it
   will within ``--merge-wait`` seconds (``--no-merge``: without it);
3. **sleeping Gradio Spaces, first tier**: the same apps frozen (their memory stays; their capacity is given back);
   then one of them, picked at random, is thawed and must answer (and is frozen again);
4. **sleeping, second tier**: stopped (what memory pressure or ``stop_frozen_after`` does): nothing held;
5. **static Spaces**: ``--static`` Spaces started on the backend (no process) and published as the platform
   does (a route and a static-site root each); memory is what the serving process keeps for them (tracemalloc);
   one of them, picked at random, must answer 200 with its own file.

Memory per Space: the proportional set size (``/proc/PID/smaps_rollup``: shared pages divided among their sharers)
summed over each app and its descendants, plus, for forks, the zygote's share (it is the cost of the design);
the cgroups' own figure (``memory.current`` / ``memory.usage_in_bytes``, which charges page cache to whoever read
it first) is printed beside it. Capacity per Space: the node requests it holds (``flavors``, ``scheduler``): an
awake cpu-basic Space requests 0.1 core and 96 MiB, an asleep or static one nothing. Spaces per machine: this
machine's allocatable memory (less ``nodes.reserved_memory_mb``) divided by the memory per Space, and
``scheduler.holds`` for capacity; the reference is one cold process per Space holding the old request (0.25 core,
512 MiB, kept while asleep), i.e. 8 on 2 cores. Ratios are printed at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from wake_local import DEFAULT_VENV, first_200, make_spec  # noqa: E402

from spaces.builder.plan import Artifact  # noqa: E402
from spaces.runtime.backends.local import LocalBackend, LocalBackendSettings  # noqa: E402


def rollup(pid: int) -> tuple[int, int]:
    """(PSS, USS) of one process in KiB, from ``/proc/PID/smaps_rollup``; (0, 0) when it is gone."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[name] = int(rest.split()[0])
    except OSError:
        return 0, 0
    return fields.get("Pss", 0), fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def pss_kib(pid: int) -> int:
    return rollup(pid)[0]


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(raw[raw.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


KSM = Path("/sys/kernel/mm/ksm")


def wait_merged(timeout: float = 600.0) -> tuple[float, int]:
    """Wait until ksmd has merged what it will: two more full scans, and the last one added under 1%.
    Returns (seconds waited, pages sharing a merged page)."""
    read = lambda name: int((KSM / name).read_text())  # noqa: E731
    t0 = time.monotonic()
    scans, previous = read("full_scans"), -1
    while time.monotonic() - t0 < timeout:
        time.sleep(2)
        now = read("full_scans")
        if now >= scans + 2:
            sharing = read("pages_sharing")
            if previous >= 0 and sharing - previous <= previous / 100:
                break
            scans, previous = now, sharing
    return time.monotonic() - t0, read("pages_sharing")


def run(backend: LocalBackend, root: Path, venv: str, n: int, fork: bool) -> tuple[float, float]:
    """(summed PSS MiB of the apps and their descendants, PSS MiB of the zygote or 0)."""
    backend.settings.zygote = fork
    handles = []
    try:
        with httpx.Client(timeout=5) as client:
            for _ in range(n):
                h = backend.start(make_spec(root, venv))
                first_200(client, h.data["port"])
                handles.append(h)
        time.sleep(3)
        if fork and backend.zygotes.memory_merge:
            waited, sharing = wait_merged()
            print(f"kernel samepage merging: {sharing * 4 / 1024:.0f} MiB of pages merged after {waited:.0f} s "
                  "of ksmd at its default scan rate", flush=True)
        pids = {p for h in handles for p in descendants(int(h.data["pid"]))}
        zygote = 0.0
        if fork:
            z = backend.zygotes.get(venv, "gradio", {})
            assert z.proc is not None
            zygote = pss_kib(z.proc.pid) / 1024
        return sum(pss_kib(p) for p in pids) / 1024, zygote
    finally:
        for h in handles:
            backend.stop(h)


def cgroup_mib(backend: LocalBackend, instance: str) -> float:
    """What the instance's memory cgroup says it holds (v2 memory.current, v1 memory.usage_in_bytes), MiB."""
    for group in backend.cgroups.groups(instance):
        for name in ("memory.current", "memory.usage_in_bytes"):
            try:
                return int((group / name).read_text()) / 2**20
            except (OSError, ValueError):
                continue
    return 0.0


def spec_for(root: Path, venv: str, i: int, kind: str):  # noqa: ANN201
    """A Space of its own (its own uid and cgroup): ``bench/d{kind}{i}``."""
    import dataclasses

    spec = make_spec(root, venv)
    return dataclasses.replace(spec, space_id=f"bench/d{kind}{i}", repo_id=f"bench/d{kind}{i}")


def start_apps(backend: LocalBackend, root: Path, venv: str, n: int, kind: str, fork: bool, handles: list) -> None:
    """Start ``n`` apps into ``handles`` (the caller stops them, also when a start fails half way)."""
    backend.settings.zygote = fork
    t0 = time.monotonic()
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            h = backend.start(spec_for(root, venv, i, kind))
            handles.append(h)  # before the first 200: a failure still stops it
            first_200(client, h.data["port"], timeout=600)
            if (i + 1) % 10 == 0:
                print(f"  {kind}: {i + 1}/{n} answering after {time.monotonic() - t0:.0f} s", flush=True)


def measure(backend: LocalBackend, handles: list, zygote_pid: int | None = None) -> tuple[float, float]:
    """(summed PSS MiB of the apps, their descendants and the zygote; summed cgroup MiB)."""
    pids = {p for h in handles for p in descendants(int(h.data["pid"]))}
    pss = sum(pss_kib(p) for p in pids) / 1024 + (pss_kib(zygote_pid) / 1024 if zygote_pid else 0.0)
    return pss, sum(cgroup_mib(backend, h.data["instance"]) for h in handles)


def static_spaces(root: Path, backend: LocalBackend, m: int) -> tuple[float, int, float]:
    """Start ``m`` static Spaces and publish them as the platform does; return (KiB each in the serving process,
    the status of a GET of a random one's page through the static-site server, ms it took)."""
    import random
    import tracemalloc

    from starlette.requests import Request

    from spaces.builder.plan import Artifact as Art
    from spaces.proxy.routes import MemoryRouteTable, Route
    from spaces.runtime.contracts import InstanceSpec, Limits
    from spaces.runtime.static_site import StaticSites

    sites, routes = StaticSites("localhost:8000"), MemoryRouteTable()
    dirs = []
    for i in range(m):
        work = root / "static" / f"s{i}"
        work.mkdir(parents=True)
        (work / "index.html").write_text(f"<h1>static Space {i}</h1>")
        dirs.append(work)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    handles = []
    for i, work in enumerate(dirs):
        spec = InstanceSpec(space_id=f"bench/ds{i}", repo_id=f"bench/ds{i}", sha="b" * 40, sdk="static",
                            artifact=Art("static", "", "bench", "b" * 40), workdir=str(work),
                            app_file="index.html", port=8000, env={}, limits=Limits(cpu=2, memory_mb=2048))
        h = backend.start(spec)
        handles.append(h)
        sites.roots[f"bench-ds{i}"] = (Path(h.data["static"]), "index.html")
        routes.put(f"bench-ds{i}", Route(f"bench/ds{i}", ("127.0.0.1", 1), "running", title=f"bench/ds{i}"))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    pick = random.randrange(m)
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "root_path": "",
             "headers": [(b"host", f"bench-ds{pick}.localhost:8000".encode())]}
    t0 = time.perf_counter()
    response = sites.respond(Request(scope))
    took = (time.perf_counter() - t0) * 1000
    ok = response.status_code == 200 and Path(response.path).read_text() == f"<h1>static Space {pick}</h1>"
    for h in handles:
        backend.stop(h)
    return grown / 1024 / m, (response.status_code if ok else 500), took


def capacity_figures() -> dict:
    """Requests and Spaces per machine from the defaults (see the README's table), for this machine."""
    import dataclasses

    from spaces.runtime.flavors import FlavorCatalog
    from spaces.runtime.nodes import detect_local_node
    from spaces.runtime.scheduler import Policy, Request, holds
    from spaces.settings import Settings

    settings = Settings()
    policy = settings.scheduler.policy()
    node = detect_local_node(reserved_cpu=settings.nodes.reserved_cpu,
                             reserved_memory_mb=settings.nodes.reserved_memory_mb)
    basic = Request.for_flavor("x", FlavorCatalog(settings.flavors).get("cpu-basic"))
    # before: 0.25 core and 512 MiB on every core and MiB of the node, no overcommit (and asleep Spaces kept theirs)
    before = holds(dataclasses.replace(node, reserved_cpu=0.0, reserved_memory_mb=0),
                   Request("x", "cpu-basic", 0.25, 512), Policy())
    return {"node": node, "request": basic, "awake": holds(node, basic, policy), "old": before, "policy": policy,
            "allocatable_mib": Policy().allocatable(node)[1]}


def goal(args: argparse.Namespace, backend: LocalBackend, root: Path) -> None:
    import random

    cap = capacity_figures()
    rows: list[tuple[str, int, float, float, str, float]] = []  # kind, n, PSS MiB each, cgroup MiB each, req, cores
    cold: list = []
    try:
        start_apps(backend, root, args.venv, args.cold, "c", False, cold)
        time.sleep(3)
        pss, cg = measure(backend, cold)
    finally:
        for h in cold:
            backend.stop(h)
    rows.append(("one process per Space (cold python app.py)", args.cold, pss / args.cold, cg / args.cold,
                 "0.25 core + 512 MiB, kept asleep", 0.25))
    forks: list = []
    try:
        start_apps(backend, root, args.venv, args.gradio, "g", True, forks)
        time.sleep(3)
        if backend.zygotes.memory_merge and not args.no_merge:
            waited, sharing = wait_merged(args.merge_wait)
            print(f"kernel samepage merging: {sharing * 4 / 1024:.0f} MiB of pages merged after {waited:.0f} s",
                  flush=True)
        z = backend.zygotes.get(args.venv, "gradio", {})
        zpid = z.proc.pid if z.proc is not None else None
        pss, cg = measure(backend, forks, zpid)
        rows.append(("idle Gradio (zygote fork, awake)", args.gradio, pss / args.gradio, cg / args.gradio,
                     f"{cap['request'].cpu:g} core + {cap['request'].memory_mb} MiB", cap["request"].cpu))
        for h in forks:
            backend.freeze(h)
        pss, cg = measure(backend, forks, zpid)
        rows.append(("sleeping Gradio, frozen", args.gradio, pss / args.gradio, cg / args.gradio, "nothing", 0.0))
        pick = random.choice(forks)
        t0 = time.perf_counter()
        backend.thaw(pick)
        with httpx.Client(timeout=30) as client:
            first_200(client, pick.data["port"])
        woke_ms = (time.perf_counter() - t0) * 1000
        backend.freeze(pick)
    finally:
        for h in forks:
            backend.stop(h)
    rows.append(("sleeping Gradio, stopped", args.gradio, 0.0, 0.0, "nothing", 0.0))
    kib, status, static_ms = static_spaces(root, backend, args.static)
    rows.append(("static (files the platform serves)", args.static, kib / 1024, 0.0, "nothing", 0.0))

    node, alloc = cap["node"], cap["allocatable_mib"]
    print(f"\nthis machine: {node.cpu:g} cores, {node.memory_mb} MiB; Spaces get {alloc} MiB "
          f"(less {node.reserved_memory_mb} kept); cpu-basic requests {cap['request'].need()} "
          f"(overcommit: cpu x{cap['policy'].cpu_overcommit:g}, memory x{cap['policy'].memory_overcommit:g})")
    print(f"{'kind':46} {'n':>5} {'PSS MiB/Space':>14} {'cgroup MiB':>11} {'fit by memory':>14}  request held")
    for kind, n, pss_each, cg_each, req, _ in rows:
        fit = f"{int(alloc / pss_each):,d}" if pss_each > 0 else "no limit"
        print(f"{kind:46} {n:5d} {pss_each:14.2f} {cg_each:11.1f} {fit:>14}  {req}")
    cold_each, fork_each = rows[0][2], rows[1][2]
    print(f"\nawake Gradio Spaces per machine: by capacity {cap['awake']} now vs {cap['old']} before (old requests, "
          f"no overcommit, asleep ones holding theirs): {cap['awake'] / cap['old']:.1f}x")
    print(f"memory per idle Gradio Space, fork vs one process per Space: {fork_each:.1f} vs {cold_each:.1f} MiB: "
          f"{cold_each / fork_each:.2f}x as many per GiB")
    print(f"a random frozen Gradio Space thawed and answered its first GET / in {woke_ms:.0f} ms")
    print(f"static: {kib:.2f} KiB each in the serving process; a random one of {args.static} answered "
          f"{status} in {static_ms:.1f} ms; versus one process per Space: {cold_each * 1024 / kib:.0f}x less memory")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradio", type=int, default=200, help="idle, then sleeping, Gradio Spaces (zygote forks)")
    ap.add_argument("--cold", type=int, default=20, help="one process per Space, the reference (each ~150 MiB)")
    ap.add_argument("--static", type=int, default=1000, help="static Spaces")
    ap.add_argument("--n", type=int, default=None, help="only the old comparison: N forks vs N cold processes")
    ap.add_argument("--venv", default=os.environ.get("SPACES_TEST_LOCAL_VENV", DEFAULT_VENV))
    ap.add_argument("--no-merge", action="store_true", help="forks without kernel samepage merging")
    ap.add_argument("--merge-wait", type=float, default=180.0, help="longest wait for ksmd, seconds")
    args = ap.parse_args()
    # a timeout's SIGTERM unwinds like Ctrl-C: every app started is stopped, its disk unmounted, its dir removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(f"/var/tmp/spaces-bench-density-{secrets.token_hex(3)}")
    root.mkdir(mode=0o711)
    backend = LocalBackend(LocalBackendSettings(root=root / "backend", cgroup_root="spaces-bench-density",
                                                uid_min=33000, uid_max=33999, stop_grace_s=2, zygote_wait_s=120,
                                                memory_merge=not args.no_merge))
    try:
        backend.prewarm(Artifact("venv", args.venv, "bench", "b" * 40), "gradio")
        backend.zygotes.get(args.venv, "gradio", {}).wait_ready(120)
        if args.n is None:
            goal(args, backend, root)
            return
        cold = run(backend, root, args.venv, args.n, fork=False)
        fork = run(backend, root, args.venv, args.n, fork=True)
    finally:
        backend.close()
        shutil.rmtree(root, ignore_errors=True)
    (cold, _), (apps, zygote) = cold, fork
    fork_total = apps + zygote
    merged = " with memory merging" if backend.zygotes.memory_merge else " without memory merging"
    print(f"{args.n} idle gradio hello apps, summed PSS; forks{merged}")
    for name, mib in (("cold processes", cold), ("zygote forks + zygote", fork_total), ("zygote forks only", apps)):
        print(f"{name:24} {mib:8.1f} MiB total  {mib / args.n:6.1f} MiB/app  {1024 * args.n / mib:6.1f} apps/GiB")
    print(f"ratio apps/GiB, forks + zygote vs cold: {cold / fork_total:.2f}x (goal >= 3x)")
    print(f"ratio apps/GiB, forks alone vs cold:    {cold / apps:.2f}x (the zygote's {zygote:.0f} MiB is paid once "
          "per environment; it is shared by every Space of that environment)")


if __name__ == "__main__":
    main()

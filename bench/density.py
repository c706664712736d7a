"""Density on the local backend: how many Spaces of each kind one machine holds, by memory and by capacity, against
one process per Space, in one run.

    flock -o /tmp/spaces-live.lock .venv/bin/python bench/density.py                       # the goal: 200 + 1000
    flock -o /tmp/spaces-live.lock .venv/bin/python bench/density.py --gradio 30 --cold 8 --static 100   # quick
    .venv/bin/python bench/density.py --n 8            # the old comparison only: 8 forks vs 8 cold processes

Needs root (sandboxes, cgroups, uids 33000-33999); hold the live lock (it starts real sandboxed apps). The venv
defaults to the test environment (tests/runtime_local builds it). Phases, in order:

1. **one process per Space** (the reference): ``--cold`` Gradio hello apps, each a plain ``python app.py`` in its
   sandbox (no zygote), each timed from start to its first 200 on GET / (the cold start wakes are compared with),
   then idle: their memory and the CPU an idle awake Gradio app uses (10 s of it) are measured;
2. **sleeping Gradio Spaces, first tier**: ``--gradio`` apps forked from the environment's zygote, each frozen
   (the backend's ``freeze``, what the sleeper does to an idle Space) once it answered its first GET /, before the
   next starts: an idle awake Gradio app keeps using a few percent of a core, so 200 awake ones would need more
   cores than two (``--awake``: start them all and keep them awake, then freeze them, as before). With memory
   merging on (``SPACES_LOCAL__MEMORY_MERGE``, the default) measured once ksmd has merged what it will within
   ``--merge-wait`` seconds (``--no-merge``: without it); then the machine's available memory and load and the
   CPU the frozen apps use over 10 s; then ``--visits`` random ones are visited one after another (thaw, first
   200, frozen again: a proxy wake) and every one must be frozen after;
3. **sleeping, second tier**: stopped (what memory pressure or ``stop_frozen_after`` does): nothing held;
4. **static Spaces**: ``--static`` Spaces started on the backend (no process) and published as the platform
   does (a route and a static-site root each); memory is what the serving process keeps for them (tracemalloc);
   ``--visits`` random ones must each answer 200 with their own file. Exits 1 when a visit fails.

Memory per Space: the proportional set size (``/proc/PID/smaps_rollup``: shared pages divided among their sharers)
summed over each app and its descendants, plus, for forks, the zygote's share (it is the cost of the design);
the cgroups' own figure (``memory.current`` / ``memory.usage_in_bytes``, which charges page cache to whoever read
it first) is printed beside it. Capacity per Space: the node requests it holds (``flavors``, ``scheduler``): an
awake cpu-basic Space requests 0.1 core and 96 MiB, an asleep or static one nothing. Spaces per machine: this
machine's allocatable memory (less ``nodes.reserved_memory_mb``) divided by the memory per Space, and
``scheduler.holds`` for capacity; the reference is one cold process per Space holding the old request (0.25 core,
512 MiB, kept while asleep), i.e. 8 on 2 cores. Ratios are printed at the end.

Measured here (2 cores at load 3-5 from other work, 24 GB; the goal's defaults ``--gradio 200 --cold 8 --static
1000 --visits 20``, 6.5 minutes): 200 Gradio Spaces forked, answered and frozen in 111 s (fork p50 0.39 s); each
33.6 MiB PSS (30.8 by its cgroup) against 128.7 MiB for one process per Space, 3.8x as many per GiB; the machine's
available memory went 22.6 -> 15.6 GiB (35 MiB each); the 200 frozen used 0.000 cores, an idle awake one 4.3% of a
core; 20 random frozen ones woke to their first 200 in p50 20 ms, max 86 ms, against a cold start's p50 3.64 s
(0.006x); 1,000 static Spaces 1.34 KiB each, 20 random ones answered in p50 0.2 ms, max 10 ms.
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


def process_children() -> dict[int, list[int]]:
    """Every process's children, from one pass over ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(raw[raw.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    return children


def descendants(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    children = process_children() if children is None else children
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pids: list[int]) -> int:
    """User + system CPU time of these processes so far, in clock ticks (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
            fields = raw[raw.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return total


def cores_used(handles: list, seconds: float = 10.0) -> float:
    """Cores the apps (and their descendants) use between now and ``seconds`` later."""
    children = process_children()
    pids = [p for h in handles for p in descendants(int(h.data["pid"]), children)]
    before = cpu_ticks(pids)
    time.sleep(seconds)
    return (cpu_ticks(pids) - before) / os.sysconf("SC_CLK_TCK") / seconds


def machine() -> dict[str, float]:
    """The machine's free and available memory (MiB, ``/proc/meminfo``) and its 1-minute load."""
    info = {line.split(":")[0]: int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()}
    return {"available": info["MemAvailable"] / 1024, "free": info["MemFree"] / 1024, "load": os.getloadavg()[0]}


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


def start_apps(backend: LocalBackend, root: Path, venv: str, n: int, kind: str, fork: bool, handles: list,
               times: list[float] | None = None, freeze: bool = False) -> None:
    """Start ``n`` apps into ``handles`` (the caller stops them, also when a start fails half way), each timed from
    ``start`` to its first 200 into ``times``. With ``freeze`` each is frozen once it answered, before the next
    starts: what the platform's sleeper does to an idle Space (an idle awake Gradio app keeps using a few percent
    of a core; 200 of them would need more cores than this machine has)."""
    backend.settings.zygote = fork
    t0 = time.monotonic()
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            spec = spec_for(root, venv, i, kind)
            began = time.perf_counter()
            h = backend.start(spec)
            handles.append(h)  # before the first 200: a failure still stops it
            first_200(client, h.data["port"], timeout=600)
            if times is not None:
                times.append(time.perf_counter() - began)
            if freeze:
                backend.freeze(h)
            if (i + 1) % 10 == 0:
                print(f"  {kind}: {i + 1}/{n} answered{' and frozen' if freeze else ''} after "
                      f"{time.monotonic() - t0:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)


def measure(backend: LocalBackend, handles: list, zygote_pid: int | None = None) -> tuple[float, float]:
    """(summed PSS MiB of the apps, their descendants and the zygote; summed cgroup MiB)."""
    children = process_children()
    pids = {p for h in handles for p in descendants(int(h.data["pid"]), children)}
    pss = sum(pss_kib(p) for p in pids) / 1024 + (pss_kib(zygote_pid) / 1024 if zygote_pid else 0.0)
    return pss, sum(cgroup_mib(backend, h.data["instance"]) for h in handles)


def visit_frozen(backend: LocalBackend, handles: list, k: int) -> list[float]:
    """Visit ``k`` random frozen apps one after another as the proxy's wake does (thaw, first 200), freezing each
    again after; seconds per visit."""
    import random

    took = []
    with httpx.Client(timeout=30) as client:
        for h in random.sample(handles, min(k, len(handles))):
            began = time.perf_counter()
            backend.thaw(h)
            first_200(client, h.data["port"], timeout=60)
            took.append(time.perf_counter() - began)
            backend.freeze(h)
    return took


def static_spaces(root: Path, backend: LocalBackend, m: int, k: int = 1) -> tuple[float, int, list[float]]:
    """Start ``m`` static Spaces and publish them as the platform does; return (KiB each in the serving process,
    how many of ``k`` random ones answered 200 with their own page through the static-site server, ms each)."""
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
    answered, took = 0, []
    for pick in random.sample(range(m), min(k, m)):
        scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "root_path": "",
                 "headers": [(b"host", f"bench-ds{pick}.localhost:8000".encode())]}
        t0 = time.perf_counter()
        response = sites.respond(Request(scope))
        took.append((time.perf_counter() - t0) * 1000)
        answered += response.status_code == 200 and Path(response.path).read_text() == f"<h1>static Space {pick}</h1>"
    for h in handles:
        backend.stop(h)
    return grown / 1024 / m, answered, took


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
    import statistics

    from spaces.runtime.contracts import Phase

    cap = capacity_figures()
    rows: list[tuple[str, int, float, float, str, float]] = []  # kind, n, PSS MiB each, cgroup MiB each, req, cores
    cold: list = []
    cold_s: list[float] = []
    try:
        start_apps(backend, root, args.venv, args.cold, "c", False, cold, cold_s)
        time.sleep(3)
        pss, cg = measure(backend, cold)
        idle_core = cores_used(cold) / max(1, len(cold))
    finally:
        for h in cold:
            backend.stop(h)
    rows.append(("one process per Space (cold python app.py)", args.cold, pss / args.cold, cg / args.cold,
                 "0.25 core + 512 MiB, kept asleep", 0.25))
    forks: list = []
    fork_s: list[float] = []
    base = machine()
    try:
        start_apps(backend, root, args.venv, args.gradio, "g", True, forks, fork_s, freeze=not args.awake)
        time.sleep(3)
        if backend.zygotes.memory_merge and not args.no_merge:
            waited, sharing = wait_merged(args.merge_wait)
            print(f"kernel samepage merging: {sharing * 4 / 1024:.0f} MiB of pages merged after {waited:.0f} s",
                  flush=True)
        z = backend.zygotes.get(args.venv, "gradio", {})
        zpid = z.proc.pid if z.proc is not None else None
        if args.awake:
            pss, cg = measure(backend, forks, zpid)
            rows.append(("idle Gradio (zygote fork, awake)", args.gradio, pss / args.gradio, cg / args.gradio,
                         f"{cap['request'].cpu:g} core + {cap['request'].memory_mb} MiB", cap["request"].cpu))
            for h in forks:
                backend.freeze(h)
        pss, cg = measure(backend, forks, zpid)
        held = machine()
        frozen_cores = cores_used(forks)
        label = "sleeping Gradio, frozen" + ("" if args.awake else " once it answered")
        rows.append((label, args.gradio, pss / args.gradio, cg / args.gradio, "nothing", 0.0))
        woke = visit_frozen(backend, forks, args.visits)
        awake = sum(backend.poll(h).phase != Phase.FROZEN for h in forks)
    finally:
        for h in forks:
            backend.stop(h)
    rows.append(("sleeping Gradio, stopped", args.gradio, 0.0, 0.0, "nothing", 0.0))
    kib, answered, static_ms = static_spaces(root, backend, args.static, args.visits)
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
    print(f"memory per Gradio Space, fork vs one process per Space: {fork_each:.1f} vs {cold_each:.1f} MiB: "
          f"{cold_each / fork_each:.2f}x as many per GiB")
    print(f"machine with {args.gradio} Gradio Spaces {'frozen' if not args.awake else 'frozen after idling'}: "
          f"available memory {base['available']:.0f} -> {held['available']:.0f} MiB "
          f"({(base['available'] - held['available']) / args.gradio:.1f} MiB each), free {held['free']:.0f} MiB, "
          f"load {held['load']:.1f}; they used {frozen_cores:.3f} cores over 10 s, against "
          f"{idle_core * 100:.1f}% of a core for each idle awake one ({idle_core * args.gradio:.1f} cores for "
          f"{args.gradio})")
    cold50, fork50 = statistics.median(cold_s), statistics.median(fork_s)
    wake50, wake_max = statistics.median(woke), max(woke)
    print(f"start to first 200, the reference: a cold start (python app.py) p50 {cold50:.2f} s, max "
          f"{max(cold_s):.2f} s over {len(cold_s)}; a zygote fork p50 {fork50:.2f} s, max {max(fork_s):.2f} s "
          f"over {len(fork_s)}")
    print(f"wake of {len(woke)} random frozen Gradio Spaces of {args.gradio} (thaw, first 200, frozen again): "
          f"p50 {wake50 * 1000:.0f} ms, max {wake_max * 1000:.0f} ms; p50 vs a cold start {wake50 / cold50:.3f}x; "
          f"{awake} of {args.gradio} not frozen after the visits")
    print(f"static: {kib:.2f} KiB each in the serving process; {answered} of {len(static_ms)} random ones of "
          f"{args.static} answered 200 with their own page, p50 {statistics.median(static_ms):.1f} ms, max "
          f"{max(static_ms):.1f} ms; versus one process per Space: {cold_each * 1024 / kib:.0f}x less memory")
    if awake or answered != len(static_ms):
        sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradio", type=int, default=200, help="idle, then sleeping, Gradio Spaces (zygote forks)")
    ap.add_argument("--cold", type=int, default=8, help="one process per Space, the reference (each ~150 MiB)")
    ap.add_argument("--static", type=int, default=1000, help="static Spaces")
    ap.add_argument("--n", type=int, default=None, help="only the old comparison: N forks vs N cold processes")
    ap.add_argument("--venv", default=os.environ.get("SPACES_TEST_LOCAL_VENV", DEFAULT_VENV))
    ap.add_argument("--no-merge", action="store_true", help="forks without kernel samepage merging")
    ap.add_argument("--merge-wait", type=float, default=180.0, help="longest wait for ksmd, seconds")
    ap.add_argument("--awake", action="store_true",
                    help="start every Gradio Space and keep them all awake before freezing them (the old phase; "
                    "idle ones use CPU, so a 2-core machine holds far fewer) instead of freezing each once it answered")
    ap.add_argument("--visits", type=int, default=20, help="random frozen and random static Spaces visited")
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

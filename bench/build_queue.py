"""The shared build queue and cross-process live logs, measured side by side with the one-process paths.

1. Claims: builds taken per second by 1, 2 and 4 worker *processes* racing on one PostgreSQL database (each build
   taken once is checked), next to one worker.
2. Live log lines: time from ``append`` in one LogBus to the line in a follower's queue, for a follower in the same
   process on the in-memory bus (today's one-process path) and for a follower of another LogBus through Redis
   (stored first, then published: see spaces.services.logs). p50 / p95 over 200 lines, one line every 20 ms.

Run: ``.venv/bin/python bench/build_queue.py`` (PostgreSQL at 127.0.0.1:5432, Redis at 127.0.0.1:6379).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from benchstats import percentile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness import create_postgres_database  # noqa: E402

from spaces.bus import MemoryBus, RedisBus  # noqa: E402
from spaces.db.models import Account, Build, Space  # noqa: E402
from spaces.db.session import Database  # noqa: E402
from spaces.services.logs import LogBus  # noqa: E402

BUILDS = 400
CLAIMER = """
import json, sys, time
from spaces.db.session import Database
from spaces.services.builds import BuildService
from spaces.services.logs import LogBus
db = Database(sys.argv[1])
svc = BuildService(db, LogBus(db), repo_for=None, builder=None, planner=None)
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
taken = []
while (b := svc._claim()) is not None:
    taken.append(b)
print(json.dumps({"taken": taken, "done": time.time()}))
"""


def seed(db: Database, n: int) -> None:
    with db.session() as s:
        owner = Account(name="bench", key="bench")
        s.add(owner)
        s.flush()
        for i in range(n):
            space = Space(owner_id=owner.id, name=f"s{i}", repo_id=f"bench/s{i}", key=f"bench/s{i}",
                          subdomain=f"s{i}")
            s.add(space)
            s.flush()
            s.add(Build(space_id=space.id, sha="a" * 40))


def claims(workers: int) -> float:
    url, drop = create_postgres_database("spaces_benchq")
    try:
        db = Database(url)
        db.migrate()
        seed(db, BUILDS)
        db.engine.dispose()
        start = time.time() + 3
        procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, url, str(start)], stdout=subprocess.PIPE,
                                  text=True, cwd=REPO) for _ in range(workers)]
        out = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
        taken = [b for o in out for b in o["taken"]]
        assert len(taken) == len(set(taken)) == BUILDS, "a build taken twice or not at all"
        return BUILDS / (max(o["done"] for o in out) - start)
    finally:
        drop()


async def timed_get(queue: asyncio.Queue, sent: dict[str, float], got: list[float]) -> None:
    while True:
        ev = await queue.get()
        got.append(time.perf_counter() - sent[ev.data])


async def live(writer: LogBus, reader: LogBus, space_id: str) -> list[float]:
    queue = reader.subscribe(space_id, "build")
    sent: dict[str, float] = {}
    got: list[float] = []
    task = asyncio.create_task(timed_get(queue, sent, got))
    for i in range(200):
        sent[f"l{i}\n"] = time.perf_counter()
        await asyncio.to_thread(writer.append, space_id, "build", f"l{i}")
        await asyncio.sleep(0.02)
    await asyncio.sleep(2)
    task.cancel()
    return got


def main() -> None:
    one = claims(1)
    print(f"claims/s, PostgreSQL, {BUILDS} builds: 1 process {one:.0f}", flush=True)
    for n in (2, 4):
        rate = claims(n)
        print(f"  {n} processes {rate:.0f} ({rate / one:.2f}x one)", flush=True)

    url, drop = create_postgres_database("spaces_benchlog")
    try:
        db = Database(url)
        db.migrate()
        with db.session() as s:
            owner = Account(name="b", key="b")
            s.add(owner)
            s.flush()
            space = Space(owner_id=owner.id, name="l", repo_id="b/l", key="b/l", subdomain="l")
            s.add(space)
            s.flush()
            space_id = space.id
        local = LogBus(db, bus=MemoryBus())
        prefix = f"bench-{uuid.uuid4().hex}:"
        redis_a, redis_b = RedisBus("redis://127.0.0.1:6379/0", prefix=prefix), RedisBus(
            "redis://127.0.0.1:6379/0", prefix=prefix)
        builder, hub = LogBus(db, bus=redis_a), LogBus(db, bus=redis_b)
        mem = asyncio.run(live(local, local, space_id))
        red = asyncio.run(live(builder, hub, space_id))
        for name, values in (("in-process bus", mem), ("other process via Redis", red)):
            print(f"live line latency, {name}: {len(values)} lines, p50 {percentile(values, 50) * 1000:.2f} ms, "
                  f"p95 {percentile(values, 95) * 1000:.2f} ms")
        redis_a.close()
        redis_b.close()
        db.engine.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main()

"""Live log lines across processes: two ``LogBus`` on one database and one real Redis (what a builder process and a
hub replica hold). A line appended in one reaches a follower of the other live, exactly once, and a follower of
its own process exactly once too (not once locally and again through Redis); ``end`` follows the lines; a follower
that replays the store and then follows (the SSE endpoint's way) sees every line once, in order, whenever it
joins. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from harness import DATABASES, migrated_databases

from spaces.db.models import Account, Space
from spaces.db.session import Database
from spaces.services.logs import END, LogBus, LogEvent

REDIS_URL = os.environ.get("SPACES_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


db = pytest.fixture(params=DATABASES, name="db")(migrated_databases("spaces_logfan"))


@pytest.fixture
def two_processes(db: Database) -> Iterator[Callable[[], tuple[LogBus, LogBus]]]:
    """Two LogBus, each with a RedisBus of its own (as two processes have) on one prefix."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    from spaces.bus import RedisBus

    prefix = f"spaces-test-{uuid.uuid4().hex}:"
    buses = [RedisBus(REDIS_URL, prefix=prefix), RedisBus(REDIS_URL, prefix=prefix)]
    yield lambda: (LogBus(db, bus=buses[0]), LogBus(db, bus=buses[1]))
    for bus in buses:
        bus.close()


def _space(db: Database, name: str) -> str:
    with db.session() as s:
        owner = Account(name=f"u-{name}", key=f"u-{name}")
        s.add(owner)
        s.flush()
        space = Space(owner_id=owner.id, name=name, repo_id=f"u-{name}/{name}", key=f"u-{name}/{name}", subdomain=name)
        s.add(space)
        s.flush()
        return space.id


async def _until_end(queue: asyncio.Queue, timeout: float = 30.0) -> list[LogEvent]:
    got = []
    while (ev := await asyncio.wait_for(queue.get(), timeout)) is not END:
        got.append(ev)
    return got


def test_a_line_appended_in_one_process_reaches_followers_in_both_once(db: Database, two_processes: Callable) -> None:
    builder, hub = two_processes()
    space_id = _space(db, "fan")

    async def main() -> None:
        remote = hub.subscribe(space_id, "build")
        local = builder.subscribe(space_id, "build")
        other_kind = hub.subscribe(space_id, "run")
        for i in range(5):
            await asyncio.to_thread(builder.append, space_id, "build", f"step {i}")
        await asyncio.to_thread(builder.end, space_id, "build")
        for queue in (remote, local):
            assert [e.data for e in await _until_end(queue)] == [f"step {i}\n" for i in range(5)]
            await asyncio.sleep(0.5)  # nothing more comes: no second copy through another path
            assert queue.empty()
        assert other_kind.empty()

    asyncio.run(main())
    assert [e.data for e in hub.history(space_id, "build")] == [f"step {i}\n" for i in range(5)]  # stored once


def test_followers_joining_at_any_moment_see_each_line_once_in_order(db: Database, two_processes: Callable) -> None:
    """The seam between replay and live lines: each follower subscribes, replays what is stored, then keeps the
    live lines newer than its last replayed one (as ``GET /api/spaces/{id}/logs/build`` does)."""
    builder, hub = two_processes()
    space_id = _space(db, "seam")
    lines = [f"line {i}" for i in range(600)]
    all_joined = threading.Event()

    def print_build() -> None:
        for i, line in enumerate(lines):
            builder.append(space_id, "build", line)
            if i % 20 == 0:
                time.sleep(0.02)  # a few batches a second, as a real build prints
        all_joined.wait(30)  # a follower joining after the end is the endpoint's to end (it asks the database)
        builder.end(space_id, "build")

    async def follow() -> list[str]:
        queue = hub.subscribe(space_id, "build")
        try:
            history = await asyncio.to_thread(hub.history, space_id, "build")
            last = history[-1].ts if history else None
            live = [e for e in await _until_end(queue) if last is None or e.ts > last]
            return [e.data for e in history + live]
        finally:
            hub.unsubscribe(space_id, "build", queue)

    async def main() -> list[list[str]]:
        printer = threading.Thread(target=print_build)
        followers = [asyncio.create_task(follow())]
        printer.start()
        for _ in range(12):  # join all along the build, between and inside batches
            await asyncio.sleep(0.05)
            followers.append(asyncio.create_task(follow()))
        await asyncio.sleep(0.2)  # the last ones have subscribed
        all_joined.set()
        results = await asyncio.gather(*followers)
        await asyncio.to_thread(printer.join)
        return results

    expected = [line + "\n" for line in lines]
    for seen in asyncio.run(main()):
        assert seen == expected

"""LogBus batches: a deleted Space's last lines never cost other Spaces' lines or the caller's work.

A stopping app prints its last words after its Space row is gone; those lines sat in the same batch as a build's
and the foreign key failed the whole batch, which crashed the build that flushed it (CI, December 2026).
Runs against SQLite and PostgreSQL, the two databases the server supports (``SPACES_TEST_DATABASES`` picks).
"""

from __future__ import annotations


import pytest
from harness import DATABASES, migrated_databases
from sqlalchemy import delete

from spaces.db.models import Account, Space
from spaces.db.session import Database
from spaces.services.logs import LogBus


db = pytest.fixture(params=DATABASES, name="db")(migrated_databases("spaces_logbus"))


def _space(db: Database, name: str) -> str:
    with db.session() as s:
        owner = Account(name=f"u-{name}", key=f"u-{name}")
        s.add(owner)
        s.flush()
        space = Space(owner_id=owner.id, name=name, repo_id=f"u-{name}/{name}", key=f"u-{name}/{name}", subdomain=name)
        s.add(space)
        s.flush()
        return space.id


def test_lines_of_a_deleted_space_are_dropped_and_the_rest_kept(db: Database) -> None:
    bus = LogBus(db)
    kept, gone = _space(db, "kept"), _space(db, "gone")
    bus.append(gone, "run", "last words")
    bus.append(kept, "build", "step 1")
    with db.session() as s:
        s.execute(delete(Space).where(Space.id == gone))
    bus.append(kept, "build", "step 2")

    bus.clear(kept, "run")  # flushes the mixed batch first: must not raise

    assert [e.data for e in bus.history(kept, "build")] == ["step 1\n", "step 2\n"]
    assert bus.history(gone, "run") == []


def test_clear_and_history_of_one_space(db: Database) -> None:
    bus = LogBus(db)
    a, b = _space(db, "a"), _space(db, "b")
    for i in range(3):
        bus.append(a, "build", f"a{i}")
        bus.append(b, "build", f"b{i}")
    bus.append(a, "run", "serving")
    bus.clear(a, "build")
    assert bus.history(a, "build") == []
    assert [e.data for e in bus.history(a, "run")] == ["serving\n"]  # only the kind cleared
    assert [e.data for e in bus.history(b, "build", tail=2)] == ["b1\n", "b2\n"]


def test_only_the_newest_lines_are_kept_per_space_and_kind(db: Database) -> None:
    bus = LogBus(db, keep=100)
    chatty, quiet = _space(db, "chatty"), _space(db, "quiet")
    bus.append(chatty, "build", "built")
    bus.append(quiet, "run", "hello")
    for i in range(250):
        bus.append(chatty, "run", f"request {i}")
        if i % 60 == 59:
            bus.flush()  # several batches, as the writer thread makes them
    bus.flush()
    kept = [e.data for e in bus.history(chatty, "run")]
    # trimmed to the newest 100 at each tenth of 100 new lines: at most 10 more are stored, never an older gap
    assert 100 <= len(kept) <= 110 and kept[-1] == "request 249\n"
    assert kept == [f"request {i}\n" for i in range(250 - len(kept), 250)]
    assert [e.data for e in bus.history(chatty, "build")] == ["built\n"]  # other kinds and Spaces untouched
    assert [e.data for e in bus.history(quiet, "run")] == ["hello\n"]


def test_end_reaches_a_reader_whose_queue_is_full(db: Database) -> None:
    """A followed build log ends on the end marker: it must arrive even when the reader is behind (a line goes)."""
    import asyncio

    from spaces.services.logs import END, LogEvent

    bus = LogBus(db)

    async def main() -> None:
        queue = bus.subscribe("space", "build")
        line = LogEvent(END.ts.replace(year=2026), "line\n")
        while not queue.full():
            queue.put_nowait(line)
        bus.end("space", "build")
        bus.end("other", "build")  # another Space's end is not this reader's
        await asyncio.sleep(0.05)
        items = [queue.get_nowait() for _ in range(queue.qsize())]
        assert items[-1] is END and END not in items[:-1] and len(items) == queue.maxsize
        bus.unsubscribe("space", "build", queue)

    asyncio.run(main())

"""Leader election (spaces.runtime.leader) against the real locks: a PostgreSQL advisory lock and a flock.

Two electors per lock: the first leads, the second stands by; when the first's session (PostgreSQL) or process
dies, the second leads within seconds. A leader whose session is cut is told so (fencing). ``SPACES_TEST_DATABASES``
picks the databases, as for the rest of the suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import DATABASES, PG_ADMIN_URL, create_postgres_database, wait_until

from spaces.runtime.leader import LEADER, LEADER_CHANGES, FileLock, Leadership, PostgresLock, make_lock

HOLDER = """
import sys, time
from pathlib import Path
from spaces.runtime.leader import make_lock
lock = make_lock(sys.argv[1], Path(sys.argv[2]))
assert lock.try_acquire()
print("leading", flush=True)
time.sleep(600)
"""


@pytest.fixture(params=DATABASES)
def lock_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(database URL, data dir): the two things ``make_lock`` chooses from."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'spaces.db'}", tmp_path
    else:
        url, drop = create_postgres_database("spaces_leader")
        try:
            yield url, tmp_path
        finally:
            drop()


def test_one_holds_the_other_stands_by_then_takes_over_once_released(lock_source) -> None:
    first, second = make_lock(*lock_source), make_lock(*lock_source)
    try:
        assert first.try_acquire()
        assert first.alive()
        assert not second.try_acquire()
        assert not second.try_acquire()  # polling again changes nothing while the first holds it
        first.release()
        assert second.try_acquire()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()


def test_a_standby_leads_within_seconds_after_the_leaders_process_is_killed(lock_source) -> None:
    url, data = lock_source
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, str(data)], stdout=subprocess.PIPE, text=True)
    standby = make_lock(url, data)
    try:
        assert holder.stdout.readline().strip() == "leading"
        assert not standby.try_acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        killed = time.monotonic()
        wait_until(standby.try_acquire, timeout=15, interval=0.2, what="the standby to take the lock")
        assert time.monotonic() - killed < 15
    finally:
        if holder.poll() is None:
            holder.kill()
        standby.release()


def test_leadership_runs_the_callbacks_and_the_metrics_follow(lock_source) -> None:
    changes = LEADER_CHANGES._value.get()
    events: list[str] = []
    a = Leadership(make_lock(*lock_source), on_elected=lambda: events.append("a elected"),
                   on_lost=lambda: events.append("a lost"), poll_seconds=0.1, check_seconds=0.1)
    b = Leadership(make_lock(*lock_source), on_elected=lambda: events.append("b elected"),
                   on_lost=lambda: events.append("b lost"), poll_seconds=0.1, check_seconds=0.1)
    try:
        a.start()
        wait_until(lambda: a.leading, timeout=10, what="a to lead")
        assert LEADER._value.get() == 1
        b.start()
        time.sleep(0.5)
        assert not b.leading and events == ["a elected"]
        a.stop()  # a clean stop gives leadership up: no "lost", b leads at its next poll
        wait_until(lambda: b.leading, timeout=10, what="b to lead")
        assert events == ["a elected", "b elected"]
        assert LEADER_CHANGES._value.get() >= changes + 3
    finally:
        a.stop()
        b.stop()


@pytest.mark.skipif("postgres" not in DATABASES, reason="SPACES_TEST_DATABASES has no postgres")
def test_a_leader_whose_session_is_cut_is_fenced_and_a_standby_leads() -> None:
    import psycopg

    url, drop = create_postgres_database("spaces_leader")
    lost = threading.Event()
    a = Leadership(PostgresLock(url), on_elected=lambda: None, on_lost=lost.set, poll_seconds=0.1,
                   check_seconds=0.2)
    b = Leadership(PostgresLock(url), on_elected=lambda: None, on_lost=lambda: None, poll_seconds=0.1)
    try:
        a.start()
        wait_until(lambda: a.leading, timeout=10, what="a to lead")
        b.start()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                          "where application_name = 'spaces-controller' and pid <> pg_backend_pid() "
                          "and datname = %s and pid in (select pid from pg_locks where locktype = 'advisory')",
                          (url.rsplit("/", 1)[1],))
        assert lost.wait(10), "the leader was not told it lost its lock"
        assert not a.leading
        wait_until(lambda: b.leading, timeout=15, what="b to lead")
    finally:
        a.stop()
        b.stop()
        drop()


def test_a_file_lock_is_not_inherited_by_a_child_process(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "controller.lock")
    assert lock.try_acquire()
    child = subprocess.Popen(["sleep", "30"])  # what a Space or a zygote started by the leader would be
    try:
        lock.release()
        other = FileLock(tmp_path / "controller.lock")
        assert other.try_acquire(), "a child process kept the leader's lock"
        other.release()
    finally:
        child.kill()
        child.wait()

"""The build queue that builder processes share (``spaces.services.builds``), on SQLite and PostgreSQL.

Claims race between threads and between processes: each build is taken once, and one build per Space runs at a
time. A build whose worker stopped renewing its lease is queued again by another worker and built; a stopping
worker hands its builds back at once; a late finish of a build that is no longer its worker's changes nothing;
a starting worker leaves the live builds of others alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from harness import DATABASES, migrated_databases
from sqlalchemy import select, update

from spaces.builder.plan import Artifact, BuildPlan
from spaces.bus import MemoryBus
from spaces.db.models import Account, Build, Space, utcnow
from spaces.db.session import Database
from spaces.services.builds import BuildService
from spaces.services.logs import LogBus

REPO = Path(__file__).resolve().parents[2]


db = pytest.fixture(params=DATABASES, name="db")(migrated_databases("spaces_buildq"))


def _space(db: Database, name: str, *, builds: int = 1) -> tuple[str, list[int]]:
    """A Space with ``builds`` queued builds (rows written directly: more than ``submit`` would leave queued)."""
    with db.session() as s:
        owner = Account(name=f"u-{name}", key=f"u-{name}")
        s.add(owner)
        s.flush()
        space = Space(owner_id=owner.id, name=name, repo_id=f"u-{name}/{name}", key=f"u-{name}/{name}",
                      subdomain=name, sha="a" * 40, stage="BUILDING")
        s.add(space)
        s.flush()
        rows = [Build(space_id=space.id, sha="a" * 40) for _ in range(builds)]
        s.add_all(rows)
        s.flush()
        return space.id, [b.id for b in rows]


class _Repo:
    def export(self, sha: str, context: Path) -> None:
        context.mkdir(parents=True)


class _Builder:
    """Prints a line every ``step`` seconds until ``release`` is set (or at once when it is set already)."""

    def __init__(self, step: float = 0.05) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.step = step
        self.calls = 0

    def build(self, plan, *, space_id, sha, context, variables, secrets, log, factory):  # noqa: ANN001, ANN201
        self.calls += 1
        self.started.set()
        while not self.release.wait(self.step):
            log("installing", "still working")
        return Artifact(kind="static", ref="", plan_digest="d", sha=sha)


def _plan(context: object, sha: str) -> BuildPlan:
    return BuildPlan(sdk="static", python_version="", sdk_version=None, app_file="index.html", app_port=0)


def _service(db: Database, logs: LogBus, builder: _Builder | None = None, **kw: object) -> BuildService:
    return BuildService(db, logs, repo_for=lambda space: _Repo(), builder=builder or _Builder(),
                        planner=_plan, **kw)  # type: ignore[arg-type]


def _build(db: Database, build_id: int) -> Build:
    with db.session() as s:
        return s.get(Build, build_id)


def _wait(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_racing_threads_take_each_build_once_and_one_per_space(db: Database) -> None:
    spaces = [_space(db, f"race{i}", builds=2) for i in range(15)]
    services = [_service(db, LogBus(db)) for _ in range(8)]
    taken: dict[str, list[int]] = {}
    go = threading.Barrier(len(services))

    def worker(svc: BuildService) -> None:
        go.wait()
        mine = taken.setdefault(svc.worker_id, [])
        while (build_id := svc._claim()) is not None:
            mine.append(build_id)

    threads = [threading.Thread(target=worker, args=(svc,)) for svc in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    every = [b for ids in taken.values() for b in ids]
    assert len(every) == len(set(every)) == len(spaces)  # each taken once, one of each Space's two
    with db.session() as s:
        running = list(s.execute(select(Build.space_id, Build.worker).where(Build.status == "running")))
    assert sorted(sid for sid, _ in running) == sorted(sid for sid, _ in spaces)
    for worker_id, ids in taken.items():
        assert all(_build(db, b).worker == worker_id for b in ids)


_RACER = """
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
print(json.dumps({"worker": svc.worker_id, "taken": taken}))
"""


def test_two_processes_take_each_build_once(db: Database) -> None:
    spaces = [_space(db, f"proc{i}") for i in range(40)]
    url = db.engine.url.render_as_string(hide_password=False)
    start_at = str(time.time() + 3)  # both processes import first, then race from the same moment
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, url, start_at], stdout=subprocess.PIPE, cwd=REPO,
                              text=True) for _ in range(2)]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)

    every = [b for r in results for b in r["taken"]]
    assert Counter(every).most_common(1)[0][1] == 1
    assert sorted(every) == sorted(ids[0] for _, ids in spaces)
    for r in results:
        assert all(_build(db, b).worker == r["worker"] for b in r["taken"])


def test_a_dead_workers_build_is_queued_again_said_so_and_built(db: Database) -> None:
    space_id, (build_id,) = _space(db, "dead")
    logs = LogBus(db)
    dead = _service(db, logs, lease=1.0)
    assert dead._claim() == build_id  # and then it dies: never renews, never finishes
    live_builder = _Builder()
    live_builder.release.set()
    live = _service(db, logs, live_builder, lease=1.0, poll=0.1)
    live.start()
    try:
        _wait(lambda: _build(db, build_id).status == "built")
    finally:
        live.stop()
    b = _build(db, build_id)
    assert b.attempts == 2 and b.worker is None and b.lease_until is None
    text = "".join(e.data for e in logs.history(space_id, "build"))
    assert f"({dead.worker_id}) is lost: it stopped answering" in text
    assert "(attempt 2)" in text
    with db.session() as s:
        assert s.get(Space, space_id).artifact["sha"] == "a" * 40

    # the dead worker wakes up after all and finishes late: nothing it says is recorded
    dead._finish(build_id, None, "late failure")
    assert _build(db, build_id).status == "built"
    with db.session() as s:
        assert s.get(Space, space_id).stage != "BUILD_ERROR"


def test_a_build_of_a_builder_whose_process_exited_here_is_queued_again_without_waiting(db: Database) -> None:
    """A server restarted after a crash on the same machine: its predecessor's builds go back to the queue at
    once, not after the lease."""
    space_id, (build_id,) = _space(db, "crashed")
    url = db.engine.url.render_as_string(hide_password=False)
    subprocess.run([sys.executable, "-c", _RACER, url, "0"], check=True, cwd=REPO, capture_output=True, timeout=120)
    crashed = _build(db, build_id)
    assert crashed.status == "running" and crashed.lease_until.replace(tzinfo=None) > utcnow().replace(tzinfo=None)
    logs = LogBus(db)
    assert _service(db, logs)._requeue_expired() == 1
    assert _build(db, build_id).status == "queued"
    text = "".join(e.data for e in logs.history(space_id, "build"))
    assert f"({crashed.worker}) is lost: its process is gone" in text


def test_a_live_workers_build_is_left_alone_while_its_lease_is_renewed(db: Database) -> None:
    space_id, (build_id,) = _space(db, "renewed")
    logs = LogBus(db)
    builder = _Builder()
    owner = _service(db, logs, builder, lease=4.0, poll=0.1)
    owner.start()
    other = _service(db, logs, lease=4.0, poll=0.1)
    try:
        assert builder.started.wait(30)
        other.start()  # starting up does not take the owner's running build
        time.sleep(8.0)  # two leases: renewed all along, so the other worker takes nothing
        assert other._requeue_expired() == 0
        b = _build(db, build_id)
        assert (b.status, b.worker, b.attempts) == ("running", owner.worker_id, 1)
        builder.release.set()
        _wait(lambda: _build(db, build_id).status == "built")
    finally:
        owner.stop()
        other.stop()
    assert builder.calls == 1


def test_a_stopping_worker_hands_its_build_back_at_once_and_its_copy_stops(db: Database) -> None:
    space_id, (build_id,) = _space(db, "handback")
    logs = LogBus(db)
    slow = _Builder()
    first = _service(db, logs, slow, lease=30.0, poll=0.1)
    first.start()
    assert slow.started.wait(30)
    first.stop()

    b = _build(db, build_id)
    assert (b.status, b.worker, b.lease_until) == ("queued", None, None)  # at once, not after the 30 s lease
    _wait(lambda: not first._active)  # its copy stopped at its next log line, unfinished
    assert _build(db, build_id).status == "queued"
    assert "is stopping: it goes back to the queue" in "".join(e.data for e in logs.history(space_id, "build"))

    fast = _Builder()
    fast.release.set()
    second = _service(db, logs, fast, lease=30.0, poll=0.1)
    second.start()
    try:
        _wait(lambda: _build(db, build_id).status == "built")
    finally:
        second.stop()
    assert _build(db, build_id).attempts == 2


def test_a_build_taken_again_elsewhere_is_dropped_by_its_old_worker(db: Database) -> None:
    """A worker cut off from the database past its lease finds at its next renewal that the build went to
    another worker: its copy stops, and its finish would record nothing."""
    space_id, (build_id,) = _space(db, "partition")
    logs = LogBus(db)
    builder = _Builder()
    old = _service(db, logs, builder, lease=30.0, poll=0.1)
    old.start()
    try:
        assert builder.started.wait(30)
        with db.session() as s:  # what another worker does once the lease ran out
            s.execute(update(Build).where(Build.id == build_id).values(status="running", worker="elsewhere",
                                                                       lease_until=utcnow() + timedelta(hours=1)))
        old._renew()
        _wait(lambda: build_id not in old._active)
        old._finish(build_id, Artifact(kind="static", ref="", plan_digest="d", sha="a" * 40), "")  # a late finish
        b = _build(db, build_id)
        assert (b.status, b.worker, b.artifact) == ("running", "elsewhere", None)
        with db.session() as s:
            assert s.get(Space, space_id).artifact is None
    finally:
        old.stop()


def test_submit_announces_the_build_on_the_bus_after_the_commit(db: Database) -> None:
    space_id, _ = _space(db, "announce", builds=0)
    bus = MemoryBus()
    heard: list[dict] = []
    bus.subscribe("builds", heard.append)
    svc = _service(db, LogBus(db), bus=bus)
    with db.session() as s:
        svc.submit(s, s.get(Space, space_id))
        s.flush()
        assert heard == []  # nobody is told before the row can be read
    assert heard == [{}]
    with db.session() as s:
        assert s.scalar(select(Build.status).where(Build.space_id == space_id)) == "queued"


class _Preloading:
    """Builds the Space's one revision into an artifact that names this build's preload folder."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def build(self, plan, *, space_id, sha, context, variables, secrets, log, factory):  # noqa: ANN001, ANN201
        return Artifact(kind="static", ref="", plan_digest="d", sha=sha, preload=self.folder)


@pytest.mark.parametrize("folder, replaced", [("/preloads/new", True), ("/preloads/old", False)])
def test_the_same_revision_built_into_another_artifact_replaces_the_instance(db: Database, folder: str,
                                                                             replaced: bool) -> None:
    """A factory rebuild of the same commit that took a preloaded model's new revision must not leave the old
    instance serving the old files; an identical artifact leaves the running instance alone."""
    space_id, _ = _space(db, f"rebuilt-{replaced}")
    with db.session() as s:
        space = s.get(Space, space_id)
        space.artifact = Artifact("static", "", "d", "a" * 40, preload="/preloads/old").to_json()
        space.instance_sha = "a" * 40
    svc = _service(db, LogBus(db), builder=_Preloading(folder))  # type: ignore[arg-type]
    build_id = svc._claim()
    svc._run(build_id)
    with db.session() as s:
        space = s.get(Space, space_id)
        assert space.artifact["preload"] == folder
        assert (space.instance_sha is None) == replaced

"""Capacity is held by awake Spaces only: the real Capacity (quota, node usage, FIFO queue) under the real
reconciler, with a backend that only records (the live test with real apps: tests/platform/test_density_live.py).

A node here holds three cpu-basic Spaces. A fourth waits, and its message says so and what frees room; a Space
that goes to sleep is frozen and gives its request back, so the fourth starts; waking the frozen one then finds
no room: it is stopped (its memory given back too) and waits in the queue behind nobody, saying so; a static
Space the platform serves takes no request and no quota.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import DATABASES, migrated_databases
from sqlalchemy import select

from spaces.builder.plan import Artifact
from spaces.db.models import Account, Space
from spaces.db.session import Database
from spaces.domain.stages import SpaceStage
from spaces.runtime import quota as q
from spaces.runtime.capacity import Capacity, placement_json
from spaces.runtime.contracts import Phase
from spaces.runtime.fakes import PhaseBackend
from spaces.runtime.flavors import FlavorCatalog
from spaces.runtime.nodes import Node
from spaces.runtime.reconciler import Reconciler
from spaces.runtime.scheduler import Policy
from spaces.services.logs import LogBus

from test_reconciler_standby import SHA  # noqa: E402  (tests/unit is on sys.path)

NODE = Node("local", 0.3, 4096)  # 3 cpu-basic requests (0.1 core, 96 MiB each)


class Fleet:
    def __init__(self, db: Database, quotas: q.QuotaSettings | None = None) -> None:
        self.db, self.backend = db, PhaseBackend()
        self.capacity = Capacity(FlavorCatalog(), [NODE], quotas or q.QuotaSettings(), Policy())
        self.routes: list = []
        self.rec = Reconciler(db, self.backend, LogBus(db),  # type: ignore[arg-type]
                              start_instance=self._start, publish_route=self.routes.append, stop_frozen_after=3600,
                              reserve=lambda s, space, node=None: placement_json(self.capacity.reserve(s, space,
                                                                                                       node)))
        with db.session() as s:
            owner = Account(name="u", key="u")
            s.add(owner)
            s.commit()
            self.owner = owner.id

    def _start(self, s, space: Space, artifact: Artifact):  # noqa: ANN001, ANN202
        placement = self.capacity.reserve(s, space)
        s.execute(select(Space.id)).all()  # the platform's instance_spec reads the session (and autoflushes) here
        return self.backend.start(), placement_json(placement)

    def add(self, name: str, sdk: str = "gradio") -> str:
        kind = "static" if sdk == "static" else "venv"
        with self.db.session() as s:
            space = Space(owner_id=self.owner, name=name, repo_id=f"u/{name}", key=f"u/{name}",
                          subdomain=f"u-{name}", sdk=sdk, sha=SHA, stage=SpaceStage.APP_STARTING.value,
                          artifact=Artifact(kind, "" if kind == "static" else "/envs/x", "d", SHA).to_json())
            s.add(space)
            s.commit()
            return space.id

    def step(self, space_id: str, **change: object) -> Space:
        if change:
            with self.db.session() as s:
                space = s.get(Space, space_id)
                for k, v in change.items():
                    setattr(space, k, v)
                s.commit()
        self.rec.reconcile(space_id)
        with self.db.session() as s:
            space = s.get(Space, space_id)
            s.expunge(space)
            return space

    def run(self, space_id: str) -> Space:
        self.step(space_id)
        return self.step(space_id)

    def used(self) -> dict:
        with self.db.session() as s:
            return self.capacity.nodes_report(s)[0]["used"]


db = pytest.fixture(params=DATABASES, name="db")(migrated_databases("spaces_capacity"))


@pytest.fixture
def fleet(db: Database) -> Iterator[Fleet]:
    f = Fleet(db)
    yield f
    f.rec.stop()


def test_a_sleeping_space_gives_its_request_back_and_a_wake_without_room_waits_saying_so(fleet: Fleet) -> None:
    a, b, c, d = (fleet.add(n) for n in "abcd")
    for sid in (a, b, c):
        assert fleet.run(sid).stage == SpaceStage.RUNNING.value
    assert fleet.used() == {"cpu": pytest.approx(0.3), "memoryMB": 288, "spaces": 3, "asleep": 0, "static": 0}

    waiting = fleet.step(d)  # the node is full: d waits, next in line, and its page and route say what to do
    assert waiting.stage == SpaceStage.APP_STARTING.value and waiting.stage_reason == "waiting_for_capacity"
    assert waiting.stage_message.startswith("Waiting for cpu-basic capacity: next in line")
    assert "pause one of your running Spaces" in waiting.stage_message
    assert fleet.routes[-1].state == "starting" and fleet.routes[-1].message == waiting.stage_message
    with fleet.db.session() as s:
        assert [w["id"] for w in fleet.capacity.queue_report(s)] == ["u/d"]

    frozen = fleet.step(a, asleep=True)  # a sleeps: frozen, its memory kept, its request given back
    ref = frozen.instance["current"]["ref"]
    assert fleet.backend.phases[ref] == Phase.FROZEN
    assert fleet.used() == {"cpu": pytest.approx(0.2), "memoryMB": 192, "spaces": 2, "asleep": 1, "static": 0}
    assert fleet.run(d).stage == SpaceStage.RUNNING.value  # ... which d takes
    with fleet.db.session() as s:
        assert fleet.capacity.queue_report(s) == []

    woken = fleet.step(a, asleep=False)  # a visitor wakes a: no room to thaw it, so it is stopped and waits
    assert ref in fleet.backend.stopped and woken.instance is None
    assert woken.stage_reason == "waiting_for_capacity" and woken.stage_message.startswith(
        "Waiting for cpu-basic capacity: next in line")
    assert fleet.routes[-1].state == "starting"
    fleet.step(b, asleep=True)  # room again: a starts anew on the next step
    assert fleet.run(a).stage == SpaceStage.RUNNING.value
    assert fleet.used()["spaces"] == 3


def test_a_woken_space_thaws_in_place_when_its_node_has_room(fleet: Fleet) -> None:
    a = fleet.add("a")
    fleet.run(a)
    ref = fleet.step(a, asleep=True).instance["current"]["ref"]
    assert fleet.used()["spaces"] == 0
    woken = fleet.step(a, asleep=False)
    assert woken.instance["current"]["ref"] == ref and fleet.backend.phases[ref] == Phase.RUNNING
    assert woken.instance["placement"]["node"] == "local" and fleet.used()["spaces"] == 1
    assert fleet.backend.started == [ref]  # thawed, not started again


def test_the_queue_is_first_come_first_served(fleet: Fleet) -> None:
    ids = [fleet.add(n) for n in "abcde"]
    for sid in ids[:3]:
        fleet.run(sid)
    assert fleet.step(ids[3]).stage_message.startswith("Waiting for cpu-basic capacity: next in line")
    later = fleet.step(ids[4])
    assert later.stage_message.startswith("Waiting for cpu-basic capacity: 1 Space ahead of this one")
    fleet.step(ids[0], asleep=True)  # one slot frees: the later one may not jump the queue
    assert fleet.step(ids[4]).instance is None
    assert fleet.run(ids[3]).stage == SpaceStage.RUNNING.value


def test_static_spaces_take_no_request_and_no_quota(db: Database) -> None:
    fleet = Fleet(db, q.QuotaSettings(free_running={"cpu-basic": 1}))
    try:
        statics = [fleet.add(f"site{i}", "static") for i in range(5)]
        for sid in statics:
            assert fleet.run(sid).stage == SpaceStage.RUNNING.value
        assert fleet.used() == {"cpu": 0, "memoryMB": 0, "spaces": 0, "asleep": 0, "static": 5}
        app = fleet.add("app")  # the one running cpu-basic Space the quota allows is still free for an app
        assert fleet.run(app).stage == SpaceStage.RUNNING.value
        with fleet.db.session() as s:
            owner = s.scalars(select(Account)).one()
            assert fleet.capacity.running_counts(s, owner) == {"cpu-basic": 1}
    finally:
        fleet.rec.stop()


def test_a_static_space_costs_nothing_to_run_on_any_hardware(db: Database) -> None:
    from datetime import datetime, timedelta, timezone

    from spaces.db.models import UsageInterval

    fleet = Fleet(db)
    try:
        site, app = fleet.add("site", "static"), fleet.add("app")
        start = datetime.now(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        with fleet.db.session() as s:
            for sid in (site, app):
                s.get(Space, sid).hardware = "cpu-upgrade"
                s.add(UsageInterval(account_id=fleet.owner, space_id=sid, flavor="cpu-upgrade", started_at=start,
                                    ended_at=start + timedelta(hours=1)))
            s.commit()
            _, usage = fleet.capacity.metered(s, s.get(Account, fleet.owner))
        price = FlavorCatalog().get("cpu-upgrade").price_per_hour_usd
        assert usage.by_space == {app: round(price * 1_000_000)}  # the app's hour only
    finally:
        fleet.rec.stop()

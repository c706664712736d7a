"""The reconciler's standbys, step by step, against a backend that only records (the real one:
tests/platform/test_platform_standby.py).

A Space stopped after its long sleep gets a standby where the platform's glue gives it one (a Streamlit Space on
the local backend): a fresh instance, frozen once it listens, holding no capacity and billed nothing. A visitor's
wake claims its capacity (quota, then a node) and thaws it; a refusal stops it and the Space starts anew, which
reports the refusal. Memory pressure stops the instances that served visitors before the standbys, and stopping
a standby leaves nothing; a standby is replaced only when what a start would run changed, and a Space asleep
longer than ``stop_standby_after`` keeps none.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from spaces.builder.plan import Artifact
from spaces.db.models import Account, Space, UsageInterval
from spaces.db.session import Database
from spaces.domain.stages import SpaceStage
from spaces.errors import QuotaExceeded
from spaces.runtime.contracts import Handle, Phase
from spaces.runtime.fakes import PhaseBackend
from spaces.runtime.reconciler import Reconciler, RouteUpdate
from spaces.services.logs import LogBus

SHA = "a" * 40
PLACEMENT = {"node": "local", "flavor": "cpu-basic", "cpu": 2.0, "memory_mb": 16384, "gpus": []}


class World:
    def __init__(self, db: Database, sdk: str, name: str = "demo") -> None:
        self.db, self.backend = db, PhaseBackend()
        self.routes: list[RouteUpdate] = []
        self.reserves: list[str] = []
        self.refuse: Exception | None = None  # what reserve (and so a start) raises
        self.rec = Reconciler(db, self.backend, LogBus(db),  # type: ignore[arg-type]
                              start_instance=self._start_instance, publish_route=self.routes.append,
                              stop_frozen_after=3600.0, start_standby=self._start_standby, reserve=self._reserve)
        with db.session() as s:
            owner = s.scalars(select(Account).where(Account.name == "u")).first() or Account(name="u", key="u")
            s.add(owner)
            s.flush()
            space = Space(owner_id=owner.id, name=name, repo_id=f"u/{name}", key=f"u/{name}", subdomain=f"u-{name}",
                          sdk=sdk, sha=SHA, stage=SpaceStage.APP_STARTING.value,
                          artifact=Artifact("venv", "/envs/x", "digest", SHA).to_json())
            s.add(space)
            s.commit()
            self.id = space.id

    def _reserve(self, s, space: Space, node: str | None = None) -> dict:  # noqa: ANN001
        self.reserves.append(space.id)
        if self.refuse is not None:
            raise self.refuse
        return dict(PLACEMENT)

    def _start_instance(self, s, space: Space, artifact: Artifact) -> tuple[Handle, dict]:  # noqa: ANN001
        placement = self._reserve(s, space)
        return self.backend.start(), placement

    def _start_standby(self, s, space: Space, artifact: Artifact) -> Handle | None:  # noqa: ANN001
        return self.backend.start() if space.sdk == "streamlit" else None  # the platform's glue decides per SDK

    def step(self, **change: object) -> Space:
        if change:
            with self.db.session() as s:
                space = s.get(Space, self.id)
                for k, v in change.items():
                    setattr(space, k, v)
                s.commit()
        self.rec.reconcile(self.id)
        return self.space()

    def space(self) -> Space:
        with self.db.session() as s:
            space = s.get(Space, self.id)
            s.expunge(space)
            return space

    def open_usage(self) -> int:
        with self.db.session() as s:
            return len(s.scalars(select(UsageInterval).where(UsageInterval.ended_at.is_(None))).all())

    def current(self) -> str | None:
        inst = self.space().instance
        return inst["current"]["ref"] if inst else None


@pytest.fixture
def world(db: Database) -> Iterator[World]:
    w = World(db, "streamlit")
    yield w
    w.rec.stop()  # ends the readiness watchers


def asleep_a_long_time(w: World) -> str:
    """Started, running, put to sleep (frozen), then past stop_frozen_after: returns the first instance's ref."""
    assert w.step().stage == SpaceStage.APP_STARTING.value
    assert w.step().stage == SpaceStage.RUNNING.value
    first = w.current()
    w.step(asleep=True)
    assert w.backend.phases[first] == Phase.FROZEN
    w.rec.stop_frozen_after = 0.0
    w.step()
    return first


def test_a_space_stopped_after_its_long_sleep_leaves_a_frozen_standby_that_holds_no_capacity(world: World) -> None:
    first = asleep_a_long_time(world)
    standby = world.current()
    assert first in world.backend.stopped and standby not in (None, first)
    inst = world.space().instance
    assert inst["standby"] is True and inst["placement"] is None  # capacity.node_usage counts no placement
    assert world.open_usage() == 0
    world.step()  # its watcher saw it listen: frozen before anyone used it
    assert world.backend.phases[standby] == Phase.FROZEN
    for _ in range(3):  # the long-sleep rule does not apply to it: no stop, no start, however long it sleeps
        space = world.step()
    assert world.current() == standby and world.backend.started == [first, standby]
    assert space.stage == SpaceStage.SLEEPING.value and world.routes[-1].state == "sleeping"
    assert world.open_usage() == 0


def test_a_visitor_wakes_the_standby_which_claims_its_capacity_and_is_thawed(world: World) -> None:
    asleep_a_long_time(world)
    world.step()
    standby, reserves = world.current(), len(world.reserves)
    space = world.step(asleep=False)
    assert len(world.reserves) == reserves + 1  # quota and a node, as any start
    assert world.current() == standby and world.backend.phases[standby] == Phase.RUNNING
    assert "standby" not in space.instance and space.instance["placement"] == PLACEMENT
    assert space.stage == SpaceStage.RUNNING.value and world.routes[-1].state == "running"
    assert world.routes[-1].upstream == ("127.0.0.1", 7000 + int(standby))
    assert world.open_usage() == 1 and len(world.backend.started) == 2
    world.step(asleep=True)  # the next sleep treats it as any instance: frozen first, stopped after the long sleep
    assert world.backend.phases[standby] == Phase.FROZEN
    world.step()
    assert standby in world.backend.stopped and world.space().instance["standby"] is True


def test_a_wake_the_quota_refuses_stops_the_standby_and_says_why(world: World) -> None:
    asleep_a_long_time(world)
    world.step()
    standby = world.current()
    world.refuse = QuotaExceeded("You have used all your cpu-basic hours this month.")
    space = world.step(asleep=False)
    assert standby in world.backend.stopped and space.instance is None
    assert space.stage_reason == "quota_exceeded" and "hours this month" in space.stage_message
    assert world.routes[-1].state == "error" and world.open_usage() == 0


def test_memory_pressure_stops_instances_that_served_visitors_first_and_their_standbys_last(db: Database) -> None:
    spaces = []
    for name in ("old", "new"):  # both asleep and frozen; "old" the longest
        w = World(db, "streamlit", name)
        w.step()
        w.step()
        w.step(asleep=True)
        spaces.append(w)
    old, new = spaces
    try:
        first_old, first_new = old.current(), new.current()
        pressure = True
        old.rec.memory_pressure = new.rec.memory_pressure = lambda: pressure

        def sweep(w: World) -> None:  # what the reconciler's loop does at each sweep, for one Space
            w.rec._choose_evictions()
            w.step()

        sweep(old)  # the longest asleep: stopped, and a standby in its place
        standby_old = old.current()
        assert first_old in old.backend.stopped and old.space().instance["standby"] is True
        old.step()
        assert old.backend.phases[standby_old] == Phase.FROZEN
        new.rec._evict = old.rec._evict = set()
        old.rec._choose_evictions()  # the next choice: the other instance that served visitors, not the standby
        assert old.rec._evict == {new.id}
        new.rec._evict = old.rec._evict
        new.step()
        assert first_new in new.backend.stopped and new.space().instance["standby"] is True
        new.step()
        old.rec._choose_evictions()  # only standbys are left: the longest-asleep one, which leaves nothing
        assert old.rec._evict == {old.id}
        assert old.step().instance is None and standby_old in old.backend.stopped
        assert old.step().instance is None and len(old.backend.started) == 2  # none came to replace it
        pressure = False
        old.rec._evict.clear()
        old.rec._choose_evictions()
        assert not old.rec._evict
    finally:
        old.rec.stop()
        new.rec.stop()


def test_a_standby_is_replaced_when_its_variables_change_and_never_when_it_dies(world: World) -> None:
    asleep_a_long_time(world)
    world.step()
    old = world.current()
    world.step(instance_sha=None)  # what SpaceService.settings_changed does when a variable or secret changes
    new = world.current()
    assert old in world.backend.stopped and new not in (None, old)
    assert world.space().instance_sha == SHA
    world.step()
    assert world.backend.phases[new] == Phase.FROZEN
    world.backend.phases[new] = Phase.EXITED  # e.g. killed by the kernel while frozen
    assert world.step().instance is None
    assert world.step().instance is None and new in world.backend.stopped and len(world.backend.started) == 3


def test_a_standby_that_does_not_listen_yet_is_watched_and_a_wake_waits_for_it(world: World) -> None:
    world.backend.listening = False
    world.backend.phases.clear()
    assert world.step().stage == SpaceStage.APP_STARTING.value
    world.backend.phases[world.current()] = Phase.RUNNING
    world.step()
    world.step(asleep=True)
    world.rec.stop_frozen_after = 0.0
    world.step()
    standby = world.current()
    world.step()  # still starting: neither stopped nor frozen
    assert world.backend.phases[standby] == Phase.STARTING
    space = world.step(asleep=False)
    assert world.current() == standby and space.instance["placement"] == PLACEMENT
    world.backend.phases[standby] = Phase.RUNNING
    assert world.step().stage == SpaceStage.RUNNING.value and world.open_usage() == 1


def test_a_space_nobody_visits_any_more_loses_its_standby_and_none_comes_when_they_are_off(world: World) -> None:
    asleep_a_long_time(world)
    world.step()
    standby = world.current()
    world.rec.stop_standby_after = 0.0  # as if a week had passed (and what turns standbys off)
    assert world.step().instance is None and standby in world.backend.stopped
    assert world.step().instance is None and len(world.backend.started) == 2  # none came to replace it
    world.step(asleep=False)
    world.step()
    first = world.current()
    world.step(asleep=True)
    world.rec.stop_frozen_after = 0.0
    assert world.step().instance is None and first in world.backend.stopped  # off: a plain stop


def test_a_space_whose_sdk_gets_no_standby_is_stopped_after_its_long_sleep(db: Database) -> None:
    w = World(db, "gradio")
    try:
        first = asleep_a_long_time(w)
        assert first in w.backend.stopped and w.space().instance is None and w.backend.started == [first]
    finally:
        w.rec.stop()

"""The reconciler's applier, step by step, against a backend that only records: what decide() asks for happens,
committed before each act (the rules themselves: tests/runtime_pure/test_decide.py; the real backend:
tests/platform and tests/runtime_local)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from harness import DATABASES, migrated_databases
from sqlalchemy import select

from spaces.builder.plan import Artifact
from spaces.db.models import Account, Space, UsageInterval
from spaces.db.session import Database
from spaces.domain.stages import SpaceStage
from spaces.errors import QuotaExceeded, WaitingForCapacity
from spaces.runtime.contracts import Handle, Phase
from spaces.runtime.fakes import PhaseBackend
from spaces.runtime.reconciler import Reconciler, RouteUpdate
from spaces.services.logs import LogBus

A, B = "a" * 40, "b" * 40
PLACEMENT = {"node": "local", "flavor": "cpu-basic", "cpu": 2.0, "memory_mb": 16384, "gpus": []}


class World:
    def __init__(self, db: Database) -> None:
        self.db, self.backend = db, PhaseBackend()
        self.backend.exit_code, self.backend.exit_message = 1, "oops"
        self.routes: list[RouteUpdate] = []
        self.refuse: Exception | None = None
        self.rec = Reconciler(db, self.backend, LogBus(db), start_instance=self._start,  # type: ignore[arg-type]
                              publish_route=self.routes.append)
        with db.session() as s:
            owner = Account(name="u", key="u")
            s.add(owner)
            s.flush()
            space = Space(owner_id=owner.id, name="demo", repo_id="u/demo", key="u/demo", subdomain="u-demo",
                          sdk="gradio", sha=A, stage=SpaceStage.APP_STARTING.value, artifact=self.artifact(A))
            s.add(space)
            s.commit()
            self.id = space.id

    @staticmethod
    def artifact(sha: str) -> dict:
        return Artifact("venv", "/envs/x", "digest", sha).to_json()

    def _start(self, s, space: Space, artifact: Artifact) -> tuple[Handle, dict]:  # noqa: ANN001
        if self.refuse is not None:
            raise self.refuse
        handle = self.backend.start()
        return handle, {**PLACEMENT, "of": handle.ref}  # which start placed it: a revert restores the right one

    def step(self, **change: object) -> Space:
        if change:
            with self.db.session() as s:
                space = s.get(Space, self.id)
                for k, v in change.items():
                    setattr(space, k, v)
                s.commit()
        self.rec.reconcile(self.id)
        with self.db.session() as s:
            space = s.get(Space, self.id)
            s.expunge(space)
            return space

    def refs(self, space: Space) -> tuple[str | None, str | None]:
        inst = space.instance or {}
        return tuple((inst.get(k) or {}).get("ref") for k in ("current", "previous"))  # type: ignore[return-value]

    def edit_record(self, **fields: object) -> None:
        """Change the instance record as time would (``since``, ``ready_at``), without the step noticing."""
        with self.db.session() as s:
            space = s.get(Space, self.id)
            space.instance = {**space.instance, **fields}
            s.commit()

    def open_usage(self) -> int:
        with self.db.session() as s:
            return len(s.scalars(select(UsageInterval).where(UsageInterval.ended_at.is_(None))).all())


db = pytest.fixture(params=DATABASES, name="db")(migrated_databases("spaces_reconciler"))


@pytest.fixture
def world(db: Database) -> Iterator[World]:
    w = World(db)
    yield w
    w.rec.stop()


def running(w: World) -> Space:
    w.step()
    space = w.step()
    assert space.stage == SpaceStage.RUNNING.value and w.routes[-1].state == "running"
    return space


def test_a_new_revision_starts_beside_the_old_one_which_serves_until_the_new_one_answers(world: World) -> None:
    old = world.refs(running(world))[0]
    world.backend.listening = False
    space = world.step(artifact=world.artifact(B), sha=B)
    new = world.refs(space)[0]
    assert world.refs(space) == (new, old) and new != old
    assert space.stage == SpaceStage.RUNNING_APP_STARTING.value and space.instance_sha == B
    assert world.backend.phases[old] == Phase.RUNNING and world.routes[-1].state == "running"  # old still serves
    world.backend.phases[new] = Phase.RUNNING
    space = world.step()
    assert world.refs(space) == (new, None) and old in world.backend.stopped
    assert space.stage == SpaceStage.RUNNING.value and world.routes[-1].upstream == ("127.0.0.1", 7000 + int(new))


def test_a_crash_says_why_backs_off_and_starts_again_after(world: World) -> None:
    first = world.refs(running(world))[0]
    world.backend.phases[first] = Phase.EXITED
    space = world.step()
    assert space.instance is None and space.restarts == 1 and space.retry_at is not None
    assert space.stage_reason == "app_crashed" and "exited with code 1; restarting in 2 s" in space.stage_message
    assert world.routes[-1].state == "error" and world.open_usage() == 0
    assert world.step().instance is None  # backing off: no start yet
    space = world.step(retry_at=None)
    assert world.refs(space)[0] not in (None, first)
    assert world.step().restarts == 1  # answering proves little until it has answered for crash_reset_after
    world.edit_record(ready_at=time.time() - 601)
    assert world.step().restarts == 0


def test_an_app_answering_then_crashing_soon_after_gives_up_too(world: World) -> None:
    space = running(world)
    for crash in range(1, 6):
        handle = world.refs(space)[0]
        assert handle is not None and space.instance.get("ready_at"), f"crash {crash}: not started, or not answering"
        world.backend.phases[handle] = Phase.EXITED  # it answered, then crashed within crash_reset_after
        space = world.step()
        assert space.restarts == crash
        space = world.step(retry_at=None)
        space = world.step()  # it answers again
    assert space.instance is None and space.stage_reason == "crashed_repeatedly" and world.backend.phases == {}


def test_a_start_up_timeout_counts_as_a_failure_and_quotes_the_log_tail(world: World) -> None:
    world.backend.listening = False  # it never opens its port
    space = world.step()
    handle = world.refs(space)[0]
    assert space.instance["since"] > time.time() - 60  # the start is dated: the timeout counts from it
    world.backend.lines[handle] = [f"line {i}" for i in range(100)]
    assert world.refs(world.step())[0] == handle  # within its timeout (30 min): watched
    world.edit_record(since=time.time() - 1801)
    space = world.step()
    assert space.instance is None and handle in world.backend.stopped and space.restarts == 1
    assert space.retry_at is not None and world.routes[-1].state == "error" and world.open_usage() == 0
    assert space.stage_reason == "startup_timeout", space.stage_message
    assert space.stage_message.startswith("The app did not open port 7860 within its startup_duration_timeout of "
                                          "1800 s; restarting in 2 s."), space.stage_message
    assert space.stage_message.endswith("Last log lines:\n" + "\n".join(f"line {i}" for i in range(70, 100)))
    for failure in range(2, 6):
        space = world.step(retry_at=None)
        world.edit_record(since=time.time() - 1801)
        space = world.step()
        assert space.restarts == failure and space.instance is None
    assert space.stage_reason == "crashed_repeatedly" and "did not open port 7860" in space.stage_message
    assert world.step(retry_at=None).instance is None and world.backend.phases == {}  # not started again


def test_the_operators_default_start_up_timeout_applies_where_readme_sets_none(world: World) -> None:
    world.rec.default_startup_timeout = 60.0
    world.backend.listening = False
    world.step()
    world.edit_record(since=time.time() - 61)
    space = world.step()
    assert space.stage_reason == "startup_timeout" and "startup_duration_timeout of 60 s" in space.stage_message
    space = world.step(retry_at=None, card_data={"startup_duration_timeout": "2m"})  # README's own wins
    world.edit_record(since=time.time() - 61)
    assert world.step().instance is not None


def test_a_new_revision_failing_leaves_the_old_one_serving_and_managed(world: World) -> None:
    old = world.refs(running(world))[0]
    old_placement = world.step().instance["placement"]
    world.backend.listening = False
    space = world.step(artifact=world.artifact(B), sha=B)
    for failure in range(1, 6):
        new = world.refs(space)[0]
        assert world.refs(space) == (new, old) and new != old, f"failure {failure}: not started beside the old one"
        world.backend.phases[new] = Phase.EXITED
        space = world.step()
        assert world.refs(space) == (old, None) and new in world.backend.stopped and space.restarts == failure
        assert world.backend.phases[old] == Phase.RUNNING and old not in world.backend.stopped
        assert space.instance["placement"] == old_placement and space.instance_sha is None
        assert world.routes[-1].state == "running" and world.routes[-1].upstream[1] == 7000 + int(old)
        assert world.open_usage() == 1 and space.stage == SpaceStage.RUNTIME_ERROR.value
        assert "the previous revision keeps serving" in space.stage_message and "oops" in space.stage_message
        space = world.step(retry_at=None)
    assert space.stage_reason == "crashed_repeatedly" and "not started again" in space.stage_message
    space = world.step()
    assert world.refs(space) == (old, None) and space.stage_reason == "crashed_repeatedly"  # the error stays
    assert world.routes[-1].state == "running" and set(world.backend.phases) == {old}
    space = world.step(restarts=0, instance_sha=None)  # what a push or a restart does: B is tried again
    assert world.refs(space)[1] == old and world.refs(space)[0] not in (None, old)


def test_a_newer_revision_mid_swap_replaces_the_unanswered_one_and_the_old_one_serves_on(world: World) -> None:
    old = world.refs(running(world))[0]
    world.backend.listening = False
    first = world.refs(world.step(artifact=world.artifact(B), sha=B))[0]
    space = world.step(artifact=world.artifact("c" * 40), sha="c" * 40)
    newest = world.refs(space)[0]
    assert world.refs(space) == (newest, old) and newest not in (first, old) and space.instance_sha == "c" * 40
    assert first in world.backend.stopped and set(world.backend.phases) == {old, newest}  # nothing unmanaged
    world.backend.phases[newest] = Phase.RUNNING
    space = world.step()
    assert world.refs(space) == (newest, None) and set(world.backend.phases) == {newest}


def test_crashing_at_every_start_gives_up_holding_nothing_until_a_restart(world: World) -> None:
    world.backend.listening = False  # it never answers: it crashes at start, every time
    space = world.step()
    for crash in range(1, 6):
        handle = world.refs(space)[0]
        assert handle is not None, f"crash {crash}: not started again"
        world.backend.phases[handle] = Phase.EXITED
        space = world.step()
        assert space.instance is None and space.restarts == crash and world.open_usage() == 0
        space = world.step(retry_at=None)  # the backoff is over (its figures: tests/runtime_pure/test_decide.py)
    assert space.instance is None and space.retry_at is None and space.hardware_current is None
    assert space.stage == SpaceStage.RUNTIME_ERROR.value and space.stage_reason == "crashed_repeatedly"
    assert "until the next push or a restart" in space.stage_message and "oops" in space.stage_message
    assert world.routes[-1].state == "error"
    assert world.step().instance is None and world.backend.phases == {}  # stays stopped, nothing runs
    assert world.refs(world.step(restarts=0))[0] is not None  # what a push or a restart does: it starts again


def test_a_quota_refusal_never_touches_what_runs(world: World) -> None:
    old = world.refs(running(world))[0]
    world.refuse = QuotaExceeded("You have used all your cpu-basic hours this month.")
    space = world.step(artifact=world.artifact(B), sha=B)
    assert world.refs(space) == (old, None) and world.backend.phases[old] == Phase.RUNNING
    assert space.stage == SpaceStage.RUNNING.value and space.stage_reason == "quota_exceeded"
    assert world.open_usage() == 1


def test_waiting_for_capacity_keeps_its_place_in_the_queue(world: World) -> None:
    world.refuse = WaitingForCapacity("Waiting for cpu-basic capacity: next in line.", code="Full")
    space = world.step()
    since = space.queued_at
    assert since is not None and space.instance is None
    assert (space.stage, space.stage_reason) == (SpaceStage.APP_STARTING.value, "waiting_for_capacity")
    assert world.routes[-1].state == "starting" and "next in line" in world.routes[-1].message
    assert world.step().queued_at == since  # FIFO: the first refusal's time
    world.refuse = None
    space = world.step()
    assert space.queued_at is None and space.instance is not None


def test_a_frozen_space_woken_is_thawed_and_served_in_one_step(world: World) -> None:
    first = world.refs(running(world))[0]
    space = world.step(asleep=True)
    assert world.backend.phases[first] == Phase.FROZEN and space.stage == SpaceStage.SLEEPING.value
    assert world.routes[-1].state == "sleeping" and world.open_usage() == 0
    space = world.step(asleep=False)
    assert world.backend.phases[first] == Phase.RUNNING and space.stage == SpaceStage.RUNNING.value
    assert world.routes[-1].state == "running" and world.open_usage() == 1


def test_a_step_whose_desired_state_changed_meanwhile_is_rolled_back_and_looked_at_again(world: World) -> None:
    running(world)
    with world.db.session() as s:  # as if it had not been seen answering yet
        s.get(Space, world.id).stage = SpaceStage.APP_STARTING.value
        s.commit()

    def pause_meanwhile() -> None:  # an API write lands while the step observes
        world.backend.on_poll = None
        with world.db.session() as s:
            s.get(Space, world.id).paused = True
            s.commit()

    world.backend.on_poll = pause_meanwhile
    routes = len(world.routes)
    world.rec.reconcile(world.id)
    with world.db.session() as s:
        assert s.get(Space, world.id).stage == SpaceStage.APP_STARTING.value  # RUNNING was not committed
    assert world.id in world.rec._pending and len(world.routes) == routes + 1  # nudged to look again
    space = world.step()
    assert space.stage == SpaceStage.PAUSED.value and space.instance is None

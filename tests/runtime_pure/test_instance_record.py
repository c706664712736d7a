"""The instance record on the Space row: typed in the code, the same JSON in the database as before it was typed."""

from __future__ import annotations

import pytest

from spaces.runtime.contracts import Handle
from spaces.runtime.instance import InstanceRecord

NEW = Handle("local", "41", "local", {"host": "127.0.0.1", "port": 41001, "started_at": 1.5})
OLD = Handle("local", "40", "local", {"host": "127.0.0.1", "port": 41000})
PLACEMENT = {"node": "local", "flavor": "cpu-basic", "cpu": 2.0, "memory_mb": 16384, "gpus": [], "note": None}

# the shapes earlier releases wrote, exactly as they wrote them
STORED = [
    {"current": NEW.to_json(), "previous": None, "placement": PLACEMENT},
    {"current": NEW.to_json(), "previous": OLD.to_json(), "placement": PLACEMENT},
    {"current": NEW.to_json(), "previous": None, "placement": None, "standby": True, "hardware": "cpu-basic",
     "since": 1700000000.25},
]


@pytest.mark.parametrize("stored", STORED)
def test_a_stored_record_reads_and_writes_back_the_same(stored: dict) -> None:
    record = InstanceRecord.from_json(stored)
    assert record is not None and record.current == NEW
    assert record.to_json() == stored


def test_what_each_shape_means() -> None:
    running, swapping, standby = (InstanceRecord.from_json(s) for s in STORED)
    assert running.previous is None and not running.standby and running.placement["node"] == "local"
    assert swapping.previous == OLD and swapping.handles() == (NEW, OLD)
    assert standby.standby and standby.placement is None and standby.hardware == "cpu-basic"
    assert standby.since == 1700000000.25


def test_nothing_recorded_is_none() -> None:
    assert InstanceRecord.from_json(None) is None
    assert InstanceRecord.from_json({}) is None
    assert InstanceRecord.from_json({"current": None, "previous": None}) is None


def test_the_transitions_write_the_shapes_the_reconciler_wrote() -> None:
    assert InstanceRecord.started(NEW, PLACEMENT, previous=OLD).to_json() == STORED[1]
    assert InstanceRecord.from_json(STORED[1]).without_previous().to_json() == STORED[0]
    assert InstanceRecord.of_standby(NEW, "cpu-basic", 1700000000.25).to_json() == STORED[2]
    claimed = InstanceRecord.from_json(STORED[2]).claimed(PLACEMENT)
    # a woken standby is an instance like any, and its start-up timeout still counts from its start
    assert claimed.to_json() == {**STORED[0], "since": 1700000000.25} and not claimed.standby


def test_a_start_is_dated_and_its_first_answer_kept() -> None:
    record = InstanceRecord.started(NEW, PLACEMENT, since=1700000000.5).answered(1700000003.0)
    assert record.to_json() == {**STORED[0], "since": 1700000000.5, "ready_at": 1700000003.0}
    assert InstanceRecord.from_json(record.to_json()) == record


def test_an_abandoned_swap_gives_the_previous_instance_its_own_placement_back() -> None:
    old_placement = {**PLACEMENT, "node": "other"}
    swapping = InstanceRecord.started(NEW, PLACEMENT, previous=OLD, since=2.0, previous_placement=old_placement)
    stored = swapping.to_json()
    assert stored["previous_placement"] == old_placement
    reverted = InstanceRecord.from_json(stored).reverted()
    assert reverted == InstanceRecord(OLD, None, old_placement) and reverted.to_json()["placement"] == old_placement
    assert "previous_placement" not in swapping.without_previous().to_json()  # the swap done: nothing to go back to

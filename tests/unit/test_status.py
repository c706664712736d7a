"""The status every page shows (spaces.domain.status.derive): one derivation from what the database records."""

from __future__ import annotations

import pytest

from spaces.domain.status import (
    STEPS,
    WAKE_HINT,
    Observed,
    derive,
    phase_of,
    step_states,
)


def states(st) -> dict[str, str]:  # noqa: ANN001
    return dict(step_states(st))


def test_a_queued_build_is_on_the_queued_step_and_says_so() -> None:
    st = derive(Observed("BUILDING", "build_queued", "Build of 1a2b3c4 is queued.", build="queued"))
    assert (st.step, st.busy, st.failed, st.view) == ("queued", True, False, "progress")
    assert states(st) == {"queued": "current", "building": "todo", "starting": "todo", "running": "todo"}
    assert st.headline == "Waiting for a builder" and st.phase is None


@pytest.mark.parametrize("line, phase", [("fetching   Checking out 1a2b3c4\n", "fetching the code"),
                                         ("installing + gradio==5.0\n", "installing packages"),
                                         ("resolving  sdk gradio\n", "resolving the environment"),
                                         ("some output without a phase\n", "starting the build")])
def test_a_running_build_shows_the_phase_of_its_newest_line(line: str, phase: str) -> None:
    st = derive(Observed("BUILDING", "building", "Building 1a2b3c4.", build="running", phase=phase_of(line)))
    assert (st.step, st.phase, st.busy) == ("building", phase, True)
    assert states(st) == {"queued": "done", "building": "current", "starting": "todo", "running": "todo"}


def test_a_finished_build_is_never_shown_as_building_or_queued() -> None:
    # the stale "Building... queued" of issue 24: once the build row is done the stage moved on, and so does this
    st = derive(Observed("APP_STARTING", "starting", "Built; starting the app.", build="built"))
    assert (st.step, st.phase, st.view, st.label) == ("starting", None, "app", "Starting")
    assert states(st)["building"] == "done" and states(st)["queued"] == "done"
    assert "queued" not in st.headline.lower() and "build" not in st.headline.lower()


def test_a_newer_build_queued_after_a_running_one_is_queued_again() -> None:
    st = derive(Observed("RUNNING_BUILDING", "build_queued", "Build of 2b3c4d5 is queued.", build="queued"))
    assert (st.step, st.view, st.label) == ("queued", "app", "Running · building")


def test_running_is_the_last_step_done_and_nothing_spins() -> None:
    st = derive(Observed("RUNNING", "running", "The app is running.", build="built"))
    assert (st.step, st.busy, st.banner, st.view, st.tone) == ("running", False, None, "app", "ok")
    assert set(states(st).values()) == {"done"}


@pytest.mark.parametrize("stage, at", [("BUILD_ERROR", "building"), ("RUNTIME_ERROR", "starting"),
                                       ("CONFIG_ERROR", "queued"), ("NO_APP_FILE", "queued")])
def test_an_error_stops_the_stepper_at_the_step_that_failed(stage: str, at: str) -> None:
    st = derive(Observed(stage, "x", "it broke", build="failed"))
    assert (st.step, st.failed, st.busy, st.view, st.tone, st.message) == (at, True, False, "error", "error", "it broke")
    assert states(st)[at] == "failed" and st.headline == st.label  # never "Waiting for a builder" (the step)
    assert [s for s in STEPS if states(st)[s] == "done"] == list(STEPS[:STEPS.index(at)])


def test_the_sleeping_banner_says_wake_once() -> None:
    said = derive(Observed("SLEEPING", "idle", "Asleep after 2 days without visitors; the next visit wakes it."))
    assert said.banner == "sleeping" and said.message.lower().count("wake") == 1
    default = derive(Observed("SLEEPING", "idle", ""), sleep_after="2 days")
    assert default.message.startswith("It had no visitors for 2 days") and default.message.endswith(WAKE_HINT)
    assert default.message.lower().count("wake") == 1 and (default.step, default.busy) == (None, False)
    stopped = derive(Observed("STOPPED", "idle", "Stopped to free its GPU."))
    assert (stopped.banner, stopped.headline) == ("stopped", "This Space is stopped")


def test_the_banner_goes_when_the_space_wakes() -> None:
    for stage in ("APP_STARTING", "RUNNING", "RUNNING_APP_STARTING"):
        st = derive(Observed(stage, "starting", "Starting the app."))
        assert st.banner is None and "sleep" not in st.message.lower()


def test_waiting_for_capacity_is_starting_with_the_queue_sentence() -> None:
    msg = "Waiting for cpu-basic capacity: 2 Spaces ahead."
    st = derive(Observed("APP_STARTING", "waiting_for_capacity", msg))
    assert (st.step, st.busy, st.message) == ("starting", True, msg)
    assert st.headline == "This Space is waiting for room on the server"  # not "waking up", not "Starting"


def test_a_wake_under_way_says_so_once_on_the_sleeping_banner() -> None:
    for stage in ("SLEEPING", "STOPPED"):
        st = derive(Observed(stage, "idle", "This Space is asleep; opening it wakes it up.", waking=True))
        assert (st.banner, st.label, st.tone, st.headline) == (stage.lower(), "Waking up", "busy",
                                                                "This Space is waking up")
        assert "sleep" not in st.message.lower() and "wake" not in st.message.lower()
        assert (st.view, st.step) == ("app", None)
    assert derive(Observed("APP_STARTING", "starting", "Starting.", waking=True)).headline == "Starting…"


def test_paused_is_off_the_stepper() -> None:
    st = derive(Observed("PAUSED", "paused_by_owner", "Paused."))
    assert (st.view, st.step, st.busy, st.headline) == ("paused", None, False, "This Space is paused")


def test_phase_of_reads_only_known_phases() -> None:
    assert phase_of("built      Build of 1a2b3c4 finished") == "built"
    assert phase_of("") is None and phase_of("   ") is None and phase_of("Traceback (most recent call last)") is None

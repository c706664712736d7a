"""The reconciler's rules as a table: (what is wanted, what is on record, what the backend shows, policy, now) ->
the actions of one step (spaces.runtime.decide). The applier is tested with a recording backend in
tests/unit/test_reconciler_*.py and for real in tests/platform and tests/runtime_local."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from spaces.domain.stages import SpaceStage
from spaces.runtime.contracts import Handle, Observed, Phase
from spaces.runtime.decide import (
    Claim,
    Crashed,
    Desired,
    Freeze,
    NotifyReady,
    Policy,
    Queue,
    Refusal,
    RetryLater,
    Revert,
    Route,
    RouteState,
    Running,
    SetStage,
    Start,
    StartStandby,
    StopInstance,
    StopPrevious,
    Thaw,
    WatchReady,
    decide,
    refused,
    started,
)
from spaces.runtime.instance import InstanceRecord

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
A, B = "a" * 40, "b" * 40
CUR = Handle("fake", "2", "local", {"port": 7002})
OLD = Handle("fake", "1", "local", {"port": 7001})
ADDR = ("127.0.0.1", 7002)
PLACED = {"node": "local", "flavor": "cpu-basic"}

RUN = Desired(paused=False, asleep=False, artifact_sha=A, tip=A, hardware="cpu-basic", stage="RUNNING",
              instance_sha=A, stage_changed_at=NOW - timedelta(hours=1), startup_timeout=60.0)
ASLEEP = replace(RUN, asleep=True, stage="SLEEPING")
LONG_ASLEEP = replace(ASLEEP, stage_changed_at=NOW - timedelta(days=1))  # past stop_frozen_after (6 h)
GONE_A_WEEK = replace(ASLEEP, stage_changed_at=NOW - timedelta(days=8))  # past stop_standby_after (7 days)
POLICY = Policy(stop_frozen_after=21600.0, stop_standby_after=604800.0, standbys=True)

RUNNING = InstanceRecord.started(CUR, PLACED, since=NOW.timestamp() - 10)  # started 10 s ago, not answered yet
ANSWERED = replace(RUNNING, ready_at=NOW.timestamp() - 5)  # it answered 5 s ago
SWAPPING = InstanceRecord.started(CUR, PLACED, previous=OLD, since=NOW.timestamp() - 10)
NEW_REVISION = replace(RUN, artifact_sha=B, tip=B)  # built; CUR runs A (instance_sha)
GAVE_UP_ON_B = replace(NEW_REVISION, instance_sha=None, restarts=5, stage="RUNTIME_ERROR")  # CUR: A, serving on
STANDBY = InstanceRecord.of_standby(CUR, "cpu-basic", NOW.timestamp() - 10)


def obs(phase: Phase, **kw: object) -> Observed:
    return Observed(phase, ADDR if phase in (Phase.RUNNING, Phase.STARTING, Phase.FROZEN) else None, **kw)


RUNNING_MSG = SetStage(SpaceStage.RUNNING, "running", "The app is running.")
ASLEEP_MSG = SetStage(SpaceStage.SLEEPING, "idle",
                      "This Space is asleep after a period without visitors; opening it wakes it up.")
SERVE = [Running(CUR, answered_at=NOW.timestamp()), RUNNING_MSG, Route(RouteState.RUNNING, ADDR), NotifyReady()]
TIMED_OUT = "The app did not open port 7860 within its startup_duration_timeout of 5 s"
CHECK_PORT = "Check that it listens on 0.0.0.0 and port 7860."
KEEP_ROUTE = Route(RouteState.SLEEPING, ADDR, only_while_recorded=True)
TIER2 = StopInstance(CUR, second_tier=True)  # the second tier of sleep: the memory is given back

# (case, desired, record, observed, policy, expected actions)
TABLE = [
    # ---- wanted running
    ("nothing runs: start it", RUN, None, None, POLICY, [Start(previous=None)]),
    ("new revision built: start it beside the old one", replace(RUN, artifact_sha=B, tip=B), RUNNING,
     obs(Phase.RUNNING), POLICY, [Start(previous=CUR)]),
    ("variables changed (instance_sha cleared): restart beside", replace(RUN, instance_sha=None), RUNNING,
     obs(Phase.RUNNING), POLICY, [Start(previous=CUR)]),
    ("backing off after a crash: nothing yet", replace(RUN, retry_at=NOW + timedelta(seconds=5)), None, None,
     POLICY, []),
    ("backoff over: start", replace(RUN, retry_at=NOW - timedelta(seconds=1)), None, None, POLICY,
     [Start(previous=None)]),
    ("answers: serve it", RUN, RUNNING, obs(Phase.RUNNING), POLICY, SERVE),
    ("answers while a build runs: the stage stays", replace(RUN, stage="RUNNING_BUILDING"), RUNNING,
     obs(Phase.RUNNING), POLICY, [Running(CUR, NOW.timestamp()), Route(RouteState.RUNNING, ADDR), NotifyReady()]),
    ("new one answers: the previous one goes (zero-downtime swap)", RUN, SWAPPING, obs(Phase.RUNNING), POLICY,
     [StopPrevious(OLD, forget=True), *SERVE]),
    ("new one not answering yet: previous keeps serving, watch", RUN, SWAPPING, obs(Phase.STARTING), POLICY,
     [WatchReady(CUR)]),
    ("starting within its timeout: watch", RUN, RUNNING, obs(Phase.STARTING), POLICY, [WatchReady(CUR)]),
    ("starting past its timeout: a failure as a crash is, said with the port and the log tail",
     replace(RUN, startup_timeout=5.0, app_port=7860), RUNNING, obs(Phase.STARTING), POLICY,
     [SetStage(SpaceStage.RUNTIME_ERROR, "startup_timeout", f"{TIMED_OUT}; restarting in 2 s. {CHECK_PORT}",
               tail_of=CUR), Crashed(CUR, 2.0)]),
    ("a fifth failure in a row by timeout: stopped until a push or a restart",
     replace(RUN, startup_timeout=5.0, app_port=7860, restarts=4), RUNNING, obs(Phase.STARTING), POLICY,
     [SetStage(SpaceStage.RUNTIME_ERROR, "crashed_repeatedly",
               f"The app stopped 5 times in a row ({TIMED_OUT[0].lower()}{TIMED_OUT[1:]}): it stays stopped until "
               f"the next push or a restart. {CHECK_PORT}", tail_of=CUR), Crashed(CUR, None)]),
    ("start time unknown (a record from before starts were dated): watched, no timeout",
     replace(RUN, startup_timeout=5.0), InstanceRecord.started(CUR, PLACED), obs(Phase.STARTING), POLICY,
     [WatchReady(CUR)]),
    # an app that answers, then crashes: its failures are forgotten only after crash_reset_after of answering
    ("answered 5 s ago after 2 failures: served, the count kept", replace(RUN, restarts=2), ANSWERED,
     obs(Phase.RUNNING), POLICY, [Running(CUR), RUNNING_MSG, Route(RouteState.RUNNING, ADDR), NotifyReady()]),
    ("answered for crash_reset_after: its failures are forgotten", replace(RUN, restarts=2),
     replace(ANSWERED, ready_at=NOW.timestamp() - 600), obs(Phase.RUNNING), POLICY,
     [Running(CUR, forget_crashes=True), RUNNING_MSG, Route(RouteState.RUNNING, ADDR), NotifyReady()]),
    ("the reset follows the policy", replace(RUN, restarts=2), replace(ANSWERED, ready_at=NOW.timestamp() - 61),
     obs(Phase.RUNNING), replace(POLICY, crash_reset_after=60.0),
     [Running(CUR, forget_crashes=True), RUNNING_MSG, Route(RouteState.RUNNING, ADDR), NotifyReady()]),
    ("answered, then crashed a fifth time: stopped", replace(RUN, restarts=4), ANSWERED,
     obs(Phase.EXITED, exit_code=1, message="boom"), POLICY,
     [SetStage(SpaceStage.RUNTIME_ERROR, "crashed_repeatedly",
               "The app stopped 5 times in a row (the app exited with code 1): it stays stopped until the next push "
               "or a restart. Last log lines:\nboom"), Crashed(CUR, None)]),
    # a new revision failing while the previous one serves: that one keeps serving, managed
    ("new revision crashed mid-swap: the previous one serves on", RUN, SWAPPING,
     obs(Phase.EXITED, exit_code=1, message="boom"), POLICY,
     [SetStage(SpaceStage.RUNTIME_ERROR, "app_crashed",
               "The new revision failed (the app exited with code 1): the previous revision keeps serving; the new "
               "one is started again in 2 s. Last log lines:\nboom"), Crashed(CUR, 2.0, previous=OLD)]),
    ("new revision timed out mid-swap: the previous one serves on", replace(RUN, startup_timeout=5.0, app_port=7860),
     SWAPPING, obs(Phase.STARTING), POLICY,
     [SetStage(SpaceStage.RUNTIME_ERROR, "startup_timeout",
               f"The new revision failed ({TIMED_OUT[0].lower()}{TIMED_OUT[1:]}): the previous revision keeps "
               f"serving; the new one is started again in 2 s. {CHECK_PORT}", tail_of=CUR),
      Crashed(CUR, 2.0, previous=OLD)]),
    ("new revision failed a fifth time mid-swap: not started again, the previous one serves on",
     replace(RUN, restarts=4), SWAPPING, obs(Phase.GONE), POLICY,
     [SetStage(SpaceStage.RUNTIME_ERROR, "crashed_repeatedly",
               "The new revision failed 5 times in a row (its process vanished): the previous revision keeps "
               "serving, and the new one is not started again until the next push or a restart. Last log lines:\n"
               "(no output)"), Crashed(CUR, None, previous=OLD)]),
    ("new revision backing off: the previous one serves, nothing to do",
     replace(NEW_REVISION, instance_sha=None, restarts=1, retry_at=NOW + timedelta(seconds=1)), ANSWERED,
     obs(Phase.RUNNING), POLICY, []),
    ("gave up on the new revision: the previous one serves, the error stays, the count too", GAVE_UP_ON_B,
     replace(ANSWERED, ready_at=NOW.timestamp() - 6000), obs(Phase.RUNNING), POLICY,
     [Running(CUR), Route(RouteState.RUNNING, ADDR), NotifyReady()]),
    ("gave up on the new revision, and the previous one crashes: stopped", GAVE_UP_ON_B, ANSWERED,
     obs(Phase.EXITED, exit_code=1, message="boom"), POLICY,
     [SetStage(SpaceStage.RUNTIME_ERROR, "crashed_repeatedly",
               "The app stopped 6 times in a row (the app exited with code 1): it stays stopped until the next push "
               "or a restart. Last log lines:\nboom"), Crashed(CUR, None)]),
    ("a newer revision mid-swap: the unanswered one goes, the previous one serves until the newest answers",
     NEW_REVISION, SWAPPING, obs(Phase.STARTING), POLICY, [Revert(CUR), Start(previous=OLD)]),
    ("woken while frozen: thaw, then look again", RUN, RUNNING, obs(Phase.FROZEN), POLICY, [Thaw(CUR)]),
    ("exited: say so, back off 2 s on the first crash", RUN, RUNNING, obs(Phase.EXITED, exit_code=3, message="boom\n"),
     POLICY, [SetStage(SpaceStage.RUNTIME_ERROR, "app_crashed",
                       "The app exited with code 3; restarting in 2 s. Last log lines:\nboom"), Crashed(CUR, 2.0)]),
    ("the backoff doubles", replace(RUN, restarts=3), RUNNING, obs(Phase.GONE), POLICY, [Crashed(CUR, 16.0)]),
    ("the backoff stops at 300 s", replace(RUN, restarts=12), RUNNING, obs(Phase.GONE),
     replace(POLICY, max_crashes=20), [Crashed(CUR, 300.0)]),
    ("the backoff starts at the policy's first wait", replace(RUN, restarts=1), RUNNING, obs(Phase.GONE),
     replace(POLICY, crash_backoff=0.25), [Crashed(CUR, 0.5)]),
    ("the fifth crash in a row: stopped until a push or a restart, with the log tail", replace(RUN, restarts=4),
     RUNNING, obs(Phase.EXITED, exit_code=1, message="Traceback\nRuntimeError: boom\n"), POLICY,
     [SetStage(SpaceStage.RUNTIME_ERROR, "crashed_repeatedly",
               "The app stopped 5 times in a row (the app exited with code 1): it stays stopped until the next push "
               "or a restart. Last log lines:\nTraceback\nRuntimeError: boom"), Crashed(CUR, None)]),
    ("vanished too often: stopped too, and says so", replace(RUN, restarts=4), RUNNING, obs(Phase.GONE), POLICY,
     [SetStage(SpaceStage.RUNTIME_ERROR, "crashed_repeatedly",
               "The app stopped 5 times in a row (its process vanished): it stays stopped until the next push or a "
               "restart. Last log lines:\n(no output)"), Crashed(CUR, None)]),
    ("crashed too often: no start, whatever the time; the proxy shows the error",
     replace(RUN, restarts=5, stage="RUNTIME_ERROR"), None, None, POLICY, [Route(RouteState.ERROR)]),
    ("a push or a restart reset the count: start", replace(RUN, restarts=0, stage="RUNTIME_ERROR"), None, None,
     POLICY, [Start(previous=None)]),
    ("vanished: no new stage, cleared", RUN, RUNNING, obs(Phase.GONE), POLICY, [Crashed(CUR, 2.0)]),
    ("woken standby: claim its capacity", RUN, STANDBY, obs(Phase.FROZEN), POLICY, [Claim(CUR)]),
    ("woken standby still starting: claim too", RUN, STANDBY, obs(Phase.STARTING), POLICY, [Claim(CUR)]),
    ("woken standby of another flavor: stop it, start anew", replace(RUN, hardware="cpu-upgrade"), STANDBY,
     obs(Phase.FROZEN), POLICY, [StopInstance(CUR), Start(previous=None)]),
    ("woken standby that died: stop, start anew", RUN, STANDBY, obs(Phase.EXITED), POLICY,
     [StopInstance(CUR), Start(previous=None)]),
    # ---- not wanted running
    ("paused: stop, say so", replace(RUN, paused=True), RUNNING, obs(Phase.RUNNING), POLICY,
     [StopInstance(CUR), SetStage(SpaceStage.PAUSED, "paused_by_owner",
                                  "This Space is paused by its owner; restart it to bring it back."),
      Route(RouteState.PAUSED)]),
    ("paused mid-swap: both go", replace(RUN, paused=True), SWAPPING, obs(Phase.STARTING), POLICY,
     [StopPrevious(OLD), StopInstance(CUR), SetStage(SpaceStage.PAUSED, "paused_by_owner",
                                                    "This Space is paused by its owner; restart it to bring it "
                                                    "back."), Route(RouteState.PAUSED)]),
    ("asleep: first tier, frozen, still reachable", ASLEEP, RUNNING, obs(Phase.RUNNING), POLICY,
     [Freeze(CUR), ASLEEP_MSG, KEEP_ROUTE]),
    ("asleep on paid hardware shows STOPPED", replace(ASLEEP, hardware="t4-small"), RUNNING, obs(Phase.RUNNING),
     POLICY, [Freeze(CUR), SetStage(SpaceStage.STOPPED, "idle", ASLEEP_MSG.message), KEEP_ROUTE]),
    ("frozen, not long: nothing", ASLEEP, RUNNING, obs(Phase.FROZEN), POLICY, [ASLEEP_MSG, KEEP_ROUTE]),
    ("frozen long: second tier, stop and leave a standby", LONG_ASLEEP, RUNNING, obs(Phase.FROZEN), POLICY,
     [TIER2, StartStandby(), ASLEEP_MSG, Route(RouteState.SLEEPING)]),
    ("frozen long without standbys: stop only", LONG_ASLEEP, RUNNING, obs(Phase.FROZEN),
     replace(POLICY, standbys=False), [TIER2, ASLEEP_MSG, Route(RouteState.SLEEPING)]),
    ("memory pressure chose it: stop now", replace(ASLEEP, evict=True), RUNNING, obs(Phase.FROZEN), POLICY,
     [TIER2, StartStandby(), ASLEEP_MSG, Route(RouteState.SLEEPING)]),
    ("a standby is not stopped after stop_frozen_after", LONG_ASLEEP, STANDBY, obs(Phase.FROZEN), POLICY,
     [ASLEEP_MSG, KEEP_ROUTE]),
    ("a standby under memory pressure: stopped, none replaces it", replace(ASLEEP, evict=True), STANDBY,
     obs(Phase.FROZEN), POLICY, [TIER2, ASLEEP_MSG, Route(RouteState.SLEEPING)]),
    ("nobody came for a week: the standby goes", GONE_A_WEEK, STANDBY, obs(Phase.FROZEN), POLICY,
     [TIER2, ASLEEP_MSG, Route(RouteState.SLEEPING)]),
    ("nobody came for a week: stopped with no standby", GONE_A_WEEK, RUNNING, obs(Phase.FROZEN), POLICY,
     [TIER2, ASLEEP_MSG, Route(RouteState.SLEEPING)]),
    ("frozen long after its revision failed too often: stopped, no standby of it",
     replace(LONG_ASLEEP, restarts=5), RUNNING, obs(Phase.FROZEN), POLICY,
     [TIER2, ASLEEP_MSG, Route(RouteState.SLEEPING)]),
    ("standby of an older revision: replaced", replace(ASLEEP, instance_sha=None), STANDBY, obs(Phase.FROZEN),
     POLICY, [StopInstance(CUR), StartStandby(), ASLEEP_MSG, Route(RouteState.SLEEPING)]),
    ("standby listening: frozen", ASLEEP, STANDBY, obs(Phase.RUNNING), POLICY, [Freeze(CUR), ASLEEP_MSG, KEEP_ROUTE]),
    ("standby not listening yet: watched", ASLEEP, STANDBY, obs(Phase.STARTING), POLICY,
     [WatchReady(CUR), ASLEEP_MSG, KEEP_ROUTE]),
    ("standby not listening in time: stopped", replace(ASLEEP, startup_timeout=5.0), STANDBY,
     obs(Phase.STARTING), POLICY, [StopInstance(CUR), ASLEEP_MSG, Route(RouteState.SLEEPING)]),
    ("asleep and its instance died: cleared", ASLEEP, RUNNING, obs(Phase.EXITED), POLICY,
     [StopInstance(CUR), ASLEEP_MSG, Route(RouteState.SLEEPING)]),
    ("asleep, nothing runs", ASLEEP, None, None, POLICY, [ASLEEP_MSG, Route(RouteState.SLEEPING)]),
    ("building its first revision: the proxy says starting", replace(RUN, artifact_sha=None, stage="BUILDING"),
     None, None, POLICY, [Route(RouteState.STARTING)]),
    ("config error: nothing runs, the proxy shows the error", replace(RUN, stage="CONFIG_ERROR"), RUNNING,
     obs(Phase.RUNNING), POLICY, [StopInstance(CUR), Route(RouteState.ERROR)]),
    ("no app file: error", replace(RUN, stage="NO_APP_FILE", artifact_sha=None), None, None, POLICY,
     [Route(RouteState.ERROR)]),
]


@pytest.mark.parametrize(("case", "desired", "record", "observed", "policy", "expected"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_decide(case: str, desired: Desired, record: InstanceRecord | None, observed: Observed | None,
                policy: Policy, expected: list) -> None:
    assert decide(desired, record, observed, policy, NOW) == expected


# (case, has an instance serving, refusal, tip, expected)
REFUSED = [
    ("over quota, nothing runs: an error that says why", False, Refusal.QUOTA, A,
     [SetStage(SpaceStage.RUNTIME_ERROR, "quota_exceeded", "M"), Route(RouteState.ERROR, message="M")]),
    ("over quota while the old revision serves: it keeps serving", True, Refusal.QUOTA, A,
     [SetStage(SpaceStage.RUNNING, "quota_exceeded", "M")]),
    ("no capacity: queued, starting", False, Refusal.WAITING, A,
     [Queue(), SetStage(SpaceStage.APP_STARTING, "waiting_for_capacity", "M"),
      Route(RouteState.STARTING, message="M")]),
    ("no capacity while the old one serves", True, Refusal.WAITING, A,
     [Queue(), SetStage(SpaceStage.RUNNING_APP_STARTING, "waiting_for_capacity", "M")]),
    ("built revision gone, a newer one is building: wait for it", False, Refusal.REVISION_GONE, B,
     [RetryLater(300.0)]),
    ("built revision gone and it is the tip: broken", False, Refusal.REVISION_GONE, A,
     [SetStage(SpaceStage.RUNTIME_ERROR, "start_failed", "M"), Route(RouteState.ERROR, message="M")]),
    ("any other failure", True, Refusal.FAILED, A,
     [SetStage(SpaceStage.RUNTIME_ERROR, "start_failed", "M"), Route(RouteState.ERROR, message="M")]),
]


@pytest.mark.parametrize(("case", "has_current", "refusal", "tip", "expected"), REFUSED,
                         ids=[row[0] for row in REFUSED])
def test_refused(case: str, has_current: bool, refusal: Refusal, tip: str, expected: list) -> None:
    assert refused(replace(RUN, tip=tip), has_current, refusal, "M") == expected


def test_started() -> None:
    message = "Starting the app; it is served as soon as it answers on its port."
    assert started(False) == [SetStage(SpaceStage.APP_STARTING, "starting", message), Route(RouteState.STARTING)]
    assert started(True) == [SetStage(SpaceStage.RUNNING_APP_STARTING, "starting", message)]

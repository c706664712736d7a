"""What the reconciler does for one Space, decided without doing anything: a pure function of what is wanted,
what is on record, what the backend shows and the policy (no I/O, no database, no clock: ``now`` is passed).

``decide(desired, record, observed, policy, now)`` returns the actions of one step, in order. Some actions change
what the next decision rests on (a standby claimed, a crashed instance cleared, a frozen one thawed): such an
action ends the list, the applier (``spaces.runtime.reconciler``) carries it out, observes again and asks again.
When a start is refused, ``refused(desired, has_current, refusal)`` says what the Space shows instead.
The rules are told in the reconciler's module docstring; ``tests/runtime_pure/test_decide.py`` is their table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from spaces.domain.stages import RouteState, SpaceStage
from spaces.runtime.contracts import Handle, Observed, Phase
from spaces.runtime.instance import InstanceRecord

BACKOFF_BASE = 2.0  # seconds; the wait after a first crash, doubled per consecutive crash
BACKOFF_MAX = 300.0  # seconds; the longest wait after crashes, and after a start that found its revision gone
MAX_CRASHES = 5  # consecutive crashes (none answering in between) after which a Space stays stopped

#: stages in which a Space is not started whatever else is true (the repository must change first)
BLOCKED = frozenset({SpaceStage.NO_APP_FILE.value, SpaceStage.CONFIG_ERROR.value})


@dataclass(frozen=True)
class Desired:
    """What the Space's row asks for, and what of its row the rules read."""

    paused: bool
    asleep: bool
    artifact_sha: str | None  # the built revision; None: nothing to run yet
    tip: str | None  # the newest revision pushed (a build of it may be on its way)
    hardware: str
    stage: str
    instance_sha: str | None  # the revision the recorded instance runs (None: restart it)
    retry_at: datetime | None = None  # backing off after a crash until then
    restarts: int = 0  # consecutive crashes
    stage_changed_at: datetime | None = None
    startup_timeout: float = 1800.0
    evict: bool = False  # memory is short and this asleep Space was chosen to give its memory back

    @property
    def wants_running(self) -> bool:
        return self.artifact_sha is not None and not self.paused and not self.asleep and self.stage not in BLOCKED


@dataclass(frozen=True)
class Policy:
    stop_frozen_after: float = 21600.0
    stop_standby_after: float = 604800.0
    standbys: bool = False  # the platform can start standbys (and claim capacity for them)
    crash_backoff: float = BACKOFF_BASE  # the wait after a first crash; doubled per crash, up to BACKOFF_MAX
    #: after this many crashes in a row the Space stays stopped (RUNTIME_ERROR, holding nothing) until a push or a
    #: restart: an app that cannot start would otherwise be started again every few minutes forever
    max_crashes: int = MAX_CRASHES


# ---- actions ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StopPrevious:
    """Stop the instance a new revision replaced; ``forget``: take it off the record too."""

    handle: Handle
    forget: bool = False


@dataclass(frozen=True)
class StopInstance:
    """Stop what runs, close its billing, clear the record (the next start is a fresh one). ``second_tier``: an
    asleep Space gives its memory back (an eviction chosen under memory pressure is then done)."""

    handle: Handle
    second_tier: bool = False


@dataclass(frozen=True)
class Freeze:
    """First tier of sleep; a backend without a freezer stops it instead."""

    handle: Handle


@dataclass(frozen=True)
class Thaw:
    handle: Handle


@dataclass(frozen=True)
class StartStandby:
    pass


@dataclass(frozen=True)
class Claim:
    """A woken standby takes a running Space's capacity (quota, then a node: its own), or is stopped."""

    handle: Handle


@dataclass(frozen=True)
class Crashed:
    """The instance exited or vanished: count it, back off ``retry_in`` seconds, clear the record.
    ``retry_in`` None: it crashed too often, no retry until a push or a restart resets the count."""

    handle: Handle
    retry_in: float | None


@dataclass(frozen=True)
class Start:
    """Start the built revision; ``previous`` keeps serving until the new one answers."""

    previous: Handle | None


@dataclass(frozen=True)
class WatchReady:
    handle: Handle


@dataclass(frozen=True)
class Running:
    """The instance answers: bill it (again, after a thaw), forget its crashes."""

    handle: Handle


@dataclass(frozen=True)
class NotifyReady:
    """Tell whoever waits for the Space (a wake) that it answers: after its route is published."""


@dataclass(frozen=True)
class SetStage:
    stage: SpaceStage
    reason: str
    message: str


@dataclass(frozen=True)
class Route:
    state: RouteState
    upstream: tuple[str, int] | None = None
    message: str = ""
    static_root: str | None = None
    only_while_recorded: bool = False  # the upstream holds only if an instance is still on record when applied


@dataclass(frozen=True)
class Queue:
    """Waiting for capacity: keep the Space's place in the FIFO (its first refusal's time)."""


@dataclass(frozen=True)
class RetryLater:
    seconds: float


Action = (StopPrevious | StopInstance | Freeze | Thaw | StartStandby | Claim | Crashed | Start | WatchReady
          | Running | NotifyReady | SetStage | Route | Queue | RetryLater)
#: after these the applier observes again and asks again
REOBSERVE = (Claim, Crashed, Thaw)

PAUSED_MESSAGE = "This Space is paused by its owner; restart it to bring it back."
ASLEEP_MESSAGE = "This Space is asleep after a period without visitors; opening it wakes it up."
STARTING_MESSAGE = "Starting the app; it is served as soon as it answers on its port."


def decide(desired: Desired, record: InstanceRecord | None, observed: Observed | None, policy: Policy,
           now: datetime) -> list[Action]:
    """The actions of one step for one Space (see the module docstring). ``observed`` is the backend's view of
    ``record.current`` (None when nothing is recorded)."""
    if not desired.wants_running:
        return _wind_down(desired, record, observed, policy, now)
    current = record.current if record else None
    if current is not None and record.standby:
        if _standby_current(desired, record) and observed is not None and observed.phase in (
                Phase.FROZEN, Phase.RUNNING, Phase.STARTING):
            return [Claim(current)]
        return [StopInstance(current)] + decide(desired, None, None, policy, now)  # the Space starts anew
    if current is not None and observed is not None and observed.phase in (Phase.EXITED, Phase.GONE):
        return _crashed(desired, current, observed, policy)
    if current is None and desired.restarts >= policy.max_crashes:
        return [Route(RouteState.ERROR)]  # crashed too often: stopped until a push or a restart resets the count
    if current is None or desired.instance_sha != desired.artifact_sha:
        if desired.retry_at is not None and desired.retry_at > now:
            return []  # backing off after a crash; the sweep comes back
        return [Start(previous=current)]
    if observed.phase == Phase.FROZEN:
        return [Thaw(current)]
    if observed.phase == Phase.RUNNING:
        return _running(desired, record, observed)
    if observed.phase == Phase.STARTING:
        started = current.data.get("started_at")
        if started and now.timestamp() - float(started) > desired.startup_timeout:
            return [StopInstance(current),
                    SetStage(SpaceStage.RUNTIME_ERROR, "startup_timeout",
                             f"The app did not answer on its port within {int(desired.startup_timeout)} s "
                             "(startup_duration_timeout). Check that it listens on 0.0.0.0 and the right port."),
                    Route(RouteState.ERROR)]
        return [WatchReady(current)]
    return []


def _crashed(desired: Desired, current: Handle, observed: Observed, policy: Policy) -> list[Action]:
    """An instance exited or vanished: back off (doubling, capped), or past ``max_crashes`` in a row, give up."""
    crashes = desired.restarts + 1
    how = ("its process vanished" if observed.phase == Phase.GONE
           else f"the app exited with code {observed.exit_code}")
    tail = f"Last log lines:\n{observed.message.strip() or '(no output)'}"
    if crashes >= policy.max_crashes:
        return [SetStage(SpaceStage.RUNTIME_ERROR, "crashed_repeatedly",
                         f"The app stopped {crashes} times in a row ({how}): it stays stopped until the next push "
                         f"or a restart. {tail}"), Crashed(current, None)]
    delay = min(BACKOFF_MAX, policy.crash_backoff * 2 ** min(desired.restarts, 20))
    said = [] if observed.phase == Phase.GONE else [SetStage(
        SpaceStage.RUNTIME_ERROR, "app_crashed", f"The app exited with code {observed.exit_code}; restarting in "
        f"{delay:g} s. {tail}")]
    return said + [Crashed(current, delay)]


def _running(desired: Desired, record: InstanceRecord, observed: Observed) -> list[Action]:
    actions: list[Action] = []
    if record.previous is not None:
        actions.append(StopPrevious(record.previous, forget=True))  # the swap is done: the new one answers
    actions.append(Running(record.current))
    if desired.stage not in (SpaceStage.RUNNING_BUILDING.value, SpaceStage.BUILD_ERROR.value):
        actions.append(SetStage(SpaceStage.RUNNING, "running", "The app is running."))
    actions.append(Route(RouteState.RUNNING, observed.address, static_root=record.current.data.get("static")))
    return actions + [NotifyReady()]


def _wind_down(desired: Desired, record: InstanceRecord | None, observed: Observed | None, policy: Policy,
               now: datetime) -> list[Action]:
    current = record.current if record else None
    actions: list[Action] = [StopPrevious(record.previous)] if record and record.previous else []
    if desired.paused:
        if current is not None:
            actions.append(StopInstance(current))
        return actions + [SetStage(SpaceStage.PAUSED, "paused_by_owner", PAUSED_MESSAGE), Route(RouteState.PAUSED)]
    if desired.asleep:
        sleeping = SpaceStage.SLEEPING if desired.hardware == "cpu-basic" else SpaceStage.STOPPED
        tiers = _asleep(desired, record, observed, policy, now)
        return actions + tiers + [SetStage(sleeping, "idle", ASLEEP_MESSAGE), _sleeping_route(observed, tiers)]
    # nothing to run yet (building, or a config error): the proxy shows the stage and its message
    if current is not None:
        actions.append(StopInstance(current))
    failed = desired.stage.endswith("ERROR") or desired.stage == SpaceStage.NO_APP_FILE.value
    return actions + [Route(RouteState.ERROR if failed else RouteState.STARTING)]



def _asleep(desired: Desired, record: InstanceRecord | None, observed: Observed | None, policy: Policy,
            now: datetime) -> list[Action]:
    """The sleep tiers: freeze what runs; past its time (or under memory pressure) stop it and leave a standby."""
    if record is None:
        return []
    current, phase = record.current, observed.phase if observed else None
    if record.standby and not _standby_current(desired, record):
        return [StopInstance(current)] + _standby(desired, policy, now)  # revision, variables or hardware changed
    if record.standby and phase == Phase.STARTING:
        if record.since and now.timestamp() - float(record.since) > desired.startup_timeout:
            return [StopInstance(current)]  # a standby that did not listen in time
        return [WatchReady(current)]  # it is frozen once it listens
    if phase == Phase.RUNNING:
        return [Freeze(current)]
    if phase == Phase.FROZEN:
        if desired.evict or _asleep_for(desired, now) > (
                policy.stop_standby_after if record.standby else policy.stop_frozen_after):
            stop = StopInstance(current, second_tier=True)
            return [stop] + ([] if record.standby else _standby(desired, policy, now))
        return []
    return [StopInstance(current)]


def _sleeping_route(observed: Observed | None, tiers: list[Action]) -> Route:
    """Where the proxy reaches an asleep Space: the instance it keeps (frozen, or a standby starting), or none.
    A backend without a freezer stops the instance instead: then nothing is on record and nothing is reached."""
    if observed is None or any(isinstance(a, StopInstance) for a in tiers):
        return Route(RouteState.SLEEPING)  # nothing, or stopped, or replaced by a standby not listening yet
    return Route(RouteState.SLEEPING, observed.address, only_while_recorded=True)


def _standby(desired: Desired, policy: Policy, now: datetime) -> list[Action]:
    if not policy.standbys or desired.artifact_sha is None or _asleep_for(desired, now) > policy.stop_standby_after:
        return []
    return [StartStandby()]


def _standby_current(desired: Desired, record: InstanceRecord) -> bool:
    """Is the standby still what a start would run now (revision, variables and secrets, hardware)?"""
    return (desired.artifact_sha is not None and desired.instance_sha == desired.artifact_sha
            and record.hardware == desired.hardware)


def _asleep_for(desired: Desired, now: datetime) -> float:
    """Seconds since an asleep Space's stage last changed (to sleeping, normally)."""
    return (now - desired.stage_changed_at).total_seconds() if desired.stage_changed_at else 0.0


# ---- a start's outcome -----------------------------------------------------------------------------------------
def started(has_current: bool) -> list[Action]:
    """What a Space shows once its new instance began (``has_current``: the previous one serves meanwhile)."""
    return [SetStage(SpaceStage.RUNNING_APP_STARTING if has_current else SpaceStage.APP_STARTING, "starting",
                     STARTING_MESSAGE)] + ([] if has_current else [Route(RouteState.STARTING)])



class Refusal(str, Enum):
    QUOTA = "quota"  # over a quota: a refusal never touches what already runs
    WAITING = "waiting"  # no capacity now: queued, FIFO per flavor
    REVISION_GONE = "revision_gone"  # the built revision cannot be read from the repository
    FAILED = "failed"


def refused(desired: Desired, has_current: bool, refusal: Refusal, message: str) -> list[Action]:
    """What a Space shows when its start was refused (``has_current``: an older revision keeps serving)."""
    if refusal == Refusal.QUOTA:
        return [SetStage(SpaceStage.RUNNING if has_current else SpaceStage.RUNTIME_ERROR, "quota_exceeded", message)
                ] + ([] if has_current else [Route(RouteState.ERROR, message=message)])
    if refusal == Refusal.WAITING:  # the message says where in the queue
        return [Queue(), SetStage(SpaceStage.RUNNING_APP_STARTING if has_current else SpaceStage.APP_STARTING,
                                  "waiting_for_capacity", message)
                ] + ([] if has_current else [Route(RouteState.STARTING, message=message)])
    if refusal == Refusal.REVISION_GONE and desired.tip and desired.tip != desired.artifact_sha:
        # a newer revision is on its way through the builder: wait for that build (its end clears retry_at)
        # rather than mark the Space broken
        return [RetryLater(BACKOFF_MAX)]
    return [SetStage(SpaceStage.RUNTIME_ERROR, "start_failed", message), Route(RouteState.ERROR, message=message)]

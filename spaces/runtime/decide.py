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
MAX_CRASHES = 5  # failures in a row (crashes, start-up timeouts) after which a Space stays stopped
#: seconds an instance must have answered before its Space's count of failures is forgotten. Kubernetes resets its
#: CrashLoopBackOff after 10 minutes of running without problems; we do the same: an app that answers and falls
#: over a few minutes later (a model loaded lazily, a leak) is failing too, and giving up here only means the
#: owner is told and restarts it, where Kubernetes would merely wait 5 minutes between tries forever
CRASH_RESET_AFTER = 600.0

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
    app_port: int | None = None  # the port the app is expected to open (README app_port, or the SDK's)
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
    crash_reset_after: float = CRASH_RESET_AFTER  # seconds of answering after which the count of failures resets


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
    """The instance exited, vanished or did not open its port in time: count it, stop it, back off ``retry_in``
    seconds, clear the record. ``retry_in`` None: it failed too often, no retry until a push or a restart resets the
    count. ``previous``: the older revision that kept serving while this one started; it stays, as the current
    instance again (its route, billing and placement unchanged)."""

    handle: Handle
    retry_in: float | None
    previous: Handle | None = None


@dataclass(frozen=True)
class Revert:
    """A swap abandoned before the new instance answered (a newer revision, or a restart, replaces it): stop the new
    instance; the previous one, which kept serving, is the current instance again."""

    handle: Handle


@dataclass(frozen=True)
class Start:
    """Start the built revision; ``previous`` keeps serving until the new one answers."""

    previous: Handle | None


@dataclass(frozen=True)
class WatchReady:
    handle: Handle


@dataclass(frozen=True)
class Running:
    """The instance answers: bill it (again, after a thaw). ``answered_at``: its first answer (epoch seconds), to
    record; ``forget_crashes``: it has answered long enough (``Policy.crash_reset_after``) to reset the count."""

    handle: Handle
    answered_at: float | None = None
    forget_crashes: bool = False


@dataclass(frozen=True)
class NotifyReady:
    """Tell whoever waits for the Space (a wake) that it answers: after its route is published."""


@dataclass(frozen=True)
class SetStage:
    """``tail_of``: the message ends with this live instance's last log lines, which the applier reads (a poll
    quotes them only for an instance that exited)."""

    stage: SpaceStage
    reason: str
    message: str
    tail_of: Handle | None = None


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


Action = (StopPrevious | StopInstance | Freeze | Thaw | StartStandby | Claim | Crashed | Revert | Start
          | WatchReady | Running | NotifyReady | SetStage | Route | Queue | RetryLater)
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
        how = ("its process vanished" if observed.phase == Phase.GONE
               else f"the app exited with code {observed.exit_code}")
        tail = f"Last log lines:\n{observed.message.strip() or '(no output)'}"
        return _failed(desired, record, policy, how, tail=tail, say=observed.phase != Phase.GONE)
    stale = current is None or desired.instance_sha != desired.artifact_sha  # not what should run now
    if stale and desired.restarts >= policy.max_crashes:
        if current is None:  # failed too often: stopped until a push or a restart resets the count
            return [Route(RouteState.ERROR)]
        # the new revision failed too often while the previous one served: that one goes on serving (below)
    elif stale:
        if desired.retry_at is not None and desired.retry_at > now:
            return []  # backing off after a crash; the sweep comes back
        if record is not None and record.previous is not None:  # a newer revision (or a restart) mid-swap
            return [Revert(current), Start(previous=record.previous)]  # the one serving stays until that answers
        return [Start(previous=current)]
    if observed.phase == Phase.FROZEN:
        return [Thaw(current)]
    if observed.phase == Phase.RUNNING:
        return _running(desired, record, observed, policy, now, stale)
    if observed.phase == Phase.STARTING:
        started = record.since  # None: a record written before starts were dated (no timeout, as then)
        if started and now.timestamp() - float(started) > desired.startup_timeout:
            port = f"port {desired.app_port}" if desired.app_port else "its port"
            return _failed(desired, record, policy, f"the app did not open {port} within its "
                           f"startup_duration_timeout of {desired.startup_timeout:g} s",
                           advice=f"Check that it listens on 0.0.0.0 and {port}. ", tail=None)
        return [WatchReady(current)]
    return []


def _failed(desired: Desired, record: InstanceRecord, policy: Policy, how: str, *, tail: str | None,
            advice: str = "", say: bool = True) -> list[Action]:
    """An instance exited, vanished or did not open its port in time: back off (doubling, capped), or after
    ``max_crashes`` failures in a row, give up. A new revision failing while the previous one serves leaves that one
    serving. ``tail`` None: the message ends with the instance's log tail, read by the applier."""
    crashes = desired.restarts + 1
    last = tail or ""
    tail_of = record.current if tail is None else None
    if crashes >= policy.max_crashes:
        if record.previous is not None:
            message = (f"The new revision failed {crashes} times in a row ({how}): the previous revision keeps "
                       f"serving, and the new one is not started again until the next push or a restart. "
                       f"{advice}{last}")
        else:
            message = (f"The app stopped {crashes} times in a row ({how}): it stays stopped until the next push "
                       f"or a restart. {advice}{last}")
        return [SetStage(SpaceStage.RUNTIME_ERROR, "crashed_repeatedly", message.strip(), tail_of),
                Crashed(record.current, None, record.previous)]
    delay = min(BACKOFF_MAX, policy.crash_backoff * 2 ** min(desired.restarts, 20))
    if record.previous is not None:
        message = (f"The new revision failed ({how}): the previous revision keeps serving; the new one is started "
                   f"again in {delay:g} s. {advice}{last}")
    else:
        message = f"{how[0].upper()}{how[1:]}; restarting in {delay:g} s. {advice}{last}"
    reason = "app_crashed" if tail is not None else "startup_timeout"
    said = [SetStage(SpaceStage.RUNTIME_ERROR, reason, message.strip(), tail_of)] if say else []
    return said + [Crashed(record.current, delay, record.previous)]


def _running(desired: Desired, record: InstanceRecord, observed: Observed, policy: Policy, now: datetime,
             stale: bool) -> list[Action]:
    """The instance answers. ``stale``: it is the previous revision, serving on after the new one failed too often
    (the stage keeps saying so, and its answering proves nothing about the new one's failures)."""
    actions: list[Action] = []
    if record.previous is not None:
        actions.append(StopPrevious(record.previous, forget=True))  # the swap is done: the new one answers
    healthy = (record.ready_at is not None and now.timestamp() - record.ready_at >= policy.crash_reset_after)
    actions.append(Running(record.current, answered_at=None if record.ready_at is not None else now.timestamp(),
                           forget_crashes=healthy and not stale and desired.restarts > 0))
    if not stale and desired.stage not in (SpaceStage.RUNNING_BUILDING.value, SpaceStage.BUILD_ERROR.value):
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
    if desired.restarts >= policy.max_crashes:
        return []  # its revision failed too often: nothing of it is started until a push or a restart
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

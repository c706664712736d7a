"""The reconciler: level-triggered and idempotent. Per Space: load desired state, observe through the backend,
take one step, record the stage. It runs on a periodic sweep plus nudges (API writes, builds, wakes).

A step is observe, decide, apply: :func:`spaces.runtime.decide.decide` is the pure rule book (what is wanted, what
is on record, what the backend shows, the policy, now -> actions) and :meth:`Reconciler._apply` the one applier.
Every act on the backend but a thaw goes through ``_act``, which commits what the step decided so far first (a
start or a stop may take seconds: never under the database's write lock) and marks the step as having acted (then
it is committed whatever the desired state says now; otherwise an API write that landed meanwhile rolls it back
and the Space is looked at again).

Desired state of a Space: *running* when it has a built artifact and is neither paused nor asleep; otherwise
*stopped* (asleep may first be *frozen*: the instance keeps its memory and thaws in milliseconds).

Sleep has two tiers. A Space put to sleep is frozen; after ``stop_frozen_after`` (or sooner under memory pressure)
it is stopped, which gives its memory and its capacity back. When the backend can run the Space's SDK as a
*standby* (``Backend.standby_sdks``: an SDK that runs no app code before the first visitor, e.g. Streamlit), the
stop is followed by a fresh instance that is frozen as soon as it listens. It holds the memory of a fresh server
only, and no capacity (no placement, no usage) until a visitor comes: then it claims its capacity as any start does
(quota, then a node) and is thawed, or, when that is refused, it is stopped and the Space starts anew, which
reports the refusal. Memory pressure stops the frozen instances that served visitors first (each leaves a
standby where it may), then the standbys, which leave nothing. A standby is replaced by another only when its
revision, variables or hardware changed. A Space asleep longer than ``stop_standby_after`` (7 days) gets no standby
and loses the one it has: a Space nobody visits any more holds nothing (0 turns standbys off).

The instance record on the Space row is an :class:`~spaces.runtime.instance.InstanceRecord` (current, previous,
placement; a standby's flavor and start): while a new revision starts, the previous one keeps serving, and it is
stopped only once the new one answers (zero-downtime swap).

Failures: an instance that exits, vanishes or does not open its port within its start-up timeout (counted from
the start dated on the record) is stopped and started again after a backoff (``crash_backoff``, doubled each time);
after ``max_crashes`` failures in a row the Space stays stopped in RUNTIME_ERROR, holding nothing, until a push or
a restart. The count is forgotten only once an instance has answered for ``crash_reset_after``. A new revision that
fails during a swap leaves the previous one serving (the current instance again) and is retried the same way; a
newer revision or a restart during a swap stops the instance that has not answered, never the one serving.

On start, ``adopt`` lists every labelled workload of the backend: the ones a Space row points at are kept as they
are (nothing healthy is restarted), the rest are orphans and are stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import select

from sqlalchemy.orm import Session

from spaces.builder.plan import Artifact
from spaces.db.models import Space, UsageInterval, utcnow
from spaces.db.session import Database
from spaces.domain.stages import set_stage
from spaces.errors import QuotaExceeded, RevisionNotFound, SpacesError, WaitingForCapacity
from spaces.runtime.contracts import LABEL_MANAGED, Backend, Handle, LogSink, Phase
from spaces.runtime.decide import (
    BACKOFF_BASE,
    BACKOFF_MAX,  # noqa: F401 - re-exported: the backoff is told here
    CRASH_RESET_AFTER,
    MAX_CRASHES,
    REOBSERVE,
    Action,
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
from spaces.runtime.specs import app_port, startup_timeout

log = logging.getLogger("spaces.reconciler")

# the readiness watcher tries a new instance's port every 2 ms for its first second, then every 10 ms: an app
# woken from its zygote listens within tens of milliseconds, and the wait for the next try is part of its wake
READY_POLL_FAST, READY_FAST_FOR, READY_POLL = 0.002, 1.0, 0.01
LOG_TAIL_LINES = 30  # log lines quoted in the message of an app that did not open its port in time


@dataclass
class RouteUpdate:
    """What the proxy should know about a Space after a step (see spaces/proxy routes)."""

    space_id: str
    subdomain: str
    state: str  # a spaces.runtime.decide.RouteState value: running | starting | sleeping | paused | error
    upstream: tuple[str, int] | None
    private: bool
    owner_id: str
    message: str
    title: str = ""
    stage: str = ""
    static_root: str | None = None  # static Spaces: the working copy the platform serves
    app_file: str | None = None
    reason: str = ""  # the stage's reason code: the proxy's waiting page derives its words as the pages do


class Reconciler:
    def __init__(self, db: Database, backend: Backend, logs: LogSink, *, start_instance: Callable,
                 publish_route: Callable[[RouteUpdate], None], sweep_seconds: float = 5.0,
                 stop_frozen_after: float = 21600.0, memory_pressure: Callable[[], bool] | None = None,
                 start_standby: Callable | None = None, reserve: Callable | None = None,
                 stop_standby_after: float = 604800.0, own_labels: dict[str, str] | None = None,
                 crash_backoff: float = BACKOFF_BASE, max_crashes: int = MAX_CRASHES,
                 crash_reset_after: float = CRASH_RESET_AFTER, default_startup_timeout: float = 1800.0) -> None:
        self.db = db
        #: labels of what this platform runs (its instance id): adoption looks only at those, so a platform that
        #: shares a Docker engine or a namespace with another never stops the other's instances as orphans
        self.own_labels = dict(own_labels or {})
        self.backend = backend
        self.logs = logs
        #: (session, space, artifact) -> (Handle, placement dict); raises SpacesError (quota, capacity, start)
        self.start_instance = start_instance
        #: (session, space, artifact) -> Handle of a standby, or None where the Space gets none (its SDK, its
        #: hardware); holds no capacity. With ``reserve``, (session, space, node to prefer) -> placement dict,
        #: raising as a start does: how a woken standby or frozen instance claims its capacity back (an asleep
        #: Space holds none). Both None: no standbys, and a frozen instance thaws without a claim.
        self.start_standby = start_standby if reserve is not None else None
        self.reserve = reserve
        self.stop_standby_after = stop_standby_after
        self.publish_route = publish_route
        self.sweep_seconds = sweep_seconds
        self.stop_frozen_after = stop_frozen_after
        self.crash_backoff, self.max_crashes, self.crash_reset_after = crash_backoff, max_crashes, crash_reset_after
        self.default_startup_timeout = default_startup_timeout  # where README sets no startup_duration_timeout
        #: () -> bool, is this machine short of memory? Then the longest-asleep frozen Space is stopped each sweep
        self.memory_pressure = memory_pressure
        self._evict: set[str] = set()
        self._pending: set[str] = set()
        self._all = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watchers: dict[str, threading.Thread] = {}
        self._pumps: dict[str, threading.Thread] = {}
        self._ready_listeners: dict[str, list[Callable[[], None]]] = {}
        self._seen: dict[str, tuple] = {}  # desired state each step decided from (see _commit)
        self._thread: threading.Thread | None = None

    # ---- control ------------------------------------------------------------------------------------------
    def nudge(self, space_id: str | None = None) -> None:
        with self._lock:
            if space_id is None:
                self._all.set()
            else:
                self._pending.add(space_id)
        self._wake.set()

    def on_ready(self, space_id: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once) the next time the Space is RUNNING; the wake service waits on this."""
        with self._lock:
            self._ready_listeners.setdefault(space_id, []).append(callback)
        self.nudge(space_id)

    def start(self) -> None:
        self.adopt()
        self._thread = threading.Thread(target=self._loop, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _loop(self) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            self._wake.wait(timeout=self.sweep_seconds)
            self._wake.clear()
            with self._lock:
                ids, self._pending = self._pending, set()
                everything = self._all.is_set() or time.monotonic() - last_sweep >= self.sweep_seconds
                self._all.clear()
            if everything:
                last_sweep = time.monotonic()
                with self.db.session() as s:
                    ids |= set(s.scalars(select(Space.id)))
                self._choose_evictions()
            for space_id in ids:
                try:
                    self.reconcile(space_id)
                except Exception:
                    log.exception("reconcile of %s failed", space_id)

    def _choose_evictions(self) -> None:
        """Under memory pressure, mark one asleep Space for the second tier (stop) now: the one asleep the longest
        among those whose instance served visitors (it holds their data), else the longest-asleep standby."""
        try:
            if self.memory_pressure is None or not self.memory_pressure():
                return
            with self.db.session() as s:
                asleep = s.execute(select(Space.id, Space.instance).where(Space.asleep.is_(True),
                                                                         Space.instance.is_not(None))
                                   .order_by(Space.stage_changed_at)).all()
        except Exception:
            log.exception("checking memory pressure failed")
            return
        standby = {sid: bool(r and r.standby) for sid, r in ((sid, InstanceRecord.from_json(i)) for sid, i in asleep)}
        chosen = next((sid for sid, _ in asleep if not standby[sid]), None)
        chosen = chosen or next((sid for sid, _ in asleep), None)
        if chosen is not None:
            log.info("memory is short: stopping the sleeping Space %s", chosen)
            self._evict.add(chosen)

    # ---- adoption -----------------------------------------------------------------------------------------
    def adopt(self) -> None:
        running = self.backend.list({LABEL_MANAGED: "true", **self.own_labels})
        known: set[str] = set()
        with self.db.session() as s:
            for space in s.scalars(select(Space).where(Space.instance.is_not(None))):
                record = InstanceRecord.from_json(space.instance)
                if record is not None:
                    known.update(h.ref for h in record.handles())
                    self._pump_logs(space.id, record.current, replay=True,
                                    note=(record.placement or {}).get("note"))
        for handle in running:
            if handle.ref not in known:
                log.info("stopping orphan %s", handle.ref)
                self._stop_quietly(handle)
        self.nudge()

    # ---- one step: observe, decide (spaces.runtime.decide), apply ------------------------------------------
    def reconcile(self, space_id: str) -> None:
        try:
            self._reconcile(space_id)
        except _DesiredChanged:
            self.nudge(space_id)  # an API write landed meanwhile: look again with what is true now

    def _commit(self, step: _Step) -> None:
        """Commit this step unless the desired state changed under it (then roll back and raise).

        The step's decisions were made from the desired state read at its start; an API write (pause, restart,
        push, hardware, visibility) may have landed since. After the flush this transaction holds the write
        lock (SQLite) or the row lock (PostgreSQL, FOR UPDATE), so the check and the commit are atomic.
        """
        s, space = step.s, step.space
        if step.acted:
            step.acted = False
            s.commit()  # something was started or stopped: that must be on record, whatever the stage says
            return
        s.flush()
        now = s.execute(select(*_DESIRED).where(Space.id == space.id).with_for_update()).one_or_none()
        if now is None or tuple(now) != self._seen.get(space.id):
            s.rollback()
            raise _DesiredChanged()
        s.commit()

    def _act(self, step: _Step, act: Callable[[], object]) -> object:
        """The one place the backend is acted on: what the step decided so far is committed first (a start or a
        stop may take seconds: never while holding the database's write lock), then the act is on record."""
        self._commit(step)
        result = act()
        step.acted = True
        return result

    def _policy(self) -> Policy:
        return Policy(self.stop_frozen_after, self.stop_standby_after, standbys=self.start_standby is not None,
                      crash_backoff=self.crash_backoff, max_crashes=self.max_crashes,
                      crash_reset_after=self.crash_reset_after)

    def _desired(self, step: _Step) -> Desired:
        space, artifact = step.space, step.artifact
        return Desired(paused=space.paused, asleep=space.asleep, artifact_sha=artifact.sha if artifact else None,
                       tip=space.sha, hardware=space.hardware, stage=space.stage, instance_sha=space.instance_sha,
                       retry_at=_aware(space.retry_at), restarts=space.restarts or 0,
                       stage_changed_at=_aware(space.stage_changed_at),
                       startup_timeout=startup_timeout(space.card_data, self.default_startup_timeout),
                       evict=space.id in self._evict,
                       app_port=app_port(space.sdk, space.card_data))

    def _reconcile(self, space_id: str) -> None:
        with self.db.session() as s:
            space = s.get(Space, space_id)
            if space is None:
                return
            self._seen[space.id] = tuple(getattr(space, c.key) for c in _DESIRED)
            if not space.asleep:
                self._evict.discard(space.id)  # woken before its eviction: nothing to give back any more
            step = _Step(s, space, Artifact.from_json(space.artifact) if space.artifact else None)
            done: set[type] = set()
            while True:
                record = InstanceRecord.from_json(space.instance)
                observed = self.backend.poll(record.current) if record else None
                actions = decide(self._desired(step), record, observed, self._policy(), utcnow())
                again = bool(actions) and isinstance(actions[-1], REOBSERVE) and type(actions[-1]) not in done
                for action in actions:
                    self._apply(step, action)
                if not again:
                    break
                done.add(type(actions[-1]))  # each of these once a step: a thaw that does not take waits a sweep
            self._commit(step)

    def _apply(self, step: _Step, action: Action) -> None:  # noqa: C901 - one branch per kind of action
        s, space = step.s, step.space
        if isinstance(action, SetStage):
            message = action.message
            if action.tail_of is not None:
                message += f" Last log lines:\n{self._log_tail(action.tail_of) or '(no output)'}"
            set_stage(space, action.stage, action.reason, message)
        elif isinstance(action, Route):
            upstream = None if action.only_while_recorded and space.instance is None else action.upstream
            self._route(space, action.state.value, upstream, action.message, action.static_root)
        elif isinstance(action, StopInstance):
            self._stop_instance(step, action.handle)
            if action.second_tier:
                self._evict.discard(space.id)  # its memory is given back
        elif isinstance(action, StopPrevious):
            self._act(step, lambda: self._stop_quietly(action.handle))
            if action.forget:
                space.instance = InstanceRecord.from_json(space.instance).without_previous().to_json()
        elif isinstance(action, Freeze):
            try:
                self._act(step, lambda: self.backend.freeze(action.handle))  # first tier: instant thaw on a visit
                self._close_usage(s, space)
            except NotImplementedError:
                self._stop_instance(step, action.handle)
        elif isinstance(action, Thaw):
            if self._claim_frozen(step, action.handle):
                # the one act not committed first: a thaw takes milliseconds and sits on a waking visitor's path
                self.backend.thaw(action.handle)
                step.acted = True
        elif isinstance(action, StartStandby):
            self._start_standby(step)
        elif isinstance(action, Claim):
            self._claim_standby(step, action.handle)
        elif isinstance(action, Crashed):
            self._crashed(step, action)
        elif isinstance(action, Revert):
            self._act(step, lambda: self._stop_quietly(action.handle))
            space.instance = InstanceRecord.from_json(space.instance).reverted().to_json()
            space.instance_sha = None
        elif isinstance(action, Start):
            self._start_new(step, action.previous)
        elif isinstance(action, WatchReady):
            self._watch_ready(space.id, action.handle)
        elif isinstance(action, Running):
            self._open_usage(s, space)  # after a thaw billing resumes; idempotent while running
            space.retry_at = None
            if action.forget_crashes:
                space.restarts = 0
            if action.answered_at is not None:
                space.instance = InstanceRecord.from_json(space.instance).answered(action.answered_at).to_json()
        elif isinstance(action, NotifyReady):
            with self._lock:
                listeners = self._ready_listeners.pop(space.id, [])
            for cb in listeners:
                cb()
        elif isinstance(action, Queue):
            space.queued_at = space.queued_at or utcnow()
        elif isinstance(action, RetryLater):
            space.retry_at = utcnow() + timedelta(seconds=action.seconds)
        else:  # pragma: no cover - decide() returns only the kinds above
            raise TypeError(f"no applier for {action!r}")

    def _route(self, space: Space, state: str, upstream: tuple[str, int] | None, message: str = "",
               static_root: str | None = None) -> None:
        self.publish_route(RouteUpdate(space.id, space.subdomain, state, upstream, space.private, space.owner_id,
                                       message or space.stage_message, title=space.repo_id, stage=space.stage,
                                       static_root=static_root, app_file=(space.card_data or {}).get("app_file"),
                                       reason=space.stage_reason or ""))

    # ---- applying the actions that talk to the backend -----------------------------------------------------
    def _stop_instance(self, step: _Step, handle: Handle) -> None:
        """A stop waits out the app's grace period: committed first (``_act``), never under the write lock."""
        self._act(step, lambda: self._stop_quietly(handle))
        self._close_usage(step.s, step.space)
        step.space.instance = None
        step.space.instance_sha = None

    def _start_standby(self, step: _Step) -> None:
        """Start a standby for a Space just stopped asleep; its watcher then has it frozen once it listens."""
        space, artifact = step.space, step.artifact
        try:
            handle = self._act(step, lambda: self.start_standby(step.s, space, artifact))
        except Exception:  # the Space stays stopped, as it would be without standbys; its next visit starts it
            log.warning("space %s: no standby: its start failed", space.id, exc_info=True)
            return
        if handle is None:  # the platform gives this Space none (its SDK, its hardware): nothing was started
            step.acted = False
            return
        space.instance = InstanceRecord.of_standby(handle, space.hardware, time.time()).to_json()
        space.instance_sha = artifact.sha
        self._pump_logs(space.id, handle, replay=False)  # after the last run's lines: its log is not cleared
        self._watch_ready(space.id, handle)

    def _claim_standby(self, step: _Step, current: Handle) -> None:
        """Give a woken standby a running Space's capacity (quota, then a node: its own), or stop it so that the
        Space starts anew, and that start reports the refusal (quota, a queue)."""
        placement = None
        try:
            placement = self.reserve(step.s, step.space, current.node)
        except SpacesError as exc:
            log.info("space %s: its standby cannot run now (%s); starting it anew", step.space.id, exc.code)
        if placement is None or placement.get("node") != current.node:
            self._stop_instance(step, current)
        else:
            step.space.instance = InstanceRecord.started(current, placement).to_json()
            step.claimed = True

    def _claim_frozen(self, step: _Step, current: Handle) -> bool:
        """A frozen instance gave its capacity back when its Space went to sleep (``capacity.node_usage``): claim
        it again before the thaw (quota, then a node: its own first, where its memory is). Refused, or room only on
        another node: stop it, so that it gives its memory back too, and the Space starts anew, which reports the
        refusal (quota, or its place in the queue) and, when room comes, starts wherever the scheduler finds it.
        True when it may be thawed."""
        if self.reserve is None or step.claimed:
            return True
        space = step.space
        try:
            placement = self.reserve(step.s, space, current.node)
        except SpacesError as exc:
            log.info("space %s: no room to thaw it (%s); starting it anew", space.id, exc.code)
            placement = None
        if placement is None or placement.get("node") != current.node:
            self._stop_instance(step, current)
            return False
        record = InstanceRecord.from_json(space.instance)
        space.instance = replace(record, placement={**(record.placement or {}), **placement}).to_json()
        return True

    def _crashed(self, step: _Step, crash: Crashed) -> None:
        space = step.space
        space.restarts = (space.restarts or 0) + 1
        space.retry_at = None if crash.retry_in is None else utcnow() + timedelta(seconds=crash.retry_in)
        space.instance_sha = None  # whatever is left is not the revision to run: a start follows the backoff
        if crash.previous is None:
            self._close_usage(step.s, space)  # committed with the stage, before the stop (which may take seconds)
        self._act(step, lambda: self._stop_quietly(crash.handle))
        if crash.previous is not None:  # the previous revision serves on: its route and billing stay
            space.instance = InstanceRecord.from_json(space.instance).reverted().to_json()
            return
        space.instance = None
        self._route(space, RouteState.ERROR.value, None, space.stage_message)

    def _log_tail(self, handle: Handle) -> str:
        """The last lines of a live instance's log (an exited one's come with its poll)."""
        try:
            return "\n".join(deque(self.backend.logs(handle, follow=False), maxlen=LOG_TAIL_LINES)).strip()
        except Exception:
            log.warning("reading the log of %s failed", handle.ref, exc_info=True)
            return ""

    def _start_new(self, step: _Step, current: Handle | None) -> None:
        s, space, artifact = step.s, step.space, step.artifact
        if current is None:
            # nothing serves while it starts (which may take seconds): the proxy's waiting page says now what the
            # pages say (the stage the builder recorded), not what the route said before the build ended
            self._route(space, RouteState.STARTING.value, None)
        try:
            handle, placement = self._act(step, lambda: self.start_instance(s, space, artifact))
        except QuotaExceeded as exc:
            outcome = refused(self._desired(step), current is not None, Refusal.QUOTA, exc.message)
        except WaitingForCapacity as exc:
            outcome = refused(self._desired(step), current is not None, Refusal.WAITING, exc.message)
        except RevisionNotFound as exc:  # a built revision should never vanish: leave a trace
            log.error("space %s: built revision %s cannot be read from its repository (tip %s)",
                      space.id, artifact.sha, space.sha)
            outcome = refused(self._desired(step), current is not None, Refusal.REVISION_GONE, exc.message)
        except SpacesError as exc:
            outcome = refused(self._desired(step), current is not None, Refusal.FAILED, exc.message)
        else:
            space.queued_at = None
            before = InstanceRecord.from_json(space.instance)
            space.instance = InstanceRecord.started(
                handle, placement, previous=current, since=time.time(),
                previous_placement=before.placement if before is not None and current is not None else None).to_json()
            space.instance_sha = artifact.sha
            outcome = started(current is not None)
            self.logs.clear(space.id, "run")
            if (placement or {}).get("note"):  # its limits were clamped to the node: the owner reads why here
                self.logs.append(space.id, "run", placement["note"])
            self._pump_logs(space.id, handle, replay=False)
            self._open_usage(s, space)
            self._watch_ready(space.id, handle)
        for action in outcome:
            self._apply(step, action)

    # ---- helpers ------------------------------------------------------------------------------------------
    def _stop_quietly(self, handle: Handle) -> None:
        try:
            self.backend.stop(handle)
        except Exception:
            log.exception("stopping %s failed", handle.ref)

    def _open_usage(self, s, space: Space) -> None:  # noqa: ANN001
        open_row = s.scalar(select(UsageInterval).where(UsageInterval.space_id == space.id,
                                                        UsageInterval.ended_at.is_(None)))
        if open_row is None:
            s.add(UsageInterval(account_id=space.owner_id, space_id=space.id, flavor=space.hardware))
        space.hardware_current = space.hardware

    def _close_usage(self, s, space: Space) -> None:  # noqa: ANN001
        for row in s.scalars(select(UsageInterval).where(UsageInterval.space_id == space.id,
                                                         UsageInterval.ended_at.is_(None))):
            row.ended_at = utcnow()
        space.hardware_current = None

    def _watch_ready(self, space_id: str, handle: Handle) -> None:
        """Poll the new instance's port (see READY_POLL_FAST) in a thread of its own; nudge the moment it answers."""
        with self._lock:
            t = self._watchers.get(space_id)
            if t is not None and t.is_alive():
                return

            def watch() -> None:
                begun = time.monotonic()
                while not self._stop.is_set() and time.monotonic() < begun + 3600:
                    phase = self.backend.poll(handle).phase
                    if phase != Phase.STARTING:
                        break
                    time.sleep(READY_POLL_FAST if time.monotonic() < begun + READY_FAST_FOR else READY_POLL)
                self.nudge(space_id)

            t = threading.Thread(target=watch, name=f"ready-{space_id}", daemon=True)
            self._watchers[space_id] = t
        t.start()

    def _pump_logs(self, space_id: str, handle: Handle, *, replay: bool, note: str | None = None) -> None:
        def pump() -> None:
            try:
                if replay:
                    self.logs.clear(space_id, "run")
                    if note:
                        self.logs.append(space_id, "run", note)
                for line in self.backend.logs(handle, follow=True):
                    self.logs.append(space_id, "run", line)
            except Exception:
                log.debug("log pump for %s ended", space_id, exc_info=True)

        t = threading.Thread(target=pump, name=f"logs-{space_id}", daemon=True)
        self._pumps[space_id] = t
        t.start()


#: what users and builds change and the reconciler only reads
_DESIRED = (Space.paused, Space.asleep, Space.sha, Space.hardware, Space.private, Space.subdomain)


class _DesiredChanged(Exception):
    pass


@dataclass
class _Step:
    """One reconcile of one Space: its transaction and row, and whether it acted on the backend since its last
    commit (then what it did is committed whatever the desired state says now)."""

    s: Session
    space: Space
    artifact: Artifact | None
    acted: bool = False
    claimed: bool = False  # its instance claimed its capacity in this step (a woken standby): no second claim


def _aware(dt):  # noqa: ANN001, ANN202
    from datetime import timezone

    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=timezone.utc)

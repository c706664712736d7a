"""The reconciler: level-triggered and idempotent. Per Space: load desired state, observe through the backend,
take one step, record the stage. It runs on a periodic sweep plus nudges (API writes, builds, wakes).

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

The instance record on the Space row is ``{"current": Handle, "previous": Handle | None}``: while a new revision
starts, the previous one keeps serving, and it is stopped only once the new one answers (zero-downtime swap).

On start, ``adopt`` lists every labelled workload of the backend: the ones a Space row points at are kept as they
are (nothing healthy is restarted), the rest are orphans and are stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from spaces.builder.plan import Artifact
from spaces.db.models import Space, UsageInterval, utcnow
from spaces.db.session import Database
from spaces.domain.stages import SpaceStage
from spaces.errors import QuotaExceeded, SpacesError
from spaces.runtime.contracts import LABEL_MANAGED, Backend, Handle, Observed, Phase
from spaces.runtime.specs import startup_timeout
from spaces.services.logs import LogBus

log = logging.getLogger("spaces.reconciler")

BACKOFF_BASE = 2.0  # seconds; doubled per consecutive crash
BACKOFF_MAX = 300.0
# the readiness watcher tries a new instance's port every 2 ms for its first second, then every 10 ms: an app
# woken from its zygote listens within tens of milliseconds, and the wait for the next try is part of its wake
READY_POLL_FAST, READY_FAST_FOR, READY_POLL = 0.002, 1.0, 0.01
#: scheduler refusals that mean "wait for capacity" (spaces.runtime.scheduler.Unschedulable reasons)
WAITING_CODES = frozenset({"Full"})


@dataclass
class RouteUpdate:
    """What the proxy should know about a Space after a step (see spaces/proxy routes)."""

    space_id: str
    subdomain: str
    state: str  # running | starting | sleeping | paused | error
    upstream: tuple[str, int] | None
    private: bool
    owner_id: str
    message: str
    title: str = ""
    stage: str = ""
    static_root: str | None = None  # static Spaces: the working copy the platform serves
    app_file: str | None = None


class Reconciler:
    def __init__(self, db: Database, backend: Backend, logs: LogBus, *, start_instance: Callable,
                 publish_route: Callable[[RouteUpdate], None], sweep_seconds: float = 5.0,
                 stop_frozen_after: float = 21600.0, memory_pressure: Callable[[], bool] | None = None,
                 start_standby: Callable | None = None, reserve: Callable | None = None,
                 stop_standby_after: float = 604800.0, own_labels: dict[str, str] | None = None) -> None:
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
        chosen = next((sid for sid, inst in asleep if not (inst or {}).get("standby")), None)
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
                for key in ("current", "previous"):
                    h = (space.instance or {}).get(key)
                    if h:
                        known.add(Handle.from_json(h).ref)
                if (space.instance or {}).get("current"):
                    self._pump_logs(space.id, Handle.from_json(space.instance["current"]), replay=True,
                                    note=(space.instance.get("placement") or {}).get("note"))
        for handle in running:
            if handle.ref not in known:
                log.info("stopping orphan %s", handle.ref)
                self._stop_quietly(handle)
        self.nudge()

    # ---- one step -----------------------------------------------------------------------------------------
    def reconcile(self, space_id: str) -> None:
        try:
            self._reconcile(space_id)
        except _DesiredChanged:
            self.nudge(space_id)  # an API write landed meanwhile: look again with what is true now

    def _commit(self, s, space: Space) -> None:  # noqa: ANN001
        """Commit this step unless the desired state changed under it (then roll back and raise).

        The step's decisions were made from the desired state read at its start; an API write (pause, restart,
        push, hardware, visibility) may have landed since. After the flush this transaction holds the write
        lock (SQLite) or the row lock (PostgreSQL, FOR UPDATE), so the check and the commit are atomic.
        """
        if s.info.pop("acted", False):
            s.commit()  # something was started or stopped: that must be on record, whatever the stage says
            return
        s.flush()
        now = s.execute(select(*_DESIRED).where(Space.id == space.id).with_for_update()).one_or_none()
        if now is None or tuple(now) != self._seen.get(space.id):
            s.rollback()
            raise _DesiredChanged()
        s.commit()

    def _reconcile(self, space_id: str) -> None:
        with self.db.session() as s:
            space = s.get(Space, space_id)
            if space is None:
                return
            self._seen[space.id] = tuple(getattr(space, c.key) for c in _DESIRED)
            if not space.asleep:
                self._evict.discard(space.id)  # woken before its eviction: nothing to give back any more
            inst = dict(space.instance or {})
            current = Handle.from_json(inst["current"]) if inst.get("current") else None
            previous = Handle.from_json(inst["previous"]) if inst.get("previous") else None
            artifact = Artifact.from_json(space.artifact) if space.artifact else None
            obs = self.backend.poll(current) if current else None

            if not self._wants_running(space, artifact):
                self._wind_down(s, space, artifact, current, previous, obs)
                self._commit(s, space)
                return

            if current is not None and inst.get("standby"):
                current, obs = self._claim_standby(s, space, artifact, current, obs)
            elif current is not None and obs is not None and obs.phase == Phase.FROZEN:
                current, obs = self._claim_frozen(s, space, current, obs)

            if current is not None and obs is not None and obs.phase in (Phase.EXITED, Phase.GONE):
                self._crashed(s, space, current, obs)
                current, obs = None, None

            if current is None or space.instance_sha != artifact.sha:
                self._start_new(s, space, artifact, current)
                self._commit(s, space)
                return

            if obs.phase == Phase.FROZEN:
                self.backend.thaw(current)
                s.info["acted"] = True
                obs = self.backend.poll(current)
            if obs.phase == Phase.RUNNING:
                self._running(s, space, current, previous, obs)
            elif obs.phase == Phase.STARTING:
                self._starting(s, space, current, obs)
            self._commit(s, space)

    @staticmethod
    def _wants_running(space: Space, artifact: Artifact | None) -> bool:
        blocked = (SpaceStage.NO_APP_FILE.value, SpaceStage.CONFIG_ERROR.value)
        return artifact is not None and not space.paused and not space.asleep and space.stage not in blocked

    def _set_stage(self, space: Space, stage: SpaceStage, reason: str, message: str) -> None:
        from spaces.services.spaces import SpaceService

        SpaceService.set_stage(space, stage, reason, message)

    def _route(self, space: Space, state: str, upstream: tuple[str, int] | None, message: str = "",
               static_root: str | None = None) -> None:
        self.publish_route(RouteUpdate(space.id, space.subdomain, state, upstream, space.private, space.owner_id,
                                       message or space.stage_message, title=space.repo_id, stage=space.stage,
                                       static_root=static_root, app_file=(space.card_data or {}).get("app_file")))

    def _wind_down(self, s, space: Space, artifact: Artifact | None, current: Handle | None,  # noqa: ANN001
                   previous: Handle | None, obs: Observed | None) -> None:
        if previous is not None:
            self._commit(s, space)
            self._stop_quietly(previous)
            s.info["acted"] = True
        if space.paused:
            if current is not None:
                self._stop_instance(s, space, current)
            self._set_stage(space, SpaceStage.PAUSED, "paused_by_owner",
                            "This Space is paused by its owner; restart it to bring it back.")
            self._route(space, "paused", None)
        elif space.asleep:
            sleeping = SpaceStage.SLEEPING if space.hardware == "cpu-basic" else SpaceStage.STOPPED
            standby = bool((space.instance or {}).get("standby"))
            if current is not None and standby and not self._standby_current(space, artifact):
                self._stop_instance(s, space, current)  # revision, variables or hardware changed meanwhile
                current, obs = self._start_standby(s, space, artifact), None
            elif current is not None and standby and obs is not None and obs.phase == Phase.STARTING:
                self._standby_starting(s, space, current)
                current = None if space.instance is None else current
            elif current is not None and obs is not None and obs.phase == Phase.RUNNING:
                self._commit(s, space)
                try:
                    self.backend.freeze(current)  # first tier: instant thaw on the next visit
                    s.info["acted"] = True
                    self._close_usage(s, space)
                except NotImplementedError:
                    self._stop_instance(s, space, current)
                    current = None
            elif current is not None and obs is not None and obs.phase == Phase.FROZEN:
                evicted, asleep_for = space.id in self._evict, _asleep_for(space)
                if evicted or asleep_for > (self.stop_standby_after if standby else self.stop_frozen_after):
                    self._stop_instance(s, space, current)  # second tier: give the memory back
                    self._evict.discard(space.id)
                    current, obs = (None if standby else self._start_standby(s, space, artifact)), None
            elif current is not None:
                self._stop_instance(s, space, current)
                current = None
            self._set_stage(space, sleeping, "idle", "This Space is asleep after a period without visitors; "
                                                     "opening it wakes it up.")
            self._route(space, "sleeping", obs.address if (current and obs) else None)
        else:  # nothing to run yet (building, or a config error): the proxy shows the stage and its message
            if current is not None:
                self._stop_instance(s, space, current)
            failed = space.stage.endswith("ERROR") or space.stage == SpaceStage.NO_APP_FILE.value
            self._route(space, "error" if failed else "starting", None)

    # ---- standbys -----------------------------------------------------------------------------------------
    def _start_standby(self, s, space: Space, artifact: Artifact | None) -> Handle | None:  # noqa: ANN001
        """Start a standby for a Space just stopped asleep, where it may have one; its watcher then has it frozen."""
        if self.start_standby is None or artifact is None or _asleep_for(space) > self.stop_standby_after:
            return None
        self._commit(s, space)  # never hold the database's write lock across a start
        try:
            handle = self.start_standby(s, space, artifact)
        except Exception:  # the Space stays stopped, as it would be without standbys; its next visit starts it
            log.warning("space %s: no standby: its start failed", space.id, exc_info=True)
            return None
        if handle is None:
            return None
        s.info["acted"] = True
        space.instance = {"current": handle.to_json(), "previous": None, "placement": None, "standby": True,
                          "hardware": space.hardware, "since": time.time()}
        space.instance_sha = artifact.sha
        self._pump_logs(space.id, handle, replay=False)  # after the last run's lines: its log is not cleared
        self._watch_ready(space.id, handle)
        return handle

    @staticmethod
    def _standby_current(space: Space, artifact: Artifact | None) -> bool:
        """Is the standby still what a start would run now (revision, variables and secrets, hardware)?"""
        return (artifact is not None and space.instance_sha == artifact.sha
                and (space.instance or {}).get("hardware") == space.hardware)

    def _standby_starting(self, s, space: Space, current: Handle) -> None:  # noqa: ANN001
        """A standby not listening yet: watch it (it is frozen once it listens), or stop it past the start-up time."""
        since = (space.instance or {}).get("since")
        if since and time.time() - float(since) > startup_timeout(space.card_data):
            log.warning("space %s: its standby did not listen in time; stopped", space.id)
            self._stop_instance(s, space, current)
        else:
            self._watch_ready(space.id, current)

    def _claim_standby(self, s, space: Space, artifact: Artifact, current: Handle,  # noqa: ANN001
                       obs: Observed | None) -> tuple[Handle | None, Observed | None]:
        """A standby's Space is wanted running: give the standby a running Space's capacity (quota, then a node:
        its own), or stop it so that the Space starts anew, and that start reports a refusal (quota, a queue)."""
        placement = None
        if self._standby_current(space, artifact) and obs is not None and obs.phase in (
                Phase.FROZEN, Phase.RUNNING, Phase.STARTING):
            try:
                placement = self.reserve(s, space, current.node)
            except SpacesError as exc:
                log.info("space %s: its standby cannot run now (%s); starting it anew", space.id, exc.code)
        if placement is None or placement.get("node") != current.node:
            self._stop_instance(s, space, current)
            return None, None
        space.instance = {"current": current.to_json(), "previous": None, "placement": placement}
        return current, obs

    def _claim_frozen(self, s, space: Space, current: Handle,  # noqa: ANN001
                      obs: Observed) -> tuple[Handle | None, Observed | None]:
        """A frozen instance gave its capacity back when its Space went to sleep (``capacity.node_usage``): claim
        it again before the thaw (quota, then a node: its own first, where its memory is). Refused, or room only on
        another node: stop it, so that it gives its memory back too, and the Space starts anew, which reports the
        refusal (quota, or its place in the queue) and, when room comes, starts wherever the scheduler finds it."""
        if self.reserve is None:
            return current, obs
        try:
            placement = self.reserve(s, space, current.node)
        except SpacesError as exc:
            log.info("space %s: no room to thaw it (%s); starting it anew", space.id, exc.code)
            placement = None
        if placement is None or placement.get("node") != current.node:
            self._stop_instance(s, space, current)
            return None, None
        inst = dict(space.instance or {})
        space.instance = {**inst, "placement": {**(inst.get("placement") or {}), **placement}}
        return current, obs

    def _crashed(self, s, space: Space, current: Handle, obs: Observed) -> None:  # noqa: ANN001
        self._close_usage(s, space)
        space.restarts = (space.restarts or 0) + 1
        delay = min(BACKOFF_MAX, BACKOFF_BASE ** min(space.restarts, 10))
        space.retry_at = utcnow() + timedelta(seconds=delay)
        if obs.phase == Phase.EXITED:
            tail = obs.message.strip() or "(no output)"
            self._set_stage(space, SpaceStage.RUNTIME_ERROR, "app_crashed",
                            f"The app exited with code {obs.exit_code}; restarting in {int(delay)} s. "
                            f"Last log lines:\n{tail}")
        self._commit(s, space)
        self._stop_quietly(current)
        s.info["acted"] = True
        space.instance = None
        space.instance_sha = None
        self._route(space, "error", None, space.stage_message)

    def _start_new(self, s, space: Space, artifact: Artifact, current: Handle | None) -> None:  # noqa: ANN001
        if space.retry_at is not None and _aware(space.retry_at) > utcnow():
            return  # backing off after a crash; the sweep comes back
        self._commit(s, space)  # never hold the database's write lock across a start (a zygote may take seconds)
        try:
            handle, placement = self.start_instance(s, space, artifact)
            s.info["acted"] = True
        except QuotaExceeded as exc:
            # a refusal never touches what already runs; the Space says why it is not running
            self._set_stage(space, SpaceStage.RUNNING if current else SpaceStage.RUNTIME_ERROR, "quota_exceeded",
                            exc.message)
            if current is None:
                self._route(space, "error", None, exc.message)
            return
        except SpacesError as exc:
            if exc.code in WAITING_CODES:  # no capacity now: queued, FIFO per flavor, the message says where
                space.queued_at = space.queued_at or utcnow()
                self._set_stage(space, SpaceStage.RUNNING_APP_STARTING if current else SpaceStage.APP_STARTING,
                                "waiting_for_capacity", exc.message)
                if current is None:
                    self._route(space, "starting", None, exc.message)
                return
            if exc.code == "RevisionNotFound":  # a built revision should never vanish: leave a trace
                log.error("space %s: built revision %s cannot be read from its repository (tip %s)",
                          space.id, artifact.sha, space.sha)
                if space.sha and space.sha != artifact.sha:
                    # a newer revision is on its way through the builder: wait for that build rather than mark
                    # the Space broken
                    space.retry_at = utcnow() + timedelta(seconds=BACKOFF_MAX)  # the build's end clears it
                    return
            self._set_stage(space, SpaceStage.RUNTIME_ERROR, "start_failed", exc.message)
            self._route(space, "error", None, exc.message)
            return
        space.queued_at = None
        space.instance = {"current": handle.to_json(), "previous": current.to_json() if current else None,
                          "placement": placement}
        space.instance_sha = artifact.sha
        self._set_stage(space, SpaceStage.RUNNING_APP_STARTING if current else SpaceStage.APP_STARTING, "starting",
                        "Starting the app; it is served as soon as it answers on its port.")
        self.logs.clear(space.id, "run")
        if (placement or {}).get("note"):  # its limits were clamped to the node: the owner reads why here
            self.logs.append(space.id, "run", placement["note"])
        self._pump_logs(space.id, handle, replay=False)
        self._open_usage(s, space)
        self._watch_ready(space.id, handle)
        if current is None:
            self._route(space, "starting", None)

    def _running(self, s, space: Space, current: Handle, previous: Handle | None, obs: Observed) -> None:  # noqa: ANN001
        if previous is not None:
            self._commit(s, space)
            self._stop_quietly(previous)
            s.info["acted"] = True
            space.instance = {**(space.instance or {}), "previous": None}
        self._open_usage(s, space)  # after a thaw billing resumes; idempotent while running
        space.restarts, space.retry_at = 0, None
        if space.stage not in (SpaceStage.RUNNING_BUILDING.value, SpaceStage.BUILD_ERROR.value):
            self._set_stage(space, SpaceStage.RUNNING, "running", "The app is running.")
        self._route(space, "running", obs.address, static_root=current.data.get("static"))
        with self._lock:
            listeners = self._ready_listeners.pop(space.id, [])
        for cb in listeners:
            cb()

    def _starting(self, s, space: Space, current: Handle, obs: Observed) -> None:  # noqa: ANN001
        timeout = startup_timeout(space.card_data)
        started = current.data.get("started_at")
        if started and time.time() - float(started) > timeout:
            self._stop_instance(s, space, current)
            self._set_stage(space, SpaceStage.RUNTIME_ERROR, "startup_timeout",
                            f"The app did not answer on its port within {int(timeout)} s "
                            "(startup_duration_timeout). Check that it listens on 0.0.0.0 and the right port.")
            self._route(space, "error", None)
        else:
            self._watch_ready(space.id, current)

    # ---- helpers ------------------------------------------------------------------------------------------
    def _stop_instance(self, s, space: Space, handle: Handle) -> None:  # noqa: ANN001
        self._commit(s, space)  # a stop waits out the app's grace period: not while holding the write lock
        self._stop_quietly(handle)
        s.info["acted"] = True
        self._close_usage(s, space)
        space.instance = None
        space.instance_sha = None

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


def _asleep_for(space: Space) -> float:
    """Seconds since an asleep Space's stage last changed (to sleeping, normally)."""
    return (utcnow() - _aware(space.stage_changed_at)).total_seconds()


def _aware(dt):  # noqa: ANN001, ANN202
    from datetime import timezone

    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=timezone.utc)

"""Build service: every new revision of a Space becomes an Artifact, with its phases streamed as build logs.

Lifecycle of one build (one row in ``builds``):

    queued --(a worker takes it)--> running --> built | failed
       ^                              |
       └── handed back (its worker stopped) or taken again (its worker's lease ran out)
    queued --> superseded (a newer push came in before it ran)

The ``builds`` table is the queue, shared by every builder process (``spaces serve --roles builder``, any number
of them, or the one all-in-one process). ``submit`` only writes the row and the stage (inside the caller's
transaction) and, once that commits, publishes ``builds`` on the bus. Each ``BuildService`` that was ``start``-ed
is a worker with an id of its own; it wakes on that message or every ``poll`` seconds and takes builds with a
conditional ``UPDATE ... WHERE status = 'queued'`` (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL picks the
candidate): of two workers racing for a row, one updates it and the other sees 0 rows. A partial unique index lets
at most one build per Space run, whichever worker runs it.

A running build carries its worker and a lease that the worker renews every ``lease / 6`` seconds. Any live worker
queues again a build whose lease ran out (its worker died, or lost the database that long) and says so in the
build log; it is then built again. A worker whose process is gone from this machine's process table (a crashed
server, restarted) loses its builds at once, without waiting for the lease. ``stop`` (SIGTERM) hands this worker's running builds back at once; a build
handed back or taken again stops at its next log line, and its late finish changes nothing: ``_finish`` only
writes while the row is still this worker's. Only the newest build of a Space may set its artifact and stage: a
slow old build finishing late changes nothing.

The previous revision keeps serving while a new one builds (RUNNING_BUILDING); the reconciler swaps it only
when the new artifact is running and healthy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta, timezone
from pathlib import Path
from typing import Protocol

from sqlalchemy import exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from spaces.builder.errors import BuildFailed
from spaces.builder.plan import Artifact, BuildPlan
from spaces.builder.preload import PreloadStore
from spaces.bus import Bus
from spaces.db.models import Build, Space, utcnow
from spaces.db.session import Database, after_commit
from spaces.domain.stages import SpaceStage
from spaces.errors import SpacesError
from spaces.services.logs import LogBus

log = logging.getLogger("spaces.builds")

RUNNING_STAGES = (SpaceStage.RUNNING.value, SpaceStage.RUNNING_BUILDING.value, SpaceStage.RUNNING_APP_STARTING.value)
BUILDS_CHANNEL = "builds"


class ArtifactBuilder(Protocol):
    """Turns a plan into an artifact (a uv environment or a Docker image)."""

    def build(self, plan: BuildPlan, *, space_id: str, sha: str, context: Path, variables: dict[str, str],
              secrets: dict[str, str], log: Callable[[str, str], None], factory: bool, preload: str = "") -> Artifact:
        """``preload``: the build's preload folder (``builder/preload.py``); passed only when there is one. The
        artifact records it (a venv's ``Artifact.preload``) or carries it inside (an image)."""


class BuildAbandoned(Exception):
    """Raised into a build's own thread (at its next log line) once the build is no longer this worker's."""


def _place() -> str:
    """Which process table this process is in (machine boot and pid namespace): where a worker's pid can be asked
    about. Empty where that cannot be told (then only leases say that a worker died)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pidns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    return hashlib.sha256(f"{boot}/{pidns}".encode()).hexdigest()[:8]


PLACE = _place()


def worker_name() -> str:
    """``host:pid:place:random``: unique per process and start (a restarted builder is a new worker and never
    mistakes old rows for its own), and tells a builder in the same process table whose process is gone."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{PLACE or '-'}:{secrets.token_hex(3)}"


def process_gone(worker: str) -> bool:
    """Whether ``worker`` ran in this process table and its process has exited: its builds need not wait for the
    lease (a server restarted after a crash builds them again at once). A reused pid only means waiting."""
    try:
        _host, pid, place, _random = worker.rsplit(":", 3)
        if not PLACE or place != PLACE:
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (ValueError, OSError):  # not our format, or alive under another user
        return False
    return False


class BuildService:
    """``bus``: where ``submit`` announces a queued build and where a started worker listens for it (None: only
    this process's worker is woken, as in the one-process server). ``lease``: seconds a running build stays its
    worker's without a renewal; ``poll``: seconds between looks at the queue when nothing was announced."""

    def __init__(self, db: Database, logs: LogBus, repo_for: Callable[[Space], object], builder: ArtifactBuilder,
                 planner: Callable[[object, str], BuildPlan], *, workers: int = 2,
                 on_built: Callable[[str], None] | None = None, env_for: Callable[[Session, Space], tuple] | None = None,
                 bus: Bus | None = None, lease: float = 30.0, poll: float = 5.0, worker_id: str | None = None,
                 preload: PreloadStore | None = None) -> None:
        self.db = db
        self.logs = logs
        self.repo_for = repo_for
        self.builder = builder
        self.planner = planner
        self.on_built = on_built or (lambda space_id: None)
        self.env_for = env_for
        self.bus = bus
        self.preload = preload  # fetches README preload_from_hub files before the artifact is built
        self.lease = lease
        self.poll = poll
        self.worker_id = (worker_id or worker_name())[:64]
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="build")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._active: set[int] = set()  # builds this worker runs now
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._postgres = db.engine.dialect.name == "postgresql"

    # ---- submitting (inside the caller's transaction) -----------------------------------------------------
    def submit(self, s: Session, space: Space, *, factory: bool = False) -> None:
        if space.sha is None:
            return
        s.execute(update(Build).where(Build.space_id == space.id, Build.status == "queued")
                  .values(status="superseded", finished_at=utcnow()))
        s.add(Build(space_id=space.id, sha=space.sha, factory=factory))
        running = space.stage in RUNNING_STAGES and space.instance is not None
        stage = SpaceStage.RUNNING_BUILDING if running else SpaceStage.BUILDING
        from spaces.services.spaces import SpaceService

        SpaceService.set_stage(space, stage, "build_queued", f"Build of {space.sha[:7]} is queued.")
        after_commit(s, self._announce)

    def _announce(self) -> None:
        if self.bus is not None:
            self.bus.publish(BUILDS_CHANNEL, {})  # every worker, this process's too (it subscribed at start)
        else:
            self._wake.set()

    # ---- the worker: dispatcher, heartbeat, builds ----------------------------------------------------------
    def start(self) -> None:
        """Take queued builds until ``stop``; renew this worker's leases and queue again builds whose worker died."""
        if self.bus is not None:
            self._unsubscribe = self.bus.subscribe(BUILDS_CHANNEL, lambda _message: self._wake.set())
        try:  # a crashed predecessor on this machine: its builds go back to the queue now, not after the lease
            self._requeue_expired()
        except Exception:
            log.exception("looking for builds of lost builders failed")
        for target, name in ((self._dispatch, "build-dispatch"), (self._heartbeat, "build-lease")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._wake.set()

    def stop(self) -> None:
        """Stop taking builds and hand the running ones back to the queue at once, for another worker (or this
        one's successor) to build; their threads stop at their next log line."""
        self._stop.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        try:
            self._hand_back()
        except Exception:  # the database is away: the leases run out and another worker takes the builds then
            log.exception("handing running builds back failed")
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _hand_back(self) -> None:
        with self.db.session() as s:
            mine = list(s.execute(select(Build.id, Build.space_id).where(Build.worker == self.worker_id,
                                                                          Build.status == "running")))
            if not mine:
                return
            s.execute(update(Build).where(Build.worker == self.worker_id, Build.status == "running")
                      .values(status="queued", worker=None, lease_until=None))
        for build_id, space_id in mine:
            log.info("build %s handed back to the queue (worker %s stopping)", build_id, self.worker_id)
            self.logs.append(space_id, "build", "=== the builder running this build is stopping: it goes back to "
                                                "the queue and starts again on the next builder")
        self.logs.flush()  # this process is about to exit: the lines must not wait for the writer's next batch
        if self.bus is not None:
            self.bus.publish(BUILDS_CHANNEL, {})

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=self.poll)
            self._wake.clear()
            try:
                while not self._stop.is_set() and self._free() and (build_id := self._claim()) is not None:
                    self._pool.submit(self._run_safely, build_id)
            except Exception:  # keep dispatching whatever one bad row does
                log.exception("build dispatch failed")

    def _free(self) -> bool:
        with self._lock:
            return len(self._active) < self.workers

    def _claim(self) -> int | None:
        """Take the oldest queued build of a Space that has none running; None when there is none to take."""
        for _ in range(20):  # each lost race means another worker took a build: try the next
            other = aliased(Build)
            q = (select(Build.id).where(Build.status == "queued",
                                        ~exists().where(other.space_id == Build.space_id, other.status == "running"))
                 .order_by(Build.id).limit(1))
            if self._postgres:  # skip rows another worker is taking right now instead of waiting for it
                q = q.with_for_update(skip_locked=True, of=Build)
            now = utcnow()
            try:
                with self.db.session() as s:
                    build_id = s.scalar(q)
                    if build_id is None:
                        return None
                    won = s.execute(update(Build).where(Build.id == build_id, Build.status == "queued").values(
                        status="running", worker=self.worker_id, started_at=now, attempts=Build.attempts + 1,
                        lease_until=now + timedelta(seconds=self.lease))).rowcount == 1
            except IntegrityError:  # another worker started a build of this Space meanwhile (the unique index)
                continue
            if won:
                with self._lock:
                    self._active.add(build_id)
                return build_id
        return None

    def _heartbeat(self) -> None:
        interval = max(0.2, self.lease / 6)
        while not self._stop.wait(interval):
            try:
                self._renew()
                if self._requeue_expired():
                    self._wake.set()
            except Exception:  # the database is away: try again; past the lease another worker takes over
                log.exception("renewing build leases failed")

    def _renew(self) -> None:
        with self._lock:
            active = set(self._active)
        if not active:
            return
        mine = (Build.id.in_(active), Build.worker == self.worker_id, Build.status == "running")
        with self.db.session() as s:
            s.execute(update(Build).where(*mine).values(lease_until=utcnow() + timedelta(seconds=self.lease)))
            still = set(s.scalars(select(Build.id).where(*mine)))
        with self._lock:  # taken again by another worker while this one was away: stop the stale copy
            self._active -= active - still

    def _requeue_expired(self) -> int:
        """Queue again the running builds whose worker stopped renewing, or whose process is gone from this
        machine; each with one line in its log. Clocks: the lease is written by one machine's clock and read by
        another's (kept in step by NTP, well under the lease)."""
        now = utcnow()
        with self.db.session() as s:
            running = list(s.execute(select(Build.id, Build.space_id, Build.worker, Build.lease_until)
                                     .where(Build.status == "running",
                                            or_(Build.worker.is_(None), Build.worker != self.worker_id))))
        taken = 0
        for build_id, space_id, worker, lease_until in running:
            if lease_until is not None and lease_until.tzinfo is None:
                lease_until = lease_until.replace(tzinfo=timezone.utc)  # SQLite hands datetimes back without a zone
            expired = lease_until is None or lease_until < now
            gone = not expired and worker is not None and process_gone(worker)
            if not (expired or gone):
                continue
            still = (Build.lease_until < now) if expired else (Build.worker == worker)
            with self.db.session() as s:
                won = s.execute(update(Build).where(Build.id == build_id, Build.status == "running", still)
                                .values(status="queued", worker=None, lease_until=None)).rowcount == 1
            if not won:
                continue
            taken += 1
            why = "its process is gone" if gone else f"it stopped answering for {self.lease:.0f} s"
            log.warning("build %s: worker %s: %s; queued again", build_id, worker, why)
            self.logs.append(space_id, "build", f"=== the builder running this build ({worker}) is lost: {why}; "
                                                "building it again")
        return taken

    def wait_idle(self, timeout: float = 600.0) -> bool:
        """For tests and the CLI: wait until no build is queued or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.db.session() as s:
                if s.scalar(select(Build.id).where(Build.status.in_(("queued", "running")))) is None:
                    return True
            time.sleep(0.1)
        return False

    def _mine(self, build_id: int) -> bool:
        with self._lock:
            return build_id in self._active and not self._stop.is_set()

    def _run_safely(self, build_id: int) -> None:
        try:
            self._run(build_id)
        except BuildAbandoned:
            log.info("build %s stopped here: it is no longer this worker's", build_id)
        except Exception:
            log.exception("build %s crashed", build_id)
            self._finish(build_id, None, "The build crashed inside the platform; the operator can find the "
                                          "details in the server log. Push again or restart the Space to retry.")
        finally:
            with self._lock:
                self._active.discard(build_id)
            self._wake.set()

    def _run(self, build_id: int) -> None:
        with self.db.session() as s:
            b = s.get(Build, build_id)
            space = s.get(Space, b.space_id) if b else None
            if b is None or space is None or b.worker != self.worker_id or b.status != "running":
                return
            sha, space_id, factory, attempt = b.sha, space.id, b.factory, b.attempts
            repo = self.repo_for(space)
            variables, secrets = self.env_for(s, space) if self.env_for else ({}, {})
            SpaceStageSetter.building(space, sha)

        if attempt <= 1:
            self.logs.clear(space_id, "build")  # a build taken again keeps what its first attempt printed
        say = self._logger(build_id, space_id)
        say("queued", f"Build of {sha[:7]} started" + (f" (attempt {attempt})" if attempt > 1 else ""))
        with tempfile.TemporaryDirectory(prefix="spaces-build-") as tmp:
            context = Path(tmp) / "src"
            say("fetching", f"Checking out {sha[:7]}")
            try:
                repo.export(sha, context)  # a SpacesError here (a link leaving the repo) is the build's failure
                plan = self.planner(context, sha)
                for reason in plan.reasons:
                    say("resolving", reason)
                preload = self._preload(space_id, plan, say)
                artifact = self.builder.build(plan, space_id=space_id, sha=sha, context=context,
                                              variables=variables, secrets=secrets, log=say, factory=factory,
                                              **({"preload": preload} if preload else {}))
            except SpacesError as exc:
                say("failed", exc.message)
                self._finish(build_id, None, exc.message)
                return
        say("built", f"Build of {sha[:7]} finished")
        self._finish(build_id, artifact, "")

    def _preload(self, space_id: str, plan: BuildPlan, say: Callable[[str, str], None]) -> str:
        if not plan.preload:
            return ""
        if self.preload is None:
            raise BuildFailed("README.md lists preload_from_hub files, but this builder has no hub to fetch them "
                              "from.", reason="preload_failed")
        return self.preload.prepare(space_id, plan.preload, say)

    def _logger(self, build_id: int, space_id: str) -> Callable[[str, str], None]:
        def say(phase: str, line: str) -> None:
            if not self._mine(build_id):  # handed back or taken again: stop this copy (a subprocess is killed)
                raise BuildAbandoned(build_id)
            # no clock time in the text: every line carries its timestamp already (the SSE event's, shown beside it)
            self.logs.append(space_id, "build", f"{phase:<10} {line.rstrip()}")
        return say

    def _finish(self, build_id: int, artifact: Artifact | None, message: str) -> None:
        newest = False
        with self.db.session() as s:
            # only while the build is still this worker's: one handed back or taken again belongs to its new run
            done = s.execute(update(Build).where(Build.id == build_id, Build.status == "running",
                                                 Build.worker == self.worker_id)
                             .values(status="built" if artifact else "failed", message=message, worker=None,
                                     lease_until=None, finished_at=utcnow(),
                                     artifact=artifact.to_json() if artifact else None)).rowcount == 1
            b = s.get(Build, build_id) if done else None
            if b is None:
                log.info("build %s finished after it stopped being this worker's: nothing recorded", build_id)
                return
            space = s.get(Space, b.space_id)
            newest = space is not None and space.sha == b.sha
            if newest and artifact is not None:
                old = space.artifact or {}
                if old.get("sha") == artifact.sha and old != artifact.to_json() and space.instance_sha == artifact.sha:
                    # the same revision built into something else (a factory rebuild took a preloaded model's new
                    # commit): the running instance has the old one, so a new instance replaces it
                    space.instance_sha = None
                space.artifact = artifact.to_json()
                space.restarts = 0
                space.retry_at = None
                SpaceStageSetter.built(space)
            elif newest:
                SpaceStageSetter.failed(space, message)
        if newest and artifact is not None:
            self.on_built(b.space_id)
        self.logs.end(b.space_id, "build")  # followed build logs end here unless a newer build is on its way


def build_pending(s: Session, space_id: str) -> bool:
    """Whether a build of the Space is queued or running: its build log may still grow."""
    return s.scalar(select(Build.id).where(Build.space_id == space_id, Build.status.in_(("queued", "running")))
                    .limit(1)) is not None


class SpaceStageSetter:
    """The stage changes a build makes, in one place."""

    @staticmethod
    def _set(space: Space, stage: SpaceStage, reason: str, message: str) -> None:
        from spaces.services.spaces import SpaceService

        SpaceService.set_stage(space, stage, reason, message)

    @classmethod
    def building(cls, space: Space, sha: str) -> None:
        running = space.stage in RUNNING_STAGES and space.instance is not None
        cls._set(space, SpaceStage.RUNNING_BUILDING if running else SpaceStage.BUILDING, "building",
                 f"Building {sha[:7]}; follow the build logs.")

    @classmethod
    def built(cls, space: Space) -> None:
        if space.paused:
            return
        running = space.instance is not None and space.stage in RUNNING_STAGES
        cls._set(space, SpaceStage.RUNNING_APP_STARTING if running else SpaceStage.APP_STARTING, "starting",
                 "Built; starting the app.")

    @classmethod
    def failed(cls, space: Space, message: str) -> None:
        suffix = " The previous revision keeps running." if space.instance is not None else ""
        cls._set(space, SpaceStage.BUILD_ERROR, "build_failed", message + suffix)


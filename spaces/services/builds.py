"""Build service: every new revision of a Space becomes an Artifact, with its phases streamed as build logs.

Lifecycle of one build (one row in ``builds``):

    queued --(a worker takes it)--> running --> built | failed
                                     └── superseded (a newer push came in) / re-queued (server restarted)

``submit`` only writes the row and the stage (inside the caller's transaction) and wakes the dispatcher after
that transaction commits; the work happens on a bounded pool of worker threads. A build that was running when
the server died is found ``running`` at the next start and queued again, so nothing is lost. Only the newest
build of a Space may set its artifact and stage: a slow old build finishing late changes nothing.

The previous revision keeps serving while a new one builds (RUNNING_BUILDING); the reconciler swaps it only
when the new artifact is running and healthy.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from spaces.builder.plan import Artifact, BuildPlan
from spaces.db.models import Build, Space, utcnow
from spaces.db.session import Database, after_commit
from spaces.domain.stages import SpaceStage
from spaces.errors import SpacesError
from spaces.services.logs import LogBus

log = logging.getLogger("spaces.builds")

RUNNING_STAGES = (SpaceStage.RUNNING.value, SpaceStage.RUNNING_BUILDING.value, SpaceStage.RUNNING_APP_STARTING.value)


class ArtifactBuilder(Protocol):
    """Turns a plan into an artifact (a uv environment or a Docker image)."""

    def build(self, plan: BuildPlan, *, space_id: str, sha: str, context: Path, variables: dict[str, str],
              secrets: dict[str, str], log: Callable[[str, str], None], factory: bool) -> Artifact: ...


class BuildService:
    def __init__(self, db: Database, logs: LogBus, repo_for: Callable[[Space], object], builder: ArtifactBuilder,
                 planner: Callable[[object, str], BuildPlan], *, workers: int = 2,
                 on_built: Callable[[str], None] | None = None, env_for: Callable[[Session, Space], tuple] | None = None) -> None:
        self.db = db
        self.logs = logs
        self.repo_for = repo_for
        self.builder = builder
        self.planner = planner
        self.on_built = on_built or (lambda space_id: None)
        self.env_for = env_for
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="build")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._active: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

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
        after_commit(s, self._wake.set)

    # ---- the dispatcher and workers -------------------------------------------------------------------------
    def start(self) -> None:
        """Re-queue builds a dead server left running, then dispatch queued builds until ``stop``."""
        with self.db.session() as s:
            for b in s.scalars(select(Build).where(Build.status == "running")):
                b.status = "queued"
                self.logs.append(b.space_id, "build", "=== the server restarted during this build: starting it again")
        self._thread = threading.Thread(target=self._dispatch, name="build-dispatch", daemon=True)
        self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=5)
            self._wake.clear()
            try:
                for build_id in self._claim():
                    self._pool.submit(self._run_safely, build_id)
            except Exception:  # keep dispatching whatever one bad row does
                log.exception("build dispatch failed")

    def _claim(self) -> list[int]:
        with self.db.session() as s:
            queued = list(s.scalars(select(Build).where(Build.status == "queued").order_by(Build.id)))
            with self._lock:
                busy_spaces = {sid for sid in s.scalars(select(Build.space_id).where(Build.id.in_(self._active)))}
                claimed = []
                for b in queued:
                    if b.space_id in busy_spaces:
                        continue  # one build per Space at a time; the next sweep picks it up
                    b.status = "running"
                    busy_spaces.add(b.space_id)
                    self._active.add(b.id)
                    claimed.append(b.id)
            return claimed

    def wait_idle(self, timeout: float = 600.0) -> bool:
        """For tests and the CLI: wait until no build is queued or running."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.db.session() as s:
                if s.scalar(select(Build.id).where(Build.status.in_(("queued", "running")))) is None:
                    return True
            time.sleep(0.1)
        return False

    def _run_safely(self, build_id: int) -> None:
        try:
            self._run(build_id)
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
            if b is None or space is None:
                return
            sha, space_id, factory = b.sha, space.id, b.factory
            repo = self.repo_for(space)
            variables, secrets = self.env_for(s, space) if self.env_for else ({}, {})
            SpaceStageSetter.building(space, sha)

        self.logs.clear(space_id, "build")
        say = self._logger(space_id)
        say("queued", f"Build of {sha[:7]} started")
        with tempfile.TemporaryDirectory(prefix="spaces-build-") as tmp:
            context = Path(tmp) / "src"
            say("fetching", f"Checking out {sha[:7]}")
            try:
                repo.export(sha, context)  # a SpacesError here (a link leaving the repo) is the build's failure
                plan = self.planner(context, sha)
                for reason in plan.reasons:
                    say("resolving", reason)
                artifact = self.builder.build(plan, space_id=space_id, sha=sha, context=context,
                                              variables=variables, secrets=secrets, log=say, factory=factory)
            except SpacesError as exc:
                say("failed", exc.message)
                self._finish(build_id, None, exc.message)
                return
        say("built", f"Build of {sha[:7]} finished")
        self._finish(build_id, artifact, "")

    def _logger(self, space_id: str) -> Callable[[str, str], None]:
        def say(phase: str, line: str) -> None:
            # no clock time in the text: every line carries its timestamp already (the SSE event's, shown beside it)
            self.logs.append(space_id, "build", f"{phase:<10} {line.rstrip()}")
        return say

    def _finish(self, build_id: int, artifact: Artifact | None, message: str) -> None:
        newest = False
        with self.db.session() as s:
            b = s.get(Build, build_id)
            if b is None:
                return
            b.status = "built" if artifact else "failed"
            b.message = message
            b.artifact = artifact.to_json() if artifact else None
            b.finished_at = utcnow()
            space = s.get(Space, b.space_id)
            newest = space is not None and space.sha == b.sha
            if newest and artifact is not None:
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


"""The sleeper: a loop that only changes desired state. A running Space idle for longer than its sleep time is
marked asleep; the reconciler then freezes it (first tier) and later stops it (second tier).

Idle is measured from the proxy's activity record (any request, or any byte on an open stream) and, before
the first visit, from when the instance started. ``-1`` (or None on paid hardware) means never.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import select

from spaces.db.models import Space
from spaces.db.session import Database
from spaces.domain.stages import SpaceStage
from spaces.domain.hardware import effective_sleep_time

log = logging.getLogger("spaces.sleeper")


class Sleeper:
    def __init__(self, db: Database, last_seen: Callable[[str], float | None], nudge: Callable[[str], None],
                 interval: float = 10.0) -> None:
        self.db = db
        self.last_seen = last_seen  # space id -> time.time() of the last activity, or None
        self.nudge = nudge
        self.interval = interval
        self._started: dict[str, float] = {}
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._loop, name="sleeper", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except Exception:
                log.exception("sleep sweep failed")

    def sweep(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        put_to_sleep = []
        with self.db.session() as s:
            for space in s.scalars(select(Space).where(Space.stage == SpaceStage.RUNNING.value,
                                                       Space.asleep.is_(False))):
                timeout = effective_sleep_time(space.sleep_time, space.hardware)
                if timeout is None or timeout < 0:
                    continue
                seen = self.last_seen(space.id) or self._started.setdefault(space.id, now)
                if now - seen >= timeout:
                    space.asleep = True
                    put_to_sleep.append(space.id)
        for space_id in put_to_sleep:
            self._started.pop(space_id, None)
            self.nudge(space_id)
        return put_to_sleep

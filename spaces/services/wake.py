"""Wake service: many requests for a sleeping Space, exactly one start.

The proxy calls ``wake(space_id)`` for every request that finds the Space asleep. The first caller flips the
Space's desired state to awake and nudges the reconciler; every caller (the first included) then waits on one
shared future that the reconciler resolves when the app answers. Coalescing is per process; with several proxy
processes the database write is idempotent, so at most one start happens per Space anyway (the reconciler
owns the instance record).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from spaces.db.models import Space, utcnow
from spaces.db.session import Database
from spaces.runtime.reconciler import Reconciler

log = logging.getLogger("spaces.wake")


@dataclass(frozen=True)
class WakeResult:
    ok: bool
    message: str = ""
    tier: str = ""  # frozen | standby | cold: what the wake found (spaces.metrics); "" when not known


class WakeService:
    def __init__(self, db: Database, reconciler: Reconciler, timeout: float = 120.0) -> None:
        self.db = db
        self.reconciler = reconciler
        self.timeout = timeout
        self._inflight: dict[str, asyncio.Future] = {}
        #: how many wakes actually started (not coalesced); the wake-storm test reads it
        self.starts = 0

    async def wake(self, space_id: str) -> WakeResult:
        fut = self._inflight.get(space_id)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._inflight[space_id] = fut
            self.starts += 1

            found: list[str] = []  # the tier _mark_awake found

            def ready() -> None:
                result = WakeResult(True, tier=found[0] if found else "")
                loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(result))

            refused = await asyncio.to_thread(self._mark_awake, space_id, ready, found)
            if refused:
                fut.set_result(WakeResult(False, refused))
            fut.add_done_callback(lambda _f: self._inflight.pop(space_id, None))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.timeout)
        except asyncio.TimeoutError:
            return WakeResult(False, "The Space is taking long to start; try again in a moment.")

    def _mark_awake(self, space_id: str, ready: Callable[[], None], found: list[str] | None = None) -> str:
        """Flip desired state to awake and have the reconciler start it (calling ``ready`` when it runs); returns a
        refusal message when the Space must not wake. The nudge comes from this worker thread as soon as the change
        is committed: the reconciler need not wait for the event loop to come back to this coroutine first."""
        with self.db.session() as s:
            space = s.get(Space, space_id)
            if space is None:
                return "This Space no longer exists."
            if space.paused:
                return "This Space is paused by its owner."
            if found is not None:
                inst = space.instance or {}
                found.append("standby" if inst.get("standby") else "frozen" if inst.get("current") else "cold")
            if space.asleep:
                space.asleep = False
                space.last_modified = space.last_modified or utcnow()
        self.reconciler.on_ready(space_id, ready)
        return ""

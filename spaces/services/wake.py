"""Wake service: many requests for a sleeping Space, exactly one start.

The proxy calls ``wake(space_id)`` for every request that finds the Space asleep. The first caller flips the
Space's desired state to awake and nudges the reconciler; every caller (the first included) then waits on one
shared future that is resolved when the app answers. Coalescing is per process; with several proxy processes
the database write is idempotent, so at most one start happens per Space anyway (the one active controller owns
the instance record and every start).

How a waiting wake learns that the Space answers is a port, ``when_ready(space_id, callback)``: it calls
``callback`` once the Space runs, and makes the controller look at the Space now. In one process that is the
reconciler's ``on_ready``; a proxy without the controller uses :class:`BusReadiness` (a ``nudge`` on the bus, then
a ``ready`` message, or the shared route table turning running if that message is lost).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from spaces.db.models import Space, utcnow
from spaces.db.session import Database

log = logging.getLogger("spaces.wake")


@dataclass(frozen=True)
class WakeResult:
    ok: bool
    message: str = ""
    tier: str = ""  # frozen | standby | cold: what the wake found (spaces.metrics); "" when not known


class WakeService:
    def __init__(self, db: Database, when_ready: Callable[[str, Callable[[], None]], None],
                 timeout: float = 120.0) -> None:
        self.db = db
        self.when_ready = when_ready
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
        self.when_ready(space_id, ready)
        return ""


class BusReadiness:
    """``when_ready`` for a proxy process without the controller: publish ``nudge``, then call back on the first
    ``ready`` message for the Space, or when the route table says it runs (polled while anyone waits: the bus
    is best effort, the route table is the truth the proxy forwards by)."""

    def __init__(self, bus, routes, *, poll_seconds: float = 0.25) -> None:  # noqa: ANN001
        self.bus = bus
        self.routes = routes
        self.poll_seconds = poll_seconds
        self._waiting: dict[str, list[Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._unsubscribe = bus.subscribe("ready", lambda m: self._fire(str(m.get("space_id"))))
        threading.Thread(target=self._poll, name="wake-poll", daemon=True).start()

    def __call__(self, space_id: str, callback: Callable[[], None]) -> None:
        with self._lock:
            self._waiting.setdefault(space_id, []).append(callback)
        self.bus.publish("nudge", {"space_id": space_id})

    def close(self) -> None:
        self._stop.set()
        self._unsubscribe()

    def _fire(self, space_id: str) -> None:
        with self._lock:
            callbacks = self._waiting.pop(space_id, [])
        for callback in callbacks:
            callback()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            if not self._waiting:
                continue
            try:
                running = {r.space_id for r in self.routes.all().values()
                           if r.state == "running" and r.upstream is not None}
            except Exception:
                log.warning("reading the route table failed", exc_info=True)
                continue
            for space_id in running & set(self._waiting):
                self._fire(space_id)

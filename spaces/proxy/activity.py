"""Activity record for the sleeper: when did a Space last see a request or a byte on an open stream.

The proxy writes a monotonic timestamp per Space on every request head and on every chunk that moves on a
connection to that Space (either direction), so an SSE or WebSocket stream with traffic keeps a Space awake and
a dead-quiet one does not. Writing is one dict store; nothing is locked (the sleeper reads from another thread,
and a single dict read or write is atomic).
"""

from __future__ import annotations

import time


class Activity:
    def __init__(self) -> None:
        #: space id -> time.monotonic() of the last activity; the proxy's connections write it directly
        self.stamps: dict[str, float] = {}

    def touch(self, space_id: str) -> None:
        self.stamps[space_id] = time.monotonic()

    def last_seen(self, space_id: str) -> float | None:
        """Wall-clock time (``time.time()``) of the Space's last activity, or None if never seen by this process."""
        stamp = self.stamps.get(space_id)
        if stamp is None:
            return None
        return time.time() - (time.monotonic() - stamp)

    def idle_for(self, space_id: str) -> float | None:
        """Seconds since the last activity, or None if never seen."""
        stamp = self.stamps.get(space_id)
        return None if stamp is None else time.monotonic() - stamp

    def forget(self, space_id: str) -> None:
        self.stamps.pop(space_id, None)

"""Activity record for the sleeper: when did a Space last see a request or a byte on an open stream.

The proxy writes a monotonic timestamp per Space on every request head and on every chunk that moves on a
connection to that Space (either direction), so an SSE or WebSocket stream with traffic keeps a Space awake and
a dead-quiet one does not. Writing is one dict store; nothing is locked (the sleeper reads from another thread,
and a single dict read or write is atomic).

With the roles in separate processes the sleeper runs in the controller, not beside the proxy:
``ActivityFlusher`` shares each proxy's stamps through Redis once a second and ``SharedActivity`` reads them there,
so a Space used only through one proxy does not go to sleep because another saw nothing.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("spaces.proxy")


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


class ActivityFlusher:
    """Shares one proxy's stamps with every other process through Redis: a sorted set ``{prefix}activity``
    (member: space id, score: wall-clock seconds), written every ``interval`` seconds from the in-memory stamps
    with ``ZADD ... GT``, so a stamp never moves back when proxies flush out of order. The hot path stays one dict
    store: Redis sees at most one write per interval, however many requests came."""

    def __init__(self, activity: Activity, redis_url: str, *, prefix: str = "spaces:", interval: float = 1.0) -> None:
        import redis  # adapters import redis lazily: it is an optional dependency

        self.activity = activity
        self.key = f"{prefix}activity"
        self.interval = interval
        self._redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self._sent: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="activity-flush", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()  # the last second's stamps too
        self._redis.close()

    def flush(self) -> int:
        stamps = dict(self.activity.stamps)  # a copy: connections keep writing meanwhile
        changed = {sid: stamp for sid, stamp in stamps.items() if self._sent.get(sid) != stamp}
        if not changed:
            return 0
        offset = time.time() - time.monotonic()
        try:
            self._redis.zadd(self.key, {sid: stamp + offset for sid, stamp in changed.items()}, gt=True)
        except Exception as exc:  # the next flush sends them again
            log.warning("sharing activity stamps failed: %s", exc)
            return 0
        self._sent.update(changed)
        return len(changed)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()


class SharedActivity:
    """What the sleeper reads in a controller: the newest stamp any proxy shared (see ``ActivityFlusher``), or
    this process's own proxy's when that is newer."""

    def __init__(self, redis_url: str, *, prefix: str = "spaces:", local: Activity | None = None) -> None:
        import redis

        self.key = f"{prefix}activity"
        self.local = local
        self._redis = redis.Redis.from_url(redis_url, decode_responses=True)

    def last_seen(self, space_id: str) -> float | None:
        shared = self._redis.zscore(self.key, space_id)
        own = self.local.last_seen(space_id) if self.local is not None else None
        seen = [t for t in (shared, own) if t is not None]
        return max(seen) if seen else None

    def forget(self, space_id: str) -> None:
        self._redis.zrem(self.key, space_id)
        if self.local is not None:
            self.local.forget(space_id)

    def close(self) -> None:
        self._redis.close()

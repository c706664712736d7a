"""A route table shared by several proxy replicas through Redis, read from a local cache.

Layout: one hash ``{prefix}routes`` (field = host label, value = the route as JSON) is the truth; every write
also publishes ``{"host": ..., "route": ... | null}`` on ``{prefix}routes:changed``. Each instance keeps a dict
cache and a daemon thread subscribed to that channel, so ``get`` (the proxy's hot path) never leaves memory.

Lifecycle: ``RedisRouteTable(url)`` connects, subscribes, then loads the whole hash (subscribe first, so no
change made during the load is missed). When the subscription drops, the thread reconnects and reloads
everything, since messages sent while it was away are lost. ``close()`` stops the thread. Writes go to Redis
first and then to the local cache, so an instance reads its own writes at once.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from spaces.bus import RedisSubscription
from spaces.proxy.routes import Route

log = logging.getLogger("spaces.proxy.routes")


class RedisRouteTable:
    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "spaces:") -> None:
        import redis  # adapters import redis lazily: it is an optional dependency

        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._hash = f"{prefix}routes"
        self._channel = f"{prefix}routes:changed"
        self._cache: dict[str, Route] = {}
        self._lock = threading.Lock()  # the cache's writers: callers of put/delete and the subscriber thread
        self.version = 0
        self._sub = RedisSubscription(self._redis, "route-table-sub", lambda p: p.subscribe(self._channel),
                                      self._apply, on_subscribed=self._reload)
        self._sub.start(f"{self._channel} on {url}")

    # ---- contract ---------------------------------------------------------------------------------------
    def put(self, host: str, route: Route) -> None:
        host = host.lower()
        data = json.dumps(route.to_json())
        pipe = self._redis.pipeline()
        pipe.hset(self._hash, host, data)
        pipe.publish(self._channel, json.dumps({"host": host, "route": route.to_json()}))
        pipe.execute()
        with self._lock:
            self._cache[host] = route
            self.version += 1

    def get(self, host: str) -> Route | None:
        return self._cache.get(host)

    def delete(self, host: str) -> None:
        host = host.lower()
        pipe = self._redis.pipeline()
        pipe.hdel(self._hash, host)
        pipe.publish(self._channel, json.dumps({"host": host, "route": None}))
        pipe.execute()
        with self._lock:
            self._cache.pop(host, None)
            self.version += 1

    def all(self) -> dict[str, Route]:
        return {host: _decode(raw) for host, raw in self._redis.hgetall(self._hash).items()}

    def close(self) -> None:
        self._sub.close()
        self._redis.close()

    # ---- cache upkeep -----------------------------------------------------------------------------------
    def _reload(self) -> None:
        fresh = {host: _decode(raw) for host, raw in self._redis.hgetall(self._hash).items()}
        with self._lock:
            for host in list(self._cache):
                if host not in fresh:
                    self._cache.pop(host, None)
            self._cache.update(fresh)
            self.version += 1

    def _apply(self, message: dict[str, Any]) -> None:
        try:
            body = json.loads(message["data"])
            host = body["host"]
            route = None if body.get("route") is None else Route.from_json(body["route"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed route message: %r", message.get("data"))
            return
        with self._lock:
            if route is None:
                self._cache.pop(host, None)
            else:
                self._cache[host] = route
            self.version += 1


def _decode(raw: str) -> Route:
    return Route.from_json(json.loads(raw))

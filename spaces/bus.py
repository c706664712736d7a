"""The event bus: small messages between the platform's parts, in one process or across processes.

Contract (``Bus``):

* ``publish(channel, message)`` - send a JSON-able dict to every subscriber of ``channel``, in this process and,
  on Redis, in every other process on the same Redis and prefix. Never blocks on a subscriber. Delivery is at most
  once and best effort: a subscriber that is away (a process restarting, a dropped connection) misses what was
  sent meanwhile. So the bus only ever carries *hints* that make something happen sooner (a nudge, a wake-up, a
  live log line); what must not be lost is in the database, and every reader also looks there on a timer.
* ``subscribe(channel, callback) -> unsubscribe`` - call ``callback(message)`` for every message on ``channel``.
  Callbacks run on the bus's own thread (Redis) or on the publisher's (in memory): they must be quick and
  thread-safe (set an event, ``call_soon_threadsafe``), never block.
* ``close()`` - stop delivering.

Channels used by the platform (the only place they are listed):

=============== ======================================== ==================================================
channel         message                                  who listens
=============== ======================================== ==================================================
nudge           ``{"space_id": str | None}``             the controller's reconciler (None: look at all); the
                                                         hubs' status streams (spaces.hub.status) read again
builds          ``{}``                                   builders: a build was queued
ready           ``{"space_id": str}``                    waiting wakes: the Space answers now; status streams
deleted         ``{"space_id", "subdomain", "instance"}`` the controller stops what a deleted Space ran
logs            ``{"space_id", "kind", "lines", "end"}`` live log readers on every hub (spaces.services.logs);
                                                         a build line moves the status streams too
=============== ======================================== ==================================================

``MemoryBus`` is the one-process bus (the default ``spaces serve``); ``RedisBus`` joins processes through Redis
pub/sub (one connection per process, one thread).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("spaces.bus")

Callback = Callable[[dict[str, Any]], None]


class Bus(Protocol):
    def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]: ...

    def close(self) -> None: ...


class _Subscribers:
    def __init__(self) -> None:
        self._subs: dict[str, list[Callback]] = defaultdict(list)
        self._lock = threading.Lock()

    def add(self, channel: str, callback: Callback) -> Callable[[], None]:
        with self._lock:
            self._subs[channel] = [*self._subs[channel], callback]

        def unsubscribe() -> None:
            with self._lock:
                self._subs[channel] = [c for c in self._subs[channel] if c is not callback]
        return unsubscribe

    def deliver(self, channel: str, message: dict[str, Any]) -> None:
        for callback in self._subs.get(channel, ()):  # a copy-on-write list: safe against (un)subscribes meanwhile
            try:
                callback(message)
            except Exception:  # one bad subscriber must not cost the others their message
                log.exception("a subscriber of %s failed", channel)


class MemoryBus:
    """Subscribers of this process only; ``publish`` calls them at once on the caller's thread."""

    def __init__(self) -> None:
        self._subs = _Subscribers()

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        self._subs.deliver(channel, message)

    def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]:
        return self._subs.add(channel, callback)

    def close(self) -> None:
        pass


class RedisBus:
    """Redis pub/sub on ``{prefix}bus:{channel}``; a process receives its own messages back through Redis, so a
    subscriber sees one delivery per publish wherever it was published. When the subscription drops, the thread
    reconnects; what was published while it was away is lost (see the contract: readers also poll)."""

    def __init__(self, url: str, *, prefix: str = "spaces:") -> None:
        import redis  # adapters import redis lazily: it is an optional dependency

        self._redis = redis.Redis.from_url(url, decode_responses=True, health_check_interval=10)
        self._prefix = f"{prefix}bus:"
        self._subs = _Subscribers()
        self._sub = RedisSubscription(self._redis, "bus-sub", lambda p: p.psubscribe(self._prefix + "*"),
                                      self._dispatch)
        self._sub.start(f"{self._prefix}* on {url}")

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        try:
            self._redis.publish(self._prefix + channel, json.dumps(message, default=str))
        except Exception as exc:  # a hint lost; the database and the timers still carry the truth
            log.warning("publishing on %s failed: %s", channel, exc)

    def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]:
        return self._subs.add(channel, callback)

    def close(self) -> None:
        self._sub.close()
        self._redis.close()

    def ping(self) -> bool:
        """For readiness checks: can this process reach Redis now?"""
        try:
            return bool(self._redis.ping())
        except Exception:
            return False

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = str(message.get("channel", ""))[len(self._prefix):]
        try:
            body = json.loads(message["data"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed bus message on %s", channel)
            return
        if isinstance(body, dict):
            self._subs.deliver(channel, body)


class RedisSubscription:
    """One daemon thread that holds a Redis pub/sub subscription for its owner (the bus, the route table).

    ``subscribe(pubsub)`` subscribes; it is called again after a lost connection, then ``on_subscribed()`` (a
    reader reloads what it missed: messages sent while it was away are gone). Every message and pmessage goes to
    ``on_message``. ``start(what)`` returns once the first subscription holds, or raises ConnectionError."""

    def __init__(self, client: Any, name: str, subscribe: Callable[[Any], None],
                 on_message: Callback, on_subscribed: Callable[[], None] | None = None) -> None:
        self.client, self.subscribe, self.on_message = client, subscribe, on_message
        self.on_subscribed = on_subscribed or (lambda: None)
        self._stop, self._ready = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._listen, name=name, daemon=True)

    def start(self, what: str, timeout: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            self._stop.set()
            raise ConnectionError(f"could not subscribe to {what}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                self.subscribe(pubsub)
                self.on_subscribed()  # after subscribing: nothing changed in between is lost
                self._ready.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message and message.get("type") in ("message", "pmessage"):
                        self.on_message(message)
            except Exception as exc:  # connection lost: back off, then subscribe again
                log.warning("%s: subscription lost (%s); reconnecting", self._thread.name, exc)
                time.sleep(0.5)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass


def make_bus(redis_url: str | None, *, prefix: str = "spaces:") -> Bus:
    return RedisBus(redis_url, prefix=prefix) if redis_url else MemoryBus()

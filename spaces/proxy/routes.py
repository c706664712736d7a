"""The route table: which Space answers on which subdomain, and whether it can answer now.

Contract (``RouteTable``), used by the reconciler (writer) and the proxy (reader):

* ``put(host, route)`` - create or replace the route of ``host``;
* ``get(host) -> Route | None`` - the hot path: called for every request to an app host. Must be an O(1)
  in-memory lookup with no I/O (the Redis table serves it from a local cache kept fresh by pub/sub);
* ``delete(host)`` - forget ``host``; deleting an unknown host is not an error;
* ``all() -> dict[host, Route]`` - a snapshot, for listings and reconciling;
* ``version`` - an int that changes after every change ``get`` can see (stored first, then counted), so a reader
  that read ``version`` before its ``get`` may reuse what it derived from the answer while ``version`` stays the
  same (the proxy's gate keeps its per-host decisions that way).

``host`` is the Space's subdomain label, lowercase, without the apps domain (``alice-demo`` for
``alice-demo.localhost:8000``): the apps domain is a deployment setting, the label is what the hub stores.
All methods are synchronous and thread-safe: the reconciler calls ``put`` from its own thread.

A route's ``state`` tells the proxy what to do with a request:

=========== ===========================================================================================
running     forward to ``upstream`` (``(host, port)``); with ``upstream`` None it behaves as starting
starting    wake/hold: browsers get the waiting page, API clients are held until running
sleeping    wake (one coalesced ``waker`` call), then as starting; ``upstream`` may be a frozen instance
paused      never woken by visitors: a page / JSON with the message
error       a page / JSON with ``stage`` and ``message``
=========== ===========================================================================================
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any, Protocol

STATES = ("running", "starting", "sleeping", "paused", "error")


@dataclass(frozen=True)
class Route:
    space_id: str
    upstream: tuple[str, int] | None
    state: str  # one of STATES
    private: bool = False
    owner_id: str = ""
    message: str = ""
    title: str = ""  # shown on pages ("alice/demo"); default the subdomain
    stage: str = ""  # the SpaceStage shown on error pages (RUNTIME_ERROR, BUILD_ERROR, ...)
    #: static Spaces: the working copy (on the shared data dir) and its index file; every proxy process serves
    #: them itself (spaces.proxy.static_routes), so ``upstream`` is not used for them
    static_root: str = ""
    app_file: str = ""
    reason: str = ""  # the stage's reason code (``waiting_for_capacity``...): the waiting page's words come from it

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"route state {self.state!r} is not one of {', '.join(STATES)}")
        if self.upstream is not None:
            host, port = self.upstream
            object.__setattr__(self, "upstream", (str(host), int(port)))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["upstream"] = list(self.upstream) if self.upstream else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Route":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        up = known.get("upstream")
        known["upstream"] = (up[0], int(up[1])) if up else None
        return cls(**known)


class RouteTable(Protocol):
    version: int

    def put(self, host: str, route: Route) -> None: ...

    def get(self, host: str) -> Route | None: ...

    def delete(self, host: str) -> None: ...

    def all(self) -> dict[str, Route]: ...


class MemoryRouteTable:
    """Routes of one proxy process: a dict. Writers on other threads are safe (single dict operations)."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self.version = 0

    def put(self, host: str, route: Route) -> None:
        with self._lock:  # writers on several threads: no count lost
            self._routes[host.lower()] = route
            self.version += 1

    def get(self, host: str) -> Route | None:
        return self._routes.get(host)

    def delete(self, host: str) -> None:
        with self._lock:
            self._routes.pop(host.lower(), None)
            self.version += 1

    def all(self) -> dict[str, Route]:
        with self._lock:
            return dict(self._routes)

"""Every metric of the platform, defined in one place (Prometheus, the official ``prometheus_client``).

Names are ``spaces_*`` with their unit in the name (``_seconds``, ``_total``); ``infra/grafana/spaces.json`` queries
them and ``tests/unit/test_metrics_dashboard.py`` fails when it queries a name that is not defined here.

Three ways a metric gets its value, chosen by what it costs where it is counted:

* plain ``prometheus_client`` objects, moved where the thing happens: hub requests (one middleware), wakes (the
  proxy's gate times its waker), quota refusals (``Capacity.check_quota``), the controller's leadership;
* the proxy's request outcomes: plain ``int`` slots of each ``Gate``'s ``ProxyCounts`` (one ``+= 1`` on the hot
  path, where a labelled prometheus counter costs about 1 us and a lock), summed by a collector at scrape time;
* what the database already knows, read at scrape time by a collector (nothing instrumented in the services):
  builds by outcome and duration, the build queue, Spaces by stage, running Spaces by flavor and node.
  Every process that serves a hub reports these; several hub replicas report the same figures, so the dashboard
  takes ``max`` over instances, never ``sum``.

Process metrics (CPU, memory, open files) come from ``prometheus_client``'s default collectors.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("spaces.metrics")

# ---- hub -----------------------------------------------------------------------------------------------------
#: route classes of the hub (spaces.hub.metrics.route_class)
ROUTE_CLASSES = ("api", "git", "pages", "static", "ops")
HUB_REQUESTS = Counter("spaces_hub_requests_total", "Requests the hub answered, by route class, method and status "
                       "class (2xx, 3xx, 4xx, 5xx)", ["route_class", "method", "status_class"])
HUB_REQUEST_SECONDS = Histogram(
    "spaces_hub_request_duration_seconds", "Seconds from a request's arrival to its response head (a stream such as "
    "a followed log counts until its first byte, not its whole life), by route class", ["route_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))

XET_RECEIVED_BYTES = Counter("spaces_xet_received_bytes_total", "Bytes of Xet uploads the hub received (xorbs, "
                             "shards), accepted or not", ["kind"])

# ---- proxy (values come from ProxyCollector) ---------------------------------------------------------------------
#: what became of a request for an app (see spaces.proxy.gate):
#: proxied - forwarded to the running app at once; woken - forwarded after waiting for the Space to wake;
#: held - answered while the Space wakes, without reaching it (the waiting page, or 503 with Retry-After);
#: refused - not found, not allowed, paused or failed
PROXY_OUTCOMES = ("proxied", "woken", "held", "refused")

# ---- wakes ---------------------------------------------------------------------------------------------------------
#: frozen - a frozen instance thawed; standby - a standby claimed and thawed; cold - a fresh start
WAKE_TIERS = ("frozen", "standby", "cold")
WAKES = Counter("spaces_wakes_total", "Wakes the proxy asked for (coalesced requests count once), by tier and "
                "result (ok, failed)", ["tier", "result"])
WAKE_SECONDS = Histogram("spaces_wake_duration_seconds", "Seconds from the proxy's wake call to the Space answering, "
                         "by tier", ["tier"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0))

# ---- quotas, controller --------------------------------------------------------------------------------------------
QUOTA_REFUSALS = Counter("spaces_quota_refusals_total", "Starts and hardware requests refused by a quota, by the "
                         "flavor asked for", ["flavor"])
CONTROLLER_LEADER = Gauge("spaces_controller_leader", "1 while this process is the active controller, else 0")
CONTROLLER_LEADER_CHANGES = Counter("spaces_controller_leader_changes_total",
                                    "Times this process became or stopped being the active controller")

#: what the scrape-time collectors export (checked against the dashboard with the names above)
COLLECTED = {
    "spaces_proxy_requests_total": "counter",
    "spaces_builds_total": "counter",
    "spaces_build_duration_seconds": "histogram",
    "spaces_build_queue_length": "gauge",
    "spaces_builds_running": "gauge",
    "spaces_build_queue_oldest_wait_seconds": "gauge",
    "spaces_spaces": "gauge",
    "spaces_running_spaces": "gauge",
}

BUILD_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)
#: Space stages that mean "an instance serves the app" (spaces.domain.stages)
RUNNING_STAGES = ("RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING")


def observe_wake(tier: str, ok: bool, seconds: float) -> None:
    WAKES.labels(tier, "ok" if ok else "failed").inc()
    if ok:
        WAKE_SECONDS.labels(tier).observe(seconds)


def quota_refused(flavor: str) -> None:
    QUOTA_REFUSALS.labels(flavor).inc()


# ---- proxy: ints on each gate, summed at scrape time ---------------------------------------------------------------
class ProxyCounts:
    """One gate's request outcomes: plain ints (``counts.proxied += 1`` on the hot path)."""

    __slots__ = PROXY_OUTCOMES

    def __init__(self) -> None:
        self.proxied = self.woken = self.held = self.refused = 0


class ProxyCollector(Collector):
    """Sums every ``ProxyCounts`` this process handed out (normally one). They are kept when their gate is gone,
    so the sums never go down, as a counter must not."""

    def __init__(self) -> None:
        self.counts: list[ProxyCounts] = []

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("spaces_proxy_requests", "Requests for apps the proxy decided, by outcome "
                                     "(proxied, woken, held, refused)", labels=["outcome"])
        counts = list(self.counts)
        for outcome in PROXY_OUTCOMES:
            family.add_metric([outcome], sum(getattr(c, outcome) for c in counts))
        yield family


PROXY = ProxyCollector()


def proxy_counts() -> ProxyCounts:
    """New outcome counters for a gate, reported from now on for the life of the process."""
    counts = ProxyCounts()
    PROXY.counts.append(counts)
    return counts


# ---- the database, read at scrape time ----------------------------------------------------------------------------
class DatabaseCollector(Collector):
    """Builds, the build queue and Spaces, read from the database of the hub this process serves.

    Builds by outcome and duration are counters, so they are counted from this process's start: each scrape
    reads the builds that finished since the last one (rows newer than the highest id seen, and those that were
    unfinished then), never the whole table."""

    def __init__(self) -> None:
        self._db: weakref.ReferenceType[Any] | None = None
        self._builds = Counter("spaces_builds", "Builds that ended since this process started, by outcome (built, "
                               "failed, superseded)", ["outcome"], registry=None)
        self._duration = Histogram("spaces_build_duration_seconds", "Seconds from a build's submission to its end "
                                   "(queue wait included), by outcome", ["outcome"], buckets=BUILD_BUCKETS,
                                   registry=None)
        self._max_id: int | None = None
        self._pending: set[int] = set()

    def watch(self, db: Any) -> None:
        if self._db is not None and self._db() is db:
            return
        self._db = weakref.ref(db)
        self._max_id = None
        self._pending = set()

    def collect(self) -> Iterator[Metric]:
        db = self._db() if self._db is not None else None
        if db is None:
            return
        try:
            with db.session() as s:
                self._count_finished(s)
                gauges = list(self._gauges(s))
        except Exception as exc:  # a scrape while the database is away reports what needs none
            log.warning("metrics: reading the database failed: %s", type(exc).__name__)
            return
        yield from self._builds.collect()
        yield from self._duration.collect()
        yield from gauges

    def _count_finished(self, s: Any) -> None:
        from sqlalchemy import func, or_, select

        from spaces.db.models import Build

        if self._max_id is None:  # first look: what is unfinished now is counted when it ends
            self._max_id = s.scalar(select(func.max(Build.id))) or 0
            self._pending = set(s.scalars(select(Build.id).where(Build.finished_at.is_(None))))
            return
        cond = Build.id > self._max_id
        if self._pending:
            cond = or_(cond, Build.id.in_(sorted(self._pending)))
        rows = s.execute(select(Build.id, Build.status, Build.created_at, Build.finished_at).where(cond)).all()
        for build_id, status, created, finished in rows:
            self._max_id = max(self._max_id, build_id)
            if finished is None:
                self._pending.add(build_id)
                continue
            self._pending.discard(build_id)
            self._builds.labels(status).inc()
            self._duration.labels(status).observe(max(0.0, (_aware(finished) - _aware(created)).total_seconds()))

    def _gauges(self, s: Any) -> Iterable[Metric]:
        from sqlalchemy import func, select

        from spaces.db.models import Build, Space

        counts = dict(s.execute(select(Build.status, func.count()).where(Build.status.in_(("queued", "running")))
                                .group_by(Build.status)).all())
        oldest = s.scalar(select(func.min(Build.created_at)).where(Build.status == "queued"))
        wait = (_now() - _aware(oldest)).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily("spaces_build_queue_length", "Builds waiting for a worker", value=counts.get("queued", 0))
        yield GaugeMetricFamily("spaces_builds_running", "Builds a worker is running", value=counts.get("running", 0))
        yield GaugeMetricFamily("spaces_build_queue_oldest_wait_seconds", "Seconds the oldest queued build has "
                                "waited (0 with an empty queue)", value=max(0.0, wait))
        stages = GaugeMetricFamily("spaces_spaces", "Spaces by stage", labels=["stage"])
        for stage, n in s.execute(select(Space.stage, func.count()).group_by(Space.stage)).all():
            stages.add_metric([stage], n)
        yield stages
        running: dict[tuple[str, str], int] = {}
        rows = s.execute(select(Space.hardware, Space.hardware_current, Space.instance)
                         .where(Space.stage.in_(RUNNING_STAGES))).all()
        for hardware, current, instance in rows:
            placement = (instance or {}).get("placement") or {}
            key = (current or placement.get("flavor") or hardware, placement.get("node") or "")
            running[key] = running.get(key, 0) + 1
        family = GaugeMetricFamily("spaces_running_spaces", "Spaces whose app runs, by flavor and node",
                                   labels=["flavor", "node"])
        for (flavor, node), n in sorted(running.items()):
            family.add_metric([flavor, node], n)
        yield family


DATABASE = DatabaseCollector()


def watch_database(db: Any) -> None:
    """Report builds, the queue and Spaces from ``db`` (the hub's; the last one given wins)."""
    DATABASE.watch(db)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


REGISTRY.register(PROXY)
REGISTRY.register(DATABASE)
disable_created_metrics()  # a ``_created`` series per counter doubles the scrape for a figure nobody graphs


def defined_names() -> set[str]:
    """Every sample name this module makes (``_bucket``/``_count``/``_sum`` of histograms included)."""
    names: set[str] = set()
    kinds = {m._name: m._type for m in (HUB_REQUESTS, HUB_REQUEST_SECONDS, WAKES, WAKE_SECONDS, QUOTA_REFUSALS,
                                        CONTROLLER_LEADER, CONTROLLER_LEADER_CHANGES)}
    kinds.update({name.removesuffix("_total"): kind for name, kind in COLLECTED.items()})
    for name, kind in kinds.items():
        if kind == "counter":
            names.add(f"{name}_total")
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        else:
            names.add(name)
    return names

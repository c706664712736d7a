"""Quota checks and placement against the database's view of what runs: the I/O shell around the pure
``quota`` and ``scheduler`` modules.

* ``check_quota(s, account, flavor)`` runs at create_repo with hardware, request_space_hardware, duplicate and
  before every start or wake. A refusal raises ``QuotaExceeded`` (402) with limit, used and requested.
* ``reserve(s, space, prefer_node)`` checks the quota again and places the Space on a node (``prefer_node``
  first: where a frozen instance's memory is); the placement (node, cores, memory, GPU indices) is stored in the
  instance record so the next placement counts it. Waiting Spaces of a flavor are placed first come, first
  served: a refusal says how many are ahead and what frees room.

What holds capacity (node requests and the running-Spaces quota): Spaces that are **awake** and have an instance
with a placement. A Space asleep gives its request back the moment it is asleep, though a frozen instance keeps
its memory on the machine until memory runs short (the reconciler stops it then); on a wake it claims a request
again, on its own node first, before it is thawed. A **static** Space served by the platform (local backend: its
files, no process) never takes a request and counts against no quota, and its time is not billed: it costs
nothing to run. On Docker and Kubernetes a static Space is a small container and takes a request, but is still
free of quota and billing.
"""

from __future__ import annotations

import dataclasses

from collections import Counter
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from spaces import metrics
from spaces.db.models import Account, QuotaGrant, Space, UsageInterval
from spaces.errors import QuotaExceeded
from spaces.runtime import quota as q
from spaces.runtime import scheduler
from spaces.runtime.contracts import Limits
from spaces.runtime.flavors import FlavorCatalog, fit_limits
from spaces.runtime.nodes import Node


class Capacity:
    def __init__(self, catalog: FlavorCatalog, nodes: list[Node], quotas: q.QuotaSettings,
                 policy: scheduler.Policy | None = None) -> None:
        self.catalog = catalog
        self.nodes = nodes
        self.quotas = quotas
        self.policy = policy or scheduler.Policy()

    # ---- quotas -------------------------------------------------------------------------------------------
    def account_quota(self, s: Session, account: Account) -> q.AccountQuota:
        grants = {g.key: g.value for g in s.scalars(select(QuotaGrant).where(QuotaGrant.account_id == account.id))}
        return q.quota_for(self.quotas, grants, is_admin=account.is_admin)

    def metered(self, s: Session, account: Account, now: datetime | None = None) -> tuple[q.Period, q.Usage]:
        """This calendar month's billed usage of the account (running time only, at the flavors' prices)."""
        now = now or datetime.now(timezone.utc)
        period = q.Period.month_of(now)
        # plain rows, not ORM objects: a busy month holds thousands of intervals (each start opens one)
        rows = s.execute(select(UsageInterval.space_id, UsageInterval.flavor, UsageInterval.started_at,
                                UsageInterval.ended_at)
                         .where(UsageInterval.account_id == account.id,
                                (UsageInterval.ended_at.is_(None)) | (UsageInterval.ended_at >= period.start)))
        # a static Space costs nothing to run (its files are served, on any hardware): its time is not billed
        free = set(s.scalars(select(Space.id).where(Space.owner_id == account.id, Space.sdk == "static")))
        intervals = [q.Interval(space_id, flavor, "running", _aware(started), _aware(ended) or now)
                     for space_id, flavor, started, ended in rows if space_id not in free]
        return period, q.bill(intervals, self.catalog.prices(), period)

    def running_counts(self, s: Session, account: Account, *, exclude: str | None = None) -> Counter:
        """Per flavor, the account's Spaces that hold running hardware: awake, with an instance, not static."""
        rows = s.execute(select(Space.id, Space.hardware).where(
            Space.owner_id == account.id, Space.instance.is_not(None), Space.asleep.is_(False), _not_static()))
        return Counter(hardware for space_id, hardware in rows if space_id != exclude)

    def report(self, s: Session, account: Account) -> dict:
        """Usage and quota of one account, as the API and the CLI show it."""
        period, usage = self.metered(s, account)
        quota = self.account_quota(s, account)
        running = self.running_counts(s, account)
        flavors = sorted(set(running) | set(usage.seconds) | set(quota.running))
        return {
            "account": account.name,
            "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
            "running": [{"flavor": f, "running": running.get(f, 0), "limit": quota.running_limit(f),
                         "seconds": round(float(usage.seconds.get(f, 0)), 1)} for f in flavors],
            "defaultRunningLimit": quota.default_running,
            "gpuMinutes": {"used": round(float(usage.gpu_minutes), 2), "limit": quota.gpu_minutes},
            "creditsMicroUSD": {"used": int(usage.credits_micro_usd), "limit": quota.credits_micro_usd},
        }

    def nodes_report(self, s: Session) -> list[dict]:
        """Every node with its capacity, what it offers Spaces' requests (allocatable times the overcommit), what
        the awake Spaces placed on it request, and how many asleep and static Spaces it keeps without requests."""
        usage = self.node_usage(s)
        held = self._held_without_request(s)
        out = []
        for n in self.nodes:
            u = usage.get(n.name, scheduler.NodeUsage())
            cpu, mem = self.policy.allocatable(n)
            asleep, static = held.get(n.name, (0, 0))
            out.append({"name": n.name, "backend": n.backend, "cpu": n.cpu, "memoryMB": n.memory_mb,
                        "allocatable": {"cpu": cpu / 1000, "memoryMB": mem,
                                        "cpuOvercommit": self.policy.cpu_overcommit,
                                        "memoryOvercommit": self.policy.memory_overcommit},
                        "gpus": [{"index": g.index, "model": g.model, "memoryMB": g.memory_mb,
                                  "used": g.index in u.gpus} for g in n.gpus],
                        "used": {"cpu": u.cpu, "memoryMB": u.memory_mb, "spaces": u.spaces,
                                 "asleep": asleep, "static": static},
                        "labels": dict(n.labels)})
        return out

    def queue_report(self, s: Session) -> list[dict]:
        return [{"id": sp.repo_id, "flavor": sp.hardware, "since": _aware(sp.queued_at).isoformat(),
                 "message": sp.stage_message} for sp in self._waiting(s)]

    def check_quota(self, s: Session, account: Account, flavor: str, *, exclude: str | None = None) -> None:
        request = q.QuotaRequest.for_flavor(self.catalog.get(flavor))
        quota = self.account_quota(s, account)
        running = dict(self.running_counts(s, account, exclude=exclude))
        if q.needs_metering(quota, request):
            usage = self.metered(s, account)[1].as_quota_usage(running)
        else:  # billing the month reads every interval of it (each start opens one): not for a check that ignores it
            usage = q.QuotaUsage(running)
        try:
            q.check(quota, usage, request)
        except QuotaExceeded:
            metrics.quota_refused(flavor)  # every refused start, wake or hardware request (spaces.metrics)
            raise

    # ---- placement ----------------------------------------------------------------------------------------
    def node_usage(self, s: Session, *, exclude: str | None = None) -> dict[str, scheduler.NodeUsage]:
        """What the awake Spaces' placements request per node (asleep and static Spaces request nothing)."""
        placements = []
        for space_id, instance in s.execute(select(Space.id, Space.instance).where(
                Space.instance.is_not(None), Space.asleep.is_(False))):
            p = (instance or {}).get("placement")
            if p and space_id != exclude and _requests(p):
                placements.append(scheduler.Placement(space_id, p["flavor"], p["node"], p["cpu"], p["memory_mb"],
                                                      tuple(p.get("gpus") or ())))
        return scheduler.tally(placements)

    def reserve(self, s: Session, space: Space, prefer_node: str | None = None) -> scheduler.Placement:
        """Quota check, then a node for the Space (``prefer_node`` first, where it has one); raises QuotaExceeded
        or errors.Unschedulable. A static Space the platform serves needs neither: it gets a placement that
        requests nothing. Spaces waiting for the flavor are placed first come, first served (this one after those
        queued before it), and a refusal says how many are ahead and what frees room."""
        if _served_static(space):
            space.queued_at = None
            return scheduler.Placement(space.id, space.hardware, prefer_node or self._static_node(), 0.0, 0)
        self.check_quota(s, space.owner, space.hardware, exclude=space.id)
        request = scheduler.Request.for_flavor(space.id, self.catalog.get(space.hardware))
        ahead = self._ahead(s, space)
        usage = self.node_usage(s, exclude=space.id)
        result = None
        if prefer_node is not None:
            result = self._place_after(ahead, request, [n for n in self.nodes if n.name == prefer_node], usage)
        if not isinstance(result, scheduler.Placement):
            result = self._place_after(ahead, request, self.nodes, usage)
        if isinstance(result, scheduler.Unschedulable):
            err = result.error()
            if result.transient:
                err.message = _waiting_message(space.hardware, len(ahead), request)
            raise err
        space.queued_at = None
        return result

    def _place_after(self, ahead: list[Space], request: scheduler.Request, nodes: list[Node],
                     usage: dict[str, scheduler.NodeUsage]) -> scheduler.Placement | scheduler.Unschedulable:
        """Place ``request`` behind the Spaces ``ahead`` of it in its flavor's queue (they take their room first)."""
        if not ahead:
            return scheduler.place(request, nodes, usage, self.policy)
        queue = [scheduler.Request.for_flavor(sp.id, self.catalog.get(sp.hardware)) for sp in ahead] + [request]
        placed, waiting = scheduler.plan_queue(queue, nodes, usage, self.policy)
        mine = next((p for p in placed if p.space_id == request.space_id), None)
        if mine is not None:
            return mine
        why = next(w for w in waiting if w.item.space_id == request.space_id)
        return scheduler.Unschedulable(why.reason if why.reason != "Queued" else "Full", why.message,
                                       transient=why.reason in ("Full", "Queued"))

    def _static_node(self) -> str:
        local = next((n.name for n in self.nodes if n.backend == "local"), None)
        return local or (self.nodes[0].name if self.nodes else "local")

    def limits_for(self, flavor: str, node: str, gpus: tuple[int, ...] = ()) -> tuple[Limits, str | None]:
        """What a Space of ``flavor`` may use on ``node``: the flavor's limits clamped to what the node leaves one
        Space, and the sentence that says so when they were (see ``flavors.fit_limits``)."""
        runtime_flavor = self.catalog.get(flavor)
        found = next((n for n in self.nodes if n.name == node), None)
        if found is None:  # a node we do not know the size of (Kubernetes places by itself)
            return dataclasses.replace(runtime_flavor.limits, gpus=gpus), None
        return fit_limits(runtime_flavor, found, gpus)

    @staticmethod
    def _waiting(s: Session, hardware: str | None = None) -> list[Space]:
        """Spaces waiting for capacity now, oldest first: queued, still wanted running (awake, not paused) and
        still saying so (a Space that started, failed or went back to sleep since is not waiting any more)."""
        query = select(Space).where(Space.queued_at.is_not(None), Space.asleep.is_(False), Space.paused.is_(False),
                                    Space.stage_reason == WAITING_REASON)
        if hardware is not None:
            query = query.where(Space.hardware == hardware)
        return list(s.scalars(query.order_by(Space.queued_at, Space.id)))

    def _ahead(self, s: Session, space: Space) -> list[Space]:
        mine = _aware(space.queued_at) if space.queued_at else datetime.now(timezone.utc)
        return [o for o in self._waiting(s, space.hardware) if o.id != space.id and _aware(o.queued_at) < mine]

    def _held_without_request(self, s: Session) -> dict[str, tuple[int, int]]:
        """node -> (asleep Spaces with an instance there, static Spaces served there): on the node, no request."""
        out: dict[str, list[int]] = {}
        for asleep, instance in s.execute(select(Space.asleep, Space.instance).where(Space.instance.is_not(None))):
            inst = instance or {}
            p = inst.get("placement") or {}
            node = p.get("node") or (inst.get("current") or {}).get("node")
            if not node:
                continue
            if p and not _requests(p):
                out.setdefault(node, [0, 0])[1] += 1
            elif asleep:
                out.setdefault(node, [0, 0])[0] += 1
        return {k: (a, b) for k, (a, b) in out.items()}


#: the stage reason of a Space waiting for capacity (the reconciler records it with the refusal's message)
WAITING_REASON = "waiting_for_capacity"


def _waiting_message(flavor: str, ahead: int, request: scheduler.Request) -> str:
    """What a Space waiting for capacity shows on its page, the proxy's waiting page and the API."""
    where = (f"{ahead} Space{'s' if ahead != 1 else ''} ahead of this one" if ahead else "next in line")
    return (f"Waiting for {flavor} capacity: {where} (every node that fits it is full; it needs {request.need()}). "
            "It starts by itself as soon as a running Space sleeps, stops or is paused; to make room now, pause "
            "one of your running Spaces, or ask an administrator for a node or a higher overcommit.")


def _requests(p: dict) -> bool:
    """Does this stored placement request anything (a static Space's requests nothing)?"""
    return bool(p.get("cpu") or p.get("memory_mb") or p.get("gpus"))


def _served_static(space: Space) -> bool:
    """A static Space whose files the platform serves (the local backend's build: no process, no request)."""
    return (space.artifact or {}).get("kind") == "static"


def _not_static():  # noqa: ANN202
    return (Space.sdk.is_(None)) | (Space.sdk != "static")


def placement_json(p: scheduler.Placement, limits: Limits | None = None, note: str | None = None) -> dict:
    """The placement as stored on the Space's instance record; with the limits it runs under and, when those were
    clamped to the node, the sentence saying so (the reconciler writes it at the top of the run log)."""
    out = {"node": p.node, "flavor": p.flavor, "cpu": p.cpu, "memory_mb": p.memory_mb, "gpus": list(p.gpus)}
    if limits is not None:
        out["limits"] = {"cpu": limits.cpu, "memory_mb": limits.memory_mb}
    if note:
        out["note"] = note
    return out


def _aware(dt: datetime | None) -> datetime | None:
    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=timezone.utc)

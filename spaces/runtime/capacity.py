"""Quota checks and placement against the database's view of what runs: the I/O shell around the pure
``quota`` and ``scheduler`` modules.

* ``check_quota(s, account, flavor)`` runs at create_repo with hardware, request_space_hardware, duplicate and
  before every start or wake. A refusal raises ``QuotaExceeded`` (402) with limit, used and requested.
* ``reserve(s, space)`` checks the quota again and places the Space on a node; the placement (node, cores,
  memory, GPU indices) is stored in the instance record so the next placement counts it. Spaces that are
  asleep or paused hold no instance and therefore no capacity.
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
        intervals = [q.Interval(space_id, flavor, "running", _aware(started), _aware(ended) or now)
                     for space_id, flavor, started, ended in rows]
        return period, q.bill(intervals, self.catalog.prices(), period)

    def running_counts(self, s: Session, account: Account, *, exclude: str | None = None) -> Counter:
        spaces = s.scalars(select(Space).where(Space.owner_id == account.id, Space.instance.is_not(None),
                                               Space.asleep.is_(False)))
        return Counter(sp.hardware for sp in spaces if sp.id != exclude)

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
        """Every node with its capacity and what the placed Spaces hold on it."""
        usage = self.node_usage(s)
        out = []
        for n in self.nodes:
            u = usage.get(n.name, scheduler.NodeUsage())
            out.append({"name": n.name, "backend": n.backend, "cpu": n.cpu, "memoryMB": n.memory_mb,
                        "gpus": [{"index": g.index, "model": g.model, "memoryMB": g.memory_mb,
                                  "used": g.index in u.gpus} for g in n.gpus],
                        "used": {"cpu": u.cpu, "memoryMB": u.memory_mb, "spaces": u.spaces},
                        "labels": dict(n.labels)})
        return out

    def queue_report(self, s: Session) -> list[dict]:
        waiting = s.scalars(select(Space).where(Space.queued_at.is_not(None)).order_by(Space.queued_at))
        return [{"id": sp.repo_id, "flavor": sp.hardware, "since": _aware(sp.queued_at).isoformat(),
                 "message": sp.stage_message} for sp in waiting]

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
        placements = []
        for sp in s.scalars(select(Space).where(Space.instance.is_not(None))):
            p = (sp.instance or {}).get("placement")
            if p and sp.id != exclude:
                placements.append(scheduler.Placement(sp.id, p["flavor"], p["node"], p["cpu"], p["memory_mb"],
                                                      tuple(p.get("gpus") or ())))
        return scheduler.tally(placements)

    def reserve(self, s: Session, space: Space) -> scheduler.Placement:
        """Quota check, then a node for the Space; raises QuotaExceeded or errors.Unschedulable."""
        self.check_quota(s, space.owner, space.hardware, exclude=space.id)
        flavor = self.catalog.get(space.hardware)
        request = scheduler.Request.for_flavor(space.id, flavor)
        result = scheduler.place(request, self.nodes, self.node_usage(s, exclude=space.id), self.policy)
        if isinstance(result, scheduler.Unschedulable):
            ahead = self._ahead(s, space)
            err = result.error()
            if result.transient:
                err.message = (f"Waiting for {space.hardware} capacity: "
                               f"{ahead} ahead of you." if ahead else f"Waiting for {space.hardware} capacity: "
                               f"next in line. {result.message}")
            raise err
        return result

    def limits_for(self, flavor: str, node: str, gpus: tuple[int, ...] = ()) -> tuple[Limits, str | None]:
        """What a Space of ``flavor`` may use on ``node``: the flavor's limits clamped to what the node leaves one
        Space, and the sentence that says so when they were (see ``flavors.fit_limits``)."""
        runtime_flavor = self.catalog.get(flavor)
        found = next((n for n in self.nodes if n.name == node), None)
        if found is None:  # a node we do not know the size of (Kubernetes places by itself)
            return dataclasses.replace(runtime_flavor.limits, gpus=gpus), None
        return fit_limits(runtime_flavor, found, gpus)

    @staticmethod
    def _ahead(s: Session, space: Space) -> int:
        queued = s.scalars(select(Space).where(Space.queued_at.is_not(None), Space.hardware == space.hardware,
                                               Space.id != space.id))
        mine = _aware(space.queued_at) if space.queued_at else datetime.now(timezone.utc)
        return sum(1 for other in queued if _aware(other.queued_at) < mine)


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

"""Page hooks backed by the runtime (quota, nodes, queue, running Spaces) when one is attached to the hub."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from spaces.db.models import Account, Space
from spaces.hub.pages.hooks import PageHooks, default_quota


def _quota(hub: Any, s: Session, account: Account) -> list[dict] | None:
    if hub.capacity is None:
        return default_quota(hub, s, account)
    report = hub.capacity.report(s, account)
    rows = [{"key": f"running:{r['flavor']}", "limit": r["limit"], "used": r["running"]} for r in report["running"]]
    rows.append({"key": "running:(other flavors)", "limit": report["defaultRunningLimit"], "used": None})
    rows.append({"key": "gpu_minutes", "limit": report["gpuMinutes"]["limit"], "used": report["gpuMinutes"]["used"]})
    rows.append({"key": "credits_micro_usd", "limit": report["creditsMicroUSD"]["limit"],
                 "used": report["creditsMicroUSD"]["used"]})
    return rows


def _nodes(hub: Any, s: Session) -> list[dict]:
    if hub.capacity is None:
        return []
    return [{"name": n["name"], "flavors": n["backend"],
             "capacity": f"{n['cpu']:g} cores, {n['memoryMB']} MB, {len(n['gpus'])} GPU",
             "used": f"{n['used']['cpu']:g} cores, {n['used']['memoryMB']} MB, {n['used']['spaces']} Spaces",
             "status": "ready"} for n in hub.capacity.nodes_report(s)]


def _queue(hub: Any, s: Session) -> list[dict]:
    if hub.capacity is None:
        return []
    return [{"repo_id": q["id"], "hardware": q["flavor"], "since": q["since"], "reason": q["message"]}
            for q in hub.capacity.queue_report(s)]


def _running(hub: Any, s: Session) -> list[dict]:
    rows = s.scalars(select(Space).where(Space.instance.is_not(None)).order_by(Space.stage_changed_at.desc()))
    return [{"repo_id": sp.repo_id, "hardware": sp.hardware, "stage": sp.stage, "since": sp.stage_changed_at}
            for sp in rows]


def runtime_hooks() -> PageHooks:
    return PageHooks(quota=_quota, nodes=_nodes, queue=_queue, running=_running)

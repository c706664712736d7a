"""Data the pages show but other subsystems own: quotas, usage, nodes, the scheduler queue, wakes.

HOOKS, NOT FINAL SOURCES. Each field of :class:`PageHooks` is a plain function; the runtime / scheduler
engineers replace them (``install_pages(app, hub, hooks=PageHooks(usage=...))`` or by assigning to
``app.state.page_hooks``). The defaults read only what the database already has and say so on the page:

* ``quota(hub, s, account)``: the account's quota as rows ``{"key", "limit", "used"}``, or None when unknown.
  Shown on the hardware settings before asking for a flavor. Default: the admin's ``QuotaGrant`` rows, usage
  unknown (None).
* ``usage(hub, s, account)``: :class:`UsageView` for the usage page. Default: this month's ``UsageInterval`` rows.
* ``nodes(hub, s)``: ``[{"name", "flavors", "capacity", "used", "status"}]``. Default: ``[]`` (no scheduler yet).
* ``queue(hub, s)``: ``[{"repo_id", "hardware", "since", "reason"}]``. Default: ``[]`` (no scheduler yet).
* ``running(hub, s)``: ``[{"repo_id", "hardware", "stage", "since"}]``. Default: ``[]`` (no runtime yet).
* ``templates()``: the starter templates offered by the New Space form. Default: ``templates/`` through
  :func:`spaces.templates_catalog.list_templates`.
* ``wake(hub, space_id)``: called when a visitor opens a sleeping Space's page. Default: no-op; the app's
  iframe request reaches the proxy, which wakes the Space anyway.

Every hook runs inside the page's database transaction (``s``) and in a worker thread; keep them quick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from spaces.db.models import Account, QuotaGrant, UsageInterval
from spaces.templates_catalog import Template, list_templates


@dataclass
class UsageRow:
    flavor: str
    minutes: float
    cost_usd: float


@dataclass
class UsageView:
    period: str
    rows: list[UsageRow] = field(default_factory=list)
    source: str = "database"  # shown on the page, so nobody mistakes a placeholder for real figures

    @property
    def total_usd(self) -> float:
        return sum(r.cost_usd for r in self.rows)


def default_quota(hub: Any, s: Session, account: Account) -> list[dict] | None:
    grants = list(s.scalars(select(QuotaGrant).where(QuotaGrant.account_id == account.id).order_by(QuotaGrant.key)))
    if not grants:
        return None
    return [{"key": g.key, "limit": g.value, "used": None} for g in grants]


def default_usage(hub: Any, s: Session, account: Account) -> UsageView:
    now = datetime.now(timezone.utc)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    open_or_recent = UsageInterval.ended_at.is_(None) | (UsageInterval.ended_at >= start)
    rows = s.scalars(select(UsageInterval).where(UsageInterval.account_id == account.id, open_or_recent))
    minutes: dict[str, float] = {}
    for r in rows:
        begin = _aware(r.started_at)
        end = _aware(r.ended_at) if r.ended_at else now
        minutes[r.flavor] = minutes.get(r.flavor, 0.0) + max(0.0, (end - max(begin, start)).total_seconds() / 60)
    out = []
    for flavor, mins in sorted(minutes.items()):
        price = hub.flavors.get(flavor).price_per_hour_usd if flavor in hub.flavors else 0.0
        out.append(UsageRow(flavor, round(mins, 1), round(mins / 60 * price, 2)))
    return UsageView(period=start.strftime("%B %Y"), rows=out, source="usage records in the database")


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _empty(*_: Any) -> list[dict]:
    return []


def _noop(*_: Any) -> None:
    return None


@dataclass
class PageHooks:
    quota: Callable[[Any, Session, Account], list[dict] | None] = default_quota
    usage: Callable[[Any, Session, Account], UsageView] = default_usage
    nodes: Callable[[Any, Session], list[dict]] = _empty  # HOOK: scheduler nodes, none until the runtime exists
    queue: Callable[[Any, Session], list[dict]] = _empty  # HOOK: scheduler queue, none until the runtime exists
    running: Callable[[Any, Session], list[dict]] = _empty  # HOOK: running instances, from the runtime
    wake: Callable[[Any, str], None] = _noop  # HOOK: wake a sleeping Space when its page opens
    templates: Callable[[], list[Template]] = list_templates

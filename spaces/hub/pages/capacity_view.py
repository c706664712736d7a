"""What the pages say about hardware and quota, in words: which flavors this server can run (the rest greyed with
why) and an account's quota as sentences rather than stored keys (``running:cpu-basic``, ``credits_micro_usd``).

Both read the runtime's :class:`spaces.runtime.capacity.Capacity` when one is attached to the hub (``spaces
serve``); a hub without a runtime offers every flavor and shows the quota rows it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from spaces.db.models import Account


def unavailable(hub: Any, s: Session, account: Account | None = None) -> dict[str, str]:
    """Flavor name -> why it cannot run here: no node of this server could ever hold it (no GPU, too large), or
    ``account``'s quota allows none of it. Flavors not named can run (capacity permitting)."""
    capacity = getattr(hub, "capacity", None)
    if capacity is None:
        return {}
    from spaces.runtime import scheduler

    out: dict[str, str] = {}
    if capacity.nodes:  # no nodes: the backend places by itself (Kubernetes), nothing to say here
        for name in capacity.catalog.names():
            request = scheduler.Request.for_flavor("-", capacity.catalog.get(name))
            result = scheduler.place(request, capacity.nodes, {}, capacity.policy)
            if isinstance(result, scheduler.Unschedulable) and not result.transient:
                out[name] = _server_reason(result.message)
    if account is not None:
        quota = capacity.account_quota(s, account)
        for flavor in capacity.catalog.shapes():
            name = flavor.name
            if name in out:
                continue
            if quota.running_limit(name) == 0:
                out[name] = f"{account.name}'s quota allows none; an administrator can grant it"
            elif flavor.is_gpu and quota.gpu_minutes == 0:
                out[name] = f"{account.name}'s quota has no GPU minutes; an administrator can grant them"
    return out


def _server_reason(message: str) -> str:
    # the scheduler says "no node has a GPU; t4-small needs 1x T4": the page says it about this server
    text = message
    for node_words in ("no node has a ", "no node has an ", "no node has "):
        text = text.replace(node_words, "this server has no ")
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class QuotaLine:
    key: str  # as stored and granted (``spaces grant ACCOUNT KEY VALUE``)
    label: str
    used: str  # "—" when the hub cannot tell
    limit: str

    @property
    def text(self) -> str:
        if self.used == "—":
            return "no limit" if self.limit == "no limit" else f"at most {self.limit}"
        return f"{self.used} of {self.limit}" if self.limit != "no limit" else f"{self.used} (no limit)"


def quota_lines(hub: Any, rows: list[dict] | None) -> list[QuotaLine]:
    """The quota hook's rows (``{"key", "limit", "used"}``) as labelled lines."""
    names = {f.name: f.pretty_name for f in hub.flavors.shapes()}
    return [_line(names, r["key"], r.get("used"), r.get("limit")) for r in rows or []]


def _line(names: dict[str, str], key: str, used: object, limit: object) -> QuotaLine:
    unlimited = limit is None or (isinstance(limit, int) and limit < 0)
    if key == "credits_micro_usd":
        money = (lambda v: f"${int(v) / 1_000_000:,.2f}")  # noqa: E731
        return QuotaLine(key, "Compute credits this month", "—" if used is None else money(used),
                         "no limit" if unlimited else money(limit))
    if key == "gpu_minutes":
        label = "GPU minutes this month"
        shown = "—" if used is None else f"{float(used):g}"  # type: ignore[arg-type]
    elif key.startswith("running:"):
        flavor = key.split(":", 1)[1]
        if flavor in ("*", "(other flavors)"):
            label = "Running Spaces on other hardware (each)"
        else:
            label = f"Running {names.get(flavor, flavor)} Spaces"
        shown = "—" if used is None else str(used)
    else:
        label, shown = key, "—" if used is None else str(used)
    return QuotaLine(key, label, shown, "no limit" if unlimited else str(limit))

"""Quotas and metering: pure arithmetic over plain records, no I/O.

An account (user or organization: the Space's *owner* pays) has an :class:`AccountQuota`:

* ``running``: how many Spaces may run at once per flavor (a flavor missing from the map: ``default_running``);
* ``gpu_minutes``: GPU-minutes per period (one minute on a 4-GPU flavor is 4 GPU-minutes);
* ``credits_micro_usd``: the compute-credit budget per period, spent at the flavor's hourly price while running.

``None`` means unlimited. Defaults come from :class:`QuotaSettings`: a free account runs cpu-basic only (every
other flavor has limit 0, and the refusal says an administrator can grant it); an administrator's grants are data
(:func:`apply_grants`, keys as stored in ``quota_grants``: ``running:<flavor>``, ``running:*``, ``gpu_minutes``,
``credits_micro_usd``; value -1 = unlimited).

:func:`check` is called before anything starts (create with hardware, hardware change, duplicate, start, wake)
and raises :class:`spaces.errors.QuotaExceeded` (HTTP 402) with ``limit``, ``used`` and ``requested`` in
``extra``. It never touches what already runs: a refusal only stops the new request. When re-checking a Space
that is already running (a restart), leave that Space out of ``current_usage``.

:func:`bill` meters :class:`Interval` records: only the ``running`` state bills (never queued, building,
starting or asleep), clipped to the period, overlapping intervals of one Space on one flavor counted once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

from pydantic import BaseModel, Field

from spaces.errors import QuotaExceeded
from spaces.runtime.flavors import Price

#: the interval states that bill; everything else (queued, building, starting, sleeping, paused) is free
BILLABLE_STATES = frozenset({"running"})


@dataclass(frozen=True)
class AccountQuota:
    running: Mapping[str, int | None] = field(default_factory=dict)  # flavor -> max running Spaces
    default_running: int | None = 0  # for flavors not in ``running``
    gpu_minutes: int | None = 0  # per period
    credits_micro_usd: int | None = 0  # per period

    def running_limit(self, flavor: str) -> int | None:
        return self.running.get(flavor, self.default_running)


#: no limits at all (instance administrators)
UNLIMITED = AccountQuota(running={}, default_running=None, gpu_minutes=None, credits_micro_usd=None)


@dataclass(frozen=True)
class QuotaUsage:
    """What an account holds and has spent in the current period."""

    # flavor -> the account's Spaces that want to run and are not asleep (queued, starting or running)
    running: Mapping[str, int] = field(default_factory=dict)
    gpu_minutes: float = 0.0
    credits_micro_usd: int = 0


@dataclass(frozen=True)
class QuotaRequest:
    """One Space about to take a flavor."""

    flavor: str
    gpus: int = 0
    price_per_hour_usd: float = 0.0

    @classmethod
    def for_flavor(cls, flavor) -> "QuotaRequest":
        """From a :class:`spaces.domain.hardware.Flavor` or a :class:`spaces.runtime.flavors.RuntimeFlavor`."""
        f = getattr(flavor, "flavor", flavor)
        return cls(f.name, f.gpu_count, f.price_per_hour_usd)


class QuotaSettings(BaseModel):
    """Default quotas (nest as ``Settings.quotas``; env ``SPACES_QUOTAS__...``). ``null`` = unlimited."""

    free_running: dict[str, int | None] = Field(
        default_factory=lambda: {"cpu-basic": None},
        description="running Spaces per flavor for an account without grants; other flavors get 0",
    )
    free_gpu_minutes: int | None = Field(0, description="GPU-minutes per period for an account without grants")
    free_credits_micro_usd: int | None = Field(0, description="compute credits per period (micro-USD) without grants")
    admins_unlimited: bool = Field(True, description="instance administrators have no quota")

    def default_quota(self) -> AccountQuota:
        return AccountQuota(dict(self.free_running), 0, self.free_gpu_minutes, self.free_credits_micro_usd)


def quota_for(settings: QuotaSettings, grants: Mapping[str, int] | None = None, *,
              is_admin: bool = False) -> AccountQuota:
    """The effective quota of one account: defaults (or unlimited for admins), then its grants."""
    if is_admin and settings.admins_unlimited:
        return UNLIMITED
    return apply_grants(settings.default_quota(), grants or {})


def apply_grants(base: AccountQuota, grants: Mapping[str, int]) -> AccountQuota:
    """Apply ``quota_grants`` rows (key -> value, -1 = unlimited). An unknown key raises ``ValueError``."""
    running = dict(base.running)
    default_running, gpu, credits = base.default_running, base.gpu_minutes, base.credits_micro_usd
    for key, value in grants.items():
        v = None if value < 0 else int(value)
        if key == "gpu_minutes":
            gpu = v
        elif key == "credits_micro_usd":
            credits = v
        elif key == "running:*":
            default_running = v
        elif key.startswith("running:") and len(key) > len("running:"):
            running[key.split(":", 1)[1]] = v
        else:
            raise ValueError(f"unknown quota grant key {key!r}")
    return AccountQuota(running, default_running, gpu, credits)


def _refuse(what: str, limit: float | int, used: float | int, requested: float | int, hint: str,
            unit=lambda x: f"{x:g}" if isinstance(x, float) else str(x)) -> QuotaExceeded:
    msg = f"Quota exceeded: {what}: limit {unit(limit)}, used {unit(used)}, requested {unit(requested)}. {hint}"
    return QuotaExceeded(msg, quota=what, limit=limit, used=used, requested=requested)


def _usd(micro: float | int) -> str:
    return f"${micro / 1_000_000:,.2f}"


def _limits_minutes(account_quota: AccountQuota, request: QuotaRequest) -> bool:
    return bool(request.gpus) and account_quota.gpu_minutes is not None


def _limits_credits(account_quota: AccountQuota, request: QuotaRequest) -> bool:
    return request.price_per_hour_usd > 0 and account_quota.credits_micro_usd is not None


def needs_metering(account_quota: AccountQuota, request: QuotaRequest) -> bool:
    """Does :func:`check` read the metered figures (GPU minutes, credits) for ``request``? When it does not, the
    caller may pass a usage with the running counts only, and skip billing the period (which grows with it)."""
    return _limits_minutes(account_quota, request) or _limits_credits(account_quota, request)


def check(account_quota: AccountQuota, current_usage: QuotaUsage, request: QuotaRequest) -> None:
    """Raise :class:`QuotaExceeded` if ``request`` would go over ``account_quota``; return ``None`` otherwise."""
    flavor = request.flavor
    limit = account_quota.running_limit(flavor)
    used = current_usage.running.get(flavor, 0)
    if limit is not None and used + 1 > limit:
        hint = (f"This account may not use {flavor}; an administrator can grant it."
                if limit == 0 else f"Stop or pause one of your {flavor} Spaces, or ask an administrator for more.")
        raise _refuse(f"running Spaces on {flavor}", limit, used, 1, hint)
    gpu_limit = account_quota.gpu_minutes
    if _limits_minutes(account_quota, request) and current_usage.gpu_minutes >= gpu_limit:
        hint = ("This account has no GPU minutes; an administrator can grant them." if account_quota.gpu_minutes == 0
                else "GPU minutes are used up for this period; an administrator can grant more.")
        # requested: the GPUs this Space would start burning minutes on
        what = f"GPU minutes ({flavor} uses {request.gpus} GPU{'s' if request.gpus > 1 else ''})"
        raise _refuse(what, account_quota.gpu_minutes, round(current_usage.gpu_minutes, 2), request.gpus, hint)
    limit_c = account_quota.credits_micro_usd
    if _limits_credits(account_quota, request) and current_usage.credits_micro_usd >= limit_c:
        hint = ("This account has no compute credits; an administrator can grant them." if limit_c == 0
                else "Compute credits are used up for this period; an administrator can grant more.")
        per_hour = round(request.price_per_hour_usd * 1_000_000)
        # figures in extra are micro-USD (integers); the sentence shows dollars, requested = one hour of the flavor
        raise _refuse(f"compute credits for {flavor} (per hour)", limit_c, current_usage.credits_micro_usd,
                      per_hour, hint, unit=_usd)


# -- metering -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A stretch of one Space in one state on one flavor; ``end`` None = still going (clipped to the period)."""

    space: str
    flavor: str
    state: str  # "running" bills; "queued", "building", "starting", "sleeping", "paused" do not
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    @classmethod
    def month_of(cls, moment: datetime) -> "Period":
        """The calendar month containing ``moment`` (same tzinfo)."""
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        nxt = (start + timedelta(days=32)).replace(day=1)
        return cls(start, nxt)


@dataclass(frozen=True)
class Usage:
    """Metered usage over a period."""

    seconds: Mapping[str, float]  # flavor -> billed running seconds
    gpu_minutes: float
    credits_micro_usd: int
    by_space: Mapping[str, int] = field(default_factory=dict)  # space -> micro-USD

    def as_quota_usage(self, running: Mapping[str, int]) -> QuotaUsage:
        return QuotaUsage(dict(running), self.gpu_minutes, self.credits_micro_usd)


def _union_seconds(spans: list[tuple[datetime, datetime]]) -> Fraction:
    total = 0  # whole microseconds: exact, and integer sums are far cheaper than Fraction sums (a month has many)
    cur_s = cur_e = None
    for s, e in sorted(spans):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += _micros(cur_e - cur_s)
            cur_s, cur_e = s, e
        elif e > cur_e:
            cur_e = e
    if cur_e is not None:
        total += _micros(cur_e - cur_s)
    return Fraction(total, 1_000_000)


def _micros(td: timedelta) -> int:
    # exact: days/seconds/microseconds are integers, so money never picks up float error
    return (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds


def bill(intervals: Iterable[Interval], prices: Mapping[str, Price], period: Period,
         billable: frozenset[str] = BILLABLE_STATES) -> Usage:
    """Meter ``intervals`` over ``period``: running seconds per flavor, GPU-minutes and credits spent.

    Cost is exact per (Space, flavor) and rounded once to whole micro-USD. A flavor missing from ``prices``
    bills nothing but its seconds are still counted (so an unknown flavor shows up in reports).
    """
    spans: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
    for iv in intervals:
        if iv.state not in billable:
            continue
        start = max(iv.start, period.start)
        end = min(iv.end if iv.end is not None else period.end, period.end)
        if end > start:
            spans.setdefault((iv.space, iv.flavor), []).append((start, end))
    seconds: dict[str, Fraction] = {}
    by_space: dict[str, Fraction] = {}
    gpu_seconds = Fraction(0)
    for (space, flavor), parts in spans.items():
        secs = _union_seconds(parts)
        price = prices.get(flavor, Price(0.0, 0))
        seconds[flavor] = seconds.get(flavor, Fraction(0)) + secs
        gpu_seconds += secs * price.gpus
        by_space[space] = by_space.get(space, Fraction(0)) + secs * Fraction(str(price.per_hour_usd)) * 1_000_000 / 3600
    total = sum(by_space.values(), Fraction(0))
    return Usage(
        seconds={f: float(s) for f, s in seconds.items()},
        gpu_minutes=float(gpu_seconds / 60),
        credits_micro_usd=round(total),
        by_space={s: round(c) for s, c in by_space.items()},
    )


__all__ = [
    "AccountQuota", "BILLABLE_STATES", "Interval", "Period", "QuotaExceeded", "QuotaRequest", "QuotaSettings",
    "QuotaUsage", "UNLIMITED", "Usage", "apply_grants", "bill", "check", "quota_for",
]

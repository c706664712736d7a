"""Quota checks and metering arithmetic (spaces.runtime.quota), table-driven."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from spaces.domain.hardware import FLAVORS
from spaces.errors import QuotaExceeded
from spaces.runtime.flavors import FlavorCatalog, FlavorSettings, Price
from spaces.runtime.quota import (
    UNLIMITED,
    AccountQuota,
    Interval,
    Period,
    QuotaRequest,
    QuotaSettings,
    QuotaUsage,
    apply_grants,
    bill,
    check,
    needs_metering,
    quota_for,
)

FREE = quota_for(QuotaSettings())
R = {name: QuotaRequest.for_flavor(f) for name, f in FLAVORS.items()}
GRANTED = apply_grants(FREE, {"running:t4-small": 2, "gpu_minutes": 600, "credits_micro_usd": 5_000_000})

# (case, quota, usage, request, None if allowed else (limit, used, requested, words in the message))
CHECK_TABLE = [
    ("free: cpu-basic allowed", FREE, QuotaUsage(), R["cpu-basic"], None),
    ("free: cpu-basic unlimited in number", FREE, QuotaUsage(running={"cpu-basic": 500}), R["cpu-basic"], None),
    ("free: GPU refused, admin can grant", FREE, QuotaUsage(), R["t4-small"], (0, 0, 1, "an administrator can grant")),
    ("free: cpu-upgrade refused", FREE, QuotaUsage(), R["cpu-upgrade"], (0, 0, 1, "may not use cpu-upgrade")),
    ("granted: first t4-small ok", GRANTED, QuotaUsage(), R["t4-small"], None),
    ("granted: third t4-small over", GRANTED, QuotaUsage(running={"t4-small": 2}), R["t4-small"],
     (2, 2, 1, "Stop or pause one of your t4-small")),
    ("granted: GPU minutes used up", GRANTED, QuotaUsage(gpu_minutes=600.0), R["t4-small"],
     (600, 600.0, 1, "GPU minutes are used up")),
    ("granted: minutes left", GRANTED, QuotaUsage(gpu_minutes=599.5, credits_micro_usd=10), R["t4-small"], None),
    ("granted: credits used up", GRANTED, QuotaUsage(credits_micro_usd=5_000_000), R["t4-small"],
     (5_000_000, 5_000_000, 400_000, "Compute credits are used up")),
    ("credits never stop a free flavor", apply_grants(FREE, {"credits_micro_usd": 0}),
     QuotaUsage(credits_micro_usd=10**9), R["cpu-basic"], None),
    ("admin: unlimited", UNLIMITED, QuotaUsage(running={"a100x8": 40}, gpu_minutes=1e9), R["a100x8"], None),
    ("running:* grant opens every flavor", apply_grants(FREE, {"running:*": 1, "gpu_minutes": -1,
                                                              "credits_micro_usd": -1}),
     QuotaUsage(), R["l4x1"], None),
]


@pytest.mark.parametrize("case,quota,usage,request_,refusal", CHECK_TABLE, ids=[c[0] for c in CHECK_TABLE])
def test_check(case, quota, usage, request_, refusal) -> None:
    if refusal is None:
        assert check(quota, usage, request_) is None
        return
    limit, used, requested, words = refusal
    with pytest.raises(QuotaExceeded) as info:
        check(quota, usage, request_)
    err = info.value
    assert err.status == 402 and err.code == "QuotaExceeded"
    assert (err.extra["limit"], err.extra["used"], err.extra["requested"]) == (limit, used, requested)
    assert words in err.message
    # the message says the figures, not only the body
    shown = (lambda x: f"${x / 1e6:,.2f}") if "credits" in err.message else (lambda x: f"{x:g}")
    assert f"limit {shown(limit)}, used {shown(used)}, requested {shown(requested)}." in err.message


def test_grants_and_settings_are_data() -> None:
    q = apply_grants(AccountQuota(), {"running:t4-small": 3, "running:*": -1, "gpu_minutes": 10})
    assert q.running_limit("t4-small") == 3 and q.running_limit("l4x1") is None and q.gpu_minutes == 10
    with pytest.raises(ValueError, match="unknown quota grant"):
        apply_grants(q, {"gpus": 1})
    assert quota_for(QuotaSettings(), is_admin=True) is UNLIMITED
    assert quota_for(QuotaSettings(admins_unlimited=False), is_admin=True) == FREE
    s = QuotaSettings(free_running={"cpu-basic": 3, "cpu-upgrade": 1})
    assert quota_for(s).running_limit("cpu-upgrade") == 1 and quota_for(s).running_limit("t4-small") == 0


# -- metering -----------------------------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
MARCH = Period.month_of(T0 + timedelta(days=3))
PRICES = FlavorCatalog().prices()


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# (case, intervals, expected seconds per flavor, GPU-minutes, micro-USD)
BILL_TABLE = [
    ("one hour of t4-small", [Interval("s", "t4-small", "running", h(1), h(2))], {"t4-small": 3600}, 60, 400_000),
    ("queued, building, starting, asleep never bill",
     [Interval("s", "t4-small", st, h(0), h(5)) for st in ("queued", "building", "starting", "sleeping", "paused")],
     {}, 0, 0),
    ("free flavor counts seconds, costs nothing", [Interval("s", "cpu-basic", "running", h(0), h(10))],
     {"cpu-basic": 36000}, 0, 0),
    ("overlapping intervals of one Space count once",
     [Interval("s", "t4-small", "running", h(0), h(2)), Interval("s", "t4-small", "running", h(1), h(3))],
     {"t4-small": 3 * 3600}, 180, 1_200_000),
    ("two Spaces bill separately", [Interval("a", "t4-small", "running", h(0), h(1)),
                                    Interval("b", "t4-small", "running", h(0), h(1))],
     {"t4-small": 7200}, 120, 800_000),
    ("multi-GPU flavor: GPU-minutes per GPU", [Interval("s", "l4x4", "running", h(0), h(0.5))],
     {"l4x4": 1800}, 120, 1_900_000),
    ("clipped to the period", [Interval("s", "t4-small", "running", T0 - timedelta(hours=1), h(1))],
     {"t4-small": 3600}, 60, 400_000),
    ("open interval runs to the period end",
     [Interval("s", "cpu-upgrade", "running", MARCH.end - timedelta(minutes=30), None)],
     {"cpu-upgrade": 1800}, 0, 15_000),
    ("entirely outside the period", [Interval("s", "t4-small", "running", h(-5), h(-1))], {}, 0, 0),
    ("one second of cpu-upgrade rounds to whole micro-USD", [Interval("s", "cpu-upgrade", "running", h(0),
                                                                       h(1 / 3600))], {"cpu-upgrade": 1}, 0, 8),
]


@pytest.mark.parametrize("case,intervals,seconds,gpu_minutes,micro", BILL_TABLE, ids=[c[0] for c in BILL_TABLE])
def test_bill(case, intervals, seconds, gpu_minutes, micro) -> None:
    usage = bill(intervals, PRICES, MARCH)
    assert usage.seconds == pytest.approx(seconds)
    assert usage.gpu_minutes == pytest.approx(gpu_minutes)
    assert usage.credits_micro_usd == micro


def test_bill_many_small_intervals_has_no_rounding_drift() -> None:
    # 3,600 one-second intervals must cost exactly what one hour costs
    ivs = [Interval("s", "t4-small", "running", h(k / 3600), h((k + 1) / 3600)) for k in range(3600)]
    assert bill(ivs, PRICES, MARCH).credits_micro_usd == 400_000


def test_operator_price_override_reaches_the_bill_and_quota_feeds_check() -> None:
    prices = FlavorCatalog(FlavorSettings(hardware={"t4-small": {"price_per_hour_usd": 1.0}})).prices()
    assert prices["t4-small"] == Price(1.0, 1)
    usage = bill([Interval("s", "t4-small", "running", h(0), h(2))], prices, MARCH)
    assert usage.credits_micro_usd == 2_000_000
    quota = apply_grants(FREE, {"running:t4-small": 5, "gpu_minutes": 1000, "credits_micro_usd": 2_000_000})
    with pytest.raises(QuotaExceeded):
        check(quota, usage.as_quota_usage({"t4-small": 0}), R["t4-small"])


def test_month_period() -> None:
    p = Period.month_of(datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc))
    assert (p.start, p.end) == (datetime(2026, 12, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize("case,quota,usage,request_,refusal", CHECK_TABLE, ids=[c[0] for c in CHECK_TABLE])
def test_a_check_that_needs_no_metering_does_not_depend_on_it(case, quota, usage, request_, refusal) -> None:
    if needs_metering(quota, request_):
        return
    for minutes, credits in ((0.0, 0), (1e12, 10**15)):
        metered = QuotaUsage(running=usage.running, gpu_minutes=minutes, credits_micro_usd=credits)
        try:
            check(quota, metered, request_)
            outcome = None
        except QuotaExceeded as e:
            outcome = (e.extra["limit"], e.extra["used"], e.extra["requested"])
        assert outcome == (None if refusal is None else refusal[:3])


def test_the_check_table_meters_and_skips_metering() -> None:
    # both kinds of case are in the table, so the test above checks something
    kinds = {needs_metering(quota, request_) for _, quota, _, request_, _ in CHECK_TABLE}
    assert kinds == {True, False}

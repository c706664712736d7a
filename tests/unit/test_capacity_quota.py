"""The quota check before every start and wake reads the month's usage only when the request's limits need it.

Billing the month reads every usage interval of the account (each start opens one), so its cost grows all month:
about 18 ms at 1,000 intervals and 170 ms at 5,000 on a 2-core machine. A free flavor's check (running counts
only) must not pay that on every wake; a GPU or paid flavor's check still bills, and still refuses.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from spaces.db.models import Account, QuotaGrant, Space, UsageInterval
from spaces.db.session import Database
from spaces.errors import QuotaExceeded
from spaces.runtime.capacity import Capacity
from spaces.runtime.flavors import FlavorCatalog
from spaces.settings import Settings


@pytest.fixture
def capacity(monkeypatch: pytest.MonkeyPatch) -> tuple[Capacity, list]:
    settings = Settings()
    cap = Capacity(FlavorCatalog(settings.flavors), [], settings.quotas, settings.scheduler.policy())
    bills: list = []
    real = Capacity.metered
    monkeypatch.setattr(Capacity, "metered", lambda self, *a, **k: (bills.append(1), real(self, *a, **k))[1])
    return cap, bills


def _account(db: Database, grants: dict[str, int], *, intervals: int, flavor: str, running: int = 0) -> str:
    """An account with ``intervals`` one-minute runs on ``flavor`` this month and ``running`` Spaces up on it."""
    start = datetime.now(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with db.session() as s:
        owner = Account(name="u", key="u")
        s.add(owner)
        s.flush()
        s.add_all(QuotaGrant(account_id=owner.id, key=k, value=v) for k, v in grants.items())
        s.add_all(UsageInterval(account_id=owner.id, space_id=f"s{i % 3}", flavor=flavor,
                                started_at=start + timedelta(minutes=2 * i),
                                ended_at=start + timedelta(minutes=2 * i + 1)) for i in range(intervals))
        s.add_all(Space(owner_id=owner.id, name=f"up{i}", repo_id=f"u/up{i}", key=f"u/up{i}", subdomain=f"u-up{i}",
                        hardware=flavor, instance={"current": None}) for i in range(running))
        return owner.id


def _check(db: Database, cap: Capacity, account_id: str, flavor: str) -> None:
    with db.session() as s:
        cap.check_quota(s, s.get(Account, account_id), flavor, exclude="waking")


def test_a_free_flavor_is_checked_without_billing_the_month(db: Database, capacity: tuple[Capacity, list]) -> None:
    cap, bills = capacity
    owner = _account(db, {"running:cpu-basic": 2}, intervals=300, flavor="cpu-basic", running=1)
    _check(db, cap, owner, "cpu-basic")
    assert bills == []
    # the running count is still checked: a second Space up fills the granted two
    with db.session() as s:
        s.add(Space(owner_id=owner, name="up9", repo_id="u/up9", key="u/up9", subdomain="u-up9",
                    hardware="cpu-basic", instance={"current": None}))
    with pytest.raises(QuotaExceeded) as info:
        _check(db, cap, owner, "cpu-basic")
    assert info.value.extra["used"] == 2 and bills == []


def test_a_gpu_flavor_with_a_minutes_limit_is_billed_and_refused_when_they_are_used(
        db: Database, capacity: tuple[Capacity, list]) -> None:
    cap, bills = capacity
    owner = _account(db, {"running:t4-small": 5, "gpu_minutes": 30, "credits_micro_usd": -1}, intervals=40,
                     flavor="t4-small")
    with pytest.raises(QuotaExceeded) as info:
        _check(db, cap, owner, "t4-small")
    assert "GPU minutes are used up" in info.value.message and info.value.extra["used"] == 40
    assert len(bills) == 1


def test_a_paid_flavor_with_a_credit_limit_is_billed(db: Database, capacity: tuple[Capacity, list]) -> None:
    cap, bills = capacity
    owner = _account(db, {"running:cpu-upgrade": 1, "credits_micro_usd": 10_000_000}, intervals=3,
                     flavor="cpu-upgrade")
    _check(db, cap, owner, "cpu-upgrade")
    assert len(bills) == 1

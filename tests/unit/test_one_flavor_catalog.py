"""One flavor catalog per process: an operator's override of a flavor (its price, its name) reads the same in the
hub's API, on the pages, in the bill and in the quota check, because all of them are handed the catalog that
``build_hub`` made from ``Settings.flavors`` (they used to read a global table while the runtime read this one)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from spaces.db.models import Account, UsageInterval
from spaces.errors import BadRequest, QuotaExceeded
from spaces.runtime.flavors import FlavorSettings
from spaces.runtime.quota import QuotaSettings
from spaces.settings import RuntimeSettings, Settings

PRICE = 0.6  # $/h for cpu-upgrade; the built-in table says 0.03
PASSWORD = "correct horse battery"


@pytest.fixture
def platform(tmp_path: Path):  # noqa: ANN201
    from spaces.platform import Platform

    settings = Settings(
        data_dir=tmp_path / "data", runtime=RuntimeSettings(backend="docker"),  # docker: nothing runs at init
        flavors=FlavorSettings(hardware={"cpu-upgrade": {"price_per_hour_usd": PRICE, "pretty_name": "Our CPU"}}),
        quotas=QuotaSettings(free_running={"cpu-basic": None, "cpu-upgrade": None}, free_credits_micro_usd=550_000,
                             admins_unlimited=False))
    p = Platform(settings)
    yield p
    p.hub.db.engine.dispose()


def sign_up(client: TestClient, name: str) -> None:
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/join").text).group(1)
    r = client.post("/join", data={"username": name, "password": PASSWORD, "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303, r.text[:300]


def test_an_operator_price_reads_the_same_in_the_api_the_pages_the_bill_and_the_quota(platform) -> None:  # noqa: ANN001
    hub = platform.hub
    assert platform.capacity.catalog is hub.flavors and hub.spaces.flavors is hub.flavors
    client = TestClient(platform.app, headers={"accept": "text/html"})

    listed = {f["name"]: f for f in client.get("/api/spaces/hardware").json()}
    assert listed["cpu-upgrade"]["prettyName"] == "Our CPU"
    assert listed["cpu-upgrade"]["unitCostMicroUSD"] == round(PRICE * 1_000_000 / 60)
    assert listed["cpu-basic"]["unitCostUSD"] == 0  # what nobody overrode stays as it was

    sign_up(client, "alice")
    form = client.get("/new").text
    assert re.search(r'<option value="cpu-upgrade"[^>]*>Our CPU · [^<]*· \$0\.60/h</option>', form), form[:2000]

    with hub.db.session() as s:  # one hour on cpu-upgrade, ended a minute ago
        alice = s.scalars(select(Account).where(Account.name == "alice")).one()
        end = datetime.now(timezone.utc) - timedelta(minutes=1)
        if (end - timedelta(hours=1)).month != end.month:
            pytest.skip("the hour would straddle the start of the month")
        s.add(UsageInterval(account_id=alice.id, space_id="x" * 24, flavor="cpu-upgrade",
                            started_at=end - timedelta(hours=1), ended_at=end))
        s.commit()
    page = client.get("/settings/usage").text
    assert re.search(r"<td>cpu-upgrade</td><td>60\.0</td><td>\$0\.60</td>", page), page[:3000]

    with hub.db.session() as s:
        alice = s.scalars(select(Account).where(Account.name == "alice")).one()
        report = platform.capacity.report(s, alice)
        assert report["creditsMicroUSD"]["used"] == 600_000  # the bill at the operator's price
        with pytest.raises(QuotaExceeded):  # 0.60 billed is over the 0.55 of credits: a paid flavor is refused
            platform.capacity.check_quota(s, alice, "cpu-upgrade")


def test_an_unknown_flavor_is_refused_with_the_catalog_names(platform) -> None:  # noqa: ANN001
    with pytest.raises(BadRequest, match="Unknown hardware flavor 'h100'.*cpu-upgrade"):
        platform.hub.flavors.get("h100")


def test_a_flavor_the_operator_disabled_is_neither_listed_nor_accepted(tmp_path: Path) -> None:
    from spaces.hub.app import build_hub, create_app
    from spaces.services.accounts import Principal
    from spaces.services.spaces import CreateRequest

    settings = Settings(data_dir=tmp_path / "data", flavors=FlavorSettings(disabled=["a100x8"]))
    hub = build_hub(settings)
    try:
        client = TestClient(create_app(settings, hub), headers={"accept": "text/html"})
        listed = [f["name"] for f in client.get("/api/spaces/hardware").json()]
        assert "a100x8" not in listed and "a100x4" in listed
        sign_up(client, "bob")
        form = client.get("/new").text
        assert 'value="a100x4"' in form and 'value="a100x8"' not in form
        with hub.db.session() as s:
            bob = s.scalars(select(Account).where(Account.name == "bob")).one()
            with pytest.raises(BadRequest, match="Unknown hardware flavor 'a100x8'"):
                hub.spaces.create(s, Principal(bob, "write"), CreateRequest("bob", "big", "gradio", hardware="a100x8"))
    finally:
        hub.db.engine.dispose()


def test_a_typo_in_the_disabled_flavors_is_loud() -> None:
    from spaces.runtime.flavors import FlavorCatalog

    with pytest.raises(BadRequest, match="unknown flavors"):
        FlavorCatalog(FlavorSettings(disabled=["a100x9"]))
    with pytest.raises(BadRequest, match="cannot be disabled"):
        FlavorCatalog(FlavorSettings(disabled=["cpu-basic"]))

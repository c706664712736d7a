"""Every card of a list page follows its Space's status live, not only the first 100 (issue 24's leftovers): a
profile page of 130 cards (a hub whose pages hold 150) in Chromium; stage changes of Spaces at the top, past the
100th and at the bottom of the page all reach their cards. Screenshot ``74-many-cards``."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from harness import Server
from pagekit import Web, set_stage, start_pages_server

from spaces.hub.api.status import MANY_MAX

CARDS = 130


@pytest.fixture(scope="module")
def big_pages() -> Iterator[Server]:
    srv = start_pages_server("sqlite", extra_env={"SPACES_PAGES__EXPLORE_PAGE_SIZE": "150"})
    try:
        yield srv
    finally:
        srv.stop()
        srv.log_path.unlink(missing_ok=True)


def test_every_card_of_a_long_list_page_follows_its_space(big_pages: Server, new_page, shot) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    web = Web(big_pages)
    try:
        user = web.sign_up()
        api = web.api()
        for i in range(CARDS):
            api.create_repo(f"{user}/card-{i:03d}", repo_type="space", space_sdk="gradio")
    finally:
        web.close()
    page = new_page()
    streams: list[list[str]] = []
    page.on("request", lambda r: r.url.startswith(f"{big_pages.url}/api/status/spaces?") and streams.append(
        parse_qs(urlparse(r.url).query)["ids"][0].split(",")))
    page.goto(f"{big_pages.url}/{user}")
    badges = page.locator("[data-card-stage]")
    expect(badges).to_have_count(CARDS)
    listed = [badges.nth(i).get_attribute("data-card-stage") for i in range(CARDS)]
    for _ in range(50):  # the streams open as the script runs (the page's CSP forbids wait_for_function)
        if len(streams) >= -(-CARDS // MANY_MAX):
            break
        page.wait_for_timeout(100)
    assert sorted(sum(streams, [])) == sorted(listed) and all(len(ids) <= MANY_MAX for ids in streams), streams

    watched = [listed[0], listed[MANY_MAX - 1], listed[MANY_MAX], listed[-1]]  # both sides of the 100th
    for repo_id in watched:
        set_stage(big_pages, repo_id, "RUNNING", "The app is running.")
    for repo_id in watched:
        card = page.locator(f"[data-card-stage='{repo_id}']")
        expect(card).to_have_text("Running", timeout=20000)
        expect(card).to_have_attribute("class", "badge badge-ok")
    expect(page.locator(f"[data-card-stage='{listed[MANY_MAX + 1]}']")).to_have_text("No app file")
    shot(page, "74-many-cards", full_page=False)
    assert page.errors == [], page.errors  # type: ignore[attr-defined]

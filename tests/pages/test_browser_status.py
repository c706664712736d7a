"""Statuses that must not go stale in the browser: the sleeping banner leaves once the Space is awake (the App tab
does not reload for it: asleep and awake both show the app) and says "wakes" once (screenshots ``70-*``)."""

from __future__ import annotations

import re

from harness import Server
from pagekit import set_stage, sign_up


def test_sleeping_banner_goes_when_the_space_wakes(pages_server: Server, new_page, shot) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    page = new_page()
    user = sign_up(page, pages_server)
    page.fill("#name", "sleepy")
    page.get_by_role("button", name="Create Space").click()
    page.wait_for_url(re.compile(r"/spaces/.+/sleepy"))
    repo_id = f"{user}/sleepy"
    set_stage(pages_server, repo_id, "SLEEPING", "Asleep after 2 days without visitors; the next visit wakes it.")
    page.goto(f"{pages_server.url}/spaces/{repo_id}")
    notice = page.locator("#sleep-notice")
    expect(notice).to_be_visible()
    assert notice.inner_text().lower().count("wake") == 1, notice.inner_text()
    shot(page, "70-sleeping-banner", full_page=False)
    page.evaluate("window.__same_document = true")
    set_stage(pages_server, repo_id, "RUNNING")
    expect(notice).to_have_count(0, timeout=30000)
    assert page.evaluate("window.__same_document === true"), "the banner went without a reload"
    shot(page, "71-awake-no-banner", full_page=False)

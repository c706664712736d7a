"""A real browser (Debian's Chromium through Playwright) opens a sleeping Space's URL: it is shown the waiting page
and ends on the working app by itself. Chromium resolves ``*.localhost`` to loopback on its own.

Screenshots go to ``test-artifacts/platform/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import platform_kit as kit

CHROMIUM = os.environ.get("SPACES_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def page():  # noqa: ANN201
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (never `playwright install`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1100, "height": 760})
            ctx.set_default_timeout(60000)
            yield ctx.new_page()
        finally:
            browser.close()


def test_browser_opening_a_sleeping_space_sees_the_waiting_page_then_the_app(  # noqa: ANN001
        platform, alice, make_space, page, artifacts) -> None:
    repo_id = make_space(alice, kit.space_files(**{"README.md": kit.readme("gradio", title="Browser wake"),
                                                   "app.py": kit.app_source("greet.py", MARK="browser")}))
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    platform.server.cli("sleep", repo_id, "--port", str(platform.port))
    kit.wait_stage(alice.api, repo_id, "SLEEPING", timeout=30)
    out = artifacts / "platform"
    out.mkdir(exist_ok=True)

    url = f"http://{kit.app_host(platform.server, repo_id)}/"
    first = page.goto(url, wait_until="commit")
    assert first is not None and first.status == 200
    waiting = first.text()
    assert "This Space is waking up" in waiting, waiting[:500]
    assert "Browser wake" in waiting or repo_id in waiting
    page.screenshot(path=str(out / "wake-waiting-page.png"))

    # the page follows the wake and reloads onto the app; the app then works in the browser
    from playwright.sync_api import expect

    page.wait_for_function("document.title === 'Greet browser'", timeout=60000)
    assert page.url == url
    page.get_by_label("Name").fill("Pat")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_label("Greeting")).to_have_value("browser: Hello, Pat!", timeout=30000)
    page.screenshot(path=str(out / "wake-app.png"))
    assert alice.api.get_space_runtime(repo_id).stage == kit.RUNNING

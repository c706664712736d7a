"""The Space page's statuses against the real platform (builder, runtime, sleeper), in Debian's Chromium: an
empty Space gets its first push while its page is open, builds, starts and runs; it is put to sleep, and opening
its page wakes it. The page must follow each change by itself and never show stale or contradictory text (the
checker of ``tests/pages/status_checker.js`` reads the DOM every 50 ms). Screenshots ``status-live-*`` go to
``test-artifacts/platform/``."""

from __future__ import annotations

import json
from pathlib import Path

import platform_kit as kit
from harness import unique
from test_platform_browser import page  # noqa: F401 - the module's browser page fixture

CHECKER = (Path(__file__).resolve().parent.parent / "pages" / "status_checker.js").read_text()


def _stored(page, key: str) -> list[str]:  # noqa: ANN001, F811
    return json.loads(page.evaluate(f"sessionStorage.getItem('{key}') || '[]'"))


def test_the_page_follows_a_first_build_a_sleep_and_a_wake(platform, alice, page, artifacts) -> None:  # noqa: ANN001, F811
    from playwright.sync_api import expect

    out = artifacts / "platform"
    out.mkdir(exist_ok=True)
    repo_id = f"{alice.name}/{unique('live-status')}"
    alice.api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    try:
        page.add_init_script(CHECKER)
        page.goto(f"{platform.server.url}/spaces/{repo_id}")
        badge = page.locator(".space-head [data-stage-badge]")
        expect(badge).to_have_attribute("data-stage", "NO_APP_FILE")

        kit.upload(alice.api, repo_id, kit.space_files(**{
            "README.md": kit.readme("gradio", title="Live status"),
            "app.py": kit.app_source("greet.py", MARK="status")}), "first version")
        expect(badge).to_have_attribute("data-stage", "RUNNING", timeout=240000)
        expect(page.locator("[data-status-strip]")).to_be_hidden()
        page.frame_locator("#app-frame").get_by_label("Name").fill("Pat")  # the app itself, in the App tab
        page.screenshot(path=str(out / "status-live-running.png"))
        seen = _stored(page, "stages")
        assert seen[0] == "NO_APP_FILE" and seen[-1] == "RUNNING", seen
        assert {"BUILDING", "APP_STARTING"} & set(seen), f"the page showed no progress: {seen}"

        page.evaluate("window.__same_document = true")
        platform.server.cli("sleep", repo_id, "--port", str(platform.port))
        expect(page.locator("#sleep-notice")).to_be_visible(timeout=30000)
        expect(badge).to_have_text("Sleeping")
        assert page.evaluate("window.__same_document === true"), "asleep without a reload"
        page.screenshot(path=str(out / "status-live-sleeping.png"))

        page.reload()  # opening the page wakes the Space; the banner goes as soon as it does
        expect(badge).to_have_attribute("data-stage", "RUNNING", timeout=60000)
        expect(page.locator("#sleep-notice")).to_be_hidden()
        page.screenshot(path=str(out / "status-live-awake.png"))
        assert _stored(page, "violations") == []
        assert "SLEEPING" in _stored(page, "stages")
    finally:
        alice.api.delete_repo(repo_id, repo_type="space")

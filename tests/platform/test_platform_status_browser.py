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


def test_the_frames_waiting_page_says_what_the_page_around_it_says(  # noqa: ANN001, F811
        platform, alice, page, make_space, artifacts) -> None:
    """The App tab's frame shows the proxy's waiting page while the app loads (and while it wakes): the checker
    in both documents compares them, and the frame's words are the page's (issue 24: "waking up" in the frame
    under "sleeping" on the page)."""
    from playwright.sync_api import expect

    out = artifacts / "platform"
    out.mkdir(exist_ok=True)
    repo_id = make_space(alice, kit.space_files(**{"README.md": kit.readme("gradio", title="Slow start"),
                                                   "app.py": kit.app_source("slow_start.py", DELAY="20")}))
    tab = page.context.new_page()  # a document of its own: the module's page already has a checker installed
    try:
        tab.add_init_script(CHECKER)
        tab.goto(f"{platform.server.url}/spaces/{repo_id}")
        frame = tab.frame_locator("#app-frame")
        expect(frame.locator("[data-stage-badge]")).to_have_attribute("data-stage", "APP_STARTING", timeout=240000)
        words = frame.locator("[data-status-headline]").inner_text()
        expect(tab.locator("[data-status-strip] [data-status-headline]")).to_have_text(words)
        expect(tab.locator("[data-status-strip] [data-stage-message]")).to_have_text(
            frame.locator("[data-stage-message]").inner_text())
        tab.screenshot(path=str(out / "status-live-frame-starting.png"))
        badge = tab.locator(".space-head [data-stage-badge]")
        expect(badge).to_have_attribute("data-stage", "RUNNING", timeout=120000)
        expect(frame.get_by_label("Name")).to_be_visible(timeout=30000)  # the frame reloaded onto the app

        platform.server.cli("sleep", repo_id, "--port", str(platform.port))
        expect(tab.locator("#sleep-notice")).to_be_visible(timeout=30000)
        tab.reload()  # the frame wakes it: page and frame say "waking up" together, then the app
        expect(badge).to_have_attribute("data-stage", "RUNNING", timeout=60000)
        expect(frame.get_by_label("Name")).to_be_visible(timeout=30000)
        frames = _stored(tab, "frames")
        assert any(line.startswith("APP_STARTING | ") for line in frames), frames
        assert _stored(tab, "violations") == []
    finally:
        tab.close()

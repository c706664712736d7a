"""Every status on a Space page comes from the one live stage stream (issue 24, items 6 and 8): through a queued
build, a running build with its phases, the start, running, a sleep and a wake, a wait for capacity and a build
error, the page never shows stale or contradictory text. A checker in the page (installed on every document, so it
survives the App tab's reloads) reads the DOM every 50 ms and records each contradiction; the test asserts there
were none. Desktop and phone pages watch the same Space at once; screenshots ``72-*`` (desktop) and ``73-*``
(phone) are kept as artifacts."""

from __future__ import annotations

import re
from pathlib import Path

from harness import Server
from pagekit import add_log_lines, sign_up
from statuskit import set_build, set_stage

# Reads every status element of the page and says what contradicts what (see the file); violations and the
# stages seen go to sessionStorage so they outlive the App tab's reloads.
CHECKER = (Path(__file__).resolve().parent / "status_checker.js").read_text()


def _violations(page) -> list[str]:  # noqa: ANN001
    return page.evaluate("JSON.parse(sessionStorage.getItem('violations') || '[]')")


def test_statuses_follow_a_build_a_sleep_and_a_wake(pages_server: Server, new_page, shot) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    srv = pages_server
    desk = new_page()
    user = sign_up(desk, srv)
    desk.add_init_script(CHECKER)
    desk.fill("#name", "lively")
    desk.get_by_role("button", name="Create Space").click()
    desk.wait_for_url(re.compile(r"/spaces/.+/lively"))
    repo = f"{user}/lively"
    base = f"{srv.url}/spaces/{repo}"
    phone = new_page(width=390, height=844)
    phone.context.add_cookies(desk.context.cookies())
    pages = {"72": desk, "73": phone}
    phone.add_init_script(CHECKER)

    def badge(p):  # noqa: ANN001, ANN202
        return p.locator(".space-head [data-stage-badge]")

    def step(p, name: str):  # noqa: ANN001, ANN202
        return p.locator(f"[data-status-stepper] li[data-step-name={name}]").first

    def shots(name: str) -> None:
        for prefix, p in pages.items():
            shot(p, f"{prefix}-{name}", full_page=False)

    # -- a queued build: the stepper waits on "queued"; "Your Space is ready" is never said ----------------------
    set_build(srv, repo, "queued", stage="BUILDING", reason="build_queued", message="Build of 1a2b3c4 is queued.",
              new=True)
    for p in pages.values():
        p.goto(base)
        expect(step(p, "queued")).to_have_attribute("data-state", "current")
        expect(p.locator("#building-notice [data-status-headline]")).to_have_text("Waiting for a builder")
    shots("queued")

    # -- the build runs: its phase beside a spinner, live from the log lines ----------------------------------------
    set_build(srv, repo, "running", stage="BUILDING", reason="building", message="Building 1a2b3c4.")
    add_log_lines(srv, repo, "build", ["fetching   Checking out 1a2b3c4"])
    for p in pages.values():
        expect(step(p, "building")).to_have_attribute("data-state", "current")
        expect(step(p, "building").locator("[data-status-phase]")).to_have_text("fetching the code")
        expect(step(p, "queued")).to_have_attribute("data-state", "done")
    add_log_lines(srv, repo, "build", ["installing + gradio==5.1.0"])
    for p in pages.values():
        expect(step(p, "building").locator("[data-status-phase]")).to_have_text("installing packages")
        p.evaluate("window.__same_document = true")
    shots("building")

    # -- built: the App tab turns to the app (one reload), the stepper strip says "starting" ---------------------
    set_build(srv, repo, "built", stage="APP_STARTING", reason="starting", message="Built; starting the app.")
    for p in pages.values():
        expect(p.locator("#app-frame")).to_have_count(1, timeout=20000)
        expect(step(p, "starting")).to_have_attribute("data-state", "current")
        expect(p.locator("#building-notice")).to_have_count(0)
    shots("starting")

    # -- running: nothing spins, no banner, no stepper strip ----------------------------------------------------------
    for p in pages.values():
        p.evaluate("window.__same_document = true")
    set_stage(srv, repo, "RUNNING", "The app is running.")
    for p in pages.values():
        expect(badge(p)).to_have_attribute("data-stage", "RUNNING")
        expect(p.locator("[data-status-strip]")).to_be_hidden()
        expect(p.locator("#sleep-notice")).to_be_hidden()
    shots("running")

    # -- asleep: the banner comes without a reload and says "wake" once -------------------------------------------------
    set_stage(srv, repo, "SLEEPING", "")
    for p in pages.values():
        expect(p.locator("#sleep-notice")).to_be_visible()
        expect(badge(p)).to_have_text("Sleeping")
    shots("sleeping")

    # -- a wake: waiting for capacity, then starting, then running; the banner goes at once ----------------------
    set_stage(srv, repo, "APP_STARTING", "Waiting for cpu-basic capacity: 1 Space ahead.")
    for p in pages.values():
        expect(p.locator("#sleep-notice")).to_be_hidden()
        expect(p.locator("[data-status-strip] [data-stage-message]")).to_have_text(
            "Waiting for cpu-basic capacity: 1 Space ahead.")
        expect(step(p, "starting")).to_have_attribute("data-state", "current")
    shots("waking")
    set_stage(srv, repo, "RUNNING", "The app is running.")
    for p in pages.values():
        expect(p.locator("[data-status-strip]")).to_be_hidden()
        assert p.evaluate("window.__same_document === true"), "asleep and awake are one view: no reload"

    # -- a push that fails to build: a newer build queued, then the error with the step that failed ---------------
    set_build(srv, repo, "queued", stage="RUNNING_BUILDING", reason="build_queued",
              message="Build of 2b3c4d5 is queued.", new=True)
    for p in pages.values():
        expect(step(p, "queued")).to_have_attribute("data-state", "current")
        expect(badge(p)).to_have_text("Running · building")
    set_build(srv, repo, "failed", stage="BUILD_ERROR", reason="build_failed", message="pip could not resolve numpy")
    for p in pages.values():
        expect(step(p, "building")).to_have_attribute("data-state", "failed", timeout=20000)
        expect(p.locator(".notice.error [data-stage-message]")).to_have_text("pip could not resolve numpy")
    shots("build-error")

    # -- the Logs tab shows the same status, live -------------------------------------------------------------
    desk.goto(f"{base}/logs")
    expect(step(desk, "building")).to_have_attribute("data-state", "failed")
    set_build(srv, repo, "queued", stage="BUILDING", reason="build_queued", message="Build of 3c4d5e6 is queued.",
              new=True)
    expect(step(desk, "queued")).to_have_attribute("data-state", "current")
    expect(badge(desk)).to_have_text("Building")
    shot(desk, "72-logs-tab-queued", full_page=False)

    # -- the cards of a list page follow the same stream ---------------------------------------------------------
    phone.goto(f"{srv.url}/{user}")
    card = phone.locator(f"[data-card-stage='{repo}']")
    expect(card).to_have_text("Building")
    set_stage(srv, repo, "RUNNING", "The app is running.")
    expect(card).to_have_text("Running")
    expect(card).to_have_attribute("class", "badge badge-ok")

    for p in pages.values():
        assert _violations(p) == [], _violations(p)
        assert p.errors == [], p.errors  # type: ignore[attr-defined]

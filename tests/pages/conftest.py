"""Fixtures for the web page tests: a live server with the pages, a real Chromium driven by Playwright.

* ``pages_server``: the real hub on loopback, started with ``uvicorn --factory app_factory:create`` (the hub's
  ``create_app`` plus ``install_pages``; TEMPORARY until ``spaces/hub/app.py`` calls ``install_pages`` itself,
  then this can become ``harness.start_server``). Parametrised over ``SPACES_TEST_DATABASES`` like the hub's
  ``server`` fixture.
* ``browser``: Debian's ``/usr/bin/chromium`` (never a Playwright-downloaded browser) launched headless with a
  fresh profile; ``context`` / ``page`` give each test its own cookie jar.
* ``web()``: an HTTP client of its own on ``pages_server`` (cookies, CSRF: :class:`pagekit.Web`).
* ``shot(page, name)``: saves a screenshot under ``test-artifacts/screenshots/`` (kept after the run).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import Server
from pagekit import ROOT, Web, start_pages_server

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("SPACES_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
DATABASES = [d.strip() for d in os.environ.get("SPACES_TEST_DATABASES", "sqlite,postgres").split(",") if d.strip()]


@pytest.fixture(scope="session", params=DATABASES)
def pages_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = start_pages_server(request.param)
    try:
        yield srv
    finally:
        srv.stop()
        srv.log_path.unlink(missing_ok=True)


@pytest.fixture
def web(pages_server: Server):  # noqa: ANN201
    """``web()``: an HTTP client with its own cookie jar (:class:`pagekit.Web`) on the pages server; closed after."""
    clients: list[Web] = []

    def make() -> Web:
        clients.append(Web(pages_server))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    srv = getattr(item, "funcargs", {}).get("pages_server")
    if rep.failed and isinstance(srv, Server):
        rep.sections.append((f"pages server log [{srv.database}]", srv.log()[-20000:] or "(empty)"))


# ---- browser ----------------------------------------------------------------------------------------------------
# Module scope: Playwright's sync API runs an event loop in this thread while it is open, so a session-wide
# instance would keep other suites (tests/platform) from starting their own browser.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's browser with `apt-get install -y chromium` "
                    "(the test command does this; never `playwright install`).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # launch() gives every run a fresh temporary profile (user-data-dir) and removes it afterwards
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(browser) -> Iterator[Callable[..., object]]:  # noqa: ANN001
    """``new_page(width=1280)``: a page in a fresh context (its own cookies)."""
    contexts = []

    def make(width: int = 1280, height: int = 860, dark: bool = False):  # noqa: ANN202
        ctx = browser.new_context(viewport={"width": width, "height": height},
                                  color_scheme="dark" if dark else "light")
        ctx.set_default_timeout(15000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))  # type: ignore[attr-defined]
        return page

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture(scope="session")
def shot() -> Callable[[object, str], Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str, full_page: bool = True) -> Path:  # noqa: ANN001
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return save

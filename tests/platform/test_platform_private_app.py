"""A private Space's app in its own App tab, in Chromium with third-party cookies blocked.

The hub's pages are on ``localhost:PORT`` and the app on ``{sub}.localhost:PORT``: another site, so inside the
Space page's iframe the app's cookie is a third-party cookie. The profile here blocks those the way a user does
(Settings, Privacy, Third-party cookies, Block: the profile preference ``cookie_controls_mode`` 1).
``test_the_profile_blocks_third_party_cookies`` shows that setting takes effect and that the cookie the proxy set
before (``SameSite=Lax``, or any unpartitioned one) never reaches the app in the frame; the other test opens a
live private Gradio Space and a web-UI duplicate of it in the App tab, and uses them.

Screenshots go to ``test-artifacts/platform/``.
"""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from harness import unique

import platform_kit as kit

CHROMIUM = os.environ.get("SPACES_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def playwright() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (never `playwright install`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


def _profile(pw, root: Path, *, block: bool, width: int = 1100):  # noqa: ANN001, ANN202
    """A persistent Chromium profile whose cookie setting blocks (or allows) third-party cookies."""
    (root / "Default").mkdir(parents=True)
    (root / "Default" / "Preferences").write_text(json.dumps(
        {"profile": {"cookie_controls_mode": 1 if block else 0, "block_third_party_cookies": block}}))
    ctx = pw.chromium.launch_persistent_context(str(root), executable_path=CHROMIUM, headless=True,
                                                args=CHROMIUM_ARGS, viewport={"width": width, "height": 800})
    ctx.set_default_timeout(60000)
    return ctx


# ---- the browser set-up itself ------------------------------------------------------------------------------
_KINDS = {"lax": "SameSite=Lax",  # the proxy's app cookie before the exchange
          "none": "SameSite=None; Secure",  # an ordinary third-party cookie
          "partitioned": "SameSite=None; Secure; Partitioned"}  # what the proxy sets now on *.localhost


class _CookieSite(http.server.BaseHTTPRequestHandler):
    """``/top`` on localhost frames ``/set?kind=K`` on a.localhost, which sets a cookie and redirects to
    ``/check``, which says whether the cookie came back (the exchange's shape: 303 with Set-Cookie, then GET)."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        kind = (parse_qs(url.query).get("kind") or ["lax"])[0]
        if url.path == "/top":
            port = self.server.server_address[1]
            body = "".join(f'<iframe id="{k}" src="http://a.localhost:{port}/set?kind={k}"></iframe>' for k in _KINDS)
            self._answer(200, body)
        elif url.path == "/set":
            self._answer(303, "", Location=f"/check?kind={kind}",
                         **{"Set-Cookie": f"c_{kind}=1; Path=/; HttpOnly; {_KINDS[kind]}"})
        else:
            self._answer(200, f"<body>{f'c_{kind}=1' in (self.headers.get('Cookie') or '')}</body>")

    def _answer(self, status: int, body: str, **headers: str) -> None:
        self.send_response(status)
        for k, v in {"Content-Type": "text/html", **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body.encode())


def test_the_profile_blocks_third_party_cookies(playwright, tmp_path) -> None:  # noqa: ANN001
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _CookieSite)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        seen = {}
        for block in (False, True):
            ctx = _profile(playwright, tmp_path / str(block), block=block)
            try:
                page = ctx.new_page()
                page.goto(f"http://localhost:{server.server_address[1]}/top")
                seen[block] = {k: page.frame_locator(f"#{k}").locator("body").inner_text() for k in _KINDS}
            finally:
                ctx.close()
    finally:
        server.shutdown()
    # allowed: an ordinary third-party cookie works in the frame; blocked: only the partitioned one does.
    # SameSite=Lax (the old app cookie) never does: the frame is another site than the page.
    assert seen[False] == {"lax": "False", "none": "True", "partitioned": "True"}
    assert seen[True] == {"lax": "False", "none": "False", "partitioned": "True"}


# ---- the live platform --------------------------------------------------------------------------------------
def _sign_up(page, hub: str) -> str:  # noqa: ANN001
    name = unique("owner")
    page.goto(f"{hub}/join")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{hub}/new")
    return name


def _web_token(page, hub: str) -> str:  # noqa: ANN001
    """A write token made on the tokens page, as a new user does (Settings, Access tokens)."""
    page.goto(f"{hub}/settings/tokens")
    page.fill("#token-name", "private-app-test")
    page.select_option("#token-role", "write")
    page.get_by_role("button", name="Create token").click()
    return page.locator("#new-token").inner_text().strip()


def _use_app(page, repo_id: str, mark: str, shot: Path) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    app = page.frame_locator("#app-frame")
    app.get_by_label("Name").fill("Pat")
    app.get_by_role("button", name="Submit").click()
    expect(app.get_by_label("Greeting")).to_have_value(f"{mark}: Hello, Pat!", timeout=30000)
    frame = next(f for f in page.frames if kit.subdomain(repo_id) in f.url)
    assert "ticket" not in frame.url, f"the ticket stayed in the app's URL: {frame.url}"
    page.screenshot(path=str(shot))


def test_private_space_and_its_web_duplicate_work_in_the_app_tab(  # noqa: ANN001
        platform, playwright, tmp_path, artifacts) -> None:
    hub = f"http://localhost:{platform.port}"  # the address the README gives; apps are on *.localhost
    out = artifacts / "platform"
    out.mkdir(exist_ok=True)
    ctx = _profile(playwright, tmp_path / "profile", block=True)
    made: list[str] = []
    api = None
    try:
        page = ctx.new_page()
        name = _sign_up(page, hub)
        from huggingface_hub import HfApi

        api = HfApi(endpoint=platform.server.url, token=_web_token(page, hub))
        repo_id = f"{name}/private-app"
        kit.create_space(api, repo_id, kit.space_files(**{"README.md": kit.readme("gradio", title="Private app"),
                                                          "app.py": kit.app_source("greet.py", MARK="private")}),
                         private=True)
        made.append(repo_id)
        kit.wait_stage(api, repo_id, kit.RUNNING)

        page.goto(f"{hub}/spaces/{repo_id}")
        _use_app(page, repo_id, "private", out / "private-app-tab.png")
        cookies = [c for c in ctx.cookies() if c["name"] == "spaces_app_auth"]
        assert [(c["domain"], c.get("partitionKey")) for c in cookies] == [
            (f"{kit.subdomain(repo_id)}.localhost", "http://localhost")], cookies

        # the partitioned cookie is the hub page's alone: the app opened on its own is still private
        direct = ctx.new_page()
        answer = direct.goto(f"http://{kit.app_host(platform.server, repo_id)}/")
        assert answer is not None and answer.status == 404
        direct.close()

        # a copy made in the web UI is private like its source, and its owner sees it work in its App tab
        page.get_by_role("link", name="Duplicate").first.click()
        dialog = page.locator("#duplicate-dialog")
        assert dialog.locator('input[name="visibility"][value="private"]').is_checked()
        dialog.locator("#dup-name").fill("private-copy")
        dialog.get_by_role("button", name="Duplicate Space").click()
        copy_id = f"{name}/private-copy"
        page.wait_for_url(f"{hub}/spaces/{copy_id}")
        made.append(copy_id)
        assert api.space_info(copy_id).private is True
        kit.wait_stage(api, copy_id, kit.RUNNING)
        page.goto(f"{hub}/spaces/{copy_id}")
        _use_app(page, copy_id, "private", out / "private-duplicate-app-tab.png")
    finally:
        ctx.close()
        for repo in made:
            try:
                api.delete_repo(repo, repo_type="space")  # type: ignore[union-attr]
            except Exception:
                pass

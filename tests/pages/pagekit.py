"""Helpers for the page tests (importable from test modules, unlike conftest): start the server with the pages,
sign up through the form."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from harness import Server, create_postgres_database, free_port, server_env, unique

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PASSWORD = "correct horse battery"


def start_pages_server(database: str = "sqlite", extra_env: dict[str, str] | None = None) -> Server:
    """The hub with its pages on a free port; the caller stops it."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"spaces-pages-{database}-"))
    cleanups: list[Callable[[], None]] = [lambda: shutil.rmtree(data_dir, ignore_errors=True)]
    database_url = None
    if database == "postgres":
        database_url, drop = create_postgres_database("spaces_pages")
        cleanups.append(drop)
    port = free_port()
    env = server_env(port=port, data_dir=data_dir, database_url=database_url, extra_env=extra_env)
    # The app's origin must be a *different* origin from the hub's: the hub is reached as 127.0.0.1, the apps
    # as {subdomain}.localhost (Chromium resolves *.localhost to loopback by itself).
    env["SPACES_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.mkstemp(prefix="spaces-pages-server-", suffix=".log")[1])
    url = f"http://127.0.0.1:{port}"
    server = Server(url=url, host="127.0.0.1", port=port, data_dir=data_dir, env=env, log_path=log_path,
                    database=database, _cleanups=cleanups)
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "--app-dir", str(HERE), "app_factory:create",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with open(log_path, "wb") as log:
        server.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=str(ROOT))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    text = server.log()
    server.stop()
    raise RuntimeError(f"the pages server did not start:\n{text[-5000:]}")


def sign_up(page, server: Server, name: str | None = None) -> str:  # noqa: ANN001
    """Sign up through the form; returns the user name. The browser ends on the New Space form."""
    name = name or unique("u")
    page.goto(f"{server.url}/join")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/new")
    return name


# ---- the server's database, for states no component produces yet ------------------------------------------------
def server_db(server: Server):  # noqa: ANN201
    """The live server's database (same URL the server uses)."""
    from spaces.db.session import Database

    url = server.env.get("SPACES_DATABASE_URL") or f"sqlite:///{server.data_dir / 'spaces.db'}"
    return Database(url)


def set_stage(server: Server, repo_id: str, stage: str, message: str = "") -> None:
    """Record an observed stage as the runtime would (TEMPORARY: until the runtime runs apps in these tests)."""
    from sqlalchemy import select

    from spaces.db.models import Space

    db = server_db(server)
    try:
        with db.session() as s:
            space = s.scalar(select(Space).where(Space.key == repo_id.lower()))
            space.stage, space.stage_reason, space.stage_message = stage, "test", message
            space.asleep = stage in ("SLEEPING", "STOPPED")  # the sleeper wants it asleep before it is
    finally:
        db.engine.dispose()


def add_log_lines(server: Server, repo_id: str, kind: str, lines: list[str]) -> None:
    """Store log lines the way the builder's LogBus does (they are replayed to every new SSE reader)."""
    from sqlalchemy import select

    from spaces.db.models import LogLine, Space

    db = server_db(server)
    try:
        with db.session() as s:
            space_id = s.scalar(select(Space.id).where(Space.key == repo_id.lower()))
            for line in lines:
                s.add(LogLine(space_id=space_id, kind=kind, data=line + "\n"))
    finally:
        db.engine.dispose()


# ---- a browser-like HTTP client (httpx with a cookie jar) -------------------------------------------------------
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


class Web:
    """What a browser does, over httpx: keeps cookies, sends ``Accept: text/html``, submits forms with the
    page's CSRF token."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, headers={"accept": "text/html"}, follow_redirects=False,
                                 timeout=30)
        self.name: str | None = None

    def get(self, path: str, **kw) -> httpx.Response:  # noqa: ANN003
        return self.http.get(path, **kw)

    def csrf(self, path: str = "/") -> str:
        return csrf_of(self.get(path).text)

    def post(self, path: str, data: dict | None = None, *, token: str | None = "auto", **kw) -> httpx.Response:  # noqa: ANN003
        data = dict(data or {})
        if token == "auto":
            token = self.csrf()
        if token is not None:
            data["csrf_token"] = token
        return self.http.post(path, data=data, **kw)

    def sign_up(self, name: str | None = None) -> str:
        name = name or unique("w")
        r = self.post("/join", {"username": name, "password": PASSWORD}, token=self.csrf("/join"))
        assert r.status_code == 303, r.text[:500]
        self.name = name
        return name

    def sign_in(self, name: str, password: str = PASSWORD) -> httpx.Response:
        return self.post("/login", {"username": name, "password": password}, token=self.csrf("/login"))

    def close(self) -> None:
        self.http.close()

    def create_token(self, role: str = "write", name: str = "test") -> str:
        r = self.post("/settings/tokens", {"name": name, "role": role}, token=self.csrf("/settings/tokens"))
        assert r.status_code == 200, r.text[:500]
        found = re.search(r'id="new-token">(hf_[A-Za-z0-9]+)<', r.text)
        assert found, "the new token is not on the page"
        return found.group(1)

    def api(self):  # noqa: ANN201
        """A huggingface_hub client acting as this web user (through a token made on the tokens page)."""
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.server.url, token=self.create_token())

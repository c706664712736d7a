"""Shared fixtures: a live ``spaces serve`` per database, users with real tokens, real ``HfApi`` clients.

The hub tests talk to the real server over loopback with the real clients (``huggingface_hub``, ``gradio_client``,
``git``); see ``tests/harness.py`` for how the server is started and stopped.

* ``SPACES_TEST_DATABASES`` (default ``sqlite,postgres``) picks the databases the ``server`` fixture is
  parametrised over; ``SPACES_TEST_DATABASES=sqlite scripts/test`` runs without PostgreSQL.
* On a failing test the server's log lines written during that test are attached to the report.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# -- client environment: must be set before huggingface_hub is imported anywhere (it reads env once) ----------
_HF_HOME = tempfile.mkdtemp(prefix="spaces-test-hf-home-")
for _k in list(os.environ):
    if _k.startswith(("HF_", "HUGGING_FACE_HUB_")) or _k == "HUGGINGFACE_CO_STAGING":
        del os.environ[_k]
os.environ.update(
    HF_HOME=_HF_HOME,
    HF_HUB_DISABLE_TELEMETRY="1",
    HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
    HF_HUB_DISABLE_PROGRESS_BARS="1",
    HF_HUB_DISABLE_UPDATE_CHECK="1",
)

import httpx  # noqa: E402
from harness import DATABASES, Actor, Server, make_actor, start_server, unique  # noqa: E402
from huggingface_hub import HfApi  # noqa: E402


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HF_HOME, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# the server


@pytest.fixture(scope="session", params=DATABASES)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = start_server(request.param)
    try:
        yield srv
    finally:
        srv.stop()
        srv.log_path.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _server_log_mark(request: pytest.FixtureRequest) -> None:
    """Remember where the server log stood when the test started (printed if the test fails)."""
    if "server" in request.fixturenames:
        srv: Server = request.getfixturevalue("server")
        request.node._server_log_start = srv.log_size()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    srv = getattr(item, "funcargs", {}).get("server")
    if isinstance(srv, Server):
        start = getattr(item, "_server_log_start", 0)
        text = srv.log(start)
        if len(text) > 20000:
            text = "[...]\n" + text[-20000:]
        alive = "running" if srv.alive() else f"EXITED ({srv.proc.returncode if srv.proc else '?'})"
        rep.sections.append((f"spaces server log [{srv.database}, {alive}, {srv.url}]", text or "(empty)"))


# ---------------------------------------------------------------------------------------------------------------
# people


@pytest.fixture(scope="session")
def alice(server: Server) -> Actor:
    return make_actor(server, "alice")


@pytest.fixture(scope="session")
def alice_read(server: Server, alice: Actor) -> Actor:
    """Alice again, with a read-only token."""
    return make_actor(server, "alice", role="read")


@pytest.fixture(scope="session")
def bob(server: Server) -> Actor:
    return make_actor(server, "bob")


@pytest.fixture(scope="session")
def carol(server: Server) -> Actor:
    return make_actor(server, "carol")


@pytest.fixture(scope="session")
def anon(server: Server) -> Actor:
    return Actor(name=None, token=None, api=HfApi(endpoint=server.url, token=False), server=server)


@pytest.fixture
def make_org(server: Server) -> Callable[..., str]:
    """``make_org("alice", "carol")`` creates a fresh org with those members and returns its name."""

    def make(*members: str) -> str:
        return server.org(unique("org"), list(members))

    return make


@pytest.fixture
def make_space() -> Iterator[Callable[..., str]]:
    """``make_space(alice, private=True)`` creates a Space through the real client and returns its id.

    The Spaces are deleted after the test: a pushed app runs (and costs CPU) until its Space goes, and the
    servers of this suite live for the whole session."""
    made: list[tuple[Actor, str]] = []

    def make(
        owner: Actor,
        name: str | None = None,
        *,
        namespace: str | None = None,
        private: bool = False,
        sdk: str = "gradio",
        **kwargs: object,
    ) -> str:
        repo_id = f"{namespace or owner.name}/{name or unique('sp')}"
        owner.api.create_repo(repo_id, repo_type="space", space_sdk=sdk, private=private, **kwargs)  # type: ignore[arg-type]
        made.append((owner, repo_id))
        return repo_id

    yield make
    for owner, repo_id in made:
        try:
            owner.api.delete_repo(repo_id, repo_type="space", missing_ok=True)
        except Exception:  # a test may have deleted it, or made it unreachable for its owner: nothing to clean
            pass


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d

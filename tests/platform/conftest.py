"""Fixtures of the whole-platform tests: one real ``spaces serve`` per session, real users, real Spaces.

* ``platform``: ``spaces serve`` (hub, builder, reconciler, sleeper, wake service, proxy; local backend) on
  SQLite, data under ``/var/tmp`` (see ``platform_kit``). It overrides the hub suite's ``server`` fixture, so the
  root conftest's ``alice`` / ``bob`` actors and its "server log on failure" hook work against it.
* ``demo``: the gradio template pushed once as ``alice/demo`` and RUNNING; its environment is the one every other
  gradio Space of the session reuses (environments are content addressed).
* ``make_space``: push files as a new Space; deleted again at the end of the test so the machine (2 cores) does
  not collect idle apps.

``SPACES_TEST_STRICT_BUGS=1`` turns the known-bug ``xfail`` markers (``known_bug``) into plain failing tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import Server, make_actor, unique

import platform_kit as kit

ARTIFACTS = kit.REPO_ROOT / "test-artifacts"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="the local backend needs root (sandbox uids, cgroups, namespaces)")
        for item in items:
            if "tests/platform" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def platform_base() -> Iterator[Path]:
    base = kit.new_base()
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def platform(platform_base: Path) -> Iterator[kit.Platform]:
    with kit.running_platform(platform_base, "main") as p:
        yield p


@pytest.fixture(scope="session")
def server(platform: kit.Platform) -> Server:
    return platform.server


# The users are redefined here, not inherited: the hub suite's session-scoped users belong to *its* servers, and
# pytest would hand those cached ones to these tests even though ``server`` means this platform here.
@pytest.fixture(scope="session")
def alice(server: Server):  # noqa: ANN201
    return make_actor(server, "alice")


@pytest.fixture(scope="session")
def bob(server: Server):  # noqa: ANN201
    return make_actor(server, "bob")


@pytest.fixture(scope="session")
def demo(alice) -> str:  # noqa: ANN001
    """``alice/demo``: the gradio template, RUNNING (the first gradio build of the session)."""
    repo_id = "alice/demo"
    kit.create_space(alice.api, repo_id, kit.space_files("gradio"))
    kit.wait_stage(alice.api, repo_id, kit.RUNNING, timeout=300)
    return repo_id


@pytest.fixture
def make_space(request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """``make_space(actor, files, sdk=..., private=..., name=...)`` -> repo id; the Space is deleted afterwards."""
    made: list[tuple[object, str]] = []

    def make(actor, files: dict[str, bytes], *, sdk: str = "gradio", private: bool = False,  # noqa: ANN001
             name: str | None = None, **kwargs: object) -> str:
        repo_id = f"{actor.name}/{name or unique(request.node.name[:20].replace('_', '-').strip('-'))}"
        kit.create_space(actor.api, repo_id, files, sdk=sdk, private=private, **kwargs)
        made.append((actor, repo_id))
        return repo_id

    yield make
    for actor, repo_id in made:
        try:
            actor.api.delete_repo(repo_id, repo_type="space")
        except Exception:
            pass


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS

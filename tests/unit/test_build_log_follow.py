"""A followed build log (huggingface_hub's ``fetch_space_logs(build=True, follow=True)``, which sends no
``follow`` parameter) stays open while a build of the Space is pending and ends with it, whatever the Space's
stage says meanwhile: it once closed after the replay when the stage was not an intermediate one."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from spaces.db.models import Account, Build, Space
from spaces.domain.stages import SpaceStage
from spaces.services.accounts import Principal
from spaces.services.spaces import CreateRequest
from spaces.settings import Settings


def test_a_followed_build_log_waits_for_the_pending_build_whatever_the_stage(tmp_path: Path) -> None:
    from spaces.hub.app import build_hub, create_app

    settings = Settings(data_dir=tmp_path / "data")
    hub = build_hub(settings)
    try:
        with hub.db.session() as s:
            bob = Account(name="bob", key="bob")
            s.add(bob)
            s.flush()
            space = hub.spaces.create(s, Principal(bob, "write"), CreateRequest("bob", "demo", "gradio"))
            space.sha = "a" * 40
            space_id = space.id
            s.add(Build(space_id=space_id, sha=space.sha, status="running", worker="w"))
            hub.spaces.set_stage(space, SpaceStage.RUNTIME_ERROR, "crashed", "The old revision crashed.")
        hub.logs.append(space_id, "build", "resolving  app file app.py")
        client = TestClient(create_app(settings, hub))
        got: list[str] = []

        def read() -> None:
            with client.stream("GET", "/api/spaces/bob/demo/logs/build") as r:
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        got.append(line)
                        if len(got) == 1:
                            opened.set()

        opened = threading.Event()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert opened.wait(30), "the replay never came"
        reader.join(1)
        assert reader.is_alive(), f"the log closed while a build was running: {got}"
        hub.logs.append(space_id, "build", "built      Build of aaaaaaa finished")
        with hub.db.session() as s:
            s.execute(update(Build).where(Build.space_id == space_id).values(status="built"))
            assert s.scalar(select(Space.stage).where(Space.id == space_id)) == SpaceStage.RUNTIME_ERROR
        hub.logs.end(space_id, "build")
        reader.join(30)
        assert not reader.is_alive(), "the log did not end with the build"
        assert len(got) == 2 and "built" in got[-1], got
    finally:
        hub.db.engine.dispose()

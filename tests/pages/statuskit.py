"""States of a Space written to the live server's database as the builder and the reconciler write them (the pages
server runs the hub only: no builder, no runtime), for the status tests."""

from __future__ import annotations

from harness import Server
from pagekit import server_db, set_stage


def set_build(server: Server, repo_id: str, status: str | None, *, stage: str | None = None, reason: str = "test",
              message: str = "", new: bool = False) -> None:
    """The newest build's status (``new``: a new build row), and the stage with it in one transaction."""
    from sqlalchemy import select

    from spaces.db.models import Build, Space

    db = server_db(server)
    try:
        with db.session() as s:
            space = s.scalar(select(Space).where(Space.key == repo_id.lower()))
            build = s.scalar(select(Build).where(Build.space_id == space.id).order_by(Build.id.desc()).limit(1))
            if new or build is None:
                build = Build(space_id=space.id, sha="1a2b3c4d" * 5)
                s.add(build)
            build.status = status
            if stage is not None:
                space.stage, space.stage_reason, space.stage_message = stage, reason, message
    finally:
        db.engine.dispose()


__all__ = ["set_build", "set_stage"]

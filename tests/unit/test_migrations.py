"""Upgrades: a database left by an earlier release, holding rows in every table, reaches this release's schema with
every row kept and readable through the models (SQLite, and PostgreSQL when the suite runs it)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session

from spaces.db.models import Account, Space, Token
from spaces.db.session import alembic_config

DATABASES = [d.strip() for d in os.environ.get("SPACES_TEST_DATABASES", "sqlite").split(",") if d.strip()]
REVISIONS = [r.revision for r in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()]
HEAD = REVISIONS[0]
OLDER = REVISIONS[1:]  # newest first; every earlier release's schema


@pytest.fixture(params=DATABASES)
def url(request, tmp_path: Path):  # noqa: ANN001, ANN201
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from harness import create_postgres_database

    database_url, drop = create_postgres_database("spaces_migrate")
    yield database_url
    drop()


def _value(column: sa.Column, n: int) -> object:
    t = column.type
    if isinstance(t, sa.DateTime):
        return dt.datetime(2026, 11, 1, 12, n, tzinfo=dt.timezone.utc)
    if isinstance(t, sa.Boolean):
        return n % 2 == 0
    if isinstance(t, sa.Integer):
        return n
    if isinstance(t, sa.JSON):
        return {"n": n}
    length = getattr(t, "length", None) or 40
    return f"{column.name[:4]}{n}".ljust(min(length, 8), "x")[:length]


def _fill(conn: sa.Connection) -> dict[str, int]:
    """One row per table, foreign keys pointing at the rows made before (tables in dependency order)."""
    meta = sa.MetaData()
    meta.reflect(conn)
    made: dict[str, dict] = {}
    for table in meta.sorted_tables:
        if table.name == "alembic_version":
            continue
        row = {c.name: _value(c, 1) for c in table.columns}
        for fk in table.foreign_keys:
            row[fk.parent.name] = made[fk.column.table.name][fk.column.name]
        conn.execute(table.insert().values(**row))
        made[table.name] = row
    return {name: 1 for name in made}


@pytest.mark.skipif(not OLDER, reason="only one schema revision exists: there is no earlier release to upgrade from")
@pytest.mark.parametrize("start", OLDER)
def test_an_earlier_release_database_upgrades_with_every_row(url: str, start: str) -> None:
    engine = sa.create_engine(url)
    try:
        cfg = alembic_config(url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, start)
            counts = _fill(conn)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == HEAD
            for table, n in counts.items():
                assert conn.execute(sa.text(f'SELECT COUNT(*) FROM "{table}"')).scalar() == n, table
        with Session(engine) as s:  # the models of this release read what the old one wrote
            assert len(s.scalars(sa.select(Account)).all()) == 1
            assert len(s.scalars(sa.select(Token)).all()) == 1
            space = s.scalars(sa.select(Space)).one()
            assert space.owner.id == s.scalars(sa.select(Account)).one().id
    finally:
        engine.dispose()


def test_0004_queues_the_old_releases_running_builds_and_allows_one_running_per_space(url: str) -> None:
    """The previous release re-queued running builds at its start; the shared queue waits for leases those rows
    lack, so the upgrade queues them, and from then on the database refuses a second running build of a Space."""
    engine = sa.create_engine(url)
    try:
        cfg = alembic_config(url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0003")
            _fill(conn)
            space_id = conn.execute(sa.text("SELECT id FROM spaces")).scalar()
            conn.execute(sa.text("DELETE FROM builds"))
            for status in ("running", "running", "built"):
                conn.execute(sa.text("INSERT INTO builds (space_id, sha, status, message, factory, created_at) "
                                     "VALUES (:s, 'abc', :st, '', false, CURRENT_TIMESTAMP)"),
                             {"s": space_id, "st": status})
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0004")
            rows = conn.execute(sa.text("SELECT status, attempts, worker FROM builds ORDER BY id")).all()
            assert [tuple(r) for r in rows] == [("queued", 0, None), ("queued", 0, None), ("built", 0, None)]
            conn.execute(sa.text("UPDATE builds SET status = 'running' WHERE id = (SELECT MIN(id) FROM builds)"))
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.text("UPDATE builds SET status = 'running' WHERE status = 'queued'"))
    finally:
        engine.dispose()

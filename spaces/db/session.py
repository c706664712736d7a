"""Engine factory and migrations. No module-level engine: the app factory makes one per Settings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("spaces.db")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            # WAL lets readers go on while a commit writes; foreign keys make ON DELETE CASCADE work.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # with WAL, NORMAL never corrupts and loses nothing when a process dies (only on power loss)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=20, max_overflow=40, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; safe to run at every start)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # several processes (the roles apart) may start at once: one migrates, the others wait and find it done
            conn.execute(text("select pg_advisory_xact_lock(7306014391285610317)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    """An engine plus a session factory; ``with db.session() as s:`` commits on success, rolls back on error."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction. Callables appended to ``s.info["after_commit"]`` run once it has committed: that is
        how a write nudges a worker (builder, reconciler) without the worker reading uncommitted state. Those in
        ``s.info["after_rollback"]`` run when it does not commit (an error in the block or in the commit itself):
        that is how a change outside the database (a git ref) is undone with it."""
        s = self._factory()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            _run_undo(s.info.pop("after_rollback", []))
            raise
        finally:
            s.close()
        s.info.pop("after_rollback", None)
        for callback in s.info.pop("after_commit", []):
            callback()


def _run_undo(callbacks: list) -> None:
    for callback in reversed(callbacks):  # undo in the reverse order of doing
        try:
            callback()
        except Exception:  # the original error is the one to report; this one goes to the log
            log.exception("undoing a change after a rollback failed")


def after_commit(s: Session, callback) -> None:  # noqa: ANN001
    """Run ``callback()`` after the session's transaction commits (see ``Database.session``)."""
    s.info.setdefault("after_commit", []).append(callback)


def after_rollback(s: Session, callback) -> None:  # noqa: ANN001
    """Run ``callback()`` if the session's transaction rolls back instead of committing (see ``Database.session``)."""
    s.info.setdefault("after_rollback", []).append(callback)

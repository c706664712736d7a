"""Shared fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spaces.db.session import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database of its own (test_logbus.py overrides it to run on PostgreSQL too)."""
    database = Database(f"sqlite:///{tmp_path / 'spaces.db'}")
    database.migrate()
    yield database
    database.engine.dispose()

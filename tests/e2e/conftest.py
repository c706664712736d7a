"""Fixtures shared by the end-to-end modules (the live ``server`` and actors come from tests/conftest.py)."""

from __future__ import annotations

import pytest
from harness import unique


@pytest.fixture
def make_repo():  # noqa: ANN201
    """``make_repo(alice, "model")`` creates a repository through the real client; gone after the test."""
    made = []

    def make(owner, kind: str, name: str | None = None, **kwargs: object) -> str:  # noqa: ANN001
        repo_id = f"{owner.name}/{name or unique(kind[:2])}"
        extra = {"space_sdk": "static"} if kind == "space" else {}
        owner.api.create_repo(repo_id, repo_type=kind, **extra, **kwargs)
        made.append((owner, kind, repo_id))
        return repo_id

    yield make
    for owner, kind, repo_id in made:
        try:
            owner.api.delete_repo(repo_id, repo_type=kind, missing_ok=True)
        except Exception:  # noqa: BLE001 - moved or made unreachable by the test
            pass

"""Helpers shared by the input and atomicity tests of tests/security (not a test module)."""

from __future__ import annotations

from pathlib import Path

import httpx

from e2e.helpers import current_sha

MiB = 1024 * 1024


def rss(server) -> int:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def git_tip(server, repo_id: str, token: str) -> str:
    """The tip of main as git holds it (refs are read from the repository, not from the database)."""
    r = httpx.get(f"{server.url}/api/spaces/{repo_id}/refs", headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    return next(b["targetCommit"] for b in r.json()["branches"] if b["name"] == "main")


def assert_agree(server, repo_id: str, token: str) -> str:
    sha = current_sha(server, repo_id, token)
    assert git_tip(server, repo_id, token) == sha, "git's main and the database's sha disagree"
    return sha

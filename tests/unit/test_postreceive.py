"""The post-receive hook (spaces.storage.postreceive) run as git runs it: a real repository, the ref updates on
stdin, what it prints is what the pusher reads as ``remote:`` lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {"SPACES_SPACE_URL": "http://hub/spaces/u/s", "SPACES_LOGS_URL": "http://hub/api/spaces/u/s/logs/build",
       "SPACES_APP_URL": "http://u-s.apps"}
ZERO = "0" * 40


def commit(repo: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def hook(repo: Path, stdin: str, env: dict[str, str] = ENV) -> str:
    res = subprocess.run([sys.executable, "-I", "-m", "spaces.storage.postreceive"], input=stdin, text=True,
                         capture_output=True, env={"PATH": os.environ["PATH"], "GIT_DIR": str(repo / ".git"), **env},
                         cwd=repo / ".git", timeout=30)
    assert res.returncode == 0 and not res.stderr, res.stderr
    return res.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    return tmp_path


def test_a_broken_readme_is_told_with_its_line_not_building(repo: Path) -> None:
    sha = commit(repo, {"README.md": "---\nsdk: gradio\ntags: [unclosed, list\npinned: false\n---\n",
                        "app.py": "print(1)\n"})
    out = hook(repo, f"{ZERO} {sha} refs/heads/main\n")
    assert f"spaces: received {sha[:7]} on main, but README.md must be fixed" in out and "CONFIG_ERROR" in out, out
    assert "line" in out and "building it now" not in out, out
    assert "http://hub/spaces/u/s" in out


def test_an_unknown_sdk_and_a_missing_app_file_are_told(repo: Path) -> None:
    sha = commit(repo, {"README.md": "---\nsdk: flask\n---\n"})
    assert "flask" in hook(repo, f"{ZERO} {sha} refs/heads/main\n")
    sha = commit(repo, {"README.md": "---\nsdk: gradio\n---\n"})
    out = hook(repo, f"{ZERO} {sha} refs/heads/main\n")
    assert "nothing to run yet (NO_APP_FILE)" in out and "app.py" in out, out


def test_a_good_push_is_building(repo: Path) -> None:
    sha = commit(repo, {"README.md": "---\nsdk: gradio\n---\n", "app.py": "print(1)\n"})
    out = hook(repo, f"{ZERO} {sha} refs/heads/main\n")
    assert out.splitlines() == [f"spaces: received {sha[:7]} on main; building it now.",
                                "spaces: follow the build at http://hub/spaces/u/s?tab=logs",
                                "spaces: or: curl -N http://hub/api/spaces/u/s/logs/build",
                                "spaces: the app will be at http://u-s.apps"]


def test_other_refs_deletions_and_other_repositories_say_nothing(repo: Path) -> None:
    sha = commit(repo, {"README.md": "---\nsdk: gradio\n---\n", "app.py": "print(1)\n"})
    assert hook(repo, f"{ZERO} {sha} refs/heads/dev\n{sha} {ZERO} refs/heads/old\n") == ""
    assert hook(repo, f"{ZERO} {sha} refs/heads/main\n", env={}) == ""  # a model or dataset repository

"""Helpers shared by the end-to-end tests: git with an isolated config, raw HF wire calls, assertions."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from harness import Server, wait_until

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
ERROR_STAGES = {"NO_APP_FILE", "CONFIG_ERROR", "BUILD_ERROR", "RUNTIME_ERROR"}

# -- git ---------------------------------------------------------------------------------------------------------

_GIT_HOME = tempfile.mkdtemp(prefix="spaces-test-git-home-")
_GITCONFIG = Path(_GIT_HOME) / ".gitconfig"
_GITCONFIG.write_text(
    "[user]\n\tname = E2E Tester\n\temail = e2e@example.invalid\n"
    "[init]\n\tdefaultBranch = main\n"
    "[credential]\n\thelper =\n"
    "[advice]\n\tdetachedHead = false\n"
)


def git_env(**extra: str) -> dict[str, str]:
    """Environment for git: no system/global config of the machine, never prompt, no askpass."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=_GIT_HOME,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(_GITCONFIG),
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="/bin/false",
        SSH_ASKPASS="/bin/false",
        LC_ALL="C",
    )
    env.pop("DISPLAY", None)
    env.update(extra)
    return env


def git(*args: str, cwd: Path | str | None = None, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["git", *args], cwd=cwd, env=git_env(), capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}")
    return res


def git_url(server: Server, repo_id: str, token: str | None = None, *, user: str = "user", suffix: str = "") -> str:
    auth = f"{quote(user, safe='')}:{quote(token, safe='')}@" if token else ""
    return f"http://{auth}{server.host}:{server.port}/spaces/{repo_id}{suffix}"


def clone(server: Server, repo_id: str, dest: Path, token: str | None = None, *, suffix: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
    return git("clone", git_url(server, repo_id, token, suffix=suffix), str(dest), check=check)


def head(repo: Path) -> str:
    return git("rev-parse", "HEAD", cwd=repo).stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    return head(repo)


def ls_remote_main(server: Server, repo_id: str, token: str | None) -> str | None:
    res = git("ls-remote", git_url(server, repo_id, token), "refs/heads/main", check=False)
    assert res.returncode == 0, res.stderr
    line = res.stdout.strip()
    return line.split()[0] if line else None


# -- content hashes ----------------------------------------------------------------------------------------------


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


# -- raw HF wire -------------------------------------------------------------------------------------------------


def ndjson(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def header_line(summary: str = "e2e commit", parent: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"summary": summary, "description": ""}
    if parent:
        value["parentCommit"] = parent
    return {"key": "header", "value": value}


def file_line(path: str, content: bytes) -> dict[str, Any]:
    return {"key": "file", "value": {"path": path, "encoding": "base64", "content": base64.b64encode(content).decode()}}


def post_commit(client: httpx.Client, repo_id: str, body: bytes, revision: str = "main") -> httpx.Response:
    return client.post(
        f"/api/spaces/{repo_id}/commit/{quote(revision, safe='')}",
        content=body,
        headers={"content-type": "application/x-ndjson"},
    )


def current_sha(server: Server, repo_id: str, token: str | None) -> str:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{server.url}/api/spaces/{repo_id}", headers=headers, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text)
    sha = r.json()["sha"]
    assert SHA_RE.match(sha), sha
    return sha


def runtime_json(server: Server, repo_id: str, token: str | None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{server.url}/api/spaces/{repo_id}/runtime", headers=headers, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def wait_stage(server: Server, repo_id: str, token: str | None, pred, *, timeout: float = 30, what: str = "stage") -> dict[str, Any]:
    """Poll ``/runtime`` until ``pred(stage)``; return the runtime JSON."""
    box: dict[str, Any] = {}

    def check() -> bool:
        box["rt"] = runtime_json(server, repo_id, token)
        return bool(pred(box["rt"].get("stage")))

    try:
        wait_until(check, timeout=timeout, interval=0.3, what=what)
    except TimeoutError as e:
        raise AssertionError(f"{what}: last runtime = {box.get('rt')!r}") from e
    return box["rt"]


def assert_error(resp: httpx.Response, status: int | tuple[int, ...], code: str | None = None) -> None:
    """An error the way the HF clients read it: status, ``X-Error-Code``, ``X-Error-Message``, JSON ``error``."""
    statuses = (status,) if isinstance(status, int) else status
    ctx = f"{resp.request.method} {resp.request.url} -> {resp.status_code} {dict(resp.headers)!r} {resp.text[:500]!r}"
    assert resp.status_code in statuses, ctx
    assert resp.headers.get("x-error-code"), f"missing X-Error-Code: {ctx}"
    if code is not None:
        assert resp.headers.get("x-error-code") == code, ctx
    assert resp.headers.get("x-error-message"), f"missing X-Error-Message: {ctx}"
    if resp.request.method != "HEAD":
        try:
            body = resp.json()
        except ValueError:
            raise AssertionError(f"error body is not JSON: {ctx}") from None
        assert isinstance(body, dict) and body.get("error"), ctx


def strings_in(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from strings_in(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from strings_in(v)


def mentions_line_number(runtime: dict[str, Any]) -> bool:
    return any(re.search(r"\bline\s*\d+", s, re.I) for s in strings_in(runtime))


README_APP = """---
title: E2E
emoji: 🧪
colorFrom: blue
colorTo: green
sdk: gradio
app_file: app.py
pinned: false
---

# E2E test Space
"""

APP_PY = 'import gradio as gr\n\ngr.Interface(lambda s: s[::-1], "text", "text").launch()\n'

# line 5 of the file (line 4 of the YAML block) has an unclosed flow sequence
README_BROKEN = """---
title: Broken
sdk: gradio
app_file: app.py
tags: [unclosed, list
pinned: false
---

broken front matter
"""


#: where each repo type lives on the hub (git remotes, resolve, pages)
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def remote(server, kind: str, repo_id: str, token: str | None = None) -> str:  # noqa: ANN001
    """A git remote for the repository (HTTP basic auth with ``token``, if given)."""
    auth = f"user:{token}@" if token else ""
    return f"http://{auth}{server.host}:{server.port}/{PREFIX[kind]}{repo_id}"

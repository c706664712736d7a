"""Symlinks that leave the repository, against a live server: refused at push (pre-receive, a `remote:` line naming
the path) and at commit time, with no ref moved; a build of a revision holding one fails with a message naming it,
never "The build crashed inside the platform". Links that stay inside the repository are kept. File names with a
control byte are refused at push as the API refuses them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from e2e.helpers import (
    assert_error, clone, commit_all, current_sha, file_line, git, git_url, header_line, ndjson, post_commit, wait_stage,
)

try:
    from security.input_helpers import assert_agree, git_tip
except ImportError:  # tests/security is not a package
    from input_helpers import assert_agree, git_tip

pytestmark = pytest.mark.timeout(240)

ESCAPING = {
    "absolute": ("evil", "/etc/passwd"),
    "relative": ("sub/up", "../../../../etc"),
    "through-a-link": ("chain", "a/b/root/.."),  # a/b/root -> ../.. is fine alone; this one climbs above it
}


def push(dest: Path, server, repo_id: str, token: str) -> subprocess.CompletedProcess[str]:
    return git("push", git_url(server, repo_id, token), "HEAD:main", cwd=dest, check=False)


@pytest.mark.parametrize("case", list(ESCAPING))
def test_push_of_a_link_leaving_the_repo_is_refused_naming_it(server, tmp_path, alice, make_space, case):
    repo_id = make_space(alice)
    before = assert_agree(server, repo_id, alice.token)
    dest = tmp_path / "c"
    clone(server, repo_id, dest, token=alice.token)
    path, target = ESCAPING[case]
    if case == "through-a-link":
        (dest / "a" / "b").mkdir(parents=True)
        os.symlink("../..", dest / "a" / "b" / "root")
    (dest / path).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, dest / path)
    commit_all(dest, "a link out")
    res = push(dest, server, repo_id, alice.token)
    assert res.returncode != 0, res.stderr
    assert "remote: spaces: push refused" in res.stderr and f"`{path}`" in res.stderr, res.stderr
    assert "pre-receive hook declined" in res.stderr, res.stderr
    assert assert_agree(server, repo_id, alice.token) == before


def test_links_inside_the_repo_are_kept(server, tmp_path, alice, make_space):
    repo_id = make_space(alice)
    dest = tmp_path / "c"
    clone(server, repo_id, dest, token=alice.token)
    (dest / "assets").mkdir()
    (dest / "assets" / "logo.txt").write_text("logo\n")
    os.symlink("../assets/logo.txt", dest / "assets" / "same.txt")
    os.symlink("assets", dest / "static")
    local = commit_all(dest, "links inside")
    res = push(dest, server, repo_id, alice.token)
    assert res.returncode == 0, res.stderr
    assert assert_agree(server, repo_id, alice.token) == local
    # an API commit on top keeps them and is accepted
    with alice.http() as client:
        r = post_commit(client, repo_id, ndjson(header_line("more"), file_line("notes.txt", b"hi\n")))
    assert r.status_code == 200, r.text


def plant_link(server, repo_id: str, token: str, tmp_path: Path) -> str:
    """A link leaving the repo, put into the bare repository behind the platform's back: a repo pushed to before
    the pre-receive check existed. Returns the new tip."""
    r = httpx.get(f"{server.url}/api/spaces/{repo_id}", headers={"authorization": f"Bearer {token}"}, timeout=30)
    bare = server.data_dir / "repos" / f"{r.json()['_id']}.git"
    assert bare.is_dir()
    work = tmp_path / "plant"
    git("clone", "-q", str(bare), str(work))
    (work / "app.py").write_text("print('hi')\n")
    os.symlink("/etc/passwd", work / "evil")
    sha = commit_all(work, "planted")
    git("push", "-q", "--no-verify", str(bare), "HEAD:main", cwd=work)
    return sha


def test_commit_on_a_tree_with_a_link_leaving_the_repo_is_refused(server, tmp_path, alice, make_space):
    repo_id = make_space(alice)
    planted = plant_link(server, repo_id, alice.token, tmp_path)
    with alice.http() as client:
        r = post_commit(client, repo_id, ndjson(header_line("on top"), file_line("x.txt", b"x\n")))
        assert_error(r, 400)
        assert "`evil`" in r.json()["error"] and "outside the repository" in r.json()["error"], r.text
        assert git_tip(server, repo_id, alice.token) == planted
        # removing the link in the same commit is what fixes it
        r = post_commit(client, repo_id, ndjson(header_line("fix"), {"key": "deletedFile", "value": {"path": "evil"}}))
        assert r.status_code == 200, r.text
    assert assert_agree(server, repo_id, alice.token) == r.json()["commitOid"]


def test_build_of_a_revision_with_a_link_leaving_the_repo_names_it(server, tmp_path, alice, make_space):
    repo_id = make_space(alice)
    plant_link(server, repo_id, alice.token, tmp_path)
    with alice.http() as client:
        r = client.post(f"/api/spaces/{repo_id}/restart", params={"factory": "true"})
        assert r.status_code == 200, r.text
    rt = wait_stage(server, repo_id, alice.token, lambda s: s == "BUILD_ERROR", timeout=60, what="BUILD_ERROR")
    assert "`evil`" in rt["errorMessage"] and "outside the repository" in rt["errorMessage"], rt
    assert "crashed inside the platform" not in rt["errorMessage"], rt
    assert current_sha(server, repo_id, alice.token) == git_tip(server, repo_id, alice.token)


def test_push_of_a_file_name_with_a_control_byte_is_refused(server, tmp_path, alice, make_space):
    repo_id = make_space(alice)
    before = assert_agree(server, repo_id, alice.token)
    dest = tmp_path / "c"
    clone(server, repo_id, dest, token=alice.token)
    (dest / "bad\nname.txt").write_text("x\n")
    commit_all(dest, "a newline in a name")
    res = push(dest, server, repo_id, alice.token)
    assert res.returncode != 0 and "control character" in res.stderr, res.stderr
    assert assert_agree(server, repo_id, alice.token) == before

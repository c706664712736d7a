"""The real ``git`` binary against the server's smart-HTTP endpoint: clone, push, auth, orgs, README config."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.helpers import (
    APP_PY,
    README_APP,
    README_BROKEN,
    SHA_RE,
    clone,
    commit_all,
    git,
    git_url,
    head,
    ls_remote_main,
    mentions_line_number,
    wait_stage,
)

pytestmark = pytest.mark.timeout(180)


def push(repo: Path, url: str, check: bool = False):
    return git("push", url, "HEAD:main", cwd=repo, check=check)


def test_anonymous_clone_of_public_space(server, tmp_path, alice, make_space):
    repo_id = make_space(alice)
    dest = tmp_path / "c"
    clone(server, repo_id, dest)
    assert (dest / "README.md").exists()
    assert (dest / ".gitattributes").exists()
    assert head(dest) == alice.api.space_info(repo_id).sha
    # the .git suffix form works too
    clone(server, repo_id, tmp_path / "c2", suffix=".git")
    assert head(tmp_path / "c2") == head(dest)


def test_private_space_clone_needs_the_token(server, tmp_path, alice, bob, make_space):
    repo_id = make_space(alice, private=True)
    anon_res = clone(server, repo_id, tmp_path / "anon", check=False)
    assert anon_res.returncode != 0
    assert not (tmp_path / "anon" / "README.md").exists()

    bob_res = clone(server, repo_id, tmp_path / "bob", token=bob.token, check=False)
    assert bob_res.returncode != 0
    assert not (tmp_path / "bob" / "README.md").exists()

    clone(server, repo_id, tmp_path / "alice", token=alice.token)
    assert (tmp_path / "alice" / "README.md").exists()
    assert head(tmp_path / "alice") == alice.api.space_info(repo_id).sha

    clone(server, repo_id, tmp_path / "alice-git", token=alice.token, suffix=".git")
    assert (tmp_path / "alice-git" / "README.md").exists()


def test_private_space_clone_with_credential_helper(server, tmp_path, alice, make_space):
    """What `hf auth login --add-to-git-credential` sets up: a stored credential for the hub host."""
    repo_id = make_space(alice, private=True)
    store = tmp_path / "git-credentials"
    store.write_text(f"http://hf_user:{alice.token}@{server.host}:{server.port}\n")
    dest = tmp_path / "c"
    git("-c", f"credential.helper=store --file={store}", "clone", git_url(server, repo_id), str(dest))
    assert (dest / "README.md").exists()


def test_push_with_write_token_updates_the_space(server, tmp_path, alice, make_space):
    repo_id = make_space(alice)
    dest = tmp_path / "c"
    clone(server, repo_id, dest, token=alice.token)
    assert alice.api.get_space_runtime(repo_id).stage == "NO_APP_FILE"
    (dest / "app.py").write_text(APP_PY)
    (dest / "README.md").write_text(README_APP)
    (dest / "pkg").mkdir()
    (dest / "pkg" / "util.py").write_text("X = 1\n")
    local = commit_all(dest, "Add app")
    res = push(dest, git_url(server, repo_id, alice.token))
    assert res.returncode == 0, res.stderr

    info = alice.api.space_info(repo_id)
    assert info.sha == local
    assert SHA_RE.match(info.sha)
    assert {"app.py", "README.md", "pkg/util.py", ".gitattributes"} <= set(
        alice.api.list_repo_files(repo_id, repo_type="space")
    )
    assert info.card_data.get("title") == "E2E"
    assert info.card_data.get("app_file") == "app.py"
    commits = alice.api.list_repo_commits(repo_id, repo_type="space")
    assert commits[0].commit_id == local and commits[0].title == "Add app"
    wait_stage(server, repo_id, alice.token, lambda s: s not in ("NO_APP_FILE", "CONFIG_ERROR"),
               what="stage to leave NO_APP_FILE after pushing app.py")

    # a second push on top, then an API commit on top of that: both directions stay consistent
    (dest / "pkg" / "util.py").write_text("X = 2\n")
    second = commit_all(dest, "bump")
    assert push(dest, git_url(server, repo_id, alice.token)).returncode == 0
    assert alice.api.space_info(repo_id).sha == second
    api_commit = alice.api.upload_file(path_or_fileobj=b"z", path_in_repo="z.txt", repo_id=repo_id, repo_type="space")
    git("pull", "-q", "--ff-only", git_url(server, repo_id, alice.token), "main", cwd=dest)
    assert head(dest) == api_commit.oid
    assert (dest / "z.txt").read_bytes() == b"z"


def test_push_rejections_leave_the_ref_unchanged(server, tmp_path, alice, alice_read, bob, make_space):
    repo_id = make_space(alice)
    before = alice.api.space_info(repo_id).sha
    dest = tmp_path / "c"
    clone(server, repo_id, dest)
    (dest / "evil.txt").write_text("nope\n")
    commit_all(dest, "should not land")

    read_res = push(dest, git_url(server, repo_id, alice_read.token))
    assert read_res.returncode != 0, "a read token must not push"

    bob_res = push(dest, git_url(server, repo_id, bob.token))
    assert bob_res.returncode != 0, "another user's token must not push"

    anon_res = push(dest, git_url(server, repo_id))
    assert anon_res.returncode != 0
    # git only asks for a username after a 401 challenge; prompting is disabled, so it says so
    assert "terminal prompts disabled" in anon_res.stderr or "could not read Username" in anon_res.stderr, anon_res.stderr

    assert ls_remote_main(server, repo_id, None) == before
    assert alice.api.space_info(repo_id).sha == before
    assert "evil.txt" not in alice.api.list_repo_files(repo_id, repo_type="space")


def test_org_members_push_to_org_spaces(server, tmp_path, alice, bob, carol, make_org, make_space):
    org = make_org("alice", "carol")
    repo_id = make_space(alice, namespace=org)
    assert alice.api.space_info(repo_id).author == org

    dest = tmp_path / "c"
    clone(server, repo_id, dest)
    (dest / "by-carol.txt").write_text("hi\n")
    sha = commit_all(dest, "carol was here")
    assert push(dest, git_url(server, repo_id, carol.token)).returncode == 0
    assert alice.api.space_info(repo_id).sha == sha

    (dest / "by-bob.txt").write_text("hi\n")
    commit_all(dest, "bob was here")
    res = push(dest, git_url(server, repo_id, bob.token))
    assert res.returncode != 0, "a non-member must not push to an org Space"
    assert alice.api.space_info(repo_id).sha == sha

    # a private org Space: members clone, others do not
    private_id = make_space(carol, namespace=org, private=True)
    clone(server, private_id, tmp_path / "alice-priv", token=alice.token)
    assert (tmp_path / "alice-priv" / "README.md").exists()
    assert clone(server, private_id, tmp_path / "bob-priv", token=bob.token, check=False).returncode != 0


def test_push_with_broken_readme_yaml_is_a_config_error(server, tmp_path, alice, make_space):
    repo_id = make_space(alice)
    dest = tmp_path / "c"
    clone(server, repo_id, dest, token=alice.token)
    (dest / "app.py").write_text(APP_PY)
    (dest / "README.md").write_text(README_BROKEN)
    local = commit_all(dest, "broken yaml")
    res = push(dest, git_url(server, repo_id, alice.token))
    assert res.returncode == 0, f"a push with a bad README still lands (HF shows a config error): {res.stderr}"
    assert alice.api.space_info(repo_id).sha == local
    # the pusher reads why at once, in remote: lines, with the line of the README at fault
    remote = [ln for ln in res.stderr.splitlines() if ln.startswith("remote: spaces:")]
    assert any(local[:7] in ln and "README.md must be fixed" in ln and "CONFIG_ERROR" in ln for ln in remote), remote
    assert any("line" in ln for ln in remote) and not any("building it now" in ln for ln in remote), remote

    rt = wait_stage(server, repo_id, alice.token, lambda s: s == "CONFIG_ERROR", what="CONFIG_ERROR stage")
    assert mentions_line_number(rt), f"the config error must name the line: {rt!r}"

    # fixing the README leaves the error stage
    (dest / "README.md").write_text(README_APP)
    fixed = commit_all(dest, "fix yaml")
    res = push(dest, git_url(server, repo_id, alice.token))
    assert res.returncode == 0
    assert f"remote: spaces: received {fixed[:7]} on main; building it now." in res.stderr, res.stderr
    wait_stage(server, repo_id, alice.token, lambda s: s not in ("CONFIG_ERROR", "NO_APP_FILE"),
               what="stage to leave CONFIG_ERROR after fixing README")

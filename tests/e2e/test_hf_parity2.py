"""Issue 23, second part, through the real ``huggingface_hub`` 2.4.0 and its ``hf`` CLI against a live server:
renaming and moving a Space (``move_repo``), ``super_squash_history``, and likes (``list_liked_repos``,
``list_repo_likers``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from e2e.helpers import clone, head
from harness import unique, wait_until
from huggingface_hub import HfApi
from huggingface_hub.errors import (
    BadRequestError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

pytestmark = pytest.mark.timeout(180)

INDEX = b"<!doctype html><title>moved</title><p>the app of a Space that moves</p>\n"


def hf(actor, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    """The ``hf`` CLI as a user runs it; the suite turns implicit tokens off, so ``--token`` says it."""
    exe = Path(sys.executable).with_name("hf")
    env = {**os.environ, "HF_ENDPOINT": actor.server.url, "NO_COLOR": "1"}
    return subprocess.run([str(exe), *args, "--token", actor.token], env=env, capture_output=True, text=True,
                          timeout=90)


def app_get(server, subdomain: str) -> httpx.Response:  # noqa: ANN001
    """GET / of the app on ``subdomain`` through the proxy (the server's only listener)."""
    host = server.app_origin(subdomain).split("://", 1)[1]
    return httpx.get(f"{server.url}/", headers={"host": host}, timeout=10)


def like(actor, repo_id: str, on: bool = True) -> None:  # noqa: ANN001
    """Like a Space as the web page does (huggingface_hub 2.x has no ``like`` any more)."""
    r = httpx.request("POST" if on else "DELETE", f"{actor.server.url}/api/spaces/{repo_id}/like",
                      headers={"authorization": f"Bearer {actor.token}"}, timeout=10)
    r.raise_for_status()


def builds_of(server, repo_id: str) -> list[str]:  # noqa: ANN001
    """The commits the server queued builds for, read from its database (no API lists builds)."""
    import sqlalchemy as sa

    url = server.env.get("SPACES_DATABASE_URL") or f"sqlite:///{server.data_dir / 'spaces.db'}"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT b.sha FROM builds b JOIN spaces p ON p.id = b.space_id "
                                             "WHERE p.key = :k ORDER BY b.id"), {"k": repo_id.lower()}).scalars())
    finally:
        engine.dispose()


def state(api: HfApi, repo_id: str) -> tuple:
    """What a refused move must not change."""
    info = api.space_info(repo_id)
    commits = [c.commit_id for c in api.list_repo_commits(repo_id, repo_type="space")]
    return info.id, info.subdomain, info.sha, commits


# ---------------------------------------------------------------------------------------------------------------
# 1. rename / move


def test_move_keeps_everything_and_the_app_follows_the_name(server, alice, bob, make_org, make_space, tmp_path):
    org = make_org("alice")
    repo_id = make_space(alice, sdk="static", space_secrets=[{"key": "TOKEN", "value": "s3cret"}],
                         space_variables=[{"key": "MODE", "value": "demo"}])
    alice.api.upload_file(path_or_fileobj=INDEX, path_in_repo="index.html", repo_id=repo_id, repo_type="space")
    like(bob, repo_id)
    disc = bob.api.create_discussion(repo_id, "hello", description="nice one", repo_type="space")
    before = alice.api.space_info(repo_id)
    commits = [c.commit_id for c in alice.api.list_repo_commits(repo_id, repo_type="space")]
    wait_until(lambda: alice.api.get_space_runtime(repo_id).stage == "RUNNING", timeout=120, what="running")
    wait_until(lambda: app_get(server, before.subdomain).content == INDEX, timeout=30, what="the app")

    # rename within alice's namespace, then move into her org
    renamed = f"alice/{unique('renamed')}"
    alice.api.move_repo(repo_id, renamed, repo_type="space")
    moved = f"{org}/{unique('moved')}"
    alice.api.move_repo(renamed, moved, repo_type="space")

    info = alice.api.space_info(moved)
    assert info.id == moved and info.author == org
    assert info.sha == before.sha and info.likes == 1
    assert [c.commit_id for c in alice.api.list_repo_commits(moved, repo_type="space")] == commits
    assert set(alice.api.get_space_secrets(moved)) == {"TOKEN"}
    assert alice.api.get_space_variables(moved)["MODE"].value == "demo"
    assert [d.title for d in alice.api.get_repo_discussions(moved, repo_type="space")] == ["hello"]
    assert moved in bob.api.list_liked_repos("bob").spaces
    assert [u.username for u in alice.api.list_repo_likers(moved, repo_type="space")] == ["bob"]
    assert alice.api.get_discussion_details(moved, disc.num, repo_type="space").events[0].content == "nice one"
    # git clones the new name with the same history; the old names are gone: the Space, its files, git
    clone(server, moved, tmp_path / "new", alice.token)
    assert head(tmp_path / "new") == before.sha
    for i, old in enumerate((repo_id, renamed)):
        assert clone(server, old, tmp_path / f"old{i}", alice.token, check=False).returncode != 0
        assert not alice.api.repo_exists(old, repo_type="space")
        with pytest.raises(RepositoryNotFoundError):
            alice.api.hf_hub_download(old, "index.html", repo_type="space")
    # the app answers on the new subdomain, and only there
    assert info.subdomain != before.subdomain and info.subdomain.startswith(org.lower())
    wait_until(lambda: app_get(server, info.subdomain).content == INDEX, timeout=60, what="the app at its new URL")
    assert app_get(server, before.subdomain).status_code == 404
    assert (info.host or "").rstrip("/") == server.app_origin(info.subdomain)

    # the old name is free again
    alice.api.create_repo(repo_id, repo_type="space", space_sdk="static")
    assert alice.api.space_info(repo_id).sha != before.sha
    for rid in (repo_id, moved):
        alice.api.delete_repo(rid, repo_type="space")


def test_refused_moves_change_nothing(alice, bob, carol, make_org, make_space):
    repo_id = make_space(alice)
    taken = make_space(alice)
    bob_org = make_org("bob")
    before = state(alice.api, repo_id)
    # name clash: 409
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.move_repo(repo_id, taken, repo_type="space")
    assert exc.value.response.status_code == 409
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.move_repo(repo_id, taken.upper(), repo_type="space")
    assert exc.value.response.status_code == 409
    # a namespace alice cannot write, or that does not exist: 403
    for target in (f"{bob_org}/x-{unique('n')}", f"bob/{unique('n')}", f"{unique('nobody')}/x"):
        with pytest.raises(HfHubHTTPError) as exc:
            alice.api.move_repo(repo_id, target, repo_type="space")
        assert exc.value.response.status_code == 403, target
    # someone else's Space: bob cannot take it
    with pytest.raises(HfHubHTTPError) as exc:
        bob.api.move_repo(repo_id, f"bob/{unique('stolen')}", repo_type="space")
    assert exc.value.response.status_code in (403, 404)
    # a bad name: 400, and the same name
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.move_repo(repo_id, "alice/bad--name", repo_type="space")
    assert exc.value.response.status_code == 400
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.move_repo(repo_id, repo_id, repo_type="space")
    assert exc.value.response.status_code == 400
    # a model of the same name is not the Space
    with pytest.raises(RepositoryNotFoundError):
        alice.api.move_repo(repo_id, f"alice/{unique('m')}")
    assert state(alice.api, repo_id) == before
    assert alice.api.repo_exists(taken, repo_type="space")


def test_case_only_rename_keeps_the_subdomain_and_the_hf_cli_moves(alice, make_space):
    name = unique("case")
    repo_id = make_space(alice, name)
    sub = alice.api.space_info(repo_id).subdomain
    upper = f"alice/{name.upper()}"
    alice.api.move_repo(repo_id, upper, repo_type="space")
    info = alice.api.space_info(upper)
    assert info.id == upper and info.subdomain == sub

    target = f"alice/{unique('cli')}"
    res = hf(alice, "repos", "move", upper, target, "--repo-type", "space")
    assert res.returncode == 0, res.stdout + res.stderr
    assert alice.api.space_info(target).id == target
    assert not alice.api.repo_exists(upper, repo_type="space")
    alice.api.delete_repo(target, repo_type="space")


def test_two_moves_to_one_name_at_once_one_wins_the_other_is_409(alice, make_space):
    import concurrent.futures

    sources = [make_space(alice, sdk="static") for _ in range(4)]
    target = f"alice/{unique('race')}"

    def move(src: str) -> int:
        try:
            alice.api.move_repo(src, target, repo_type="space")
            return 200
        except HfHubHTTPError as exc:
            return exc.response.status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(move, sources))
    assert codes == [200, 409, 409, 409]
    assert sum(alice.api.repo_exists(s, repo_type="space") for s in sources) == 3
    alice.api.delete_repo(target, repo_type="space")



def test_creates_of_one_name_at_once_one_wins_the_others_are_409(alice):
    import concurrent.futures

    target = f"alice/{unique('race')}"

    def create(_: int) -> int:
        try:
            alice.api.create_repo(target, repo_type="space", space_sdk="static")
            return 200
        except HfHubHTTPError as exc:
            return exc.response.status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(create, range(6)))
    assert codes == [200, 409, 409, 409, 409, 409], codes  # a unique-name race was a 500
    alice.api.create_repo(target, repo_type="space", space_sdk="static", exist_ok=True)
    alice.api.delete_repo(target, repo_type="space")

# ---------------------------------------------------------------------------------------------------------------
# 2. super_squash_history


def test_super_squash_keeps_the_tree_and_the_running_app(server, alice, make_space):
    repo_id = make_space(alice, sdk="static")
    for i in range(3):
        alice.api.upload_file(path_or_fileobj=b"data %d\n" % i, path_in_repo=f"data/{i}.txt", repo_id=repo_id,
                              repo_type="space")
    alice.api.upload_file(path_or_fileobj=INDEX, path_in_repo="index.html", repo_id=repo_id, repo_type="space")
    old = alice.api.list_repo_commits(repo_id, repo_type="space")
    alice.api.create_tag(repo_id, tag="v1", repo_type="space")
    alice.api.create_branch(repo_id, branch="dev", repo_type="space")
    files = sorted(alice.api.list_repo_files(repo_id, repo_type="space"))
    wait_until(lambda: alice.api.get_space_runtime(repo_id).stage == "RUNNING", timeout=120, what="running")
    sub = alice.api.space_info(repo_id).subdomain
    wait_until(lambda: app_get(server, sub).content == INDEX, timeout=30, what="the app")

    built = builds_of(server, repo_id)
    alice.api.super_squash_history(repo_id, repo_type="space", commit_message="one commit for all")

    new = alice.api.list_repo_commits(repo_id, repo_type="space")
    assert [c.title for c in new] == ["one commit for all"] and new[0].commit_id != old[0].commit_id
    assert sorted(alice.api.list_repo_files(repo_id, repo_type="space")) == files
    assert alice.api.hf_hub_download(repo_id, "data/1.txt", repo_type="space", revision=new[0].commit_id,
                                     local_dir=None) is not None
    # not rebuilt: the same tree is already built and running
    assert builds_of(server, repo_id) == built
    runtime = alice.api.get_space_runtime(repo_id)
    assert runtime.stage == "RUNNING" and runtime.raw["sha"] == new[0].commit_id
    assert app_get(server, sub).content == INDEX
    # tags and other branches keep the old history
    refs = alice.api.list_repo_refs(repo_id, repo_type="space")
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": old[0].commit_id}
    assert {b.name: b.target_commit for b in refs.branches}["dev"] == old[0].commit_id
    assert len(alice.api.list_repo_commits(repo_id, repo_type="space", revision="dev")) == len(old)
    # a later commit builds and serves as usual
    alice.api.upload_file(path_or_fileobj=INDEX + b"<p>v2</p>\n", path_in_repo="index.html", repo_id=repo_id,
                          repo_type="space")
    wait_until(lambda: app_get(server, sub).content.endswith(b"v2</p>\n"), timeout=120, what="the new app")
    assert len(alice.api.list_repo_commits(repo_id, repo_type="space")) == 2


def test_super_squash_of_another_branch_with_the_default_message_and_refusals(alice, bob, make_space):
    repo_id = make_space(alice)
    alice.api.create_branch(repo_id, branch="feature/x", repo_type="space")
    for i in range(2):
        alice.api.upload_file(path_or_fileobj=b"%d" % i, path_in_repo="f.txt", repo_id=repo_id, repo_type="space",
                              revision="feature/x")
    main_before = alice.api.list_repo_commits(repo_id, repo_type="space")
    alice.api.super_squash_history(repo_id, branch="feature/x", repo_type="space")
    squashed = alice.api.list_repo_commits(repo_id, repo_type="space", revision="feature/x")
    assert [c.title for c in squashed] == ["Super-squash branch 'feature/x' using huggingface_hub"]
    assert alice.api.list_repo_commits(repo_id, repo_type="space") == main_before

    alice.api.create_tag(repo_id, tag="v1", repo_type="space")
    with pytest.raises(BadRequestError):
        alice.api.super_squash_history(repo_id, branch="v1", repo_type="space")
    with pytest.raises(RevisionNotFoundError):
        alice.api.super_squash_history(repo_id, branch="nope", repo_type="space")
    with pytest.raises(HfHubHTTPError) as exc:
        bob.api.super_squash_history(repo_id, repo_type="space")
    assert exc.value.response.status_code in (403, 404)
    with pytest.raises(RepositoryNotFoundError):
        alice.api.super_squash_history(repo_id)  # a model of the same name
    assert alice.api.list_repo_commits(repo_id, repo_type="space") == main_before


def test_a_pull_request_opened_before_a_squash_cannot_be_merged_and_says_why(alice, bob, make_space):
    """The Hub warns that squashed history cannot be merged back; a pull request on the old history is refused
    clearly at merge time (the squash itself is not refused: the Hub does not refuse it either)."""
    repo_id = make_space(alice)
    pr = bob.api.upload_file(path_or_fileobj=b"from bob\n", path_in_repo="bob.txt", repo_id=repo_id,
                             repo_type="space", create_pr=True)
    num = int(pr.pr_num)
    alice.api.upload_file(path_or_fileobj=b"second\n", path_in_repo="second.txt", repo_id=repo_id,
                          repo_type="space")
    alice.api.super_squash_history(repo_id, repo_type="space")
    tip = alice.api.space_info(repo_id).sha
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.merge_pull_request(repo_id, num, repo_type="space")
    assert exc.value.response.status_code == 409, exc.value
    assert "squash" in str(exc.value).lower() or "unrelated" in str(exc.value).lower()
    assert alice.api.space_info(repo_id).sha == tip
    details = alice.api.get_discussion_details(repo_id, num, repo_type="space")
    assert details.status == "open" and "bob.txt" in details.conflicting_files


# ---------------------------------------------------------------------------------------------------------------
# 3. likes


def test_liked_repos_and_likers_never_leak_private_spaces(alice, bob, carol, anon, make_org, make_space):
    org = make_org("alice", "carol")
    public = make_space(alice)
    later_private = make_space(alice)
    org_private = make_space(alice, namespace=org, private=True)
    bobs = make_space(bob)
    for actor, repo_id in [(bob, public), (bob, bobs), (carol, public), (carol, later_private),
                           (carol, org_private), (bob, later_private)]:
        like(actor, repo_id)

    assert {u.username for u in anon.api.list_repo_likers(public, repo_type="space")} == {"bob", "carol"}
    assert [u.username for u in alice.api.list_repo_likers(org_private, repo_type="space")] == ["carol"]
    for outsider in (anon, bob):
        with pytest.raises(RepositoryNotFoundError):
            list(outsider.api.list_repo_likers(org_private, repo_type="space"))
    carol_likes = carol.api.list_liked_repos("carol")
    assert set(carol_likes.spaces) == {public, later_private, org_private} and carol_likes.total == 3
    assert carol_likes.models == [] and carol_likes.datasets == []
    # what carol liked, seen by others: only what they may read themselves
    assert set(anon.api.list_liked_repos("carol").spaces) == {public, later_private}
    assert set(bob.api.list_liked_repos("carol").spaces) == {public, later_private}

    alice.api.update_repo_settings(later_private, private=True, repo_type="space")
    assert set(anon.api.list_liked_repos("carol").spaces) == {public}
    assert set(bob.api.list_liked_repos("bob").spaces) == {public, bobs}  # bob liked it, but may not see it now
    with pytest.raises(RepositoryNotFoundError):
        list(bob.api.list_repo_likers(later_private, repo_type="space"))
    assert set(alice.api.list_liked_repos("carol").spaces) == {public, later_private, org_private}
    assert set(alice.api.list_liked_repos("bob").spaces) == {public, bobs, later_private}

    # unliking removes it; the newest like comes first
    like(carol, org_private, on=False)
    assert alice.api.list_liked_repos("carol").spaces == [later_private, public]
    assert carol.api.list_liked_repos("carol").spaces == [public]  # she may not see later_private any more
    with pytest.raises(HfHubHTTPError) as exc:
        anon.api.list_liked_repos(unique("nobody"))
    assert exc.value.response.status_code == 404
    with pytest.raises(HfHubHTTPError) as exc:
        anon.api.list_liked_repos(org)  # an organization likes nothing
    assert exc.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        list(alice.api.list_repo_likers(public))  # a model of the same name

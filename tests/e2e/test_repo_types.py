"""Model and dataset repositories beside the Spaces (issue 23), through the real ``huggingface_hub`` 2.4.0, its
``hf`` CLI and real git against a live server: create, commit (branches too), list, info, tree, paths-info,
downloads, visibility, move, delete, refs, pull requests, git clone and push, ``hf repos list``; and first of all
that no call for one type ever acts on another type's repository of the same name (the data-loss bug class)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from e2e.helpers import PREFIX, commit_all, git, remote
from harness import unique
from huggingface_hub import CommitOperationAdd, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

pytestmark = pytest.mark.timeout(180)

KINDS = ("model", "dataset")


def hf(actor, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    exe = Path(sys.executable).with_name("hf")
    env = {**os.environ, "HF_ENDPOINT": actor.server.url, "NO_COLOR": "1"}
    res = subprocess.run([str(exe), *args, "--token", actor.token], env=env, capture_output=True, text=True,
                         timeout=90)
    if check:
        assert res.returncode == 0, res.stdout + res.stderr
    return res


# ---------------------------------------------------------------------------------------------------------------
# 1. one type never reaches another


def _wrong_type_calls(api, repo_id: str, kind: str) -> dict:  # noqa: ANN001
    """Every client call that names a repository and a type, for ``repo_id`` as a ``kind``."""
    add = [CommitOperationAdd("x.txt", b"x")]
    return {
        "repo_info": lambda: api.repo_info(repo_id, repo_type=kind),
        "list_repo_files": lambda: api.list_repo_files(repo_id, repo_type=kind),
        "list_repo_commits": lambda: api.list_repo_commits(repo_id, repo_type=kind),
        "list_repo_refs": lambda: api.list_repo_refs(repo_id, repo_type=kind),
        "get_paths_info": lambda: api.get_paths_info(repo_id, ["README.md"], repo_type=kind),
        "download": lambda: api.hf_hub_download(repo_id, "README.md", repo_type=kind),
        "create_commit": lambda: api.create_commit(repo_id, add, commit_message="x", repo_type=kind),
        "create_pr": lambda: api.create_commit(repo_id, add, commit_message="x", repo_type=kind, create_pr=True),
        "create_branch": lambda: api.create_branch(repo_id, branch="b", repo_type=kind),
        "delete_branch": lambda: api.delete_branch(repo_id, branch="main", repo_type=kind),
        "create_tag": lambda: api.create_tag(repo_id, tag="v1", repo_type=kind),
        "super_squash": lambda: api.super_squash_history(repo_id, repo_type=kind),
        "create_discussion": lambda: api.create_discussion(repo_id, "hi", repo_type=kind),
        "discussions": lambda: list(api.get_repo_discussions(repo_id, repo_type=kind)),
        "settings": lambda: api.update_repo_settings(repo_id, private=True, repo_type=kind),
        "move": lambda: api.move_repo(repo_id, repo_id + "-moved", repo_type=kind),
        "delete": lambda: api.delete_repo(repo_id, repo_type=kind),
        "auth_check": lambda: api.auth_check(repo_id, repo_type=kind),
    }


@pytest.mark.parametrize("real", ["space", "model", "dataset"])
def test_a_call_for_another_type_never_acts_on_the_repo(server, alice, make_repo, real):  # noqa: ANN001
    repo_id = make_repo(alice, real)
    alice.api.upload_file(path_or_fileobj=b"# card\n", path_in_repo="README.md", repo_id=repo_id, repo_type=real)
    before = (alice.api.repo_info(repo_id, repo_type=real).sha,
              alice.api.list_repo_refs(repo_id, repo_type=real))
    for wrong in {"space", "model", "dataset"} - {real}:
        assert not alice.api.repo_exists(repo_id, repo_type=wrong)
        assert not alice.api.file_exists(repo_id, "README.md", repo_type=wrong)
        for what, call in _wrong_type_calls(alice.api, repo_id, wrong).items():
            with pytest.raises(RepositoryNotFoundError):
                call()
                pytest.fail(f"{what} as a {wrong} answered for the {real} {repo_id}")
    info = alice.api.repo_info(repo_id, repo_type=real)
    assert (info.sha, alice.api.list_repo_refs(repo_id, repo_type=real)) == before
    assert info.private is False
    assert not list(alice.api.get_repo_discussions(repo_id, repo_type=real))


def test_a_model_a_dataset_and_a_space_share_one_name(server, alice, make_repo, tmp_path):  # noqa: ANN001
    name = unique("same")
    repo_id = f"alice/{name}"
    for kind in ("space", "model", "dataset"):
        make_repo(alice, kind, name)
        alice.api.upload_file(path_or_fileobj=f"I am the {kind}\n".encode(), path_in_repo="who.txt",
                              repo_id=repo_id, repo_type=kind)
    for kind in ("space", "model", "dataset"):
        path = alice.api.hf_hub_download(repo_id, "who.txt", repo_type=kind, cache_dir=tmp_path / kind)
        assert Path(path).read_text() == f"I am the {kind}\n"
    alice.api.delete_repo(repo_id)  # the model: no repo_type means "model"
    assert not alice.api.repo_exists(repo_id)
    assert alice.api.repo_exists(repo_id, repo_type="space")
    assert alice.api.repo_exists(repo_id, repo_type="dataset")
    alice.api.update_repo_settings(repo_id, private=True, repo_type="dataset")
    assert alice.api.space_info(repo_id).private is False
    hf(alice, "repos", "delete", repo_id, "--yes", "--type", "dataset")
    assert not alice.api.repo_exists(repo_id, repo_type="dataset")
    assert alice.api.repo_exists(repo_id, repo_type="space")


# ---------------------------------------------------------------------------------------------------------------
# 2. the life of a model or dataset through huggingface_hub

CARD = """---
license: apache-2.0
tags: [tiny, test]
library_name: transformers
pipeline_tag: text-classification
---
# A tiny repo
"""


@pytest.mark.parametrize("kind", KINDS)
def test_create_commit_read_and_download(server, alice, bob, anon, make_repo, kind, tmp_path):  # noqa: ANN001
    repo_id = make_repo(alice, kind)
    url = alice.api.create_repo(repo_id, repo_type=kind, exist_ok=True)
    assert url.repo_id == repo_id and url.repo_type == kind
    assert str(url) == f"{server.url}/{PREFIX[kind]}{repo_id}"
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.create_repo(repo_id, repo_type=kind)
    assert exc.value.response.status_code == 409
    alice.api.upload_file(path_or_fileobj=CARD.encode(), path_in_repo="README.md", repo_id=repo_id, repo_type=kind)
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden": 4}')
    (folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    commit = alice.api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type=kind)
    assert commit.commit_url.startswith(f"{server.url}/{PREFIX[kind]}{repo_id}/commit/")

    info = alice.api.repo_info(repo_id, repo_type=kind, files_metadata=True)
    assert info.id == repo_id and info.sha == commit.oid and info.private is False
    assert sorted(s.rfilename for s in info.siblings) == [".gitattributes", "README.md", "config.json",
                                                          "sub/weights.bin"]
    assert {s.rfilename: s.size for s in info.siblings}["sub/weights.bin"] == 256 * 64
    assert info.card_data.license == "apache-2.0"
    assert "tiny" in info.tags
    if kind == "model":
        assert (info.library_name, info.pipeline_tag) == ("transformers", "text-classification")
        assert alice.api.model_info(repo_id).id == repo_id
    else:
        assert alice.api.dataset_info(repo_id).id == repo_id

    lister = alice.api.list_models if kind == "model" else alice.api.list_datasets
    assert [m.id for m in lister(author="alice", search=repo_id.split("/")[1])] == [repo_id]
    assert repo_id in [m.id for m in lister(author="alice")]
    assert not list(lister(author="bob", search=repo_id.split("/")[1]))
    assert sorted(alice.api.list_repo_files(repo_id, repo_type=kind)) == [".gitattributes", "README.md",
                                                                         "config.json", "sub/weights.bin"]
    tree = {e.path for e in alice.api.list_repo_tree(repo_id, path_in_repo="sub", repo_type=kind)}
    assert tree == {"sub/weights.bin"}
    [paths] = alice.api.get_paths_info(repo_id, ["config.json", "nope.txt"], repo_type=kind)
    assert (paths.path, paths.size) == ("config.json", 13)
    assert alice.api.file_exists(repo_id, "sub/weights.bin", repo_type=kind)
    assert not alice.api.file_exists(repo_id, "sub/nope.bin", repo_type=kind)
    assert alice.api.revision_exists(repo_id, "main", repo_type=kind)
    assert not alice.api.revision_exists(repo_id, "nope", repo_type=kind)

    # module-level functions read HF_ENDPOINT, as a Space's code does: here the endpoint is passed explicitly
    got = hf_hub_download(repo_id, "sub/weights.bin", repo_type=kind, endpoint=server.url, token=alice.token,
                          cache_dir=tmp_path / "cache")
    assert Path(got).read_bytes() == bytes(range(256)) * 64
    snap = Path(snapshot_download(repo_id, repo_type=kind, endpoint=server.url, token=False,
                                  cache_dir=tmp_path / "snap"))
    assert (snap / "config.json").read_text() == '{"hidden": 4}'
    with pytest.raises(EntryNotFoundError):
        alice.api.hf_hub_download(repo_id, "missing.txt", repo_type=kind, cache_dir=tmp_path / "c2")
    with pytest.raises(RevisionNotFoundError):
        alice.api.hf_hub_download(repo_id, "config.json", revision="nope", repo_type=kind,
                                  cache_dir=tmp_path / "c3")

    # bob may read, not write; a commit on a branch leaves main alone
    with pytest.raises(HfHubHTTPError) as exc:
        bob.api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=repo_id, repo_type=kind)
    assert exc.value.response.status_code == 403
    alice.api.create_branch(repo_id, branch="dev", repo_type=kind)
    alice.api.upload_file(path_or_fileobj=b"dev only", path_in_repo="dev.txt", repo_id=repo_id, repo_type=kind,
                          revision="dev")
    assert not alice.api.file_exists(repo_id, "dev.txt", repo_type=kind)
    assert alice.api.file_exists(repo_id, "dev.txt", repo_type=kind, revision="dev")
    alice.api.create_tag(repo_id, tag="v1", repo_type=kind)
    refs = alice.api.list_repo_refs(repo_id, repo_type=kind)
    assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1"]
    assert alice.api.repo_info(repo_id, repo_type=kind, revision="v1").sha == commit.oid
    assert len(alice.api.list_repo_commits(repo_id, repo_type=kind)) == 3

    # private: invisible to others, listed for the owner only
    alice.api.update_repo_settings(repo_id, private=True, repo_type=kind)
    assert alice.api.repo_info(repo_id, repo_type=kind).private is True
    for other in (anon, bob):
        assert not other.api.repo_exists(repo_id, repo_type=kind)
        with pytest.raises(RepositoryNotFoundError):
            other.api.hf_hub_download(repo_id, "config.json", repo_type=kind, cache_dir=tmp_path / "c4")
        assert repo_id not in [m.id for m in (other.api.list_models if kind == "model"
                                              else other.api.list_datasets)(author="alice")]
    assert repo_id in [m.id for m in lister(author="alice")]


@pytest.mark.parametrize("kind", KINDS)
def test_move_delete_and_pull_requests(server, alice, bob, make_org, make_repo, kind):  # noqa: ANN001
    repo_id = make_repo(alice, kind)
    alice.api.upload_file(path_or_fileobj=b"v1\n", path_in_repo="data.txt", repo_id=repo_id, repo_type=kind)
    # bob proposes, alice merges
    pr = bob.api.create_commit(repo_id, [CommitOperationAdd("data.txt", b"v2\n")], commit_message="better data",
                               repo_type=kind, create_pr=True)
    assert pr.pr_url == f"{server.url}/{PREFIX[kind]}{repo_id}/discussions/1"
    [d] = list(alice.api.get_repo_discussions(repo_id, repo_type=kind))
    assert (d.num, d.is_pull_request, d.repo_type) == (1, True, kind)
    details = alice.api.get_discussion_details(repo_id, 1, repo_type=kind)
    assert details.status == "open" and details.git_reference == "refs/pr/1"
    assert alice.api.hf_hub_download(repo_id, "data.txt", repo_type=kind, revision="refs/pr/1") is not None
    alice.api.merge_pull_request(repo_id, 1, repo_type=kind)
    merged = alice.api.hf_hub_download(repo_id, "data.txt", repo_type=kind, force_download=True)
    assert Path(merged).read_text() == "v2\n"

    # move to an org alice writes; history and discussions stay; the old name is free
    org = make_org("alice")
    target = f"{org}/{repo_id.split('/')[1]}"
    sha = alice.api.repo_info(repo_id, repo_type=kind).sha
    alice.api.move_repo(repo_id, target, repo_type=kind)
    assert not alice.api.repo_exists(repo_id, repo_type=kind)
    assert alice.api.repo_info(target, repo_type=kind).sha == sha
    assert [d.num for d in alice.api.get_repo_discussions(target, repo_type=kind)] == [1]
    with pytest.raises(HfHubHTTPError) as exc:
        bob.api.move_repo(target, f"bob/{unique('x')}", repo_type=kind)
    assert exc.value.response.status_code == 403
    alice.api.delete_repo(target, repo_type=kind)
    assert not alice.api.repo_exists(target, repo_type=kind)
    with pytest.raises(RepositoryNotFoundError):
        alice.api.delete_repo(target, repo_type=kind)
    alice.api.delete_repo(target, repo_type=kind, missing_ok=True)


# ---------------------------------------------------------------------------------------------------------------
# 3. git, and the hf CLI


@pytest.mark.parametrize("kind", KINDS)
def test_git_clone_and_push(server, alice, bob, anon, make_repo, kind, tmp_path):  # noqa: ANN001
    repo_id = make_repo(alice, kind, private=True)
    work = tmp_path / "clone"
    res = git("clone", remote(server, kind, repo_id), str(work), check=False)
    assert res.returncode != 0  # private: anonymous git gets the challenge, and no repository
    git("clone", remote(server, kind, repo_id, alice.token), str(work))
    assert (work / ".gitattributes").exists()
    (work / "weights.txt").write_text("0.5 0.25\n")
    sha = commit_all(work, "add weights")
    git("push", "origin", "main", cwd=work)
    assert alice.api.repo_info(repo_id, repo_type=kind).sha == sha
    assert b"0.5" in httpx.get(f"{server.url}/{PREFIX[kind]}{repo_id}/resolve/main/weights.txt",
                               headers=alice.headers, timeout=10).content
    bad = git("push", remote(server, kind, repo_id, bob.token), "main:other", cwd=work, check=False)
    assert bad.returncode != 0
    # the .git suffix works too, as on the Hub
    git("clone", remote(server, kind, repo_id, alice.token) + ".git", str(tmp_path / "again"))
    assert (tmp_path / "again" / "weights.txt").read_text() == "0.5 0.25\n"


def test_hf_cli_repos(server, alice, tmp_path):  # noqa: ANN001
    name = unique("cli")
    repo_id = f"alice/{name}"
    hf(alice, "repos", "create", repo_id)
    hf(alice, "repos", "create", repo_id, "--repo-type", "dataset", "--private")
    try:
        (tmp_path / "f.txt").write_text("from the cli\n")
        hf(alice, "upload", repo_id, str(tmp_path / "f.txt"), "f.txt")
        hf(alice, "upload", repo_id, str(tmp_path / "f.txt"), "g.txt", "--repo-type", "dataset")
        out = hf(alice, "download", repo_id, "f.txt", "--local-dir", str(tmp_path / "dl")).stdout
        assert (tmp_path / "dl" / "f.txt").read_text() == "from the cli\n", out
        listed = hf(alice, "repos", "list", "--limit", "0").stdout
        lines = [line for line in listed.splitlines() if repo_id in line]
        assert len(lines) == 2, listed
        assert any("model" in line and "public" in line for line in lines)
        assert any("dataset" in line and "private" in line for line in lines)
        assert repo_id in hf(alice, "repos", "list", "--type", "dataset").stdout
        alice.api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n# The card\n", path_in_repo="README.md",
                              repo_id=repo_id)
        assert repo_id in hf(alice, "models", "ls", "--author", "alice", "--format", "json").stdout
        assert repo_id in hf(alice, "models", "info", repo_id, "--format", "json").stdout
        assert "mit" in hf(alice, "models", "card", repo_id, "--metadata").stdout
        assert repo_id in hf(alice, "datasets", "info", repo_id, "--format", "json").stdout
        hf(alice, "repos", "delete", repo_id, "--yes")
        assert not alice.api.repo_exists(repo_id)
        assert alice.api.repo_exists(repo_id, repo_type="dataset")
    finally:
        alice.api.delete_repo(repo_id, repo_type="dataset", missing_ok=True)
        alice.api.delete_repo(repo_id, missing_ok=True)


def test_model_info_names_the_spaces_that_use_it(server, alice, bob, make_repo):  # noqa: ANN001
    model = make_repo(alice, "model")
    dataset = make_repo(alice, "dataset")
    space = make_repo(alice, "space")
    hidden = make_repo(alice, "space", private=True)
    readme = f"---\nsdk: static\nmodels:\n- {model}\ndatasets: [{dataset}]\n---\n"
    for sp in (space, hidden):
        alice.api.upload_file(path_or_fileobj=readme.encode(), path_in_repo="README.md", repo_id=sp,
                              repo_type="space")
    assert sorted(alice.api.model_info(model).spaces) == sorted([space, hidden])
    assert bob.api.model_info(model).spaces == [space]  # a private Space stays hidden
    assert bob.api.dataset_info(dataset).spaces == [space]


def test_likes_of_models_and_datasets(server, alice, bob, anon, make_repo):  # noqa: ANN001
    """The Hub's like button (POST ``/api/{type}s/{id}/like``), ``list_repo_likers`` and ``list_liked_repos``."""
    model, dataset = make_repo(alice, "model"), make_repo(alice, "dataset", private=True)
    space = make_repo(alice, "space", model.split("/")[1])  # the model's name: its likes are its own
    for kind, repo_id in (("model", model), ("dataset", dataset)):
        r = httpx.post(f"{server.url}/api/{kind}s/{repo_id}/like", headers=alice.headers, timeout=10)
        assert r.status_code == 200 and r.json()["likes"] == 1
    assert [u.username for u in alice.api.list_repo_likers(model)] == ["alice"]
    assert alice.api.model_info(model).likes == 1
    assert alice.api.space_info(space).likes == 0
    assert list(alice.api.list_repo_likers(space, repo_type="space")) == []
    liked = alice.api.list_liked_repos("alice")
    assert model in liked.models and dataset in liked.datasets and space not in liked.spaces
    seen = anon.api.list_liked_repos("alice")
    assert model in seen.models and dataset not in seen.datasets  # a private dataset stays hidden
    r = httpx.post(f"{server.url}/api/models/{dataset}/like", headers=bob.headers, timeout=10)
    assert r.status_code == 404 and r.headers["x-error-code"] == "RepoNotFound"
    httpx.delete(f"{server.url}/api/models/{model}/like", headers=alice.headers, timeout=10).raise_for_status()
    assert alice.api.model_info(model).likes == 0


def test_a_big_file_streams_whole_and_by_range(server, alice, make_repo, tmp_path):  # noqa: ANN001
    """Past files.STREAM_BYTES (8 MiB) a download streams from git; its length, content and ranges are exact."""
    import hashlib

    repo_id = make_repo(alice, "model")
    blob = hashlib.sha256(b"seed").digest() * (9 * 1024 * 1024 // 32 + 5)
    work = tmp_path / "w"  # pushed with git: the suite's servers take API commits up to 1 MiB only
    git("clone", remote(server, "model", repo_id, alice.token), str(work))
    (work / "model.bin").write_bytes(blob)
    commit_all(work, "weights")
    git("push", "origin", "main", cwd=work, timeout=120)
    got = Path(alice.api.hf_hub_download(repo_id, "model.bin", cache_dir=tmp_path / "c")).read_bytes()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(blob).hexdigest()
    url = f"{server.url}/{repo_id}/resolve/main/model.bin"
    r = httpx.get(url, headers={**alice.headers, "range": "bytes=100-199"}, timeout=30)
    assert r.status_code == 206 and r.content == blob[100:200]
    r = httpx.get(url, timeout=30)
    assert int(r.headers["content-length"]) == len(blob) and r.content == blob


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_copies_the_files_as_one_commit(server, alice, bob, make_repo, kind):  # noqa: ANN001
    source = make_repo(alice, kind)
    for i in range(2):
        alice.api.upload_file(path_or_fileobj=f"v{i}".encode(), path_in_repo="f.txt", repo_id=source, repo_type=kind)
    alice.api.create_tag(source, tag="v1", repo_type=kind)
    url = bob.api.duplicate_repo(source, repo_type=kind)
    copy = f"bob/{source.split('/')[1]}"
    try:
        assert url.repo_id == copy and url.repo_type == kind
        assert bob.api.list_repo_files(copy, repo_type=kind) == alice.api.list_repo_files(source, repo_type=kind)
        assert [c.title for c in bob.api.list_repo_commits(copy, repo_type=kind)] == [f"Duplicate from {source}"]
        assert bob.api.list_repo_refs(copy, repo_type=kind).tags == []
        assert len(alice.api.list_repo_commits(source, repo_type=kind)) == 3  # the source keeps its history
        with pytest.raises(HfHubHTTPError) as exc:
            bob.api.duplicate_repo(source, repo_type=kind)
        assert exc.value.response.status_code == 409
        assert not bob.api.repo_exists(copy, repo_type="space")
    finally:
        bob.api.delete_repo(copy, repo_type=kind, missing_ok=True)


def test_a_card_that_cannot_be_read_is_an_empty_card(server, alice, make_repo, tmp_path):  # noqa: ANN001
    repo_id = make_repo(alice, "model")
    alice.api.upload_file(path_or_fileobj=b"x", path_in_repo="README.md/inner.txt", repo_id=repo_id)
    assert not alice.api.model_info(repo_id).card_data
    other = make_repo(alice, "dataset")  # broken YAML, pushed with git (the client checks what it uploads)
    git("clone", remote(server, "dataset", other, alice.token), str(tmp_path / "d"))
    (tmp_path / "d" / "README.md").write_text("---\nlicense: [unclosed\n---\n# card\n")
    commit_all(tmp_path / "d", "broken card")
    git("push", "origin", "main", cwd=tmp_path / "d")
    info = alice.api.dataset_info(other)
    assert not info.card_data and info.sha == git("rev-parse", "HEAD", cwd=tmp_path / "d").stdout.strip()

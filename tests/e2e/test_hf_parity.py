"""Where the real ``huggingface_hub`` 2.4.0 and its ``hf`` CLI meet the Hub's behaviour around repos (issue 23):
repo types that are not hosted here, idempotent deletes, gitignore on preupload, odd paths, request ids,
templates, branches and tags. Everything goes through the real client against a live server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from harness import unique
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import (
    BadRequestError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

pytestmark = pytest.mark.timeout(180)

OTHER_TYPES = (None, "model", "dataset")  # None: what the client sends when repo_type is left out (a model)


def hf(actor, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    """The ``hf`` CLI as a user runs it, pointed at the test server with the actor's token."""
    exe = Path(sys.executable).with_name("hf")
    env = {**os.environ, "HF_ENDPOINT": actor.server.url, "HF_TOKEN": actor.token, "NO_COLOR": "1"}
    env.pop("HF_HUB_DISABLE_IMPLICIT_TOKEN", None)  # the suite's clients never send a token unasked; a user's do
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=90)


def snapshot(api: HfApi, repo_id: str) -> tuple:
    """What a type-confused call must not change: tip, files, visibility, refs."""
    info = api.space_info(repo_id)
    refs = api.list_repo_refs(repo_id, repo_type="space")
    return (info.sha, sorted(s.rfilename for s in info.siblings or []), info.private,
            sorted(b.name for b in refs.branches), sorted(t.name for t in refs.tags))


# ---------------------------------------------------------------------------------------------------------------
# 1. repo types: a model or dataset alice/x is never the Space alice/x


def test_every_typed_call_for_another_type_leaves_the_space_alone(alice, make_space):
    repo_id = make_space(alice)
    alice.api.upload_file(path_or_fileobj=b"keep me\n", path_in_repo="data/keep.txt", repo_id=repo_id,
                          repo_type="space")
    before = snapshot(alice.api, repo_id)
    calls = {
        "delete_repo": lambda t: alice.api.delete_repo(repo_id, repo_type=t),
        "move_repo": lambda t: alice.api.move_repo(repo_id, repo_id + "-moved", repo_type=t),
        "update_repo_settings": lambda t: alice.api.update_repo_settings(repo_id, private=True, repo_type=t),
        "upload_file": lambda t: alice.api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt",
                                                       repo_id=repo_id, repo_type=t),
        "delete_file": lambda t: alice.api.delete_file("data/keep.txt", repo_id, repo_type=t),
        "delete_folder": lambda t: alice.api.delete_folder("data", repo_id, repo_type=t),
        "create_branch": lambda t: alice.api.create_branch(repo_id, branch="dev", repo_type=t),
        "delete_branch": lambda t: alice.api.delete_branch(repo_id, branch="main", repo_type=t),
        "create_tag": lambda t: alice.api.create_tag(repo_id, tag="v1", repo_type=t),
        "delete_tag": lambda t: alice.api.delete_tag(repo_id, tag="v1", repo_type=t),
        "repo_info": lambda t: alice.api.repo_info(repo_id, repo_type=t),
        "list_repo_files": lambda t: alice.api.list_repo_files(repo_id, repo_type=t),
        "list_repo_refs": lambda t: alice.api.list_repo_refs(repo_id, repo_type=t),
        "list_repo_commits": lambda t: alice.api.list_repo_commits(repo_id, repo_type=t),
        "get_paths_info": lambda t: alice.api.get_paths_info(repo_id, ["README.md"], repo_type=t),
        "hf_hub_download": lambda t: alice.api.hf_hub_download(repo_id, "README.md", repo_type=t),
        "auth_check": lambda t: alice.api.auth_check(repo_id, repo_type=t),
    }
    for name, call in calls.items():
        for repo_type in OTHER_TYPES:
            with pytest.raises(RepositoryNotFoundError):
                call(repo_type)
                pytest.fail(f"{name}(repo_type={repo_type!r}) did not fail")
    assert snapshot(alice.api, repo_id) == before
    assert alice.api.repo_exists(repo_id, repo_type="space")


def test_the_hf_cli_without_the_space_type_leaves_the_space_alone(alice, make_space):
    repo_id = make_space(alice)
    before = snapshot(alice.api, repo_id)
    for args in (["repos", "delete", repo_id, "--yes"], ["repos", "settings", repo_id, "--private"],
                 ["repos", "branch", "create", repo_id, "dev"], ["repos", "tag", "create", repo_id, "v1"],
                 ["repos", "delete", repo_id, "--repo-type", "dataset", "--yes"]):
        res = hf(alice, *args)
        assert res.returncode != 0, (args, res.stdout, res.stderr)
        assert "not found" in (res.stdout + res.stderr).lower(), (args, res.stdout, res.stderr)
    assert snapshot(alice.api, repo_id) == before


def test_validate_yaml_checks_a_model_card_as_a_model_card(server):
    model_card = "---\nlicense: mit\nsdk: 3\napp_port: many\ntags: [a]\n---\n# model\n"
    r = httpx.post(f"{server.url}/api/validate-yaml", json={"content": model_card, "repoType": "model"})
    assert r.status_code == 200, r.text
    assert r.json()["errors"] == []
    r = httpx.post(f"{server.url}/api/validate-yaml", json={"content": model_card, "repoType": "space"})
    assert r.status_code == 400 and r.json()["errors"], r.text  # the same keys are wrong for a Space
    r = httpx.post(f"{server.url}/api/validate-yaml", json={"content": "---\na: [\n---\n", "repoType": "dataset"})
    assert r.status_code == 400 and r.json()["errors"], r.text


# ---------------------------------------------------------------------------------------------------------------
# 2. "different from the Hub"


def test_exists_helpers_answer_false_for_repo_types_not_hosted_here(alice, anon, make_space):
    repo_id = make_space(alice)
    for api in (alice.api, anon.api):
        for repo_type in OTHER_TYPES:
            assert not api.repo_exists(repo_id, repo_type=repo_type)
            assert not api.file_exists(repo_id, "README.md", repo_type=repo_type)
            assert not api.revision_exists(repo_id, "main", repo_type=repo_type)
        assert api.repo_exists(repo_id, repo_type="space")
        assert api.file_exists(repo_id, "README.md", repo_type="space")
        assert api.revision_exists(repo_id, "main", repo_type="space")
        assert not api.revision_exists(repo_id, "nope", repo_type="space")
    assert list(alice.api.list_models(author="alice")) == []
    assert list(alice.api.list_datasets(author="alice")) == []
    for path in ("/api/models/alice/x", "/api/datasets/alice/x/tree/main", "/api/models/alice/x/revision/main",
                 "/alice/x/resolve/main/README.md", "/datasets/alice/x/resolve/main/README.md"):
        r = httpx.get(f"{alice.server.url}{path}")
        assert r.status_code == 404 and r.headers["x-error-code"] == "RepoNotFound", path
    r = httpx.post(f"{alice.server.url}/api/models/alice/x/paths-info/main", data={"paths": ["README.md"]})
    assert r.status_code == 404 and r.headers["x-error-code"] == "RepoNotFound"


def test_deleting_a_missing_secret_or_variable_succeeds_like_the_hub(alice, make_space):
    repo_id = make_space(alice)
    alice.api.add_space_secret(repo_id, "KEEP", "v")
    alice.api.add_space_variable(repo_id, "KEEPV", "1")
    alice.api.delete_space_secret(repo_id, "NOPE")
    assert alice.api.delete_space_variable(repo_id, "NOPE")["KEEPV"].value == "1"
    res = hf(alice, "spaces", "secrets", "delete", repo_id, "NOPE", "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert set(alice.api.get_space_secrets(repo_id)) == {"KEEP"}
    alice.api.delete_space_secret(repo_id, "KEEP")
    assert alice.api.get_space_secrets(repo_id) == {}


def test_preupload_honours_the_gitignore_the_client_sends_and_the_repos_own(alice, make_space, tmp_path):
    repo_id = make_space(alice)
    folder = tmp_path / "app"
    for rel, text in {".gitignore": "*.log\n!keep.log\nbuild/\n", "app.py": "print(1)\n", "debug.log": "x\n",
                      "keep.log": "k\n", "build/out.bin": "b\n", "src/build/deep.txt": "d\n"}.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    alice.api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="space")
    files = set(alice.api.list_repo_files(repo_id, repo_type="space"))
    assert {".gitignore", "app.py", "keep.log"} <= files
    assert not files & {"debug.log", "build/out.bin", "src/build/deep.txt"}, files

    # no .gitignore in this commit: the one in the repo applies
    alice.api.create_commit(repo_id, repo_type="space", commit_message="more", operations=[
        CommitOperationAdd("later.log", b"l\n"), CommitOperationAdd("later.txt", b"t\n")])
    files = set(alice.api.list_repo_files(repo_id, repo_type="space"))
    assert "later.txt" in files and "later.log" not in files

    # what the wire says, for a gitIgnore sent explicitly (it wins over the repo's)
    r = httpx.post(f"{alice.server.url}/api/spaces/{repo_id}/preupload/main", headers=alice.headers,
                   json={"files": [{"path": "a.log", "sample": "", "size": 1}, {"path": "x.tmp", "sample": "",
                                                                                 "size": 1}],
                         "gitIgnore": "*.tmp\n"})
    assert r.status_code == 200, r.text
    assert {f["path"]: f["shouldIgnore"] for f in r.json()["files"]} == {"a.log": False, "x.tmp": True}


def test_delete_folder_with_or_without_a_trailing_slash(alice, make_space):
    repo_id = make_space(alice)
    alice.api.create_commit(repo_id, repo_type="space", commit_message="folders", operations=[
        CommitOperationAdd("one/a.txt", b"a"), CommitOperationAdd("one/sub/b.txt", b"b"),
        CommitOperationAdd("two/c.txt", b"c"), CommitOperationAdd("onex.txt", b"keep")])
    alice.api.delete_folder("one", repo_id, repo_type="space")
    alice.api.delete_folder("two/", repo_id, repo_type="space")
    files = set(alice.api.list_repo_files(repo_id, repo_type="space"))
    assert "onex.txt" in files
    assert not [f for f in files if f.startswith(("one/", "two/"))], files


def test_backslashes_in_paths_like_the_hub(alice, make_space, tmp_path):
    repo_id = make_space(alice)
    alice.api.upload_file(path_or_fileobj=b"odd\n", path_in_repo="folder/..\\..\\file", repo_id=repo_id,
                          repo_type="space")
    assert "folder/..\\..\\file" in alice.api.list_repo_files(repo_id, repo_type="space")
    # (hf_hub_download itself refuses to write such a name locally; the bytes are served as stored)
    r = httpx.get(f"{alice.server.url}/spaces/{repo_id}/resolve/main/folder/..%5C..%5Cfile")
    assert r.status_code == 200 and r.content == b"odd\n"
    [info] = alice.api.get_paths_info(repo_id, ["folder/..\\..\\file"], repo_type="space")
    assert info.size == 4
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.upload_file(path_or_fileobj=b"x", path_in_repo="..\\x", repo_id=repo_id, repo_type="space")
    assert exc.value.response.status_code == 422
    assert "..\\x" not in alice.api.list_repo_files(repo_id, repo_type="space")


def test_every_answer_has_a_request_id_and_errors_name_it(alice, server):
    r = httpx.get(f"{server.url}/api/health")
    assert r.headers.get("x-request-id")
    missing = f"alice/{unique('nope')}"
    with pytest.raises(RepositoryNotFoundError) as exc:
        alice.api.space_info(missing)
    rid = exc.value.request_id
    assert rid and rid in str(exc.value)
    log = server.log()
    assert any(rid in line and "RepoNotFound" in line for line in log.splitlines()), log[-2000:]
    ids = {httpx.get(f"{server.url}/api/health").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    r = httpx.post(f"{server.url}/api/repos/create", content=b"x" * (50 << 20))  # refused by the body limit
    assert r.status_code in (401, 413) and r.headers.get("x-request-id")


def test_templates_listed_are_the_ones_create_repo_and_the_cli_start_from(alice, make_space):
    templates = alice.api.list_space_templates()
    assert {t.name for t in templates} >= {"Gradio starter"} or templates
    gradio = next(t for t in templates if t.sdk == "gradio")
    repo_id = make_space(alice, space_template=gradio.repo_id)
    files = set(alice.api.list_repo_files(repo_id, repo_type="space"))
    assert "app.py" in files, files
    assert alice.api.space_info(repo_id).sdk == "gradio"

    static = next(t for t in templates if t.sdk == "static")
    name = unique("tpl")
    res = hf(alice, "repos", "create", f"alice/{name}", "--type", "space", "--template", static.repo_id)
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        assert "index.html" in alice.api.list_repo_files(f"alice/{name}", repo_type="space")
    finally:
        alice.api.delete_repo(f"alice/{name}", repo_type="space", missing_ok=True)

    r = httpx.post(f"{alice.server.url}/api/repos/create", headers=alice.headers,
                   json={"name": unique("tpl"), "type": "space", "sdk": "gradio", "template": "nobody/nothing"})
    assert r.status_code == 400 and "Unknown Space template" in r.json()["error"]


def test_listed_templates_are_real_spaces_and_new_spaces_copy_them(server, alice, anon, make_space):
    """Each listed template is a public Space on this hub (seeded at start-up from templates/, paused): anyone
    can open it and read its files; a Space made from it starts with the template Space's files, so an admin's
    edit of the template reaches the next new Space."""
    from harness import make_actor

    templates = alice.api.list_space_templates()
    assert {t.sdk for t in templates} >= {"gradio", "streamlit", "static", "docker"}, templates
    for t in templates:
        info = anon.api.space_info(t.repo_id)
        assert info.id == t.repo_id and info.sdk == t.sdk and not info.private
        assert info.runtime.stage == "PAUSED"
        assert "README.md" in anon.api.list_repo_files(t.repo_id, repo_type="space")
    gradio = next(t for t in templates if t.sdk == "gradio")
    with pytest.raises(Exception):  # the reserved namespace belongs to nobody: alice cannot write to it
        alice.api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=gradio.repo_id, repo_type="space")

    server.user("tpl-admin", admin=True)
    admin = make_actor(server, "tpl-admin")
    mark = unique("edited-by-admin")
    admin.api.upload_file(path_or_fileobj=mark.encode(), path_in_repo="NOTE.txt", repo_id=gradio.repo_id,
                          repo_type="space")
    try:
        repo_id = make_space(alice, space_template=gradio.repo_id)
        files = set(alice.api.list_repo_files(repo_id, repo_type="space"))
        assert {"app.py", "NOTE.txt"} <= files, files
        readme = (Path(alice.api.hf_hub_download(repo_id, "README.md", repo_type="space"))).read_text()
        assert f"title: {repo_id.split('/')[1]}" in readme  # retitled for the new Space
    finally:
        admin.api.delete_file("NOTE.txt", repo_id=gradio.repo_id, repo_type="space")


# ---------------------------------------------------------------------------------------------------------------
# 3. branches and tags (the Space builds and serves main only)


def refs_of(api: HfApi, repo_id: str) -> tuple[dict[str, str], dict[str, str]]:
    refs = api.list_repo_refs(repo_id, repo_type="space")
    return ({b.name: b.target_commit for b in refs.branches}, {t.name: t.target_commit for t in refs.tags})


def read(api: HfApi, repo_id: str, path: str, revision: str) -> bytes:
    return Path(api.hf_hub_download(repo_id, path, repo_type="space", revision=revision)).read_bytes()


def test_branches_and_tags_with_the_real_client(alice, make_space, tmp_path):
    repo_id = make_space(alice)
    first = alice.api.upload_file(path_or_fileobj=b"v1\n", path_in_repo="f.txt", repo_id=repo_id,
                                  repo_type="space").oid
    info = alice.api.space_info(repo_id)
    main_sha, stage = info.sha, info.runtime.stage

    alice.api.create_branch(repo_id, branch="dev", repo_type="space")
    alice.api.create_branch(repo_id, branch="dev", repo_type="space", exist_ok=True)
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.create_branch(repo_id, branch="dev", repo_type="space")
    assert exc.value.response.status_code == 409
    on_dev = alice.api.upload_file(path_or_fileobj=b"v2\n", path_in_repo="f.txt", repo_id=repo_id,
                                   repo_type="space", revision="dev").oid
    alice.api.create_commit(repo_id, repo_type="space", revision="dev", commit_message="only on dev",
                            operations=[CommitOperationAdd("dev-only.txt", b"d")], parent_commit=on_dev)
    dev_tip = alice.api.list_repo_commits(repo_id, repo_type="space", revision="dev")[0].commit_id

    # main, and so the Space, did not move
    info = alice.api.space_info(repo_id)
    assert (info.sha, info.runtime.stage) == (main_sha, stage)
    assert read(alice.api, repo_id, "f.txt", "main") == b"v1\n"
    assert read(alice.api, repo_id, "f.txt", "dev") == b"v2\n"
    assert "dev-only.txt" not in alice.api.list_repo_files(repo_id, repo_type="space")
    assert "dev-only.txt" in alice.api.list_repo_files(repo_id, repo_type="space", revision="dev")

    # a name with '/', started from an older commit; tags, annotated and lightweight
    alice.api.create_branch(repo_id, branch="feature/x", revision=first, repo_type="space")
    alice.api.create_tag(repo_id, tag="v1.0", revision="dev", tag_message="release 1.0", repo_type="space")
    alice.api.create_tag(repo_id, tag="rc/0", repo_type="space")  # main
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.create_tag(repo_id, tag="v1.0", repo_type="space")
    assert exc.value.response.status_code == 409
    alice.api.create_tag(repo_id, tag="v1.0", repo_type="space", exist_ok=True)
    branches, tags = refs_of(alice.api, repo_id)
    assert branches == {"main": main_sha, "dev": dev_tip, "feature/x": first}
    assert tags == {"v1.0": dev_tip, "rc/0": main_sha}  # the annotated tag names its commit
    assert read(alice.api, repo_id, "f.txt", "v1.0") == b"v2\n"
    assert read(alice.api, repo_id, "f.txt", "feature/x") == b"v1\n"
    assert alice.api.space_info(repo_id, revision="v1.0").sha == dev_tip
    assert {f.path for f in alice.api.list_repo_tree(repo_id, repo_type="space", revision="rc/0")} >= {"f.txt"}
    snap = alice.api.snapshot_download(repo_id, repo_type="space", revision="v1.0", local_dir=tmp_path / "snap")
    assert (Path(snap) / "dev-only.txt").read_bytes() == b"d"

    # deletes
    alice.api.delete_tag(repo_id, tag="rc/0", repo_type="space")
    alice.api.delete_branch(repo_id, branch="feature/x", repo_type="space")
    with pytest.raises(RevisionNotFoundError):
        alice.api.delete_branch(repo_id, branch="feature/x", repo_type="space")
    with pytest.raises(RevisionNotFoundError):
        alice.api.delete_tag(repo_id, tag="rc/0", repo_type="space")
    with pytest.raises(RevisionNotFoundError):
        alice.api.hf_hub_download(repo_id, "f.txt", repo_type="space", revision="feature/x")
    assert refs_of(alice.api, repo_id) == ({"main": main_sha, "dev": dev_tip}, {"v1.0": dev_tip})


def test_branch_and_tag_mistakes_change_nothing(alice, bob, make_space):
    repo_id = make_space(alice)
    alice.api.create_branch(repo_id, branch="dev", repo_type="space")
    alice.api.create_tag(repo_id, tag="v1", repo_type="space")
    before = refs_of(alice.api, repo_id)
    sha = alice.api.space_info(repo_id).sha

    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.delete_branch(repo_id, branch="main", repo_type="space")
    assert exc.value.response.status_code == 403 and "main branch cannot be deleted" in str(exc.value)

    bad = ["a..b", "x.lock", "-x", "a b", "HEAD", "refs/heads/x", "a/", "x@{u}", "x~1", "a:b", "q?", "s*", "[x",
           ".hidden", "a/.b", "end.", "back\\slash", "0123456789abcdef0123456789abcdef01234567", "é" * 200]
    for name in bad:
        with pytest.raises(BadRequestError):
            alice.api.create_branch(repo_id, branch=name, repo_type="space")
        with pytest.raises(BadRequestError):
            alice.api.create_tag(repo_id, tag=name, repo_type="space")
    for name, error in (("dev/sub", "folder of refs"), ("v1", "tag named 'v1' exists")):
        with pytest.raises(HfHubHTTPError) as exc:
            alice.api.create_branch(repo_id, branch=name, repo_type="space")
        assert exc.value.response.status_code == 409 and error in str(exc.value), name
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.create_tag(repo_id, tag="dev", repo_type="space")
    assert exc.value.response.status_code == 409
    with pytest.raises(RevisionNotFoundError):
        alice.api.create_branch(repo_id, branch="from-nowhere", revision="no-such-rev", repo_type="space")
    with pytest.raises(RevisionNotFoundError):
        alice.api.create_tag(repo_id, tag="t-nowhere", revision="no-such-rev", repo_type="space")
    with pytest.raises(RevisionNotFoundError):  # commits go to existing branches only; none is made on the way
        alice.api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id, repo_type="space",
                              revision="nope")
    with pytest.raises(RevisionNotFoundError):  # a tag is not a branch to commit to
        alice.api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id, repo_type="space",
                              revision="v1")
    with pytest.raises(HfHubHTTPError) as exc:  # someone without write access
        bob.api.create_branch(repo_id, branch="bobs", repo_type="space")
    assert exc.value.response.status_code in (403, 404)
    with pytest.raises(HfHubHTTPError):
        bob.api.delete_tag(repo_id, tag="v1", repo_type="space")
    assert refs_of(alice.api, repo_id) == before
    assert alice.api.space_info(repo_id).sha == sha


def test_branches_and_tags_with_the_hf_cli_and_git(alice, make_space, tmp_path):
    from e2e.helpers import clone, git

    repo_id = make_space(alice)
    for args in (["repos", "branch", "create", repo_id, "cli-branch", "--repo-type", "space"],
                 ["repos", "tag", "create", repo_id, "cli-tag", "-m", "from the cli", "--repo-type", "space"]):
        res = hf(alice, *args)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
    res = hf(alice, "repos", "branch", "delete", repo_id, "main", "--repo-type", "space")
    assert res.returncode != 0 and "main branch cannot be deleted" in res.stdout + res.stderr

    work = tmp_path / "clone"
    clone(alice.server, repo_id, work, alice.token)
    git("fetch", "origin", "--tags", cwd=work)
    assert git("rev-parse", "origin/cli-branch", cwd=work).stdout.strip() == alice.api.space_info(repo_id).sha
    assert git("cat-file", "-t", "cli-tag", cwd=work).stdout.strip() == "tag"  # annotated
    git("checkout", "-b", "pushed", cwd=work)
    (work / "p.txt").write_text("pushed\n")
    git("add", "p.txt", cwd=work)
    git("commit", "-m", "on a pushed branch", cwd=work)
    sha = alice.api.space_info(repo_id).sha
    git("push", "origin", "pushed", cwd=work)
    branches, _ = refs_of(alice.api, repo_id)
    assert branches["pushed"] == git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert alice.api.space_info(repo_id).sha == sha  # main, and the Space, did not move
    res = git("push", "origin", ":main", cwd=work, check=False)
    assert res.returncode != 0 and "refusing to delete main" in res.stderr, res.stderr
    res = git("push", "origin", ":main", ":pushed", cwd=work, check=False)  # all or nothing
    assert res.returncode != 0
    assert set(refs_of(alice.api, repo_id)[0]) == {"main", "cli-branch", "pushed"}
    git("push", "origin", ":pushed", cwd=work)
    assert set(refs_of(alice.api, repo_id)[0]) == {"main", "cli-branch"}


# ---------------------------------------------------------------------------------------------------------------
# 4. pull requests and discussions: how someone without write access proposes a change to a Space


def test_pull_request_from_a_visitor_reviewed_and_merged_by_the_owner(alice, bob, carol, make_space, tmp_path):
    repo_id = make_space(alice)
    alice.api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="greeting.txt", repo_id=repo_id,
                          repo_type="space")
    main_sha = alice.api.space_info(repo_id).sha

    # bob cannot write to the Space, but he can propose
    with pytest.raises(HfHubHTTPError):
        bob.api.upload_file(path_or_fileobj=b"x", path_in_repo="greeting.txt", repo_id=repo_id, repo_type="space")
    info = bob.api.create_commit(repo_id, repo_type="space", create_pr=True, commit_message="Say hi louder",
                                 commit_description="please merge", operations=[
                                     CommitOperationAdd("greeting.txt", b"HELLO\n")])
    assert info.pr_num == 1 and info.pr_url.endswith(f"/spaces/{repo_id}/discussions/1")
    second = bob.api.upload_file(path_or_fileobj=b"new\n", path_in_repo="added.txt", repo_id=repo_id,
                                 repo_type="space", revision="refs/pr/1").oid
    assert alice.api.space_info(repo_id).sha == main_sha  # the Space did not move
    refs = alice.api.list_repo_refs(repo_id, repo_type="space", include_pull_requests=True)
    assert [(r.ref, r.target_commit) for r in refs.pull_requests] == [("refs/pr/1", second)]
    assert read(bob.api, repo_id, "greeting.txt", "refs/pr/1") == b"HELLO\n"
    assert read(bob.api, repo_id, "greeting.txt", "main") == b"hello\n"

    with pytest.raises(HfHubHTTPError) as exc:  # only the author (or a writer) commits to a pull request
        carol.api.upload_file(path_or_fileobj=b"x", path_in_repo="c.txt", repo_id=repo_id, repo_type="space",
                              revision="refs/pr/1")
    assert exc.value.response.status_code == 403

    [listed] = list(alice.api.get_repo_discussions(repo_id, repo_type="space"))
    assert (listed.num, listed.is_pull_request, listed.status, listed.author) == (1, True, "open", "bob")
    alice.api.comment_discussion(repo_id, 1, "Looks good", repo_type="space")
    bob.api.rename_discussion(repo_id, 1, "Say hi LOUDER", repo_type="space")
    with pytest.raises(HfHubHTTPError) as exc:
        bob.api.merge_pull_request(repo_id, 1, repo_type="space")
    assert exc.value.response.status_code == 403
    alice.api.merge_pull_request(repo_id, 1, comment="Thanks!", repo_type="space")

    details = alice.api.get_discussion_details(repo_id, 1, repo_type="space")
    assert (details.status, details.title, details.target_branch) == ("merged", "Say hi LOUDER", "refs/heads/main")
    kinds = [e.type for e in details.events]
    assert kinds[0] == "comment" and details.events[0].content == "please merge"
    assert kinds.count("commit") == 2 and "title-change" in kinds and kinds[-1] == "status-change"
    assert [e.content for e in details.events if e.type == "comment"] == ["please merge", "Looks good", "Thanks!"]
    new_main = alice.api.space_info(repo_id).sha
    assert new_main == details.merge_commit_oid == second  # main had not moved: a fast-forward
    assert read(alice.api, repo_id, "greeting.txt", "main") == b"HELLO\n"
    with pytest.raises(BadRequestError):  # a merged pull request takes no more commits
        bob.api.upload_file(path_or_fileobj=b"x", path_in_repo="late.txt", repo_id=repo_id, repo_type="space",
                            revision="refs/pr/1")


def test_merges_of_diverged_pull_requests_and_conflicts(alice, bob, make_space):
    repo_id = make_space(alice)
    alice.api.create_commit(repo_id, repo_type="space", commit_message="base", operations=[
        CommitOperationAdd("a.txt", b"a\n"), CommitOperationAdd("b.txt", b"b\n")])
    clean = bob.api.create_commit(repo_id, repo_type="space", create_pr=True, commit_message="edit a",
                                  operations=[CommitOperationAdd("a.txt", b"A\n")]).pr_num
    clash = bob.api.create_commit(repo_id, repo_type="space", create_pr=True, commit_message="edit b",
                                  operations=[CommitOperationAdd("b.txt", b"from bob\n")]).pr_num
    alice.api.upload_file(path_or_fileobj=b"from alice\n", path_in_repo="b.txt", repo_id=repo_id,
                          repo_type="space")
    before = alice.api.space_info(repo_id).sha

    details = alice.api.get_discussion_details(repo_id, clash, repo_type="space")
    assert details.conflicting_files == ["b.txt"]
    assert "+from bob" in details.diff and "a.txt" not in details.diff
    assert alice.api.get_discussion_details(repo_id, clean, repo_type="space").conflicting_files == []
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.merge_pull_request(repo_id, clash, repo_type="space")
    assert exc.value.response.status_code == 409 and "b.txt" in str(exc.value)
    assert alice.api.space_info(repo_id).sha == before
    assert alice.api.get_discussion_details(repo_id, clash, repo_type="space").status == "open"

    alice.api.merge_pull_request(repo_id, clean, repo_type="space")
    merged = alice.api.list_repo_commits(repo_id, repo_type="space")[0]
    assert merged.title.startswith(f"Merge pull request #{clean}")
    assert read(alice.api, repo_id, "a.txt", "main") == b"A\n"
    assert read(alice.api, repo_id, "b.txt", "main") == b"from alice\n"
    alice.api.change_discussion_status(repo_id, clash, "closed", comment="conflicts", repo_type="space")
    assert [d.num for d in alice.api.get_repo_discussions(repo_id, repo_type="space", discussion_status="open")] \
        == []


def test_discussions_and_draft_pull_requests(alice, bob, carol, anon, make_space, tmp_path):
    repo_id = make_space(alice)
    d = bob.api.create_discussion(repo_id, "It crashes on start", description="stack trace...", repo_type="space")
    assert (d.num, d.is_pull_request, d.status, d.author) == (1, False, "open", "bob")
    with pytest.raises(HfHubHTTPError) as exc:
        carol.api.change_discussion_status(repo_id, 1, "closed", repo_type="space")
    assert exc.value.response.status_code == 403
    said = carol.api.comment_discussion(repo_id, 1, "same here", repo_type="space")
    with pytest.raises(HfHubHTTPError) as exc:
        bob.api.edit_discussion_comment(repo_id, 1, said.id, "not yours", repo_type="space")
    assert exc.value.response.status_code == 403
    edited = carol.api.edit_discussion_comment(repo_id, 1, said.id, "same here, on 3.11", repo_type="space")
    assert (edited.content, edited.edited) == ("same here, on 3.11", True)
    assert alice.api.hide_discussion_comment(repo_id, 1, said.id, repo_type="space").hidden
    [shown] = [e for e in bob.api.get_discussion_details(repo_id, 1, repo_type="space").events if e.id == said.id]
    assert shown.hidden and "3.11" not in shown.content
    bob.api.change_discussion_status(repo_id, 1, "closed", repo_type="space")
    alice.api.change_discussion_status(repo_id, 1, "open", repo_type="space")
    with pytest.raises(HfHubHTTPError):
        anon.api.comment_discussion(repo_id, 1, "anonymous", repo_type="space")
    with pytest.raises(BadRequestError):
        alice.api.merge_pull_request(repo_id, 1, repo_type="space")  # not a pull request

    draft = bob.api.create_pull_request(repo_id, "Add docs", repo_type="space")
    assert (draft.num, draft.status) == (2, "draft")
    folder = tmp_path / "docs"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs" / "index.md").write_text("# docs\n")
    bob.api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="space", revision=draft.git_reference)
    assert bob.api.get_discussion_details(repo_id, 2, repo_type="space").status == "open"
    pr = bob.api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="space", create_pr=True,
                               commit_message="docs again")
    assert pr.pr_num == 3
    listed = list(anon.api.get_repo_discussions(repo_id, repo_type="space", discussion_type="pull_request"))
    assert [x.num for x in listed] == [3, 2]
    assert "docs/index.md" in alice.api.list_repo_files(repo_id, repo_type="space", revision="refs/pr/3")
    assert "docs/index.md" not in alice.api.list_repo_files(repo_id, repo_type="space")

    private = make_space(alice, private=True)
    with pytest.raises(RepositoryNotFoundError):
        bob.api.create_commit(private, repo_type="space", create_pr=True, commit_message="x",
                              operations=[CommitOperationAdd("x.txt", b"x")])
    with pytest.raises(RepositoryNotFoundError):
        list(bob.api.get_repo_discussions(private, repo_type="space"))


def test_concurrent_discussions_get_distinct_numbers(alice, bob, make_space):
    """Numbers are handed out one at a time on SQLite too (it once answered 500 to 4 of 16 concurrent opens)."""
    import concurrent.futures

    repo_id = make_space(alice, sdk="static")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        nums = list(pool.map(lambda i: bob.api.create_discussion(repo_id, f"d{i}", repo_type="space").num,
                             range(16)))
    assert sorted(nums) == list(range(1, 17))


def test_a_discussion_number_past_the_database_column_is_a_400(alice, make_space) -> None:  # noqa: ANN001
    """schemathesis found it: 32589158477190044730 reached the INTEGER column and the server answered 500."""
    repo_id = make_space(alice, sdk="static")
    with alice.http() as http:
        for method, suffix in (("GET", ""), ("POST", "/comment"), ("POST", "/status")):
            r = http.request(method, f"/api/spaces/{repo_id}/discussions/32589158477190044730{suffix}",
                             json={"comment": "x", "status": "closed"})
            assert r.status_code == 400, (method, suffix, r.status_code, r.text)

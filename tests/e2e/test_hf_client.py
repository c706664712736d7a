"""The real ``huggingface_hub`` client against a live server: every HfApi call a Spaces user makes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from harness import subdomain_for, unique
from huggingface_hub import CommitOperationAdd, CommitOperationCopy, CommitOperationDelete, HfApi
from huggingface_hub.errors import (
    BadRequestError,
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from e2e.helpers import APP_PY, README_APP, SHA_RE, clone, git_blob_sha1, head, wait_stage

pytestmark = pytest.mark.timeout(180)


def write_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


# ---------------------------------------------------------------------------------------------------------------
# identity


def test_whoami_reports_user_and_orgs(alice, make_org):
    org = make_org("alice")
    me = alice.api.whoami()
    assert me["name"] == "alice"
    assert me["type"] == "user"
    assert org in [o["name"] for o in me.get("orgs", [])]


def test_whoami_with_invalid_token_is_rejected(server):
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(endpoint=server.url, token="definitely-not-a-token").whoami()
    assert exc.value.response.status_code == 401
    assert "Invalid user token" in str(exc.value)


# ---------------------------------------------------------------------------------------------------------------
# create / info / exists


def test_create_space_with_all_options_and_read_it_back(server, alice, anon):
    repo_id = f"alice/{unique('create')}"
    secret_value = "sv-" + os.urandom(8).hex()
    url = alice.api.create_repo(
        repo_id,
        repo_type="space",
        space_sdk="gradio",
        space_hardware="cpu-basic",
        space_sleep_time=3600,
        space_secrets=[{"key": "API_KEY", "value": secret_value, "description": "a secret"}],
        space_variables=[{"key": "GREETING", "value": "hello", "description": "a variable"}],
        private=False,
    )
    assert url.repo_id == repo_id
    assert url.repo_type == "space"
    assert str(url).startswith(f"{server.url}/spaces/{repo_id}")

    assert alice.api.repo_exists(repo_id, repo_type="space")
    assert anon.api.repo_exists(repo_id, repo_type="space")

    info = alice.api.space_info(repo_id)
    assert info.id == repo_id
    assert SHA_RE.match(info.sha or "")
    assert info.private is False
    assert info.sdk == "gradio"
    sub = subdomain_for(repo_id)
    assert info.subdomain == sub
    assert (info.host or "").rstrip("/") == server.app_origin(sub)
    assert {"README.md", ".gitattributes"} <= {s.rfilename for s in info.siblings or []}
    assert info.card_data is not None and info.card_data.get("sdk") == "gradio"
    assert info.runtime is not None
    assert info.runtime.stage == "NO_APP_FILE"
    assert info.runtime.requested_hardware == "cpu-basic"
    assert info.runtime.hardware in (None, "cpu-basic")  # `current` is null while nothing runs
    assert info.runtime.sleep_time == 3600

    assert alice.api.repo_info(repo_id, repo_type="space").sha == info.sha

    variables = alice.api.get_space_variables(repo_id)
    assert variables["GREETING"].value == "hello"
    assert set(alice.api.get_space_secrets(repo_id)) == {"API_KEY"}

    # the seeded README has the sdk in its front matter
    readme = Path(alice.api.hf_hub_download(repo_id, "README.md", repo_type="space")).read_text()
    assert re.search(r"^sdk:\s*gradio\s*$", readme, re.M), readme


def test_create_private_space_is_hidden_from_others(alice, bob, anon, make_space):
    repo_id = make_space(alice, private=True)
    assert alice.api.space_info(repo_id).private is True
    assert alice.api.repo_exists(repo_id, repo_type="space")
    assert not bob.api.repo_exists(repo_id, repo_type="space")
    assert not anon.api.repo_exists(repo_id, repo_type="space")
    with pytest.raises(RepositoryNotFoundError):
        bob.api.space_info(repo_id)


def test_create_existing_space_conflicts_and_exist_ok_returns_it(server, alice, make_space):
    repo_id = make_space(alice)
    sha = alice.api.space_info(repo_id).sha
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    assert exc.value.response.status_code == 409
    assert exc.value.response.json()["url"].startswith(f"{server.url}/spaces/{repo_id}")

    url = alice.api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True)
    assert url.repo_id == repo_id
    assert alice.api.space_info(repo_id).sha == sha


def test_repo_exists_false_for_unknown_space(alice):
    assert not alice.api.repo_exists(f"alice/{unique('nope')}", repo_type="space")


def test_space_api_host_is_the_app_origin(server, alice, make_space):
    repo_id = make_space(alice, name=f"My_App.{unique('v')}")
    sub = subdomain_for(repo_id)
    assert sub.startswith("alice-my-app-")
    r = httpx.get(f"{server.url}/api/spaces/{repo_id}", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["subdomain"] == sub
    assert body["host"].rstrip("/") == f"http://{sub}.localhost:{server.port}"
    assert body["id"] == repo_id


# ---------------------------------------------------------------------------------------------------------------
# listing


def test_list_spaces_search_author_sort_limit_and_privacy(alice, bob, anon, make_space):
    tag = unique("lst")
    a1 = make_space(alice, f"{tag}-one")
    time.sleep(1.1)
    a2 = make_space(alice, f"{tag}-two")
    time.sleep(1.1)
    b1 = make_space(bob, f"{tag}-bob")
    hidden = make_space(alice, f"{tag}-priv", private=True)

    assert {s.id for s in anon.api.list_spaces(search=tag)} == {a1, a2, b1}
    assert {s.id for s in bob.api.list_spaces(search=tag)} == {a1, a2, b1}
    assert {s.id for s in alice.api.list_spaces(search=tag)} == {a1, a2, b1, hidden}
    assert {s.id for s in anon.api.list_spaces(search=tag, author="bob")} == {b1}
    assert {s.id for s in alice.api.list_spaces(search=tag, author="alice")} == {a1, a2, hidden}

    newest_first = [s.id for s in anon.api.list_spaces(search=tag, sort="created_at")]
    assert newest_first == [b1, a2, a1]

    assert len(list(anon.api.list_spaces(search=tag, limit=2))) == 2
    assert list(anon.api.list_spaces(search=unique("nothing-matches"))) == []


def test_list_spaces_paginates_with_link_header(server, alice, make_space):
    tag = unique("page")
    created = {make_space(alice, f"{tag}-{i}") for i in range(5)}

    seen: list[str] = []
    url: str | None = f"{server.url}/api/spaces?search={tag}&limit=2"
    pages = 0
    with httpx.Client(timeout=30) as client:
        while url:
            r = client.get(url)  # the real client follows the Link URL exactly, sending no params of its own
            assert r.status_code == 200, r.text
            page = r.json()
            assert isinstance(page, list) and len(page) <= 2
            seen += [s["id"] for s in page]
            pages += 1
            assert pages <= 5, "pagination does not terminate"
            nxt = r.links.get("next", {}).get("url")
            if nxt:
                assert nxt.startswith(server.url), f"Link must be absolute on the endpoint: {nxt}"
            url = nxt
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == created
    # and the client walks the same pages
    assert {s.id for s in alice.api.list_spaces(search=tag)} == created


# ---------------------------------------------------------------------------------------------------------------
# files: upload, tree, delete, commit


def test_upload_folder_tree_and_deletes(tmp_path, alice, make_space):
    repo_id = make_space(alice)
    files = {
        "top.txt": "top\n",
        "sub/b.txt": "bee\n",
        "sub/keep.md": "keep\n",
        "sub/deeper/c.txt": "sea\n",
        "sub/deeper/d e.json": '{"x": 1}\n',
    }
    info = alice.api.upload_folder(
        folder_path=write_tree(tmp_path / "f1", files), repo_id=repo_id, repo_type="space",
    )
    assert SHA_RE.match(info.oid)
    assert alice.api.space_info(repo_id).sha == info.oid

    all_files = set(alice.api.list_repo_files(repo_id, repo_type="space"))
    assert all_files == {"README.md", ".gitattributes", *files}

    top = {(type(e).__name__, e.path) for e in alice.api.list_repo_tree(repo_id, repo_type="space")}
    assert ("RepoFolder", "sub") in top
    assert ("RepoFile", "top.txt") in top
    assert not any(p.startswith("sub/") for _, p in top), "non-recursive listing must not descend"

    sub = {e.path for e in alice.api.list_repo_tree(repo_id, path_in_repo="sub", repo_type="space")}
    assert sub == {"sub/b.txt", "sub/keep.md", "sub/deeper"}
    deeper = list(alice.api.list_repo_tree(repo_id, path_in_repo="sub/deeper", repo_type="space"))  # sub%2Fdeeper
    assert {e.path for e in deeper} == {"sub/deeper/c.txt", "sub/deeper/d e.json"}
    c = next(e for e in deeper if e.path == "sub/deeper/c.txt")
    assert c.size == 4
    assert c.blob_id == git_blob_sha1(b"sea\n")
    rec = {e.path for e in alice.api.list_repo_tree(repo_id, path_in_repo="sub", recursive=True, repo_type="space")}
    assert {"sub/b.txt", "sub/keep.md", "sub/deeper", "sub/deeper/c.txt", "sub/deeper/d e.json"} <= rec

    # tree at a commit sha (what snapshot_download does)
    at_sha = {e.path for e in alice.api.list_repo_tree(repo_id, revision=info.oid, recursive=True, repo_type="space")}
    assert set(files) <= at_sha

    with pytest.raises(EntryNotFoundError):
        list(alice.api.list_repo_tree(repo_id, path_in_repo="no/such/dir", repo_type="space"))
    with pytest.raises(RevisionNotFoundError):
        list(alice.api.list_repo_tree(repo_id, revision="no-such-branch", repo_type="space"))

    # upload_folder with delete_patterns: replace every .txt under sub/ by the new folder content
    alice.api.upload_folder(
        folder_path=write_tree(tmp_path / "f2", {"new.md": "new\n"}),
        path_in_repo="sub",
        repo_id=repo_id,
        repo_type="space",
        delete_patterns=["*.txt"],
    )
    assert set(alice.api.list_repo_files(repo_id, repo_type="space")) == {
        "README.md", ".gitattributes", "top.txt", "sub/keep.md", "sub/new.md", "sub/deeper/d e.json",
    }

    alice.api.delete_file("top.txt", repo_id, repo_type="space")
    assert "top.txt" not in alice.api.list_repo_files(repo_id, repo_type="space")
    with pytest.raises(EntryNotFoundError):
        alice.api.delete_file("top.txt", repo_id, repo_type="space")

    alice.api.delete_folder("sub", repo_id, repo_type="space")
    assert set(alice.api.list_repo_files(repo_id, repo_type="space")) == {"README.md", ".gitattributes"}


def test_create_commit_multiple_operations_and_parent_commit(alice, make_space):
    repo_id = make_space(alice)
    base = alice.api.upload_file(path_or_fileobj=b"old\n", path_in_repo="old.txt", repo_id=repo_id, repo_type="space")
    assert base.commit_message == "Upload old.txt with huggingface_hub"

    info = alice.api.create_commit(
        repo_id,
        operations=[
            CommitOperationAdd("x.txt", b"x\n"),
            CommitOperationAdd("d/y.bin", bytes(range(256))),
            CommitOperationDelete("old.txt"),
        ],
        commit_message="three ops",
        commit_description="several operations at once",
        parent_commit=base.oid,
        repo_type="space",
    )
    assert SHA_RE.match(info.oid)
    assert info.oid != base.oid
    assert f"/commit/{info.oid}" in info.commit_url
    assert alice.api.space_info(repo_id).sha == info.oid
    files = set(alice.api.list_repo_files(repo_id, repo_type="space"))
    assert {"x.txt", "d/y.bin"} <= files and "old.txt" not in files

    commits = alice.api.list_repo_commits(repo_id, repo_type="space")
    assert commits[0].commit_id == info.oid
    assert commits[0].title == "three ops"
    assert "several operations at once" in commits[0].message
    assert commits[1].commit_id == base.oid

    # stale parent: rejected, nothing written
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.create_commit(
            repo_id,
            operations=[CommitOperationAdd("z.txt", b"z")],
            commit_message="stale",
            parent_commit=base.oid,
            repo_type="space",
        )
    assert 400 <= exc.value.response.status_code < 500
    assert alice.api.space_info(repo_id).sha == info.oid
    assert "z.txt" not in alice.api.list_repo_files(repo_id, repo_type="space")

    # copy within the repo
    alice.api.create_commit(
        repo_id, operations=[CommitOperationCopy("x.txt", "x-copy.txt")], commit_message="copy", repo_type="space"
    )
    p = alice.api.hf_hub_download(repo_id, "x-copy.txt", repo_type="space")
    assert Path(p).read_bytes() == b"x\n"


def test_commit_history_lists_every_commit(alice, make_space):
    repo_id = make_space(alice)
    initial = alice.api.list_repo_commits(repo_id, repo_type="space")
    assert len(initial) >= 1 and all(SHA_RE.match(c.commit_id) for c in initial)
    oids = []
    for i in range(3):
        oids.append(
            alice.api.upload_file(
                path_or_fileobj=f"{i}\n".encode(), path_in_repo=f"f{i}.txt", repo_id=repo_id, repo_type="space",
                commit_message=f"commit {i}",
            ).oid
        )
    commits = alice.api.list_repo_commits(repo_id, repo_type="space")
    assert [c.commit_id for c in commits] == list(reversed(oids)) + [c.commit_id for c in initial]
    assert [c.title for c in commits[:3]] == ["commit 2", "commit 1", "commit 0"]


# ---------------------------------------------------------------------------------------------------------------
# downloads


def test_downloads_metadata_and_cache(server, tmp_path, alice, make_space):
    repo_id = make_space(alice)
    payload = bytes(range(256)) * 40 + b"\xff\xfe tail"
    info = alice.api.create_commit(
        repo_id,
        operations=[CommitOperationAdd("data/blob.dat", payload), CommitOperationAdd("hello.txt", b"hello\n")],
        commit_message="add data",
        repo_type="space",
    )
    cache = tmp_path / "cache"
    path = alice.api.hf_hub_download(repo_id, "data/blob.dat", repo_type="space", cache_dir=cache)
    assert Path(path).read_bytes() == payload
    assert info.oid in Path(path).parts  # snapshots/<commit>/data/blob.dat

    meta = alice.api.get_hf_file_metadata(url=f"{server.url}/spaces/{repo_id}/resolve/main/data/blob.dat")
    assert meta.commit_hash == info.oid
    assert meta.size == len(payload)
    assert meta.etag == git_blob_sha1(payload)

    assert alice.api.file_exists(repo_id, "hello.txt", repo_type="space")
    assert not alice.api.file_exists(repo_id, "nope.txt", repo_type="space")
    with pytest.raises(EntryNotFoundError):
        alice.api.hf_hub_download(repo_id, "nope.txt", repo_type="space", cache_dir=tmp_path / "c2")

    snap = Path(alice.api.snapshot_download(repo_id, repo_type="space", cache_dir=tmp_path / "snap"))
    assert (snap / "data/blob.dat").read_bytes() == payload
    assert (snap / "hello.txt").read_bytes() == b"hello\n"
    assert (snap / "README.md").exists()

    # with a commit sha and a warm cache no request is made: a dead endpoint still answers from the cache
    first = alice.api.hf_hub_download(repo_id, "hello.txt", repo_type="space", revision=info.oid, cache_dir=cache)
    dead = HfApi(endpoint="http://127.0.0.1:9", token=alice.token)
    again = dead.hf_hub_download(repo_id, "hello.txt", repo_type="space", revision=info.oid, cache_dir=cache)
    assert again == first and Path(again).read_bytes() == b"hello\n"

    # revisions: old commit still downloadable, content at that revision
    alice.api.upload_file(path_or_fileobj=b"changed\n", path_in_repo="hello.txt", repo_id=repo_id, repo_type="space")
    old = alice.api.hf_hub_download(repo_id, "hello.txt", repo_type="space", revision=info.oid, cache_dir=tmp_path / "c3")
    new = alice.api.hf_hub_download(repo_id, "hello.txt", repo_type="space", cache_dir=tmp_path / "c3")
    assert Path(old).read_bytes() == b"hello\n" and Path(new).read_bytes() == b"changed\n"


def test_private_space_download_needs_access(tmp_path, alice, bob, make_space):
    repo_id = make_space(alice, private=True)
    assert Path(alice.api.hf_hub_download(repo_id, "README.md", repo_type="space", cache_dir=tmp_path / "a")).exists()
    with pytest.raises(RepositoryNotFoundError):
        bob.api.hf_hub_download(repo_id, "README.md", repo_type="space", cache_dir=tmp_path / "b")


def test_api_upload_is_a_real_git_commit(server, tmp_path, alice, make_space):
    repo_id = make_space(alice)
    info = alice.api.upload_file(
        path_or_fileobj=b"print('hi')\n", path_in_repo="tool.py", repo_id=repo_id, repo_type="space"
    )
    dest = tmp_path / "clone"
    clone(server, repo_id, dest)
    assert head(dest) == info.oid == alice.api.space_info(repo_id).sha
    assert (dest / "tool.py").read_bytes() == b"print('hi')\n"


# ---------------------------------------------------------------------------------------------------------------
# runtime


def test_runtime_pause_restart_sleep_and_hardware(alice, make_space):
    repo_id = make_space(alice)
    rt = alice.api.get_space_runtime(repo_id)
    assert rt.stage == "NO_APP_FILE"
    assert rt.hardware in (None, "cpu-basic")  # `current` is null while nothing runs
    assert rt.requested_hardware == "cpu-basic"

    rt = alice.api.pause_space(repo_id)
    assert rt.stage == "PAUSED"
    assert alice.api.get_space_runtime(repo_id).stage == "PAUSED"
    assert alice.api.space_info(repo_id).runtime.stage == "PAUSED"

    alice.api.restart_space(repo_id)
    assert alice.api.get_space_runtime(repo_id).stage != "PAUSED"

    rt = alice.api.set_space_sleep_time(repo_id, 7200)
    assert rt.sleep_time == 7200
    assert alice.api.get_space_runtime(repo_id).sleep_time == 7200

    rt = alice.api.request_space_hardware(repo_id, "cpu-basic")
    assert rt.requested_hardware == "cpu-basic"

    try:
        rt = alice.api.request_space_hardware(repo_id, "cpu-upgrade")
    except HfHubHTTPError as e:  # a free user may be refused by quota, but clearly
        assert e.response.status_code in (402, 403), e
        assert e.server_message, "a refusal must say why"
        assert alice.api.get_space_runtime(repo_id).requested_hardware == "cpu-basic"
    else:
        assert rt.requested_hardware == "cpu-upgrade"
        assert alice.api.get_space_runtime(repo_id).requested_hardware == "cpu-upgrade"

    with pytest.raises(BadRequestError):
        alice.api.request_space_hardware(repo_id, "potato-xl")


def test_secrets_are_write_only(server, alice, make_space):
    secret = "s3cr3t-" + os.urandom(12).hex()
    repo_id = make_space(alice)
    alice.api.add_space_secret(repo_id, "TOKEN_A", secret, description="first")
    alice.api.add_space_secret(repo_id, "TOKEN_B", secret + "-b")
    alice.api.add_space_variable(repo_id, "PUBLIC", "visible")

    secrets = alice.api.get_space_secrets(repo_id)
    assert set(secrets) == {"TOKEN_A", "TOKEN_B"}
    assert secrets["TOKEN_A"].description == "first"

    h = alice.headers
    answers = [
        httpx.get(f"{server.url}/api/spaces/{repo_id}", headers=h, timeout=30),
        httpx.get(f"{server.url}/api/spaces/{repo_id}?full=true", headers=h, timeout=30),
        httpx.get(f"{server.url}/api/spaces/{repo_id}/runtime", headers=h, timeout=30),
        httpx.get(f"{server.url}/api/spaces/{repo_id}/variables", headers=h, timeout=30),
        httpx.get(f"{server.url}/api/spaces/{repo_id}/secrets", headers=h, timeout=30),
        httpx.get(f"{server.url}/api/spaces", params={"search": repo_id.split("/")[1], "full": "true"}, headers=h, timeout=30),
    ]
    for r in answers:
        assert r.status_code == 200, (r.request.url, r.text)
        assert secret not in r.text, f"secret value leaked by {r.request.url}"
    assert secret not in json.dumps(alice.api.space_info(repo_id).__dict__, default=str)

    alice.api.delete_space_secret(repo_id, "TOKEN_A")
    assert set(alice.api.get_space_secrets(repo_id)) == {"TOKEN_B"}


def test_variables_full_map_upsert_and_delete(alice, make_space):
    repo_id = make_space(alice)
    assert alice.api.get_space_variables(repo_id) == {}
    out = alice.api.add_space_variable(repo_id, "A", "1", description="first")
    assert {k: v.value for k, v in out.items()} == {"A": "1"}
    out = alice.api.add_space_variable(repo_id, "B", "2")
    assert {k: v.value for k, v in out.items()} == {"A": "1", "B": "2"}
    out = alice.api.add_space_variable(repo_id, "A", "one")  # upsert
    assert {k: v.value for k, v in out.items()} == {"A": "one", "B": "2"}
    got = alice.api.get_space_variables(repo_id)
    assert {k: v.value for k, v in got.items()} == {"A": "one", "B": "2"}
    out = alice.api.delete_space_variable(repo_id, "A")
    assert {k: v.value for k, v in out.items()} == {"B": "2"}
    assert set(alice.api.get_space_variables(repo_id)) == {"B"}


# ---------------------------------------------------------------------------------------------------------------
# duplicate / delete


def _duplicated_from(api: HfApi, repo_id: str) -> str | None:
    info = api.space_info(repo_id)
    if info.card_data is not None and info.card_data.get("duplicated_from"):
        return info.card_data.get("duplicated_from")
    raw = getattr(info, "duplicated_from", None) or getattr(info, "duplicatedFrom", None)
    return raw


def test_duplicate_space_copies_history_and_variables_not_secrets(server, alice, bob, make_space):
    src = make_space(alice, space_variables=[{"key": "COLOR", "value": "blue"}],
                     space_secrets=[{"key": "PASSWORD", "value": "hunter2-" + os.urandom(4).hex()}])
    alice.api.upload_file(path_or_fileobj=APP_PY.encode(), path_in_repo="app.py", repo_id=src, repo_type="space")
    alice.api.upload_file(path_or_fileobj=b"x", path_in_repo="data/x.txt", repo_id=src, repo_type="space")
    src_commits = [c.commit_id for c in alice.api.list_repo_commits(src, repo_type="space")]

    url = bob.api.duplicate_repo(src, repo_type="space")
    dst = f"bob/{src.split('/')[1]}"
    assert url.repo_id == dst
    assert str(url).startswith(f"{server.url}/spaces/{dst}")

    info = bob.api.space_info(dst)
    assert info.private is False, "a duplicate has its source's visibility unless asked otherwise (as on the Hub)"
    dst_commits = [c.commit_id for c in bob.api.list_repo_commits(dst, repo_type="space")]
    assert dst_commits[-len(src_commits):] == src_commits, "history must be copied"
    assert len(dst_commits) - len(src_commits) <= 1
    assert set(bob.api.list_repo_files(dst, repo_type="space")) >= {"app.py", "data/x.txt", "README.md"}
    assert {k: v.value for k, v in bob.api.get_space_variables(dst).items()} == {"COLOR": "blue"}
    assert bob.api.get_space_secrets(dst) == {}
    assert bob.api.get_space_runtime(dst).requested_hardware == "cpu-basic"
    assert _duplicated_from(bob.api, dst) == src
    # the source is untouched
    assert [c.commit_id for c in alice.api.list_repo_commits(src, repo_type="space")] == src_commits

    with pytest.raises(HfHubHTTPError) as exc:
        bob.api.duplicate_repo(src, repo_type="space")
    assert exc.value.response.status_code == 409
    assert "url" in exc.value.response.json()
    again = bob.api.duplicate_repo(src, repo_type="space", exist_ok=True)
    assert again.repo_id == dst

    private = bob.api.duplicate_repo(src, f"bob/{unique('privcopy')}", repo_type="space", private=True)
    assert bob.api.space_info(private.repo_id).private is True


def test_a_private_spaces_duplicate_is_private_unless_asked(alice, make_space):
    src = make_space(alice, private=True)
    copy = alice.api.duplicate_repo(src, f"alice/{unique('copy')}", repo_type="space")
    assert alice.api.space_info(copy.repo_id).private is True
    public = alice.api.duplicate_repo(src, f"alice/{unique('pubcopy')}", repo_type="space", visibility="public")
    assert alice.api.space_info(public.repo_id).private is False


def test_duplicate_private_space_of_someone_else_is_not_found(alice, bob, make_space):
    src = make_space(alice, private=True)
    with pytest.raises(RepositoryNotFoundError):
        bob.api.duplicate_repo(src, repo_type="space")
    assert not bob.api.repo_exists(f"bob/{src.split('/')[1]}", repo_type="space")


def test_delete_repo_and_missing_ok(alice, bob, make_space):
    repo_id = make_space(alice)
    with pytest.raises(HfHubHTTPError) as exc:
        bob.api.delete_repo(repo_id, repo_type="space")
    assert exc.value.response.status_code in (403, 404)
    assert alice.api.repo_exists(repo_id, repo_type="space")

    alice.api.delete_repo(repo_id, repo_type="space")
    assert not alice.api.repo_exists(repo_id, repo_type="space")
    with pytest.raises(RepositoryNotFoundError):
        alice.api.delete_repo(repo_id, repo_type="space")
    alice.api.delete_repo(repo_id, repo_type="space", missing_ok=True)
    # the name is free again
    alice.api.create_repo(repo_id, repo_type="space", space_sdk="static")
    assert alice.api.space_info(repo_id).sdk == "static"



def test_delete_or_move_without_the_space_type_leaves_the_space(alice, make_space):
    """Clients leave repo_type out for models: a model alice/x is not the Space alice/x (it once deleted it)."""
    repo_id = make_space(alice)
    with pytest.raises(RepositoryNotFoundError):
        alice.api.delete_repo(repo_id)
    for repo_type in ("model", "dataset"):
        with pytest.raises(RepositoryNotFoundError):
            alice.api.delete_repo(repo_id, repo_type=repo_type)
    alice.api.delete_repo(repo_id, missing_ok=True)  # a missing model: nothing to do, and still no Space gone
    with pytest.raises(RepositoryNotFoundError):
        alice.api.move_repo(repo_id, repo_id + "-moved")
    assert alice.api.repo_exists(repo_id, repo_type="space")

    # the hf CLI, as a user types it (the suite turns implicit tokens off: --token says it)
    hf = [str(Path(sys.executable).with_name("hf")), "repos", "delete", repo_id, "--token", alice.token, "--yes"]
    env = {**os.environ, "HF_ENDPOINT": alice.server.url, "NO_COLOR": "1"}
    res = subprocess.run(hf, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "not found" in (res.stdout + res.stderr).lower(), res.stdout + res.stderr
    assert alice.api.repo_exists(repo_id, repo_type="space")
    res = subprocess.run([*hf, "--repo-type", "space"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not alice.api.repo_exists(repo_id, repo_type="space")


# ---------------------------------------------------------------------------------------------------------------
# logs


@pytest.mark.parametrize("build", [True, False], ids=["build", "run"])
def test_fetch_space_logs_completes(alice, make_space, build):
    repo_id = make_space(alice)
    result: dict[str, object] = {}

    def read() -> None:
        try:
            result["lines"] = list(alice.api.fetch_space_logs(repo_id, build=build))
        except BaseException as e:  # noqa: BLE001
            result["error"] = e

    t = threading.Thread(target=read, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(45)
    assert not t.is_alive(), "fetch_space_logs(follow=False) hung"
    assert "error" not in result, result.get("error")
    assert time.monotonic() - t0 < 45
    assert all(isinstance(line, str) for line in result["lines"])  # type: ignore[union-attr]


@pytest.mark.parametrize("broken", [False, True], ids=["built", "failed"])
def test_followed_build_log_ends_with_the_build(alice, make_space, broken):
    """``fetch_space_logs(build=True, follow=True)`` right after a push ends once the build is over (built or
    failed), as on the Hub, with the build's last line: a reader's loop over it ends by itself."""
    repo_id = make_space(alice)
    files = [CommitOperationAdd("app.py", APP_PY.encode()), CommitOperationAdd("README.md", README_APP.encode())]
    if broken:  # on the local backend, a Debian package missing from the host fails the build
        files.append(CommitOperationAdd("packages.txt", b"no-such-package-spaces-test\n"))
    alice.api.create_commit(repo_id, operations=files, commit_message="app", repo_type="space")
    result: dict[str, object] = {}

    def read() -> None:
        try:
            result["lines"] = list(alice.api.fetch_space_logs(repo_id, build=True, follow=True))
        except BaseException as e:  # noqa: BLE001
            result["error"] = e

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(150)
    assert not t.is_alive(), "a followed build log did not end after the build"
    assert "error" not in result, result.get("error")
    lines = result["lines"]
    # one timestamp per line, the event's: the text starts with the phase, no clock time of its own
    assert lines[0].startswith("queued ") and lines[-1].startswith("failed " if broken else "built "), lines
    assert not [line for line in lines if re.match(r"\[\d\d:\d\d:\d\d\]", line)], lines
    stage = alice.api.get_space_runtime(repo_id).stage
    if broken:
        assert stage == "BUILD_ERROR", lines
        assert "no-such-package-spaces-test" in lines[-1], lines
    else:
        assert stage not in ("BUILDING", "BUILD_ERROR"), (stage, lines)
        assert "finished" in lines[-1], lines
    # the build is over: following it again replays it and ends at once
    again = list(alice.api.fetch_space_logs(repo_id, build=True, follow=True))
    assert again[-1] == lines[-1]


# ---------------------------------------------------------------------------------------------------------------
# stage follows the content


def test_stage_follows_app_file_and_readme(server, alice, make_space):
    repo_id = make_space(alice)
    assert alice.api.get_space_runtime(repo_id).stage == "NO_APP_FILE"
    alice.api.create_commit(
        repo_id,
        operations=[CommitOperationAdd("app.py", APP_PY.encode()), CommitOperationAdd("README.md", README_APP.encode())],
        commit_message="add app",
        repo_type="space",
    )
    rt = wait_stage(server, repo_id, alice.token, lambda s: s not in ("NO_APP_FILE", "CONFIG_ERROR"),
                    what="stage to leave NO_APP_FILE after adding app.py")
    assert rt["stage"] not in ("NO_APP_FILE", "CONFIG_ERROR")
    info = alice.api.space_info(repo_id)
    assert info.card_data.get("title") == "E2E"
    assert info.card_data.get("colorFrom") == "blue"

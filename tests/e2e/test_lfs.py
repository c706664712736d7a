"""Git LFS (issue 23's large-file items) against a live server with Debian's ``git-lfs``, real ``git`` and the real
``huggingface_hub``: push and clone of LFS-tracked files for every repository type, pointer semantics in the hub
API (tree, paths-info, downloads with the Hub's headers and Range), auth of the batch API, bad input, objects
stored once and never readable through a repository that did not upload them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from e2e.helpers import PREFIX, git_env, header_line, ndjson, remote
from harness import unique
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

pytestmark = [pytest.mark.timeout(240),
              pytest.mark.skipif(shutil.which("git-lfs") is None, reason="needs git-lfs (apt-get install git-lfs)")]

MiB = 1 << 20


def lfs_git(*args: str, cwd: Path | None = None, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """git with git-lfs's filters configured (what `git lfs install` puts in a user's ~/.gitconfig)."""
    e = git_env(**env)
    conf = Path(e["HOME"]) / "lfs.gitconfig"
    if not conf.exists():
        conf.write_text(Path(e["GIT_CONFIG_GLOBAL"]).read_text() + '[filter "lfs"]\n\tclean = git-lfs clean -- %f\n'
                        "\tsmudge = git-lfs smudge -- %f\n\tprocess = git-lfs filter-process\n\trequired = true\n")
    e["GIT_CONFIG_GLOBAL"] = str(conf)
    res = subprocess.run(["git", *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=180)
    if check and res.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} exited {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


def lfs_base(server, kind: str, repo_id: str) -> str:  # noqa: ANN001
    return f"{server.url}/{PREFIX[kind]}{repo_id}.git/info/lfs"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def push_lfs_files(server, owner, kind: str, repo_id: str, work: Path, files: dict[str, bytes]) -> str:  # noqa: ANN001
    """Clone, track *.bin and *.png with git-lfs, add ``files``, push; returns the pushed commit."""
    lfs_git("clone", "-q", remote(server, kind, repo_id, owner.token), str(work))
    lfs_git("lfs", "install", "--local", cwd=work)
    lfs_git("lfs", "track", "*.bin", "*.png", cwd=work)
    for path, data in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(data)
    lfs_git("add", "-A", cwd=work)
    lfs_git("commit", "-q", "-m", "add large files", cwd=work)
    out = lfs_git("push", "-q", "origin", "HEAD:main", cwd=work)
    # git-lfs's own errors, not the hub's remote: lines (a static Space without index.html says why it waits)
    assert not [line for line in out.stderr.lower().splitlines()
                if "error" in line and not line.startswith("remote:")], out.stderr
    return lfs_git("rev-parse", "HEAD", cwd=work).stdout.strip()


@pytest.mark.parametrize("kind", ["model", "dataset", "space"])
def test_git_lfs_push_then_clone_and_hub_downloads(server, alice, make_repo, tmp_path, kind):  # noqa: ANN001
    repo_id = make_repo(alice, kind)
    big = os.urandom(20 * MiB if kind == "model" else 3 * MiB)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)
    sha = push_lfs_files(server, alice, kind, repo_id, tmp_path / "w", {"weights.bin": big, "img/example.png": png,
                                                                       "notes.txt": b"plain\n"})
    # git holds pointers; the store holds each object once, under its sha256
    blob = lfs_git("--git-dir", str(tmp_path / "w" / ".git"), "cat-file", "-p", f"{sha}:weights.bin").stdout
    assert blob.startswith("version https://git-lfs.github.com/spec/v1") and sha256(big) in blob
    stored = server.data_dir / "lfs" / "objects" / sha256(big)[:2] / sha256(big)[2:4] / sha256(big)
    assert stored.read_bytes() == big
    assert (server.data_dir / "lfs").stat().st_mode & 0o077 == 0  # the sandboxed Spaces' uids cannot look in

    # tree and paths-info: the real size and the lfs field, as the Hub answers
    tree = {e.path: e for e in alice.api.list_repo_tree(repo_id, repo_type=kind, recursive=True)}
    assert tree["weights.bin"].size == len(big)
    assert tree["weights.bin"].lfs.sha256 == sha256(big) and tree["weights.bin"].lfs.size == len(big)
    assert 100 < tree["weights.bin"].lfs.pointer_size < 200
    assert tree["notes.txt"].lfs is None and tree["notes.txt"].size == 6
    info = {e.path: e for e in alice.api.get_paths_info(repo_id, ["img/example.png", "notes.txt"], repo_type=kind)}
    assert info["img/example.png"].lfs.sha256 == sha256(png) and info["img/example.png"].size == len(png)
    files = {s.rfilename: s for s in alice.api.repo_info(repo_id, repo_type=kind, files_metadata=True).siblings}
    assert files["weights.bin"].lfs.sha256 == sha256(big) and files["weights.bin"].size == len(big)

    # downloads give the real bytes, with the Hub's headers, and Range
    path = hf_hub_download(repo_id, "weights.bin", repo_type=kind, endpoint=server.url, token=alice.token,
                           cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == big
    url = f"{server.url}/{PREFIX[kind]}{repo_id}/resolve/main/weights.bin"
    with alice.http() as http:
        head = http.head(url)
        assert head.status_code == 200, head.text
        assert head.headers["x-linked-size"] == str(len(big)) == head.headers["content-length"]
        assert head.headers["x-linked-etag"] == f'"{sha256(big)}"' == head.headers["etag"]
        assert head.headers["x-repo-commit"] == sha
        part = http.get(url, headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == big[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(big)}"
        assert http.get(url, headers={"Range": f"bytes={len(big)}-"}).status_code == 416
        # the web pages: the real size, never the pointer text shown as the file
        page = http.get(f"{server.url}/{PREFIX[kind]}{repo_id}/blob/main/weights.bin")
        assert page.status_code == 200 and "git-lfs.github.com" not in page.text, page.text[-3000:]
        assert f"{len(big) >> 20}.0 MB" in page.text
    snap = Path(snapshot_download(repo_id, repo_type=kind, endpoint=server.url, token=alice.token,
                                  cache_dir=tmp_path / "snap"))
    assert (snap / "img" / "example.png").read_bytes() == png and (snap / "weights.bin").read_bytes() == big

    # a duplicate reads the same objects (stored once), and keeps them when the original goes
    copy_id = f"alice/{unique('dup')}"
    alice.api.duplicate_repo(repo_id, copy_id, repo_type=kind)
    try:
        got = hf_hub_download(copy_id, "img/example.png", repo_type=kind, endpoint=server.url, token=alice.token,
                              cache_dir=tmp_path / "dup")
        assert Path(got).read_bytes() == png
    finally:
        alice.api.delete_repo(copy_id, repo_type=kind)

    # a fresh clone checks the real files out (smudge); a clone without smudge gets them with `git lfs pull`
    lfs_git("clone", "-q", remote(server, kind, repo_id, alice.token), str(tmp_path / "c1"))
    assert (tmp_path / "c1" / "weights.bin").read_bytes() == big
    lfs_git("clone", "-q", remote(server, kind, repo_id, alice.token), str(tmp_path / "c2"), GIT_LFS_SKIP_SMUDGE="1")
    assert (tmp_path / "c2" / "img" / "example.png").read_bytes().startswith(b"version https://git-lfs")
    lfs_git("lfs", "pull", cwd=tmp_path / "c2")
    assert (tmp_path / "c2" / "img" / "example.png").read_bytes() == png


def test_a_repo_cloned_from_elsewhere_with_lfs_history_pushes_whole(server, alice, make_repo, tmp_path):  # noqa: ANN001
    """The "cloned from the Hub" case: a local repository with LFS files over several commits, pushed to a new
    remote here: git-lfs's pre-push hook uploads every object the pushed history names."""
    work = tmp_path / "from-hub"
    lfs_git("init", "-q", str(work))
    lfs_git("lfs", "install", "--local", cwd=work)
    lfs_git("lfs", "track", "*.png", cwd=work)
    versions = [os.urandom(3000 + i) for i in range(3)]
    for i, data in enumerate(versions):
        (work / "example.png").write_bytes(data)
        lfs_git("add", "-A", cwd=work)
        lfs_git("commit", "-q", "-m", f"v{i}", cwd=work)
    repo_id = make_repo(alice, "model")
    lfs_git("remote", "add", "here", remote(server, "model", repo_id, alice.token), cwd=work)
    lfs_git("push", "-q", "--force", "here", "HEAD:main", cwd=work)  # over the seeded first commit
    for i, data in enumerate(versions):  # every version's object was uploaded, not only the tip's
        rev = lfs_git("rev-parse", f"HEAD~{2 - i}", cwd=work).stdout.strip()
        got = hf_hub_download(repo_id, "example.png", revision=rev, endpoint=server.url, token=alice.token,
                              cache_dir=tmp_path / "cache")
        assert Path(got).read_bytes() == data


def _batch(http: httpx.Client, base: str, operation: str, objects: list[dict]) -> httpx.Response:
    return http.post(f"{base}/objects/batch", json={"operation": operation, "transfers": ["basic"],
                                                    "objects": objects},
                     headers={"Accept": "application/vnd.git-lfs+json"})


def test_batch_api_auth_follows_the_repository(server, alice, alice_read, bob, anon, make_repo):  # noqa: ANN001
    repo_id = make_repo(alice, "dataset", private=True)
    base = lfs_base(server, "dataset", repo_id)
    data = b"private bytes"
    obj = [{"oid": sha256(data), "size": len(data)}]
    with anon.http() as http:
        r = _batch(http, base, "download", obj)
        assert r.status_code == 401 and "LFS-Authenticate" in r.headers
    with bob.http() as http:
        assert _batch(http, base, "download", obj).status_code == 404
    with alice_read.http() as http:
        assert _batch(http, base, "upload", obj).status_code == 403
        assert http.put(f"{base}/objects/{sha256(data)}", content=data).status_code == 403
    with alice.http() as http:
        up = _batch(http, base, "upload", obj).json()["objects"][0]
        href = up["actions"]["upload"]["href"]
        assert "header" not in up["actions"]["upload"]  # no credential in the answer: the link is signed
    other = os.urandom(10)
    # a signed link is good for its own object and operation only, and cannot be forged
    assert httpx.put(href.replace(sha256(data), sha256(other)), content=other).status_code == 403
    assert httpx.put(href[:-3] + "AAA", content=data).status_code == 403
    assert httpx.get(href).status_code == 403  # an upload link is no download link
    assert httpx.put(href, content=data).status_code == 200  # what huggingface_hub does: a PUT, no header
    with alice.http() as http:
        assert http.post(up["actions"]["verify"]["href"], json=obj[0]).status_code == 200
        assert "actions" not in _batch(http, base, "upload", obj).json()["objects"][0]  # already here
    with alice_read.http() as http:
        down = _batch(http, base, "download", obj).json()["objects"][0]["actions"]["download"]
    assert httpx.get(down["href"]).content == data
    with alice_read.http() as http:
        assert http.get(f"{base}/objects/{sha256(data)}").content == data  # unsigned, with a token


def test_objects_are_shared_only_by_proof_of_possession(server, alice, bob, make_repo, tmp_path):  # noqa: ANN001
    """An object is stored once, but a repository reads it only once a writer of that repository uploaded its
    bytes: knowing the sha256 of alice's private file gives bob nothing."""
    secret = os.urandom(4000)
    private = make_repo(alice, "model", private=True)
    push_lfs_files(server, alice, "model", private, tmp_path / "a", {"secret.bin": secret})
    mine = make_repo(bob, "model")
    base = lfs_base(server, "model", mine)
    obj = [{"oid": sha256(secret), "size": len(secret)}]
    with bob.http() as http:
        up = _batch(http, base, "upload", obj).json()["objects"][0]
        assert "upload" in up["actions"]  # not "already there": bob must send the bytes
        wrong = os.urandom(len(secret))
        r = http.put(up["actions"]["upload"]["href"], content=wrong)
        assert r.status_code == 422 and "hash" in r.json()["message"]
        down = _batch(http, base, "download", obj).json()["objects"][0]
        assert down["error"]["code"] == 404
        assert http.get(f"{base}/objects/{sha256(secret)}").status_code == 404
        # a pointer pushed without its object: the hub says what is missing, never serves the pointer text
        bob.api.upload_file(path_or_fileobj=(
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256(secret)}\nsize {len(secret)}\n"
        ).encode(), path_in_repo="stolen.dat", repo_id=mine)
        r = http.get(f"{server.url}/{mine}/resolve/main/stolen.dat")
        assert r.status_code == 404 and r.headers["x-error-code"] == "LfsObjectMissing"
        assert "git lfs push" in r.json()["error"]
    with pytest.raises(HfHubHTTPError, match="never uploaded"):  # the client's own error says why
        hf_hub_download(mine, "stolen.dat", endpoint=server.url, token=bob.token, cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").rglob("stolen.dat"))
    # the same bytes uploaded by bob himself: stored once, now readable in his repository
    with bob.http() as http:
        assert http.put(f"{base}/objects/{sha256(secret)}", content=secret).status_code == 200
        assert http.get(f"{server.url}/{mine}/resolve/main/stolen.dat").content == secret
    # deleting one repository leaves the object the other one uses
    alice.api.delete_repo(private)
    with bob.http() as http:
        assert http.get(f"{server.url}/{mine}/resolve/main/stolen.dat").content == secret


def test_bad_input_is_a_clear_4xx_and_stores_nothing(server, alice, make_repo):  # noqa: ANN001
    repo_id = make_repo(alice, "model")
    base = lfs_base(server, "model", repo_id)
    data = os.urandom(1000)
    oid = sha256(data)
    objects = server.data_dir / "lfs" / "objects"
    with alice.http() as http:
        bad = _batch(http, base, "upload", [{"oid": "NOTHEX", "size": 3}, {"oid": oid, "size": -1}]).json()
        assert [o["error"]["code"] for o in bad["objects"]] == [422, 422]
        assert _batch(http, base, "delete", []).status_code == 422
        assert http.post(f"{base}/objects/batch", content=b"{nope").status_code == 422
        assert http.put(f"{base}/objects/{oid.upper()}", content=data).status_code == 422
        r = http.put(f"{base}/objects/{oid}", content=data[:-1])  # size differs from the hash's object
        assert r.status_code == 422
        r = http.put(f"{base}/objects/{sha256(b'other')}", content=data)
        assert r.status_code == 422 and "hash" in r.json()["message"]
        assert not (objects / oid[:2] / oid[2:4] / oid).exists()
        assert http.post(f"{base}/verify", json={"oid": oid, "size": len(data)}).status_code == 404
        assert http.get(f"{base}/objects/{oid}").status_code == 404
        assert http.get(f"{base}/objects/..%2F..%2Fsecret_key").status_code in (404, 422)
    assert not list((objects / "tmp").glob("*")) if (objects / "tmp").exists() else True


# ---------------------------------------------------------------------------------------------------------------
# commits through the hub API: lfsFile lines, .gitattributes, preupload


GITATTRIBUTES = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"


def _commit(http: httpx.Client, repo_id: str, *lines: dict) -> httpx.Response:
    return http.post(f"/api/models/{repo_id}/commit/main", content=ndjson(header_line("lfs"), *lines),
                     headers={"content-type": "application/x-ndjson"})


def test_lfsfile_commit_needs_the_object_in_the_repository(server, alice, make_repo):  # noqa: ANN001
    repo_id = make_repo(alice, "model")
    data = os.urandom(3000)
    line = {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": sha256(data), "size": len(data)}}
    before = alice.api.repo_info(repo_id).sha
    with alice.http() as http:
        r = _commit(http, repo_id, line)
        assert r.status_code == 404 and r.headers["x-error-code"] == "LfsObjectMissing", r.text
        r = _commit(http, repo_id, {"key": "lfsFile", "value": {"path": "w.bin", "oid": "abc", "size": 3}})
        assert r.status_code == 400 and "sha256" in r.json()["error"]
        base = lfs_base(server, "model", repo_id)
        assert http.put(f"{base}/objects/{sha256(data)}", content=data).status_code == 200
        wrong = {"key": "lfsFile", "value": {**line["value"], "size": len(data) + 1}}
        r = _commit(http, repo_id, wrong)
        assert r.status_code == 400 and f"has {len(data)} bytes" in r.json()["error"]
        assert alice.api.repo_info(repo_id).sha == before  # nothing was committed by the refusals
        assert _commit(http, repo_id, line).status_code == 200
    (item,) = alice.api.get_paths_info(repo_id, ["w.bin"])
    assert item.lfs.sha256 == sha256(data) and item.size == len(data)
    with alice.http() as http:
        assert http.get(f"/{repo_id}/resolve/main/w.bin").content == data


def test_gitattributes_lfs_paths_become_pointers(server, alice, make_repo, tmp_path):  # noqa: ANN001
    """Preupload answers "lfs" for a tracked path (the default client, with hf_xet, then uploads it through
    Xet) and "regular" for an untracked small one; either way git holds what git-lfs would: the tracked file as
    an object in the store and a pointer in git."""
    repo_id = make_repo(alice, "model")
    alice.api.upload_file(path_or_fileobj=GITATTRIBUTES, path_in_repo=".gitattributes", repo_id=repo_id)
    with alice.http() as http:
        pre = http.post(f"/api/models/{repo_id}/preupload/main",
                        json={"files": [{"path": "big.bin", "size": MiB, "sample": ""},
                                        {"path": "notes.txt", "size": 5, "sample": ""}]}).json()
    assert [f["uploadMode"] for f in pre["files"]] == ["lfs", "regular"]
    data = os.urandom(MiB // 2)  # under the test server's commit limit
    alice.api.upload_file(path_or_fileobj=data, path_in_repo="models/big.bin", repo_id=repo_id)
    alice.api.upload_file(path_or_fileobj=b"text\n", path_in_repo="notes.txt", repo_id=repo_id)
    info = {e.path: e for e in alice.api.get_paths_info(repo_id, ["models/big.bin", "notes.txt"])}
    assert info["models/big.bin"].lfs.sha256 == sha256(data) and info["notes.txt"].lfs is None
    got = hf_hub_download(repo_id, "models/big.bin", endpoint=server.url, token=alice.token, cache_dir=tmp_path)
    assert Path(got).read_bytes() == data
    lfs_git("clone", "-q", remote(server, "model", repo_id, alice.token), str(tmp_path / "c"))
    assert (tmp_path / "c" / "models" / "big.bin").read_bytes() == data


def test_plain_ndjson_commit_converts_tracked_files_and_tracks_lfsfile_paths(server, alice, make_repo, tmp_path):  # noqa: ANN001
    """Without the default client's preupload: a regular ``file`` line at a path the seeded .gitattributes tracks
    (*.safetensors) is stored as an object and git gets its pointer; an ``lfsFile`` line at a path nothing tracks
    (the client sent it to LFS for its size) gets its line in .gitattributes in the same commit, so a git-lfs
    clone checks out both real files, not a bare pointer."""
    import base64

    repo_id = make_repo(alice, "model")
    seeded = lfs_git("clone", "-q", remote(server, "model", repo_id, alice.token), str(tmp_path / "s"))
    assert seeded.returncode == 0 and "*.safetensors filter=lfs" in (tmp_path / "s" / ".gitattributes").read_text()
    weights, tokenizer, notes = os.urandom(MiB // 4), os.urandom(5000), b"plain text\n"
    with alice.http() as http:
        base = lfs_base(server, "model", repo_id)
        assert http.put(f"{base}/objects/{sha256(tokenizer)}", content=tokenizer).status_code == 200
        r = _commit(http, repo_id,
                    {"key": "file", "value": {"path": "m/model.safetensors", "encoding": "base64",
                                              "content": base64.b64encode(weights).decode()}},
                    {"key": "file", "value": {"path": "notes.txt", "encoding": "base64",
                                              "content": base64.b64encode(notes).decode()}},
                    {"key": "lfsFile", "value": {"path": "tokenizer.json", "algo": "sha256",
                                                 "oid": sha256(tokenizer), "size": len(tokenizer)}})
        assert r.status_code == 200, r.text
    assert len(alice.api.list_repo_commits(repo_id)) == 2  # everything, .gitattributes with it, in one commit
    info = {e.path: e for e in alice.api.get_paths_info(repo_id, ["m/model.safetensors", "tokenizer.json",
                                                                  "notes.txt"])}
    assert info["m/model.safetensors"].lfs.sha256 == sha256(weights) and info["notes.txt"].lfs is None
    assert info["tokenizer.json"].lfs.sha256 == sha256(tokenizer)
    work = tmp_path / "c"
    lfs_git("clone", "-q", remote(server, "model", repo_id, alice.token), str(work))
    attrs = (work / ".gitattributes").read_text()
    assert attrs == (tmp_path / "s" / ".gitattributes").read_text() + \
        "tokenizer.json filter=lfs diff=lfs merge=lfs -text\n"
    assert (work / "m" / "model.safetensors").read_bytes() == weights
    assert (work / "tokenizer.json").read_bytes() == tokenizer and (work / "notes.txt").read_bytes() == notes
    assert lfs_git("show", "HEAD:tokenizer.json", cwd=work).stdout.startswith("version https://git-lfs")


def test_preupload_lfs_setting_sends_the_client_through_the_batch_api(tmp_path, monkeypatch):  # noqa: ANN001
    """Behind ``SPACES_LARGE_FILES__PREUPLOAD_LFS``: a client without Xet (HF_HUB_DISABLE_XET=1) uploads large
    and .gitattributes-tracked files through the LFS batch API and commits them as lfsFile lines."""
    from harness import make_actor, running_server
    from huggingface_hub import CommitOperationAdd, CommitOperationCopy, constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    env = {"SPACES_LARGE_FILES__PREUPLOAD_LFS": "true", "SPACES_LARGE_FILES__LFS_THRESHOLD": str(MiB)}
    with running_server("sqlite", extra_env=env) as srv:
        alice = make_actor(srv, "alice")
        repo_id = "alice/with-lfs"
        alice.api.create_repo(repo_id, repo_type="dataset")
        alice.api.upload_file(path_or_fileobj=GITATTRIBUTES, path_in_repo=".gitattributes", repo_id=repo_id,
                              repo_type="dataset")
        big, png, small = os.urandom(3 * MiB), os.urandom(2000), b"a small csv\n"
        alice.api.create_commit(repo_id, [CommitOperationAdd("data/big.parquet", big),
                                          CommitOperationAdd("img/a.png", png),
                                          CommitOperationAdd("small.csv", small)],
                                commit_message="data", repo_type="dataset")
        log = srv.log()
        assert f"LFS object {sha256(big)}" in log and f"LFS object {sha256(png)}" in log
        alice.api.create_commit(repo_id, [CommitOperationCopy("data/big.parquet", "copy/big.parquet")],
                                commit_message="copy", repo_type="dataset")
        info = {e.path: e for e in alice.api.list_repo_tree(repo_id, repo_type="dataset", recursive=True)}
        assert info["data/big.parquet"].lfs.sha256 == sha256(big) == info["copy/big.parquet"].lfs.sha256
        assert info["img/a.png"].lfs.size == len(png) and info["small.csv"].lfs is None
        snap = Path(snapshot_download(repo_id, repo_type="dataset", endpoint=srv.url, token=alice.token,
                                      cache_dir=tmp_path / "snap"))
        assert (snap / "copy" / "big.parquet").read_bytes() == big and (snap / "img" / "a.png").read_bytes() == png
        assert (snap / "small.csv").read_bytes() == small


def test_gc_removes_lfs_objects_no_commit_references_and_keeps_the_rest(tmp_path):  # noqa: ANN001
    """``spaces gc`` on a live server, objects pushed with git-lfs: those of a deleted repository and of a file
    deleted and squashed out of history go (grace 0), an object another repository still commits stays and
    downloads byte-exact (huggingface_hub and a git-lfs clone); within the grace period nothing goes; a dry run
    counts without removing."""
    from harness import DATABASES, make_actor, start_server

    srv = start_server(DATABASES[0])  # of its own: the collector sees every repository of the instance
    try:
        alice = make_actor(srv, "alice")
        gone_id, kept_id = f"alice/{unique('lgcg')}", f"alice/{unique('lgck')}"
        data = {name: os.urandom(300_000 + i) for i, name in enumerate(("only", "shared", "dropped", "kept"))}
        for repo_id in (gone_id, kept_id):
            alice.api.create_repo(repo_id)
        push_lfs_files(srv, alice, "model", gone_id, tmp_path / "g", {"only.bin": data["only"],
                                                                       "shared.bin": data["shared"]})
        push_lfs_files(srv, alice, "model", kept_id, tmp_path / "k", {"shared.bin": data["shared"],
                                                                       "dropped.bin": data["dropped"],
                                                                       "kept.bin": data["kept"]})
        stored = {n: srv.data_dir / "lfs" / "objects" / sha256(d)[:2] / sha256(d)[2:4] / sha256(d)
                  for n, d in data.items()}
        assert all(p.is_file() for p in stored.values())

        alice.api.delete_repo(gone_id)
        alice.api.delete_file("dropped.bin", kept_id)
        said = " ".join(srv.cli("gc", "--grace-hours", "0").stderr.split())
        # only.bin goes; dropped.bin is still in the history
        assert said.startswith("removed") and ", 1 LFS objects (" in said, said
        assert not stored["only"].exists() and all(stored[n].is_file() for n in ("shared", "dropped", "kept"))

        alice.api.super_squash_history(kept_id)
        said = " ".join(srv.cli("gc", "--grace-hours", "1").stderr.split())
        assert ", 0 LFS objects (" in said and stored["dropped"].is_file(), said  # younger than an hour
        said = " ".join(srv.cli("gc", "--grace-hours", "0", "--dry-run").stderr.split())
        mib = len(data["dropped"]) / (1 << 20)
        assert said.startswith("would remove") and f", 1 LFS objects ({mib:.1f} MiB)" in said, said
        assert stored["dropped"].is_file()
        said = " ".join(srv.cli("gc", "--grace-hours", "0").stderr.split())
        assert said.startswith("removed") and ", 1 LFS objects (" in said and "2 LFS objects kept" in said, said
        assert not stored["dropped"].exists()
        assert stored["shared"].is_file() and stored["kept"].is_file()  # referenced by kept_id's commit

        for name in ("shared", "kept"):
            got = alice.api.hf_hub_download(kept_id, f"{name}.bin", cache_dir=tmp_path / "c")
            assert Path(got).read_bytes() == data[name]
        lfs_git("clone", "-q", remote(srv, "model", kept_id, alice.token), str(tmp_path / "clone"))
        assert (tmp_path / "clone" / "shared.bin").read_bytes() == data["shared"]
        assert not (tmp_path / "clone" / "dropped.bin").exists()

        # the object removed can be pushed again: the batch API asks for it (the repository's link alone is not
        # "already there"), and it downloads whole
        push_lfs_files(srv, alice, "model", kept_id, tmp_path / "again", {"dropped.bin": data["dropped"]})
        assert stored["dropped"].is_file()
        got = alice.api.hf_hub_download(kept_id, "dropped.bin", cache_dir=tmp_path / "c2")
        assert Path(got).read_bytes() == data["dropped"]
    finally:
        srv.stop()

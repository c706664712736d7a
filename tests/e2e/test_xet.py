"""Xet storage through the real default client (hf_xet 1.8 as huggingface_hub 2.4 drives it) against a live
server: token endpoints, xorb and shard upload, reconstruction and download, byte-exact; a re-upload with 1%
changed sends only the changed chunks (bytes the server stored); bad input is a clear 4xx and stores nothing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from harness import unique

hf_xet = pytest.importorskip("hf_xet")

pytestmark = pytest.mark.timeout(300)

SIZE = int(os.environ.get("SPACES_TEST_XET_MB", "64")) << 20


def _xet_bytes(server) -> int:  # noqa: ANN001
    return sum(p.stat().st_size for p in (server.data_dir / "xet" / "xorbs").rglob("*") if p.is_file()
               and not p.name.endswith(".idx"))


@pytest.fixture
def model(alice):  # noqa: ANN001, ANN201
    repo_id = f"{alice.name}/{unique('xet')}"
    alice.api.create_repo(repo_id, repo_type="model")
    yield repo_id
    alice.api.delete_repo(repo_id, repo_type="model")


def upload(server, actor, repo_id: str, path: Path):  # noqa: ANN001, ANN201
    """hf_xet's upload as huggingface_hub's _upload_xet_files drives it; the file's XetFileInfo."""
    from huggingface_hub.utils._xet import get_xet_session
    session = get_xet_session()
    url = f"{server.url}/api/models/{repo_id}/xet-write-token/main"
    with session.new_upload_commit(token_refresh_url=url, token_refresh_headers=actor.headers) as commit:
        handle = commit.start_upload_file(str(path), sha256=hf_xet.COMPUTE_SHA256)
    return handle.result().xet_info


def download(server, actor, repo_id: str, info, dest: Path) -> None:  # noqa: ANN001
    from huggingface_hub.utils._xet import get_xet_session
    url = f"{server.url}/api/models/{repo_id}/xet-read-token/main"
    tok = httpx.get(url, headers=actor.headers).json()
    with get_xet_session().new_file_download_group(
            endpoint=tok["casUrl"], token=tok["accessToken"], token_expiry_unix_secs=tok["exp"],
            token_refresh_url=url, token_refresh_headers=actor.headers) as group:
        group.start_download_file(hf_xet.XetFileInfo(info.hash, info.file_size), str(dest))


def test_round_trip_and_partial_reupload(server, alice, model, tmp_path) -> None:  # noqa: ANN001
    data = bytearray(os.urandom(SIZE))
    src = tmp_path / "weights.bin"
    src.write_bytes(data)
    before = _xet_bytes(server)
    info = upload(server, alice, model, src)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    first = _xet_bytes(server) - before
    assert first >= SIZE * 0.99  # random data does not compress
    out = tmp_path / "out.bin"
    download(server, alice, model, info, out)
    assert out.read_bytes() == data

    # change 1% of the file in ten places; only the chunks around them travel again
    for i in range(10):
        at = (i * SIZE) // 10 + 12345
        data[at:at + SIZE // 1000] = os.urandom(SIZE // 1000)
    src.write_bytes(data)
    mid = _xet_bytes(server)
    info2 = upload(server, alice, model, src)
    assert info2.hash != info.hash
    assert _xet_bytes(server) - mid <= SIZE * 0.05
    download(server, alice, model, info2, out)
    assert out.read_bytes() == data


def test_tokens_need_access(server, alice, bob, anon, model) -> None:  # noqa: ANN001
    base = f"{server.url}/api/models/{model}"
    assert httpx.get(f"{base}/xet-write-token/main", headers=bob.headers).status_code == 403
    assert httpx.get(f"{base}/xet-write-token/main").status_code == 401
    ok = httpx.get(f"{base}/xet-read-token/main", headers=bob.headers)
    assert ok.status_code == 200 and ok.headers["X-Xet-Access-Token"] == ok.json()["accessToken"]
    read = ok.json()
    h = "0" * 64
    cas = read["casUrl"]
    auth = {"authorization": f"Bearer {read['accessToken']}"}
    # a read token cannot write; no token, a forged one, a malformed hash: clear 4xx, nothing stored
    assert httpx.post(f"{cas}/v1/xorbs/default/{h}", content=b"x", headers=auth).status_code == 403
    assert httpx.post(f"{cas}/v1/shards", content=b"x", headers=auth).status_code == 403
    assert httpx.get(f"{cas}/v1/reconstructions/{h}").status_code == 401
    assert httpx.get(f"{cas}/v1/reconstructions/{h}", headers={"authorization": "Bearer forged"}).status_code == 401
    assert httpx.get(f"{cas}/v2/reconstructions/nothex", headers=auth).status_code == 400
    assert httpx.get(f"{cas}/v2/reconstructions/{h}", headers=auth).status_code == 404
    assert httpx.get(f"{cas}/v1/chunks/default-merkledb/{h}", headers=auth).status_code == 404
    write = httpx.get(f"{base}/xet-write-token/main", headers=alice.headers).json()
    wauth = {"authorization": f"Bearer {write['accessToken']}"}
    before = _xet_bytes(server)
    bad = httpx.post(f"{cas}/v1/xorbs/default/{h}", content=b"\0\x05\0\0\0\x05\0\0hello", headers=wauth)
    assert bad.status_code == 400 and "hash" in bad.json()["error"]
    assert httpx.post(f"{cas}/v1/shards", content=b"garbage" * 10, headers=wauth).status_code == 400
    assert _xet_bytes(server) == before
    assert not list((server.data_dir / "xet" / "tmp").iterdir())
    private = f"{alice.name}/{unique('xp')}"
    alice.api.create_repo(private, repo_type="model", private=True)
    try:
        assert httpx.get(f"{server.url}/api/models/{private}/xet-read-token/main",
                         headers=bob.headers).status_code == 404
        assert httpx.get(f"{server.url}/api/models/{private}/xet-read-token/main").status_code in (401, 404)
    finally:
        alice.api.delete_repo(private, repo_type="model")


def test_default_client_upload_download_snapshot_and_git_lfs_clone(  # noqa: ANN001
        server, alice, bob, model, tmp_path) -> None:
    """The unchanged default client end to end: ``upload_file`` of a large file and ``upload_folder`` of many
    .gitattributes-tracked ones go through Xet; ``hf_hub_download`` and ``snapshot_download`` come back through
    Xet, byte-exact; git with git-lfs clones the same repository and checks the same bytes out."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    from e2e.test_lfs import lfs_git, remote

    big = os.urandom(SIZE)
    (tmp_path / "big.dat").write_bytes(big)
    seeded = alice.api.hf_hub_download(model, ".gitattributes", cache_dir=tmp_path / "c0")
    assert "*.pt filter=lfs" in Path(seeded).read_text()  # the Hub's seed: the folder's *.pt files are tracked
    before = _xet_bytes(server)
    alice.api.upload_file(path_or_fileobj=str(tmp_path / "big.dat"), path_in_repo="weights/big.dat", repo_id=model)
    assert _xet_bytes(server) - before >= SIZE  # it came through Xet, not inside the commit
    # big.dat went to LFS by size alone (nothing tracks *.dat): as on the Hub, the commit tracked its path
    assert len(alice.api.list_repo_commits(model)) == 2  # the file and its line went in one commit
    attrs = Path(alice.api.hf_hub_download(model, ".gitattributes", cache_dir=tmp_path / "c0")).read_text()
    assert attrs == Path(seeded).read_text() + "weights/big.dat filter=lfs diff=lfs merge=lfs -text\n"
    folder = tmp_path / "many"
    folder.mkdir()
    small = {f"part-{i:02d}.pt": os.urandom(50_000 + i) for i in range(12)}
    for name, data in small.items():
        (folder / name).write_bytes(data)
    (folder / "README.md").write_text("# tiny\n")
    before = _xet_bytes(server)
    alice.api.upload_folder(folder_path=str(folder), path_in_repo="shards", repo_id=model)
    assert _xet_bytes(server) - before >= sum(map(len, small.values()))

    info = {f.path: f for f in alice.api.list_repo_tree(model, recursive=True) if hasattr(f, "lfs")}
    assert info["weights/big.dat"].lfs.sha256 == hashlib.sha256(big).hexdigest()
    assert info["weights/big.dat"].xet_hash and info["shards/part-00.pt"].xet_hash
    assert info["shards/README.md"].lfs is None

    meta = get_hf_file_metadata(hf_hub_url(model, "weights/big.dat", endpoint=server.url), token=bob.token)
    assert meta.xet_file_data is not None and meta.size == SIZE  # the client will download through Xet
    got = bob.api.hf_hub_download(model, "weights/big.dat", cache_dir=tmp_path / "c1")
    assert Path(got).read_bytes() == big
    snap = Path(bob.api.snapshot_download(model, cache_dir=tmp_path / "c2"))
    for name, data in small.items():
        assert (snap / "shards" / name).read_bytes() == data
    assert (snap / "weights" / "big.dat").read_bytes() == big

    lfs_git("clone", "-q", remote(server, "model", model, bob.token), str(tmp_path / "clone"))
    assert (tmp_path / "clone" / "weights" / "big.dat").read_bytes() == big
    assert (tmp_path / "clone" / "shards" / "part-07.pt").read_bytes() == small["part-07.pt"]
    pointer = lfs_git("show", "HEAD:weights/big.dat", cwd=tmp_path / "clone").stdout
    assert pointer.startswith("version https://git-lfs.github.com/spec/v1")
    assert hashlib.sha256(big).hexdigest() in pointer


def test_declared_sha256_is_checked_before_anything_is_linked(server, alice, model) -> None:  # noqa: ANN001
    """A hand-made client: a shard whose sha256 metadata is not the file's bytes is refused (400) and the
    repository gets no LFS object (a commit naming it is refused); with the right sha256 the same file becomes
    the repository's object, kept once as xorbs and read from them by resolve and the git-lfs batch API."""
    from e2e.test_lfs import _batch, _commit, lfs_base
    from unit.test_xet_core import make_shard, make_xorb

    from spaces.xet import hashing

    chunks = [os.urandom(9000) for _ in range(5)]
    xh, body = make_xorb(chunks)
    tok = httpx.get(f"{server.url}/api/models/{model}/xet-write-token/main", headers=alice.headers).json()
    auth = {"authorization": f"Bearer {tok['accessToken']}"}
    cas = tok["casUrl"]
    r = httpx.post(f"{cas}/v1/xorbs/default/{hashing.to_hex(xh)}", content=body, headers=auth)
    assert r.status_code == 200 and r.json() == {"was_inserted": True}
    data = b"".join(chunks)
    real = hashlib.sha256(data).hexdigest()
    lie = hashlib.sha256(b"someone else's file").hexdigest()
    objects = server.data_dir / "lfs" / "objects"
    bad = make_shard([(chunks, xh, [(0, 5)])], [(xh, chunks)], sha=hashing.from_hex(lie))
    r = httpx.post(f"{cas}/v1/shards", content=bad, headers=auth)
    assert r.status_code == 400 and lie in r.json()["error"]
    assert not (objects / lie[:2] / lie[2:4] / lie).exists()
    assert not (server.data_dir / "xet" / "sha256" / lie[:2] / lie).exists()
    lfs_line = {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": lie, "size": len(data)}}
    with alice.http() as http:
        r = _commit(http, model, lfs_line)
        assert r.status_code == 404 and r.headers["x-error-code"] == "LfsObjectMissing", r.text
    good = make_shard([(chunks, xh, [(0, 5)])], [(xh, chunks)], sha=hashing.from_hex(real))
    assert httpx.post(f"{cas}/v1/shards", content=good, headers=auth).status_code == 200
    # stored once, as xorbs: no second copy in the LFS store, yet every other reader gets the bytes by sha256
    assert not (objects / real[:2] / real[2:4] / real).exists()
    with alice.http() as http:
        assert _commit(http, model, {"key": "lfsFile", "value": {**lfs_line["value"], "oid": real}}).status_code == 200
        assert http.get(f"/{model}/resolve/main/w.bin").content == data
        r = http.get(f"/{model}/resolve/main/w.bin", headers={"range": "bytes=8999-20000"})
        assert r.status_code == 206 and r.content == data[8999:20001]
        base = lfs_base(server, "model", model)
        batch = _batch(http, base, "download", [{"oid": real, "size": len(data)}]).json()
        action = batch["objects"][0]["actions"]["download"]
        assert http.get(action["href"], headers=action.get("header", {})).content == data
    # the file is readable with a token for this repository, not with one for another repository
    fid = hashing.to_hex(hashing.file_hash([(hashing.chunk_hash(c), len(c)) for c in chunks]))
    read = httpx.get(f"{server.url}/api/models/{model}/xet-read-token/main", headers=alice.headers).json()
    r = httpx.get(f"{cas}/v2/reconstructions/{fid}", headers={"authorization": f"Bearer {read['accessToken']}"})
    assert r.status_code == 200 and r.json()["terms"][0]["unpacked_length"] == len(data)
    other = f"{alice.name}/{unique('xo')}"
    alice.api.create_repo(other, repo_type="model")
    try:
        tok2 = httpx.get(f"{server.url}/api/models/{other}/xet-read-token/main").json()  # anonymous: public repo
        auth2 = {"authorization": f"Bearer {tok2['accessToken']}"}
        assert httpx.get(f"{cas}/v2/reconstructions/{fid}", headers=auth2).status_code == 404
        assert httpx.head(f"{cas}/v1/files/{fid}", headers=auth2).status_code == 404
    finally:
        alice.api.delete_repo(other, repo_type="model")


def test_gc_removes_what_no_commit_references_and_keeps_uploads_in_progress(tmp_path) -> None:  # noqa: ANN001
    """``spaces gc`` on a live server, files uploaded with the default client: a file deleted stays while the
    history has it; squashed away, and a repository deleted, their xorbs go once older than the grace period; a
    file still committed downloads through Xet byte-exact after; a xorb whose shard is still to come stays, and
    its shard is then accepted."""
    from harness import DATABASES, make_actor, start_server
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from unit.test_xet_core import make_shard, make_xorb
    from unit.test_xet_gc import age

    from spaces.xet import hashing
    from spaces.xet.store import XetStore

    srv = start_server(DATABASES[0])  # of its own: the collector sees every repository of the instance
    try:
        alice = make_actor(srv, "alice")
        keep_id, gone_id = f"alice/{unique('gck')}", f"alice/{unique('gcg')}"
        data = {name: os.urandom(2 << 20) for name in ("keep", "dropped", "other")}
        for repo_id, names in ((keep_id, ("keep", "dropped")), (gone_id, ("other",))):
            alice.api.create_repo(repo_id)
            for name in names:
                (tmp_path / f"{name}.bin").write_bytes(data[name])
                alice.api.upload_file(path_or_fileobj=str(tmp_path / f"{name}.bin"), path_in_repo=f"{name}.bin",
                                      repo_id=repo_id)
        hashes = {p.path: p.xet_hash for p in alice.api.get_paths_info(keep_id, ["keep.bin", "dropped.bin"])}
        hashes["other.bin"] = alice.api.get_paths_info(gone_id, ["other.bin"])[0].xet_hash
        store = XetStore(srv.data_dir / "xet")
        xorbs = {name: {t[0] for t in store.get_file(hashing.from_hex(h)).terms} for name, h in hashes.items()}
        doomed = (xorbs["dropped.bin"] | xorbs["other.bin"]) - xorbs["keep.bin"]
        assert doomed and all(store.has_xorb(x) for x in doomed)

        alice.api.delete_file("dropped.bin", keep_id)
        age(store)
        srv.cli("gc", "--grace-hours", "1")
        assert all(store.has_xorb(x) for x in doomed)  # the history still has dropped.bin

        alice.api.super_squash_history(keep_id)
        alice.api.delete_repo(gone_id)
        age(store)
        chunks = [os.urandom(9000) for _ in range(3)]  # an upload in progress: its xorb is stored, its shard not yet
        xh, body = make_xorb(chunks)
        tok = httpx.get(f"{srv.url}/api/models/{keep_id}/xet-write-token/main", headers=alice.headers).json()
        auth = {"authorization": f"Bearer {tok['accessToken']}"}
        assert httpx.post(f"{tok['casUrl']}/v1/xorbs/default/{hashing.to_hex(xh)}", content=body,
                          headers=auth).json() == {"was_inserted": True}
        said = srv.cli("gc", "--grace-hours", "1", "--dry-run").stderr
        assert "would remove" in said and all(store.has_xorb(x) for x in doomed)
        said = " ".join(srv.cli("gc", "--grace-hours", "1").stderr.split())
        assert f"removed {len(doomed)} xorbs" in said, said
        assert not any(store.has_xorb(x) or store.xorb_path(x).exists() for x in doomed)
        assert all(store.has_xorb(x) for x in xorbs["keep.bin"]) and store.has_xorb(xh)
        assert store.get_file(hashing.from_hex(hashes["dropped.bin"])) is None

        meta = get_hf_file_metadata(hf_hub_url(keep_id, "keep.bin", endpoint=srv.url), token=alice.token)
        assert meta.xet_file_data is not None
        got = alice.api.hf_hub_download(keep_id, "keep.bin", cache_dir=tmp_path / "c")
        assert Path(got).read_bytes() == data["keep"]
        info = type("XetInfo", (), {"hash": hashes["keep.bin"], "file_size": len(data["keep"])})
        download(srv, alice, keep_id, info, tmp_path / "through-xet.bin")
        assert (tmp_path / "through-xet.bin").read_bytes() == data["keep"]
        shard_body = make_shard([(chunks, xh, [(0, 3)])], [(xh, chunks)],
                                sha=hashing.from_hex(hashlib.sha256(b"".join(chunks)).hexdigest()))
        assert httpx.post(f"{tok['casUrl']}/v1/shards", content=shard_body, headers=auth).status_code == 200
    finally:
        srv.stop()

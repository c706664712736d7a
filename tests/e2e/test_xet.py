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

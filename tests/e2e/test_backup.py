"""``spaces backup`` of a live instance and ``spaces restore`` into a fresh one, with the real client on both sides."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from harness import DATABASES, TEST_ROOT, create_postgres_database, make_actor, server_env, start_server, \
    unique, wait_until
from huggingface_hub import HfApi

from spaces.runtime.volumes import BucketDisk
from spaces.templates_catalog import list_templates

INDEX_V1 = b"<!doctype html><h1>v1</h1>"
INDEX_V2 = b"<!doctype html><h1>v2</h1>"
INDEX_LATE = b"<!doctype html><h1>after the backup</h1>"
WEIGHTS = bytes(range(256)) * 64
XET_DATA = os.urandom(3 << 20)
BUCKET_MB = 64


@pytest.fixture(params=DATABASES)
def instances(request):  # noqa: ANN001, ANN201
    """A source server of its own (not the session's: a restore rebuilds every Space it holds), and the data dir
    plus database URL of a fresh target instance that has never served."""
    source = start_server(request.param)
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    target_dir = Path(tempfile.mkdtemp(prefix="spaces-test-restore-", dir=TEST_ROOT))
    drop = None
    target_url = None
    if request.param == "postgres":
        target_url, drop = create_postgres_database()
    try:
        yield source, target_dir, target_url
    finally:
        source.stop()
        if drop:
            drop()
        # its claim in the host registry (uids, app ports) lasts as long as the data dir: every test run left one
        shutil.rmtree(target_dir, ignore_errors=True)


def _target_env(target_dir: Path, target_url: str | None, port: int) -> dict[str, str]:
    return server_env(port=port, data_dir=target_dir, database_url=target_url)


def test_backup_then_restore_finds_every_space_commit_secret_and_setting(instances, tmp_path) -> None:  # noqa: ANN001
    source, target_dir, target_url = instances
    alice = make_actor(source, "alice")
    org = source.org(unique("team"), ["alice"])
    private_id = f"{org}/{unique('priv')}"
    public_id = f"alice/{unique('pub')}"
    alice.api.create_repo(private_id, repo_type="space", space_sdk="static", private=True,
                          space_secrets=[{"key": "API_KEY", "value": "s3cret-value"}],
                          space_variables=[{"key": "MODE", "value": "demo"}])
    alice.api.upload_file(path_or_fileobj=INDEX_V1, path_in_repo="index.html", repo_id=private_id, repo_type="space")
    alice.api.create_repo(public_id, repo_type="space", space_sdk="static")
    alice.api.upload_file(path_or_fileobj=INDEX_V1, path_in_repo="index.html", repo_id=public_id, repo_type="space")
    alice.api.upload_file(path_or_fileobj=INDEX_V2, path_in_repo="index.html", repo_id=public_id, repo_type="space")
    commits_before = [c.commit_id for c in alice.api.list_repo_commits(public_id, repo_type="space")]
    # a model and a dataset of the Space's name come along, with their own files
    for kind in ("model", "dataset"):
        alice.api.create_repo(public_id, repo_type=kind, private=kind == "dataset")
        alice.api.upload_file(path_or_fileobj=kind.encode(), path_in_repo="kind.txt", repo_id=public_id,
                              repo_type=kind)
        # and an LFS file (.gitattributes filter=lfs: stored as an object, a pointer in git)
        alice.api.upload_file(path_or_fileobj=b"*.bin filter=lfs -text\n", path_in_repo=".gitattributes",
                              repo_id=public_id, repo_type=kind)
        alice.api.upload_file(path_or_fileobj=WEIGHTS + kind.encode(), path_in_repo="w.bin", repo_id=public_id,
                              repo_type=kind)
    assert alice.api.get_paths_info(public_id, ["w.bin"])[0].lfs is not None
    # a large file through Xet, the default client's way (hf_xet): several chunks, one xorb or more
    (tmp_path / "big.bin").write_bytes(XET_DATA)
    alice.api.upload_file(path_or_fileobj=str(tmp_path / "big.bin"), path_in_repo="big.bin", repo_id=public_id)
    xet_hash = alice.api.get_paths_info(public_id, ["big.bin"])[0].xet_hash
    assert xet_hash

    # buckets (a Space's /data): one mounted, as while a Space runs, and one unmounted at the backup; both hold files
    buckets = {}
    for name in (f"alice/{unique('live')}", f"alice/{unique('idle')}"):
        alice.api.create_bucket(name, private=True)
        buckets[name] = bucket_id = _bucket_id(source.data_dir, source.env.get("SPACES_DATABASE_URL"), name)
        files = BucketDisk(source.data_dir / "buckets" / bucket_id).ensure(BUCKET_MB)
        (files / "runs" / "1").mkdir(parents=True)
        (files / "runs" / "1" / "counts.txt").write_text(name)
        (files / "latest").symlink_to("runs/1")  # carried as a link, never followed
    idle_disk = BucketDisk(source.data_dir / "buckets" / buckets[list(buckets)[1]])
    idle_disk.release()

    dest = tmp_path / "backup"
    source.cli("backup", str(dest))
    assert not idle_disk.mounted()  # mounted for the copy only
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    manifest = json.loads((dest / "manifest.json").read_text())
    # alice's two and the template Spaces the hub seeds (paused: the restore leaves them paused, unbuilt)
    assert manifest["tables"]["spaces"] == 2 + len(list_templates())
    assert manifest["database"] in ("sqlite", "postgresql")
    assert "s3cret-value" not in source.log()  # a backup logs no secret

    # a commit after the backup is not part of it
    alice.api.upload_file(path_or_fileobj=INDEX_LATE, path_in_repo="index.html", repo_id=public_id,
                          repo_type="space")

    port = _free_port()
    env = _target_env(target_dir, target_url, port)
    _cli(env, "restore", str(dest))
    target = start_server(data_dir=target_dir, port=port,
                          extra_env={"SPACES_DATABASE_URL": target_url} if target_url else None)
    try:
        api = HfApi(endpoint=target.url, token=alice.token)  # the same token: tokens are restored (hashed)
        assert api.whoami()["name"] == "alice"
        assert {o["name"] for o in api.whoami()["orgs"]} == {org}
        info = api.space_info(private_id)
        assert info.private is True and info.sdk == "static"
        assert HfApi(endpoint=target.url, token=False).repo_exists(private_id, repo_type="space") is False
        assert [c.commit_id for c in api.list_repo_commits(public_id, repo_type="space")] == commits_before
        with httpx.Client(base_url=target.url, headers={"authorization": f"Bearer {alice.token}"}) as http:
            assert http.get(f"/spaces/{public_id}/resolve/main/index.html").content == INDEX_V2
            variables = http.get(f"/api/spaces/{private_id}/variables").json()
            for kind, prefix in (("model", ""), ("dataset", "/datasets")):
                assert http.get(f"{prefix}/{public_id}/resolve/main/kind.txt").content == kind.encode()
                assert http.get(f"{prefix}/{public_id}/resolve/main/w.bin").content == WEIGHTS + kind.encode()
        assert variables["MODE"]["value"] == "demo"
        _assert_served_through_xet(target, alice, public_id, xet_hash, tmp_path)
        assert api.dataset_info(public_id).private is True
        for name, bucket_id in buckets.items():
            assert api.bucket_info(name).private is True
            files = BucketDisk(target_dir / "buckets" / bucket_id).ensure(BUCKET_MB)
            assert (files / "latest" / "counts.txt").read_text() == name
            assert os.readlink(files / "latest") == "runs/1"
        assert _secret(target_dir, target_url, private_id) == {"API_KEY": "s3cret-value"}
        # every Space is built again and runs as after a push
        for repo_id in (private_id, public_id):
            wait_until(lambda r=repo_id: api.get_space_runtime(r).stage == "RUNNING", timeout=120,
                       what=f"{repo_id} running after the restore")
        template = list_templates()[0].repo_id
        assert api.get_space_runtime(template).stage == "PAUSED"
        # the restored instance takes new commits
        api.upload_file(path_or_fileobj=INDEX_LATE, path_in_repo="index.html", repo_id=public_id, repo_type="space")
        assert len(api.list_repo_commits(public_id, repo_type="space")) == len(commits_before) + 1
    finally:
        target.stop()

    # a second restore into an instance that now has accounts changes nothing and says why
    res = _cli(env, "restore", str(dest), check=False)
    said = " ".join(res.stderr.split())
    assert res.returncode == 1 and "already has accounts" in said and "Traceback" not in said, said


def test_restore_refuses_what_is_not_a_backup(tmp_path) -> None:  # noqa: ANN001
    env = _target_env(tmp_path / "data", None, _free_port())
    res = _cli(env, "restore", str(tmp_path), check=False)
    said = " ".join(res.stderr.split())
    assert res.returncode == 1 and "is not a backup" in said and "Traceback" not in said, said
    assert not (tmp_path / "data" / "spaces.db").exists()


def _assert_served_through_xet(target, alice, repo_id: str, xet_hash: str, tmp_path: Path) -> None:  # noqa: ANN001
    """The restored hub serves a file uploaded through Xet before the backup through Xet again: resolve sends the
    client there (X-Xet-Hash), the default client downloads it byte-exact, and hf_xet rebuilds it from the restored
    CAS alone (reconstruction and xorb fetches, no LFS download)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    from e2e.test_xet import download

    meta = get_hf_file_metadata(hf_hub_url(repo_id, "big.bin", endpoint=target.url), token=alice.token)
    assert meta.xet_file_data is not None and meta.xet_file_data.file_hash == xet_hash
    got = HfApi(endpoint=target.url, token=alice.token).hf_hub_download(repo_id, "big.bin", cache_dir=tmp_path / "c")
    assert Path(got).read_bytes() == XET_DATA
    info = type("XetInfo", (), {"hash": xet_hash, "file_size": len(XET_DATA)})
    download(target, alice, repo_id, info, tmp_path / "through-xet.bin")
    assert (tmp_path / "through-xet.bin").read_bytes() == XET_DATA


def _secret(data_dir: Path, url: str | None, repo_id: str) -> dict[str, str]:
    engine = sa.create_engine(url or f"sqlite:///{data_dir / 'spaces.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT s.key, s.value FROM space_secrets s JOIN spaces p ON p.id = s.space_id WHERE p.key = :k"),
                {"k": repo_id.lower()}).all()
    finally:
        engine.dispose()
    return dict(rows)


def _bucket_id(data_dir: Path, url: str | None, name: str) -> str:
    """A bucket's row id: its disk's folder name."""
    engine = sa.create_engine(url or f"sqlite:///{data_dir / 'spaces.db'}")
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT id FROM buckets WHERE key = :k"), {"k": name.lower()}).scalar()
    finally:
        engine.dispose()


def _free_port() -> int:
    from harness import free_port

    return free_port()


def _cli(env: dict[str, str], *args: str, check: bool = True):  # noqa: ANN202
    import subprocess

    from harness import spaces_command

    res = subprocess.run([*spaces_command(), *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, res.stdout + res.stderr
    return res

"""Persistent storage on a live platform (local backend, real Gradio apps): a bucket mounted at /data keeps what
the app wrote across a restart, a sleep and wake, a push that rebuilds, and the Space's deletion; its size is its
own filesystem's (ENOSPC inside the app, nothing of the host filled); a repository volume is read-only; a Space
sees only its own volumes. The API side (who may mount what, bad input) is tests/e2e/test_volumes.py."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import platform_kit as kit
import pytest
from harness import make_actor, unique, unmount_under
from huggingface_hub import Volume

pytestmark = pytest.mark.timeout(600)

BUCKET_MB = 32


@pytest.fixture(scope="module")
def vplatform(platform_base: Path) -> Iterator[kit.Platform]:
    with kit.running_platform(platform_base, "volumes", envs_dir=platform_base / "envs",
                              extra_env={"SPACES_STORAGE__BUCKET_MB": str(BUCKET_MB)}) as p:
        try:
            yield p
        finally:
            unmount_under(p.data_dir / "buckets")  # the buckets stay mounted while their platform lives


def store_files(mark: str) -> dict[str, bytes]:
    return kit.space_files(**{"README.md": kit.readme("gradio"), "app.py": kit.app_source("store.py", MARK=mark)})


def bucket_id(platform: kit.Platform, name: str) -> str:
    """The bucket's directory name (its row id) from the platform's database: another test's bucket of this
    module holds a ``starts`` file too."""
    with contextlib.closing(sqlite3.connect(platform.data_dir / "spaces.db")) as db:
        return db.execute("SELECT id FROM buckets WHERE key = ?", (name.lower(),)).fetchone()[0]


def starts(server, repo_id: str) -> int:  # noqa: ANN001
    return int(kit.gradio_call(server, repo_id, "starts", "")[0])


def starts_now(server, repo_id: str) -> int | None:  # noqa: ANN001
    """``starts`` while an instance may be swapping for another (a 502 or a refused call then: look again)."""
    try:
        return starts(server, repo_id)
    except Exception:  # noqa: BLE001
        return None


def test_a_bucket_keeps_what_the_app_wrote(vplatform: kit.Platform) -> None:
    server, alice = vplatform.server, make_actor(vplatform.server, "alice")
    bucket, assets = f"alice/{unique('data')}", f"alice/{unique('assets')}"
    alice.api.create_bucket(bucket, private=True)
    kit.create_space(alice.api, assets, kit.space_files(**{"README.md": kit.readme("static"),
                                                           "index.html": "<p>hi</p>", "weights.txt": "w=42"}),
                     sdk="static")
    repo_id = f"alice/{unique('store')}"
    alice.api.create_repo(repo_id, repo_type="space", space_sdk="gradio",
                          space_volumes=[Volume(type="bucket", source=bucket, mount_path="/data"),
                                         Volume(type="space", source=assets, mount_path="/assets")])
    kit.upload(alice.api, repo_id, store_files("v1"), "first version")
    kit.wait_stage(alice.api, repo_id, kit.RUNNING, timeout=300)
    assert starts(server, repo_id) == 1

    # a repository volume: its files at its revision, read-only
    assert kit.gradio_call(server, repo_id, "read", "/assets/weights.txt")[0] == "OK w=42"
    assert kit.gradio_call(server, repo_id, "write", "/assets/new 1")[0] == "ERR EROFS"

    # a restart: a new process, the same /data
    alice.api.restart_space(repo_id)
    kit.wait_for(lambda: kit.runtime(alice.api, repo_id).stage == kit.RUNNING and starts_now(server, repo_id) == 2,
                 timeout=240, what="the restarted app counts its second start")

    # asleep and woken: frozen then thawed, the same process and the same file
    with alice.http() as c:
        c.post(f"/api/spaces/{repo_id}/sleep").raise_for_status()
    kit.wait_stage(alice.api, repo_id, {"SLEEPING", "STOPPED"}, timeout=60)
    assert starts(server, repo_id) == 2  # the visit wakes it

    # a push that rebuilds: a new revision, the same /data
    kit.upload(alice.api, repo_id, store_files("v2"), "second version")
    kit.wait_for(lambda: starts_now(server, repo_id) == 3, timeout=300, what="the new revision counts its start")
    assert kit.gradio_call(server, repo_id, "read", "/data/starts")[0] == "OK 3"

    # the bucket's size is its own filesystem's: the app gets ENOSPC, the host nothing
    assert kit.gradio_call(server, repo_id, "write", f"/data/big {BUCKET_MB * 2}")[0] == "ERR ENOSPC"
    info = alice.api.bucket_info(bucket)
    assert 0 < info.total_files and info.size <= BUCKET_MB * 1024 * 1024

    # deleting the Space leaves the bucket and its files (a bucket is its namespace's, as on the Hub)
    alice.api.delete_repo(repo_id, repo_type="space")
    assert alice.api.bucket_info(bucket).total_files == info.total_files
    again = f"alice/{unique('again')}"
    alice.api.create_repo(again, repo_type="space", space_sdk="gradio",
                          space_volumes=[Volume(type="bucket", source=bucket, mount_path="/data")])
    kit.upload(alice.api, again, store_files("v3"), "first version")
    kit.wait_stage(alice.api, again, kit.RUNNING, timeout=300)
    assert starts(server, again) == 4


def test_a_space_sees_only_its_own_volumes(vplatform: kit.Platform) -> None:
    server, bob = vplatform.server, make_actor(vplatform.server, "bob")
    mine, other = f"bob/{unique('mine')}", f"bob/{unique('other')}"
    bob.api.create_bucket(mine)
    bob.api.create_bucket(other)
    repo_id = f"bob/{unique('nosy')}"
    bob.api.create_repo(repo_id, repo_type="space", space_sdk="gradio",
                        space_volumes=[Volume(type="bucket", source=mine, mount_path="/data")])
    kit.upload(bob.api, repo_id, store_files("nosy"), "first version")
    kit.wait_stage(bob.api, repo_id, kit.RUNNING, timeout=300)
    buckets_dir = vplatform.data_dir / "buckets"
    for path in (str(buckets_dir), "/var/lib/spaces/buckets", "/data/../buckets"):
        assert kit.gradio_call(server, repo_id, "read", path + "/x")[0].startswith("ERR"), path
    # the data is the uid's of the Space that writes it, and nobody else's on the host
    data = buckets_dir / bucket_id(vplatform, mine) / "mnt" / "data"
    assert os.stat(data / "starts").st_uid == kit.instance_of(vplatform, kit.space_id(bob, repo_id))["uid"]

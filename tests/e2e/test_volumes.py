"""Persistent storage through the real ``huggingface_hub`` 2.4.0 and its ``hf`` CLI: buckets (``create_bucket``,
``bucket_info``, ``list_buckets``, ``delete_bucket``) and a Space's volumes (``set_space_volumes``,
``delete_space_volumes``, ``space_info().runtime.volumes``, ``hf spaces volumes``). What a running app does
with them (its files survive a restart, sleep and a push) is in tests/platform/test_platform_volumes.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import unique
from huggingface_hub import Volume
from huggingface_hub.errors import BadRequestError, BucketNotFoundError, HfHubHTTPError

pytestmark = pytest.mark.timeout(120)


def hf(actor, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    exe = Path(sys.executable).with_name("hf")
    env = {**os.environ, "HF_ENDPOINT": actor.server.url, "NO_COLOR": "1"}
    return subprocess.run([str(exe), *args, "--token", actor.token], env=env, capture_output=True, text=True,
                          timeout=90)


def new_space(actor, sdk: str = "gradio") -> str:  # noqa: ANN001
    repo_id = f"{actor.name}/{unique('vol')}"
    actor.api.create_repo(repo_id, repo_type="space", space_sdk=sdk)
    return repo_id


def test_bucket_lifecycle_with_the_real_client(alice, bob):  # noqa: ANN001
    name = unique("bucket")
    url = alice.api.create_bucket(name, private=True)
    assert url.bucket_id == f"alice/{name}"
    info = alice.api.bucket_info(f"alice/{name}")
    assert info.id == f"alice/{name}" and info.private is True and info.size == 0 and info.total_files == 0
    assert f"alice/{name}" in [b.id for b in alice.api.list_buckets("alice")]
    # private: bob sees nothing of it, as for a private Space
    with pytest.raises(BucketNotFoundError):
        bob.api.bucket_info(f"alice/{name}")
    assert f"alice/{name}" not in [b.id for b in bob.api.list_buckets("alice")]
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.create_bucket(name)
    assert exc.value.response.status_code == 409
    alice.api.create_bucket(name, exist_ok=True)  # the client reads the 409 as "there"
    with pytest.raises(HfHubHTTPError) as exc:
        bob.api.create_bucket(f"alice/{unique('bucket')}")
    assert exc.value.response.status_code == 403
    alice.api.delete_bucket(f"alice/{name}")
    with pytest.raises(BucketNotFoundError):
        alice.api.bucket_info(f"alice/{name}")
    alice.api.delete_bucket(f"alice/{name}", missing_ok=True)


def test_space_volumes_are_set_listed_and_removed(alice):  # noqa: ANN001
    bucket = f"alice/{unique('data')}"
    alice.api.create_bucket(bucket)
    repo_id = new_space(alice)
    source = new_space(alice, "static")
    assert alice.api.space_info(repo_id).runtime.volumes is None
    alice.api.set_space_volumes(repo_id, [Volume(type="bucket", source=bucket, mount_path="/data"),
                                          Volume(type="space", source=source, mount_path="/assets")])
    volumes = alice.api.space_info(repo_id).runtime.volumes
    assert [(v.type, v.source, v.mount_path, v.read_only) for v in volumes] == [
        ("bucket", bucket, "/data", False), ("space", source, "/assets", True)]  # repositories: always read-only
    listed = hf(alice, "spaces", "volumes", "ls", repo_id)
    assert listed.returncode == 0 and bucket in listed.stdout and "/assets" in listed.stdout, listed.stderr
    alice.api.delete_space_volumes(repo_id)
    assert alice.api.space_info(repo_id).runtime.volumes is None
    with pytest.raises(BadRequestError):
        alice.api.delete_space_volumes(repo_id)  # none left: the Hub answers 400 too
    # the CLI sets them as well
    made = hf(alice, "spaces", "volumes", "set", repo_id, "-v", f"hf://buckets/{bucket}:/data")
    assert made.returncode == 0, made.stderr
    assert [v.source for v in alice.api.space_info(repo_id).runtime.volumes] == [bucket]


@pytest.mark.parametrize("volume, status", [
    ({"type": "bucket", "source": "alice/nope-bucket", "mountPath": "/data"}, 404),
    ({"type": "space", "source": "alice/no-such-space", "mountPath": "/x"}, 404),
    ({"type": "model", "source": "alice/no-such-model", "mountPath": "/x"}, 404),
    ({"type": "bucket", "source": "alice/{bucket}", "mountPath": "/"}, 400),
    ({"type": "bucket", "source": "alice/{bucket}", "mountPath": "/etc/x"}, 400),
    ({"type": "bucket", "source": "alice/{bucket}", "mountPath": "/data/../etc"}, 400),
    ({"type": "bucket", "source": "alice/{bucket}", "mountPath": "data"}, 400),
    ({"type": "bucket", "source": "../../x", "mountPath": "/data"}, 400),
    ({"type": "volume", "source": "alice/{bucket}", "mountPath": "/data"}, 400),
])
def test_bad_volumes_are_refused_and_change_nothing(alice, volume, status):  # noqa: ANN001
    bucket = unique("b")
    alice.api.create_bucket(bucket)
    repo_id = new_space(alice)
    alice.api.set_space_volumes(repo_id, [Volume(type="bucket", source=f"alice/{bucket}", mount_path="/keep")])
    volume = {k: v.replace("{bucket}", bucket) for k, v in volume.items()}
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.set_space_volumes(repo_id, [Volume(**volume)])
    assert exc.value.response.status_code == status, exc.value.response.text
    assert [v.mount_path for v in alice.api.space_info(repo_id).runtime.volumes] == ["/keep"]


def test_who_may_mount_what(alice, bob):  # noqa: ANN001
    private = f"alice/{unique('priv')}"
    alice.api.create_bucket(private, private=True)
    public = f"alice/{unique('pub')}"
    alice.api.create_bucket(public)
    bobs = new_space(bob)
    with pytest.raises(HfHubHTTPError) as exc:  # a private bucket looks missing to others
        bob.api.set_space_volumes(bobs, [Volume(type="bucket", source=private, mount_path="/data")])
    assert exc.value.response.status_code == 404 and exc.value.response.headers["x-error-code"] == "RepoNotFound"
    with pytest.raises(HfHubHTTPError) as exc:  # another's public bucket: read-only at most
        bob.api.set_space_volumes(bobs, [Volume(type="bucket", source=public, mount_path="/data")])
    assert exc.value.response.status_code == 403
    bob.api.set_space_volumes(bobs, [Volume(type="bucket", source=public, mount_path="/data", read_only=True)])
    # one writer at a time; and a mounted bucket cannot be deleted from under its Spaces
    first, second = new_space(alice), new_space(alice)
    alice.api.set_space_volumes(first, [Volume(type="bucket", source=private, mount_path="/data")])
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.set_space_volumes(second, [Volume(type="bucket", source=private, mount_path="/data")])
    assert exc.value.response.status_code == 409 and first in exc.value.server_message
    alice.api.set_space_volumes(second, [Volume(type="bucket", source=private, mount_path="/data", read_only=True)])
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.delete_bucket(private)
    assert exc.value.response.status_code == 409
    with pytest.raises(BadRequestError):  # static Spaces are files served as they are
        alice.api.set_space_volumes(new_space(alice, "static"),
                                    [Volume(type="bucket", source=public, mount_path="/data")])


def test_create_and_duplicate_take_volumes_and_a_duplicate_copies_none(alice):  # noqa: ANN001
    bucket = f"alice/{unique('dup')}"
    alice.api.create_bucket(bucket)
    repo_id = f"alice/{unique('withvol')}"
    alice.api.create_repo(repo_id, repo_type="space", space_sdk="gradio",
                          space_volumes=[Volume(type="bucket", source=bucket, mount_path="/data")])
    assert [v.source for v in alice.api.space_info(repo_id).runtime.volumes] == [bucket]
    copy = f"alice/{unique('copy')}"
    alice.api.duplicate_repo(repo_id, copy, repo_type="space")
    assert alice.api.space_info(copy).runtime.volumes is None
    given = f"alice/{unique('copy')}"
    alice.api.duplicate_repo(repo_id, given, repo_type="space",
                             space_volumes=[Volume(type="space", source=repo_id, mount_path="/src")])
    assert [(v.source, v.read_only) for v in alice.api.space_info(given).runtime.volumes] == [(repo_id, True)]
    refused = f"alice/{unique('refused')}"
    with pytest.raises(HfHubHTTPError):
        alice.api.create_repo(refused, repo_type="space", space_sdk="gradio",
                              space_volumes=[Volume(type="bucket", source="alice/none-such", mount_path="/data")])
    assert not alice.api.repo_exists(refused, repo_type="space")  # a refused volume refuses the whole create

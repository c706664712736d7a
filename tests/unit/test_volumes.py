"""Volumes, pure (spaces.domain.volumes) and at the service (spaces.services.buckets: storage quota, one writer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces.db.session import Database
from spaces.domain.volumes import MAX_VOLUMES, Volume, parse_volumes
from spaces.errors import BadRequest, Conflict, Forbidden, RepoNotFound
from spaces.services import accounts
from spaces.services.buckets import BucketService, StorageSettings


def vol(**kw) -> dict:  # noqa: ANN003
    return {"type": "bucket", "source": "alice/b", "mountPath": "/data", **kw}


@pytest.mark.parametrize("raw, expected", [
    ([vol()], [Volume("bucket", "alice/b", "/data", False)]),
    ([vol(readOnly=True)], [Volume("bucket", "alice/b", "/data", True)]),
    ([vol(type="model", readOnly=False, revision="v1")], [Volume("model", "alice/b", "/data", True, "v1")]),
    ([vol(mountPath="/data/", path="/sub/dir/")], [Volume("bucket", "alice/b", "/data", False, None, "sub/dir")]),
    ([vol(), vol(type="space", mountPath="/models")],
     [Volume("bucket", "alice/b", "/data", False), Volume("space", "alice/b", "/models", True)]),
])
def test_good_volumes_parse(raw: list, expected: list) -> None:
    assert parse_volumes(raw) == expected
    assert [Volume.from_json(v.to_json()) for v in expected] == expected


@pytest.mark.parametrize("raw, says", [
    (None, "non-empty list"),
    ([], "non-empty list"),
    ([vol()] * (MAX_VOLUMES + 1), "at most"),
    (["x"], "object"),
    ([vol(type="bucketz")], "type"),
    ([vol(source="alice")], "source"),
    ([vol(source="alice/../x")], "source"),
    ([vol(mountPath="data")], "absolute"),
    ([vol(mountPath="/")], "not allowed"),
    ([vol(mountPath="/proc/x")], "not allowed"),
    ([vol(mountPath="/usr")], "not allowed"),
    ([vol(mountPath="/tmp")], "not allowed"),
    ([vol(mountPath="/data/../etc")], "not allowed"),
    ([vol(mountPath="/a//b")], "not allowed"),
    ([vol(readOnly="yes")], "readOnly"),
    ([vol(revision="main")], "revision"),
    ([vol(path="../up")], "path"),
    ([vol(), vol(mountPath="/data/inner")], "overlap"),
])
def test_bad_volumes_say_what_is_wrong(raw: object, says: str) -> None:
    with pytest.raises(BadRequest) as exc:
        parse_volumes(raw)
    assert says in exc.value.message


def service(tmp_path: Path, **settings: int) -> BucketService:
    return BucketService(StorageSettings(**settings), tmp_path / "buckets", on_change=lambda s, space: None)


def test_an_account_claims_at_most_its_storage_quota(db: Database, tmp_path: Path) -> None:
    buckets = service(tmp_path, bucket_mb=100, account_mb=250)
    with db.session() as s:
        alice = accounts.Principal(accounts.ensure_user(s, "alice"), "write")
        buckets.create(s, alice, "alice", "one", private=False)
        buckets.create(s, alice, "me", "two", private=True)
        with pytest.raises(Forbidden) as exc:
            buckets.create(s, alice, "alice", "three", private=False)
        assert "200 MB of 250 MB" in exc.value.message
        assert [b.name for b in buckets.list(s, alice, "alice", None)] == ["one", "two"]
        bob = accounts.Principal(accounts.ensure_user(s, "bob"), "write")
        assert [b.name for b in buckets.list(s, bob, "alice", None)] == ["one"]
        with pytest.raises(RepoNotFound):
            buckets.get(s, "alice/two", bob)
        with pytest.raises(Forbidden):
            buckets.create(s, bob, "alice", "four", private=False)
        with pytest.raises(Conflict):
            buckets.create(s, alice, "alice", "ONE", private=False)  # names are case-insensitive, as repos'

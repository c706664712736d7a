"""Volumes, pure (spaces.domain.volumes) and at the service (spaces.services.buckets: storage quota, one writer)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from spaces.db.models import Account, Bucket, Space, SpaceVolumes
from spaces.db.session import Database
from spaces.domain.volumes import MAX_VOLUMES, Volume, parse_volumes
from spaces.errors import BadRequest, Conflict, Forbidden, RepoNotFound
from spaces.runtime.contracts import Claim, HoldsClaims, Mount, StartFailed
from spaces.runtime.fakes import ClaimsKept
from spaces.runtime.volumes import Volumes, forget_deleted_buckets
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


def _space_with(db: Database, tmp_path: Path, volumes: list[dict]) -> tuple[str, str]:
    """A Space of alice's mounting ``volumes`` (bucket alice/b made here); (space id, bucket id)."""
    buckets = service(tmp_path, bucket_mb=64)
    with db.session() as s:
        alice = accounts.Principal(accounts.ensure_user(s, "alice"), "write")
        bucket = buckets.create(s, alice, "alice", "b", private=False)
        space = Space(owner_id=alice.account.id, name="app", repo_id="alice/app", key="alice/app",
                      subdomain="alice-app", sdk="gradio")
        s.add(space)
        s.flush()
        s.add(SpaceVolumes(space_id=space.id, volumes=volumes))
        return space.id, bucket.id


def test_on_a_backend_of_claims_a_bucket_is_a_claim_and_no_disk_of_this_machine(db: Database,
                                                                                 tmp_path: Path) -> None:
    space_id, bucket_id = _space_with(db, tmp_path, [vol(), vol(mountPath="/ro", readOnly=True, path="sub")])
    volumes = Volumes(tmp_path, repo_for=lambda s, kind, source: None, claims=True)
    with db.session() as s:
        mounts = volumes.mounts(s, s.get(Space, space_id))
    assert mounts == (Mount("", "/data", False, Claim(bucket_id, 64)),
                      Mount("", "/ro", True, Claim(bucket_id, 64, "sub")))
    assert not (tmp_path / "buckets").exists()  # no image made, nothing loop-mounted here


def test_on_a_backend_of_claims_a_repository_volume_is_refused_with_the_reason(db: Database, tmp_path: Path) -> None:
    space_id, _ = _space_with(db, tmp_path, [vol(), vol(type="model", source="alice/m", mountPath="/m")])
    volumes = Volumes(tmp_path, repo_for=lambda s, kind, source: pytest.fail("a repository was exported"),
                      claims=True)
    with db.session() as s, pytest.raises(StartFailed, match="model alice/m mounted at /m cannot be mounted"):
        volumes.mounts(s, s.get(Space, space_id))


def test_the_claims_of_deleted_buckets_are_given_back_and_no_other(db: Database, tmp_path: Path) -> None:
    _, live = _space_with(db, tmp_path, [vol()])
    made_meanwhile = "00ff00ff00ff00ff00ff00ff"

    def a_bucket_and_its_claim_made_as_the_backend_lists() -> set[str]:
        # read the rows before the listing, and this claim would look like a deleted bucket's
        with db.session() as s:
            owner = s.scalar(select(Account).where(Account.key == "alice"))
            s.add(Bucket(id=made_meanwhile, owner_id=owner.id, name="new", key="alice/new", size_mb=16))
        return {made_meanwhile}

    backend = ClaimsKept({live, "deadbeefdeadbeefdeadbeef"}, on_list=a_bucket_and_its_claim_made_as_the_backend_lists)
    assert isinstance(backend, HoldsClaims)
    assert forget_deleted_buckets(db, backend) == ["deadbeefdeadbeefdeadbeef"]
    assert backend.forgotten == ["deadbeefdeadbeefdeadbeef"]

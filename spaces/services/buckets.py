"""Buckets (a namespace's persistent storage) and the volumes a Space mounts, as the hub sees them.

A bucket is a row here and a disk of its own on the platform's machine (``spaces.runtime.volumes``), sized
``StorageSettings.bucket_mb``; an account's buckets together may claim at most ``StorageSettings.account_mb``.
Reading a bucket's row follows the Space rule: a private bucket looks missing to whoever may not read its
namespace. Mounting it read-write needs write access to its namespace (the Space's owner's, checked when the
volumes are set); one running Space at a time writes a bucket, so a second Space may only mount it read-only.
Changing a Space's volumes restarts it, as changing its variables does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from spaces.db.models import Bucket, Space, SpaceVolumes, utcnow
from spaces.db.session import after_commit
from spaces.domain.naming import validate_repo_id
from spaces.domain.volumes import Volume, parse_volumes
from spaces.runtime.volumes import BucketDisk, bucket_usage
from spaces.errors import BadRequest, Conflict, Forbidden, RepoExists, RepoNotFound, Unauthorized
from spaces.services import accounts
from spaces.services.accounts import Principal


class StorageSettings(BaseModel):
    """Persistent storage: buckets mounted into Spaces as volumes (``HfApi.set_space_volumes``)."""

    bucket_mb: int = Field(20480, ge=16, description="the size of one bucket (its own filesystem: writes past it "
                           "fail with ENOSPC in the app, never fill the host)")
    account_mb: int = Field(1048576, ge=0, description="the most all buckets of one account may claim together "
                            "(their sizes, not what they hold: disks are sparse, a claim is the most it may take)")


class BucketService:
    def __init__(self, settings: StorageSettings, root: Path, *, on_change: Callable[[Session, Space], None],
                 repo_exists: Callable[[Session, str, str, Principal | None], bool] | None = None) -> None:
        self.settings = settings
        self.root = root  # data_dir/buckets: one directory per bucket id (see spaces.runtime.volumes)
        self.on_change = on_change
        #: (session, repo type, "owner/name", principal) -> may the principal read that repository?
        self.repo_exists = repo_exists

    # ---- buckets ------------------------------------------------------------------------------------------
    def find(self, s: Session, bucket_id: str) -> Bucket | None:
        return s.scalar(select(Bucket).where(Bucket.key == bucket_id.lower()))

    def get(self, s: Session, bucket_id: str, principal: Principal | None) -> Bucket:
        bucket = self.find(s, bucket_id)
        if bucket is None or (bucket.private and not accounts.may_read_namespace(s, principal, bucket.owner)):
            raise RepoNotFound(bucket_id, "bucket")
        return bucket

    def create(self, s: Session, principal: Principal | None, namespace: str, name: str, *, private: bool) -> Bucket:
        if principal is None:
            raise Unauthorized("You must be authenticated with a write token to create a bucket.")
        if namespace == "me":
            namespace = principal.account.name
        validate_repo_id(f"{namespace}/{name}")
        owner = accounts.find_account(s, namespace)
        if owner is None or not accounts.may_write_namespace(s, principal, owner):
            raise Forbidden(f"You don't have the rights to create a bucket under the namespace '{namespace}'.")
        bucket_id = f"{owner.name}/{name}"
        if self.find(s, bucket_id) is not None:
            raise RepoExists("You already created this bucket", url_path=f"/buckets/{bucket_id}")
        claimed = s.scalar(select(func.coalesce(func.sum(Bucket.size_mb), 0)).where(Bucket.owner_id == owner.id))
        if claimed + self.settings.bucket_mb > self.settings.account_mb:
            raise Forbidden(f"Storage quota reached: {owner.name}'s buckets claim {claimed} MB of "
                            f"{self.settings.account_mb} MB, and a bucket takes {self.settings.bucket_mb} MB. "
                            "Delete a bucket or ask the operator for more.")
        bucket = Bucket(owner_id=owner.id, owner=owner, name=name, key=bucket_id.lower(), private=private,
                        size_mb=self.settings.bucket_mb)
        s.add(bucket)
        s.flush()
        return bucket

    def delete(self, s: Session, principal: Principal | None, bucket: Bucket) -> None:
        self._check_write(s, principal, bucket)
        mounted = self._mounted_by(s, bucket)
        if mounted:
            raise Conflict(f"The bucket {self.bucket_id(bucket)} is mounted by {', '.join(mounted)}; remove it "
                           "from their volumes first.")
        path = self.root / bucket.id
        s.delete(bucket)
        s.flush()
        after_commit(s, lambda: BucketDisk(path).remove())  # unmounted first: never rmtree through a mount

    def list(self, s: Session, principal: Principal | None, namespace: str, search: str | None) -> list[Bucket]:
        owner = accounts.find_account(s, principal.account.name if principal and namespace == "me" else namespace)
        if owner is None:
            return []
        q = select(Bucket).where(Bucket.owner_id == owner.id).order_by(Bucket.created_at)
        if search:
            q = q.where(Bucket.key.contains(search.lower()))
        readable = accounts.may_read_namespace(s, principal, owner)
        return [b for b in s.scalars(q) if readable or not b.private]

    @staticmethod
    def bucket_id(bucket: Bucket) -> str:
        return f"{bucket.owner.name}/{bucket.name}"

    def usage(self, bucket: Bucket) -> tuple[int, int]:
        """(bytes, files) the bucket holds now; (0, 0) before any Space wrote to it."""
        return bucket_usage(self.root / bucket.id)

    def _check_write(self, s: Session, principal: Principal | None, bucket: Bucket) -> None:
        if principal is None:
            raise Unauthorized("You must be authenticated with a write token to change this bucket.")
        if not accounts.may_write_namespace(s, principal, bucket.owner):
            if bucket.private and not accounts.may_read_namespace(s, principal, bucket.owner):
                raise RepoNotFound(self.bucket_id(bucket), "bucket")
            raise Forbidden(f"You don't have write access to buckets/{self.bucket_id(bucket)}.")

    def _mounted_by(self, s: Session, bucket: Bucket, *, writable_only: bool = False,
                    except_space: str | None = None) -> list[str]:
        found = []
        for row, repo_id in s.execute(select(SpaceVolumes, Space.repo_id).join(Space, Space.id == SpaceVolumes.space_id)):
            if row.space_id == except_space:
                continue
            for v in map(Volume.from_json, row.volumes or []):
                if v.type == "bucket" and v.source.lower() == bucket.key and (v.read_only is False or not writable_only):
                    found.append(repo_id)
        return found

    # ---- a Space's volumes --------------------------------------------------------------------------------
    def volumes(self, s: Session, space: Space) -> list[Volume]:
        row = s.get(SpaceVolumes, space.id)
        return [Volume.from_json(v) for v in (row.volumes if row else [])]

    def set_volumes(self, s: Session, principal: Principal, space: Space, raw: object) -> list[Volume]:
        if space.sdk == "static":
            raise BadRequest("Static Spaces are files served as they are: they cannot mount volumes.")
        volumes = parse_volumes(raw)
        for v in volumes:
            self._check_source(s, principal, space, v)
        row = s.get(SpaceVolumes, space.id)
        if row is None:
            row = SpaceVolumes(space_id=space.id)
            s.add(row)
        row.volumes, row.updated_at = [v.to_json() for v in volumes], utcnow()
        self._changed(s, space)
        return volumes

    def delete_volumes(self, s: Session, space: Space) -> None:
        row = s.get(SpaceVolumes, space.id)
        if row is None or not row.volumes:
            raise BadRequest("This Space has no volumes.")
        s.delete(row)
        self._changed(s, space)

    def _changed(self, s: Session, space: Space) -> None:
        s.flush()
        self.on_change(s, space)

    def _check_source(self, s: Session, principal: Principal, space: Space, v: Volume) -> None:
        if v.type != "bucket":
            if self.repo_exists is None or not self.repo_exists(s, v.type, v.source, principal):
                raise RepoNotFound(v.source, v.type)
            return
        bucket = self.get(s, v.source, principal)
        if not v.read_only:
            # the Space writes with its owner's rights long after this call: only its owner's own buckets
            if bucket.owner_id != space.owner_id or not accounts.may_write_namespace(s, principal, bucket.owner):
                raise Forbidden(f"Only Spaces of {bucket.owner.name} may write the bucket {v.source}; mount it "
                                "with readOnly: true.")
            writers = self._mounted_by(s, bucket, writable_only=True, except_space=space.id)
            if writers:
                raise Conflict(f"The bucket {v.source} is mounted read-write by {', '.join(writers)}; one Space "
                               "at a time writes a bucket. Mount it with readOnly: true here.")

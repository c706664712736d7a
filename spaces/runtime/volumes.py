"""Where a Space's volumes come from on this machine: each becomes a ``Mount`` (host directory -> path inside).

* A **bucket** is one ext4 filesystem in a sparse file of its own, ``{data_dir}/buckets/{bucket id}/disk.img``
  (the same kind of disk a Space's home lives on, ``spaces.runtime.spacedisk``), mounted on the host at
  ``.../mnt`` from the first start of a Space that mounts it until the bucket is deleted or the operator runs
  ``spaces down``. Its files are in ``mnt/data``; writes past its size fail with ENOSPC inside the app and never
  fill the host. Being a directory of the platform's data dir, it survives restarts, sleep (both tiers), rebuilds
  and a start on another instance of the app; on the Docker backend it is a bind mount of the same directory.
* A **repository** (model, dataset, space) at a revision is its tree written once per commit into
  ``{data_dir}/volumes/{type}/{id}/{sha}`` (``git archive``, as the builder's context) and mounted read-only.

The backend mounts them (``InstanceSpec.mounts``): read-only where asked, and gives a read-write bucket's files to
the Space's uid at start.

A backend whose instances do not run on this machine (Kubernetes: pods see no directory of the platform's data
dir) keeps each bucket in storage of its own instead (``Volumes(claims=True)``): the mount then names the bucket
(``Claim``), the backend makes its storage on first use (a PersistentVolumeClaim) and gives it back once the
bucket is deleted (``spaces.platform``'s backstop). A repository volume has no such storage: refused there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from spaces.db.models import Bucket, Space, SpaceVolumes
from spaces.domain.volumes import Volume
from spaces.db.session import Database
from spaces.runtime.contracts import Claim, HoldsClaims, Mount, StartFailed
from spaces.runtime.spacedisk import SpaceDisk, loop_mount

log = logging.getLogger(__name__)

#: (repo type, "owner/name") -> the repository (``spaces.storage.gitrepo.GitRepo``) or None when there is none
RepoFor = Callable[[Session, str, str], object | None]


class Volumes:
    def __init__(self, data_dir: Path, repo_for: RepoFor, *, claims: bool = False) -> None:
        self.buckets = data_dir / "buckets"
        self.snapshots = data_dir / "volumes"
        self.repo_for = repo_for
        self.claims = claims  # buckets are the backend's storage (Claim), not disks of this machine

    def mounts(self, s: Session, space: Space) -> tuple[Mount, ...]:
        """The mounts of the Space's volumes now; StartFailed naming a volume whose source is gone."""
        row = s.get(SpaceVolumes, space.id)
        out = []
        for v in (Volume.from_json(raw) for raw in (row.volumes if row else [])):
            if self.claims:
                out.append(self._claim(s, v))
                continue
            src = self._bucket(s, v) if v.type == "bucket" else self._snapshot(s, v)
            if v.path:
                src = src / v.path
                if not src.is_dir():
                    raise StartFailed(f"The volume {v.type}/{v.source} has no folder {v.path!r} to mount at "
                                      f"{v.mount_path}.")
            out.append(Mount(str(src), v.mount_path, v.read_only))
        return tuple(out)

    def _claim(self, s: Session, v: Volume) -> Mount:
        if v.type != "bucket":
            raise StartFailed(f"The {v.type} {v.source} mounted at {v.mount_path} cannot be mounted on this "
                              "cluster: repository volumes are files of the platform's own disk, which pods do not "
                              "see. Mount a bucket instead, or load the files from this hub in the app "
                              "(preload_from_hub in the README).")
        bucket = self._row(s, v)
        return Mount("", v.mount_path, v.read_only, Claim(bucket.id, bucket.size_mb, v.path))

    def _row(self, s: Session, v: Volume) -> Bucket:
        bucket = s.scalar(select(Bucket).where(Bucket.key == v.source.lower()))
        if bucket is None:
            raise StartFailed(f"The bucket {v.source} mounted at {v.mount_path} no longer exists; change the "
                              "Space's volumes.")
        return bucket

    def _bucket(self, s: Session, v: Volume) -> Path:
        bucket = self._row(s, v)
        return BucketDisk(self.buckets / bucket.id).ensure(bucket.size_mb)

    def _snapshot(self, s: Session, v: Volume) -> Path:
        repo = self.repo_for(s, v.type, v.source)
        sha = repo.resolve(v.revision or "main") if repo is not None else None
        if sha is None:
            raise StartFailed(f"The {v.type} {v.source} (revision {v.revision or 'main'}) mounted at "
                              f"{v.mount_path} cannot be found; change the Space's volumes.")
        dest = self.snapshots / v.type / v.source.lower().replace("/", "--") / sha
        if not dest.is_dir():
            tmp = dest.with_name(f".{sha}.{os.getpid()}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            repo.export(sha, tmp)
            os.chmod(tmp, 0o755)
            try:
                os.rename(tmp, dest)
            except OSError:  # another start wrote the same snapshot first: the same files
                shutil.rmtree(tmp, ignore_errors=True)
        return dest

    def forget_bucket(self, bucket_id: str) -> None:
        BucketDisk(self.buckets / bucket_id).remove()


class BucketDisk(SpaceDisk):
    """A bucket's filesystem (see the module docstring): made on first use, mounted while the platform uses it."""

    @property
    def data(self) -> Path:
        return self.mnt / "data"

    def ensure(self, size_mb: int) -> Path:  # type: ignore[override]
        with self._locked():
            if not self.image.exists():
                self._make(size_mb)
            if not self.mounted():
                try:
                    loop_mount(self.image, self.mnt)
                except OSError as exc:
                    raise StartFailed(f"could not mount a bucket's disk: {exc}") from None
            self.data.mkdir(mode=0o755, exist_ok=True)
        return self.data

    def remove(self) -> None:
        if self.dir.exists():
            self.release()
            shutil.rmtree(self.dir, ignore_errors=True)


def forget_deleted_buckets(db: Database, backend: HoldsClaims) -> list[str]:
    """Give back the storage of buckets deleted since the last call (the hub deletes the row; only the leader
    holds the backend); the ids given back. What the backend holds is read before the rows: storage made for a
    bucket created in between is then not in ``held``, so it is never taken for a deleted bucket's."""
    held = backend.claims()
    if not held:
        return []
    with db.session() as s:
        live = set(s.scalars(select(Bucket.id).where(Bucket.id.in_(held))))
    gone = sorted(held - live)
    for bucket_id in gone:
        log.info("giving back the storage of the deleted bucket %s", bucket_id)
        backend.forget_claim(bucket_id)
    return gone


def give_to(path: Path, uid: int) -> None:
    """A read-write bucket's files belong to the Space that writes it (one at a time, see services.buckets);
    walked only when its top changed hands, so a restart of the same Space costs one lstat."""
    st = os.lstat(path)
    if st.st_uid == uid:
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(root, name), uid, uid)
    os.lchown(path, uid, uid)


def bucket_usage(directory: Path) -> tuple[int, int]:
    """(bytes, files) in a bucket's data; (0, 0) when it was never mounted or is not mounted now."""
    data = BucketDisk(directory).data
    if not data.is_dir():
        return 0, 0
    size = files = 0
    for root, _dirs, names in os.walk(data):
        for name in names:
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(root, name)).st_size
                files += 1
    return size, files


"""Content-addressed storage for large files: ``sha256 -> bytes``, each object stored once for the whole hub.

Shared by Git LFS (``spaces.hub.lfs``, pointers in git) and, later, Xet: both only need the :class:`ObjectStore`
contract below, so an S3-compatible store can sit behind the same five methods (``writer`` would then stream a
multipart upload, ``open`` a ranged GET).

Contract:

* ``writer(oid, size)`` returns an :class:`ObjectWriter`; feed it chunks with ``write``, then ``commit()``. The
  object becomes visible only if the bytes hash to ``oid`` and number exactly ``size``; otherwise ``commit``
  raises ``BadRequest`` and nothing is stored. ``abort()`` (or leaving the ``with`` block on an error) drops it.
  Writing an object that already exists verifies the bytes and keeps the stored copy (proof of possession; see
  :class:`RepoObjects`). Nothing ever holds a whole object in memory.
* ``exists(oid)``, ``size(oid)`` (None when absent) and ``open(oid, start, end)`` (an iterator of chunks of bytes
  ``start..end`` inclusive; raises ``LfsObjectMissing`` when absent) never block on a writer: objects are written
  under a temporary name and renamed into place whole, so a reader sees all of an object or none of it.
* Objects are never deleted by the hub's requests: deleting a repository drops its links only. ``spaces gc``
  (``spaces.services.collect``) removes the objects no commit of any repository names once they are older than its
  grace period, holding the lock ``pinned`` excludes: an upload in progress stores its object before its commit,
  and an object a client is told is already there (the batch API's answer, the commit path's check; both call
  ``size`` through the hub's store) or sends again (``writer``) is made young (:meth:`LocalObjectStore.touch`)
  under ``pinned``, so a collection that read the repositories before the commit that names it keeps it.

Which repository may read which object is :class:`RepoObjects`: a link per (repository, object), made when a
client that can write the repository uploads the object's bytes (or the hub writes them in a commit). Without the
links, knowing a sha256 would be enough to read another repository's private file.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Protocol

from spaces import durable
from spaces.domain.lfs import check_oid
from spaces.errors import BadRequest, LfsObjectMissing

CHUNK = 4 << 20


def objects_root(repos_root: Path) -> Path:
    """Where the hub's objects live: ``{data dir}/lfs/objects`` beside ``{data dir}/repos``."""
    return Path(repos_root).parent / "lfs" / "objects"


class ObjectWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    def commit(self) -> bool:
        """Verify and publish; True when the object is new to the store."""
    def abort(self) -> None: ...


class ObjectStore(Protocol):
    def writer(self, oid: str, size: int) -> ObjectWriter: ...
    def exists(self, oid: str) -> bool: ...
    def size(self, oid: str) -> int | None: ...
    def open(self, oid: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...


def put(store: ObjectStore, oid: str, size: int, chunks: Iterable[bytes]) -> bool:
    """Store ``chunks`` as object ``oid`` (verified); True when it is new."""
    w = store.writer(oid, size)
    try:
        for chunk in chunks:
            w.write(chunk)
    except BaseException:
        w.abort()
        raise
    return w.commit()


class _LocalWriter:
    def __init__(self, store: LocalObjectStore, oid: str, size: int) -> None:
        self.store, self.oid, self.expected = store, oid, size
        self.hash = hashlib.sha256()
        self.written = 0
        # an existing object is only verified, not written again; made young, as the commit that names it follows
        self.keep = store.touch(oid) is None
        self.tmp = store.root / "tmp" / f"{oid}.{uuid.uuid4().hex}"
        self.file = None
        if self.keep:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed by commit or abort

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if self.written > self.expected:
            self.abort()
            raise BadRequest(f"Object sha256:{self.oid} is larger than the {self.expected} bytes announced.")
        self.hash.update(data)
        if self.file is not None:
            self.file.write(data)

    def commit(self) -> bool:
        try:
            if self.written != self.expected:
                raise BadRequest(f"Object sha256:{self.oid}: received {self.written} bytes, {self.expected} announced.")
            if self.hash.hexdigest() != self.oid:
                raise BadRequest(f"Object sha256:{self.oid}: the bytes received hash to sha256:"
                                 f"{self.hash.hexdigest()}; nothing was stored.")
            if self.file is None:
                if self.store.touch(self.oid) is None:  # collected during an upload longer than the grace period
                    raise BadRequest(f"Object sha256:{self.oid} was removed while it was being sent; send it again.")
                return False
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            self.file = None
            # whole or not at all, and still there after a crash; a concurrent equal upload replaces equal bytes;
            # never between the collector's look at an old copy's time and its removal (``pinned``)
            with self.store.pinned():
                durable.publish(self.tmp, self.store.path(self.oid))
            return True
        finally:
            self.abort()

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.tmp.unlink(missing_ok=True)


class LocalObjectStore:
    """Objects as files under ``root/ab/cd/<oid>`` (git-lfs's own layout), written through ``root/tmp``.

    ``pinned``: the collector's lock, held shared while an object is made young (:meth:`touch`) or renamed into
    place, so nothing changes between the collector's look at an object's time and its removal; the hub's store
    shares the Xet store's (``XetStore.pinned``/``collecting``: one collector, and a backup pins both). None for a
    store no collector runs on (a backup's copy)."""

    def __init__(self, root: Path, pinned: Callable[[], AbstractContextManager] | None = None) -> None:
        self.root = Path(root)
        self.pinned = pinned or nullcontext

    def path(self, oid: str) -> Path:
        check_oid(oid)
        return self.root / oid[:2] / oid[2:4] / oid

    def writer(self, oid: str, size: int) -> _LocalWriter:
        check_oid(oid)
        return _LocalWriter(self, oid, size)

    def exists(self, oid: str) -> bool:
        return self.path(oid).is_file()

    def size(self, oid: str) -> int | None:
        try:
            return self.path(oid).stat().st_size
        except FileNotFoundError:
            return None

    def touch(self, oid: str) -> int | None:
        """Mark a stored object as used now (the collector keeps what is younger than its grace period); its size,
        None when absent."""
        path = self.path(oid)
        with self.pinned():
            try:
                os.utime(path)
                return path.stat().st_size
            except FileNotFoundError:
                return None

    def oids(self) -> Iterator[tuple[str, Path]]:
        """Every stored object (``ab/cd/<oid>``) with its path; the temporaries are not objects."""
        for path in self.root.glob("[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/*"):
            if path.name.startswith(path.parent.parent.name + path.parent.name) and path.is_file():
                yield path.name, path

    def sweep(self, older_than_s: float = 3600.0) -> int:
        """Remove what uploads cut short by a crash left in ``tmp`` (an upload in progress writes, so its file
        is fresh); the number removed."""
        cutoff, removed = time.time() - older_than_s, 0
        for tmp in (self.root / "tmp").glob("*") if (self.root / "tmp").is_dir() else ():
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    def open(self, oid: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            f = open(self.path(oid), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise LfsObjectMissing(oid) from None
        return _chunks(f, start, end)


def _chunks(f, start: int, end: int | None) -> Iterator[bytes]:  # noqa: ANN001
    with f:
        f.seek(start)
        left = None if end is None else end - start + 1
        while left is None or left > 0:
            data = f.read(CHUNK if left is None else min(CHUNK, left))
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data


class RepoObjects:
    """The objects one repository may read: an empty marker file per object in ``<repo>/lfs/objects/``. They
    live in the repository's directory, so a rename moves them and a delete drops them (never the objects)."""

    def __init__(self, repo_path: Path) -> None:
        self.dir = Path(repo_path) / "lfs" / "objects"

    def link(self, oid: str) -> None:
        check_oid(oid)
        durable.touch(self.dir / oid[:2] / oid)  # an upload answered gives the repository the object for good

    def linked(self, oid: str) -> bool:
        check_oid(oid)
        return (self.dir / oid[:2] / oid).exists()

    def oids(self) -> list[str]:
        return sorted(m.name for m in self.dir.glob("*/*")) if self.dir.is_dir() else []

    def copy_to(self, repo_path: Path) -> None:
        """Give a copy of the repository (a duplicate) the same objects."""
        if not self.dir.is_dir():
            return
        other = RepoObjects(repo_path)
        for marker in self.dir.glob("*/*"):
            other.link(marker.name)

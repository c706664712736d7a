"""The hub's object store (``sha256 -> bytes``) with the files uploaded through Xet in it, stored once.

A file that came through Xet is kept as its xorbs only: no second copy is written into the LFS store. Its sha256
was checked against its bytes when its shard was registered (``service.verify_sha256``), and the store's
``sha256 -> file`` link written only then. Every reader that asks for it by sha256 (``resolve`` without Xet, the
git-lfs batch download, the builder's checkout and ``preload_from_hub``, backups) gets the bytes reconstructed from
the xorbs, streamed in blocks (bounded memory), ranges included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

from spaces.errors import LfsObjectMissing
from spaces.storage.objects import LocalObjectStore, ObjectWriter, objects_root
from spaces.xet import service
from spaces.xet.prefetch import prefetched
from spaces.xet.store import FileRecord, XetStore, xet_root


def object_store(repos_root: Path) -> XetBackedObjects:
    """The hub's one object store: LFS objects on disk, and the files uploaded through Xet (``{data dir}/xet``
    beside ``{data dir}/repos``)."""
    return XetBackedObjects(objects_root(repos_root), XetStore(xet_root(Path(repos_root).parent)))


class XetBackedObjects:
    """An :class:`~spaces.storage.objects.ObjectStore`: an object is read from the LFS store when it is there,
    else rebuilt from Xet. New objects (git-lfs uploads, regular files of a commit) go to the LFS store. Both are
    collected under one lock (``XetStore.pinned``/``collecting``): a backup pins both, one collector runs."""

    def __init__(self, local_root: Path, xet: XetStore) -> None:
        # what makes an LFS object young excludes the collector as the Xet side does: one lock for both stores
        self.local, self.xet = LocalObjectStore(local_root, pinned=xet.pinned), xet

    def _xet_file(self, oid: str) -> FileRecord | None:
        """The file, made young again for the collector: a commit that names an object no commit referenced any
        more (deleted, squashed) checks it here, and the xorbs are its only copy; a collection that read the
        repositories before the commit landed must not remove it after (``spaces.xet.gc``)."""
        with self.xet.pinned():
            h = self.xet.xet_hash_of(oid)
            rec = self.xet.get_file(h) if h is not None else None
            if rec is not None:
                self.xet.link_sha256(oid, h)  # already there: its time is set to now
        return rec

    def writer(self, oid: str, size: int) -> ObjectWriter:
        return self.local.writer(oid, size)

    def exists(self, oid: str) -> bool:
        return self.size(oid) is not None

    def size(self, oid: str) -> int | None:
        """Also what a client is told "already there" by (the batch API, the commit path): an LFS object is made
        young for the collector as the Xet file is (``LocalObjectStore.touch``)."""
        size = self.local.touch(oid)
        if size is None and (rec := self._xet_file(oid)) is not None:
            size = rec.size
        return size

    def open(self, oid: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if self.local.exists(oid):
            return self.local.open(oid, start, end)
        rec = self._xet_file(oid)
        if rec is None:
            raise LfsObjectMissing(oid)
        return _as_bytes(prefetched(service.read_file(self.xet, rec, start, end)))


def _as_bytes(blocks: Iterator[bytes | bytearray]) -> Iterator[bytes]:
    """The contract's bytes (a response body refuses a bytearray); closing this closes the prefetcher."""
    with closing(blocks):
        for b in blocks:
            yield b if isinstance(b, bytes) else bytes(b)

"""Xet data on local disk, content-addressed: verified xorbs (with their chunk index), registered files (their
reconstruction terms) and the global-dedupe table (chunk hash -> xorb). Writes go to a temporary name, are
fsynced and renamed into place (``spaces.durable``, as the LFS objects are), so a crash leaves either nothing or a
whole object, and nothing an upload was answered for is lost. One small interface (``XetStore``) so that an object
store can sit behind it instead."""

from __future__ import annotations

import fcntl
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from spaces import durable
from spaces.domain.lfs import check_oid
from spaces.xet.hashing import from_hex, to_hex
from spaces.xet.xorb import ChunkEntry, XorbIndex

_ENTRY = struct.Struct("<32sII")


@dataclass(frozen=True)
class FileRecord:
    hash: bytes
    size: int
    sha256: str | None  # hex digest of the file's bytes, when the client declared it
    terms: list[tuple[bytes, int, int, int]]  # (xorb hash, first chunk, end chunk, unpacked bytes)


def xet_root(data_dir: Path) -> Path:
    """Where the hub's Xet data lives: ``{data dir}/xet``."""
    return Path(data_dir) / "xet"


class XetStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("xorbs", "files", "dedupe", "sha256", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Nothing is collected while this is held (a backup holds it from its snapshot to its last copy)."""
        with self._gc_lock(fcntl.LOCK_SH):
            yield

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Held by the garbage collector (``spaces.xet.gc``): one at a time, and never while a backup runs."""
        with self._gc_lock(fcntl.LOCK_EX):
            yield

    @contextmanager
    def _gc_lock(self, mode: int) -> Iterator[None]:
        with open(self.root / "gc.lock", "a+b") as f:
            fcntl.flock(f, mode)
            yield

    def _path(self, kind: str, h: bytes, suffix: str = "") -> Path:
        name = to_hex(h)
        return self.root / kind / name[:2] / f"{name}{suffix}"

    def spool(self) -> BinaryIO:
        """A temporary file on the store's disk (an upload lands here, then :meth:`put_xorb` renames it)."""
        return tempfile.NamedTemporaryFile(dir=self.root / "tmp", delete=False)

    def _write(self, dest: Path, data: bytes) -> None:
        durable.write_bytes(dest, data, self.root / "tmp")

    # xorbs
    def has_xorb(self, h: bytes) -> bool:
        return self._path("xorbs", h, ".idx").exists()

    def put_xorb(self, spooled: str, index: XorbIndex) -> bool:
        """Keep a verified xorb (its spool file is moved in); False when it was there already."""
        if self.has_xorb(index.hash):
            os.unlink(spooled)
            return False
        durable.fsync_file(spooled)
        durable.publish(spooled, self._path("xorbs", index.hash))  # on disk before its index says it is whole
        body = struct.pack("<QI", index.data_end, len(index.chunks))
        body += b"".join(_ENTRY.pack(c.hash, c.offset, c.length) for c in index.chunks)
        self._write(self._path("xorbs", index.hash, ".idx"), body)  # last: its presence says the xorb is whole
        return True

    def touch_xorb(self, h: bytes) -> None:
        """Mark a stored xorb as used now: the collector keeps what is younger than its grace period."""
        _touch(self._path("xorbs", h, ".idx"))

    def xorb_index(self, h: bytes) -> XorbIndex | None:
        try:
            raw = self._path("xorbs", h, ".idx").read_bytes()
        except FileNotFoundError:
            return None
        end, n = struct.unpack_from("<QI", raw)
        chunks = [ChunkEntry(*_ENTRY.unpack_from(raw, 12 + i * _ENTRY.size)) for i in range(n)]
        return XorbIndex(h, chunks, end)

    def xorb_path(self, h: bytes) -> Path:
        return self._path("xorbs", h)

    # files
    def put_file(self, rec: FileRecord) -> bool:
        dest = self._path("files", rec.hash, ".json")
        if dest.exists():
            _touch(dest)  # registered again: young again for the collector
            return False
        doc = {"size": rec.size, "sha256": rec.sha256,
               "terms": [[to_hex(x), a, b, n] for x, a, b, n in rec.terms]}
        self._write(dest, json.dumps(doc).encode())
        return True

    def get_file(self, h: bytes) -> FileRecord | None:
        try:
            doc = json.loads(self._path("files", h, ".json").read_bytes())
        except FileNotFoundError:
            return None
        return FileRecord(h, doc["size"], doc["sha256"],
                          [(from_hex(x), a, b, n) for x, a, b, n in doc["terms"]])

    # global dedupe
    def put_dedupe(self, chunk: bytes, xorb: bytes) -> None:
        dest = self._path("dedupe", chunk)
        if not dest.exists():  # not fsynced: an entry lost to a crash only means that chunk is sent once more
            with tempfile.NamedTemporaryFile(dir=self.root / "tmp", delete=False) as f:
                f.write(xorb)
            dest.parent.mkdir(exist_ok=True)
            os.replace(f.name, dest)

    def get_dedupe(self, chunk: bytes) -> bytes | None:
        try:
            xorb = self._path("dedupe", chunk).read_bytes()
        except FileNotFoundError:
            return None
        return xorb if len(xorb) == 32 else None  # an entry a crash left empty

    # the Xet hash of an LFS object (sha256 hex) uploaded through Xet: resolve sends it as X-Xet-Hash
    def link_sha256(self, oid: str, h: bytes) -> None:
        check_oid(oid)
        dest = self.root / "sha256" / oid[:2] / oid
        if dest.exists():
            _touch(dest)
        else:
            self._write(dest, h)

    def xet_hash_of(self, oid: str) -> bytes | None:
        check_oid(oid)
        try:
            return (self.root / "sha256" / oid[:2] / oid).read_bytes()
        except (FileNotFoundError, ValueError):
            return None


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except FileNotFoundError:
        pass


def write_blocks(fd: int, blocks: list[bytes]) -> None:
    """The blocks as they came off the socket, in one ``writev`` (gathering them into one buffer first copied
    every byte once more)."""
    view = [memoryview(b) for b in blocks if b]
    while view:
        done = os.writev(fd, view[:1024])  # IOV_MAX
        while view and done >= len(view[0]):
            done -= len(view[0])
            view.pop(0)
        if done:
            view[0] = view[0][done:]

"""A GitRepo whose reads by commit sha are cached in memory.

Everything reachable from a commit sha is immutable, so trees, entries and small blobs read *at a sha* can be
kept without ever being invalidated; only names that move (``main``, tags) are resolved through git each time.
This takes the git subprocesses off the hot read paths (``space_info``, ``/resolve``, tree listings), which
is where a busy hub spends its time. The caches are process-wide and bounded (entries and bytes).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from spaces.storage._gitcmd import FULL_SHA
from spaces.storage.gitrepo import GitRepo, TreeEntry

MAX_ENTRIES = 4096
MAX_BLOB_BYTES = 1 << 20  # cache files up to 1 MiB
MAX_TOTAL_BLOB_BYTES = 64 << 20


class _LRU:
    def __init__(self, max_entries: int, max_bytes: int | None = None) -> None:
        self.data: OrderedDict[Any, Any] = OrderedDict()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
        return None

    def put(self, key: Any, value: Any, size: int = 0) -> None:
        with self.lock:
            if key in self.data:
                return
            self.data[key] = (value, size) if self.max_bytes else value
            self.bytes += size
            while len(self.data) > self.max_entries or (self.max_bytes and self.bytes > self.max_bytes):
                _, old = self.data.popitem(last=False)
                if self.max_bytes:
                    self.bytes -= old[1]


_known_commits = _LRU(MAX_ENTRIES * 4)
_trees = _LRU(MAX_ENTRIES)
_stats = _LRU(MAX_ENTRIES * 4)
_blobs = _LRU(MAX_ENTRIES, MAX_TOTAL_BLOB_BYTES)
_pointers = _LRU(MAX_ENTRIES * 16)  # blob id -> its LFS pointer, or False: a blob's content never changes


class CachedGitRepo(GitRepo):
    def _key(self, *parts: Any) -> tuple:
        return (str(self.path), *parts)

    def _rev(self, rev: str) -> str:
        if FULL_SHA.fullmatch(rev) and _known_commits.get(self._key(rev)):
            return rev
        sha = super()._rev(rev)
        _known_commits.put(self._key(sha), True)
        return sha

    def list_tree(self, rev: str, path: str = "", recursive: bool = False) -> list[TreeEntry]:
        sha = self._rev(rev)
        key = self._key(sha, path, recursive)
        hit = _trees.get(key)
        if hit is None:
            hit = tuple(super().list_tree(sha, path, recursive))
            _trees.put(key, hit)
        return list(hit)

    def stat(self, rev: str, path: str) -> TreeEntry:
        sha = self._rev(rev)
        key = self._key(sha, path)
        hit = _stats.get(key)
        if hit is None:
            hit = super().stat(sha, path)
            _stats.put(key, hit)
        return hit

    def lfs_pointers(self, entries) -> dict:  # noqa: ANN001
        entries = list(entries)
        found, unknown = {}, []
        for e in entries:
            hit = _pointers.get(e.oid)
            if hit is None:
                unknown.append(e)
            elif hit:
                found[e.oid] = hit
        if unknown:
            read = super().lfs_pointers(unknown)
            for e in unknown:
                if e.type == "file":
                    _pointers.put(e.oid, read.get(e.oid, False))
            found.update(read)
        return found

    def read_blob(self, rev: str, path: str) -> bytes:
        sha = self._rev(rev)
        key = self._key(sha, path)
        hit = _blobs.get(key)
        if hit is not None:
            return hit[0]
        data = super().read_blob(sha, path)
        if len(data) <= MAX_BLOB_BYTES:
            _blobs.put(key, data, len(data))
        return data

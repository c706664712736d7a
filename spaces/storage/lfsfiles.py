"""What a commit's additions become in git when the repository uses Git LFS.

* An ``lfsFile`` operation (the object was uploaded before, through the batch API) writes its pointer, but only if
  this repository holds that object with that size: a pointer to nothing would serve an error to every reader.
* A regular file at a path the repository's ``.gitattributes`` stores with ``filter=lfs`` (the one in the commit,
  or else the one at the branch tip) goes to the object store and git gets its pointer: what git-lfs itself would
  have committed, so a git-lfs clone checks out the real file and the hub serves it like any other LFS file.
* A file that goes to LFS although ``.gitattributes`` does not track its path (an ``lfsFile`` the client sent for
  its size, or a regular file of ``threshold`` bytes or more) gets a line in ``.gitattributes`` in the same
  commit, as on the Hub: otherwise git-lfs clients would check out its bare pointer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from spaces.domain.lfs import MAX_POINTER_SIZE, Pointer, lfs_matcher, parse_pointer, with_tracked
from spaces.errors import BadRequest, EntryNotFound, LfsObjectMissing
from spaces.storage.gitrepo import Addition, GitRepo
from spaces.storage.objects import CHUNK, ObjectStore, RepoObjects, put


def check_objects(repo: GitRepo, store: ObjectStore, lfs: dict[str, tuple[str, int | None]]) -> dict[str, Pointer]:
    """The pointers of ``lfsFile`` operations (path -> sha256 and size, None: the object's); refuses, before
    anything is written, an object this repository does not hold or whose size differs."""
    links = RepoObjects(repo.path)
    pointers = {}
    for path, (oid, size) in lfs.items():
        held = store.size(oid) if links.linked(oid) else None
        if held is None:
            raise LfsObjectMissing(oid, path)
        if size is not None and held != size:
            raise BadRequest(f"{path}: the LFS object sha256:{oid} has {held} bytes, not {size}.")
        pointers[path] = Pointer(oid, held)
    return pointers


def to_pointers(repo: GitRepo, store: ObjectStore, tip: str | None, additions: list[Addition],
                pointers: dict[str, Pointer], threshold: int | None = None) -> list[Addition]:
    """``additions`` with the ``pointers`` (from :func:`check_objects`) written, every regular file at an
    LFS-tracked path (or of ``threshold`` bytes or more, None: no size limit) replaced by its pointer (its bytes
    stored), and ``.gitattributes`` tracking each path that went to LFS."""
    attributes = _gitattributes(repo, tip, additions)
    tracked = lfs_matcher(attributes)
    out, untracked = [], []
    for add in additions:
        if add.path in pointers:
            out.append(Addition(add.path, pointers[add.path].text()))
            if not tracked(add.path):
                untracked.append(add.path)
            continue
        if add.path == ".gitattributes":
            out.append(add)
            continue
        size = add.file.stat().st_size if add.file is not None else len(add.content)
        if not tracked(add.path) and (threshold is None or size < threshold):
            out.append(add)
            continue
        if size <= MAX_POINTER_SIZE and parse_pointer(_small(add)) is not None:
            out.append(add)  # already a pointer: what git-lfs would commit
        else:
            out.append(Addition(add.path, _store(repo, store, add, size).text()))
        if not tracked(add.path):
            untracked.append(add.path)
    return _track(out, attributes, untracked)


def _store(repo: GitRepo, store: ObjectStore, add: Addition, size: int) -> Pointer:
    digest = hashlib.sha256()
    for chunk in _chunks(add):
        digest.update(chunk)
    pointer = Pointer(digest.hexdigest(), size)
    put(store, pointer.oid, size, _chunks(add))
    RepoObjects(repo.path).link(pointer.oid)
    return pointer


def _track(additions: list[Addition], attributes: str | None, paths: list[str]) -> list[Addition]:
    """``additions`` with ``.gitattributes`` (the commit's, else the tip's) tracking ``paths`` with LFS."""
    text = with_tracked(attributes, paths)
    if text is None:
        return additions
    return [a for a in additions if a.path != ".gitattributes"] + [Addition(".gitattributes", text.encode())]


def _gitattributes(repo: GitRepo, tip: str | None, additions: list[Addition]) -> str | None:
    for add in additions:
        if add.path == ".gitattributes":
            return _small(add).decode("utf-8", "replace")
    if tip is None:
        return None
    try:
        return repo.read_blob(tip, ".gitattributes").decode("utf-8", "replace")
    except EntryNotFound:
        return None


def _small(add: Addition) -> bytes:
    return add.file.read_bytes() if add.file is not None else add.content


def _chunks(add: Addition) -> Iterator[bytes]:
    if add.file is None:
        yield add.content
        return
    with open(add.file, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk

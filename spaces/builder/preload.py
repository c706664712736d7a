"""``preload_from_hub``: the model and dataset files a Space names in its README, fetched at build time into a
Hugging Face cache folder, so unchanged ``hf_hub_download`` / ``from_pretrained`` code finds them without a network
call and a wake never downloads weights.

Lifecycle of one build's preload (``PreloadStore.prepare``, called by the build service before the artifact build):

1. ``resolving``: each entry is resolved by a :class:`PreloadSource` (the hub's own storage, with the Space
   owner's read access: ``spaces.services.preloads``) to a commit and its files. A missing repository, revision or
   file raises :func:`preload_failed` naming it (the build fails: BUILD_ERROR).
2. The folder's address is a hash of the resolved commits and files: a rebuild after the preloaded repository
   moved on gets a new folder; the same inputs reuse the folder at once (nothing is read again).
3. Otherwise the files are written in the cache layout huggingface_hub reads (``models--o--n/blobs/{oid}``,
   ``snapshots/{commit}/{path}`` linked to the blob, ``refs/{revision}``) under a temporary name, then renamed:
   a folder is either complete or absent.

The local backend cannot hand a Space this folder as its cache (it is shared and read-only, while the app's own
downloads must be able to write): :func:`link_into` puts per-file links to it into the Space's writable
``~/.cache/huggingface/hub``. Docker images copy the folder itself there (``builder/image.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from spaces.domain.cardconfig import Preload, parse_preload

from spaces.builder.errors import BuildFailed

Log = Callable[[str, str], None]
MARKER = ".spaces-preload.json"
#: where huggingface_hub looks by default, under the app's home
HOME_CACHE = ".cache/huggingface/hub"


def preload_failed(message: str) -> BuildFailed:
    """A ``preload_from_hub`` entry names something this hub does not have (or the Space's owner cannot read):
    the build fails (BUILD_ERROR) with ``message``, which names the entry."""
    return BuildFailed(message, reason="preload_failed", log_line=message)


@dataclass(frozen=True)
class PreloadFile:
    path: str
    oid: str  # the git blob id: the ETag this hub's /resolve answers for the file
    size: int


@dataclass(frozen=True)
class ResolvedRepo:
    repo_type: str  # "model" | "dataset"
    repo_id: str
    revision: str  # the name the README gave ("main" when none); a ref file when it is not the commit itself
    commit: str
    files: tuple[PreloadFile, ...]


class PreloadSource(Protocol):
    """Where preloaded files come from. ``resolve`` raises :func:`preload_failed` naming what is missing."""

    def resolve(self, space_id: str, item: Preload) -> ResolvedRepo: ...

    def open(self, repo: ResolvedRepo, path: str) -> Iterator[bytes]: ...


def cache_folder(repo_type: str, repo_id: str) -> str:
    """huggingface_hub's folder name for a repository: ``models--owner--name``."""
    return f"{repo_type}s--" + repo_id.replace("/", "--")


class PreloadStore:
    """Content-addressed preload folders under ``root`` (``{data}/preloads``), shared by every Space."""

    def __init__(self, root: Path, source: PreloadSource) -> None:
        self.root = Path(root)
        self.source = source

    def prepare(self, space_id: str, entries: tuple[str, ...], log: Log) -> str:
        """The folder holding ``entries`` for this build ("" when there are none)."""
        items = [p for p in (parse_preload(e) for e in entries) if p is not None]
        if not items:
            return ""
        repos = []
        for item in items:
            repo = self.source.resolve(space_id, item)
            size = sum(f.size for f in repo.files)
            log("resolving", f"preload_from_hub: {repo.repo_type} {repo.repo_id} at {repo.commit[:7]}: "
                             f"{len(repo.files)} file(s), {size:,} bytes")
            repos.append(repo)
        key = address(repos)
        final = self.root / key
        if (final / MARKER).is_file():
            log("resolving", f"preload_from_hub: reusing {key[:12]} (the same commits and files)")
            return str(final)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # Spaces read it through links (their own uids)
        tmp = self.root / f".tmp-{key}-{secrets.token_hex(4)}"
        try:
            for repo in repos:
                self._write(tmp, repo, log)
            (tmp / MARKER).write_text(json.dumps([_describe(r) for r in repos], indent=1))
            _readable(tmp)
            try:
                os.rename(tmp, final)
            except OSError:  # another build made the same folder meanwhile: theirs is as good
                if not (final / MARKER).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return str(final)

    def _write(self, tmp: Path, repo: ResolvedRepo, log: Log) -> None:
        folder = tmp / cache_folder(repo.repo_type, repo.repo_id)
        (folder / "blobs").mkdir(parents=True, exist_ok=True)
        log("installing", f"preload_from_hub: fetching {len(repo.files)} file(s) of {repo.repo_id}")
        for f in repo.files:
            blob = folder / "blobs" / f.oid
            if not blob.exists():
                part = blob.with_name(blob.name + ".part")
                with open(part, "wb") as out:
                    for chunk in self.source.open(repo, f.path):
                        out.write(chunk)
                os.rename(part, blob)
            link = folder / "snapshots" / repo.commit / f.path
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(blob, link.parent), link)
        if repo.revision != repo.commit:
            (folder / "refs").mkdir(exist_ok=True)
            ref = folder / "refs" / repo.revision
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(repo.commit)


def _describe(repo: ResolvedRepo) -> dict:
    return {"type": repo.repo_type, "id": repo.repo_id, "revision": repo.revision, "commit": repo.commit,
            "files": [[f.path, f.oid, f.size] for f in repo.files]}


def address(repos: list[ResolvedRepo]) -> str:
    return hashlib.sha256(json.dumps([_describe(r) for r in repos], sort_keys=True).encode()).hexdigest()[:32]


def _readable(folder: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(folder):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


def link_into(store: str, home: Path, uid: int) -> None:
    """Make the files of the preload folder ``store`` visible in the app's writable cache ``home/HOME_CACHE``:
    real folders and ``refs`` files owned by ``uid``, and each snapshot file a link to the shared, read-only blob
    (an absolute path: the sandbox mounts the store where it is on the host). Cheap when done already (a marker
    names the store), so a wake pays one ``stat``.

    This runs as root in a folder the Space owns (and may be running in, during a rebuild's swap): every step is
    taken relative to an opened folder with ``O_NOFOLLOW``, so a link the app planted never redirects a write."""
    if (home / HOME_CACHE / f".spaces-preload-{Path(store).name}").exists():
        return
    root = Path(store)
    top = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        cache = _descend(top, Path(HOME_CACHE).parts, uid)
        try:
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root)
                if len(rel.parts) < 2 or rel.parts[1] == "blobs" or path.is_dir():
                    continue
                folder = _descend(cache, rel.parts[:-1], uid)
                try:
                    _clear(folder, rel.name)
                    if path.is_symlink():
                        os.symlink(str(path.resolve()), rel.name, dir_fd=folder)
                        os.chown(rel.name, uid, uid, dir_fd=folder, follow_symlinks=False)
                    else:  # refs/{revision}: a file the app's own downloads may move later
                        _write_new(folder, rel.name, path.read_bytes(), uid)
                finally:
                    os.close(folder)
            _write_new(cache, f".spaces-preload-{root.name}", b"", uid)
        finally:
            os.close(cache)
    finally:
        os.close(top)


def _descend(fd: int, parts: tuple[str, ...], uid: int) -> int:
    """An open descriptor of ``parts`` below ``fd``, each folder made (owned by ``uid``) when missing; whatever
    else stands in the way (a file, a link) is removed first."""
    current = os.dup(fd)
    for name in parts:
        try:
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=current)
        except FileNotFoundError:
            nxt = None
        except OSError:  # a link or a file where a folder belongs
            _clear(current, name)
            nxt = None
        if nxt is None:
            os.mkdir(name, 0o755, dir_fd=current)
            os.chown(name, uid, uid, dir_fd=current, follow_symlinks=False)
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=current)
        os.close(current)
        current = nxt
    return current


def _clear(fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(name, dir_fd=fd)  # resists links swapped in while it runs


def _write_new(fd: int, name: str, data: bytes, uid: int) -> None:
    _clear(fd, name)
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=fd)
    try:
        os.write(out, data)
        os.fchown(out, uid, uid)
    finally:
        os.close(out)

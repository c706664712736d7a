"""``spaces gc``: remove the Xet data and the Git LFS objects no repository needs any more, on a live instance.

The roots are the LFS pointers of every commit that some ref of some repository (Spaces, models, datasets) reaches,
read from git itself: a file deleted and its history squashed, or a repository deleted, no longer counts. What
happens to the store from there is ``spaces.xet.gc``'s (grace period, the locks that keep an upload in progress
safe). The repositories are listed twice, the second time for one that a rename moved past the first listing.

The LFS objects (``spaces.storage.objects``) go by the same roots and the same rule, in one sweep under the same
lock (:func:`collect_lfs`): an object no reachable commit names, older than the grace period. Their uploads store
the object before the commit (git-lfs uploads, then pushes the refs; huggingface_hub uploads, then commits), and an
object a client is told is already there, or sends again, is made young under ``pinned`` before its commit: a run
that read the repositories before that commit keeps it, one that holds the lock first makes the client send it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spaces.errors import GitError, SpacesError
from spaces.storage.gitrepo import GitRepo
from spaces.storage.objects import LocalObjectStore, objects_root
from spaces.xet.gc import Collected, collect
from spaces.xet.store import XetStore, xet_root

log = logging.getLogger(__name__)


class CollectError(SpacesError):
    code = "CollectError"
    status = 500


def repo_dirs(repos_root: Path) -> Iterator[Path]:
    """Every bare repository under ``repos_root`` (``{owner}/{name}.git``, ``{type}s/{owner}/{name}.git``);
    never one being deleted (``*.git.deleting-*``)."""
    for parent, dirs, _files in os.walk(repos_root):
        for name in [d for d in dirs if d.endswith(".git")]:
            dirs.remove(name)  # a repository's insides are not searched for more
            yield Path(parent) / name


def referenced_oids(repos_root: Path) -> set[str]:
    """The sha256 of every LFS pointer reachable in any repository."""
    found: set[str] = set()
    seen: set[Path] = set()
    for _ in range(2):
        for path in repo_dirs(repos_root):
            if path in seen:
                continue
            seen.add(path)
            try:
                found |= GitRepo(path).referenced_lfs_oids()
            except GitError as exc:
                if path.exists():  # unreadable: collecting now could remove what it references
                    raise CollectError(f"Could not read the repository {path}: {exc.message} Nothing was "
                                       "collected.") from exc
    return found


@dataclass
class LfsCollected:
    objects: int = 0
    object_bytes: int = 0
    kept: int = 0


def collect_all(repos_root: Path, data_dir: Path, grace_s: float, *,
                dry_run: bool = False) -> tuple[Collected, LfsCollected]:
    """What no reachable commit names, in the Xet store and in the LFS object store (``spaces gc``)."""
    root, objects = xet_root(data_dir), objects_root(repos_root)
    if not root.is_dir() and not objects.is_dir():
        return Collected(), LfsCollected()
    referenced = referenced_oids(repos_root)
    xet = XetStore(root)  # its lock is the one both stores' uploads take (``pinned``)
    done = collect(xet, referenced, grace_s, dry_run=dry_run)
    lfs = LfsCollected()
    if objects.is_dir():
        with xet.collecting():
            lfs = collect_lfs(LocalObjectStore(objects), referenced, time.time() - grace_s, dry_run=dry_run)
    log.info("xet gc: %s; lfs gc: %s", done, lfs)
    return done, lfs


def collect_lfs(store: LocalObjectStore, referenced: set[str], cutoff: float, *,
                dry_run: bool = False) -> LfsCollected:
    """Remove the objects whose sha256 is not in ``referenced`` and that were last stored or made young before
    ``cutoff``. The caller holds the collector's lock (``XetStore.collecting``), so nothing is made young between
    the look at an object's time and its removal."""
    out = LfsCollected()
    for oid, path in store.oids():
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if oid in referenced or st.st_mtime >= cutoff:
            out.kept += 1
            continue
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
        out.objects += 1
        out.object_bytes += st.st_size
    return out

"""``spaces gc``: remove the Xet data no repository needs any more, on a live instance.

The roots are the LFS pointers of every commit that some ref of some repository (Spaces, models, datasets) reaches,
read from git itself: a file deleted and its history squashed, or a repository deleted, no longer counts. What
happens to the store from there is ``spaces.xet.gc``'s (grace period, the locks that keep an upload in progress
safe). The repositories are listed twice, the second time for one that a rename moved past the first listing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from spaces.errors import GitError, SpacesError
from spaces.storage.gitrepo import GitRepo
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


def collect_xet(repos_root: Path, data_dir: Path, grace_s: float, *, dry_run: bool = False) -> Collected:
    root = xet_root(data_dir)
    if not root.is_dir():
        return Collected()
    referenced = referenced_oids(repos_root)
    done = collect(XetStore(root), referenced, grace_s, dry_run=dry_run)
    log.info("xet gc: %s", done)
    return done

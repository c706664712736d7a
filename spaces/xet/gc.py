"""Garbage collection of Xet data: what no repository references any more (a repository deleted, its files deleted
and the history squashed) is removed, the xorbs last.

What counts as referenced is given from above (``spaces.services.collect``): the sha256 of every LFS pointer that
a commit reachable from some ref of some repository names. From those roots, the sha256 links and the file
records they lead to are kept, and every xorb a kept file's terms name. The rest goes, save what is younger than
the grace period: an upload in progress has its xorbs stored before its shard, and its shard before its commit.
What a client reuses is made young again (``XetStore.touch``: a xorb uploaded twice or answered by a dedupe query,
a file or link registered again), and those calls hold ``XetStore.pinned`` while they run, so the collector
(``XetStore.collecting``) never removes a xorb between the moment a client was told of it and its shard. The xorbs
are a Xet file's only copy (``spaces.services.objects``): a commit that names an old file without sending it again (a
file deleted, squashed, then committed again) checks it through the object store, which makes its link young under
``pinned``, so a run that read the repositories before that commit keeps it. The Git LFS objects (git-lfs uploads)
are collected by the same run under the same lock (``spaces.services.collect``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spaces.xet.hashing import to_hex
from spaces.xet.store import XetStore


@dataclass
class Collected:
    links: int = 0
    files: int = 0
    xorbs: int = 0
    xorb_bytes: int = 0
    dedupe: int = 0
    temporaries: int = 0
    kept_xorbs: int = 0


def collect(store: XetStore, referenced: set[str], grace_s: float, *, dry_run: bool = False,
            now: float | None = None) -> Collected:
    """Remove what neither ``referenced`` (LFS sha256s) reaches nor is younger than ``grace_s`` seconds."""
    out = Collected()
    with store.collecting():
        cutoff = (time.time() if now is None else now) - grace_s
        live_files = _sweep_links(store, referenced, cutoff, dry_run, out)
        live_xorbs = _sweep_files(store, referenced, live_files, cutoff, dry_run, out)
        gone = _sweep_xorbs(store, live_xorbs, cutoff, dry_run, out)
        _sweep_dedupe(store, gone, cutoff, dry_run, out)
        out.temporaries = _sweep_temporaries(store, cutoff, dry_run)
    return out


def sweep_temporaries(store: XetStore, older_than_s: float) -> int:
    """Remove the spool files uploads cut short by a crash left (an upload in progress writes, so its file is
    fresh); the number removed. The hub runs it on start, as for the LFS store's."""
    return _sweep_temporaries(store, time.time() - older_than_s, False)


def _sweep_temporaries(store: XetStore, cutoff: float, dry_run: bool) -> int:
    return sum(_remove_if_old(tmp, cutoff, dry_run) for tmp in _entries(store.root / "tmp"))


def _sweep_links(store: XetStore, referenced: set[str], cutoff: float, dry_run: bool, out: Collected) -> set[str]:
    """sha256 -> Xet hash links: kept when the sha256 is referenced (or young); the kept ones' file hashes."""
    live = set()
    for link in _entries(store.root / "sha256"):
        if link.name in referenced or not _old(link, cutoff):
            try:
                live.add(to_hex(link.read_bytes()))
            except (FileNotFoundError, ValueError):
                continue
        else:
            out.links += _remove_if_old(link, cutoff, dry_run)
    return live


def _sweep_files(store: XetStore, referenced: set[str], live_files: set[str], cutoff: float, dry_run: bool,
                 out: Collected) -> set[str]:
    """File records: kept when a kept link leads to them, their sha256 is referenced, or they are young; the hex
    names of the xorbs the kept ones name."""
    live_xorbs = set()
    for path in _entries(store.root / "files"):
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue  # not a record (or gone): left alone
        if path.name.removesuffix(".json") in live_files or doc.get("sha256") in referenced or not _old(path, cutoff):
            live_xorbs.update(t[0] for t in doc["terms"])
        else:
            out.files += _remove_if_old(path, cutoff, dry_run)
    return live_xorbs


def _sweep_xorbs(store: XetStore, live: set[str], cutoff: float, dry_run: bool, out: Collected) -> set[str]:
    """A xorb goes with its index, the index first (its presence says the xorb is whole); a xorb whose index was
    never written (a crash between the two) goes once old. The names of those removed."""
    gone = set()
    for path in _entries(store.root / "xorbs"):
        if path.name.endswith(".idx"):
            continue
        idx = path.with_name(path.name + ".idx")
        stamp = idx if idx.exists() else path
        if path.name in live or not _old(stamp, cutoff):
            out.kept_xorbs += 1
            continue
        size = path.stat().st_size
        if _remove_if_old(stamp, cutoff, dry_run):
            if stamp is idx and not dry_run:
                path.unlink(missing_ok=True)
            out.xorbs += 1
            out.xorb_bytes += size
            gone.add(path.name)
    return gone


def _sweep_dedupe(store: XetStore, gone: set[str], cutoff: float, dry_run: bool, out: Collected) -> None:
    """Dedupe entries that name a xorb no longer stored (or one this run removes), and old ones a crash emptied."""
    for entry in _entries(store.root / "dedupe"):
        try:
            target = entry.read_bytes()
        except FileNotFoundError:
            continue
        if len(target) != 32:
            out.dedupe += _remove_if_old(entry, cutoff, dry_run)
        elif to_hex(target) in gone or not store.has_xorb(target):
            out.dedupe += _remove(entry, dry_run)


def _entries(root: Path) -> Iterator[Path]:
    """The files one or two levels under ``root`` (``ab/<name>``, or ``<name>`` for tmp)."""
    if not root.is_dir():
        return
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False):
            for sub in os.scandir(entry.path):
                if sub.is_file(follow_symlinks=False):
                    yield Path(sub.path)
        elif entry.is_file(follow_symlinks=False):
            yield Path(entry.path)


def _old(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return True


def _remove_if_old(path: Path, cutoff: float, dry_run: bool) -> int:
    """1 when ``path`` was (or, in a dry run, would be) removed: still old when looked at again just before."""
    return _remove(path, dry_run) if _old(path, cutoff) else 0


def _remove(path: Path, dry_run: bool) -> int:
    if dry_run:
        return int(path.exists())
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1

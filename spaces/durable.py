"""Files that survive a crash once written: the bytes reach the disk before the name does (fsync, then rename), and
the name before the write is acknowledged (fsync of the directory). Without the second step a power cut after an
upload was answered can lose the rename, without the first it can leave a whole-sized file of zeros.

Shared by the Git LFS object store (``spaces.storage.objects``) and the Xet store (``spaces.xet.store``), which sit
side by side in one layer and may not import each other.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    """Flush a file written (and closed) elsewhere, such as an upload's spool file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs(path: Path) -> None:
    """``mkdir -p`` whose new directories are themselves recorded durably in their parents."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:  # made meanwhile by a concurrent writer: it fsyncs the parent too
            continue
        fsync_dir(d.parent)


def publish(tmp: str | Path, dest: Path) -> None:
    """Rename ``tmp``, whose bytes are already on disk (:func:`fsync_file`, or ``os.fsync`` before closing it), to
    ``dest``, and return once the rename is on disk too. Whole or not at all for a reader, before and after a crash."""
    makedirs(dest.parent)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def write_bytes(dest: Path, data: bytes, tmp_dir: Path) -> None:
    """``dest`` holds ``data`` (written under a temporary name in ``tmp_dir``, on ``dest``'s filesystem)."""
    with tempfile.NamedTemporaryFile(dir=tmp_dir, delete=False) as f:
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            f.close()
            os.unlink(f.name)
            raise
    publish(f.name, dest)


def touch(path: Path) -> None:
    """An empty marker file that a crash does not take back."""
    if path.exists():
        return
    makedirs(path.parent)
    path.touch()
    fsync_dir(path.parent)

"""The local backend's per-Space disk: one ext4 filesystem in a sparse file, so a Space's writes fail, not the host's.

Layout, all under the Space's home path ``{homes_dir}/spaces/{slug}/`` (root, 0700), so that deleting that one
directory deletes everything the Space ever wrote:

* ``disk.img``: a sparse file of the Space's disk size (``Limits.disk_mb``; it takes only what is written), holding
  an ext4 filesystem made at the Space's first start;
* ``mnt/``: where it is mounted on the host while any instance of the Space runs (a loop device with autoclear,
  set up with two ioctls and a mount in-process: about 5 ms, against 40 ms for ``mount -o loop``); the last
  instance's stop unmounts it. Inside: ``home/`` (the Space's HOME, its uid, 0700) and ``app/{layer}/upper``,
  ``.../work``: an overlay's writable layer over the working copy, so files the app writes next to its code count
  against the same limit and never change the host's checkout. One layer per (working copy, commit), kept across
  restarts and wakes of that commit, as the working copy was before; a start of another commit deletes the layers
  that no running instance uses (a new commit starts while the old one still serves, so that one keeps its own).

Why a filesystem image and not quotas: project quotas need the host's filesystem mounted with ``prjquota`` (ext4 or
XFS), which the platform cannot assume; a loop-mounted image works on any host with loop devices, and ENOSPC comes
from the Space's own filesystem. /tmp and /dev/shm are tmpfs of their own sizes, charged to the Space's memory
limit (see ``LocalBackendSettings.tmp_size_mb`` and ``shm_size_mb``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

from spaces.runtime.contracts import StartFailed

LOOP_CTL_GET_FREE, LOOP_CONFIGURE, LO_FLAGS_AUTOCLEAR = 0x4C82, 0x4C0A, 4
MS_NOSUID, MS_NODEV = 2, 4
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


class SpaceDisk:
    def __init__(self, space_dir: Path) -> None:
        self.dir = space_dir
        self.image, self.mnt = space_dir / "disk.img", space_dir / "mnt"
        self.home, self.layers = self.mnt / "home", self.mnt / "app"

    def upper(self, layer: str) -> Path:
        return self.layers / layer / "upper"

    def work(self, layer: str) -> Path:
        return self.layers / layer / "work"

    @staticmethod
    def layer(workdir: str, sha: str) -> str:
        return hashlib.sha256(f"{workdir}\0{sha}".encode()).hexdigest()[:16]

    def mounted(self) -> bool:
        return os.path.ismount(self.mnt)

    def ensure(self, size_mb: int, uid: int, layer: str, keep: set[str]) -> None:
        """Make (first start), mount (when no instance holds it mounted) and lay out the Space's disk with the
        overlay ``layer`` of this start; delete every other layer but those in ``keep`` (running instances')."""
        with self._locked():
            if not self.image.exists():
                self._make(size_mb)
            if not self.mounted():
                loop_mount(self.image, self.mnt)
            for d, owner, mode in ((self.home, uid, 0o700), (self.layers, 0, 0o700), (self.layers / layer, 0, 0o700),
                                   (self.upper(layer), uid, 0o700), (self.work(layer), 0, 0o700)):
                d.mkdir(exist_ok=True)
                if os.lstat(d).st_uid != owner or (os.lstat(d).st_mode & 0o777) != mode:
                    os.chown(d, owner, owner)
                    os.chmod(d, mode)
            for old in self.layers.iterdir():
                if old.name not in keep | {layer}:
                    shutil.rmtree(old, ignore_errors=True)

    def release(self) -> None:
        """Unmount (the last instance has stopped); the loop device goes with the mount."""
        with self._locked():
            deadline = time.monotonic() + 2.0
            while self.mounted():
                if _libc.umount2(str(self.mnt).encode(), 0) == 0:
                    return
                err = ctypes.get_errno()
                if err != errno.EBUSY:
                    raise OSError(err, f"umount {self.mnt}: {os.strerror(err)}")
                if time.monotonic() > deadline:  # a namespace still dying holds it: it goes once nothing uses it
                    _libc.umount2(str(self.mnt).encode(), 2)  # MNT_DETACH
                    return
                time.sleep(0.02)

    def _make(self, size_mb: int) -> None:
        tmp = self.dir / ".disk.img.tmp"
        with open(tmp, "wb") as f:
            f.truncate(size_mb * 1024 * 1024)  # sparse: the host gives only what is written
        proc = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E",
                               "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0", str(tmp)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise StartFailed(f"could not make the Space's disk: {proc.stderr.strip() or 'mkfs.ext4 failed'}")
        os.replace(tmp, self.image)

    @contextlib.contextmanager
    def _locked(self):  # type: ignore[no-untyped-def]
        """Per Space: two control planes (or a start and a stop) never mount or unmount one disk at once."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.lstat(self.dir).st_uid != 0 or (os.lstat(self.dir).st_mode & 0o777) != 0o700:
            os.chown(self.dir, 0, 0)
            os.chmod(self.dir, 0o700)
        self.mnt.mkdir(exist_ok=True)
        with open(self.dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def loop_mount(image: Path, target: Path) -> None:
    """Attach ``image`` to a free loop device (autoclear: it detaches when unmounted) and mount it on ``target``."""
    fd = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(50):
            dev = f"/dev/loop{fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)}"
            loop = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
            try:
                info = bytearray(232)  # struct loop_info64; lo_flags after five u64 and three u32
                struct.pack_into("=I", info, 52, LO_FLAGS_AUTOCLEAR)
                try:
                    fcntl.ioctl(loop, LOOP_CONFIGURE, struct.pack("=II", fd, 0) + bytes(info) + bytes(64))
                except OSError as e:
                    if e.errno == errno.EBUSY:  # another process took it between the two calls
                        continue
                    raise
                if _libc.mount(dev.encode(), str(target).encode(), b"ext4", MS_NOSUID | MS_NODEV, None) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"mount {image} on {target}: {os.strerror(err)}")
                return
            finally:
                os.close(loop)
        raise OSError(errno.EBUSY, "no free loop device")
    finally:
        os.close(ctl)
        os.close(fd)

"""The C allocator's arenas, limited for a long-running server: called once, before the process starts threads.

glibc gives each thread that allocates while another holds an arena a new arena, up to 8 per core, and memory
freed into one stays with it. The hub moves large buffers through a pool of worker threads (xorb uploads, Xet
fetches, object reads), so each thread's arena kept its own few megabytes of freed blocks: the hub's RSS rose
by tens of MiB with each 512 MB transfer (213 -> 355 MiB over four upload + download rounds, ``bench/xet.py
--runs 4``) and did not come back. Two arenas, as ``MALLOC_ARENA_MAX=2`` would set (the usual setting for Python
servers): the same rounds stay at 135-180 MiB between transfers. ``mallopt`` rather than the environment
variable, which glibc reads only when the process starts: ``spaces serve`` would have to exec itself again.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h


def limit_arenas(count: int = 2) -> bool:
    """Cap the number of malloc arenas; False where the C library is not glibc (nothing changed)."""
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    if not hasattr(libc, "gnu_get_libc_version"):
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(M_ARENA_MAX, count) == 1
    if not ok:
        log.warning("could not limit malloc arenas to %d", count)
    return ok

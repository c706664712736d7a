"""spaces.malloc: the server's threads share two malloc arenas instead of one each (see the module docstring)."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

# eight live threads allocate (below the mmap threshold, so from an arena), then glibc lists its arenas
SCRIPT = """
import ctypes, os, sys, tempfile, threading
from spaces.malloc import limit_arenas
if sys.argv[1] == "limit":
    assert limit_arenas(2)
barrier = threading.Barrier(8)
def work():  # alive together, as a server's worker threads are: an exited thread's arena is reused
    keep = [bytes(16384) for _ in range(64)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
path = tempfile.mktemp()
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, fp)
libc.fclose(fp)
print(open(path).read().count("<heap nr="))
os.unlink(path)
"""


def arenas(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def test_threads_share_two_arenas_once_limited() -> None:
    if not hasattr(ctypes.CDLL(None), "gnu_get_libc_version"):
        pytest.skip("not glibc: nothing to limit")
    assert arenas("free") > 2  # what the limit is for: a thread, an arena
    assert arenas("limit") <= 2

"""The hub's server-side Xet work on an upload, without the network or the client (not a test): verifying the
uploaded xorbs (``service.upload_xorb``), then, inside the shard call, checking the file's sha256 by reading it
back from the xorbs (``service.verify_sha256``: decode and sha256, nothing written; what the hub does), side by
side in one run with what it did before: rebuilding the file into the LFS object store (``read_file`` ->
``objects.put``: decode, sha256, write, fsync), and the floor for that: copying the same bytes from a plain file
with sha256 and fsync. ``bench/xet.py`` measures the whole path, but on a shared machine its figures swing by 2x
from run to run; this one isolates the server's part.

    .venv/bin/python bench/xet_rebuild.py              # 512 MB of random (incompressible) data
    .venv/bin/python bench/xet_rebuild.py --mb 256 --repeat 3
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spaces.storage import objects
from spaces.xet import hashing, service
from spaces.services.objects import XetBackedObjects
from spaces.xet.prefetch import prefetched
from spaces.xet.store import FileRecord, XetStore

CHUNK = 64 << 10
XORB_CHUNKS = 1000  # about 64 MB a xorb, as hf_xet packs them


def serialize(chunks: list[bytes]) -> bytes:
    """Uncompressed chunks (scheme 0), as hf_xet stores random data."""
    out = bytearray()
    for c in chunks:
        out += bytes([0]) + len(c).to_bytes(3, "little") + bytes([0]) + len(c).to_bytes(3, "little") + c
    return bytes(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    if not 1 <= args.mb <= 4096 or not 1 <= args.repeat <= 10:
        ap.error("--mb 1..4096, --repeat 1..10")
    with tempfile.TemporaryDirectory(prefix="spaces-bench-xet-rebuild-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        store = XetStore(work / "xet")
        plain = work / "plain.bin"
        sha, terms, t_verify = hashlib.sha256(), [], 0.0
        with open(plain, "wb") as pf:
            left = args.mb << 20
            while left:
                chunks = []
                while left and len(chunks) < XORB_CHUNKS:
                    chunks.append(os.urandom(min(CHUNK, left)))
                    left -= len(chunks[-1])
                for c in chunks:
                    sha.update(c)
                    pf.write(c)
                xh = hashing.merkle_root([(hashing.chunk_hash(c), len(c)) for c in chunks])
                body = serialize(chunks)
                with store.spool() as f:
                    f.write(body)
                t0 = time.perf_counter()
                service.upload_xorb(store, xh, f.name, len(body))
                t_verify += time.perf_counter() - t0
                terms.append((xh, 0, len(chunks), sum(map(len, chunks))))
        oid, size = sha.hexdigest(), args.mb << 20
        rec = FileRecord(b"\0" * 32, size, oid, terms)

        lfs_stores = []

        def rebuild() -> float:
            lfs = objects.LocalObjectStore(work / f"lfs-{time.monotonic_ns()}")
            lfs_stores.append(lfs)
            t0 = time.perf_counter()
            assert objects.put(lfs, oid, size, prefetched(service.read_file(store, rec)))
            return time.perf_counter() - t0

        def read(source) -> float:  # noqa: ANN001 - what /resolve without Xet streams: an object by its sha256
            t0 = time.perf_counter()
            assert sum(len(b) for b in source.open(oid)) == size
            return time.perf_counter() - t0

        def copy() -> float:  # the floor: the same bytes, sha256'd and written with fsync, 8 MiB a read
            t0 = time.perf_counter()
            h = hashlib.sha256()
            with open(plain, "rb") as src, open(work / f"copy-{time.monotonic_ns()}", "wb") as dst:
                while block := src.read(8 << 20):
                    h.update(block)
                    dst.write(block)
                dst.flush()
                os.fsync(dst.fileno())
            assert h.hexdigest() == oid
            return time.perf_counter() - t0

        def check() -> float:
            t0 = time.perf_counter()
            service.verify_sha256(store, rec)
            return time.perf_counter() - t0

        t_check = min(check() for _ in range(args.repeat))
        t_rebuild = min(rebuild() for _ in range(args.repeat))
        t_copy = min(copy() for _ in range(args.repeat))
        store.link_sha256(oid, rec.hash)
        store.put_file(rec)
        from_xet = XetBackedObjects(work / "lfs-none", store)
        t_read_lfs = min(read(lfs_stores[0]) for _ in range(args.repeat))
        t_read_xet = min(read(from_xet) for _ in range(args.repeat))
        mbps = lambda t: args.mb / t
        print(f"\n{args.mb} MB random file, {os.cpu_count()} cores, best of {args.repeat}\n")
        print(f"  verify the uploaded xorbs          {mbps(t_verify):7.0f} MB/s  ({t_verify:.2f} s, one pass)")
        print(f"  check the sha256 (read back, now)  {mbps(t_check):7.0f} MB/s  ({t_check:.2f} s)")
        print(f"  rebuild into the LFS store (was)   {mbps(t_rebuild):7.0f} MB/s  ({t_rebuild:.2f} s)")
        print(f"  floor: copy + sha256 + fsync       {mbps(t_copy):7.0f} MB/s  ({t_copy:.2f} s)")
        print(f"  read an object for /resolve: from the LFS store (was) {mbps(t_read_lfs):5.0f} MB/s, from the xorbs "
              f"(now) {mbps(t_read_xet):5.0f} MB/s: {t_read_lfs / t_read_xet:.2f}x")
        print(f"\nrebuild / floor: {t_copy / t_rebuild:.2f}x; check / rebuild: {t_rebuild / t_check:.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())

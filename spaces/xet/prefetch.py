"""Reading ahead in a thread of its own: the next block of a reconstruction is read and decoded while the caller
hashes, writes or sends this one (file reads, LZ4 and hashlib all release the GIL)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

#: regrouped into blocks of about this many bytes: one queue hop per block, not per ~64 KiB chunk
BLOCK = 4 << 20


def prefetched(chunks: Iterable[bytes], block: int = BLOCK, depth: int = 4) -> Iterator[bytes]:
    """``chunks`` regrouped in blocks of ``block`` bytes, produced by a thread of its own, at most ``depth``
    blocks ahead (their size counts in the hub's peak RSS). Closing the iterator (or an error in the consumer)
    stops the producer; an error in the producer is raised in the consumer."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item) -> bool:  # noqa: ANN001
        while not stop.is_set():  # a consumer gone (an error, a closed generator) stops the producer too
            try:
                q.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        buf = bytearray()
        try:
            for c in chunks:
                if not buf and len(c) >= block:  # already a block: handed on as it is, not copied
                    if not put(c):
                        return
                    continue
                buf += c
                if len(buf) >= block:
                    if not put(buf):
                        return
                    buf = bytearray()  # the consumer owns the one it got
            if buf and not put(bytes(buf)):
                return
            put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # a generator holding a file: closed in the thread that ran it

    threading.Thread(target=produce, daemon=True).start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()

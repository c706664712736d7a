"""Verifying and registering what a client uploads, and answering reconstructions.

What a hostile client cannot do: store a xorb under a hash its bytes do not have (``xorb.verify_file``), register a
file whose terms name missing xorbs or chunks, whose verification hashes do not match the chunks (it must know
them), or whose file hash is not the one its chunks give (``register_shard``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from spaces.errors import BadRequest, NotFound, RangeNotSatisfiable
from spaces.xet import hashing, shard, xorb
from spaces.xet.prefetch import prefetched
from spaces.xet.store import FileRecord, XetStore


@dataclass(frozen=True)
class Registered:
    files: list[FileRecord]
    new: bool


def upload_xorb(store: XetStore, expected: bytes, spooled: str, size: int) -> bool:
    """Verify a spooled xorb and keep it; True when it was new. The spool file is consumed either way."""
    try:
        with store.pinned():  # the collector never removes a xorb a client was just told is stored
            if store.has_xorb(expected):
                store.touch_xorb(expected)
                return False
            with open(spooled, "rb") as f:
                index = xorb.verify_file(expected, f, size)
            return store.put_xorb(spooled, index)
    finally:
        if os.path.exists(spooled):
            os.unlink(spooled)


def _check_file(store: XetStore, f: shard.FileInfo, indexes: dict) -> FileRecord:
    chunks: list[tuple[bytes, int]] = []
    for term, proof in zip(f.terms, f.verification or []):
        idx = indexes.get(term.xorb)
        if idx is None:
            idx = indexes[term.xorb] = store.xorb_index(term.xorb)
        if idx is None:
            raise BadRequest(f"The shard names xorb {hashing.to_hex(term.xorb)}, which was never uploaded.")
        if term.end > len(idx.chunks):
            raise BadRequest("A term names chunks past the end of its xorb.")
        span = idx.chunks[term.start:term.end]
        if sum(c.length for c in span) != term.unpacked:
            raise BadRequest("A term's length is not the length of its chunks.")
        if hashing.range_hash([c.hash for c in span]) != proof:
            raise BadRequest("A term's verification hash does not match its chunks.")
        chunks.extend((c.hash, c.length) for c in span)
    if hashing.file_hash(chunks) != f.hash:
        raise BadRequest("A file's hash is not the hash of its chunks.")
    terms = [(t.xorb, t.start, t.end, t.unpacked) for t in f.terms]
    # xet-core writes the sha256 as one of its hashes: its usual hex form (words reversed) is the digest's hex
    return FileRecord(f.hash, f.size, hashing.to_hex(f.sha256) if f.sha256 else None, terms)


def register_shard(store: XetStore, body: bytes, before_commit=None) -> Registered:  # noqa: ANN001
    """Check every file of an uploaded shard against the stored xorbs, then record them (all or nothing) and
    the new xorbs' dedupe-eligible chunks. ``before_commit(records)`` runs between the two (the hub's checks of
    what the chunks cannot prove, the sha256); when it raises, nothing is recorded. The files it records are young
    (a file registered again is made young again), so the collector (``spaces.xet.gc``), which waits until this is
    done, keeps them and the xorbs they name."""
    with store.pinned():
        return _register_shard(store, body, before_commit)


def _register_shard(store: XetStore, body: bytes, before_commit) -> Registered:  # noqa: ANN001
    parsed = shard.parse(body)
    indexes: dict = {}
    records = [_check_file(store, f, indexes) for f in parsed.files]
    for x in parsed.xorbs:
        if not store.has_xorb(x.hash):
            raise BadRequest(f"The shard lists xorb {hashing.to_hex(x.hash)}, which was never uploaded.")
    if before_commit is not None:
        before_commit(records)
    new = False
    for rec in records:
        new = store.put_file(rec) or new
        _dedupe_first_chunk(store, rec, indexes)
    for x in parsed.xorbs:
        _dedupe_xorb(store, indexes.get(x.hash) or store.xorb_index(x.hash))
    return Registered(records, new)


def _dedupe_first_chunk(store: XetStore, rec: FileRecord, indexes: dict) -> None:
    first_xorb, first_chunk = rec.terms[0][0], rec.terms[0][1]
    store.put_dedupe(indexes[first_xorb].chunks[first_chunk].hash, first_xorb)


def _dedupe_xorb(store: XetStore, idx: xorb.XorbIndex) -> None:
    for c in idx.chunks:
        if hashing.dedupe_eligible(c.hash):
            store.put_dedupe(c.hash, idx.hash)


def adopt_file(store: XetStore, rec: FileRecord, xorbs: list[bytes]) -> bool:
    """Register a file record that comes from a backup, not from a client's shard: its terms must name chunks of
    the stored (verified) xorbs, they must hash to the file's hash, and its bytes to its sha256, as an upload's
    must. ``xorbs``: the xorbs the backup carried along with it (their dedupe entries are rebuilt, as a shard's
    upload makes them). True when the file is new to the store; BadRequest, and nothing recorded, otherwise."""
    name = hashing.to_hex(rec.hash)
    indexes: dict = {}
    chunks: list[tuple[bytes, int]] = []
    for xh, a, b, n in rec.terms:
        idx = indexes.get(xh) or store.xorb_index(xh)
        if idx is None or not 0 <= a < b <= len(idx.chunks):
            raise BadRequest(f"Xet file {name} names chunks that no stored xorb holds.")
        indexes[xh] = idx
        span = idx.chunks[a:b]
        if sum(c.length for c in span) != n:
            raise BadRequest(f"Xet file {name}: a term's length is not the length of its chunks.")
        chunks.extend((c.hash, c.length) for c in span)
    if not rec.terms or hashing.file_hash(chunks) != rec.hash or sum(n for *_, n in rec.terms) != rec.size:
        raise BadRequest(f"Xet file {name} is not the file its chunks make.")
    if rec.sha256 is not None:
        digest = hashlib.sha256()
        for block in read_file(store, rec):
            digest.update(block)
        if digest.hexdigest() != rec.sha256:
            raise BadRequest(f"Xet file {name}: its bytes do not hash to sha256:{rec.sha256}.")
    new = store.put_file(rec)
    _dedupe_first_chunk(store, rec, indexes)
    for xh in xorbs:
        if (idx := indexes.get(xh) or store.xorb_index(xh)) is not None:
            _dedupe_xorb(store, idx)
    return new


def dedupe_shard(store: XetStore, chunk: bytes) -> bytes:
    """The dedupe answer for a chunk: a shard describing the xorb that holds it, or 404. The xorb is made young
    again: the client's shard may name it without uploading it."""
    with store.pinned():
        xh = store.get_dedupe(chunk)
        idx = store.xorb_index(xh) if xh else None
        if idx is None:
            raise NotFound("No stored xorb holds that chunk.")
        store.touch_xorb(xh)
    cas, pos = [], 0
    for c in idx.chunks:
        cas.append(shard.CasChunk(c.hash, pos, c.length))
        pos += c.length
    size = store.xorb_path(xh).stat().st_size
    return shard.dedupe_answer([shard.CasInfo(xh, cas, pos, size)], os.urandom(32))


@dataclass(frozen=True)
class Piece:
    xorb: bytes
    start: int      # chunk range [start, end)
    end: int
    unpacked: int
    bytes_first: int  # inclusive byte range of those chunks in the stored xorb
    bytes_last: int


@dataclass(frozen=True)
class Reconstruction:
    offset_into_first_range: int
    pieces: list[Piece]
    size: int
    #: per xorb, the chunk ranges to fetch: overlapping and touching ranges of its terms merged into one, since
    #: hf_xet serves a term from the first fetch range that starts at or before it (two terms [0,1) and [0,2) of
    #: one xorb, as a file with repeated chunks has, would otherwise read [0,2) from the bytes of [0,1))
    fetch: dict[bytes, list[Piece]]


def reconstruct(store: XetStore, file_id: bytes, first: int | None = None, last: int | None = None) -> Reconstruction:
    """The terms covering bytes [first, last] of a file (the whole file without a range), trimmed to whole chunks."""
    rec = store.get_file(file_id)
    if rec is None:
        raise NotFound("No such Xet file.")
    first = 0 if first is None else first
    last = rec.size - 1 if last is None else min(last, rec.size - 1)
    if first >= rec.size or first > last:
        raise RangeNotSatisfiable(f"The file has {rec.size} bytes.")
    pieces, skip = [], 0
    for xh, idx, start, b, cpos in _overlapping(store, rec, first, last):
        if not pieces:
            skip = first - cpos
        end, tail = b, cpos
        for i in range(start, b):
            if tail > last:
                end = i
                break
            tail += idx.chunks[i].length
        lo, hi = idx.byte_range(start, end)
        pieces.append(Piece(xh, start, end, sum(c.length for c in idx.chunks[start:end]), lo, hi))
    return Reconstruction(skip, pieces, rec.size, _fetch_ranges(store, pieces))


def _overlapping(store: XetStore, rec: FileRecord, first: int, last: int):
    """The terms of ``rec`` holding bytes of [first, last], as (xorb hash, its index, the first chunk holding such
    a byte, the term's end chunk, that chunk's offset in the file): whole terms and chunks before ``first`` are
    skipped unread, and nothing after ``last`` is looked at."""
    pos = 0  # the file offset of the term
    for xh, a, b, n in rec.terms:
        if pos > last:
            return
        if pos + n > first:
            idx = store.xorb_index(xh)
            if idx is None:
                raise NotFound(f"The stored xorb {hashing.to_hex(xh)} is missing.")
            i, at = a, pos
            while at + idx.chunks[i].length <= first:  # chunks wholly before the range
                at += idx.chunks[i].length
                i += 1
            yield xh, idx, i, b, at
        pos += n


def _fetch_ranges(store: XetStore, pieces: list[Piece]) -> dict[bytes, list[Piece]]:
    spans: dict[bytes, list[list[int]]] = {}
    for p in pieces:
        spans.setdefault(p.xorb, []).append([p.start, p.end])
    out: dict[bytes, list[Piece]] = {}
    for xh, ranges in spans.items():
        merged: list[list[int]] = []
        for a, b in sorted(ranges):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        idx = store.xorb_index(xh)
        out[xh] = [Piece(xh, a, b, sum(c.length for c in idx.chunks[a:b]), *idx.byte_range(a, b)) for a, b in merged]
    return out


#: read_file reads a stored xorb's chunks until they hold this many bytes (whole chunks; the last may go past it):
#: a block of at least prefetch.BLOCK goes through the prefetcher as it is, not copied into a bigger one
READ_BLOCK = 4 << 20


def read_file(store: XetStore, rec: FileRecord, first: int = 0, last: int | None = None):
    """Bytes [first, last] (inclusive; the whole file by default) of a (checked) file, from its stored xorbs, in
    blocks of about ``READ_BLOCK`` (the prefetcher queues a few of them, so their size counts in the hub's RSS).

    One read and one join per block of whole chunks, not one read per ~64 KiB chunk: an uncompressed chunk
    (random or already compressed data, the common case for weights) is a slice of the read buffer, copied once
    into the block. Whole terms and chunks before ``first`` are skipped unread; reading stops after ``last``."""
    last = rec.size - 1 if last is None else min(last, rec.size - 1)
    for xh, idx, i, b, pos in _overlapping(store, rec, first, last):  # pos: the file offset of chunk i
        with open(store.xorb_path(xh), "rb") as f:
            while i < b and pos <= last:
                j, span = i + 1, idx.chunks[i].length
                while j < b and span < READ_BLOCK and pos + span <= last:
                    span += idx.chunks[j].length
                    j += 1
                lo, hi = idx.byte_range(i, j)
                f.seek(lo)
                raw = f.read(hi - lo + 1)
                if len(raw) != hi - lo + 1:
                    raise NotFound(f"The stored xorb {hashing.to_hex(xh)} is truncated.")
                block = b"".join(xorb.iter_chunks(memoryview(raw)))
                cut_lo, cut_hi = max(0, first - pos), min(len(block), last - pos + 1)
                yield block if (cut_lo, cut_hi) == (0, len(block)) else block[cut_lo:cut_hi]
                pos += len(block)
                i = j


def verify_sha256(store: XetStore, rec: FileRecord) -> None:
    """Check that a file's bytes hash to the sha256 its shard declared (a 400 otherwise), reading them back from
    the xorbs as a stream: nothing is written, only read (from the page cache, just after the upload) and hashed.

    Why here, in the shard call, and not while the xorbs arrive or later: a xorb holds chunks of several files
    and a file's chunks come from several xorbs, some uploaded long before (dedupe), in any order, and a sha256
    cannot be combined from parts; a lazy check would leave a window where a commit could name an unverified
    object. The shard is where the file first exists whole, and the commit that names it follows."""
    digest = hashlib.sha256()
    size = 0
    for block in prefetched(read_file(store, rec)):
        digest.update(block)
        size += len(block)
    if size != rec.size or digest.hexdigest() != rec.sha256:
        raise BadRequest(f"The file's bytes hash to sha256:{digest.hexdigest()}, not to sha256:{rec.sha256} as "
                         "its shard declares; nothing was stored.")

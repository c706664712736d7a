"""Xorbs: a series of chunks, each an 8-byte header and its (maybe compressed) bytes, then the client's footer.

Header: version (0), compressed length (u24 LE), scheme (0 none, 1 LZ4 frame, 2 byte-grouping-4 then LZ4 frame),
uncompressed length (u24 LE). hf_xet appends a footer (ident ``XETBLOB``, hashes, boundaries) and a u32 length of
it; the server never trusts that footer: it decodes every chunk, hashes it and recomputes the xorb hash.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import lz4.frame

from spaces.errors import BadRequest
from spaces.xet import hashing

HEADER = 8
MAX_CHUNK = 128 * 1024
#: the spec's limit on a serialized xorb
MAX_XORB_BYTES = 64 * 1024 * 1024
_FOOTER_IDENT = b"XETBLOB"


@dataclass(frozen=True)
class ChunkEntry:
    hash: bytes
    offset: int        # where its header starts in the xorb
    length: int        # uncompressed bytes


@dataclass(frozen=True)
class XorbIndex:
    hash: bytes
    chunks: list[ChunkEntry]
    data_end: int      # where the chunks end (the footer starts)

    @property
    def unpacked_bytes(self) -> int:
        return sum(c.length for c in self.chunks)

    def byte_range(self, start: int, end: int) -> tuple[int, int]:
        """The [first, last] bytes holding chunks [start, end) (inclusive end: an HTTP Range)."""
        last = self.chunks[end].offset if end < len(self.chunks) else self.data_end
        return self.chunks[start].offset, last - 1


def _ungroup4(data: bytes, n: int) -> bytes:
    split, rem = divmod(n, 4)
    sizes = [split + (1 if rem > g else 0) for g in range(4)]
    if sum(sizes) != len(data):
        raise BadRequest("A byte-grouped chunk does not have its declared length.")
    out = bytearray(n)
    pos = 0
    for g, size in enumerate(sizes):
        group = data[pos:pos + size]
        out[g:4 * split:4] = group[:split]
        if size > split:
            out[4 * split + g] = group[split]
        pos += size
    return bytes(out)


def decode_chunk(scheme: int, payload: bytes, length: int) -> bytes:
    if scheme == 0:
        data = payload
    elif scheme in (1, 2):
        try:
            data = lz4.frame.decompress(payload)
        except RuntimeError:
            raise BadRequest("A chunk's LZ4 data is corrupt.") from None
        if scheme == 2:
            data = _ungroup4(data, length)
    else:
        raise BadRequest(f"Unknown chunk compression scheme {scheme}.")
    if len(data) != length:
        raise BadRequest("A chunk does not decompress to its declared length.")
    return data


def read_header(buf: bytes | memoryview, pos: int) -> tuple[int, int, int]:
    """(compressed length, scheme, uncompressed length) of the chunk header at ``pos``."""
    h = bytes(buf[pos:pos + HEADER])
    if len(h) < HEADER:
        raise BadRequest("A xorb ends inside a chunk header.")
    if h[0] != 0:
        raise BadRequest(f"Unknown chunk header version {h[0]}.")
    clen = int.from_bytes(h[1:4], "little")
    ulen = int.from_bytes(h[5:8], "little")
    if ulen == 0 or ulen > MAX_CHUNK or clen > 2 * MAX_CHUNK:
        raise BadRequest("A chunk header declares an impossible length.")
    return clen, h[4], ulen


def verify(expected: bytes, buf: bytes) -> XorbIndex:
    """Decode every chunk of an uploaded xorb and check it hashes to ``expected``; its index, or a 400."""
    return verify_file(expected, io.BytesIO(buf), len(buf))


def iter_chunks(buf: bytes | memoryview):
    """Decoded chunks of a run of serialized chunks (a byte range of a stored, verified xorb)."""
    pos = 0
    while pos < len(buf):
        clen, scheme, ulen = read_header(buf, pos)
        # a memoryview in, a memoryview out for an uncompressed chunk: no copy until the caller joins
        yield decode_chunk(scheme, buf[pos + HEADER:pos + HEADER + clen], ulen)
        pos += HEADER + clen


def verify_file(expected: bytes, f, size: int) -> XorbIndex:  # noqa: ANN001 - a binary file open for reading
    """:func:`verify` over a spooled upload, reading one chunk at a time (a 64 MiB xorb never sits in memory)."""
    if size > MAX_XORB_BYTES + 1024 * 1024:
        raise BadRequest("A xorb is at most 64 MiB.")
    end = size
    if size >= 4 + len(_FOOTER_IDENT):
        f.seek(size - 4)
        start = size - 4 - int.from_bytes(f.read(4), "little")
        if 0 <= start:
            f.seek(start)
            if f.read(len(_FOOTER_IDENT)) == _FOOTER_IDENT:
                end = start
    f.seek(0)
    chunks: list[ChunkEntry] = []
    pos = 0
    while pos < end:
        clen, scheme, ulen = read_header(f.read(HEADER), 0)
        if pos + HEADER + clen > end:
            raise BadRequest("A xorb ends inside a chunk.")
        data = decode_chunk(scheme, f.read(clen), ulen)
        chunks.append(ChunkEntry(hashing.chunk_hash(data), pos, ulen))
        pos += HEADER + clen
    if not chunks:
        raise BadRequest("A xorb holds at least one chunk.")
    if hashing.merkle_root([(c.hash, c.length) for c in chunks]) != expected:
        raise BadRequest("The xorb's contents do not hash to the hash it was uploaded under.")
    return XorbIndex(expected, chunks, end)

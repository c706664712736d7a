"""Shards: what a client registers after uploading xorbs (files as terms over xorb chunks, and the new xorbs'
chunk lists), and what the dedupe query answers (CAS blocks only). Layout per the spec's "MDB Shard File Format":
a 48-byte header, 48-byte records ended by a bookend (32 x 0xFF, 16 x 0) in each of two sections, an optional
200-byte footer."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from blake3 import blake3

from spaces.errors import BadRequest

TAG = bytes([72, 70, 82, 101, 112, 111, 77, 101, 116, 97, 68, 97, 116, 97, 0, 85, 105, 103, 69, 106, 123,
             129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169])
RECORD = 48
FOOTER = 200
FLAG_VERIFICATION = 1 << 31
FLAG_METADATA = 1 << 30
BOOKEND = b"\xff" * 32 + bytes(16)
#: a shard upload names at most this many files / xorbs / terms in all (a bound on the work one request can ask)
MAX_RECORDS = 1 << 20


@dataclass(frozen=True)
class Term:
    xorb: bytes
    unpacked: int
    start: int
    end: int


@dataclass(frozen=True)
class FileInfo:
    hash: bytes
    terms: list[Term]
    verification: list[bytes] | None
    sha256: bytes | None

    @property
    def size(self) -> int:
        return sum(t.unpacked for t in self.terms)


@dataclass(frozen=True)
class CasChunk:
    hash: bytes
    offset: int
    length: int


@dataclass(frozen=True)
class CasInfo:
    hash: bytes
    chunks: list[CasChunk]
    bytes_in_cas: int
    bytes_on_disk: int


@dataclass(frozen=True)
class Shard:
    files: list[FileInfo]
    xorbs: list[CasInfo]


class _Reader:
    def __init__(self, buf: bytes, end: int) -> None:
        self.buf, self.pos, self.end, self.count = buf, 0, end, 0

    def record(self) -> bytes:
        if self.pos + RECORD > self.end:
            raise BadRequest("The shard ends before its bookend.")
        self.count += 1
        if self.count > MAX_RECORDS:
            raise BadRequest("The shard has too many records.")
        rec = self.buf[self.pos:self.pos + RECORD]
        self.pos += RECORD
        return rec


def _file(r: _Reader, head: bytes) -> FileInfo:
    flags, n = struct.unpack_from("<II", head, 32)
    if n == 0:
        raise BadRequest("A file in the shard has no terms.")
    terms = []
    for _ in range(n):
        rec = r.record()
        _flags, unpacked, start, end = struct.unpack_from("<IIII", rec, 32)
        if end <= start or unpacked == 0:
            raise BadRequest("A term names an empty chunk range.")
        terms.append(Term(rec[:32], unpacked, start, end))
    verification = [r.record()[:32] for _ in range(n)] if flags & FLAG_VERIFICATION else None
    sha256 = r.record()[:32] if flags & FLAG_METADATA else None
    return FileInfo(head[:32], terms, verification, sha256)


def _cas(r: _Reader, head: bytes) -> CasInfo:
    _flags, n, in_cas, on_disk = struct.unpack_from("<IIII", head, 32)
    chunks = []
    for _ in range(n):
        rec = r.record()
        offset, length = struct.unpack_from("<II", rec, 32)
        chunks.append(CasChunk(rec[:32], offset, length))
    return CasInfo(head[:32], chunks, in_cas, on_disk)


def parse(buf: bytes, *, upload: bool = True) -> Shard:
    """A shard's file and CAS sections (the footer, if sent, is skipped: its offsets are not trusted). An
    ``upload`` must carry verification entries for every file."""
    if len(buf) < RECORD or buf[:32] != TAG:
        raise BadRequest("Not a Xet shard (wrong magic tag).")
    version, footer_size = struct.unpack_from("<QQ", buf, 32)
    if version != 2:
        raise BadRequest(f"Unsupported shard version {version}.")
    if footer_size not in (0, FOOTER) or footer_size > len(buf) - RECORD:
        raise BadRequest("The shard's footer size is wrong.")
    r = _Reader(buf, len(buf) - footer_size)
    r.pos = RECORD
    files, xorbs = [], []
    while (head := r.record())[:32] != b"\xff" * 32:
        files.append(_file(r, head))
    while (head := r.record())[:32] != b"\xff" * 32:
        xorbs.append(_cas(r, head))
    if r.pos != r.end:
        raise BadRequest("The shard has bytes after its CAS section.")
    if upload and any(f.verification is None for f in files):
        raise BadRequest("Every file in an uploaded shard needs verification entries.")
    return Shard(files, xorbs)


def hmac(h: bytes, key: bytes) -> bytes:
    """xet-core's ``MerkleHash::hmac``: a BLAKE3 keyed hash of the raw hash."""
    return blake3(h, key=key).digest()


def parse_dedupe(buf: bytes) -> tuple[list[CasInfo], bytes]:
    """The CAS blocks of a dedupe answer and its HMAC key (the footer's)."""
    key = buf[-FOOTER + 72:-FOOTER + 104]
    return parse(buf, upload=False).xorbs, key


def dedupe_answer(xorbs: list[CasInfo], hmac_key: bytes, expiry_s: int = 7 * 24 * 3600) -> bytes:
    """A shard with CAS blocks only. Its chunk hashes are keyed with ``hmac_key`` (in the footer): a client
    matches the chunks it has, but learns no chunk hash it did not know (knowing them is what a shard's
    verification entries prove, so handing them out would let anyone register, then read, others' files)."""
    out = bytearray(TAG + struct.pack("<QQ", 2, FOOTER))
    out += BOOKEND
    cas_offset = len(out)
    for x in xorbs:
        out += x.hash + struct.pack("<IIII", 0, len(x.chunks), x.bytes_in_cas, x.bytes_on_disk)
        for c in x.chunks:
            out += hmac(c.hash, hmac_key) + struct.pack("<II", c.offset, c.length) + bytes(8)
    out += BOOKEND
    footer_offset = len(out)
    now = int(time.time())
    out += struct.pack("<QQQ", 1, RECORD, cas_offset) + bytes(48) + hmac_key + struct.pack("<QQ", now, now + expiry_s)
    out += bytes(72) + struct.pack("<Q", footer_offset)
    assert len(out) - footer_offset == FOOTER
    return bytes(out)

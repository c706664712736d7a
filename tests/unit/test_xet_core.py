"""Xet core: hashes against hf_xet's own, xorbs of every compression scheme the client uses, shards, and the
checks that keep a hostile client from storing a xorb under a wrong hash or registering a file it cannot back."""

from __future__ import annotations

import hashlib
import os
import struct

import lz4.frame
import pytest

from spaces.errors import BadRequest, NotFound, RangeNotSatisfiable
from spaces.xet import hashing, service, shard, xorb
from spaces.xet.prefetch import prefetched
from spaces.xet.store import FileRecord, XetStore


def group4(data: bytes) -> bytes:
    return b"".join(data[g::4] for g in range(4))


def encode(chunks: list[bytes], schemes: list[int]) -> bytes:
    out = bytearray()
    for data, scheme in zip(chunks, schemes):
        payload = {0: data, 1: lz4.frame.compress(data), 2: lz4.frame.compress(group4(data))}[scheme]
        out += bytes([0]) + len(payload).to_bytes(3, "little") + bytes([scheme]) + len(data).to_bytes(3, "little")
        out += payload
    return bytes(out)


def make_xorb(chunks: list[bytes], schemes: list[int] | None = None) -> tuple[bytes, bytes]:
    schemes = schemes or [i % 3 for i in range(len(chunks))]
    h = hashing.merkle_root([(hashing.chunk_hash(c), len(c)) for c in chunks])
    return h, encode(chunks, schemes)


def make_shard(files: list[tuple[list[bytes], bytes, list[tuple[int, int]]]],
               xorbs: list[tuple[bytes, list[bytes]]], *, proofs: bool = True, sha: bytes | None = None,
               file_hash: bytes | None = None) -> bytes:
    """files: (chunks of the file, xorb hash, [(start, end)] ranges in that xorb)."""
    out = bytearray(shard.TAG + struct.pack("<QQ", 2, 0))
    for chunks, xh, ranges in files:
        flags = (shard.FLAG_VERIFICATION if proofs else 0) | (shard.FLAG_METADATA if sha else 0)
        all_chunks = [(hashing.chunk_hash(c), len(c)) for c in chunks]
        fh = file_hash or hashing.file_hash([all_chunks[i] for a, b in ranges for i in range(a, b)])
        out += fh + struct.pack("<II", flags, len(ranges)) + bytes(8)
        for a, b in ranges:
            out += xh + struct.pack("<IIII", 0, sum(len(c) for c in chunks[a:b]), a, b)
        if proofs:
            for a, b in ranges:
                out += hashing.range_hash([h for h, _ in all_chunks[a:b]]) + bytes(16)
        if sha:
            out += sha + bytes(16)
    out += shard.BOOKEND
    for xh, chunks in xorbs:
        out += xh + struct.pack("<IIII", 0, len(chunks), sum(map(len, chunks)), 0)
        pos = 0
        for c in chunks:
            out += hashing.chunk_hash(c) + struct.pack("<II", pos, len(c)) + bytes(8)
            pos += len(c)
    out += shard.BOOKEND
    return bytes(out)


def test_hex_form_reverses_each_word() -> None:
    raw = bytes(range(32))
    assert hashing.to_hex(raw) == "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
    assert hashing.from_hex(hashing.to_hex(raw)) == raw
    for bad in ("00", "G" * 64, "A" * 64):
        with pytest.raises(BadRequest):
            hashing.from_hex(bad)


def test_file_hash_matches_hf_xet(tmp_path) -> None:  # noqa: ANN001
    hf_xet = pytest.importorskip("hf_xet")
    data = os.urandom(3000)  # below the smallest chunk: one chunk
    (tmp_path / "f").write_bytes(data)
    info = hf_xet.hash_files([str(tmp_path / "f")])[0]
    assert info.hash == hashing.to_hex(hashing.file_hash([(hashing.chunk_hash(data), len(data))]))


def test_merkle_groups_and_is_order_sensitive() -> None:
    leaves = [(hashing.chunk_hash(bytes([i]) * 10), 10) for i in range(40)]
    root = hashing.merkle_root(leaves)
    assert root != hashing.merkle_root(leaves[::-1])
    assert root != hashing.merkle_root(leaves[:-1])
    assert hashing.merkle_root(leaves[:1]) == leaves[0][0]


def test_xorb_every_scheme_round_trips() -> None:
    chunks = [os.urandom(1000), b"a" * 5003, bytes(range(256)) * 30 + b"xyz"]
    h, body = make_xorb(chunks)
    index = xorb.verify(h, body + b"XETBLOB" + b"\0" * 20 + (27).to_bytes(4, "little"))
    assert [c.length for c in index.chunks] == [len(c) for c in chunks]
    assert list(xorb.iter_chunks(body)) == chunks
    lo, hi = index.byte_range(1, 3)
    assert b"".join(xorb.iter_chunks(body[lo:hi + 1])) == chunks[1] + chunks[2]


@pytest.mark.parametrize("damage", ["hash", "truncate", "scheme", "length", "empty", "lz4"])
def test_xorb_refused(damage: str) -> None:
    chunks = [b"hello world" * 100, b"second" * 50]
    h, body = make_xorb(chunks, [1, 0])
    if damage == "hash":
        h = hashing.chunk_hash(b"other")
    elif damage == "truncate":
        body = body[:-5]
    elif damage == "scheme":
        body = body[:4] + b"\x07" + body[5:]
    elif damage == "length":
        body = body[:5] + (5000).to_bytes(3, "little") + body[8:]
    elif damage == "empty":
        body = b""
    elif damage == "lz4":
        body = body[:8] + b"\0" * 10 + body[18:]
    with pytest.raises(BadRequest):
        xorb.verify(h, body)


def _spool(store: XetStore, body: bytes) -> str:
    with store.spool() as f:
        f.write(body)
    return f.name


@pytest.fixture
def store(tmp_path) -> XetStore:  # noqa: ANN001
    return XetStore(tmp_path / "xet")


def _upload(store: XetStore, chunks: list[bytes]) -> bytes:
    h, body = make_xorb(chunks)
    assert service.upload_xorb(store, h, _spool(store, body), len(body))
    return h


def test_read_file_in_blocks(store: XetStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_file reads several chunks (of every scheme) per block, and a term spans several blocks."""
    chunks = [os.urandom(700 + i) if i % 2 else (b"ab%d" % i) * 300 for i in range(12)]
    xh = _upload(store, chunks)
    data = b"".join(chunks[2:12]) + b"".join(chunks[0:3])
    body = make_shard([(chunks, xh, [(2, 12), (0, 3)])], [(xh, chunks)],
                      sha=hashing.from_hex(hashlib.sha256(data).hexdigest()))
    fh = service.register_shard(store, body).files[0].hash
    for limit, count in ((1, 13), (1500, None)):  # one chunk per block; several chunks, several blocks a term
        monkeypatch.setattr(service, "READ_BLOCK", limit)
        blocks = list(service.read_file(store, store.get_file(fh)))
        assert b"".join(blocks) == data
        assert len(blocks) == count if count else 2 < len(blocks) < 13
    monkeypatch.setattr(service, "READ_BLOCK", 1 << 30)
    assert [len(b) for b in service.read_file(store, store.get_file(fh))] == [len(data) - len(b"".join(chunks[0:3])),
                                                                              len(b"".join(chunks[0:3]))]


def test_register_and_reconstruct(store: XetStore) -> None:
    chunks = [os.urandom(700 + i) for i in range(12)]
    xh = _upload(store, chunks)
    data = b"".join(chunks)
    sha = hashing.from_hex(hashlib.sha256(data).hexdigest())
    body = make_shard([(chunks, xh, [(0, 5), (5, 12)])], [(xh, chunks)], sha=sha)
    done = service.register_shard(store, body)
    assert done.new and done.files[0].size == len(data)
    fh = done.files[0].hash
    assert b"".join(service.read_file(store, store.get_file(fh))) == data
    assert store.get_file(fh).sha256 == hashlib.sha256(data).hexdigest()
    # a range in the middle: whole chunks, and the offset into the first one
    rec = service.reconstruct(store, fh, 1000, 5000)
    raw = store.xorb_path(xh).read_bytes()
    got = b"".join(b"".join(xorb.iter_chunks(raw[p.bytes_first:p.bytes_last + 1])) for p in rec.pieces)
    assert got[rec.offset_into_first_range:][:4001] == data[1000:5001]
    with pytest.raises(RangeNotSatisfiable):
        service.reconstruct(store, fh, len(data), None)
    # dedupe: the first chunk of the file is always answerable
    answer, key = shard.parse_dedupe(service.dedupe_shard(store, hashing.chunk_hash(chunks[0])))
    assert answer[0].hash == xh and len(answer[0].chunks) == 12
    # chunk hashes only keyed: a client matches what it has, and learns no hash it did not know
    assert key != bytes(32)
    assert [c.hash for c in answer[0].chunks] == [shard.hmac(hashing.chunk_hash(c), key) for c in chunks]
    assert not {hashing.chunk_hash(c) for c in chunks} & {c.hash for c in answer[0].chunks}
    with pytest.raises(NotFound):
        service.dedupe_shard(store, hashing.chunk_hash(b"never"))
    assert not service.register_shard(store, body).new
    assert not service.upload_xorb(store, xh, _spool(store, make_xorb(chunks)[1]), 1)


@pytest.mark.parametrize("damage", ["no-xorb", "past-end", "proof", "file-hash", "no-proofs", "length", "magic",
                                    "truncated", "unknown-cas"])
def test_bad_shard_refused_and_nothing_stored(store: XetStore, damage: str) -> None:
    chunks = [os.urandom(500) for _ in range(4)]
    xh = _upload(store, chunks)
    files, cas, kw = [(chunks, xh, [(0, 4)])], [(xh, chunks)], {}
    if damage == "no-xorb":
        files = [(chunks, hashing.chunk_hash(b"nope"), [(0, 4)])]
    elif damage == "past-end":
        files = [(chunks + [b"x"], xh, [(0, 5)])]
    elif damage == "file-hash":
        kw["file_hash"] = hashing.chunk_hash(b"lie")
    elif damage == "no-proofs":
        kw["proofs"] = False
    elif damage == "unknown-cas":
        cas = [(hashing.chunk_hash(b"ghost"), chunks)]
    body = make_shard(files, cas, **kw)
    if damage == "proof":
        i = 48 + 48 + 48  # header, file header, one term: the proof follows
        body = body[:i] + bytes(32) + body[i + 32:]
    elif damage == "length":
        body = body[:48 + 48 + 36] + (1).to_bytes(4, "little") + body[48 + 48 + 40:]
    elif damage == "magic":
        body = b"X" + body[1:]
    elif damage == "truncated":
        body = body[:-20]
    with pytest.raises(BadRequest):
        service.register_shard(store, body)
    assert not any((store.root / "files").rglob("*.json"))


def test_prefetched_regroups_in_order_and_passes_errors_on() -> None:
    parts = [bytes([i]) * 3 for i in range(10)]
    assert b"".join(prefetched(iter(parts), block=7)) == b"".join(parts)

    def broken():  # noqa: ANN202
        yield b"x" * 10
        raise BadRequest("corrupt")
    with pytest.raises(BadRequest):
        list(prefetched(broken(), block=4))


def test_a_refusal_before_commit_records_nothing(store: XetStore) -> None:
    chunks = [os.urandom(800) for _ in range(3)]
    xh = _upload(store, chunks)
    body = make_shard([(chunks, xh, [(0, 3)])], [(xh, chunks)])

    def refuse(records) -> None:  # noqa: ANN001
        assert records[0].size == 2400
        raise BadRequest("the sha256 does not match")
    with pytest.raises(BadRequest):
        service.register_shard(store, body, refuse)
    assert not any((store.root / "files").rglob("*.json")) and not any((store.root / "dedupe").rglob("*"))
    assert service.register_shard(store, body).new


@pytest.mark.parametrize("damage", [None, "file-hash", "sha256", "length", "past-end", "no-xorb"])
def test_adopt_file_checks_a_record_from_a_backup(tmp_path, damage: str | None) -> None:  # noqa: ANN001
    """A restore registers file records without a shard: they are checked against the (verified) xorbs as a
    shard's files are, their bytes against their sha256, and the dedupe entries come back as an upload makes."""
    old = XetStore(tmp_path / "old")
    chunks = [os.urandom(700 + i) for i in range(6)]
    xh = _upload(old, chunks)
    data = b"".join(chunks)
    body = make_shard([(chunks, xh, [(0, 6)])], [(xh, chunks)], sha=hashing.from_hex(hashlib.sha256(data).hexdigest()))
    rec = service.register_shard(old, body).files[0]
    new = XetStore(tmp_path / "new")
    _upload(new, chunks)
    if damage == "file-hash":
        rec = FileRecord(hashing.chunk_hash(b"lie"), rec.size, rec.sha256, rec.terms)
    elif damage == "sha256":
        rec = FileRecord(rec.hash, rec.size, hashlib.sha256(b"other").hexdigest(), rec.terms)
    elif damage == "length":
        rec = FileRecord(rec.hash, rec.size, rec.sha256, [(xh, 0, 6, rec.size + 1)])
    elif damage == "past-end":
        rec = FileRecord(rec.hash, rec.size, rec.sha256, [(xh, 0, 7, rec.size)])
    elif damage == "no-xorb":
        rec = FileRecord(rec.hash, rec.size, rec.sha256, [(hashing.chunk_hash(b"x"), 0, 6, rec.size)])
    if damage is not None:
        with pytest.raises(BadRequest):
            service.adopt_file(new, rec, [xh])
        assert not any((new.root / "files").rglob("*.json")) and not any((new.root / "dedupe").rglob("*"))
        return
    assert service.adopt_file(new, rec, [xh]) and not service.adopt_file(new, rec, [xh])
    assert b"".join(service.read_file(new, new.get_file(rec.hash))) == data
    answer, _ = shard.parse_dedupe(service.dedupe_shard(new, hashing.chunk_hash(chunks[0])))
    assert answer[0].hash == xh
    assert sorted(p.name for p in (new.root / "dedupe").rglob("*") if p.is_file()) == \
        sorted(p.name for p in (old.root / "dedupe").rglob("*") if p.is_file())


def _file(store: XetStore, chunks: list[bytes], ranges: list[tuple[int, int]], sha: str | None = None):  # noqa: ANN202
    xh, xorb_body = make_xorb(chunks)
    service.upload_xorb(store, xh, _spool(store, xorb_body), len(xorb_body))  # maybe there already
    data = b"".join(chunks[i] for a, b in ranges for i in range(a, b))
    body = make_shard([(chunks, xh, ranges)], [(xh, chunks)],
                      sha=hashing.from_hex(sha or hashlib.sha256(data).hexdigest()))
    return service.register_shard(store, body).files[0], data


@pytest.mark.parametrize("block", [1, 1500, 1 << 30])
def test_read_file_ranges(store: XetStore, monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    """Any byte range of a file, across chunk, block and term edges (a repeated term included)."""
    monkeypatch.setattr(service, "READ_BLOCK", block)
    chunks = [os.urandom(700 + i) if i % 2 else (b"cd%d" % i) * 300 for i in range(12)]
    rec, data = _file(store, chunks, [(2, 12), (0, 3), (1, 4)])
    n = len(data)
    edges = sorted({0, 1, 699, 700, 701, 5000, n // 2, n - 701, n - 2, n - 1})
    for first in edges:
        for last in edges:
            if first <= last:
                assert b"".join(service.read_file(store, rec, first, last)) == data[first:last + 1], (first, last)
    assert b"".join(service.read_file(store, rec, n - 5, n + 100)) == data[-5:]  # a last past the end: to the end


def test_verify_sha256_reads_the_file_back(store: XetStore) -> None:
    chunks = [os.urandom(900) for _ in range(6)]
    rec, data = _file(store, chunks, [(0, 6)])
    service.verify_sha256(store, rec)
    lie, _ = _file(store, chunks, [(0, 4)], sha=hashlib.sha256(data).hexdigest())  # the sha256 of other bytes
    with pytest.raises(BadRequest, match=hashlib.sha256(data).hexdigest()):
        service.verify_sha256(store, lie)


def test_objects_read_xet_files_by_sha256(tmp_path) -> None:  # noqa: ANN001
    """The hub's object store: an object uploaded through Xet is read (whole, or a range) from its xorbs, once
    its sha256 is linked; an LFS object from the disk store; neither: missing. Writes go to the LFS store."""
    from spaces.errors import LfsObjectMissing
    from spaces.storage.objects import put
    from spaces.services.objects import object_store

    objects = object_store(tmp_path / "repos")
    chunks = [os.urandom(5000 + i) for i in range(40)]
    rec, data = _file(objects.xet, chunks, [(0, 40)])
    oid = rec.sha256
    assert not objects.exists(oid) and objects.size(oid) is None  # registered, not yet checked and linked
    with pytest.raises(LfsObjectMissing):
        objects.open(oid)
    objects.xet.link_sha256(oid, rec.hash)
    assert objects.exists(oid) and objects.size(oid) == len(data)
    assert b"".join(objects.open(oid)) == data
    assert b"".join(objects.open(oid, 4999, 123456)) == data[4999:123457]
    assert not any((tmp_path / "lfs" / "objects").rglob("*"))  # stored once: no second copy was written
    plain = os.urandom(3000)
    plain_oid = hashlib.sha256(plain).hexdigest()
    assert put(objects, plain_oid, len(plain), [plain])
    assert objects.local.exists(plain_oid) and b"".join(objects.open(plain_oid, 10, 19)) == plain[10:20]
    # a git-lfs upload of an object that came through Xet verifies the bytes; reads still work either way
    assert put(objects, oid, len(data), [data]) is True and b"".join(objects.open(oid)) == data


def test_spooled_blocks_are_written_whole_and_in_order_through_short_writes(tmp_path, monkeypatch) -> None:
    from spaces.xet import store as store_module

    blocks = [os.urandom(n) for n in (5, 0, 7, 1, 64)]
    real = os.writev

    def short(fd, buffers):  # noqa: ANN001, ANN202 - at most 3 bytes a call, as a full disk or a signal may do
        return real(fd, [bytes(b"".join(bytes(x) for x in buffers)[:3])])

    monkeypatch.setattr(store_module.os, "writev", short)
    path = tmp_path / "spool"
    with open(path, "wb") as f:
        store_module.write_blocks(f.fileno(), blocks)
    assert path.read_bytes() == b"".join(blocks)

"""Xet hashes: keyed BLAKE3 chunk hashes, the merkle aggregation behind xorb and file hashes, term verification.

A hash is 32 raw bytes. Its string form (in URLs and JSON) is not the bytes' hex: each 8-byte word is read as a
little-endian u64 and printed as 16 hex digits (xet-core ``DataHash::hex``), which amounts to reversing every word.
"""

from __future__ import annotations

import re

from blake3 import blake3

from spaces.errors import BadRequest

DATA_KEY = bytes([102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16, 155,
                  235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41])
INTERNAL_NODE_KEY = bytes([1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83, 111,
                           55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63])
VERIFICATION_KEY = bytes([127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243, 164, 205, 38,
                          213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195])
ZERO_KEY = bytes(32)

#: a merkle node has 2..9 children; a child whose hash is 0 mod 4 closes its group (xet-core ``next_merge_cut``)
_BRANCHING = 4
_MAX_GROUP = 2 * _BRANCHING + 1
_HEX = re.compile(r"[0-9a-f]{64}")


def to_hex(h: bytes) -> str:
    return b"".join(h[i:i + 8][::-1] for i in range(0, 32, 8)).hex()


def from_hex(s: str) -> bytes:
    """The raw hash a 64-digit string names; a malformed one is a 400 (it comes from a URL)."""
    if not isinstance(s, str) or not _HEX.fullmatch(s):
        raise BadRequest("A Xet hash is 64 lowercase hexadecimal digits.")
    raw = bytes.fromhex(s)
    return b"".join(raw[i:i + 8][::-1] for i in range(0, 32, 8))


def chunk_hash(data: bytes) -> bytes:
    return blake3(data, key=DATA_KEY).digest()


def _mod(h: bytes, m: int) -> int:
    # xet-core: the last 64-bit word, little-endian, modulo m
    return int.from_bytes(h[24:32], "little") % m


def _cut(nodes: list[tuple[bytes, int]], start: int) -> int:
    n = len(nodes) - start
    if n <= 2:
        return len(nodes)
    end = min(_MAX_GROUP, n)
    for i in range(2, end):
        if _mod(nodes[start + i][0], _BRANCHING) == 0:
            return start + i + 1
    return start + end


def _merge(group: list[tuple[bytes, int]]) -> tuple[bytes, int]:
    text = "".join(f"{to_hex(h)} : {size}\n" for h, size in group)
    return blake3(text.encode(), key=INTERNAL_NODE_KEY).digest(), sum(size for _, size in group)


def merkle_root(chunks: list[tuple[bytes, int]]) -> bytes:
    """The aggregated hash of ``(chunk hash, length)`` pairs: a xorb's hash, and the inside of a file's."""
    if not chunks:
        return bytes(32)
    nodes = list(chunks)
    while len(nodes) > 1:
        out, i = [], 0
        while i < len(nodes):
            j = _cut(nodes, i)
            out.append(_merge(nodes[i:j]))
            i = j
        nodes = out
    return nodes[0][0]


def file_hash(chunks: list[tuple[bytes, int]]) -> bytes:
    if not chunks:
        return bytes(32)
    return blake3(merkle_root(chunks), key=ZERO_KEY).digest()


def range_hash(chunk_hashes: list[bytes]) -> bytes:
    """The verification hash of a term: what a shard must carry to prove the client knows the chunks it names."""
    return blake3(b"".join(chunk_hashes), key=VERIFICATION_KEY).digest()


def dedupe_eligible(h: bytes) -> bool:
    return _mod(h, 1024) == 0

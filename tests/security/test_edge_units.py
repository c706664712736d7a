"""Pure parts of the hub's edge (issue 20): the streamed NDJSON commit decoder and the body memory budget. The
live behaviour is in test_edge_hub.py; the proxy's parts in test_edge_proxy.py."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random

import pytest

from spaces.errors import BadRequest
from spaces.hub.limits import BodyBudget
from spaces.hub.ndjson import CommitParser, parse_ndjson


def commit_body(*files: tuple[str, bytes], escape_slashes: bool = False) -> bytes:
    lines = [json.dumps({"key": "header", "value": {"summary": "s"}})]
    for path, content in files:
        line = json.dumps({"key": "file", "value": {"content": base64.b64encode(content).decode(), "path": path,
                                                    "encoding": "base64"}})
        lines.append(line.replace("/", "\\/") if escape_slashes else line)
    lines.append(json.dumps({"key": "deletedFile", "value": {"path": "old.txt"}}))
    return "\n".join(lines).encode() + b"\n"


def feed_in_pieces(parser: CommitParser, body: bytes, rng: random.Random) -> None:
    pos = 0
    while pos < len(body):
        n = rng.choice((1, 2, 3, 5, 64, 1000, 65536))
        parser.feed(body[pos:pos + n])
        pos += n


def contents(parsed) -> list[tuple[str, bytes]]:  # noqa: ANN001
    return [(a.path, a.file.read_bytes() if a.file is not None else a.content) for a in parsed.additions]


@pytest.mark.parametrize("escape_slashes", [False, True])
def test_streamed_lines_decode_like_a_whole_body(tmp_path, escape_slashes: bool) -> None:
    rng = random.Random(7)
    files = [("small.txt", b"hello"), ("empty", b""), ("big.bin", rng.randbytes(300_000)),
             ("dir/mid.bin", rng.randbytes(5000)), ("odd.bin", rng.randbytes(100_001))]
    body = commit_body(*files, escape_slashes=escape_slashes)
    for seed in range(3):
        parser = CommitParser(tmp_path, line_limit=4096, memory_limit=6000)
        feed_in_pieces(parser, body, random.Random(seed))
        parsed = parser.finish()
        assert contents(parsed) == files
        assert parsed.deletions == ["old.txt"]
        streamed = [a for a in parsed.additions if a.file is not None]
        assert {a.path for a in streamed} >= {"big.bin", "odd.bin"}  # past line_limit or memory_limit: on disk
    assert contents(parse_ndjson(body)) == files  # the in-memory entry point agrees


def test_base64_rules_match_b64decode_validate_for_streamed_content(tmp_path) -> None:
    rng = random.Random(3)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=  \x00-_"
    good = base64.b64encode(rng.randbytes(6000))
    variants = [good, good[:-1], good[:-2] + b"==", good + b"=", good[:100] + b"=" + good[100:], good + b"AAAA",
                good[:-4] + b"A===", good[:-4] + b"AB=C", good.replace(b"A", b"-", 1)]
    variants += [bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) + good for _ in range(30)]
    for text in variants:
        try:
            expected: bytes | None = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            expected = None
        line = b'{"key": "file", "value": {"content": "' + text.replace(b"\x00", b"\\u0000") + b'", "path": "f"}}'
        body = b'{"key": "header", "value": {"summary": "s"}}\n' + line
        parser = CommitParser(tmp_path, line_limit=1024)
        try:
            feed_in_pieces(parser, body, rng)
            got: bytes | None = contents(parser.finish())[0][1]
        except BadRequest:
            got = None
        assert got == expected, text[:60]


@pytest.mark.parametrize("line,message", [
    (b'{"key": "file", "value": {"path": "f", "other": "' + b"A" * 5000 + b'"}}', "only a file's 'content'"),
    (b'{"key": "file", "value": {"path": "' + b"a" * 5000 + b'"}}', "only a file's 'content'"),
    (b'{"key": "deletedFile", "value": {"content": "' + b"A" * 5000 + b'", "path": "x"}}', "only a file's"),
    (b'{"key": "file", "value": {"content": "' + b"A" * 5000 + b'", "path": "../x"}}', "Invalid path"),
    (b'{"key": "file", "value": {"content": "' + b"A" * 5000 + b'\\n", "path": "x"}}', "not valid base64"),
    (b'[' * 5000, "only a file's"),
    (b'[' * 2000 + b"]" * 2000, "nested deeper than 32 levels"),
])
def test_bad_lines_are_refused_naming_the_line(tmp_path, line: bytes, message: str) -> None:
    parser = CommitParser(tmp_path, line_limit=4096)
    with pytest.raises(BadRequest) as err:
        parser.feed(b'{"key": "header", "value": {"summary": "s"}}\n' + line + b"\n")
        parser.finish()
    assert message in err.value.message
    if "Invalid path" not in message:
        assert "Line 2" in err.value.message


def test_a_huge_first_line_is_refused_before_it_is_all_read(tmp_path) -> None:
    parser = CommitParser(tmp_path, line_limit=4096)
    with pytest.raises(BadRequest, match="header"):
        parser.feed(b'{"key": "header", "value": {"summary": "' + b"x" * 5000)


def test_an_unterminated_content_string_is_refused(tmp_path) -> None:
    parser = CommitParser(tmp_path, line_limit=100)
    parser.feed(b'{"key": "header", "value": {"summary": "s"}}\n{"key": "file", "value": {"content": "' + b"QUJD" * 50)
    with pytest.raises(BadRequest, match="ends inside a string"):
        parser.finish()


# ---- the body budget -------------------------------------------------------------------------------------
def test_budget_serves_in_order_and_gives_up_after_its_wait() -> None:
    async def scenario() -> None:
        budget = BodyBudget(100)
        assert await budget.acquire(60, 1) == 60
        order: list[str] = []

        async def take(name: str, n: int, wait: float) -> None:
            got = await budget.acquire(n, wait)
            order.append(f"{name}:{got}")

        big = asyncio.create_task(take("big", 80, 5))
        await asyncio.sleep(0.01)
        small = asyncio.create_task(take("small", 10, 5))  # fits now, but waits behind the first come
        await asyncio.sleep(0.05)
        assert order == [] and budget.free == 40
        budget.release(60)
        await asyncio.gather(big, small)
        assert order == ["big:80", "small:10"] and budget.free == 10
        assert await budget.acquire(50, 0.05) is None  # no room within the wait
        assert await budget.acquire(10**9, 0.05) is None  # clamped to the whole budget, which is taken
        budget.release(80)
        budget.release(10)
        assert budget.free == 100 and await budget.acquire(10**9, 0.05) == 100

    asyncio.run(scenario())


def test_budget_waiter_that_goes_away_frees_its_place() -> None:
    async def scenario() -> None:
        budget = BodyBudget(100)
        await budget.acquire(100, 1)
        waiter = asyncio.create_task(budget.acquire(50, 10))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        budget.release(100)
        assert budget.free == 100 and not budget._waiting

    asyncio.run(scenario())

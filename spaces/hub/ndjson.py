"""The NDJSON body of ``create_commit``, decoded as it streams in.

One JSON object per line: the header first, then ``file`` (base64 ``content``), ``lfsFile`` (a Git LFS object
already uploaded, by sha256 and size: the commit writes its pointer), ``deletedFile`` and ``deletedFolder``
operations. A file's line is as large as the file (400 MiB of data is a 533 MiB line), so no
line is held whole past ``line_limit``: when a line grows past it, the string it is in the middle of must be a
``content`` value, which is then base64-decoded as it arrives and written to a spool file; the rest of the line
(its other keys, a few hundred bytes) is parsed as JSON with a placeholder where the content was. Contents of
small lines stay in memory up to ``memory_limit`` bytes per commit, the next ones are spooled too. So one commit
holds at most about ``MEMORY_BOUND`` bytes, whatever its size (the hub's body budget reserves that much).

Why not a streaming JSON library: ijson (the well-kept one) streams between values but hands each string over
whole, and the one value here that can be large is a string.

Any malformed line rejects the whole commit (``BadRequest`` naming the line) before anything is written to git;
the caller removes the spool directory whatever happens.
"""

from __future__ import annotations

import binascii
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from spaces.domain.lfs import check_oid, check_size
from spaces.domain.naming import validate_folder_path, validate_path_in_repo
from spaces.errors import BadRequest
from spaces.hub import jsonlimits
from spaces.storage.gitrepo import Addition

LINE_LIMIT = 1 << 20  # a line longer than this must be a file whose content is streamed
MEMORY_LIMIT = 4 << 20  # decoded contents of small lines kept in memory per commit; then spooled
#: what one commit holds at most: a line (and the decoded copy and parsed string of a small one), the kept
#: contents and a received chunk
MEMORY_BOUND = 3 * LINE_LIMIT + MEMORY_LIMIT + (1 << 20)

_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'  # unrolled: linear even when it fails on an open string
_TOKEN = re.compile(rb"[ \t\r]*(" + _STRING + rb"|[{}\[\]:,]|[^ \t\r{}\[\]:,\"]+)", re.S)
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}\Z")  # what base64.b64decode(validate=True) accepts
#: stands for a streamed content while the rest of its line is parsed (a NUL cannot be in a base64 string)
_PLACEHOLDER = "\x00spaces:streamed\x00"
_PLACEHOLDER_JSON = json.dumps(_PLACEHOLDER).encode()


@dataclass
class ParsedCommit:
    header: dict
    additions: list[Addition]
    deletions: list[str]
    folders: list[str]
    #: ``lfsFile`` lines: path -> (sha256, size or None); in ``additions`` with empty content until the commit
    #: checks the repository holds each object and puts its pointer there (``spaces.storage.lfsfiles``)
    lfs: dict[str, tuple[str, int | None]] = field(default_factory=dict)


class _BadBase64(Exception):
    pass


class _Base64Writer:
    """Decodes base64 text fed in pieces of any size, with the rules of ``b64decode(validate=True)``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.rest = b""
        self.pads = 0  # '=' at the end of the last quad: nothing but up to 2 - pads more '=' may follow

    def feed(self, text: bytes) -> None:
        if self.rest:
            text = self.rest + text
        cut = len(text) - len(text) % 4
        self.rest = text[cut:]
        if not cut:
            return
        quads = text[:cut] if cut < len(text) else text
        if self.pads or not _BASE64.match(quads):
            raise _BadBase64()
        self.pads = len(quads) - len(quads.rstrip(b"="))
        self.out.write(binascii.a2b_base64(quads))

    def close(self) -> None:
        # 1 to 3 characters left over: a truncated or unpadded string, unless they are surplus '=' (which
        # b64decode ignores when the '=' run stays within two)
        if self.rest and (self.rest.strip(b"=") or len(self.rest) + self.pads > 2):
            raise _BadBase64()


class CommitParser:
    """Feed the body in chunks (``feed``), then ``finish()`` for the operations. ``spool``: a directory for
    contents not kept in memory (None: everything in memory, for small bodies and tests)."""

    def __init__(self, spool: Path | None = None, *, line_limit: int = LINE_LIMIT,
                 memory_limit: int = MEMORY_LIMIT) -> None:
        self.spool = spool
        self.line_limit = line_limit
        self.memory_limit = memory_limit
        self.kept = 0  # bytes of content held in memory
        self.n = 0  # lines seen, for error messages
        self.buf = bytearray()  # the current line (or, streaming, what follows its content string)
        self.header: dict | None = None
        self.additions: list[Addition] = []
        self.deletions: list[str] = []
        self.folders: list[str] = []
        self.lfs: dict[str, tuple[str, int | None]] = {}
        # while a content string streams: the line up to it, the decoder, its output, a pending backslash
        self.prefix: bytes | None = None
        self.writer: _Base64Writer | None = None
        self.target: BinaryIO | None = None
        self.in_string = False
        self.escape = False
        self.streamed: bytes | Path = b""  # the last streamed content: in memory (no spool) or its spool file
        self.files = 0

    # ---- input ------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        pos, n = 0, len(data)
        while pos < n:
            if self.in_string:
                pos = self._string(data, pos)
                continue
            nl = data.find(b"\n", pos)
            end = n if nl < 0 else nl
            self.buf += data[pos:end]
            pos = end
            if len(self.buf) > self.line_limit:
                if self.prefix is not None:  # after a streamed content: only a few small keys may follow
                    raise BadRequest(f"Line {self.n + 1} of the commit is longer than {self.line_limit} bytes: "
                                     "only a file's 'content' may be that large.")
                self._start_streaming()
                if self.in_string:
                    continue
            if nl >= 0:
                pos += 1
                self._line_done()

    def finish(self) -> ParsedCommit:
        if self.in_string:
            self.n += 1
            raise BadRequest(f"Line {self.n} of the commit ends inside a string.")
        if self.buf or self.prefix is not None:
            self._line_done()
        if self.header is None:
            raise BadRequest("The commit is empty: it needs a header line.")
        paths = [a.path for a in self.additions] + self.deletions
        if len(set(paths)) != len(paths):
            raise BadRequest("The same path appears twice in one commit.")
        return ParsedCommit(self.header, self.additions, self.deletions, self.folders, self.lfs)

    def close(self) -> None:
        """Close a spool file left open by a body cut short (the caller removes the spool directory)."""
        if self.target is not None:
            self.target.close()
            self.target = None

    # ---- lines ------------------------------------------------------------------------------------------
    def _line_done(self) -> None:
        self.n += 1
        line, self.buf = bytes(self.buf), bytearray()
        if self.prefix is not None:  # the end of a streamed line: parse it with the placeholder in
            prefix, self.prefix = self.prefix, None
            if line.find(_PLACEHOLDER_JSON) >= 0 or prefix.find(_PLACEHOLDER_JSON) >= 0:
                raise BadRequest(f"Line {self.n} of the commit is not a valid file operation.")
            self._operation(_load_line(prefix + _PLACEHOLDER_JSON + line, self.n), streamed=True)
            return
        if not line.strip():
            return
        self._operation(_load_line(line, self.n), streamed=False)

    def _operation(self, obj: object, *, streamed: bool) -> None:
        n = self.n
        if not isinstance(obj, dict) or not isinstance(obj.get("value"), dict):
            raise BadRequest(f"Line {n} of the commit must be an object with 'key' and 'value'.")
        key, value = obj.get("key"), obj["value"]
        if streamed and (key != "file" or value.get("content") != _PLACEHOLDER):
            raise BadRequest(f"Line {n} of the commit is longer than {self.line_limit} bytes: only a file's "
                             "'content' may be that large.")
        if self.header is None:
            if key != "header":
                raise BadRequest("The first line of a commit must be the header: {\"key\":\"header\",...}.")
            self.header = value
        elif key == "file":
            path = validate_path_in_repo(_str(value, "path", n))
            if value.get("encoding", "base64") != "base64":
                raise BadRequest(f"Line {n}: only base64 file content is supported.")
            if streamed:
                self.additions.append(self._streamed(path))
            else:
                self.additions.append(self._keep(path, _decode(_str(value, "content", n), path, n)))
        elif key == "deletedFile":
            self.deletions.append(validate_path_in_repo(_str(value, "path", n)))
        elif key == "deletedFolder":
            self.folders.append(validate_folder_path(_str(value, "path", n)))
        elif key == "lfsFile":
            path = validate_path_in_repo(_str(value, "path", n))
            if value.get("algo", "sha256") != "sha256":
                raise BadRequest(f"Line {n}: only sha256 LFS objects are supported.")
            size = value.get("size")  # absent when huggingface_hub copies an LFS file: the object's own size
            self.lfs[path] = (check_oid(value.get("oid")), None if size is None else check_size(size))
            self.additions.append(Addition(path, b""))  # its pointer once the object is checked (lfsfiles)
        else:
            raise BadRequest(f"Line {n}: unknown operation '{key}' (expected file, lfsFile, deletedFile or "
                             "deletedFolder).")

    def _keep(self, path: str, content: bytes) -> Addition:
        if self.spool is None or self.kept + len(content) <= self.memory_limit:
            self.kept += len(content)
            return Addition(path, content)
        name = self._spool_name()
        name.write_bytes(content)
        return Addition(path, file=name)

    def _spool_name(self) -> Path:
        assert self.spool is not None
        self.files += 1
        return self.spool / f"content-{self.files}"

    # ---- a content string too large to hold -------------------------------------------------------------
    def _start_streaming(self) -> None:
        n = self.n + 1
        if self.header is None:
            raise BadRequest(f"Line {n} of the commit is longer than {self.line_limit} bytes; the header comes "
                             "first and is small.")
        line = bytes(self.buf)
        start = _content_string(line)
        if start < 0:
            raise BadRequest(f"Line {n} of the commit is longer than {self.line_limit} bytes: only a file's "
                             "'content' may be that large.")
        self.prefix, self.buf = line[:start], bytearray()
        if self.spool is None:
            self.target = io.BytesIO()
        else:
            self.streamed = self._spool_name()
            self.target = open(self.streamed, "wb")  # noqa: SIM115 - closed when the string ends
        self.writer = _Base64Writer(self.target)
        self.in_string = True
        end = self._string(line, start + 1)
        if end < len(line):  # the string ended within these bytes: the rest of the line follows it
            self.buf += line[end:]

    def _string(self, data: bytes, pos: int) -> int:
        """Decode the content string from ``pos``; the index after its closing quote, or len(data) if still open.
        The only escape base64 text can hold is ``\\/`` (some encoders write it): replaced in bulk, so a body
        full of them costs no loop per character."""
        n, writer = len(data), self.writer
        assert writer is not None
        try:
            if self.escape and pos < n:  # a backslash ended the previous piece
                self.escape = False
                pos = self._escaped(data, pos)
            quote = data.find(b'"', pos)
            end = n if quote < 0 else quote
            text = data[pos:end] if pos or end < n else data
            if text.find(b"\\") >= 0:
                if quote < 0 and text.endswith(b"\\"):  # an escape split between two pieces
                    text, self.escape = text[:-1], True
                text = text.replace(b"\\/", b"/")
                if text.find(b"\\") >= 0:  # any other escape (\\", \\u...) is no base64 character
                    raise _BadBase64()
            if text:
                writer.feed(text)
            if quote < 0:
                return n
            writer.close()
            self._string_done()
            return quote + 1
        except _BadBase64:
            raise BadRequest(f"Line {self.n + 1}: 'content' is not valid base64.") from None

    def _escaped(self, data: bytes, at: int) -> int:
        if data[at] != 0x2F:  # only "\/" can stand for a base64 character
            raise _BadBase64()
        self.writer.feed(b"/")  # type: ignore[union-attr]
        return at + 1

    def _string_done(self) -> None:
        self.in_string = False
        self.writer = None
        target, self.target = self.target, None
        assert target is not None
        if isinstance(target, io.BytesIO):
            self.streamed = target.getvalue()
        target.close()

    def _streamed(self, path: str) -> Addition:
        streamed = self.streamed
        return Addition(path, streamed) if isinstance(streamed, bytes) else Addition(path, file=streamed)


def _content_string(line: bytes) -> int:
    """Where the value of the first "content" key in ``line`` (one line's first bytes) starts, its opening
    quote; -1 when there is none or it is not a string. The string may be complete or still open at the end."""
    pos, prev, last = 0, b"", b""
    while True:
        if (prev, last) == (b'"content"', b":"):
            rest = line[pos:].lstrip(b" \t\r")
            return len(line) - len(rest) if rest.startswith(b'"') else -1
        m = _TOKEN.match(line, pos)
        if m is None:
            return -1
        prev, last, pos = last, m.group(1), m.end()


def _load_line(line: bytes, n: int) -> object:
    return jsonlimits.loads(line, what=f"Line {n} of the commit")  # bounded depth and numbers, a 400 otherwise


def _decode(text: str, path: str, n: int) -> bytes:
    try:
        raw = text.encode("ascii")
        if not _BASE64.match(raw):
            raise ValueError
        return binascii.a2b_base64(raw)
    except (binascii.Error, ValueError):
        raise BadRequest(f"Line {n}: 'content' of {path} is not valid base64.") from None


def _str(value: dict, key: str, n: int) -> str:
    v = value.get(key)
    if not isinstance(v, str):
        raise BadRequest(f"Line {n}: field '{key}' must be a string.")
    return v


def parse_ndjson(body: bytes) -> ParsedCommit:
    """A whole body at once, in memory (tests, fuzzers)."""
    parser = CommitParser()
    parser.feed(body)
    return parser.finish()

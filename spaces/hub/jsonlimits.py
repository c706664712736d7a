"""JSON from strangers, with bounds: nesting depth and numbers, for every JSON body and every NDJSON commit line.

The stdlib parser is fast and safe on memory, but nesting is a recursion in C (5,000 ``[`` raise RecursionError,
which nothing expects), integers are unbounded (``1e30`` written out goes straight to an SQL INTEGER column and
fails there) and ``NaN``/``Infinity`` are accepted although JSON has no such values. :func:`loads` refuses all of
these with a :class:`~spaces.errors.BadRequest` that names the limit, before anything acts on the value.

Why not orjson or another parser: none of them bounds depth and integers with a message of ours; a pre-scan plus
the stdlib's hooks is short and costs almost nothing on real bodies (see :func:`_depth`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from spaces.errors import BadRequest

#: HF's request bodies are at most four levels deep; 32 leaves room and keeps far from the recursion limit
MAX_DEPTH = 32
#: integers must fit a signed 64-bit column; fields check their own, narrower ranges
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)

# a complete JSON string, or one bracket: strings are skipped whole so brackets inside them do not count
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def _depth_exceeds(raw: bytes, limit: int) -> bool:
    """True when ``raw`` opens more than ``limit`` nested arrays/objects. Stops at the first level past it.

    A body with at most ``limit`` opening brackets cannot be deeper than ``limit``: two C-speed counts settle that
    for nearly every body (a commit line of base64 has two), so the tokenizing loop runs only on bracket-heavy ones.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def _int(text: str) -> int:
    # the stdlib already refuses more than 4,300 digits; this keeps to a 64-bit range
    value = int(text)
    if not MIN_INT <= value <= MAX_INT:
        raise BadRequest(f"The number {text[:30]}{'...' if len(text) > 30 else ''} is out of range: integers must "
                         f"be between {MIN_INT} and {MAX_INT}.")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"The number {text[:30]} is out of range for a 64-bit float.")
    return value


def _constant(name: str) -> None:
    raise BadRequest(f"{name} is not a JSON value; send a finite number or null.")


def loads(raw: bytes | str, *, what: str = "The request body", max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``raw`` as JSON within the bounds; ``BadRequest`` (saying ``what`` is wrong) when it is not.

    Raises BadRequest for invalid JSON, nesting deeper than ``max_depth``, integers outside 64 bits, floats that
    overflow, and the non-standard ``NaN``/``Infinity``.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if _depth_exceeds(data, max_depth):
        raise BadRequest(f"{what} is nested deeper than {max_depth} levels (the limit).")
    try:
        return json.loads(data, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except BadRequest as exc:
        raise BadRequest(f"{what}: {exc.message}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:  # a deep body the pre-scan missed would still be a clear refusal
        raise BadRequest(f"{what} is nested deeper than {max_depth} levels (the limit).") from None

"""Small helpers shared by the API routers: raw path segments, JSON bodies, principal + session in one step."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from fastapi import Request

from spaces.errors import BadRequest
from spaces.hub import jsonlimits


def raw_segments(request: Request) -> list[str]:
    """Path segments, each percent-decoded on its own.

    Clients quote revisions with ``safe=""`` (``refs%2Fpr%2F1``) and tree paths too (``a%2Fb``); the ASGI ``path``
    has already turned ``%2F`` into ``/``, which would make a revision and a path indistinguishable, so routes
    that take both read the raw path instead.
    """
    raw = request.scope.get("raw_path") or request.url.path.encode()
    raw = raw.split(b"?", 1)[0]
    return [unquote(seg.decode("latin-1")) for seg in raw.split(b"/")]


def after(request: Request, marker: str, start: int) -> tuple[str, str]:
    """(revision, path) from the raw segments that follow ``marker`` found at or after ``start``."""
    segs = raw_segments(request)
    try:
        i = segs.index(marker, start)
    except ValueError:
        raise BadRequest("Malformed path.") from None
    rest = segs[i + 1:]
    if not rest or rest[0] == "":
        return "main", ""
    return rest[0], "/".join(rest[1:]).strip("/")


async def json_body(request: Request, *, anonymous: bool = False) -> dict[str, Any]:
    """The request's JSON object. The caller is authenticated first (401 before a byte of the body is read)
    unless the endpoint serves ``anonymous`` callers too."""
    if not anonymous:
        await in_session(request, lambda s, p: None, auth_required=True)
    raw = await request.body()
    if not raw.strip():
        return {}
    data = jsonlimits.loads(raw)  # BadRequest for invalid JSON, too deep, numbers out of range
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    return data


def get_str(data: dict[str, Any], key: str, *, required: bool = False, default: str | None = None) -> str | None:
    value = data.get(key, default)
    if value is None:
        if required:
            raise BadRequest(f"Missing field '{key}'.")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Field '{key}' must be a string.")
    return value


#: what an INTEGER column holds on every database (PostgreSQL's is 32-bit): a wider value is a 400, not an SQL error
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def get_int(data: dict[str, Any], key: str, low: int = INT_MIN, high: int = INT_MAX) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"Field '{key}' must be an integer.")
    if not low <= value <= high:
        raise BadRequest(f"Field '{key}' must be an integer between {low} and {high}.")
    return value


def query_int(request: Request, key: str, default: int, low: int = 0, high: int = INT_MAX) -> int:
    """An integer query parameter within ``[low, high]``; absent or empty gives ``default``; anything else a 400
    (``int()`` alone let 5,000 digits raise a ValueError and 10**30 overflow SQL's OFFSET: both were 500s)."""
    raw = request.query_params.get(key) or ""
    if not raw:
        return default
    if not re.fullmatch(r"-?\d{1,19}", raw) or not low <= int(raw) <= high:
        raise BadRequest(f"Query parameter '{key}' must be an integer between {low} and {high}.")
    return int(raw)


async def in_session(request: Request, fn, *, auth_required: bool = False):  # noqa: ANN001, ANN201
    """Run ``fn(session, principal)`` in a worker thread inside one transaction (commit on success).

    Git and the database are blocking; keeping them off the event loop is what lets log streams and git
    transfers go on while other requests write.
    """
    from starlette.concurrency import run_in_threadpool

    from spaces.hub import auth

    hub = request.app.state.hub

    def work():  # noqa: ANN202
        with hub.db.session() as s:
            p = auth.require(request, s) if auth_required else auth.principal(request, s)
            return fn(s, p)

    return await run_in_threadpool(work)


#: the API path prefix of each repository type; type-generic routes are registered once per prefix
API_PREFIX = {"space": "/api/spaces", "model": "/api/models", "dataset": "/api/datasets"}
REPO_TYPES = tuple(API_PREFIX)
_PLURAL = {"spaces": "space", "models": "model", "datasets": "dataset"}


def repo_type_of(request: Request) -> str:
    """The repository type a request's path names: ``/api/{type}s/...``, ``/spaces/...``, ``/datasets/...``, or a
    model (``/{ns}/{name}/...``). Only routes registered by :func:`typed_route` (or with those shapes) call it."""
    segs = request.url.path.split("/")
    if len(segs) > 2 and segs[1] == "api":
        return _PLURAL[segs[2]]
    return {"spaces": "space", "datasets": "dataset"}.get(segs[1] if len(segs) > 1 else "", "model")


def typed_route(router, methods: list[str], suffix: str, types: tuple[str, ...] = REPO_TYPES, **kwargs):  # noqa: ANN001, ANN201
    """Register one endpoint at ``/api/{type}s/{ns}/{name}{suffix}`` for each repository type (described once in
    the OpenAPI schema, at ``/api/spaces/...``); the endpoint reads
    its type with :func:`repo_type_of` and looks the repository up through ``hub.store(type)`` only, so a call
    for one type can never reach another type's repository of the same name."""
    def deco(fn):  # noqa: ANN001, ANN202
        for t in types:
            # the OpenAPI description lists each handler once, at its first prefix (the same handler, the same
            # parameters: listing it three times only made the schema fuzzer spend three times as long on it)
            router.add_api_route(f"{API_PREFIX[t]}/{{ns}}/{{name}}{suffix}", fn, methods=methods,
                                 include_in_schema=kwargs.get("include_in_schema", True) and t == types[0],
                                 **{k: v for k, v in kwargs.items() if k != "include_in_schema"})
        return fn
    return deco

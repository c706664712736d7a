"""The Xet CAS service the default huggingface_hub client (hf_xet) talks to, and the hub's token endpoints.

``/api/{type}s/{id}/xet-{read,write}-token/{rev}`` checks the caller's access to the repository like any other
call and hands out a short-lived token signed with the hub's key (``casUrl`` points at ``/xet`` on this hub). The
CAS routes accept only those tokens; writes need a write token. Download URLs in reconstructions are signed per
xorb and expire: the client fetches them without credentials, like the Hub's CDN URLs.
"""

from __future__ import annotations

import os
import re
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.concurrency import run_in_threadpool

from spaces.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    RangeNotSatisfiable,
    Unauthorized,
)
from spaces.hub.api import discussions
from spaces.hub.api.common import in_session, raw_segments, repo_type_of, typed_route
from spaces.metrics import XET_RECEIVED_BYTES
from spaces.storage.objects import RepoObjects
from spaces.xet import hashing, service
from spaces.xet.store import XetStore, write_blocks

router = APIRouter()

TOKEN_TTL_S = 3600
FETCH_TTL_S = 3600
#: an upload's blocks go to its spool file this many bytes at a time (one thread hop each): few enough hops, and
#: small enough that the kernel copies them into the page cache while they are still in the CPU's cache
SPOOL_BATCH = 1 << 20
#: a download URL's bytes go out in blocks this large (one thread hop each)
FETCH_BLOCK = 4 << 20
_RANGE = re.compile(r"bytes=(\d{1,15})-(\d{0,15})")


def xet_store(request: Request) -> XetStore:
    return request.app.state.hub.xet


def _signer(request: Request, salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(request.app.state.hub.settings.signing_key, salt=salt)


@typed_route(router, ["GET"], "/xet-read-token/{rev:path}")
@typed_route(router, ["GET"], "/xet-write-token/{rev:path}")
async def xet_token(ns: str, name: str, rev: str, request: Request) -> JSONResponse:
    hub = request.app.state.hub
    kind = repo_type_of(request)
    write = "/xet-write-token/" in request.url.path
    repo_id = f"{ns}/{name}"
    create_pr = request.query_params.get("create_pr") in ("1", "true")

    def work(s, p):  # noqa: ANN001, ANN202
        if write:
            if p is None:
                raise Unauthorized("A Xet write token needs an access token with write access to the repository.")
            # "None": huggingface_hub does not know a pull request's ref before it exists
            target = "main" if rev in ("", "None") else rev
            discussions.writable_for(hub, s, p, repo_id, target, create_pr or rev == "None", kind)
        else:
            hub.store(kind).get(s, repo_id, p)
    await in_session(request, work)
    exp = int(time.time()) + TOKEN_TTL_S
    token = _signer(request, "xet-token").dumps({"repo": f"{kind}/{repo_id}", "w": write, "exp": exp})
    cas = hub.url("/xet")
    headers = {"X-Xet-Cas-Url": cas, "X-Xet-Access-Token": token, "X-Xet-Token-Expiration": str(exp)}
    return JSONResponse({"casUrl": cas, "accessToken": token, "exp": exp}, headers=headers)


def _require(request: Request, write: bool) -> dict:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("The Xet CAS needs a Xet token: get one from /api/{type}s/{id}/xet-read-token/{rev}.")
    try:
        claims = _signer(request, "xet-token").loads(token.strip())
    except BadSignature:
        raise Unauthorized("Invalid Xet token.") from None
    if not isinstance(claims, dict) or claims.get("exp", 0) < time.time():
        raise Unauthorized("The Xet token has expired: ask the hub for a new one.")
    if write and not claims.get("w"):
        raise Forbidden("This needs a Xet write token.")
    return claims


def _hash_at(request: Request, index: int) -> bytes:
    segs = raw_segments(request)
    return hashing.from_hex(segs[index] if len(segs) > index else "")


@router.post("/xet/v1/xorbs/{prefix}/{h}", include_in_schema=False)
async def upload_xorb(prefix: str, h: str, request: Request) -> dict:
    _require(request, write=True)
    if prefix != "default":
        raise BadRequest("The xorb prefix is 'default'.")
    expected = hashing.from_hex(h)
    store = xet_store(request)
    spool = store.spool()
    size, pending, batch = 0, [], 0
    try:
        async for block in request.stream():
            size += len(block)
            batch += len(block)
            XET_RECEIVED_BYTES.labels("xorb").inc(len(block))
            pending.append(block)
            if batch >= SPOOL_BATCH:  # one thread hop per few MiB, not per 64 KiB socket read
                await run_in_threadpool(write_blocks, spool.fileno(), pending)
                pending, batch = [], 0
        await run_in_threadpool(write_blocks, spool.fileno(), pending)
        spool.close()
    except BaseException:
        spool.close()
        os.unlink(spool.name)
        raise
    inserted = await run_in_threadpool(service.upload_xorb, store, expected, spool.name, size)
    return {"was_inserted": inserted}


@router.head("/xet/v1/xorbs/{prefix}/{h}", include_in_schema=False)
async def head_xorb(prefix: str, h: str, request: Request) -> Response:
    _require(request, write=False)
    store = xet_store(request)
    xh = hashing.from_hex(h)
    if not store.has_xorb(xh):
        raise NotFound("No such xorb.")
    return Response(headers={"Content-Length": str(store.xorb_path(xh).stat().st_size)})


@router.post("/xet/v1/shards", include_in_schema=False)
async def upload_shard(request: Request) -> dict:
    claims = _require(request, write=True)
    body = await request.body()
    XET_RECEIVED_BYTES.labels("shard").inc(len(body))
    hub = request.app.state.hub
    done = await run_in_threadpool(service.register_shard, xet_store(request), body,
                                   lambda files: _to_lfs(hub, claims["repo"], files))
    return {"result": 1 if done.new else 0}


def _to_lfs(hub, repo: str, files: list) -> None:  # noqa: ANN001
    """Make each file also an LFS object of the repository the token was issued for: the commit that follows
    names it by sha256 (``lfsFile``), and git-lfs and plain ``resolve`` read it through the object store, which
    rebuilds it from the xorbs (``spaces.services.objects``): the bytes are stored once. They must hash to the sha256
    the client declared (read back and hashed here, unless this very file was checked before); only then is the
    ``sha256 -> file`` link written that makes the object exist."""
    links = _links(hub, repo)
    for rec in files:
        if rec.sha256 is None:
            continue  # no sha256 metadata: a file for a bucket, not a git repository
        oid = rec.sha256
        if hub.xet.xet_hash_of(oid) != rec.hash:  # the file hash fixes the bytes: once checked, always true
            service.verify_sha256(hub.xet, rec)
            hub.xet.link_sha256(oid, rec.hash)
        links.link(oid)


@router.post("/xet/v2/shards", include_in_schema=False)
async def upload_shard_v2(request: Request) -> Response:
    # Not served: clients fall back to /v1/shards on a 404 (the spec says so; xet-core does).
    raise NotFound("Use /v1/shards.")


@router.get("/xet/v1/chunks/{prefix}/{h}", include_in_schema=False)
async def dedupe(prefix: str, h: str, request: Request) -> Response:
    _require(request, write=False)
    if prefix not in ("default-merkledb", "default"):  # the spec says the first, hf_xet 1.8 sends the second
        raise BadRequest("The dedupe prefix is 'default-merkledb'.")
    body = await run_in_threadpool(service.dedupe_shard, xet_store(request), hashing.from_hex(h))
    return Response(body, media_type="application/octet-stream")


@router.head("/xet/v1/files/{h}", include_in_schema=False)
async def head_file(h: str, request: Request) -> Response:
    claims = _require(request, write=False)
    rec = await run_in_threadpool(_readable_file, request.app.state.hub, claims["repo"], hashing.from_hex(h))
    return Response(headers={"Content-Length": str(rec.size)})


def _readable_file(hub, repo: str, file_id: bytes):  # noqa: ANN001, ANN202
    """The file, if the repository the token was issued for holds it (its sha256 is one of the repository's
    LFS objects): a token for one repository (any public one gives a read token) reads no other's files."""
    rec = hub.xet.get_file(file_id)
    if rec is None or rec.sha256 is None or not _links(hub, repo).linked(rec.sha256):
        raise NotFound("No such Xet file in this repository.")
    return rec


def _links(hub, repo: str) -> RepoObjects:  # noqa: ANN001
    kind, _, repo_id = repo.partition("/")
    store = hub.store(kind)
    with hub.db.session() as s:
        row = store.find(s, repo_id)
        if row is None:
            raise NotFound(f"The repository {repo_id} this Xet token was issued for no longer exists.")
        return RepoObjects(store.repo(row).path)


def _parse_range(header: str | None) -> tuple[int | None, int | None]:
    if not header:
        return None, None
    m = _RANGE.fullmatch(header.strip())
    if not m:
        raise BadRequest("Range must be 'bytes=START-END'.")
    return int(m[1]), int(m[2]) if m[2] else None


@router.get("/xet/{version}/reconstructions/{h}", include_in_schema=False)
async def reconstruction(version: str, h: str, request: Request) -> dict:
    claims = _require(request, write=False)
    if version not in ("v1", "v2"):
        raise NotFound("No such API version.")
    first, last = _parse_range(request.headers.get("range"))
    file_id = hashing.from_hex(h)
    await run_in_threadpool(_readable_file, request.app.state.hub, claims["repo"], file_id)
    rec = await run_in_threadpool(service.reconstruct, xet_store(request), file_id, first, last)
    signer = _signer(request, "xet-fetch")
    exp = int(time.time()) + FETCH_TTL_S
    hub = request.app.state.hub
    terms, fetch = [], {}
    for p in rec.pieces:
        terms.append({"hash": hashing.to_hex(p.xorb), "unpacked_length": p.unpacked,
                      "range": {"start": p.start, "end": p.end}})
    for xorb_hash, ranges in rec.fetch.items():
        xh = hashing.to_hex(xorb_hash)
        url = hub.url(f"/xet/fetch/{xh}?sig={signer.dumps([xh, exp])}")
        if version == "v1":
            fetch[xh] = [{"range": {"start": p.start, "end": p.end}, "url": url,
                          "url_range": {"start": p.bytes_first, "end": p.bytes_last}} for p in ranges]
        else:
            fetch[xh] = [{"url": url, "ranges": [{"chunks": {"start": p.start, "end": p.end},
                                                  "bytes": {"start": p.bytes_first, "end": p.bytes_last}}
                                                 for p in ranges]}]
    key = "fetch_info" if version == "v1" else "xorbs"
    return {"offset_into_first_range": rec.offset_into_first_range, "terms": terms, key: fetch}


@router.get("/xet/fetch/{h}", include_in_schema=False)
async def fetch_xorb(h: str, request: Request) -> Response:
    """Byte ranges of a stored xorb, for a signed URL from a reconstruction (no other credential)."""
    try:
        xh, exp = _signer(request, "xet-fetch").loads(request.query_params.get("sig", ""))
    except (BadSignature, ValueError, TypeError):
        raise Forbidden("Invalid or missing signature.") from None
    if xh != h or exp < time.time():
        raise Forbidden("This download URL has expired or names another xorb.")
    path = xet_store(request).xorb_path(hashing.from_hex(h))
    size = path.stat().st_size
    first, last = _parse_range(request.headers.get("range"))
    first = first or 0
    last = size - 1 if last is None else min(last, size - 1)
    if first > last:
        raise RangeNotSatisfiable(f"The xorb has {size} bytes.")

    def blocks():  # noqa: ANN202
        with open(path, "rb") as f:
            f.seek(first)
            left = last - first + 1
            while left > 0:
                data = f.read(min(left, FETCH_BLOCK))
                if not data:
                    return
                left -= len(data)
                yield data
    headers = {"Content-Range": f"bytes {first}-{last}/{size}", "Content-Length": str(last - first + 1),
               "Accept-Ranges": "bytes"}
    return StreamingResponse(blocks(), status_code=206, headers=headers, media_type="application/octet-stream")


def resolve_headers(hub, repo_type: str, repo_id: str, rev: str, oid: str) -> dict[str, str]:  # noqa: ANN001
    """What ``/resolve`` adds for an LFS file that came through Xet: huggingface_hub then downloads it through
    Xet (``X-Xet-Hash``, and where to get a read token) instead of as one HTTP stream."""
    h = hub.xet.xet_hash_of(oid)
    if h is None:
        return {}
    file_id = hashing.to_hex(h)
    refresh = hub.url(f"/api/{repo_type}s/{repo_id}/xet-read-token/{rev}")
    recon = hub.url(f"/xet/v1/reconstructions/{file_id}")
    return {"X-Xet-Hash": file_id, "X-Xet-Refresh-Route": refresh,
            "Link": f'<{refresh}>; rel="xet-auth", <{recon}>; rel="xet-reconstruction-info"'}


def with_xet_hash(hub, item: dict) -> dict:  # noqa: ANN001
    """A tree or paths-info item with ``xetHash`` when its LFS object came through Xet (as the Hub lists it)."""
    lfs = item.get("lfs")
    if lfs and (h := hub.xet.xet_hash_of(lfs["oid"])) is not None:
        item["xetHash"] = hashing.to_hex(h)
    return item

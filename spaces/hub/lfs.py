"""The Git LFS API (batch API with the ``basic`` transfer) at ``{repo}.git/info/lfs``, for every repository type:
``/spaces/{ns}/{name}.git``, ``/datasets/{ns}/{name}.git`` and ``/{ns}/{name}.git`` (models).

git-lfs POSTs ``objects/batch`` and gets, per object, the actions to take: ``upload`` (a PUT of the bytes to
``objects/{oid}``) and ``verify``, or ``download`` (a GET of the same URL, with ``Range``). Auth is git's: HTTP
Basic (or Bearer) with an access token; reading needs read access to the repository, uploading needs write
access. The upload and download links are signed (``?sig=``: operation, repository id, object, size; valid
``EXPIRES_S``), the way the Hub hands out presigned storage URLs: huggingface_hub PUTs to them without any
header, so the signature is the authorization, and no credential travels in an answer. The same URLs without a
signature take an access token as usual.

Objects are stored once for the whole hub (``hub.objects``); a repository reads only the objects linked to it
(``RepoObjects``). An upload of an object the store already has is still asked for and its bytes hashed (then
dropped): answering "already there" would let anyone who knows a sha256 link, and so read, another repository's
private file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter, Request, Response
from itsdangerous import BadSignature, TimestampSigner
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from spaces.domain.lfs import OID, check_oid, check_size
from spaces.errors import BadRequest, LfsObjectMissing, RepoNotFound, SpacesError
from spaces.hub import auth, jsonlimits
from spaces.hub.api.common import repo_type_of
from spaces.services import accounts
from spaces.storage.objects import ObjectStore, RepoObjects

log = logging.getLogger("spaces.lfs")
router = APIRouter()
MEDIA = "application/vnd.git-lfs+json"
EXPIRES_S = 3600
SALT = "spaces.lfs-link"
PREFIXES = ("/{ns}/{name}", "/datasets/{ns}/{name}", "/spaces/{ns}/{name}")


def _route(method: str, suffix: str):  # noqa: ANN202
    def deco(fn):  # noqa: ANN001, ANN202
        for prefix in PREFIXES:
            router.add_api_route(prefix + "/info/lfs" + suffix, fn, methods=[method],
                                 include_in_schema=prefix.startswith("/spaces"))
        return fn
    return deco


def _lfs_error(status: int, message: str) -> JSONResponse:
    headers = {}
    if status == 401:
        headers = {"LFS-Authenticate": 'Basic realm="spaces"', "WWW-Authenticate": 'Basic realm="spaces"'}
    return JSONResponse({"message": message, "error": message}, status_code=status, media_type=MEDIA,
                        headers=headers)


def _authorize(request: Request, ns: str, name: str, write: bool, signed: str | None = None) -> tuple[str, Path]:
    """The repository's id and path if the caller may read it (``write``: write to it); raises a SpacesError.
    ``signed``: the repository id a valid signature in the URL was made for, standing for the caller's token."""
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)
    repo_id = f"{ns}/{name.removesuffix('.git')}"
    with hub.db.session() as s:
        row = store.find(s, repo_id)
        if signed is not None:
            if row is None or row.id != signed:
                raise RepoNotFound(repo_id, kind)
            return row.id, store.repo(row).path
        principal = auth.principal(request, s)
        if principal is None and (row is None or row.private or write):
            raise SpacesError(f"Repository {repo_id} not found, or authentication required: use your access "
                              "token as the password.", code="RepoNotFound", status=401)
        if row is None:
            raise RepoNotFound(repo_id, kind)
        accounts.check_read(s, principal, row)
        if write:
            accounts.check_write(s, principal, row)
        return row.id, store.repo(row).path


async def _guarded(request: Request, ns: str, name: str, write: bool, signed: str | None = None
                   ) -> tuple[str, Path] | JSONResponse:
    try:
        return await run_in_threadpool(_authorize, request, ns, name, write, signed)
    except SpacesError as exc:
        return _lfs_error(exc.status, exc.message)


def _sign(request: Request, operation: str, repo: str, oid: str, size: int) -> str:
    key = request.app.state.hub.settings.signing_key
    return TimestampSigner(key, salt=SALT).sign(f"{operation}:{repo_type_of(request)}:{repo}:{oid}:{size}").decode()


def _signed(request: Request, operation: str, oid: str, size: int | None) -> str | None | JSONResponse:
    """The repository id a valid ``sig`` was made for (None: no signature; an answer when it is bad)."""
    sig = request.query_params.get("sig")
    if sig is None:
        return None
    key = request.app.state.hub.settings.signing_key
    try:
        payload = TimestampSigner(key, salt=SALT).unsign(sig, max_age=EXPIRES_S).decode()
    except (BadSignature, UnicodeDecodeError):
        return _lfs_error(403, "This link is invalid or expired: ask the batch API for a new one.")
    op, kind, repo, signed_oid, signed_size = payload.split(":")
    if (op, kind, signed_oid) != (operation, repo_type_of(request), oid) or (
            size is not None and str(size) != signed_size):
        return _lfs_error(403, "This link was made for another object or operation.")
    return repo


def _base(request: Request) -> str:
    path = request.url.path
    return request.app.state.hub.url(path[: path.index("/info/lfs") + len("/info/lfs")])


@_route("POST", "/objects/batch")
async def batch(ns: str, name: str, request: Request) -> Response:
    try:
        data = jsonlimits.loads(await request.body())
        if not isinstance(data, dict):
            raise BadRequest("The batch request must be a JSON object.")
        operation = data.get("operation")
        if operation not in ("upload", "download"):
            raise BadRequest("'operation' must be 'upload' or 'download'.")
        if "basic" not in (data.get("transfers") or ["basic"]):
            raise BadRequest("This server only speaks the 'basic' transfer adapter.")
        if data.get("hash_algo", "sha256") != "sha256":
            return _lfs_error(409, "Only the sha256 hash algorithm is supported.")
        objects = data.get("objects")
        if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
            raise BadRequest("'objects' must be a list of {oid, size}.")
    except BadRequest as exc:
        return _lfs_error(422, exc.message)
    found = await _guarded(request, ns, name, operation == "upload")
    if isinstance(found, Response):
        return found
    repo_id, repo = found
    hub = request.app.state.hub
    base = _base(request)
    header = {"Authorization": request.headers["authorization"]} if "authorization" in request.headers else {}

    def sign(oid: str, size: int) -> str:
        return _sign(request, operation, repo_id, oid, size)
    answer = await run_in_threadpool(_answer, hub.objects, RepoObjects(repo), operation, objects, base, header, sign)
    return JSONResponse({"transfer": "basic", "objects": answer, "hash_algo": "sha256"}, media_type=MEDIA)


def _answer(store: ObjectStore, links: RepoObjects, operation: str, objects: list[dict], base: str,
            header: dict, sign) -> list[dict]:  # noqa: ANN001
    out = []
    for obj in objects:
        oid, size = obj.get("oid"), obj.get("size")
        try:
            check_oid(oid)
            check_size(size)
        except BadRequest as exc:
            out.append({"oid": str(oid)[:80], "size": size if isinstance(size, int) else 0,
                        "error": {"code": 422, "message": exc.message}})
            continue
        item: dict = {"oid": oid, "size": size, "authenticated": True}
        have = links.linked(oid) and store.size(oid) == size
        link = {"href": f"{base}/objects/{oid}?sig={sign(oid, size)}", "expires_in": EXPIRES_S}
        if operation == "upload":
            if not have:  # verify takes the caller's token, as git-lfs and huggingface_hub both send it
                item["actions"] = {"upload": link, "verify": {"href": f"{base}/verify", "header": header,
                                                              "expires_in": EXPIRES_S}}
        elif have:
            item["actions"] = {"download": link}
        else:
            item["error"] = {"code": 404, "message": f"Object sha256:{oid} ({size} bytes) does not exist in this "
                                                     "repository."}
        out.append(item)
    return out


@_route("PUT", "/objects/{oid}")
async def upload(ns: str, name: str, oid: str, request: Request) -> Response:
    if not OID.fullmatch(oid):
        return _lfs_error(422, f"Invalid object id {oid[:80]!r}: expected a sha256 in lowercase hex.")
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return _lfs_error(411, "An object upload needs a Content-Length (its size).")
    signed = _signed(request, "upload", oid, int(declared))
    if isinstance(signed, Response):
        return signed
    found = await _guarded(request, ns, name, True, signed)
    if isinstance(found, Response):
        return found
    repo = found[1]
    hub = request.app.state.hub
    writer = await run_in_threadpool(hub.objects.writer, oid, int(declared))
    try:
        async for chunk in request.stream():
            writer.write(chunk)  # hashing and a buffered write of one received chunk: short enough for the loop
        new = await run_in_threadpool(writer.commit)
    except BadRequest as exc:
        writer.abort()
        return _lfs_error(422, exc.message)
    except BaseException:
        writer.abort()
        raise
    RepoObjects(repo).link(oid)
    log.info("LFS object %s (%s bytes) %s", oid, declared, "stored" if new else "verified, already stored")
    return Response(status_code=200)


@_route("POST", "/verify")
async def verify(ns: str, name: str, request: Request) -> Response:
    try:
        data = jsonlimits.loads(await request.body())
        oid = check_oid(data.get("oid") if isinstance(data, dict) else None)
        size = check_size(data.get("size"))
    except BadRequest as exc:
        return _lfs_error(422, exc.message)
    found = await _guarded(request, ns, name, True)
    if isinstance(found, Response):
        return found
    if not RepoObjects(found[1]).linked(oid) or request.app.state.hub.objects.size(oid) != size:
        return _lfs_error(404, f"Object sha256:{oid} ({size} bytes) was not uploaded to this repository.")
    return Response(status_code=200)


@_route("GET", "/objects/{oid}")
async def download(ns: str, name: str, oid: str, request: Request) -> Response:
    if not OID.fullmatch(oid):
        return _lfs_error(422, f"Invalid object id {oid[:80]!r}: expected a sha256 in lowercase hex.")
    signed = _signed(request, "download", oid, None)
    if isinstance(signed, Response):
        return signed
    found = await _guarded(request, ns, name, False, signed)
    if isinstance(found, Response):
        return found
    store = request.app.state.hub.objects
    size = store.size(oid)
    if size is None or not RepoObjects(found[1]).linked(oid):
        return _lfs_error(404, f"Object sha256:{oid} does not exist in this repository.")
    return object_response(store, oid, size, request.headers.get("range"), {}, media_type="application/octet-stream")


@_route("POST", "/locks/verify")
@_route("GET", "/locks")
async def locks(ns: str, name: str, request: Request) -> Response:
    """File locking is not offered: 501 is what git-lfs reads as "not supported" (it then stops asking for this
    remote, without advice printed on every push)."""
    found = await _guarded(request, ns, name, request.method == "POST")
    if isinstance(found, Response):
        return found
    return _lfs_error(501, "File locking is not offered by this server.")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """``(start, end)`` inclusive for a satisfiable single ``bytes=`` range, None for no (or an unreadable)
    range: the whole body, False when unsatisfiable (416)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    start_s, _, end_s = header[6:].strip().partition("-")
    try:
        if start_s:
            start = int(start_s)
            end = min(int(end_s), size - 1) if end_s else size - 1
        else:
            start, end = max(0, size - int(end_s)), size - 1
    except ValueError:
        return None
    if start < 0 or start >= size or start > end:
        return False
    return start, end


def object_response(store: ObjectStore, oid: str, size: int, range_header: str | None, headers: dict,
                    media_type: str = "application/octet-stream", head: bool = False) -> Response:
    """An object's bytes (all, or the asked ``Range``), streamed from the store in chunks."""
    headers = {**headers, "Accept-Ranges": "bytes"}
    rng = parse_range(range_header, size)
    if rng is False:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    status, start, end = 200, 0, size - 1
    if rng:
        status, (start, end) = 206, rng
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    if head:
        return Response(status_code=status, headers=headers, media_type=media_type)
    if size == 0:
        return Response(b"", status_code=status, headers=headers, media_type=media_type)
    chunks: Iterator[bytes] = store.open(oid, start, end)  # LfsObjectMissing here, before any byte is sent
    return StreamingResponse(iterate_in_threadpool(chunks), status_code=status, headers=headers,
                             media_type=media_type)


__all__ = ["LfsObjectMissing", "object_response", "parse_range", "router"]

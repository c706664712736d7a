"""Files and history: tree, paths-info, refs, commits, preupload, the NDJSON commit and ``/resolve`` downloads.

Revisions and paths are read from the raw URL (see ``common.raw_segments``) because clients percent-encode
``/`` inside both. Every write goes through the store's ``commit`` (``SpaceService`` or ``RepoService``): one real
git commit per call. Every route serves Spaces, models and datasets alike (``common.typed_route``): the type comes
from the path and the lookup goes through that type's store only.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from spaces.domain.gitignore import ignore_matcher
from spaces.domain.naming import validate_path_in_repo
from spaces.domain.lfs import MAX_POINTER_SIZE, Pointer, lfs_matcher, parse_pointer
from spaces.errors import BadRequest, EntryNotFound, LfsObjectMissing, RevisionNotFound
from spaces.hub import jsonlimits, ndjson
from spaces.hub.api import discussions, xet
from spaces.hub.api.common import after, in_session, json_body, query_int, repo_type_of, typed_route
from spaces.hub.serialize import commit_json, tree_item
from spaces.hub.lfs import object_response, parse_range
from spaces.storage import lfsfiles
from spaces.storage.gitrepo import GitRepo
from spaces.storage.objects import RepoObjects

router = APIRouter()


#: files larger than this (a model's weights) are streamed from git to the client, not read into memory whole
STREAM_BYTES = 8 << 20


def _resolve(repo: GitRepo, rev: str, space=None) -> str:  # noqa: ANN001
    if rev == "main" and space is not None and space.sha:
        return space.sha  # the tip of main as of the last commit or push: saves a git call per download
    sha = repo.resolve(rev)
    if sha is None:
        raise RevisionNotFound(rev)
    return sha


def _check_path(path: str) -> str:
    return validate_path_in_repo(path) if path else ""


@typed_route(router, ["GET"], "/tree/{rest:path}")
async def list_tree(ns: str, name: str, rest: str, request: Request) -> JSONResponse:
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)
    rev, path = after(request, "tree", 5)
    qp = request.query_params
    recursive = qp.get("recursive") in ("true", "1")
    expand = qp.get("expand") in ("true", "1")
    offset = query_int(request, "cursor", 0)
    page = hub.settings.limits.page_size if not expand else min(50, hub.settings.limits.page_size)

    def work(s, p):  # noqa: ANN001, ANN202
        space = store.get(s, f"{ns}/{name}", p)
        repo = store.repo(space)
        sha = _resolve(repo, rev)
        entries = repo.list_tree(sha, _check_path(path), recursive=recursive)
        chunk = entries[offset:offset + page]
        last = repo.last_commits(sha, [e.path for e in chunk]) if expand else {}
        pointers = repo.lfs_pointers(chunk)
        return ([xet.with_xet_hash(hub, tree_item(e, last.get(e.path), pointers.get(e.oid))) for e in chunk],
                len(entries) > offset + page)

    items, more = await in_session(request, work)
    headers = {}
    if more:
        params = [(k, v) for k, v in qp.multi_items() if k != "cursor"] + [("cursor", str(offset + page))]
        headers["Link"] = f"<{hub.url(request.url.path)}?{urlencode(params)}>; rel=\"next\""
    return JSONResponse(items, headers=headers)


@typed_route(router, ["POST"], "/paths-info/{rest:path}")
async def paths_info(ns: str, name: str, rest: str, request: Request) -> list[dict]:
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)
    rev, _ = after(request, "paths-info", 5)
    form = await request.form()
    paths = [str(v) for v in form.getlist("paths")]
    expand = form.get("expand") in ("true", "1", "True")

    def work(s, p):  # noqa: ANN001, ANN202
        repo = store.repo(store.get(s, f"{ns}/{name}", p))
        sha = _resolve(repo, rev)
        found = []
        for path in paths:
            try:
                found.append(repo.stat(sha, validate_path_in_repo(path)))
            except EntryNotFound:
                continue  # HF omits missing paths from the answer
        last = repo.last_commits(sha, [e.path for e in found]) if expand else {}
        pointers = repo.lfs_pointers(found)
        return [xet.with_xet_hash(hub, tree_item(e, last.get(e.path), pointers.get(e.oid))) for e in found]
    return await in_session(request, work)


@typed_route(router, ["GET"], "/refs")
async def refs(ns: str, name: str, request: Request) -> dict:
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)

    def work(s, p):  # noqa: ANN001, ANN202
        repo = store.repo(store.get(s, f"{ns}/{name}", p))
        return {"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in repo.branches().items()],
                "converts": [],
                "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": c} for t, c in repo.tags().items()],
                "pullRequests": [{"name": r, "ref": r, "targetCommit": c}
                                 for r, c in sorted(repo.pull_requests().items())]}
    return await in_session(request, work)


@typed_route(router, ["GET"], "/commits/{rest:path}")
async def commits(ns: str, name: str, rest: str, request: Request) -> JSONResponse:
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)
    rev, _ = after(request, "commits", 5)
    qp = request.query_params
    page = min(query_int(request, "limit", 50, 1, 10**9), 1000)
    skip = query_int(request, "p", 0, 0, 10**6) * page

    def work(s, p):  # noqa: ANN001, ANN202
        repo = store.repo(store.get(s, f"{ns}/{name}", p))
        sha = _resolve(repo, rev)
        items = repo.log(sha, limit=page + 1, skip=skip)
        return [commit_json(c) for c in items[:page]], len(items) > page

    items, more = await in_session(request, work)
    headers = {}
    if more:
        params = [(k, v) for k, v in qp.multi_items() if k != "p"] + [("p", str(skip // page + 1))]
        headers["Link"] = f"<{hub.url(request.url.path)}?{urlencode(params)}>; rel=\"next\""
    return JSONResponse(items, headers=headers)


@typed_route(router, ["GET"], "/auth-check")
@typed_route(router, ["GET"], "/auth-check/write")
async def auth_check(ns: str, name: str, request: Request) -> dict:
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)
    write = request.url.path.endswith("/write")

    def work(s, p):  # noqa: ANN001, ANN202
        (store.get_writable if write else store.get)(s, f"{ns}/{name}", p)
        return {}
    return await in_session(request, work)


@typed_route(router, ["POST"], "/preupload/{rest:path}")
async def preupload(ns: str, name: str, rest: str, request: Request) -> dict:
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)
    rev, _ = after(request, "preupload", 5)
    data = await json_body(request)
    files = data.get("files")
    if not isinstance(files, list):
        raise BadRequest("Field 'files' must be a list of {path, sample, size}.")
    create_pr = request.query_params.get("create_pr") in ("1", "true")
    git_ignore = data.get("gitIgnore")
    if git_ignore is not None and not isinstance(git_ignore, str):
        raise BadRequest("Field 'gitIgnore' must be the text of a .gitignore file.")

    def work(s, p):  # noqa: ANN001, ANN202
        space, _ = discussions.writable_for(hub, s, p, f"{ns}/{name}", rev, create_pr, kind)
        repo = store.repo(space)
        sha = repo.resolve(rev)
        ignored = ignore_matcher(git_ignore if git_ignore is not None else _repo_gitignore(repo, sha))
        # "regular": contents travel base64 in the commit. "lfs" sends clients with hf_xet (the default) to a Xet
        # server, which this hub is not yet, so it is answered only when the hub is told to (LargeFileSettings)
        settings = hub.settings.large_files
        large = None
        if settings.preupload_lfs:
            def large(size: object) -> bool:
                return isinstance(size, int) and size >= settings.lfs_threshold
        tracked = lfs_matcher(_repo_file(repo, sha, ".gitattributes")) if large is not None else None
        out = []
        for f in files:
            if not isinstance(f, dict) or not isinstance(f.get("path"), str):
                raise BadRequest("Each file needs a string 'path'.")
            path = validate_path_in_repo(f["path"])
            oid = None
            if sha is not None:
                try:
                    entry = repo.stat(sha, path)
                    oid = entry.oid if entry.type == "file" else None
                except EntryNotFound:
                    pass
            mode = "lfs" if large is not None and (large(f.get("size")) or tracked(path)) else "regular"
            out.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": ignored(path), "oid": oid})
        return {"files": out, "commitOid": sha}
    return await in_session(request, work, auth_required=True)


def _repo_gitignore(repo: GitRepo, sha: str | None) -> str | None:
    """The .gitignore at the revision being committed to: what applies when the client sends none."""
    return _repo_file(repo, sha, ".gitignore")


def _repo_file(repo: GitRepo, sha: str | None, path: str) -> str | None:
    if sha is None:
        return None
    try:
        return repo.read_blob(sha, path).decode("utf-8", "replace")
    except EntryNotFound:
        return None


@typed_route(router, ["POST"], "/commit/{rest:path}")
async def commit(ns: str, name: str, rest: str, request: Request) -> dict:
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)
    rev, _ = after(request, "commit", 5)
    create_pr = request.query_params.get("create_pr") in ("1", "true")
    branch = rev.removeprefix("refs/heads/")  # any existing branch; only main is built and served

    def writable(s, p) -> None:  # noqa: ANN001
        discussions.writable_for(hub, s, p, f"{ns}/{name}", rev, create_pr, kind)
    # who may write is known before a byte of the body is read: anyone else never makes the server read it
    await in_session(request, writable, auth_required=True)
    spool = Path(tempfile.mkdtemp(prefix="commit-", dir=spool_root(hub.settings.data_path)))
    parser = ndjson.CommitParser(spool)
    try:
        async for chunk in request.stream():
            parser.feed(chunk)
        parsed = parser.finish()
        header = parsed.header
        summary = header.get("summary") if isinstance(header.get("summary"), str) else ""
        if not summary.strip():
            raise BadRequest("The commit needs a non-empty summary.")
        description = header.get("description") if isinstance(header.get("description"), str) else ""
        parent = header.get("parentCommit")
        if parent is not None and not isinstance(parent, str):
            raise BadRequest("parentCommit must be a commit sha.")

        def work(s, p):  # noqa: ANN001, ANN202
            space, pr = discussions.writable_for(hub, s, p, f"{ns}/{name}", rev, create_pr, kind)
            repo = store.repo(space)
            pointers = lfsfiles.check_objects(repo, hub.objects, parsed.lfs)
            additions = lfsfiles.to_pointers(repo, hub.objects, repo.resolve(rev), parsed.additions, pointers,
                                             lfs_threshold(hub))

            def commit_on(to: str) -> str:
                return store.commit(s, p, space, additions=additions, deletions=parsed.deletions,
                                         deleted_folders=parsed.folders, message=summary, description=description,
                                         parent=parent, branch=to)
            if create_pr or pr is not None:
                return discussions.commit_to_pull_request(hub, s, p, space, pr, rev, summary, description,
                                                          commit_on, kind)
            sha = commit_files(hub, s, p, kind, space, branch=branch, additions=additions,
                               deletions=parsed.deletions, deleted_folders=parsed.folders, message=summary,
                               description=description, parent=parent)
            return {"success": True, "commitOid": sha,
                    "commitUrl": hub.repo_url(kind, space.repo_id) + f"/commit/{sha}", "commitMessage": summary,
                    "hookOutput": ""}
        return await in_session(request, work, auth_required=True)
    finally:
        parser.close()
        await run_in_threadpool(shutil.rmtree, spool, True)


def commit_files(hub, s, p, kind: str, row, *, branch: str, message: str, **ops) -> str:  # noqa: ANN001, ANN003
    """One commit on ``branch`` through the repository's store, announced to its webhooks: what the commit
    endpoint does, and the web pages' upload and edit forms with it (``ops``: the store's ``commit`` keywords)."""
    sha = hub.store(kind).commit(s, p, row, message=message, branch=branch, **ops)
    hub.announce(s, row, kind, "repo", "update", "repo.content",
                 updatedRefs=[{"ref": f"refs/heads/{branch}", "newSha": sha}])
    return sha


def lfs_threshold(hub) -> int | None:  # noqa: ANN001
    """The size from which a file committed as a regular one goes to LFS all the same (None: never for its size):
    the preupload threshold, so a client that ignored preupload's answer gets what the others get."""
    settings = hub.settings.large_files
    return settings.lfs_threshold if settings.preupload_lfs else None


def spool_root(data_path: Path) -> Path:
    """Where commit contents are spooled: the data dir's disk (``/tmp`` may be memory), the server's user only."""
    root = data_path / "tmp" / "uploads"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


# ---- downloads ------------------------------------------------------------------------------------------
@router.api_route("/{ns}/{name}/resolve/{rest:path}", methods=["GET", "HEAD"],  # a model's; registered last
                  include_in_schema=False)  # the same handler as a Space's, described there
@router.api_route("/datasets/{ns}/{name}/resolve/{rest:path}", methods=["GET", "HEAD"], include_in_schema=False)
@router.api_route("/spaces/{ns}/{name}/resolve/{rest:path}", methods=["GET", "HEAD"])
async def resolve(ns: str, name: str, rest: str, request: Request) -> Response:
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)
    rev, path = after(request, "resolve", 3 if kind == "model" else 4)
    if not path:
        raise EntryNotFound("", rev)

    def work(s, p):  # noqa: ANN001, ANN202
        space = store.get(s, f"{ns}/{name}", p)
        repo = store.repo(space)
        sha = _resolve(repo, rev, space)
        clean = validate_path_in_repo(path)
        try:
            entry = repo.stat(sha, clean)
            if entry.type != "file":
                raise EntryNotFound(clean, rev)
        except EntryNotFound as exc:
            exc.extra["commit"] = sha  # X-Repo-Commit rides on the 404 too (the client caches .no_exist)
            raise
        if entry.size <= MAX_POINTER_SIZE:  # small enough to be an LFS pointer: one read tells
            content = repo.read_blob(sha, clean)
            pointer = parse_pointer(content)
            if pointer is None:
                return sha, entry, content if request.method == "GET" else b""
            # the real bytes from the object store, never the pointer text. HEAD describes the file as git has it
            # (huggingface_hub turns any failed HEAD into "check your connection"); the GET says what is missing.
            missing = not RepoObjects(repo.path).linked(pointer.oid) or hub.objects.size(pointer.oid) != pointer.size
            if missing and request.method == "GET":
                raise LfsObjectMissing(pointer.oid, clean)
            return sha, entry, pointer
        if request.method == "GET" and entry.size > STREAM_BYTES and not request.headers.get("range"):
            return sha, entry, repo.open_blob(sha, clean)[1]  # chunks from `git cat-file`, never all in memory
        content = repo.read_blob(sha, clean) if request.method == "GET" else b""
        return sha, entry, content

    try:
        sha, entry, content = await in_session(request, work)
    except EntryNotFound as exc:
        from spaces.hub.errors import error_response

        resp = error_response(request, exc.status, exc.code, exc.message)
        if "commit" in exc.extra:
            resp.headers["X-Repo-Commit"] = exc.extra["commit"]
        return resp
    headers = {"X-Repo-Commit": sha, "ETag": f'"{entry.oid}"', "Accept-Ranges": "bytes",
               "Content-Disposition": f"inline; filename*=UTF-8''{_quote(entry.path.rsplit('/', 1)[-1])}",
               "Cache-Control": "private, max-age=0, must-revalidate"}
    ctype = "application/octet-stream"
    if isinstance(content, Pointer):
        # the Hub's headers for an LFS file: the ETag and X-Linked-ETag are the sha256 (huggingface_hub names the
        # cached blob after it), X-Linked-Size the real size
        headers.update({"ETag": f'"{content.oid}"', "X-Linked-ETag": f'"{content.oid}"',
                        "X-Linked-Size": str(content.size)})
        headers.update(xet.resolve_headers(hub, kind, f"{ns}/{name}", sha, content.oid))
        return object_response(hub.objects, content.oid, content.size, request.headers.get("range"), headers,
                               ctype, head=request.method == "HEAD")
    if request.method == "HEAD":
        headers["Content-Length"] = str(entry.size)
        return Response(status_code=200, headers=headers, media_type=ctype)
    if not isinstance(content, bytes):
        headers["Content-Length"] = str(entry.size)
        return StreamingResponse(content, headers=headers, media_type=ctype)
    rng = parse_range(request.headers.get("range"), entry.size)
    if rng is False:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{entry.size}", **headers})
    if rng:
        start, end = rng
        headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        return Response(content[start:end + 1], status_code=206, headers=headers, media_type=ctype)
    return Response(content, headers=headers, media_type=ctype)


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


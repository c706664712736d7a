"""Space endpoints: list, info, runtime and its mutators, variables, secrets, duplicate, logs.

The fixed paths (``hardware``, ``templates``, ``semantic-search``, ``zero-gpu/quota``) are registered before
``{ns}/{name}``: they have the same shape, and those names are reserved as namespaces.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from email.utils import formatdate
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import String, cast, func, or_, select

from spaces.db.models import Account, Like, Membership, Space, SpaceSecret, SpaceVariable
from spaces.domain import hardware as hw
from spaces.domain.stages import INTERMEDIATE, SpaceStage
from spaces.errors import BadRequest, NotFound, RevisionNotFound
from spaces.hub.api.common import (
    get_int,
    get_str,
    in_session,
    json_body,
    query_int,
    raw_segments,
    repo_type_of,
    typed_route,
)
from spaces.hub.api.repos import parse_kv_list, parse_visibility
from spaces.hub.serialize import iso, kv_map, runtime_json, space_json
from spaces.services import accounts
from spaces.services.builds import build_pending
from spaces.services.logs import END
from spaces.services.spaces import KeyValue
from spaces.services import templates as template_spaces
from spaces.templates_catalog import list_templates

router = APIRouter()

SORTS = {"lastModified": Space.last_modified, "createdAt": Space.created_at, "likes": Space.likes,
         "trendingScore": Space.likes, "last_modified": Space.last_modified, "created_at": Space.created_at,
         "trending_score": Space.likes, "id": Space.key}


@router.get("/api/spaces/hardware")
async def list_hardware(request: Request) -> list[dict]:
    return [hw.hardware_json(f) for f in request.app.state.hub.flavors.shapes()]


@router.get("/api/spaces/templates")
async def templates(request: Request) -> dict:
    """The starters whose Space exists on this hub (seeded at start-up: ``spaces.services.templates``)."""
    def work(s, _p):  # noqa: ANN001, ANN202
        there = template_spaces.seeded(s)
        return {"templates": [{"name": t.title, "repoId": t.repo_id, "sdk": t.sdk, "preferredPrivate": False}
                              for t in list_templates() if t.repo_id in there]}
    return await in_session(request, work)


@router.get("/api/spaces/zero-gpu/quota")
async def zero_gpu_quota() -> dict:
    return {"base": 0.0, "current": 0.0}


@router.get("/api/spaces/semantic-search")
async def semantic_search(request: Request, q: str = "") -> list[dict]:
    items, _ = await _list(request, search=q, limit=50, offset=0)
    return [{"id": i["id"], "author": i["author"], "title": (i.get("cardData") or {}).get("title"),
             "emoji": (i.get("cardData") or {}).get("emoji"), "sdk": i["sdk"], "likes": i["likes"],
             "private": i["private"], "tags": i["tags"], "runtime": i.get("runtime"),
             "semanticRelevancyScore": 1.0, "trendingScore": i["likes"]} for i in items]


def readable(q, p):  # noqa: ANN001, ANN201
    """``q`` (a select over Space) narrowed to the Spaces the principal ``p`` may read: public ones, and private
    ones of the caller or an organization of theirs (all of them for an admin). Private ones never leak."""
    if p is None:
        return q.where(Space.private.is_(False))
    if p.account.is_admin:
        return q
    orgs = select(Membership.org_id).where(Membership.user_id == p.account.id)
    return q.where(or_(Space.private.is_(False), Space.owner_id == p.account.id, Space.owner_id.in_(orgs)))


async def _list(request: Request, *, search: str | None, limit: int, offset: int, author: str | None = None,
                filters: list[str] | None = None, sort: str | None = None,
                direction: int = -1) -> tuple[list[dict], bool]:
    hub = request.app.state.hub

    def work(s, p):  # noqa: ANN001, ANN202
        q = readable(select(Space).join(Account, Space.owner_id == Account.id), p)
        if search:
            like = f"%{search.lower()}%"
            q = q.where(Space.key.like(like))
        if author:
            q = q.where(Account.key == author.lower())
        for tag in filters or []:
            q = q.where(or_(Space.sdk == tag, func.lower(cast(Space.card_data, String)).like(f'%"{tag.lower()}"%')))
        column = SORTS.get(sort or "", Space.created_at)
        q = q.order_by(column.desc() if direction < 0 else column.asc(), Space.key)
        rows = list(s.scalars(q.offset(offset).limit(limit + 1)))
        more = len(rows) > limit
        return [space_json(sp, hub.settings.app_host(sp.subdomain), siblings=None)
                for sp in rows[:limit]], more

    return await in_session(request, work)


@router.get("/api/spaces")
async def list_spaces(request: Request) -> JSONResponse:
    qp = request.query_params
    page = min(query_int(request, "limit", 10**9, 1, 10**9), request.app.state.hub.settings.limits.page_size)
    offset = query_int(request, "offset", 0)
    direction = query_int(request, "direction", -1, -1, 1)
    items, more = await _list(request, search=qp.get("search"), author=qp.get("author"),
                              filters=qp.getlist("filter"), sort=qp.get("sort"), direction=direction,
                              limit=page, offset=offset)
    headers = {}
    if more:
        params = [(k, v) for k, v in qp.multi_items() if k != "offset"] + [("offset", str(offset + page))]
        headers["Link"] = f'<{request.app.state.hub.url("/api/spaces")}?{urlencode(params)}>; rel="next"'
    return JSONResponse(items, headers=headers)


def _info(request: Request, ns: str, name: str, rev: str | None):  # noqa: ANN202
    hub = request.app.state.hub
    qp = request.query_params
    blobs = qp.get("blobs") in ("true", "1")

    def work(s, p):  # noqa: ANN001, ANN202
        space = hub.spaces.get(s, f"{ns}/{name}", p)
        repo = hub.spaces.repo(space)
        # space.sha is the tip of main, refreshed on every commit and push: no git call for the common case
        sha = space.sha if rev is None else repo.resolve(rev)
        if sha is None and rev is not None:
            raise RevisionNotFound(rev)
        siblings = repo.list_tree(sha, recursive=True) if sha else []
        pointers = repo.lfs_pointers(siblings) if blobs else None
        return space_json(space, hub.settings.app_host(space.subdomain), siblings=siblings, blobs=blobs, sha=sha,
                          pointers=pointers)

    return in_session(request, work)


@router.get("/api/spaces/{ns}/{name}")
async def space_info(ns: str, name: str, request: Request) -> dict:
    return await _info(request, ns, name, None)


@router.get("/api/spaces/{ns}/{name}/revision/{rest:path}")
async def space_info_revision(ns: str, name: str, rest: str, request: Request) -> dict:
    rev = raw_segments(request)[6] if len(raw_segments(request)) > 6 else "main"
    return await _info(request, ns, name, rev)


@router.get("/api/spaces/{ns}/{name}/host")
async def space_host(ns: str, name: str, request: Request) -> dict:
    hub = request.app.state.hub

    def work(s, p):  # noqa: ANN001, ANN202
        space = hub.spaces.get(s, f"{ns}/{name}", p)
        return {"host": hub.settings.app_host(space.subdomain), "subdomain": space.subdomain}
    return await in_session(request, work)


async def _runtime_call(request: Request, ns: str, name: str, mutate=None, *, write: bool = False):  # noqa: ANN001, ANN202
    hub = request.app.state.hub

    def work(s, p):  # noqa: ANN001, ANN202
        space = (hub.spaces.get_writable if write else hub.spaces.get)(s, f"{ns}/{name}", p)
        if mutate is not None:
            mutate(s, p, space)
        return runtime_json(space, hub.settings.app_host(space.subdomain))
    return await in_session(request, work, auth_required=write)


@router.get("/api/spaces/{ns}/{name}/runtime")
async def get_runtime(ns: str, name: str, request: Request) -> dict:
    return await _runtime_call(request, ns, name)


@router.post("/api/spaces/{ns}/{name}/hardware")
async def request_hardware(ns: str, name: str, request: Request) -> dict:
    data = await json_body(request)
    flavor = get_str(data, "flavor")
    sleep = get_int(data, "sleepTimeSeconds")

    def mutate(s, p, space):  # noqa: ANN001, ANN202
        request.app.state.hub.spaces.set_hardware(s, p, space, flavor, sleep)
    return await _runtime_call(request, ns, name, mutate, write=True)


@router.post("/api/spaces/{ns}/{name}/sleeptime")
async def set_sleeptime(ns: str, name: str, request: Request) -> dict:
    data = await json_body(request)
    seconds = get_int(data, "seconds")
    if seconds is None:
        raise BadRequest("Field 'seconds' is required: an integer, or -1 to never sleep.")

    def mutate(s, p, space):  # noqa: ANN001, ANN202
        request.app.state.hub.spaces.set_sleep_time(space, seconds)
    return await _runtime_call(request, ns, name, mutate, write=True)


@router.post("/api/spaces/{ns}/{name}/pause")
async def pause(ns: str, name: str, request: Request) -> dict:
    return await _runtime_call(request, ns, name, lambda s, p, sp: request.app.state.hub.spaces.pause(s, sp),
                               write=True)


@router.post("/api/spaces/{ns}/{name}/restart")
async def restart(ns: str, name: str, request: Request) -> dict:
    factory = request.query_params.get("factory") in ("true", "1")
    return await _runtime_call(
        request, ns, name, lambda s, p, sp: request.app.state.hub.spaces.restart(s, sp, factory=factory), write=True)


@router.post("/api/spaces/{ns}/{name}/sleep")
async def sleep_now(ns: str, name: str, request: Request) -> dict:
    """Ours (not HF's): put a running Space to sleep at once, as if its sleep time had passed."""
    def mutate(s, p, space):  # noqa: ANN001, ANN202
        request.app.state.hub.spaces.sleep(s, space)
    return await _runtime_call(request, ns, name, mutate, write=True)


# ---- variables and secrets ------------------------------------------------------------------------------
async def _kv(request: Request, ns: str, name: str, model: type, op: str) -> dict:
    hub = request.app.state.hub
    data = await json_body(request) if op != "get" else {}

    def work(s, p):  # noqa: ANN001, ANN202
        space = hub.spaces.get_writable(s, f"{ns}/{name}", p)
        if op == "add":
            key = get_str(data, "key", required=True)
            value = data.get("value", "")
            hub.spaces.upsert_kv(s, model, space, KeyValue(key, "" if value is None else str(value),
                                                           get_str(data, "description")))
        changed = op == "add"
        if op == "delete":
            changed = hub.spaces.delete_kv(s, model, space, get_str(data, "key", required=True))
        if changed:
            hub.spaces.settings_changed(s, space)
        rows = list(s.scalars(select(model).where(model.space_id == space.id).order_by(model.key)))
        return kv_map(rows, with_value=model is SpaceVariable)
    return await in_session(request, work, auth_required=True)


@router.get("/api/spaces/{ns}/{name}/variables")
async def get_variables(ns: str, name: str, request: Request) -> dict:
    return await _kv(request, ns, name, SpaceVariable, "get")


@router.post("/api/spaces/{ns}/{name}/variables")
async def add_variable(ns: str, name: str, request: Request) -> dict:
    return await _kv(request, ns, name, SpaceVariable, "add")


@router.delete("/api/spaces/{ns}/{name}/variables")
async def delete_variable(ns: str, name: str, request: Request) -> dict:
    return await _kv(request, ns, name, SpaceVariable, "delete")


@router.get("/api/spaces/{ns}/{name}/secrets")
async def get_secrets(ns: str, name: str, request: Request) -> dict:
    return await _kv(request, ns, name, SpaceSecret, "get")


@router.post("/api/spaces/{ns}/{name}/secrets")
async def add_secret(ns: str, name: str, request: Request) -> dict:
    await _kv(request, ns, name, SpaceSecret, "add")
    return {}


@router.delete("/api/spaces/{ns}/{name}/secrets")
async def delete_secret(ns: str, name: str, request: Request) -> dict:
    await _kv(request, ns, name, SpaceSecret, "delete")
    return {}


# ---- duplicate, likes -----------------------------------------------------------------------------------
@router.post("/api/spaces/{ns}/{name}/duplicate")
async def duplicate(ns: str, name: str, request: Request) -> dict:
    data = await json_body(request)
    target = get_str(data, "repository", required=True)
    hub = request.app.state.hub

    def work(s, p):  # noqa: ANN001, ANN202
        source = hub.spaces.get(s, f"{ns}/{name}", p)
        copy = hub.spaces.duplicate(
            s, p, source, target, private=parse_visibility(data), hardware=get_str(data, "hardware"),
            sleep_time=get_int(data, "sleepTimeSeconds"), secrets=parse_kv_list(data, "secrets"),
            variables=parse_kv_list(data, "variables") if data.get("variables") else None)
        if data.get("volumes") is not None:  # a duplicate mounts only what it is given, never its source's
            hub.buckets.set_volumes(s, p, copy, data["volumes"])
        return {"url": hub.space_url(copy.repo_id), "filesCopyPending": False}
    return await in_session(request, work, auth_required=True)


def _page(request: Request, items: list, more: bool, offset: int, page: int) -> JSONResponse:
    headers = {}
    if more:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"]
        params.append(("offset", str(offset + page)))
        headers["Link"] = f'<{request.app.state.hub.url(request.url.path)}?{urlencode(params)}>; rel="next"'
    return JSONResponse(items, headers=headers)


def _liked(row):  # noqa: ANN001, ANN202
    """The condition "a like of this repository": a Space's in ``space_id``, a model's or dataset's in ``repo_ref``."""
    return Like.space_id == row.id if isinstance(row, Space) else Like.repo_ref == row.id


@typed_route(router, ["GET"], "/likers")
async def likers(ns: str, name: str, request: Request) -> JSONResponse:
    """``list_repo_likers``: who liked a repository the caller may read, oldest like first."""
    hub = request.app.state.hub
    store = hub.store(repo_type_of(request))
    page = min(query_int(request, "limit", 10**9, 1, 10**9), hub.settings.limits.page_size)
    offset = query_int(request, "offset", 0)

    def work(s, p):  # noqa: ANN001, ANN202
        row = store.get(s, f"{ns}/{name}", p)
        rows = list(s.execute(select(Account, Like.created_at).join(Like, Like.user_id == Account.id)
                              .where(_liked(row)).order_by(Like.created_at, Like.id)
                              .offset(offset).limit(page + 1)))
        return [{"user": a.name, "fullname": a.fullname or a.name, "avatarUrl": "", "type": "user",
                 "likedAt": iso(at)} for a, at in rows[:page]], len(rows) > page

    items, more = await in_session(request, work)
    return _page(request, items, more, offset, page)


@router.get("/api/users/{user}/likes")
async def liked_repos(user: str, request: Request) -> JSONResponse:
    """``list_liked_repos``: the repositories ``user`` liked that the *caller* may read, newest like first."""
    from spaces.db.models import Repo
    from spaces.hub.api.other_repos import readable as readable_repos

    hub = request.app.state.hub
    page = min(query_int(request, "limit", 10**9, 1, 10**9), hub.settings.limits.page_size)
    offset = query_int(request, "offset", 0)

    def work(s, p):  # noqa: ANN001, ANN202
        account = accounts.find_account(s, user)
        if account is None or account.type != "user":
            raise NotFound(f"User '{user}' not found.", code="UserNotFound")
        q = readable(select(Space, Like.created_at, Like.id).join(Like, Like.space_id == Space.id)
                     .where(Like.user_id == account.id), p)
        found = [(at, lid, sp.repo_id, "space") for sp, at, lid in s.execute(q)]
        q = readable_repos(select(Repo, Like.created_at, Like.id).join(Like, Like.repo_ref == Repo.id)
                           .where(Like.user_id == account.id), p)
        found += [(at, lid, r.repo_id, r.repo_type) for r, at, lid in s.execute(q)]
        found.sort(key=lambda x: (x[0], x[1]), reverse=True)
        chunk = found[offset:offset + page + 1]
        return [{"createdAt": iso(at), "repo": {"name": rid, "type": kind}}
                for at, _, rid, kind in chunk[:page]], len(chunk) > page

    items, more = await in_session(request, work)
    return _page(request, items, more, offset, page)


@typed_route(router, ["POST"], "/like")
async def like(ns: str, name: str, request: Request) -> dict:
    return await _like(request, ns, name, True)


@typed_route(router, ["DELETE"], "/like")
async def unlike(ns: str, name: str, request: Request) -> dict:
    return await _like(request, ns, name, False)


async def _like(request: Request, ns: str, name: str, on: bool) -> dict:
    hub = request.app.state.hub
    store = hub.store(repo_type_of(request))

    def work(s, p):  # noqa: ANN001, ANN202
        row = store.get(s, f"{ns}/{name}", p)
        mine = s.scalar(select(Like).where(_liked(row), Like.user_id == p.account.id))
        if on and mine is None:
            s.add(Like(user_id=p.account.id, **({"space_id": row.id} if isinstance(row, Space)
                                                else {"repo_ref": row.id})))
        elif not on and mine is not None:
            s.delete(mine)
        s.flush()
        row.likes = s.scalar(select(func.count(Like.id)).where(_liked(row))) or 0
        return {"likes": row.likes, "liked": on}
    return await in_session(request, work, auth_required=True)


# ---- logs (SSE) -----------------------------------------------------------------------------------------
#: keep-alives rarer than the client's 5 s no-follow read timeout, so a no-follow read ends on its own
KEEPALIVE_SECONDS = 15.0


#: the last event of a followed log that ended on purpose: a browser's EventSource would reconnect to a stream
#: that just closes (and replay it every few seconds); the page stops on it. Clients that read only ``data:``
#: lines see an empty one, as for a keep-alive.
END_EVENT = b"event: end\ndata:\n\n"


def _sse(event) -> bytes:  # noqa: ANN001
    from spaces.hub.serialize import iso

    return f"data: {json.dumps({'data': event.data, 'timestamp': iso(event.ts)})}\n\n".encode()


@router.get("/api/spaces/{ns}/{name}/logs/{kind}")
async def logs(ns: str, name: str, kind: str, request: Request) -> StreamingResponse:
    if kind not in ("build", "run"):
        raise BadRequest("Logs are 'build' or 'run'.")
    hub = request.app.state.hub
    follow_param = request.query_params.get("follow")
    tail = request.query_params.get("tail")
    tail_n = query_int(request, "tail", 0, 0, 10**6) if tail and tail.isdigit() else None

    def work(s, p):  # noqa: ANN001, ANN202
        space = hub.spaces.get(s, f"{ns}/{name}", p)
        return space.id, space.stage

    def building() -> bool:
        with hub.db.session() as s:
            return build_pending(s, space_id)

    space_id, stage = await in_session(request, work)
    # Live lines are subscribed to before the replay is read (and before a build is looked for), so none falls
    # between the two, and a build that ends after the look sends its end to this queue.
    queue = hub.logs.subscribe(space_id, kind)
    history = await asyncio.to_thread(hub.logs.history, space_id, kind, tail_n)
    if follow_param is not None:
        follow = follow_param in ("1", "true")
    elif kind == "build":  # huggingface_hub sends no parameter: a build log grows while a build is pending (below),
        follow = True      # whatever the stage says meanwhile (the reconciler may set one during a rebuild)
    else:  # stay open while something may still be written
        follow = SpaceStage(stage) in INTERMEDIATE or stage == SpaceStage.RUNNING
    # A followed build log ends with the build (built or failed), as on the Hub: a loop over it ends by itself.
    asked_to_follow = follow
    if follow and kind == "build":
        follow = await asyncio.to_thread(building)

    async def stream():  # noqa: ANN202
        try:
            last = None
            for ev in history:
                last = ev.ts
                yield _sse(ev)
            if not follow:
                if asked_to_follow:
                    yield END_EVENT
                return
            while True:
                try:
                    ev = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b"data:\n\n"
                    continue
                if ev is END:
                    if kind == "build" and not await asyncio.to_thread(building):
                        yield END_EVENT
                        return
                    continue
                if last is not None and ev.ts <= last:
                    continue  # already replayed
                yield _sse(ev)
        finally:
            hub.logs.unsubscribe(space_id, kind, queue)

    # huggingface_hub's no-follow read stops at the first event later than Date + 1 s; Date has whole seconds,
    # so it is rounded *up*: every replayed line is then before the cut, however recent it is
    date = formatdate(math.ceil(time.time()), usegmt=True)
    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Date": date, "Cache-Control": "no-cache",
                                      "X-Accel-Buffering": "no"})

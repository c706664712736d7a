"""Branches and tags over the Hub's API: ``create_branch`` / ``delete_branch`` (``/branch/{name}``),
``create_tag`` / ``delete_tag`` (``/tag/{revision or name}``) and ``super_squash_history``
(``/super-squash/{branch}``). Names arrive percent-encoded with ``safe=""``
(``feature%2Fx``), so they are read from the raw path. The rules live in :mod:`spaces.services.refs`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from spaces.errors import BadRequest
from spaces.hub.api.common import get_str, in_session, json_body, raw_segments, repo_type_of, typed_route
from spaces.services import refs

router = APIRouter()

def _name_after(request: Request, marker: str) -> str:
    """What follows ``/api/{type}s/{ns}/{name}/{marker}/``, percent-decoded (a raw '/' is part of the name too)."""
    segs = raw_segments(request)
    if len(segs) < 7 or segs[5] != marker or not "/".join(segs[6:]):
        raise BadRequest(f"Name the {marker}: /api/spaces/{{ns}}/{{name}}/{marker}/{{{marker}}}.")
    return "/".join(segs[6:])


async def _write(request: Request, ns: str, name: str, fn) -> dict:  # noqa: ANN001
    hub = request.app.state.hub
    store = hub.store(repo_type_of(request))

    def work(s, p):  # noqa: ANN001, ANN202
        space = store.get_writable(s, f"{ns}/{name}", p)
        fn(store.repo(space), p)
        return {}
    return await in_session(request, work, auth_required=True)


@typed_route(router, ["POST"], "/branch/{rest:path}")
async def create_branch(ns: str, name: str, rest: str, request: Request) -> dict:
    branch = _name_after(request, "branch")
    start = get_str(await json_body(request), "startingPoint")
    return await _write(request, ns, name, lambda repo, p: refs.create_branch(repo, branch, start))


@typed_route(router, ["DELETE"], "/branch/{rest:path}")
async def delete_branch(ns: str, name: str, rest: str, request: Request) -> dict:
    branch = _name_after(request, "branch")
    return await _write(request, ns, name, lambda repo, p: refs.delete_branch(repo, branch))


@typed_route(router, ["POST"], "/tag/{rest:path}")
async def create_tag(ns: str, name: str, rest: str, request: Request) -> dict:
    revision = _name_after(request, "tag")
    data = await json_body(request)
    tag = get_str(data, "tag", required=True)
    message = get_str(data, "message")
    return await _write(request, ns, name, lambda repo, p: refs.create_tag(repo, p, tag, revision, message))


@typed_route(router, ["DELETE"], "/tag/{rest:path}")
async def delete_tag(ns: str, name: str, rest: str, request: Request) -> dict:
    tag = _name_after(request, "tag")
    return await _write(request, ns, name, lambda repo, p: refs.delete_tag(repo, tag))


@typed_route(router, ["POST"], "/super-squash/{rest:path}")
async def super_squash(ns: str, name: str, rest: str, request: Request) -> dict:
    branch = _name_after(request, "super-squash")
    data = await json_body(request)
    message = get_str(data, "message") or f"Super-squash branch '{branch}'"
    hub = request.app.state.hub
    store = hub.store(repo_type_of(request))

    def work(s, p):  # noqa: ANN001, ANN202
        space = store.get_writable(s, f"{ns}/{name}", p)
        short = refs.squashable_branch(store.repo(space), branch)
        return {"commitOid": store.super_squash(s, p, space, short, message)}
    return await in_session(request, work, auth_required=True)

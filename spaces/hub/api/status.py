"""``GET /api/spaces/{o}/{n}/status``: the status every page shows (spaces.domain.status), as server-sent events
(``event: status``, its JSON; ``event: gone`` when the Space can no longer be seen). Read like the runtime: whoever
may see the Space, with a token or the web session's cookie. ``GET /api/status/spaces?ids=...``: the same for the
cards of a list page, one stream per MANY_MAX cards. Ours, not the Hub's (the pages' script is their one reader).
A request that does not accept ``text/event-stream`` (curl, a script, a fuzzer) gets the status now as JSON instead
of a stream that never ends."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import select

from spaces.db.models import Space
from spaces.errors import BadRequest, SpacesError
from spaces.hub import status
from spaces.hub.api.common import in_session
from spaces.services import accounts

router = APIRouter()


@router.get("/api/spaces/{ns}/{name}/status")
async def status_stream(ns: str, name: str, request: Request) -> Response:
    hub = request.app.state.hub
    repo_id = f"{ns}/{name}"
    space_id = await in_session(request, lambda s, p: hub.spaces.get(s, repo_id, p).id)  # a 404 before streaming

    async def read():  # noqa: ANN202 - the request's own rights, each time: a Space made private stops here
        try:
            return await in_session(request, lambda s, p: status.status_of(hub, s, hub.spaces.get(s, repo_id, p)))
        except SpacesError:
            return None

    if not _wants_stream(request):
        now = await read()
        return JSONResponse(now.to_json() if now is not None else None)
    return StreamingResponse(status.stream(hub, space_id, read, request.is_disconnected),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


#: the most Spaces one list stream watches (a page of cards)
MANY_MAX = 100


@router.get("/api/status/spaces")
async def statuses_stream(request: Request) -> Response:
    """The list pages' cards: ``?ids=owner/name,owner/name`` (at most MANY_MAX); events ``{"id": repo_id, ...}``
    for the Spaces the caller may see. Only what a card shows is read: one query per read for all of them."""
    hub = request.app.state.hub
    asked = [i for i in (request.query_params.get("ids") or "").split(",") if i.strip()]
    if len(asked) > MANY_MAX:
        raise BadRequest(f"At most {MANY_MAX} Spaces per status stream.")

    def visible(s, p) -> dict[str, str]:  # noqa: ANN001
        ids = {}
        for repo_id in asked:
            space = hub.spaces.find(s, repo_id.strip())
            if space is not None and _may_read(s, p, space):
                ids[space.id] = space.repo_id
        return ids

    ids = await in_session(request, visible)

    def read_all(s, p) -> dict[str, status.Status]:  # noqa: ANN001
        out = {}
        for space in s.scalars(select(Space).where(Space.id.in_(list(ids)))):
            if _may_read(s, p, space):  # one made private since: no more news of it
                out[space.id] = status.card_status(space)
        return out

    async def read():  # noqa: ANN202
        return await in_session(request, read_all)

    if not _wants_stream(request):
        return JSONResponse([{"id": ids[sid], **st.to_json()} for sid, st in (await read()).items()])
    return StreamingResponse(status.stream_many(hub, ids, read, request.is_disconnected),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _may_read(s, principal, space: Space) -> bool:  # noqa: ANN001
    return not space.private or accounts.may_read_namespace(s, principal, space.owner)


def _wants_stream(request: Request) -> bool:
    """EventSource always sends ``Accept: text/event-stream``."""
    return "text/event-stream" in request.headers.get("accept", "")

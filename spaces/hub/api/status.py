"""``GET /api/spaces/{o}/{n}/status``: the status every page shows (spaces.domain.status), as server-sent events
(``event: status``, its JSON; ``event: gone`` when the Space can no longer be seen). Read like the runtime: whoever
may see the Space, with a token or the web session's cookie."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from spaces.errors import SpacesError
from spaces.hub import status
from spaces.hub.api.common import in_session

router = APIRouter()


@router.get("/api/spaces/{ns}/{name}/status")
async def status_stream(ns: str, name: str, request: Request) -> StreamingResponse:
    hub = request.app.state.hub
    repo_id = f"{ns}/{name}"
    space_id = await in_session(request, lambda s, p: hub.spaces.get(s, repo_id, p).id)  # a 404 before streaming

    async def read():  # noqa: ANN202 - the request's own rights, each time: a Space made private stops here
        try:
            return await in_session(request, lambda s, p: status.status_of(hub, s, hub.spaces.get(s, repo_id, p)))
        except SpacesError:
            return None

    return StreamingResponse(status.stream(hub, space_id, read, request.is_disconnected),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

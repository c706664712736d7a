"""The administrator's page: counts from the database, and nodes, queue and running Spaces from the hooks
(:mod:`spaces.hub.pages.hooks`; empty until the scheduler and runtime provide them)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from spaces.db.models import Account, Space
from spaces.errors import NotFound
from spaces.hub.pages.web import db, hub_of, render, require_user

router = APIRouter()


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> HTMLResponse:
    hub = hub_of(request)
    hooks = request.app.state.page_hooks

    def work(s, viewer):  # noqa: ANN001, ANN202
        require_user(viewer)
        if not viewer.is_admin:
            raise NotFound("There is no such page.")  # the admin page's existence is nobody else's business
        counts = dict(s.execute(select(Account.type, func.count(Account.id)).group_by(Account.type)).all())
        stages = sorted(s.execute(select(Space.stage, func.count(Space.id)).group_by(Space.stage)).all())
        return {"users": counts.get("user", 0), "orgs": counts.get("org", 0), "stages": stages,
                "spaces": sum(n for _, n in stages), "nodes": hooks.nodes(hub, s), "queue": hooks.queue(hub, s),
                "running": hooks.running(hub, s)}

    data = await db(request, work)
    return await render(request, "admin.html", **data)

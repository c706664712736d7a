"""Explore (home) and profile pages."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select

from spaces.db.models import Account, Membership, Space
from spaces.errors import NotFound
from spaces.hub.pages import listing
from spaces.hub.pages.config import pages_settings
from spaces.hub.pages.web import db, hub_of, render
from spaces.services import accounts
from spaces.services.spaces import SDKS

router = APIRouter()
#: the catch-all ``/{name}`` profile route: included last so it never shadows a fixed path
profile_router = APIRouter()


@router.get("/", response_class=HTMLResponse)
@router.get("/spaces", response_class=HTMLResponse)
async def explore(request: Request) -> HTMLResponse:
    query = listing.Query.from_params(request.query_params)
    size = pages_settings(hub_of(request).settings).explore_page_size

    def work(s, viewer):  # noqa: ANN001, ANN202
        return listing.search(s, viewer, query, size)

    cards, total = await db(request, work)
    pages = max(1, -(-total // size))
    return await render(request, "explore.html", cards=cards, total=total, query=query, pages=pages,
                        sorts=listing.SORT_LABELS, sdks=SDKS, flavors=hub_of(request).flavors.shapes())


@router.get("/spaces/{name}", response_class=HTMLResponse)
async def namespace(name: str) -> RedirectResponse:
    """``/spaces/alice`` (a Space URL cut short) shows alice's profile."""
    return RedirectResponse(f"/{quote(name)}", status_code=302)


@profile_router.get("/{name}", response_class=HTMLResponse)
async def profile(name: str, request: Request) -> HTMLResponse:
    size = pages_settings(hub_of(request).settings).explore_page_size
    query = listing.Query.from_params(request.query_params)
    query.sort = request.query_params.get("sort") or "updated"
    if query.sort not in listing.SORT_LABELS:
        query.sort = "updated"

    def work(s, viewer):  # noqa: ANN001, ANN202
        account = accounts.find_account(s, name)
        if account is None:
            raise NotFound(f"There is no user or organization called '{name}'.")
        cards, total = listing.search(s, viewer, query, size, author=account)
        if account.type == "org":
            rows = s.execute(select(Account, Membership.role).join(Membership, Membership.user_id == Account.id)
                             .where(Membership.org_id == account.id).order_by(Account.key))
            related = [(a.name, role) for a, role in rows]
        else:
            related = [(o.name, role) for o, role in accounts.user_orgs(s, account)]
        likes = s.scalar(select(func.coalesce(func.sum(Space.likes), 0))
                         .where(Space.owner_id == account.id, Space.private.is_(False)))
        return account, cards, total, related, likes

    account, cards, total, related, likes = await db(request, work)
    return await render(request, "profile.html", account=account, cards=cards, total=total, related=related,
                        likes=likes, query=query, pages=max(1, -(-total // size)))

"""What people take a Space elsewhere with: the "Embed this Space" snippets (an iframe, Gradio's web component),
the "Use via API" snippets (gradio_client, the JavaScript client, curl) with this hub's addresses and the app's own
endpoints (spaces.hub.app_api), and a status badge for READMEs (``/spaces/{o}/{n}/badge.svg``: the stage as a small
SVG, for whoever may see the Space)."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from spaces.domain import gradio_api
from spaces.domain.status import ASLEEP
from spaces.hub.app_api import ApiView
from spaces.hub.pages import space_common
from spaces.hub.pages.render import stage_info
from spaces.hub.pages.web import db, hub_of, render

router = APIRouter()

#: badge colours per stage kind (render.STAGES' css classes)
_COLOURS = {"ok": "#16a34a", "busy": "#d97706", "error": "#dc2626", "idle": "#6b7280"}


@router.get("/spaces/{ns}/{name}/embed", response_class=HTMLResponse)
async def embed_page(ns: str, name: str, request: Request) -> HTMLResponse:
    hub = hub_of(request)

    def work(s, viewer):  # noqa: ANN001, ANN202
        return space_common.load(hub, s, viewer, ns, name)

    page = await db(request, work)
    space = page.space
    version = (space.card_data or {}).get("sdk_version") if isinstance(space.card_data, dict) else None
    view = ApiView()
    if space.sdk == "gradio":  # the app's own endpoints: kept per revision, read only from an app that runs now
        view = await hub.app_api.view(space.id, space.subdomain, space.instance_sha or space.sha,
                                      asleep=space.stage in ASLEEP)
    return await render(request, "space/embed.html", page=page, tab="app", view=view, api=gradio_api,
                        app=hub.settings.app_host(space.subdomain).rstrip("/") + "/",
                        badge=hub.url(f"{page.base}/badge.svg"), space_url=hub.url(page.base),
                        gradio_version=str(version) if version else None)


@router.get("/spaces/{ns}/{name}/badge.svg")
async def badge(ns: str, name: str, request: Request) -> Response:
    """The Space's stage as a badge; a private Space's is as missing as the Space to whoever may not see it."""
    hub = hub_of(request)
    page = await db(request, lambda s, viewer: space_common.load(hub, s, viewer, ns, name))
    info = stage_info(page.space.stage)
    return Response(badge_svg("space", info["label"].lower(), _COLOURS.get(info["css"], _COLOURS["idle"])),
                    media_type="image/svg+xml",
                    headers={"Cache-Control": "no-cache, max-age=0", "X-Content-Type-Options": "nosniff"})


def badge_svg(left: str, right: str, colour: str) -> str:
    """A flat two-part badge (the shields.io shape); widths from a 7 px per character estimate."""
    lw, rw = 10 + 7 * len(left), 10 + 7 * len(right)
    left, right = escape(left), escape(right)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{lw + rw}" height="20" role="img" '
            f'aria-label="{left}: {right}"><title>{left}: {right}</title>'
            f'<rect width="{lw}" height="20" rx="3" fill="#555"/><rect x="{lw}" width="{rw}" height="20" rx="3" '
            f'fill="{colour}"/><rect x="{lw}" width="4" height="20" fill="{colour}"/>'
            f'<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle">'
            f'<text x="{lw / 2}" y="14">{left}</text><text x="{lw + rw / 2}" y="14">{right}</text></g></svg>')

"""The New Space form: owner, name, SDK, starter template, hardware, visibility.

Creating goes through ``SpaceService.create`` (README seeded for the SDK); a chosen template's files are then
committed on top with ``SpaceService.commit``, its README's ``title:`` set to the new name. The browser lands on
the new Space with the git and huggingface_hub instructions open.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from spaces.domain import hardware as hw
from spaces.errors import BadRequest, SpacesError
from spaces.hub import session as sess
from spaces.hub.pages import capacity_view
from spaces.hub.pages.web import db, form, redirect, render, require_user, hub_of
from spaces.services import templates as template_spaces
from spaces.services.spaces import SDKS, CreateRequest, front_matter_with
from spaces.storage.gitrepo import Addition

router = APIRouter()


class _Invalid(Exception):
    def __init__(self, error: SpacesError) -> None:
        super().__init__(error.message)
        self.error = error


#: the licenses the form offers (the Hub's identifiers; a README may name any other)
LICENSES = ["apache-2.0", "mit", "bsd-3-clause", "gpl-3.0", "agpl-3.0", "lgpl-3.0", "mpl-2.0", "cc-by-4.0",
            "cc-by-sa-4.0", "cc-by-nc-4.0", "cc0-1.0", "openrail", "llama3.1", "other"]
DESCRIPTION_MAX = 60  # the Hub's limit for short_description


def card_fields(license_id: str, description: str) -> dict[str, str]:
    """The README front matter the form adds; BadRequest for a license it does not offer or a long description."""
    card = {}
    if license_id:
        if license_id not in LICENSES:
            raise BadRequest(f"Choose a license from the list ({', '.join(LICENSES)}) or none.")
        card["license"] = license_id
    description = " ".join(description.split())  # one line: no newlines or tabs in the front matter
    if description:
        if len(description) > DESCRIPTION_MAX or not description.isprintable():
            raise BadRequest(f"The short description must be at most {DESCRIPTION_MAX} printable characters.")
        card["short_description"] = description
    return card


@router.get("/new", response_class=HTMLResponse)
async def new_form(request: Request) -> HTMLResponse:
    viewer = await db(request, lambda s, v: v)
    require_user(viewer)
    values = {"owner": request.query_params.get("owner") or viewer.account.name, "sdk": "gradio",
              "template": request.query_params.get("template") or "", "hardware": hw.DEFAULT_FLAVOR,
              "visibility": "public", "name": "", "license": "", "description": ""}
    return await _form(request, values)


async def _form(request: Request, values: dict, error: str | None = None, status: int = 200) -> HTMLResponse:
    hub = hub_of(request)
    unavailable = await db(request, lambda s, viewer: capacity_view.unavailable(hub, s, viewer.account))
    # SDKs this server cannot run now (no Docker engine answers): greyed with why, before anyone picks one
    sdks_off = await asyncio.to_thread(hub.spaces.sdk_unavailable)
    return await render(request, "new_space.html", status=status, values=values, error=error, sdks=SDKS,
                        sdks_off=sdks_off,
                        templates=request.app.state.page_hooks.templates(), flavors=hub.flavors.shapes(),
                        unavailable=unavailable, licenses=LICENSES, description_max=DESCRIPTION_MAX)


@router.post("/new")
async def create(request: Request) -> Response:
    data = await form(request)
    hub = hub_of(request)
    values = {k: str(data.get(k) or "").strip() for k in ("owner", "name", "sdk", "template", "hardware", "visibility",
                                                          "license", "description")}
    templates = {t.name: t for t in request.app.state.page_hooks.templates()}

    def work(s, viewer):  # noqa: ANN001, ANN202
        principal = require_user(viewer)
        try:
            template = None
            if values["template"]:
                template = templates.get(values["template"])
                if template is None:
                    raise BadRequest(f"There is no template called '{values['template']}'.")
            sdk = template.sdk if template else values["sdk"]
            if sdk not in SDKS:
                raise BadRequest(f"Choose an SDK: {', '.join(SDKS)}.")
            if not values["name"]:
                raise BadRequest("Give your Space a name.")
            card = card_fields(values["license"], values["description"])
            space = hub.spaces.create(s, principal, CreateRequest(
                namespace=values["owner"] or principal.account.name, name=values["name"], sdk=sdk,
                private=values["visibility"] == "private", hardware=values["hardware"] or None, card=card))
            if template is not None:
                seeded = template_spaces.files_of(hub.spaces, s, template.repo_id)
                files = [Addition(f.path, front_matter_with(f.content.decode(), card).encode())
                         if f.path == "README.md" and card else f
                         for f in template.additions(values["name"], seeded)]
                try:
                    hub.spaces.commit(s, principal, space, additions=files,
                                      message=f"Start from the {template.name} template")
                except BaseException:
                    hub.spaces.repo(space).delete()  # the row rolls back; the repository must go too
                    raise
        except SpacesError as exc:
            raise _Invalid(exc) from None
        return space.repo_id

    try:
        repo_id = await db(request, work)
    except _Invalid as bad:
        return await _form(request, values, bad.error.message, status=bad.error.status if bad.error.status < 500
                           else 400)
    sess.flash(request, f"Created {repo_id}.", "success")
    return redirect(f"/spaces/{repo_id}?new=1")

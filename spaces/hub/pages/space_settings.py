"""The owner's Settings tab and the actions of every Space page: like, duplicate, and the settings forms.

Each action is a POST of a form carrying the CSRF token (:func:`web.form`), then one transaction. A refused
change (bad sleep time, reserved variable name, name taken...) rolls back, is flashed, and the browser goes back
to where it came from; not being allowed at all (private Space, not an owner) renders the error page instead.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select

from spaces.db.models import Like, SpaceSecret, SpaceVariable
from spaces.errors import BadRequest, SpacesError
from spaces.hub import session as sess
from spaces.hub.pages import capacity_view, space_common
from spaces.hub.pages.web import db, form, hub_of, json_or_redirect, redirect, render, require_user
from spaces.services.spaces import KeyValue

router = APIRouter()

SLEEP_CHOICES = [(-1, "Never"), (300, "5 minutes"), (900, "15 minutes"), (1800, "30 minutes"), (3600, "1 hour"),
                 (36000, "10 hours"), (86400, "24 hours"), (172800, "48 hours")]


class ActionFailed(Exception):
    """A user error from the change itself (not from finding the Space): flashed, not an error page."""

    def __init__(self, error: SpacesError) -> None:
        super().__init__(error.message)
        self.error = error


@router.get("/spaces/{ns}/{name}/settings", response_class=HTMLResponse)
async def settings_tab(ns: str, name: str, request: Request) -> HTMLResponse:
    hub = hub_of(request)
    hooks = request.app.state.page_hooks

    def work(s, viewer):  # noqa: ANN001, ANN202
        page = space_common.load(hub, s, viewer, ns, name, write=True)
        owner = page.space.owner
        return (page, hub.spaces.variables(s, page.space), hub.spaces.secrets(s, page.space),
                capacity_view.quota_lines(hub, hooks.quota(hub, s, owner)), capacity_view.unavailable(hub, s, owner))

    page, variables, secrets, quota, unavailable = await db(request, work)
    return await render(request, "space/settings.html", page=page, tab="settings", variables=variables,
                        secrets=secrets, quota=quota, unavailable=unavailable, sleep_choices=SLEEP_CHOICES)


def _action(s, hub, viewer, ns: str, name: str, change: Callable) -> object:  # noqa: ANN001
    page = space_common.load(hub, s, viewer, ns, name, write=True)
    try:
        return change(page.space)
    except SpacesError as exc:
        raise ActionFailed(exc) from None


async def _run(request: Request, ns: str, name: str, change: Callable, done: str, back: str | None = None
               ) -> Response:
    hub = hub_of(request)
    target = back or f"/spaces/{ns}/{name}/settings"
    try:
        await db(request, lambda s, viewer: _action(s, hub, viewer, ns, name, lambda sp: change(s, viewer, sp)))
    except ActionFailed as failed:
        sess.flash(request, failed.error.message, "error")
        return redirect(target)
    sess.flash(request, done, "success")
    return redirect(target)


def _int(value: object, what: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ActionFailed(BadRequest(f"{what} must be a whole number.")) from None


@router.post("/spaces/{ns}/{name}/settings/{action}")
async def settings_action(ns: str, name: str, action: str, request: Request) -> Response:
    data = await form(request)
    hub = hub_of(request)
    svc = hub.spaces

    def kv(model: type, delete: bool) -> Callable:
        def change(s, viewer, space):  # noqa: ANN001, ANN202
            key = str(data.get("key") or "").strip()
            if delete:
                svc.delete_kv(s, model, space, key)
            else:
                svc.upsert_kv(s, model, space, KeyValue(key, str(data.get("value") or ""),
                                                       str(data.get("description") or "") or None))
            svc.settings_changed(s, space)
        return change

    actions: dict[str, tuple[Callable, str]] = {
        "hardware": (lambda s, v, sp: svc.set_hardware(s, v.principal, sp, str(data.get("flavor") or ""), None),
                     "Hardware requested: the Space restarts on it when capacity allows."),
        "sleep": (lambda s, v, sp: svc.set_sleep_time(sp, _int(data.get("seconds"), "Sleep time")),
                  "Sleep time saved."),
        "visibility": (lambda s, v, sp: svc.set_visibility(s, sp, data.get("visibility") == "private"),
                       "Visibility saved."),
        "variable": (kv(SpaceVariable, False), "Variable saved; the Space restarts to pick it up."),
        "variable-delete": (kv(SpaceVariable, True), "Variable deleted."),
        "secret": (kv(SpaceSecret, False), "Secret saved; the Space restarts to pick it up."),
        "secret-delete": (kv(SpaceSecret, True), "Secret deleted."),
        "pause": (lambda s, v, sp: svc.pause(s, sp), "Space paused: it uses no hardware until you restart it."),
        "restart": (lambda s, v, sp: svc.restart(s, sp), "Restarting the Space."),
        "rebuild": (lambda s, v, sp: svc.restart(s, sp, factory=True), "Factory rebuild started."),
    }
    if action == "delete":
        return await _delete(request, ns, name, str(data.get("confirm") or ""))
    if action not in actions:
        return Response(status_code=404)
    change, done = actions[action]
    back = f"/spaces/{ns}/{name}" if action in ("restart", "rebuild") and data.get("back") == "app" else None
    return await _run(request, ns, name, change, done, back)


async def _delete(request: Request, ns: str, name: str, confirm: str) -> Response:
    hub = hub_of(request)

    def change(s, viewer, space):  # noqa: ANN001, ANN202
        if confirm.strip() not in (space.repo_id, space.name):
            raise BadRequest(f"Type {space.repo_id} to confirm the deletion.")
        owner = space.owner.name
        hub.spaces.delete(s, space)
        return owner

    try:
        owner = await db(request, lambda s, viewer: _action(s, hub, viewer, ns, name,
                                                            lambda sp: change(s, viewer, sp)))
    except ActionFailed as failed:
        sess.flash(request, failed.error.message, "error")
        return redirect(f"/spaces/{ns}/{name}/settings")
    sess.flash(request, f"Deleted {ns}/{name}.", "success")
    return redirect(f"/{owner}")


@router.post("/spaces/{ns}/{name}/like")
async def like(ns: str, name: str, request: Request) -> Response:
    data = await form(request)
    hub = hub_of(request)
    want = data.get("like", "1") == "1"

    def work(s, viewer):  # noqa: ANN001, ANN202
        if viewer.account is None:
            return None
        page = space_common.load(hub, s, viewer, ns, name)
        row = s.scalar(select(Like).where(Like.space_id == page.space.id, Like.user_id == viewer.account.id))
        if want and row is None:
            s.add(Like(space_id=page.space.id, user_id=viewer.account.id))
        elif not want and row is not None:
            s.delete(row)
        s.flush()
        page.space.likes = s.scalar(select(func.count(Like.id)).where(Like.space_id == page.space.id)) or 0
        return {"likes": page.space.likes, "liked": want}

    result = await db(request, work)
    if result is None:
        return redirect(f"/login?next=/spaces/{ns}/{name}")
    return json_or_redirect(request, result, f"/spaces/{ns}/{name}")


@router.get("/spaces/{ns}/{name}/duplicate", response_class=HTMLResponse)
async def duplicate_page(ns: str, name: str, request: Request) -> HTMLResponse:
    hub = hub_of(request)

    def work(s, viewer):  # noqa: ANN001, ANN202
        require_user(viewer)
        return space_common.load(hub, s, viewer, ns, name)

    page = await db(request, work)
    return await render(request, "space/duplicate.html", page=page, tab="duplicate")


@router.post("/spaces/{ns}/{name}/duplicate")
async def duplicate(ns: str, name: str, request: Request) -> Response:
    data = await form(request)
    hub = hub_of(request)

    def work(s, viewer):  # noqa: ANN001, ANN202
        principal = require_user(viewer)
        page = space_common.load(hub, s, viewer, ns, name)
        target = f"{str(data.get('owner') or '').strip()}/{str(data.get('name') or '').strip()}"
        secrets = [KeyValue(k[len("secret__"):], str(v)) for k, v in data.multi_items()
                   if k.startswith("secret__") and str(v)]
        hardware = str(data.get("hardware") or "") or None
        visibility = data.get("visibility")
        try:
            copy = hub.spaces.duplicate(s, principal, page.space, target,
                                        private=None if visibility is None else visibility != "public",
                                        hardware=hardware,
                                        sleep_time=None, secrets=secrets, variables=None)
        except SpacesError as exc:
            raise ActionFailed(exc) from None
        return copy.repo_id

    try:
        repo_id = await db(request, work)
    except ActionFailed as failed:
        sess.flash(request, f"Could not duplicate: {failed.error.message}", "error")
        return redirect(f"/spaces/{ns}/{name}/duplicate")
    sess.flash(request, f"Duplicated {ns}/{name} to {repo_id}.", "success")
    return redirect(f"/spaces/{repo_id}")

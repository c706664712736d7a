"""The administrator's page: counts, nodes, the scheduler queue, recent builds, every Space with its actions
(pause, restart, sleep now, delete) and quota grants. Nodes and the queue come from the page hooks
(:mod:`spaces.hub.pages.runtime_hooks` when a runtime is attached).

To anyone but an administrator the page and its actions do not exist (404)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select

from spaces.db.models import Account, Build, QuotaGrant, Space
from spaces.errors import BadRequest, NotFound, SpacesError
from spaces.hub import session as sess
from spaces.hub.pages.web import SignInRequired, Viewer, db, form, hub_of, redirect, render, require_user

router = APIRouter()

SPACES_SHOWN = 100
BUILDS_SHOWN = 20


def _require_admin(viewer: Viewer) -> None:
    require_user(viewer)
    if not viewer.is_admin:
        raise NotFound("There is no such page.")  # the admin page's existence is nobody else's business


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> HTMLResponse:
    hub = hub_of(request)
    hooks = request.app.state.page_hooks
    q = (request.query_params.get("q") or "").strip()[:96]

    def work(s, viewer):  # noqa: ANN001, ANN202
        _require_admin(viewer)
        counts = dict(s.execute(select(Account.type, func.count(Account.id)).group_by(Account.type)).all())
        stages = sorted(s.execute(select(Space.stage, func.count(Space.id)).group_by(Space.stage)).all())
        listed = select(Space).order_by(Space.stage_changed_at.desc()).limit(SPACES_SHOWN)
        if q:
            listed = listed.where(Space.key.contains(q.lower()))
        builds = s.execute(select(Build, Space).join(Space, Build.space_id == Space.id)
                           .order_by(Build.id.desc()).limit(BUILDS_SHOWN)).all()
        grants = s.execute(select(QuotaGrant, Account).join(Account, QuotaGrant.account_id == Account.id)
                           .order_by(Account.name, QuotaGrant.key)).all()
        return {"users": counts.get("user", 0), "orgs": counts.get("org", 0), "stages": stages,
                "spaces": sum(n for _, n in stages), "nodes": hooks.nodes(hub, s), "queue": hooks.queue(hub, s),
                "listed": list(s.scalars(listed)), "builds": builds, "grants": grants}

    data = await db(request, work)
    grant_keys = [f"running:{name}" for name in hub.flavors.names()] + ["running:*", "gpu_minutes",
                                                                         "credits_micro_usd"]
    return await render(request, "admin.html", q=q, shown=SPACES_SHOWN, grant_keys=grant_keys, **data)


ACTIONS = {
    "pause": ("paused: it uses no hardware until restarted", lambda svc, s, sp: svc.pause(s, sp)),
    "restart": ("restarting", lambda svc, s, sp: svc.restart(s, sp)),
    "sleep": ("going to sleep: the next visit wakes it", lambda svc, s, sp: svc.sleep(s, sp)),
    "delete": ("deleted", lambda svc, s, sp: svc.delete(s, sp)),
}


@router.post("/admin/spaces/{ns}/{name}/{action}")
async def space_action(ns: str, name: str, action: str, request: Request) -> Response:
    data = await form(request)
    hub = hub_of(request)
    if action not in ACTIONS:
        return Response(status_code=404)
    done, change = ACTIONS[action]
    repo_id = f"{ns}/{name}"

    def work(s, viewer):  # noqa: ANN001, ANN202
        _require_admin(viewer)
        space = hub.spaces.find(s, repo_id)
        if space is None:
            raise BadRequest(f"There is no Space {repo_id}.")
        if action == "delete" and str(data.get("confirm") or "").strip() != repo_id:
            raise BadRequest(f"Type {repo_id} to confirm the deletion.")
        change(hub.spaces, s, space)

    _, failed = await _attempt(request, work, "/admin#spaces", f"{repo_id}: ")
    if failed is not None:
        return failed
    sess.flash(request, f"{repo_id}: {done}.", "success")
    return redirect("/admin#spaces")


@router.post("/admin/grants")
async def grant(request: Request) -> Response:
    data = await form(request)
    account_name = str(data.get("account") or "").strip()
    key = str(data.get("key") or "").strip()
    hub = hub_of(request)

    def work(s, viewer):  # noqa: ANN001, ANN202
        from spaces.runtime.quotagrants import set_grant
        from spaces.services import accounts

        _require_admin(viewer)
        try:
            value = int(str(data.get("value") or ""))
        except ValueError:
            raise BadRequest("The limit must be a whole number (-1 for no limit).") from None
        flavor = key.partition(":")[2] if key.startswith("running:") else "*"
        if flavor != "*" and flavor not in hub.flavors:
            raise BadRequest(f"There is no flavor {flavor!r}; known: {', '.join(hub.flavors.names())}.")
        account = accounts.find_account(s, account_name)
        if account is None:
            raise BadRequest(f"There is no account named {account_name!r}.")
        set_grant(s, account, key, value)
        return value

    value, failed = await _attempt(request, work, "/admin#grants", "Could not grant: ")
    if failed is not None:
        return failed
    sess.flash(request, f"{account_name}: {key} = {'no limit' if value < 0 else value}.", "success")
    return redirect("/admin#grants")


async def _attempt(request: Request, work, anchor: str, failure: str) -> tuple[object, Response | None]:  # noqa: ANN001
    """Run an admin action's ``work``; a refusal (a SpacesError other than not found / not signed in, which keep
    their own pages) is flashed as ``failure`` + its message and answered with the redirect to ``anchor``."""
    try:
        return await db(request, work), None
    except (NotFound, SignInRequired):
        raise
    except SpacesError as exc:
        sess.flash(request, f"{failure}{exc.message}", "error")
        return None, redirect(anchor)

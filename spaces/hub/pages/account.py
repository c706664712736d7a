"""Sign up, sign in, sign out, access tokens and the usage page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, or_, select

from spaces.db.models import Account, Space, Token
from spaces.errors import BadRequest, Forbidden, SpacesError
from spaces.hub import session as sess
from spaces.hub.pages import capacity_view
from spaces.hub.pages.config import pages_settings
from spaces.hub.pages.passwords import hash_password, verify_password
from spaces.hub.pages.web import db, form, hub_of, redirect, render, require_user, safe_next
from spaces.services import accounts

router = APIRouter()


# ---- sign up --------------------------------------------------------------------------------------------------
@router.get("/join", response_class=HTMLResponse)
async def join_form(request: Request) -> HTMLResponse:
    enabled = hub_of(request).settings.signup_enabled
    return await render(request, "auth/join.html", status=200 if enabled else 403, enabled=enabled, values={},
                        error=None, next=safe_next(request.query_params.get("next")))


@router.post("/join")
async def join(request: Request) -> Response:
    data = await form(request)
    hub = hub_of(request)
    nxt = safe_next(str(data.get("next") or ""))
    if not hub.settings.signup_enabled:
        raise Forbidden("Sign-up is turned off on this server; ask an administrator for an account.")
    values = {"username": str(data.get("username") or "").strip(), "email": str(data.get("email") or "").strip()}
    password = str(data.get("password") or "")
    minimum = pages_settings(hub.settings).min_password_length

    def work(s, viewer):  # noqa: ANN001, ANN202
        if len(password) < minimum:
            raise BadRequest(f"Choose a password of at least {minimum} characters.")
        if values["email"] and ("@" not in values["email"] or len(values["email"]) > 320):
            raise BadRequest("That email address does not look right.")
        if values["email"] and s.scalar(select(Account.id).where(func.lower(Account.email) == values["email"].lower())):
            raise BadRequest("An account with this email address already exists; sign in instead.")
        return accounts.create_account(s, values["username"], email=values["email"] or None,
                                       password_hash=hash_password(password))

    try:
        account = await db(request, work)
    except SpacesError as exc:
        if exc.status >= 500:
            raise
        return await render(request, "auth/join.html", status=400, enabled=True, values=values, error=exc.message,
                            next=nxt)
    sess.sign_in(request, account)
    sess.flash(request, f"Welcome, {account.name}! Create your first Space.", "success")
    return redirect(nxt if nxt != "/" else "/new")


# ---- sign in / out --------------------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    return await render(request, "auth/login.html", error=None, username="",
                        next=safe_next(request.query_params.get("next")))


@router.post("/login")
async def login(request: Request) -> Response:
    data = await form(request)
    username = str(data.get("username") or "").strip()
    password = str(data.get("password") or "")
    nxt = safe_next(str(data.get("next") or ""))

    def work(s, viewer):  # noqa: ANN001, ANN202
        account = s.scalar(select(Account).where(Account.type == "user", or_(
            Account.key == username.lower(), func.lower(Account.email) == username.lower())).limit(1))
        # the same answer (and the same scrypt cost) whether the name or the password is wrong
        ok = verify_password(password, account.password_hash if account else None)
        if not account or not ok:
            if account is None:
                verify_password(password, _DUMMY_HASH)
            return None
        return account

    account = await db(request, work) if username else None
    if account is None:
        return await render(request, "auth/login.html", status=400, error="Wrong username or password.",
                            username=username, next=nxt)
    sess.sign_in(request, account)
    return redirect(nxt)


_DUMMY_HASH = hash_password("not a real password")


@router.post("/logout")
async def logout(request: Request) -> Response:
    await form(request)
    sess.sign_out(request)
    return redirect("/")


# ---- tokens ---------------------------------------------------------------------------------------------------
def _tokens(s, account: Account) -> list[Token]:  # noqa: ANN001
    return list(s.scalars(select(Token).where(Token.user_id == account.id).order_by(Token.created_at.desc())))


@router.get("/settings/tokens", response_class=HTMLResponse)
async def tokens_page(request: Request) -> HTMLResponse:
    def work(s, viewer):  # noqa: ANN001, ANN202
        return _tokens(s, require_user(viewer).account)

    tokens = await db(request, work)
    return await render(request, "tokens.html", tokens=tokens, new_token=None, error=None)


@router.post("/settings/tokens")
async def create_token(request: Request) -> Response:
    data = await form(request)
    name = str(data.get("name") or "").strip()[:100] or "token"
    role = str(data.get("role") or "read")

    def work(s, viewer):  # noqa: ANN001, ANN202
        account = require_user(viewer).account
        token = accounts.create_token(s, account, role=role, name=name)
        return token, _tokens(s, account)

    try:
        token, tokens = await db(request, work)
    except BadRequest as exc:
        sess.flash(request, exc.message, "error")
        return redirect("/settings/tokens")
    # Rendered straight from the POST, never stored: this answer is the only place the token ever appears.
    return await render(request, "tokens.html", tokens=tokens, new_token=token, new_name=name, error=None)


@router.post("/settings/tokens/{token_id}/delete")
async def revoke_token(token_id: str, request: Request) -> Response:
    await form(request)

    def work(s, viewer):  # noqa: ANN001, ANN202
        accounts.revoke_token(s, require_user(viewer).account, token_id)

    await db(request, work)
    sess.flash(request, "Token revoked: it no longer works anywhere.", "success")
    return redirect("/settings/tokens")


# ---- usage ----------------------------------------------------------------------------------------------------
@router.get("/settings/usage", response_class=HTMLResponse)
async def usage_page(request: Request) -> HTMLResponse:
    hub = hub_of(request)
    hooks = request.app.state.page_hooks

    def work(s, viewer):  # noqa: ANN001, ANN202
        require_user(viewer)
        owners = [a.id for a in viewer.namespaces]
        by_flavor = s.execute(select(Space.hardware, func.count(Space.id)).where(Space.owner_id.in_(owners))
                              .group_by(Space.hardware).order_by(func.count(Space.id).desc())).all()
        # Only what costs or holds hardware is listed one by one: a long tail of sleeping free Spaces is a count.
        spaces = list(s.scalars(select(Space).where(Space.owner_id.in_(owners), or_(
            Space.hardware != "cpu-basic", Space.stage.in_(ACTIVE_STAGES))).order_by(Space.key).limit(USAGE_LIST_MAX)))
        managed = [s.get(Account, who.id) for who in viewer.namespaces]
        views = [(a, hooks.usage(hub, s, a), capacity_view.quota_lines(hub, hooks.quota(hub, s, a)))
                 for a in managed if a is not None]
        return spaces, views, by_flavor

    spaces, views, by_flavor = await db(request, work)
    return await render(request, "usage.html", spaces=spaces, views=views, by_flavor=by_flavor,
                        list_max=USAGE_LIST_MAX)


USAGE_LIST_MAX = 100
ACTIVE_STAGES = ("RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING", "APP_STARTING", "BUILDING")

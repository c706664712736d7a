"""Request helpers shared by the page routers: who is looking, database work off the event loop, forms with
their CSRF check, rendering with the common context, redirects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from spaces.db.models import Account
from spaces.errors import SpacesError, Unauthorized
from spaces.hub import session as sess
from spaces.hub.pages.config import pages_settings
from spaces.services import accounts
from spaces.services.accounts import Principal

T = TypeVar("T")


@dataclass(frozen=True)
class Who:
    """A snapshot of an account for templates: unlike the ORM object it outlives the request's transaction
    (an error page rendered after a rollback still knows who is signed in)."""

    id: str
    name: str
    fullname: str
    type: str
    is_admin: bool

    @classmethod
    def of(cls, account: Account) -> Who:
        return cls(account.id, account.name, account.fullname or account.name, account.type, bool(account.is_admin))


@dataclass
class Viewer:
    """The person looking at a page. ``principal`` (ORM-backed) is for use inside the transaction only."""

    account: Who | None = None
    principal: Principal | None = None
    namespaces: list[Who] = field(default_factory=list)  # where they may create Spaces (self first)

    @property
    def signed_in(self) -> bool:
        return self.account is not None

    @property
    def is_admin(self) -> bool:
        return bool(self.account and self.account.is_admin)


class SignInRequired(Unauthorized):
    """A page for signed-in people only; the HTML error handler turns it into a redirect to /login."""

    code = "SignInRequired"

    def __init__(self) -> None:
        super().__init__("Sign in to see this page.")


def hub_of(request: Request) -> Any:
    return request.app.state.hub


def load_viewer(request: Request, s: Session) -> Viewer:
    uid = sess.session_user_id(request)
    if not uid:
        return Viewer()
    principal = sess.load_principal(s, uid=uid, pv=sess.session_fingerprint(request))
    if principal is None:
        sess.sign_out(request)  # the account is gone or its password changed: the cookie is cleared
        return Viewer()
    namespaces = [principal.account] + [org for org, role in accounts.user_orgs(s, principal.account)
                                        if role in ("write", "admin")]
    return Viewer(Who.of(principal.account), principal, [Who.of(a) for a in namespaces])


async def db(request: Request, fn: Callable[[Session, Viewer], T]) -> T:
    """Run ``fn(session, viewer)`` in a worker thread inside one transaction (committed on success)."""
    hub = hub_of(request)

    def work() -> T:
        with hub.db.session() as s:
            viewer = load_viewer(request, s)
            request.state.viewer = viewer
            return fn(s, viewer)

    return await run_in_threadpool(work)


def require_user(viewer: Viewer) -> Principal:
    if viewer.principal is None:
        raise SignInRequired()
    return viewer.principal


async def form(request: Request) -> FormData:
    """The submitted form, after checking its CSRF token (every page POST goes through here)."""
    data = await request.form()
    sess.check_csrf(request, data.get(sess.CSRF_FIELD) or request.headers.get(sess.CSRF_HEADER))
    return data


def security_headers(request: Request) -> dict[str, str]:
    settings = hub_of(request).settings
    apps = f"{settings.apps_scheme}://*.{settings.apps_base_domain}"
    csp = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
           f"connect-src 'self'; frame-src {apps}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


async def render(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    viewer = getattr(request.state, "viewer", None)
    if viewer is None:
        if sess.session_user_id(request):
            viewer = await db(request, lambda s, v: v)
        else:
            viewer = Viewer()
    hub = hub_of(request)
    if "page" in ctx and hasattr(ctx["page"], "space"):
        ctx.setdefault("sp", ctx["page"].space)  # the Space tabs' shorthand
    context = {
        "request": request, "viewer": viewer, "csrf_token": sess.csrf_token(request),
        "flashes": sess.pop_flashes(request), "settings": hub.settings, "pages": pages_settings(hub.settings),
        "path": request.url.path, **ctx,
    }
    html = request.app.state.page_renderer.render(template, context)
    return HTMLResponse(html, status_code=status, headers=security_headers(request))


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None, default: str = "/") -> str:
    """Only local paths: an open redirect to another site after sign-in would be a phishing aid."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return default
    return url


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='/')}"


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def flash_error(request: Request, exc: SpacesError) -> None:
    sess.flash(request, exc.message, "error")


def json_or_redirect(request: Request, data: dict, url: str) -> JSONResponse | RedirectResponse:
    return JSONResponse(data) if wants_json(request) else redirect(url)

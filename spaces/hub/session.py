"""Signed-cookie sessions for the web pages, and the CSRF token that protects every form.

Lifecycle of one request:

1. :class:`SessionMiddleware` reads the ``spaces_session`` cookie, checks its signature and age (itsdangerous,
   keyed with ``settings.signing_key``) and puts a :class:`SessionData` dict on ``request.state.session``. A
   missing, tampered or expired cookie gives an empty session (never an error).
2. When the session names a user, the middleware also sets ``request.state.session_principal``: a callable taking
   a database Session and returning the :class:`~spaces.services.accounts.Principal` (or None when the account is
   gone or its password changed since sign-in). ``spaces.hub.auth.principal`` uses it for API calls that carry no
   token, so the pages' JavaScript (SSE logs of a private Space, runtime polling) is authenticated by the cookie.
   For unsafe methods (POST, PUT, DELETE...) it is set only when the request carries the session's CSRF token in
   an ``X-CSRF-Token`` header: apps live on sibling origins (``*.localhost``) which are *same-site*, so
   SameSite=Lax alone would let a Space's JavaScript send a cookie-authenticated ``text/plain`` POST to the API.
   A custom header cannot be sent cross-origin without a CORS preflight, which the hub never grants.
3. The handler reads or changes the session (:func:`sign_in`, :func:`sign_out`, :func:`flash`,
   :func:`csrf_token`); page forms are checked with :func:`check_csrf`.
4. If the session changed, the response gets a fresh ``Set-Cookie``: ``Path=/; HttpOnly; SameSite=Lax`` and no
   ``Domain`` attribute, so the cookie stays on the hub's host and never reaches an app's subdomain (``Secure``
   is added when the hub's public URL is https).

The cookie is signed, not encrypted: it holds only an account id, a password fingerprint, the CSRF token and
one-shot flash messages, never a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from functools import partial
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session
from starlette.datastructures import MutableHeaders
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spaces.db.models import Account
from spaces.errors import Forbidden
from spaces.services.accounts import Principal

COOKIE_NAME = "spaces_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SALT = "spaces.session.v1"


class CsrfFailed(Forbidden):
    code = "CsrfFailed"

    def __init__(self) -> None:
        super().__init__("This form has expired or did not come from this site. Reload the page and try again.")


class SessionData(dict):
    """The session: a plain dict that remembers whether it was changed (only then is a cookie sent)."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        super().__init__(data or {})
        self.modified = False

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.modified = True

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.modified = True

    def pop(self, key: str, *default: Any) -> Any:  # type: ignore[override]
        if key in self:
            self.modified = True
        return super().pop(key, *default)

    def clear(self) -> None:
        if self:
            self.modified = True
        super().clear()


def password_fingerprint(account: Account) -> str:
    """A short digest of the stored password hash: changing the password ends every existing session."""
    return hashlib.sha256((account.password_hash or "").encode()).hexdigest()[:16]


def load_principal(s: Session, *, uid: str, pv: str | None) -> Principal | None:
    """The signed-in user as a write Principal, or None when the account is gone or its password changed."""
    account = s.get(Account, uid)
    if account is None or account.type != "user" or not hmac.compare_digest(password_fingerprint(account), pv or ""):
        return None
    return Principal(account=account, role="write", token=None)


class SessionMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer the SSE log streams)."""

    def __init__(self, app: ASGIApp, *, secret_key: str, max_age: int, secure: bool = False,
                 cookie_name: str = COOKIE_NAME) -> None:
        self.app = app
        self.serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
        self.max_age = max_age
        self.secure = secure
        self.cookie_name = cookie_name

    def _load(self, raw: str | None) -> tuple[SessionData, bool]:
        if not raw:
            return SessionData(), False
        try:
            data = self.serializer.loads(raw, max_age=self.max_age)
        except (BadSignature, ValueError, TypeError):
            return SessionData(), True  # tampered or expired: start over and overwrite the cookie
        return SessionData(data if isinstance(data, dict) else {}), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict((k.lower(), v) for k, v in ((k.decode("latin-1"), v.decode("latin-1"))
                                                  for k, v in scope.get("headers", [])))
        cookies = cookie_parser(headers.get("cookie", ""))
        session, stale = self._load(cookies.get(self.cookie_name))
        session.modified = stale
        state = scope.setdefault("state", {})
        state["session"] = session
        uid = session.get("uid")
        if uid:
            token = session.get("csrf") or ""
            sent = headers.get(CSRF_HEADER, "")
            if scope.get("method", "GET") in SAFE_METHODS or (token and hmac.compare_digest(sent, token)):
                state["session_principal"] = partial(load_principal, uid=uid, pv=session.get("pv"))

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and session.modified:
                MutableHeaders(scope=message).append("set-cookie", self._cookie(session))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _cookie(self, session: SessionData) -> str:
        attrs = "Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if self.secure else "")
        if not session:
            return f"{self.cookie_name}=; Max-Age=0; {attrs}"
        value = self.serializer.dumps(dict(session))
        return f"{self.cookie_name}={value}; Max-Age={self.max_age}; {attrs}"


# ---- helpers for handlers ---------------------------------------------------------------------------------------
def session_of(request: Request) -> SessionData:
    """The request's session (an empty, throw-away one when the middleware is not installed)."""
    state = request.scope.setdefault("state", {})
    session = state.get("session")
    if session is None:
        session = state["session"] = SessionData()
    return session


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use (the response then sets the cookie)."""
    session = session_of(request)
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """Raise :class:`CsrfFailed` unless ``submitted`` (the form field or header) matches the session's token."""
    expected = session_of(request).get("csrf")
    if not expected or not submitted or not hmac.compare_digest(str(submitted), expected):
        raise CsrfFailed()


def session_user_id(request: Request) -> str | None:
    return session_of(request).get("uid")


def session_fingerprint(request: Request) -> str | None:
    return session_of(request).get("pv")


def sign_in(request: Request, account: Account) -> None:
    """Start a signed-in session. The CSRF token is rotated, so a token seen before sign-in is worthless."""
    session = session_of(request)
    flashes = session.get("flash")
    session.clear()
    session["uid"] = account.id
    session["pv"] = password_fingerprint(account)
    session["csrf"] = secrets.token_urlsafe(24)
    if flashes:
        session["flash"] = flashes


def sign_out(request: Request) -> None:
    session_of(request).clear()


def flash(request: Request, message: str, level: str = "info") -> None:
    """A one-shot message shown on the next rendered page (``info``, ``success`` or ``error``)."""
    session = session_of(request)
    session["flash"] = [*session.get("flash", []), [level, message]][-5:]


def pop_flashes(request: Request) -> list[tuple[str, str]]:
    session = session_of(request)
    if "flash" not in session:
        return []
    return [(lvl, msg) for lvl, msg in session.pop("flash")]


PrincipalLoader = Callable[[Session], "Principal | None"]

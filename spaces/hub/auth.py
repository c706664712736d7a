"""Credentials on a request: ``Authorization: Bearer <token>``, HTTP Basic with the token as password (git),
or the signed session cookie of the web pages. A present but wrong credential is a 401, never "anonymous"."""

from __future__ import annotations

import base64
import binascii

from fastapi import Request
from sqlalchemy.orm import Session

from spaces.errors import InvalidToken, Unauthorized
from spaces.services import accounts
from spaces.services.accounts import Principal


def token_from_request(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic":
        try:
            _user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidToken() from None
        return password or None
    raise InvalidToken()


def principal(request: Request, s: Session) -> Principal | None:
    """The caller, or None when anonymous. Raises InvalidToken for a credential that does not resolve."""
    token = token_from_request(request)
    if token is not None:
        return accounts.authenticate(s, token)
    session_user = getattr(request.state, "session_principal", None)
    return session_user(s) if callable(session_user) else None


def require(request: Request, s: Session) -> Principal:
    p = principal(request, s)
    if p is None:
        raise Unauthorized("This call needs an access token: pass it as `Authorization: Bearer <token>`.")
    return p

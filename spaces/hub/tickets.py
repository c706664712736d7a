"""Browser tickets for private Spaces.

A private Space's app lives on its own origin (``alice-x.localhost``), which never sees the hub's session cookie,
and inside the Space page's iframe it is a third-party site: browsers that block third-party cookies drop any
ordinary cookie it sets there. Two signed values, under different salts so one never stands in for the other:

* the **URL ticket**: the hub mints one per render of the Space page for the signed-in viewer (user id, Space id,
  a random nonce, time) and points the iframe at ``{app origin}/__spaces/auth?ticket=...&next=/``. It lives
  ``URL_MAX_AGE`` seconds and is redeemed once (:class:`TicketExchange`): a copy that leaks (a log line, history,
  a shoulder) is worth nothing after the browser used it or after a minute;
* the **app session**: what the proxy sets as its cookie in exchange, then answers with a 303 to the same path
  without the ticket, so the ticket stays in no URL the app, its history or a Referer sees. The cookie is
  HttpOnly and, where the browser allows Secure (https, and ``*.localhost`` over http, which browsers count as
  secure), ``SameSite=None; Secure; Partitioned`` (CHIPS): kept for the app inside this hub's pages even with
  third-party cookies blocked, and never sent to the app under another top-level site. The proxy checks it
  through ``Platform._authorize``, which checks the user's access again (cached ``auth_cache_ttl``).
"""

from __future__ import annotations

import secrets
import time

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

URL_SALT = "spaces.app-ticket.url"
SESSION_SALT = "spaces.app-session"
URL_MAX_AGE = 60
MAX_AGE = 3600


def mint_ticket(key: str, user_id: str, space_id: str) -> str:
    """A URL ticket for the Space page's iframe: one use, ``URL_MAX_AGE`` seconds."""
    payload = f"{user_id}:{space_id}:{secrets.token_urlsafe(12)}"
    return TimestampSigner(key, salt=URL_SALT).sign(payload.encode()).decode()


def mint_session(key: str, user_id: str, space_id: str) -> str:
    """The app-session cookie value a redeemed URL ticket is exchanged for."""
    return TimestampSigner(key, salt=SESSION_SALT).sign(f"{user_id}:{space_id}".encode()).decode()


def _unsign(key: str, salt: str, value: str, max_age: int) -> list[str] | None:
    try:
        return TimestampSigner(key, salt=salt).unsign(value.encode(), max_age=max_age).decode().split(":")
    except (BadSignature, SignatureExpired, UnicodeDecodeError):
        return None


def verify_ticket(key: str, ticket: str, space_id: str, max_age: int = MAX_AGE) -> str | None:
    """The user id an app-session value was minted for, when it is genuine, fresh and for this Space; else None.
    A URL ticket is refused here: it is only good for :meth:`TicketExchange.redeem`."""
    parts = _unsign(key, SESSION_SALT, ticket, max_age)
    if parts is None or len(parts) != 2 or parts[1] != space_id or not parts[0]:
        return None
    return parts[0]


class TicketExchange:
    """Redeems URL tickets for app-session values, each ticket once.

    The nonces seen are kept in this process for as long as their tickets could still verify, so memory is
    bounded by the tickets minted in the last ``URL_MAX_AGE`` seconds. With several proxy replicas a ticket
    could be redeemed once per replica within that minute; it is still bound to one user and one Space.
    """

    def __init__(self, key: str, max_age: int = URL_MAX_AGE) -> None:
        self.key, self.max_age = key, max_age
        self._used: dict[str, float] = {}  # nonce -> when it can be forgotten (monotonic)

    def redeem(self, space_id: str, ticket: str) -> str | None:
        """The app-session value for a genuine, fresh, unused URL ticket minted for ``space_id``; else None."""
        parts = _unsign(self.key, URL_SALT, ticket, self.max_age)
        if parts is None or len(parts) != 3 or parts[1] != space_id or not parts[0]:
            return None
        user_id, _, nonce = parts
        now = time.monotonic()
        if len(self._used) > 1000:
            self._used = {n: t for n, t in self._used.items() if t > now}
        if self._used.get(nonce, 0.0) > now:
            return None
        self._used[nonce] = now + self.max_age + 1
        return mint_session(self.key, user_id, space_id)

"""Browser tickets for private Spaces.

A private Space's app lives on its own origin, which never sees the hub's session cookie. When a signed-in
member opens the Space page, the hub mints a short-lived ticket (signed: user id, Space id, time) and the iframe
goes through ``{app origin}/__spaces/auth?ticket=...``; the proxy checks the ticket through the platform and sets
it as a cookie on the app origin only.
"""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

SALT = "spaces.app-ticket"
MAX_AGE = 3600


def mint_ticket(key: str, user_id: str, space_id: str) -> str:
    return TimestampSigner(key, salt=SALT).sign(f"{user_id}.{space_id}".encode()).decode()


def verify_ticket(key: str, ticket: str, space_id: str, max_age: int = MAX_AGE) -> str | None:
    """The user id the ticket was minted for, when it is genuine, fresh and for this Space; else None."""
    try:
        raw = TimestampSigner(key, salt=SALT).unsign(ticket.encode(), max_age=max_age).decode()
    except (BadSignature, SignatureExpired, UnicodeDecodeError):
        return None
    user_id, _, ticket_space = raw.partition(".")
    return user_id if ticket_space == space_id else None

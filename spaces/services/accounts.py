"""Users, organizations, memberships and access tokens, and who may read or write a Space.

Tokens are random strings prefixed ``hf_`` (so tools that look for the Hugging Face shape are happy); only their
SHA-256 is stored. A token's role is ``read`` or ``write``; writing to a Space needs a write token of its owner
or of a member (role write or admin) of the owning organization.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from spaces.db.models import Account, Membership, Space, Token, utcnow
from spaces.domain.naming import validate_account_name
from spaces.errors import BadRequest, Conflict, Forbidden, InvalidToken, NotFound, RepoNotFound, Unauthorized

ROLES = ("read", "write")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: an account and what the credential allows (``role``: read or write)."""

    account: Account
    role: str
    token: Token | None = None

    @property
    def can_write(self) -> bool:
        return self.role == "write"


def find_account(s: Session, name: str) -> Account | None:
    return s.scalar(select(Account).where(Account.key == name.lower()))


def create_account(s: Session, name: str, *, type: str = "user", fullname: str = "", is_admin: bool = False,
                   email: str | None = None, password_hash: str | None = None) -> Account:
    validate_account_name(name, what="user name" if type == "user" else "organization name")
    if find_account(s, name) is not None:
        raise Conflict(f"The name '{name}' is already taken.")
    acc = Account(name=name, key=name.lower(), type=type, fullname=fullname or name, is_admin=is_admin,
                  email=email, password_hash=password_hash)
    s.add(acc)
    s.flush()
    return acc


def ensure_user(s: Session, name: str) -> Account:
    acc = find_account(s, name)
    if acc is None:
        return create_account(s, name)
    if acc.type != "user":
        raise BadRequest(f"'{name}' is an organization, not a user.")
    return acc


def create_token(s: Session, user: Account, *, role: str = "write", name: str = "token") -> str:
    """Create a token and return it in clear: the only time it is ever visible."""
    if role not in ROLES:
        raise BadRequest(f"Token role must be one of {', '.join(ROLES)}, not '{role}'.")
    if user.type != "user":
        raise BadRequest("Tokens belong to users, not organizations.")
    token = "hf_" + secrets.token_urlsafe(30).replace("-", "a").replace("_", "b")
    s.add(Token(user_id=user.id, role=role, name=name, token_hash=hash_token(token), hint=token[-4:]))
    s.flush()
    return token


def revoke_token(s: Session, user: Account, token_id: str) -> None:
    tok = s.get(Token, token_id)
    if tok is None or tok.user_id != user.id:
        raise NotFound("No such token.")
    s.delete(tok)


#: how stale a token's "last used" may be: recorded at most this often, so a busy client costs no write per request
TOKEN_TOUCH_EVERY = timedelta(minutes=1)


def authenticate(s: Session, token: str) -> Principal:
    """Resolve a clear token into a Principal, or raise InvalidToken (401). Records its use (see touch_token)."""
    tok = s.scalar(select(Token).where(Token.token_hash == hash_token(token)))
    if tok is None:
        raise InvalidToken()
    touch_token(tok)
    return Principal(account=tok.user, role=tok.role, token=tok)


def touch_token(tok: Token) -> None:
    """Set ``last_used_at`` when it is unset or older than TOKEN_TOUCH_EVERY; written with the caller's transaction
    (a request that fails writes nothing, and the next one records the use)."""
    now = utcnow()
    last = tok.last_used_at
    if last is not None and last.tzinfo is None:  # SQLite hands datetimes back without their zone (UTC)
        last = last.replace(tzinfo=timezone.utc)
    if last is None or now - last >= TOKEN_TOUCH_EVERY:
        tok.last_used_at = now


def org_role(s: Session, org: Account, user: Account) -> str | None:
    return s.scalar(select(Membership.role).where(Membership.org_id == org.id, Membership.user_id == user.id))


def add_member(s: Session, org: Account, user: Account, role: str = "write") -> None:
    if role not in ("read", "write", "admin"):
        raise BadRequest("Membership role must be read, write or admin.")
    m = s.scalar(select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id))
    if m is None:
        s.add(Membership(org_id=org.id, user_id=user.id, role=role))
    else:
        m.role = role
    s.flush()


def user_orgs(s: Session, user: Account) -> list[tuple[Account, str]]:
    rows = s.execute(
        select(Account, Membership.role).join(Membership, Membership.org_id == Account.id)
        .where(Membership.user_id == user.id).order_by(Account.key)
    )
    return [(a, r) for a, r in rows]


def may_read_namespace(s: Session, principal: Principal | None, owner: Account) -> bool:
    """True when the caller is the owner or a member of the owning organization."""
    if principal is None:
        return False
    user = principal.account
    if user.id == owner.id or user.is_admin:
        return True
    return owner.type == "org" and org_role(s, owner, user) is not None


def may_write_namespace(s: Session, principal: Principal | None, owner: Account) -> bool:
    if principal is None or not principal.can_write:
        return False
    user = principal.account
    if user.id == owner.id or user.is_admin:
        return True
    return owner.type == "org" and org_role(s, owner, user) in ("write", "admin")


def check_read(s: Session, principal: Principal | None, space: Space) -> None:
    """Private Spaces look exactly like missing ones to anyone without access (404 RepoNotFound)."""
    if space.private and not may_read_namespace(s, principal, space.owner):
        raise RepoNotFound(space.repo_id)


def check_write(s: Session, principal: Principal | None, space: Space) -> None:
    check_read(s, principal, space)
    kind = getattr(space, "repo_type", "space")  # a Space, or a model or dataset Repo
    if principal is None:
        raise Unauthorized(f"You must be authenticated with a write token to change this {kind}.")
    if not may_write_namespace(s, principal, space.owner):
        if may_read_namespace(s, principal, space.owner) and not principal.can_write:
            raise Forbidden("This token is read-only; use a token with the write role.")
        raise Forbidden(f"You don't have write access to {kind}s/{space.repo_id}.")

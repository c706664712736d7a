"""Which Spaces a viewer may see, in which order, and the card each one shows (explore and profile pages)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from spaces.db.models import Account, Like, Membership, Space
from spaces.hub.pages.render import gradient, stage_info
from spaces.hub.pages.web import Viewer

SORT_LABELS = {"trending": "Trending", "likes": "Most likes", "updated": "Recently updated", "created": "Newest"}
TRENDING_DAYS = 7


@dataclass
class Card:
    repo_id: str
    owner: str
    name: str
    title: str
    emoji: str
    description: str
    style: str
    stage: dict[str, Any]
    likes: int
    sdk: str | None
    hardware: str
    private: bool
    updated: datetime

    @property
    def url(self) -> str:
        return f"/spaces/{self.repo_id}"


def card(space: Space) -> Card:
    data = space.card_data or {}
    title = data.get("title") if isinstance(data.get("title"), str) else None
    emoji = data.get("emoji") if isinstance(data.get("emoji"), str) else None
    desc = data.get("short_description") if isinstance(data.get("short_description"), str) else ""
    return Card(repo_id=space.repo_id, owner=space.owner.name, name=space.name, title=title or space.name,
                emoji=(emoji or "🚀")[:8], description=desc[:160], style=gradient(data),
                stage=stage_info(space.stage), likes=space.likes, sdk=space.sdk, hardware=space.hardware,
                private=space.private, updated=space.last_modified)


def visible(viewer: Viewer) -> Select:
    """Spaces the viewer may see: public ones, plus their own and their organizations' (admins: all)."""
    q = select(Space).join(Account, Space.owner_id == Account.id)
    if viewer.account is None:
        return q.where(Space.private.is_(False))
    if viewer.account.is_admin:
        return q
    orgs = select(Membership.org_id).where(Membership.user_id == viewer.account.id)
    return q.where(or_(Space.private.is_(False), Space.owner_id == viewer.account.id, Space.owner_id.in_(orgs)))


@dataclass
class Query:
    q: str = ""
    sort: str = "trending"
    sdk: str = ""
    hardware: str = ""
    page: int = 1

    @classmethod
    def from_params(cls, params: Any) -> Query:
        sort = params.get("sort") or "trending"
        try:
            page = max(1, min(int(params.get("p") or 1), 10_000))
        except ValueError:
            page = 1
        return cls(q=(params.get("q") or "").strip()[:100], sort=sort if sort in SORT_LABELS else "trending",
                   sdk=(params.get("sdk") or "")[:16], hardware=(params.get("hardware") or "")[:32], page=page)

    def link(self, **changes: Any) -> str:
        from urllib.parse import urlencode

        values = {"q": self.q, "sort": self.sort, "sdk": self.sdk, "hardware": self.hardware, "p": self.page,
                  **changes}
        keep = {k: v for k, v in values.items() if v and not (k == "sort" and v == "trending")
                and not (k == "p" and v == 1)}
        return "/spaces" + (f"?{urlencode(keep)}" if keep else "")


def search(s: Session, viewer: Viewer, query: Query, page_size: int, *, author: Account | None = None
           ) -> tuple[list[Card], int]:
    """One page of cards and the total count matching ``query``."""
    q = visible(viewer)
    if author is not None:
        q = q.where(Space.owner_id == author.id)
    if query.q:
        needle = f"%{query.q.lower()}%"
        # the key is "owner/name"; the card data holds the title and short description
        q = q.where(or_(Space.key.like(needle), func.lower(cast(Space.card_data, String)).like(needle)))
    if query.sdk:
        q = q.where(Space.sdk == query.sdk)
    if query.hardware:
        q = q.where(Space.hardware == query.hardware)
    total = s.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0
    if query.sort == "trending":
        since = datetime.now(timezone.utc) - timedelta(days=TRENDING_DAYS)
        recent = (select(Like.space_id, func.count(Like.id).label("n")).where(Like.created_at >= since)
                  .group_by(Like.space_id).subquery())
        q = q.outerjoin(recent, recent.c.space_id == Space.id).order_by(
            func.coalesce(recent.c.n, 0).desc(), Space.likes.desc(), Space.last_modified.desc())
    elif query.sort == "likes":
        q = q.order_by(Space.likes.desc(), Space.created_at.desc())
    elif query.sort == "updated":
        q = q.order_by(Space.last_modified.desc())
    else:
        q = q.order_by(Space.created_at.desc())
    rows = s.scalars(q.order_by(Space.key).offset((query.page - 1) * page_size).limit(page_size))
    return [card(sp) for sp in rows], total

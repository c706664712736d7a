"""What every tab of a Space page needs: the Space (or a 404 page), the viewer's rights and the header data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from spaces.db.models import Like, Space, SpaceSecret
from spaces.domain import hardware as hw
from spaces.domain.status import Status
from spaces.hub.pages import capacity_view
from spaces.hub.pages.listing import Card, card
from spaces.hub.pages.web import Viewer
from spaces.hub.serialize import gc_timeout
from spaces.hub.status import status_of
from spaces.hub.tickets import mint_ticket
from spaces.services import accounts


@dataclass
class SpacePage:
    space: Space
    card: Card
    can_write: bool
    liked: bool
    app_url: str
    git_url: str
    hub_url: str
    status: Status | None = None  # what every part of the page shows about its state (live: spaces.js)
    secret_keys: list[str] = field(default_factory=list)  # names to re-enter when duplicating
    flavors: list[hw.Flavor] = field(default_factory=list)
    #: flavor -> why the viewer cannot run it here (the duplicate form greys those)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def repo_id(self) -> str:
        return self.space.repo_id

    @property
    def base(self) -> str:
        return f"/spaces/{self.space.repo_id}"

    @property
    def flavor(self) -> hw.Flavor | None:
        return next((f for f in self.flavors if f.name == self.space.hardware), None)

    @property
    def sleep_seconds(self) -> int | None:
        return gc_timeout(self.space)


def load(hub: Any, s: Session, viewer: Viewer, ns: str, name: str, *, write: bool = False) -> SpacePage:
    """The Space as the viewer may see it: RepoNotFound (a 404 page) when missing or private to them; with
    ``write``, the settings tab's rights (Forbidden otherwise)."""
    if name.endswith(".git"):
        name = name[:-4]
    space = (hub.spaces.get_writable if write else hub.spaces.get)(s, f"{ns}/{name}", viewer.principal)
    can_write = write or accounts.may_write_namespace(s, viewer.principal, space.owner)
    liked = False
    if viewer.account is not None:
        liked = s.scalar(select(Like.id).where(Like.space_id == space.id, Like.user_id == viewer.account.id)) \
            is not None
    keys = list(s.scalars(select(SpaceSecret.key).where(SpaceSecret.space_id == space.id).order_by(SpaceSecret.key)))
    app_url = hub.settings.app_host(space.subdomain) + "/"
    if space.private and viewer.account is not None:
        # the app's origin never sees the hub's cookie: hand the browser a short-lived ticket for this Space
        from urllib.parse import quote

        ticket = mint_ticket(hub.settings.signing_key, viewer.account.id, space.id)
        app_url = f"{app_url}__spaces/auth?ticket={quote(ticket, safe='')}&next=/"
    return SpacePage(space=space, card=card(space), can_write=can_write, liked=liked,
                     app_url=app_url, git_url=hub.space_url(space.repo_id),
                     hub_url=hub.url(), status=status_of(hub, s, space), secret_keys=keys, flavors=hub.flavors.shapes(),
                     unavailable=capacity_view.unavailable(hub, s, viewer.account))

"""The objects one hub process shares between requests, built once by the app factory."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from fastapi import Request

from spaces.db.session import Database
from spaces.runtime.flavors import FlavorCatalog
from spaces.services.buckets import BucketService
from spaces.services.logs import LogBus
from spaces.services.spaces import SpaceService
from spaces.settings import Settings

#: the hub's base URL as the current request reached it (used when SPACES_PUBLIC_URL is not set)
request_base: ContextVar[str | None] = ContextVar("request_base", default=None)
#: the id sent back as ``X-Request-Id`` (huggingface_hub puts it in its error messages) and named in the log
request_id: ContextVar[str] = ContextVar("request_id", default="-")


@dataclass
class Hub:
    settings: Settings
    db: Database
    spaces: SpaceService
    logs: LogBus
    buckets: BucketService
    #: quota and placement (spaces.runtime.capacity.Capacity) when a runtime is attached, for pages and the API
    capacity: object | None = None
    #: the process's one flavor catalog: the API's hardware list, the pages' prices and the bill all read it
    flavors: FlavorCatalog = field(default_factory=FlavorCatalog)

    def url(self, path: str = "") -> str:
        """An absolute URL on the hub. huggingface_hub only accepts URLs on the host it called, so without a
        configured ``public_url`` the base is the one the request came in on."""
        base = self.settings.public_url or request_base.get() or self.settings.hub_url
        return f"{base.rstrip('/')}{path}"

    def space_url(self, repo_id: str) -> str:
        return self.url(f"/spaces/{repo_id}")


def get_hub(request: Request) -> Hub:
    return request.app.state.hub

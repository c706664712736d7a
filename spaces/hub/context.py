"""The objects one hub process shares between requests, built once by the app factory."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from fastapi import Request

from spaces.db.session import Database
from spaces.hub.app_api import AppApi
from spaces.runtime.flavors import FlavorCatalog
from spaces.services.buckets import BucketService
from spaces.services.logs import LogBus
from spaces.services import webhooks
from spaces.services.repos import RepoService
from spaces.services.spaces import SpaceService
from spaces.settings import Settings
from spaces.storage.objects import ObjectStore
from spaces.xet.store import XetStore, xet_root

#: the hub's base URL as the current request reached it (used when SPACES_PUBLIC_URL is not set)
request_base: ContextVar[str | None] = ContextVar("request_base", default=None)
#: the id sent back as ``X-Request-Id`` (huggingface_hub puts it in its error messages) and named in the log
request_id: ContextVar[str] = ContextVar("request_id", default="-")


#: a repository type's path prefix in the Hub's URLs (git remotes, pages, ``/resolve``)
PREFIX = {"space": "/spaces", "dataset": "/datasets", "model": ""}


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
    #: model and dataset repositories, beside the Spaces (built from ``spaces.repos_root``)
    models: RepoService = field(init=False)
    datasets: RepoService = field(init=False)
    #: POSTs the webhooks' payloads after the changes they announce commit
    webhooks: webhooks.Sender = field(init=False)
    #: Xet storage (xorbs, files, dedupe) for the default huggingface_hub client's uploads and downloads
    xet: XetStore = field(init=False)
    #: large files (Git LFS objects) by sha256, stored once for every repository (spaces.storage.objects)
    objects: ObjectStore = field(init=False)
    #: Gradio Spaces' own endpoints for their "Use via API" snippets (the platform hands it the route table)
    app_api: AppApi = field(init=False)

    def __post_init__(self) -> None:
        self.models = RepoService(self.spaces.repos_root, "model")
        self.datasets = RepoService(self.spaces.repos_root, "dataset")
        self.webhooks = webhooks.Sender(private_targets=self.settings.webhooks_private_targets)
        self.xet = XetStore(xet_root(self.settings.data_path))
        self.objects = self.spaces.objects
        self.app_api = AppApi(self.settings.data_path / "cache" / "gradio-api")

    def announce(self, s, row, kind: str, domain: str, action: str, scope: str, **extra) -> None:  # noqa: ANN001, ANN003
        """Tell the webhooks watching ``row`` (a Space, model or dataset) about a change, once ``s`` commits."""
        urls = (self.repo_url(kind, row.repo_id), self.url(f"/api/{kind}s/{row.repo_id}"))
        self.webhooks.emit(s, webhooks.deliveries(s, row, kind, domain, {"action": action, "scope": scope},
                                                  urls=urls, extra=extra))

    def store(self, repo_type: str):  # noqa: ANN201 - SpaceService | RepoService: the same lookup and commit calls
        """The service of one repository type ("space", "model" or "dataset"): lookups through it never return
        another type's repository, whatever the names."""
        return {"space": self.spaces, "model": self.models, "dataset": self.datasets}[repo_type]

    def url(self, path: str = "") -> str:
        """An absolute URL on the hub. huggingface_hub only accepts URLs on the host it called, so without a
        configured ``public_url`` the base is the one the request came in on."""
        base = self.settings.public_url or request_base.get() or self.settings.hub_url
        return f"{base.rstrip('/')}{path}"

    def space_url(self, repo_id: str) -> str:
        return self.url(f"/spaces/{repo_id}")

    def repo_url(self, repo_type: str, repo_id: str) -> str:
        """The Hub's URL of a repository: ``/spaces/{id}``, ``/datasets/{id}`` or ``/{id}`` for a model."""
        return self.url(f"{PREFIX[repo_type]}/{repo_id}")


def get_hub(request: Request) -> Hub:
    return request.app.state.hub

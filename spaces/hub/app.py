"""The app factory: one FastAPI application per Settings, no module-level state."""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from email.utils import formatdate
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from spaces import metrics
from spaces.bus import Bus
from spaces.db.session import Database
from spaces.errors import SpacesError
from spaces.hub import errors
from spaces.hub.api import admin, branches, buckets, discussions, files, other_repos, repos, spaces, webhooks, xet
from spaces.hub.api import status as status_api
from spaces.hub.context import Hub, request_base, request_id
from spaces.hub.git_http import install_hooks
from spaces.hub.git_http import router as git_router
from spaces.hub.lfs import router as lfs_router
from spaces.storage.objects import LocalObjectStore, objects_root
from spaces.hub.limits import BodyLimit
from spaces.hub.metrics import RequestMetrics
from spaces.hub.metrics import router as metrics_router
from spaces.hub.pages import install_pages
from spaces.hub.pages.runtime_hooks import runtime_hooks
from spaces.hub.urlguard import ControlBytes
from spaces.runtime.flavors import FlavorCatalog
from spaces.services.buckets import BucketService
from spaces.services.logs import LogBus
from spaces.services.spaces import SpaceHooks, SpaceService
from spaces.settings import Settings
from spaces.xet.gc import sweep_temporaries

log = logging.getLogger("spaces")


class RequestBase:
    """Pure ASGI (BaseHTTPMiddleware would wrap every body, git's and the SSE streams' included): remembers the
    base URL the request came in on, adds a Date header where the endpoint set none (the server runs with
    uvicorn's own Date off, see the logs endpoint for why) and an ``X-Request-Id`` to every answer (the error
    log line names it; huggingface_hub shows it in its error messages)."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "localhost")
        request_base.set(f"{scope.get('scheme', 'http')}://{host}")
        rid = uuid.uuid4().hex
        request_id.set(rid)

        async def send_with_date(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {k.lower() for k, _ in headers}
                if b"x-request-id" not in names:
                    headers.append((b"x-request-id", rid.encode()))
                if b"date" not in names:
                    headers.append((b"date", formatdate(usegmt=True).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_date)


def build_hub(settings: Settings, *, hooks: SpaceHooks | None = None, capacity: object | None = None,
              flavors: FlavorCatalog | None = None, bus: Bus | None = None) -> Hub:
    """The hub's shared objects. ``hooks`` and ``capacity`` connect it to the runtime (``spaces.platform``);
    without them (operator commands) it changes Spaces without telling anyone. ``bus``: how live log lines reach
    this process from the others (see spaces.services.logs)."""
    # The data dir is traversable (0711) so sandboxed Spaces reach their environments and working copies; what
    # holds user data or secrets (repositories, database, key) is readable by the platform's user only.
    settings.data_path.mkdir(parents=True, exist_ok=True)
    settings.data_path.chmod(0o711)
    settings.repos_path.mkdir(parents=True, exist_ok=True)
    settings.repos_path.chmod(0o700)
    objects = objects_root(settings.repos_path)  # LFS objects: private files too, so the platform's user only
    objects.mkdir(parents=True, exist_ok=True)
    objects.parent.chmod(0o700)
    _sweep_spools(settings.data_path / "tmp" / "uploads")  # commits cut short by a crash
    LocalObjectStore(objects).sweep(SPOOL_STALE_S)  # LFS uploads cut short by a crash
    db = Database(settings.db_url)
    db.migrate()
    if settings.db_url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            path = settings.data_path / f"spaces.db{suffix}"
            if path.exists():
                path.chmod(0o600)
    flavors = flavors or FlavorCatalog(settings.flavors)  # the one catalog: the Space service and the pages read it
    spaces = SpaceService(settings.repos_path, flavors, hooks)
    made: list[Hub] = []  # the volumes' reader looks repositories up through the hub's stores, made with it
    hub = Hub(settings=settings, db=db, spaces=spaces, logs=LogBus(db, keep=settings.limits.log_lines, bus=bus),
              flavors=flavors, capacity=capacity,
              buckets=BucketService(settings.storage, settings.data_path / "buckets",
                                    on_change=spaces.settings_changed,
                                    repo_exists=_repo_reader(lambda repo_type: made[0].store(repo_type))))
    made.append(hub)
    sweep_temporaries(hub.xet, SPOOL_STALE_S)  # Xet uploads cut short by a crash
    return hub


def _repo_reader(store_for):  # noqa: ANN001, ANN202
    """May a caller read the repository (a Space, model or dataset of this hub) that a volume names?"""
    def readable(s, repo_type: str, repo_id: str, principal) -> bool:  # noqa: ANN001
        try:
            store_for(repo_type).get(s, repo_id, principal)
        except (SpacesError, KeyError):
            return False
        return True
    return readable


SPOOL_STALE_S = 3600.0


def _sweep_spools(root: Path) -> None:
    """Remove commit spools a crash left. Only stale ones: another hub process on this data dir (or the server,
    when an operator command builds a hub) may be receiving a commit into a fresh one right now."""
    if not root.is_dir():
        return
    cutoff = time.time() - SPOOL_STALE_S
    for entry in root.iterdir():
        try:
            newest = max([entry.stat().st_mtime, *(p.stat().st_mtime for p in entry.rglob("*"))])
        except OSError:
            continue
        if newest < cutoff:
            shutil.rmtree(entry, ignore_errors=True)


def create_app(settings: Settings | None = None, hub: Hub | None = None) -> FastAPI:
    settings = settings or Settings()
    hub = hub or build_hub(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        yield
        hub.db.engine.dispose()

    app = FastAPI(title="spaces", version="0.1.0", lifespan=lifespan, docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.hub = hub
    app.state.git_hooks = install_hooks(settings.data_path)
    errors.install(app)
    # Fixed /api/spaces/... paths come first: spaces.router registers them before {ns}/{name}.
    app.include_router(repos.router)
    app.include_router(buckets.router)
    app.include_router(metrics_router)  # /metrics, next to /api/health (guarded: see spaces.hub.metrics)
    app.include_router(status_api.router)  # before spaces.router: none of its shapes may take the path
    app.include_router(spaces.router)
    app.include_router(files.router)
    app.include_router(branches.router)
    app.include_router(discussions.router)
    app.include_router(admin.router)
    app.include_router(webhooks.router)
    app.include_router(xet.router)
    app.include_router(lfs_router)  # before other_repos: /{ns}/{name}.git/info/lfs/... is not a model path
    app.include_router(other_repos.router)  # after every /spaces/... route: it has catch-all shapes
    app.include_router(git_router)
    # last: the profile page /{name} matches any single path segment
    install_pages(app, hub, hooks=runtime_hooks())
    app.add_middleware(BodyLimit, limits=settings.limits, lfs_object_bytes=settings.large_files.max_object_bytes)
    app.add_middleware(ControlBytes)  # a NUL or newline in the URL is refused before any route reads it

    app.add_middleware(RequestBase)
    app.add_middleware(RequestMetrics)  # outermost: counts every answer, the middlewares' own refusals too
    metrics.watch_database(hub.db)
    return app

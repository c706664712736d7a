"""The web pages: browse, open, create, duplicate and run Spaces in a browser.

Server-rendered Jinja2 (``spaces/hub/templates``) plus one small script (``spaces/hub/static/spaces.js``) for
the live parts: stage polling, SSE logs, likes, dialogs. No build step.

Wiring: ``install_pages(app, hub)`` once, after ``create_app`` has added the API and git routes (so the
catch-all profile route ``/{name}`` comes after every fixed path). It adds, in this order:

* the session middleware (:mod:`spaces.hub.session`): signed cookie, CSRF token, and the session principal the
  API's ``auth.principal`` honours for the pages' own API calls;
* ``/static`` files;
* the page routers (explore, Space tabs, settings actions, new Space, accounts, admin, then the model and dataset
  pages, then profiles);
* HTML error pages for browser requests to page routes (API, git and downloads keep their JSON errors).

Calling it twice is harmless (the second call does nothing), so a test-only factory and ``create_app`` may both
call it.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.staticfiles import StaticFiles

from spaces.hub.pages import account, admin, browse, community, embed, errors, new_space, space_settings, space_view
from spaces.hub.pages.config import PagesSettings, pages_settings
from spaces.hub.pages.hooks import PageHooks, UsageRow, UsageView
from spaces.hub.pages.render import STATIC_DIR, Renderer
from spaces.hub.session import SessionMiddleware

__all__ = ["install_pages", "PageHooks", "PagesSettings", "UsageRow", "UsageView"]


def _mark_page(request: Request) -> None:
    # lets the error handlers answer with an HTML page even when the browser sent no text/html Accept
    request.state.page = True


def install_pages(app: FastAPI, hub: object, hooks: PageHooks | None = None) -> None:
    """Add the web pages to ``app`` (built by ``create_app`` for ``hub``). Idempotent."""
    if getattr(app.state, "pages_installed", False):
        return
    settings = hub.settings  # type: ignore[attr-defined]
    cfg = pages_settings(settings)
    app.state.page_renderer = Renderer()
    app.state.page_hooks = hooks or PageHooks()
    app.add_middleware(SessionMiddleware, secret_key=settings.signing_key, max_age=cfg.session_days * 86400,
                       secure=settings.hub_url.startswith("https://"), cookie_name=cfg.cookie_name)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    page = [Depends(_mark_page)]
    for module in (browse, space_view, space_settings, community, new_space, account, admin, embed):
        app.include_router(module.router, dependencies=page, include_in_schema=False)
    # models and datasets: /{ns}/{name} has any two-segment path's shape, so after every fixed page
    from spaces.hub.pages import file_edit, repo_view  # here: they read the API's modules, which import the settings

    app.include_router(file_edit.router, dependencies=page, include_in_schema=False)
    repo_view.install_file_tabs()
    app.include_router(repo_view.router, dependencies=page, include_in_schema=False)
    app.include_router(browse.profile_router, dependencies=page, include_in_schema=False)
    errors.install(app)
    app.state.pages_installed = True

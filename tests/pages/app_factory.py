"""TEMPORARY, test-only: ``create_app`` plus ``install_pages`` until ``spaces/hub/app.py`` calls it itself.

Run with ``uvicorn --factory --app-dir tests/pages app_factory:create`` (Settings from ``SPACES_*``). Once the
hub's factory installs the pages, the second ``install_pages`` call here does nothing.

``PAGES_DEV_TEMPLATES=/path`` (development only, never set by the tests) offers the templates of another
folder in the New Space form.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from spaces.hub.app import create_app
from spaces.hub.pages import PageHooks, install_pages
from spaces.templates_catalog import list_templates


def create() -> FastAPI:
    app = create_app()
    hooks = PageHooks()
    if os.environ.get("PAGES_DEV_TEMPLATES"):
        hooks.templates = partial(list_templates, Path(os.environ["PAGES_DEV_TEMPLATES"]))
    install_pages(app, app.state.hub, hooks=hooks)
    if getattr(app.state, "page_hooks", None) is not hooks and os.environ.get("PAGES_DEV_TEMPLATES"):
        app.state.page_hooks.templates = hooks.templates
    return app

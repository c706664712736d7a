"""TEMPORARY, test-only: ``create_app`` plus ``install_pages`` until ``spaces/hub/app.py`` calls it itself.

Run with ``uvicorn --factory --app-dir tests/pages app_factory:create`` (Settings from ``SPACES_*``). Once the
hub's factory installs the pages, the second ``install_pages`` call here does nothing.
"""

from __future__ import annotations

from fastapi import FastAPI

from spaces.hub.app import create_app
from spaces.hub.pages import install_pages


def create() -> FastAPI:
    app = create_app()
    install_pages(app, app.state.hub)
    return app

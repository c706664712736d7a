"""TEMPORARY, test-only: ``create_app`` plus ``install_pages`` until ``spaces/hub/app.py`` calls it itself.

Run with ``uvicorn --factory --app-dir tests/pages app_factory:create`` (Settings from ``SPACES_*``). Once the
hub's factory installs the pages, the second ``install_pages`` call here does nothing.

The hub gets the quota and placement view ``spaces serve`` attaches (``Platform``: this machine as its one node,
the flavor catalog, the quota defaults), so the pages show what this server can run and each account's quota.
"""

from __future__ import annotations

from fastapi import FastAPI

from spaces.hub.app import create_app
from spaces.hub.pages import install_pages


def create() -> FastAPI:
    from spaces.runtime.capacity import Capacity
    from spaces.runtime.flavors import FlavorCatalog
    from spaces.runtime.nodes import detect_local_node

    app = create_app()
    hub = app.state.hub
    settings = hub.settings
    hub.capacity = Capacity(FlavorCatalog(settings.flavors), [detect_local_node()], settings.quotas,
                            settings.scheduler.policy())
    install_pages(app, hub)
    return app

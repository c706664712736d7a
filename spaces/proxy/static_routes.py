"""Static Spaces served by the proxy process that gets the request, whatever process published the route.

A static Space has no process: its route carries the working copy (``Route.static_root``, on the data dir every
process shares) and this process runs one small file server (``spaces.runtime.static_site.StaticSites``) on a
loopback port. ``StaticRoutes`` wraps the route table the proxy reads: a running static route is handed to the
gate with this process's file server as its upstream, and the file server learns the root of that host. Every
other route passes through untouched, and the hot path stays a dict lookup (the rewritten route is cached for as
long as the table hands back the same route object).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from spaces.proxy.routes import Route, RouteTable


class StaticRoutes:
    def __init__(self, inner: RouteTable, roots: dict[str, tuple[Path, str]]) -> None:
        self.inner = inner
        #: subdomain -> (working copy, app file): the file server's ``roots``
        self.roots = roots
        self.address: tuple[str, int] | None = None  # the file server's, once it listens
        self._seen: dict[str, tuple[Route, Route]] = {}

    @property
    def version(self) -> int:  # type: ignore[override]
        return self.inner.version

    def get(self, host: str) -> Route | None:
        route = self.inner.get(host)
        if route is None or not route.static_root:
            return route
        seen = self._seen.get(host)
        if seen is not None and seen[0] is route:
            return seen[1]
        self.roots[host] = (Path(route.static_root), route.app_file or "index.html")
        served = dataclasses.replace(route, upstream=self.address if route.state == "running" else None)
        self._seen[host] = (route, served)
        return served

    def put(self, host: str, route: Route) -> None:
        self._forget(host)
        self.inner.put(host, route)

    def delete(self, host: str) -> None:
        self._forget(host)
        self.inner.delete(host)

    def all(self) -> dict[str, Route]:
        return self.inner.all()

    def _forget(self, host: str) -> None:
        self._seen.pop(host.lower(), None)
        self.roots.pop(host.lower(), None)

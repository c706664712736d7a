"""What every role of the platform answers to its operator: ``/metrics``, ``/healthz`` and ``/readyz``.

* ``/healthz`` - the process is alive and its event loop answers: 200 ``ok``. Nothing else is checked: a liveness
  probe that checks the database would have a supervisor restart every replica when the database blinks.
* ``/readyz`` - this process should get traffic now: every check added with ``Health.add`` passes (the database
  answers, Redis answers, for a controller: it leads). 200 with the checks, or 503 naming the failed ones.
* ``/metrics`` - the process's metrics in Prometheus' text format (the official ``prometheus_client``).

``ops_app(health)`` is a small ASGI app serving the three; the hub mounts the same three routes, and a role
without the hub (proxy, builder, controller alone) serves ``ops_app`` on its ops port.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("spaces.ops")

#: a check returns True when fine, or a short reason (str) / False when not
Check = Callable[[], "bool | str"]


class Health:
    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def ready(self) -> tuple[bool, dict[str, str]]:
        results: dict[str, str] = {}
        for name, check in list(self._checks.items()):
            try:
                outcome = check()
            except Exception as exc:  # a check that raises has failed; its reason is the exception's class
                outcome = f"{type(exc).__name__}"
            results[name] = "ok" if outcome is True else (outcome or "failed")
        return all(v == "ok" for v in results.values()), results


def metrics_text() -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(), CONTENT_TYPE_LATEST


def ops_app(health: Health):  # noqa: ANN201
    """An ASGI app: /healthz, /readyz, /metrics; 404 for anything else."""
    import asyncio
    import json

    async def app(scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        if path == "/healthz":
            status, body, ctype = 200, b"ok\n", "text/plain; charset=utf-8"
        elif path == "/readyz":
            ok, results = await asyncio.to_thread(health.ready)
            status, ctype = (200 if ok else 503), "application/json"
            body = json.dumps({"ready": ok, "checks": results}).encode()
        elif path == "/metrics":
            body, ctype = metrics_text()
            status = 200
        else:
            status, body, ctype = 404, b"not found\n", "text/plain; charset=utf-8"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app

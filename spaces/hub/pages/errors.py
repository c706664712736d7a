"""Errors as pages: a browser that asks for a page gets an HTML error page; API, git and download clients keep
the JSON answers with the ``X-Error-*`` headers of ``spaces.hub.errors``.

The hub's handlers are wrapped, not replaced: for a non-page request the original handler answers unchanged.
A page request that needs a signed-in user (401) is redirected to ``/login?next=...`` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from spaces.errors import SpacesError
from spaces.hub.pages.web import login_url, render

log = logging.getLogger("spaces.pages")
_NOT_PAGES = ("/api/", "/static/")
_GIT_TAILS = ("/info/refs", "/git-upload-pack", "/git-receive-pack")

TITLES = {400: "That did not work", 401: "Please sign in", 403: "Not allowed", 404: "Not found",
          405: "Not allowed", 409: "Already exists", 413: "Too large", 500: "Something went wrong"}


def wants_page(request: Request) -> bool:
    path = request.url.path
    if path.startswith(_NOT_PAGES) or path.endswith(_GIT_TAILS) or "/resolve/" in path:
        return False
    return getattr(request.state, "page", False) or "text/html" in request.headers.get("accept", "")


def _friendly(status: int, code: str, message: str) -> str:
    if code == "RepoNotFound":
        return "This Space does not exist, or it is private and you do not have access to it."
    if code == "HTTPError" and status == 404:
        return "There is no page at this address."
    if status >= 500:
        return "The server hit an unexpected problem. Try again; if it keeps happening, tell the operator."
    return message


async def error_page(request: Request, status: int, code: str, message: str) -> Response:
    if status == 401:
        return RedirectResponse(login_url(request), status_code=303)
    try:
        return await render(request, "error.html", status=status, status_code=status, code=code,
                            title=TITLES.get(status, "Error"), message=_friendly(status, code, message))
    except Exception:  # never let the error page itself fail with a traceback
        log.exception("rendering the error page failed")
        return Response(f"{status} {TITLES.get(status, 'Error')}", status_code=status, media_type="text/plain")


Handler = Callable[[Request, Exception], Awaitable[Response]]


def install(app: FastAPI) -> None:
    """Wrap the app's exception handlers (call after ``spaces.hub.errors.install``)."""

    def wrap(exc_class: type, describe: Callable[[Exception], tuple[int, str, str]]) -> None:
        original: Handler | None = app.exception_handlers.get(exc_class)

        async def handler(request: Request, exc: Exception) -> Response:
            if wants_page(request) or original is None:
                status, code, message = describe(exc)
                if status >= 500:
                    log.error("error on page %s %s", request.method, request.url.path, exc_info=exc)
                return await error_page(request, status, code, message)
            return await original(request, exc)

        app.exception_handlers[exc_class] = handler

    wrap(SpacesError, lambda e: (e.status, e.code, e.message))  # type: ignore[attr-defined]
    wrap(RequestValidationError, lambda e: (400, "BadRequest", "The request was not understood."))
    wrap(StarletteHTTPException, lambda e: (e.status_code, "HTTPError", str(e.detail)))  # type: ignore[attr-defined]
    wrap(Exception, lambda e: (500, "InternalError", ""))

"""Map every error to the answer the real clients read: status, ``X-Error-Code``, ``X-Error-Message``, JSON body.

This is the one boundary where exceptions become HTTP; nothing else in the hub builds error responses, and no
traceback ever reaches a client (unexpected errors are logged here and answered with a plain 500).
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from spaces.errors import SpacesError
from spaces.hub.context import request_id

log = logging.getLogger("spaces.hub")


def _header_safe(message: str) -> str:
    # Header values must be latin-1, one line and free of control bytes (a NUL makes the server drop the
    # connection instead of answering); the full text stays in the JSON body.
    one_line = " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", message).split())
    return one_line.encode("latin-1", "replace").decode("latin-1")[:1000]


def error_response(request: Request, status: int, code: str, message: str, **extra: object) -> JSONResponse:
    # One line per error answer, naming the request id the client shows the user (never the body: no secrets).
    log.log(logging.WARNING if status >= 500 else logging.INFO, "request %s: %s %s -> %d %s: %s", request_id.get(),
            request.method, request.url.path, status, code, _header_safe(message)[:300])
    body: dict[str, object] = {"error": message, **extra}
    # set here too: a 500 is answered outside the middleware that stamps every other answer
    headers = {"X-Error-Code": code, "X-Error-Message": _header_safe(message), "X-Request-Id": request_id.get()}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="spaces", Basic realm="spaces"'
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(SpacesError)
    async def _spaces_error(request: Request, exc: SpacesError) -> JSONResponse:
        extra = dict(exc.extra)
        repo_id = extra.pop("repo_id", None)
        if repo_id is not None:
            # create_repo / duplicate_repo with exist_ok read "url" from a 409 body
            extra["url"] = request.app.state.hub.space_url(repo_id)
        url_path = extra.pop("url_path", None)
        if url_path is not None:  # other things that exist (a bucket): the client reads "url" the same way
            extra["url"] = request.app.state.hub.url(url_path)
        return error_response(request, exc.status, exc.code, exc.message, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return error_response(request, 400, "BadRequest", "Invalid request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return error_response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s: unhandled error on %s %s", request_id.get(), request.method, request.url.path)
        return error_response(request, 500, "InternalError",
                              "Internal server error; the operator can find the details in the server log.")

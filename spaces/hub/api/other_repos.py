"""Model and dataset repos: none are hosted here yet, so every path that names one answers what the Hub answers
for a repo that does not exist (404 with ``X-Error-Code: RepoNotFound``). The real client turns that into
``RepositoryNotFoundError``, so ``repo_exists``, ``file_exists`` and ``revision_exists`` return False instead of
raising, and no call that leaves ``repo_type`` out (which means "model") can reach the Space of the same name.

Listing answers an empty list: there is nothing of those types to list.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from spaces.errors import RepoNotFound

router = APIRouter()
# the 404s below are the absence of an API, not part of one: they stay out of the OpenAPI description

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


@router.get("/api/models")
@router.get("/api/datasets")
async def list_none() -> list:
    return []


async def _not_found(request: Request, repo_type: str, ns: str, name: str) -> None:
    # Read the body out first (the body limit still applies): answering while a client is still sending, say a
    # commit, makes the server drop the connection, and the client's next request on it then fails.
    async for _ in request.stream():
        pass
    raise RepoNotFound(f"{ns}/{name}", repo_type)


@router.api_route("/api/models/{ns}/{name}", methods=METHODS, include_in_schema=False)
@router.api_route("/api/models/{ns}/{name}/{rest:path}", methods=METHODS, include_in_schema=False)
async def model_api(ns: str, name: str, request: Request) -> None:
    await _not_found(request, "model", ns, name)


@router.api_route("/api/datasets/{ns}/{name}", methods=METHODS, include_in_schema=False)
@router.api_route("/api/datasets/{ns}/{name}/{rest:path}", methods=METHODS, include_in_schema=False)
async def dataset_api(ns: str, name: str, request: Request) -> None:
    await _not_found(request, "dataset", ns, name)


@router.api_route("/datasets/{ns}/{name}/resolve/{rest:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def dataset_resolve(ns: str, name: str, request: Request) -> None:
    await _not_found(request, "dataset", ns, name)


@router.api_route("/{ns}/{name}/resolve/{rest:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def model_resolve(ns: str, name: str, request: Request) -> None:
    await _not_found(request, "model", ns, name)

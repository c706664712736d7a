"""Buckets and Space volumes, the Hub's persistent storage API (``HfApi.create_bucket``, ``bucket_info``,
``list_buckets``, ``delete_bucket``, ``set_space_volumes``, ``delete_space_volumes``; ``hf buckets`` and
``hf spaces volumes``). A bucket's files are written by the Spaces that mount it; moving files in and out of a
bucket through the API (the Hub does it over Xet) is not served here yet."""

from __future__ import annotations

from fastapi import APIRouter, Request

from spaces.db.models import Bucket
from spaces.hub.api.common import in_session, json_body
from spaces.hub.api.repos import parse_visibility
from spaces.hub.serialize import iso

router = APIRouter()


def bucket_json(request: Request, bucket: Bucket) -> dict:
    buckets = request.app.state.hub.buckets
    size, files = buckets.usage(bucket)
    bucket_id = buckets.bucket_id(bucket)
    return {"id": bucket_id, "private": bucket.private, "createdAt": iso(bucket.created_at), "size": size,
            "totalFiles": files, "sizeLimit": bucket.size_mb * 1024 * 1024,
            "url": request.app.state.hub.url(f"/buckets/{bucket_id}")}


@router.post("/api/buckets/{ns}/{name}")
async def create_bucket(ns: str, name: str, request: Request) -> dict:
    data = await json_body(request)
    private = bool(parse_visibility(data))

    def work(s, p):  # noqa: ANN001, ANN202
        bucket = request.app.state.hub.buckets.create(s, p, ns, name, private=private)
        return bucket_json(request, bucket)
    return await in_session(request, work, auth_required=True)


@router.get("/api/buckets/{ns}/{name}")
async def bucket_info(ns: str, name: str, request: Request) -> dict:
    def work(s, p):  # noqa: ANN001, ANN202
        return bucket_json(request, request.app.state.hub.buckets.get(s, f"{ns}/{name}", p))
    return await in_session(request, work)


@router.delete("/api/buckets/{ns}/{name}")
async def delete_bucket(ns: str, name: str, request: Request) -> dict:
    def work(s, p):  # noqa: ANN001, ANN202
        buckets = request.app.state.hub.buckets
        buckets.delete(s, p, buckets.get(s, f"{ns}/{name}", p))
        return {}
    return await in_session(request, work, auth_required=True)


@router.get("/api/buckets/{ns}")
async def list_buckets(ns: str, request: Request) -> list[dict]:
    search = request.query_params.get("search")

    def work(s, p):  # noqa: ANN001, ANN202
        return [bucket_json(request, b) for b in request.app.state.hub.buckets.list(s, p, ns, search)]
    return await in_session(request, work)


@router.put("/api/spaces/{ns}/{name}/volumes")
async def set_volumes(ns: str, name: str, request: Request) -> dict:
    data = await json_body(request)

    def work(s, p):  # noqa: ANN001, ANN202
        hub = request.app.state.hub
        space = hub.spaces.get_writable(s, f"{ns}/{name}", p)
        volumes = hub.buckets.set_volumes(s, p, space, data.get("volumes"))
        return {"volumes": [v.to_json() for v in volumes]}
    return await in_session(request, work, auth_required=True)


@router.delete("/api/spaces/{ns}/{name}/volumes")
async def delete_volumes(ns: str, name: str, request: Request) -> dict:
    def work(s, p):  # noqa: ANN001, ANN202
        hub = request.app.state.hub
        hub.buckets.delete_volumes(s, hub.spaces.get_writable(s, f"{ns}/{name}", p))
        return {}
    return await in_session(request, work, auth_required=True)

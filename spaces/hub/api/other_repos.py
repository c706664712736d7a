"""Model and dataset repositories: listings (``list_models``, ``list_datasets``), info (``model_info``,
``dataset_info``, at a revision too), the caller's repositories of every type (``list_user_repos``, which
``hf repos list`` calls), and what the Hub answers for paths under a model or dataset that no route serves.

Files, history, refs, commits, branches, tags, discussions and settings are the type-generic routes of
``files``, ``branches``, ``discussions`` and ``repos`` (``common.typed_route``); downloads are ``files.resolve``.
A model's or dataset's info names the Spaces that use it: readable Spaces whose README lists it under
``models:`` or ``datasets:``, as the Hub's ``spaces`` field does.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session

from spaces.db.models import Account, Membership, Repo, Space
from spaces.errors import NotFound, RevisionNotFound
from spaces.hub.api.common import after, in_session, query_int, repo_type_of
from spaces.hub.api.spaces import readable as readable_spaces
from spaces.hub.serialize import iso, sibling_json
from spaces.services import accounts
from spaces.services.accounts import Principal
from spaces.storage.gitrepo import TreeEntry

router = APIRouter()

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
SORTS = {"lastModified": Repo.last_modified, "last_modified": Repo.last_modified, "createdAt": Repo.created_at,
         "created_at": Repo.created_at, "likes": Repo.likes, "trendingScore": Repo.likes,
         "trending_score": Repo.likes, "downloads": Repo.likes, "id": Repo.key}


def readable(q, p: Principal | None):  # noqa: ANN001, ANN201
    """``q`` (a select over Repo) narrowed to what ``p`` may read: public rows, and private ones of the caller or
    an organization of theirs (all for an admin)."""
    if p is None:
        return q.where(Repo.private.is_(False))
    if p.account.is_admin:
        return q
    orgs = select(Membership.org_id).where(Membership.user_id == p.account.id)
    return q.where(or_(Repo.private.is_(False), Repo.owner_id == p.account.id, Repo.owner_id.in_(orgs)))


def card_list(card: dict, key: str) -> list[str]:
    value = card.get(key)
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def used_by(s: Session, p: Principal | None, kind: str, repo_id: str) -> list[str]:
    """Ids of the Spaces ``p`` may read whose README lists ``repo_id`` under ``models:`` / ``datasets:``."""
    key = "models" if kind == "model" else "datasets"
    q = readable_spaces(select(Space), p).where(
        func.lower(cast(Space.card_data, String)).like(f"%{repo_id.lower()}%"))
    return sorted(sp.repo_id for sp in s.scalars(q)
                  if repo_id.lower() in {m.lower() for m in card_list(sp.card_data or {}, key)})


def repo_json(row: Repo, *, siblings: list[TreeEntry] | None = None, blobs: bool = False, sha: str | None = None,
              spaces: list[str] | None = None, pointers: dict | None = None) -> dict:
    """ModelInfo / DatasetInfo as huggingface_hub 2.4.0 reads them (every field it requires, none of a Space's)."""
    card = dict(row.card_data or {})
    tags = card_list(card, "tags")
    if isinstance(card.get("license"), str):
        tags.append(f"license:{card['license']}")
    data = {"_id": row.id, "id": row.repo_id, "author": row.owner.name, "sha": sha or row.sha,
            "lastModified": iso(row.last_modified), "createdAt": iso(row.created_at), "private": row.private,
            "gated": False, "disabled": False, "downloads": 0, "likes": row.likes, "tags": tags, "cardData": card}
    if row.repo_type == "model":
        data["modelId"] = row.repo_id
        data["library_name"] = card.get("library_name") if isinstance(card.get("library_name"), str) else None
        data["pipeline_tag"] = card.get("pipeline_tag") if isinstance(card.get("pipeline_tag"), str) else None
    if siblings is not None:
        data["siblings"] = [sibling_json(e, blobs, (pointers or {}).get(e.oid)) for e in siblings if e.type == "file"]
    if spaces is not None:
        data["spaces"] = spaces
    return data


# ---- listings -------------------------------------------------------------------------------------------
@router.get("/api/models")
@router.get("/api/datasets")
async def list_repos(request: Request) -> JSONResponse:
    hub = request.app.state.hub
    kind = repo_type_of(request)
    qp = request.query_params
    page = min(query_int(request, "limit", 10**9, 1, 10**9), hub.settings.limits.page_size)
    offset = query_int(request, "offset", 0)
    direction = query_int(request, "direction", -1, -1, 1)

    def work(s, p):  # noqa: ANN001, ANN202
        q = readable(select(Repo).join(Account, Repo.owner_id == Account.id).where(Repo.repo_type == kind), p)
        if qp.get("search"):
            q = q.where(Repo.key.like(f"%{qp['search'].lower()}%"))
        if qp.get("author"):
            q = q.where(Account.key == qp["author"].lower())
        for tag in qp.getlist("filter"):
            q = q.where(func.lower(cast(Repo.card_data, String)).like(f'%"{tag.lower()}"%'))
        column = SORTS.get(qp.get("sort") or "", Repo.created_at)
        q = q.order_by(column.desc() if direction < 0 else column.asc(), Repo.key)
        rows = list(s.scalars(q.offset(offset).limit(page + 1)))
        return [repo_json(r) for r in rows[:page]], len(rows) > page

    items, more = await in_session(request, work)
    headers = {}
    if more:
        params = [(k, v) for k, v in qp.multi_items() if k != "offset"] + [("offset", str(offset + page))]
        headers["Link"] = f'<{hub.url(request.url.path)}?{urlencode(params)}>; rel="next"'
    return JSONResponse(items, headers=headers)


@router.get("/api/settings/repositories")
@router.get("/api/organizations/{namespace}/settings/repositories")
async def user_repos(request: Request, namespace: str | None = None) -> list[dict]:
    """``list_user_repos`` (``hf repos list``): every repository of the caller, or of an organization the caller
    belongs to, of every type, with its storage in bytes."""
    hub = request.app.state.hub

    def work(s, p):  # noqa: ANN001, ANN202
        owner = p.account
        if namespace is not None:
            owner = accounts.find_account(s, namespace)
            if owner is None or not accounts.may_read_namespace(s, p, owner):
                raise NotFound(f"Organization '{namespace}' not found.", code="OrganizationNotFound")
        found = [("space", sp, hub.spaces.repo(sp)) for sp in s.scalars(select(Space).where(Space.owner_id == owner.id))]
        found += [(r.repo_type, r, hub.store(r.repo_type).repo(r))
                  for r in s.scalars(select(Repo).where(Repo.owner_id == owner.id))]
        sizes = [(kind, row, git.size_bytes() if git.exists() else 0) for kind, row, git in found]
        total = sum(size for _, _, size in sizes) or 1
        return [{"id": row.repo_id, "type": kind, "updatedAt": iso(row.last_modified),
                 "visibility": "private" if row.private else "public", "storage": size,
                 "storagePercent": round(100 * size / total, 1)}
                for kind, row, size in sorted(sizes, key=lambda x: x[1].last_modified, reverse=True)]
    return await in_session(request, work, auth_required=True)


# ---- info -----------------------------------------------------------------------------------------------
async def _info(request: Request, ns: str, name: str, rev: str | None) -> dict:
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)
    blobs = request.query_params.get("blobs") in ("true", "1")

    def work(s, p):  # noqa: ANN001, ANN202
        row = store.get(s, f"{ns}/{name}", p)
        git = store.repo(row)
        sha = row.sha if rev is None else git.resolve(rev)
        if sha is None and rev is not None:
            raise RevisionNotFound(rev)
        siblings = git.list_tree(sha, recursive=True) if sha else []
        pointers = git.lfs_pointers(siblings) if blobs else None
        return repo_json(row, siblings=siblings, blobs=blobs, sha=sha, spaces=used_by(s, p, kind, row.repo_id),
                         pointers=pointers)
    return await in_session(request, work)


@router.get("/api/models/{ns}/{name}")
@router.get("/api/datasets/{ns}/{name}")
async def repo_info(ns: str, name: str, request: Request) -> dict:
    return await _info(request, ns, name, None)


@router.get("/api/models/{ns}/{name}/revision/{rest:path}")
@router.get("/api/datasets/{ns}/{name}/revision/{rest:path}")
async def repo_info_revision(ns: str, name: str, rest: str, request: Request) -> dict:
    rev, _ = after(request, "revision", 5)
    return await _info(request, ns, name, rev)


@router.post("/api/models/{ns}/{name}/duplicate")
@router.post("/api/datasets/{ns}/{name}/duplicate")
async def duplicate(ns: str, name: str, request: Request) -> dict:
    """``duplicate_repo`` of a model or dataset: its files, as one commit, under ``repository``."""
    from spaces.hub.api.common import get_str, json_body
    from spaces.hub.api.repos import parse_visibility

    data = await json_body(request)
    target = get_str(data, "repository", required=True)
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)

    def work(s, p):  # noqa: ANN001, ANN202
        copy = store.duplicate(s, p, store.get(s, f"{ns}/{name}", p), target, private=parse_visibility(data))
        return {"url": hub.repo_url(kind, copy.repo_id), "filesCopyPending": False}
    return await in_session(request, work, auth_required=True)


# ---- what no route serves -------------------------------------------------------------------------------
# the 404s below are the absence of an API, not part of one: they stay out of the OpenAPI description
@router.api_route("/api/models/{ns}/{name}/{rest:path}", methods=METHODS, include_in_schema=False)
@router.api_route("/api/datasets/{ns}/{name}/{rest:path}", methods=METHODS, include_in_schema=False)
async def unrouted(ns: str, name: str, rest: str, request: Request) -> None:
    """A missing (or unreadable) repository is RepoNotFound, whatever the path asks for, as on the Hub: the
    client then answers ``repo_exists`` / ``file_exists`` with False. An existing one has no such endpoint."""
    # Read the body out first (the body limit still applies): answering while a client is still sending, say a
    # commit, makes the server drop the connection, and the client's next request on it then fails.
    async for _ in request.stream():
        pass
    hub = request.app.state.hub
    store = hub.store(repo_type_of(request))
    await in_session(request, lambda s, p: store.get(s, f"{ns}/{name}", p))
    raise NotFound(f"No endpoint {request.method} {request.url.path}.")

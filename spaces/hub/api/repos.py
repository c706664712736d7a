"""Accounts and repositories: whoami, create / delete / move a Space, a model or a dataset, settings, README
validation. Every call that names a repository by id reads its type from the request (clients leave it out for
models) and acts on that type's repository only: ``delete_repo("alice/x")`` deletes the model alice/x, never the
Space alice/x."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from spaces.domain import cardconfig
from spaces.errors import BadRequest
from spaces.hub.api.common import REPO_TYPES, get_int, get_str, in_session, json_body, repo_type_of, typed_route
from spaces.services import accounts
from spaces.services import templates as template_spaces
from spaces.services.spaces import CreateRequest, KeyValue
from spaces.templates_catalog import Template, find_template, list_templates

router = APIRouter()


def parse_kv_list(data: dict, key: str) -> list[KeyValue]:
    items = data.get(key) or []
    if not isinstance(items, list):
        raise BadRequest(f"Field '{key}' must be a list of {{key, value, description?}} objects.")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise BadRequest(f"Each entry of '{key}' needs a string 'key'.")
        value = item.get("value", "")
        out.append(KeyValue(item["key"], "" if value is None else str(value), item.get("description")))
    return out


def parse_visibility(data: dict) -> bool | None:
    """True for private. Accepts 2.x's ``visibility`` and 0.x/1.x's ``private``; None when neither is given."""
    vis = data.get("visibility")
    if vis is not None:
        if vis not in ("public", "private", "protected"):
            raise BadRequest("visibility must be 'public', 'private' or 'protected'.")
        return vis != "public"
    private = data.get("private")
    if private is None:
        return None
    if not isinstance(private, bool):
        raise BadRequest("Field 'private' must be a boolean.")
    return private


@router.get("/api/health")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/api/agent-harnesses")
async def agent_harnesses() -> dict:
    return {"standardEnvVars": [], "harnesses": {}}


@router.get("/api/whoami-v2")
async def whoami(request: Request) -> dict:
    def work(s, p):  # noqa: ANN001, ANN202
        user = p.account
        return {
            "type": "user", "id": user.id, "name": user.name, "fullname": user.fullname, "email": user.email,
            "emailVerified": bool(user.email), "isPro": False, "canPay": False, "isAdmin": user.is_admin,
            "avatarUrl": "",
            "orgs": [{"type": "org", "id": o.id, "name": o.name, "fullname": o.fullname, "roleInOrg": role}
                     for o, role in accounts.user_orgs(s, user)],
            "auth": {"type": "access_token",
                     "accessToken": {"displayName": p.token.name if p.token else "session", "role": p.role}},
        }
    return await in_session(request, work, auth_required=True)


@router.post("/api/repos/create")
async def create_repo(request: Request) -> JSONResponse:
    data = await json_body(request)
    repo_type = body_type(data)
    name = get_str(data, "name", required=True)
    org = get_str(data, "organization")
    hub = request.app.state.hub
    if repo_type != "space":
        def work_repo(s, p):  # noqa: ANN001, ANN202
            row = hub.store(repo_type).create(s, p, org or p.account.name, name, private=bool(parse_visibility(data)))
            hub.announce(s, row, repo_type, "repo", "create", "repo")
            return {"url": hub.repo_url(repo_type, row.repo_id), "name": row.repo_id, "id": row.id}
        return JSONResponse(await in_session(request, work_repo, auth_required=True))
    sdk = get_str(data, "sdk", required=True)
    template = _template(data, sdk)

    def work(s, p):  # noqa: ANN001, ANN202
        req = CreateRequest(namespace=org or p.account.name, name=name, sdk=sdk,
                            private=bool(parse_visibility(data)), hardware=get_str(data, "hardware"),
                            sleep_time=get_int(data, "sleepTimeSeconds"),
                            secrets=parse_kv_list(data, "secrets"), variables=parse_kv_list(data, "variables"))
        space = hub.spaces.create(s, p, req)
        if template is not None:  # as the New Space form does: the template's files on top of the seed
            try:
                seeded = template_spaces.files_of(hub.spaces, s, template.repo_id)
                hub.spaces.commit(s, p, space, additions=template.additions(name, seeded),
                                  message=f"Start from the {template.name} template")
            except BaseException:
                hub.spaces.repo(space).delete()  # the row rolls back; the repository must go too
                raise
        if data.get("volumes") is not None:  # create_repo(space_volumes=...): refused volumes refuse the create
            hub.buckets.set_volumes(s, p, space, data["volumes"])
        hub.announce(s, space, "space", "repo", "create", "repo")
        return {"url": hub.space_url(space.repo_id), "name": space.repo_id, "id": space.id}

    return JSONResponse(await in_session(request, work, auth_required=True))


def body_type(data: dict) -> str:
    """The repository type a JSON body names (``type``; clients leave it out for models)."""
    repo_type = data.get("type") or "model"
    if repo_type not in REPO_TYPES:
        raise BadRequest(f"Invalid repo type '{repo_type}': use one of {', '.join(REPO_TYPES)}.")
    return repo_type


def _template(data: dict, sdk: str) -> Template | None:
    """The starter template ``create_repo(space_template=...)`` names (listed by /api/spaces/templates)."""
    wanted = get_str(data, "template")
    if wanted is None:
        return None
    template = find_template(wanted)
    if template is None:
        names = ", ".join(t.repo_id for t in list_templates()) or "none"
        raise BadRequest(f"Unknown Space template '{wanted}'; this server has: {names}.")
    if template.sdk != sdk:
        raise BadRequest(f"The template {template.repo_id} is a {template.sdk} Space; pass sdk '{template.sdk}'.")
    return template


def _repo_id_from(data: dict, key_name: str = "name", key_org: str = "organization") -> tuple[str | None, str]:
    name = get_str(data, key_name, required=True)
    return get_str(data, key_org), name


@router.delete("/api/repos/delete")
async def delete_repo(request: Request) -> dict:
    data = await json_body(request)
    org, name = _repo_id_from(data)
    repo_type = body_type(data)
    hub = request.app.state.hub

    def work(s, p):  # noqa: ANN001, ANN202
        store = hub.store(repo_type)  # never another type's repository of the same name
        row = store.get_writable(s, f"{org or p.account.name}/{name}", p)
        hub.announce(s, row, repo_type, "repo", "delete", "repo")  # who watches it is read before it goes
        store.delete(s, row)
        return {}
    return await in_session(request, work, auth_required=True)


@router.post("/api/repos/move")
async def move_repo(request: Request) -> dict:
    data = await json_body(request)
    source = get_str(data, "fromRepo", required=True)
    target = get_str(data, "toRepo", required=True)
    repo_type = body_type(data)
    hub = request.app.state.hub

    def work(s, p):  # noqa: ANN001, ANN202
        store = hub.store(repo_type)
        row = store.get_writable(s, source, p)  # 404 / 403 first, as for any write
        store.move(s, p, row, target)
        hub.announce(s, row, repo_type, "repo", "move", "repo",
                     movedTo={"name": row.repo_id, "owner": {"id": row.owner_id}})
        return {"url": hub.repo_url(repo_type, row.repo_id), "name": row.repo_id}
    return await in_session(request, work, auth_required=True)


@typed_route(router, ["PUT"], "/settings")
async def update_settings(ns: str, name: str, request: Request) -> dict:
    data = await json_body(request)
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)

    def work(s, p):  # noqa: ANN001, ANN202
        row = store.get_writable(s, f"{ns}/{name}", p)
        private = parse_visibility(data)
        if private is not None:
            store.set_visibility(s, row, private)
            hub.announce(s, row, kind, "repo", "update", "repo.config")
        return {"private": row.private}
    return await in_session(request, work, auth_required=True)


@router.post("/api/validate-yaml")
async def validate_yaml(request: Request) -> JSONResponse:
    data = await json_body(request, anonymous=True)
    content = data.get("content")
    if not isinstance(content, str):
        return JSONResponse({"errors": [{"message": "Field 'content' must be the README text."}], "warnings": []},
                            status_code=400)
    if (data.get("repoType") or "space") != "space":
        # a model or dataset card: the Space configuration rules (sdk, app_port...) are not its rules
        error = cardconfig.parse_readme(content).error
        return JSONResponse({"errors": [{"message": error.message}] if error else [], "warnings": []},
                            status_code=400 if error else 200)
    errors, warnings = cardconfig.validate_yaml_for_api(content)
    body = {"errors": [{"message": m} for m in errors], "warnings": [{"message": m} for m in warnings]}
    return JSONResponse(body, status_code=400 if errors else 200)

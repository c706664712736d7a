"""Usage, quotas and capacity: ours, not Hugging Face's (``/api/usage``, ``/api/admin/...``).

Usage of an account is visible to the account itself (a user, or any member of an organization) and to
administrators; nodes and the queue to administrators only. Answers 503 when no runtime is attached.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from spaces.errors import Forbidden, NotFound, SpacesError
from spaces.hub.api.common import get_int, get_str, in_session, json_body
from spaces.services import accounts

router = APIRouter()


def _capacity(request: Request):  # noqa: ANN202
    capacity = request.app.state.hub.capacity
    if capacity is None:
        raise SpacesError("No runtime is attached to this hub.", code="NoRuntime", status=503)
    return capacity


@router.get("/api/usage/{name}")
async def usage(name: str, request: Request) -> dict:
    capacity = _capacity(request)

    def work(s, p):  # noqa: ANN001, ANN202
        account = accounts.find_account(s, name)
        if account is None or not accounts.may_read_namespace(s, p, account):
            raise NotFound(f"No account named {name} that you can see.")
        return capacity.report(s, account)
    return await in_session(request, work, auth_required=True)


def _admin(p) -> None:  # noqa: ANN001
    if not p.account.is_admin:
        raise Forbidden("Only administrators can do this.")


@router.get("/api/admin/nodes")
async def nodes(request: Request) -> dict:
    capacity = _capacity(request)

    def work(s, p):  # noqa: ANN001, ANN202
        _admin(p)
        return {"nodes": capacity.nodes_report(s), "queue": capacity.queue_report(s)}
    return await in_session(request, work, auth_required=True)


@router.post("/api/admin/quota/{name}")
async def grant(name: str, request: Request) -> dict:
    """Body ``{"key": "running:t4-small" | "running:*" | "gpu_minutes" | "credits_micro_usd", "value": int}``
    (-1 = unlimited); answers the account's usage report."""
    capacity = _capacity(request)
    data = await json_body(request)
    key = get_str(data, "key", required=True)
    value = get_int(data, "value")
    if value is None:
        raise SpacesError("Field 'value' is required (an integer, -1 for unlimited).", code="BadRequest", status=400)

    def work(s, p):  # noqa: ANN001, ANN202
        _admin(p)
        account = accounts.find_account(s, name)
        if account is None:
            raise NotFound(f"No account named {name}.")
        from spaces.runtime.quotagrants import set_grant

        set_grant(s, account, key, value)
        return capacity.report(s, account)
    return await in_session(request, work, auth_required=True)

"""Webhooks over the Hub's API (``create_webhook``, ``list_webhooks``, ``get_webhook``, ``update_webhook``,
``enable_webhook``, ``disable_webhook``, ``delete_webhook``): a caller sees and changes their own only. The rules
and the delivery are :mod:`spaces.services.webhooks`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from spaces.hub.api.common import in_session, json_body
from spaces.services import webhooks as wh

router = APIRouter()
BASE = "/api/settings/webhooks"


def _private_targets(request: Request) -> bool:
    return request.app.state.hub.settings.webhooks_private_targets


@router.get(BASE)
async def list_webhooks(request: Request) -> list[dict]:
    return await in_session(request, lambda s, p: [wh.webhook_json(h) for h in wh.listing(s, p)],
                            auth_required=True)


@router.post(BASE)
async def create_webhook(request: Request) -> dict:
    data = await json_body(request)
    private = _private_targets(request)
    return await in_session(request, lambda s, p: {"webhook": wh.webhook_json(wh.create(s, p, data,
                                                                                          private_targets=private))},
                            auth_required=True)


@router.get(BASE + "/{webhook_id}")
async def get_webhook(webhook_id: str, request: Request) -> dict:
    return await in_session(request, lambda s, p: {"webhook": wh.webhook_json(wh.get(s, p, webhook_id))},
                            auth_required=True)


@router.post(BASE + "/{webhook_id}")
async def update_webhook(webhook_id: str, request: Request) -> dict:
    data = await json_body(request)
    private = _private_targets(request)

    def work(s, p):  # noqa: ANN001, ANN202
        wh.accounts_write(p)
        return {"webhook": wh.webhook_json(wh.update(s, wh.get(s, p, webhook_id), data, private_targets=private))}
    return await in_session(request, work, auth_required=True)


@router.post(BASE + "/{webhook_id}/enable")
@router.post(BASE + "/{webhook_id}/disable")
async def switch_webhook(webhook_id: str, request: Request) -> dict:
    on = request.url.path.endswith("/enable")

    def work(s, p):  # noqa: ANN001, ANN202
        wh.accounts_write(p)
        hook = wh.get(s, p, webhook_id)
        hook.disabled = not on
        return {"webhook": wh.webhook_json(hook)}
    return await in_session(request, work, auth_required=True)


@router.delete(BASE + "/{webhook_id}")
async def delete_webhook(webhook_id: str, request: Request) -> dict:
    def work(s, p):  # noqa: ANN001, ANN202
        wh.accounts_write(p)
        s.delete(wh.get(s, p, webhook_id))
        return {}
    return await in_session(request, work, auth_required=True)

"""Webhooks: a user asks to be told (an HTTP POST of the Hub's payload, version 3) when a repository changes.

What is watched: a repository (``{"type": "model" | "dataset" | "space", "name": "alice/x"}``) or every repository
of a user or organization (``{"type": "user" | "org", "name": "alice"}``); for the domains ``repo`` (content
pushed or committed on any branch, created, deleted, moved, visibility) and ``discussion`` (opened, commented,
status). A webhook fires only for repositories its owner may read, so a private repository is never announced to
anyone who could not see it.

Delivery is after the change commits, from one sender thread per hub process: a POST with
``X-Webhook-Secret`` (the webhook's secret, as on the Hub), 10 s timeout, three tries with a growing pause. It is
best effort, as on the Hub: a delivery in flight when the process stops is not retried later. Targets must be
public addresses: loopback, private, link-local and reserved ones are refused (an SSRF guard: the hub must not be
a way to reach the services beside it) unless the operator allows them (``SPACES_WEBHOOKS_PRIVATE_TARGETS``).
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from spaces.db.models import Account, Webhook
from spaces.db.session import after_commit
from spaces.errors import BadRequest, NotFound
from spaces.services import accounts
from spaces.services.accounts import Principal

log = logging.getLogger("spaces.webhooks")

WATCH_TYPES = ("model", "dataset", "space", "user", "org")
DOMAINS = ("repo", "discussion")
MAX_WATCHED = 100
MAX_URL = 2000
TRIES = 3


# ---- the rules ----------------------------------------------------------------------------------------------
def _watched(value: object) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value or len(value) > MAX_WATCHED:
        raise BadRequest(f"'watched' must be a list of 1 to {MAX_WATCHED} {{type, name}} items.")
    out = []
    for item in value:
        if not isinstance(item, dict) or item.get("type") not in WATCH_TYPES or not isinstance(item.get("name"), str) \
                or not 0 < len(item["name"]) <= 200:
            raise BadRequest(f"Each watched item needs a 'type' ({', '.join(WATCH_TYPES)}) and a 'name'.")
        out.append({"type": item["type"], "name": item["name"]})
    return out


def _domains(value: object) -> list[str]:
    if value is None:
        return list(DOMAINS)
    if not isinstance(value, list) or not value or any(d not in DOMAINS for d in value):
        raise BadRequest(f"'domains' must be a non-empty list of: {', '.join(DOMAINS)}.")
    return sorted(set(value))


def check_url(url: object, *, private_targets: bool) -> str:
    """``url`` if the hub may POST to it: http(s), a host, and (unless allowed) only public addresses."""
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise BadRequest("'url' must be an http or https URL.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest("'url' must be an http or https URL with a host.")
    if not private_targets:
        try:
            infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        except (socket.gaierror, UnicodeError, ValueError):
            raise BadRequest(f"The webhook's host '{parts.hostname}' does not resolve.") from None
        for info in infos:
            ip = ipaddress.ip_address(info[4][0])
            if not ip.is_global:
                raise BadRequest(f"The webhook's host '{parts.hostname}' is a private or local address ({ip}): "
                                 "webhooks go to public addresses only on this server.")
    return url


def create(s: Session, p: Principal, data: dict, *, private_targets: bool) -> Webhook:
    accounts_write(p)
    if data.get("jobSourceId") is not None:
        raise BadRequest("Webhooks that start Jobs are not supported here; give a 'url'.")
    hook = Webhook(owner_id=p.account.id, url=check_url(data.get("url"), private_targets=private_targets),
                   watched=_watched(data.get("watched")), domains=_domains(data.get("domains")),
                   secret=_secret(data.get("secret")), disabled=False)
    s.add(hook)
    s.flush()
    return hook


def update(s: Session, hook: Webhook, data: dict, *, private_targets: bool) -> Webhook:
    if data.get("url") is not None:
        hook.url = check_url(data["url"], private_targets=private_targets)
    if data.get("watched"):  # update_webhook sends [] when the caller gave none: unchanged, not "watch nothing"
        hook.watched = _watched(data["watched"])
    if data.get("domains") is not None:
        hook.domains = _domains(data["domains"])
    if "secret" in data:
        hook.secret = _secret(data["secret"])
    s.flush()
    return hook


def _secret(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 200 or any(ord(c) < 32 for c in value):
        raise BadRequest("'secret' must be a string of at most 200 printable characters.")
    return value


def accounts_write(p: Principal) -> None:
    if not p.can_write:
        raise BadRequest("Managing webhooks needs a write token.")


def get(s: Session, p: Principal, webhook_id: str) -> Webhook:
    """One of the caller's webhooks; anyone else's is NotFound, as a missing one."""
    hook = s.get(Webhook, webhook_id)
    if hook is None or hook.owner_id != p.account.id:
        raise NotFound(f"Webhook {webhook_id} not found.", code="WebhookNotFound")
    return hook


def listing(s: Session, p: Principal) -> list[Webhook]:
    return list(s.scalars(select(Webhook).where(Webhook.owner_id == p.account.id).order_by(Webhook.created_at)))


def webhook_json(hook: Webhook) -> dict[str, Any]:
    return {"id": hook.id, "url": hook.url, "job": None, "watched": hook.watched, "domains": hook.domains,
            "secret": hook.secret, "disabled": hook.disabled}


# ---- events -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    url: str
    secret: str | None
    payload: dict[str, Any]


def _watches(hook: Webhook, kind: str, repo_id: str, owner: str) -> bool:
    for item in hook.watched or []:
        t, name = item.get("type"), str(item.get("name", "")).lower()
        if (t == kind and name == repo_id.lower()) or (t in ("user", "org") and name == owner.lower()):
            return True
    return False


def deliveries(s: Session, row: Any, kind: str, domain: str, event: dict[str, Any], *, urls: tuple[str, str],
               extra: dict[str, Any] | None = None) -> list[Delivery]:
    """The POSTs one change makes: every enabled webhook watching ``row`` (a Space or a Repo of type ``kind``)
    for ``domain`` whose owner may read it."""
    out = []
    for hook in s.scalars(select(Webhook).where(Webhook.disabled.is_(False))):
        if domain not in (hook.domains or []) or not _watches(hook, kind, row.repo_id, row.owner.name):
            continue
        owner = s.get(Account, hook.owner_id)
        if row.private and not accounts.may_read_namespace(s, Principal(owner, "read"), row.owner):
            continue
        repo = {"id": row.id, "owner": {"id": row.owner_id}, "name": row.repo_id, "private": bool(row.private),
                "type": kind, "url": {"web": urls[0], "api": urls[1]},
                "headSha": getattr(row, "sha", None)}
        # the Hub's documented key is headSha; huggingface_hub's WebhookPayload model reads head_sha: send both
        repo["head_sha"] = repo["headSha"]
        if kind == "space":
            repo["subdomain"] = row.subdomain
        payload = {"event": event, "repo": repo, "webhook": {"id": hook.id, "version": 3}, **(extra or {})}
        out.append(Delivery(hook.url, hook.secret, payload))
    return out


class Sender:
    """One daemon thread that POSTs deliveries in order, with retries (see the module docstring)."""

    def __init__(self, *, private_targets: bool = False, pause: float = 1.0) -> None:
        self.private_targets = private_targets
        self.pause = pause
        self._queue: queue.Queue[Delivery] = queue.Queue(maxsize=10000)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def emit(self, s: Session, found: list[Delivery]) -> None:
        """Queue ``found`` once the caller's transaction commits (a change rolled back announces nothing)."""
        if found:
            after_commit(s, lambda: self._put(found))

    def _put(self, found: list[Delivery]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
                self._thread.start()
        for d in found:
            try:
                self._queue.put_nowait(d)
            except queue.Full:
                log.warning("webhook queue full: a delivery to %s is dropped", urlsplit(d.url).hostname)

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=10.0, follow_redirects=False) as client:
            while True:
                d = self._queue.get()
                try:  # again at delivery: the name may point elsewhere now
                    check_url(d.url, private_targets=self.private_targets)
                except BadRequest as exc:
                    log.warning("webhook %s not delivered: %s", d.payload["webhook"]["id"], exc.message)
                    continue
                headers = {"X-Webhook-Secret": d.secret} if d.secret else {}
                for attempt in range(TRIES):
                    try:
                        r = client.post(d.url, json=d.payload, headers=headers)
                        if r.status_code < 500:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(self.pause * 2**attempt)
                else:  # the URL (never the secret or payload) is named
                    log.warning("webhook %s: %s did not take the delivery after %d tries",
                                d.payload["webhook"]["id"], urlsplit(d.url).hostname, TRIES)

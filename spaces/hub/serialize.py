"""JSON shapes the real clients parse: SpaceInfo (§5.4 of the wire reference), SpaceRuntime (§5.9), tree items."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from spaces.db.models import Space
from spaces.domain import hardware as hw
from spaces.domain.lfs import Pointer
from spaces.domain.stages import ERROR_STAGES, SpaceStage
from spaces.storage.gitrepo import CommitInfo, TreeEntry


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:  # SQLite hands back naive datetimes; we only ever store UTC
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def gc_timeout(space: Space) -> int | None:
    return hw.effective_sleep_time(space.sleep_time, space.hardware)


def runtime_json(space: Space, app_host: str) -> dict[str, Any]:
    domain = app_host.split("://", 1)[-1]
    data: dict[str, Any] = {
        "stage": space.stage,
        "hardware": {"current": space.hardware_current, "requested": space.hardware},
        "storage": None,
        "volumes": (space.volume_row.volumes or None) if space.volume_row is not None else None,
        "gcTimeout": gc_timeout(space),
        "replicas": {"current": 1 if space.hardware_current else 0, "requested": 1},
        "devMode": False,
        "domains": [{"domain": domain, "stage": "READY"}],
        "sha": space.sha,
        # ours: why the Space is in this stage, always answered
        "reason": space.stage_reason,
        "message": space.stage_message,
    }
    if space.stage in {s.value for s in ERROR_STAGES} or space.stage in (SpaceStage.PAUSED, SpaceStage.SLEEPING):
        data["errorMessage"] = space.stage_message
    return data


def space_json(space: Space, app_host: str, *, siblings: list[TreeEntry] | None, blobs: bool = False,
               sha: str | None = None, pointers: dict[str, Pointer] | None = None) -> dict[str, Any]:
    card = dict(space.card_data or {})
    tags = list(card.get("tags") or []) if isinstance(card.get("tags"), list) else []
    if space.sdk and space.sdk not in tags:
        tags.insert(0, space.sdk)
    data: dict[str, Any] = {
        "_id": space.id,
        "id": space.repo_id,
        "author": space.owner.name,
        "sha": sha or space.sha,
        "lastModified": iso(space.last_modified),
        "createdAt": iso(space.created_at),
        "private": space.private,
        "gated": False,
        "disabled": False,
        "likes": space.likes,
        "sdk": space.sdk,
        "tags": tags,
        "subdomain": space.subdomain,
        "host": app_host,
    }
    if space.duplicated_from:
        card.setdefault("duplicated_from", space.duplicated_from)
    data["cardData"] = card
    data["models"] = [m for m in card.get("models") or [] if isinstance(m, str)] if isinstance(card.get("models"), list) else []
    data["datasets"] = [d for d in card.get("datasets") or [] if isinstance(d, str)] if isinstance(card.get("datasets"), list) else []
    data["duplicated_from"] = space.duplicated_from
    data["runtime"] = runtime_json(space, app_host)
    if siblings is not None:
        data["siblings"] = [sibling_json(e, blobs, (pointers or {}).get(e.oid)) for e in siblings if e.type == "file"]
    return data


def sibling_json(entry: TreeEntry, blobs: bool, pointer: Pointer | None = None) -> dict[str, Any]:
    if not blobs:
        return {"rfilename": entry.path}
    item = {"rfilename": entry.path, "size": pointer.size if pointer else entry.size, "blobId": entry.oid}
    if pointer is not None:  # repo info's siblings name the sha256 "sha256", tree items "oid" (as the Hub does)
        item["lfs"] = {"sha256": pointer.oid, "size": pointer.size, "pointerSize": entry.size}
    return item


def lfs_json(entry: TreeEntry, pointer: Pointer) -> dict[str, Any]:
    """The Hub's ``lfs`` field of a file that git holds as an LFS pointer: the real object's sha256 and size."""
    return {"oid": pointer.oid, "size": pointer.size, "pointerSize": entry.size}


def tree_item(entry: TreeEntry, last: CommitInfo | None = None, pointer: Pointer | None = None) -> dict[str, Any]:
    """A tree listing's (or paths-info's) item; for an LFS pointer ``size`` is the real file's and ``oid`` the
    pointer blob's, as on the Hub."""
    if entry.type == "directory":
        item: dict[str, Any] = {"type": "directory", "path": entry.path, "oid": entry.oid}
    else:
        item = {"type": "file", "path": entry.path, "oid": entry.oid, "size": entry.size}
        if pointer is not None:
            item["size"] = pointer.size
            item["lfs"] = lfs_json(entry, pointer)
    if last is not None:
        item["lastCommit"] = {"id": last.id, "title": last.title, "date": iso(last.date)}
    return item


def commit_json(c: CommitInfo) -> dict[str, Any]:
    return {"id": c.id, "authors": [{"user": c.author_name}], "date": iso(c.date), "title": c.title,
            "message": c.message}


def kv_map(rows: list, *, with_value: bool) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        item: dict[str, Any] = {"description": r.description, "updatedAt": iso(r.updated_at)}
        if with_value:
            item["value"] = r.value
        out[r.key] = item
    return out

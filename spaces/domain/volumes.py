"""Volumes of a Space, as the Hub's API names them (``HfApi.set_space_volumes``, ``hf spaces volumes``): pure.

A volume gives a Space's process a directory that is not its code:

* ``bucket``: the owner's persistent storage, read-write by default. What the app writes there survives restarts,
  sleep, rebuilds and a new node; it is the Hub's ``/data``. A bucket belongs to its namespace, not to a Space:
  deleting a Space leaves its buckets (as on the Hub), and a duplicate mounts nothing of its source's.
* ``model``, ``dataset``, ``space``: a repository of this hub at a revision, always read-only.

This module parses and checks what a client sends (``{"type", "source", "mountPath", "readOnly", "revision",
"path"}``) and nothing else: whether the source exists and who may mount it is the service's business.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from spaces.errors import BadRequest

TYPES = ("bucket", "model", "dataset", "space")
MAX_VOLUMES = 8
_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
#: paths a volume may not cover or sit under: the system the Space's root is built from, and its scratch space
RESERVED = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc", "/dev", "/sys",
            "/tmp", "/run", "/var", "/root", "/home", "/opt/spaces")


@dataclass(frozen=True)
class Volume:
    type: str
    source: str  # "owner/name"
    mount_path: str
    read_only: bool
    revision: str | None = None  # repos only; "main" when None
    path: str | None = None  # a subfolder of the source to mount instead of its root

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "source": self.source, "mountPath": self.mount_path,
                                "readOnly": self.read_only}
        if self.revision is not None:
            data["revision"] = self.revision
        if self.path is not None:
            data["path"] = self.path
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Volume":
        """A stored volume (already checked by ``parse_volumes``)."""
        return cls(data["type"], data["source"], data["mountPath"], bool(data.get("readOnly")),
                   data.get("revision"), data.get("path"))


def parse_volumes(raw: Any) -> list[Volume]:
    """The ``volumes`` list of a request, checked; BadRequest naming the first problem."""
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'volumes' must be a non-empty list of {type, source, mountPath} objects.")
    if len(raw) > MAX_VOLUMES:
        raise BadRequest(f"A Space mounts at most {MAX_VOLUMES} volumes.")
    volumes = [_parse_one(item, i) for i, item in enumerate(raw)]
    seen: list[str] = []
    for v in volumes:
        for other in seen:
            if _covers(other, v.mount_path) or _covers(v.mount_path, other):
                raise BadRequest(f"Mount paths {other} and {v.mount_path} overlap; give each volume its own.")
        seen.append(v.mount_path)
    return volumes


def _parse_one(item: Any, i: int) -> Volume:
    if not isinstance(item, dict):
        raise BadRequest(f"volumes[{i}] must be an object.")
    kind = item.get("type", "model")
    if kind not in TYPES:
        raise BadRequest(f"volumes[{i}].type must be one of {', '.join(TYPES)}.")
    source = item.get("source")
    if not isinstance(source, str) or not _SOURCE.fullmatch(source) or ".." in source:
        raise BadRequest(f"volumes[{i}].source must be 'owner/name'.")
    mount = item.get("mountPath", item.get("mount_path"))
    if not isinstance(mount, str) or not mount.startswith("/") or len(mount) > 200 or "\0" in mount:
        raise BadRequest(f"volumes[{i}].mountPath must be an absolute path, e.g. /data.")
    clean = posixpath.normpath(mount)
    if clean != mount.rstrip("/") or clean == "/" or any(_covers(r, clean) or _covers(clean, r) for r in RESERVED):
        raise BadRequest(f"volumes[{i}].mountPath {mount!r} is not allowed: use a plain path of your own such as "
                         "/data or /models (not /, system directories, /tmp or a path with '..').")
    read_only = item.get("readOnly", item.get("read_only"))
    if read_only is not None and not isinstance(read_only, bool):
        raise BadRequest(f"volumes[{i}].readOnly must be true or false.")
    if kind != "bucket":
        read_only = True  # a repository is never written through a mount
    revision = item.get("revision")
    if revision is not None and (kind == "bucket" or not isinstance(revision, str) or not revision
                                 or len(revision) > 255):
        raise BadRequest(f"volumes[{i}].revision is a branch, tag or commit of a repository volume.")
    sub = item.get("path")
    if sub is not None:
        if not isinstance(sub, str) or ".." in sub.split("/") or "\0" in sub or len(sub) > 500:
            raise BadRequest(f"volumes[{i}].path must be a folder of the source without '..'.")
        sub = posixpath.normpath(sub.strip("/")) if sub.strip("/") else None
    return Volume(kind, source, clean, bool(read_only), revision, sub)


def _covers(parent: str, path: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")

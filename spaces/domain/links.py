"""Symbolic links in a Space's files: which ones may stay, and the message for those that may not.

A link is kept when it resolves, by its text alone, to a place inside the repository (``static -> ../assets``
from ``app/static`` is fine); it is refused when its target is absolute or climbs above the repository root
(``/etc/passwd``, ``../../secrets``). Where a link points is decided by the path it is at and the text it holds,
never by what is on any disk: the same rule holds at push, at commit and when a build checks the files out.
Links inside the repo stay allowed because real projects use them (shared assets, ``README.md -> docs/...``).
"""

from __future__ import annotations

from collections.abc import Mapping

from spaces.errors import InvalidPath


#: links followed while resolving one link before it counts as a loop (Linux's own limit is 40)
MAX_HOPS = 40


def escapes(path: str, target: str, links: Mapping[str, str] | None = None) -> bool:
    """True when the link at ``path`` (repo-relative) holding ``target`` resolves outside the repository.

    ``links`` (every link of the tree, path -> target) lets resolution go through other links the way the kernel
    would: ``a/b/up -> ../..`` stays inside, but ``x -> a/b/up/..`` does not, though its text alone looks fine.
    A loop, or a chain longer than :data:`MAX_HOPS`, counts as escaping.
    """
    return _resolve(path.split("/")[:-1], target, links or {}, [0]) is None


def _resolve(base: list[str], target: str, links: Mapping[str, str], hops: list[int]) -> list[str] | None:
    """Where ``target`` read from directory ``base`` ends up, as path parts; None once it leaves the root."""
    if not target or target.startswith("/") or "\0" in target:
        return None
    parts = list(base)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
        inner = links.get("/".join(parts))
        if inner is not None:
            hops[0] += 1
            if hops[0] > MAX_HOPS:
                return None
            resolved = _resolve(parts[:-1], inner, links, hops)
            if resolved is None:
                return None
            parts = resolved
    return parts


def refusal(path: str, target: str) -> str:
    """The sentence a pusher or committer reads when the link at ``path`` points outside the repository."""
    shown = target if len(target) <= 80 else target[:77] + "..."
    return (f"the symlink `{path}` points outside the repository (to `{shown}`); Spaces are built from their "
            "own files only. Replace it with the file itself, or a link that stays inside the repository.")


def check_all(links: Mapping[str, str]) -> None:
    """Raise :class:`InvalidPath` naming the first link (path -> target) of a tree that points outside it."""
    for path in sorted(links):
        if escapes(path, links[path], links):
            text = refusal(path, links[path])
            raise InvalidPath(text[0].upper() + text[1:])

"""Names: repo ids, user/org names, file paths inside a repo, and the subdomain a Space is served on.

Repo ids follow huggingface_hub's ``validate_repo_id`` (so anything the real client accepts for a Space we accept
too), except that a Space id must always have a namespace. Paths follow what git and the hub can store safely.
Every refusal raises :class:`~spaces.errors.InvalidRepoId` or :class:`~spaces.errors.InvalidPath` with a message
that says which rule broke.
"""

from __future__ import annotations

import hashlib
import re

from spaces.errors import InvalidPath, InvalidRepoId

MAX_NAME_LENGTH = 96
MAX_PATH_BYTES = 1024
#: DNS label limit (RFC 1035)
MAX_SUBDOMAIN_LENGTH = 63

_EXAMPLE = "e.g. 'alice/my-space'"
# re.ASCII: Python's \w would otherwise accept any Unicode letter; the hub accepts [A-Za-z0-9_] only.
_NAME_CHARS = re.compile(r"[\w\-.]+", re.ASCII)

#: names that can never be a user or organization because they collide with fixed routes
#: (``/api/spaces/hardware``, ``/spaces/new``, ``/settings`` ...) or would confuse people (``huggingface``).
RESERVED_NAMESPACES: frozenset[str] = frozenset(
    {
        "templates", "hardware", "semantic-search", "zero-gpu", "api", "spaces", "models", "datasets", "new",
        "settings", "login", "logout", "signup", "admin", "static", "docs",
        # other fixed routes of the hub, the git/LFS endpoints and the app proxy
        "oauth", "auth", "join", "register", "account", "accounts", "organizations", "orgs", "users", "user",
        "search", "collections", "buckets", "papers", "blog", "pricing", "health", "healthz", "metrics",
        "assets", "resolve", "info", "git", "lfs", "xet", "www", "hub", "status", "about", "privacy", "terms",
        "me", "whoami", "notifications", "inbox", "help", "support", "root", "system", "null", "undefined",
        "huggingface", "hf",
    }
)


def validate_name(part: str, what: str = "name") -> str:
    """Check one namespace or repo name (same rules for user and org names) and return it unchanged.

    Rules (huggingface_hub): 1-96 ASCII characters from letters, digits, ``-``, ``_`` and ``.``; no ``--`` or
    ``..``; no leading or trailing ``-`` or ``.``; no ``.git`` suffix. ``what`` names the part in messages
    ("name", "namespace", "username", ...).
    """
    if not isinstance(part, str) or not part:
        raise InvalidRepoId(f"The {what} is empty; use 1-{MAX_NAME_LENGTH} characters, {_EXAMPLE}.")
    if not part.isascii():
        raise InvalidRepoId(
            f"The {what} {part!r} has non-ASCII characters; use only letters a-z, A-Z, digits, '-', '_' and '.', "
            f"{_EXAMPLE}."
        )
    if len(part) > MAX_NAME_LENGTH:
        raise InvalidRepoId(f"The {what} {part[:20]!r}... is {len(part)} characters long; the maximum is 96.")
    if not _NAME_CHARS.fullmatch(part):
        bad = sorted({c for c in part if not _NAME_CHARS.fullmatch(c)})
        raise InvalidRepoId(
            f"The {what} {part!r} contains {''.join(bad)!r}; use only letters, digits, '-', '_' and '.', "
            f"{_EXAMPLE}."
        )
    if "--" in part or ".." in part:
        raise InvalidRepoId(f"The {what} {part!r} cannot contain '--' or '..', {_EXAMPLE}.")
    if part[0] in "-." or part[-1] in "-.":
        raise InvalidRepoId(f"The {what} {part!r} cannot start or end with '-' or '.', {_EXAMPLE}.")
    if part.lower().endswith(".git"):
        raise InvalidRepoId(f"The {what} {part!r} cannot end with '.git', {_EXAMPLE}.")
    return part


def is_reserved_namespace(name: str) -> bool:
    """True when ``name`` (any case) is in :data:`RESERVED_NAMESPACES`."""
    return name.lower() in RESERVED_NAMESPACES


def validate_account_name(name: str, what: str = "username") -> str:
    """Check a new user or organization name: :func:`validate_name` plus the reserved list."""
    validate_name(name, what)
    if is_reserved_namespace(name):
        raise InvalidRepoId(
            f"The {what} {name!r} is reserved (it collides with a fixed URL of the hub); choose another, "
            "e.g. 'alice'."
        )
    return name


def validate_repo_id(repo_id: str) -> tuple[str, str]:
    """Check a Space id ``namespace/name`` and return ``(namespace, name)``.

    Lookups use this too, so it does not refuse reserved namespaces (nobody can own one; a lookup simply finds
    nothing). Use :func:`validate_account_name` when creating users and organizations.
    """
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise InvalidRepoId(
            f"Repo id {repo_id!r} must be in the form 'namespace/name' with exactly one '/', {_EXAMPLE}."
        )
    namespace, name = repo_id.split("/")
    try:
        validate_name(namespace, "namespace")
        validate_name(name, "name")
    except InvalidRepoId as exc:
        raise InvalidRepoId(f"Invalid repo id {repo_id!r}: {exc.message}") from None
    return namespace, name


def _check_segments(path: str, segments: list[str], what: str) -> None:
    for segment in segments:
        if segment == "":
            raise InvalidPath(f"Invalid {what} {path!r}: empty path segment ('//'); remove the extra '/'.")
        if segment in (".", ".."):
            raise InvalidPath(f"Invalid {what} {path!r}: '{segment}' segments are not allowed; use a plain path.")
        # Windows/NTFS and macOS treat ".GIT", ".git." and ".git " as ".git": refuse them all so a clone can never
        # write into its own git directory.
        if any(part.rstrip(". ").lower() == ".git" for part in segment.split("\\")):
            raise InvalidPath(f"Invalid {what} {path!r}: files under a '.git' folder cannot be stored in a repo.")


def _check_common(path: str, what: str) -> None:
    if not isinstance(path, str) or path == "":
        raise InvalidPath(f"Invalid {what}: the path is empty.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise InvalidPath(f"Invalid {what} {path!r}: control characters (including NUL and newlines) are not allowed.")
    if path.startswith("..\\"):
        # The Hub's rule (422): '..\x' climbs out of the repo on Windows. Elsewhere a backslash is an ordinary
        # character of a file name, as on the Hub ('folder/..\..\file' is one file in 'folder').
        raise InvalidPath(f"Invalid {what} {path!r}: a path cannot start with '..\\'.", status=422)
    if path.startswith("/"):
        raise InvalidPath(f"Invalid {what} {path!r}: paths are relative to the repo root; remove the leading '/'.")
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        raise InvalidPath(f"Invalid {what} {path[:40]!r}...: longer than {MAX_PATH_BYTES} bytes.")


def validate_path_in_repo(path: str) -> str:
    """Check a file path inside a repo and return it unchanged.

    Refused: empty, absolute (``/x``), a leading ``..\\`` (422), ``.``/``..``/empty segments (so also ``./x``
    and a trailing ``/``), NUL and control characters, a ``.git`` segment anywhere (any case, also between
    backslashes), more than 1024 UTF-8 bytes.
    Nothing is silently rewritten: a path that needs normalising is refused, so what is stored is what was sent.
    ``.cache`` is allowed: huggingface_hub refuses it client-side only to avoid uploading its own cache, but a
    plain ``git push`` may legitimately carry one.
    """
    _check_common(path, "path")
    _check_segments(path, path.split("/"), "path")
    return path


def validate_folder_path(path: str) -> str:
    """Check a folder path (as in a ``deletedFolder`` commit operation) and return it without the trailing ``/``.

    Same rules as :func:`validate_path_in_repo`, except that one trailing ``/`` is allowed. The root folder
    (``""`` or ``"/"``) is refused: deleting everything must be explicit, file by file.
    """
    _check_common(path, "folder path")
    folder = path[:-1] if path.endswith("/") else path
    if folder == "":
        raise InvalidPath(f"Invalid folder path {path!r}: name a folder inside the repo, not the root.")
    _check_segments(path, folder.split("/"), "folder path")
    return folder


def _base_subdomain(repo_id: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", repo_id.lower()).strip("-")


def _hashed(base: str, repo_id: str, digits: int) -> str:
    digest = hashlib.sha256(repo_id.lower().encode("utf-8")).hexdigest()[:digits]
    keep = MAX_SUBDOMAIN_LENGTH - digits - 1
    head = base[:keep].rstrip("-")
    return f"{head}-{digest}" if head else digest


def subdomain_for(repo_id: str) -> str:
    """The subdomain label of a Space before any collision handling.

    Hugging Face's rule: lowercase ``ns/name``, turn every run of non-alphanumeric characters into ``-``, trim
    ``-`` at both ends (``stabilityai/stable-diffusion-3.5-large`` -> ``stabilityai-stable-diffusion-3-5-large``).
    Our own rule when that is longer than 63 characters (the DNS label limit), or empty: keep the first 54
    characters and append ``-`` plus the first 8 hex digits of sha256 of the lowercased repo id.
    """
    base = _base_subdomain(repo_id)
    if base and len(base) <= MAX_SUBDOMAIN_LENGTH:
        return base
    return _hashed(base, repo_id, 8)


def subdomain_candidates(repo_id: str) -> list[str]:
    """Subdomains to try, in order; the hub assigns the first one no other Space holds.

    ``a-b/c`` and ``a/b-c`` both map to ``a-b-c``, and only the hub knows which is taken, so: the first Space keeps
    the plain name (:func:`subdomain_for`); a later colliding one gets the 8-hex hashed variant; should that be
    taken too (two long ids sharing their first 54 characters and 32 hash bits), a 16-hex variant. All are at most
    63 characters and deterministic, so the outcome depends only on creation order. Assign once at creation and
    store it: the subdomain changes only on rename or move.
    """
    base = _base_subdomain(repo_id)
    out: list[str] = []
    for candidate in (subdomain_for(repo_id), _hashed(base, repo_id, 8), _hashed(base, repo_id, 16)):
        if candidate not in out:
            out.append(candidate)
    return out

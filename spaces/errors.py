"""One exception tree for the whole platform.

Every error a user can cause is a :class:`SpacesError`. Each carries:

* ``message`` - a human sentence that says what happened and, where possible, what to do next;
* ``code`` - a machine reason code. For the Hugging Face-compatible API this is sent as ``X-Error-Code``; the
  real ``huggingface_hub`` client picks its exception class from it (``RepoNotFound``, ``RevisionNotFound``,
  ``EntryNotFound``), so those exact strings matter;
* ``status`` - the HTTP status the edges answer with.

Lower-level failures (git, SQL, OS) are translated into these at one boundary each; edges (hub, proxy, CLI) map
them to a response or a printed message, so no traceback reaches a user.
"""

from __future__ import annotations

from typing import Any


class SpacesError(Exception):
    """Base class: a user-facing error with a reason code and an HTTP status."""

    status: int = 500
    code: str = "InternalError"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        #: extra JSON fields sent with the error body (e.g. ``url`` on a 409 from create_repo)
        self.extra: dict[str, Any] = extra


class BadRequest(SpacesError):
    status = 400
    code = "BadRequest"


class InvalidRepoId(BadRequest):
    code = "InvalidRepoId"


class InvalidPath(BadRequest):
    code = "InvalidPath"


class Unauthorized(SpacesError):
    """No credentials, or credentials that are not valid."""

    status = 401
    code = "Unauthorized"


class InvalidToken(Unauthorized):
    # huggingface_hub recognises this exact message on whoami ("Invalid user token.")
    def __init__(self, message: str = "Invalid credentials in Authorization header") -> None:
        super().__init__(message, code="InvalidCredentials")


class Forbidden(SpacesError):
    status = 403
    code = "Forbidden"


class NotFound(SpacesError):
    status = 404
    code = "NotFound"


class RepoNotFound(NotFound):
    """The Space does not exist, or the caller may not see it (private Spaces answer exactly the same)."""

    code = "RepoNotFound"

    def __init__(self, repo_id: str, repo_type: str = "space") -> None:
        super().__init__(
            f"Repository Not Found for url: {repo_type}s/{repo_id}. Please make sure you specified the correct "
            "`repo_id` and `repo_type`. If you are trying to access a private or gated repo, make sure you "
            "are authenticated.",
        )
        self.repo_id = repo_id


class RevisionNotFound(NotFound):
    code = "RevisionNotFound"

    def __init__(self, revision: str) -> None:
        super().__init__(f"Invalid rev id: {revision}")
        self.revision = revision


class EntryNotFound(NotFound):
    code = "EntryNotFound"

    def __init__(self, path: str, revision: str = "main") -> None:
        super().__init__(f"Entry not found: {path} at revision {revision}. A file with this name doesn't exist.")
        self.path = path


class RangeNotSatisfiable(SpacesError):
    status = 416
    code = "RangeNotSatisfiable"


class LfsObjectMissing(NotFound):
    """An LFS pointer (or an ``lfsFile`` commit line) names an object this hub does not hold for the repository."""

    code = "LfsObjectMissing"

    def __init__(self, oid: str, path: str | None = None) -> None:
        where = f"The file {path} is stored with Git LFS, but its" if path else "The LFS"
        super().__init__(f"{where} object sha256:{oid} was never uploaded to this repository on this hub. Upload "
                         "it with `git lfs push --all <remote>` (or commit the file again).")
        self.oid = oid


class Conflict(SpacesError):
    status = 409
    code = "Conflict"


class RepoExists(Conflict):
    code = "RepoExists"


class PreconditionFailed(SpacesError):
    """A commit's ``parentCommit`` is not the branch tip any more."""

    status = 412
    code = "PreconditionFailed"


class PayloadTooLarge(SpacesError):
    status = 413
    code = "PayloadTooLarge"


class QuotaExceeded(SpacesError):
    """A request would go over a quota. ``limit``, ``used`` and ``requested`` are in the body."""

    status = 402
    code = "QuotaExceeded"


class Unschedulable(SpacesError):
    status = 503
    code = "Unschedulable"


class WaitingForCapacity(Unschedulable):
    """No node has room now but one would have: the start waits its turn (FIFO per flavor) rather than fail."""


class InstanceClash(SpacesError):
    """Two platforms on one host would share a host-wide name: a uid range, a port range, a cgroup root."""

    status = 500
    code = "InstanceClash"


class GitError(SpacesError):
    """A git command failed for a reason that is not the user's fault."""

    status = 500
    code = "GitError"

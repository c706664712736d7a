"""Branches and tags of a Space's repository (``create_branch``, ``delete_branch``, ``create_tag``,
``delete_tag``; ``list_repo_refs`` reads them).

The Space itself builds and serves ``main`` only: other branches and tags are for history, review and downloads
(``revision=`` on every read and on commits). So ``main`` cannot be deleted, and every operation is one atomic
ref update (a refused one changes nothing). Names follow git's ``check-ref-format`` (run by git itself) plus
git's branch rule that a name never starts with '-'; a branch and a tag cannot share a name, so a revision
never means two things.
"""

from __future__ import annotations

from spaces.errors import BadRequest, Conflict, Forbidden, RevisionNotFound
from spaces.services.accounts import Principal
from spaces.storage._gitcmd import FULL_SHA, is_plain_refname
from spaces.storage.gitrepo import GitRepo

PROTECTED_BRANCH = "main"
MAX_REF_NAME_BYTES = 255

_RULES = ("use letters, digits, '-', '_', '.' and '/'; no spaces, '..', '~', '^', ':', '?', '*', '[', '\\' or "
          "'@{'; no part starting with '.' or ending with '.lock'; not starting with '-' or ending with '/' or '.'")


def validate_ref_name(repo: GitRepo, name: object, kind: str) -> str:
    """``name`` if it is a valid short branch or tag name (``kind``: "branch" or "tag"), else ``BadRequest``."""
    if not isinstance(name, str) or not name.strip():
        raise BadRequest(f"The {kind} name is empty.")
    if name.startswith("refs/"):
        raise BadRequest(f"Give the {kind} its short name ('{name.split('/', 2)[-1]}'), not the full ref '{name}'.")
    if name == "HEAD" or FULL_SHA.fullmatch(name.lower()):
        raise BadRequest(f"'{name}' cannot be a {kind} name: it would read as a revision of its own.")
    prefix = "refs/heads/" if kind == "branch" else "refs/tags/"
    if (len(name.encode("utf-8", "surrogateescape")) > MAX_REF_NAME_BYTES or not is_plain_refname(name)
            or not repo.check_ref_format(prefix + name)):
        raise BadRequest(f"Invalid {kind} name {name!r}: {_RULES} (at most {MAX_REF_NAME_BYTES} bytes).")
    return name


def _commit_of(repo: GitRepo, revision: str) -> str:
    sha = repo.resolve(revision)
    if sha is None:
        raise RevisionNotFound(revision)
    return sha


def create_branch(repo: GitRepo, name: object, starting_point: str | None) -> str:
    branch = validate_ref_name(repo, name, "branch")
    sha = _commit_of(repo, starting_point or PROTECTED_BRANCH)
    if repo.ref_target(f"refs/tags/{branch}") is not None:
        raise Conflict(f"A tag named '{branch}' exists; a branch cannot have the same name.", code="RefExists")
    repo.create_ref(f"refs/heads/{branch}", sha)
    return sha


def delete_branch(repo: GitRepo, name: str) -> None:
    if name in (PROTECTED_BRANCH, f"refs/heads/{PROTECTED_BRANCH}"):
        raise Forbidden("The main branch cannot be deleted: the Space builds and serves it.")
    repo.delete_ref(f"refs/heads/{name}")


def create_tag(repo: GitRepo, principal: Principal, name: object, revision: str, message: str | None) -> str:
    """A lightweight tag, or an annotated one (tagger: the caller) when there is a message."""
    tag = validate_ref_name(repo, name, "tag")
    sha = _commit_of(repo, revision)
    if repo.ref_target(f"refs/heads/{tag}") is not None:
        raise Conflict(f"A branch named '{tag}' exists; a tag cannot have the same name.", code="RefExists")
    if repo.ref_target(f"refs/tags/{tag}") is not None:  # before writing a tag object nobody would reference
        raise Conflict(f"The tag '{tag}' already exists.", code="RefExists")
    target = sha
    if message and message.strip():
        account = principal.account
        target = repo.make_tag_object(tag, sha, message, tagger_name=account.name,
                                      tagger_email=account.email or f"{account.name}@users.noreply.spaces")
    repo.create_ref(f"refs/tags/{tag}", target)
    return sha


def delete_tag(repo: GitRepo, name: str) -> None:
    repo.delete_ref(f"refs/tags/{name}")


def squashable_branch(repo: GitRepo, name: str) -> str:
    """The short name of the branch ``name`` (or ``refs/heads/name``) names, for ``super_squash_history``: a tag
    or a pull request ref is ``BadRequest`` (the Hub refuses tags), a missing branch ``RevisionNotFound``."""
    short = name.removeprefix("refs/heads/")
    if not is_plain_refname(short) or short.startswith("refs/"):
        raise BadRequest(f"Only a branch's history can be squashed; '{name}' is not a branch name.")
    if repo.ref_target(f"refs/heads/{short}") is None:
        if repo.ref_target(f"refs/tags/{short}") is not None:
            raise BadRequest(f"'{short}' is a tag: only a branch's history can be squashed.")
        raise RevisionNotFound(short)
    return short

"""Discussions and pull requests on a Space: the Hub's way for anyone who can read a Space to propose a change.

A pull request is a discussion whose commits live on ``refs/pr/{num}`` of the Space's repository, started at the
tip of its target branch. Anyone signed in who can read the Space opens one and commits to it (while it is open
or draft); only writers of the Space merge it, which moves the target branch (a fast-forward, or a merge commit
when both moved) and, for ``main``, rebuilds the Space. The database rows are the truth: a ``refs/pr/N`` with no
row (left by a crash, or copied by a duplicate) is replaced when number N is handed out.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from spaces.db.models import Discussion, DiscussionEvent, Space, utcnow
from spaces.errors import BadRequest, Forbidden, NotFound
from spaces.services import accounts
from spaces.services.accounts import Principal
from spaces.storage.gitrepo import GitRepo

OPEN_STATES = ("open", "draft")
MAX_TITLE = 200


def pr_ref(num: int) -> str:
    return f"refs/pr/{num}"


def pr_num(revision: str) -> int | None:
    """N for a revision ``refs/pr/N``, else None."""
    rest = revision.removeprefix("refs/pr/")
    return int(rest) if rest != revision and rest.isdigit() and len(rest) < 10 else None


def require_write_token(principal: Principal) -> None:
    """Every change here (opening, commenting, committing) needs a write token, as any change on the Hub does."""
    if principal.role != "write":
        raise Forbidden("This token is read-only; use a token with the write role.")


def _title(title: object) -> str:
    if not isinstance(title, str) or not title.strip():
        raise BadRequest("A discussion needs a title.")
    title = " ".join(title.split())
    if len(title) > MAX_TITLE:
        raise BadRequest(f"The title is {len(title)} characters long; the maximum is {MAX_TITLE}.")
    return title


def _of(space):  # noqa: ANN001, ANN202
    """The condition "a discussion of this repository": ``space_id`` for a Space, ``repo_ref`` for a model or
    dataset (the two id columns never hold each other's ids)."""
    return Discussion.space_id == space.id if isinstance(space, Space) else Discussion.repo_ref == space.id


def get(s: Session, space: Space, num: int) -> Discussion:
    d = s.scalar(select(Discussion).where(_of(space), Discussion.num == num))
    if d is None:
        raise NotFound(f"Discussion #{num} not found on {space.repo_id}.", code="DiscussionNotFound")
    return d


def open_discussion(s: Session, repo: GitRepo, space: Space, principal: Principal, title: object,
                    description: str, *, pull_request: bool, status: str = "open", target: str = "main") -> Discussion:
    require_write_token(principal)
    title = _title(title)
    target_sha = repo.resolve(target) if pull_request else None
    if pull_request and (target_sha is None or repo.ref_target(f"refs/heads/{target}") is None):
        raise BadRequest(f"A pull request targets a branch; '{target}' is not one.")
    # Numbers are handed out one at a time: a no-op UPDATE of the Space's row takes its row lock (PostgreSQL) or
    # the database's write lock (SQLite, where SELECT ... FOR UPDATE means nothing) before the largest is read.
    table = type(space)  # Space or Repo: both have a likes column
    s.execute(update(table).where(table.id == space.id).values(likes=table.likes)
              .execution_options(synchronize_session=False))
    num = (s.scalar(select(func.max(Discussion.num)).where(_of(space))) or 0) + 1
    owner = {"space_id": space.id} if isinstance(space, Space) else {"repo_ref": space.id}
    d = Discussion(**owner, num=num, title=title, author_id=principal.account.id,
                   is_pull_request=pull_request, status=status, target_branch=target)
    s.add(d)
    s.flush()
    add_event(s, d, principal, "comment", comment_data(description or "", principal))
    if pull_request:
        if repo.ref_target(pr_ref(num)) is not None:
            repo.delete_ref(pr_ref(num))  # no row owns it: left over by a crash or copied by a duplicate
        repo.create_ref(pr_ref(num), target_sha)
    return d


def comment_data(text: str, principal: Principal) -> dict:
    now = utcnow().isoformat()
    return {"edited": False, "hidden": False, "numEdits": 0, "editors": [principal.account.name], "reactions": [],
            "latest": {"raw": text, "updatedAt": now, "author": {"name": principal.account.name}}, "history": []}


def add_event(s: Session, d: Discussion, principal: Principal, kind: str, data: dict) -> DiscussionEvent:
    require_write_token(principal)
    event = DiscussionEvent(discussion_id=d.id, type=kind, author_id=principal.account.id, data=data)
    s.add(event)
    d.updated_at = utcnow()
    s.flush()
    return event


def events(s: Session, d: Discussion) -> list[DiscussionEvent]:
    return list(s.scalars(select(DiscussionEvent).where(DiscussionEvent.discussion_id == d.id)
                          .order_by(DiscussionEvent.created_at, DiscussionEvent.id)))


def _may_manage(s: Session, principal: Principal, space: Space, d: Discussion) -> bool:
    """The author of a discussion, or a writer of the Space."""
    if d.author_id == principal.account.id:
        return True
    try:
        accounts.check_write(s, principal, space)
    except Forbidden:
        return False
    return True


def comment(s: Session, d: Discussion, principal: Principal, text: object) -> DiscussionEvent:
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("The comment is empty.")
    return add_event(s, d, principal, "comment", comment_data(text, principal))


def _comment_event(s: Session, d: Discussion, comment_id: str) -> DiscussionEvent:
    event = s.scalar(select(DiscussionEvent).where(DiscussionEvent.id == comment_id.lower(),
                                                   DiscussionEvent.discussion_id == d.id,
                                                   DiscussionEvent.type == "comment"))
    if event is None:
        raise NotFound(f"No comment {comment_id} in #{d.num}.", code="CommentNotFound")
    return event


def edit_comment(s: Session, d: Discussion, principal: Principal, comment_id: str, text: object) -> DiscussionEvent:
    """Its author rewrites a comment; the earlier text stays in its history."""
    require_write_token(principal)
    event = _comment_event(s, d, comment_id)
    if event.author_id != principal.account.id:
        raise Forbidden("Only the author of a comment can edit it.")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("The comment is empty.")
    data = dict(event.data)
    latest = {"raw": text, "updatedAt": utcnow().isoformat(), "author": {"name": principal.account.name}}
    data.update(edited=True, numEdits=int(data.get("numEdits", 0)) + 1, latest=latest,
                history=[*data.get("history", []), data.get("latest")])
    event.data = data  # a new dict: the JSON column sees the change
    s.flush()
    return event


def hide_comment(s: Session, space: Space, d: Discussion, principal: Principal, comment_id: str) -> DiscussionEvent:
    """Its author or a writer of the Space hides a comment (its text is no longer served)."""
    require_write_token(principal)
    event = _comment_event(s, d, comment_id)
    if event.author_id != principal.account.id and not _may_manage(s, principal, space, d):
        raise Forbidden("Only the author of a comment or a writer of the Space can hide it.")
    data = dict(event.data)
    data.update(hidden=True, latest={**data.get("latest", {}), "raw": ""}, history=[])
    event.data = data
    s.flush()
    return event


def rename(s: Session, space: Space, d: Discussion, principal: Principal, title: object) -> DiscussionEvent:
    if not _may_manage(s, principal, space, d):
        raise Forbidden("Only the author or a writer of the Space can rename this discussion.")
    new = _title(title)
    old, d.title = d.title, new
    return add_event(s, d, principal, "title-change", {"from": old, "to": new})


def change_status(s: Session, space: Space, d: Discussion, principal: Principal, status: object,
                  text: str | None) -> DiscussionEvent:
    if status not in ("open", "closed"):
        raise BadRequest("The status is 'open' or 'closed'; merge a pull request with merge_pull_request.")
    if d.status == "merged":
        raise BadRequest(f"#{d.num} is merged; its status cannot change.")
    if not _may_manage(s, principal, space, d):
        raise Forbidden("Only the author or a writer of the Space can change this discussion's status.")
    if text and text.strip():
        comment(s, d, principal, text)
    d.status = str(status)
    return add_event(s, d, principal, "status-change", {"status": d.status})


def pull_request_for_commit(s: Session, space: Space, principal: Principal, num: int) -> Discussion:
    """The open pull request #num, if ``principal`` may commit to it (its author, or a writer of the Space)."""
    d = get(s, space, num)
    if not d.is_pull_request:
        raise BadRequest(f"#{num} is a discussion, not a pull request.")
    if d.status not in OPEN_STATES:
        raise BadRequest(f"Pull request #{num} is {d.status}; open a new one.")
    if not _may_manage(s, principal, space, d):
        raise Forbidden(f"Only the author of pull request #{num} or a writer of the Space can commit to it.")
    return d


def record_commit(s: Session, d: Discussion, principal: Principal, sha: str, title: str) -> None:
    if d.status == "draft":
        d.status = "open"  # a draft becomes a proposal with its first commit, as on the Hub
    add_event(s, d, principal, "commit", {"subject": title, "oid": sha})


def merge(s: Session, repo: GitRepo, space: Space, d: Discussion, principal: Principal, text: str | None) -> str:
    """Merge pull request ``d`` into its target branch (writers only) and return the new tip."""
    accounts.check_write(s, principal, space)
    if not d.is_pull_request:
        raise BadRequest(f"#{d.num} is a discussion, not a pull request.")
    if d.status not in OPEN_STATES:
        raise BadRequest(f"Pull request #{d.num} is {d.status}; only an open pull request can be merged.")
    head = repo.ref_target(pr_ref(d.num))
    if head is None:
        raise NotFound(f"Pull request #{d.num} has no commits on {pr_ref(d.num)}.", code="RevisionNotFound")
    account = principal.account
    sha = repo.merge(d.target_branch, head, message=f"Merge pull request #{d.num}: {d.title}",
                     author_name=account.name, author_email=account.email or f"{account.name}@users.noreply.spaces")
    if text and text.strip():
        comment(s, d, principal, text)
    d.status, d.merge_commit = "merged", sha
    add_event(s, d, principal, "status-change", {"status": "merged"})
    return sha


def listing(s: Session, space: Space, *, kind: str | None, status: str | None, author: str | None,
            offset: int, limit: int) -> tuple[list[Discussion], int, int]:
    """(page, total matching, closed count) newest first."""
    q = select(Discussion).where(_of(space))
    if kind == "pull_request":
        q = q.where(Discussion.is_pull_request.is_(True))
    elif kind == "discussion":
        q = q.where(Discussion.is_pull_request.is_(False))
    if status == "open":
        q = q.where(Discussion.status.in_(OPEN_STATES))
    elif status == "closed":
        q = q.where(Discussion.status.in_(("closed", "merged")))
    if author:
        who = accounts.find_account(s, author)
        q = q.where(Discussion.author_id == (who.id if who else None))
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    closed = s.scalar(select(func.count()).where(_of(space),
                                                 Discussion.status.in_(("closed", "merged")))) or 0
    page = list(s.scalars(q.order_by(Discussion.num.desc()).offset(offset).limit(limit)))
    return page, total, closed

"""Discussions and pull requests over the Hub's API (``create_discussion``, ``create_pull_request``,
``get_repo_discussions``, ``get_discussion_details``, ``comment_discussion``, ``rename_discussion``,
``change_discussion_status``, ``merge_pull_request``), plus the commit side of pull requests that the commit
and preupload endpoints call: ``create_pr=1`` and ``revision=refs/pr/N``. Rules: :mod:`spaces.services.discussions`.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Path, Request
from sqlalchemy.orm import Session

from spaces.db.models import Discussion, DiscussionEvent, Space
from spaces.errors import BadRequest
from spaces.hub.api.common import INT_MAX, get_str, in_session, json_body, repo_type_of, typed_route
from spaces.hub.serialize import iso
from spaces.services import discussions as disc
from spaces.services.accounts import Principal
from spaces.storage.gitrepo import GitRepo

router = APIRouter()
#: a discussion number fits the database's INTEGER column; a larger one is a 400, not an SQL error
Num = Annotated[int, Path(ge=0, le=INT_MAX)]

PAGE = 50


def _author(account) -> dict:  # noqa: ANN001
    return {"name": account.name if account is not None else "deleted", "type": "user"}


def event_json(e: DiscussionEvent) -> dict:
    data = dict(e.data or {})
    if e.type == "comment":
        latest = dict(data.get("latest") or {})
        latest["html"] = f"<p>{escape(latest.get('raw', ''))}</p>"
        data["latest"] = latest
    return {"id": e.id, "type": e.type, "createdAt": iso(e.created_at), "author": _author(e.author), "data": data}


def _kind(space) -> str:  # noqa: ANN001
    return "space" if isinstance(space, Space) else space.repo_type


def discussion_json(d: Discussion, space) -> dict:  # noqa: ANN001 - a Space or a Repo
    return {"num": d.num, "title": d.title, "status": d.status, "createdAt": iso(d.created_at),
            "author": _author(d.author), "isPullRequest": d.is_pull_request, "pinned": False,
            "repo": {"name": space.repo_id, "type": _kind(space)}}


def details_json(s: Session, d: Discussion, space: Space, repo: GitRepo, with_diff: bool) -> dict:
    out = discussion_json(d, space)
    out["events"] = [event_json(e) for e in disc.events(s, d)]
    if d.is_pull_request:
        out["changes"] = {"base": f"refs/heads/{d.target_branch}", "headRef": disc.pr_ref(d.num)}
        if d.merge_commit:
            out["changes"]["mergeCommitId"] = d.merge_commit
        head = repo.ref_target(disc.pr_ref(d.num))
        live = head is not None and d.status in disc.OPEN_STATES and repo.resolve(d.target_branch) is not None
        out["filesWithConflicts"] = repo.conflicts(d.target_branch, head) if live else []
        if with_diff and live:
            out["diff"] = repo.diff(d.target_branch, head)
    return out


def pr_url(hub, space, num: int) -> str:  # noqa: ANN001
    return hub.repo_url(_kind(space), space.repo_id) + f"/discussions/{num}"


def hook_discussion(hub, space, d: Discussion) -> dict:  # noqa: ANN001
    """A discussion as the Hub's webhook payload names it."""
    url = pr_url(hub, space, d.num)
    return {"id": str(d.id), "num": d.num, "author": {"id": d.author_id or ""}, "title": d.title,
            "isPullRequest": d.is_pull_request, "status": d.status,
            "url": {"web": url, "api": hub.url(f"/api/{_kind(space)}s/{space.repo_id}/discussions/{d.num}")}}


# ---- the commit side ------------------------------------------------------------------------------------
def writable_for(hub, s: Session, p: Principal, repo_id: str, rev: str, create_pr: bool,  # noqa: ANN001, ANN201
                 kind: str = "space"):
    """The repository (of type ``kind``) a commit or preupload at ``rev`` may write to, and the pull request it
    goes to (or None). Pull requests are open to anyone who can read it; everything else needs write access."""
    num = disc.pr_num(rev)
    store = hub.store(kind)
    if not create_pr and num is None:
        return store.get_writable(s, repo_id, p), None
    space = store.get(s, repo_id, p)
    disc.require_write_token(p)
    return space, (disc.pull_request_for_commit(s, space, p, num) if num is not None else None)


def commit_to_pull_request(hub, s: Session, p: Principal, space, d: Discussion | None, target: str,  # noqa: ANN001
                           summary: str, description: str, commit, kind: str = "space") -> dict:  # noqa: ANN001
    """``commit(branch)`` on pull request ``d``, or on a new one opened on ``target`` (``create_pr=1``)."""
    repo = hub.store(kind).repo(space)
    opened = d is None
    if opened:
        d = disc.open_discussion(s, repo, space, p, summary, description, pull_request=True,
                                 target=target.removeprefix("refs/heads/"))
    try:
        sha = commit(disc.pr_ref(d.num))
    except BaseException:
        if opened:  # the row rolls back with the transaction; the ref on disk must go with it
            repo.delete_ref(disc.pr_ref(d.num))
        raise
    disc.record_commit(s, d, p, sha, summary)
    return {"success": True, "commitOid": sha, "commitUrl": hub.repo_url(kind, space.repo_id) + f"/commit/{sha}",
            "commitMessage": summary, "hookOutput": "", "pullRequestUrl": pr_url(hub, space, d.num)}


# ---- discussions ----------------------------------------------------------------------------------------
@typed_route(router, ["GET"], "/discussions")
async def list_discussions(ns: str, name: str, request: Request) -> dict:
    hub = request.app.state.hub
    store = hub.store(repo_type_of(request))
    qp = request.query_params
    try:
        page = max(0, int(qp.get("p") or 0))
    except ValueError:
        raise BadRequest("p must be a page number.") from None

    def work(s, p):  # noqa: ANN001, ANN202
        space = store.get(s, f"{ns}/{name}", p)
        rows, total, closed = disc.listing(s, space, kind=qp.get("type"), status=qp.get("status"),
                                           author=qp.get("author"), offset=page * PAGE, limit=PAGE)
        return {"discussions": [discussion_json(d, space) for d in rows], "count": total, "start": page * PAGE,
                "numClosedDiscussions": closed}
    return await in_session(request, work)


@typed_route(router, ["POST"], "/discussions")
async def create_discussion(ns: str, name: str, request: Request) -> dict:
    hub = request.app.state.hub
    store = hub.store(repo_type_of(request))
    data = await json_body(request)
    pull_request = data.get("pullRequest") is True
    description = get_str(data, "description") or ""

    def work(s, p):  # noqa: ANN001, ANN202
        space = store.get(s, f"{ns}/{name}", p)
        d = disc.open_discussion(s, store.repo(space), space, p, data.get("title"), description,
                                 pull_request=pull_request, status="draft" if pull_request else "open")
        hub.announce(s, space, _kind(space), "discussion", "create", "discussion",
                     discussion=hook_discussion(hub, space, d))
        return {"num": d.num, "pullRequest": pull_request, "url": pr_url(hub, space, d.num)}
    return await in_session(request, work, auth_required=True)


@typed_route(router, ["GET"], "/discussions/{num}")
async def discussion_details(ns: str, name: str, num: Num, request: Request) -> dict:
    hub = request.app.state.hub
    store = hub.store(repo_type_of(request))
    with_diff = request.query_params.get("diff") in ("1", "true")

    def work(s, p):  # noqa: ANN001, ANN202
        space = store.get(s, f"{ns}/{name}", p)
        return details_json(s, disc.get(s, space, num), space, store.repo(space), with_diff)
    return await in_session(request, work)


async def _change(request: Request, ns: str, name: str, num: Num, fn) -> dict:  # noqa: ANN001
    hub = request.app.state.hub
    store = hub.store(repo_type_of(request))
    data = await json_body(request)

    def work(s, p):  # noqa: ANN001, ANN202
        space = store.get(s, f"{ns}/{name}", p)
        return fn(s, p, space, disc.get(s, space, num), data)
    return await in_session(request, work, auth_required=True)


@typed_route(router, ["POST"], "/discussions/{num}/comment")
async def comment(ns: str, name: str, num: Num, request: Request) -> dict:
    hub = request.app.state.hub

    def fn(s, p, space, d, data):  # noqa: ANN001, ANN202
        event = disc.comment(s, d, p, data.get("comment"))
        url = pr_url(hub, space, d.num)
        hub.announce(s, space, _kind(space), "discussion", "create", "discussion.comment",
                     discussion=hook_discussion(hub, space, d),
                     comment={"id": event.id, "author": {"id": p.account.id}, "hidden": False,
                              "content": data.get("comment"), "url": {"web": f"{url}#{event.id}"}})
        return {"newMessage": event_json(event)}
    return await _change(request, ns, name, num, fn)


@typed_route(router, ["POST"], "/discussions/{num}/title")
async def rename(ns: str, name: str, num: Num, request: Request) -> dict:
    return await _change(request, ns, name, num, lambda s, p, space, d, data: {
        "newTitle": event_json(disc.rename(s, space, d, p, data.get("title")))})


@typed_route(router, ["POST"], "/discussions/{num}/status")
async def change_status(ns: str, name: str, num: Num, request: Request) -> dict:
    return await _change(request, ns, name, num, lambda s, p, space, d, data: {
        "newStatus": event_json(disc.change_status(s, space, d, p, data.get("status"), get_str(data, "comment")))})


@typed_route(router, ["POST"], "/discussions/{num}/merge")
async def merge(ns: str, name: str, num: Num, request: Request) -> dict:
    hub = request.app.state.hub
    store = hub.store(repo_type_of(request))

    def fn(s, p, space, d, data):  # noqa: ANN001, ANN202
        sha = disc.merge(s, store.repo(space), space, d, p, get_str(data, "comment"))
        if d.target_branch == "main":
            store.refresh(s, space)  # the merged main is what the Space builds and serves next
        return {"mergeCommitId": sha}
    return await _change(request, ns, name, num, fn)


@typed_route(router, ["POST"], "/discussions/{num}/comment/{comment_id}/edit")
async def edit_comment(ns: str, name: str, num: Num, comment_id: str, request: Request) -> dict:
    return await _change(request, ns, name, num, lambda s, p, space, d, data: {
        "updatedComment": event_json(disc.edit_comment(s, d, p, comment_id, data.get("content")))})


@typed_route(router, ["POST"], "/discussions/{num}/comment/{comment_id}/hide")
async def hide_comment(ns: str, name: str, num: Num, comment_id: str, request: Request) -> dict:
    return await _change(request, ns, name, num, lambda s, p, space, d, data: {
        "updatedComment": event_json(disc.hide_comment(s, space, d, p, comment_id))})

"""The Community tab: a Space's discussions and pull requests (``/spaces/{o}/{n}/discussions[/{num}]``, the Hub's
paths, which is also where ``pullRequestUrl`` points). Anyone who can see the Space reads them; signed-in
visitors open a discussion and comment; the author or a writer closes and reopens; writers merge a pull request
(a signed-in visitor opens a pull request from the tab too: one file typed in or uploaded, committed to
``refs/pr/N`` by the API's ``create_pr=True`` path). Rules and checks are
those of the API (:mod:`spaces.services.discussions`). Models and datasets have the same tab at their own paths
(``repo_view`` registers these handlers there; the type comes from the path).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from spaces.domain.naming import validate_path_in_repo
from spaces.errors import BadRequest, SpacesError
from spaces.hub import session as sess
from spaces.hub.api.common import repo_type_of
from spaces.hub.api.discussions import commit_to_pull_request, details_json, writable_for
from spaces.hub.pages import space_view
from spaces.hub.pages.web import db, form, hub_of, redirect, render, require_user
from spaces.services import discussions as disc
from spaces.storage.gitrepo import Addition

router = APIRouter()


def _load(request: Request, hub, s, viewer, ns: str, name: str):  # noqa: ANN001, ANN202
    return space_view._load(request, hub, s, viewer, ns, name)  # (page, git repository) of the path's type


def _base(request: Request, ns: str, name: str) -> str:
    return {"space": "/spaces", "dataset": "/datasets", "model": ""}[repo_type_of(request)] + f"/{ns}/{name}"


def _layout(request: Request) -> str:
    return space_view._layout(request)


@router.get("/spaces/{ns}/{name}/discussions", response_class=HTMLResponse)
async def community_tab(ns: str, name: str, request: Request) -> HTMLResponse:
    hub = hub_of(request)

    def work(s, viewer):  # noqa: ANN001, ANN202
        page, _ = _load(request, hub, s, viewer, ns, name)
        rows, total, closed = disc.listing(s, page.space, kind=None, status=None, author=None, offset=0, limit=200)
        return page, rows, total, closed

    page, rows, total, closed = await db(request, work)
    return await render(request, "space/community.html", page=page, tab="community", discussions=rows,
                        total=total, closed=closed, layout=_layout(request))


@router.get("/spaces/{ns}/{name}/discussions/{num}", response_class=HTMLResponse)
async def discussion_page(ns: str, name: str, num: int, request: Request) -> HTMLResponse:
    hub = hub_of(request)

    def work(s, viewer):  # noqa: ANN001, ANN202
        page, repo = _load(request, hub, s, viewer, ns, name)
        d = disc.get(s, page.space, num)
        details = details_json(s, d, page.space, repo, with_diff=True)
        may_manage = viewer.principal is not None and (page.can_write or d.author_id == viewer.principal.account.id)
        return page, details, may_manage

    page, details, may_manage = await db(request, work)
    return await render(request, "space/discussion.html", page=page, tab="community", d=details,
                        may_manage=may_manage, layout=_layout(request))


@router.post("/spaces/{ns}/{name}/discussions")
async def open_discussion(ns: str, name: str, request: Request) -> Response:
    data = await form(request)
    hub = hub_of(request)

    def work(s, viewer):  # noqa: ANN001, ANN202
        principal = require_user(viewer)
        page, repo = _load(request, hub, s, viewer, ns, name)
        try:
            d = disc.open_discussion(s, repo, page.space, principal, data.get("title"),
                                     str(data.get("description") or ""), pull_request=False)
        except SpacesError as exc:
            return None, exc.message
        return d.num, None

    num, error = await db(request, work)
    if error:
        sess.flash(request, error, "error")
        return redirect(f"{_base(request, ns, name)}/discussions")
    return redirect(f"{_base(request, ns, name)}/discussions/{num}")


#: what one file of a pull request from the web may weigh (bigger files go through huggingface_hub or git)
MAX_WEB_FILE = 10 << 20


@router.post("/spaces/{ns}/{name}/discussions/propose")
async def propose_change(ns: str, name: str, request: Request) -> Response:
    """A pull request from the web: one file written (typed in, or uploaded) on a new ``refs/pr/N``, through the
    API's own ``create_pr=True`` path (``commit_to_pull_request``): the same rules, events and webhooks."""
    data = await form(request)
    hub = hub_of(request)
    kind = repo_type_of(request)
    try:
        path, content = await _proposed_file(data)
    except SpacesError as exc:
        sess.flash(request, exc.message, "error")
        return redirect(f"{_base(request, ns, name)}/discussions")
    title = str(data.get("title") or "").strip() or f"Update {path}"
    description = str(data.get("description") or "")

    def work(s, viewer):  # noqa: ANN001, ANN202
        principal = require_user(viewer)
        try:
            space, _ = writable_for(hub, s, principal, f"{ns}/{name}", "main", True, kind)

            def commit_on(ref: str) -> str:
                return hub.store(kind).commit(s, principal, space, additions=[Addition(path, content)],
                                              message=title, description=description, branch=ref)
            done = commit_to_pull_request(hub, s, principal, space, None, "main", title, description, commit_on,
                                          kind)
        except SpacesError as exc:
            s.rollback()
            return None, exc.message
        return int(done["pullRequestUrl"].rsplit("/", 1)[1]), None

    num, error = await db(request, work)
    if error:
        sess.flash(request, error, "error")
        return redirect(f"{_base(request, ns, name)}/discussions")
    sess.flash(request, f"Pull request #{num} opened.", "success")
    return redirect(f"{_base(request, ns, name)}/discussions/{num}")


async def _proposed_file(data) -> tuple[str, bytes]:  # noqa: ANN001
    """(path, content) of the proposed file: an upload wins over the text box; its name is the default path."""
    upload = data.get("file")
    path = str(data.get("path") or "").strip()
    if upload is not None and hasattr(upload, "read") and getattr(upload, "filename", ""):
        content = await upload.read(MAX_WEB_FILE + 1)
        path = path or upload.filename
    else:
        content = str(data.get("content") or "").replace("\r\n", "\n").encode()
    if len(content) > MAX_WEB_FILE:
        raise BadRequest(f"A file proposed from the web may be up to {MAX_WEB_FILE >> 20} MB; use huggingface_hub "
                         "(create_pr=True) or git for bigger ones.")
    if not path:
        raise BadRequest("Name the file to change (its path in the repository).")
    return validate_path_in_repo(path), content


@router.post("/spaces/{ns}/{name}/discussions/{num}/{action}")
async def discussion_action(ns: str, name: str, num: int, action: str, request: Request) -> Response:
    data = await form(request)
    hub = hub_of(request)
    if action not in ("comment", "close", "reopen", "merge"):
        return Response(status_code=404)

    def work(s, viewer):  # noqa: ANN001, ANN202
        principal = require_user(viewer)
        page, repo = _load(request, hub, s, viewer, ns, name)
        d = disc.get(s, page.space, num)
        text = str(data.get("comment") or "")
        try:
            if action == "comment":
                disc.comment(s, d, principal, text)
                return "Comment posted."
            if action in ("close", "reopen"):
                disc.change_status(s, page.space, d, principal, "closed" if action == "close" else "open", text)
                return "Closed." if action == "close" else "Reopened."
            disc.merge(s, repo, page.space, d, principal, text)
            if d.target_branch == "main":
                hub.store(repo_type_of(request)).refresh(s, page.space)
            return f"Merged into {d.target_branch}."
        except SpacesError as exc:
            s.rollback()
            return exc

    result = await db(request, work)
    if isinstance(result, SpacesError):
        sess.flash(request, result.message, "error")
    else:
        sess.flash(request, result, "success")
    return redirect(f"{_base(request, ns, name)}/discussions/{num}")

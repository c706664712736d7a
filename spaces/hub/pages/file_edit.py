"""Editing a repository in the browser: the Files tab's "Upload files" and the file view's "Edit", at the Hub's
paths (``/spaces/{o}/{n}/upload/{rev}[/{folder}]``, ``/spaces/{o}/{n}/edit/{rev}/{path}``; models and datasets at
theirs, see ``repo_view.install_file_tabs``).

Each is a form POST with the session's CSRF token (:func:`web.form`) and becomes one commit through
:func:`spaces.hub.api.files.commit_files`, the commit endpoint's own path: the same store, rules (paths, sizes,
branch), webhooks, and for a Space's main the same rebuild. An edit carries the commit it started from as the
parent: a commit that landed meanwhile makes it fail with a conflict instead of overwriting that change, and the
form comes back with the text typed, the error above it. Uploads are spooled to the data dir's disk (as the
commit endpoint spools) and handed to git as files, never held in memory whole.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from spaces.domain.naming import validate_path_in_repo
from spaces.errors import BadRequest, SpacesError
from spaces.hub import session as sess
from spaces.hub.api.common import repo_type_of
from spaces.hub.api.files import commit_files, lfs_threshold, spool_root
from spaces.hub.pages.space_view import PREVIEW_BYTES, _crumbs, _file_at, _layout, _load, _rev_path
from spaces.hub.pages.web import db, form, hub_of, redirect, render, require_user
from spaces.storage import lfsfiles
from spaces.storage.gitrepo import Addition

router = APIRouter()
MAX_UPLOAD_FILES = 100


class _Refused(Exception):
    def __init__(self, error: SpacesError) -> None:
        super().__init__(error.message)
        self.error = error


def _writable(request: Request, hub, s, viewer, ns: str, name: str):  # noqa: ANN001, ANN202
    """The page and git repository of a repository the viewer may write to (Forbidden, or a sign-in, if not)."""
    principal = require_user(viewer)
    page, repo = _load(request, hub, s, viewer, ns, name)
    hub.store(repo_type_of(request)).get_writable(s, page.space.repo_id, principal)
    return page, repo, principal


def _text_of(repo, rev: str, path: str) -> tuple[str, str]:  # noqa: ANN001
    """(commit, text) of a file that can be edited here: UTF-8, no NUL, at most PREVIEW_BYTES."""
    sha, entry = _file_at(repo, rev, path)
    data = repo.read_blob(sha, path) if entry.size <= PREVIEW_BYTES else b"\0"
    try:
        if b"\0" in data:
            raise UnicodeDecodeError("utf-8", data[:1], 0, 1, "binary")
        return sha, data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{path} is binary or larger than {PREVIEW_BYTES // 1024} KiB: upload a new version "
                         "instead of editing it here.") from None


# ---- edit -------------------------------------------------------------------------------------------------
@router.get("/spaces/{ns}/{name}/edit/{rest:path}", response_class=HTMLResponse)
async def edit_page(ns: str, name: str, rest: str, request: Request) -> HTMLResponse:
    hub = hub_of(request)
    rev, path = _rev_path(request, "edit")

    def work(s, viewer):  # noqa: ANN001, ANN202
        page, repo, _ = _writable(request, hub, s, viewer, ns, name)
        return (page, *_text_of(repo, rev, path))

    page, parent, text = await db(request, work)
    return await _edit_form(request, page, rev, path, parent, text)


async def _edit_form(request: Request, page, rev: str, path: str, parent: str, text: str,  # noqa: ANN001
                     summary: str = "", status: int = 200) -> HTMLResponse:
    return await render(request, "space/edit.html", status=status, page=page, tab="files", layout=_layout(request),
                        rev=rev, path=path, parent=parent, text=text, summary=summary, crumbs=_crumbs(path))


@router.post("/spaces/{ns}/{name}/edit/{rest:path}")
async def edit(ns: str, name: str, rest: str, request: Request) -> Response:
    data = await form(request)
    hub = hub_of(request)
    rev, path = _rev_path(request, "edit")
    text = str(data.get("content") or "")
    summary = str(data.get("summary") or "").strip() or f"Update {path}"
    parent = str(data.get("parent") or "") or None

    def work(s, viewer):  # noqa: ANN001, ANN202
        page, repo, principal = _writable(request, hub, s, viewer, ns, name)
        try:
            _, before = _text_of(repo, rev, path)
            # browsers send a textarea's lines ending in CRLF: keep the file's own line ends
            content = text if "\r\n" in before else text.replace("\r\n", "\n")
            return page, commit_files(hub, s, principal, repo_type_of(request), page.space, branch=rev,
                                      message=summary, parent=parent,
                                      additions=[Addition(path, content.encode("utf-8"))])
        except SpacesError as exc:
            raise _Refused(exc) from None

    try:
        page, sha = await db(request, work)
    except _Refused as refused:  # the form again, with what was typed and why it was not committed
        sess.flash(request, f"Not committed: {refused.error.message}", "error")
        page = await db(request, lambda s, viewer: _writable(request, hub, s, viewer, ns, name)[0])
        return await _edit_form(request, page, rev, path, parent or "", text, summary,
                                status=refused.error.status)
    sess.flash(request, f"Committed {sha[:7]}: {summary}", "success")
    return redirect(f"{page.base}/blob/{rev}/{path}")


# ---- upload -----------------------------------------------------------------------------------------------
@router.get("/spaces/{ns}/{name}/upload", response_class=HTMLResponse)
@router.get("/spaces/{ns}/{name}/upload/{rest:path}", response_class=HTMLResponse)
async def upload_page(ns: str, name: str, request: Request, rest: str = "") -> HTMLResponse:
    hub = hub_of(request)
    rev, folder = _rev_path(request, "upload")
    page = await db(request, lambda s, viewer: _writable(request, hub, s, viewer, ns, name)[0])
    return await render(request, "space/upload.html", page=page, tab="files", layout=_layout(request), rev=rev,
                        path=folder, crumbs=_crumbs(folder), max_files=MAX_UPLOAD_FILES)


@router.post("/spaces/{ns}/{name}/upload")
@router.post("/spaces/{ns}/{name}/upload/{rest:path}")
async def upload(ns: str, name: str, request: Request, rest: str = "") -> Response:
    data = await form(request)
    hub = hub_of(request)
    rev, folder = _rev_path(request, "upload")
    files = [f for f in data.getlist("files") if isinstance(f, UploadFile) and f.filename]
    back = request.url.path
    if not files or len(files) > MAX_UPLOAD_FILES:
        sess.flash(request, f"Choose between 1 and {MAX_UPLOAD_FILES} files to upload.", "error")
        return redirect(back)
    spool = Path(tempfile.mkdtemp(prefix="upload-", dir=spool_root(hub.settings.data_path)))
    try:
        additions = []
        for i, f in enumerate(files):
            target = spool / str(i)
            with target.open("wb") as out:
                await _copy(f, out)
            additions.append((f.filename, target))
        summary = str(data.get("summary") or "").strip() or (
            f"Upload {additions[0][0]}" if len(additions) == 1 else f"Upload {len(additions)} files")

        def work(s, viewer):  # noqa: ANN001, ANN202
            page, _, principal = _writable(request, hub, s, viewer, ns, name)
            try:
                adds = [Addition(validate_path_in_repo(f"{folder}/{n}" if folder else n), file=p)
                        for n, p in additions]
                # what the commit API does: tracked or large files become LFS objects, tracked in .gitattributes
                repo = hub.store(repo_type_of(request)).repo(page.space)
                adds = lfsfiles.to_pointers(repo, hub.objects, repo.resolve(rev), adds, {}, lfs_threshold(hub))
                return page, commit_files(hub, s, principal, repo_type_of(request), page.space, branch=rev,
                                          message=summary, additions=adds)
            except SpacesError as exc:
                raise _Refused(exc) from None

        try:
            page, sha = await db(request, work)
        except _Refused as refused:
            sess.flash(request, f"Not uploaded: {refused.error.message}", "error")
            return redirect(back)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    sess.flash(request, f"Committed {sha[:7]}: {summary}", "success")
    return redirect(f"{page.base}/tree/{rev}{'/' + folder if folder else ''}")


async def _copy(upload: UploadFile, out) -> None:  # noqa: ANN001
    while chunk := await upload.read(1 << 20):
        out.write(chunk)

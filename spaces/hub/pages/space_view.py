"""The Space page and its read-only tabs: App (the iframe), Files (tree, file view, history) and Logs. The file
tabs serve models and datasets too, at their own paths (``repo_view`` registers them there): the type comes from
the path, and the page from that type's store.

Paths are the Hub's (``/spaces/{o}/{n}``, ``/tree/{rev}/{path}``, ``/blob/...``, ``/commits/{rev}``). The same
prefix is the git remote: git only asks for ``/info/refs``, ``/git-upload-pack`` and ``/git-receive-pack`` and
downloads use ``/resolve/...``; none of the routes here has those names.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup

from spaces.domain.stages import SpaceStage
from spaces.errors import BadRequest, EntryNotFound, RevisionNotFound
from spaces.hub.api.common import after, repo_type_of
from spaces.hub.pages import space_common
from spaces.hub.pages.highlight import highlight_lines
from spaces.hub.pages.web import db, hub_of, render

router = APIRouter()
PREVIEW_BYTES = 512 * 1024
COMMITS_PER_PAGE = 30
LOG_TAIL = 200


@router.get("/spaces/{ns}/{name}", response_class=HTMLResponse)
async def app_tab(ns: str, name: str, request: Request) -> HTMLResponse:
    hub = hub_of(request)
    if name.endswith(".git"):
        return RedirectResponse(f"/spaces/{ns}/{name[:-4]}", status_code=301)

    def work(s, viewer):  # noqa: ANN001, ANN202
        page = space_common.load(hub, s, viewer, ns, name)
        if page.space.stage == SpaceStage.SLEEPING:
            request.app.state.page_hooks.wake(hub, page.space.id)
        kind = {"BUILD_ERROR": "build", "RUNTIME_ERROR": "run"}.get(page.space.stage)
        lines = [e.data for e in hub.logs.history(page.space.id, kind, LOG_TAIL)] if kind else []
        return page, kind, lines

    page, log_kind, log_lines = await db(request, work)
    return await render(request, "space/app.html", page=page, tab="app", log_kind=log_kind, log_lines=log_lines,
                        created=request.query_params.get("new") == "1")


def _rev_path(request: Request, marker: str) -> tuple[str, str]:
    try:
        return after(request, marker, 3 if repo_type_of(request) == "model" else 4)
    except BadRequest:
        return "main", ""


def _file_at(repo, rev: str, path: str):  # noqa: ANN001, ANN202
    """(commit, entry) of the file ``path`` at ``rev``; RevisionNotFound / EntryNotFound (a folder is not a file)."""
    sha = repo.resolve(rev)
    if sha is None:
        raise RevisionNotFound(rev)
    entry = repo.stat(sha, path)
    if entry.type != "file":
        raise EntryNotFound(path, rev)
    return sha, entry


def _load(request: Request, hub, s, viewer, ns: str, name: str):  # noqa: ANN001, ANN202
    """The page of the repository the path names (a Space, a model or a dataset) and its git repository."""
    from spaces.hub.pages import repo_view  # installed after this module (see spaces.hub.pages)

    kind = repo_type_of(request)
    page = space_common.load(hub, s, viewer, ns, name) if kind == "space" else \
        repo_view.load(hub, s, viewer, kind, ns, name)
    return page, hub.store(kind).repo(page.space)


def _layout(request: Request) -> str:
    return "space/_layout.html" if repo_type_of(request) == "space" else "repo/_layout.html"


@router.get("/spaces/{ns}/{name}/tree", response_class=HTMLResponse)
@router.get("/spaces/{ns}/{name}/tree/{rest:path}", response_class=HTMLResponse)
async def files_tab(ns: str, name: str, request: Request, rest: str = "") -> HTMLResponse:
    hub = hub_of(request)
    rev, path = _rev_path(request, "tree")

    def work(s, viewer):  # noqa: ANN001, ANN202
        page, repo = _load(request, hub, s, viewer, ns, name)
        sha = repo.resolve(rev) if page.space.sha or rev != "main" else None
        if sha is None:
            if rev != "main" or path:
                raise RevisionNotFound(rev)
            return page, None, [], {}, None
        entry = repo.stat(sha, path) if path else None
        if entry is not None and entry.type == "file":
            return page, sha, None, {}, entry
        entries = sorted(repo.list_tree(sha, path), key=lambda e: (e.type != "directory", e.path.lower()))
        pointers = repo.lfs_pointers(entries)  # an LFS file's size is its object's, as the API says
        entries = [replace(e, size=pointers[e.oid].size) if e.oid in pointers else e for e in entries]
        last = repo.last_commits(sha, [e.path for e in entries])
        head = repo.log(sha, limit=1, path=path or None)
        return page, sha, entries, last, head[0] if head else None, _folder_readme(repo, sha, entries)

    page, sha, entries, last, head, readme = await db(request, work)
    if entries is None:  # a file: show it with the file view
        return RedirectResponse(f"{page.base}/blob/{rev}/{path}", status_code=302)
    return await render(request, "space/files.html", page=page, tab="files", layout=_layout(request), rev=rev, path=path, sha=sha,
                        entries=entries, last=last, head=head, crumbs=_crumbs(path),
                        readme_html=_render_markdown(readme) if readme is not None else None)


def _folder_readme(repo, sha: str, entries: list) -> str | None:  # noqa: ANN001
    """The folder's README.md, shown rendered under its listing as the Hub does (None: none, or too large)."""
    entry = next((e for e in entries or () if e.type == "file" and e.path.rsplit("/", 1)[-1] == "README.md"), None)
    if entry is None or (entry.size or 0) > PREVIEW_BYTES:
        return None
    return repo.read_blob(sha, entry.path).decode("utf-8", "replace")


def _render_markdown(text: str) -> Markup:
    from spaces.hub.pages.repo_view import render_readme  # the card's renderer: raw HTML escaped, front matter off

    return Markup(render_readme(text))  # noqa: S704 - markdown-it escapes raw HTML (repo_view._MD)


@router.get("/spaces/{ns}/{name}/blob/{rest:path}", response_class=HTMLResponse)
async def file_view(ns: str, name: str, rest: str, request: Request) -> HTMLResponse:
    hub = hub_of(request)
    rev, path = _rev_path(request, "blob")
    if not path:
        return RedirectResponse(f"{request.url.path.split('/blob/', 1)[0]}/tree/{rev}", status_code=302)

    def work(s, viewer):  # noqa: ANN001, ANN202
        page, repo = _load(request, hub, s, viewer, ns, name)
        sha, entry = _file_at(repo, rev, path)
        text = None
        pointer = repo.lfs_pointers([entry]).get(entry.oid)
        if pointer is not None:  # stored with Git LFS: its real size, never the pointer text as its content
            entry = replace(entry, size=pointer.size)
        elif entry.size <= PREVIEW_BYTES:
            data = repo.read_blob(sha, path)
            if b"\0" not in data[:8000]:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
        last = repo.log(sha, limit=1, path=path)
        return page, sha, entry, text, last[0] if last else None

    page, sha, entry, text, last = await db(request, work)
    lines = text.split("\n") if text is not None else None
    if lines and lines[-1] == "":
        lines.pop()
    # Markdown is shown rendered, its source with ?plain=1 (GitHub's switch); code is highlighted (Pygments)
    plain = request.query_params.get("plain") == "1"
    markdown = text is not None and path.lower().endswith((".md", ".markdown"))
    rendered = _render_markdown(text) if markdown and not plain else None
    return await render(request, "space/blob.html", page=page, tab="files", rev=rev, path=path, sha=sha,
                        entry=entry, lines=lines, last=last, crumbs=_crumbs(path),
                        highlighted=highlight_lines(path, text) if text is not None and rendered is None else None,
                        rendered=rendered, markdown=markdown,
                        raw_url=f"{page.base}/resolve/{rev}/{path}", layout=_layout(request))


@router.get("/spaces/{ns}/{name}/commits", response_class=HTMLResponse)
@router.get("/spaces/{ns}/{name}/commits/{rest:path}", response_class=HTMLResponse)
async def history(ns: str, name: str, request: Request, rest: str = "") -> HTMLResponse:
    hub = hub_of(request)
    rev, path = _rev_path(request, "commits")
    try:
        p = max(0, int(request.query_params.get("p") or 0))
    except ValueError:
        p = 0

    def work(s, viewer):  # noqa: ANN001, ANN202
        page, repo = _load(request, hub, s, viewer, ns, name)
        sha = repo.resolve(rev) if page.space.sha or rev != "main" else None
        if sha is None:
            if rev != "main":
                raise RevisionNotFound(rev)
            return page, []
        return page, repo.log(sha, limit=COMMITS_PER_PAGE + 1, skip=p * COMMITS_PER_PAGE, path=path or None)

    page, commits = await db(request, work)
    return await render(request, "space/commits.html", page=page, tab="files", layout=_layout(request), rev=rev, path=path,
                        commits=commits[:COMMITS_PER_PAGE], more=len(commits) > COMMITS_PER_PAGE, p=p)


@router.get("/spaces/{ns}/{name}/commit/{sha}", response_class=HTMLResponse)
async def commit_view(ns: str, name: str, sha: str, request: Request) -> HTMLResponse:
    hub = hub_of(request)

    def work(s, viewer):  # noqa: ANN001, ANN202
        page, repo = _load(request, hub, s, viewer, ns, name)
        full = repo.resolve(sha)
        if full is None:
            raise RevisionNotFound(sha)
        info = repo.log(full, limit=2)
        return page, info[0], info[1] if len(info) > 1 else None, repo.list_tree(full, recursive=True)

    page, commit, parent, entries = await db(request, work)
    return await render(request, "space/commit.html", page=page, tab="files", layout=_layout(request), commit=commit, parent=parent,
                        entries=[e for e in entries if e.type == "file"])


@router.get("/spaces/{ns}/{name}/logs", response_class=HTMLResponse)
async def logs_tab(ns: str, name: str, request: Request) -> HTMLResponse:
    hub = hub_of(request)
    page = await db(request, lambda s, viewer: space_common.load(hub, s, viewer, ns, name))
    return await render(request, "space/logs.html", page=page, tab="logs")


def _crumbs(path: str) -> list[tuple[str, str]]:
    parts = [p for p in path.split("/") if p]
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]

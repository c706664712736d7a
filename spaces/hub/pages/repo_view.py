"""Model and dataset pages: the listings (``/models``, ``/datasets``), the card (README rendered, with the Spaces
that use the repository: README ``models:`` / ``datasets:`` of readable Spaces), and the Files, file, History and
commit tabs and the Community tab, which are the Space pages' own handlers (``space_view``, ``community``)
served at the Hub's paths of the other types: ``/{ns}/{name}/...`` for a model, ``/datasets/{ns}/{name}/...``
for a dataset.

Its router is included after every other page router and before the profile route: ``/{ns}/{name}`` has the
shape of any two-segment path, so every fixed page must be matched first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from markdown_it import MarkdownIt
from sqlalchemy import select
from sqlalchemy.orm import Session

from spaces.db.models import Account, Repo
from spaces.domain.cardconfig import parse_readme
from spaces.errors import EntryNotFound
from spaces.hub.api.other_repos import readable, used_by
from spaces.hub.context import PREFIX
from spaces.hub.pages.web import Viewer, db, hub_of, render
from spaces.services import accounts

router = APIRouter()
README_BYTES = 512 * 1024
PER_PAGE = 50
#: CommonMark with raw HTML off (escaped, never passed through) and markdown-it's link check (no javascript:)
_MD = MarkdownIt("commonmark", {"html": False}).enable("table")


@dataclass
class RepoPage:
    """What every tab of a model or dataset page needs. ``space`` is the repository row: the file tabs are the
    Space pages' templates, which read ``page.space.name``."""

    space: Repo
    repo_type: str
    can_write: bool
    git_url: str
    hub_url: str
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def repo_id(self) -> str:
        return self.space.repo_id

    @property
    def base(self) -> str:
        return f"{PREFIX[self.repo_type]}/{self.space.repo_id}"

    @property
    def title(self) -> str:
        return self.space.repo_id


def load(hub: Any, s: Session, viewer: Viewer, kind: str, ns: str, name: str) -> RepoPage:
    """The repository as the viewer may see it: RepoNotFound (a 404 page) when missing or private to them."""
    row = hub.store(kind).get(s, f"{ns}/{name.removesuffix('.git')}", viewer.principal)
    return RepoPage(space=row, repo_type=kind, can_write=accounts.may_write_namespace(s, viewer.principal, row.owner),
                    git_url=hub.repo_url(kind, row.repo_id), hub_url=hub.url(), card=dict(row.card_data or {}))


def render_readme(text: str) -> str:
    """A README as HTML: the YAML front matter off, the rest CommonMark with raw HTML escaped."""
    parsed = parse_readme(text)
    body = text.lstrip("\ufeff")
    if parsed.first_line:  # skip the front matter block (its closing `---` line included)
        lines = body.splitlines()
        body = "\n".join(lines[parsed.first_line - 1 + len(parsed.yaml_lines) + 1:])
    return _MD.render(body)


# ---- listings -------------------------------------------------------------------------------------------
@router.get("/models", response_class=HTMLResponse)
@router.get("/datasets", response_class=HTMLResponse)
async def listing(request: Request) -> HTMLResponse:
    kind = "model" if request.url.path == "/models" else "dataset"
    q = (request.query_params.get("q") or "").strip()[:100]

    def work(s, viewer):  # noqa: ANN001, ANN202
        query = readable(select(Repo).join(Account, Repo.owner_id == Account.id).where(Repo.repo_type == kind),
                         viewer.principal)
        if q:
            query = query.where(Repo.key.like(f"%{q.lower()}%"))
        return list(s.scalars(query.order_by(Repo.last_modified.desc(), Repo.key).limit(PER_PAGE)))

    rows = await db(request, work)
    return await render(request, "repo/list.html", kind=kind, rows=rows, q=q, prefix=PREFIX[kind])


# ---- the card -------------------------------------------------------------------------------------------
@router.get("/datasets/{ns}/{name}", response_class=HTMLResponse)
@router.get("/{ns}/{name}", response_class=HTMLResponse)
async def card(ns: str, name: str, request: Request) -> HTMLResponse:
    hub = hub_of(request)
    kind = "dataset" if request.url.path.startswith("/datasets/") else "model"
    if name.endswith(".git"):
        return RedirectResponse(f"{PREFIX[kind]}/{ns}/{name[:-4]}", status_code=301)

    def work(s, viewer):  # noqa: ANN001, ANN202
        page = load(hub, s, viewer, kind, ns, name)
        git = hub.store(kind).repo(page.space)
        readme = None
        if page.space.sha:
            try:
                entry = git.stat(page.space.sha, "README.md")
                if entry.size <= README_BYTES:
                    readme = git.read_blob(page.space.sha, "README.md").decode("utf-8", "replace")
            except EntryNotFound:
                pass
        files = [e for e in git.list_tree(page.space.sha, recursive=True) if e.type == "file"] \
            if page.space.sha else []
        return page, readme, used_by(s, viewer.principal, kind, page.repo_id), files

    page, readme, spaces, files = await db(request, work)
    return await render(request, "repo/card.html", page=page, tab="card",
                        readme_html=render_readme(readme) if readme is not None else None, spaces=spaces,
                        files=files, size=sum(e.size or 0 for e in files))


def install_file_tabs() -> None:
    """Serve the Space pages' Files, file, History and commit handlers at the model and dataset paths too (the
    handlers read the type from the path). Called by ``install_pages``; once per process."""
    global _tabs_installed
    if _tabs_installed:
        return
    _tabs_installed = True
    from spaces.hub.pages import community, file_edit, space_view

    tabs = [("/tree", space_view.files_tab), ("/tree/{rest:path}", space_view.files_tab),
            ("/blob/{rest:path}", space_view.file_view), ("/commits", space_view.history),
            ("/commits/{rest:path}", space_view.history), ("/commit/{sha}", space_view.commit_view),
            ("/discussions", community.community_tab), ("/discussions/{num}", community.discussion_page),
            ("/edit/{rest:path}", file_edit.edit_page), ("/upload", file_edit.upload_page),
            ("/upload/{rest:path}", file_edit.upload_page)]
    posts = [("/discussions", community.open_discussion), ("/discussions/propose", community.propose_change),
             ("/discussions/{num}/{action}", community.discussion_action),
             ("/edit/{rest:path}", file_edit.edit), ("/upload", file_edit.upload),
             ("/upload/{rest:path}", file_edit.upload)]
    for prefix in ("/datasets", ""):
        for suffix, handler in tabs:
            router.add_api_route(f"{prefix}/{{ns}}/{{name}}{suffix}", handler, methods=["GET"],
                                 response_class=HTMLResponse)
        for suffix, handler in posts:
            router.add_api_route(f"{prefix}/{{ns}}/{{name}}{suffix}", handler, methods=["POST"])



_tabs_installed = False

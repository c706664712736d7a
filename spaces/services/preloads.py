"""Where a Space's ``preload_from_hub`` files come from: this hub's own model and dataset repositories.

Access rule: a build reads exactly what the Space's owner could read with a read token. Public repositories
always; a private one when the owner is its owner (a user's own, or the organization that owns both), a member of
the organization that owns it, or an admin. A repository the owner cannot read is reported exactly like a missing
one (private looks like missing everywhere on this hub). The app itself is given no token: it reads the preloaded
copies from its cache.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator

from spaces.builder.preload import PreloadFile, ResolvedRepo, preload_failed
from spaces.db.models import Space
from spaces.db.session import Database
from spaces.domain.cardconfig import Preload
from spaces.errors import EntryNotFound, SpacesError
from spaces.services import accounts
from spaces.services.accounts import Principal


class HubPreloadSource:
    """:class:`~spaces.builder.preload.PreloadSource` over the hub's stores (``store_for("model")`` ...)."""

    def __init__(self, db: Database, store_for: Callable[[str], object]) -> None:
        self.db = db
        self.store_for = store_for

    def resolve(self, space_id: str, item: Preload) -> ResolvedRepo:
        what = f"the {item.repo_type} {item.repo_id}"
        with self.db.session() as s:
            space = s.get(Space, space_id)
            store = self.store_for(item.repo_type)
            row = store.find(s, item.repo_id)
            reader = Principal(space.owner, "read") if space is not None else None
            if row is None or (row.private and not accounts.may_read_namespace(s, reader, row.owner)):
                raise preload_failed(f"preload_from_hub: {what} does not exist on this hub (or is private and "
                                     f"{space.owner.name if space else 'the owner'} cannot read it).")
            repo_id, repo = row.repo_id, store.repo(row)
        revision = item.revision or "main"
        commit = repo.resolve(revision)
        if commit is None:
            raise preload_failed(f"preload_from_hub: {what} has no revision {revision!r}.")
        return ResolvedRepo(item.repo_type, repo_id, revision, commit, self._files(repo, commit, item, what))

    @staticmethod
    def _files(repo, commit: str, item: Preload, what: str) -> tuple[PreloadFile, ...]:  # noqa: ANN001
        every = [e for e in repo.list_tree(commit, "", recursive=True) if e.type == "file"]
        if not item.files:
            return tuple(PreloadFile(e.path, e.oid, e.size) for e in every)
        out: dict[str, PreloadFile] = {}
        for wanted in item.files:
            if any(c in wanted for c in "*?["):
                hits = [e for e in every if fnmatch.fnmatchcase(e.path, wanted)]
            else:
                try:
                    hits = [e for e in [repo.stat(commit, wanted)] if e.type == "file"]
                except (EntryNotFound, SpacesError):
                    hits = []
            if not hits:
                raise preload_failed(f"preload_from_hub: {what} has no file {wanted!r} at {item.revision or 'main'}"
                                     f" ({commit[:7]}).")
            out.update((e.path, PreloadFile(e.path, e.oid, e.size)) for e in hits)
        return tuple(out.values())

    def open(self, repo: ResolvedRepo, path: str) -> Iterator[bytes]:
        with self.db.session() as s:
            store = self.store_for(repo.repo_type)
            row = store.find(s, repo.repo_id)
            if row is None:
                raise preload_failed(f"preload_from_hub: the {repo.repo_type} {repo.repo_id} was deleted during "
                                     "the build.")
            git = store.repo(row)
        _entry, chunks = git.open_blob(repo.commit, path)
        return chunks

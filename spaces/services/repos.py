"""Model and dataset repositories: create, commit, delete, move, visibility. Files and history only; nothing
here builds or runs anything.

The same rules as a Space's (see :mod:`spaces.services.spaces`): every change is a real git commit in a bare
repository (``repos/{type}s/{repo.id}.git``, apart from the Spaces' ``repos/{id}.git`` so that neither side's
start-up sweep can take the other's); git's ``main`` is the truth and the row's ``sha`` and card data are derived
from it; a commit the transaction does not keep is taken back out of git.

:class:`RepoService` answers the calls that the type-generic API routes make of a store (``find``, ``get``,
``get_writable``, ``repo``, ``commit``, ``super_squash``, ``refresh``), as :class:`SpaceService` does for Spaces.
One instance serves one type: a lookup never returns another type's repository.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spaces.db.models import Account, Repo, new_id, utcnow
from spaces.db.session import after_commit, after_rollback
from spaces.domain.cardconfig import parse_readme
from spaces.domain.lfs import default_gitattributes
from spaces.domain.naming import validate_repo_id
from spaces.errors import BadRequest, EntryNotFound, Forbidden, RepoExists, RepoNotFound
from spaces.services import accounts
from spaces.services.accounts import Principal
from spaces.storage.cached import CachedGitRepo
from spaces.storage.gitrepo import Addition, GitRepo
from spaces.services.objects import object_store

REPO_TYPES = ("model", "dataset")
#: what the Hub's first commit holds; no LFS patterns, since this server takes large files through git as they are
#: a README larger than this gives an empty card (its front matter is never read)
MAX_README_BYTES = 1 << 20


class RepoService:
    """Operations on the repositories of one type (``model`` or ``dataset``). Callers pass an open Session; the
    caller's transaction commits."""

    def __init__(self, repos_root: Path, repo_type: str) -> None:
        if repo_type not in REPO_TYPES:
            raise ValueError(repo_type)
        self.kind = repo_type
        self.root = repos_root / f"{repo_type}s"
        self.objects = object_store(repos_root)  # LFS objects (and Xet uploads), shared by every repository

    def _author(self, p: Principal) -> tuple[str, str]:
        return p.account.name, p.account.email or f"{p.account.name}@users.noreply.spaces"

    # ---- lookup -----------------------------------------------------------------------------------------
    def repo(self, row: Repo) -> GitRepo:
        return CachedGitRepo(self.root / f"{row.id}.git", self.objects)

    def find(self, s: Session, repo_id: str) -> Repo | None:
        return s.scalar(select(Repo).where(Repo.repo_type == self.kind, Repo.key == repo_id.lower()))

    def get(self, s: Session, repo_id: str, principal: Principal | None) -> Repo:
        row = self.find(s, repo_id)
        if row is None:
            raise RepoNotFound(repo_id, self.kind)
        if row.private and not accounts.may_read_namespace(s, principal, row.owner):
            raise RepoNotFound(repo_id, self.kind)  # private looks exactly like missing
        return row

    def get_writable(self, s: Session, repo_id: str, principal: Principal | None) -> Repo:
        row = self.get(s, repo_id, principal)
        accounts.check_write(s, principal, row)
        return row

    # ---- create / delete / move -------------------------------------------------------------------------
    def _owner(self, s: Session, principal: Principal, namespace: str):  # noqa: ANN202
        owner = accounts.find_account(s, namespace)
        if owner is None:
            raise Forbidden(f"The namespace '{namespace}' does not exist; create the organization first.")
        if not accounts.may_write_namespace(s, principal, owner):
            raise Forbidden(f"You don't have the rights to create a {self.kind} under the namespace '{namespace}'.")
        return owner

    def create(self, s: Session, principal: Principal, namespace: str, name: str, *, private: bool) -> Repo:
        validate_repo_id(f"{namespace}/{name}")
        owner = self._owner(s, principal, namespace)
        repo_id = f"{owner.name}/{name}"
        existing = self.find(s, repo_id)
        if existing is not None:
            raise RepoExists(f"You already created this {self.kind} repo", repo_id=existing.repo_id, repo_type=self.kind)
        row, path = self._insert(s, principal, owner, name, repo_id, private)
        git = GitRepo.init_bare(path)
        after_rollback(s, git.delete)
        try:
            name_, email = self._author(principal)
            git.commit(additions=[Addition(".gitattributes", default_gitattributes(self.kind).encode())],
                       message="initial commit", author_name=name_, author_email=email)
            self.refresh(s, row)
        except BaseException:
            git.delete()
            raise
        return row

    def _insert(self, s: Session, principal: Principal, owner: Account, name: str, repo_id: str,
                private: bool) -> tuple[Repo, Path]:
        """A new row (the same name created at the same moment elsewhere is a 409) and its repository's path,
        emptied of what a crash between disk and database left there."""
        row = Repo(id=new_id(), repo_type=self.kind, owner_id=owner.id, owner=owner, name=name, repo_id=repo_id,
                   key=repo_id.lower(), private=private, card_data={}, created_by=principal.account.id)
        s.add(row)
        try:
            s.flush()
        except IntegrityError:
            raise RepoExists(f"This {self.kind} repo was created at the same moment by another request.",
                             repo_id=repo_id, repo_type=self.kind) from None
        path = self.repo(row).path
        if path.exists():
            shutil.rmtree(path)
        return row, path

    def duplicate(self, s: Session, principal: Principal, source: Repo, target_id: str, *,
                  private: bool | None) -> Repo:
        """A copy of ``source``'s files under ``target_id`` as one commit (the Hub squashes a duplicated model's or
        dataset's history); same visibility as the source unless told."""
        namespace, name = validate_repo_id(target_id)
        owner = self._owner(s, principal, namespace)
        repo_id = f"{owner.name}/{name}"
        if self.find(s, repo_id) is not None:
            raise RepoExists(f"You already created this {self.kind} repo", repo_id=repo_id, repo_type=self.kind)
        row, path = self._insert(s, principal, owner, name, repo_id,
                                 source.private if private is None else private)
        copy = self.repo(source).copy_to(path)
        after_rollback(s, copy.delete)
        try:
            for ref in [*copy.tags(), *copy.pull_requests()]:  # the copy starts with main alone, as on the Hub
                copy.delete_ref(ref if ref.startswith("refs/") else f"refs/tags/{ref}")
            for branch in copy.branches():
                if branch != "main":
                    copy.delete_ref(f"refs/heads/{branch}")
            if copy.head() is not None:
                author, email = self._author(principal)
                copy.squash("main", message=f"Duplicate from {source.repo_id}", author_name=author,
                            author_email=email)
            self.refresh(s, row)
        except BaseException:
            copy.delete()
            raise
        return row

    def delete(self, s: Session, row: Repo) -> None:
        git = self.repo(row)
        s.delete(row)
        s.flush()
        after_commit(s, git.delete)  # the files go once the row is gone for good

    def move(self, s: Session, principal: Principal, row: Repo, target_id: str) -> None:
        """Rename, or move to a namespace the caller may write; id, history, likes and discussions stay."""
        namespace, name = validate_repo_id(target_id)
        owner = self._owner(s, principal, namespace)
        new = f"{owner.name}/{name}"
        if new == row.repo_id:
            raise BadRequest(f"The {self.kind} is already named {row.repo_id}; choose another name.")
        existing = self.find(s, new)
        if existing is not None and existing.id != row.id:
            raise RepoExists(f"You already have a {self.kind} named {existing.repo_id}; choose another name.",
                             repo_id=existing.repo_id, repo_type=self.kind)
        row.owner_id, row.owner, row.name, row.repo_id, row.key = owner.id, owner, name, new, new.lower()
        row.last_modified = utcnow()
        try:
            s.flush()
        except IntegrityError:
            raise RepoExists(f"A {self.kind} named {new} was just created; choose another name.",
                             repo_id=new, repo_type=self.kind) from None

    def set_visibility(self, s: Session, row: Repo, private: bool) -> None:
        row.private = private

    # ---- files ------------------------------------------------------------------------------------------
    def commit(self, s: Session, principal: Principal, row: Repo, *, additions: list[Addition],
               deletions: Iterable[str] = (), deleted_folders: Iterable[str] = (), message: str,
               description: str = "", parent: str | None = None, branch: str = "main") -> str:
        git = self.repo(row)
        name, email = self._author(principal)
        sha = git.commit(additions=additions, deletions=list(deletions), deleted_folders=list(deleted_folders),
                         message=message, description=description, author_name=name, author_email=email,
                         expected_parent=parent, branch=branch, must_exist=branch != "main")
        after_rollback(s, lambda: git.undo_commit(sha, branch))
        if branch == "main":
            self.refresh(s, row)
        return sha

    def super_squash(self, s: Session, principal: Principal, row: Repo, branch: str, message: str) -> str:
        git = self.repo(row)
        name, email = self._author(principal)
        old, new = git.squash(branch, message=message, author_name=name, author_email=email)
        after_rollback(s, lambda: git.restore_tip(new, old, branch))
        if branch == "main":
            self.refresh(s, row)
        return new

    def refresh(self, s: Session, row: Repo, **_: object) -> None:
        """Re-read the tip of main after a commit or push: the card data of its README (a broken front matter
        leaves the card empty: a model card has no configuration that could fail)."""
        git = self.repo(row)
        sha = git.head()
        card: dict = {}
        if sha is not None:
            try:
                entry = git.stat(sha, "README.md")  # a card is read whole: bounded, and a file
                usable = entry.type == "file" and (entry.size or 0) <= MAX_README_BYTES
                readme = git.read_blob(sha, "README.md").decode("utf-8", "replace") if usable else None
            except EntryNotFound:  # no README: an empty card
                readme = None
            if readme is not None:
                parsed = parse_readme(readme)
                card = parsed.data if parsed.error is None else {}
        row.sha, row.card_data, row.last_modified = sha, card, utcnow()

    def repair(self, s: Session) -> list[str]:
        """As :meth:`SpaceService.repair`: rows whose ``sha`` is not git's tip come up to it; repositories no row
        names (a create or delete killed midway) go. Start-up only."""
        repaired, known = [], set()
        for row in s.scalars(select(Repo).where(Repo.repo_type == self.kind)):
            known.add(f"{row.id}.git")
            git = self.repo(row)
            if git.exists() and git.head() != row.sha:
                self.refresh(s, row)
                repaired.append(row.repo_id)
        for path in self.root.glob("*.git") if self.root.is_dir() else ():
            if path.name not in known:
                GitRepo(path).delete()
        return repaired

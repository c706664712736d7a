"""The Space lifecycle as the hub sees it: create, commit, duplicate, delete, settings, variables and secrets.

Every change to a Space's files is a real git commit in its bare repository (``repos/{space.id}.git``), whether
it came from the API or from ``git push``; after each one :meth:`SpaceService.refresh` re-reads README.md, stores
the card data and the stage (NO_APP_FILE / CONFIG_ERROR with a message naming the key or line) and hands a
buildable revision to the ``on_revision`` hook (the builder, when one is configured).

Ordering rule for disk and database: the database row is written (flushed) first so that name conflicts fail
before anything touches the disk; the git repository is created next; the transaction commits last.

All or nothing, and which side is the truth: **git's ``main`` is the truth about a Space's files; the database's
``sha``, card data and stage are derived from it.**

* A commit the platform refuses (bad path, parent mismatch, a push's pre-receive check) is refused before the ref
  moves.
* An API or web commit, a create and a duplicate register an undo with the transaction (``after_rollback``): when
  anything after the git update fails (refreshing the card, the builder's hand-off, the database commit itself),
  the ref goes back to its parent, or the new repository goes away, and the caller gets the error. Nothing half
  done stays visible.
* A process killed between the git update and the database commit cannot undo anything; at the next start
  :meth:`SpaceService.repair` brings every Space whose recorded ``sha`` differs from git's tip up to the tip (the
  commit happened: git has it, and for a push git already told the client so). The same holds for a push whose
  refresh failed. A repository left without its row (a create killed midway) holds nothing anyone can reach.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spaces.db.models import Account, Space, SpaceSecret, SpaceVariable, new_id, utcnow
from spaces.db.session import after_commit, after_rollback
from spaces.domain import hardware as hw
from spaces.domain.cardconfig import evaluate
from spaces.domain.lfs import default_gitattributes
from spaces.domain.naming import subdomain_candidates, validate_repo_id
from spaces.domain.stages import SpaceStage, set_stage
from spaces.errors import BadRequest, Forbidden, RepoExists, RepoNotFound
from spaces.runtime.flavors import FlavorCatalog
from spaces.services import accounts
from spaces.services.accounts import Principal
from spaces.storage.cached import CachedGitRepo
from spaces.storage.gitrepo import Addition, GitRepo
from spaces.services.objects import object_store

SDKS = ("gradio", "streamlit", "docker", "static")
#: a new Space's, as on the Hub: the usual model-weight and archive patterns go through LFS
SEED_GITATTRIBUTES = default_gitattributes("space")
DEFAULT_SDK_VERSION = {"gradio": "6.31.0", "streamlit": "1.67.0"}


def seed_readme(title: str, sdk: str, card: dict[str, str] | None = None) -> str:
    """The README of a new Space; ``card``: more front matter (``license``, ``short_description``)."""
    version = DEFAULT_SDK_VERSION.get(sdk)
    lines = ["---", f"title: {title}", "emoji: 🚀", "colorFrom: purple", "colorTo: indigo", f"sdk: {sdk}"]
    if version:
        lines.append(f'sdk_version: "{version}"')
    if sdk in ("gradio", "streamlit"):
        lines.append("app_file: app.py")
    elif sdk == "static":
        lines.append("app_file: index.html")
    elif sdk == "docker":
        lines.append("app_port: 7860")
    lines += [f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in (card or {}).items()]
    lines += ["pinned: false", "---", "", f"# {title}", "",
              "Push your app to this repository with git or huggingface_hub; it is built and served on every push.", ""]
    return "\n".join(lines)


@dataclass
class KeyValue:
    key: str
    value: str
    description: str | None = None


@dataclass
class CreateRequest:
    namespace: str
    name: str
    sdk: str
    private: bool = False
    hardware: str | None = None
    sleep_time: int | None = None
    secrets: list[KeyValue] = field(default_factory=list)
    variables: list[KeyValue] = field(default_factory=list)
    card: dict[str, str] = field(default_factory=dict)  # more README front matter (the web form's license...)


def front_matter_with(readme: str, card: dict[str, str]) -> str:
    """``readme`` with ``card``'s keys set in its front matter (a JSON string is a valid YAML scalar), replacing
    lines of the same keys; a README without front matter gets one."""
    if not card:
        return readme
    lines = readme.split("\n")
    ours = [f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in card.items()]
    if lines and lines[0].strip() == "---" and "---" in (line.strip() for line in lines[1:]):
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
        kept = [line for line in lines[1:end] if line.split(":", 1)[0].strip() not in card]
        return "\n".join(["---", *kept, *ours, *lines[end:]])
    return "\n".join(["---", *ours, "---", *lines])


@dataclass(frozen=True)
class SpaceHooks:
    """What the rest of the platform is told of (or asked about) Spaces; each None when that part is absent."""

    #: (session, space, factory=bool) -> None: take a buildable revision (the build service's ``submit``)
    on_revision: Callable[..., None] | None = None
    #: space id -> None, called after commit whenever desired state changed (the reconciler's ``nudge``)
    on_change: Callable[[str], None] | None = None
    #: (space id, subdomain, instance record) -> None, after a Space is deleted: stop it, drop its route
    on_deleted: Callable[[str, str, dict], None] | None = None
    #: (space id, old subdomain) -> None, after a Space was renamed or moved: drop the old name's route
    on_moved: Callable[[str, str], None] | None = None
    #: (session, account, flavor) -> None, raises QuotaExceeded: checked whenever hardware is asked for
    check_quota: Callable[[Session, Account, str], None] | None = None
    #: () -> {sdk: why this server cannot run it now} (no Docker engine answers); SDKs not named run
    sdk_unavailable: Callable[[], Mapping[str, str]] | None = None


class SpaceService:
    """Operations on Spaces. Callers pass an open Session; the caller's transaction commits."""

    def __init__(self, repos_root: Path, flavors: FlavorCatalog | None = None, hooks: SpaceHooks | None = None) -> None:
        self.repos_root = repos_root
        self.objects = object_store(repos_root)  # LFS objects (and Xet uploads), shared by every repository
        #: the flavors a Space may ask for (the process's one catalog, operator overrides applied)
        self.flavors = flavors or FlavorCatalog()
        hooks = hooks or SpaceHooks()
        self.on_revision = hooks.on_revision
        self.on_change = hooks.on_change
        self.on_deleted = hooks.on_deleted
        self.on_moved = hooks.on_moved
        self.check_quota = hooks.check_quota
        self._sdk_unavailable = hooks.sdk_unavailable

    def sdk_unavailable(self) -> dict[str, str]:
        """SDK -> why this server cannot run its Spaces now (the New Space form greys it with that reason)."""
        return dict(self._sdk_unavailable()) if self._sdk_unavailable is not None else {}

    def check_sdk(self, sdk: str) -> None:
        """BadRequest saying why, when this server cannot run ``sdk``: a Space it could never run is not made."""
        why = self.sdk_unavailable().get(sdk) if sdk in SDKS else None
        if why:
            raise BadRequest(why)

    def changed(self, s: Session, space: Space) -> None:
        """Tell the runtime, once this transaction commits, that the Space's desired state changed."""
        if self.on_change is not None:
            space_id, hook = space.id, self.on_change
            after_commit(s, lambda: hook(space_id))

    # ---- lookup -----------------------------------------------------------------------------------------
    def repo(self, space: Space) -> GitRepo:
        return CachedGitRepo(self.repos_root / f"{space.id}.git", self.objects)

    def find(self, s: Session, repo_id: str) -> Space | None:
        return s.scalar(select(Space).where(Space.key == repo_id.lower()))

    def get(self, s: Session, repo_id: str, principal: Principal | None) -> Space:
        """The Space if the caller may read it; RepoNotFound otherwise (also for private Spaces)."""
        space = self.find(s, repo_id)
        if space is None:
            raise RepoNotFound(repo_id)
        accounts.check_read(s, principal, space)
        return space

    def get_writable(self, s: Session, repo_id: str, principal: Principal | None) -> Space:
        space = self.get(s, repo_id, principal)
        accounts.check_write(s, principal, space)
        return space

    # ---- create / delete --------------------------------------------------------------------------------
    def _owner_for_create(self, s: Session, principal: Principal, namespace: str) -> Account:
        owner = accounts.find_account(s, namespace)
        if owner is None:
            raise Forbidden(f"The namespace '{namespace}' does not exist; create the organization first.")
        if not accounts.may_write_namespace(s, principal, owner):
            raise Forbidden(f"You don't have the rights to create a Space under the namespace '{namespace}'.")
        return owner

    def _pick_subdomain(self, s: Session, repo_id: str) -> str:
        for candidate in subdomain_candidates(repo_id):
            if s.scalar(select(Space.id).where(Space.subdomain == candidate)) is None:
                return candidate
        raise RepoExists(f"No free subdomain for {repo_id}; choose another name.")

    def _new_space(self, s: Session, principal: Principal, namespace: str, name: str, *, private: bool,
                   hardware: str | None, sleep_time: int | None) -> Space:
        repo_id = f"{namespace}/{name}"
        validate_repo_id(repo_id)
        owner = self._owner_for_create(s, principal, namespace)
        repo_id = f"{owner.name}/{name}"
        existing = self.find(s, repo_id)
        if existing is not None:
            raise RepoExists("You already created this space repo", repo_id=existing.repo_id)
        flavor = self.flavors.get(hardware or hw.DEFAULT_FLAVOR).name
        if self.check_quota is not None:
            self.check_quota(s, owner, flavor)
        if sleep_time is not None:
            check_sleep_time(sleep_time, "sleepTimeSeconds")
        space = Space(id=new_id(), owner_id=owner.id, owner=owner, name=name, repo_id=repo_id, key=repo_id.lower(),
                      subdomain=self._pick_subdomain(s, repo_id), private=private, hardware=flavor,
                      sleep_time=sleep_time, created_by=principal.account.id)
        s.add(space)
        try:
            s.flush()  # unique constraints fail here, before the disk is touched
        except IntegrityError:  # the same name (or its address) created at the same moment by another request
            raise RepoExists("This Space was created at the same moment by another request.", repo_id=repo_id) \
                from None
        return space

    def create(self, s: Session, principal: Principal, req: CreateRequest) -> Space:
        if req.sdk not in SDKS:
            raise BadRequest(f"Invalid sdk '{req.sdk}': use one of {', '.join(SDKS)}.")
        self.check_sdk(req.sdk)
        space = self._new_space(s, principal, req.namespace, req.name, private=req.private,
                                hardware=req.hardware, sleep_time=req.sleep_time)
        self._replace_kv(s, SpaceVariable, space, req.variables)
        self._replace_kv(s, SpaceSecret, space, req.secrets)
        path = self.repo(space).path
        if path.exists():  # left over by a crash between disk and database
            shutil.rmtree(path)
        repo = GitRepo.init_bare(path)
        after_rollback(s, repo.delete)  # the row is not committed: the repository goes too
        try:
            repo.commit(additions=[Addition("README.md", seed_readme(req.name, req.sdk, req.card).encode()),
                                   Addition(".gitattributes", SEED_GITATTRIBUTES.encode())],
                        message="initial commit", author_name=principal.account.name,
                        author_email=f"{principal.account.name}@users.noreply.spaces")
            self.refresh(s, space)
        except BaseException:
            repo.delete()
            raise
        return space

    def delete(self, s: Session, space: Space) -> None:
        repo = self.repo(space)
        gone = (space.id, space.subdomain, space.instance or {})
        hook = self.on_deleted
        s.delete(space)
        s.flush()
        # the files go once the row is gone for good: a delete the database refuses leaves the Space whole (a kill
        # in between leaves a repository no row names, which the next start removes)
        after_commit(s, repo.delete)
        if hook is not None:
            after_commit(s, lambda: hook(*gone))

    def move(self, s: Session, principal: Principal, space: Space, target_id: str) -> None:
        """Rename a Space, or move it to another namespace the caller may write, as one transaction.

        The Space keeps its id, so its repository, history, secrets, variables, likes, discussions and builds
        come along untouched; its subdomain follows the new name (a case-only rename keeps it). The old name is
        free at once and answers 404 (the Hub redirects it instead; README says so). A running app
        restarts: ``SPACE_ID`` and ``SPACE_HOST`` in its environment name the new id.
        """
        namespace, name = validate_repo_id(target_id)
        owner = self._owner_for_create(s, principal, namespace)
        new_id = f"{owner.name}/{name}"
        if new_id == space.repo_id:
            raise BadRequest(f"The Space is already named {space.repo_id}; choose another name.")
        existing = self.find(s, new_id)
        if existing is not None and existing.id != space.id:
            raise RepoExists(f"You already have a Space named {existing.repo_id}; choose another name.",
                             repo_id=existing.repo_id)
        if owner.id != space.owner_id and self.check_quota is not None:
            self.check_quota(s, owner, space.hardware)
        old_subdomain = space.subdomain
        if old_subdomain not in subdomain_candidates(new_id):
            space.subdomain = self._pick_subdomain(s, new_id)
        space.owner_id, space.owner, space.name = owner.id, owner, name
        space.repo_id, space.key = new_id, new_id.lower()
        space.last_modified = utcnow()
        try:
            s.flush()
        except IntegrityError:  # the name or subdomain was taken meanwhile: the transaction rolls back
            raise RepoExists(f"A Space named {new_id} was just created; choose another name.",
                             repo_id=new_id) from None
        if space.instance is not None:
            space.instance_sha = None  # the app's environment names its id and host: a fresh instance
        self.changed(s, space)
        if self.on_moved is not None and old_subdomain != space.subdomain:
            hook, space_id = self.on_moved, space.id
            after_commit(s, lambda: hook(space_id, old_subdomain))

    def duplicate(self, s: Session, principal: Principal, source: Space, target_id: str, *, private: bool | None,
                  hardware: str | None, sleep_time: int | None, secrets: list[KeyValue],
                  variables: list[KeyValue] | None) -> Space:
        """Copy files with full history and public variables (never secrets). ``private`` None: the source's
        visibility (the Hub's default for ``duplicate_repo``)."""
        namespace, name = validate_repo_id(target_id)
        if source.sdk:
            self.check_sdk(source.sdk)
        space = self._new_space(s, principal, namespace, name, private=source.private if private is None else private,
                                hardware=hardware, sleep_time=sleep_time)
        space.duplicated_from = source.repo_id
        copied = [KeyValue(v.key, v.value, v.description) for v in self._kv(s, SpaceVariable, source)]
        by_key = {kv.key: kv for kv in copied}
        for kv in variables or []:
            by_key[kv.key] = kv
        self._replace_kv(s, SpaceVariable, space, list(by_key.values()))
        self._replace_kv(s, SpaceSecret, space, secrets)
        path = self.repo(space).path
        if path.exists():
            shutil.rmtree(path)
        copy = self.repo(source).copy_to(path)
        after_rollback(s, copy.delete)
        try:
            self.refresh(s, space)
        except BaseException:
            copy.delete()
            raise
        return space

    # ---- files ------------------------------------------------------------------------------------------
    def commit(self, s: Session, principal: Principal, space: Space, *, additions: list[Addition],
               deletions: Iterable[str] = (), deleted_folders: Iterable[str] = (), message: str,
               description: str = "", parent: str | None = None, branch: str = "main") -> str:
        """One commit on ``branch`` (an existing one). Only main is built and served: a commit elsewhere changes
        nothing about the running Space."""
        repo = self.repo(space)
        sha = repo.commit(
            additions=additions, deletions=list(deletions), deleted_folders=list(deleted_folders), message=message,
            description=description, author_name=principal.account.name,
            author_email=principal.account.email or f"{principal.account.name}@users.noreply.spaces",
            expected_parent=parent, branch=branch, must_exist=branch != "main")
        # from here until the transaction commits, a failure takes the commit back out of git (module docstring)
        after_rollback(s, lambda: repo.undo_commit(sha, branch))
        if branch == "main":
            self.refresh(s, space)
        return sha

    def super_squash(self, s: Session, principal: Principal, space: Space, branch: str, message: str) -> str:
        """One root commit with the tree of ``branch``'s tip replaces its history. The files do not change, so a
        Space whose ``main`` is squashed is not rebuilt: what was built from the old tip is what the new commit
        holds, and it keeps running. Returns the new commit."""
        repo = self.repo(space)
        old, new = repo.squash(branch, message=message, author_name=principal.account.name,
                               author_email=principal.account.email or f"{principal.account.name}@users.noreply.spaces")
        after_rollback(s, lambda: repo.restore_tip(new, old, branch))
        if branch != "main":
            return new
        artifact = space.artifact or {}
        if space.sha == old and artifact.get("sha") == old:
            # same tree: the artifact and the instance are the new commit's too (the old one may be collected)
            space.artifact = {**artifact, "sha": new}
            if space.instance_sha == old:
                space.instance_sha = new
            space.sha = new
            space.last_modified = utcnow()
            self.changed(s, space)
        else:
            self.refresh(s, space)  # a build of the old tip was under way: build the new commit instead
        return new

    def repair(self, s: Session) -> list[str]:
        """Bring every Space whose recorded ``sha`` is not git's tip of main up to the tip (after a kill between
        a git update and the database commit, or a push whose refresh failed). Returns the repo ids repaired."""
        repaired, known = [], set()
        for space in s.scalars(select(Space).order_by(Space.created_at)):
            known.add(f"{space.id}.git")
            repo = self.repo(space)
            if repo.exists() and repo.head() != space.sha:
                self.refresh(s, space)
                repaired.append(space.repo_id)
        # a kill between a delete's commit and the removal of its files leaves a repository no row names. Only at
        # start: a create in flight has its repository before its row
        for path in self.repos_root.glob("*.git") if self.repos_root.is_dir() else ():
            if path.name not in known:
                GitRepo(path).delete()
        return repaired

    def refresh(self, s: Session, space: Space, *, factory: bool = False) -> None:
        """Re-read the tip of main after a commit or push: card data, sdk, stage; then hand it to the builder."""
        repo = self.repo(space)
        sha = repo.head()
        if sha is None:
            self.set_stage(space, SpaceStage.NO_APP_FILE, "empty_repository",
                           "The repository has no commits yet: push an app to it.")
            space.sha = None
            return
        files = {e.path for e in repo.list_tree(sha, recursive=True) if e.type == "file"}
        readme = None
        if "README.md" in files:
            readme = repo.read_blob(sha, "README.md").decode("utf-8", errors="replace")
        ev = evaluate(readme, files, default_title=space.name)
        changed = sha != space.sha
        space.sha = sha
        space.card_data = ev.card
        if ev.config is not None:
            space.sdk = ev.config.sdk
        space.last_modified = utcnow()
        self.changed(s, space)
        if ev.stage is not None:
            self.set_stage(space, ev.stage, ev.reason, ev.message)
        elif space.paused:
            pass  # a paused Space stays paused until its owner restarts it, whatever is pushed
        elif changed or space.stage in (SpaceStage.NO_APP_FILE, SpaceStage.CONFIG_ERROR):
            self.revision_ready(s, space, factory=factory)

    def revision_ready(self, s: Session, space: Space, *, factory: bool = False) -> None:
        """A buildable revision: the builder takes it from here when one is configured."""
        if self.on_revision is not None:
            self.on_revision(s, space, factory=factory)
        else:
            self.set_stage(space, SpaceStage.BUILDING, "build_queued",
                           "This revision is queued for a build; no builder is configured on this server yet.")

    #: the one stage setter lives with the stages (spaces.domain.stages); kept here for callers of this name
    set_stage = staticmethod(set_stage)

    # ---- runtime settings -------------------------------------------------------------------------------
    def set_hardware(self, s: Session, principal: Principal, space: Space, flavor: str | None,
                     sleep_time: int | None) -> None:
        # gradio_client's duplicate may send {"flavor": null} when the source has no current hardware: keep it.
        if flavor is not None:
            name = self.flavors.get(flavor).name
            if self.check_quota is not None and name != space.hardware:
                self.check_quota(s, space.owner, name)
            space.hardware = name
        if sleep_time is not None:
            self.set_sleep_time(space, sleep_time)
        self.changed(s, space)

    @staticmethod
    def set_sleep_time(space: Space, seconds: int) -> None:
        check_sleep_time(seconds, "Sleep time")
        space.sleep_time = seconds

    def pause(self, s: Session, space: Space) -> None:
        if space.sdk == "static":
            raise BadRequest("Static Spaces are always available and cannot be paused.")
        space.paused = True
        self.set_stage(space, SpaceStage.PAUSED, "paused_by_owner",
                       "This Space is paused by its owner; restart it to bring it back.")
        self.changed(s, space)

    def set_visibility(self, s: Session, space: Space, private: bool) -> None:
        space.private = private
        self.changed(s, space)  # the proxy's route must learn who may see the app

    def sleep(self, s: Session, space: Space) -> None:
        if space.sdk == "static":
            raise BadRequest("Static Spaces are always available and never sleep.")
        space.asleep = True
        self.changed(s, space)

    def restart(self, s: Session, space: Space, *, factory: bool = False) -> None:
        if space.sdk == "static" and not factory:
            raise BadRequest("Static Spaces are always available; there is nothing to restart.")
        space.paused = False
        space.asleep = False
        space.restarts, space.retry_at = 0, None
        if factory or space.stage == SpaceStage.BUILD_ERROR.value or space.artifact is None:
            space.sha = None  # makes refresh() treat the tip as new: a fresh build
            self.refresh(s, space, factory=factory)
        else:
            space.instance_sha = None  # a new instance of the same artifact replaces the running one
            self.set_stage(space, SpaceStage.APP_STARTING, "restarting", "Restarting the app.")
            self.changed(s, space)

    def settings_changed(self, s: Session, space: Space) -> None:
        """Variables and secrets reach the app's environment: a running Space restarts to pick them up."""
        space.last_modified = utcnow()
        if space.instance is not None or space.restarts:
            # a Space stopped after crashing (or backing off) gets another try: a missing secret is a common cause
            space.instance_sha = None
            space.restarts, space.retry_at = 0, None
            self.changed(s, space)

    # ---- variables and secrets --------------------------------------------------------------------------
    @staticmethod
    def _kv(s: Session, model: type, space: Space) -> list:
        return list(s.scalars(select(model).where(model.space_id == space.id).order_by(model.key)))

    def variables(self, s: Session, space: Space) -> list[SpaceVariable]:
        return self._kv(s, SpaceVariable, space)

    def secrets(self, s: Session, space: Space) -> list[SpaceSecret]:
        return self._kv(s, SpaceSecret, space)

    def _replace_kv(self, s: Session, model: type, space: Space, items: list[KeyValue]) -> None:
        for kv in items:
            self.upsert_kv(s, model, space, kv)

    @staticmethod
    def upsert_kv(s: Session, model: type, space: Space, kv: KeyValue) -> None:
        validate_env_key(kv.key)
        row = s.scalar(select(model).where(model.space_id == space.id, model.key == kv.key))
        if row is None:
            s.add(model(space_id=space.id, key=kv.key, value=kv.value, description=kv.description))
        else:
            row.value, row.updated_at = kv.value, utcnow()
            if kv.description is not None:
                row.description = kv.description
        s.flush()

    @staticmethod
    def delete_kv(s: Session, model: type, space: Space, key: str) -> bool:
        """Delete one variable or secret; False when there was none (not an error: the Hub answers 200 too, so
        ``hf spaces secrets delete`` is idempotent)."""
        row = s.scalar(select(model).where(model.space_id == space.id, model.key == key))
        if row is None:
            return False
        s.delete(row)
        s.flush()
        return True



#: the longest sleep time one can set (a year); -1 means never sleep
MAX_SLEEP_TIME_S = 365 * 24 * 3600


def check_sleep_time(seconds: int, what: str) -> None:
    if seconds != -1 and not 60 <= seconds <= MAX_SLEEP_TIME_S:
        raise BadRequest(f"{what} must be -1 (never sleep) or at least 60 seconds, and at most {MAX_SLEEP_TIME_S} "
                         "(a year).")


def validate_env_key(key: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,199}", key or ""):
        raise BadRequest(f"Invalid key '{key}': use letters, digits and underscores, not starting with a digit.")
    if key.upper().startswith(("SPACE_", "SPACES_")) or key in ("SYSTEM", "CPU_CORES", "MEMORY", "ACCELERATOR"):
        raise BadRequest(f"'{key}' is reserved for the platform; choose another name.")


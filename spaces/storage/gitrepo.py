"""A Space's files: one real bare git repository on disk, driven through the ``git`` binary.

Contract:

* API commits and ``git push`` are the same thing. :meth:`GitRepo.commit` writes real blobs, trees and a commit
  object, then moves the branch with a compare-and-swap ``git update-ref REF NEW OLD``, so ``git rev-parse`` and
  API answers always agree and a concurrent push or API commit is never silently overwritten.
* Every operation runs a small, constant number of git processes (batch plumbing: ``hash-object --stdin-paths``,
  ``update-index --index-info`` into a throwaway index, ``cat-file --batch``, ``ls-tree -r -z``), whatever the
  number of files.
* Revisions are plain names only (branch, tag, ``refs/...``, full sha or a >=4 hex unique prefix); anything that
  git could read as an option or a revision expression is treated as unknown.
* Paths are repository-relative with '/' separators and no trailing '/'; unsafe paths raise ``InvalidPath``.
* Errors are :mod:`spaces.errors` classes; an unexpected git failure is ``GitError`` with git's stderr.

All methods are synchronous and thread-safe; the hub calls them from a thread pool.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from spaces.domain.lfs import MAX_POINTER_SIZE, Pointer, parse_pointer
from spaces.domain.links import check_all as check_links
from spaces.errors import (
    BadRequest,
    Conflict,
    EntryNotFound,
    GitError,
    InvalidPath,
    PreconditionFailed,
    RepoExists,
    RevisionNotFound,
)
from spaces.storage._gitcmd import (
    FULL_SHA,
    ZERO_OID,
    SHORT_SHA,
    check_path,
    commit_lock,
    idle_lock,
    repo_busy,
    dec,
    enc,
    git_failure,
    is_plain_refname,
    iter_log_names,
    iter_z,
    popen_git,
    run_git,
    split_z,
    stream_blob,
)
from spaces.storage._treeedit import (
    SYMLINK_MODE,
    apply_changes,
    compare_and_swap,
    link_targets,
    list_files,
    read_tip,
    write_blobs,
    write_tree,
)
from spaces.storage.objects import ObjectStore, RepoObjects

__all__ = ["Addition", "CommitInfo", "GitRepo", "TreeEntry", "blob_oid"]

_CAS_ATTEMPTS = 5
_LOG_FORMAT = "%H%x00%an%x00%ae%x00%aI%x00%B"


def blob_oid(content: bytes) -> str:
    """The git blob id (SHA-1) of ``content``, exactly what ``git hash-object`` prints."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class TreeEntry:
    type: Literal["file", "directory"]
    path: str  # full path from the repository root
    oid: str  # blob id for files, tree id for directories
    size: int  # bytes for files, 0 for directories


@dataclass(frozen=True)
class CommitInfo:
    id: str
    title: str  # first line of the message
    message: str  # the rest of the message (the description), '' when none - like the Hub's commit listing
    author_name: str
    author_email: str
    date: datetime  # author date, tz-aware UTC


@dataclass(frozen=True)
class Addition:
    """A file to create or overwrite. Give ``content`` for data in memory, or ``file`` (a path on the server's
    disk, e.g. a spooled upload) for large data: git then reads the file itself and ``content`` is ignored.
    The file must stay in place until :meth:`GitRepo.commit` returns."""

    path: str
    content: bytes = b""
    file: Path | None = None


def _parse_commits(fields: list[bytes]) -> list[CommitInfo]:
    return [_commit_info(fields[i : i + 5]) for i in range(0, len(fields) - 4, 5)]


def _commit_info(f: list[bytes]) -> CommitInfo:
    title, _, rest = dec(f[4]).rstrip("\n").partition("\n")
    when = datetime.fromisoformat(f[3].decode()).astimezone(timezone.utc)
    return CommitInfo(f[0].decode(), title, rest.lstrip("\n"), dec(f[1]), dec(f[2]), when)


def _ref_label(ref: str) -> str:
    """``refs/heads/dev`` -> ``branch 'dev'``, for messages."""
    kind = {"heads": "branch", "tags": "tag"}.get(ref.split("/")[1] if ref.count("/") >= 2 else "")
    return f"{kind} '{ref.split('/', 2)[-1]}'" if kind else f"ref '{ref}'"


def _ident(value: str) -> str:
    # git silently drops or rejects these in identities; strip them so the stored identity is predictable.
    return "".join(c for c in value if c not in "<>\n\r\0").strip()


class GitRepo:
    def __init__(self, path: Path, objects: ObjectStore | None = None) -> None:
        self.path = Path(path)
        #: where the LFS objects its pointers name are (``export`` checks them out); None: pointers stay pointers
        self.objects = objects

    def __repr__(self) -> str:
        return f"GitRepo({str(self.path)!r})"

    # -- lifecycle ---------------------------------------------------------------------------------------------

    @classmethod
    def init_bare(cls, path: Path, branch: str = "main") -> GitRepo:
        """Create an empty bare repository whose HEAD points at ``refs/heads/<branch>``, configured for smart-HTTP
        push and fetch-by-sha. Raises ``RepoExists`` if ``path`` is a non-empty directory."""
        path = Path(path)
        if not is_plain_refname(branch) or branch.startswith("refs/"):
            raise BadRequest(f"Invalid branch name: {branch!r}")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RepoExists("A repository already exists at this location.")
        path.parent.mkdir(parents=True, exist_ok=True)
        # --template= : no system template hooks/files; the repository does not depend on the host's git install.
        run_git(path, ["init", "--bare", "--quiet", "--template=", f"--initial-branch={branch}"])
        for key, value in (
            ("http.receivepack", "true"),
            ("uploadpack.allowAnySHA1InWant", "true"),
            ("uploadpack.allowReachableSHA1InWant", "true"),
            ("uploadpack.allowFilter", "true"),
            ("receive.denyNonFastForwards", "false"),
            ("core.logAllRefUpdates", "true"),  # a reflog in a bare repo: who moved what, and a way back
        ):
            run_git(path, ["config", key, value])
        return cls(path)

    def exists(self) -> bool:
        return (self.path / "HEAD").is_file() and (self.path / "objects").is_dir()

    def delete(self) -> None:
        """Remove the repository. It is first renamed aside so readers never see a half-deleted repository."""
        if not self.path.exists():
            return
        trash = self.path.with_name(f"{self.path.name}.deleting-{uuid.uuid4().hex}")
        try:
            self.path.rename(trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def copy_to(self, dest: Path) -> GitRepo:
        """A full, independent copy (every ref, all history, same default branch) at ``dest``. Objects travel
        through git's pack protocol, so the copy shares no files with the source."""
        proc = run_git(self.path, ["symbolic-ref", "-q", "--short", "HEAD"], ok=(0, 1))
        head = dec(proc.stdout.strip()) or "main"  # a detached HEAD (only possible via manual edits) -> main
        copy = GitRepo.init_bare(dest, branch=head)
        try:
            copy._git("fetch", "--quiet", "--no-write-fetch-head", str(self.path.resolve()), "+refs/*:refs/*")
            RepoObjects(self.path).copy_to(dest)  # the LFS objects its pointers name stay readable in the copy
        except BaseException:
            copy.delete()
            raise
        return copy

    def export(self, rev: str, dest: Path) -> Path:
        """Write the files of ``rev`` into the new directory ``dest`` (a plain tree, no .git): the build context
        and the working copy an instance runs from. ``git archive`` never writes outside ``dest``."""
        import tarfile
        import io

        sha = self._rev(rev)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=False)
        data = self._git("archive", "--format=tar", sha)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            if not hasattr(tarfile, "data_filter"):
                # Python before 3.11.4 / 3.10.12 (Debian bookworm's 3.11.2, the platform image's) has no extraction
                # filters: the same refusals, checked on every member before anything is written
                for member in tar.getmembers():
                    if _leaves(member):
                        raise _link_out(member)
                tar.extractall(dest)
                self._smudge(sha, dest)
                return dest
            try:
                tar.extractall(dest, filter="data")  # "data" refuses absolute paths, links out of dest, devices
            except tarfile.FilterError as exc:  # pushed before links leaving the repo were refused at push
                member = getattr(exc, "tarinfo", None)
                raise _link_out(member) from None
        self._smudge(sha, dest)
        return dest

    def _smudge(self, sha: str, dest: Path) -> None:
        """Put the real content in place of each LFS pointer whose object this repository holds (what git-lfs's
        smudge does on checkout): a Space's example images and weights are files, not pointers. Copies, never
        links: the app may write its files, and the stored object is shared. A missing object leaves the pointer."""
        if self.objects is None:
            return
        entries = self.list_tree(sha, recursive=True)
        pointers = self.lfs_pointers(entries)
        links = RepoObjects(self.path)
        root = dest.resolve()
        for entry in entries:
            pointer = pointers.get(entry.oid)
            if pointer is None or not links.linked(pointer.oid) or self.objects.size(pointer.oid) != pointer.size:
                continue
            target = dest / entry.path
            if target.is_symlink() or not target.is_file() or not target.resolve().is_relative_to(root):
                continue
            tmp = target.with_name(f".{target.name}.lfs-tmp")
            with open(tmp, "wb") as out:
                for chunk in self.objects.open(pointer.oid):
                    out.write(chunk)
            os.chmod(tmp, target.stat().st_mode & 0o777)
            os.replace(tmp, target)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file() and not p.is_symlink())

    # -- revisions ---------------------------------------------------------------------------------------------

    def resolve(self, rev: str) -> str | None:
        """The commit sha for a branch, tag, full ref name, full sha or unique >=4 hex prefix; None if unknown or
        not a plain name. A full sha wins, then a branch, then a tag, then a ref path, then a sha prefix."""
        if not is_plain_refname(rev):
            return None
        hexrev = rev.lower()
        candidates = []
        if FULL_SHA.fullmatch(hexrev):
            candidates.append(hexrev)
        if rev.startswith("refs/"):
            candidates.append(rev)
        else:
            candidates += [f"refs/heads/{rev}", f"refs/tags/{rev}"]
        if SHORT_SHA.fullmatch(hexrev) and len(hexrev) < 40:
            candidates.append(hexrev)
        # Names go on stdin, never argv: nothing here can become an option. ^{commit} peels annotated tags.
        query = enc("".join(f"{c}^{{commit}}\n" for c in candidates))
        out = self._git("cat-file", "--batch-check=%(objectname) %(objecttype)", input=query)
        for line in out.decode("utf-8", "replace").splitlines():
            oid, _, kind = line.partition(" ")
            if kind == "commit" and FULL_SHA.fullmatch(oid):
                return oid
        return None

    def head(self, branch: str = "main") -> str | None:
        """The tip commit of ``branch`` (a name or ``refs/...``), or None when it has no commits."""
        if not is_plain_refname(branch):
            return None
        return read_tip(self.path, self._ref(branch))

    def branches(self) -> dict[str, str]:
        return self._refs("refs/heads/")

    def tags(self) -> dict[str, str]:
        return self._refs("refs/tags/")

    def pull_requests(self) -> dict[str, str]:
        """``refs/pr/N`` -> commit, for every pull request ref."""
        return {f"refs/pr/{n}": c for n, c in self._refs("refs/pr/").items()}

    # -- refs --------------------------------------------------------------------------------------------------

    def ref_target(self, ref: str) -> str | None:
        """The object a full ref name (``refs/heads/x``, ``refs/tags/v1``) points at; None when it does not exist."""
        return read_tip(self.path, ref) if is_plain_refname(ref) and ref.startswith("refs/") else None

    def check_ref_format(self, ref: str) -> bool:
        """git's own ``check-ref-format`` on a full ref name (the rules every git client applies to refs)."""
        if not isinstance(ref, str) or not ref.startswith("refs/") or "\0" in ref:
            return False
        return run_git(None, ["check-ref-format", ref], ok=(0, 1)).returncode == 0

    def create_ref(self, ref: str, target: str) -> None:
        """Create ``ref`` pointing at the object ``target``: one ``update-ref`` whose expected old value is "none",
        so of two concurrent creates exactly one wins. ``Conflict`` when the ref exists, or when a ref it would
        nest under or over exists (``a`` and ``a/b`` cannot both be branches); nothing changes then."""
        proc = run_git(self.path, ["update-ref", "-m", "spaces: create", ref, target, ZERO_OID], ok=(0, 1, 128))
        if proc.returncode == 0:
            return
        if self.ref_target(ref) is not None:
            raise Conflict(f"The {_ref_label(ref)} already exists.", code="RefExists")
        other = re.search(r"'(refs/[^']+)' exists", dec(proc.stderr))
        if other:
            raise Conflict(f"Cannot create the {_ref_label(ref)}: the {_ref_label(other.group(1))} exists, and a name "
                           "cannot be both a ref and a folder of refs.", code="RefExists")
        raise GitError(git_failure(["update-ref"], proc.returncode, proc.stderr))

    def delete_ref(self, ref: str) -> str:
        """Delete ``ref`` if it still points where it pointed when read (compare-and-swap); return that value.
        ``RevisionNotFound`` when it does not exist."""
        old = self.ref_target(ref)
        if old is None:
            raise RevisionNotFound(ref.split("/", 2)[-1])
        proc = run_git(self.path, ["update-ref", "-m", "spaces: delete", "-d", ref, old], ok=(0, 1, 128))
        if proc.returncode != 0:
            raise Conflict(f"The {_ref_label(ref)} changed while it was being deleted; retry.")
        return old

    def make_tag_object(self, name: str, target: str, message: str, *, tagger_name: str, tagger_email: str) -> str:
        """Write an annotated tag object (``git mktag`` checks it) for the commit ``target``; return its id. The
        ref is created separately with :meth:`create_ref`, so a refused ref leaves only an unreferenced object."""
        who = f"{_ident(tagger_name) or 'unknown'} <{_ident(tagger_email)}>"
        body = (f"object {target}\ntype commit\ntag {name}\ntagger {who} {int(time.time())} +0000\n\n"
                f"{message.strip()}\n").replace("\0", "")
        return self._git("mktag", input=enc(body)).decode().strip()

    def merge(self, branch: str, source: str, *, message: str, author_name: str, author_email: str) -> str:
        """Bring the commit ``source`` into ``branch`` and return the new tip: a fast-forward when the tip is an
        ancestor of ``source``, else a merge commit of the two (``git merge-tree --write-tree``, no work tree).
        Conflicting files -> ``Conflict`` naming them; nothing is written to refs then. Compare-and-swap on the
        tip under the commit lock, so a concurrent commit is never overwritten."""
        ref = self._ref(branch)
        with commit_lock(self.path):
            tip = read_tip(self.path, ref)
            if tip is None:
                raise RevisionNotFound(branch)
            if self._is_ancestor(source, tip):
                return tip  # nothing new
            new = source
            if not self._is_ancestor(tip, source):
                tree, files = self._merge_tree(tip, source)
                if files:
                    raise Conflict(f"Cannot merge into {branch}: these files conflict: {', '.join(files)}.",
                                   code="MergeConflict", files=files)
                env = {"GIT_AUTHOR_NAME": _ident(author_name) or "unknown", "GIT_AUTHOR_EMAIL": _ident(author_email)}
                env.update(GIT_COMMITTER_NAME=env["GIT_AUTHOR_NAME"], GIT_COMMITTER_EMAIL=env["GIT_AUTHOR_EMAIL"])
                new = self._git("commit-tree", tree, "-p", tip, "-p", source, input=enc(message.strip() + "\n"),
                                env=env).decode().strip()
            if not compare_and_swap(self.path, ref, new, tip):
                raise Conflict(f"{branch} moved while merging; retry.")
            return new

    def conflicts(self, branch: str, source: str) -> list[str]:
        """The files that would conflict if ``source`` were merged into ``branch`` now (none for a fast-forward)."""
        tip = self._rev(branch)
        if self._is_ancestor(source, tip) or self._is_ancestor(tip, source):
            return []
        if run_git(self.path, ["merge-base", tip, source], ok=(0, 1)).returncode == 1:
            # no shared history (the branch was squashed): every file that differs stands in the way
            out = self._git("diff", "--name-only", "--no-renames", "-z", tip, source)
            return sorted(dec(p) for p in out.split(b"\0") if p)
        return self._merge_tree(tip, source)[1]

    def diff(self, base: str, head: str, max_bytes: int = 1 << 20) -> str:
        """The unified diff of what ``head`` brings over its merge base with ``base`` (a pull request's changes),
        cut at ``max_bytes``."""
        base_sha, head_sha = self._rev(base), self._rev(head)
        proc = run_git(self.path, ["merge-base", base_sha, head_sha], ok=(0, 1))
        since = proc.stdout.decode().strip() or base_sha
        out = self._git("diff", "--no-color", "--no-ext-diff", "--no-textconv", since, head_sha)
        if len(out) > max_bytes:
            return dec(out[:max_bytes]) + f"\n[diff cut at {max_bytes} bytes]\n"
        return dec(out)

    def _merge_tree(self, tip: str, source: str) -> tuple[str, list[str]]:
        """(merged tree, conflicting files) for a three-way merge of two commits, written without a work tree.
        ``Conflict`` when they share no history (a branch squashed by ``super_squash_history`` since)."""
        if run_git(self.path, ["merge-base", tip, source], ok=(0, 1)).returncode == 1:
            raise Conflict("These commits share no history (the branch was squashed since, or started anew): "
                           "they cannot be merged. Open the changes again on top of the current branch.",
                           code="UnrelatedHistories")
        proc = run_git(self.path, ["merge-tree", "--write-tree", "--no-messages", "--name-only", tip, source],
                       ok=(0, 1))
        lines = dec(proc.stdout).splitlines()
        return lines[0], sorted({line for line in lines[1:] if line}) if proc.returncode == 1 else []

    def _is_ancestor(self, older: str, newer: str) -> bool:
        return run_git(self.path, ["merge-base", "--is-ancestor", older, newer], ok=(0, 1)).returncode == 0

    # -- writing -----------------------------------------------------------------------------------------------

    def commit(
        self,
        *,
        branch: str = "main",
        additions: Iterable[Addition] = (),
        deletions: Iterable[str] = (),
        deleted_folders: Iterable[str] = (),
        message: str,
        description: str = "",
        author_name: str,
        author_email: str,
        expected_parent: str | None = None,
        must_exist: bool = False,
    ) -> str:
        """Create ONE commit on ``branch`` (a root commit if it has none yet, unless ``must_exist``: then a missing
        branch, deleted concurrently say, is ``RevisionNotFound`` rather than re-created from nothing) and return
        its sha.

        Deletions (files, then folders, recursively; a trailing '/' on a folder is fine) apply before additions,
        so a file can replace a folder or vice versa in one commit. Missing file/folder -> ``EntryNotFound``; a
        file path that collides with a folder (or a folder path with a file) -> ``BadRequest``. Overwriting an
        executable keeps its mode. ``expected_parent`` (full sha or >=5 hex prefix) that is not the tip ->
        ``PreconditionFailed``; without it a lost compare-and-swap race is retried on the new tip. Nothing is
        written to refs when anything fails (unreferenced objects may remain until ``git gc``)."""
        if not is_plain_refname(branch) or branch.startswith("refs/tags/"):
            raise BadRequest(f"Invalid branch name: {branch!r}")
        ref = self._ref(branch)
        if expected_parent is not None:
            expected_parent = expected_parent.lower()
            if not (SHORT_SHA.fullmatch(expected_parent) and len(expected_parent) >= 5):
                raise BadRequest(f"Invalid parent commit id: {expected_parent!r}")
        additions = list(additions)
        dels = [check_path(p, for_write=True) for p in deletions]
        folders = [check_path(f.rstrip("/") if isinstance(f, str) else f, for_write=True) for f in deleted_folders]
        paths = [check_path(a.path, for_write=True) for a in additions]
        text = message.strip() + ("\n\n" + description.strip() if description.strip() else "") + "\n"
        text = text.replace("\0", "")  # a NUL would truncate the message in every git tool
        env = {"GIT_AUTHOR_NAME": _ident(author_name) or _ident(author_email.split("@")[0]) or "unknown"}
        env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = _ident(author_email)
        env["GIT_COMMITTER_NAME"] = env["GIT_AUTHOR_NAME"]

        if not self.path.is_dir():  # deleted meanwhile: as git itself would refuse
            raise GitError(f"The repository {self.path.name} does not exist (deleted?)")
        # inside the repository, not /tmp: what a killed server leaves there is found and removed at the next
        # start (sweep_temporaries), and the blobs are hashed on the repository's own filesystem
        with repo_busy(self.path), tempfile.TemporaryDirectory(prefix=COMMIT_TMP_PREFIX, dir=self.path) as tmp:
            # Blobs are content-addressed and independent of the tip, so they are written before taking the lock.
            blobs = write_blobs(self.path, additions, Path(tmp))
            added = dict(zip(paths, blobs))  # a path given twice: the last one wins
            with commit_lock(self.path):
                for attempt in range(_CAS_ATTEMPTS):
                    tip = read_tip(self.path, ref)
                    if tip is None and must_exist:
                        raise RevisionNotFound(branch)
                    if expected_parent is not None and not (tip or "").startswith(expected_parent):
                        raise PreconditionFailed(
                            f"Parent commit {expected_parent} is not the tip of {branch} ({tip or 'no commits'}); "
                            "fetch the latest revision and retry."
                        )
                    entries = apply_changes(list_files(self.path, tip), added, dels, folders, branch)
                    links = {p: oid for p, (mode, oid) in entries.items() if mode == SYMLINK_MODE}
                    check_links(link_targets(self.path, links))  # InvalidPath for one that leaves the repo
                    tree = write_tree(self.path, entries, Path(tmp) / f"index-{attempt}")
                    parents = ["-p", tip] if tip else []
                    new = self._git("commit-tree", tree, *parents, input=text.encode(), env=env).decode().strip()
                    if compare_and_swap(self.path, ref, new, tip):
                        return new
                    # Lost a race (a push, or a writer in another process without our lock): go again on the new tip.
                    time.sleep(0.01 * (attempt + 1))
        if expected_parent is not None:
            raise PreconditionFailed(f"The tip of {branch} moved while committing; fetch and retry.")
        raise GitError(f"Could not update {branch}: it kept changing under concurrent writes; retry.")

    def squash(self, branch: str, *, message: str, author_name: str, author_email: str) -> tuple[str, str]:
        """Replace the history of ``branch`` by one root commit with the tree of its tip (``super_squash_history``);
        return ``(old tip, new commit)``. Compare-and-swap under the commit lock: a commit that lands meanwhile is
        never lost (it is squashed too, or this is refused). Tags and other branches keep the old commits."""
        ref = self._ref(branch)
        env = {"GIT_AUTHOR_NAME": _ident(author_name) or "unknown", "GIT_AUTHOR_EMAIL": _ident(author_email)}
        env.update(GIT_COMMITTER_NAME=env["GIT_AUTHOR_NAME"], GIT_COMMITTER_EMAIL=env["GIT_AUTHOR_EMAIL"])
        text = (message.strip() or f"Super-squash branch '{branch}'").replace("\0", "") + "\n"
        with commit_lock(self.path):
            tip = read_tip(self.path, ref)
            if tip is None:
                raise RevisionNotFound(branch)
            tree = self._git("rev-parse", f"{tip}^{{tree}}").decode().strip()
            new = self._git("commit-tree", tree, input=text.encode(), env=env).decode().strip()
            if not compare_and_swap(self.path, ref, new, tip):
                raise Conflict(f"{branch} moved while squashing; retry.")
            return tip, new

    def undo_commit(self, sha: str, branch: str = "main") -> bool:
        """Move ``branch`` back from ``sha`` to its first parent (delete it for a root commit), if it is still at
        ``sha``: the way back when what follows a commit (the database) fails. A branch that moved on since is
        left alone (someone built on it). Returns whether the branch moved back."""
        parent = run_git(self.path, ["rev-parse", "--verify", "--quiet", f"{sha}^1"], ok=(0, 1)).stdout.strip()
        return self.restore_tip(sha, parent.decode() or None, branch)

    def restore_tip(self, current: str, previous: str | None, branch: str = "main", *, locked: bool = False) -> bool:
        """Move ``branch`` from ``current`` back to ``previous`` (None: delete it), only if it is still at
        ``current`` (compare-and-swap). Returns whether it moved. ``locked``: the caller holds the commit lock
        already (a push, see spaces.hub.git_http)."""
        ref = self._ref(branch)
        with contextlib.nullcontext() if locked else commit_lock(self.path):
            if previous is not None:
                return compare_and_swap(self.path, ref, previous, current)
            proc = run_git(self.path, ["update-ref", "-m", "spaces: undo", "-d", ref, current], ok=(0, 1, 128))
            return proc.returncode == 0

    # -- reading -----------------------------------------------------------------------------------------------

    def list_tree(self, rev: str, path: str = "", recursive: bool = False) -> list[TreeEntry]:
        """Entries under ``path`` ('' = root), in git order: direct children, or with ``recursive`` every file
        and directory at any depth (a directory before its contents). A file path gives that one file."""
        sha = self._rev(rev)
        path = self._read_path(path)
        obj = sha
        if path:
            found = self._stat(sha, path)
            if found is None or found[1] not in ("blob", "tree"):
                raise EntryNotFound(path, rev)
            if found[1] == "blob":
                return [TreeEntry("file", path, found[0], found[2])]
            obj = found[0]
        out = self._git("ls-tree", "-z", "-l", *(["-r", "-t"] if recursive else []), obj)
        prefix = path + "/" if path else ""
        entries = []
        for rec in split_z(out):
            meta, _, name = rec.partition(b"\t")
            _mode, kind, oid, size = meta.decode().split()
            if kind == "tree":
                entries.append(TreeEntry("directory", prefix + dec(name), oid, 0))
            elif kind == "blob":
                entries.append(TreeEntry("file", prefix + dec(name), oid, int(size)))
            # "commit" entries are submodule links: there is no content to serve, so they are not listed.
        return entries

    def stat(self, rev: str, path: str) -> TreeEntry:
        """One entry (file or directory; '' is the root directory)."""
        sha = self._rev(rev)
        path = self._read_path(path)
        found = self._stat(sha, path)
        if found is None or found[1] not in ("blob", "tree"):
            raise EntryNotFound(path, rev)
        oid, kind, size = found
        return TreeEntry("file", path, oid, size) if kind == "blob" else TreeEntry("directory", path, oid, 0)

    def read_blob(self, rev: str, path: str) -> bytes:
        """The whole content of a file; ``EntryNotFound`` if missing or a directory. For big files prefer
        :meth:`open_blob`."""
        sha = self._rev(rev)
        path = check_path(path.strip("/"), for_write=False)
        out = self._git("cat-file", "--batch", "-z", input=enc(f"{sha}:{path}") + b"\0")
        header, _, body = out.partition(b"\n")
        parts = header.split(b" ")
        if len(parts) != 3 or parts[1] != b"blob" or not FULL_SHA.fullmatch(parts[0].decode("ascii", "replace")):
            raise EntryNotFound(path, rev)
        return body[: int(parts[2])]

    def open_blob(self, rev: str, path: str, chunk_size: int = 1 << 20) -> tuple[TreeEntry, Iterator[bytes]]:
        """Stream a file: returns its entry (for Content-Length / ETag, known before any byte is read) and an
        iterator of chunks backed by ``git cat-file blob``. Exhaust or ``close()`` the iterator; closing early
        kills the git process."""
        entry = self.stat(rev, path)
        if entry.type != "file":
            raise EntryNotFound(entry.path, rev)
        return entry, stream_blob(self.path, entry.oid, chunk_size)

    def read_blobs(self, oids: Iterable[str]) -> dict[str, bytes]:
        """Contents of blobs by id, in one ``git cat-file --batch``: for small blobs (LFS pointers) only."""
        wanted = [o for o in dict.fromkeys(oids) if FULL_SHA.fullmatch(o)]
        if not wanted:
            return {}
        out = self._git("cat-file", "--batch", input=("\n".join(wanted) + "\n").encode())
        found, pos = {}, 0
        while pos < len(out):
            end = out.index(b"\n", pos)
            parts = out[pos:end].split(b" ")
            pos = end + 1
            if len(parts) != 3:  # "<oid> missing"
                continue
            size = int(parts[2])
            if parts[1] == b"blob":
                found[parts[0].decode()] = out[pos:pos + size]
            pos += size + 1
        return found

    def lfs_pointers(self, entries: Iterable[TreeEntry]) -> dict[str, Pointer]:
        """The Git LFS pointers among ``entries``, by blob id: only blobs small enough to be one are read."""
        small = [e.oid for e in entries if e.type == "file" and e.size <= MAX_POINTER_SIZE]
        found = {}
        for oid, data in self.read_blobs(small).items():
            pointer = parse_pointer(data)
            if pointer is not None:
                found[oid] = pointer
        return found

    def referenced_lfs_oids(self) -> set[str]:
        """The sha256 of every LFS pointer in a commit that some ref (branch, tag, pull request) reaches, history
        included: what the repository still needs of the large-file stores. Only blobs small enough to be a
        pointer are read; a commit no ref reaches (squashed away, a branch deleted) counts for nothing."""
        listed = self._git("rev-list", "--all", "--objects", "--no-object-names",
                           f"--filter=blob:limit={MAX_POINTER_SIZE + 1}")
        if not listed.strip():
            return set()
        kinds = self._git("cat-file", "--batch-check=%(objectname) %(objecttype)", input=listed)
        blobs = [line.split(" ")[0] for line in kinds.decode().splitlines() if line.endswith(" blob")]
        found = set()
        for i in range(0, len(blobs), 10_000):  # at most ~10 MB of small blobs in memory at once
            for data in self.read_blobs(blobs[i:i + 10_000]).values():
                pointer = parse_pointer(data)
                if pointer is not None:
                    found.add(pointer.oid)
        return found

    def log(self, rev: str, *, limit: int = 50, skip: int = 0, path: str | None = None) -> list[CommitInfo]:
        """Commits reachable from ``rev``, newest first; with ``path``, only those touching it."""
        sha = self._rev(rev)
        spec = ["--", self._read_path(path)] if path and path.strip("/") else []
        out = self._git(
            "log", "-z", f"--format={_LOG_FORMAT}", f"--max-count={max(0, int(limit))}",
            f"--skip={max(0, int(skip))}", sha, *spec,
        )  # fmt: skip
        return _parse_commits(split_z(out))

    def count_commits(self, rev: str) -> int:
        return int(self._git("rev-list", "--count", self._rev(rev)))

    def last_commits(self, rev: str, paths: list[str]) -> dict[str, CommitInfo]:
        """For each path (file or directory), the newest commit reachable from ``rev`` that changed it. One
        ``git log`` limited to those paths, read as a stream and stopped as soon as every path is accounted for.
        Paths that never changed (i.e. do not exist at ``rev``) are absent from the result."""
        sha = self._rev(rev)
        wanted = {self._read_path(p) for p in paths if p and p.strip("/")}
        found: dict[str, CommitInfo] = {}
        if not wanted:
            return found
        mark = f"spaces-{secrets.token_hex(8)}".encode()  # a record marker no file name will equal
        proc = popen_git(
            self.path,
            ["log", "-z", "--no-renames", "--name-only", f"--format={mark.decode()}%x00{_LOG_FORMAT}", sha, "--",
             *sorted(wanted)],
        )  # fmt: skip
        try:
            for fields, name in iter_log_names(iter_z(proc.stdout), mark):
                for covered in (name, *(name[:i] for i, c in enumerate(name) if c == "/")):
                    if covered in wanted and covered not in found:
                        found[covered] = _commit_info(fields)
                if len(found) == len(wanted):
                    break
        finally:
            proc.kill()
            proc.communicate()
        return found

    # -- internals ---------------------------------------------------------------------------------------------

    def _git(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
        return run_git(self.path, args, input=input, env=env).stdout

    @staticmethod
    def _ref(branch: str) -> str:
        return branch if branch.startswith("refs/") else f"refs/heads/{branch}"

    @staticmethod
    def _read_path(path: str | None) -> str:
        path = (path or "").strip("/")
        return check_path(path, for_write=False) if path else ""

    def _rev(self, rev: str) -> str:
        sha = self.resolve(rev)
        if sha is None:
            raise RevisionNotFound(rev)
        return sha

    def _refs(self, prefix: str) -> dict[str, str]:
        out = self._git("for-each-ref", "--format=%(refname)%00%(objectname)%00%(*objectname)", prefix)
        refs = {}
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            name, oid, peeled = line.split("\0")
            refs[name[len(prefix) :]] = peeled or oid  # an annotated tag names its commit, not the tag object
        return refs

    def _stat(self, sha: str, path: str) -> tuple[str, str, int] | None:
        # "<sha>:<path>" is looked up literally (no pathspec magic); -z because pushed names may contain newlines.
        out = self._git(
            "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)", "-z",
            input=enc(f"{sha}:{path}") + b"\0",
        )  # fmt: skip
        parts = out.rstrip(b"\n").split(b" ")
        if len(parts) != 3 or not FULL_SHA.fullmatch(parts[0].decode("ascii", "replace")):
            return None  # "<name> missing"
        return parts[0].decode(), parts[1].decode(), int(parts[2])


#: the temporary directory of one commit, inside the repository (see ``commit_files``)
COMMIT_TMP_PREFIX = "spaces-commit-"


def remove_quarantines(repo: Path) -> int:
    """Remove what interrupted pushes left in one repository: ``git receive-pack`` keeps a push's objects in a
    quarantine ``objects/incoming-*`` until the refs move, and a push that dies (client gone, killed) leaves it
    behind (git removes it itself on an error or SIGTERM, not on SIGKILL). Does nothing while a push or commit
    to this repository runs in any process (``repo_busy``). Returns how many were removed."""
    with idle_lock(repo) as idle:
        return _remove_quarantines(repo) if idle else 0


def _remove_quarantines(repo: Path) -> int:
    removed = 0
    for pattern in ("tmp_objdir-incoming-*", "incoming-*"):  # git >= 2.13, and 2.11-2.12
        for path in (repo / "objects").glob(pattern):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def sweep_temporaries(repos_root: Path) -> int:
    """At start-up: remove what a killed server left in every repository: push quarantines, commits' temporary
    directories and repositories half way through deletion. A repository that another process (a second hub)
    is pushing or committing to is left alone (``repo_busy``)."""
    removed = 0
    if not repos_root.is_dir():
        return 0
    for entry in repos_root.iterdir():
        if ".deleting-" in entry.name:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        elif entry.name in ("models", "datasets") and entry.is_dir():  # model and dataset repositories
            removed += sweep_temporaries(entry)
        elif entry.is_dir():
            with idle_lock(entry) as idle:  # another hub process on these repositories may be writing one now
                if not idle:
                    continue
                removed += _remove_quarantines(entry)
                for tmp in entry.glob(f"{COMMIT_TMP_PREFIX}*"):
                    shutil.rmtree(tmp, ignore_errors=True)
                    removed += 1
    return removed


def _leaves(member) -> bool:  # noqa: ANN001 - a tarfile.TarInfo
    """What tarfile's "data" filter refuses, for a ``git archive`` member: anything but a file, a directory or a
    symlink; an absolute or ``..`` name; a symlink whose target is absolute or leads out of the tree."""
    import posixpath

    if not (member.isfile() or member.isdir() or member.issym()):
        return True
    name = posixpath.normpath(member.name)
    if posixpath.isabs(name) or name == ".." or name.startswith("../"):
        return True
    if member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        return posixpath.isabs(member.linkname) or target == ".." or target.startswith("../")
    return False


def _link_out(member) -> InvalidPath:  # noqa: ANN001
    name = member.name if member is not None else "?"
    target = member.linkname if member is not None else "?"
    return InvalidPath(f"The file `{name}` cannot be checked out: it is a symlink pointing outside the "
                       f"repository (to `{target}`). Replace it and push again.")

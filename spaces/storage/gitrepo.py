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

import hashlib, os
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

from spaces.errors import BadRequest, EntryNotFound, GitError, PreconditionFailed, RepoExists, RevisionNotFound
from spaces.storage._gitcmd import (
    FULL_SHA,
    SHORT_SHA,
    ZERO_OID,
    check_path,
    commit_lock,
    dec,
    enc,
    git_failure,
    is_plain_refname,
    iter_z,
    popen_git,
    run_git,
    split_z,
)

__all__ = ["Addition", "CommitInfo", "GitRepo", "TreeEntry", "blob_oid"]

_CAS_ATTEMPTS = 1
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


def _ident(value: str) -> str:
    # git silently drops or rejects these in identities; strip them so the stored identity is predictable.
    return "".join(c for c in value if c not in "<>\n\r\0").strip()


class GitRepo:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

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
        head = dec(self._git("symbolic-ref", "--short", "HEAD").strip()) or "main"
        copy = GitRepo.init_bare(dest, branch=head)
        try:
            copy._git("fetch", "--quiet", "--no-write-fetch-head", str(self.path.resolve()), "+refs/*:refs/*")
        except BaseException:
            copy.delete()
            raise
        return copy

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
        query = "".join(f"{c}^{{commit}}\n" for c in candidates).encode()
        out = self._git("cat-file", "--batch-check=%(objectname) %(objecttype)", input=query)
        for line in out.decode().splitlines():
            oid, _, kind = line.partition(" ")
            if kind == "commit" and FULL_SHA.fullmatch(oid):
                return oid
        return None

    def head(self, branch: str = "main") -> str | None:
        """The tip commit of ``branch`` (a name or ``refs/...``), or None when it has no commits."""
        if not is_plain_refname(branch):
            return None
        return self._tip(self._ref(branch))[0]

    def branches(self) -> dict[str, str]:
        return self._refs("refs/heads/")

    def tags(self) -> dict[str, str]:
        return self._refs("refs/tags/")

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
    ) -> str:
        """Create ONE commit on ``branch`` (a root commit if it has none yet) and return its sha.

        Deletions (files, then folders, recursively; a trailing '/' on a folder is fine) apply before additions,
        so a file can replace a folder or vice versa in one commit. Missing file/folder -> ``EntryNotFound``; a
        file path that collides with a folder (or a folder path with a file) -> ``BadRequest``. Overwriting an
        executable keeps its mode. ``expected_parent`` (full sha or >=5 hex prefix) that is not the tip ->
        ``PreconditionFailed``; without it a lost compare-and-swap race is retried on the new tip. Nothing is
        written to refs when anything fails (unreferenced objects may remain until ``git gc``)."""
        if not is_plain_refname(branch):
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

        with tempfile.TemporaryDirectory(prefix="spaces-commit-") as tmp:
            # Blobs are content-addressed and independent of the tip, so they are written before taking the lock.
            blobs = self._write_blobs(additions, Path(tmp))
            added = dict(zip(paths, blobs))  # a path given twice: the last one wins
            with open(os.devnull):
                for _attempt in range(_CAS_ATTEMPTS):
                    tip, _tree = self._tip(ref)
                    if expected_parent is not None and not (tip or "").startswith(expected_parent):
                        raise PreconditionFailed(
                            f"Parent commit {expected_parent} is not the tip of {branch} ({tip or 'no commits'}); "
                            "fetch the latest revision and retry."
                        )
                    entries = self._apply(self._files(tip), added, dels, folders, branch)
                    tree = self._write_tree(entries, Path(tmp) / f"index-{_attempt}")
                    parents = ["-p", tip] if tip else []
                    new = self._git("commit-tree", tree, *parents, input=text.encode(), env=env).decode().strip()
                    if self._cas(ref, new, tip):
                        return new
                    # Lost a race (a push, or a writer in another process without our lock): go again on the new tip.
                    time.sleep(0.01 * (_attempt + 1))
        if expected_parent is not None:
            raise PreconditionFailed(f"The tip of {branch} moved while committing; fetch and retry.")
        raise GitError(f"Could not update {branch}: it kept changing under concurrent writes; retry.")

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
        return entry, self._stream_blob(entry.oid, chunk_size)

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
            fields: list[bytes] = []
            current: CommitInfo | None = None
            first_name = False
            for rec in iter_z(proc.stdout):
                if rec == mark:
                    fields, current = [], None
                    continue
                if current is None:
                    fields.append(rec)
                    if len(fields) == 5:
                        current, first_name = _commit_info(fields), True
                    continue
                if first_name:  # git separates the message from the file names with one "\n"
                    rec, first_name = rec.removeprefix(b"\n"), False
                name = dec(rec)
                for covered in (name, *(name[:i] for i, c in enumerate(name) if c == "/")):
                    if covered in wanted and covered not in found:
                        found[covered] = current
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

    def _tip(self, ref: str) -> tuple[str | None, str | None]:
        out = self._git("for-each-ref", "--format=%(refname)%00%(objectname)%00%(tree)", ref)
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            name, oid, tree = line.split("\0")
            if name == ref:
                return oid, tree or None
        return None, None

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

    def _files(self, tip: str | None) -> dict[str, tuple[str, str]]:
        """path -> (mode, oid) for every non-directory entry at ``tip``."""
        if tip is None:
            return {}
        files = {}
        for rec in split_z(self._git("ls-tree", "-r", "-z", "--full-tree", tip)):
            meta, _, name = rec.partition(b"\t")
            mode, _kind, oid = meta.decode().split()
            files[dec(name)] = (mode, oid)
        return files

    @staticmethod
    def _apply(
        files: dict[str, tuple[str, str]], added: dict[str, str], dels: list[str], folders: list[str], branch: str
    ) -> dict[str, tuple[str, str]]:
        new = dict(files)
        for p in dels:
            if p not in files:
                raise EntryNotFound(p, branch)
            new.pop(p, None)
        for folder in folders:
            inside = [p for p in files if p.startswith(folder + "/")]
            if not inside:
                raise EntryNotFound(folder, branch)
            for p in inside:
                new.pop(p, None)
        for p, oid in added.items():
            old = new.get(p)
            new[p] = ("100755" if old and old[0] == "100755" else "100644", oid)
        # A path cannot be both a file and a directory. Only added paths can introduce a clash.
        dirs = {p[:i] for p in new for i, c in enumerate(p) if c == "/"}
        for p in added:
            if p in dirs:
                raise BadRequest(f"Cannot add the file '{p}': a folder with that name exists.")
            for i, c in enumerate(p):
                if c == "/" and p[:i] in new:
                    raise BadRequest(f"Cannot add the file '{p}': '{p[:i]}' is a file, not a folder.")
        return new

    def _write_blobs(self, additions: list[Addition], tmp: Path) -> list[str]:
        """Write every addition's blob with ONE ``git hash-object`` (in-memory contents are spooled to ``tmp``)."""
        if not additions:
            return []
        sources = []
        for i, add in enumerate(additions):
            if add.file is not None:
                src = Path(add.file).resolve()
            else:
                src = tmp / f"blob-{i}"
                src.write_bytes(add.content)
            if "\n" in str(src):
                raise BadRequest("An upload's file name must not contain a newline.")
            sources.append(str(src))
        # --no-filters: store the bytes exactly as given (no CRLF or attribute-driven conversion).
        out = self._git("hash-object", "-w", "--no-filters", "--stdin-paths", input=enc("\n".join(sources) + "\n"))
        oids = out.decode().split()
        if len(oids) != len(additions):
            raise GitError("git hash-object returned an unexpected number of object ids.")
        return oids

    def _write_tree(self, entries: dict[str, tuple[str, str]], index: Path) -> str:
        """Build the full tree in a throwaway index (the bare repo has no real one) and write it."""
        env = {"GIT_INDEX_FILE": str(index)}
        info = b"".join(b"%s %s\t%s\0" % (mode.encode(), oid.encode(), enc(p)) for p, (mode, oid) in entries.items())
        self._git("update-index", "-z", "--index-info", input=info, env=env)
        return self._git("write-tree", env=env).decode().strip()

    def _cas(self, ref: str, new: str, old: str | None) -> bool:
        """Move ``ref`` from ``old`` (None: must not exist) to ``new`` atomically; False if someone got there first
        (the ref moved, or its lock was held by a concurrent push)."""
        proc = run_git(self.path, ["update-ref", "-m", "spaces: commit", ref, new, old or ZERO_OID], ok=(0, 1, 128))
        if proc.returncode == 0:
            return True
        if self._tip(ref)[0] != old or b".lock" in proc.stderr:
            return False
        raise GitError(git_failure(["update-ref"], proc.returncode, proc.stderr))

    def _stream_blob(self, oid: str, chunk_size: int) -> Iterator[bytes]:
        proc = popen_git(self.path, ["cat-file", "blob", oid])
        try:
            while chunk := proc.stdout.read(chunk_size):
                yield chunk
            if proc.wait() != 0:
                raise GitError(git_failure(["cat-file"], proc.returncode, proc.stderr.read()))
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()

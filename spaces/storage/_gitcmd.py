"""Low-level helpers for :mod:`spaces.storage.gitrepo`: a sealed environment for the ``git`` binary, running it,
validating ref names and repository paths, and a per-repository commit lock.

Kept separate so that ``gitrepo`` reads as the storage contract and nothing else.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from spaces.errors import GitError, InvalidPath

try:  # POSIX: an flock serialises API commits across threads *and* worker processes.
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: fall back to an in-process lock (CAS still protects refs)
    fcntl = None  # type: ignore[assignment]

ZERO_OID = "0" * 40
FULL_SHA = re.compile(r"[0-9a-f]{40}")
SHORT_SHA = re.compile(r"[0-9a-f]{4,40}")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def git_env(git_dir: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment, built from scratch rather than inherited: no HOME, no user or system config, no
    inherited GIT_* variables (e.g. GIT_DIR set by a hook that called us), so a developer's aliases, filters,
    hooksPath or signing settings can never change what the platform writes or reads."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LC_ALL": "C",
        "LANG": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        # A file named "*.py" or ":(glob)x" is a file name, never a pattern.
        "GIT_LITERAL_PATHSPECS": "1",
        # A user may push refs/replace/*; it must not change what the API serves for a given sha.
        "GIT_NO_REPLACE_OBJECTS": "1",
        # Command-line scoped config, inherited by child processes (e.g. upload-pack during a local fetch):
        # unquoted non-ASCII paths; and data directories owned by another uid (container volumes) stay usable.
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "core.quotepath",
        "GIT_CONFIG_VALUE_0": "off",
        "GIT_CONFIG_KEY_1": "safe.directory",
        "GIT_CONFIG_VALUE_1": "*",
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    if git_dir is not None:
        env["GIT_DIR"] = str(git_dir)
    if extra:
        env.update(extra)
    return env


def run_git(
    git_dir: Path | None,
    args: Sequence[str],
    *,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    ok: tuple[int, ...] = (0,),
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git ARGS`` against ``git_dir``; raise :class:`GitError` (with git's stderr, never the environment)
    when the exit status is not in ``ok``."""
    cwd = str(git_dir) if git_dir is not None and git_dir.is_dir() else None
    try:
        proc = subprocess.run(
            ["git", *args], input=input, capture_output=True, env=git_env(git_dir, env), cwd=cwd, check=False
        )
    except FileNotFoundError as exc:
        raise GitError("The git executable was not found on PATH.") from exc
    if proc.returncode not in ok:
        raise GitError(git_failure(args, proc.returncode, proc.stderr))
    return proc


def popen_git(git_dir: Path, args: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start ``git ARGS`` with stdout piped, for streaming readers; the caller must close/kill it."""
    return subprocess.Popen(
        ["git", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=git_env(git_dir),
        cwd=str(git_dir),
    )


def stream_blob(git_dir: Path, oid: str, chunk_size: int) -> Iterator[bytes]:
    """Chunks of one blob from ``git cat-file blob``. The process starts on the first ``next()``; closing the
    generator early kills it."""
    proc = popen_git(git_dir, ["cat-file", "blob", oid])
    try:
        while chunk := proc.stdout.read(chunk_size):  # type: ignore[union-attr]
            yield chunk
        if proc.wait() != 0:
            raise GitError(git_failure(["cat-file"], proc.returncode, proc.stderr.read()))  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def git_failure(args: Sequence[str], code: int, stderr: bytes) -> str:
    err = stderr.decode("utf-8", "replace").strip()
    return f"git {args[0] if args else ''} failed (exit {code}): {err or 'no error output'}"


def is_plain_refname(name: object) -> bool:
    """True for a plain ref name or hex sha as ``git check-ref-format`` would accept it (one-level names too):
    no leading '-', no '..', '@{', '~', '^', ':', glob characters, control characters, '//' or a '.lock' part.
    This is what keeps a revision from ever being read as an option or a revision expression."""
    if not isinstance(name, str) or not name or name == "@" or name.startswith("-"):
        return False
    if _REF_FORBIDDEN.search(name) or ".." in name or "@{" in name:
        return False
    if name.startswith("/") or name.endswith("/") or name.endswith(".") or "//" in name:
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in name.split("/"))


def check_path(path: object, *, for_write: bool) -> str:
    """Return ``path`` if it is a safe repository-relative path, else raise :class:`InvalidPath`.

    Rejected: non-strings, empty, absolute, NUL, empty / '.' / '..' segments, and a '.git' segment in any case
    (it would be a repository inside the checkout). Writes also reject other control characters, which would
    break line-oriented tools downstream. Reads accept them, since a ``git push`` may have created such files.
    """
    if not isinstance(path, str) or not path:
        raise InvalidPath("The path must be a non-empty string.")
    if "\x00" in path:
        raise InvalidPath("The path must not contain a NUL character.")
    if for_write and any(ord(c) < 0x20 or c == "\x7f" for c in path):
        raise InvalidPath(f"The path {path!r} contains a control character.")
    if path.startswith("/"):
        raise InvalidPath(f"The path {path!r} must be relative to the repository root, without a leading '/'.")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise InvalidPath(f"The path {path!r} has an empty, '.' or '..' segment.")
        if part.lower() == ".git":
            raise InvalidPath(f"The path {path!r} has a '.git' segment, which is not allowed.")
    return path


def enc(path: str) -> bytes:
    # surrogateescape round-trips file names that a push created in a non-UTF-8 encoding.
    return path.encode("utf-8", "surrogateescape")


def dec(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def split_z(raw: bytes) -> list[bytes]:
    """Split NUL-terminated records, dropping the empty tail after the final NUL."""
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return parts


def iter_z(stream, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """Yield NUL-terminated records from a binary stream as they arrive (so a reader can stop early)."""
    buf = b""
    while chunk := stream.read1(chunk_size) if hasattr(stream, "read1") else stream.read(chunk_size):
        buf += chunk
        *records, buf = buf.split(b"\0")
        yield from records
    if buf:
        yield buf


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


#: the lock files in every repository (see ``commit_lock`` and ``repo_busy``)
COMMIT_LOCK, BUSY_LOCK = "spaces-commit.lock", "spaces-busy.lock"


@contextmanager
def commit_lock(git_dir: Path) -> Iterator[None]:
    """Serialise writers of one repository's refs: API commits, merges, squashes, and every push for the whole
    of its ``git receive-pack`` (``spaces.hub.git_http``), in this process or any other on the same repositories.
    Each update is a compare-and-swap anyway (``update-ref`` with the old value, git's own ``.lock`` files), so
    the lock is what makes the outcome tidy: a writer that lost a race is told so instead of failing half way,
    and a push whose client read the refs before another push landed is refused by the pre-receive hook with
    "pull first". ``flock`` on a fresh file description conflicts between threads as well as between processes;
    on NFS (v4) Linux maps it to a byte-range lock that other clients see too."""
    if fcntl is None:  # pragma: no cover
        with _thread_locks_guard:
            lock = _thread_locks.setdefault(str(git_dir.resolve()), threading.Lock())
        with lock:
            yield
        return
    with _flocked(git_dir / COMMIT_LOCK, fcntl.LOCK_EX):
        yield


@contextmanager
def repo_busy(git_dir: Path) -> Iterator[None]:
    """Held (shared) by whatever keeps temporary files in a repository: a push (git's quarantine, until its
    receive-pack ends) and an API commit (its ``spaces-commit-*`` directory). ``idle_lock`` is how a sweeper
    makes sure none is, in any process, before removing what a killed one left."""
    with _flocked(git_dir / BUSY_LOCK, fcntl.LOCK_SH):
        yield


@contextmanager
def _flocked(path: Path, mode: int) -> Iterator[None]:
    """``flock(mode)`` on a fresh descriptor of the repository's lock file ``path``, held for the block."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError as exc:
        raise GitError("The repository does not exist on disk.") from exc
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def idle_lock(git_dir: Path) -> Iterator[bool]:
    """Yield True, holding the repository's busy lock exclusively, when nothing holds ``repo_busy`` now; False
    (without waiting) when something does."""
    try:
        fd = os.open(git_dir / BUSY_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def iter_log_names(records: Iterator[bytes], mark: bytes) -> Iterator[tuple[list[bytes], str]]:
    """Parse ``git log -z --name-only --format=MARK%x00<5 fields>``: yield (the commit's 5 fields, changed path)
    for every path of every commit. ``mark`` must be a value no file name equals (use a random token)."""
    fields: list[bytes] = []
    first_name = False
    for rec in records:
        if rec == mark:
            fields = []
        elif len(fields) < 5:
            fields.append(rec)
            first_name = len(fields) == 5
        else:
            if first_name:  # git separates the message from the file names with one "\n"
                rec, first_name = rec.removeprefix(b"\n"), False
            yield fields, dec(rec)

"""The write half of :meth:`spaces.storage.gitrepo.GitRepo.commit`: blobs in, one new tree out, ref moved.

A commit's changes are applied in Python to the flat ``path -> (mode, oid)`` listing of the parent tree, then the
whole tree is written through a throwaway index. That costs three git processes (``ls-tree``, ``update-index``,
``write-tree``) however many files change, and lets us reject bad operations before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from spaces.errors import BadRequest, EntryNotFound, GitError
from spaces.storage._gitcmd import ZERO_OID, dec, enc, git_failure, run_git, split_z

Files = dict[str, tuple[str, str]]  # path -> (mode, oid) for every non-directory entry


class _Source(Protocol):
    content: bytes
    file: Path | None


def list_files(git_dir: Path, tip: str | None) -> Files:
    if tip is None:
        return {}
    files = {}
    for rec in split_z(run_git(git_dir, ["ls-tree", "-r", "-z", "--full-tree", tip]).stdout):
        meta, _, name = rec.partition(b"\t")
        mode, _kind, oid = meta.decode().split()
        files[dec(name)] = (mode, oid)
    return files


def apply_changes(files: Files, added: dict[str, str], dels: list[str], folders: list[str], branch: str) -> Files:
    """Deletions (checked against the parent tree), then folder deletions, then additions; raises on a missing
    entry or a file/folder clash."""
    new = dict(files)
    for p in dels:
        if p not in files:
            raise EntryNotFound(p, branch)
        del new[p]
    for folder in folders:
        inside = [p for p in files if p.startswith(folder + "/")]
        if not inside:
            raise EntryNotFound(folder, branch)
        for p in inside:
            new.pop(p, None)
    for p, oid in added.items():
        old = new.get(p)
        # Keep the executable bit a push gave a script; anything else (symlink, submodule) becomes a plain file.
        new[p] = ("100755" if old and old[0] == "100755" else "100644", oid)
    # A path cannot be both a file and a folder; only added paths can introduce such a clash.
    dirs = {p[:i] for p in new for i, c in enumerate(p) if c == "/"}
    for p in added:
        if p in dirs:
            raise BadRequest(f"Cannot add the file '{p}': a folder with that name exists.")
        for i, c in enumerate(p):
            if c == "/" and p[:i] in new:
                raise BadRequest(f"Cannot add the file '{p}': '{p[:i]}' is a file, not a folder.")
    return new


def write_blobs(git_dir: Path, sources: Sequence[_Source], tmp: Path) -> list[str]:
    """Store every source as a blob with ONE ``git hash-object``; in-memory contents are spooled to ``tmp``."""
    if not sources:
        return []
    names = []
    for i, src in enumerate(sources):
        if src.file is not None:
            name = Path(src.file).resolve()
        else:
            name = tmp / f"blob-{i}"
            name.write_bytes(src.content)
        if "\n" in str(name):
            raise BadRequest("An upload's file name must not contain a newline.")
        names.append(str(name))
    # --no-filters: store the bytes exactly as given (no CRLF or attribute-driven conversion).
    args = ["hash-object", "-w", "--no-filters", "--stdin-paths"]
    oids = run_git(git_dir, args, input=enc("\n".join(names) + "\n")).stdout.decode().split()
    if len(oids) != len(sources):
        raise GitError("git hash-object returned an unexpected number of object ids.")
    return oids


def write_tree(git_dir: Path, entries: Files, index: Path) -> str:
    """Write ``entries`` as a tree through a fresh index file (a bare repository has no index of its own)."""
    env = {"GIT_INDEX_FILE": str(index)}
    info = b"".join(b"%s %s\t%s\0" % (mode.encode(), oid.encode(), enc(p)) for p, (mode, oid) in entries.items())
    run_git(git_dir, ["update-index", "-z", "--index-info"], input=info, env=env)
    return run_git(git_dir, ["write-tree"], env=env).stdout.decode().strip()


def read_tip(git_dir: Path, ref: str) -> str | None:
    """The object ``ref`` points at, or None when it does not exist."""
    out = run_git(git_dir, ["for-each-ref", "--format=%(refname)%00%(objectname)", ref]).stdout
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        name, oid = line.split("\0")
        if name == ref:  # the pattern also matches refs below it ("main/x"); keep only the exact ref
            return oid
    return None


def compare_and_swap(git_dir: Path, ref: str, new: str, old: str | None) -> bool:
    """Move ``ref`` from ``old`` (None: it must not exist yet) to ``new`` atomically. False when someone got there
    first: the ref moved, or a concurrent push held its lock. Any other failure raises ``GitError``."""
    args = ["update-ref", "-m", "spaces: commit", ref, new, old or ZERO_OID]
    proc = run_git(git_dir, args, ok=(0, 1, 128))
    if proc.returncode == 0:
        return True
    if read_tip(git_dir, ref) != old or b".lock" in proc.stderr:
        return False
    raise GitError(git_failure(["update-ref"], proc.returncode, proc.stderr))


SYMLINK_MODE = "120000"


def link_targets(git_dir: Path, links: dict[str, str], env: dict[str, str] | None = None) -> dict[str, str]:
    """path -> target text for the symlink blobs ``links`` (path -> blob oid), read with ONE ``cat-file``."""
    if not links:
        return {}
    paths = sorted(links)
    out = run_git(git_dir, ["cat-file", "--batch"], input=enc("".join(links[p] + "\n" for p in paths)),
                  env=env).stdout
    targets, pos = {}, 0
    for path in paths:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split(b" ")[2])
        targets[path] = dec(out[header_end + 1 : header_end + 1 + size])
        pos = header_end + 1 + size + 1  # the content is followed by a newline
    return targets

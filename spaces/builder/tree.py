"""A read-only view of the files of one commit, which is all a build pack may look at.

:class:`RepoTree` is the protocol (``files()`` and ``read(path)``); three implementations:

* :class:`MemoryTree`: a dict of path -> bytes, for tests and for templates;
* :class:`DirTree`: a checked-out directory (what the build service exports before planning);
* :class:`GitTree`: one commit of a :class:`~spaces.storage.gitrepo.GitRepo`, read without a checkout.

Paths are POSIX, relative to the repository root, without a leading slash (``"app.py"``, ``"src/x.py"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from spaces.errors import EntryNotFound

if TYPE_CHECKING:
    from spaces.storage.gitrepo import GitRepo


@runtime_checkable
class RepoTree(Protocol):
    """The files of one commit. ``read`` raises ``KeyError`` (or ``EntryNotFound``) for a path not in ``files()``."""

    def files(self) -> set[str]: ...

    def read(self, path: str) -> bytes: ...


class MemoryTree:
    """Files held in memory; ``str`` contents are encoded as UTF-8."""

    def __init__(self, files: Mapping[str, bytes | str]) -> None:
        self._files = {p.strip("/"): (c.encode() if isinstance(c, str) else bytes(c)) for p, c in files.items()}

    def files(self) -> set[str]:
        return set(self._files)

    def read(self, path: str) -> bytes:
        return self._files[path]


class DirTree:
    """A directory on disk (a checkout). ``.git`` is skipped; symlinks are not followed out of the root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._files: set[str] | None = None

    def files(self) -> set[str]:
        if self._files is None:
            self._files = {p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                           if p.is_file() and ".git" not in p.relative_to(self.root).parts}
        return self._files

    def read(self, path: str) -> bytes:
        if path not in self.files():
            raise KeyError(path)
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root):  # a symlink pointing outside the checkout
            raise KeyError(path)
        return target.read_bytes()


class GitTree:
    """One commit of a bare repository. The file list is read once (one ``git ls-tree``)."""

    def __init__(self, repo: GitRepo, sha: str) -> None:
        self.repo, self.sha = repo, sha
        self._files: set[str] | None = None

    def files(self) -> set[str]:
        if self._files is None:
            self._files = {e.path for e in self.repo.list_tree(self.sha, recursive=True) if e.type == "file"}
        return self._files

    def read(self, path: str) -> bytes:
        try:
            return self.repo.read_blob(self.sha, path)
        except EntryNotFound as exc:
            raise KeyError(path) from exc


def read_text(tree: RepoTree, path: str) -> str | None:
    """The file as text (UTF-8, undecodable bytes replaced), or None when it is not in the tree."""
    if path not in tree.files():
        return None
    return tree.read(path).decode("utf-8", "replace")

"""The ``pre-receive`` hook of every Space repository: refuses, before any ref moves, what the platform cannot take.

Run by ``git receive-pack`` (see ``spaces.hub.git_http``) as ``python -I -m spaces.storage.prereceive`` with the
ref updates on stdin. It refuses a pushed tree holding a symlink that points outside the repository
(``spaces.domain.links``; such a link would make the build fail later, or worse), a file name with a control
character (the API refuses those, see ``spaces.domain.naming``), the deletion of main, which the Space builds
and serves (other branches and tags come and go freely), and an update whose old value is not the ref's value
now (another push landed after the client read the refs: it is told to pull). What it prints reaches the
pusher as ``remote:`` lines; exiting 1 refuses the whole push, so no ref moves and git and the database agree.

It also refuses a push whose hub process is gone (``SPACES_PUSH_HUB``, see :func:`hub_token`): receive-pack is
not killed with the hub that started it, and one that read the whole pack before a kill -9 would otherwise move
main later, unacknowledged, with no hub left to bring the database to the new tip until the next start.

The pushed objects are still in git's quarantine directory: the ``GIT_OBJECT_DIRECTORY`` and
``GIT_ALTERNATE_OBJECT_DIRECTORIES`` git gives the hook are passed on to the git commands it runs.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from spaces.domain.links import escapes, refusal
from spaces.storage._gitcmd import ZERO_OID, dec, run_git, split_z
from spaces.storage._treeedit import SYMLINK_MODE, link_targets

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_QUARANTINE = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH")


def problems(git_dir: Path, updates: list[tuple[str, str, str]], env: dict[str, str]) -> list[str]:
    """One sentence per ref update the platform cannot take: main deleted, or a link leaving the repository."""
    found = []
    for old, new, ref in updates:
        now = run_git(git_dir, ["rev-parse", "--verify", "--quiet", ref], env=env, ok=(0, 1, 128))
        now_oid = now.stdout.decode().strip() if now.returncode == 0 else ZERO_OID
        if now_oid != old:
            # another push landed after this client read the refs (pushes to one repository run one at a time,
            # under the commit lock: see spaces.hub.git_http), so this one would overwrite or fail half way
            found.append(f"{ref} moved since you fetched it (another push landed first): pull, then push again.")
            continue
        if new == ZERO_OID:
            if ref == "refs/heads/main":
                found.append(f"{ref}: refusing to delete main: the Space builds and serves it.")
            continue  # a deletion has no tree
        listing = run_git(git_dir, ["ls-tree", "-r", "-z", "--full-tree", new], env=env, ok=(0, 128))
        if listing.returncode != 0:
            continue  # a tag on something that is not a commit or tree: there are no files to check
        links = {}
        for rec in split_z(listing.stdout):
            meta, _, name = rec.partition(b"\t")
            mode, _kind, oid = meta.decode().split()
            if _CONTROL.search(name):  # the API refuses such names too (domain.naming); git alone would take them
                found.append(f"{ref}: the path {dec(name)!r} holds a control character (NUL, newline, ...); rename it.")
            if mode == SYMLINK_MODE:
                links[dec(name)] = oid
        targets = link_targets(git_dir, links, env=env)
        for path in sorted(targets):
            if escapes(path, targets[path], targets):
                found.append(f"{ref}: {refusal(path, targets[path])}")
    return found


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); None when it is gone,
    a zombie included (a hub killed by -9 stays one until its supervisor reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name may hold spaces and parentheses: the fields after its ")"
    return None if fields[0] in ("Z", "X") else fields[19]


def hub_token(pid: int | None = None) -> str:
    """``pid:start`` of this process: names it for :func:`hub_alive` even after its pid is reused."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_started(pid)}"


def hub_alive(token: str) -> bool:
    pid, _, started = token.partition(":")
    return pid.isdigit() and _started(int(pid)) == started


def main() -> int:
    git_dir = Path(os.environ.get("GIT_DIR", ".")).resolve()
    token = os.environ.get("SPACES_PUSH_HUB")
    if token and not hub_alive(token):
        print("spaces: push refused: the hub serving this push stopped before it finished; push again.")
        return 1
    env = {k: os.environ[k] for k in _QUARANTINE if k in os.environ}
    updates = [tuple(line.split()) for line in sys.stdin.read().splitlines() if line.strip()]
    found = problems(git_dir, [u for u in updates if len(u) == 3], env)
    for sentence in found:
        print(f"spaces: push refused: {sentence}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``post-receive`` hook of every Space repository: tells the pusher what happens to what was pushed to main.

Run by ``git receive-pack`` (see ``spaces.hub.git_http``) as ``python -I -m spaces.storage.postreceive`` with the
ref updates on stdin, after the refs moved; what it prints reaches the pusher as ``remote:`` lines. The push is
taken whatever the README says (the commit API takes it too, and the Space then shows CONFIG_ERROR or
NO_APP_FILE): the hook reads the pushed README with the rules the hub applies after the push
(``spaces.domain.cardconfig.evaluate``), so the pusher reads why nothing builds at once, not "building it now".

Environment (set by the hub for Space repositories only; without ``SPACES_SPACE_URL`` it prints nothing):
``SPACES_SPACE_URL``, ``SPACES_LOGS_URL``, ``SPACES_APP_URL``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from spaces.domain.cardconfig import Evaluation, evaluate
from spaces.storage._gitcmd import ZERO_OID, dec, run_git, split_z

MAIN = "refs/heads/main"
README_MAX = 1 << 20  # a larger README is read in part: the front matter is at its top (and capped at 64 KiB)


def revision_evaluation(git_dir: Path, sha: str) -> Evaluation:
    """What the hub will make of revision ``sha`` (the same rules, on the same files)."""
    listing = run_git(git_dir, ["ls-tree", "-r", "-z", "--name-only", "--full-tree", sha])
    files = {dec(name) for name in split_z(listing.stdout)}
    readme = None
    if "README.md" in files:
        blob = run_git(git_dir, ["cat-file", "blob", f"{sha}:README.md"]).stdout[:README_MAX]
        readme = blob.decode("utf-8", errors="replace")
    return evaluate(readme, files, default_title="")


def lines_for(sha: str, ev: Evaluation, env: dict[str, str]) -> list[str]:
    """The sentences for a push of ``sha`` to main (one per line, without the ``spaces:`` prefix)."""
    short, page = sha[:7], env.get("SPACES_SPACE_URL", "")
    if ev.stage is not None:
        what = ("README.md must be fixed before this Space can build" if ev.stage.value == "CONFIG_ERROR"
                else "there is nothing to run yet")
        return ([f"received {short} on main, but {what} ({ev.stage.value}):"]
                + [f"  {line}" for line in ev.message.splitlines() if line.strip()]
                + ["the Space shows this error until a push fixes it: " + page])
    return [f"received {short} on main; building it now.",
            f"follow the build at {page}?tab=logs",
            f"or: curl -N {env.get('SPACES_LOGS_URL', '')}",
            f"the app will be at {env.get('SPACES_APP_URL', '')}"]


def main() -> int:
    if not os.environ.get("SPACES_SPACE_URL"):
        return 0  # a model or dataset repository: nothing is built
    git_dir = Path(os.environ.get("GIT_DIR", ".")).resolve()
    for line in sys.stdin.read().splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[2] != MAIN or parts[1] == ZERO_OID:
            continue
        try:
            said = lines_for(parts[1], revision_evaluation(git_dir, parts[1]), dict(os.environ))
        except Exception:  # a hook that fails must never make the pusher think the push failed: it landed
            said = [f"received {parts[1][:7]} on main; see {os.environ['SPACES_SPACE_URL']}"]
        for sentence in said:
            print(f"spaces: {sentence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``.gitignore`` rules for preupload: which of the files a client is about to commit the Hub tells it to skip.

huggingface_hub sends the ``.gitignore`` it is uploading as ``gitIgnore`` (or nothing, and then the one already in
the repo applies) and leaves out every file answered ``shouldIgnore: true``. Matching follows git's own rules
(negation, anchoring, ``**``, directory patterns) through ``pathspec``'s GitIgnoreSpec, which mirrors git's
behaviour including its edge cases.
"""

from __future__ import annotations

from collections.abc import Callable

from pathspec import GitIgnoreSpec


def ignore_matcher(text: str | None) -> Callable[[str], bool]:
    """A predicate: True when ``path`` (repo-relative, '/'-separated) is ignored by the ``.gitignore`` ``text``."""
    if not text or not text.strip():
        return lambda path: False
    spec = GitIgnoreSpec.from_lines(text.splitlines())
    return spec.match_file

"""Git LFS pointer files and ``.gitattributes`` LFS rules: pure parsing, no I/O.

A pointer is what git stores in place of a large file (the git-lfs spec, v1)::

    version https://git-lfs.github.com/spec/v1
    oid sha256:<64 lowercase hex>
    size <bytes>

The bytes themselves live in the object store under that sha256 (``spaces.storage.objects``). Parsing is strict
(the spec's key order, one trailing newline, at most ``MAX_POINTER_SIZE`` bytes): a small text file that merely
resembles a pointer is a plain file, as it is for git-lfs itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

try:  # pathspec >= 1.0; GitWildMatchPattern, the same rules, is deprecated there
    from pathspec.patterns.gitignore.basic import GitIgnoreBasicPattern as _Pattern
except ImportError:  # pragma: no cover - pathspec 0.12
    from pathspec.patterns import GitWildMatchPattern as _Pattern

from spaces.errors import BadRequest

SPEC = "https://git-lfs.github.com/spec/v1"
#: git-lfs never reads a blob larger than this as a pointer
MAX_POINTER_SIZE = 1024
OID = re.compile(r"[0-9a-f]{64}")
#: the attributes git-lfs writes for a tracked pattern (``git lfs track``), and the Hub with it
LFS_ATTRS = "filter=lfs diff=lfs merge=lfs -text"
_LFS = LFS_ATTRS
#: the ``.gitattributes`` the Hub seeds in a new model or Space repository: these patterns go through LFS
HUB_GITATTRIBUTES = (
    f"*.7z {_LFS}\n"
    f"*.arrow {_LFS}\n"
    f"*.bin {_LFS}\n"
    f"*.bz2 {_LFS}\n"
    f"*.ckpt {_LFS}\n"
    f"*.ftz {_LFS}\n"
    f"*.gz {_LFS}\n"
    f"*.h5 {_LFS}\n"
    f"*.joblib {_LFS}\n"
    f"*.lfs.* {_LFS}\n"
    f"*.mlmodel {_LFS}\n"
    f"*.model {_LFS}\n"
    f"*.msgpack {_LFS}\n"
    f"*.npy {_LFS}\n"
    f"*.npz {_LFS}\n"
    f"*.onnx {_LFS}\n"
    f"*.ot {_LFS}\n"
    f"*.parquet {_LFS}\n"
    f"*.pb {_LFS}\n"
    f"*.pickle {_LFS}\n"
    f"*.pkl {_LFS}\n"
    f"*.pt {_LFS}\n"
    f"*.pth {_LFS}\n"
    f"*.rar {_LFS}\n"
    f"*.safetensors {_LFS}\n"
    f"saved_model/**/* {_LFS}\n"
    f"*.tar.* {_LFS}\n"
    f"*.tar {_LFS}\n"
    f"*.tflite {_LFS}\n"
    f"*.tgz {_LFS}\n"
    f"*.wasm {_LFS}\n"
    f"*.xz {_LFS}\n"
    f"*.zip {_LFS}\n"
    f"*.zst {_LFS}\n"
    f"*tfevents* {_LFS}\n"
)
#: a new dataset's: the model patterns plus audio, images and video
HUB_DATASET_GITATTRIBUTES = HUB_GITATTRIBUTES + (
    "# Audio files - uncompressed\n"
    f"*.pcm {_LFS}\n"
    f"*.sam {_LFS}\n"
    f"*.raw {_LFS}\n"
    "# Audio files - compressed\n"
    f"*.aac {_LFS}\n"
    f"*.flac {_LFS}\n"
    f"*.mp3 {_LFS}\n"
    f"*.ogg {_LFS}\n"
    f"*.wav {_LFS}\n"
    "# Image files - uncompressed\n"
    f"*.bmp {_LFS}\n"
    f"*.gif {_LFS}\n"
    f"*.png {_LFS}\n"
    f"*.tiff {_LFS}\n"
    "# Image files - compressed\n"
    f"*.jpg {_LFS}\n"
    f"*.jpeg {_LFS}\n"
    f"*.webp {_LFS}\n"
    "# Video files - compressed\n"
    f"*.mp4 {_LFS}\n"
    f"*.webm {_LFS}\n"
)
_POINTER = re.compile(rb"version (https://git-lfs\.github\.com/spec/v1|https://hawser\.github\.com/spec/v1)\n"
                      rb"(?:ext-[^\n]*\n)*oid sha256:([0-9a-f]{64})\nsize (0|[1-9][0-9]{0,17})\n")


@dataclass(frozen=True)
class Pointer:
    oid: str  # sha256 of the real content, lowercase hex
    size: int  # bytes of the real content

    def text(self) -> bytes:
        """The canonical pointer file git-lfs writes for this object."""
        return f"version {SPEC}\noid sha256:{self.oid}\nsize {self.size}\n".encode()


def parse_pointer(data: bytes) -> Pointer | None:
    """The pointer ``data`` is, or None when it is an ordinary file."""
    if len(data) > MAX_POINTER_SIZE:
        return None
    m = _POINTER.fullmatch(data)
    return Pointer(m.group(2).decode(), int(m.group(3))) if m else None


def check_oid(oid: object) -> str:
    """``oid`` if it is a sha256 in lowercase hex; BadRequest otherwise."""
    if not isinstance(oid, str) or not OID.fullmatch(oid):
        raise BadRequest(f"Invalid LFS object id {str(oid)[:80]!r}: expected a sha256 in 64 lowercase hex digits.")
    return oid


def check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0 or size >= 1 << 60:
        raise BadRequest(f"Invalid LFS object size {str(size)[:40]!r}: expected a non-negative integer.")
    return size


def lfs_matcher(gitattributes: str | None) -> Callable[[str], bool]:
    """A predicate: True when ``path`` is stored with LFS (``filter=lfs``) under the root ``.gitattributes`` text.
    As in git, the last line whose pattern matches decides; ``-filter``, ``!filter`` or another filter unset it."""
    rules: list[tuple[_Pattern, bool]] = []
    for line in (gitattributes or "").splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#") or parts[0].startswith("!"):
            continue
        decision = None
        for attr in parts[1:]:
            if attr.startswith("filter="):
                decision = attr == "filter=lfs"
            elif attr in ("-filter", "!filter"):
                decision = False
        if decision is None:
            continue
        if parts[0].endswith("/"):
            continue  # git never applies attributes through a directory pattern
        try:  # gitignore's pattern rules: a bare name matches at any depth, a leading '/' anchors at the root
            # git-lfs writes a space in a tracked path as the POSIX class, which pathspec does not know
            rules.append((_Pattern(parts[0].replace("[[:space:]]", "[ \t]")), decision))
        except Exception:  # noqa: BLE001 - git ignores a pattern it cannot read; so do we
            continue
    if not rules:
        return lambda path: False

    def tracked(path: str) -> bool:
        result = False
        for pattern, decision in rules:
            if pattern.match_file(path) is not None:
                result = decision
        return result
    return tracked


def default_gitattributes(repo_type: str) -> str:
    """The ``.gitattributes`` of a new repository of ``repo_type`` (model, dataset, space), as the Hub seeds it."""
    return HUB_DATASET_GITATTRIBUTES if repo_type == "dataset" else HUB_GITATTRIBUTES


def track_line(path: str) -> str:
    """The ``.gitattributes`` line that stores exactly ``path`` with LFS, as ``git lfs track`` writes it: the
    pattern characters escaped and each space as ``[[:space:]]`` (a space would end the pattern)."""
    escaped = re.sub(r"([\\*?\[\]])", r"\\\1", path)
    if escaped.startswith(("#", "!")):  # a comment, a negation: only at the start of a line
        escaped = "\\" + escaped
    escaped = re.sub(r"\s", "[[:space:]]", escaped)
    return f"{escaped} {LFS_ATTRS}\n"


def with_tracked(gitattributes: str | None, paths: list[str]) -> str | None:
    """``gitattributes`` with a line added for each of ``paths`` it does not store with LFS yet; None when every
    one is tracked already. What the Hub commits along with a file that goes to LFS only for its size: without it
    a git-lfs clone would check out the bare pointer."""
    tracked = lfs_matcher(gitattributes)
    missing = [p for p in dict.fromkeys(paths) if not tracked(p)]
    if not missing:
        return None
    text = gitattributes or ""
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "".join(track_line(p) for p in missing)

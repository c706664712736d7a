"""Which Python interpreters this host offers to builds, and which one a ``python_version`` gets.

Candidates, in order of preference on ties: the interpreter the platform itself runs on, the operator's extra
``pythons``, pyenv's ``versions/*`` (uv does not look there), then those ``uv python list --only-installed`` finds
(pyenv *shims* are skipped: they resolve differently per directory). uv never downloads one
(``UV_PYTHON_DOWNLOADS=never``): a build uses what the host has, and says so when that is not what was asked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")


@dataclass(frozen=True)
class Interpreter:
    version: tuple[int, int, int]
    path: Path

    @property
    def text(self) -> str:
        return ".".join(map(str, self.version))


def parse_version(text: str) -> tuple[int, int, int | None] | None:
    m = _VERSION.match(text.strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3)) if m.group(3) else None


def _platform_python() -> Interpreter | None:
    # in a venv, _base_executable is the real interpreter the venv was made from
    base = Path(getattr(sys, "_base_executable", "") or sys.executable)
    return Interpreter(sys.version_info[:3], base) if base.is_file() else None


def _probe(path: Path) -> Interpreter | None:
    try:
        out = subprocess.run([str(path), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    v = parse_version(out)
    return Interpreter((v[0], v[1], v[2] or 0), path) if v else None


def _uv_pythons(uv: str, env: dict[str, str]) -> list[Interpreter]:
    try:
        out = subprocess.run([uv, "python", "list", "--only-installed", "--output-format", "json"],
                             capture_output=True, text=True, timeout=60, env=env, check=True).stdout
        rows = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    found = []
    for row in rows:
        path, parts = row.get("path"), row.get("version_parts") or {}
        if row.get("implementation") != "cpython" or not path or "/shims/" in path or row.get("variant") not in (
                None, "default"):
            continue
        found.append(Interpreter((parts.get("major", 0), parts.get("minor", 0), parts.get("patch", 0)), Path(path)))
    return found


def _pyenv_pythons() -> list[Interpreter]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    for d in sorted(root.glob("*")) if root.is_dir() else []:
        v = parse_version(d.name)
        exe = d / "bin" / "python3"
        if v and v[2] is not None and exe.is_file():
            found.append(Interpreter((v[0], v[1], v[2]), exe))
    return found


def _system_pythons() -> list[Interpreter]:
    """The distribution's interpreters (/usr/bin/python3.X): always reachable by every user."""
    found = []
    for exe in sorted(Path("/usr/bin").glob("python3.[0-9]*")) + sorted(Path("/usr/local/bin").glob("python3.[0-9]*")):
        v = parse_version(exe.name[len("python"):])
        if v and exe.is_file() and not exe.name.endswith("-config"):
            probed = _probe(exe)
            if probed:
                found.append(probed)
    return found


def reachable_by_others(path: Path) -> bool:
    """True when a user other than the owner can run ``path``: sandboxed Spaces run as their own uids, and a
    virtual environment's interpreter behind a 0700 directory (pyenv under /root) would not start for them."""
    try:
        real = path.resolve()
        if not os.stat(real).st_mode & 0o001:
            return False
        return all(os.stat(d).st_mode & 0o001 for d in real.parents)
    except OSError:
        return False


def discover(uv: str | None, env: dict[str, str], extra: list[Path], search_pyenv: bool,
             shared: bool = False) -> list[Interpreter]:
    """Every CPython 3 interpreter builds may use, best-preferred first, one per resolved path.

    With ``shared`` (environments run by sandboxed uids) only interpreters other users can reach are offered,
    and the distribution's come first.

    With ``uv=None`` only the cheap sources are read (no subprocess unless ``extra`` is set): the builder asks uv
    (about a second) only when those lack the version a Space wants.
    """
    candidates: list[Interpreter | None] = [*_system_pythons(), _platform_python()] if shared else [_platform_python()]
    candidates += [_probe(p) for p in extra]
    if search_pyenv:
        candidates += _pyenv_pythons()
    if uv is not None:
        candidates += _uv_pythons(uv, env)
    seen, out = set(), []
    for c in candidates:
        if c is None or c.version[0] != 3 or (shared and not reachable_by_others(c.path)):
            continue
        key = c.path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def choose(wanted: str, available: list[Interpreter]) -> tuple[Interpreter, str | None]:
    """The interpreter for ``wanted`` ("3.10" or "3.10.4") and a warning when it is not an exact match.

    Same major.minor is a match (the newest patch, or the exact patch when one is asked and present); otherwise
    the nearest minor version, the newer one on a tie. ``available`` must not be empty.
    """
    v = parse_version(wanted)
    assert v is not None, wanted
    major, minor, patch = v
    have = ", ".join(sorted({i.text for i in available}, key=lambda t: tuple(map(int, t.split(".")))))
    same = [i for i in available if i.version[:2] == (major, minor)]
    if same:
        exact = [i for i in same if patch is None or i.version[2] == patch]
        if exact:
            return max(exact, key=lambda i: i.version[2]), None
        best = max(same, key=lambda i: i.version[2])
        return best, (f"WARNING: python_version {wanted} is not installed on this host (available: {have}); "
                      f"using {best.text} instead.")
    best = min(available, key=lambda i: (abs(i.version[1] - minor) + abs(i.version[0] - major) * 100,
                                         -i.version[1], -i.version[2]))
    return best, (f"WARNING: python_version {wanted} is not available on this host (available: {have}); "
                  f"using the closest, {best.text}, instead. Ask the operator to install Python {wanted} "
                  "if the app needs it.")

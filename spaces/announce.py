"""Which ``spaces serve`` runs on this machine, so that the operator commands talk about that instance.

``spaces serve`` announces itself in a small file (its pid and start time, URL, port, data dir and database
kind; never the database URL, which may hold a password) and removes it when it stops. An operator command given
no ``--data-dir`` and no ``SPACES_DATA_DIR`` uses the one instance it finds running and says so on stderr; with
several it asks which. Without this, ``sudo scripts/serve`` and a plain ``spaces token create alice`` used two
different data dirs, and the token was refused with nothing but "Invalid credentials".
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

#: root's servers announce here (readable by everyone: nothing in it is secret); other users' in their own dir.
#: ``SPACES_ANNOUNCE_DIR`` replaces both (tests, or several operators who keep their instances apart).
SYSTEM_DIR = Path(os.environ.get("SPACES_ANNOUNCE_DIR") or "/run/spaces/serving")


def user_dir() -> Path:
    if os.geteuid() == 0 or os.environ.get("SPACES_ANNOUNCE_DIR"):
        return SYSTEM_DIR
    return Path(f"/tmp/spaces-serving-{os.geteuid()}")


@dataclass(frozen=True)
class Announced:
    pid: int
    starttime: int
    url: str
    port: int
    data_dir: str
    database: str  # "sqlite" or the dialect of SPACES_DATABASE_URL
    uid: int

    def describe(self) -> str:
        return f"{self.url} (data dir {self.data_dir}, {self.database}, pid {self.pid})"


def announce(url: str, port: int, data_dir: Path, database: str) -> Path:
    """Write this process's announcement; return its path (remove it with :func:`withdraw`)."""
    directory = user_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o755 if directory == SYSTEM_DIR else 0o700)
    me = Announced(os.getpid(), _starttime(os.getpid()) or 0, url, port, str(data_dir), database, os.geteuid())
    path = directory / f"{me.pid}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(me)))
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return path


def withdraw(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def running() -> list[Announced]:
    """The servers announced on this machine that are still alive (stale files of killed ones are skipped)."""
    found: dict[int, Announced] = {}
    for directory in {SYSTEM_DIR, user_dir()}:
        for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
            try:
                a = Announced(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue
            if _starttime(a.pid) == a.starttime:
                found[a.pid] = a
    return sorted(found.values(), key=lambda a: a.pid)


def _starttime(pid: int) -> int | None:
    from spaces.runtime.sandbox import proc_stat  # (pid, start time) is how the platform tells a process apart

    st = proc_stat(pid)
    return st[1] if st else None

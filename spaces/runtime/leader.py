"""Leader election for the controller: exactly one process acts on Spaces at a time, a standby takes over.

Two locks, both released by the operating system or the database when their holder dies, so a dead leader
needs no lease to run out:

* ``PostgresLock`` - a session advisory lock (``pg_try_advisory_lock``) on a connection of its own, held for as
  long as the process leads. A leader killed with -9 closes its socket, PostgreSQL ends that session and the
  lock is free at once. The leader checks its connection every ``check_seconds``: when it is gone (a network
  cut, PostgreSQL restarted, an operator's ``pg_terminate_backend``) another process may hold the lock already,
  so the leader must stop acting at once (fencing): ``Leadership`` calls ``on_lost``, which in ``spaces serve``
  stops the loops and exits the process non-zero, and its supervisor starts it again as a standby.
* ``FileLock`` - ``fcntl.flock`` on a file in the data dir: SQLite means one machine, and the kernel releases the
  lock when its holder dies. Opened close-on-exec, so no child process keeps it past its parent.

``Leadership`` polls the lock every ``poll_seconds`` while standing by, calls ``on_elected`` (construct the
backend, adopt what runs, start the loops) once it holds it, and exposes the state as Prometheus metrics:
``spaces_controller_leader`` (1 while leading) and ``spaces_controller_leader_changes_total``.

Not covered: a leader that is alive but frozen (SIGSTOP, a stalled VM) keeps its session and so its lock; the
Kubernetes Lease variant (a lease with a renew deadline) would cover that and is not written yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from spaces.metrics import CONTROLLER_LEADER as LEADER  # every metric is defined in spaces.metrics
from spaces.metrics import CONTROLLER_LEADER_CHANGES as LEADER_CHANGES

log = logging.getLogger("spaces.leader")


class Lock(Protocol):
    def try_acquire(self) -> bool: ...

    def alive(self) -> bool: ...

    def release(self) -> None: ...


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock id for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class PostgresLock:
    def __init__(self, url: str, name: str = "spaces:controller", *, timeout_s: float = 5.0) -> None:
        self.url = _libpq_url(url)
        self.key = lock_key(name)
        self.timeout_s = timeout_s
        self._conn = None
        self._held = False

    def _connect(self):  # noqa: ANN202
        import psycopg

        # keepalives: a leader cut off from PostgreSQL notices within seconds, not after the kernel's 2 hours
        return psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.timeout_s)),
                               keepalives=1, keepalives_idle=2, keepalives_interval=1, keepalives_count=3,
                               options=f"-c statement_timeout={int(self.timeout_s * 1000)}",
                               application_name="spaces-controller")

    def try_acquire(self) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            row = self._conn.execute("select pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except Exception as exc:  # PostgreSQL away: stand by, try again at the next poll
            log.warning("leader election: PostgreSQL did not answer (%s)", exc)
            self._close()
            return False
        self._held = bool(row and row[0])
        return self._held

    def alive(self) -> bool:
        """Is the session that holds the lock still there? Any failure counts as lost: fencing."""
        if not self._held or self._conn is None:
            return False
        try:
            # a session lock lives as long as its session: the session answering is the lock still held
            return self._conn.execute("select 1").fetchone() is not None
        except Exception:
            return False

    def release(self) -> None:
        if self._held and self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute("select pg_advisory_unlock(%s)", (self.key,))
        self._held = False
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who leads, for an operator reading the file
        self._fd = fd
        return True

    def alive(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


def make_lock(db_url: str, data_path: Path) -> Lock:
    if db_url.startswith("postgresql"):
        return PostgresLock(db_url)
    return FileLock(data_path / "run" / "controller.lock")


class Leadership:
    """Stand by until the lock is ours, then lead until it is lost or ``stop`` is called."""

    def __init__(self, lock: Lock, *, on_elected: Callable[[], None], on_lost: Callable[[], None],
                 on_error: Callable[[BaseException], None] | None = None, poll_seconds: float = 1.0,
                 check_seconds: float = 1.0) -> None:
        self.lock = lock
        self.on_elected = on_elected
        self.on_lost = on_lost
        #: on_elected raised (e.g. the backend cannot be reached): leadership is given up, then this is called
        #: with the exception (default: ``on_lost``)
        self.on_error = on_error
        self.poll_seconds = poll_seconds
        self.check_seconds = check_seconds
        self.leading = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        LEADER.set(0)

    def start(self, *, first_here: bool = False) -> None:
        """Stand by (or lead) from now on. ``first_here``: the first try runs in the caller's thread, and when it
        wins, ``on_elected`` too, so that a process starting alone has adopted what runs before it serves; an
        exception of ``on_elected`` then reaches the caller (the lock given up first)."""
        if first_here and self.lock.try_acquire():
            log.info("this process now leads the controller")
            self._set(True)
            try:
                self.on_elected()
            except BaseException:
                self._set(False)
                self.lock.release()
                raise
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Give leadership up (the caller has stopped acting first): a standby takes over at its next poll."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.leading:
            self._set(False)
        self.lock.release()

    def _set(self, leading: bool) -> None:
        self.leading = leading
        LEADER.set(1 if leading else 0)
        LEADER_CHANGES.inc()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.leading:
                if self.lock.try_acquire():
                    log.info("this process now leads the controller")
                    self._set(True)
                    try:
                        self.on_elected()
                    except Exception as exc:  # could not start acting: give the lock to someone who can
                        self._set(False)
                        self.lock.release()
                        if self.on_error is not None:
                            self.on_error(exc)
                        else:
                            log.exception("starting the controller failed; leadership given up")
                            self.on_lost()
                        return
                    continue
                self._stop.wait(self.poll_seconds)
                continue
            if self._stop.wait(self.check_seconds):
                return
            if not self.lock.alive():
                log.critical("the controller's leadership lock is lost: stopping at once (a standby may lead now)")
                self._set(False)
                self.lock.release()
                self.on_lost()
                return


def _libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as libpq reads it (``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"

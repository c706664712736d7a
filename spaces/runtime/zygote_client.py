"""The control plane's side of the zygotes: one pre-warmed interpreter per (environment, SDK), started lazily.

Lifecycle of one zygote: ``get`` (or ``prewarm``) starts ``{venv}/bin/python zygote.py serve`` as a child of the
control plane with only the basic environment (no platform secrets ever enter it); it is *ready* once its unix
socket (0600, root) answers a ping, after the SDK import (about 2 s for gradio here). ``spawn`` sends one launch
request and returns the forked child's pid, or raises :class:`ZygoteUnavailable` saying why (not ready in time,
dead, or the Space's environment differs from what the SDK read at import: then the caller cold-starts). A dead
zygote is reaped and restarted on next use. It exits by itself when the control plane dies (it polls its parent
pid; PR_SET_PDEATHSIG would fire when the *thread* that started it ends, which a thread pool does all the time),
and the next control plane starts a fresh one; the Spaces it forked live on in their own sessions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

ZYGOTE_SCRIPT = Path(__file__).with_name("zygote.py")


class ZygoteUnavailable(Exception):
    """The zygote cannot fork this instance; the message says why (for the log line of the cold start)."""


class Zygote:
    def __init__(self, venv: str, sdk: str, run_dir: Path, logs_dir: Path, env: dict[str, str], *,
                 memory_merge: bool = False) -> None:
        key = hashlib.sha256(f"{os.path.realpath(venv)}\0{sdk}".encode()).hexdigest()[:16]
        self.venv, self.sdk, self.key = venv, sdk, key
        # unique per control plane and start: a second control plane on the same run_dir never takes it over
        self.sockets_dir = run_dir / "zygotes"
        self.socket = self.sockets_dir / f"{key}.sock"
        self.exits = run_dir / "exits"
        self.log_path = logs_dir / f"zygote-{sdk}-{key}.log"
        self.env = env
        self.memory_merge = memory_merge  # KSM for the zygote and its forks (zygote.enable_memory_merge)
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.alive():
            return
        if self.proc is not None:
            log.warning("zygote %s (%s) exited with %s; restarting", self.key, self.venv, self.proc.returncode)
        self.sockets_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.sockets_dir, 0o700)
        self.exits.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)  # a previous zygote's, killed before it could remove it
        self.socket = self.sockets_dir / f"{self.key[:12]}-{os.getpid()}-{secrets.token_hex(2)}.sock"
        if len(str(self.socket).encode()) > 100:  # sun_path holds 108 bytes
            raise ZygoteUnavailable(f"the socket path {self.socket} is too long for a unix socket; "
                                    "use a shorter run_dir")
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [f"{self.venv}/bin/python", str(ZYGOTE_SCRIPT), "serve", "--socket", str(self.socket),
                 "--sdk", self.sdk, "--exits", str(self.exits), "--memory-merge", "1" if self.memory_merge else "0"],
                env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, close_fds=True,
                cwd="/",
            )
        log.info("zygote %s starting for %s (%s), pid %s", self.key, self.venv, self.sdk, self.proc.pid)

    def request(self, payload: dict, timeout: float = 10.0) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.socket))
            s.sendall(json.dumps(payload).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        if not buf:
            raise ZygoteUnavailable("the zygote closed the connection without answering")
        return json.loads(buf)

    def ready(self) -> bool:
        if not self.alive() or not self.socket.exists():
            return False
        try:
            return bool(self.request({"op": "ping"}, timeout=2).get("ok"))
        except (OSError, ValueError, ZygoteUnavailable):
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.alive():
                raise ZygoteUnavailable(f"the zygote exited ({self.proc.returncode if self.proc else '?'}); "
                                        f"see {self.log_path}")
            if time.monotonic() > deadline:
                raise ZygoteUnavailable(f"the zygote was not ready within {timeout:.0f}s")
            time.sleep(0.05)

    def spawn(self, payload: dict, wait: float) -> int:
        with self.lock:
            self.start()
            self.wait_ready(wait)
            try:
                answer = self.request({"op": "spawn", **payload})
            except (OSError, ValueError) as e:
                raise ZygoteUnavailable(f"the zygote did not answer: {e}") from e
        if "pid" in answer:
            return int(answer["pid"])
        raise ZygoteUnavailable(answer.get("fallback") or answer.get("error") or "no pid in the zygote's answer")

    def stop(self) -> None:
        if self.alive() and self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.socket.unlink(missing_ok=True)


class ZygotePool:
    """The zygotes of one control plane, keyed by (venv, sdk)."""

    def __init__(self, run_dir: Path, logs_dir: Path, *, memory_merge: bool = False) -> None:
        self.run_dir, self.logs_dir = run_dir, logs_dir
        self.memory_merge = memory_merge
        self._zygotes: dict[tuple[str, str], Zygote] = {}
        self._lock = threading.Lock()

    def get(self, venv: str, sdk: str, env: dict[str, str]) -> Zygote:
        with self._lock:
            key = (os.path.realpath(venv), sdk)
            z = self._zygotes.get(key)
            if z is None:
                z = self._zygotes[key] = Zygote(venv, sdk, self.run_dir, self.logs_dir, env,
                                                  memory_merge=self.memory_merge)
            return z

    def close(self) -> None:
        with self._lock:
            for z in self._zygotes.values():
                z.stop()
            self._zygotes.clear()

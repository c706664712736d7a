"""Running ``uv``: finding the binary, streaming its output line by line, and picking the line that says why it
failed.

Output is read as it comes (stdout and stderr merged), so the author watches the install live. If the line
callback raises (the build was cancelled or the server is shutting down), the whole process group is killed before
the exception propagates: no uv keeps writing into a directory that is about to be removed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spaces.builder.errors import BuildFailed

_BOX = re.compile(r"^[\s×│├╰─▶┬┆:]+")  # uv's tree drawing in front of error lines
_CAUSE = re.compile(r"^(cause|caused by):\s*", re.IGNORECASE)  # uv's plain (NO_COLOR) format


def find_uv(explicit: Path | None = None) -> str:
    """The uv binary: ``explicit``, the one installed with the platform (PyPI package ``uv``), else PATH."""
    if explicit is not None:
        return str(explicit)
    try:
        from uv import find_uv_bin  # the PyPI package ships the binary

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    sibling = Path(sys.executable).parent / "uv"
    if sibling.is_file():
        return str(sibling)
    found = shutil.which("uv")
    if found:
        return found
    raise BuildFailed("The builder needs `uv`, which is not installed: `pip install uv` into the platform's "
                      "environment, or set the builder's uv_path.", reason="uv_missing")


@dataclass
class RunResult:
    returncode: int
    lines: list[str]  # the last lines (bounded), for explaining a failure
    timed_out: bool = False


def run_streaming(cmd: list[str], *, env: dict[str, str], cwd: Path, on_line: Callable[[str], None],
                  timeout: float, keep: int = 400) -> RunResult:
    """Run ``cmd``, calling ``on_line`` for every output line; kill it after ``timeout`` seconds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=cwd, env=env, text=True, errors="replace", bufsize=1, start_new_session=True)
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        _kill(proc)

    timer = threading.Timer(timeout, on_timeout)
    timer.daemon = True
    timer.start()
    tail: deque[str] = deque(maxlen=keep)
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            on_line(line)
        proc.wait()
    except BaseException:
        _kill(proc)
        raise
    finally:
        timer.cancel()
        if proc.stdout is not None:
            proc.stdout.close()
    return RunResult(proc.returncode, list(tail), timed_out.is_set())


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _clean(line: str) -> str:
    text = _BOX.sub("", line).strip()
    return _CAUSE.sub("", text)


def _sentence(lines: list[str], cleaned: list[str], start: int) -> str:
    """The line at ``start`` joined with its wrapped continuation lines (indented, no new marker)."""
    parts = [cleaned[start]]
    for raw, c in zip(lines[start + 1:], cleaned[start + 1:]):
        if not c or not raw[:1].isspace() or any(m in raw for m in ("×", "─▶", "cause:", "hint:")):
            break
        parts.append(c)
    return " ".join(parts)


def explain(lines: list[str]) -> str:
    """The most informative line(s) of a failed uv run, for the stage message.

    uv's resolver failure is a headline ("No solution found when resolving dependencies") and a "Because ..."
    sentence: both are kept. Otherwise the first ``error:`` / ``×`` headline with the line under it, else the
    last non-empty line.
    """
    cleaned = [_clean(x) for x in lines]
    because = next((i for i, c in enumerate(cleaned) if c.startswith("Because ")), None)
    headline_at = next((i for i, (raw, c) in enumerate(zip(lines, cleaned))
                        if c and (raw.lstrip().startswith(("×", "error:")) or c.startswith("No solution found"))),
                       None)
    head = ""
    if headline_at is not None:
        head = cleaned[headline_at]
        if head.startswith("error:"):
            head = head[len("error:"):].strip()
        head = head.rstrip(":")
    if because is not None:
        sentence = _sentence(lines, cleaned, because)
        return f"{head}: {sentence}" if head and headline_at != because else sentence
    if headline_at is not None:
        detail = next((c for c in cleaned[headline_at + 1:] if c), "")
        return f"{head}: {detail}" if detail else head
    return next((c for c in reversed(cleaned) if c), "")

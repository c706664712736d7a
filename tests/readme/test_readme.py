"""The README's "Five minutes with it" section, run as written: its code blocks in one bash session, in order,
against the server its own ``scripts/serve &`` starts on port 8000, with what a reader's machine has (a HOME with a
git identity, the README's ``/etc/hosts`` line). A wrong example fails here.

Starts live Spaces on the local backend: run under ``flock /tmp/spaces-live.lock``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from harness import REPO_ROOT, SHARED_ENVS_DIR, TEST_ROOT, kill_space_processes

pytestmark = pytest.mark.timeout(1200)

README = REPO_ROOT / "README.md"
SECTION = "## Five minutes with it"
PORT = 8000  # the README's
HOSTS = Path("/etc/hosts")
#: how long the whole section may take (first build of the Gradio environment, a pip install of the clients)
SESSION_TIMEOUT_S = 900


def section(text: str) -> str:
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start:end if end != -1 else len(text)]


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```\s*$", text, re.S | re.M)]


def hosts_lines(text: str) -> list[str]:
    """The ``/etc/hosts`` lines the section tells the reader to add."""
    return re.findall(r"`(127\.0\.0\.1\s+[\w.-]+\.localhost)`", text)


def session_script(blocks: list[tuple[str, str]]) -> str:
    """One bash session: bash blocks as they are, Python blocks fed to the ``python`` on the reader's PATH (the
    virtualenv the section activates). Any failing command ends the session with its status."""
    parts = ["set -e -o pipefail", f"cd {REPO_ROOT}"]
    for i, (lang, code) in enumerate(blocks, 1):
        parts.append(f"echo '::: README block {i} ({lang})'")
        if lang == "bash":
            parts.append(code)
        elif lang == "python":
            parts.append(f"python - <<'README_PYTHON_BLOCK'\n{code}README_PYTHON_BLOCK")
        else:
            raise AssertionError(f"block {i} of the README section has no runnable language: {lang!r}")
    parts.append("echo '::: README section done'")
    return "\n".join(parts) + "\n"


def port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def reader_env(home: Path, data_dir: Path) -> dict[str, str]:
    """The reader's environment: this machine's, minus our test settings and virtualenv."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPACES_", "HF_", "HUGGING", "GIT_", "VIRTUAL_ENV", "PYTEST"))}
    venv_bin = str(REPO_ROOT / ".venv" / "bin")
    env["PATH"] = ":".join(p for p in env.get("PATH", "/usr/bin:/bin").split(":") if p != venv_bin)
    env.update(
        HOME=str(home),
        SPACES_DATA_DIR=str(data_dir),
        # CI speed only: the Gradio environment and the clients' wheels are built or downloaded once per machine
        SPACES_LOCAL_BUILD__ENVS_DIR=str(SHARED_ENVS_DIR),
        PIP_CACHE_DIR=str(TEST_ROOT / "pip-cache"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_CACHE_DIR=os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv"),
    )
    return env


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_session(proc: subprocess.Popen, data_dir: Path) -> None:
    """The server runs in the session's process group (``scripts/serve &`` in a shell without job control) and
    outlives the shell: SIGTERM lets it stop in order (firewall rules, its announcement); whatever is left after
    15 s is killed, then the Spaces it started (they run in sessions of their own)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    kill_space_processes(data_dir)


def test_readme_five_minutes_runs_as_written(tmp_path):
    text = section(README.read_text())
    blocks = code_blocks(text)
    assert any(lang == "python" for lang, _ in blocks) and blocks[0][0] == "bash", blocks
    assert "scripts/serve &" in blocks[0][1], "the section must start the server with the README's own command"
    added = hosts_lines(text)
    assert added, "the section must say which /etc/hosts line to add for the app host"
    if port_taken(PORT):
        pytest.fail(f"port {PORT} is taken on this machine: the README's server listens there; stop what uses it")

    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = README Reader\n\temail = reader@example.invalid\n"
                                     "[init]\n\tdefaultBranch = main\n")
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="readme-", dir=TEST_ROOT))  # not /tmp: Spaces get a private /tmp
    out = tmp_path / "session.log"
    hosts_before = HOSTS.read_bytes()
    proc = None
    try:
        sep = b"" if hosts_before.endswith(b"\n") or not hosts_before else b"\n"
        HOSTS.write_bytes(hosts_before + sep + "".join(f"{line}\n" for line in added).encode())
        with out.open("wb") as sink:
            proc = subprocess.Popen(["bash", "-c", session_script(blocks)], cwd=REPO_ROOT, env=reader_env(home, data_dir),
                                    stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(timeout=SESSION_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                rc = None
        log = out.read_text(errors="replace")
        assert rc is not None, f"the README section did not finish in {SESSION_TIMEOUT_S} s:\n{log[-6000:]}"
        assert rc == 0, f"a README block failed (exit {rc}); the last block started is the one:\n{log[-6000:]}"
        assert "::: README section done" in log
        assert "Build of" in log and "finished" in log, "the build log loop printed no finished build:\n" + log[-4000:]
        assert "Hello, world!" in log, "gradio_client did not print the app's answer:\n" + log[-4000:]
    finally:
        if proc is not None:
            stop_session(proc, data_dir)
        HOSTS.write_bytes(hosts_before)
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)

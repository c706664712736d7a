"""``spaces serve`` on a port it cannot have: one line saying so, exit status 1, nothing started."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from harness import TEST_ROOT, spaces_command


def test_serve_on_a_busy_port_says_so_in_one_line():
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="busy-port-", dir=TEST_ROOT))  # not /tmp: the local backend refuses it
    try:
        _serve_on_busy_port(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _serve_on_busy_port(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*spaces_command(), "serve", "--port", str(port), "--data-dir", str(data_dir)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the port is already in use (another spaces server?); "
        "pick another with --port"], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (data_dir / "spaces.db").exists(), "a server that cannot listen must not touch its data dir"


def test_serve_with_an_unreachable_docker_engine_says_so(tmp_path) -> None:  # noqa: ANN001
    """The Docker backend with no engine behind DOCKER_HOST: one error naming the engine, no traceback."""
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="no-engine-", dir=TEST_ROOT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}
    env.update(SPACES_RUNTIME__BACKEND="docker", DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock",
               SPACES_ANNOUNCE_DIR=str(tmp_path / "announce"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        done = subprocess.run([*spaces_command(), "serve", "--port", str(port), "--data-dir", str(data_dir)],
                              capture_output=True, text=True, timeout=120, env=env)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    said = " ".join(done.stderr.split())
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "error: Cannot reach the Docker engine" in said and "no-engine.sock" in said, said
    assert "Traceback" not in done.stdout + done.stderr
    assert not list((tmp_path / "announce").glob("*.json"))  # withdrawn on the way out

"""Fixtures for the local backend: a real uv environment with gradio and streamlit, a real backend, real apps.

* The environment is built once per machine with ``uv`` into ``/var/tmp/spaces-test-envs/{versions}`` (not /tmp:
  every Space gets a private /tmp, so nothing it runs may live there; and not under /root, which sandbox uids
  cannot enter), from Debian's /usr/bin/python3.11 for the same reason. ``SPACES_TEST_LOCAL_VENV`` overrides it.
* The backend runs with its own directories and the cgroup root ``spaces-test``; everything the tests started is
  stopped at the end.
* These tests need root (uids, cgroups, namespaces); they skip otherwise.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spaces.builder.plan import Artifact
from spaces.runtime.backends.local import LocalBackend, LocalBackendSettings
from spaces.runtime.contracts import Handle, Observed, Phase

from runtime_local.helpers import Spaces, wait_phase

GRADIO, STREAMLIT = "6.31.0", "1.67.0"
ENVS = Path("/var/tmp/spaces-test-envs")
BASE_PYTHON = "/usr/bin/python3.11"


def _build_env() -> Path:
    if os.environ.get("SPACES_TEST_LOCAL_VENV"):
        return Path(os.environ["SPACES_TEST_LOCAL_VENV"])
    if os.geteuid() != 0 or shutil.which("uv") is None or not Path(BASE_PYTHON).exists():
        pytest.skip(f"needs root, uv and {BASE_PYTHON}")
    ENVS.mkdir(parents=True, exist_ok=True)
    os.chmod(ENVS, 0o755)
    venv = ENVS / f"gradio{GRADIO}-streamlit{STREAMLIT}-py3.11"
    with open(ENVS / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run(["uv", "venv", "-q", "-p", BASE_PYTHON, str(venv)], check=True)
            subprocess.run(["uv", "pip", "install", "-q", "--compile-bytecode", "-p", str(venv / "bin" / "python"),
                            f"gradio=={GRADIO}", f"streamlit=={STREAMLIT}"], check=True)
            (venv / ".complete").touch()
    return venv


@pytest.fixture(scope="session")
def venv() -> Path:
    return _build_env()


@pytest.fixture(scope="session")
def local_root() -> Iterator[Path]:
    root = Path(f"/var/tmp/spaces-test-local-{secrets.token_hex(4)}")
    root.mkdir(mode=0o711)
    os.chmod(root, 0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(local_root: Path) -> LocalBackendSettings:
    return LocalBackendSettings(root=local_root / "backend", cgroup_root="spaces-test", uid_min=30000,
                                uid_max=30999, stop_grace_s=3, zygote_wait_s=120)


@pytest.fixture(scope="session")
def backend(settings: LocalBackendSettings, venv: Path) -> Iterator[LocalBackend]:
    b = LocalBackend(settings)
    b.prewarm(Artifact("venv", str(venv), "test", "0" * 40), "gradio")
    yield b
    for h in b.list({}):
        b.stop(h)
    b.close()


@pytest.fixture
def spaces(backend: LocalBackend, venv: Path, local_root: Path) -> Iterator[Spaces]:
    s = Spaces(backend, venv, local_root)
    yield s
    s.stop_all()


@pytest.fixture
def running(backend: LocalBackend) -> Callable[[Handle], Observed]:
    return lambda handle: wait_phase(backend, handle, Phase.RUNNING)

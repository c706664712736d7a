"""Fixtures for real local builds: one environments root per session, the gradio and streamlit templates built
once into it (uv's cache, ~/.cache/uv unless SPACES_TEST_UV_CACHE says otherwise, makes repeats fast), and helpers
to run a built app as a real process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spaces.builder.detect import plan_checkout
from spaces.builder.localenv import LocalEnvBuilder

from buildkit import TEMPLATES, Built, Recorder, free_port, settings, verify  # noqa: E402,F401


@pytest.fixture(scope="session")
def envs_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("envs")
    yield root
    shutil.rmtree(root, ignore_errors=True)  # ~400 MB per gradio env: do not leave them in /tmp


def _build_template(root: Path, name: str) -> Built:
    builder = LocalEnvBuilder(settings(root))
    plan = plan_checkout(TEMPLATES / name)
    log = Recorder()
    return Built(builder, plan, builder.build(plan, "0" * 40, log), log)


@pytest.fixture(scope="session")
def gradio_env(envs_root: Path) -> Built:
    return _build_template(envs_root, "gradio")


@pytest.fixture(scope="session")
def streamlit_env(envs_root: Path) -> Built:
    return _build_template(envs_root, "streamlit")


class App:
    """A real app process in its own process group, its output drained to a list (so pipes never fill)."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.output: list[str] = []
        self.proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line.rstrip())

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def run_app() -> Iterator:
    apps: list[App] = []

    def start(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> App:
        app = App(cmd, cwd, env or {})
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()

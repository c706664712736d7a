"""Helpers for the local backend tests: working copies, specs, waiting for a phase, requests to an app."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import httpx

from spaces.builder.plan import Artifact
from spaces.runtime.backends.local import LocalBackend
from spaces.runtime.contracts import Handle, InstanceSpec, Limits, Observed, Phase

HELLO_GRADIO = "import gradio as gr\n\ngr.Interface(lambda x: 'Hello ' + x, 'text', 'text').launch()\n"
HELLO_STREAMLIT = "import streamlit as st\n\nst.write('hello')\n"


class Spaces:
    """Makes working copies with given files and InstanceSpecs for them; stops what it started."""

    def __init__(self, backend: LocalBackend, venv: Path, root: Path) -> None:
        self.backend, self.venv, self.root = backend, venv, root
        self.started: list[Handle] = []

    def spec(self, files: dict[str, str], *, sdk: str = "gradio", env: dict[str, str] | None = None,
             memory_mb: int = 2048, cpu: float = 1.0, labels: dict[str, str] | None = None,
             space_id: str | None = None, app_file: str | None = None) -> InstanceSpec:
        space_id = space_id or f"test/{secrets.token_hex(4)}"
        workdir = self.root / "work" / secrets.token_hex(6)
        workdir.mkdir(parents=True)
        os.chmod(workdir.parent, 0o711)
        for name, text in files.items():
            (workdir / name).write_text(text)
        return InstanceSpec(
            space_id=space_id, repo_id=space_id, sha="c0ffee" + secrets.token_hex(17), sdk=sdk,
            artifact=Artifact("venv" if sdk != "static" else "static", str(self.venv) if sdk != "static" else "",
                              "test", "0" * 40),
            workdir=str(workdir), app_file=app_file or ("index.html" if sdk == "static" else "app.py"), port=7860,
            env={"SPACE_ID": space_id, **(env or {})}, limits=Limits(cpu=cpu, memory_mb=memory_mb),
            labels={"spaces.managed": "true", "spaces.space-id": space_id, **(labels or {})},
        )

    def start(self, spec: InstanceSpec, *, zygote: bool = True) -> Handle:
        self.backend.settings.zygote = zygote
        try:
            handle = self.backend.start(spec)
        finally:
            self.backend.settings.zygote = True
        self.started.append(handle)
        return handle

    def stop_all(self) -> None:
        for h in self.started:
            self.backend.stop(h)


def wait_phase(backend: LocalBackend, handle: Handle, *phases: Phase, timeout: float = 120.0) -> Observed:
    """Poll until the instance is in one of ``phases``; fail with the last observation and the log otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        obs = backend.poll(handle)
        if obs.phase in phases:
            return obs
        if time.monotonic() > deadline or (obs.phase == Phase.EXITED and Phase.EXITED not in phases):
            log = "\n".join(list(backend.logs(handle))[-40:])
            raise AssertionError(f"wanted {phases}, got {obs}\n--- log ---\n{log}")
        time.sleep(0.1)


def written(backend: LocalBackend, spec: InstanceSpec, name: str) -> Path:
    """A file the app wrote next to its code: on the Space's own disk (the working copy's overlay layer) while it
    is mounted, else in the working copy itself (no disk limit, or the old sandbox)."""
    disk = backend._disk(spec.space_id)
    upper = disk.upper(disk.layer(spec.workdir, spec.sha))
    return upper / name if upper.exists() else Path(spec.workdir) / name


def get(handle: Handle, path: str = "/", timeout: float = 30.0) -> httpx.Response:
    return httpx.get(f"http://{handle.data['host']}:{handle.data['port']}{path}", timeout=timeout)

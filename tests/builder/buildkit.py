"""Helpers of the local build tests: the templates, a log recorder, build settings, a built environment. A module of
its own, not the conftest: test modules import it by name, and ``conftest`` names whichever conftest pytest loaded
last when several test directories run together."""

from __future__ import annotations

import importlib.util
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from spaces.builder.localconfig import LocalBuildSettings
from spaces.builder.localenv import LocalEnvBuilder
from spaces.builder.plan import Artifact, BuildPlan

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"


def _load_verify():
    spec = importlib.util.spec_from_file_location("templates_verify", TEMPLATES / "verify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verify = _load_verify()


@dataclass
class Recorder:
    """A build log callback that keeps (phase, line) pairs; thread-safe enough (list.append is atomic)."""

    lines: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, phase: str, line: str) -> None:
        self.lines.append((phase, line))

    def phases(self) -> list[str]:
        return [p for p, _ in self.lines]

    def text(self) -> str:
        return "\n".join(f"{p}: {x}" for p, x in self.lines)


def settings(root: Path, **kw: object) -> LocalBuildSettings:
    cache = os.environ.get("SPACES_TEST_UV_CACHE")
    return LocalBuildSettings(envs_dir=root, uv_cache_dir=Path(cache) if cache else None, **kw)


@dataclass
class Built:
    builder: LocalEnvBuilder
    plan: BuildPlan
    artifact: Artifact
    log: Recorder

    @property
    def env(self) -> Path:
        return Path(self.artifact.ref)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

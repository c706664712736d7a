"""Helpers of the Docker tests: app sources, plans from a folder, specs, polling, HTTP."""

from __future__ import annotations

import importlib.util
import subprocess
import time
import uuid
from pathlib import Path

import httpx
from harness import HOST_CA  # noqa: F401 - the Docker tests take it from here

from spaces.builder.plan import Artifact, BuildPlan
from spaces.domain.cardconfig import parse_readme
from spaces.runtime.contracts import Handle, InstanceSpec, Limits, Observed, Phase

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
TEST_LABEL = "spaces.test-run"
RUN_ID = uuid.uuid4().hex[:8]
_PORTS = {"gradio": 7860, "streamlit": 8501, "static": 8000}


def app_source(sdk: str) -> Path:
    """The starter Space of an SDK (templates/<sdk>), which doubles as a build fixture."""
    return ROOT / "templates" / sdk


def verify_template(sdk: str, address: tuple[str, int]) -> None:
    """The template's own checks (templates/verify.py): AssertionError naming the first that fails."""
    spec = importlib.util.spec_from_file_location("templates_verify", ROOT / "templates" / "verify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    base = f"http://{address[0]}:{address[1]}"
    module.wait_ready(base + module.READY_PATH[sdk], deadline_s=30)
    module.verify(sdk, base)


def plan_from_dir(path: Path) -> BuildPlan:
    """A BuildPlan from a repo folder (a small stand-in for the build packs, enough for these apps)."""
    card = parse_readme((path / "README.md").read_text()).data
    sdk = card["sdk"]

    def read(name: str) -> str:
        f = path / name
        return f.read_text() if f.is_file() else ""

    port = int(card.get("app_port") or _PORTS.get(sdk, 7860))
    return BuildPlan(
        sdk=sdk, python_version=str(card.get("python_version") or "3.11"),
        sdk_version=str(card["sdk_version"]) if card.get("sdk_version") else None,
        app_file=None if sdk == "docker" else card.get("app_file") or ("index.html" if sdk == "static" else "app.py"),
        app_port=port, requirements=read("requirements.txt"), pre_requirements=read("pre-requirements.txt"),
        system_packages=tuple(read("packages.txt").split()), dockerfile=read("Dockerfile") or None)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


class BuildLog:
    """Collects ``log(phase, line)`` calls of one build."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, phase: str, line: str) -> None:
        self.lines.append((phase, line))

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def make_spec(artifact: Artifact, *, port: int, env: dict | None = None, space_id: str | None = None,
              limits: Limits = Limits(cpu=1.0, memory_mb=1024)) -> InstanceSpec:
    space_id = space_id or f"test/{uuid.uuid4().hex[:6]}"
    return InstanceSpec(space_id=space_id, repo_id=space_id, sha=artifact.sha, sdk="docker", artifact=artifact,
                        workdir="", app_file=None, port=port, env={"SPACE_ID": space_id, **(env or {})},
                        limits=limits, labels={TEST_LABEL: RUN_ID})


def wait_for(backend, handle: Handle, phases: set[Phase], timeout: float = 120) -> Observed:
    """Poll until the instance reaches one of ``phases`` (event-driven readiness, bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = backend.poll(handle)
        if seen.phase in phases or time.monotonic() > deadline:
            return seen
        time.sleep(0.25)


def get(address: tuple[str, int], path: str = "/", timeout: float = 10) -> httpx.Response:
    return httpx.get(f"http://{address[0]}:{address[1]}{path}", timeout=timeout)

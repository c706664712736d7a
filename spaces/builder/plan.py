"""BuildPlan: everything that determines how one revision of a Space is built, and nothing else.

A plan is pure data made by a build pack from the files of one commit. It has two materialisations: a uv
virtual environment for the local backend (``builder/localenv.py``) and a Docker image for the Docker and
Kubernetes backends (``builder/dockerfile.py``, ``builder/image.py``). ``env_digest`` covers only what decides the
*environment* (interpreter, SDK and version, dependency files, system packages), so a code-only push maps to the
same environment and installs nothing; ``digest`` adds the code for image tags.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

Sdk = Literal["gradio", "streamlit", "docker", "static"]


@dataclass(frozen=True)
class BuildPlan:
    sdk: Sdk
    python_version: str  # "3.10", "3.11.7"; "" for docker / static
    sdk_version: str | None  # gradio / streamlit pin; None for docker and static
    app_file: str | None  # path in the repo; None for docker
    app_port: int  # port the app listens on inside its sandbox / container
    requirements: str = ""  # requirements.txt text
    pre_requirements: str = ""  # pre-requirements.txt text, installed first
    system_packages: tuple[str, ...] = ()  # packages.txt lines (Debian)
    dockerfile: str | None = None  # the repo's own Dockerfile (docker sdk)
    preload: tuple[str, ...] = ()  # README ``preload_from_hub`` entries (``Preload.text``), fetched at build time
    reasons: tuple[str, ...] = field(default=(), compare=False)  # why the pack matched, for the build log

    def env_inputs(self) -> dict:
        return {"sdk": self.sdk, "python": self.python_version, "sdk_version": self.sdk_version,
                "requirements": self.requirements, "pre_requirements": self.pre_requirements,
                "system_packages": list(self.system_packages)}

    @property
    def env_digest(self) -> str:
        """Content address of the environment: equal digests mean an identical environment can be shared."""
        return hashlib.sha256(json.dumps(self.env_inputs(), sort_keys=True).encode()).hexdigest()[:32]

    def to_json(self) -> dict:
        data = asdict(self)
        data["system_packages"] = list(self.system_packages)
        data["preload"] = list(self.preload)
        data["reasons"] = list(self.reasons)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "BuildPlan":
        data = dict(data)
        data["system_packages"] = tuple(data.get("system_packages") or ())
        data["preload"] = tuple(data.get("preload") or ())
        data["reasons"] = tuple(data.get("reasons") or ())
        return cls(**data)


@dataclass(frozen=True)
class Artifact:
    """What a build produced, persisted as JSON on the Space: a venv path, an image tag, or a static tree."""

    kind: Literal["venv", "image", "static"]
    ref: str  # venv directory, image tag, or "" for static (files are served from the working copy)
    plan_digest: str
    sha: str  # the commit it was built from
    preload: str = ""  # the build's preload_from_hub files: a Hugging Face cache folder on this host, or ""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Artifact":
        return cls(**data)


BuildPhase = Literal["queued", "fetching", "resolving", "installing", "built", "failed"]

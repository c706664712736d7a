"""BuildPlan + a checkout of one commit -> a Docker image on the local engine, with live build logs.

Lifecycle of ``DockerImageBuilder.build``:

1. render the Dockerfile for the plan (``dockerfile.py``; a docker-SDK Space brings its own);
2. tag = ``spaces/{space}:{sha[:12]}-{digest[:12]}`` where the digest covers the plan and the Dockerfile text, so
   the same commit built the same way maps to the same tag; if that image exists the build is skipped
   (BinderHub's rule), unless ``factory`` (a factory rebuild: no cache, build again);
3. run BuildKit through the docker CLI with ``--progress=plain`` and stream every output line to ``log(phase,
   line)``, secret values masked;
4. return ``Artifact(kind="image", ref=tag)``, or raise :class:`ImageBuildFailed` with the failing Dockerfile
   step and its last error line.

Why the CLI and not the Python SDK: secret mounts need a BuildKit session, which only the CLI speaks. Debian's
``docker.io`` (20.10) has BuildKit built into ``docker build`` (``DOCKER_BUILDKIT=1``); newer CLIs need the buildx
plugin. :func:`find_buildkit_cli` picks whichever works. Without BuildKit, builds are refused with a clear
message: secrets are never downgraded to build args (they would land in ``docker history``).

Secrets: each is written to a private temporary file (0600) passed as ``--secret id=NAME,src=FILE`` and deleted
after the build; the extra CA bundle and the package index URL travel the same way (``spaces_ca``,
``spaces_index_url``). Variables are passed as ``--build-arg NAME=VALUE`` (a Dockerfile reads them with ``ARG``).
BuildKit keys a step's cache on its text, never on a secret's value: after changing a secret that a step reads,
a factory rebuild (``factory=True``: ``--no-cache``) makes the step run again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from spaces.builder.dockerfile import (CA_SECRET, DEFAULT_BASE_IMAGES, INDEX_SECRET, DockerfileError,
                                       DockerfileOptions, render, with_preload)
from spaces.builder.plan import Artifact, BuildPlan
from spaces.errors import SpacesError

Log = Callable[[str, str], None]
_STEP = re.compile(r"^#(\d+) (.*)$")
_TAG_CHARS = re.compile(r"[^a-z0-9._-]+")


class DockerBuildSettings(BaseModel):
    """Settings of the Docker image builder (nested as ``Settings.docker_build``, env ``SPACES_DOCKER_BUILD__*``)."""

    base_images: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_BASE_IMAGES),
        description="Python version -> base image of gradio/streamlit/static images (infra/images/build-base.sh)")
    default_python: str = Field("3.11", description="base image used when the asked python_version has none")
    pip_index_url: str | None = Field(None, description="package index for pip/uv inside builds (a build secret)")
    extra_ca_bundle: Path | None = Field(
        None, description="CA bundle (PEM) pip/uv trust inside builds, e.g. /etc/ssl/certs/ca-certificates.crt "
                          "behind a TLS-inspecting proxy; give a full bundle, it replaces the default roots")
    image_prefix: str = Field("spaces", description="repository prefix of built images: {prefix}/{space}:{tag}")
    docker_cli: str | None = Field(None, description="docker CLI with BuildKit; default: found on PATH or /usr/bin")
    timeout_s: float = Field(3600, description="a build running longer is stopped and fails")
    push: bool = Field(False, description="push each image to the registry its tag names (set image_prefix to e.g. "
                                          "127.0.0.1:5123/spaces): Kubernetes nodes pull from there, not from "
                                          "this engine")


class ImageBuildFailed(SpacesError):
    """A Docker build failed; the message names the failing step and its last error line."""

    status = 422
    code = "BuildError"


def image_tag(prefix: str, space_id: str, sha: str, digest: str) -> str:
    """A valid, deterministic image reference for one build of one Space."""
    name = "-".join(p for p in _TAG_CHARS.sub("-", space_id.lower()).split("-") if p) or "space"
    return f"{prefix}/{name.strip('._-')[:100]}:{sha[:12]}-{digest[:12]}"


def build_digest(plan: BuildPlan, dockerfile: str) -> str:
    data = plan.to_json()
    data.pop("reasons", None)
    data["__dockerfile"] = dockerfile
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def find_buildkit_cli(preferred: str | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv prefix, extra env) of a docker CLI that builds with BuildKit; raises ImageBuildFailed when none."""
    candidates = [preferred] if preferred else [shutil.which("docker"), "/usr/bin/docker"]
    for cli in dict.fromkeys(c for c in candidates if c and os.access(c, os.X_OK)):
        if subprocess.run([cli, "buildx", "version"], capture_output=True).returncode == 0:
            return [cli, "buildx", "build", "--load"], {}
        version = subprocess.run([cli, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True)
        major = re.match(r"(\d+)\.", version.stdout.strip())
        if major and int(major.group(1)) < 23:  # the classic CLI still carries BuildKit itself
            return [cli, "build"], {"DOCKER_BUILDKIT": "1"}
    raise ImageBuildFailed(
        "No docker CLI with BuildKit was found (needed for secret mounts): install the buildx plugin, or Debian's "
        "docker.io (its /usr/bin/docker builds with DOCKER_BUILDKIT=1), or set docker_cli.", code="BuildKitMissing")


class DockerImageBuilder:
    """Materialises a BuildPlan as a Docker image (see the module docstring for the lifecycle)."""

    def __init__(self, settings: DockerBuildSettings | None = None) -> None:
        self.settings = settings or DockerBuildSettings()
        self._cli: tuple[list[str], dict[str, str]] | None = None

    def options(self) -> DockerfileOptions:
        return DockerfileOptions(base_images=dict(self.settings.base_images),
                                 default_python=self.settings.default_python)

    def tag_for(self, plan: BuildPlan, space_id: str, sha: str) -> str:
        text = render(plan, self.options()).text
        return image_tag(self.settings.image_prefix, space_id, sha, build_digest(plan, text))

    def build(self, plan: BuildPlan, *, space_id: str, sha: str, context: Path, variables: dict[str, str],
              secrets: dict[str, str], log: Log, factory: bool = False, preload: str = "") -> Artifact:
        try:
            rendered = render(plan, self.options())
        except DockerfileError as exc:
            raise ImageBuildFailed(str(exc)) from None
        if preload:  # the preload folder as an image of its own, copied into the app's cache (keyed by its address)
            rendered = dataclasses.replace(rendered, text=with_preload(rendered.text, plan.sdk,
                                                                       self._preload_image(preload, log)))
        digest = build_digest(plan, rendered.text)
        tag = image_tag(self.settings.image_prefix, space_id, sha, digest)
        artifact = Artifact(kind="image", ref=tag, plan_digest=digest, sha=sha)
        for note in rendered.notes:
            log("resolving", note)
        if not factory and self._exists(tag):
            log("installing", f"Image {tag} already exists; nothing to build.")
            self._push(tag, log)  # the registry may have lost it (a fresh cluster); pushing a present image is cheap
            return artifact
        if self._cli is None:
            self._cli = find_buildkit_cli(self.settings.docker_cli)
        argv, env = self._cli
        with tempfile.TemporaryDirectory(prefix="spaces-secrets-") as private:
            cmd = [*argv, "--progress=plain", "-t", tag, "-f", "-", "--label", f"spaces.sha={sha}",
                   "--label", f"spaces.space-id={space_id}", "--label", f"spaces.plan-digest={digest}"]
            if factory:
                cmd.append("--no-cache")
            for name, value in sorted(variables.items()):
                cmd += ["--build-arg", f"{name}={value}"]
            for name, path in self._secret_files(Path(private), secrets).items():
                cmd += ["--secret", f"id={name},src={path}"]
            cmd.append(str(context))
            log("installing", f"Building image {tag} from {plan.sdk} Dockerfile")
            self._run(cmd, env, rendered.text, log, list(secrets.values()))
        self._push(tag, log)
        return artifact

    def _preload_image(self, folder: str, log: Log) -> str:
        """``{prefix}/preload:{address}``: a scratch image holding the preload folder, built once per address."""
        tag = f"{self.settings.image_prefix}/preload:{Path(folder).name[:64]}"
        if self._exists(tag):
            return tag
        if self._cli is None:
            self._cli = find_buildkit_cli(self.settings.docker_cli)
        argv, env = self._cli
        log("installing", f"preload_from_hub: packing the preloaded files as {tag}")
        self._run([*argv, "--progress=plain", "-t", tag, "-f", "-", folder], env, "FROM scratch\nCOPY . /\n", log, [])
        return tag

    def _push(self, tag: str, log: Log) -> None:
        if not self.settings.push:
            return
        cli = self.settings.docker_cli or shutil.which("docker") or "/usr/bin/docker"
        log("installing", f"Pushing {tag}")
        try:
            proc = subprocess.run([cli, "push", tag], capture_output=True, text=True, errors="replace",
                                  timeout=self.settings.timeout_s)
        except subprocess.TimeoutExpired:
            raise ImageBuildFailed(f"Pushing {tag} ran past {self.settings.timeout_s:.0f}s and was stopped.") from None
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        if proc.returncode != 0:
            raise ImageBuildFailed(f"Pushing {tag} to its registry failed: {lines[-1] if lines else proc.returncode}",
                                   code="ImagePushFailed")
        if lines:
            log("installing", lines[-1])

    def _secret_files(self, folder: Path, secrets: dict[str, str]) -> dict[str, Path]:
        """One 0600 file per secret, plus the CA bundle and index URL when configured."""
        files: dict[str, Path] = {}
        values = dict(secrets)
        if self.settings.pip_index_url:
            values[INDEX_SECRET] = self.settings.pip_index_url
        for name, value in values.items():
            path = folder / f"s{len(files)}"
            path.touch(mode=0o600)
            path.write_text(value)
            files[name] = path
        if self.settings.extra_ca_bundle:
            ca = Path(self.settings.extra_ca_bundle)
            if not ca.is_file():
                raise ImageBuildFailed(f"The extra CA bundle {ca} configured for builds does not exist.",
                                       code="BuildConfigError")
            files[CA_SECRET] = ca
        return files

    def _run(self, cmd: list[str], env: dict[str, str], dockerfile: str, log: Log, hidden: list[str]) -> None:
        mask = [v for v in hidden if len(v) >= 3]
        steps: dict[str, list[str]] = {}
        tail: list[str] = []
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, **env}, text=True, errors="replace", bufsize=1)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(dockerfile)
        proc.stdin.close()
        try:
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                for value in mask:
                    line = line.replace(value, "***")
                log("installing", line)
                tail = (tail + [line])[-40:]
                m = _STEP.match(line)
                if m:
                    steps.setdefault(m.group(1), []).append(m.group(2))
            code = proc.wait(timeout=self.settings.timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise ImageBuildFailed(
                f"The image build ran past {self.settings.timeout_s:.0f}s and was stopped.") from None
        if code != 0:
            raise ImageBuildFailed(failure_message(steps, tail))

    @staticmethod
    def _exists(tag: str) -> bool:
        cli = shutil.which("docker") or "/usr/bin/docker"
        return subprocess.run([cli, "image", "inspect", tag], capture_output=True).returncode == 0


def failure_message(steps: dict[str, list[str]], tail: list[str]) -> str:
    """'Build failed at `RUN ...`: <last error line>' from BuildKit's plain progress output."""
    for lines in steps.values():
        if not any(line.startswith("ERROR") for line in lines):
            continue
        title = next((line for line in lines if line.startswith("[")), "")
        step = re.sub(r"^\[[^\]]*\]\s*", "", title)
        output = [re.sub(r"^[\d.]+\s", "", line) for line in lines
                  if re.match(r"^[\d.]+\s", line) and line.strip()]
        hits = [i for i, line in enumerate(output) if re.search(r"error|not found|no such|failed|×", line, re.I)]
        if hits:  # the error line and the two after it: uv and pip explain the cause just below
            detail = " ".join(line.strip() for line in output[hits[-1]:hits[-1] + 3])
        else:
            detail = (output or [next(line for line in lines if line.startswith("ERROR"))])[-1].strip()
        return f"Docker build failed at `{step}`: {detail}"
    last = next((line for line in reversed(tail) if line.strip()), "no output")
    return f"Docker build failed: {last.strip()}"

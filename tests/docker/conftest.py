"""Fixtures for the Docker builder and backend tests, against a real Docker engine.

The ``engine`` session fixture runs ``infra/docker/setup-engine.sh`` and ``infra/images/build-base.sh`` (both
idempotent and fast when done). If the engine cannot be started the engine tests are skipped with the reason,
except where ``CI`` or ``SPACES_TEST_REQUIRE_DOCKER`` is set: there they fail, so CI never passes by skipping.

Apps are the starter Spaces in ``templates/<sdk>``, plus ``fixtures/docker``: a docker-SDK app made for these tests
(a build arg, a crash switch, request logs).
Images are expensive (gradio is large), so each app image is built once per session and shared.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from docker_helpers import FIXTURES, HOST_CA, RUN_ID, TEST_LABEL, BuildLog, app_source, docker, plan_from_dir
from harness import setup_docker_engine

from spaces.builder.image import DockerBuildSettings, DockerImageBuilder
from spaces.builder.plan import Artifact


@pytest.fixture(scope="session")
def engine() -> None:
    """A running Docker engine with the base images; skip (or fail in CI) when it cannot be had."""
    reason = setup_docker_engine()
    if reason:
        if os.environ.get("CI") or os.environ.get("SPACES_TEST_REQUIRE_DOCKER"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def builder(engine: None) -> DockerImageBuilder:
    # pip / uv inside the build reach PyPI only with this host's CA bundle (TLS-inspecting egress)
    ca = HOST_CA if HOST_CA.is_file() else None
    return DockerImageBuilder(DockerBuildSettings(extra_ca_bundle=ca,
                                                  pip_index_url=os.environ.get("SPACES_TEST_PIP_INDEX_URL")))


@pytest.fixture(scope="session")
def images() -> Iterator[list[str]]:
    """Tags built during the session, removed at the end (base images and build cache stay)."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        docker("rmi", "-f", tag, check=False)


@pytest.fixture(scope="session")
def build(builder: DockerImageBuilder, images: list[str], tmp_path_factory) -> Callable[..., tuple[Artifact, BuildLog, Path]]:
    """build(sdk_or_dir, sha=..., variables=..., secrets=..., edit=fn(dir)) -> (artifact, log, context)."""

    def run(source: str | Path, *, space_id: str = f"test/{RUN_ID}", sha: str | None = None,
            variables: dict | None = None, secrets: dict | None = None,
            edit: Callable[[Path], None] | None = None) -> tuple[Artifact, BuildLog, Path]:
        src = app_source(source) if isinstance(source, str) else source
        context = tmp_path_factory.mktemp("ctx") / "src"
        shutil.copytree(src, context)
        if edit:
            edit(context)
        log = BuildLog()
        artifact = builder.build(plan_from_dir(context), space_id=space_id, sha=sha or uuid.uuid4().hex * 2,
                                 context=context, variables=variables or {}, secrets=secrets or {}, log=log)
        images.append(artifact.ref)
        return artifact, log, context

    return run


@pytest.fixture(scope="session")
def gradio_image(build) -> tuple[Artifact, BuildLog, Path]:
    """The one gradio image of the session (pip-installs gradio inside the build)."""
    return build("gradio", space_id=f"test/gradio-{RUN_ID}")


@pytest.fixture(scope="session")
def docker_image(build) -> tuple[Artifact, BuildLog, Path]:
    return build(FIXTURES / "docker", space_id=f"test/docker-{RUN_ID}", variables={"GREETING": "howdy"})


@pytest.fixture(scope="session")
def backend(engine: None):
    from spaces.runtime.backends.docker import DockerBackend

    b = DockerBackend()
    yield b
    for handle in b.list({TEST_LABEL: RUN_ID}):
        b.stop(handle)

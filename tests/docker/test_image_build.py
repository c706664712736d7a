"""The Docker image builder against the real engine: real builds, cache reuse, failures, secrets."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
from docker_helpers import FIXTURES, RUN_ID, BuildLog, docker, get, make_spec, plan_from_dir, verify_template, wait_for

from spaces.builder.image import DockerImageBuilder, ImageBuildFailed
from spaces.builder.plan import BuildPlan
from spaces.runtime.contracts import Phase


def test_gradio_image_is_labelled_and_built_from_the_base(gradio_image) -> None:
    artifact, log, _ = gradio_image
    assert artifact.kind == "image" and artifact.ref.startswith("spaces/test-gradio-")
    assert artifact.ref.split(":")[1].startswith(artifact.sha[:12])
    labels = docker("image", "inspect", "--format", "{{json .Config.Labels}}", artifact.ref).stdout
    assert f'"spaces.sha":"{artifact.sha}"' in labels
    assert all(phase == "installing" for phase, _ in log.lines)
    assert "gradio==6.31.0" in log.text  # streamed live from the install step


def test_same_commit_again_skips_the_build(builder: DockerImageBuilder, gradio_image) -> None:
    artifact, _, context = gradio_image
    log = BuildLog()
    again = builder.build(plan_from_dir(context), space_id=f"test/gradio-{RUN_ID}", sha=artifact.sha,
                          context=context, variables={}, secrets={}, log=log)
    assert again == artifact
    assert "already exists; nothing to build" in log.text
    assert "#1 " not in log.text  # no BuildKit step ran


def test_code_only_change_reuses_the_dependency_layer(build, gradio_image) -> None:
    first, _, _ = gradio_image

    def edit(ctx: Path) -> None:
        app = ctx / "app.py"
        app.write_text(app.read_text() + "\n# a code-only change\n")

    second, log, _ = build("gradio", space_id=f"test/gradio-{RUN_ID}", edit=edit)
    assert second.ref != first.ref
    install = [line for line in log.text.splitlines() if "uv pip install" in line and line.startswith("#")]
    step = install[0].split()[0]  # "#9"
    assert f"{step} CACHED" in log.text, log.text[-2000:]
    assert "+ gradio==" not in log.text  # nothing was installed again
    # the two images share every layer below the app code
    layers = [docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", a.ref).stdout for a in (first, second)]
    a, b = (json.loads(x) for x in layers)
    assert len(a) == len(b) and a[:-1] == b[:-1] and a[-1] != b[-1]


def test_failing_dockerfile_names_the_failing_line(builder: DockerImageBuilder, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM spaces/base-python:3.11\nRUN echo fine\n"
                                         "RUN sh -c 'echo compiling the thing; exit 3'\nCMD [\"true\"]\n")
    (tmp_path / "README.md").write_text("---\nsdk: docker\n---\n")
    with pytest.raises(ImageBuildFailed) as info:
        builder.build(plan_from_dir(tmp_path), space_id="test/broken", sha="b" * 40, context=tmp_path,
                      variables={}, secrets={}, log=BuildLog())
    message = info.value.message
    assert "RUN sh -c 'echo compiling the thing; exit 3'" in message
    assert info.value.code == "BuildError"


def test_broken_requirements_fail_with_the_resolvers_line(builder: DockerImageBuilder, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("---\nsdk: gradio\nsdk_version: 6.31.0\n---\n")
    (tmp_path / "app.py").write_text("print('never runs')\n")
    (tmp_path / "requirements.txt").write_text("no-such-package-for-spaces-tests==9.9.9\n")
    log = BuildLog()
    with pytest.raises(ImageBuildFailed) as info:
        builder.build(plan_from_dir(tmp_path), space_id="test/broken-reqs", sha="c" * 40, context=tmp_path,
                      variables={}, secrets={}, log=log)
    assert "uv pip install" in info.value.message
    assert "no-such-package-for-spaces-tests" in info.value.message


def test_secrets_never_reach_a_layer_the_history_or_the_log(build, images, tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex
    value = "s3cr3t-" + uuid.uuid4().hex[:20]

    def edit(ctx: Path) -> None:
        dockerfile = (ctx / "Dockerfile").read_text().replace(
            'CMD ["python", "server.py"]',
            # as Hugging Face documents it; the second RUN even prints the secret (masked in our log)
            # (the nonce: BuildKit keys a step's cache on its text, never on a secret's value)
            f"RUN --mount=type=secret,id=HF_TOKEN,mode=0444,required=true echo {nonce} && "
            "sha256sum /run/secrets/HF_TOKEN | cut -d' ' -f1 > token.sha\n"
            f"RUN --mount=type=secret,id=HF_TOKEN,mode=0444,required=true echo {nonce} && cat /run/secrets/HF_TOKEN\n"
            'CMD ["python", "server.py"]')
        (ctx / "Dockerfile").write_text(dockerfile)

    artifact, log, _ = build(FIXTURES / "docker", space_id="test/secrets", secrets={"HF_TOKEN": value}, edit=edit)
    assert value not in log.text and "***" in log.text
    history = docker("history", "--no-trunc", artifact.ref).stdout + docker("image", "inspect", artifact.ref).stdout
    assert value not in history
    saved = tmp_path / "image.tar"
    subprocess.run(["docker", "save", "-o", str(saved), artifact.ref], check=True)
    with tarfile.open(saved) as outer:
        for member in outer.getmembers():
            data = outer.extractfile(member)
            if data is not None:
                assert value.encode() not in data.read(), member.name
    # and yet the build did see it
    digest = docker("run", "--rm", artifact.ref, "cat", "token.sha").stdout.strip()
    assert digest == hashlib.sha256(value.encode()).hexdigest()


def test_docker_app_gets_variables_as_build_args_and_answers(docker_image, backend) -> None:
    artifact, log, _ = docker_image
    handle = backend.start(make_spec(artifact, port=7860, space_id="test/docker-app"))
    seen = wait_for(backend, handle, {Phase.RUNNING, Phase.EXITED})
    assert seen.phase is Phase.RUNNING, seen.message
    response = get(seen.address)
    assert response.status_code == 200
    assert response.text == "howdy from docker, space=test/docker-app\n"
    backend.stop(handle)


@pytest.mark.parametrize("sdk", ["static", "docker"])
def test_template_image_answers(sdk: str, build, backend) -> None:
    artifact, _, context = build(sdk, space_id=f"test/{sdk}-template-{RUN_ID}")
    handle = backend.start(make_spec(artifact, port=plan_from_dir(context).app_port))
    try:
        seen = wait_for(backend, handle, {Phase.RUNNING, Phase.EXITED})
        assert seen.phase is Phase.RUNNING, seen.message
        verify_template(sdk, seen.address)
    finally:
        backend.stop(handle)


def test_preloaded_files_land_in_the_app_users_cache_of_the_image(builder: DockerImageBuilder, images: list[str],
                                                                    tmp_path: Path) -> None:
    """README preload_from_hub on the docker backend: the preload folder is packed as an image of its own and
    copied into /home/user/.cache/huggingface/hub of the Space's image (the app user's, uid 1000), links intact."""
    from spaces.builder.preload import PreloadFile, PreloadStore, ResolvedRepo

    commit = "c" * 40
    blobs = {"weights.txt": b"image weights\n"}

    class Source:
        def resolve(self, space_id, item):  # noqa: ANN001, ANN201
            return ResolvedRepo("model", item.repo_id, "main", commit,
                                tuple(PreloadFile(p, hashlib.sha1(c).hexdigest(), len(c)) for p, c in blobs.items()))

        def open(self, repo, path):  # noqa: ANN001, ANN201
            return iter([blobs[path]])

    folder = PreloadStore(tmp_path / "preloads", Source()).prepare("s", ("alice/tiny",), lambda *_: None)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM spaces/base-python:3.11\nUSER user\nCMD [\"sleep\", \"1\"]\n")
    plan = BuildPlan(sdk="docker", python_version="", sdk_version=None, app_file=None, app_port=7860,
                     dockerfile=(context / "Dockerfile").read_text(), preload=("alice/tiny",))
    log = BuildLog()
    artifact = builder.build(plan, space_id=f"test/preload-{RUN_ID}", sha=uuid.uuid4().hex + "0" * 8,
                             context=context, variables={}, secrets={}, log=log, preload=folder)
    images += [artifact.ref, f"spaces/preload:{Path(folder).name}"]
    snapshot = f"/home/user/.cache/huggingface/hub/models--alice--tiny/snapshots/{commit}"
    out = docker("run", "--rm", "--entrypoint", "sh", artifact.ref, "-c",
                 f"cat {snapshot}/weights.txt; cat {snapshot}/../../refs/main; echo; "
                 f"stat -c %u {snapshot}/../../blobs").stdout
    assert out.split("\n") == ["image weights", commit, "1000", ""], out

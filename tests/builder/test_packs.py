"""Build packs and make_plan: pure, table-driven (no processes except the GitTree adapter test's git)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces.builder.detect import detect, make_plan, plan_checkout
from spaces.builder.errors import BuildConfigError
from spaces.builder.packs import parse_packages
from spaces.builder.tree import GitTree, MemoryTree
from spaces.domain.stages import SpaceStage
from spaces.storage.gitrepo import Addition, GitRepo

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def readme(**keys: str) -> str:
    return "---\n" + "".join(f"{k}: {v}\n" for k, v in keys.items()) + "---\n# demo\n"


GRADIO_APP = "import gradio as gr\ngr.Interface(lambda x: x, 'text', 'text').launch()\n"
STREAMLIT_APP = "import streamlit as st\nst.write('hi')\n"


@pytest.mark.parametrize("files, sdk, why", [
    # README's sdk decides, whatever files sit beside it
    ({"README.md": readme(sdk="gradio"), "app.py": GRADIO_APP, "Dockerfile": "FROM x", "index.html": "<p>"},
     "gradio", "README.md sets `sdk: gradio`"),
    ({"README.md": readme(sdk="static"), "index.html": "<p>", "Dockerfile": "FROM x"}, "static", "sdk: static"),
    ({"README.md": readme(sdk="streamlit"), "app.py": GRADIO_APP}, "streamlit", "sdk: streamlit"),
    ({"README.md": readme(sdk="docker"), "Dockerfile": "FROM x", "app.py": STREAMLIT_APP}, "docker", "sdk: docker"),
    # no sdk: sniffed from the files, in pack order
    ({"README.md": "# no front matter\n", "Dockerfile": "FROM x", "app.py": GRADIO_APP}, "docker", "Dockerfile"),
    ({"README.md": readme(title="x"), "app.py": GRADIO_APP, "index.html": "<p>"}, "gradio", "app.py imports gradio"),
    ({"app.py": "from streamlit import write\nwrite(1)\n"}, "streamlit", "there is no README.md"),
    ({"index.html": "<p>hi</p>"}, "static", "index.html"),
])
def test_detection(files: dict, sdk: str, why: str) -> None:
    pack, detection = detect(MemoryTree(files))
    assert (pack.sdk, detection.sdk) == (sdk, sdk)
    assert any(why in r for r in detection.reasons), detection.reasons
    assert make_plan(MemoryTree(files)).sdk == sdk


@pytest.mark.parametrize("files, stage, words", [
    ({"README.md": readme(sdk="docker"), "app.py": "print(1)"}, SpaceStage.NO_APP_FILE, "Dockerfile"),
    ({"README.md": readme(sdk="docker"), "docker/Dockerfile": "FROM x"}, SpaceStage.NO_APP_FILE,
     "docker/Dockerfile"),
    ({"README.md": readme(sdk="gradio")}, SpaceStage.NO_APP_FILE, "app.py"),
    ({"README.md": readme(sdk="gradio", app_file="main.py"), "app.py": GRADIO_APP}, SpaceStage.NO_APP_FILE,
     "main.py"),
    ({"README.md": readme(sdk="static")}, SpaceStage.NO_APP_FILE, "index.html"),
    ({"README.md": readme(sdk="flask"), "app.py": GRADIO_APP}, SpaceStage.CONFIG_ERROR, "flask"),
    ({"README.md": "---\nsdk: [gradio\n---\n", "app.py": GRADIO_APP}, SpaceStage.CONFIG_ERROR, "line"),
    ({"README.md": readme(sdk="gradio", python_version="two"), "app.py": GRADIO_APP}, SpaceStage.CONFIG_ERROR,
     "python_version"),
    ({"README.md": "# nothing\n", "main.py": "print(1)"}, SpaceStage.CONFIG_ERROR, "sdk: gradio"),
    ({}, SpaceStage.CONFIG_ERROR, "no README.md"),
])
def test_unbuildable_trees_say_why(files: dict, stage: SpaceStage, words: str) -> None:
    with pytest.raises(BuildConfigError) as info:
        make_plan(MemoryTree(files))
    assert info.value.stage == stage
    assert words in info.value.message


def test_gradio_plan_reads_config_and_dependency_files() -> None:
    plan = make_plan(MemoryTree({
        "README.md": readme(sdk="gradio", sdk_version="6.31.0", python_version='"3.12"', app_file="src/main.py"),
        "src/main.py": GRADIO_APP, "requirements.txt": "numpy\n", "pre-requirements.txt": "pip>=24\n",
        "packages.txt": "ffmpeg\n",
    }))
    assert (plan.sdk, plan.sdk_version, plan.python_version, plan.app_file, plan.app_port) == (
        "gradio", "6.31.0", "3.12", "src/main.py", 7860)
    assert (plan.requirements, plan.pre_requirements, plan.system_packages) == ("numpy\n", "pip>=24\n", ("ffmpeg",))
    assert any("found requirements.txt" in r for r in plan.reasons)


def test_python_version_absent_means_host_default() -> None:
    plan = make_plan(MemoryTree({"README.md": readme(sdk="streamlit"), "app.py": STREAMLIT_APP}))
    assert (plan.python_version, plan.sdk_version, plan.app_port) == ("", None, 8501)


def test_docker_plan_uses_app_port_and_ignores_python_dependency_files() -> None:
    files = {"README.md": readme(sdk="docker", app_port="8080"), "Dockerfile": "FROM python:3.11\n",
             "requirements.txt": "flask\n", "packages.txt": "ffmpeg\n"}
    plan = make_plan(MemoryTree(files))
    assert (plan.app_port, plan.dockerfile, plan.requirements, plan.system_packages) == (
        8080, "FROM python:3.11\n", "", ())
    assert make_plan(MemoryTree({**files, "README.md": readme(sdk="docker")})).app_port == 7860


def test_static_plan_has_no_process() -> None:
    plan = make_plan(MemoryTree({"README.md": readme(sdk="static"), "index.html": "<p>"}))
    assert (plan.app_file, plan.app_port, plan.sdk_version) == ("index.html", 0, None)


def test_code_only_change_keeps_the_environment_digest() -> None:
    base = {"README.md": readme(sdk="gradio", sdk_version="6.31.0"), "app.py": GRADIO_APP,
            "requirements.txt": "numpy\n"}
    first = make_plan(MemoryTree(base))
    code = make_plan(MemoryTree({**base, "app.py": GRADIO_APP + "# v2\n", "README.md": base["README.md"] + "more"}))
    deps = make_plan(MemoryTree({**base, "requirements.txt": "numpy\npandas\n"}))
    pin = make_plan(MemoryTree({**base, "README.md": readme(sdk="gradio", sdk_version="6.30.0")}))
    system = make_plan(MemoryTree({**base, "packages.txt": "ffmpeg\n"}))
    assert code.env_digest == first.env_digest
    assert len({first.env_digest, deps.env_digest, pin.env_digest, system.env_digest}) == 4


def test_packages_txt_parsing() -> None:
    text = "# system packages\n\nffmpeg\n  libsm6   # for opencv\nlibxext6 cmake\nffmpeg\nlibc6:amd64\npkg=1.2-3\n"
    assert parse_packages(text) == ("ffmpeg", "libsm6", "libxext6", "cmake", "libc6:amd64", "pkg=1.2-3")
    assert parse_packages("") == ()
    with pytest.raises(BuildConfigError, match=r"line 2: '\$\(rm' is not a valid Debian package"):
        parse_packages("ffmpeg\n$(rm -rf /)\n")


@pytest.mark.parametrize("name, sdk", [("gradio", "gradio"), ("streamlit", "streamlit"), ("docker", "docker"),
                                       ("static", "static")])
def test_templates_plan(name: str, sdk: str) -> None:
    plan = plan_checkout(TEMPLATES / name)
    assert plan.sdk == sdk
    if sdk in ("gradio", "streamlit"):
        assert plan.sdk_version == {"gradio": "6.31.0", "streamlit": "1.67.0"}[sdk]


def test_git_tree_adapter(tmp_path: Path) -> None:
    repo = GitRepo.init_bare(tmp_path / "repo.git")
    sha = repo.commit(additions=[Addition("README.md", readme(sdk="gradio").encode()),
                                 Addition("app.py", GRADIO_APP.encode()),
                                 Addition("requirements.txt", b"numpy\n")],
                      message="init", author_name="a", author_email="a@example.com")
    tree = GitTree(repo, sha)
    assert tree.files() == {"README.md", "app.py", "requirements.txt"}
    plan = make_plan(tree)
    assert (plan.sdk, plan.requirements) == ("gradio", "numpy\n")
    with pytest.raises(KeyError):
        tree.read("missing.txt")

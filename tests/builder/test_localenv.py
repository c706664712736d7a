"""Real local builds with uv: reuse by content address, failures that say why, and nothing half-made left behind.

Every environment here is real (uv installs gradio 6.31.0 from the package index through uv's cache). Tests that
only need to reach a phase stop the build from the log callback, as a server shutdown would.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
from pathlib import Path

import pytest
from buildkit import TEMPLATES, Built, Recorder, settings

from spaces.builder.detect import make_plan, plan_checkout
from spaces.builder.errors import BuildConfigError, BuildFailed
from spaces.builder.localenv import MARKER, LocalEnvBuilder
from spaces.builder.tree import MemoryTree
from spaces.domain.stages import SpaceStage

SHA = "1" * 40


class Interrupted(Exception):
    """Stands for a server shutdown or a cancelled build, raised from the log callback."""


def stop_at(phase: str, startswith: str = "") -> Recorder:
    class Stopper(Recorder):
        def __call__(self, p: str, line: str) -> None:
            super().__call__(p, line)
            if p == phase and line.startswith(startswith):
                raise Interrupted(line)
    return Stopper()


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != ".locks")


def template_files(name: str, **changes: str) -> dict[str, bytes]:
    files = {p.relative_to(TEMPLATES / name).as_posix(): p.read_bytes()
             for p in (TEMPLATES / name).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    return {**files, **{k: v.encode() for k, v in changes.items()}}


def env_python(env: Path, code: str) -> str:
    return subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()


# -- the gradio template's environment ---------------------------------------------------------------------------

def test_gradio_env_has_the_pinned_sdk_compiled(gradio_env: Built) -> None:
    assert gradio_env.artifact.kind == "venv"
    assert gradio_env.artifact.plan_digest == gradio_env.plan.env_digest
    version, where = env_python(gradio_env.env, "import gradio, os; print(gradio.__version__); "
                                                "print(os.path.dirname(gradio.__file__))").splitlines()
    assert version == "6.31.0"
    # bytecode was compiled at build time, so no start ever compiles
    pkg = Path(where)
    assert list((pkg / "__pycache__").glob("blocks.cpython-*.pyc"))
    assert (gradio_env.env / MARKER).is_file()
    assert "installing" in gradio_env.log.phases() and gradio_env.log.phases()[-1] == "built"


def test_gradio_env_keeps_the_spaces_hot_reload_server_off(gradio_env: Built) -> None:
    """The start-up hook (venv_hook.py) is installed and compiled; it switches only gradio.http_server's choice of
    server (Gradio itself still knows it runs as a Space) and freezes the SDK import for the collector."""
    site = next(gradio_env.env.glob("lib/python*/site-packages"))
    assert list((site / "__pycache__").glob("_spaces_platform.cpython-*.pyc"))
    seen = env_python(gradio_env.env, "import gc, os; os.environ.update(SYSTEM='spaces', SPACE_ID='alice/demo'); "
                                      "before = gc.get_freeze_count(); "
                                      "import gradio.http_server as h, gradio.utils as u, sys; "
                                      "print(h.get_space(), u.get_space(), before, gc.get_freeze_count() > 10000, "
                                      "[f for f in sys.meta_path if type(f).__name__ == 'GradioHook'])")
    assert seen == "None alice/demo 0 True []"  # the SDK import is frozen, and the finder has left


def test_code_only_push_reuses_the_environment(gradio_env: Built) -> None:
    files = template_files("gradio", **{"app.py": "import gradio as gr\ngr.Markdown('v2')\n"})
    plan = make_plan(MemoryTree(files))
    assert plan.env_digest == gradio_env.plan.env_digest
    log = Recorder()
    # a new builder on the same root, as after a server restart
    artifact = LocalEnvBuilder(settings(gradio_env.builder.root)).build(plan, "2" * 40, log)
    assert artifact.ref == gradio_env.artifact.ref and artifact.sha == "2" * 40
    assert "installing" not in log.phases()
    assert log.lines[-1][0] == "built" and "reusing" in log.lines[-1][1]


def test_second_space_with_the_same_inputs_shares_it(gradio_env: Built) -> None:
    files = template_files("gradio")
    files["README.md"] = files["README.md"].replace(b"title: Gradio starter", b"title: Someone else's app")
    files["app.py"] = b"import gradio as gr\ngr.Interface(lambda x: x[::-1], 'text', 'text').launch()\n"
    log = Recorder()
    artifact = gradio_env.builder.build(make_plan(MemoryTree(files)), "3" * 40, log)
    assert artifact.ref == gradio_env.artifact.ref
    assert "reusing" in log.text() and "installing" not in log.phases()


# -- failures ----------------------------------------------------------------------------------------------------

def test_broken_requirements_fail_with_the_resolver_line_then_a_good_build_works(tmp_path: Path) -> None:
    builder = LocalEnvBuilder(settings(tmp_path))
    files = template_files("gradio", **{"requirements.txt": "numpy\nspaces-no-such-package-xyz==1.0\n"})
    log = Recorder()
    with pytest.raises(BuildFailed) as info:
        builder.build(make_plan(MemoryTree(files)), SHA, log)
    assert "spaces-no-such-package-xyz" in info.value.message
    assert "No solution found" in info.value.message and "Because" in info.value.message
    assert info.value.stage == SpaceStage.BUILD_ERROR
    assert info.value.log_line.split(": ", 1)[1] in log.text()  # the author saw the same sentence live
    assert "failed" in log.phases()
    assert leftovers(tmp_path) == []  # no env, no temp folder

    # the fix is pushed: two Spaces build it at once through two builders (two processes' worth of locks)
    good = make_plan(MemoryTree(template_files("gradio", **{"requirements.txt": "numpy\n"})))
    logs, results, errors = [Recorder(), Recorder()], [], []

    def build(i: int) -> None:
        try:
            results.append(LocalEnvBuilder(settings(tmp_path)).build(good, SHA, logs[i]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=280)
    assert not errors, errors
    assert len({a.ref for a in results}) == 1 and len(results) == 2
    texts = [log.text() for log in logs]
    assert sum("environment ready" in t for t in texts) == 1  # exactly one of them installed
    assert sum("reusing" in t for t in texts) == 1
    env = Path(results[0].ref)
    assert env_python(env, "import gradio, numpy; print(gradio.__version__)") == "6.31.0"
    assert leftovers(tmp_path) == [env.name]


def test_interrupted_build_leaves_nothing_trusted(tmp_path: Path) -> None:
    plan = make_plan(MemoryTree(template_files("gradio", **{"requirements.txt": "six\n"})))
    builder = LocalEnvBuilder(settings(tmp_path))
    with pytest.raises(Interrupted):
        builder.build(plan, SHA, stop_at("installing", "Resolved"))  # uv is mid-install when this raises
    assert leftovers(tmp_path) == []

    # what a SIGKILLed build leaves: a temp folder, and (say, from a bad disk) a final folder with no marker
    final = builder.locate(plan)
    (tmp_path / f".tmp-{final.name}-99999-dead").mkdir()
    (final / "bin").mkdir(parents=True)
    (final / "bin" / "python").write_text("not a python")
    builder = LocalEnvBuilder(settings(tmp_path))  # a restart cleans the temp folder
    assert leftovers(tmp_path) == [final.name]
    log = Recorder()
    artifact = builder.build(plan, SHA, log)
    assert "reusing" not in log.text() and "environment ready" in log.text()
    assert artifact.ref == str(final)
    assert env_python(final, "import six, gradio; print('ok')") == "ok"


def test_missing_debian_package_fails_with_what_to_install(gradio_env: Built, tmp_path: Path) -> None:
    plan = dataclasses.replace(gradio_env.plan, system_packages=("coreutils", "spaces-no-such-deb-xyz"))
    builder = LocalEnvBuilder(settings(tmp_path))
    with pytest.raises(BuildFailed) as info:
        builder.build(plan, SHA, Recorder())
    message = info.value.message
    assert "not installed on this host: spaces-no-such-deb-xyz." in message
    assert "apt-get install -y spaces-no-such-deb-xyz`" in message and "coreutils" not in message
    assert leftovers(tmp_path) == []

    # with the operator's "warn" the build goes on, and says so
    log = stop_at("installing")
    with pytest.raises(Interrupted):
        LocalEnvBuilder(settings(tmp_path, missing_system_packages="warn")).build(plan, SHA, log)
    assert "WARNING: packages.txt lists Debian packages that are not installed" in log.text()


def test_installed_debian_packages_pass(gradio_env: Built, tmp_path: Path) -> None:
    plan = dataclasses.replace(gradio_env.plan, system_packages=("coreutils",))
    log = stop_at("installing")
    with pytest.raises(Interrupted):
        LocalEnvBuilder(settings(tmp_path)).build(plan, SHA, log)
    assert "all 1 Debian packages are installed" in log.text()


def test_unavailable_python_version_falls_back_with_a_warning(gradio_env: Built, tmp_path: Path) -> None:
    plan = dataclasses.replace(gradio_env.plan, python_version="3.4")
    log = stop_at("installing")
    with pytest.raises(Interrupted):
        LocalEnvBuilder(settings(tmp_path)).build(plan, SHA, log)
    warning = next(line for phase, line in log.lines if "WARNING" in line)
    assert "python_version 3.4 is not available on this host" in warning and "using the closest" in warning


def test_static_needs_no_environment(tmp_path: Path) -> None:
    plan = plan_checkout(TEMPLATES / "static")
    artifact = LocalEnvBuilder(settings(tmp_path)).build(plan, SHA, Recorder())
    assert (artifact.kind, artifact.ref, artifact.sha) == ("static", "", SHA)
    assert leftovers(tmp_path) == []


def test_docker_space_is_not_a_local_environment(tmp_path: Path) -> None:
    with pytest.raises(BuildConfigError, match="docker backend"):
        LocalEnvBuilder(settings(tmp_path)).build(plan_checkout(TEMPLATES / "docker"), SHA, Recorder())

"""Each starter Space, built, really answers: the app runs as a process and templates/verify.py checks it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from buildkit import TEMPLATES, Built, free_port, verify


def checkout(name: str, tmp_path: Path) -> Path:
    # a copy, as the runtime runs from a checkout: apps may write caches into their working directory
    return Path(shutil.copytree(TEMPLATES / name, tmp_path / name))


def check(name: str, app, port: int, deadline_s: float = 90) -> None:
    base = f"http://127.0.0.1:{port}"
    try:
        verify.wait_ready(base + verify.READY_PATH[name], deadline_s=deadline_s, proc=app.proc)
        verify.verify(name, base)
    except (verify.NotReady, AssertionError) as exc:
        raise AssertionError(f"{exc}\n--- app output ---\n" + "\n".join(app.output[-40:])) from None


def test_gradio_template_answers(gradio_env: Built, run_app, tmp_path: Path) -> None:
    port = free_port()
    app = run_app([str(gradio_env.env / "bin" / "python"), "app.py"], checkout("gradio", tmp_path),
                  {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
                   "GRADIO_ANALYTICS_ENABLED": "False"})
    check("gradio", app, port)


def test_streamlit_template_answers(streamlit_env: Built, run_app, tmp_path: Path) -> None:
    port = free_port()
    # the env's own entry point: proves the relocated environment's scripts still work
    app = run_app([str(streamlit_env.env / "bin" / "streamlit"), "run", "app.py", "--server.port", str(port),
                   "--server.address", "127.0.0.1", "--server.headless", "true",
                   "--browser.gatherUsageStats", "false"], checkout("streamlit", tmp_path))
    check("streamlit", app, port)


def test_docker_template_app_answers(run_app, tmp_path: Path) -> None:
    # the image build itself is tested against the Docker engine (tests/docker); its app is stdlib-only
    port = free_port()
    app = run_app([sys.executable, "app.py"], checkout("docker", tmp_path), {"PORT": str(port)})
    check("docker", app, port, deadline_s=30)


def test_static_template_answers(run_app, tmp_path: Path) -> None:
    port = free_port()
    app = run_app([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                  checkout("static", tmp_path))
    check("static", app, port, deadline_s=30)

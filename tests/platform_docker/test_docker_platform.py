"""The whole platform on the Docker backend: ``spaces serve`` with SPACES_RUNTIME__BACKEND=docker builds an
image for each pushed revision and runs it as a labelled container behind the proxy; sleep pauses it, the next
request unpauses it; deleting the Space removes its container. Real engine, real Gradio app, real clients."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from harness import docker_backend_env, setup_docker_engine, start_server, wait_until

REPO = Path(__file__).resolve().parents[2]


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def server():
    reason = setup_docker_engine()
    if reason:
        if os.environ.get("CI") or os.environ.get("SPACES_TEST_REQUIRE_DOCKER"):
            pytest.fail(reason)
        pytest.skip(reason)
    srv = start_server("sqlite", extra_env=docker_backend_env())
    try:
        yield srv
    finally:
        srv.stop()
        for cid in docker("ps", "-aq", "--filter", "label=spaces.managed=true").split():
            if cid in srv.__dict__.get("containers", ()):
                subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def wait_stage(api: HfApi, repo_id: str, wanted: set[str], timeout: float = 600) -> str:
    def stage() -> str | None:
        s = api.get_space_runtime(repo_id).stage
        return s if s in wanted | {"BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE"} else None
    return wait_until(stage, timeout=timeout, interval=0.3, what=f"{repo_id} in {wanted}")


def test_gradio_space_runs_as_a_container_sleeps_wakes_and_goes(server):
    token = server.token("dora")
    api = HfApi(endpoint=server.url, token=token)
    repo_id = "dora/boxed"
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    api.upload_folder(folder_path=str(REPO / "templates" / "gradio"), repo_id=repo_id, repo_type="space")
    assert wait_stage(api, repo_id, {"RUNNING"}) == "RUNNING", server.log()[-3000:]

    info = api.space_info(repo_id)
    host = {"host": f"{info.subdomain}.localhost:{server.port}"}
    r = httpx.get(f"{server.url}/", headers=host, timeout=30)
    assert r.status_code == 200 and "gradio" in r.text.lower()

    labelled = [c for c in docker("ps", "-q", "--filter", "label=spaces.managed=true").split()
                if info.sha[:12] in docker("inspect", "--format", "{{.Config.Image}}", c)]
    assert len(labelled) == 1, docker("ps")
    server.containers = labelled  # removed at teardown even if the test fails before deleting the Space
    # the image's start-up hook keeps Gradio's Spaces hot-reload server (port 7887) off; gradio runs as a Space
    table = docker("exec", labelled[0], "cat", "/proc/net/tcp", "/proc/net/tcp6").splitlines()
    rows = [line.split() for line in table]
    listening = {int(f[1].rsplit(":", 1)[1], 16) for f in rows if len(f) > 3 and f[3] == "0A"}  # 0A: LISTEN
    assert 7860 in listening and 7887 not in listening, listening
    seen = docker("exec", labelled[0], "python", "-c", "import gradio.http_server as h, gradio.utils as u; "
                  "print(h.get_space(), u.get_space())").strip()
    assert seen == "None dora/boxed", seen

    # sleep pauses the container; the next request through the proxy unpauses it
    httpx.post(f"{server.url}/api/spaces/{repo_id}/sleep", headers={"authorization": f"Bearer {token}"})
    wait_stage(api, repo_id, {"SLEEPING"}, timeout=60)
    assert docker("inspect", "--format", "{{.State.Status}}", labelled[0]).strip() == "paused"
    r = httpx.get(f"{server.url}/", headers=host, timeout=60)
    assert r.status_code == 200
    assert docker("inspect", "--format", "{{.State.Status}}", labelled[0]).strip() == "running"

    # run logs come from the container
    logs = "".join(api.fetch_space_logs(repo_id))
    assert "Running on" in logs or "7860" in logs, logs[-2000:]

    api.delete_repo(repo_id, repo_type="space")
    wait_until(lambda: subprocess.run(["docker", "inspect", labelled[0]], capture_output=True).returncode != 0,
               timeout=60, what="the container to be removed")

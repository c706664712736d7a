"""Docker Spaces on the default set-up (issue 24, item 5): ONE ``spaces serve`` on the local backend (no
SPACES_RUNTIME__BACKEND) runs a Docker Space as a labelled container beside a Gradio Space in its sandbox; both
answer through the proxy; the Docker Space sleeps (``docker pause``) and a visit wakes it; the New Space form
offers Docker. A server whose Docker engine cannot be reached greys Docker in the form saying why (a real
Chromium), and its API refuses to create a Docker Space saying why, creating nothing.

Real engine (the locally built base image: no image pull), real sandbox, real huggingface_hub. Needs root.
Run with ``flock -o /tmp/spaces-live.lock`` (it starts live Spaces on the local backend).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import SHARED_ENVS_DIR, make_actor, setup_docker_engine, unique, wait_until
from huggingface_hub.utils import HfHubHTTPError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pages"))
import platform_kit as kit  # noqa: E402
from pagekit import sign_up  # noqa: E402

CHROMIUM = os.environ.get("SPACES_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
NO_ENGINE = '{"local": {"url": "unix:///nonexistent/docker.sock"}}'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local backend needs root (uids, cgroups)")


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    path = kit.new_base("spaces-docker-default-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def platform(base: Path) -> Iterator[kit.Platform]:
    reason = setup_docker_engine()
    if reason:  # the tests without an engine still run
        if os.environ.get("CI") or os.environ.get("SPACES_TEST_REQUIRE_DOCKER"):
            pytest.fail(reason)
        pytest.skip(reason)
    # the default set-up: nothing about Docker in its settings
    with kit.running_platform(base, "main", envs_dir=SHARED_ENVS_DIR) as p:
        yield p
        for cid in docker("ps", "-aq", "--filter", f"label=spaces.platform={instance_id(p)}").split():
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


@pytest.fixture(scope="module")
def no_engine(base: Path) -> Iterator[kit.Platform]:
    with kit.running_platform(base, "bare", envs_dir=SHARED_ENVS_DIR,
                              extra_env={"SPACES_DOCKER__ENGINES": NO_ENGINE}) as p:
        yield p


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (never `playwright install`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    path = kit.REPO_ROOT / "test-artifacts" / "platform"
    path.mkdir(parents=True, exist_ok=True)
    return path


def instance_id(p: kit.Platform) -> str:
    from spaces.runtime import tenancy

    return tenancy.instance_id(p.data_dir)


def containers_of(p: kit.Platform, space_id: str) -> list[str]:
    return docker("ps", "-aq", "--no-trunc", "--filter", f"label=spaces.platform={instance_id(p)}",
                  "--filter", f"label=spaces.space-id={space_id}").split()


def memory_cgroup(pid: int) -> str:
    """The memory cgroup of a process (v1's memory hierarchy, or v2's one), as a path from the hierarchy's root."""
    lines = [line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    return next(path for _, ctrl, path in lines if "memory" in ctrl.split(",") or ctrl == "")


def root_memory_limit(group: str) -> int:
    v1 = Path("/sys/fs/cgroup/memory") / group.lstrip("/") / "memory.limit_in_bytes"
    v2 = Path("/sys/fs/cgroup") / group.lstrip("/") / "memory.max"
    text = (v1 if v1.exists() else v2).read_text().strip()
    return 2**63 if text == "max" else int(text)


def test_one_default_server_runs_a_docker_space_beside_a_gradio_space(platform: kit.Platform) -> None:
    dora = make_actor(platform.server, unique("dora"))
    box, app = f"{dora.name}/box", f"{dora.name}/greeter"
    kit.create_space(dora.api, box, kit.space_files("docker"), sdk="docker")
    kit.create_space(dora.api, app, kit.space_files("gradio"), sdk="gradio")
    kit.wait_stage(dora.api, box, kit.RUNNING, timeout=300)
    kit.wait_stage(dora.api, app, kit.RUNNING, timeout=300)

    box_id, app_id = kit.space_id(dora, box), kit.space_id(dora, app)
    # the Docker Space is a container of this platform; the Gradio Space a sandboxed process, no container
    [cid] = containers_of(platform, box_id)
    cid = docker("inspect", "--format", "{{.Id}}", cid).strip()
    assert containers_of(platform, app_id) == []
    assert [s["space_id"] for s in kit.instance_states(platform)] == [app_id]
    # both answer through the one proxy
    r = kit.app_get(platform.server, box)
    assert r.status_code == 200 and "Hello from a Docker Space" in r.text, r.text[:300]
    assert kit.app_get(platform.server, box, "/api/info").json() == {"space_id": box}
    assert kit.gradio_call(platform.server, app, "greet", "docker")[0].startswith("Hello")
    # the scheduler counts the container and the process against the one machine
    root = unique("root")
    platform.server.user(root, admin=True)
    admin = make_actor(platform.server, root)

    def used() -> dict:
        r = httpx.get(f"{platform.url}/api/admin/nodes", headers=admin.headers, timeout=30)
        r.raise_for_status()
        [node] = r.json()["nodes"]
        return node["used"]
    assert used()["spaces"] == 2
    # ... and the kernel holds both to the one cap of all Spaces' memory: the container's memory cgroup is under
    # the local backend's root, whose limit is that cap
    local_group = memory_cgroup(kit.instance_states(platform)[0]["pid"])
    root = "/" + local_group.strip("/").split("/")[0]
    box_group = memory_cgroup(int(docker("inspect", "--format", "{{.State.Pid}}", cid)))
    assert box_group.startswith(root + "/"), (box_group, root)
    assert root_memory_limit(root) < 2**50  # a cap, not "unlimited"

    # a control plane killed with SIGKILL adopts both again, each from its own backend: nothing restarted
    pids = {s["pid"] for s in kit.instance_states(platform)}
    platform.kill9()
    platform.restart()
    assert containers_of(platform, box_id) == [cid]
    assert docker("inspect", "--format", "{{.State.Status}}", cid).strip() == "running"
    assert {s["pid"] for s in kit.instance_states(platform)} == pids
    assert "Hello from a Docker Space" in kit.app_get(platform.server, box).text
    assert kit.runtime(dora.api, box).stage == kit.RUNNING and kit.runtime(dora.api, app).stage == kit.RUNNING

    # the Docker Space sleeps: the container is paused, the Gradio one keeps running
    token = dora.headers
    r = httpx.post(f"{platform.url}/api/spaces/{box}/sleep", headers=token, timeout=30)
    assert r.status_code < 300, r.text
    kit.wait_stage(dora.api, box, "SLEEPING", timeout=60)
    wait_until(lambda: docker("inspect", "--format", "{{.State.Status}}", cid).strip() == "paused", timeout=30,
               what="the container paused")
    assert kit.runtime(dora.api, app).stage == kit.RUNNING
    assert (used()["spaces"], used()["asleep"]) == (1, 1)  # asleep, it holds no capacity
    # a visit wakes it: the same container, unpaused
    r = kit.app_get(platform.server, box)
    assert r.status_code == 200 and "Hello from a Docker Space" in r.text
    assert docker("inspect", "--format", "{{.State.Status}}", cid).strip() == "running"
    kit.wait_stage(dora.api, box, kit.RUNNING, timeout=30)
    assert used()["spaces"] == 2  # it claimed its capacity back on the wake

    # deleting it removes the container
    dora.api.delete_repo(box, repo_type="space")
    wait_until(lambda: containers_of(platform, box_id) == [], timeout=60, what="the container removed")
    dora.api.delete_repo(app, repo_type="space")


FETCHER = """import os, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = os.environ["HF_ENDPOINT"] + "/" + os.environ["MODEL"] + "/resolve/main/weights.txt"
        try:
            body, code = urllib.request.urlopen(url, timeout=10).read(), 200
        except Exception as exc:
            body, code = f"{url}: {exc}".encode(), 502
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("0.0.0.0", 7860), Handler).serve_forever()
"""


def test_a_docker_space_loads_a_model_file_from_this_hub_with_no_setting(platform: kit.Platform) -> None:
    """Issue 23: HF_ENDPOINT in a container names the hub as the container reaches it (not its own localhost)."""
    gus = make_actor(platform.server, unique("gus"))
    model, box = f"{gus.name}/tiny-model", f"{gus.name}/fetcher"
    gus.api.create_repo(model)
    weights = f"weights of {unique('w')}".encode()
    gus.api.upload_file(path_or_fileobj=weights, path_in_repo="weights.txt", repo_id=model)
    gus.api.create_repo(box, repo_type="space", space_sdk="docker")
    gus.api.add_space_variable(box, "MODEL", model)
    kit.upload(gus.api, box, kit.space_files("docker", **{"app.py": FETCHER}))
    kit.wait_stage(gus.api, box, kit.RUNNING, timeout=300)
    r = kit.app_get(platform.server, box)
    assert (r.status_code, r.content) == (200, weights), r.text[:300]
    [cid] = containers_of(platform, kit.space_id(gus, box))
    env = docker("inspect", "--format", "{{json .Config.Env}}", cid)
    assert f"HF_ENDPOINT=http://host.docker.internal:{platform.server.port}" in env, env
    gus.api.delete_repo(box, repo_type="space")


def test_the_form_offers_docker_where_an_engine_answers(platform: kit.Platform, browser,  # noqa: ANN001
                                                        artifacts: Path) -> None:
    page = browser.new_page()
    try:
        sign_up(page, platform.server)
        radio = page.locator("input[name=sdk][value=docker]")
        assert radio.is_enabled() and page.locator("#sdk-off-docker").count() == 0
        assert page.locator("#template option[data-sdk=docker]").first.is_enabled()
        page.screenshot(path=str(artifacts / "docker-form-engine.png"), full_page=True)
    finally:
        page.close()


def test_without_an_engine_the_form_greys_docker_and_the_api_refuses_saying_why(
        no_engine: kit.Platform, browser, artifacts) -> None:  # noqa: ANN001
    page = browser.new_page()
    try:
        sign_up(page, no_engine.server)
        radio = page.locator("input[name=sdk][value=docker]")
        assert radio.is_disabled()
        why = page.locator("#sdk-off-docker").inner_text()
        assert "Docker engine" in why and "/nonexistent/docker.sock" in why, why
        assert page.locator("input[name=sdk][value=gradio]").is_enabled()
        assert page.locator("#template option[data-sdk=docker]").first.is_disabled()
        page.screenshot(path=str(artifacts / "docker-form-no-engine.png"), full_page=True)
    finally:
        page.close()

    eve = make_actor(no_engine.server, unique("eve"))
    with pytest.raises(HfHubHTTPError) as refused:
        eve.api.create_repo(f"{eve.name}/box", repo_type="space", space_sdk="docker")
    assert refused.value.response.status_code == 400
    assert re.search(r"Docker Spaces need a Docker engine .*reaches none", refused.value.response.text)
    assert [s.id for s in eve.api.list_spaces(author=eve.name)] == []
    eve.api.create_repo(f"{eve.name}/plain", repo_type="space", space_sdk="gradio")  # the others are made


def test_docker_spaces_turned_off_stop_their_containers_and_say_why(platform: kit.Platform) -> None:
    """SPACES_RUNTIME__DOCKER_SPACES turned off after a Docker Space ran: its container is stopped, not left
    running unmanaged, and the Space is not tried on the local backend: it stops saying why."""
    ivy = make_actor(platform.server, unique("ivy"))
    box = f"{ivy.name}/box"
    kit.create_space(ivy.api, box, kit.space_files("docker"), sdk="docker")
    kit.wait_stage(ivy.api, box, kit.RUNNING, timeout=300)
    box_id = kit.space_id(ivy, box)
    assert len(containers_of(platform, box_id)) == 1
    platform.extra_env["SPACES_RUNTIME__DOCKER_SPACES"] = "false"
    try:
        platform.restart()
        wait_until(lambda: containers_of(platform, box_id) == [], timeout=60, what="the container stopped")
        stopped = kit.wait_stage(ivy.api, box, "RUNTIME_ERROR", timeout=120)
        assert "Docker Spaces are turned off" in str(stopped.raw), stopped.raw
        assert box_id not in [s["space_id"] for s in kit.instance_states(platform)]
    finally:
        del platform.extra_env["SPACES_RUNTIME__DOCKER_SPACES"]
        platform.restart()
    ivy.api.delete_repo(box, repo_type="space")
    wait_until(lambda: containers_of(platform, box_id) == [] and box_id not in [
        s["space_id"] for s in kit.instance_states(platform)], timeout=60, what="nothing of the Space left")


def test_spaces_down_stops_the_docker_spaces_containers_too(platform: kit.Platform) -> None:
    """Last in this module: it takes the default platform down."""
    ida = make_actor(platform.server, unique("ida"))
    box = f"{ida.name}/box"
    kit.create_space(ida.api, box, kit.space_files("docker"), sdk="docker")
    kit.wait_stage(ida.api, box, kit.RUNNING, timeout=300)
    box_id = kit.space_id(ida, box)
    assert len(containers_of(platform, box_id)) == 1
    os.kill(platform.server.proc.pid, signal.SIGTERM)  # the server stops; its Spaces run on (as always)
    assert platform.server.proc.wait(30) == 0
    assert len(containers_of(platform, box_id)) == 1
    left = [s["space_id"] for s in kit.instance_states(platform)]
    done = platform.server.cli("down", timeout=300)
    assert "stopped 1 instance(s)" in done.stderr, (done.stderr, left)
    assert containers_of(platform, box_id) == []

"""The runtime end to end: what an app sees of the world, crashes, quotas. Real apps in the local backend's sandbox.

The probe app (``apps/probe.py``) answers Gradio API calls that read its environment, read files, scan
``/proc`` and open raw HTTP connections, so these tests look at the sandbox from the inside.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time

import httpx

import pytest
from huggingface_hub.errors import HfHubHTTPError

import platform_kit as kit

SPACE_ENV = ("SPACE_ID", "SPACE_HOST", "SPACE_AUTHOR_NAME", "SPACE_REPO_NAME", "SPACE_TITLE", "CPU_CORES",
             "MEMORY", "ACCELERATOR", "SYSTEM")


@pytest.fixture(scope="module")
def probe(platform, alice) -> str:  # noqa: ANN001
    """``alice/probe``: the probe app with one variable and one secret, RUNNING."""
    repo_id = "alice/probe"
    alice.api.create_repo(repo_id, repo_type="space", space_sdk="gradio",
                          space_variables=[{"key": "GREETING_STYLE", "value": "loud"}],
                          space_secrets=[{"key": "PROBE_SECRET", "value": "probe-secret-value"}])
    files = kit.space_files(**{"README.md": kit.readme("gradio", title="Probe title"),
                               "app.py": kit.app_source("probe.py")})
    kit.upload(alice.api, repo_id, files)
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    return repo_id


def call(platform, repo_id: str, fn: str, arg: str) -> str:  # noqa: ANN001
    return kit.gradio_call(platform.server, repo_id, fn, arg)[0]


def test_run_log_has_the_apps_output(alice, probe) -> None:  # noqa: ANN001
    def log() -> str:
        text = kit.logs(alice.api, probe, build=False)
        return text if "Running on local URL" in text else ""  # gradio's own line, printed once it listens

    text = kit.wait_for(log, timeout=60, what="gradio's start-up line in the run log")
    assert "PROBE-START alice/probe" in text, text[-2000:]
    assert text.index("PROBE-START") < text.index("Running on local URL")


def test_healthy_gradio_app_logs_no_traceback(alice, demo) -> None:  # noqa: ANN001
    def log() -> str:
        text = kit.logs(alice.api, demo, build=False)
        return text if "Running on local URL" in text else ""

    text = kit.wait_for(log, timeout=60, what="gradio's start-up line in the run log")
    assert "Traceback" not in text, text[-2000:]


def test_run_log_streams_new_lines_live(platform, alice, probe) -> None:  # noqa: ANN001
    """A reader following the run log gets a line the app prints after the reader connected (SSE, live)."""
    marker = f"live-line-{secrets.token_hex(4)}"
    seen: list[str] = []
    errors: list[BaseException] = []
    connected = threading.Event()

    def follow() -> None:
        try:
            with alice.http() as c, c.stream("GET", f"/api/spaces/{probe}/logs/run", params={"follow": "1"},
                                             timeout=httpx.Timeout(30, read=30)) as r:
                assert r.status_code == 200
                connected.set()
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        seen.append(json.loads(line[6:])["data"])
                        if marker in seen[-1]:
                            return
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            connected.set()

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    assert connected.wait(30)
    time.sleep(0.5)  # the history is replayed; now the app writes a new line
    assert kit.gradio_call(platform.server, probe, "say", marker) == ["said"]
    t.join(30)
    assert not errors, f"the log stream broke: {errors[0]!r}"
    assert any(marker in line for line in seen), seen[-5:]


def test_app_environment_is_the_spaces_and_nothing_of_the_platform(platform, alice, probe) -> None:  # noqa: ANN001
    env = json.loads(call(platform, probe, "env", ""))
    assert env["SPACE_ID"] == "alice/probe"
    assert env["SPACE_AUTHOR_NAME"] == "alice"
    assert env["SPACE_REPO_NAME"] == "probe"
    assert env["SPACE_TITLE"] == "Probe title"
    assert env["SPACE_HOST"] == f"alice-probe.localhost:{platform.port}"
    assert env["SYSTEM"] == "spaces"
    # cpu-basic's 2 vCPU / 16 GiB, clamped to what this machine leaves one Space (half a core and a tenth of the
    # memory are the platform's): the app sees the limits it really has
    from spaces.runtime.nodes import detect_local_node

    node = detect_local_node(reserved_cpu=0.5, reserved_memory_mb=None)
    cores, memory = min(2.0, node.space_cpu), min(16384, node.space_memory_mb)
    assert env["CPU_CORES"] == f"{cores:g}" and env["ACCELERATOR"] == "none"
    assert env["MEMORY"] == ("16Gi" if memory == 16384 else f"{memory}Mi")
    assert env["GREETING_STYLE"] == "loud"
    assert env["PROBE_SECRET"] == "probe-secret-value"
    assert env["GRADIO_ANALYTICS_ENABLED"] == "False"  # SDK telemetry stays off unless the operator allows it
    # the platform's own environment stays out: its canary, its settings, its credentials
    assert kit.PLATFORM_CANARY not in env
    assert platform.canary not in json.dumps(env)
    # (keys as the process started: with its analytics off, Gradio itself sets HF_HUB_DISABLE_TELEMETRY later)
    log = kit.logs(alice.api, probe, build=False)
    started_with = json.loads(log.split("PROBE-ENV-KEYS ", 1)[1].split("\n", 1)[0])
    assert "SPACE_ID" in started_with
    assert not [k for k in started_with if k.startswith(("SPACES_", "HF_HUB_DISABLE"))], started_with
    # and no process the app can read holds it either (the control plane's /proc/<pid>/environ is closed to it)
    scan = json.loads(call(platform, probe, "scan", platform.canary))
    assert scan["found"] == [], scan


def test_gradio_runs_as_a_space_without_the_hot_reload_server(platform, alice, probe) -> None:  # noqa: ANN001
    """As a Space, Gradio would also start the ``spaces`` package's hot-reload server: an unauthenticated API on
    0.0.0.0:7887 that rewrites the app's files and reloads its code. The environment's start-up hook keeps it off
    (nothing here relays Hugging Face's hot reload), and Gradio still runs as a Space."""
    seen = json.loads(call(platform, probe, "gradio", ""))
    assert seen == {"space": "alice/probe", "reload_server": False}, seen
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", 7887), timeout=5).close()


def test_new_secret_reaches_the_app_after_its_restart(platform, alice, probe) -> None:  # noqa: ANN001
    value = secrets.token_hex(8)
    alice.api.add_space_secret(probe, "LATE_SECRET", value)

    def seen() -> bool:
        try:
            return json.loads(call(platform, probe, "env", "")).get("LATE_SECRET") == value
        except Exception:
            return False

    kit.wait_for(seen, timeout=60, what="the new secret in the app's environment")


def test_a_space_cannot_read_another_spaces_secrets_or_files(  # noqa: ANN001
        platform, alice, bob, probe, make_space) -> None:
    secret = f"victim-{secrets.token_hex(8)}"
    victim = make_space(bob, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                "app.py": kit.app_source("greet.py", MARK="victim")}),
                        private=True, space_secrets=[{"key": "VICTIM_SECRET", "value": secret}])
    kit.wait_stage(bob.api, victim, kit.RUNNING)
    state = kit.instance_of(platform, kit.space_id(bob, victim))

    # its environment: not in any /proc/<pid>/environ or cmdline the attacker can read
    scan = json.loads(call(platform, probe, "scan", secret))
    assert scan["found"] == [], scan
    # the victim's (and the platform's) are closed, or (the probe in a PID namespace of its own) not there at all
    assert scan["denied"] > 0 or scan["readable"] <= 6, scan
    direct = call(platform, probe, "read", f"/proc/{state['pid']}/environ")
    assert direct.startswith(("ERR PermissionError", "ERR FileNotFoundError")), direct
    # its working copy, its home, the platform's database and secrets
    for path in (state["workdir"], f"{state['workdir']}/app.py", str(platform.data_dir / "spaces.db"),
                 str(platform.data_dir / "secret_key"), state["log"]):
        got = call(platform, probe, "read", path)
        assert got.startswith("ERR"), f"{path}: {got[:200]}"


def test_crashing_app_is_runtime_error_with_its_log_and_others_keep_serving(platform, alice, demo,  # noqa: ANN001
                                                                            make_space) -> None:
    token = f"boom-{secrets.token_hex(4)}"
    repo_id = make_space(alice, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                   "app.py": kit.app_source("crash.py", TOKEN=token)}))
    rt = kit.wait_stage(alice.api, repo_id, "RUNTIME_ERROR", timeout=120)
    message = rt.raw["message"]
    assert f"RuntimeError: {token}: this app fails on purpose at import" in message, message
    assert "crash-app: starting" in message  # the tail of its log, stdout and stderr
    kit.wait_for(lambda: token in kit.logs(alice.api, repo_id, build=False), timeout=30,
                 what="the crash in the run log")
    # the visitor sees the stage and message, not a hang
    r = kit.app_get(platform.server, repo_id, "/")
    assert r.status_code == 503 and r.json()["stage"] == "RUNTIME_ERROR", r.text[:300]
    # the platform and the other Spaces are fine
    assert kit.gradio_call(platform.server, demo, "greet", "still") == ["Hello, still!"]
    assert alice.api.get_space_runtime(demo).stage == kit.RUNNING


def test_an_app_crashing_at_every_start_stops_holding_nothing_until_restarted(platform, alice,  # noqa: ANN001
                                                                               make_space) -> None:
    token = f"again-{secrets.token_hex(4)}"
    repo_id = make_space(alice, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                   "app.py": kit.app_source("crash.py", TOKEN=token)}))
    sid = kit.space_id(alice, repo_id)
    kit.wait_for(lambda: alice.api.get_space_runtime(repo_id).raw["reason"] == "crashed_repeatedly", timeout=180,
                 what="the Space to stop starting its crashing app (backoff 0.25 s doubled, 5 crashes)")
    rt = alice.api.get_space_runtime(repo_id)
    assert rt.stage == "RUNTIME_ERROR" and rt.raw["hardware"]["current"] is None, rt.raw
    error = rt.raw["errorMessage"]
    assert "5 times in a row" in error and "until the next push or a restart" in error, error
    assert f"RuntimeError: {token}" in error and "crash-app: starting" in error, error  # the log tail
    # it holds no instance (no process, no capacity) and is not started again
    kit.wait_held(lambda: not [s for s in kit.instance_states(platform) if s.get("space_id") == sid], hold=3,
                  what="no instance of the crashed Space")
    assert len(kit.instance_logs(platform, sid)) == 5  # one per start
    with alice.http() as c:
        page = c.get(f"/spaces/{repo_id}").text
    assert f"RuntimeError: {token}" in page and "until the next push or a restart" in page
    # a restart gives it another round
    alice.api.restart_space(repo_id)
    kit.wait_for(lambda: len(kit.instance_logs(platform, sid)) > 5, timeout=60, what="a start after the restart")


def test_an_app_that_never_opens_its_port_stops_after_five_start_up_timeouts(platform, alice,  # noqa: ANN001
                                                                           make_space) -> None:
    token = f"silent-{secrets.token_hex(4)}"
    repo_id = make_space(alice, kit.space_files(**{
        "README.md": kit.readme("gradio", startup_duration_timeout="2s"),
        "app.py": kit.app_source("silent.py", TOKEN=token)}))
    sid = kit.space_id(alice, repo_id)
    kit.wait_for(lambda: alice.api.get_space_runtime(repo_id).raw["reason"] == "crashed_repeatedly", timeout=120,
                 what="the Space to stop starting an app that never listens (5 timeouts of 2 s)")
    rt = alice.api.get_space_runtime(repo_id)
    error = rt.raw["errorMessage"]
    assert rt.stage == "RUNTIME_ERROR" and rt.raw["hardware"]["current"] is None, rt.raw
    assert "5 times in a row" in error and "did not open port 7860 within its startup_duration_timeout of 2 s" in error
    assert f"silent-app: {token} loading" in error, error  # the log tail of the live instance it stopped
    kit.wait_held(lambda: not [s for s in kit.instance_states(platform) if s.get("space_id") == sid], hold=3,
                  what="no instance of the Space")
    assert len(kit.instance_logs(platform, sid)) == 5  # one per start


def test_an_app_crashing_soon_after_it_answers_stops_too(platform, alice, make_space) -> None:  # noqa: ANN001
    token = f"flaky-{secrets.token_hex(4)}"
    repo_id = make_space(alice, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                   "app.py": kit.app_source("flaky.py", TOKEN=token)}))
    sid = kit.space_id(alice, repo_id)
    kit.wait_for(lambda: alice.api.get_space_runtime(repo_id).raw["reason"] == "crashed_repeatedly", timeout=240,
                 what="the Space to stop starting an app that crashes 3 s after it answers")
    error = alice.api.get_space_runtime(repo_id).raw["errorMessage"]
    assert "5 times in a row" in error and "exited with code 3" in error, error
    logs = [p.read_text() for p in kit.instance_logs(platform, sid)]
    assert len(logs) == 5 and all("flaky-app: answering" in text for text in logs)  # it answered every time
    kit.wait_held(lambda: not [s for s in kit.instance_states(platform) if s.get("space_id") == sid], hold=3,
                  what="no instance of the Space")


def test_a_new_revision_that_crashes_leaves_the_old_one_serving_and_managed(platform, alice,  # noqa: ANN001
                                                                            make_space) -> None:
    mark = f"old-{secrets.token_hex(4)}"
    repo_id = make_space(alice, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                   "app.py": kit.app_source("greet.py", MARK=mark)}))
    kit.wait_stage(alice.api, repo_id, kit.RUNNING, timeout=300)
    sid = kit.space_id(alice, repo_id)
    old = kit.instance_of(platform, sid)
    token = f"again-{secrets.token_hex(4)}"
    kit.upload(alice.api, repo_id, {"app.py": kit.app_source("crash.py", TOKEN=token)}, "a broken revision")
    kit.wait_for(lambda: alice.api.get_space_runtime(repo_id).raw["reason"] == "crashed_repeatedly", timeout=180,
                 what="the Space to stop starting its crashing new revision")
    rt = alice.api.get_space_runtime(repo_id)
    error = rt.raw["errorMessage"]
    assert rt.stage == "RUNTIME_ERROR" and "the previous revision keeps serving" in error, error
    assert f"RuntimeError: {token}" in error, error
    assert kit.gradio_call(platform.server, repo_id, "predict", "bob")[0] == f"{mark}: Hello, bob!"
    # the old instance is the one instance of the Space (none left unmanaged), and it stays so
    kit.wait_held(lambda: [s["pid"] for s in kit.instance_states(platform) if s.get("space_id") == sid]
                  == [old["pid"]], hold=3, what="the old instance, alone")
    assert alice.api.get_space_runtime(repo_id).raw["reason"] == "crashed_repeatedly"


def test_free_user_cannot_request_paid_hardware(platform, alice, make_space) -> None:  # noqa: ANN001
    repo_id = make_space(alice, kit.space_files("static"), sdk="static")
    for flavor in ("t4-small", "cpu-upgrade"):
        with pytest.raises(HfHubHTTPError) as exc:
            alice.api.request_space_hardware(repo_id, flavor)
        resp = exc.value.response
        assert resp.status_code == 402, (flavor, resp.status_code, resp.text)
        message = resp.headers.get("x-error-message", "")
        assert flavor in message and "limit" in message and "used" in message and "requested" in message, message
    assert alice.api.get_space_runtime(repo_id).raw["hardware"]["requested"] == "cpu-basic"
    # creating a Space with it is refused the same way, and creates nothing
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.create_repo(f"alice/{secrets.token_hex(4)}", repo_type="space", space_sdk="gradio",
                              space_hardware="t4-small")
    assert exc.value.response.status_code == 402


def test_admin_may_request_paid_hardware(platform) -> None:  # noqa: ANN001
    from huggingface_hub import HfApi

    name = f"admin{secrets.token_hex(3)}"
    platform.server.user(name, admin=True)
    api = HfApi(endpoint=platform.url, token=platform.server.token(name))
    repo_id = f"{name}/big"
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    rt = api.request_space_hardware(repo_id, "cpu-upgrade")
    assert rt.raw["hardware"]["requested"] == "cpu-upgrade"
    api.delete_repo(repo_id, repo_type="space")


def test_a_moved_space_restarts_under_its_new_name(platform, alice, make_space) -> None:  # noqa: ANN001
    """``move_repo`` on a running app: the app answers at the new subdomain with ``SPACE_ID`` and ``SPACE_HOST``
    naming the new id, and the old subdomain answers 404."""
    files = kit.space_files(**{"README.md": kit.readme("gradio", title="Moving probe"),
                               "app.py": kit.app_source("probe.py")})
    repo_id = make_space(alice, files, sdk="gradio")
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    assert json.loads(call(platform, repo_id, "env", ""))["SPACE_ID"] == repo_id
    target = f"alice/moved-{secrets.token_hex(4)}"
    alice.api.move_repo(repo_id, target, repo_type="space")
    try:
        def env_at_new_name() -> dict | None:
            try:  # 404 or a starting page while the new instance comes up
                env = json.loads(call(platform, target, "env", ""))
            except (httpx.HTTPError, AssertionError, ValueError):
                return None
            return env if env["SPACE_ID"] == target else None

        env = kit.wait_for(env_at_new_name, timeout=90, what="the restarted app at its new name")
        assert env["SPACE_REPO_NAME"] == target.split("/")[1]
        assert env["SPACE_HOST"] == kit.app_host(platform.server, target)
        assert kit.app_get(platform.server, repo_id).status_code == 404
    finally:
        alice.api.delete_repo(target, repo_type="space")

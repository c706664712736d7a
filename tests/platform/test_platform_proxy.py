"""The proxy end to end: sleep and wake, a wake storm, private Spaces, gradio_client, spoofed Hosts.

Real ``spaces serve``, real Gradio apps, real clients (httpx, gradio_client in a subprocess that resolves the
Space's ``*.localhost`` host through /etc/hosts lines added for the test).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import httpx
import pytest

import platform_kit as kit


def sleep_space(platform, actor, repo_id: str) -> None:  # noqa: ANN001
    """``spaces sleep OWNER/NAME`` (the operator's CLI), then wait for SLEEPING."""
    platform.server.cli("sleep", repo_id, "--port", str(platform.port))
    kit.wait_stage(actor.api, repo_id, "SLEEPING", timeout=30)


def test_sleep_then_wake_holds_the_api_client_until_the_app_answers(  # noqa: ANN001
        platform, alice, make_space) -> None:
    repo_id = make_space(alice, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                   "app.py": kit.app_source("greet.py", MARK="wake")}))
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    space_id = kit.space_id(alice, repo_id)
    upstream = kit.instance_of(platform, space_id)
    sleep_space(platform, alice, repo_id)
    # asleep means not serving: the process is frozen (first tier) and does not answer even directly
    with pytest.raises(httpx.TimeoutException):
        httpx.get(f"http://{upstream['host']}:{upstream['port']}/config", timeout=1.5)
    r = kit.app_get(platform.server, repo_id, "/config")  # an API client (no Accept: text/html): held, then 200
    assert r.status_code == 200, r.text[:300]
    assert r.json()["title"] == "Greet wake"
    assert alice.api.get_space_runtime(repo_id).stage == kit.RUNNING
    assert kit.gradio_call(platform.server, repo_id, "predict", "w") == ["wake: Hello, w!"]


def test_wake_storm_is_one_wake_and_every_request_answered(platform, alice, make_space) -> None:  # noqa: ANN001
    repo_id = make_space(alice, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                   "app.py": kit.app_source("greet.py", MARK="storm")}))
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    space_id = kit.space_id(alice, repo_id)
    before = kit.instance_of(platform, space_id)
    logs_before = kit.instance_logs(platform, space_id)
    sleep_space(platform, alice, repo_id)

    statuses = asyncio.run(kit.storm(platform.port, kit.app_host(platform.server, repo_id), 100))
    assert statuses == {200: 100}, statuses
    after = kit.instance_of(platform, space_id)
    # frozen tier: the same process thawed once, no instance started
    assert (after["pid"], after["starttime"]) == (before["pid"], before["starttime"])
    assert kit.instance_logs(platform, space_id) == logs_before


def test_private_space_needs_the_owners_token(platform, alice, bob, make_space) -> None:  # noqa: ANN001
    repo_id = make_space(alice, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                   "app.py": kit.app_source("greet.py", MARK="private")}),
                         private=True)
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    assert kit.app_get(platform.server, repo_id, "/config").status_code == 404
    assert kit.app_get(platform.server, repo_id, "/config", authorization="Bearer hf_not_a_token").status_code == 404
    assert kit.app_get(platform.server, repo_id, "/config",
                       authorization=f"Bearer {bob.token}").status_code == 404  # not hers: same as not there
    # unknown and private look the same (no existence leak)
    unknown = kit.app_get(platform.server, f"alice/{kit.subdomain(repo_id)}-nope", "/config")
    assert unknown.status_code == 404
    ok = kit.app_get(platform.server, repo_id, "/config", authorization=f"Bearer {alice.token}")
    assert ok.status_code == 200 and ok.json()["title"] == "Greet private"
    ok2 = kit.app_get(platform.server, repo_id, "/config", **{"x-hf-authorization": f"Bearer {alice.token}"})
    assert ok2.status_code == 200
    # the Gradio queue (POST + SSE) with gradio_client's header
    headers = {"x-hf-authorization": f"Bearer {alice.token}"}
    assert kit.gradio_call(platform.server, repo_id, "predict", "p", headers=headers) == ["private: Hello, p!"]


GRADIO_CLIENT_SCRIPT = textwrap.dedent("""
    import json, sys
    from gradio_client import Client
    repo_id, token, arg, api_name = sys.argv[1:5]
    client = Client(repo_id, token=token or None, verbose=False, download_files=False)
    print(json.dumps({"result": client.predict(arg, api_name=api_name), "src": client.src}))
""")


def run_gradio_client(platform, repo_id: str, arg: str, api_name: str, token: str = "") -> dict:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_"))}
    env.update(HF_ENDPOINT=platform.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="0",
               GRADIO_ANALYTICS_ENABLED="False", HF_HOME=os.environ.get("HF_HOME", "/var/tmp"))
    with kit.hosts_entries(f"{kit.subdomain(repo_id)}.localhost"):
        res = subprocess.run([sys.executable, "-c", GRADIO_CLIENT_SCRIPT, repo_id, token, arg, api_name], env=env,
                             capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_gradio_client_calls_the_app_by_space_id(platform, alice, demo) -> None:  # noqa: ANN001
    out = run_gradio_client(platform, demo, "Grace", "/greet")
    assert out["result"] == "Hello, Grace!"
    assert out["src"].startswith(f"http://alice-demo.localhost:{platform.port}")


def test_gradio_client_reaches_a_private_space_with_its_token(platform, alice, make_space) -> None:  # noqa: ANN001
    repo_id = make_space(alice, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                   "app.py": kit.app_source("greet.py", MARK="gc")}), private=True)
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    assert run_gradio_client(platform, repo_id, "Lin", "/predict", alice.token)["result"] == "gc: Hello, Lin!"


@pytest.fixture
def attacker(alice, make_space) -> str:  # noqa: ANN001
    repo_id = make_space(alice, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                   "app.py": kit.app_source("probe.py")}))
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    return repo_id


@pytest.fixture
def victim(platform, bob, make_space) -> dict:  # noqa: ANN001
    """bob's private Space; returns its repo id and its instance record (upstream port...)."""
    repo_id = make_space(bob, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                 "app.py": kit.app_source("greet.py", MARK="victim")}), private=True)
    kit.wait_stage(bob.api, repo_id, kit.RUNNING)
    return {"repo_id": repo_id, **kit.instance_of(platform, kit.space_id(bob, repo_id))}


def probe_http(platform, attacker: str, **spec: object) -> str:  # noqa: ANN001
    return kit.gradio_call(platform.server, attacker, "http", json.dumps(spec))[0]


def test_spoofed_host_from_a_space_reaches_no_private_space_and_no_internal_hub(platform, attacker,  # noqa: ANN001
                                                                               victim) -> None:
    port = platform.port
    victim_host = f"{kit.subdomain(victim['repo_id'])}.localhost:{port}"
    # through the public port with the private Space's Host: as any visitor without a token
    got = probe_http(platform, attacker, host="127.0.0.1", port=port, path="/config", hosthdr=victim_host)
    assert got.startswith("OK HTTP/1.1 404"), got[:300]
    # Hosts that name the upstream itself or the hub's internals go to the public hub, never to an upstream
    for hosthdr in (f"127.0.0.1:{victim['port']}", f"localhost:{victim['port']}", "hub.sock", "unix"):
        got = probe_http(platform, attacker, host="127.0.0.1", port=port, path="/config", hosthdr=hosthdr)
        assert "victim" not in got and "Greet" not in got, (hosthdr, got[:300])
    # the hub's internal socket is closed to Spaces
    got = probe_http(platform, attacker, unix=str(platform.data_dir / "run" / "hub.sock"), path="/api/health")
    assert got.startswith("ERR"), got[:300]


def test_a_space_cannot_reach_another_spaces_upstream_directly(platform, attacker, victim) -> None:  # noqa: ANN001
    got = probe_http(platform, attacker, host=victim["host"], port=victim["port"], path="/config",
                     hosthdr=f"{victim['host']}:{victim['port']}")
    assert got.startswith("ERR"), f"the private Space answered another Space directly: {got[:200]}"

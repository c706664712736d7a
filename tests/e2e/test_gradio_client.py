"""``gradio_client`` and module-level ``huggingface_hub`` calls, which only know the hub through ``HF_ENDPOINT``.

``HF_ENDPOINT`` is read once when huggingface_hub is imported, so each check runs in a fresh interpreter with it
set. The child records every URL gradio_client requests (it uses plain ``httpx``), so we can assert *where* the
client went instead of parsing error messages: resolving ``ns/name`` through ``GET /api/spaces/{id}`` must lead it
to the Space's app origin ``http://{subdomain}.localhost:{port}/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from harness import subdomain_for, unique
from huggingface_hub import CommitOperationAdd

from e2e.helpers import APP_PY, README_APP

pytestmark = pytest.mark.timeout(180)

CHILD = textwrap.dedent(
    r"""
    import json, os, sys, threading, traceback
    import httpx

    repo_id, token, mode = sys.argv[1], (sys.argv[2] or None), sys.argv[3]
    out = {"requests": [], "stages": []}

    _send = httpx.Client.send
    def send(self, request, *a, **kw):
        out["requests"].append({"method": request.method, "url": str(request.url),
                                "x_hf_authorization": "x-hf-authorization" in request.headers})
        return _send(self, request, *a, **kw)
    httpx.Client.send = send

    import huggingface_hub
    from huggingface_hub import constants
    out["endpoint"] = constants.ENDPOINT
    try:
        info = huggingface_hub.space_info(repo_id, token=token)
        out["host"], out["subdomain"], out["private"] = info.host, info.subdomain, info.private
    except Exception as e:
        out["space_info_error"] = f"{type(e).__name__}: {e}"

    real_runtime = huggingface_hub.get_space_runtime
    def runtime(space_id, token=None):
        rt = real_runtime(space_id, token=token)
        out["stages"].append(rt.stage)
        if mode == "skip-build-wait" and rt.stage in ("BUILDING", "APP_STARTING", "RUNNING_BUILDING",
                                                       "RUNNING_APP_STARTING", "SLEEPING", "STOPPED"):
            # no builder/app runs in this test: do not wait for a build; we test id -> host resolution
            rt.stage = "RUNNING"
        return rt
    huggingface_hub.get_space_runtime = runtime

    from gradio_client import Client
    def run():
        try:
            Client(repo_id, token=token, verbose=False, download_files=False)
            out["client"] = "connected"
        except BaseException as e:
            out["client_error"] = f"{type(e).__name__}: {e}"
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    if t.is_alive():
        out["client_error"] = "TIMEOUT: Client() did not return within 60s"
    print("RESULT " + json.dumps(out), flush=True)
    os._exit(0)
    """
)


def run_child(server, repo_id: str, token: str | None, mode: str = "skip-build-wait") -> dict:
    env = dict(server.env)
    for k in list(env):
        if k.startswith("SPACES_"):
            del env[k]
    env.update(HF_ENDPOINT=server.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
               HF_HOME=str(server.data_dir.parent / f"hf-home-{unique('g')}"), NO_PROXY="*", no_proxy="*")
    res = subprocess.run(
        [sys.executable, "-c", CHILD, repo_id, token or "", mode],
        env=env, capture_output=True, text=True, timeout=150,
    )
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, f"child failed ({res.returncode})\nstdout:\n{res.stdout}\nstderr:\n{res.stderr[-5000:]}"
    return json.loads(line[len("RESULT "):])


def app_requests(out: dict, origin: str) -> list[dict]:
    return [r for r in out["requests"] if r["url"].startswith(origin + "/")]


def test_module_level_space_info_uses_hf_endpoint(server, alice, make_space):
    repo_id = make_space(alice)
    out = run_child(server, repo_id, None, mode="real")
    assert out["endpoint"] == server.url
    assert "space_info_error" not in out, out
    sub = subdomain_for(repo_id)
    assert out["subdomain"] == sub
    assert out["host"].rstrip("/") == f"http://{sub}.localhost:{server.port}"
    # no app file: gradio_client reads the runtime stage through the hub and refuses clearly
    assert "NO_APP_FILE" in out.get("client_error", ""), out
    assert "Could not find Space" not in out.get("client_error", "")


def test_client_resolves_space_to_its_app_origin(server, alice, make_space):
    repo_id = make_space(alice, name=f"Demo_{unique('g')}")
    alice.api.create_commit(
        repo_id,
        operations=[CommitOperationAdd("app.py", APP_PY.encode()), CommitOperationAdd("README.md", README_APP.encode())],
        commit_message="app",
        repo_type="space",
    )
    out = run_child(server, repo_id, None)
    origin = f"http://{subdomain_for(repo_id)}.localhost:{server.port}"
    err = out.get("client_error", "")
    assert "Could not find Space" not in err, out
    assert "invalid state" not in err, f"stage after adding app.py must not be an error stage: {out}"
    assert out["stages"], "gradio_client must read the runtime through the hub"
    reached = app_requests(out, origin)
    assert reached, f"gradio_client never tried the app origin {origin}: {out}"
    assert reached[0]["url"] == origin + "/config", reached


def test_client_resolves_private_space_with_token(server, alice, make_space):
    repo_id = make_space(alice, private=True)
    alice.api.upload_file(path_or_fileobj=APP_PY.encode(), path_in_repo="app.py", repo_id=repo_id, repo_type="space")

    anon = run_child(server, repo_id, None)
    assert "RepositoryNotFoundError" in anon.get("space_info_error", ""), anon
    assert not app_requests(anon, f"http://{subdomain_for(repo_id)}.localhost:{server.port}")

    out = run_child(server, repo_id, alice.token)
    assert out.get("private") is True
    origin = f"http://{subdomain_for(repo_id)}.localhost:{server.port}"
    reached = app_requests(out, origin)
    if not reached:
        runtime = alice.api.get_space_runtime(repo_id).raw
        lines: list[str] = []
        try:
            lines.extend(alice.api.fetch_space_logs(repo_id, build=False))
        except Exception as exc:  # noqa: BLE001 - a stream kept open ends on the read timeout: keep what came
            lines.append(f"({type(exc).__name__})")
        pytest.fail(f"gradio_client never tried the app origin {origin}: {out}\nruntime now: {runtime}\n"
                    f"run log: {''.join(lines)[-2000:]}")
    # the token goes to the app host as x-hf-authorization (never as authorization)
    assert reached[0]["x_hf_authorization"] is True

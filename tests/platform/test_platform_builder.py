"""The builder end to end: pushes (huggingface_hub, git) become running apps, with live build logs and clear errors.

Everything is real: ``spaces serve``, uv environments, the templates' Gradio / Streamlit / static apps, the
huggingface_hub and git clients, httpx and websockets through the proxy.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path

import pytest

import platform_kit as kit
from e2e.helpers import clone, commit_all, git

# huggingface_hub warns that `sdk: streamlit` is deprecated on Hugging Face; it is supported here
pytestmark = pytest.mark.filterwarnings("ignore:Warnings while validating metadata")


def test_gradio_template_runs_behind_the_proxy(platform, alice, demo) -> None:  # noqa: ANN001
    rt = kit.wait_stage(alice.api, demo, kit.RUNNING)
    info = alice.api.space_info(demo)
    assert info.host == f"http://alice-demo.localhost:{platform.port}"
    page = kit.app_get(platform.server, demo, "/")
    assert page.status_code == 200, page.text[:300]
    assert "gradio" in page.text.lower()
    assert kit.gradio_call(platform.server, demo, "greet", "Ada") == ["Hello, Ada!"]
    assert rt.raw["sha"] == info.sha


def test_build_log_streams_every_phase_through_fetch_space_logs(alice, make_space) -> None:  # noqa: ANN001
    # requirements nobody built before (a unique comment): a real install, not a reused environment
    files = kit.space_files("gradio", **{"requirements.txt": f"six\n# {secrets.token_hex(6)}\n"})
    repo_id = make_space(alice, files)
    kit.wait_stage(alice.api, repo_id, kit.RUNNING, timeout=300)
    log = kit.logs(alice.api, repo_id, build=True)
    def first(phase: str) -> int:  # a line starts with its phase (its time is the log event's own)
        found = re.search(rf"(?m)^{phase} ", log)
        assert found, f"phase {phase!r} missing from the build log:\n{log[-3000:]}"
        return found.start()

    first("resolving")
    assert "six" in log  # the install of requirements.txt is in the log, line by line
    order = [first(p) for p in ("queued", "fetching", "installing", "built")]
    assert order == sorted(order), log[-3000:]


def test_broken_requirements_fail_clearly_while_the_previous_revision_serves(platform, alice,  # noqa: ANN001
                                                                             make_space) -> None:
    mark = secrets.token_hex(4)
    repo_id = make_space(alice, kit.space_files("gradio", **{"app.py": kit.app_source("greet.py", MARK=mark)}))
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    assert kit.gradio_call(platform.server, repo_id, "predict", "x") == [f"{mark}: Hello, x!"]

    bad_line = f"this-package-does-not-exist-{secrets.token_hex(4)}==1.0"
    sha = kit.upload(alice.api, repo_id, {"requirements.txt": f"six\n{bad_line}\n"}, "broken deps")
    rt = kit.wait_stage(alice.api, repo_id, "BUILD_ERROR", sha=sha, timeout=180)
    assert bad_line in rt.raw["message"], rt.raw["message"]
    assert "Traceback" not in rt.raw["message"]
    assert bad_line in kit.logs(alice.api, repo_id, build=True)
    # the revision that worked still answers
    assert kit.gradio_call(platform.server, repo_id, "predict", "y") == [f"{mark}: Hello, y!"]

    fixed = kit.upload(alice.api, repo_id, {"requirements.txt": "six\n"}, "fixed deps")
    kit.wait_stage(alice.api, repo_id, kit.RUNNING, sha=fixed, timeout=300)
    assert kit.gradio_call(platform.server, repo_id, "predict", "z") == [f"{mark}: Hello, z!"]


def test_missing_app_file_is_no_app_file(alice, make_space) -> None:  # noqa: ANN001
    files = {"README.md": kit.readme("gradio", app_file="main.py").encode(), "other.py": b"print('hi')\n"}
    repo_id = make_space(alice, files)
    rt = kit.wait_stage(alice.api, repo_id, "NO_APP_FILE", timeout=60)
    assert "main.py" in (rt.raw.get("message") or ""), rt.raw


def test_git_push_prints_the_build_and_the_new_revision_serves(platform, alice, make_space,  # noqa: ANN001
                                                               tmp_path: Path) -> None:
    repo_id = make_space(alice, kit.space_files("gradio", **{"app.py": kit.app_source("greet.py", MARK="one")}))
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    work = tmp_path / "clone"
    clone(platform.server, repo_id, work, alice.token)
    (work / "app.py").write_text(kit.app_source("greet.py", MARK="two"))
    sha = commit_all(work, "code-only change")
    push = git("push", "origin", "main", cwd=work)
    remote = [ln for ln in push.stderr.splitlines() if ln.startswith("remote: spaces:")]
    assert remote, push.stderr
    assert any(sha[:7] in ln for ln in remote), remote
    assert any(kit.subdomain(repo_id) in ln for ln in remote), remote  # where the app will be
    kit.wait_stage(alice.api, repo_id, kit.RUNNING, sha=sha, timeout=120)
    assert kit.gradio_call(platform.server, repo_id, "predict", "g") == ["two: Hello, g!"]


def test_static_template_is_served_through_the_proxy(platform, alice, make_space) -> None:  # noqa: ANN001
    repo_id = make_space(alice, kit.space_files("static"), sdk="static")
    kit.wait_stage(alice.api, repo_id, kit.RUNNING, timeout=60)
    index = (kit.TEMPLATES / "static" / "index.html").read_text()
    r = kit.app_get(platform.server, repo_id, "/")
    assert r.status_code == 200
    assert r.text == index
    css = kit.app_get(platform.server, repo_id, "/style.css")
    assert css.status_code == 200 and css.text == (kit.TEMPLATES / "static" / "style.css").read_text()
    assert kit.app_get(platform.server, repo_id, "/nope.html").status_code == 404


def test_streamlit_template_answers_over_websocket_through_the_proxy(  # noqa: ANN001
        platform, alice, make_space) -> None:
    repo_id = make_space(alice, kit.space_files("streamlit"), sdk="streamlit")
    kit.wait_stage(alice.api, repo_id, kit.RUNNING, timeout=300)
    assert kit.app_get(platform.server, repo_id, "/_stcore/health").text == "ok"
    texts = asyncio.run(streamlit_session(platform.port, kit.app_host(platform.server, repo_id)))
    assert "Hello from Streamlit" in texts, texts
    assert "The sum of the first 5 squares is 30." in texts, texts


async def streamlit_session(port: int, host: str) -> str:
    """Open Streamlit's WebSocket through the proxy, ask for a run, collect the text the script writes."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    texts: list[str] = []
    # the URI carries the Space's Host; the TCP connection goes to 127.0.0.1 (no *.localhost resolver here)
    async with websockets.connect(f"ws://{host}/_stcore/stream", subprotocols=["streamlit"], open_timeout=30,
                                  host="127.0.0.1", port=port) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_script_hash = ""
        await ws.send(msg.SerializeToString())
        async with asyncio.timeout(60):
            while True:
                fwd = ForwardMsg.FromString(await ws.recv())
                if fwd.WhichOneof("type") == "delta":
                    el = fwd.delta.new_element
                    kind = el.WhichOneof("type")
                    if kind == "markdown":
                        texts.append(el.markdown.body)
                    elif kind == "heading":
                        texts.append(el.heading.body)
                if fwd.WhichOneof("type") == "script_finished":
                    break
    return "\n".join(texts)
